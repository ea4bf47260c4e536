//! Signed notifications to the host: Standard Webhooks headers checked by
//! the `standardwebhooks` reference library, delivered to a receiver that
//! fails the first attempts.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Backend, Obol, Received, TestReceiver};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    notifications_are_signed_retried_and_verifiable,
    a_receiver_that_never_answers_ends_failed_and_can_be_replayed,
    a_delivery_cancelled_while_in_flight_stays_cancelled,
    notification_urls_to_private_addresses_are_refused,
    a_name_resolving_to_a_private_address_is_refused_at_connect,
);

/// A receiver answering 503 to the first `fail_first` requests, and the
/// handle to what it received.
async fn receiver(fail_first: usize) -> (String, TestReceiver) {
    let r = TestReceiver::start(fail_first).await;
    (r.url.clone(), r)
}

/// Asks the reference library whether a received request verifies.
fn verify_with_standardwebhooks(secret: &str, r: &Received) -> Result<String, String> {
    use std::io::Write;
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/.venv/bin/python"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/python/verify_standard_webhook.py"
    );
    let headers: serde_json::Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let input = json!({"secret": secret, "headers": headers, "body": r.body}).to_string();
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the conformance venv exists (scripts/test.sh creates it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

async fn notifications_are_signed_retried_and_verifiable(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "20")
        .start()
        .await;
    let (url, got) = receiver(2).await;
    let (status, endpoint) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": url, "event_types": ["payment.completed"]}),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let ep = endpoint["id"].as_str().unwrap();
    let (_, listed) = obol.get("/v1/webhook-endpoints").await;
    assert!(
        listed["data"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    let (status, one) = obol.get(&format!("/v1/webhook-endpoints/{ep}")).await;
    assert_eq!((status, one["url"].as_str()), (200, Some(url.as_str())));
    assert!(one.get("secret").is_none(), "the secret is shown once");

    let base = sandbox(&obol).await;
    stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "1500"),
            ("currency", "eur"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    let deliveries = eventually(
        &obol,
        &format!("/v1/webhook-endpoints/{ep}/deliveries"),
        |b| {
            b["data"]
                .as_array()
                .is_some_and(|d| d.first().is_some_and(|x| x["status"] == "succeeded"))
        },
    )
    .await;
    let d = &deliveries["data"][0];
    assert_eq!(d["attempts"], 3, "{d}");
    assert_eq!(
        deliveries["data"].as_array().unwrap().len(),
        1,
        "only payment.completed was asked for"
    );

    let received = got.received();
    assert_eq!(received.len(), 3);
    let ids: Vec<&str> = received
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "webhook-id")
                .unwrap()
                .1
                .as_str()
        })
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one webhook-id across retries: {ids:?}"
    );
    assert_eq!(ids[0], d["message_id"].as_str().unwrap());
    for r in &received {
        assert_eq!(
            verify_with_standardwebhooks(&secret, r),
            Ok("payment.completed".to_string())
        );
    }
    let body: Value = serde_json::from_str(&received[2].body).unwrap();
    assert_eq!(body["data"]["payment"]["status"], "completed");
    assert_eq!(body["data"]["payment"]["amount"], 1500);

    // A tampered body or another secret does not verify.
    let mut tampered = received[2].clone();
    tampered.body = tampered.body.replace("1500", "15000");
    assert!(verify_with_standardwebhooks(&secret, &tampered).is_err());
    assert!(
        verify_with_standardwebhooks("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &received[2])
            .is_err()
    );

    // Replay sends it again, same id.
    let (status, replayed) = obol
        .post(
            &format!(
                "/v1/webhook-deliveries/{}/replay",
                d["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{replayed}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.received().len() < 4 {
        assert!(std::time::Instant::now() < deadline, "replay not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, bad) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": "ftp://x", "event_types": ["*"]}),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (422, Some("invalid_url"))
    );
    let (status, bad) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": url, "event_types": ["payment.exploded"]}),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (422, Some("invalid_event_types"))
    );
}

async fn a_receiver_that_never_answers_ends_failed_and_can_be_replayed(backend: Backend) {
    // Unit 0: the whole retry schedule runs at once.
    let obol = Obol::builder(backend)
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "0")
        .start()
        .await;
    let (url, got) = receiver(usize::MAX).await;
    let (_, endpoint) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": url, "event_types": ["*"]}),
        )
        .await;
    let ep = endpoint["id"].as_str().unwrap();
    let base = sandbox(&obol).await;
    stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "900"),
            ("currency", "eur"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    let failed = eventually(
        &obol,
        &format!("/v1/webhook-endpoints/{ep}/deliveries?status=failed"),
        |b| b["data"].as_array().is_some_and(|d| !d.is_empty()),
    )
    .await;
    let d = &failed["data"][0];
    assert_eq!(d["attempts"], 17, "the first attempt and 16 retries: {d}");
    assert_eq!(d["last_status_code"], 503);
    assert!(d["next_attempt_at"].is_null());
    let before = got.received().len();
    let (status, replayed) = obol
        .post(
            &format!(
                "/v1/webhook-deliveries/{}/replay",
                d["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(replayed["status"], "pending");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.received().len() <= before {
        assert!(std::time::Instant::now() < deadline, "replay not attempted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A receiver that holds each request until released: it reports the
/// request on `arrived` and answers 204 once `release` is notified.
async fn holding_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<()>,
    Arc<tokio::sync::Notify>,
) {
    let (arrived_tx, arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move || {
            let arrived_tx = arrived_tx.clone();
            let gate = gate.clone();
            async move {
                let _ = arrived_tx.send(());
                gate.notified().await;
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrived, release)
}

/// Deleting an endpoint cancels its pending deliveries; an attempt already
/// on the wire that finishes afterwards must not bring one back.
async fn a_delivery_cancelled_while_in_flight_stays_cancelled(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "20")
        .start()
        .await;
    let store = obol.db.store().await;
    let (url, mut arrived, release) = holding_receiver().await;
    let (_, endpoint) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": url, "event_types": ["payment.completed"]}),
        )
        .await;
    let ep = endpoint["id"].as_str().unwrap().to_string();
    let base = sandbox(&obol).await;
    stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "1500"),
            ("currency", "eur"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    tokio::time::timeout(Duration::from_secs(20), arrived.recv())
        .await
        .expect("the delivery reached the receiver")
        .unwrap();

    // In flight: the receiver holds the request while the endpoint goes.
    let r = obol
        .http
        .delete(obol.url(&format!("/v1/webhook-endpoints/{ep}")))
        .bearer_auth(&obol.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let status = || async {
        let mut h = store.acquire().await.unwrap();
        let d = h
            .conn()
            .list_deliveries(&obol::context::AccountId::platform(), &ep, None, 10)
            .await
            .unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        d[0].status.as_str()
    };
    assert_eq!(status().await, "canceled");

    // The receiver answers 204 now; the dispatcher's attempt ends. Wait for
    // its outcome (logged when it finds the delivery changed, or written).
    release.notify_one();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = status().await;
        if now != "canceled" || obol.output().contains("changed while it was in flight") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the attempt never finished:\n{}",
            obol.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status().await,
        "canceled",
        "the late attempt overwrote the cancellation"
    );
}

/// obol with the outbound-URL rule in force: sandbox mode allows private
/// targets by default, an explicit `false` enforces the rule anyway.
async fn strict_obol(backend: Backend) -> Obol {
    Obol::builder(backend)
        .env("OBOL_NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "false")
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "0")
        .start()
        .await
}

/// Finding 3: the secret key could point notifications at obol's own
/// network (loopback, cloud metadata, private ranges), with userinfo
/// forwarded as Basic auth. Each is refused at creation, nothing stored.
async fn notification_urls_to_private_addresses_are_refused(backend: Backend) {
    let obol = strict_obol(backend).await;
    for url in [
        "http://127.0.0.1:9/hooks",
        "http://localhost:9/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hooks",
        "http://[::1]:9/hooks",
        "http://[fd00::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://user:pass@example.com/hooks",
    ] {
        let (status, body) = obol
            .post(
                "/v1/webhook-endpoints",
                json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("url_not_allowed")),
            "{url}: {body}"
        );
        assert!(
            !body.to_string().contains("pass@"),
            "the password is echoed: {body}"
        );
    }
    let (_, list) = obol.get("/v1/webhook-endpoints").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
    // A public name is still accepted (it is checked again at connect).
    let (status, body) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": "https://shop.example.com/hooks", "event_types": ["*"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Finding 3, at connect time: endpoints whose URL passed creation (stored
/// before the rule, or a name that rebinds later) are checked again when
/// obol connects. `localhost` resolves to loopback and is refused after
/// DNS; an IP literal before the send. Nothing reaches the receiver (all
/// on loopback), and each delivery fails after one attempt, not after
/// the whole retry schedule.
async fn a_name_resolving_to_a_private_address_is_refused_at_connect(backend: Backend) {
    let obol = strict_obol(backend).await;
    let receiver = crate::helpers::TestReceiver::start(0).await;
    let port = receiver.url.split(':').nth(2).unwrap().to_string();
    let by_name = format!("http://localhost:{port}");
    let store = obol.db.store().await;
    let account = obol::context::AccountId::platform();
    {
        let mut h = store.acquire().await.unwrap();
        for (id, url) in [
            ("ep_01jzzzzzzzzzzzzzzzzzzzzzz1", by_name.clone()),
            ("ep_01jzzzzzzzzzzzzzzzzzzzzzz2", receiver.url.clone()),
        ] {
            h.conn()
                .insert_endpoint(&obol::storage::notifications::NewEndpoint {
                    account: &account,
                    id,
                    url: &url,
                    event_types: &["*".to_string()],
                    secret: &obol::outbox::new_secret(),
                    description: None,
                    now: obol::storage::now(),
                })
                .await
                .unwrap();
        }
    }
    let base = sandbox(&obol).await;
    stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "1500"),
            ("currency", "eur"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    for (ep, expected) in [
        (
            "ep_01jzzzzzzzzzzzzzzzzzzzzzz1",
            "refused at connect: localhost",
        ),
        ("ep_01jzzzzzzzzzzzzzzzzzzzzzz2", "refused before connecting"),
    ] {
        let done = eventually(
            &obol,
            &format!("/v1/webhook-endpoints/{ep}/deliveries"),
            |b| {
                b["data"]
                    .as_array()
                    .is_some_and(|d| !d.is_empty() && d.iter().all(|x| x["status"] != "pending"))
            },
        )
        .await;
        for d in done["data"].as_array().unwrap() {
            assert_eq!(d["status"], "failed", "{ep}: {d}");
            assert_eq!(d["attempts"], 1, "{ep}: not retried: {d}");
            let error = d["last_error"].as_str().unwrap_or_default();
            assert!(error.contains(expected), "{ep}: {d}");
        }
    }
    assert!(
        receiver.received().is_empty(),
        "a request reached the receiver: {:?}",
        receiver.received()
    );
}
