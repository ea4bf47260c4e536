//! Stripe budgets: calls made for customer tokens (and guests, links) have
//! a budget of their own per customer, and open pay-first intents per
//! customer are capped, so the host's backend keeps its share of Stripe.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{status_json, Backend, Obol};
use crate::on_both_backends;

on_both_backends!(
    a_customer_token_cannot_spend_the_backends_stripe_budget,
    open_pay_first_intents_per_customer_are_capped,
);

/// A pay-first intent with `bearer`: status, `Retry-After`, body.
async fn pay_first(obol: &Obol, bearer: &str) -> (u16, Option<String>, Value) {
    let r = obol
        .http
        .post(obol.url("/v1/payment-intents"))
        .bearer_auth(bearer)
        .json(&json!({"amount": 4999, "currency": "eur"}))
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, body) = status_json(r).await;
    (status, retry, body)
}

/// Mean latency of `n` sequential pay-first calls with the secret key;
/// every one must succeed.
async fn backend_calls(obol: &Obol, n: usize) -> Duration {
    let key = obol.api_key.clone();
    let start = Instant::now();
    for _ in 0..n {
        let (status, _, body) = pay_first(obol, &key).await;
        assert_eq!(status, 201, "the backend's call failed: {body}");
    }
    start.elapsed() / n as u32
}

/// Finding: 12 threads creating pay-first intents with one customer token
/// raised the backend's latency from 40 ms to 2.4 s (the whole 25/s went
/// to the customer). Now the customer's calls beyond its own budget answer
/// 429 before Stripe is asked, and the backend's calls all succeed.
async fn a_customer_token_cannot_spend_the_backends_stripe_budget(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ana = obol.create_customer("ana").await;
    let token = obol.customer_token(ana["id"].as_str().unwrap(), 600).await;
    let idle = backend_calls(&obol, 5).await;

    let burst = async {
        let calls = (0..60).map(|_| pay_first(&obol, &token));
        futures::future::join_all(calls).await
    };
    let during = backend_calls(&obol, 5);
    let (answers, during) = tokio::join!(burst, during);
    eprintln!(
        "backend pay-first latency: idle {idle:?}, during a 60-request customer burst {during:?}"
    );

    let created = answers.iter().filter(|(s, _, _)| *s == 201).count();
    let limited: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    eprintln!(
        "customer burst: {created} created, {} rate limited, {} other",
        limited.len(),
        answers.len() - created - limited.len()
    );
    assert!(!limited.is_empty(), "no customer call was limited");
    for (_, retry, body) in &limited {
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        assert!(retry.is_some(), "429 without Retry-After");
    }
    for (status, _, body) in &answers {
        assert!(
            matches!(status, 201 | 429 | 409),
            "unexpected answer {status}: {body}"
        );
    }
    // Default budget: 2/s with a burst of 4; the burst lasts seconds at most.
    assert!(created <= 12, "{created} customer intents got through");
}

async fn open_pay_first_intents_per_customer_are_capped(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_CHECKOUT__MAX_OPEN_INTENTS_PER_CUSTOMER", "3")
        .env("OBOL_STRIPE__CUSTOMER_RATE_LIMIT_PER_SECOND", "100")
        .start()
        .await;
    let ana = obol.create_customer("ana").await;
    let ana_id = ana["id"].as_str().unwrap();
    let token = obol.customer_token(ana_id, 600).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let (status, _, body) = pay_first(&obol, &token).await;
        assert_eq!(status, 201, "{body}");
        open.push(body["id"].as_str().unwrap().to_string());
    }
    let (status, _, body) = pay_first(&obol, &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("too_many_open_intents")),
        "{body}"
    );

    // Paying an order the backend created is not a pay-first intent.
    let (status, order) = obol
        .post(
            "/v1/orders",
            json!({"customer_id": ana_id, "email": "ana@example.com", "currency": "eur",
                   "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let r = obol
        .http
        .post(obol.url("/v1/payment-intents"))
        .bearer_auth(&token)
        .json(&json!({"order_id": order["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // A released authorization no longer counts.
    let (status, body) = obol
        .post(
            &format!("/v1/payment-intents/{}/release", open[0]),
            json!({"reason": "abandoned_cart"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "canceled");
    let (status, _, body) = pay_first(&obol, &token).await;
    assert_eq!(status, 201, "{body}");

    // The backend is not capped, for Ana either (its intents for her count
    // towards her cap: the cap is on what is open, whoever opened it).
    let (status, body) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 4999, "currency": "eur", "customer_id": ana_id}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}
