//! A stand-in for the accounting systems obol records paid invoices in:
//! Xero (`PUT …/api.xro/2.0/Invoices`, `…/Payments`), QuickBooks Online
//! (`POST …/v3/company/{realm}/salesreceipt`) and the generic webhook
//! (`POST /accounting-hook`), on one free port.
//!
//! It deduplicates like the real services: a repeated idempotency key (Xero
//! `Idempotency-Key`, QuickBooks `requestid`, `webhook-id`) gets the first
//! answer again and lands nothing. It checks what the real ones would
//! refuse (no credentials, a payment for an invoice it never issued) and
//! verifies the webhook's Standard Webhooks signature with code of its own,
//! recording the result rather than refusing, so a test can assert on it.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use hmac::{Hmac, Mac};
use obol::accounting::Target;
use serde_json::{json, Value};

/// Webhook timestamps further than this from now fail verification, as
/// the Standard Webhooks libraries' default tolerance has it.
const TOLERANCE_SECONDS: i64 = 300;

/// One request the stand-in received, with what it answered.
#[derive(Clone, Debug)]
pub struct StandInRequest {
    /// None for a path no target serves (answered 404).
    pub target: Option<Target>,
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
    /// The body answered.
    pub answer: String,
    /// The target's idempotency key, when the request carried one.
    pub idempotency_key: Option<String>,
    /// The first successful request under its key: what the real service
    /// would have recorded. Replays and failures are false.
    pub landed: bool,
    /// Webhook requests: whether the Standard Webhooks signature verified.
    pub signature_verified: Option<bool>,
}

impl StandInRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct State {
    requests: Vec<StandInRequest>,
    /// The first successful answer per (target, key): status and body.
    answers: HashMap<(Target, String), (u16, String)>,
    /// Xero InvoiceIDs issued, which payments must name.
    invoices: HashSet<String>,
    fail_first: usize,
    fail: Option<u16>,
    next_receipt: u64,
}

pub struct AccountingStandIn {
    /// `accounting.xero.base_url`.
    pub xero_base: String,
    /// `accounting.quickbooks.base_url`.
    pub quickbooks_base: String,
    /// `accounting.webhook_url`.
    pub webhook_url: String,
    /// `accounting.webhook_secret`: the webhook is verified with it.
    pub webhook_secret: String,
    state: Arc<Mutex<State>>,
}

impl AccountingStandIn {
    /// Serves on a free loopback port; answers 503 to the first
    /// `fail_first` requests (all paths counted), then like the real APIs.
    pub async fn start(fail_first: usize) -> AccountingStandIn {
        let state = Arc::new(Mutex::new(State {
            fail_first,
            next_receipt: 145,
            ..State::default()
        }));
        let webhook_secret = obol::outbox::new_secret();
        let shared = state.clone();
        let secret = webhook_secret.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
                let (state, secret) = (shared.clone(), secret.clone());
                async move {
                    let (status, body) = state
                        .lock()
                        .unwrap()
                        .receive(&secret, method, &uri, &headers, body);
                    let mut answer = axum::response::Response::new(axum::body::Body::from(body));
                    *answer.status_mut() = StatusCode::from_u16(status).unwrap();
                    if status == 200 {
                        answer.headers_mut().insert(
                            "content-type",
                            axum::http::HeaderValue::from_static("application/json"),
                        );
                    }
                    answer
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        AccountingStandIn {
            xero_base: format!("{base}/xero"),
            quickbooks_base: format!("{base}/quickbooks"),
            webhook_url: format!("{base}/accounting-hook"),
            webhook_secret,
            state,
        }
    }

    /// Answers every following request with `status` (e.g. 400), until
    /// called again with None.
    pub fn set_fail(&self, status: Option<u16>) {
        self.state.lock().unwrap().fail = status;
    }

    /// Every request received, failed and replayed ones included.
    pub fn requests(&self) -> Vec<StandInRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The first successful request per idempotency key.
    pub fn landed(&self) -> Vec<StandInRequest> {
        self.requests().into_iter().filter(|r| r.landed).collect()
    }

    /// Waits (at most 20 s) until `done` holds for the requests received.
    pub async fn until(
        &self,
        what: &str,
        done: impl Fn(&[StandInRequest]) -> bool,
    ) -> Vec<StandInRequest> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.requests();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {got:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl State {
    fn receive(
        &mut self,
        secret: &str,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: String,
    ) -> (u16, String) {
        let path = uri.path().to_string();
        let query = uri.query().unwrap_or_default().to_string();
        let target = route(&method, &path);
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let idempotency_key = match target {
            Some(Target::Xero) => header("idempotency-key"),
            Some(Target::Quickbooks) => url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "requestid")
                .map(|(_, v)| v.into_owned()),
            Some(Target::Webhook) => header("webhook-id"),
            None => None,
        };
        let signature_verified = (target == Some(Target::Webhook)).then(|| {
            verify(
                secret,
                header("webhook-id").as_deref(),
                header("webhook-timestamp").as_deref(),
                header("webhook-signature").as_deref(),
                &body,
            )
        });
        let mut request = StandInRequest {
            target,
            method: method.to_string(),
            path,
            query,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body,
            status: 0,
            answer: String::new(),
            idempotency_key,
            landed: false,
            signature_verified,
        };
        let (status, answer) = self.answer(&request, header("authorization"));
        request.status = status;
        request.answer = answer.clone();
        if let (true, Some(t), Some(key)) = (status < 300, target, &request.idempotency_key) {
            // Replays answer from `answers`, so a new entry is a landing.
            if let Entry::Vacant(first) = self.answers.entry((t, key.clone())) {
                first.insert((status, answer.clone()));
                request.landed = true;
            }
        }
        self.requests.push(request);
        (status, answer)
    }

    fn answer(&mut self, r: &StandInRequest, authorization: Option<String>) -> (u16, String) {
        let error = |status: u16, message: &str| (status, json!({ "error": message }).to_string());
        let Some(target) = r.target else {
            return error(404, "no such route");
        };
        if let Some(status) = self.fail {
            return error(status, "stand-in failure (set_fail)");
        }
        if self.requests.len() < self.fail_first {
            return error(503, "stand-in failure (fail_first)");
        }
        let Some(key) = &r.idempotency_key else {
            return error(400, "no idempotency key");
        };
        if let Some(first) = self.answers.get(&(target, key.clone())) {
            return first.clone();
        }
        if target != Target::Webhook
            && !authorization.is_some_and(|a| a.len() > "Bearer ".len() && a.starts_with("Bearer "))
        {
            return error(401, "AuthenticationUnsuccessful");
        }
        let Ok(body) = serde_json::from_str::<Value>(&r.body) else {
            return error(400, "the body is not JSON");
        };
        match target {
            Target::Xero if r.path.ends_with("/Invoices") => {
                let id = uuid::Uuid::new_v4().to_string();
                self.invoices.insert(id.clone());
                let invoice = &body["Invoices"][0];
                let answer = json!({"Invoices": [{
                    "InvoiceID": id,
                    "InvoiceNumber": invoice["InvoiceNumber"],
                    "Status": invoice["Status"],
                }]});
                (200, answer.to_string())
            }
            Target::Xero => {
                let payment = &body["Payments"][0];
                let invoice = payment["Invoice"]["InvoiceID"].as_str().unwrap_or_default();
                if !self.invoices.contains(invoice) {
                    return error(400, "Invoice could not be found");
                }
                let answer = json!({"Payments": [{
                    "PaymentID": uuid::Uuid::new_v4().to_string(),
                    "Amount": payment["Amount"],
                }]});
                (200, answer.to_string())
            }
            Target::Quickbooks => {
                self.next_receipt += 1;
                let answer = json!({"SalesReceipt": {
                    "Id": self.next_receipt.to_string(),
                    "DocNumber": body["DocNumber"],
                }});
                (200, answer.to_string())
            }
            Target::Webhook => (204, String::new()),
        }
    }
}

/// Which target serves `path`; the real APIs' paths under this stand-in's
/// prefixes (`/xero`, `/quickbooks`).
fn route(method: &Method, path: &str) -> Option<Target> {
    let qb = path
        .strip_prefix("/quickbooks/v3/company/")
        .and_then(|rest| rest.strip_suffix("/salesreceipt"))
        .is_some_and(|realm| !realm.is_empty() && !realm.contains('/'));
    match (method.as_str(), path) {
        ("PUT", "/xero/api.xro/2.0/Invoices" | "/xero/api.xro/2.0/Payments") => Some(Target::Xero),
        ("POST", _) if qb => Some(Target::Quickbooks),
        ("POST", "/accounting-hook") => Some(Target::Webhook),
        _ => None,
    }
}

/// Standard Webhooks: one of the space-separated `v1,<base64>` signatures
/// is HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret's key, and
/// the timestamp is recent.
fn verify(
    secret: &str,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &str,
) -> bool {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return false;
    };
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - ts).abs() > TOLERANCE_SECONDS {
        return false;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap();
    signatures.split(' ').any(|s| {
        let Some(sig) = s.strip_prefix("v1,").and_then(|s| b64.decode(s).ok()) else {
            return false;
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        mac.verify_slice(&sig).is_ok()
    })
}

#[tokio::test]
async fn standin_answers_like_the_real_apis_and_dedupes_on_idempotency_keys() {
    let s = AccountingStandIn::start(1).await;
    let http = reqwest::Client::new();
    let xero = |path: &str, key: &str, body: Value| {
        http.put(format!("{}/api.xro/2.0/{path}", s.xero_base))
            .bearer_auth("token")
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let invoice = json!({"Invoices": [{"InvoiceNumber": "INV-1", "Status": "AUTHORISED"}]});
    let first = xero("Invoices", "k-invoice", invoice.clone())
        .await
        .unwrap();
    assert_eq!(first.status(), 503, "fail_first");
    let created: Value = xero("Invoices", "k-invoice", invoice.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let replayed: Value = xero("Invoices", "k-invoice", invoice)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created, replayed);
    let invoice_id = created["Invoices"][0]["InvoiceID"].as_str().unwrap();
    let pay = |id: &str| json!({"Payments": [{"Invoice": {"InvoiceID": id}, "Amount": 12.34}]});
    let r = xero("Payments", "k-payment", pay("nope")).await.unwrap();
    assert_eq!(r.status(), 400, "a payment for an unknown invoice");
    let r = xero("Payments", "k-payment", pay(invoice_id))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let paid: Value = r.json().await.unwrap();
    assert!(paid["Payments"][0]["PaymentID"].is_string(), "{paid}");

    let receipt = |key: &str| {
        http.post(format!(
            "{}/v3/company/123/salesreceipt?requestid={key}&minorversion=75",
            s.quickbooks_base
        ))
        .bearer_auth("token")
        .json(&json!({"DocNumber": "INV-1"}))
        .send()
    };
    let a: Value = receipt("q1").await.unwrap().json().await.unwrap();
    let b: Value = receipt("q1").await.unwrap().json().await.unwrap();
    let c: Value = receipt("q2").await.unwrap().json().await.unwrap();
    assert_eq!(a, b);
    assert_ne!(a["SalesReceipt"]["Id"], c["SalesReceipt"]["Id"]);

    let body = r#"{"type":"invoice.payment_recorded"}"#;
    let hook = |id: &str, signature: String| {
        let ts = chrono::Utc::now().timestamp();
        http.post(&s.webhook_url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                if signature.is_empty() {
                    obol::outbox::sign(&s.webhook_secret, id, ts, body).unwrap()
                } else {
                    signature
                },
            )
            .body(body)
            .send()
    };
    assert_eq!(hook("w1", String::new()).await.unwrap().status(), 204);
    assert_eq!(hook("w2", "v1,AAAA".into()).await.unwrap().status(), 204);

    s.set_fail(Some(400));
    assert_eq!(receipt("q3").await.unwrap().status(), 400);
    s.set_fail(None);
    assert_eq!(receipt("q3").await.unwrap().status(), 200);

    let got = s.until("every request", |r| r.len() == 12).await;
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 200, 200, 400, 200, 200, 200, 200, 204, 204, 400, 200]
    );
    assert_eq!(
        got[2].answer, got[1].answer,
        "a replay answers the first answer"
    );
    let landed = s.landed();
    let keys: Vec<_> = landed
        .iter()
        .map(|r| (r.target.unwrap(), r.idempotency_key.clone().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            (Target::Xero, "k-invoice"),
            (Target::Xero, "k-payment"),
            (Target::Quickbooks, "q1"),
            (Target::Quickbooks, "q2"),
            (Target::Webhook, "w1"),
            (Target::Webhook, "w2"),
            (Target::Quickbooks, "q3"),
        ]
        .map(|(t, k)| (t, k.to_string()))
    );
    let verified: Vec<_> = landed.iter().filter_map(|r| r.signature_verified).collect();
    assert_eq!(verified, [true, false]);
}

/// obol's own adapters against the stand-in: through its failures every
/// target lands once, and a retry after success lands nothing new.
#[tokio::test]
async fn obols_adapters_land_once_per_key_through_retries() {
    let s = AccountingStandIn::start(2).await;
    let config = obol::config::Config::from_yaml(&format!(
        "accounting:
  webhook_url: {}
  webhook_secret: {}
  xero:
    base_url: {}
    access_token: xero-token
    tenant_id: tenant-1
    account_code: \"090\"
  quickbooks:
    base_url: {}
    realm_id: \"4620816365\"
    access_token: qb-token
",
        s.webhook_url, s.webhook_secret, s.xero_base, s.quickbooks_base
    ))
    .unwrap();
    let accounting = obol::accounting::Accounting::from_config(&config).unwrap();
    let payment = obol::accounting::InvoicePayment {
        invoice_id: "inv_01JSTANDIN".into(),
        number: "INV-0007".into(),
        customer_name: None,
        customer_email: Some("ana@example.com".into()),
        currency: "kwd".into(),
        issue_date: "2025-04-01".into(),
        due_date: "2025-04-15".into(),
        lines: vec![obol::accounting::Line {
            description: "Widget".into(),
            unit_amount: 1230,
            quantity: 1,
            amount: 1230,
        }],
        total: 1230,
        amount: 1230,
        fee_amount: 0,
        stripe_payment_intent_id: "pi_3STANDIN".into(),
        payment_id: "pay_01JSTANDIN".into(),
        paid_at: chrono::Utc::now(),
    };
    let mut external = Vec::new();
    for target in accounting.targets() {
        let key = format!("obol-sync_{}", target.as_str());
        let mut attempts = 0;
        let delivered = loop {
            attempts += 1;
            match accounting.deliver(target, &key, &payment).await {
                Ok(d) => break d,
                Err(e) if e.retryable && attempts < 5 => continue,
                Err(e) => panic!("{target:?}: {e}"),
            }
        };
        // The job's retry after a lost answer: nothing new lands.
        let again = accounting.deliver(target, &key, &payment).await.unwrap();
        assert_eq!(again, delivered, "{target:?}");
        external.push(delivered.external_id);
    }
    let landed = s.landed();
    assert_eq!(
        landed
            .iter()
            .map(|r| r.path.rsplit('/').next().unwrap())
            .collect::<Vec<_>>(),
        ["Invoices", "Payments", "salesreceipt", "accounting-hook"]
    );
    assert_eq!(
        landed.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ["PUT", "PUT", "POST", "POST"]
    );
    assert_eq!(landed[0].header("xero-tenant-id"), Some("tenant-1"));
    assert_eq!(
        landed[1].header("idempotency-key"),
        Some("obol-sync_xero-payment")
    );
    assert_eq!(
        landed[2].query,
        "requestid=obol-sync_quickbooks&minorversion=75"
    );
    assert_eq!(
        s.requests().iter().filter(|r| r.status == 503).count(),
        2,
        "fail_first"
    );
    assert!(
        landed[0].body.contains(r#""UnitAmount":1.230"#),
        "{}",
        landed[0].body
    );
    let answered = |r: &StandInRequest, pointer: &str| {
        serde_json::from_str::<Value>(&r.answer)
            .unwrap()
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    assert_eq!(
        external,
        [
            answered(&landed[1], "/Payments/0/PaymentID"),
            answered(&landed[2], "/SalesReceipt/Id"),
            None,
        ]
    );
    assert!(external[0].is_some() && external[1].is_some());
    assert_eq!(landed[3].signature_verified, Some(true));
    assert_eq!(landed[3].json()["amount"], 1230);
}
