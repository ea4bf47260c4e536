//! Runs a sandbox until Ctrl-C / SIGTERM, for the SDK conformance suites.
//!
//! `OBOL_SANDBOX_LISTEN` (default 127.0.0.1:12111; port 0 picks one),
//! `OBOL_SANDBOX_DB` (a SQLite file; in memory when unset),
//! `OBOL_SANDBOX_CHAOS` (e.g. `seed=42,api_5xx=0.2`),
//! `OBOL_SANDBOX_WEBHOOK_RETRY_MS` (first retry delay). The first stdout
//! line is `listening on http://ADDR`.

use std::io::Write;
use std::time::Duration;

use obol_sandbox::{ChaosConfig, Sandbox, SandboxConfig, SandboxDb};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("OBOL_SANDBOX_LISTEN").unwrap_or_else(|_| "127.0.0.1:12111".into());
    let chaos: ChaosConfig = std::env::var("OBOL_SANDBOX_CHAOS")
        .unwrap_or_default()
        .parse()
        .map_err(anyhow::Error::msg)?;
    let db = match std::env::var("OBOL_SANDBOX_DB") {
        // `memory` means in memory, as for `obol sandbox`.
        Ok(p) if !p.is_empty() && p != "memory" && p != ":memory:" => SandboxDb::File(p.into()),
        _ => SandboxDb::Memory,
    };
    let retry_ms: u64 = std::env::var("OBOL_SANDBOX_WEBHOOK_RETRY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let config = SandboxConfig {
        db,
        chaos,
        public_url: None,
        webhook_retry_base: Duration::from_millis(retry_ms),
        rate_limit_per_second: None,
    };
    let sandbox = Sandbox::bind(addr.parse()?, config).await?;
    println!("listening on http://{}", sandbox.local_addr());
    std::io::stdout().flush()?;
    sandbox
        .run_until(async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
        })
        .await
}
