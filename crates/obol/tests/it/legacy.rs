//! Paying an existing order (the order-first flow): one intent per order,
//! the webhook confirms the order, a decline leaves it pending, 3-D Secure
//! completes after the sandbox's challenge.

use serde_json::{json, Value};

use crate::helpers::{status_json, Backend, Obol};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    a_guest_pays_an_order_and_the_webhook_confirms_it,
    a_declined_card_leaves_the_order_pending_for_another_try,
    three_d_secure_completes_after_the_challenge,
);

/// A guest order of 49.99 EUR; returns (order id, guest token).
async fn guest_order(obol: &Obol) -> (String, String) {
    let (status, order) = obol
        .post(
            "/v1/orders",
            json!({"email": "guest@example.com", "currency": "eur",
                "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 2}],
                "shipping": {"name": "Standard", "amount": 999},
                "billing_address": {"email": "billing@example.com", "country": "DE"}}),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    (
        order["id"].as_str().unwrap().to_string(),
        order["guest_token"].as_str().unwrap().to_string(),
    )
}

/// The guest's browser asks obol for the order's intent (no API key).
async fn intent_for(obol: &Obol, order: &str, guest: &str) -> (u16, Value) {
    let r = obol
        .http
        .post(obol.url("/v1/payment-intents"))
        .json(&json!({"order_id": order, "guest_token": guest}))
        .send()
        .await
        .unwrap();
    status_json(r).await
}

async fn confirm(obol: &Obol, pi: &str, card: &str) -> Value {
    stripe_post(
        &sandbox(obol).await,
        &format!("/v1/payment_intents/{pi}/confirm"),
        &[
            ("payment_method", card),
            ("return_url", "https://shop.example.com/return"),
        ],
    )
    .await
}

async fn order_status(obol: &Obol, order: &str, guest: &str) -> Value {
    let r = obol
        .http
        .get(obol.url(&format!("/v1/orders/{order}")))
        .header("x-guest-token", guest)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

async fn a_guest_pays_an_order_and_the_webhook_confirms_it(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (order, guest) = guest_order(&obol).await;
    let (status, pi) = intent_for(&obol, &order, &guest).await;
    assert_eq!(status, 201, "{pi}");
    assert_eq!(pi["amount"], 4999, "the server's own total");
    let id = pi["id"].as_str().unwrap();
    let (status, again) = intent_for(&obol, &order, &guest).await;
    assert_eq!(
        (status, again["id"].as_str()),
        (200, Some(id)),
        "one open intent per order"
    );

    let (_, other_guest) = guest_order(&obol).await;
    let (status, _) = intent_for(&obol, &order, &other_guest).await;
    assert_eq!(status, 404, "someone else's order");
    let r = obol
        .http
        .post(obol.url("/v1/payment-intents"))
        .json(&json!({"order_id": order}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no credential at all");

    let done = confirm(&obol, id, "pm_card_visa").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["metadata"]["obol_order_id"], order.as_str());
    assert!(done["description"]
        .as_str()
        .unwrap()
        .starts_with("Order ORD-"));
    assert_eq!(done["receipt_email"], "billing@example.com");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while order_status(&obol, &order, &guest).await["status"] != "confirmed" {
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook never confirmed the order"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = obol
        .http
        .get(obol.url(&format!("/v1/payment-intents/{id}/status")))
        .header("x-guest-token", &guest)
        .send()
        .await
        .unwrap();
    let (status, st) = status_json(r).await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(
        (st["stripe_status"].as_str(), st["payment_status"].as_str()),
        (Some("succeeded"), Some("completed"))
    );
    let r = obol
        .http
        .get(obol.url(&format!("/v1/payment-intents/{id}/status")))
        .header("x-guest-token", &other_guest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (status, body) = intent_for(&obol, &order, &guest).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("order_not_payable"))
    );
}

async fn a_declined_card_leaves_the_order_pending_for_another_try(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (order, guest) = guest_order(&obol).await;
    let (_, pi) = intent_for(&obol, &order, &guest).await;
    let id = pi["id"].as_str().unwrap();
    let declined = confirm(&obol, id, "pm_card_visa_chargeDeclinedInsufficientFunds").await;
    assert_eq!(
        declined["error"]["decline_code"], "insufficient_funds",
        "{declined}"
    );
    let payment = pi["payment_id"].as_str().unwrap();
    eventually(&obol, &format!("/v1/payments/{payment}"), |b| {
        b["status"] == "failed"
    })
    .await;
    assert_eq!(
        order_status(&obol, &order, &guest).await["status"],
        "pending"
    );
    // Another try on the same intent.
    let (status, same) = intent_for(&obol, &order, &guest).await;
    assert_eq!((status, same["id"].as_str()), (200, Some(id)));
    assert_eq!(
        confirm(&obol, id, "pm_card_visa").await["status"],
        "succeeded"
    );
    eventually(&obol, &format!("/v1/payments/{payment}"), |b| {
        b["status"] == "completed"
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while order_status(&obol, &order, &guest).await["status"] != "confirmed" {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn three_d_secure_completes_after_the_challenge(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (order, guest) = guest_order(&obol).await;
    let (_, pi) = intent_for(&obol, &order, &guest).await;
    let id = pi["id"].as_str().unwrap();
    let pending = confirm(&obol, id, "pm_card_threeDSecure2Required").await;
    assert_eq!(pending["status"], "requires_action", "{pending}");
    let payment = pi["payment_id"].as_str().unwrap();
    eventually(&obol, &format!("/v1/payments/{payment}"), |b| {
        b["status"] == "requires_action"
    })
    .await;
    assert_eq!(
        order_status(&obol, &order, &guest).await["status"],
        "pending"
    );

    // The customer opens the bank's page and completes the challenge.
    let url = pending["next_action"]["redirect_to_url"]["url"]
        .as_str()
        .unwrap();
    let page = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"complete\""), "{page}");
    let token = url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();
    let base = sandbox(&obol).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .post(format!("{base}/_sandbox/3ds/{id}"))
        .form(&[("token", token.as_str()), ("action", "complete")])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_redirection() || r.status().is_success(),
        "{}",
        r.status()
    );
    eventually(&obol, &format!("/v1/payments/{payment}"), |b| {
        b["status"] == "completed"
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while order_status(&obol, &order, &guest).await["status"] != "confirmed" {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
