//! obol's MCP server driven by the official Python SDK (`mcp` 2.x, from the
//! conformance venv) as a real agent would: over streamable HTTP at `/mcp`
//! and over stdio (`obol mcp`, spawned by the SDK), against a running
//! `obol serve` and its sandbox. The client script is
//! `clients/mcp/session.py`: it runs a list of steps in one session and
//! answers what the SDK parsed.

use serde_json::{json, Value};

use crate::helpers::{run_obol, Backend, Obol};
use crate::inbox::{sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    an_agent_pays_first_and_follows_the_order_over_http,
    an_agent_pays_first_and_follows_the_order_over_stdio,
    a_customer_token_sees_only_its_own_over_http,
    a_customer_token_sees_only_its_own_over_stdio,
    a_revoked_customer_token_stops_working_mid_session_over_stdio,
    an_agent_sells_from_the_catalog_with_a_payment_link_over_http,
    an_agent_sells_from_the_catalog_with_a_payment_link_over_stdio,
    an_organisations_agent_sees_only_its_own_over_http,
    an_organisations_agent_sees_only_its_own_over_stdio,
);

const TOOLS: [&str; 14] = [
    "cancel_checkout_session",
    "check_payment_status",
    "complete_checkout_session",
    "create_checkout_session",
    "create_payment_intent",
    "create_payment_link",
    "create_preorder_payment_intent",
    "get_checkout_session",
    "get_order",
    "list_payments",
    "list_products",
    "list_shipping_methods",
    "refund_payment",
    "update_checkout_session",
];

/// How the session reaches obol.
pub(crate) enum Transport<'a> {
    Http,
    /// `/mcp` with these extra headers on every request of the session.
    HttpWith(&'a [(&'a str, &'a str)]),
    /// `obol mcp` with these extra variables.
    Stdio(&'a [(&'a str, &'a str)]),
}

/// Runs `steps` in one MCP session with `token`; returns one result per step.
pub(crate) async fn session(
    obol: &Obol,
    transport: &Transport<'_>,
    token: &str,
    steps: Value,
) -> Vec<Value> {
    let plan = match transport {
        Transport::Http => json!({
            "transport": "http", "url": obol.url("/mcp"), "token": token, "steps": steps,
        }),
        Transport::HttpWith(headers) => {
            let headers: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            json!({
                "transport": "http", "url": obol.url("/mcp"), "token": token,
                "headers": headers, "steps": steps,
            })
        }
        Transport::Stdio(extra) => {
            let addr = obol.base_url.trim_start_matches("http://");
            let mut env = json!({
                "OBOL_MCP_TOKEN": token,
                "OBOL_LISTEN": addr,
                "OBOL_DATABASE_URL": obol.db.url,
                "OBOL_LOG": "info,obol=debug",
            });
            for (k, v) in extra.iter() {
                env[k] = json!(v);
            }
            json!({
                "transport": "stdio", "command": env!("CARGO_BIN_EXE_obol"), "args": ["mcp"],
                "env": env, "cwd": obol.db.dir.path(), "steps": steps,
            })
        }
    };
    let out = tokio::task::spawn_blocking(move || run_client(&plan))
        .await
        .unwrap();
    assert_eq!(
        out["server"]["name"], "obol",
        "the session did not start: {out}"
    );
    out["results"].as_array().unwrap().clone()
}

fn run_client(plan: &Value) -> Value {
    use std::io::Write;
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/.venv/bin/python"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../clients/mcp/session.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the conformance venv exists (conformance/run.sh --setup creates it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(plan.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the MCP client failed: {stdout}\n{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

pub(crate) fn call(name: &str, arguments: Value) -> Value {
    json!({"op": "call", "name": name, "arguments": arguments})
}

/// A tool's successful view.
fn ok(result: &Value) -> &Value {
    assert_eq!(result["is_error"], false, "{result}");
    &result["structured"]
}

/// A refused call's code; the text content carries the same body.
fn code(result: &Value) -> &str {
    assert_eq!(result["is_error"], true, "{result}");
    let text: Value = serde_json::from_str(result["text"][0].as_str().unwrap()).unwrap();
    assert_eq!(text, result["structured"]);
    result["structured"]["error"]["code"].as_str().unwrap()
}

fn names(listed: &Value) -> Vec<&str> {
    listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

fn tool<'a>(listed: &'a Value, name: &str) -> &'a Value {
    listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

/// Every tool: an object schema that refuses unknown arguments, a
/// description naming money's unit where money goes in or out, and the
/// annotations an agent's host decides on.
fn check_catalogue(listed: &Value) {
    assert_eq!(names(listed), TOOLS);
    for name in TOOLS {
        let t = tool(listed, name);
        let schema = &t["inputSchema"];
        assert_eq!(schema["type"], "object", "{name}: {schema}");
        assert_eq!(schema["additionalProperties"], false, "{name}");
        assert!(
            t["description"].as_str().unwrap().len() > 80,
            "{name}: a description an agent can act on"
        );
    }
    let required = |name: &str| tool(listed, name)["inputSchema"]["required"].clone();
    assert_eq!(required("get_order"), json!(["order_id"]));
    assert_eq!(required("create_payment_intent"), json!(["order_id"]));
    assert_eq!(
        required("create_preorder_payment_intent"),
        json!(["amount", "currency"])
    );
    assert_eq!(
        required("check_payment_status"),
        json!(["payment_intent_id"])
    );
    assert_eq!(required("refund_payment"), json!(["payment_id"]));
    let amount =
        &tool(listed, "create_preorder_payment_intent")["inputSchema"]["properties"]["amount"];
    assert_eq!(amount["type"], "integer", "{amount}");
    assert_eq!(amount["minimum"], 1);
    for name in [
        "create_preorder_payment_intent",
        "refund_payment",
        "list_payments",
    ] {
        assert!(
            tool(listed, name)["description"]
                .as_str()
                .unwrap()
                .contains("minor units"),
            "{name}"
        );
    }
    let hints = |name: &str| tool(listed, name)["annotations"].clone();
    for name in ["get_order", "check_payment_status", "list_payments"] {
        assert_eq!(hints(name)["readOnlyHint"], true, "{name}");
    }
    assert_eq!(hints("refund_payment")["readOnlyHint"], false);
    assert_eq!(hints("refund_payment")["destructiveHint"], true);
    assert_eq!(hints("refund_payment")["idempotentHint"], false);
    assert_eq!(hints("create_payment_intent")["idempotentHint"], true);
    assert_eq!(hints("create_payment_intent")["destructiveHint"], false);
    assert_eq!(
        hints("create_preorder_payment_intent")["destructiveHint"],
        false
    );
    assert_eq!(
        hints("create_preorder_payment_intent")["readOnlyHint"],
        false
    );
}

/// The pay-first flow an agent drives: it lists its tools, authorizes
/// 49.99 EUR, the customer's card confirms it (the sandbox stands in for
/// Stripe.js), the shop's backend creates the order over HTTP, and the
/// agent reads the order and the payment's status.
async fn pay_first_flow(obol: &Obol, transport: &Transport<'_>) {
    let key = obol.api_key.clone();
    let first = session(
        obol,
        transport,
        &key,
        json!([
            {"op": "list_tools"},
            call("create_preorder_payment_intent", json!({"amount": 4999, "currency": "eur"})),
            call("create_preorder_payment_intent", json!({"amount": 10, "currency": "eur"})),
            call("create_preorder_payment_intent", json!({"amount": "lots"})),
        ]),
    )
    .await;
    check_catalogue(&first[0]);
    let intent = ok(&first[1]);
    assert_eq!(intent["amount"], 4999);
    assert_eq!(intent["currency"], "eur");
    assert_eq!(intent["status"], "requires_payment_method");
    assert!(intent["client_secret"]
        .as_str()
        .unwrap()
        .contains("_secret_"));
    assert!(intent["publishable_key"]
        .as_str()
        .unwrap()
        .starts_with("pk_test_"));
    assert_eq!(code(&first[2]), "amount_too_small");
    assert_eq!(code(&first[3]), "invalid_body");
    let pi = intent["id"].as_str().unwrap().to_string();

    let base = sandbox(obol).await;
    let confirmed = stripe_post(
        &base,
        &format!("/v1/payment_intents/{pi}/confirm"),
        &[
            ("payment_method", "pm_card_visa"),
            ("return_url", "https://shop.example.com/done"),
        ],
    )
    .await;
    assert_eq!(confirmed["status"], "requires_capture", "{confirmed}");
    let (status, order) = obol
        .post(
            "/v1/orders",
            json!({
                "email": "ana@example.com", "currency": "eur", "payment_reference": pi,
                "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 2}],
                "shipping": {"name": "Standard", "amount": 999}
            }),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["id"].as_str().unwrap();

    let second = session(
        obol,
        transport,
        &key,
        json!([
            call("get_order", json!({"order_id": order_id})),
            call("check_payment_status", json!({"payment_intent_id": pi})),
            call(
                "get_order",
                json!({"order_id": "ord_00000000000000000000000000"})
            ),
            call("list_payments", json!({"order_id": order_id})),
        ]),
    )
    .await;
    let seen = ok(&second[0]);
    assert_eq!(seen["id"], order_id);
    assert_eq!(seen["status"], "confirmed");
    assert_eq!(seen["total"], json!({"amount": 4999, "currency": "eur"}));
    assert_eq!(seen["payment_id"], intent["payment_id"]);
    let status = ok(&second[1]);
    assert_eq!(status["id"], pi.as_str());
    assert_eq!(status["order_id"], order_id);
    assert!(
        matches!(
            status["stripe_status"].as_str(),
            Some("requires_capture" | "succeeded")
        ),
        "{status}"
    );
    assert!(
        matches!(
            status["payment_status"].as_str(),
            Some("authorized" | "completed")
        ),
        "{status}"
    );
    assert_eq!(code(&second[2]), "order_not_found");
    let listed = ok(&second[3]);
    assert_eq!(listed["data"][0]["id"], intent["payment_id"]);
}

/// A customer token: its own tools only, another customer's order is
/// "not found", and the secret key's tools answer `secret_key_required`.
async fn customer_flow(obol: &Obol, transport: &Transport<'_>) {
    let ana = obol.create_customer("ana").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = obol.create_customer("bob").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let order_for = |customer: &str| {
        json!({
            "customer_id": customer, "email": "x@example.com", "currency": "eur",
            "line_items": [{"name": "Riesling 2022", "unit_amount": 2500, "quantity": 1}]
        })
    };
    let (status, ana_order) = obol.post("/v1/orders", order_for(&ana)).await;
    assert_eq!(status, 201, "{ana_order}");
    let (_, bob_order) = obol.post("/v1/orders", order_for(&bob)).await;
    let (ana_order, bob_order) = (
        ana_order["id"].as_str().unwrap(),
        bob_order["id"].as_str().unwrap(),
    );
    let token = obol.customer_token(&ana, 900).await;
    let results = session(
        obol,
        transport,
        &token,
        json!([
            {"op": "list_tools"},
            call("get_order", json!({"order_id": ana_order})),
            call("get_order", json!({"order_id": bob_order})),
            call("create_payment_intent", json!({"order_id": bob_order})),
            call("create_payment_intent", json!({"order_id": ana_order})),
            call("create_preorder_payment_intent", json!({"amount": 4999, "currency": "eur", "customer_id": bob})),
            call("refund_payment", json!({"payment_id": "pay_00000000000000000000000000"})),
            call("list_payments", json!({})),
        ]),
    )
    .await;
    let listed = names(&results[0]);
    assert_eq!(
        listed,
        [
            "check_payment_status",
            "create_payment_intent",
            "create_payment_link",
            "create_preorder_payment_intent",
            "get_order",
            "list_products",
            "list_shipping_methods"
        ]
    );
    assert_eq!(ok(&results[1])["id"], ana_order);
    assert_eq!(code(&results[2]), "order_not_found");
    assert_eq!(code(&results[3]), "order_not_found");
    let intent = ok(&results[4]);
    assert_eq!(intent["amount"], 2500, "the order's own total");
    assert_eq!(code(&results[5]), "customer_not_found");
    assert_eq!(code(&results[6]), "secret_key_required");
    assert_eq!(code(&results[7]), "secret_key_required");
    let pi = intent["id"].as_str().unwrap();

    // Bob's token cannot read the status of Ana's payment either.
    let bob_token = obol.customer_token(&bob, 900).await;
    let results = session(
        obol,
        transport,
        &bob_token,
        json!([call(
            "check_payment_status",
            json!({"payment_intent_id": pi})
        )]),
    )
    .await;
    assert_eq!(code(&results[0]), "payment_not_found");
}

async fn an_agent_pays_first_and_follows_the_order_over_http(backend: Backend) {
    let obol = Obol::start(backend).await;
    // No credential, or a wrong one: 401 with a Bearer challenge, in obol's
    // error shape (and checked against the OpenAPI document).
    let mcp_post = |bearer: Option<&str>| {
        let mut r = obol
            .http
            .post(obol.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        r.send()
    };
    let r = mcp_post(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="obol""#);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    let r = mcp_post(Some("obol_sk_wrong0123456789abcdef0123456789ab"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(r#"error="invalid_token""#));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    // Another Host is refused before anything else (DNS rebinding).
    let r = obol
        .http
        .post(obol.url("/mcp"))
        .header("host", "evil.example")
        .bearer_auth(&obol.api_key)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "host_not_allowed");

    // The documented answers of a working request, checked against the
    // OpenAPI document too: 200 with the JSON-RPC response, 202 for a
    // notification.
    let r = obol
        .http
        .post(obol.url("/mcp"))
        .bearer_auth(&obol.api_key)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "obol-test", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("mcp-session-id").is_none(), "stateless");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"]["serverInfo"]["name"], "obol", "{body}");
    let r = obol
        .http
        .post(obol.url("/mcp"))
        .bearer_auth(&obol.api_key)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = obol
        .http
        .post(obol.url("/mcp"))
        .bearer_auth(&obol.api_key)
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406, "no Accept for an event stream");

    pay_first_flow(&obol, &Transport::Http).await;
    assert!(
        !obol.output().contains(&obol.api_key),
        "the secret key reached the log"
    );
}

async fn an_agent_pays_first_and_follows_the_order_over_stdio(backend: Backend) {
    // No configured keys: `obol mcp` accepts the development key `obol
    // serve` generated and stored hashed.
    let obol = Obol::builder(backend).without_api_keys().start().await;
    assert!(obol.api_key.starts_with("obol_sk_"));
    pay_first_flow(&obol, &Transport::Stdio(&[])).await;
}

async fn a_customer_token_sees_only_its_own_over_http(backend: Backend) {
    let obol = Obol::start(backend).await;
    customer_flow(&obol, &Transport::Http).await;
}

async fn a_customer_token_sees_only_its_own_over_stdio(backend: Backend) {
    let obol = Obol::start(backend).await;
    let key = obol.api_key.clone();
    customer_flow(&obol, &Transport::Stdio(&[("OBOL_API_KEYS", &key)])).await;
}

/// `obol mcp` checks its token on every call, not once: a customer token
/// the backend revokes mid-session stops working at the next call.
async fn a_revoked_customer_token_stops_working_mid_session_over_stdio(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ana = obol.create_customer("ana").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, token) = obol
        .post("/v1/customer-tokens", json!({"customer_id": ana}))
        .await;
    assert_eq!(status, 201, "{token}");
    let key = obol.api_key.clone();
    let revoke = obol.url(&format!(
        "/v1/customer-tokens/{}",
        token["id"].as_str().unwrap()
    ));
    let steps = json!([
        call("get_order", json!({"order_id": "ord_00000000000000000000000000"})),
        {"op": "http", "method": "DELETE", "url": revoke, "token": key},
        call("get_order", json!({"order_id": "ord_00000000000000000000000000"})),
        {"op": "list_tools"},
    ]);
    let results = session(
        &obol,
        &Transport::Stdio(&[("OBOL_API_KEYS", &key)]),
        token["token"].as_str().unwrap(),
        steps,
    )
    .await;
    assert_eq!(code(&results[0]), "order_not_found");
    assert_eq!(results[1]["status"], 200);
    assert_eq!(code(&results[2]), "invalid_customer_token");
    assert!(
        results[3]["protocol_error"]
            .as_str()
            .unwrap()
            .contains("customer token"),
        "{}",
        results[3]
    );
}

#[test]
fn obol_mcp_refuses_a_missing_or_wrong_token_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/obol.db?mode=rwc", dir.path().display());
    let base = [
        ("OBOL_DATABASE_URL", db.as_str()),
        ("OBOL_API_KEYS", "obol_sk_configured0123456789abcdef012345"),
        ("OBOL_STRIPE__SECRET_KEY", "sk_test_unused"),
        ("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_test_unused"),
        ("OBOL_STRIPE__API_BASE", "http://127.0.0.1:9"),
    ];
    let (status, stdout, stderr) = run_obol(&["mcp"], &base, dir.path());
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("OBOL_MCP_TOKEN"), "{stderr}");
    assert!(stdout.is_empty(), "stdout is the MCP channel: {stdout}");
    for (token, expected) in [
        ("obol_sk_guessed0123456789abcdef01234567", "invalid_api_key"),
        (
            "obol_ct_guessed0123456789abcdef01234567",
            "invalid_customer_token",
        ),
    ] {
        let mut env = base.to_vec();
        env.push(("OBOL_MCP_TOKEN", token));
        let (status, stdout, stderr) = run_obol(&["mcp"], &env, dir.path());
        assert_eq!(status, 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains(token) && !stdout.contains(token));
    }
}

/// What an agent selling in a chat does: reads the catalog, builds a cart
/// from it, makes a payment link, the customer pays on the page (the
/// sandbox's API and the link's complete call stand in for the browser),
/// and the agent polls until the link is completed and reads the order.
async fn catalog_flow(obol: &Obol, transport: &Transport<'_>) {
    let (_, product) = obol
        .post(
            "/v1/products",
            json!({"name": "Riesling 2022", "unit_amount": 2000, "currency": "eur"}),
        )
        .await;
    let (_, shipping) = obol
        .post(
            "/v1/shipping-methods",
            json!({"name": "Standard", "amount": 499, "currency": "eur"}),
        )
        .await;
    let ana = obol.create_customer("ana-cat").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = obol.customer_token(&ana, 900).await;
    let results = session(
        obol,
        transport,
        &token,
        json!([
            call("list_products", json!({})),
            call("list_shipping_methods", json!({})),
            call("create_payment_link", json!({
                "email": "ana@example.com",
                "items": [{"product_id": product["id"], "quantity": 2}],
                "shipping_method_id": shipping["id"],
                "shipping_address": {"first_name": "Ana", "last_name": "Lopez", "street": "Hauptstr. 1", "city": "Mainz", "zip": "55116", "country": "DE"}
            })),
            call("create_payment_link", json!({"email": "ana@example.com", "items": [{"product_id": "prod_01jd8x3qzv5m2c7e9f0g1h2j3k", "quantity": 1}]})),
        ]),
    )
    .await;
    let products = ok(&results[0]);
    assert_eq!(products["data"][0]["unit_amount"], 2000, "{products}");
    assert_eq!(ok(&results[1])["data"][0]["amount"], 499);
    let link = ok(&results[2]).clone();
    assert!(
        link["payment_url"].as_str().unwrap().contains("/pay/"),
        "{link}"
    );
    assert_eq!(code(&results[3]), "unknown_product");
    let pi = link["payment_intent_id"].as_str().unwrap();
    let token_in_url = link["token"].as_str().unwrap();

    // The customer pays on the page.
    let base = crate::inbox::sandbox(obol).await;
    crate::inbox::stripe_post(
        &base,
        &format!("/v1/payment_intents/{pi}/confirm"),
        &[
            ("payment_method", "pm_card_visa"),
            ("return_url", "https://shop.example.com/done"),
        ],
    )
    .await;
    let r = obol
        .http
        .post(obol.url(&format!("/v1/payment-links/{token_in_url}/complete")))
        .json(&json!({"payment_intent_id": pi}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let results = session(
        obol,
        transport,
        &token,
        json!([
            call("check_payment_status", json!({"payment_intent_id": pi})),
            call("get_order", json!({"order_id": link["order_id"]})),
        ]),
    )
    .await;
    let status = ok(&results[0]);
    assert_eq!(status["payment_link_status"], "completed", "{status}");
    let order = ok(&results[1]);
    assert_eq!(order["status"], "confirmed");
    assert_eq!(
        order["total"],
        json!({"amount": 2 * 2000 + 499, "currency": "eur"})
    );
}

async fn an_agent_sells_from_the_catalog_with_a_payment_link_over_http(backend: Backend) {
    let obol = Obol::start(backend).await;
    catalog_flow(&obol, &Transport::Http).await;
}

async fn an_agent_sells_from_the_catalog_with_a_payment_link_over_stdio(backend: Backend) {
    let obol = Obol::builder(backend).without_api_keys().start().await;
    catalog_flow(&obol, &Transport::Stdio(&[])).await;
}

/// Two organisations, an order in each (made over HTTP with
/// `Obol-Organization`). An agent session naming one (the header on every
/// `/mcp` request, or `OBOL_MCP_ORGANIZATION` for `obol mcp`) reads its
/// order and not the other's; without one it acts for the platform and
/// sees neither; a customer token acts in its own organisation.
async fn organisation_flow(obol: &Obol, http: bool) {
    let mut orgs = Vec::new();
    for name in ["Weingut Ana", "Bodega Bob"] {
        let (s, org) = obol.post("/v1/organizations", json!({"name": name})).await;
        assert_eq!(s, 201, "{org}");
        let org = org["id"].as_str().unwrap().to_string();
        let in_org = |path: &str, body: Value| {
            obol.http
                .post(obol.url(path))
                .bearer_auth(&obol.api_key)
                .header("obol-organization", &org)
                .json(&body)
                .send()
        };
        let r = in_org(
            "/v1/customers",
            json!({"external_id": "member-1", "email": "m@club.example"}),
        )
        .await
        .unwrap();
        let (s, customer) = crate::helpers::status_json(r).await;
        assert_eq!(s, 201, "{customer}");
        let customer = customer["id"].as_str().unwrap().to_string();
        let r = in_org(
            "/v1/orders",
            json!({
                "customer_id": customer, "email": "m@club.example", "currency": "eur",
                "line_items": [{"name": "Riesling 2022", "unit_amount": 2500, "quantity": 1}]
            }),
        )
        .await
        .unwrap();
        let (s, order) = crate::helpers::status_json(r).await;
        assert_eq!(s, 201, "{order}");
        let r = in_org(
            "/v1/customer-tokens",
            json!({"customer_id": customer, "ttl_seconds": 900}),
        )
        .await
        .unwrap();
        let (s, token) = crate::helpers::status_json(r).await;
        assert_eq!(s, 201, "{token}");
        orgs.push((
            org,
            order["id"].as_str().unwrap().to_string(),
            token["token"].as_str().unwrap().to_string(),
        ));
    }
    let orders = json!([
        call("get_order", json!({"order_id": orgs[0].1})),
        call("get_order", json!({"order_id": orgs[1].1})),
        call("list_payments", json!({})),
    ]);
    let api_keys = obol.api_key.clone();
    let run = |org: Option<&str>, token: &str| {
        let token = token.to_string();
        let api_keys = api_keys.clone();
        let org = org.map(str::to_string);
        let steps = orders.clone();
        async move {
            let headers: Vec<(&str, &str)> = org
                .as_deref()
                .map(|o| ("Obol-Organization", o))
                .into_iter()
                .collect();
            let mut env: Vec<(&str, &str)> = vec![("OBOL_API_KEYS", api_keys.as_str())];
            env.extend(org.as_deref().map(|o| ("OBOL_MCP_ORGANIZATION", o)));
            let transport = if http {
                Transport::HttpWith(&headers)
            } else {
                Transport::Stdio(&env)
            };
            session(obol, &transport, &token, steps).await
        }
    };
    let key = obol.api_key.clone();
    for (mine, theirs) in [(0, 1), (1, 0)] {
        let results = run(Some(&orgs[mine].0), &key).await;
        assert_eq!(ok(&results[mine])["id"], orgs[mine].1.as_str());
        assert_eq!(code(&results[theirs]), "order_not_found");
        assert_eq!(ok(&results[2])["data"], json!([]));
        // The customer token, with or without its organisation named.
        for org in [None, Some(orgs[mine].0.as_str())] {
            let results = run(org, &orgs[mine].2).await;
            assert_eq!(ok(&results[mine])["id"], orgs[mine].1.as_str());
            assert_eq!(code(&results[theirs]), "order_not_found");
        }
    }
    let results = run(None, &key).await;
    assert_eq!(code(&results[0]), "order_not_found", "the platform's");
    assert_eq!(code(&results[1]), "order_not_found", "the platform's");
}

async fn an_organisations_agent_sees_only_its_own_over_http(backend: Backend) {
    let obol = Obol::start(backend).await;
    organisation_flow(&obol, true).await;
    // Naming an organisation that is not one, or another than a customer
    // token's own, is refused before any tool runs.
    let mcp_post = |bearer: &str, org: &str| {
        obol.http
            .post(obol.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("obol-organization", org)
            .bearer_auth(bearer)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
    };
    let r = mcp_post(&obol.api_key, "org_00000000000000000000000000")
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "organization_not_found");
}

async fn an_organisations_agent_sees_only_its_own_over_stdio(backend: Backend) {
    let obol = Obol::start(backend).await;
    organisation_flow(&obol, false).await;
    // An unknown organisation stops `obol mcp` at start, naming the code.
    let addr = obol.base_url.trim_start_matches("http://").to_string();
    let (db, dir, key) = (
        obol.db.url.clone(),
        obol.db.dir.path().to_path_buf(),
        obol.api_key.clone(),
    );
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_obol(
            &["mcp"],
            &[
                ("OBOL_MCP_TOKEN", key.as_str()),
                ("OBOL_MCP_ORGANIZATION", "org_00000000000000000000000000"),
                ("OBOL_API_KEYS", key.as_str()),
                ("OBOL_LISTEN", addr.as_str()),
                ("OBOL_DATABASE_URL", db.as_str()),
            ],
            &dir,
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("organization_not_found"), "{err}");
    assert!(!err.contains(&obol.api_key), "never the token: {err}");
}
