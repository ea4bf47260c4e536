//! The failed-authentication throttle: a valid credential is never locked
//! out by other callers' failures, budgets are per (client address,
//! credential kind), and `X-Forwarded-For` counts only from trusted proxies.

use std::time::{Duration, Instant};

use crate::helpers::{Backend, Obol};
use crate::on_both_backends;

on_both_backends!(
    auth_failures_never_lock_out_a_valid_secret_key,
    expired_customer_tokens_do_not_throttle_the_secret_key,
    trusted_proxy_forwarded_for_gives_each_client_its_own_budget,
    untrusted_forwarded_for_is_ignored,
    wrong_guest_tokens_throttle_only_guest_tokens,
);

/// More than the default budget of 30 failures a minute.
const BURST: usize = 40;

const WRONG_KEY: &str = "obol_sk_wrongwrongwrongwrongwrongwrongwrong";

/// `GET path` with `bearer`, from the client `xff` names (if any); the status.
async fn status_of(obol: &Obol, path: &str, bearer: &str, xff: Option<&str>) -> u16 {
    let mut req = obol.http.get(obol.url(path)).bearer_auth(bearer);
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap().status().as_u16()
}

/// `BURST` failed attempts; the statuses seen.
async fn fail_many(obol: &Obol, path: &str, bearer: &str, xff: Option<&str>) -> Vec<u16> {
    let mut seen = Vec::new();
    for _ in 0..BURST {
        seen.push(status_of(obol, path, bearer, xff).await);
    }
    seen
}

async fn customer_path(obol: &Obol) -> String {
    let ana = obol.create_customer("ana").await;
    format!("/v1/customers/{}", ana["id"].as_str().unwrap())
}

/// Finding: after ~30 bad `Authorization` headers from one address, the
/// real secret key from that address answered 429 too.
async fn auth_failures_never_lock_out_a_valid_secret_key(backend: Backend) {
    let obol = Obol::start(backend).await;
    let path = customer_path(&obol).await;
    let seen = fail_many(&obol, &path, WRONG_KEY, None).await;
    assert_eq!(seen.first(), Some(&401), "{seen:?}");
    assert_eq!(
        seen.last(),
        Some(&429),
        "the guesser is throttled: {seen:?}"
    );
    let key = obol.api_key.clone();
    assert_eq!(status_of(&obol, &path, &key, None).await, 200);
    // And a wrong key from the throttled address is still refused with 429.
    assert_eq!(status_of(&obol, &path, WRONG_KEY, None).await, 429);
}

/// Finding: a browser polling with an expired customer token locked the
/// host's backend out (same address, one budget for every credential).
async fn expired_customer_tokens_do_not_throttle_the_secret_key(backend: Backend) {
    let obol = Obol::start(backend).await;
    let path = customer_path(&obol).await;
    let customer_id = path.rsplit('/').next().unwrap().to_string();
    let live = obol.customer_token(&customer_id, 600).await;
    assert_eq!(status_of(&obol, &path, &live, None).await, 200);
    let expired = obol.customer_token(&customer_id, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(&obol, &path, &expired, None).await != 401 {
        assert!(Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = fail_many(&obol, &path, &expired, None).await;
    assert_eq!(seen.last(), Some(&429), "{seen:?}");
    let key = obol.api_key.clone();
    assert_eq!(status_of(&obol, &path, &key, None).await, 200);
    // Another kind, another budget: a wrong secret key is 401, not 429.
    assert_eq!(status_of(&obol, &path, WRONG_KEY, None).await, 401);
    // A customer token that authenticated before the burst still does.
    assert_eq!(status_of(&obol, &path, &live, None).await, 200);
}

/// Behind a reverse proxy every client shares its address: with the
/// proxy trusted, each client's own address has its own budget.
async fn trusted_proxy_forwarded_for_gives_each_client_its_own_budget(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_HTTP__TRUSTED_PROXIES", "127.0.0.1,::1")
        .start()
        .await;
    let path = customer_path(&obol).await;
    let guesser = Some("203.0.113.7");
    let seen = fail_many(&obol, &path, WRONG_KEY, guesser).await;
    assert_eq!(seen.last(), Some(&429), "{seen:?}");
    // Another client behind the same proxy: its own budget. The left-most
    // entry is whatever that client claimed and is not read.
    let other = Some("203.0.113.7, 198.51.100.2");
    assert_eq!(status_of(&obol, &path, WRONG_KEY, other).await, 401);
    // The right-most untrusted address is the client, past trusted hops.
    let via_two_proxies = Some("203.0.113.7, 127.0.0.1");
    assert_eq!(
        status_of(&obol, &path, WRONG_KEY, via_two_proxies).await,
        429
    );
    let key = obol.api_key.clone();
    assert_eq!(status_of(&obol, &path, &key, guesser).await, 200);
}

/// A peer that is not a trusted proxy cannot pick a fresh budget by
/// sending a new `X-Forwarded-For` each time.
async fn untrusted_forwarded_for_is_ignored(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_HTTP__TRUSTED_PROXIES", "10.0.0.0/8")
        .start()
        .await;
    let path = customer_path(&obol).await;
    let mut seen = Vec::new();
    for i in 0..BURST {
        let xff = format!("203.0.113.{i}");
        seen.push(status_of(&obol, &path, WRONG_KEY, Some(&xff)).await);
    }
    assert_eq!(seen.last(), Some(&429), "{seen:?}");
    assert_eq!(
        status_of(&obol, &path, WRONG_KEY, Some("198.51.100.99")).await,
        429
    );
    let key = obol.api_key.clone();
    assert_eq!(
        status_of(&obol, &path, &key, Some("198.51.100.99")).await,
        200
    );
}

/// Guest tokens are the third kind: wrong ones (404 from the use case)
/// spend their own budget; the order's real guest token and the secret
/// key still pass.
async fn wrong_guest_tokens_throttle_only_guest_tokens(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (status, order) = obol
        .post(
            "/v1/orders",
            serde_json::json!({"email": "ana@example.com", "currency": "eur",
                "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    let guest = order["guest_token"].as_str().unwrap().to_string();
    let as_guest = |token: String| {
        let req = obol
            .http
            .get(obol.url(&path))
            .header("x-guest-token", token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(as_guest(guest.clone()).await, 200);
    let mut seen = Vec::new();
    for i in 0..BURST {
        seen.push(as_guest(format!("obol_gt_guess{i:0>40}")).await);
    }
    assert_eq!(seen.first(), Some(&404), "{seen:?}");
    assert_eq!(seen.last(), Some(&429), "{seen:?}");
    assert_eq!(as_guest(guest).await, 200, "the real guest token");
    let key = obol.api_key.clone();
    assert_eq!(status_of(&obol, &path, &key, None).await, 200);
}
