//! obol's hosted payment page in real headless Chromium (Debian's
//! `chromium`, driven by playwright-core: conformance/node/browser/), and
//! its security headers. Screenshots of every state go to
//! `target/browser-screenshots/`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};

async fn link(obol: &Obol, product: &str) -> Value {
    let (status, link) = obol
        .post(
            "/v1/payment-links",
            json!({"email": "ana@example.com", "items": [{"product_id": product, "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    link
}

fn screenshots() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots")
}

/// Runs the browser script over `cases`; one JSON result per case.
fn browse(cases: Value) -> Vec<Value> {
    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../conformance/node");
    let mut child = Command::new("node")
        .arg("browser/pay-page.mjs")
        .current_dir(node_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (scripts/test.sh installs it, with chromium and playwright-core)");
    let input = json!({"screenshots": screenshots(), "cases": cases}).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    results
}

fn case<'a>(results: &'a [Value], name: &str) -> &'a Value {
    results
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no result for {name}: {results:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_pay_links_in_a_real_browser() {
    let obol = Obol::start(Backend::Sqlite).await;
    let (_, product) = obol
        .post(
            "/v1/products",
            json!({"name": "Riesling 2022", "unit_amount": 2000, "currency": "eur"}),
        )
        .await;
    let product = product["id"].as_str().unwrap().to_string();
    let visa = link(&obol, &product).await;
    let three_ds = link(&obol, &product).await;
    let declined = link(&obol, &product).await;
    let expired = link(&obol, &product).await;
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&obol.db.url).await.unwrap();
        sqlx::query("UPDATE payment_links SET expires_at = created_at WHERE id = $1")
            .bind(expired["id"].as_str().unwrap())
            .execute(&mut c)
            .await
            .unwrap();
    }
    let url = |l: &Value| l["payment_url"].as_str().unwrap().to_string();
    let results = browse(json!([
        {"name": "visa", "url": url(&visa), "steps": [
            {"shot": "01-payment-page.png"},
            {"card": "4242 4242 4242 4242"}, {"expect": "paid", "shot": "02-paid.png"}]},
        {"name": "3ds", "url": url(&three_ds), "steps": [
            {"card": "4000 0000 0000 3220"},
            {"challenge": "complete", "shot": "03-3ds-challenge.png"},
            {"expect": "paid", "shot": "04-3ds-paid.png"}]},
        {"name": "declined", "url": url(&declined), "steps": [
            {"card": "4000 0000 0000 9995"}, {"expect": "error", "shot": "05-declined.png"},
            {"card": "4242 4242 4242 4242"}, {"expect": "paid", "shot": "06-paid-after-decline.png"}]},
        {"name": "expired", "url": url(&expired), "steps": [{"expect": "expired", "shot": "07-expired.png"}]},
        {"name": "used", "url": url(&visa), "steps": [{"expect": "used", "shot": "08-used.png"}]},
        {"name": "unknown", "url": format!("{}/pay/{}", obol.base_url, "A".repeat(43)), "steps": [{"expect": "unknown", "shot": "09-unknown.png"}]},
    ]));
    for name in ["visa", "3ds", "declined"] {
        let r = case(&results, name);
        assert_eq!(r["status"], 200, "{r}");
        assert!(
            r["order_number"]
                .as_str()
                .is_some_and(|n| n.starts_with("ORD-")),
            "{r}"
        );
        assert_eq!(
            r["overflows"], false,
            "{name} scrolls sideways at 360 px: {r}"
        );
        assert_eq!(r["console_errors"], json!([]), "{name}: {r}");
    }
    // The decline message the customer saw before paying with a good card.
    let shown = &case(&results, "declined")["errors_shown"][0];
    assert!(
        shown
            .as_str()
            .is_some_and(|m| m.contains("declined") && m.contains("Nothing was charged")),
        "{shown}"
    );
    assert_eq!(case(&results, "expired")["status"], 410);
    assert_eq!(case(&results, "used")["status"], 410);
    assert_eq!(case(&results, "unknown")["status"], 404);

    // The agent's status call sees every paid link completed, each order
    // confirmed and captured once.
    for l in [&visa, &three_ds, &declined] {
        let pi = l["payment_intent_id"].as_str().unwrap();
        let (_, st) = obol.get(&format!("/v1/payment-intents/{pi}/status")).await;
        assert_eq!(st["payment_link_status"], "completed", "{st}");
        let (_, order) = obol
            .get(&format!("/v1/orders/{}", l["order_id"].as_str().unwrap()))
            .await;
        assert_eq!(order["status"], "confirmed", "{order}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_page_allows_only_what_stripe_js_needs() {
    let obol = Obol::start(Backend::Sqlite).await;
    let (_, product) = obol
        .post(
            "/v1/products",
            json!({"name": "Sekt", "unit_amount": 1500, "currency": "eur"}),
        )
        .await;
    let l = link(&obol, product["id"].as_str().unwrap()).await;
    let (_, health) = obol.get("/health").await;
    let sandbox = health["stripe"]["api_base"].as_str().unwrap();
    let r = obol
        .http
        .get(l["payment_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        csp.contains(&format!("connect-src 'self' {sandbox}")),
        "{csp}"
    );
    assert!(
        csp.contains("script-src 'self';"),
        "sandbox mode loads no outside script: {csp}"
    );
    assert!(!csp.contains("js.stripe.com"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = r.text().await.unwrap();
    assert!(html.contains("/assets/stripe-sandbox.js") && !html.contains("js.stripe.com"));
    assert!(
        html.contains("20.00 EUR") || html.contains("15.00 EUR"),
        "{html}"
    );
    // Every asset the page loads is served.
    for asset in [
        "/assets/pages.css",
        "/assets/pay.js",
        "/assets/stripe-sandbox.js",
    ] {
        let r = obol.http.get(obol.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
}

/// The `integrity` attribute of `/assets/obol-checkout.js` as served.
async fn served_integrity(obol: &Obol) -> String {
    use base64::Engine;
    use sha2::Digest;
    let js = obol
        .http
        .get(obol.url("/assets/obol-checkout.js"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&js))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkout_component_pays_on_a_host_page() {
    // The storefront: a plain page on its own origin.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_HTTP__CORS_ALLOWED_ORIGINS", &host)
        .start()
        .await;
    let integrity = served_integrity(&obol).await;
    let readme = include_str!("../../../../README.md");
    assert!(
        readme.contains(&integrity),
        "the README publishes the component's integrity hash {integrity}"
    );
    let customer = obol.create_customer("member-21").await;
    let token = obol
        .customer_token(customer["id"].as_str().unwrap(), 900)
        .await;
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Wine club checkout</title>
<script src="{obol}/assets/obol-checkout.js" integrity="{integrity}" crossorigin="anonymous"></script></head>
<body><h1>Checkout</h1>
<obol-checkout obol-url="{obol}" customer-token="{token}" amount="4999" currency="eur"></obol-checkout>
<script>
document.addEventListener('payment-success', function (e) {{
  var p = document.createElement('p'); p.id = 'result'; p.textContent = JSON.stringify(e.detail); document.body.appendChild(p);
}});
document.addEventListener('payment-error', function (e) {{
  var p = document.createElement('p'); p.id = 'error'; p.textContent = JSON.stringify(e.detail); document.body.appendChild(p);
}});
</script></body></html>"#,
        obol = obol.base_url
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let results = browse(json!([
        {"name": "component", "url": format!("{host}/"), "steps": [
            {"wait": ".obol-co-pay"},
            {"card": "4242 4242 4242 4242", "submit": ".obol-co-pay"},
            {"wait": "#result", "shot": "10-component-paid.png"}]},
    ]));
    let r = case(&results, "component");
    assert_eq!(r["console_errors"], json!([]), "{r}");
    let detail: Value = serde_json::from_str(r["host_result"].as_str().unwrap()).unwrap();
    let pi = detail["paymentIntentId"].as_str().unwrap();
    assert_eq!(detail["status"], "requires_capture", "{detail}");
    // The host backend's order call, naming the authorization.
    let (status, order) = obol
        .post(
            "/v1/orders",
            json!({"email": "ana@example.com", "currency": "eur", "customer_id": customer["id"],
                   "line_items": [{"name": "Club box", "unit_amount": 4999, "quantity": 1}],
                   "payment_reference": pi}),
        )
        .await;
    assert_eq!(
        (status, order["status"].as_str()),
        (201, Some("confirmed")),
        "{order}"
    );

    // A page on an origin not configured gets no CORS grant.
    let r = obol
        .http
        .get(obol.url("/health"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
