//! obol's hosted invoice page, `/pay/invoices/{token}`, in real headless
//! Chromium (Debian's `chromium`, driven by playwright-core:
//! conformance/node/browser/invoice-page.mjs), and its security headers.
//! Screenshots of every state go to `target/browser-screenshots/`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::helpers::{Backend, Obol};

pub(crate) fn screenshots() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots")
}

/// The browser script, running its cases; it stops at each `pause` step
/// until told to go on, so the test can look at obol meanwhile.
pub(crate) struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    async fn start(cases: Value) -> Browser {
        Self::start_script("browser/invoice-page.mjs", cases).await
    }

    /// Runs `script` (under `conformance/node`) on `cases`.
    pub(crate) async fn start_script(script: &str, cases: Value) -> Browser {
        let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../conformance/node");
        let mut child = Command::new("node")
            .arg(script)
            .current_dir(node_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node (scripts/test.sh installs it, with chromium and playwright-core)");
        let mut stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let input = json!({"screenshots": screenshots(), "cases": cases}).to_string();
        stdin.write_all(input.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        Browser {
            child,
            stdin,
            stdout,
        }
    }

    /// The next thing the script says: `{"paused": …}` or a case's result;
    /// `None` once it is done.
    pub(crate) async fn next(&mut self) -> Option<Value> {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(180), self.stdout.next_line())
                .await
                .expect("the browser script said nothing for 3 minutes")
                .unwrap()?;
            if let Ok(v) = serde_json::from_str(&line) {
                return Some(v);
            }
        }
    }

    pub(crate) async fn resume(&mut self) {
        self.stdin.write_all(b"go\n").await.unwrap();
    }

    /// Waits for the script to exit; its status and stderr.
    pub(crate) async fn finish(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin);
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut stderr).await;
        }
        (self.child.wait().await.unwrap(), stderr)
    }
}

pub(crate) fn case<'a>(results: &'a [Value], name: &str) -> &'a Value {
    let r = results
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no result for {name}: {results:?}"));
    assert_eq!(r["ok"], true, "the {name} case failed: {r:#}");
    r
}

pub(crate) fn assert_png(file: &str) {
    let path = screenshots().join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a screenshot ({} bytes)",
        path.display(),
        bytes.len()
    );
}

/// A processed invoice of one 100.00 USD line with the card fee passed on.
async fn invoice(obol: &Obol, customer: &Value, number: &str) -> Value {
    let (status, draft) = obol
        .post(
            "/v1/invoices",
            json!({"customer_id": customer["id"], "currency": "usd", "number": number,
                   "line_items": [{"description": "Consulting, November", "unit_amount": 10000, "quantity": 1}],
                   "due_date": "2026-12-31", "pass_fees": true, "memo": "Thank you for your business."}),
        )
        .await;
    assert_eq!(status, 201, "{draft}");
    let (status, processed) = obol
        .post(
            &format!("/v1/invoices/{}/process", draft["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{processed}");
    assert!(processed["payment_url"]
        .as_str()
        .is_some_and(|u| u.starts_with(&format!("{}/pay/invoices/", obol.base_url))));
    processed
}

/// The headers every customer page has.
fn assert_page_headers(h: &reqwest::header::HeaderMap, what: &str) {
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(
        csp.contains("script-src 'self';"),
        "{what}, sandbox mode loads no outside script: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("js.stripe.com"), "{what}: {csp}");
    assert_eq!(h["cache-control"], "no-store", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert!(
        h["content-type"].to_str().unwrap().starts_with("text/html"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_pay_invoices_in_a_real_browser() {
    let started = Instant::now();
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_INVOICES__BUSINESS_NAME", "Weingut Ana")
        .start()
        .await;
    let (_, health) = obol.get("/health").await;
    let sandbox = health["stripe"]["api_base"]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let customer = obol.create_customer("acme-7").await;
    let payable = invoice(&obol, &customer, "INV-7").await;
    assert_eq!(
        (&payable["fee"]["amount"], &payable["total"]),
        (&json!(330), &json!(10330)),
        "{payable}"
    );
    let three_ds = invoice(&obol, &customer, "INV-9").await;
    let voided = invoice(&obol, &customer, "INV-8").await;
    let void_id = voided["id"].as_str().unwrap();
    let (status, v) = obol
        .post(&format!("/v1/invoices/{void_id}/void"), json!({}))
        .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("void")), "{v}");
    let id = payable["id"].as_str().unwrap().to_string();
    let pay_url = payable["payment_url"].as_str().unwrap().to_string();
    let void_url = voided["payment_url"].as_str().unwrap().to_string();
    let unknown_url = obol.url(&format!("/pay/invoices/{}", "A".repeat(43)));

    // The headers, before any browser: a payable invoice's page may talk to
    // obol and the sandbox only; a void one's to obol only.
    let r = obol.http.get(&pay_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_page_headers(r.headers(), "payable");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains(&format!("connect-src 'self' {sandbox}")),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("/assets/stripe-sandbox.js"), "{html}");
    let r = obol.http.get(&void_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_page_headers(r.headers(), "void");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.ends_with("connect-src 'self'") && !csp.contains(&sandbox),
        "a void invoice's page talks to no Stripe: {csp}"
    );
    let html = r.text().await.unwrap();
    assert!(
        !html.contains("stripe-sandbox.js") && !html.contains("invoice.js"),
        "{html}"
    );
    let r = obol.http.get(&unknown_url).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_page_headers(r.headers(), "unknown");
    let html = r.text().await.unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("Invoice not found"),
        "{html}"
    );
    for asset in [
        "/assets/pages.css",
        "/assets/invoice.js",
        "/assets/card-messages.js",
        "/assets/stripe-sandbox.js",
    ] {
        let r = obol.http.get(obol.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }

    let browser_started = Instant::now();
    let mut browser = Browser::start(json!([
        {"name": "pay", "url": pay_url, "steps": [
            {"expect": "ready", "read": "unpaid", "shot": "invoice-unpaid.png"},
            {"card": "4000 0000 0000 0002"},
            {"expect": "error", "read": "declined", "shot": "invoice-declined.png", "pause": "declined"},
            {"card": "4242 4242 4242 4242"},
            {"expect": "paid", "read": "paid", "shot": "invoice-paid.png"},
            {"reload": true, "read": "reloaded", "shot": "invoice-paid-reloaded.png"}]},
        {"name": "3ds", "url": three_ds["payment_url"], "steps": [
            {"expect": "ready"},
            {"card": "4000 0000 0000 3220"},
            {"challenge": "complete", "shot": "invoice-3ds-challenge.png"},
            {"expect": "paid", "read": "paid", "shot": "invoice-3ds-paid.png"}]},
        {"name": "void", "url": void_url, "steps": [{"read": "void", "shot": "invoice-void.png"}]},
        {"name": "unknown", "url": unknown_url, "steps": [{"read": "unknown", "shot": "invoice-unknown.png"}]},
    ]))
    .await;
    let mut results = Vec::new();
    while let Some(line) = browser.next().await {
        match line["paused"].as_str() {
            Some("declined") => {
                // The decline charged nothing: obol still has it due.
                let (_, inv) = obol.get(&format!("/v1/invoices/{id}")).await;
                assert_eq!(inv["status"], "processed", "{inv}");
                assert_eq!(
                    (&inv["amount_paid"], &inv["amount_due"]),
                    (&json!(0), &json!(10330))
                );
                browser.resume().await;
            }
            Some(other) => panic!("unexpected pause {other}"),
            None => results.push(line),
        }
    }
    let (exit, stderr) = browser.finish().await;
    let browsing = browser_started.elapsed();

    let pay = case(&results, "pay");
    assert_eq!(pay["status"], 200, "{pay}");
    let unpaid = &pay["reads"]["unpaid"];
    assert_eq!(unpaid["state"], "ready", "{unpaid}");
    assert_eq!(unpaid["business"], "Weingut Ana", "{unpaid}");
    assert_eq!(unpaid["number"], "INV-7", "{unpaid}");
    assert_eq!(unpaid["total"], "103.30 USD", "{unpaid}");
    // Description (with the rate), quantity, amount.
    let fee_line = &unpaid["fee_line"];
    assert_eq!(
        (&fee_line[1], &fee_line[2]),
        (&json!("1"), &json!("3.30 USD")),
        "{fee_line}"
    );
    assert!(
        fee_line[0].as_str().is_some_and(
            |d| d.starts_with("Card processing fee") && d.contains("2.90 % + 0.30 USD")
        ),
        "{fee_line}"
    );
    assert_eq!(unpaid["due_date"], "2026-12-31", "{unpaid}");
    assert_eq!(unpaid["due_datetime"], "2026-12-31", "{unpaid}");
    assert_eq!(unpaid["status_text"], "Amount due 103.30 USD", "{unpaid}");
    // At 360 px neither the date nor the amount due breaks over lines.
    assert_eq!(
        (&unpaid["due_date_lines"], &unpaid["status_lines"]),
        (&json!(1), &json!(1)),
        "{unpaid}"
    );
    assert_eq!(unpaid["memo"], "Thank you for your business.", "{unpaid}");
    assert_eq!(
        unpaid["lines"],
        json!([["Consulting, November", "1", "100.00 USD"]]),
        "{unpaid}"
    );
    assert_eq!(
        unpaid["pay_button"],
        json!({"text": "Pay 103.30 USD", "disabled": false})
    );
    assert_eq!(unpaid["card_inputs"], true, "{unpaid}");
    // The decline, said so on the page, with the form there to try again.
    let declined = &pay["reads"]["declined"];
    assert_eq!(declined["state"], "error", "{declined}");
    let shown = pay["errors_shown"][0].as_str().unwrap_or_default();
    assert!(
        shown.contains("declined") && shown.contains("Nothing was charged"),
        "{shown}"
    );
    assert_eq!(declined["pay_button"]["disabled"], false, "{declined}");
    // Paid: the thank-you section only.
    let paid = &pay["reads"]["paid"];
    assert_eq!(
        (&paid["invoice_visible"], &paid["thank_you_visible"]),
        (&json!(false), &json!(true)),
        "{paid}"
    );
    assert!(
        paid["thank_you"]
            .as_str()
            .is_some_and(|t| t.contains("Invoice INV-7 is paid")),
        "{paid}"
    );
    // Loaded again, the server renders it paid, with no payment form.
    assert_eq!(pay["reload_status"], 200, "{pay}");
    let reloaded = &pay["reads"]["reloaded"];
    assert_eq!(reloaded["state"], "paid", "{reloaded}");
    assert_eq!(reloaded["status_text"], "Paid", "{reloaded}");
    assert!(
        reloaded["paid_text"]
            .as_str()
            .is_some_and(|t| t.contains("this invoice is paid")),
        "{reloaded}"
    );
    assert_eq!(
        (&reloaded["pay_button"], &reloaded["card_inputs"]),
        (&Value::Null, &json!(false)),
        "{reloaded}"
    );
    assert_eq!(reloaded["scripts"], json!([]), "{reloaded}");
    assert_eq!(reloaded["total"], "103.30 USD", "{reloaded}");
    assert_eq!(pay["overflows"], false, "scrolls sideways at 360 px: {pay}");
    assert_eq!(pay["console_errors"], json!([]), "{pay}");
    assert_eq!(pay["failed_requests"], json!([]), "{pay}");
    // The one error answer: the sandbox declining the first card.
    let http_errors = pay["http_errors"].as_array().unwrap();
    assert!(
        http_errors.len() == 1
            && http_errors[0].as_str().is_some_and(|e| e
                .starts_with(&format!("402 POST {sandbox}/v1/payment_intents/"))
                && e.ends_with("/confirm")),
        "{http_errors:?}"
    );

    // obol recorded the payment, the fee included, once.
    let (_, inv) = obol.get(&format!("/v1/invoices/{id}")).await;
    assert_eq!(inv["status"], "paid", "{inv}");
    assert_eq!(inv["amount_paid"], 10330, "{inv}");
    assert_eq!(inv["amount_due"], 0, "{inv}");
    let attempts = inv["payment_attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "one intent, declined then paid: {inv}");
    assert_eq!(attempts[0]["amount"], 10330, "{inv}");

    // 3-D Secure: the bank's page returns to the invoice, which waits for
    // obol to record the payment.
    let r = case(&results, "3ds");
    assert!(
        r["challenge_url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&sandbox)),
        "{r}"
    );
    // obol asks Stripe while rendering the page the bank returns to, so
    // it is rendered paid.
    let seen = &r["reads"]["paid"];
    assert_eq!(seen["state"], "paid", "{seen}");
    assert!(
        seen["paid_text"]
            .as_str()
            .is_some_and(|t| t.contains("this invoice is paid")),
        "{seen}"
    );
    assert_eq!(r["console_errors"], json!([]), "{r}");
    assert_eq!(r["failed_requests"], json!([]), "{r}");
    assert_eq!(r["http_errors"], json!([]), "{r}");
    let (_, inv) = obol
        .get(&format!(
            "/v1/invoices/{}",
            three_ds["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (&inv["status"], &inv["amount_paid"]),
        (&json!("paid"), &json!(10330)),
        "{inv}"
    );

    // The void invoice: said so, and no Stripe.js loaded.
    let void = case(&results, "void");
    assert_eq!(void["status"], 200, "{void}");
    let seen = &void["reads"]["void"];
    assert_eq!(seen["state"], "void", "{seen}");
    assert_eq!(seen["number"], "INV-8", "{seen}");
    assert_eq!(seen["status_text"], "Void", "{seen}");
    assert!(
        seen["void_text"]
            .as_str()
            .is_some_and(|t| t.contains("nothing to pay")),
        "{seen}"
    );
    assert_eq!(
        (
            &seen["pay_button"],
            &seen["card_inputs"],
            &seen["stripe_loaded"]
        ),
        (&Value::Null, &json!(false), &json!(false)),
        "{seen}"
    );
    let requests: Vec<&str> = void["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !requests.iter().any(|r| r.contains("stripe-sandbox.js")
            || r.contains("invoice.js")
            || r.contains(&sandbox)),
        "{requests:?}"
    );
    for r in [void, case(&results, "unknown")] {
        assert_eq!(r["console_errors"], json!([]), "{r}");
        assert_eq!(r["failed_requests"], json!([]), "{r}");
        assert_eq!(r["overflows"], false, "{r}");
    }
    let unknown = case(&results, "unknown");
    assert_eq!(unknown["status"], 404, "{unknown}");
    assert_eq!(
        unknown["reads"]["unknown"]["state"],
        Value::Null,
        "{unknown}"
    );
    assert_eq!(
        unknown["reads"]["unknown"]["heading"], "Invoice not found",
        "{unknown}"
    );
    assert!(
        exit.success(),
        "the browser run failed: {results:?}\n{stderr}"
    );
    for shot in [
        "invoice-unpaid.png",
        "invoice-declined.png",
        "invoice-paid.png",
        "invoice-paid-reloaded.png",
        "invoice-3ds-challenge.png",
        "invoice-3ds-paid.png",
        "invoice-void.png",
        "invoice-unknown.png",
    ] {
        assert_png(shot);
    }
    eprintln!(
        "invoice pages: browser {:.1} s, whole test {:.1} s",
        browsing.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
