//! The admin dashboard in real headless Chromium (Debian's `chromium`,
//! driven by playwright-core: conformance/node/browser/admin-dashboard.mjs):
//! sign in (a wrong password first), find a payment by its customer's
//! e-mail, read its timeline, refund part of it and see the timeline
//! grow, replay a failed webhook event, retry a dead job, watch a charge
//! run reach 100 %, open the orders, customers, disputes, invoices and
//! organisations pages, on both backends. Screenshots of each page go to
//! `target/browser-screenshots/admin/{sqlite,postgres}/`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::admin::{paid_order, start_with_password, PASSWORD};
use crate::helpers::Backend;
use crate::jobs::{chaos, release_while_stripe_is_down, wait_for};
use crate::on_both_backends;

on_both_backends!(an_operator_works_the_dashboard_in_a_real_browser);

const SECRET: &str = "whsec_obol_test_admin_browser";

async fn an_operator_works_the_dashboard_in_a_real_browser(backend: Backend) {
    let obol = start_with_password(
        backend,
        &[
            ("OBOL_STRIPE__WEBHOOK_SECRETS", SECRET),
            ("OBOL_STRIPE__MAX_ATTEMPTS", "1"),
            ("OBOL_RECONCILE__INTERVAL_SECONDS", "0"),
            ("OBOL_JOBS__RETRY_UNIT_MS", "0"),
        ],
    )
    .await;
    let email = "ana.admin@example.com";
    let (payment_id, _) = paid_order(&obol, email).await;

    // A dead job: a release Stripe could not take, every attempt.
    let pi = crate::checkout::authorize(&obol, 3000).await;
    let (job_id, _) = release_while_stripe_is_down(&obol, &pi).await;
    wait_for(&obol, "/v1/jobs?status=dead", 30, |p| {
        p["data"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    chaos(&obol, 0.0).await;

    // A charge run of members without saved cards: each item ends
    // no_payment_method, and the run completes.
    let members = crate::charge_runs::members(&obol, 20).await;
    let run_id = crate::charge_runs::run(&obol, "Autumn release").await;
    let items: Vec<Value> = members
        .iter()
        .map(|c| json!({"customer_id": c, "amount": 4500}))
        .collect();
    crate::charge_runs::add(&obol, &run_id, items).await;
    let (s, started) = obol
        .post(&format!("/v1/charge-runs/{run_id}/start"), json!({}))
        .await;
    assert_eq!(s, 200, "{started}");

    // A failed event: a card attached to a Stripe customer obol does not
    // know yet. obol retries it (1 s, 5 s, then 30 s later) while the
    // customer may still arrive; after the third failure the customer does
    // arrive, and the operator replays the event instead of waiting for the
    // retry 30 s away.
    let now = chrono::Utc::now().timestamp();
    let customer = json!({"id": "cus_admin_late", "object": "customer", "email": "late@example.com",
        "name": "Late", "metadata": {}, "invoice_settings": {"default_payment_method": null}});
    let card = json!({
        "id": "evt_admin_card", "object": "event", "type": "payment_method.attached",
        "created": now, "livemode": false, "api_version": "2024-06-20",
        "data": {"object": {"id": "pm_admin_late", "object": "payment_method", "type": "card",
            "customer": "cus_admin_late", "created": now,
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031}}}
    });
    deliver(&obol, &card).await;
    let failed = wait_for(&obol, "/v1/webhook-events?limit=100", 30, |p| {
        p["data"].as_array().is_some_and(|d| {
            d.iter().any(|e| {
                e["stripe_event_id"] == "evt_admin_card"
                    && e["status"] == "failed"
                    && e["attempts"].as_i64() >= Some(3)
            })
        })
    })
    .await;
    let failed = failed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stripe_event_id"] == "evt_admin_card")
        .unwrap()
        .clone();
    assert_eq!(failed["attempts"], 3, "{failed}");
    let event_id = failed["id"].as_str().unwrap().to_string();
    let received_at: chrono::DateTime<chrono::Utc> =
        failed["received_at"].as_str().unwrap().parse().unwrap();
    deliver(
        &obol,
        &json!({"id": "evt_admin_customer", "object": "event", "type": "customer.created",
            "created": now, "livemode": false, "api_version": "2024-06-20",
            "data": {"object": customer}}),
    )
    .await;

    // One folder per backend: both runs go at once.
    let screenshots = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/browser-screenshots/admin")
        .join(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        });
    let handoff = tempfile::tempdir().unwrap();
    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../conformance/node");
    let mut child = Command::new("node")
        .arg("browser/admin-dashboard.mjs")
        .current_dir(node_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (scripts/test.sh installs it, with chromium and playwright-core)");
    let input = json!({
        "screenshots": screenshots, "base": obol.base_url, "password": PASSWORD,
        "email": email, "payment_id": payment_id, "event_id": event_id, "event_status": "failed", "run_id": run_id,
        "refunded": "10.00 EUR", "handoff": handoff.path(),
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    // The expired session: the browser hands over its cookie, the session
    // is aged past the idle timeout (rather than the test waiting), and
    // the browser tries again.
    let cookie = handoff.path().join("session");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !cookie.exists() && child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the browser run hangs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if let Ok(value) = std::fs::read_to_string(&cookie) {
        let store = obol.db.store().await;
        let mut h = store.acquire().await.unwrap();
        let hash = obol::ids::TokenHash::of(value.trim());
        assert!(h.conn().get_admin_session(&hash).await.unwrap().is_some());
        h.conn()
            .touch_admin_session(&hash, obol::storage::now() - chrono::Duration::minutes(61))
            .await
            .unwrap();
        std::fs::write(handoff.path().join("expired"), "").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let steps: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {stdout}"))
            .clone()
    };
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(step("wrong_password")["code"], "admin_sign_in_failed");
    assert_eq!(step("find_by_email")["rows"], 1);
    assert_eq!(step("find_by_email")["local_time"], true);
    let timeline = step("timeline");
    assert!(timeline["entries"].as_i64().unwrap() >= 2, "{timeline}");
    let refund = step("refund");
    assert!(
        refund["after"].as_i64() > refund["before"].as_i64(),
        "{refund}"
    );
    assert_eq!(refund["refunded"], "10.00 EUR");
    let replay = step("replay_event");
    assert_eq!(replay["raw_type"], "payment_method.attached");
    assert!(
        replay["reason"]
            .as_str()
            .unwrap()
            .contains("cus_admin_late"),
        "{replay}"
    );
    assert_eq!(step("retry_dead_job")["notice"], "Job queued again.");
    let forged = step("form_without_csrf");
    assert_eq!(forged["code"], "csrf_token_invalid", "{forged}");
    assert!(forged["removed"].as_i64().unwrap() >= 1, "{forged}");
    assert_eq!(forged["refunded_before"], "10.00 EUR", "{forged}");
    assert_eq!(forged["refunded_after"], "10.00 EUR", "no refund: {forged}");
    let ended = step("expired_session");
    assert_eq!(ended["url"], "/admin/login?ended=1", "{ended}");
    assert_eq!(ended["says"], true, "{ended}");
    assert_eq!(ended["http_only"], true, "{ended}");
    assert_eq!(ended["same_site"], "Strict", "{ended}");
    assert_eq!(step("charge_run")["status"], "completed");
    let more = step("more_pages");
    assert_eq!(more["rows"]["Orders"], 1, "{more}");
    assert_eq!(more["order_payments"], 1, "{more}");

    // What the browser did, as the API sees it.
    let p = wait_for(&obol, &format!("/v1/payments/{payment_id}"), 20, |p| {
        p["amount_refunded"] == 1000
    })
    .await;
    assert_eq!(p["amount_refunded"], 1000);
    let (_, refunds) = obol
        .get(&format!("/v1/payments/{payment_id}/refunds"))
        .await;
    assert_eq!(
        refunds["data"].as_array().unwrap().len(),
        1,
        "the form without its CSRF token refunded nothing: {refunds}"
    );
    let done = wait_for(&obol, &format!("/v1/jobs/{job_id}"), 30, |j| {
        j["status"] == "succeeded"
    })
    .await;
    assert_eq!(done["status"], "succeeded");
    // The replay applied the event, not obol's own retry: that one was due
    // no earlier than 36 s (1 + 5 + 30) after the event was received.
    let e = wait_for(&obol, &format!("/v1/webhook-events/{event_id}"), 20, |e| {
        e["status"] == "applied"
    })
    .await;
    assert_eq!(e["attempts"], 4, "{e}");
    let applied_at: chrono::DateTime<chrono::Utc> =
        e["applied_at"].as_str().unwrap().parse().unwrap();
    assert!(
        applied_at < received_at + chrono::Duration::seconds(36),
        "applied by the scheduled retry, not the replay: {e}"
    );
    let (_, cards) = obol.get("/v1/webhook-events?limit=100").await;
    assert!(
        cards["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] != "failed"),
        "{cards}"
    );
    for file in [
        "login-refused.png",
        "overview.png",
        "payments-search.png",
        "payment.png",
        "payment-refunded.png",
        "webhook-event.png",
        "jobs-dead.png",
        "notifications.png",
        "charge-run.png",
        "orders.png",
        "order.png",
        "customers.png",
        "disputes.png",
        "invoices.png",
        "organizations.png",
        "form-without-csrf.png",
        "session-ended.png",
    ] {
        assert!(screenshots.join(file).exists(), "{file}");
    }
}

async fn deliver(obol: &crate::helpers::Obol, event: &Value) {
    let body = event.to_string();
    let sig = obol::stripe::signature::sign(
        body.as_bytes(),
        &SECRET.to_string().into(),
        chrono::Utc::now().timestamp(),
    );
    let r = reqwest::Client::new()
        .post(obol.url("/webhooks/stripe"))
        .header("stripe-signature", sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}
