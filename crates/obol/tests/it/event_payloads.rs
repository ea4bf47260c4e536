//! Signed Stripe events whose payload obol must not apply: money that
//! breaks the API's rules, and bodies that can never be read. A valid
//! signature proves who sent an event, not that its numbers are sane.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};
use crate::inbox::eventually;
use crate::on_both_backends;

on_both_backends!(
    a_signed_event_with_a_negative_amount_or_unknown_currency_is_ignored_not_applied,
    an_event_that_can_never_apply_is_ignored_not_retried_forever,
);

const SECRET: &str = "whsec_obol_test_event_payloads";

async fn start(backend: Backend) -> Obol {
    Obol::builder(backend)
        .env("OBOL_STRIPE__WEBHOOK_SECRETS", SECRET)
        .start()
        .await
}

/// Delivers `body` signed with the configured secret; (status, body).
async fn deliver(obol: &Obol, body: &str) -> (u16, Value) {
    let now = chrono::Utc::now().timestamp();
    let sig = obol::stripe::signature::sign(body.as_bytes(), &SECRET.to_string().into(), now);
    let r = obol
        .http
        .post(obol.url("/webhooks/stripe"))
        .header("stripe-signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    crate::helpers::status_json(r).await
}

fn event(id: &str, kind: &str, object: Value) -> String {
    json!({"id": id, "object": "event", "type": kind, "created": chrono::Utc::now().timestamp(),
        "livemode": false, "api_version": "2023-08-16", "data": {"object": object}})
    .to_string()
}

fn intent(id: &str, amount: Value, currency: &str) -> Value {
    json!({"id": id, "object": "payment_intent", "amount": amount, "currency": currency,
        "status": "succeeded", "amount_received": amount, "last_payment_error": null, "metadata": {}})
}

/// Every listed event ends `ignored` with a reason, once (no retry).
async fn assert_all_ignored(obol: &Obol, ids: &[String]) {
    let list = eventually(obol, "/v1/webhook-events?limit=100", |b| {
        b["data"]
            .as_array()
            .is_some_and(|d| d.len() == ids.len() && d.iter().all(|e| e["status"] != "received"))
    })
    .await;
    // Long enough for the worker's first retry (1 s) to have happened.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, again) = obol.get("/v1/webhook-events?limit=100").await;
    assert_eq!(list["data"].as_array().unwrap().len(), ids.len(), "{list}");
    for id in ids {
        let row = again["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["stripe_event_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not stored: {again}"));
        assert_eq!(row["status"], "ignored", "{row}");
        assert!(
            !row["reason"].as_str().unwrap_or_default().is_empty(),
            "{row}"
        );
        assert!(row["attempts"].as_i64().unwrap() <= 1, "{row}");
        assert_eq!(row["next_attempt_at"], Value::Null, "{row}");
    }
}

async fn a_signed_event_with_a_negative_amount_or_unknown_currency_is_ignored_not_applied(
    backend: Backend,
) {
    let obol = start(backend).await;
    let charge = |amount: i64, refunded: i64, currency: &str| {
        json!({"id": "ch_bad", "object": "charge", "payment_intent": "pi_bad_charge", "captured": true,
            "amount": amount, "amount_captured": amount, "amount_refunded": refunded, "currency": currency})
    };
    let cases = [
        event(
            "evt_neg_xxx",
            "payment_intent.succeeded",
            intent("pi_neg_xxx", json!(-5000), "xxx"),
        ),
        event(
            "evt_neg_eur",
            "payment_intent.succeeded",
            intent("pi_neg_eur", json!(-5000), "eur"),
        ),
        event(
            "evt_xxx",
            "payment_intent.succeeded",
            intent("pi_xxx", json!(5000), "xxx"),
        ),
        event(
            "evt_charge_neg",
            "charge.refunded",
            charge(5000, -100, "eur"),
        ),
        event(
            "evt_charge_xxx",
            "charge.refunded",
            charge(5000, 100, "xxx"),
        ),
        event(
            "evt_refund_neg",
            "refund.created",
            json!({"id": "re_bad", "object": "refund",
            "amount": -100, "currency": "eur", "status": "succeeded", "payment_intent": "pi_neg_eur"}),
        ),
        event(
            "evt_dispute_xxx",
            "charge.dispute.created",
            json!({"id": "dp_bad", "object": "dispute",
            "amount": 5000, "currency": "xxx", "payment_intent": "pi_xxx", "reason": "fraudulent",
            "status": "needs_response"}),
        ),
    ];
    for body in &cases {
        let (status, answer) = deliver(&obol, body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let ids: Vec<String> = cases
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_all_ignored(&obol, &ids).await;
    let (_, payments) = obol.get("/v1/payments").await;
    assert_eq!(payments["data"], json!([]), "nothing applied: {payments}");
    let (_, disputes) = obol.get("/v1/disputes").await;
    assert_eq!(disputes["data"], json!([]), "{disputes}");
}

async fn an_event_that_can_never_apply_is_ignored_not_retried_forever(backend: Backend) {
    let obol = start(backend).await;
    let float = event(
        "evt_float",
        "payment_intent.succeeded",
        intent("pi_float", json!(50.5), "eur"),
    );
    // 10,000 levels of nesting inside an otherwise well-formed event, and
    // a body that is nothing but nesting (not an event at all).
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested = event(
        "evt_nested",
        "payment_intent.succeeded",
        json!({"id": "pi_nested", "object": "payment_intent", "amount": 5000, "currency": "eur",
            "status": "succeeded", "metadata": {"deep": "DEEP"}}),
    )
    .replace("\"DEEP\"", &deep);
    // An id no Stripe event has (and no database index takes).
    let long_id = event(
        &format!("evt_{}", "x".repeat(10_000)),
        "payment_intent.succeeded",
        intent("pi_long", json!(5000), "eur"),
    );
    for body in [&float, &nested, &deep, &long_id] {
        let (status, answer) = deliver(&obol, body).await;
        assert_eq!(status, 200, "{answer}");
    }
    // Stripe's retry of the unreadable body is a duplicate, not a new row.
    let (status, answer) = deliver(&obol, &deep).await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &json!(true)),
        "{answer}"
    );

    let (_, list) = obol.get("/v1/webhook-events?limit=100").await;
    let unreadable: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stripe_event_id"].as_str().unwrap().to_string())
        .filter(|id| id.starts_with("unreadable_"))
        .collect();
    assert_eq!(
        unreadable.len(),
        2,
        "the nested body and the long id: {list}"
    );
    let mut ids = vec!["evt_float".to_string(), "evt_nested".to_string()];
    ids.extend(unreadable);
    assert_all_ignored(&obol, &ids).await;
    let (_, payments) = obol.get("/v1/payments").await;
    assert_eq!(payments["data"], json!([]), "{payments}");
    // obol is still up and applies good events.
    let good = event(
        "evt_good",
        "payment_intent.succeeded",
        intent("pi_good", json!(5000), "eur"),
    );
    assert_eq!(deliver(&obol, &good).await.0, 200);
    eventually(&obol, "/v1/payments", |b| {
        b["data"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
}
