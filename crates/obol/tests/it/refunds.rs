//! Refunds through obol, confirmed by the sandbox's events.

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    partial_refunds_add_up_to_a_full_refund,
    refunds_that_break_the_rules_are_refused,
    concurrent_refunds_never_exceed_the_payment,
    refund_above_captured_amount_is_422,
    refunds_after_a_partial_capture_count_only_money_given_back,
);

/// A captured payment of `amount` (eur) in obol's ledger; returns its id.
pub async fn completed_payment(obol: &Obol, amount: &str) -> String {
    completed_payment_in(obol, amount, "eur").await
}

async fn completed_payment_in(obol: &Obol, amount: &str, currency: &str) -> String {
    let base = sandbox(obol).await;
    let pi = stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", amount),
            ("currency", currency),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    assert_eq!(pi["status"], "succeeded", "{pi}");
    let pi_id = pi["id"].as_str().unwrap().to_string();
    let list = eventually(obol, "/v1/payments?status=completed&limit=100", |b| {
        b["data"].as_array().is_some_and(|d| {
            d.iter()
                .any(|p| p["stripe_payment_intent_id"] == pi_id.as_str())
        })
    })
    .await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["stripe_payment_intent_id"] == pi_id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn partial_refunds_add_up_to_a_full_refund(backend: Backend) {
    let obol = Obol::start(backend).await;
    let id = completed_payment(&obol, "5000").await;
    let (status, refund) = obol
        .post(
            &format!("/v1/payments/{id}/refunds"),
            json!({"amount": 1200, "reason": "requested_by_customer"}),
        )
        .await;
    assert_eq!(status, 201, "{refund}");
    assert!(refund["id"].as_str().unwrap().starts_with("rf_"));
    assert_eq!(refund["amount"], 1200);
    assert!(
        matches!(refund["status"].as_str(), Some("pending" | "succeeded")),
        "{refund}"
    );
    assert!(refund["stripe_refund_id"]
        .as_str()
        .unwrap()
        .starts_with("re_"));
    let p = eventually(&obol, &format!("/v1/payments/{id}"), |b| {
        b["amount_refunded"] == 1200
    })
    .await;
    assert_eq!(p["status"], "partially_refunded");

    // No amount: the rest.
    let (status, rest) = obol
        .post(&format!("/v1/payments/{id}/refunds"), json!({}))
        .await;
    assert_eq!(status, 201, "{rest}");
    assert_eq!(rest["amount"], 3800);
    let p = eventually(&obol, &format!("/v1/payments/{id}"), |b| {
        b["status"] == "refunded"
    })
    .await;
    assert_eq!(p["amount_refunded"], 5000);
    let tos: Vec<&str> = p["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(tos.last(), Some(&"refunded"), "{tos:?}");

    let (status, body) = obol
        .post(&format!("/v1/payments/{id}/refunds"), json!({"amount": 1}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("payment_not_refundable")),
        "{body}"
    );
    let (_, list) = obol.get(&format!("/v1/payments/{id}/refunds")).await;
    let amounts: Vec<i64> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, vec![1200, 3800]);
    let refund_id = refund["id"].as_str().unwrap();
    let settled = eventually(&obol, &format!("/v1/payments/{id}/refunds"), |b| {
        b["data"]
            .as_array()
            .is_some_and(|d| d.iter().all(|r| r["status"] == "succeeded"))
    })
    .await;
    assert!(settled["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == refund_id));
}

async fn refunds_that_break_the_rules_are_refused(backend: Backend) {
    let obol = Obol::start(backend).await;
    let id = completed_payment(&obol, "1000").await;
    for (body, status, code) in [
        (json!({"amount": 1001}), 422, "refund_exceeds_remaining"),
        (json!({"amount": 0}), 422, "amount_not_positive"),
        (json!({"amount": -5}), 422, "amount_not_positive"),
        (
            json!({"reason": "changed_my_mind"}),
            422,
            "invalid_refund_reason",
        ),
        (json!({"amount": "10"}), 400, "invalid_body"),
    ] {
        let (s, b) = obol
            .post(&format!("/v1/payments/{id}/refunds"), body.clone())
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (status, Some(code)),
            "{body} -> {b}"
        );
    }
    let (s, b) = obol.post("/v1/payments/pay_nope/refunds", json!({})).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (404, Some("payment_not_found"))
    );

    // An authorization is released, not refunded.
    let base = sandbox(&obol).await;
    let pi = stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "700"),
            ("currency", "eur"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("capture_method", "manual"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    let pi_id = pi["id"].as_str().unwrap().to_string();
    let list = eventually(&obol, "/v1/payments?status=authorized", |b| {
        b["data"].as_array().is_some_and(|d| {
            d.iter()
                .any(|p| p["stripe_payment_intent_id"] == pi_id.as_str())
        })
    })
    .await;
    let auth_id = list["data"][0]["id"].as_str().unwrap();
    let (s, b) = obol
        .post(&format!("/v1/payments/{auth_id}/refunds"), json!({}))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("payment_not_captured")),
        "{b}"
    );
    // Three-decimal currencies refund in multiples of 10, like they charge.
    let kwd = completed_payment_in(&obol, "1000", "kwd").await;
    let (s, b) = obol
        .post(&format!("/v1/payments/{kwd}/refunds"), json!({"amount": 5}))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("amount_precision")),
        "{b}"
    );
    let (s, b) = obol
        .post(
            &format!("/v1/payments/{kwd}/refunds"),
            json!({"amount": 10}),
        )
        .await;
    assert_eq!(s, 201, "{b}");

    // Nothing was refunded by any of these.
    let (_, p) = obol.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(p["amount_refunded"], 0);
    let (_, refunds) = obol.get(&format!("/v1/payments/{id}/refunds")).await;
    assert_eq!(refunds["data"], json!([]));
}

async fn concurrent_refunds_never_exceed_the_payment(backend: Backend) {
    let obol = Obol::start(backend).await;
    let id = completed_payment(&obol, "1000").await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let http = obol.http.clone();
        let url = obol.url(&format!("/v1/payments/{id}/refunds"));
        let key = obol.api_key.clone();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({"amount": 400}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => created += 1,
            422 => assert_eq!(body["error"]["code"], "refund_exceeds_remaining"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 2, "two refunds of 400 fit in 1000");
    let p = eventually(&obol, &format!("/v1/payments/{id}"), |b| {
        b["amount_refunded"] == 800
    })
    .await;
    assert_eq!(p["status"], "partially_refunded");
}

/// An authorization of `amount` captured in part (`capture`) at the
/// sandbox, as obol has no partial-capture API; the webhook brings the
/// capture into obol. Returns (obol payment id, intent id).
pub async fn partially_captured_payment(
    obol: &Obol,
    amount: &str,
    capture: &str,
) -> (String, String) {
    let base = sandbox(obol).await;
    let pi = stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", amount),
            ("currency", "eur"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("capture_method", "manual"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    assert_eq!(pi["status"], "requires_capture", "{pi}");
    let pi_id = pi["id"].as_str().unwrap().to_string();
    let captured = stripe_post(
        &base,
        &format!("/v1/payment_intents/{pi_id}/capture"),
        &[("amount_to_capture", capture)],
    )
    .await;
    assert_eq!(captured["status"], "succeeded", "{captured}");
    let list = eventually(obol, "/v1/payments?status=completed&limit=100", |b| {
        b["data"].as_array().is_some_and(|d| {
            d.iter()
                .any(|p| p["stripe_payment_intent_id"] == pi_id.as_str())
        })
    })
    .await;
    let id = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["stripe_payment_intent_id"] == pi_id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    (id, pi_id)
}

/// Refunds the sandbox holds (created by any caller).
async fn sandbox_refund_count(base: &str) -> i64 {
    let s: Value = reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    s["objects"]["refund"].as_i64().unwrap_or(0)
}

async fn refund_above_captured_amount_is_422(backend: Backend) {
    let obol = Obol::start(backend).await;
    let base = sandbox(&obol).await;
    let (id, _) = partially_captured_payment(&obol, "4999", "3999").await;
    let (_, p) = obol.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(
        (p["amount"].as_i64(), p["amount_captured"].as_i64()),
        (Some(4999), Some(3999)),
        "{p}"
    );

    // Above what was captured: refused by obol before Stripe is asked.
    let before = sandbox_refund_count(&base).await;
    for body in [json!({"amount": 4000}), json!({"amount": 4999})] {
        let (s, b) = obol
            .post(&format!("/v1/payments/{id}/refunds"), body.clone())
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (422, Some("refund_exceeds_remaining")),
            "{body} -> {b}"
        );
    }
    assert_eq!(
        sandbox_refund_count(&base).await,
        before,
        "Stripe was not asked"
    );
    let (_, refunds) = obol.get(&format!("/v1/payments/{id}/refunds")).await;
    assert_eq!(refunds["data"], json!([]), "nothing recorded");

    // The whole captured amount is refundable.
    let (s, all) = obol
        .post(&format!("/v1/payments/{id}/refunds"), json!({}))
        .await;
    assert_eq!((s, all["amount"].as_i64()), (201, Some(3999)), "{all}");
}

/// Stripe's charge counts the released 1,000 of a partial capture in
/// `amount_refunded`; obol counts only what was given back.
async fn refunds_after_a_partial_capture_count_only_money_given_back(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (id, _) = partially_captured_payment(&obol, "4999", "3999").await;
    let (_, p) = obol.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(
        (p["status"].as_str(), p["amount_refunded"].as_i64()),
        (Some("completed"), Some(0)),
        "{p}"
    );

    let (s, b) = obol
        .post(
            &format!("/v1/payments/{id}/refunds"),
            json!({"amount": 3000}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    // Stripe's charge.refunded now says 4,000 refunded (1,000 released +
    // 3,000); obol must show 3,000 and the payment partly refunded.
    let p = eventually(&obol, &format!("/v1/payments/{id}/refunds"), |b| {
        b["data"][0]["status"] == "succeeded"
    })
    .await;
    assert_eq!(p["data"][0]["amount"], 3000);
    let p = eventually(&obol, &format!("/v1/payments/{id}"), |b| {
        b["amount_refunded"] != 0
    })
    .await;
    assert_eq!(
        (
            p["status"].as_str(),
            p["amount_refunded"].as_i64(),
            p["amount_captured"].as_i64()
        ),
        (Some("partially_refunded"), Some(3000), Some(3999)),
        "{p}"
    );

    // In total too: 3,000 then 1,000 is above 3,999.
    let (s, b) = obol
        .post(
            &format!("/v1/payments/{id}/refunds"),
            json!({"amount": 1000}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("refund_exceeds_remaining")),
        "{b}"
    );
    // No amount: what is left of the captured amount.
    let (s, rest) = obol
        .post(&format!("/v1/payments/{id}/refunds"), json!({}))
        .await;
    assert_eq!((s, rest["amount"].as_i64()), (201, Some(999)), "{rest}");
    let p = eventually(&obol, &format!("/v1/payments/{id}"), |b| {
        b["status"] == "refunded"
    })
    .await;
    assert_eq!(p["amount_refunded"], 3999, "{p}");
}
