//! Throughput of PaymentIntent create + confirm against an in-process
//! sandbox: 2,000 intents, 8 concurrent clients, two requests per intent.
//!
//! `cargo run --release -p obol-sandbox --example bench [intents] [concurrency] [file]`
//! (a third argument runs on a SQLite file instead of in memory).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obol_sandbox::{ChaosConfig, Sandbox, SandboxConfig, SandboxDb};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let intents: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let concurrency: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let db = match args.get(3) {
        Some(path) => SandboxDb::File(path.into()),
        None => SandboxDb::Memory,
    };
    let db_name = format!("{db:?}");
    let sandbox = Sandbox::bind(
        "127.0.0.1:0".parse()?,
        SandboxConfig {
            db,
            chaos: ChaosConfig::default(),
            public_url: None,
            webhook_retry_base: Duration::from_secs(5),
            rate_limit_per_second: None,
        },
    )
    .await?;
    let base = format!("http://{}", sandbox.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sandbox.run_until(async {
        let _ = stop_rx.await;
    }));

    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, base, next, failures) =
            (http.clone(), base.clone(), next.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < intents {
                let created = http
                    .post(format!("{base}/v1/payment_intents"))
                    .bearer_auth("sk_test_bench")
                    .form(&[
                        ("amount", "2000"),
                        ("currency", "eur"),
                        ("payment_method", "pm_card_visa"),
                    ])
                    .send()
                    .await;
                let id = match created {
                    Ok(r) if r.status().is_success() => r
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_string)),
                    _ => None,
                };
                let Some(id) = id else {
                    failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let confirmed = http
                    .post(format!("{base}/v1/payment_intents/{id}/confirm"))
                    .bearer_auth("sk_test_bench")
                    .send()
                    .await;
                if !matches!(confirmed, Ok(ref r) if r.status().is_success()) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = intents * 2;
    println!(
        "{intents} intents (create + confirm), concurrency {concurrency}, db {db_name}: {:.2} s, {:.0} requests/s, {:.0} intents/s, {} failures",
        elapsed,
        requests as f64 / elapsed,
        intents as f64 / elapsed,
        failures.load(Ordering::Relaxed)
    );
    let stats: serde_json::Value = http
        .get(format!("{base}/_sandbox/stats"))
        .send()
        .await?
        .json()
        .await?;
    println!("objects: {}", stats["objects"]);
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}
