//! `obol sandbox`: the offline Stripe sandbox as its own process.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "OBOL_SANDBOX_LISTEN", default_value = "127.0.0.1:12111")]
    listen: SocketAddr,
    /// SQLite file holding the sandbox's state, or `memory`.
    #[arg(long, env = "OBOL_SANDBOX_DB", default_value = "obol-sandbox.db")]
    db: String,
    /// Disturbances for tests, e.g. `seed=7,api_5xx=0.2,api_429=0.1,drop=0.2`.
    #[arg(long, env = "OBOL_SANDBOX_CHAOS")]
    chaos: Option<String>,
    /// Requests per second `/v1/*` accepts, as Stripe's limit (a token bucket
    /// of one second); beyond it 429 `rate_limit`. Default: no limit.
    #[arg(long, env = "OBOL_SANDBOX_RATE_LIMIT", value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit: Option<u32>,
    /// Base URL the sandbox is reached at (3-D Secure links); default its own address.
    #[arg(long, env = "OBOL_SANDBOX_PUBLIC_URL")]
    public_url: Option<String>,
    /// First webhook retry delay in milliseconds (doubles each attempt).
    #[arg(long, env = "OBOL_SANDBOX_WEBHOOK_RETRY_MS", default_value_t = 5000)]
    webhook_retry_ms: u64,
    /// `human` or `json` logs.
    #[arg(long, env = "OBOL_LOG_FORMAT", default_value = "human")]
    log_format: String,
}

pub async fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let format = if args.log_format == "json" {
        crate::config::LogFormat::Json
    } else {
        crate::config::LogFormat::Human
    };
    crate::telemetry::init(
        format,
        &std::env::var("OBOL_LOG").unwrap_or_else(|_| "info".into()),
    );
    let chaos = match &args.chaos {
        Some(c) => c.parse().map_err(|e| anyhow::anyhow!("--chaos: {e}"))?,
        None => obol_sandbox::ChaosConfig::default(),
    };
    let db = match args.db.as_str() {
        "memory" | ":memory:" => obol_sandbox::SandboxDb::Memory,
        path => obol_sandbox::SandboxDb::File(PathBuf::from(path)),
    };
    let sandbox = obol_sandbox::Sandbox::bind(
        args.listen,
        obol_sandbox::SandboxConfig {
            db,
            chaos,
            public_url: args.public_url,
            webhook_retry_base: Duration::from_millis(args.webhook_retry_ms),
            rate_limit_per_second: args.rate_limit,
        },
    )
    .await?;
    println!("listening on http://{}", sandbox.local_addr());
    std::io::stdout().flush()?;
    sandbox.run_until(super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
