use obol_sandbox::ChaosConfig;
use serde_json::json;

use crate::helpers::*;

async fn statuses(seed: u64) -> Vec<u16> {
    let mut cfg = config();
    cfg.chaos = format!("seed={seed},api_5xx=0.2,api_429=0.1")
        .parse::<ChaosConfig>()
        .unwrap();
    let sb = spawn_with(cfg).await;
    let mut out = Vec::new();
    for _ in 0..60 {
        let r = sb.post("/v1/customers", &[]).await;
        if r.status == 500 {
            assert_eq!(r.err()["type"], "api_error");
            assert_eq!(r.header("stripe-should-retry"), Some("true"));
        }
        if r.status == 429 {
            assert_eq!(r.err()["code"], "rate_limit");
            assert_eq!(r.header("stripe-should-retry"), Some("true"));
        }
        out.push(r.status);
    }
    // Faults happen before any work: exactly the 200s created customers.
    let ok = out.iter().filter(|s| **s == 200).count() as i64;
    let stats = sb.stats().await;
    assert_eq!(stats["objects"]["customer"].as_i64().unwrap_or(0), ok);
    assert_eq!(stats["requests"]["200"].as_i64().unwrap_or(0), ok);
    sb.stop().await;
    out
}

#[tokio::test]
async fn api_faults_are_deterministic_per_seed() {
    let a = statuses(42).await;
    let b = statuses(42).await;
    let c = statuses(43).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.contains(&500) && a.contains(&429) && a.contains(&200));
}

#[tokio::test]
async fn runtime_chaos_drops_and_duplicates_deliveries() {
    let sb = spawn().await;
    let set = |body: serde_json::Value| {
        let http = sb.http.clone();
        let url = format!("{}/_sandbox/chaos", sb.base);
        async move { http.post(url).json(&body).send().await.unwrap() }
    };
    let r = set(json!({"seed": 1, "drop": 1.0})).await;
    assert_eq!(r.status(), 200);
    let cur: serde_json::Value = sb
        .http
        .get(format!("{}/_sandbox/chaos", sb.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cur["drop"], 1.0);
    assert_eq!(set(json!({"drop": 2.0})).await.status(), 400);
    assert_eq!(set(json!({"nonsense": 1})).await.status(), 400);

    let rx = Receiver::start(0).await;
    sb.post(
        "/v1/webhook_endpoints",
        &[("url", &rx.url), ("enabled_events[]", "customer.created")],
    )
    .await
    .ok();
    sb.post("/v1/customers", &[]).await.ok();
    sb.post("/v1/customers", &[]).await.ok();
    // Dropped deliveries: the events still exist.
    assert_eq!(sb.events_of("customer.created").await.len(), 2);
    assert_eq!(sb.stats().await["deliveries"]["dropped"], 2);

    set(json!({"seed": 1, "duplicate": 1.0})).await;
    sb.post("/v1/customers", &[]).await.ok();
    let got = rx.wait_for("a duplicated delivery", |d| d.len() >= 2).await;
    assert_eq!(got[0].body, got[1].body);

    // Reordering holds deliveries back but still delivers them.
    set(json!({"seed": 3, "reorder": 1.0})).await;
    sb.post("/v1/customers", &[]).await.ok();
    rx.wait_for("a held-back delivery", |d| d.len() >= 3).await;

    set(json!({"latency_ms": 30})).await;
    let t = std::time::Instant::now();
    sb.get("/v1/account").await.ok();
    assert!(t.elapsed() >= std::time::Duration::from_millis(30));
    sb.stop().await;
}
