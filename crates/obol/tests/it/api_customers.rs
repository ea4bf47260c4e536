//! Customers, customer tokens and ownership, over HTTP against `obol serve`.

use serde_json::json;

use crate::helpers::{Backend, Obol};
use crate::on_both_backends;

on_both_backends!(
    create_and_read_a_customer,
    duplicate_external_id_is_409_with_the_existing_id,
    a_customer_token_reads_only_its_own_customer,
    missing_or_wrong_credentials_are_401,
    revoked_and_expired_tokens_are_401,
    customer_token_cannot_call_backend_endpoints,
    bad_customer_fields_are_refused_with_codes,
);

async fn create_and_read_a_customer(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (status, created) = obol
        .post(
            "/v1/customers",
            json!({"external_id": "member-42", "email": "ana@example.com", "name": "Ana"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("cus_"), "{id}");
    assert_eq!(created["external_id"], "member-42");
    assert_eq!(created["email"], "ana@example.com");
    assert_eq!(created["name"], "Ana");
    assert_eq!(created["stripe_customer_id"], serde_json::Value::Null);
    assert!(created["created_at"].is_string());
    let (status, read) = obol.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(read, created);
}

async fn duplicate_external_id_is_409_with_the_existing_id(backend: Backend) {
    let obol = Obol::start(backend).await;
    let first = obol.create_customer("member-7").await;
    let (status, body) = obol
        .post("/v1/customers", json!({"external_id": "member-7"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "customer_exists");
    assert_eq!(body["error"]["existing_id"], first["id"]);
}

async fn a_customer_token_reads_only_its_own_customer(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ana = obol.create_customer("ana").await;
    let bob = obol.create_customer("bob").await;
    let ana_token = obol.customer_token(ana["id"].as_str().unwrap(), 600).await;
    assert!(ana_token.starts_with("obol_ct_"));

    let (status, body) = obol
        .get_as(
            &format!("/v1/customers/{}", ana["id"].as_str().unwrap()),
            &ana_token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], ana["id"]);

    // Someone else's customer and a guessed id look exactly alike: 404.
    let (status, other) = obol
        .get_as(
            &format!("/v1/customers/{}", bob["id"].as_str().unwrap()),
            &ana_token,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(other["error"]["code"], "customer_not_found");
    let (status, guessed) = obol
        .get_as("/v1/customers/cus_01jzzzzzzzzzzzzzzzzzzzzzzz", &ana_token)
        .await;
    assert_eq!(status, 404);
    assert_eq!(guessed, other);
    let (status, _) = obol
        .get("/v1/customers/cus_01jzzzzzzzzzzzzzzzzzzzzzzz")
        .await;
    assert_eq!(status, 404);
    let (status, _) = obol.get("/v1/customers/not-an-id").await;
    assert_eq!(status, 404);
}

async fn missing_or_wrong_credentials_are_401(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ana = obol.create_customer("ana").await;
    let path = format!("/v1/customers/{}", ana["id"].as_str().unwrap());

    let r = obol.http.get(obol.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");

    for (bearer, code) in [
        (
            "obol_sk_wrongwrongwrongwrongwrongwrongwrong",
            "invalid_api_key",
        ),
        ("sk_test_not_an_obol_key", "invalid_api_key"),
        ("obol_ct_notarealtoken", "invalid_customer_token"),
    ] {
        let (status, body) = obol.get_as(&path, bearer).await;
        assert_eq!(status, 401, "{bearer}");
        assert_eq!(body["error"]["code"], code, "{bearer}");
    }
    let r = obol
        .http
        .post(obol.url("/v1/customers"))
        .bearer_auth("obol_sk_wrongwrongwrongwrongwrongwrongwrong")
        .json(&json!({"external_id": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn revoked_and_expired_tokens_are_401(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ana = obol.create_customer("ana").await;
    let ana_id = ana["id"].as_str().unwrap();
    let path = format!("/v1/customers/{ana_id}");

    let (status, created) = obol
        .post("/v1/customer-tokens", json!({"customer_id": ana_id}))
        .await;
    assert_eq!(status, 201);
    let token = created["token"].as_str().unwrap();
    let (status, _) = obol.get_as(&path, token).await;
    assert_eq!(status, 200);
    let r = obol
        .http
        .delete(obol.url(&format!(
            "/v1/customer-tokens/{}",
            created["id"].as_str().unwrap()
        )))
        .bearer_auth(&obol.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let revoked: serde_json::Value = r.json().await.unwrap();
    assert!(revoked["revoked_at"].is_string());
    assert!(
        revoked.get("token").is_none(),
        "the token is shown only once"
    );
    let (status, body) = obol.get_as(&path, token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_customer_token"))
    );

    let short = obol.customer_token(ana_id, 1).await;
    let (status, _) = obol.get_as(&path, &short).await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = obol.get_as(&path, &short).await;
        if status == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "token never expired");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let (status, body) = obol
        .post(
            "/v1/customer-tokens",
            json!({"customer_id": ana_id, "ttl_seconds": 0}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("ttl_out_of_range"))
    );
    let (status, body) = obol
        .post(
            "/v1/customer-tokens",
            json!({"customer_id": "cus_01jzzzzzzzzzzzzzzzzzzzzzzz"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("customer_not_found"))
    );
}

async fn customer_token_cannot_call_backend_endpoints(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ana = obol.create_customer("ana").await;
    let token = obol.customer_token(ana["id"].as_str().unwrap(), 600).await;
    for (path, body) in [
        ("/v1/customers", json!({"external_id": "mallory"})),
        ("/v1/customer-tokens", json!({"customer_id": ana["id"]})),
    ] {
        let r = obol
            .http
            .post(obol.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "secret_key_required");
    }
}

async fn bad_customer_fields_are_refused_with_codes(backend: Backend) {
    let obol = Obol::start(backend).await;
    for (body, status, code) in [
        (json!({"email": "not-an-email"}), 422, "invalid_email"),
        (json!({"external_id": ""}), 422, "field_empty"),
        (json!({"name": "x".repeat(300)}), 422, "field_too_long"),
        (json!({"external_id": 42}), 400, "invalid_body"),
        (json!({"externl_id": "typo"}), 400, "invalid_body"),
    ] {
        let (s, b) = obol.post("/v1/customers", body.clone()).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (status, Some(code)),
            "{body} -> {b}"
        );
    }
}

#[tokio::test]
async fn guessing_keys_is_throttled_per_address() {
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_HTTP__AUTH_FAILURES_PER_MINUTE", "5")
        .start()
        .await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let (status, _) = obol
            .get_as("/v1/customers/x", &format!("obol_sk_guess{i:0>40}"))
            .await;
        statuses.push(status);
    }
    // Five failures fit the budget; the sixth exceeds it and blocks the address.
    assert_eq!(&statuses[..6], &[401; 6], "{statuses:?}");
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");
    // A further guess is refused with Retry-After; the right key is not
    // (it is checked first: other callers' failures never lock it out).
    let r = obol
        .http
        .get(obol.url("/v1/customers/x"))
        .bearer_auth("obol_sk_guess_once_more_0000000000000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let (status, body) = obol.get("/v1/customers/x").await;
    assert_eq!(status, 404, "{body}");
    // Health stays open.
    let (status, _) = obol.get("/health").await;
    assert_eq!(status, 200);
}
