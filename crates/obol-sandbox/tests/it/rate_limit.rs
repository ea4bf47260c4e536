//! The optional `/v1/*` rate limit: Stripe's 429 `rate_limit` answer,
//! nothing done for a refused request, and the counts `/_sandbox/rate`
//! reports.

use serde_json::Value;

use crate::helpers::*;

async fn spawn_limited(per_second: u32) -> TestSandbox {
    let mut cfg = config();
    cfg.rate_limit_per_second = Some(per_second);
    spawn_with(cfg).await
}

async fn rate(sb: &TestSandbox) -> Value {
    sb.http
        .get(format!("{}/_sandbox/rate", sb.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn over_the_limit_answers_stripes_429_and_creates_nothing() {
    let sb = spawn_limited(5).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    let started = std::time::Instant::now();
    for i in 0..12 {
        let key = format!("rate-{i}");
        let r = sb
            .post_with(
                "/v1/customers",
                &[("email", "a@example.com")],
                &[("Idempotency-Key", &key)],
            )
            .await;
        statuses.push(r.status);
        if r.status == 429 && refused.is_none() {
            refused = Some((key, r));
        }
    }
    // The bucket holds one second: 5 at once, then refusals (as many more
    // as it refilled meanwhile, at 5 per second).
    let refilled = (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!((5..=5 + refilled).contains(&ok), "{statuses:?}");
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 12 - ok);
    let (key, r) = refused.expect("a refusal");
    assert_eq!(r.err()["type"], "invalid_request_error", "{}", r.body);
    assert_eq!(r.err()["code"], "rate_limit");
    assert!(r.err()["message"].as_str().unwrap().contains("rate limit"));
    assert_eq!(r.header("stripe-rate-limited-reason"), Some("global-rate"));
    assert_eq!(r.header("stripe-should-retry"), Some("true"));
    assert!(r.header("request-id").unwrap().starts_with("req_"));
    // Nothing was written: only the accepted requests made customers.
    let stats = sb.stats().await;
    assert_eq!(stats["objects"]["customer"].as_i64(), Some(ok as i64));
    // Its idempotency key was not used up: once the bucket refilled, the
    // same key creates the customer (no replayed 429).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = sb
        .post_with(
            "/v1/customers",
            &[("email", "a@example.com")],
            &[("Idempotency-Key", &key)],
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.header("idempotent-replayed").is_none());
    sb.stop().await;
}

#[tokio::test]
async fn the_sandbox_pages_are_not_limited() {
    let sb = spawn_limited(1).await;
    assert_eq!(sb.get("/v1/account").await.status, 200);
    assert_eq!(sb.get("/v1/account").await.status, 429);
    for _ in 0..5 {
        let r = sb
            .raw_get(&format!("{}/_sandbox/stats", sb.base))
            .await
            .status();
        assert_eq!(r, 200);
    }
    assert_eq!(rate(&sb).await["requests"], 2);
    sb.stop().await;
}

#[tokio::test]
async fn rate_reports_what_the_api_received() {
    let sb = spawn_limited(20).await;
    let r = rate(&sb).await;
    assert_eq!(r["limit_per_second"], 20);
    assert_eq!(r["requests"], 0);
    let started = std::time::Instant::now();
    for _ in 0..30 {
        sb.get("/v1/account").await;
    }
    let refilled = (started.elapsed().as_secs_f64() * 20.0).ceil() as u64;
    let r = rate(&sb).await;
    assert_eq!(r["requests"], 30, "{r}");
    let accepted = r["accepted"].as_u64().unwrap();
    assert!((20..=(20 + refilled).min(30)).contains(&accepted), "{r}");
    assert_eq!(r["rate_limited"].as_u64().unwrap(), 30 - accepted, "{r}");
    assert_eq!(r["chaos_rate_limited"], 0);
    assert!(r["max_in_any_second"].as_u64().unwrap() <= accepted);
    assert!(r["max_in_any_second"].as_u64().unwrap() >= 20, "{r}");
    let per_second: u64 = r["accepted_per_second"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(per_second, accepted, "{r}");
    assert!(r["busy_seconds"].as_u64().unwrap() >= 1);

    // Reset: counts start again, the limit stays.
    let reset: Value = sb
        .http
        .post(format!("{}/_sandbox/rate/reset", sb.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reset["requests"], 0);
    assert_eq!(reset["limit_per_second"], 20);
    sb.stop().await;
}

#[tokio::test]
async fn without_a_limit_nothing_is_refused_and_chaos_429s_count_apart() {
    let mut cfg = config();
    cfg.chaos = "seed=5,api_429=0.5".parse().unwrap();
    let sb = spawn_with(cfg).await;
    let mut chaos = 0;
    for _ in 0..40 {
        let r = sb.get("/v1/account").await;
        if r.status == 429 {
            assert!(r.header("stripe-rate-limited-reason").is_none());
            chaos += 1;
        }
    }
    assert!(chaos > 0);
    let r = rate(&sb).await;
    assert_eq!(r["limit_per_second"], Value::Null);
    assert_eq!(r["requests"], 40);
    assert_eq!(r["accepted"], 40);
    assert_eq!(r["rate_limited"], 0);
    assert_eq!(r["chaos_rate_limited"], chaos);
    sb.stop().await;
}
