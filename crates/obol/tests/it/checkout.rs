//! Pay-first checkout over HTTP against the sandbox: authorize, create the
//! order with the payment reference, capture on the chosen status, release
//! when checkout fails.

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    pay_first_captures_when_the_order_is_confirmed,
    pay_first_captures_on_shipped_once_under_concurrent_patches,
    a_mismatched_or_reused_reference_creates_nothing,
    a_failed_checkout_releases_the_authorization_without_a_refund,
    pay_first_amounts_follow_currency_rules,
    a_release_while_stripe_is_down_is_queued_and_done_later,
);

fn order_body(pi: &str) -> Value {
    json!({
        "email": "ana@example.com", "currency": "eur",
        "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 2}],
        "shipping": {"name": "Standard", "amount": 999},
        "payment_reference": pi
    })
}

/// Authorizes 49.99 EUR the way the shop's page would: obol creates the
/// intent, the customer's card confirms it.
pub async fn authorize(obol: &Obol, amount: i64) -> String {
    let (status, pi) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": amount, "currency": "eur"}),
        )
        .await;
    assert_eq!(status, 201, "{pi}");
    assert!(pi["client_secret"].as_str().unwrap().contains("_secret_"));
    assert!(pi["publishable_key"]
        .as_str()
        .unwrap()
        .starts_with("pk_test_"));
    let id = pi["id"].as_str().unwrap().to_string();
    let base = sandbox(obol).await;
    let confirmed = stripe_post(
        &base,
        &format!("/v1/payment_intents/{id}/confirm"),
        &[
            ("payment_method", "pm_card_visa"),
            ("return_url", "https://shop.example.com/return"),
        ],
    )
    .await;
    assert_eq!(confirmed["status"], "requires_capture", "{confirmed}");
    assert_eq!(confirmed["metadata"]["obol_mode"], "pre_order");
    assert_eq!(confirmed["capture_method"], "manual");
    id
}

pub async fn intent(obol: &Obol, id: &str) -> Value {
    let base = sandbox(obol).await;
    reqwest::Client::new()
        .get(format!("{base}/v1/payment_intents/{id}"))
        .bearer_auth("sk_test_obol_checkout")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn pay_first_captures_when_the_order_is_confirmed(backend: Backend) {
    let obol = Obol::start(backend).await;
    let pi = authorize(&obol, 4999).await;
    let (status, order) = obol.post("/v1/orders", order_body(&pi)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["payment_reference"], pi.as_str());
    let payment_id = order["payment_id"].as_str().unwrap();
    let p = eventually(&obol, &format!("/v1/payments/{payment_id}"), |b| {
        b["status"] == "completed"
    })
    .await;
    assert_eq!(p["order_id"], order["id"]);
    assert_eq!(intent(&obol, &pi).await["status"], "succeeded");
    let tos: Vec<&str> = p["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert!(
        tos.contains(&"authorized") && tos.last() == Some(&"completed"),
        "{tos:?}"
    );
}

async fn pay_first_captures_on_shipped_once_under_concurrent_patches(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_CHECKOUT__CAPTURE_ON", "shipped")
        .start()
        .await;
    let pi = authorize(&obol, 4999).await;
    let (_, order) = obol.post("/v1/orders", order_body(&pi)).await;
    let id = order["id"].as_str().unwrap().to_string();
    let payment_id = order["payment_id"].as_str().unwrap().to_string();
    let (_, p) = obol.get(&format!("/v1/payments/{payment_id}")).await;
    assert_eq!(p["status"], "authorized", "not captured at confirmation");
    // Authorizations lapse after 7 days; obol lists those close to it.
    let expires: chrono::DateTime<chrono::Utc> = p["authorization_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let days = (expires - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "{days} h");
    let soon = |d: i64| {
        (chrono::Utc::now() + chrono::Duration::days(d))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let (_, later) = obol
        .get(&format!("/v1/payments?expiring_before={}", soon(8)))
        .await;
    assert!(
        later["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == payment_id.as_str()),
        "{later}"
    );
    let (_, earlier) = obol
        .get(&format!("/v1/payments?expiring_before={}", soon(6)))
        .await;
    assert!(earlier["data"].as_array().unwrap().is_empty(), "{earlier}");

    let mut tasks = Vec::new();
    for _ in 0..4 {
        let http = obol.http.clone();
        let url = obol.url(&format!("/v1/orders/{id}"));
        let key = obol.api_key.clone();
        tasks.push(tokio::spawn(async move {
            let r = http
                .patch(url)
                .bearer_auth(key)
                .json(&json!({"status": "shipped"}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(
            status == 200 || (status == 409 && body["error"]["code"] == "order_changed"),
            "{status} {body}"
        );
    }
    let (_, o) = obol.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(o["status"], "shipped");
    let pi_now = intent(&obol, &pi).await;
    assert_eq!(pi_now["status"], "succeeded");
    assert_eq!(pi_now["amount_received"], 4999, "captured once, in full");
    eventually(&obol, &format!("/v1/payments/{payment_id}"), |b| {
        b["status"] == "completed"
    })
    .await;
}

async fn a_mismatched_or_reused_reference_creates_nothing(backend: Backend) {
    let obol = Obol::start(backend).await;
    let pi = authorize(&obol, 5000).await;
    let (status, body) = obol.post("/v1/orders", order_body(&pi)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("amount_mismatch")),
        "{body}"
    );
    assert_eq!(
        intent(&obol, &pi).await["status"],
        "requires_capture",
        "nothing captured"
    );
    let (_, payments) = obol.get("/v1/payments").await;
    assert!(
        payments["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["order_id"].is_null()),
        "no order linked"
    );

    let good = authorize(&obol, 4999).await;
    let (status, _) = obol.post("/v1/orders", order_body(&good)).await;
    assert_eq!(status, 201);
    let (status, body) = obol.post("/v1/orders", order_body(&good)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("payment_reference_in_use")),
        "{body}"
    );
    let (status, body) = obol.post("/v1/orders", order_body("pi_doesnotexist")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_payment_reference")),
        "{body}"
    );
    // Ana's authorization cannot pay Bob's order.
    let ana = obol.create_customer("ana").await;
    let bob = obol.create_customer("bob").await;
    let (_, ana_pi) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 4999, "currency": "eur", "customer_id": ana["id"]}),
        )
        .await;
    let ana_pi = ana_pi["id"].as_str().unwrap();
    stripe_post(
        &sandbox(&obol).await,
        &format!("/v1/payment_intents/{ana_pi}/confirm"),
        &[
            ("payment_method", "pm_card_visa"),
            ("return_url", "https://shop.example.com/return"),
        ],
    )
    .await;
    let mut for_bob = order_body(ana_pi);
    for_bob["customer_id"] = bob["id"].clone();
    let (status, body) = obol.post("/v1/orders", for_bob).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        // Answered like an unknown intent (order_input.rs pins that).
        (422, Some("invalid_payment_reference")),
        "{body}"
    );

    // Created but never authorized.
    let (_, fresh) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 4999, "currency": "eur"}),
        )
        .await;
    let (status, body) = obol
        .post("/v1/orders", order_body(fresh["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("payment_not_authorized")),
        "{body}"
    );
}

async fn a_failed_checkout_releases_the_authorization_without_a_refund(backend: Backend) {
    let obol = Obol::start(backend).await;
    let pi = authorize(&obol, 2500).await;
    let (status, body) = obol
        .post(
            &format!("/v1/payment-intents/{pi}/release"),
            json!({"reason": "insufficient_stock"}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("canceled")),
        "{body}"
    );
    let now = intent(&obol, &pi).await;
    assert_eq!(now["status"], "canceled");
    assert_eq!(
        now["amount_received"], 0,
        "nothing was captured, so nothing to refund"
    );
    let p = eventually(
        &obol,
        &format!("/v1/payments/{}", body["payment_id"].as_str().unwrap()),
        |b| b["status"] == "canceled",
    )
    .await;
    assert_eq!(p["amount_refunded"], 0);
    // Releasing again is harmless.
    let (status, again) = obol
        .post(
            &format!("/v1/payment-intents/{pi}/release"),
            json!({"reason": "insufficient_stock"}),
        )
        .await;
    assert_eq!((status, again["status"].as_str()), (200, Some("canceled")));

    // An order cancelled before capture releases its authorization too.
    let obol2 = Obol::builder(backend)
        .env("OBOL_CHECKOUT__CAPTURE_ON", "shipped")
        .start()
        .await;
    let pi2 = authorize(&obol2, 4999).await;
    let (_, order) = obol2.post("/v1/orders", order_body(&pi2)).await;
    let r = obol2
        .http
        .patch(obol2.url(&format!("/v1/orders/{}", order["id"].as_str().unwrap())))
        .bearer_auth(&obol2.api_key)
        .json(&json!({"status": "cancelled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(intent(&obol2, &pi2).await["status"], "canceled");
}

async fn pay_first_amounts_follow_currency_rules(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (status, jpy) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 5000, "currency": "jpy"}),
        )
        .await;
    assert_eq!(
        (status, jpy["amount"].as_i64(), jpy["currency"].as_str()),
        (201, Some(5000), Some("jpy")),
        "{jpy}"
    );
    assert_eq!(
        intent(&obol, jpy["id"].as_str().unwrap()).await["amount"],
        5000,
        "¥5000 is 5000, not ×100"
    );
    let (status, kwd) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 1230, "currency": "KWD"}),
        )
        .await;
    assert_eq!(status, 201, "{kwd}");
    for (body, code) in [
        (
            json!({"amount": 1235, "currency": "kwd"}),
            "amount_precision",
        ),
        (
            json!({"amount": 0, "currency": "eur"}),
            "amount_not_positive",
        ),
        (
            json!({"amount": -10, "currency": "jpy"}),
            "amount_not_positive",
        ),
        (
            json!({"amount": 100, "currency": "xxx"}),
            "currency_unsupported",
        ),
        (
            json!({"amount": 100_000_000, "currency": "eur"}),
            "amount_too_large",
        ),
    ] {
        let (status, b) = obol.post("/v1/payment-intents", body.clone()).await;
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (422, Some(code)),
            "{body} -> {b}"
        );
    }
}

async fn a_release_while_stripe_is_down_is_queued_and_done_later(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_STRIPE__MAX_ATTEMPTS", "2")
        .env("OBOL_RECONCILE__INTERVAL_SECONDS", "0")
        .start()
        .await;
    let pi = authorize(&obol, 3000).await;
    let base = sandbox(&obol).await;
    let chaos = |api_5xx: f64| {
        reqwest::Client::new()
            .post(format!("{base}/_sandbox/chaos"))
            .json(&json!({"seed": 1, "api_5xx": api_5xx}))
            .send()
    };
    assert!(chaos(1.0).await.unwrap().status().is_success());
    let started = std::time::Instant::now();
    let (status, body) = obol
        .post(
            &format!("/v1/payment-intents/{pi}/release"),
            json!({"reason": "address_rejected"}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancel_pending")),
        "{body}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "answered at once"
    );
    assert!(chaos(0.0).await.unwrap().status().is_success());
    // The release_authorization job retries it once Stripe answers; a
    // reconciliation pass makes a queued retry due at once.
    let (_, report) = obol.post("/v1/reconciliations", json!({})).await;
    assert!(
        report["releases_retried"].as_u64().unwrap() <= 1,
        "{report}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while intent(&obol, &pi).await["status"] != "canceled" {
        assert!(
            std::time::Instant::now() < deadline,
            "the release never happened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    eventually(
        &obol,
        &format!("/v1/payments/{}", body["payment_id"].as_str().unwrap()),
        |p| p["status"] == "canceled",
    )
    .await;
    let (_, again) = obol.post("/v1/reconciliations", json!({})).await;
    assert_eq!(again["releases_retried"], 0, "{again}");
}
