//! The HTTP layer under hostile clients: security headers, request ids
//! obol did not make, slow or stalled clients, connection limits, and
//! errors the HTTP stack itself produces.

use std::time::{Duration, Instant};

use crate::helpers::{Backend, Obol};

/// Finding 8: nothing told caches, browsers or framers how to treat
/// answers carrying tokens and secrets.
#[tokio::test]
async fn responses_carry_security_headers() {
    let obol = Obol::start(Backend::Sqlite).await;
    let health = obol.http.get(obol.url("/health")).send().await.unwrap();
    let missing = obol.http.get(obol.url("/v1/nothing")).send().await.unwrap();
    let unauthenticated = obol
        .http
        .get(obol.url("/v1/webhook-endpoints"))
        .send()
        .await
        .unwrap();
    let created = obol
        .http
        .post(obol.url("/v1/customers"))
        .bearer_auth(&obol.api_key)
        .json(&serde_json::json!({"external_id": "hdr", "email": "h@example.com"}))
        .send()
        .await
        .unwrap();
    for (what, r) in [
        ("health", &health),
        ("404", &missing),
        ("401", &unauthenticated),
        ("201", &created),
    ] {
        let h = r.headers();
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(get("cache-control"), "no-store", "{what}: {h:?}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(
            get("content-security-policy"),
            "default-src 'none'; frame-ancestors 'none'",
            "{what}"
        );
        assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    }
}

/// Finding 8: a client's `X-Request-Id` was echoed and logged as given,
/// markup and 8,000 characters included.
#[tokio::test]
async fn a_foreign_request_id_is_replaced_not_echoed() {
    let obol = Obol::start(Backend::Sqlite).await;
    let foreign = format!("<script>alert(1)</script>{}", "a".repeat(8000));
    let r = obol
        .http
        .get(obol.url("/v1/no-such-route"))
        .header("x-request-id", &foreign)
        .send()
        .await
        .unwrap();
    let ours = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(
        ours.starts_with("req_") && ours.len() == 30,
        "echoed or malformed: {}",
        &ours[..ours.len().min(80)]
    );
    // Both ids are on the request's log lines; the client's sanitized.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Some(l) = obol
            .output()
            .lines()
            .find(|l| l.contains(&ours) && l.contains("request refused"))
        {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no log line:\n{}", obol.output());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(line.contains("client_request_id=\"_script_alert"), "{line}");
    assert!(!line.contains("<script>"), "{line}");
    assert!(
        !obol.output().contains(&"a".repeat(100)),
        "the long id was logged"
    );

    // An id of obol's own form (a retry quoting an earlier answer) stays.
    let r = obol
        .http
        .get(obol.url("/health"))
        .header("x-request-id", &ours)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"].to_str().unwrap(), ours);
}
