//! kill -9 while events are being stored and applied: after a restart and
//! Stripe's redelivery of what was not acknowledged, nothing acknowledged
//! is lost and nothing is applied twice.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};
use crate::on_both_backends;

on_both_backends!(a_killed_obol_loses_nothing_it_acknowledged);

const SECRET: &str = "whsec_obol_crash_test";
const EVENTS: usize = 600;
/// kill -9 lands once this many events were acknowledged: mid-stream on
/// any machine, however fast or loaded, unlike a timer.
const KILL_AFTER_ACKS: usize = 150;

fn event(i: usize) -> String {
    json!({"id": format!("evt_crash_{i}"), "object": "event", "type": "payment_intent.succeeded",
        "created": chrono::Utc::now().timestamp(), "livemode": false, "api_version": "2023-08-16",
        "data": {"object": {"id": format!("pi_crash_{i}"), "object": "payment_intent", "amount": 100 + i,
            "currency": "eur", "status": "succeeded", "amount_received": 100 + i,
            "last_payment_error": null, "metadata": {}}}})
    .to_string()
}

/// Sends events `ids` concurrently; returns those answered 2xx.
async fn deliver(base: &str, ids: Vec<usize>) -> Vec<usize> {
    deliver_counting(base, ids, Arc::default()).await
}

/// `deliver`, counting acknowledgements in `acks` as they come.
async fn deliver_counting(base: &str, ids: Vec<usize>, acks: Arc<AtomicUsize>) -> Vec<usize> {
    let http = crate::openapi_check::checked(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
        base,
    );
    let acked = Arc::new(Mutex::new(Vec::new()));
    futures::stream::iter(ids)
        .for_each_concurrent(16, |i| {
            let http = http.clone();
            let acked = acked.clone();
            let acks = acks.clone();
            let url = format!("{base}/webhooks/stripe");
            async move {
                let body = event(i);
                let header = obol::stripe::signature::sign(
                    body.as_bytes(),
                    &SECRET.to_string().into(),
                    chrono::Utc::now().timestamp(),
                );
                if let Ok(r) = http
                    .post(url)
                    .header("stripe-signature", header)
                    .body(body)
                    .send()
                    .await
                {
                    if r.status().is_success() {
                        acked.lock().unwrap().push(i);
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
        .await;
    let v = acked.lock().unwrap().clone();
    v
}

async fn a_killed_obol_loses_nothing_it_acknowledged(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_STRIPE__WEBHOOK_SECRETS", SECRET)
        .env("OBOL_LOG", "warn")
        .start()
        .await;
    let base = obol.base_url.clone();
    let pid = obol.pid();
    // Kill -9 mid-stream, while deliveries are being stored and applied:
    // after KILL_AFTER_ACKS acknowledgements.
    let acks = Arc::new(AtomicUsize::new(0));
    let seen = acks.clone();
    let killer = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.load(Ordering::SeqCst) < KILL_AFTER_ACKS {
            assert!(Instant::now() < deadline, "too few events acknowledged");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    });
    let acked: HashSet<usize> = deliver_counting(&base, (0..EVENTS).collect(), acks)
        .await
        .into_iter()
        .collect();
    killer.await.unwrap();
    assert!(
        !acked.is_empty() && acked.len() < EVENTS,
        "the kill landed mid-stream: {} acknowledged",
        acked.len()
    );

    let (_, db, _) = obol.terminate();
    let again = Obol::builder(backend)
        .env("OBOL_STRIPE__WEBHOOK_SECRETS", SECRET)
        .env("OBOL_LOG", "warn")
        .with_db(db)
        .start()
        .await;
    // Stripe redelivers what was not acknowledged; send some acknowledged
    // ones again too, as Stripe may.
    let missing: Vec<usize> = (0..EVENTS).filter(|i| !acked.contains(i)).collect();
    let redelivered = deliver(&again.base_url, missing.clone()).await;
    assert_eq!(redelivered.len(), missing.len());
    let dupes: Vec<usize> = acked.iter().copied().take(50).collect();
    deliver(&again.base_url, dupes).await;

    // Everything applied, once.
    let deadline = Instant::now() + Duration::from_secs(90);
    let payments = loop {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/payments?limit=100&status=completed&cursor={c}"),
                None => "/v1/payments?limit=100&status=completed".to_string(),
            };
            let (_, page) = again.get(&path).await;
            all.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        if all.len() >= EVENTS {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {EVENTS} payments applied",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let intents: HashSet<String> = payments
        .iter()
        .map(|p| p["stripe_payment_intent_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(payments.len(), EVENTS, "one payment per intent");
    assert_eq!(intents.len(), EVENTS);
    for i in acked.iter().take(100) {
        let p = payments
            .iter()
            .find(|p| p["stripe_payment_intent_id"] == format!("pi_crash_{i}").as_str())
            .unwrap();
        let (_, full) = again
            .get(&format!("/v1/payments/{}", p["id"].as_str().unwrap()))
            .await;
        assert_eq!(
            full["timeline"].as_array().unwrap().len(),
            1,
            "applied twice: {full}"
        );
    }
    let (_, failed) = again.get("/v1/webhook-events?status=failed").await;
    assert_eq!(failed["data"], Value::Array(vec![]));
    eprintln!("crash: {} of {EVENTS} acknowledged before kill -9; {} redelivered; all {EVENTS} applied once", acked.len(), missing.len());
}
