//! Stripe's refusals as obol's callers see them: a charge below Stripe's
//! minimum is refused before Stripe is asked, a refused parameter or
//! state is a 4xx with a stable code, a reused `Idempotency-Key` is 409,
//! and no body names obol's internal idempotency keys.

use serde_json::{json, Value};

use crate::checkout::authorize;
use crate::helpers::{Backend, Obol};
use crate::inbox::{sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    an_amount_below_stripes_minimum_is_422_amount_too_small,
    a_reused_idempotency_key_with_another_body_is_409_without_internal_names,
    stripe_invalid_request_errors_are_4xx_with_a_stable_code,
);

fn order(currency: &str, unit_amount: i64) -> Value {
    json!({
        "email": "ana@example.com", "currency": currency,
        "line_items": [{"name": "Sticker", "unit_amount": unit_amount, "quantity": 1}]
    })
}

/// No body may carry obol's internal idempotency keys or Stripe's text
/// about them.
fn assert_no_internal_names(body: &Value) {
    let text = body.to_string();
    for needle in ["obol-", "Keys for idempotent", "key other than"] {
        assert!(!text.contains(needle), "{needle:?} in {text}");
    }
}

async fn an_amount_below_stripes_minimum_is_422_amount_too_small(backend: Backend) {
    let obol = Obol::start(backend).await;
    // Stripe's minimums: 0.50 EUR, 0.50 USD, ¥50.
    for (currency, minimum) in [("eur", 50), ("usd", 50), ("jpy", 50)] {
        let (status, body) = obol.post("/v1/orders", order(currency, minimum - 1)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("amount_too_small")),
            "order in {currency}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&minimum.to_string()), "{message}");

        let (status, body) = obol
            .post(
                "/v1/payment-intents",
                json!({"amount": minimum - 1, "currency": currency}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("amount_too_small")),
            "pay-first intent in {currency}: {body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&minimum.to_string()));

        // The minimum itself is fine, and its order can be paid.
        let (status, created) = obol.post("/v1/orders", order(currency, minimum)).await;
        assert_eq!(status, 201, "{created}");
        let (status, intent) = obol
            .post("/v1/payment-intents", json!({"order_id": created["id"]}))
            .await;
        assert_eq!(status, 201, "{intent}");
        let (status, intent) = obol
            .post(
                "/v1/payment-intents",
                json!({"amount": minimum, "currency": currency}),
            )
            .await;
        assert_eq!(status, 201, "{intent}");
    }
    let (_, payments) = obol.get("/v1/payments").await;
    assert_eq!(payments["data"].as_array().unwrap().len(), 6, "{payments}");
}

async fn a_reused_idempotency_key_with_another_body_is_409_without_internal_names(
    backend: Backend,
) {
    let obol = Obol::start(backend).await;
    let send = |amount: i64| {
        let obol = &obol;
        async move {
            let r = obol
                .http
                .post(obol.url("/v1/payment-intents"))
                .bearer_auth(&obol.api_key)
                .header("Idempotency-Key", "checkout-42")
                .json(&json!({"amount": amount, "currency": "eur"}))
                .send()
                .await
                .unwrap();
            crate::helpers::status_json(r).await
        }
    };
    let (status, first) = send(4999).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = send(4999).await;
    assert_eq!((status, &again["id"]), (201, &first["id"]), "{again}");

    let (status, other) = send(5999).await;
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused")),
        "{other}"
    );
    assert_no_internal_names(&other);
}

/// A refusal of the caller's request (here: releasing an authorization
/// Stripe has captured meanwhile, which obol has not heard of because
/// every webhook is dropped) is a 4xx with Stripe's code, not a 502.
async fn stripe_invalid_request_errors_are_4xx_with_a_stable_code(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_SANDBOX__CHAOS", "seed=7,drop=1")
        .start()
        .await;
    let pi = authorize(&obol, 4999).await;
    let base = sandbox(&obol).await;
    let captured = stripe_post(&base, &format!("/v1/payment_intents/{pi}/capture"), &[]).await;
    assert_eq!(captured["status"], "succeeded", "{captured}");

    let (status, body) = obol
        .post(
            &format!("/v1/payment-intents/{pi}/release"),
            json!({"reason": "insufficient_stock"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("stripe_invalid_request")),
        "{body}"
    );
    assert_eq!(body["error"]["stripe"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["stripe"]["code"],
        "payment_intent_unexpected_state"
    );
    assert_no_internal_names(&body);
}
