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

/// Reads until the peer closes (EOF or reset) or `within` passes;
/// returns what was read and whether the connection closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn addr(obol: &Obol) -> String {
    obol.base_url.trim_start_matches("http://").to_string()
}

/// Finding 4: a client sending one header byte every second kept its
/// connection (and a task) forever. With a 2 s header timeout it is cut.
#[tokio::test]
async fn a_slowloris_header_is_cut_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_HTTP__HEADER_TIMEOUT_SECONDS", "2")
        .env("OBOL_HTTP__IDLE_TIMEOUT_SECONDS", "60")
        .start()
        .await;
    let mut stream = tokio::net::TcpStream::connect(addr(&obol)).await.unwrap();
    let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    let mut closed = false;
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let (_, c) = read_until_closed(&mut stream, Duration::from_secs(1)).await;
        if c {
            closed = true;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still open after 10 s"
        );
    }
    assert!(closed, "the connection outlived the header timeout");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

/// Finding 4: a body that stalls mid-way is cut after the body timeout
/// (answered 408 in obol's shape), not held until the client gives up.
#[tokio::test]
async fn a_stalled_body_is_cut_after_the_body_timeout() {
    use tokio::io::AsyncWriteExt;
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_HTTP__BODY_TIMEOUT_SECONDS", "2")
        .start()
        .await;
    let a = addr(&obol);
    let mut stream = tokio::net::TcpStream::connect(&a).await.unwrap();
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"external_id\": ",
        obol.api_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(8)).await;
    assert!(
        response.starts_with("HTTP/1.1 408") || closed,
        "neither answered nor closed within 8 s: {response:?}"
    );
    assert!(response.contains("request_timeout"), "{response}");
}

/// Finding 4: idle keep-alive connections stayed open indefinitely.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_HTTP__IDLE_TIMEOUT_SECONDS", "1")
        .env("OBOL_HTTP__HEADER_TIMEOUT_SECONDS", "60")
        .start()
        .await;
    let mut stream = tokio::net::TcpStream::connect(addr(&obol)).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(8)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        closed,
        "the idle keep-alive connection is still open after 8 s"
    );
}

/// Finding 4: no cap on connections. With a cap of 2, a third connection
/// gets no answer while two are open, and is served once one closes.
#[tokio::test]
async fn connections_beyond_the_cap_wait_or_are_refused() {
    use tokio::io::AsyncWriteExt;
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_HTTP__MAX_CONNECTIONS", "2")
        .env("OBOL_HTTP__IDLE_TIMEOUT_SECONDS", "60")
        .env("OBOL_HTTP__HEADER_TIMEOUT_SECONDS", "60")
        .start()
        .await;
    let a = addr(&obol);
    let get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = tokio::net::TcpStream::connect(&a).await.unwrap();
    let mut second = tokio::net::TcpStream::connect(&a).await.unwrap();
    for s in [&mut first, &mut second] {
        s.write_all(get).await.unwrap();
        let (r, _) = read_until_closed(s, Duration::from_millis(1500)).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    // The kernel completes the handshake (backlog); obol does not serve it.
    let mut third = tokio::net::TcpStream::connect(&a).await.unwrap();
    third.write_all(get).await.unwrap();
    let (r, closed) = read_until_closed(&mut third, Duration::from_secs(2)).await;
    assert!(r.is_empty() && !closed, "served beyond the cap: {r:?}");
    drop(first);
    let (r, _) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(
        r.starts_with("HTTP/1.1 200"),
        "not served after a slot freed: {r:?}"
    );
}

/// Sends raw bytes; returns (status, body) of the answer, or (0, "") when
/// the connection closed without one.
async fn raw(obol: &Obol, request: &[u8]) -> (u16, String) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr(obol)).await.unwrap();
    // hyper may answer and close before it read everything we send.
    let _ = stream.write_all(request).await;
    let (text, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

/// Finding 8: errors of the HTTP layer came with empty bodies. Those obol
/// sees (a long URI, large headers) now answer in the JSON shape; those
/// hyper answers before any service runs (conflicting Content-Length, a
/// head beyond hyper's buffer) keep their status with an empty body, as
/// the README's Security section documents.
#[tokio::test]
async fn http_layer_errors_answer_in_the_json_shape() {
    let obol = Obol::start(Backend::Sqlite).await;
    let json_code = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
    };
    let long_uri = format!(
        "GET /v1/customers?q={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(10_000)
    );
    let (status, body) = raw(&obol, long_uri.as_bytes()).await;
    assert_eq!(status, 414, "{body}");
    assert_eq!(json_code(&body).as_deref(), Some("uri_too_long"), "{body}");

    let big_headers = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(20_000)
    );
    let (status, body) = raw(&obol, big_headers.as_bytes()).await;
    assert_eq!(status, 431, "{body}");
    assert_eq!(
        json_code(&body).as_deref(),
        Some("headers_too_large"),
        "{body}"
    );

    // Answered by hyper itself: status right, body empty (documented).
    let (status, body) = raw(
        &obol,
        b"POST /v1/customers HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    )
    .await;
    assert_eq!((status, body.as_str()), (400, ""), "{body}");
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "c".repeat(500_000)
    );
    let (status, _) = raw(&obol, huge.as_bytes()).await;
    assert_eq!(status, 431);

    // Still serving.
    let (status, _) = obol.get("/health").await;
    assert_eq!(status, 200);
}

/// Capability tokens in URLs (payment links, card-update links, connect
/// links, invoice and 3-D Secure pages) open what they name: the request
/// log, at debug level, shows the route's `{token}` instead.
#[tokio::test]
async fn capability_tokens_in_paths_never_reach_the_log() {
    use serde_json::json;
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_LOG", "debug")
        .start()
        .await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let last = |url: &str| {
        url.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    };
    let mut tokens = Vec::new();
    let mut visit = Vec::new();

    let customer = obol.create_customer("logged").await;
    let (s, card) = obol
        .post(
            &format!(
                "/v1/customers/{}/card-update-links",
                customer["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "{card}");
    let url = card["url"].as_str().unwrap().to_string();
    tokens.push(last(&url));
    visit.push(url);

    let (s, order) = obol
        .post(
            "/v1/orders",
            json!({"email": "ana@example.com", "currency": "eur",
                   "line_items": [{"name": "Riesling 2022", "unit_amount": 2500, "quantity": 1}]}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    let (s, link) = obol
        .post("/v1/payment-links", json!({"order_id": order["id"]}))
        .await;
    assert_eq!(s, 201, "{link}");
    let token = link["token"].as_str().unwrap().to_string();
    visit.push(link["payment_url"].as_str().unwrap().to_string());
    visit.push(obol.url(&format!("/v1/payment-links/{token}")));
    tokens.push(token);

    let (s, org) = obol
        .post("/v1/organizations", json!({"name": "Weingut Log"}))
        .await;
    assert_eq!(s, 201, "{org}");
    let (s, connect) = obol
        .post(
            &format!(
                "/v1/organizations/{}/connect-links",
                org["id"].as_str().unwrap()
            ),
            json!({"return_url": "https://crm.example/back"}),
        )
        .await;
    assert_eq!(s, 201, "{connect}");
    let url = connect["url"].as_str().unwrap().to_string();
    tokens.push(last(&url));
    visit.push(url);

    // Made-up tokens on the other token routes, and one on no route.
    for (i, path) in [
        "/pay/invoices/",
        "/pay/actions/",
        "/v1/public/invoices/",
        "/v1/public/payment-actions/",
        "/connect/stripe/authorize/",
    ]
    .iter()
    .enumerate()
    {
        let fake = format!("{i}{}", "Qz7".repeat(14));
        visit.push(obol.url(&format!("{path}{fake}")));
        tokens.push(fake);
    }
    let stray = "Wx9".repeat(15);
    visit.push(obol.url(&format!("/connect/stripe/authorize/{stray}/")));
    tokens.push(stray);

    for url in &visit {
        let r = browser.get(url).send().await.unwrap();
        assert!(r.status().as_u16() < 500, "{url}: {}", r.status());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let output = obol.output();
    assert!(
        output.contains("/pay/{token}"),
        "the requests were logged: {output}"
    );
    assert!(
        output.contains("/connect/stripe/authorize/{token}"),
        "{output}"
    );
    for token in &tokens {
        assert!(
            !output.contains(token.as_str()),
            "{token} was logged:\n{output}"
        );
    }
}
