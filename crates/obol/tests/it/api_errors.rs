//! Bad input as a new user would send it: every answer is JSON with a
//! stable code, and the server keeps serving.

use serde_json::Value;

use crate::helpers::{Backend, Obol};
use crate::on_both_backends;

on_both_backends!(
    bad_requests_answer_in_the_error_shape,
    an_unknown_status_filter_is_400_on_every_list,
);

/// Every list with a `status` filter refuses a status it does not know
/// (before, deliveries and disputes answered 200 with an empty list, as
/// if nothing matched).
async fn an_unknown_status_filter_is_400_on_every_list(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (status, ep) = obol
        .post(
            "/v1/webhook-endpoints",
            serde_json::json!({"url": "https://example.com/hooks", "event_types": ["*"]}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    let ep = ep["id"].as_str().unwrap();
    for path in [
        "/v1/payments?status=bogus".to_string(),
        "/v1/disputes?status=bogus".to_string(),
        "/v1/tasks?status=bogus".to_string(),
        "/v1/webhook-events?status=bogus".to_string(),
        "/v1/jobs?status=bogus".to_string(),
        format!("/v1/webhook-endpoints/{ep}/deliveries?status=bogus"),
    ] {
        let (status, body) = obol.get(&path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_query")),
            "{path}: {body}"
        );
    }
}

async fn bad_requests_answer_in_the_error_shape(backend: Backend) {
    let obol = Obol::start(backend).await;
    let post_raw = |body: Vec<u8>, content_type: &'static str| {
        obol.http
            .post(obol.url("/v1/customers"))
            .bearer_auth(&obol.api_key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let check = |r: reqwest::Response, status: u16, code: &'static str| async move {
        assert_eq!(r.status().as_u16(), status, "expected {code}");
        assert!(
            r.headers().get("x-request-id").is_some(),
            "request id on {code}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    };

    check(
        post_raw(b"{\"external_id\": ".to_vec(), "application/json")
            .await
            .unwrap(),
        400,
        "malformed_json",
    )
    .await;
    check(
        post_raw(
            b"external_id=x".to_vec(),
            "application/x-www-form-urlencoded",
        )
        .await
        .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let (status, body) = oversized_post(&obol, 2 * 1024 * 1024).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "body_too_large");
    check(
        obol.http
            .get(obol.url("/v1/nothing-here"))
            .send()
            .await
            .unwrap(),
        404,
        "route_not_found",
    )
    .await;
    check(
        obol.http
            .delete(obol.url("/v1/customers"))
            .bearer_auth(&obol.api_key)
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;

    // Still serving, and nothing half-written.
    let (status, health) = obol.get("/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let created = obol.create_customer("after-the-storm").await;
    assert!(created["id"].is_string());
}

/// Posts a body of `len` bytes the way curl does for large bodies
/// (`Expect: 100-continue`): obol must refuse on the declared length alone.
async fn oversized_post(obol: &Obol, len: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = obol.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\
         Connection: close\r\n\r\n",
        obol.api_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(text.clone())),
    )
}
