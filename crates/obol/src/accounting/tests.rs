//! The adapters against a local stand-in that records each request and
//! answers what the test scripts.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use hmac::{Hmac, Mac};

use super::*;

const XERO_TOKEN: &str = "xero_SECRET_TOKEN_1";
const QB_TOKEN: &str = "qb_SECRET_TOKEN_2";
/// `whsec_` + base64 of "accounting-test-key-32-bytes-ok!".
const HOOK_SECRET: &str = "whsec_YWNjb3VudGluZy10ZXN0LWtleS0zMi1ieXRlcy1vayE=";
const KEY: &str = "obol-sync_01JTESTSYNC0000000000000000";

#[derive(Clone, Debug)]
struct Hit {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

type Script = dyn Fn(&Hit) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync;

struct StandIn {
    base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl StandIn {
    /// Answers each request with `script(request)`: status, headers, body.
    async fn start(
        script: impl Fn(&Hit) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync + 'static,
    ) -> StandIn {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let sink = hits.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
                let (sink, script) = (sink.clone(), script.clone());
                async move {
                    let hit = Hit {
                        method,
                        path: uri.path().to_string(),
                        query: uri.query().unwrap_or_default().to_string(),
                        headers,
                        body,
                    };
                    let (status, headers, body) = script(&hit);
                    sink.lock().unwrap().push(hit);
                    let mut answer = axum::response::Response::new(axum::body::Body::from(body));
                    *answer.status_mut() = StatusCode::from_u16(status).unwrap();
                    for (k, v) in headers {
                        answer.headers_mut().insert(k, v.parse().unwrap());
                    }
                    answer
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        StandIn { base, hits }
    }

    /// Answers like the real APIs when they accept the request.
    async fn accepting() -> StandIn {
        StandIn::start(|hit| {
            let body = match hit.path.as_str() {
                p if p.ends_with("/Invoices") => r#"{"Invoices":[{"InvoiceID":"inv-uuid-1"}]}"#,
                p if p.ends_with("/Payments") => r#"{"Payments":[{"PaymentID":"pay-uuid-2"}]}"#,
                p if p.ends_with("/salesreceipt") => r#"{"SalesReceipt":{"Id":"146"}}"#,
                _ => return (204, vec![], String::new()),
            };
            (200, vec![], body.to_string())
        })
        .await
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// Every target configured against `base`.
fn accounting(base: &str) -> Accounting {
    accounting_with(base, "")
}

fn accounting_with(base: &str, extra_quickbooks: &str) -> Accounting {
    let yaml = format!(
        "accounting:
  webhook_url: {base}/hook?token=URLTOKEN
  webhook_secret: {HOOK_SECRET}
  timeout_seconds: 1
  xero:
    base_url: {base}/xero/
    access_token: {XERO_TOKEN}
    tenant_id: tenant-1
    account_code: \"090\"
  quickbooks:
    base_url: {base}/qb
    realm_id: \"9130350412345678\"
    access_token: {QB_TOKEN}
{extra_quickbooks}"
    );
    Accounting::from_config(&Config::from_yaml(&yaml).unwrap()).unwrap()
}

fn payment(currency: &str, unit: i64, quantity: i64) -> InvoicePayment {
    InvoicePayment {
        invoice_id: "inv_01JTEST".into(),
        number: "INV-0042".into(),
        customer_name: Some("Ana Lima".into()),
        customer_email: Some("ana@example.com".into()),
        currency: currency.into(),
        issue_date: "2025-03-01".into(),
        due_date: "2025-03-31".into(),
        lines: vec![Line {
            description: "Consulting".into(),
            unit_amount: unit,
            quantity,
            amount: unit * quantity,
        }],
        total: unit * quantity,
        amount: unit * quantity,
        fee_amount: 0,
        stripe_payment_intent_id: "pi_3TEST".into(),
        payment_id: "pay_01JTEST".into(),
        paid_at: "2025-03-05T23:30:00Z".parse().unwrap(),
    }
}

#[test]
fn targets_have_stable_names() {
    for t in Target::ALL {
        assert_eq!(Target::parse(t.as_str()), Some(t));
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            serde_json::json!(t.as_str())
        );
    }
    assert_eq!(Target::parse("Xero"), None);
}

#[test]
fn amounts_are_exact_decimals_in_major_units() {
    let text = |minor, code| {
        decimal(minor, Currency::parse(code).unwrap())
            .unwrap()
            .get()
            .to_string()
    };
    assert_eq!(text(1234, "usd"), "12.34");
    assert_eq!(text(5, "usd"), "0.05");
    assert_eq!(text(500, "jpy"), "500");
    assert_eq!(text(1230, "kwd"), "1.230");
    assert_eq!(text(-250, "eur"), "-2.50");
    assert!(decimal(1, Currency::USD).is_ok());
}

#[test]
fn long_keys_are_shortened_stably() {
    assert_eq!(bounded_key(KEY, 50), KEY);
    let long = "k".repeat(80);
    let short = bounded_key(&long, 50);
    assert_eq!(short.len(), 50);
    assert_eq!(short, bounded_key(&long, 50));
    assert_ne!(short, bounded_key(&"k".repeat(81), 50));
}

#[test]
fn targets_are_listed_in_order_and_only_when_configured() {
    let all = accounting("http://127.0.0.1:9");
    assert_eq!(all.targets(), Target::ALL.to_vec());
    let none = Accounting::from_config(&Config::from_yaml("").unwrap()).unwrap();
    assert!(none.targets().is_empty());
    let qb =
        Config::from_yaml("accounting:\n  quickbooks:\n    realm_id: 1\n    access_token: t\n")
            .unwrap();
    assert_eq!(
        Accounting::from_config(&qb).unwrap().targets(),
        vec![Target::Quickbooks]
    );
}

#[tokio::test]
async fn xero_puts_an_invoice_then_a_payment_against_it() {
    let s = StandIn::accepting().await;
    let a = accounting(&s.base);
    let mut p = payment("usd", 1234, 2);
    p.lines.push(Line {
        description: "Card processing fee".into(),
        unit_amount: 75,
        quantity: 1,
        amount: 75,
    });
    p.amount = 2543;
    p.total = 2543;
    p.fee_amount = 75;
    let got = a.deliver(Target::Xero, KEY, &p).await.unwrap();
    assert_eq!(got.external_id.as_deref(), Some("pay-uuid-2"));

    let hits = s.hits();
    assert_eq!(hits.len(), 2, "{hits:?}");
    let (inv, pay) = (&hits[0], &hits[1]);
    for (hit, path, key) in [
        (inv, "/xero/api.xro/2.0/Invoices", format!("{KEY}-invoice")),
        (pay, "/xero/api.xro/2.0/Payments", format!("{KEY}-payment")),
    ] {
        assert_eq!(hit.method, Method::PUT);
        assert_eq!(hit.path, path);
        assert_eq!(hit.header("idempotency-key"), key);
        assert_eq!(hit.header("authorization"), format!("Bearer {XERO_TOKEN}"));
        assert_eq!(hit.header("xero-tenant-id"), "tenant-1");
        assert_eq!(hit.header("accept"), "application/json");
        assert_eq!(hit.header("content-type"), "application/json");
    }
    assert_eq!(inv.query, "unitdp=4");
    assert!(inv.body.contains(r#""UnitAmount":12.34"#), "{}", inv.body);
    assert_eq!(
        inv.json(),
        serde_json::json!({"Invoices": [{
            "Type": "ACCREC",
            "Contact": {"Name": "Ana Lima", "EmailAddress": "ana@example.com"},
            "InvoiceNumber": "INV-0042",
            "Reference": "inv_01JTEST",
            "Date": "2025-03-01",
            "DueDate": "2025-03-31",
            "CurrencyCode": "USD",
            "LineAmountTypes": "NoTax",
            "Status": "AUTHORISED",
            "LineItems": [
                {"Description": "Consulting", "Quantity": 2, "UnitAmount": 12.34, "AccountCode": "200"},
                {"Description": "Card processing fee", "Quantity": 1, "UnitAmount": 0.75, "AccountCode": "200"},
            ],
        }]})
    );
    assert!(pay.body.contains(r#""Amount":25.43"#), "{}", pay.body);
    assert_eq!(
        pay.json(),
        serde_json::json!({"Payments": [{
            "Invoice": {"InvoiceID": "inv-uuid-1"},
            "Account": {"Code": "090"},
            "Date": "2025-03-05",
            "Amount": 25.43,
            "Reference": "pi_3TEST",
        }]})
    );
}

#[tokio::test]
async fn xero_contact_falls_back_to_the_email_then_customer() {
    let s = StandIn::accepting().await;
    let a = accounting(&s.base);
    let mut p = payment("usd", 1000, 1);
    p.customer_name = None;
    a.deliver(Target::Xero, "k1", &p).await.unwrap();
    p.customer_email = None;
    a.deliver(Target::Xero, "k2", &p).await.unwrap();
    let hits = s.hits();
    assert_eq!(
        hits[0].json()["Invoices"][0]["Contact"],
        serde_json::json!({"Name": "ana@example.com", "EmailAddress": "ana@example.com"})
    );
    assert_eq!(
        hits[2].json()["Invoices"][0]["Contact"],
        serde_json::json!({"Name": "Customer"})
    );
}

#[tokio::test]
async fn quickbooks_posts_one_sales_receipt_under_the_request_id() {
    let s = StandIn::accepting().await;
    let a = accounting(&s.base);
    let got = a
        .deliver(Target::Quickbooks, KEY, &payment("jpy", 500, 3))
        .await
        .unwrap();
    assert_eq!(got.external_id.as_deref(), Some("146"));
    let hits = s.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.method, Method::POST);
    assert_eq!(hit.path, "/qb/v3/company/9130350412345678/salesreceipt");
    assert_eq!(hit.query, format!("requestid={KEY}&minorversion=75"));
    assert_eq!(hit.header("authorization"), format!("Bearer {QB_TOKEN}"));
    assert_eq!(hit.header("accept"), "application/json");
    assert!(hit.body.contains(r#""UnitPrice":500}"#), "{}", hit.body);
    assert!(hit.body.contains(r#""TotalAmt":1500,"#), "{}", hit.body);
    assert_eq!(
        hit.json(),
        serde_json::json!({
            "DocNumber": "INV-0042",
            "TxnDate": "2025-03-05",
            "CurrencyRef": {"value": "JPY"},
            "PrivateNote": "obol invoice inv_01JTEST paid by Stripe pi_3TEST",
            "BillEmail": {"Address": "ana@example.com"},
            "TotalAmt": 1500,
            "Line": [{
                "DetailType": "SalesItemLineDetail",
                "Amount": 1500,
                "Description": "Consulting",
                "SalesItemLineDetail": {"Qty": 3, "UnitPrice": 500},
            }],
        })
    );
}

#[tokio::test]
async fn quickbooks_names_the_item_and_omits_a_missing_email() {
    let s = StandIn::accepting().await;
    let a = accounting_with(&s.base, "    item_id: \"7\"\n");
    let mut p = payment("kwd", 1230, 1);
    p.customer_email = None;
    a.deliver(Target::Quickbooks, KEY, &p).await.unwrap();
    let hit = &s.hits()[0];
    assert!(hit.body.contains(r#""UnitPrice":1.230,"#), "{}", hit.body);
    assert!(hit.body.contains(r#""TotalAmt":1.230,"#), "{}", hit.body);
    let body = hit.json();
    assert!(body.get("BillEmail").is_none(), "{body}");
    assert_eq!(
        body["Line"][0]["SalesItemLineDetail"]["ItemRef"],
        serde_json::json!({"value": "7"})
    );
}

#[tokio::test]
async fn webhook_is_signed_per_standard_webhooks_with_the_key_as_id() {
    let s = StandIn::accepting().await;
    let a = accounting(&s.base);
    let got = a
        .deliver(Target::Webhook, KEY, &payment("usd", 1234, 1))
        .await
        .unwrap();
    assert_eq!(got.external_id, None);
    let hit = &s.hits()[0];
    assert_eq!(hit.method, Method::POST);
    assert_eq!(hit.path, "/hook");
    assert_eq!(hit.query, "token=URLTOKEN");
    assert_eq!(hit.header("content-type"), "application/json");
    assert_eq!(hit.header("webhook-id"), KEY);
    let ts: i64 = hit.header("webhook-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    // Verified independently of `outbox::sign`, as a receiver would.
    let key = base64::engine::general_purpose::STANDARD
        .decode(HOOK_SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{KEY}.{ts}.{}", hit.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(hit.header("webhook-signature"), expected);
    assert_eq!(
        hit.json(),
        serde_json::json!({
            "type": "invoice.payment_recorded",
            "idempotency_key": KEY,
            "invoice_id": "inv_01JTEST",
            "number": "INV-0042",
            "amount": 1234,
            "fee_amount": 0,
            "total": 1234,
            "currency": "usd",
            "stripe_payment_intent_id": "pi_3TEST",
            "payment_id": "pay_01JTEST",
            "paid_at": "2025-03-05T23:30:00Z",
        })
    );
}

#[tokio::test]
async fn answers_are_classified_retryable_or_permanent() {
    let s = StandIn::start(|hit| {
        let status: u16 = hit.header("x-want").parse().unwrap_or(200);
        let retry = vec![("retry-after", "7".to_string())];
        (status, retry, format!("{{\"status\":{status}}}"))
    })
    .await;
    let a = accounting(&s.base);
    for (status, retryable) in [
        (503, true),
        (500, true),
        (408, true),
        (409, true),
        (429, true),
        (400, false),
        (401, false),
        (403, false),
        (404, false),
        (422, false),
        (302, false),
    ] {
        let e = a
            .send(
                "GET",
                a.http
                    .get(format!("{}/x", s.base))
                    .header("x-want", status.to_string()),
            )
            .await
            .unwrap_err();
        assert_eq!(e.retryable, retryable, "{status}: {e}");
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert!(e.message.contains(&status.to_string()), "{e}");
    }
}

#[tokio::test]
async fn failures_name_target_status_and_an_excerpt() {
    let s = StandIn::start(|hit| {
        if hit.path.contains("salesreceipt") {
            let long = "x".repeat(500);
            (
                400,
                vec![],
                format!("{{\"Fault\":{{\"Error\":[{{\"Message\":\"{long}\"}}]}}}}"),
            )
        } else {
            (503, vec![], "down for maintenance".to_string())
        }
    })
    .await;
    let a = accounting(&s.base);
    let e = a
        .deliver(Target::Xero, KEY, &payment("usd", 100, 1))
        .await
        .unwrap_err();
    assert!(e.retryable);
    assert_eq!(
        e.message,
        "xero: PUT Invoices answered 503 Service Unavailable: down for maintenance"
    );
    let e = a
        .deliver(Target::Quickbooks, KEY, &payment("usd", 100, 1))
        .await
        .unwrap_err();
    assert!(!e.retryable);
    assert!(
        e.message
            .starts_with("quickbooks: POST salesreceipt answered 400 Bad Request: {\"Fault\""),
        "{e}"
    );
    let excerpt = e.message.split_once(": {").unwrap().1;
    assert!(excerpt.chars().count() <= EXCERPT_CHARS + 1, "{e}");
    let e = a
        .deliver(Target::Webhook, KEY, &payment("usd", 100, 1))
        .await
        .unwrap_err();
    assert!(
        e.retryable && e.message.starts_with("webhook: POST answered 503"),
        "{e}"
    );
}

#[tokio::test]
async fn connection_refused_and_timeouts_are_retryable() {
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let a = accounting(&format!("http://{closed}"));
    for target in Target::ALL {
        let e = a
            .deliver(target, KEY, &payment("usd", 100, 1))
            .await
            .unwrap_err();
        assert!(e.retryable, "{e}");
        assert!(e.message.starts_with(target.as_str()), "{e}");
        assert!(!e.message.contains("URLTOKEN"), "{e}");
    }

    let app = axum::Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        StatusCode::NO_CONTENT
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let a = accounting(&slow);
    let e = a
        .deliver(Target::Webhook, KEY, &payment("usd", 100, 1))
        .await
        .unwrap_err();
    assert!(e.retryable, "{e}");
    assert!(!e.message.contains("URLTOKEN"), "{e}");
}

#[tokio::test]
async fn unreadable_2xx_answers_are_successes_without_an_id() {
    let s = StandIn::start(|hit| {
        if hit.path.ends_with("/Invoices") {
            (
                200,
                vec![],
                r#"{"Invoices":[{"InvoiceID":"i-1"}]}"#.to_string(),
            )
        } else {
            (200, vec![], "<html>ok</html>".to_string())
        }
    })
    .await;
    let a = accounting(&s.base);
    for target in [Target::Xero, Target::Quickbooks] {
        let got = a
            .deliver(target, KEY, &payment("usd", 100, 1))
            .await
            .unwrap();
        assert_eq!(got.external_id, None, "{target:?}");
    }
}

#[tokio::test]
async fn a_xero_invoice_answer_without_its_id_is_permanent() {
    let s = StandIn::start(|_| (200, vec![], "{}".to_string())).await;
    let a = accounting(&s.base);
    let e = a
        .deliver(Target::Xero, KEY, &payment("usd", 100, 1))
        .await
        .unwrap_err();
    assert!(!e.retryable, "{e}");
    assert_eq!(s.hits().len(), 1, "no payment without an invoice");
}

#[tokio::test]
async fn bad_invoice_data_is_permanent_and_sends_nothing() {
    let s = StandIn::accepting().await;
    let a = accounting(&s.base);
    for target in [Target::Xero, Target::Quickbooks] {
        let e = a
            .deliver(target, KEY, &payment("xyz", 100, 1))
            .await
            .unwrap_err();
        assert!(!e.retryable, "{e}");
        assert!(e.message.contains("xyz"), "{e}");
    }
    assert!(s.hits().is_empty());
    let none = Accounting::from_config(&Config::from_yaml("").unwrap()).unwrap();
    let e = none
        .deliver(Target::Xero, KEY, &payment("usd", 100, 1))
        .await
        .unwrap_err();
    assert!(!e.retryable);
    assert_eq!(e.message, "xero: not configured");
}

#[tokio::test]
async fn no_secret_reaches_a_message_or_debug_output() {
    // A hostile or careless server that echoes the request's credentials.
    let s = StandIn::start(|hit| {
        let echo = format!(
            "denied {} {}",
            hit.header("authorization"),
            hit.header("webhook-signature")
        );
        (401, vec![], echo)
    })
    .await;
    let a = accounting(&s.base);
    let secrets = [XERO_TOKEN, QB_TOKEN, HOOK_SECRET, "URLTOKEN"];
    for target in Target::ALL {
        let e = a
            .deliver(target, KEY, &payment("usd", 100, 1))
            .await
            .unwrap_err();
        assert!(!e.retryable, "{e}");
        for secret in secrets {
            assert!(!e.message.contains(secret), "{secret} in {e}");
            assert!(!format!("{e:?}").contains(secret), "{secret} in {e:?}");
        }
    }
    let debug = format!("{a:?} {a:#?}");
    for secret in secrets.into_iter().chain(["YWNjb3VudGluZy10ZXN0"]) {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
}
