//! Logs an on-call engineer can follow: JSON lines at `OBOL_LOG=debug`
//! carry the request id, the organisation and the ids a line is about;
//! a full flow leaves no secret and no capability token in them; a panic
//! in a handler answers 500 with the request id and is logged once.

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};
use crate::inbox::eventually;

/// The JSON lines of a process's stderr (stdout lines, such as
/// `listening on`, are not JSON and are skipped).
fn json_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("level").is_some())
        .collect()
}

#[tokio::test]
async fn a_full_flow_logs_ids_and_no_secret() {
    let api_key = crate::helpers::random_api_key();
    let webhook_secret = "whsec_LOGFLOWxxxxxxxxxxxxxxxxxxxxxxxxxx";
    let encryption_key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    };
    let metrics_token = "metrics-LOGFLOW-0123456789abcdef";
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_API_KEYS", &api_key)
        .env("OBOL_STRIPE__WEBHOOK_SECRETS", webhook_secret)
        .env("OBOL_SECRETS__ENCRYPTION_KEY", &encryption_key)
        .env("OBOL_METRICS__TOKEN", metrics_token)
        .env("OBOL_LOG", "debug")
        .env("OBOL_LOG_FORMAT", "json")
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .start()
        .await;
    let mut secrets: Vec<(String, &str)> = vec![
        (api_key["obol_sk_".len()..].to_string(), "the API key"),
        (
            webhook_secret["whsec_".len()..].to_string(),
            "the webhook secret",
        ),
        (encryption_key.clone(), "the encryption key"),
        (metrics_token.to_string(), "the metrics token"),
    ];

    // A customer, their token, a card-update link.
    let ana = obol.create_customer("ana-logs").await;
    let cus = ana["id"].as_str().unwrap().to_string();
    let ct = obol.customer_token(&cus, 300).await;
    obol.get_as(&format!("/v1/customers/{cus}"), &ct).await;
    secrets.push((ct["obol_ct_".len()..].to_string(), "a customer token"));
    let (status, link) = obol
        .post(
            &format!("/v1/customers/{cus}/card-update-links"),
            json!({"ttl_seconds": 600}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let card_url = link["url"].as_str().unwrap().to_string();
    let card_token = card_url.rsplit('/').next().unwrap().to_string();
    reqwest::get(&card_url).await.unwrap();
    secrets.push((card_token, "a card-update token"));

    // Pay first: intent (with its client secret), order, capture, refund.
    let (status, pi) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 4999, "currency": "eur"}),
        )
        .await;
    assert_eq!(status, 201, "{pi}");
    let client_secret = pi["client_secret"].as_str().unwrap().to_string();
    let secret_part = client_secret.split("_secret_").nth(1).unwrap().to_string();
    secrets.push((secret_part, "a client secret"));
    let pi_id = pi["id"].as_str().unwrap().to_string();
    let base = crate::inbox::sandbox(&obol).await;
    let confirmed = crate::inbox::stripe_post(
        &base,
        &format!("/v1/payment_intents/{pi_id}/confirm"),
        &[
            ("payment_method", "pm_card_visa"),
            ("return_url", "https://shop.example.com/return"),
        ],
    )
    .await;
    assert_eq!(confirmed["status"], "requires_capture", "{confirmed}");
    let (status, order) = obol
        .post(
            "/v1/orders",
            json!({
                "email": "ana@example.com", "currency": "eur",
                "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 2}],
                "shipping": {"name": "Standard", "amount": 999},
                "payment_reference": pi_id
            }),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let payment = order["payment_id"].as_str().unwrap().to_string();
    eventually(&obol, &format!("/v1/payments/{payment}"), |b| {
        b["status"] == "completed"
    })
    .await;
    let (status, refund) = obol
        .post(
            &format!("/v1/payments/{payment}/refunds"),
            json!({"amount": 500}),
        )
        .await;
    assert_eq!(status, 201, "{refund}");

    // A guest order, its guest token, a payment link for it.
    let (status, guest) = obol
        .post(
            "/v1/orders",
            json!({
                "email": "guest@example.com", "currency": "eur",
                "line_items": [{"name": "Sekt", "unit_amount": 1500, "quantity": 1}]
            }),
        )
        .await;
    assert_eq!(status, 201, "{guest}");
    let guest_token = guest["guest_token"].as_str().unwrap().to_string();
    let guest_id = guest["id"].as_str().unwrap().to_string();
    let r = reqwest::Client::new()
        .get(obol.url(&format!("/v1/orders/{guest_id}")))
        .header("x-guest-token", &guest_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    secrets.push((guest_token["obol_gt_".len()..].to_string(), "a guest token"));
    let (status, pl) = obol
        .post("/v1/payment-links", json!({"order_id": guest_id}))
        .await;
    assert_eq!(status, 201, "{pl}");
    let pl_token = pl["token"].as_str().unwrap().to_string();
    reqwest::get(obol.url(&format!("/pay/{pl_token}")))
        .await
        .unwrap();
    reqwest::get(obol.url(&format!("/v1/payment-links/{pl_token}")))
        .await
        .unwrap();
    if let Some(cs) = pl["client_secret"].as_str() {
        secrets.push((
            cs.split("_secret_").nth(1).unwrap().to_string(),
            "a link's client secret",
        ));
    }
    secrets.push((pl_token, "a payment-link token"));

    // An invoice and its public link.
    let (_, invoice_token) = crate::invoices::issued(
        &obol,
        json!({"customer_id": cus, "currency": "eur", "due_date": "2027-01-15",
               "line_items": [{"description": "Consultation", "unit_amount": 5000, "quantity": 1}]}),
    )
    .await;
    reqwest::get(obol.url(&format!("/pay/invoices/{invoice_token}")))
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .post(obol.url(&format!(
            "/v1/public/invoices/{invoice_token}/payment-intent"
        )))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap_or_default();
    if let Some(cs) = body["client_secret"].as_str() {
        secrets.push((
            cs.split("_secret_").nth(1).unwrap().to_string(),
            "an invoice's client secret",
        ));
    }
    secrets.push((invoice_token, "an invoice token"));

    // A background job: an e-mail, queued as a use case queues one (no
    // SMTP configured: the job logs it).
    let email_id = {
        let store = obol.db.store().await;
        let mut tx = store.begin().await.unwrap();
        let row = obol::email::enqueue(
            &mut tx.conn(),
            &obol::context::AccountId::platform(),
            Some(&cus),
            "ana@example.com",
            &obol::email::Template::PaymentActionRequired {
                business: "Weingut Ana".into(),
                amount: 4999,
                currency: "eur".into(),
                description: "Wine club".into(),
                action_url: "https://club.example/pay/3ds/x".into(),
                expires_at: "2026-12-03T14:00:00Z".parse().unwrap(),
            },
            "logs-flow",
            obol::storage::now(),
        )
        .await
        .unwrap()
        .unwrap();
        tx.commit().await.unwrap();
        store.close().await;
        row.id
    };
    eventually(&obol, &format!("/v1/emails/{email_id}"), |e| {
        e["status"] == "logged"
    })
    .await;

    // Wrong credentials are logged as refusals, never echoed.
    obol.get_as(
        "/v1/customers",
        "obol_sk_WRONGLOGKEYxxxxxxxxxxxxxxxxxxxxxxxxx",
    )
    .await;
    secrets.push(("WRONGLOGKEY".into(), "a wrong API key"));
    let r = reqwest::Client::new()
        .get(obol.url("/metrics"))
        .bearer_auth(metrics_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (_, _, output) = obol.terminate();
    let lines = json_lines(&output);
    assert!(lines.len() > 50, "JSON lines expected:\n{output}");
    for (secret, what) in &secrets {
        assert!(
            secret.len() >= 8,
            "{what}: {secret:?} too short to search for"
        );
        assert!(
            !output.contains(secret.as_str()),
            "{what} ({secret}) leaked into the log:\n{}",
            output
                .lines()
                .filter(|l| l.contains(secret.as_str()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // Request lines carry the request id and the organisation.
    let refund_line = lines
        .iter()
        .find(|l| {
            l["span"]["name"] == "request"
                && l["span"]["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/refunds"))
                && l["span"]["account_id"] == "default"
        })
        .unwrap_or_else(|| panic!("no refund request line with account_id:\n{output}"));
    assert!(refund_line["span"]["request_id"]
        .as_str()
        .unwrap()
        .starts_with("req_"));
    // Stripe calls name their endpoint (with the object's id) and status.
    assert!(
        lines.iter().any(|l| l["message"] == "Stripe call"
            && l["stripe_path"].as_str() == Some(&format!("/v1/payment_intents/{pi_id}/capture"))
            && l["status"] == 200),
        "no Stripe capture line:\n{output}"
    );
    // Webhook application lines carry the event's ids and organisation.
    assert!(
        lines.iter().any(|l| l["span"]["name"] == "inbox_event"
            && l["span"]["event_id"]
                .as_str()
                .is_some_and(|e| e.starts_with("evt_"))
            && l["span"]["event_type"] == "payment_intent.succeeded"
            && l["span"]["account_id"] == "default"),
        "no inbox_event line:\n{output}"
    );
    // Job lines carry the job and its payload's object.
    assert!(
        lines.iter().any(|l| l["span"]["name"] == "job"
            && l["span"]["job_id"]
                .as_str()
                .is_some_and(|j| j.starts_with("job_"))
            && l["span"]["job_kind"] == "send_email"
            && l["span"]["email_id"] == email_id.as_str()
            && l["span"]["account_id"] == "default"),
        "no job line:\n{output}"
    );
}

#[tokio::test]
async fn a_panicking_handler_answers_500_with_the_request_id_and_logs_once() {
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_LOG_FORMAT", "json")
        .start()
        .await;
    // Without credentials: 401, nothing panics.
    let r = reqwest::Client::new()
        .post(obol.url("/v1/sandbox/panic"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = obol
        .http
        .post(obol.url("/v1/sandbox/panic"))
        .bearer_auth(&obol.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let request_id = r
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(request_id.starts_with("req_"), "{request_id}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "internal_error", "{body}");
    assert!(
        !body.to_string().contains("deliberate"),
        "the panic's message stays in the log: {body}"
    );
    // The server goes on.
    let (status, _) = obol.get("/health").await;
    assert_eq!(status, 200);
    let (_, _, output) = obol.terminate();
    let panics: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("deliberate panic"))
        .collect();
    assert_eq!(panics.len(), 1, "one line for the panic:\n{output}");
    let line: Value = serde_json::from_str(panics[0]).unwrap();
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["span"]["request_id"], request_id.as_str(), "{line}");
    assert!(line["location"]
        .as_str()
        .unwrap()
        .contains("diagnostics.rs"));
    assert!(
        !output.contains("panicked at"),
        "Rust's default panic print is replaced:\n{output}"
    );
    // The internal-error answer is not logged a second time.
    assert!(
        !output
            .lines()
            .any(|l| l.contains("a handler panicked") && l.contains("internal error")),
        "{output}"
    );
}

#[tokio::test]
async fn the_panic_route_does_not_exist_with_real_stripe_keys() {
    let sandbox = obol_sandbox::Sandbox::bind(
        "127.0.0.1:0".parse().unwrap(),
        obol_sandbox::SandboxConfig::default(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", sandbox.local_addr());
    tokio::spawn(sandbox.run_until(std::future::pending()));
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_STRIPE__SECRET_KEY", "sk_test_obol_logs")
        .env("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_test_obol_logs")
        .env("OBOL_STRIPE__API_BASE", &base)
        .start()
        .await;
    for auth in [None, Some(obol.api_key.clone())] {
        let mut req = obol.http.post(obol.url("/v1/sandbox/panic"));
        if let Some(k) = &auth {
            req = req.bearer_auth(k);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 404);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "route_not_found", "{body}");
    }
}
