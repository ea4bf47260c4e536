//! The Agentic Commerce Protocol endpoint end to end: an agent platform
//! (this test) checks out at obol over HTTP with shared payment tokens
//! granted at the sandbox, every answer and webhook validated against the
//! ACP JSON schemas copied in `spec/acp/2026-04-17/` (and, through
//! `Obol::http`, against obol's own OpenAPI document).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{Backend, Obol, Received, TestReceiver};
use crate::inbox::sandbox;
use crate::on_both_backends;

on_both_backends!(
    a_scripted_agent_session_validates_against_the_acp_schemas,
    idempotency_keys_replay_conflict_and_are_required,
    an_in_flight_key_answers_409_and_a_5xx_is_not_stored,
    tokens_that_cannot_pay_are_refused_with_nothing_charged,
    concurrent_completes_charge_the_token_once,
    three_d_secure_leads_through_authentication_required_to_completion,
    signed_requests_are_verified_when_a_signing_secret_is_set,
    a_complete_whose_answer_was_lost_answers_its_order_on_retry,
    out_of_stock_at_completion_is_refused_with_nothing_charged,
);

pub const AGENT_KEY: &str = "acp_test_agent_platform_key_0123456789abcdef";
pub const HOOK_SECRET: &str = "acp_webhook_secret_for_tests";
pub const SIGNING_SECRET: &str = "acp_request_signing_secret_0123456789abcdef";

/// The ACP JSON Schema bundle the protocol publishes.
static BUNDLE: LazyLock<Value> = LazyLock::new(|| {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../spec/acp/2026-04-17/schema.agentic_checkout.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
});

/// Fails unless `v` is valid against the bundle's `$defs/{def}`.
pub fn assert_acp(def: &str, v: &Value) {
    let mut root = BUNDLE.clone();
    root["$ref"] = json!(format!("#/$defs/{def}"));
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(v)
        .take(5)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not an ACP {def}: {errors:?}\n{v:#}");
}

/// An order webhook body: the spec's WebhookEvent, `data` an Order with
/// the fields the webhook requires.
pub fn assert_webhook(v: &Value) {
    assert!(
        v["type"] == "order_create" || v["type"] == "order_update",
        "{v}"
    );
    assert_acp("Order", &v["data"]);
    for k in ["type", "checkout_session_id", "permalink_url", "status"] {
        assert!(v["data"].get(k).is_some(), "webhook data without {k}: {v}");
    }
}

/// Verifies `Merchant-Signature: t=…,v1=…` over the raw body.
pub fn verify_signature(r: &Received) {
    let header = r.header("merchant-signature").expect("Merchant-Signature");
    let (t, v1) = header.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", r.body).as_bytes());
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("the signature verifies");
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    assert!((-5..300).contains(&age), "timestamp within the window");
}

pub async fn start(backend: Backend, hooks: Option<&str>) -> Obol {
    let mut b = Obol::builder(backend).env(
        "OBOL_ACP__API_KEYS",
        &format!("other_platform_key_0123456789abcdefgh,{AGENT_KEY}"),
    );
    if let Some(url) = hooks {
        b = b
            .env("OBOL_ACP__WEBHOOK_URL", url)
            .env("OBOL_ACP__WEBHOOK_SECRET", HOOK_SECRET)
            .env("OBOL_JOBS__RETRY_UNIT_MS", "20");
    }
    b.start().await
}

/// One ACP request; answers status, headers and body.
#[derive(Clone)]
pub struct Call<'a> {
    pub key: Option<&'a str>,
    pub version: Option<&'a str>,
    pub idempotency: Option<String>,
    pub request_id: Option<&'a str>,
    /// `Signature` and `Timestamp` headers, as sent.
    pub signature: Option<(String, String)>,
}

impl Default for Call<'_> {
    fn default() -> Self {
        Call {
            key: Some(AGENT_KEY),
            version: Some("2026-04-17"),
            idempotency: Some(uuid::Uuid::new_v4().to_string()),
            request_id: None,
            signature: None,
        }
    }
}

impl Call<'_> {
    /// With `Idempotency-Key: key`.
    pub fn keyed(key: &str) -> Self {
        Call {
            idempotency: Some(key.to_string()),
            ..Call::default()
        }
    }
}

/// The request `c` describes (for `acp`, and for spawned concurrent calls).
pub fn request(
    http: &reqwest_middleware::ClientWithMiddleware,
    url: String,
    c: &Call<'_>,
    method: &str,
    body: Option<&Value>,
) -> reqwest_middleware::RequestBuilder {
    let mut req = if method == "GET" {
        http.get(url)
    } else {
        http.post(url)
    };
    if let Some(k) = c.key {
        req = req.bearer_auth(k);
    }
    if let Some(v) = c.version {
        req = req.header("API-Version", v);
    }
    if method != "GET" {
        if let Some(i) = &c.idempotency {
            req = req.header("Idempotency-Key", i);
        }
    }
    if let Some(r) = c.request_id {
        req = req.header("Request-Id", r);
    }
    if let Some((sig, ts)) = &c.signature {
        req = req.header("Signature", sig).header("Timestamp", ts);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req
}

pub async fn acp(
    obol: &Obol,
    c: Call<'_>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = request(&obol.http, obol.url(path), &c, method, body.as_ref())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// A complete sent on a task of its own (for concurrent calls).
fn spawn_complete(
    obol: &Obol,
    path: &str,
    key: String,
    body: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let (http, url) = (obol.http.clone(), obol.url(path));
    tokio::spawn(async move {
        let r = request(&http, url, &Call::keyed(&key), "POST", Some(&body))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    })
}

pub async fn post(obol: &Obol, path: &str, body: Value) -> (u16, Value) {
    let (s, _, b) = acp(obol, Call::default(), "POST", path, Some(body)).await;
    (s, b)
}

pub async fn stripe_get(base: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A token the agent platform obtained for this merchant.
pub async fn grant(obol: &Obol, card: &str, max: i64, expires_at: Option<i64>) -> String {
    let base = sandbox(obol).await;
    let max = max.to_string();
    let expires = expires_at.map(|t| t.to_string());
    let mut form = vec![
        ("payment_method", card),
        ("usage_limits[currency]", "usd"),
        ("usage_limits[max_amount]", max.as_str()),
    ];
    if let Some(e) = &expires {
        form.push(("usage_limits[expires_at]", e.as_str()));
    }
    let t = crate::inbox::stripe_post(
        &base,
        "/v1/test_helpers/shared_payment/granted_tokens",
        &form,
    )
    .await;
    t["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{t}"))
        .to_string()
}

pub struct Shop {
    pub boots: String,
    pub socks: String,
    pub standard: String,
    pub express: String,
}

pub async fn shop(obol: &Obol) -> Shop {
    let product = |name: &str, amount: i64, stock: Option<i64>| json!({"name": name, "unit_amount": amount, "currency": "usd", "stock": stock});
    let (s, boots) = obol
        .post("/v1/products", product("Leather boots", 5000, Some(10)))
        .await;
    assert_eq!(s, 201, "{boots}");
    let (_, socks) = obol
        .post("/v1/products", product("Wool socks", 1200, None))
        .await;
    let (_, standard) = obol
        .post(
            "/v1/shipping-methods",
            json!({"name": "Standard", "amount": 500, "currency": "usd"}),
        )
        .await;
    let (_, express) = obol
        .post(
            "/v1/shipping-methods",
            json!({"name": "Express", "amount": 1500, "currency": "usd"}),
        )
        .await;
    Shop {
        boots: boots["id"].as_str().unwrap().to_string(),
        socks: socks["id"].as_str().unwrap().to_string(),
        standard: standard["id"].as_str().unwrap().to_string(),
        express: express["id"].as_str().unwrap().to_string(),
    }
}

pub fn address() -> Value {
    json!({"name": "Alice Example", "line_one": "1 Example St", "line_two": "Unit 2",
           "city": "Oakland", "state": "CA", "country": "US", "postal_code": "94607"})
}

pub fn payment(token: &str) -> Value {
    json!({"payment_data": {"handler_id": "card_tokenized",
        "instrument": {"type": "card", "credential": {"type": "spt", "token": token}},
        "billing_address": address()}})
}

/// A session ready for payment: 2 boots + socks, standard shipping
/// (2 × 5000 + 1200 + 500 = 11700).
pub async fn ready_session(obol: &Obol, shop: &Shop) -> String {
    let (s, created) = post(
        obol,
        "/acp/checkout_sessions",
        json!({"currency": "usd",
               "line_items": [{"id": shop.boots}, {"id": shop.socks}, {"id": shop.boots}],
               "buyer": {"first_name": "Alice", "last_name": "Example", "email": "alice@example.com"},
               "fulfillment_details": {"name": "Alice Example", "email": "alice@example.com", "address": address()},
               "capabilities": {"interventions": {"supported": ["3ds"]}}}),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (s, ready) = post(
        obol,
        &format!("/acp/checkout_sessions/{id}"),
        json!({"selected_fulfillment_options": [{"type": "shipping", "option_id": shop.standard, "item_ids": [shop.boots]}]}),
    )
    .await;
    assert_eq!(s, 200, "{ready}");
    assert_eq!(ready["status"], "ready_for_payment", "{ready}");
    assert_eq!(amount(&ready, "total"), 11700);
    id
}

pub fn amount(session: &Value, kind: &str) -> i64 {
    session["totals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == kind)
        .and_then(|t| t["amount"].as_i64())
        .unwrap_or_else(|| panic!("no {kind} total: {session}"))
}

fn codes(session: &Value) -> Vec<(String, String)> {
    session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "error")
        .map(|m| {
            (
                m["code"].as_str().unwrap().to_string(),
                m["param"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The PaymentIntents the sandbox holds for a session.
pub async fn intents_of(obol: &Obol, session: &str) -> Vec<Value> {
    let base = sandbox(obol).await;
    let list = stripe_get(&base, "/v1/payment_intents?limit=100").await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pi| pi["metadata"]["obol_acp_session"] == session)
        .cloned()
        .collect()
}

async fn a_scripted_agent_session_validates_against_the_acp_schemas(backend: Backend) {
    let hooks = TestReceiver::start(1).await;
    let obol = start(backend, Some(&hooks.url)).await;
    let shop = shop(&obol).await;

    let r = obol
        .http
        .get(obol.url("/.well-known/acp.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let discovery: Value = r.json().await.unwrap();
    assert_acp("DiscoveryResponse", &discovery);
    assert_eq!(
        discovery["protocol"]["supported_versions"],
        json!(["2026-04-17"])
    );
    assert_eq!(discovery["api_base_url"], obol.url("/acp"));

    // Create: items only. Not ready, and the messages say why.
    let (s, h, created) = acp(
        &obol,
        Call {
            request_id: Some("req-agent-1"),
            ..Call::default()
        },
        "POST",
        "/acp/checkout_sessions",
        Some(json!({"currency": "usd", "line_items": [{"id": shop.boots, "quantity": 2}, {"id": shop.socks}],
                    "capabilities": {"interventions": {"supported": ["3ds", "biometric"]}}})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_acp("CheckoutSession", &created);
    assert_eq!(h["request-id"], "req-agent-1");
    assert!(h.get("idempotency-key").is_some());
    assert_eq!(created["status"], "not_ready_for_payment");
    assert_eq!(created["protocol"]["version"], "2026-04-17");
    assert_eq!(
        created["capabilities"]["interventions"]["supported"],
        json!(["3ds"])
    );
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(amount(&created, "subtotal"), 11200);
    assert_eq!(created["line_items"][0]["quantity"], 2);
    assert_eq!(created["line_items"][0]["unit_amount"], 5000);
    assert_eq!(created["fulfillment_options"].as_array().unwrap().len(), 2);
    let c = codes(&created);
    assert!(
        c.contains(&("missing".into(), "$.fulfillment_details.address".into())),
        "{c:?}"
    );
    assert!(
        c.contains(&("missing".into(), "$.selected_fulfillment_options".into())),
        "{c:?}"
    );
    assert!(
        c.contains(&("missing".into(), "$.buyer.email".into())),
        "{c:?}"
    );

    // Unknown and inactive products, and too few in stock, are messages too.
    let (_, inactive) = obol
        .post(
            "/v1/products",
            json!({"name": "Old stock", "unit_amount": 900, "currency": "usd", "active": false}),
        )
        .await;
    let (s, wrong) = post(
        &obol,
        "/acp/checkout_sessions",
        json!({"currency": "usd", "line_items": [{"id": "prod_00000000000000000000000000"}, {"id": inactive["id"]}, {"id": shop.boots, "quantity": 11}],
               "capabilities": {}}),
    )
    .await;
    assert_eq!(s, 201, "{wrong}");
    assert_acp("CheckoutSession", &wrong);
    let c = codes(&wrong);
    assert!(
        c.contains(&("invalid".into(), "$.line_items[0].id".into())),
        "{c:?}"
    );
    assert!(
        c.contains(&("invalid".into(), "$.line_items[1].id".into())),
        "{c:?}"
    );
    assert!(
        c.contains(&("out_of_stock".into(), "$.line_items[0]".into())),
        "{c:?}"
    );
    assert_eq!(wrong["status"], "not_ready_for_payment");

    // Update with the buyer and the address: one thing is still missing.
    let (s, addressed) = post(
        &obol,
        &format!("/acp/checkout_sessions/{id}"),
        json!({"buyer": {"first_name": "Alice", "last_name": "Example", "email": "alice@example.com"},
               "fulfillment_details": {"name": "Alice Example", "phone_number": "+15551234567", "address": address()}}),
    )
    .await;
    assert_eq!(s, 200, "{addressed}");
    assert_acp("CheckoutSession", &addressed);
    assert_eq!(addressed["status"], "not_ready_for_payment");
    assert_eq!(
        codes(&addressed),
        vec![(
            "missing".to_string(),
            "$.selected_fulfillment_options".to_string()
        )]
    );

    // Select shipping: ready, totals are obol's.
    let (s, ready) = post(
        &obol,
        &format!("/acp/checkout_sessions/{id}"),
        json!({"selected_fulfillment_options": [{"type": "shipping", "option_id": shop.express, "item_ids": [shop.boots]}]}),
    )
    .await;
    assert_eq!(s, 200, "{ready}");
    assert_acp("CheckoutSession", &ready);
    assert_eq!(ready["status"], "ready_for_payment", "{ready}");
    assert_eq!(amount(&ready, "fulfillment"), 1500);
    assert_eq!(amount(&ready, "total"), 12700);
    assert_eq!(
        ready["selected_fulfillment_options"][0]["option_id"],
        shop.express
    );

    let (s, _, read) = acp(
        &obol,
        Call::default(),
        "GET",
        &format!("/acp/checkout_sessions/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_acp("CheckoutSession", &read);
    assert_eq!(read["status"], "ready_for_payment");

    // Complete with a token for exactly the total.
    let token = grant(&obol, "pm_card_visa", 12700, None).await;
    let (s, done) = post(
        &obol,
        &format!("/acp/checkout_sessions/{id}/complete"),
        payment(&token),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert_acp("CheckoutSessionWithOrder", &done);
    assert_eq!(done["status"], "completed");
    let order_id = done["order"]["id"].as_str().unwrap().to_string();
    assert_eq!(done["order"]["checkout_session_id"], id);
    assert_eq!(
        done["order"]["permalink_url"],
        obol.url(&format!("/orders/{order_id}"))
    );

    // The order went through obol's checkout: confirmed, paid, captured.
    let (_, order) = obol.get(&format!("/v1/orders/{order_id}")).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(order["total"]["amount"], 12700);
    assert_eq!(order["email"], "alice@example.com");
    assert_eq!(order["shipping"]["name"], "Express");
    let payment_id = order["payment_id"].as_str().unwrap().to_string();
    let paid = crate::inbox::eventually(&obol, &format!("/v1/payments/{payment_id}"), |p| {
        p["status"] == "completed"
    })
    .await;
    assert_eq!(paid["amount"], 12700);
    let base = sandbox(&obol).await;
    let spt = stripe_get(&base, &format!("/v1/shared_payment/granted_tokens/{token}")).await;
    assert_eq!(spt["deactivated_reason"], "consumed");
    assert_eq!(spt["usage_details"]["amount_captured"]["value"], 12700);

    // order_create, signed; the first delivery was refused and retried.
    let got = hooks
        .until("order_create", |g| {
            g.iter().filter(|r| r.body.contains("order_create")).count() >= 2
        })
        .await;
    let create = got
        .iter()
        .rev()
        .find(|r| r.body.contains("order_create"))
        .unwrap();
    verify_signature(create);
    let event = create.json();
    assert_webhook(&event);
    assert_eq!(event["type"], "order_create");
    assert_eq!(event["data"]["id"], order_id);
    assert_eq!(event["data"]["checkout_session_id"], id);
    assert_eq!(event["data"]["status"], "confirmed");
    assert_eq!(
        event["data"]["permalink_url"],
        done["order"]["permalink_url"]
    );
    assert_eq!(event["data"]["line_items"].as_array().unwrap().len(), 2);

    // A refund becomes an adjustment in an order_update.
    let (s, refund) = obol
        .post(
            &format!("/v1/payments/{payment_id}/refunds"),
            json!({"amount": 1200}),
        )
        .await;
    assert_eq!(s, 201, "{refund}");
    let got = hooks
        .until("a refund's order_update", |g| {
            g.iter()
                .any(|r| r.json()["data"]["adjustments"][0]["amount"] == 1200)
        })
        .await;
    let update = got
        .iter()
        .find(|r| r.json()["data"]["adjustments"][0]["amount"] == 1200)
        .unwrap();
    verify_signature(update);
    let event = update.json();
    assert_webhook(&event);
    assert_eq!(event["type"], "order_update");
    assert_eq!(event["data"]["adjustments"][0]["type"], "refund");
    assert_eq!(event["data"]["adjustments"][0]["amount"], 1200);
    let refunded = event["data"]["totals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "amount_refunded")
        .unwrap();
    assert_eq!(refunded["amount"], 1200);

    // Shipping the order is an order_update too.
    let r = obol
        .http
        .patch(obol.url(&format!("/v1/orders/{order_id}")))
        .bearer_auth(&obol.api_key)
        .json(&json!({"status": "shipped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = hooks
        .until("order shipped", |g| {
            g.iter().any(|r| r.json()["data"]["status"] == "shipped")
        })
        .await;
    let shipped = got
        .iter()
        .find(|r| r.json()["data"]["status"] == "shipped")
        .unwrap();
    verify_signature(shipped);
    assert_webhook(&shipped.json());
    assert_eq!(
        shipped.json()["data"]["fulfillments"][0]["status"],
        "shipped"
    );

    // A completed session: cancel is 405, a second complete 409.
    let (s, refused) = post(
        &obol,
        &format!("/acp/checkout_sessions/{id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(s, 405, "{refused}");
    assert_acp("Error", &refused);
    assert_eq!(refused["code"], "session_not_cancelable");
    let (s, again) = post(
        &obol,
        &format!("/acp/checkout_sessions/{id}/complete"),
        payment(&token),
    )
    .await;
    assert_eq!(s, 409, "{again}");
    assert_acp("Error", &again);

    // Cancel an open session; the canceled one cannot be canceled again.
    let other = ready_session(&obol, &shop).await;
    let (s, canceled) = post(
        &obol,
        &format!("/acp/checkout_sessions/{other}/cancel"),
        json!({"intent_trace": {"reason_code": "shipping_cost", "trace_summary": "too dear"}}),
    )
    .await;
    assert_eq!(s, 200, "{canceled}");
    assert_acp("CheckoutSession", &canceled);
    assert_eq!(canceled["status"], "canceled");
    let (s, _) = post(
        &obol,
        &format!("/acp/checkout_sessions/{other}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(s, 405);

    // Unknown sessions, and bodies of the wrong shape.
    let (s, _, missing) = acp(
        &obol,
        Call::default(),
        "GET",
        "/acp/checkout_sessions/acs_nope",
        None,
    )
    .await;
    assert_eq!(s, 404);
    assert_acp("Error", &missing);
    assert_eq!(missing["code"], "session_not_found");
    let (s, bad) = post(
        &obol,
        "/acp/checkout_sessions",
        json!({"line_items": [{"id": shop.boots}], "buyer": {"email": "not-an-address"}}),
    )
    .await;
    assert_eq!(s, 400, "{bad}");
    assert_acp("Error", &bad);
    assert_eq!(bad["param"], "$.buyer.email");
    let (s, bad) = post(&obol, &format!("/acp/checkout_sessions/{other}/complete"), json!({"payment_data": {"handler_id": "card_tokenized", "instrument": {"type": "card", "credential": {"type": "spt", "token": "tok_visa"}}}})).await;
    assert_eq!(s, 400, "{bad}");
    assert_eq!(bad["param"], "$.payment_data.instrument.credential.token");
}

async fn idempotency_keys_replay_conflict_and_are_required(backend: Backend) {
    let obol = start(backend, None).await;
    let shop = shop(&obol).await;
    let body = json!({"currency": "usd", "line_items": [{"id": shop.socks}], "capabilities": {}});

    // Credentials: none, obol's own secret key, a wrong one.
    for key in [
        None,
        Some(obol.api_key.as_str()),
        Some("nope_not_a_platform_key_0123456789"),
    ] {
        let (s, _, e) = acp(
            &obol,
            Call {
                key,
                ..Call::default()
            },
            "POST",
            "/acp/checkout_sessions",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 401, "{e}");
        assert_acp("Error", &e);
        assert_eq!(e["code"], "unauthorized");
    }
    // API-Version: missing, unknown.
    for version in [None, Some("2025-09-29")] {
        let (s, _, e) = acp(
            &obol,
            Call {
                version,
                ..Call::default()
            },
            "POST",
            "/acp/checkout_sessions",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 400, "{e}");
        assert_acp("Error", &e);
        assert_eq!(e["supported_versions"], json!(["2026-04-17"]));
        assert_eq!(
            e["code"],
            if version.is_none() {
                "missing_api_version"
            } else {
                "unsupported_api_version"
            }
        );
    }
    let (s, _, e) = acp(
        &obol,
        Call {
            version: None,
            ..Call::default()
        },
        "GET",
        "/acp/checkout_sessions/acs_x",
        None,
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (400, Some("missing_api_version")));
    // Idempotency-Key: required on every POST.
    let (s, _, e) = acp(
        &obol,
        Call {
            idempotency: None,
            ..Call::default()
        },
        "POST",
        "/acp/checkout_sessions",
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert_acp("Error", &e);
    assert_eq!(e["code"], "idempotency_key_required");
    assert_eq!(e["type"], "invalid_request");

    // Replay: the same key and an equivalent body (keys reordered, 1.0
    // for 1) answer the stored session, marked replayed.
    let key = "idem-create-1".to_string();
    let call = || Call::keyed(&key);
    let (s, h, first) = acp(
        &obol,
        call(),
        "POST",
        "/acp/checkout_sessions",
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 201, "{first}");
    assert!(h.get("idempotent-replayed").is_none());
    assert_eq!(h["idempotency-key"], key.as_str());
    let equivalent: Value = serde_json::from_str(&format!(
        r#"{{"capabilities": {{}}, "line_items": [{{"quantity": 1.0, "id": "{}"}}], "currency": "usd"}}"#,
        shop.socks
    ))
    .unwrap();
    let mut with_quantity = body.clone();
    with_quantity["line_items"][0]["quantity"] = json!(1);
    let (s, _, stored_q) = acp(
        &obol,
        Call {
            idempotency: Some("idem-q".into()),
            ..Call::default()
        },
        "POST",
        "/acp/checkout_sessions",
        Some(with_quantity),
    )
    .await;
    assert_eq!(s, 201);
    let (s, h, replay) = acp(
        &obol,
        Call {
            idempotency: Some("idem-q".into()),
            ..Call::default()
        },
        "POST",
        "/acp/checkout_sessions",
        Some(equivalent),
    )
    .await;
    assert_eq!(s, 201, "{replay}");
    assert_eq!(h["idempotent-replayed"], "true");
    assert_eq!(replay, stored_q);
    let (s, h, again) = acp(
        &obol,
        call(),
        "POST",
        "/acp/checkout_sessions",
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(h["idempotent-replayed"], "true");
    assert_eq!(again["id"], first["id"], "no second session");
    // Conflict: the same key with another body.
    let mut other = body.clone();
    other["line_items"] = json!([{"id": shop.boots}]);
    let (s, _, e) = acp(&obol, call(), "POST", "/acp/checkout_sessions", Some(other)).await;
    assert_eq!(s, 422, "{e}");
    assert_acp("Error", &e);
    assert_eq!(e["code"], "idempotency_conflict");
    // `null` is not an absent key.
    let mut nulled = body.clone();
    nulled["buyer"] = Value::Null;
    let (s, _, e) = acp(
        &obol,
        call(),
        "POST",
        "/acp/checkout_sessions",
        Some(nulled),
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (422, Some("idempotency_conflict")));
    // The same key on another endpoint is another key.
    let id = first["id"].as_str().unwrap();
    let (s, h, updated) = acp(
        &obol,
        call(),
        "POST",
        &format!("/acp/checkout_sessions/{id}"),
        Some(json!({"fulfillment_details": {"address": address()}})),
    )
    .await;
    assert_eq!(s, 200, "{updated}");
    assert!(h.get("idempotent-replayed").is_none());
    // Another credential has its own keys.
    let (s, h, _) = acp(
        &obol,
        Call {
            key: Some("other_platform_key_0123456789abcdefgh"),
            idempotency: Some(key.clone()),
            ..Call::default()
        },
        "POST",
        "/acp/checkout_sessions",
        Some(json!({"currency": "usd", "line_items": [{"id": shop.boots}]})),
    )
    .await;
    assert_eq!(s, 201);
    assert!(h.get("idempotent-replayed").is_none());
}

async fn set_chaos(obol: &Obol, chaos: Value) {
    let base = sandbox(obol).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/_sandbox/chaos"))
        .json(&chaos)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn an_in_flight_key_answers_409_and_a_5xx_is_not_stored(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_ACP__API_KEYS", AGENT_KEY)
        .env("OBOL_STRIPE__MAX_ATTEMPTS", "2")
        .start()
        .await;
    let shop = shop(&obol).await;
    let id = ready_session(&obol, &shop).await;
    let token = grant(&obol, "pm_card_visa", 11700, None).await;
    let path = format!("/acp/checkout_sessions/{id}/complete");

    // While the first complete waits for a slow Stripe, the same key is in flight.
    set_chaos(&obol, json!({"latency_ms": 700})).await;
    let key = "idem-complete-1".to_string();
    let first = spawn_complete(&obol, &path, key.clone(), payment(&token));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (s, h, e) = acp(
        &obol,
        Call::keyed(&key),
        "POST",
        &path,
        Some(payment(&token)),
    )
    .await;
    assert_eq!(s, 409, "{e}");
    assert_acp("Error", &e);
    assert_eq!(e["code"], "idempotency_in_flight");
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let (s, done) = first.await.unwrap();
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["status"], "completed");
    set_chaos(&obol, json!({})).await;
    let (s, h, replay) = acp(
        &obol,
        Call::keyed(&key),
        "POST",
        &path,
        Some(payment(&token)),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h["idempotent-replayed"], "true");
    assert_eq!(replay["order"], done["order"]);
    assert_eq!(intents_of(&obol, &id).await.len(), 1, "charged once");

    // A 5xx answer is not stored: the retry with the same key runs afresh.
    let id = ready_session(&obol, &shop).await;
    let token = grant(&obol, "pm_card_visa", 11700, None).await;
    let path = format!("/acp/checkout_sessions/{id}/complete");
    set_chaos(&obol, json!({"api_5xx": 1.0})).await;
    let key = "idem-complete-2".to_string();
    let (s, _, e) = acp(
        &obol,
        Call::keyed(&key),
        "POST",
        &path,
        Some(payment(&token)),
    )
    .await;
    assert!(s >= 500, "{s} {e}");
    assert_acp("Error", &e);
    set_chaos(&obol, json!({})).await;
    let (s, h, done) = acp(
        &obol,
        Call::keyed(&key),
        "POST",
        &path,
        Some(payment(&token)),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert!(h.get("idempotent-replayed").is_none());
    assert_eq!(done["status"], "completed");
    assert_acp("CheckoutSessionWithOrder", &done);
}

async fn tokens_that_cannot_pay_are_refused_with_nothing_charged(backend: Backend) {
    let obol = start(backend, None).await;
    let shop = shop(&obol).await;
    let id = ready_session(&obol, &shop).await;
    let path = format!("/acp/checkout_sessions/{id}/complete");
    let base = sandbox(&obol).await;

    let below = grant(&obol, "pm_card_visa", 11699, None).await;
    let expired = grant(
        &obol,
        "pm_card_visa",
        20000,
        Some(chrono::Utc::now().timestamp() - 60),
    )
    .await;
    let revoked = grant(&obol, "pm_card_visa", 20000, None).await;
    crate::inbox::stripe_post(
        &base,
        &format!("/v1/test_helpers/shared_payment/granted_tokens/{revoked}/revoke"),
        &[],
    )
    .await;
    let declines = grant(&obol, "pm_card_visa_chargeDeclined", 20000, None).await;
    for token in [
        below.as_str(),
        expired.as_str(),
        revoked.as_str(),
        "spt_unknown0000000000",
    ] {
        let (s, session) = post(&obol, &path, payment(token)).await;
        assert_eq!(s, 200, "{session}");
        assert_acp("CheckoutSession", &session);
        assert_eq!(session["status"], "ready_for_payment", "{token}: {session}");
        assert!(
            codes(&session).iter().any(|(c, _)| c == "payment_declined"),
            "{session}"
        );
        assert!(session.get("order").is_none());
    }
    assert!(
        intents_of(&obol, &id).await.is_empty(),
        "nothing was charged"
    );
    for token in [&below, &expired] {
        let t = stripe_get(&base, &format!("/v1/shared_payment/granted_tokens/{token}")).await;
        assert_eq!(t["usage_details"]["amount_captured"]["value"], 0);
    }

    // A card the bank declines: a failed attempt, nothing charged, the
    // session stays payable and another token completes it.
    let (s, session) = post(&obol, &path, payment(&declines)).await;
    assert_eq!(s, 200, "{session}");
    assert_eq!(session["status"], "ready_for_payment");
    assert!(
        codes(&session).iter().any(|(c, _)| c == "payment_declined"),
        "{session}"
    );
    let failed = intents_of(&obol, &id).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status"], "requires_payment_method");
    assert_eq!(failed[0]["amount_received"], 0);
    let good = grant(&obol, "pm_card_visa", 11700, None).await;
    let (s, done) = post(&obol, &path, payment(&good)).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["status"], "completed");
    assert!(
        codes(&done).is_empty(),
        "the decline message is gone: {done}"
    );
}

async fn concurrent_completes_charge_the_token_once(backend: Backend) {
    let obol = start(backend, None).await;
    let shop = shop(&obol).await;
    let id = ready_session(&obol, &shop).await;
    let token = grant(&obol, "pm_card_visa", 11700, None).await;
    let path = format!("/acp/checkout_sessions/{id}/complete");
    let keys: Vec<String> = (0..8).map(|i| format!("concurrent-{i}")).collect();
    let calls = keys
        .iter()
        .map(|k| spawn_complete(&obol, &path, k.clone(), payment(&token)));
    let mut completed = 0;
    let mut busy = Vec::new();
    for (c, key) in futures::future::join_all(calls)
        .await
        .into_iter()
        .zip(&keys)
    {
        let (s, body) = c.unwrap();
        match s {
            200 => {
                assert_eq!(body["status"], "completed", "{body}");
                completed += 1;
            }
            409 => {
                assert_acp("Error", &body);
                assert!(
                    body["code"] == "checkout_in_progress"
                        || body["code"] == "session_not_modifiable",
                    "{body}"
                );
                if body["code"] == "checkout_in_progress" {
                    busy.push(key.clone());
                }
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(completed, 1);
    // "Try again shortly" is not stored: the retry with its key runs
    // afresh (and finds the session completed) instead of a replay.
    for key in busy {
        let (s, h, e) = acp(
            &obol,
            Call::keyed(&key),
            "POST",
            &path,
            Some(payment(&token)),
        )
        .await;
        assert_eq!(
            (s, e["code"].as_str()),
            (409, Some("session_not_modifiable")),
            "{e}"
        );
        assert!(h.get("idempotent-replayed").is_none());
    }
    let intents = intents_of(&obol, &id).await;
    assert_eq!(intents.len(), 1, "one PaymentIntent");
    let base = sandbox(&obol).await;
    let t = stripe_get(&base, &format!("/v1/shared_payment/granted_tokens/{token}")).await;
    assert_eq!(t["usage_details"]["amount_captured"]["value"], 11700);
    let (_, _, session) = acp(
        &obol,
        Call::default(),
        "GET",
        &format!("/acp/checkout_sessions/{id}"),
        None,
    )
    .await;
    assert_eq!(session["status"], "completed");
}

async fn three_d_secure_leads_through_authentication_required_to_completion(backend: Backend) {
    let hooks = TestReceiver::start(0).await;
    let obol = start(backend, Some(&hooks.url)).await;
    let shop = shop(&obol).await;
    let id = ready_session(&obol, &shop).await;
    let token = grant(&obol, "pm_card_threeDSecure2Required", 11700, None).await;
    let path = format!("/acp/checkout_sessions/{id}/complete");

    let (s, waiting) = post(&obol, &path, payment(&token)).await;
    assert_eq!(s, 200, "{waiting}");
    assert_acp("CheckoutSession", &waiting);
    assert_eq!(waiting["status"], "authentication_required");
    let meta = &waiting["authentication_metadata"];
    assert_eq!(meta["directory_server"], "visa");
    assert!(meta["acquirer_details"]["merchant_name"].is_string());

    // Updating or completing without the result is refused.
    let (s, e) = post(&obol, &path, payment(&token)).await;
    assert_eq!(s, 400, "{e}");
    assert_acp("Error", &e);
    assert_eq!(e["code"], "requires_3ds");
    assert_eq!(e["param"], "$.authentication_result");
    assert_eq!(e["type"], "invalid_request");
    let (s, e) = post(
        &obol,
        &format!("/acp/checkout_sessions/{id}"),
        json!({"line_items": [{"id": shop.socks}]}),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("session_not_modifiable"))
    );

    // The agent authenticated with the issuer; its result completes.
    let mut with_result = payment(&token);
    with_result["authentication_result"] = json!({"outcome": "authenticated", "outcome_details": {
        "three_ds_cryptogram": "AbCdEfGhIjKlMnOpQrStUvWxY0=", "electronic_commerce_indicator": "05",
        "transaction_id": "dsTransId_abc123", "version": "2.2.0"}});
    let (s, done) = post(&obol, &path, with_result).await;
    assert_eq!(s, 200, "{done}");
    assert_acp("CheckoutSessionWithOrder", &done);
    assert_eq!(done["status"], "completed");
    assert!(done.get("authentication_metadata").is_none());
    let intents = intents_of(&obol, &id).await;
    assert_eq!(intents.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stripe_get(
        &sandbox(&obol).await,
        &format!("/v1/payment_intents/{}", intents[0]["id"].as_str().unwrap()),
    )
    .await["status"]
        != "succeeded"
    {
        assert!(Instant::now() < deadline, "the authorization was captured");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = hooks.until("order_create", |g| !g.is_empty()).await;
    verify_signature(&got[0]);
    assert_webhook(&got[0].json());

    // A denied authentication: nothing charged, the session stays payable.
    let id = ready_session(&obol, &shop).await;
    let token = grant(&obol, "pm_card_threeDSecure2Required", 11700, None).await;
    let path = format!("/acp/checkout_sessions/{id}/complete");
    let (_, waiting) = post(&obol, &path, payment(&token)).await;
    assert_eq!(waiting["status"], "authentication_required");
    let mut denied = payment(&token);
    denied["authentication_result"] = json!({"outcome": "denied"});
    let (s, session) = post(&obol, &path, denied).await;
    assert_eq!(s, 200, "{session}");
    assert_acp("CheckoutSession", &session);
    assert_eq!(session["status"], "ready_for_payment");
    assert!(codes(&session).iter().any(|(c, _)| c == "payment_declined"));
    let intents = intents_of(&obol, &id).await;
    assert_eq!(intents[0]["status"], "canceled");
}

/// `Signature` / `Timestamp` for `body` at `at`, as the agent platform
/// computes them: base64url HMAC-SHA256 over "<Timestamp>.<canonical
/// JSON>" (serde_json's `Value` keeps keys sorted and writes no
/// whitespace: canonical for these integer-only bodies).
fn sign(secret: &str, at: chrono::DateTime<chrono::Utc>, body: Option<&Value>) -> (String, String) {
    use base64::Engine as _;
    let ts = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    if let Some(b) = body {
        mac.update(serde_json::to_string(b).unwrap().as_bytes());
    }
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    (sig, ts)
}

async fn signed_requests_are_verified_when_a_signing_secret_is_set(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_ACP__API_KEYS", AGENT_KEY)
        .env("OBOL_ACP__SIGNING_SECRET", SIGNING_SECRET)
        .start()
        .await;
    let shop = shop(&obol).await;
    let now = chrono::Utc::now();
    let body = json!({"currency": "usd", "line_items": [{"id": shop.socks, "quantity": 2}]});
    let signed = |sig: (String, String)| Call {
        signature: Some(sig),
        ..Call::default()
    };

    // Good: a create and a read (no body: "<Timestamp>." is signed).
    let (s, _, created) = acp(
        &obol,
        signed(sign(SIGNING_SECRET, now, Some(&body))),
        "POST",
        "/acp/checkout_sessions",
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let path = format!("/acp/checkout_sessions/{}", created["id"].as_str().unwrap());
    let (s, _, got) = acp(
        &obol,
        signed(sign(SIGNING_SECRET, now, None)),
        "GET",
        &path,
        None,
    )
    .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["id"], created["id"]);

    // The same body sent with other key order and whitespace verifies:
    // the signature is over its canonical form.
    let raw = format!(
        "{{ \"line_items\": [ {{\"quantity\": 2, \"id\": \"{}\"}} ],\n \"currency\": \"usd\" }}",
        shop.socks
    );
    let (sig, ts) = sign(SIGNING_SECRET, now, Some(&body));
    let r = obol
        .http
        .post(obol.url("/acp/checkout_sessions"))
        .bearer_auth(AGENT_KEY)
        .header("API-Version", "2026-04-17")
        .header("Idempotency-Key", "signed-raw")
        .header("Signature", sig)
        .header("Timestamp", ts)
        .header("Content-Type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let refused = |code: &'static str| {
        move |(s, _, e): (u16, reqwest::header::HeaderMap, Value)| {
            assert_eq!((s, e["code"].as_str()), (401, Some(code)), "{e}");
            assert_acp("Error", &e);
            assert_eq!(e["type"], "invalid_request");
        }
    };
    // Bad: another secret, another body, a signature of another time.
    let other = json!({"currency": "usd", "line_items": [{"id": shop.socks, "quantity": 3}]});
    for sig in [
        sign("not_the_platform_secret_0123456789abcdef", now, Some(&body)),
        sign(SIGNING_SECRET, now, Some(&other)),
        (
            sign(
                SIGNING_SECRET,
                now - chrono::Duration::seconds(1),
                Some(&body),
            )
            .0,
            sign(SIGNING_SECRET, now, None).1,
        ),
        (
            "bm90IGEgc2lnbmF0dXJl".to_string(),
            sign(SIGNING_SECRET, now, None).1,
        ),
    ] {
        refused("invalid_signature")(
            acp(
                &obol,
                signed(sig),
                "POST",
                "/acp/checkout_sessions",
                Some(body.clone()),
            )
            .await,
        );
    }
    // Stale or from the future (beyond 300 s), correctly signed; unparsable.
    for at in [
        now - chrono::Duration::seconds(400),
        now + chrono::Duration::seconds(400),
    ] {
        refused("timestamp_out_of_range")(
            acp(
                &obol,
                signed(sign(SIGNING_SECRET, at, Some(&body))),
                "POST",
                "/acp/checkout_sessions",
                Some(body.clone()),
            )
            .await,
        );
    }
    refused("timestamp_out_of_range")(
        acp(
            &obol,
            signed(("x".into(), "yesterday".into())),
            "GET",
            &path,
            None,
        )
        .await,
    );
    // Missing.
    refused("signature_required")(acp(&obol, Call::default(), "GET", &path, None).await);
    refused("signature_required")(
        acp(
            &obol,
            Call::default(),
            "POST",
            "/acp/checkout_sessions",
            Some(body.clone()),
        )
        .await,
    );
}

async fn set_stock(obol: &Obol, product: &str, stock: i64) {
    let r = obol
        .http
        .patch(obol.url(&format!("/v1/products/{product}")))
        .bearer_auth(&obol.api_key)
        .json(&json!({"stock": stock}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
}

/// Runs `sql` on obol's database (SQLite or PostgreSQL).
async fn exec(obol: &Obol, backend: Backend, sql: &str) {
    use sqlx::Connection;
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&obol.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&obol.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

async fn a_complete_whose_answer_was_lost_answers_its_order_on_retry(backend: Backend) {
    let obol = start(backend, None).await;
    let shop = shop(&obol).await;
    let id = ready_session(&obol, &shop).await;
    let token = grant(&obol, "pm_card_visa", 11700, None).await;
    let path = format!("/acp/checkout_sessions/{id}/complete");
    let (s, _, done) = acp(
        &obol,
        Call::keyed("lost-answer"),
        "POST",
        &path,
        Some(payment(&token)),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["status"], "completed");

    // The process died after the order's transaction and before the
    // answer was stored: the key is left in flight, its lock passed.
    exec(
        &obol,
        backend,
        "UPDATE acp_idempotency_keys SET status = NULL, response = NULL, \
         locked_until = '2000-01-01T00:00:00+00:00' WHERE idem_key = 'lost-answer'",
    )
    .await;
    let (s, h, again) = acp(
        &obol,
        Call::keyed("lost-answer"),
        "POST",
        &path,
        Some(payment(&token)),
    )
    .await;
    assert_eq!(s, 200, "{again}");
    assert!(
        h.get("idempotent-replayed").is_none(),
        "run afresh, not replayed"
    );
    assert_acp("CheckoutSessionWithOrder", &again);
    assert_eq!(again["order"], done["order"]);
    assert_eq!(intents_of(&obol, &id).await.len(), 1, "charged once");
    // ...and that answer is now the stored one.
    let (s, h, replay) = acp(
        &obol,
        Call::keyed("lost-answer"),
        "POST",
        &path,
        Some(payment(&token)),
    )
    .await;
    assert_eq!(
        (s, h["idempotent-replayed"].to_str().unwrap()),
        (200, "true")
    );
    assert_eq!(replay["order"], done["order"]);
    // Another key is told the session is done.
    let (s, e) = post(&obol, &path, payment(&token)).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("session_not_modifiable")),
        "{e}"
    );
}

async fn out_of_stock_at_completion_is_refused_with_nothing_charged(backend: Backend) {
    let obol = start(backend, None).await;
    let shop = shop(&obol).await;
    let id = ready_session(&obol, &shop).await;
    let token = grant(&obol, "pm_card_visa", 11700, None).await;
    let path = format!("/acp/checkout_sessions/{id}/complete");

    // The session asks for 2 boots; 1 is left by the time the agent pays.
    set_stock(&obol, &shop.boots, 1).await;
    let (s, session) = post(&obol, &path, payment(&token)).await;
    assert_eq!(s, 200, "{session}");
    assert_acp("CheckoutSession", &session);
    assert_eq!(session["status"], "not_ready_for_payment");
    assert!(session.get("order").is_none());
    assert!(
        codes(&session).contains(&("out_of_stock".to_string(), "$.line_items[0]".to_string())),
        "{session}"
    );
    assert!(
        intents_of(&obol, &id).await.is_empty(),
        "nothing was charged"
    );
    let t = stripe_get(
        &sandbox(&obol).await,
        &format!("/v1/shared_payment/granted_tokens/{token}"),
    )
    .await;
    assert!(
        t["deactivated_reason"].is_null(),
        "the token is unused: {t}"
    );

    // Restocked: the same token completes, through the pay-first checkout
    // (an order of the session's items); like that checkout, the order
    // checks stock and does not decrement it (README: checked, not reserved).
    set_stock(&obol, &shop.boots, 2).await;
    let (s, done) = post(&obol, &path, payment(&token)).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["status"], "completed", "{done}");
    let (_, product) = obol.get(&format!("/v1/products/{}", shop.boots)).await;
    assert_eq!(product["stock"], 2, "{product}");
}
