//! The ledger under a disturbed Stripe: 1,000 payments driven through
//! success, decline, partial and full refunds and disputes while the
//! sandbox duplicates, reorders and drops webhook deliveries. After
//! reconciliation every payment in obol must equal the sandbox's object,
//! with no event applied twice.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};
use crate::inbox::{sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(a_thousand_payments_under_chaos_end_equal_to_stripe);

const PAYMENTS: usize = 1000;

/// Drives payment `i` through its scenario in the sandbox.
async fn drive(base: String, i: usize) {
    let amount = (1000 + i * 10).to_string();
    let card = match i % 6 {
        1 => "pm_card_visa_chargeDeclinedInsufficientFunds",
        4 => "pm_card_createDispute",
        _ => "pm_card_visa",
    };
    let manual = i % 6 == 5;
    let mut form = vec![
        ("amount", amount.as_str()),
        ("currency", "eur"),
        ("payment_method", card),
        ("confirm", "true"),
        ("payment_method_types[]", "card"),
    ];
    if manual {
        form.push(("capture_method", "manual"));
    }
    let pi = stripe_post(&base, "/v1/payment_intents", &form).await;
    let Some(id) = pi["id"]
        .as_str()
        .or(pi["error"]["payment_intent"]["id"].as_str())
    else {
        panic!("no intent: {pi}");
    };
    match i % 6 {
        2 => {
            stripe_post(
                &base,
                "/v1/refunds",
                &[("payment_intent", id), ("amount", "300")],
            )
            .await;
        }
        3 => {
            stripe_post(&base, "/v1/refunds", &[("payment_intent", id)]).await;
        }
        _ => {}
    }
}

/// Every intent in the sandbox, with its latest charge.
async fn sandbox_intents(base: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = vec![
            ("limit", "100".to_string()),
            ("expand[]", "data.latest_charge".to_string()),
        ];
        if let Some(a) = &after {
            q.push(("starting_after", a.clone()));
        }
        let page: Value = http
            .get(format!("{base}/v1/payment_intents"))
            .bearer_auth("sk_test_obol_chaos")
            .query(&q)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().unwrap();
        all.extend(data.iter().cloned());
        if page["has_more"] != true {
            break;
        }
        after = data
            .last()
            .and_then(|p| p["id"].as_str())
            .map(str::to_string);
    }
    all
}

/// The ledger state a sandbox intent implies.
fn expected(pi: &Value) -> (String, i64, bool) {
    let charge = &pi["latest_charge"];
    let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
    let state = match pi["status"].as_str().unwrap() {
        "succeeded" if refunded >= pi["amount_received"].as_i64().unwrap() => "refunded",
        "succeeded" if refunded > 0 => "partially_refunded",
        "succeeded" => "completed",
        "requires_capture" => "authorized",
        "requires_action" => "requires_action",
        "canceled" => "canceled",
        "requires_payment_method" if !pi["last_payment_error"].is_null() => "failed",
        _ => "pending",
    };
    (state.to_string(), refunded, charge["disputed"] == true)
}

async fn all_payments(obol: &Obol) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/payments?limit=100&cursor={c}"),
            None => "/v1/payments?limit=100".to_string(),
        };
        let (_, page) = obol.get(&path).await;
        for p in page["data"].as_array().unwrap() {
            out.insert(
                p["stripe_payment_intent_id"].as_str().unwrap().to_string(),
                p.clone(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    out
}

/// Waits until the inbox has nothing left to apply.
async fn inbox_settled(obol: &Obol) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, received) = obol.get("/v1/webhook-events?status=received&limit=1").await;
        let (_, failed) = obol.get("/v1/webhook-events?status=failed&limit=1").await;
        if received["data"] == json!([]) && failed["data"] == json!([]) {
            return;
        }
        assert!(Instant::now() < deadline, "the inbox never settled");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn a_thousand_payments_under_chaos_end_equal_to_stripe(backend: Backend) {
    let obol = Obol::builder(backend)
        .env(
            "OBOL_SANDBOX__CHAOS",
            "seed=20261129,duplicate=0.1,reorder=0.2,drop=0.2",
        )
        .env("OBOL_RECONCILE__INTERVAL_SECONDS", "0")
        .env("OBOL_LOG", "warn")
        .start()
        .await;
    let base = sandbox(&obol).await;
    let started = Instant::now();
    futures::stream::iter(0..PAYMENTS)
        .map(|i| drive(base.clone(), i))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let driven = started.elapsed();

    // Deliveries still arriving (reordered ones are held back up to 1.5 s)
    // race with the passes; both must be safe together.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, first) = obol.post("/v1/reconciliations", json!({})).await;
    inbox_settled(&obol).await;
    let (_, second) = obol.post("/v1/reconciliations", json!({})).await;
    inbox_settled(&obol).await;

    let intents = sandbox_intents(&base).await;
    assert_eq!(intents.len(), PAYMENTS);
    let payments = all_payments(&obol).await;
    let mut mismatches = Vec::new();
    for pi in &intents {
        let id = pi["id"].as_str().unwrap();
        let (state, refunded, disputed) = expected(pi);
        match payments.get(id) {
            None => mismatches.push(format!("{id}: missing in obol (expected {state})")),
            Some(p) => {
                if p["status"] != state.as_str()
                    || p["amount_refunded"] != refunded
                    || p["disputed"] != disputed
                {
                    mismatches.push(format!(
                        "{id}: obol {} {} {} / sandbox {state} {refunded} {disputed}",
                        p["status"], p["amount_refunded"], p["disputed"]
                    ));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(20)]
    );
    assert_eq!(payments.len(), PAYMENTS);

    // No event applied twice: no timeline names one event twice, and no
    // entry repeats the state before it.
    let mut checked = 0;
    for p in payments.values() {
        let (_, full) = obol
            .get(&format!("/v1/payments/{}", p["id"].as_str().unwrap()))
            .await;
        let mut refs = HashSet::new();
        for e in full["timeline"].as_array().unwrap() {
            assert_ne!(e["from"], e["to"], "{full}");
            if let Some(r) = e["cause"]["ref"].as_str() {
                assert!(
                    refs.insert(r.to_string()),
                    "event {r} applied twice: {full}"
                );
            }
        }
        checked += 1;
    }
    let s: Value = reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    eprintln!(
        "chaos: {PAYMENTS} payments driven in {:.1} s; deliveries {}; reconcile 1 {first}, 2 {second}; {checked} timelines checked",
        driven.as_secs_f64(),
        s["deliveries"]
    );
}
