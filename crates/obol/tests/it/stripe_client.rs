//! obol's Stripe client against the sandbox over HTTP, with faults injected
//! on both sides of the request: the sandbox's own chaos (5xx and 429 before
//! it acts) and a proxy here that loses responses after the sandbox acted,
//! which only idempotency keys make safe.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use serde_json::Value;

use obol::stripe::{IdempotencyKey, Params, RateLimit, RetryPolicy, StripeClient, StripeError};

/// Starts an in-memory sandbox; returns its base URL.
async fn start_sandbox(chaos: &str) -> String {
    let sandbox = obol_sandbox::Sandbox::bind(
        "127.0.0.1:0".parse().unwrap(),
        obol_sandbox::SandboxConfig {
            db: obol_sandbox::SandboxDb::Memory,
            chaos: chaos.parse().unwrap(),
            public_url: None,
            webhook_retry_base: Duration::from_millis(50),
            rate_limit_per_second: None,
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", sandbox.local_addr());
    tokio::spawn(sandbox.run_until(std::future::pending()));
    base
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    rng: Arc<Mutex<rand::rngs::StdRng>>,
    lose_after: f64,
}

/// A forwarding proxy that timestamps every request and, with probability
/// `lose_after`, answers 500 after the sandbox has already acted.
async fn start_proxy(upstream: String, lose_after: f64) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy {
        upstream,
        http: reqwest::Client::new(),
        arrivals: arrivals.clone(),
        rng: Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(7))),
        lose_after,
    };
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, arrivals)
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    p.arrivals.lock().unwrap().push(Instant::now());
    let mut req = p.http.request(method, format!("{}{}", p.upstream, uri));
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let upstream = req.body(body).send().await.unwrap();
    let status = upstream.status();
    let upstream_headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap();
    let lose = p.rng.lock().unwrap().random_bool(p.lose_after);
    if lose && status.is_success() {
        let body = r#"{"error":{"type":"api_error","message":"connection lost (injected by the test proxy)"}}"#;
        return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
    }
    let mut response = (status, bytes).into_response();
    for (k, v) in &upstream_headers {
        if k != "content-length" && k != "transfer-encoding" {
            response.headers_mut().insert(k, v.clone());
        }
    }
    response
}

fn client(base: &str, per_second: u32) -> StripeClient {
    StripeClient::new(
        base,
        SecretString::from("sk_test_obol_client_tests"),
        RateLimit::per_second(per_second),
        RetryPolicy {
            max_attempts: 12,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
            request_timeout: Duration::from_secs(10),
        },
    )
    .unwrap()
}

async fn stats(sandbox: &str) -> Value {
    reqwest::get(format!("{sandbox}/_sandbox/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_500_creations_under_chaos_makes_exactly_500_intents_within_the_rate() {
    let rate = 200;
    let sandbox = start_sandbox("seed=11,api_5xx=0.2,api_429=0.1").await;
    let (proxy, arrivals) = start_proxy(sandbox.clone(), 0.1).await;
    let stripe = client(&proxy, rate);

    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let stripe = stripe.clone();
        tasks.push(tokio::spawn(async move {
            let params = Params::new()
                .set("amount", 1000 + i)
                .set("currency", "eur")
                .set("capture_method", "manual")
                .set("metadata[burst_item]", i);
            let key = IdempotencyKey::for_op("test-burst", &[&i.to_string()]);
            stripe
                .post::<Value>("/v1/payment_intents", &params, &key)
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let pi = t.await.unwrap().expect("every creation completes");
        ids.insert(pi["id"].as_str().unwrap().to_string());
    }
    let elapsed = started.elapsed();
    assert_eq!(ids.len(), 500, "500 distinct intents returned");

    let s = stats(&sandbox).await;
    assert_eq!(
        s["objects"]["payment_intent"], 500,
        "no duplicates in the sandbox: {s}"
    );
    let requests: u64 = s["requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        requests > 500,
        "chaos answered some requests with errors: {s}"
    );

    // No one-second window holds more than the rate plus the allowed burst.
    let mut times = arrivals.lock().unwrap().clone();
    times.sort();
    // The limiter spaces departures by 1/rate, so at most rate + 1 leave in
    // any second; arrivals at the proxy add scheduling jitter on a busy
    // two-core machine, allowed here as 5 % of the rate (50 ms).
    let jitter = (rate / 20) as usize;
    let mut worst = 0;
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
            .count();
        worst = worst.max(in_window);
    }
    assert!(
        worst <= rate as usize + 1 + jitter,
        "{worst} requests in one second, limit {rate} (+1, +{jitter} jitter)"
    );
    eprintln!(
        "burst: 500 intents, {} requests, {:.1} s, worst 1-s window {worst} (limit {rate})",
        times.len(),
        elapsed.as_secs_f64()
    );
}

#[tokio::test]
async fn a_decline_is_returned_at_once_never_retried() {
    let sandbox = start_sandbox("seed=1").await;
    let (proxy, arrivals) = start_proxy(sandbox.clone(), 0.0).await;
    let stripe = client(&proxy, 100);
    let params = Params::new()
        .set("amount", 2000)
        .set("currency", "eur")
        .set(
            "payment_method",
            "pm_card_visa_chargeDeclinedInsufficientFunds",
        )
        .set("confirm", "true")
        .set("automatic_payment_methods[enabled]", "true")
        .set("automatic_payment_methods[allow_redirects]", "never");
    let err = stripe
        .post::<Value>(
            "/v1/payment_intents",
            &params,
            &IdempotencyKey::for_op("test-decline", &["1"]),
        )
        .await
        .unwrap_err();
    match &err {
        StripeError::Refused { status, error } => {
            assert_eq!(*status, 402);
            assert_eq!(error.kind, "card_error");
            assert_eq!(error.decline_code.as_deref(), Some("insufficient_funds"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(err.decline_code(), Some("insufficient_funds"));
    assert_eq!(
        arrivals.lock().unwrap().len(),
        1,
        "a 4xx decision is not retried"
    );
}

#[tokio::test]
async fn the_same_operation_key_replays_the_first_result() {
    let sandbox = start_sandbox("seed=1").await;
    let stripe = client(&sandbox, 100);
    let key = IdempotencyKey::for_op("test-replay", &["order-1"]);
    let params = Params::new().set("amount", 4999).set("currency", "eur");
    let first: Value = stripe
        .post("/v1/payment_intents", &params, &key)
        .await
        .unwrap();
    let second: Value = stripe
        .post("/v1/payment_intents", &params, &key)
        .await
        .unwrap();
    assert_eq!(first["id"], second["id"]);
    let other = Params::new().set("amount", 5000).set("currency", "eur");
    let err = stripe
        .post::<Value>("/v1/payment_intents", &other, &key)
        .await
        .unwrap_err();
    match err {
        StripeError::Refused { status: 400, error } => assert_eq!(error.kind, "idempotency_error"),
        other => panic!("expected idempotency_error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_stripe_gives_up_after_the_configured_attempts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let stripe = StripeClient::new(
        &base,
        SecretString::from("sk_test_x"),
        RateLimit::per_second(100),
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            request_timeout: Duration::from_secs(2),
        },
    )
    .unwrap();
    let err = stripe
        .get::<Value>("/v1/account", &Params::new())
        .await
        .unwrap_err();
    assert!(!format!("{err:?} {err}").contains("sk_test_x"));
    match err {
        StripeError::Unavailable { attempts, .. } => assert_eq!(attempts, 3),
        other => panic!("{other:?}"),
    }
}
