//! Accounting syncs of paid invoices against local stand-ins for Xero,
//! QuickBooks and a webhook receiver: each payment lands once per target
//! through failures and a kill -9, failures are visible while it retries,
//! and a sync that gives up is notified and can be retried.

use serde_json::{json, Value};

use crate::accounting_standin::AccountingStandIn;
use crate::helpers::{random_api_key, Backend, Obol, ObolBuilder, TestReceiver};
use crate::invoices::{confirm, customer, issued, paid, pay_intent, within};
use crate::on_both_backends;
use obol::accounting::Target;

on_both_backends!(
    a_sync_failing_three_times_across_a_kill_lands_exactly_once,
    every_target_gets_the_payment_once_in_its_own_shape,
    a_sync_that_gives_up_is_notified_and_retried_by_the_host,
);

fn fast(b: ObolBuilder) -> ObolBuilder {
    b.env("OBOL_JOBS__RETRY_UNIT_MS", "20")
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .env("OBOL_JOBS__LEASE_SECONDS", "2")
}

fn with_webhook(b: ObolBuilder, s: &AccountingStandIn) -> ObolBuilder {
    b.env("OBOL_ACCOUNTING__WEBHOOK_URL", &s.webhook_url)
        .env("OBOL_ACCOUNTING__WEBHOOK_SECRET", &s.webhook_secret)
}

/// Pays a fresh 100.00 USD invoice with fee passthrough; its id.
async fn pay_one(obol: &Obol) -> String {
    let cus = customer(obol).await;
    let (invoice, token) = issued(
        obol,
        json!({"customer_id": cus, "currency": "usd", "due_date": "2027-01-31", "number": format!("SYNC-{}", &cus[4..14]),
               "pass_fees": true,
               "line_items": [{"description": "Glazing workshop", "unit_amount": 10000, "quantity": 1}]}),
    )
    .await;
    let (_, intent) = pay_intent(obol, &token).await;
    confirm(obol, intent["id"].as_str().unwrap(), "pm_card_visa").await;
    let id = invoice["id"].as_str().unwrap().to_string();
    paid(obol, &id).await;
    id
}

async fn a_sync_failing_three_times_across_a_kill_lands_exactly_once(backend: Backend) {
    let standin = AccountingStandIn::start(3).await;
    let key = random_api_key();
    let obol = with_webhook(fast(Obol::builder(backend)), &standin)
        .env("OBOL_API_KEYS", &key)
        .start()
        .await;
    let invoice_id = pay_one(&obol).await;
    // The payment does not wait for the sync: it is paid already, and the
    // first attempt failed.
    standin
        .until("the first failed attempt", |r| !r.is_empty())
        .await;
    let failed = within(&obol, "/v1/sync-jobs?status=failed", 20, |p| {
        p["data"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let sync = failed["data"][0].clone();
    assert_eq!(sync["invoice_id"], invoice_id.as_str());
    assert_eq!(sync["target"], "webhook");
    assert!(sync["attempts"].as_i64() >= Some(1), "{sync}");
    assert!(
        sync["last_error"].as_str().unwrap().contains("503"),
        "{sync}"
    );
    assert!(!sync["next_attempt_at"].is_null(), "it will retry: {sync}");
    let sync_id = sync["id"].as_str().unwrap().to_string();

    // kill -9, then a new process on the same database.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &obol.pid().to_string()])
        .status();
    let (_, db, _) = obol.terminate();
    let obol = with_webhook(fast(Obol::builder(backend)), &standin)
        .env("OBOL_API_KEYS", &key)
        .with_db(db)
        .start()
        .await;
    let got = standin
        .until("the sync to land", |r| r.iter().any(|r| r.landed))
        .await;
    let done = within(&obol, &format!("/v1/sync-jobs/{sync_id}"), 20, |s| {
        s["status"] == "succeeded"
    })
    .await;
    let failures = got.iter().filter(|r| r.status == 503).count();
    assert_eq!(failures, 3, "{got:#?}");
    let landed: Vec<_> = standin.landed();
    assert_eq!(landed.len(), 1, "exactly once: {landed:#?}");
    let keys: std::collections::BTreeSet<_> =
        got.iter().map(|r| r.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 1, "one key on every attempt: {keys:?}");
    assert_eq!(
        done["idempotency_key"],
        landed[0].idempotency_key.clone().unwrap().as_str()
    );
    // Four attempts reached the target; one may have been cut short by the
    // kill before obol recorded it (the stand-in still counted its 503).
    let attempts = done["attempts"].as_i64().unwrap();
    assert!((3..=4).contains(&attempts), "{done}");
    let runs = done["runs"].as_array().unwrap();
    assert!(
        runs.len() >= 4 || attempts == 3,
        "every attempt is visible: {done}"
    );
    assert!(
        runs.iter().filter(|r| r["outcome"] == "retry").count() >= 2,
        "{done}"
    );
    assert_eq!(runs.last().unwrap()["outcome"], "succeeded", "{done}");
    let body = landed[0].json();
    assert_eq!(body["invoice_id"], invoice_id.as_str());
    assert_eq!(
        (body["amount"].as_i64(), body["currency"].as_str()),
        (Some(10330), Some("usd"))
    );
    assert_eq!(body["fee_amount"], 330);
    assert!(body["stripe_payment_intent_id"]
        .as_str()
        .unwrap()
        .starts_with("pi_"));
    assert_eq!(landed[0].signature_verified, Some(true));
    // Nothing more arrives later.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(standin.landed().len(), 1);
    let (_, failed) = obol.get("/v1/sync-jobs?status=failed").await;
    assert_eq!(failed["data"], json!([]));
}

async fn every_target_gets_the_payment_once_in_its_own_shape(backend: Backend) {
    let standin = AccountingStandIn::start(0).await;
    let obol = with_webhook(fast(Obol::builder(backend)), &standin)
        .env("OBOL_ACCOUNTING__XERO__BASE_URL", &standin.xero_base)
        .env("OBOL_ACCOUNTING__XERO__ACCESS_TOKEN", "xero-token-secret")
        .env("OBOL_ACCOUNTING__XERO__TENANT_ID", "tenant-1")
        .env("OBOL_ACCOUNTING__XERO__ACCOUNT_CODE", "090")
        .env(
            "OBOL_ACCOUNTING__QUICKBOOKS__BASE_URL",
            &standin.quickbooks_base,
        )
        .env(
            "OBOL_ACCOUNTING__QUICKBOOKS__ACCESS_TOKEN",
            "qbo-token-secret",
        )
        .env("OBOL_ACCOUNTING__QUICKBOOKS__REALM_ID", "4620816365")
        .start()
        .await;
    let invoice_id = pay_one(&obol).await;
    let syncs = within(
        &obol,
        &format!("/v1/sync-jobs?invoice_id={invoice_id}"),
        20,
        |p| {
            p["data"]
                .as_array()
                .is_some_and(|d| d.len() == 3 && d.iter().all(|s| s["status"] == "succeeded"))
        },
    )
    .await;
    let mut targets: Vec<&str> = syncs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    targets.sort_unstable();
    assert_eq!(targets, ["quickbooks", "webhook", "xero"]);
    for s in syncs["data"].as_array().unwrap() {
        if s["target"] != "webhook" {
            assert!(!s["external_id"].is_null(), "the target's id is kept: {s}");
        }
    }
    let landed = standin.landed();
    let of = |t: Target| {
        landed
            .iter()
            .filter(|r| r.target == Some(t))
            .collect::<Vec<_>>()
    };
    // Xero: the invoice, then a payment against it, both idempotent.
    let xero = of(Target::Xero);
    assert_eq!(xero.len(), 2, "{xero:#?}");
    let inv = xero.iter().find(|r| r.path.ends_with("/Invoices")).unwrap();
    assert_eq!(inv.header("xero-tenant-id"), Some("tenant-1"));
    assert!(
        inv.body.contains("\"UnitAmount\":100.00") || inv.body.contains("\"UnitAmount\":100.0"),
        "{}",
        inv.body
    );
    assert!(inv.body.contains("Card processing fee"), "{}", inv.body);
    let pay = xero.iter().find(|r| r.path.ends_with("/Payments")).unwrap();
    assert!(pay.body.contains("\"Amount\":103.30"), "{}", pay.body);
    assert!(pay.body.contains("\"Code\":\"090\""), "{}", pay.body);
    // QuickBooks: one sales receipt, deduplicated on requestid.
    let qbo = of(Target::Quickbooks);
    assert_eq!(qbo.len(), 1, "{qbo:#?}");
    assert!(qbo[0].query.contains("requestid="), "{}", qbo[0].query);
    assert!(
        qbo[0].body.contains("\"TotalAmt\":103.30"),
        "{}",
        qbo[0].body
    );
    assert_eq!(of(Target::Webhook).len(), 1);
    // No token reaches obol's own output.
    let out = obol.output();
    assert!(
        !out.contains("xero-token-secret") && !out.contains("qbo-token-secret"),
        "a token was logged"
    );
    // The jobs are done and nothing more is sent.
    let (_, failed) = obol.get("/v1/sync-jobs?status=failed").await;
    assert_eq!(failed["data"], json!([]));
}

async fn a_sync_that_gives_up_is_notified_and_retried_by_the_host(backend: Backend) {
    let standin = AccountingStandIn::start(0).await;
    // A 400 is an answer retrying cannot change: obol stops at once.
    standin.set_fail(Some(400));
    let obol = with_webhook(fast(Obol::builder(backend)), &standin)
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "20")
        .start()
        .await;
    let host = TestReceiver::start(0).await;
    let (s, ep) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": host.url, "event_types": ["sync_job.failed", "invoice.paid"]}),
        )
        .await;
    assert_eq!(s, 201, "{ep}");
    let invoice_id = pay_one(&obol).await;
    let got = host
        .until("sync_job.failed", |r| {
            r.iter().any(|r| r.json()["type"] == "sync_job.failed")
        })
        .await;
    let paid_note = got
        .iter()
        .find(|r| r.json()["type"] == "invoice.paid")
        .map(|r| r.json());
    let paid_note: Value = paid_note.expect("invoice.paid was notified");
    assert_eq!(paid_note["data"]["invoice"]["id"], invoice_id.as_str());
    assert_eq!(
        paid_note["data"]["invoice"]["amount_paid"],
        json!({"amount": 10330, "currency": "usd"})
    );
    let note = got
        .iter()
        .find(|r| r.json()["type"] == "sync_job.failed")
        .unwrap()
        .json();
    let sync = &note["data"]["sync_job"];
    assert_eq!(
        (sync["target"].as_str(), sync["status"].as_str()),
        (Some("webhook"), Some("failed"))
    );
    assert!(
        sync["last_error"].as_str().unwrap().contains("400"),
        "{note}"
    );
    let sync_id = sync["id"].as_str().unwrap().to_string();
    let (_, failed) = obol.get("/v1/sync-jobs?status=failed").await;
    let listed = &failed["data"][0];
    assert_eq!(listed["id"], sync_id.as_str());
    assert_eq!(
        listed["next_attempt_at"],
        Value::Null,
        "obol stopped retrying: {listed}"
    );
    // A succeeded sync cannot be retried; a failed one can.
    standin.set_fail(None);
    let (s, retried) = obol
        .post(&format!("/v1/sync-jobs/{sync_id}/retry"), json!({}))
        .await;
    assert_eq!(s, 200, "{retried}");
    let done = within(&obol, &format!("/v1/sync-jobs/{sync_id}"), 20, |s| {
        s["status"] == "succeeded"
    })
    .await;
    assert_eq!(standin.landed().len(), 1, "{done}");
    let (s, e) = obol
        .post(&format!("/v1/sync-jobs/{sync_id}/retry"), json!({}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("sync_job_not_failed")),
        "{e}"
    );
    let (s, e) = obol
        .get("/v1/sync-jobs/sync_01jd8x3qzv5m2c7e9f0g1h2j3k")
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("sync_job_not_found")),
        "{e}"
    );
}
