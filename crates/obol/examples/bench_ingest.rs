//! Benchmark of the Stripe webhook inbox: signed events per second and
//! latency to the 2xx, on SQLite or PostgreSQL. Not a test; prints figures.
//!
//!   cargo run --release -p obol --example bench_ingest -- sqlite 5000 16
//!   cargo run --release -p obol --example bench_ingest -- postgres 5000 16
//!
//! Arguments: backend, number of events, concurrent senders. PostgreSQL
//! uses POSTGRES_TEST_URL (default postgres://postgres:postgres@127.0.0.1:5432/postgres)
//! to create a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use secrecy::SecretString;
use sqlx::Connection;

const SECRET: &str = "whsec_bench_ingest_secret";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let backend = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("sqlite")
        .to_string();
    let events: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let concurrency: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(16);
    let dir = tempfile::tempdir()?;
    let database_url = match backend.as_str() {
        "sqlite" => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
        "postgres" => {
            let admin = std::env::var("POSTGRES_TEST_URL")
                .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into());
            let name = format!("obol_bench_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await?;
            format!(
                "{}/{name}",
                admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin)
            )
        }
        other => anyhow::bail!("backend is sqlite or postgres, not {other}"),
    };
    let config = obol::config::Config::from_yaml(&format!(
        "database_url: \"{database_url}\"\nlisten: 127.0.0.1:0\nlog: warn\nsandbox:\n  db: memory\n\
         api_keys: [obol_sk_benchbenchbenchbenchbenchbenchbench]\nstripe:\n  webhook_secrets: [{SECRET}]\n\
         reconcile:\n  interval_seconds: 0\n"
    ))?;
    let app = obol::Application::build(config).await?;
    let url = format!("http://{}/webhooks/stripe", app.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));

    let http = reqwest::Client::new();
    let secret = SecretString::from(SECRET);
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..events)
        .map(|i| {
            let http = http.clone();
            let url = url.clone();
            let secret = secret.clone();
            async move {
                let now = chrono::Utc::now().timestamp();
                let body = serde_json::json!({
                    "id": format!("evt_bench_{i}"), "object": "event", "type": "payment_intent.succeeded",
                    "created": now, "livemode": false, "api_version": "2023-08-16",
                    "data": {"object": {"id": format!("pi_bench_{i}"), "object": "payment_intent",
                        "amount": 1000 + i, "currency": "eur", "status": "succeeded",
                        "amount_received": 1000 + i, "last_payment_error": null, "metadata": {}}}
                })
                .to_string();
                let header = obol::stripe::signature::sign(body.as_bytes(), &secret, now);
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("stripe-signature", header)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut sorted = latencies.clone();
    sorted.sort();
    let pct = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)];

    // Until everything acknowledged is applied, too.
    let applied_at = loop {
        let r = http
            .get(url.replace(
                "/webhooks/stripe",
                "/v1/webhook-events?status=received&limit=1",
            ))
            .bearer_auth("obol_sk_benchbenchbenchbenchbenchbenchbench")
            .send()
            .await?
            .json::<serde_json::Value>()
            .await?;
        if r["data"] == serde_json::json!([]) {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "{backend}: {events} signed events, {concurrency} senders: {:.0} events/s acknowledged; \
         latency to 2xx p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; all applied after {:.2} s ({:.0} events/s)",
        events as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        applied_at.as_secs_f64(),
        events as f64 / applied_at.as_secs_f64(),
    );
    stop.cancel();
    let _ = server.await;
    Ok(())
}
