use std::time::Duration;

use hmac::{Hmac, Mac};
use obol_sandbox::SandboxDb;
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::*;

/// Verifies a `Stripe-Signature` header the way Stripe's SDKs do.
fn verify(secret: &str, header: &str, body: &str) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_string()),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - t.parse::<i64>().unwrap()).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    sigs.contains(&expected)
}

#[tokio::test]
async fn deliveries_are_signed_and_filtered_by_enabled_events() {
    let sb = spawn().await;
    let all = Receiver::start(0).await;
    let some = Receiver::start(0).await;
    let we = sb
        .post(
            "/v1/webhook_endpoints",
            &[("url", &all.url), ("enabled_events[]", "*")],
        )
        .await
        .ok();
    let secret = we["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert!(we["id"].as_str().unwrap().starts_with("we_"));
    let we2 = sb
        .post(
            "/v1/webhook_endpoints",
            &[
                ("url", &some.url),
                ("enabled_events[]", "payment_intent.succeeded"),
                ("enabled_events[]", "charge.refunded"),
            ],
        )
        .await
        .ok();
    // The secret is shown on create only.
    let fetched = sb
        .get(&format!(
            "/v1/webhook_endpoints/{}",
            we["id"].as_str().unwrap()
        ))
        .await
        .ok();
    assert!(fetched.get("secret").is_none());
    assert_eq!(
        sb.get("/v1/webhook_endpoints").await.ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let pi = sb.pay("1000", "pm_card_visa", &[]).await.ok();
    sb.post(
        "/v1/refunds",
        &[("payment_intent", pi["id"].as_str().unwrap())],
    )
    .await
    .ok();
    let got = all.wait_for("5 events", |d| d.len() >= 5).await;
    for d in &got {
        assert!(
            verify(&secret, &d.signature, &d.body),
            "bad signature {}",
            d.signature
        );
        assert!(!verify("whsec_wrong", &d.signature, &d.body));
        let ev: Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(ev["object"], "event");
        assert!(ev["pending_webhooks"].as_i64().unwrap() >= 1);
    }
    let mut types = all.event_types();
    types.sort();
    assert_eq!(
        types,
        [
            "charge.refunded",
            "charge.succeeded",
            "payment_intent.created",
            "payment_intent.succeeded",
            "refund.created"
        ]
    );
    let got2 = some.wait_for("2 events", |d| d.len() >= 2).await;
    assert_eq!(got2.len(), 2);
    let secret2 = we2["secret"].as_str().unwrap();
    assert!(got2.iter().all(|d| verify(secret2, &d.signature, &d.body)));

    // Deleted endpoints get nothing more.
    sb.delete(&format!(
        "/v1/webhook_endpoints/{}",
        we2["id"].as_str().unwrap()
    ))
    .await
    .ok();
    sb.pay("1000", "pm_card_visa", &[]).await.ok();
    all.wait_for("8 events", |d| d.len() >= 8).await;
    // Absence is asserted once the sandbox has nothing left to deliver
    // (no delivery pending), not after a guessed pause.
    let stats = eventually("every delivery made", || async {
        let s = sb.stats().await;
        (s["deliveries"]["pending"] == 0).then_some(s)
    })
    .await;
    assert_eq!(some.deliveries().len(), 2);
    assert_eq!(stats["deliveries"]["succeeded"], 10);
    sb.stop().await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff() {
    let sb = spawn().await;
    let rx = Receiver::start(3).await;
    sb.post(
        "/v1/webhook_endpoints",
        &[("url", &rx.url), ("enabled_events[]", "customer.created")],
    )
    .await
    .ok();
    sb.post("/v1/customers", &[]).await.ok();
    let got = rx.wait_for("the retried event", |d| !d.is_empty()).await;
    assert_eq!(got.len(), 1);
    let stats = sb.stats().await;
    assert_eq!(stats["deliveries"]["attempted"], 4);
    assert_eq!(stats["deliveries"]["succeeded"], 1);
    // Each attempt is signed afresh, and the event kept its id.
    let ev: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(
        sb.get(&format!("/v1/events/{}", ev["id"].as_str().unwrap()))
            .await
            .ok(),
        ev
    );
    sb.stop().await;
}

#[tokio::test]
async fn pending_deliveries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sandbox.sqlite");
    let mut cfg = config();
    cfg.db = SandboxDb::File(db.clone());
    cfg.webhook_retry_base = Duration::from_millis(100);
    let sb = spawn_with(cfg.clone()).await;
    let acct = sb.get("/v1/account").await.ok()["id"].clone();
    // Reserve a port, then free it so the first attempts fail.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    sb.post(
        "/v1/webhook_endpoints",
        &[
            ("url", &format!("http://{addr}/hook")),
            ("enabled_events[]", "*"),
        ],
    )
    .await
    .ok();
    let cus = sb.post("/v1/customers", &[]).await.id();
    // Stop once the first attempt has failed (a retry is pending), so the
    // restart must pick the retry up.
    eventually("the first attempt", || async {
        let s = sb.stats().await;
        (s["deliveries"]["attempted"].as_i64() >= Some(1) && s["deliveries"]["pending"] == 1)
            .then_some(())
    })
    .await;
    sb.stop().await;

    let sb = spawn_with(cfg).await;
    assert_eq!(sb.get("/v1/account").await.ok()["id"], acct);
    assert_eq!(
        sb.get(&format!("/v1/customers/{cus}")).await.ok()["id"],
        cus.as_str()
    );
    let rx = Receiver::start_on(addr, 0).await;
    let got = rx
        .wait_for("the delivery after restart", |d| !d.is_empty())
        .await;
    let ev: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(ev["data"]["object"]["id"], cus.as_str());
    sb.stop().await;
}

#[tokio::test]
async fn webhook_endpoint_validation_and_update() {
    let sb = spawn().await;
    assert_eq!(
        sb.post("/v1/webhook_endpoints", &[("url", "ftp://x")])
            .await
            .status,
        400
    );
    assert_eq!(
        sb.post("/v1/webhook_endpoints", &[("url", "https://x.test/h")])
            .await
            .status,
        400
    );
    let we = sb
        .post(
            "/v1/webhook_endpoints",
            &[
                ("url", "https://x.test/h"),
                ("enabled_events[]", "charge.succeeded"),
            ],
        )
        .await
        .ok();
    let id = we["id"].as_str().unwrap();
    let up = sb
        .post(
            &format!("/v1/webhook_endpoints/{id}"),
            &[("disabled", "true"), ("enabled_events[]", "*")],
        )
        .await
        .ok();
    assert_eq!(up["status"], "disabled");
    assert_eq!(up["enabled_events"], serde_json::json!(["*"]));
    let del = sb.delete(&format!("/v1/webhook_endpoints/{id}")).await.ok();
    assert_eq!(del["deleted"], true);
    assert_eq!(
        sb.get(&format!("/v1/webhook_endpoints/{id}")).await.status,
        404
    );
    sb.stop().await;
}

/// A slow receiver and a backlog: the sandbox keeps at most 32 deliveries
/// in flight (as Stripe does not open a connection per pending event), and
/// every event still arrives.
#[tokio::test]
async fn a_backlog_is_delivered_with_bounded_concurrency() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Slow {
        now: Arc<AtomicUsize>,
        max: Arc<AtomicUsize>,
        done: Arc<AtomicUsize>,
    }
    async fn hook(axum::extract::State(s): axum::extract::State<Slow>) -> &'static str {
        let n = s.now.fetch_add(1, Ordering::SeqCst) + 1;
        s.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        s.now.fetch_sub(1, Ordering::SeqCst);
        s.done.fetch_add(1, Ordering::SeqCst);
        "ok"
    }
    let slow = Slow::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(slow.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let sb = spawn().await;
    sb.post(
        "/v1/webhook_endpoints",
        &[("url", &url), ("enabled_events[]", "customer.created")],
    )
    .await
    .ok();
    for _ in 0..120 {
        sb.post("/v1/customers", &[]).await.ok();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while slow.done.load(Ordering::SeqCst) < 120 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 120 deliveries arrived",
            slow.done.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let max = slow.max.load(Ordering::SeqCst);
    assert!(
        (2..=32).contains(&max),
        "{max} deliveries were in flight at once"
    );
}
