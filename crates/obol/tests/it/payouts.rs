//! Payouts mirrored from Stripe and reconciled to the payments they
//! settle: obol as a process against the sandbox over HTTP.

use std::collections::BTreeMap;

use obol::context::AccountId;
use obol::ledger::payout::{PayoutLedger, PayoutStatus};
use obol::storage::payouts::{NewPayoutTransaction, PayoutView};
use serde_json::{json, Value};

use crate::helpers::{Backend, Obol, TestDb, TestReceiver};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;
use crate::refunds::completed_payment;

on_both_backends!(
    a_payout_after_a_day_of_payments_adds_up_and_links_every_object,
    duplicated_and_reordered_payout_events_leave_one_payout_at_its_final_state,
    payout_rows_round_trip_per_account,
);

const PAYOUT_EVENTS: &[&str] = &[
    "payout.created",
    "payout.paid",
    "payout.failed",
    "payout.canceled",
];

async fn subscribe(obol: &Obol) -> TestReceiver {
    let receiver = TestReceiver::start(0).await;
    let (status, ep) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": receiver.url, "event_types": PAYOUT_EVENTS}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    receiver
}

/// Notifications received, as (type, payout id) counts.
fn counts(got: &[crate::helpers::Received]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in got {
        *out.entry(r.json()["type"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

async fn get_text(obol: &Obol, path: &str) -> (u16, String, String) {
    let r = obol
        .http
        .get(obol.url(path))
        .bearer_auth(&obol.api_key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// "12.34" / "-0.05" back to minor units, without floats.
fn minor(decimal: &str) -> i64 {
    let (sign, digits) = match decimal.strip_prefix('-') {
        Some(d) => (-1, d),
        None => (1, decimal),
    };
    let (whole, frac) = digits.split_once('.').unwrap();
    assert_eq!(frac.len(), 2, "{decimal}");
    sign * (whole.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap())
}

async fn a_payout_after_a_day_of_payments_adds_up_and_links_every_object(backend: Backend) {
    let obol = Obol::start(backend).await;
    let receiver = subscribe(&obol).await;
    let base = sandbox(&obol).await;

    // A day of payments: three captured payments, a refund made through
    // obol, and a payment the customer's bank disputes.
    let a = completed_payment(&obol, "5000").await;
    let b = completed_payment(&obol, "3000").await;
    let c = completed_payment(&obol, "2000").await;
    let (status, refund) = obol
        .post(
            &format!("/v1/payments/{b}/refunds"),
            json!({"amount": 1000}),
        )
        .await;
    assert_eq!(status, 201, "{refund}");
    let refund_id = refund["id"].as_str().unwrap().to_string();
    eventually(&obol, &format!("/v1/payments/{b}/refunds"), |r| {
        r["data"][0]["status"] == "succeeded"
    })
    .await;
    let pi = stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "4000"),
            ("currency", "eur"),
            ("payment_method", "pm_card_createDispute"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    assert_eq!(pi["status"], "succeeded", "{pi}");
    let disputes = eventually(&obol, "/v1/disputes", |d| {
        d["data"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let dispute = disputes["data"][0].clone();
    let disputed_payment = dispute["payment_id"].as_str().unwrap().to_string();

    // Nothing paid out yet: no payouts.
    let (status, list) = obol.get("/v1/payouts").await;
    assert_eq!(status, 200);
    assert_eq!(list["data"], json!([]));

    // The automatic daily payout once the funds are available (seven days
    // on), and its arrival the day after.
    let until = chrono::Utc::now().timestamp() + 9 * 86_400;
    let ran = reqwest::Client::new()
        .post(format!("{base}/_sandbox/payouts/run"))
        .form(&[("until", until.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(ran.status(), 200);

    let list = eventually(&obol, "/v1/payouts?status=paid", |l| {
        l["data"]
            .as_array()
            .is_some_and(|d| d.len() == 1 && d[0]["transactions_status"] == "fetched")
    })
    .await;
    let payout = list["data"][0].clone();
    let id = payout["id"].as_str().unwrap().to_string();
    let po = payout["stripe_payout_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("pout_") && po.starts_with("po_"), "{payout}");
    assert_eq!(payout["automatic"], true);
    assert_eq!(payout["amount"]["currency"], "eur");
    assert_eq!(payout["failure_code"], Value::Null);
    // Stripe's id finds it too; the filters work.
    let (_, by_stripe) = obol.get(&format!("/v1/payouts/{po}")).await;
    assert_eq!(by_stripe["id"], payout["id"]);
    let arrival = payout["arrival_date"].as_str().unwrap().to_string();
    let (_, same_day) = obol
        .get(&format!("/v1/payouts?arrival_date_gte={arrival}"))
        .await;
    assert_eq!(same_day["data"].as_array().unwrap().len(), 1);
    let (_, before) = obol
        .get(&format!("/v1/payouts?arrival_date_lt={arrival}"))
        .await;
    assert_eq!(before["data"], json!([]));
    let (status, bad) = obol.get("/v1/payouts?arrival_date_gte=tomorrow").await;
    assert_eq!(
        (status, bad["error"]["code"].clone()),
        (400, json!("invalid_query"))
    );

    // What it settles: every row, oldest first, adds up to the payout.
    let (status, txns) = obol
        .get(&format!("/v1/payouts/{id}/transactions?limit=100"))
        .await;
    assert_eq!(status, 200, "{txns}");
    let rows = txns["data"].as_array().unwrap().clone();
    let amount = payout["amount"]["amount"].as_i64().unwrap();
    let net: i64 = rows.iter().map(|t| t["net"].as_i64().unwrap()).sum();
    assert_eq!(net, amount, "{txns}");
    assert_eq!(txns["totals"]["net"], amount);
    assert_eq!(txns["totals"]["count"], rows.len());
    for t in &rows {
        assert_eq!(
            t["net"].as_i64().unwrap(),
            t["amount"].as_i64().unwrap() - t["fee"].as_i64().unwrap()
        );
        assert_ne!(
            t["type"], "payout",
            "the payout's own transaction is not listed"
        );
    }
    let of =
        |kind: &str| -> Vec<Value> { rows.iter().filter(|t| t["type"] == kind).cloned().collect() };
    let charges = of("charge");
    assert_eq!(charges.len(), 4, "{txns}");
    let mut charged: Vec<String> = charges
        .iter()
        .map(|t| t["payment_id"].as_str().unwrap().to_string())
        .collect();
    charged.sort();
    let mut expected = vec![a.clone(), b.clone(), c.clone(), disputed_payment.clone()];
    expected.sort();
    assert_eq!(charged, expected, "each charge links to obol's payment");
    assert!(charges
        .iter()
        .all(|t| t["fee"].as_i64().unwrap() > 0
            && t["source_id"].as_str().unwrap().starts_with("ch_")));
    let refunds = of("refund");
    assert_eq!(refunds.len(), 1, "{txns}");
    assert_eq!(refunds[0]["amount"], -1000);
    assert_eq!(refunds[0]["refund_id"], refund_id.as_str());
    assert_eq!(refunds[0]["payment_id"], b.as_str());
    let adjustments = of("adjustment");
    assert_eq!(adjustments.len(), 1, "{txns}");
    assert_eq!(adjustments[0]["reporting_category"], "dispute");
    assert_eq!(adjustments[0]["amount"], -4000);
    assert!(
        adjustments[0]["fee"].as_i64().unwrap() > 0,
        "the dispute fee"
    );
    assert_eq!(adjustments[0]["dispute_id"], dispute["id"]);
    assert_eq!(adjustments[0]["payment_id"], disputed_payment.as_str());
    assert_eq!(rows.len(), 6);

    // Paging gives the same rows.
    let (_, first) = obol
        .get(&format!("/v1/payouts/{id}/transactions?limit=4"))
        .await;
    assert_eq!(first["has_more"], true);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = obol
        .get(&format!(
            "/v1/payouts/{id}/transactions?limit=4&cursor={cursor}"
        ))
        .await;
    let paged: Vec<Value> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(paged, rows);

    // The bookkeeper's CSV: the same rows in the same order, decimals,
    // summing to the payout.
    let (status, ct, csv) = get_text(&obol, &format!("/v1/payouts/{id}/transactions.csv")).await;
    assert_eq!(status, 200, "{csv}");
    assert!(ct.starts_with("text/csv"), "{ct}");
    assert!(csv.contains("\r\n"), "RFC 4180 line ends");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, obol::ops::payouts::CSV_COLUMNS);
    let records: Vec<BTreeMap<String, String>> = reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(String::from))
                .collect()
        })
        .collect();
    assert_eq!(records.len(), rows.len());
    for (rec, row) in records.iter().zip(&rows) {
        assert_eq!(
            rec["stripe_balance_transaction_id"],
            row["stripe_balance_transaction_id"].as_str().unwrap()
        );
        assert_eq!(rec["type"], row["type"].as_str().unwrap());
        assert_eq!(minor(&rec["gross"]), row["amount"].as_i64().unwrap());
        assert_eq!(minor(&rec["fee"]), row["fee"].as_i64().unwrap());
        assert_eq!(minor(&rec["net"]), row["net"].as_i64().unwrap());
        assert_eq!(rec["payment_id"], row["payment_id"].as_str().unwrap_or(""));
        assert_eq!(rec["refund_id"], row["refund_id"].as_str().unwrap_or(""));
        assert_eq!(rec["dispute_id"], row["dispute_id"].as_str().unwrap_or(""));
        assert_eq!(rec["payout_id"], id);
    }
    let csv_net: i64 = records.iter().map(|r| minor(&r["net"])).sum();
    assert_eq!(csv_net, amount);
    assert_eq!(minor(&records[0]["payout_amount"]), amount);

    // The host heard of it once per change.
    let got = receiver
        .until("payout.created and payout.paid", |g| {
            counts(g).get("payout.paid") == Some(&1)
        })
        .await;
    let n = counts(&got);
    assert_eq!(n.get("payout.created"), Some(&1), "{n:?}");
    let paid = got
        .iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "payout.paid")
        .unwrap();
    assert!(
        paid["stripe_event_id"]
            .as_str()
            .unwrap()
            .starts_with("evt_"),
        "{paid}"
    );
    assert_eq!(paid["data"]["payout"]["id"], id.as_str());
    assert_eq!(paid["data"]["payout"]["status"], "paid");

    // Reconciliation retrieves the paid payout (a bank may still return
    // it) and finds nothing to change.
    let (status, report) = obol.post("/v1/reconciliations", json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["payouts_checked"], 1, "{report}");
    assert_eq!(report["payouts_moved"], 0, "{report}");

    // The bank returns it: failed, with Stripe's code, and the host is told.
    let failed = reqwest::Client::new()
        .post(format!("{base}/_sandbox/payouts/{po}/fail"))
        .form(&[("failure_code", "no_account")])
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 200);
    let shown = eventually(&obol, &format!("/v1/payouts/{id}"), |p| {
        p["status"] == "failed"
    })
    .await;
    assert_eq!(shown["failure_code"], "no_account");
    assert!(shown["failure_message"]
        .as_str()
        .unwrap()
        .contains("bank account"));
    let got = receiver
        .until("payout.failed", |g| {
            counts(g).get("payout.failed") == Some(&1)
        })
        .await;
    let fail = got
        .iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "payout.failed")
        .unwrap();
    assert_eq!(fail["data"]["payout"]["failure_code"], "no_account");
    assert!(fail["stripe_event_id"]
        .as_str()
        .unwrap()
        .starts_with("evt_"));
    let n = counts(&receiver.received());
    assert_eq!(
        (
            n.get("payout.created"),
            n.get("payout.paid"),
            n.get("payout.failed")
        ),
        (Some(&1), Some(&1), Some(&1)),
        "{n:?}"
    );

    // Someone else's (or a made-up) payout is 404.
    let (status, body) = obol
        .get("/v1/payouts/pout_01jzzzzzzzzzzzzzzzzzzzzzzz")
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("payout_not_found"))
    );
}

fn payout_object(id: &str, status: &str, created: i64) -> Value {
    let failed = status == "failed";
    json!({"id": id, "object": "payout", "amount": 12_345, "currency": "eur",
        "arrival_date": created + 86_400, "automatic": true, "balance_transaction": "txn_x",
        "created": created, "description": "STRIPE PAYOUT", "destination": "ba_x",
        "failure_balance_transaction": null,
        "failure_code": if failed { json!("account_closed") } else { Value::Null },
        "failure_message": if failed { json!("The bank account has been closed.") } else { Value::Null },
        "livemode": false, "metadata": {}, "method": "standard", "original_payout": null,
        "reconciliation_status": "completed", "reversed_by": null, "source_type": "card",
        "statement_descriptor": null, "status": status, "type": "bank_account"})
}

async fn duplicated_and_reordered_payout_events_leave_one_payout_at_its_final_state(
    backend: Backend,
) {
    let secret = "whsec_obol_test_secret_for_payouts";
    let obol = Obol::builder(backend)
        .env("OBOL_STRIPE__WEBHOOK_SECRETS", secret)
        .start()
        .await;
    let receiver = subscribe(&obol).await;
    let t = chrono::Utc::now().timestamp() - 600;
    let po = "po_reordered0000000000000001";
    // Stripe's history: created, in transit, paid, then returned.
    let history = [
        ("evt_po_1", "payout.created", "pending", t),
        ("evt_po_2", "payout.updated", "in_transit", t + 1),
        ("evt_po_3", "payout.updated", "paid", t + 2),
        ("evt_po_4", "payout.paid", "paid", t + 2),
        ("evt_po_5", "payout.updated", "failed", t + 3),
        ("evt_po_6", "payout.failed", "failed", t + 3),
    ];
    // Delivered out of order, with duplicates: the failure first.
    let order = [5, 5, 3, 0, 1, 4, 2, 0, 3, 5];
    for n in order {
        let (id, kind, status, at) = history[n];
        let body = json!({"id": id, "object": "event", "type": kind, "created": at,
            "livemode": false, "api_version": "2023-08-16", "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "data": {"object": payout_object(po, status, t)}})
        .to_string();
        let now = chrono::Utc::now().timestamp();
        let sig = obol::stripe::signature::sign(body.as_bytes(), &secret.to_string().into(), now);
        let r = obol
            .http
            .post(obol.url("/webhooks/stripe"))
            .header("stripe-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let events = eventually(&obol, "/v1/webhook-events?limit=100", |e| {
        e["data"].as_array().is_some_and(|d| {
            d.len() == 6
                && d.iter()
                    .all(|e| e["status"] != "pending" && e["status"] != "received")
        })
    })
    .await;
    assert_eq!(
        events["data"].as_array().unwrap().len(),
        6,
        "one row per event"
    );
    let list = eventually(&obol, "/v1/payouts", |l| l["data"][0]["status"] == "failed").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let payout = &list["data"][0];
    assert_eq!(payout["stripe_payout_id"], po);
    assert_eq!(payout["failure_code"], "account_closed");
    assert_eq!(
        payout["amount"],
        json!({"amount": 12_345, "currency": "eur"})
    );
    // Its transactions were never fetched (the failure came first).
    let (status, body) = obol
        .get(&format!(
            "/v1/payouts/{}/transactions",
            payout["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("payout_transactions_not_ready"))
    );
    // Once per change: first sight, then failed; the late paid changed nothing.
    let got = receiver
        .until("payout.failed", |g| {
            counts(g).get("payout.failed") == Some(&1)
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let n = counts(&receiver.received());
    assert_eq!(n.get("payout.created"), Some(&1), "{n:?}");
    assert_eq!(n.get("payout.failed"), Some(&1), "{n:?}");
    assert_eq!(n.get("payout.paid"), None, "{n:?}");
    let failed = got
        .iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "payout.failed")
        .unwrap();
    assert_eq!(failed["stripe_event_id"], "evt_po_6");
}

async fn payout_rows_round_trip_per_account(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let platform = AccountId::platform();
    let other = AccountId::from_db("org_01jzzzzzzzzzzzzzzzzzzzzzzz".into());
    let view = PayoutView {
        stripe_payout_id: "po_storage",
        amount: 9_000,
        currency: "eur",
        status: PayoutStatus::Paid,
        arrival_date: 1_800_000_000,
        automatic: true,
        method: "standard",
        description: None,
        failure_code: None,
        failure_message: None,
        reconciliation_status: Some("completed"),
        stripe_created: 1_799_900_000,
        observed_at: 1_799_900_010,
    };
    let now = obol::storage::now();
    let mut tx = store.begin().await.unwrap();
    let row = tx
        .conn()
        .insert_payout(&platform, "pout_01jstoragezzzzzzzzzzzzzzz", &view, now)
        .await
        .unwrap()
        .unwrap();
    // The same Stripe payout again inserts nothing.
    assert!(tx
        .conn()
        .insert_payout(&platform, "pout_01jstorageyyyyyyyyyyyyyyy", &view, now)
        .await
        .unwrap()
        .is_none());
    // Another account may hold its own payout of that id (Connect).
    assert!(tx
        .conn()
        .insert_payout(&other, "pout_01jstoragexxxxxxxxxxxxxxx", &view, now)
        .await
        .unwrap()
        .is_some());
    let rows = vec![
        NewPayoutTransaction {
            stripe_balance_transaction_id: "txn_1".into(),
            kind: "charge".into(),
            reporting_category: "charge".into(),
            amount: 10_000,
            fee: 400,
            net: 9_600,
            currency: "eur".into(),
            created: 1_799_000_000,
            available_on: 1_799_600_000,
            description: Some("a, \"quoted\" description".into()),
            source_id: Some("ch_1".into()),
            payment_intent_id: Some("pi_unknown".into()),
        },
        NewPayoutTransaction {
            stripe_balance_transaction_id: "txn_2".into(),
            kind: "refund".into(),
            reporting_category: "refund".into(),
            amount: -600,
            fee: 0,
            net: -600,
            currency: "eur".into(),
            created: 1_799_000_100,
            available_on: 1_799_000_100,
            description: None,
            source_id: Some("re_1".into()),
            payment_intent_id: Some("pi_unknown".into()),
        },
    ];
    tx.conn()
        .replace_payout_transactions(&row, &rows, now)
        .await
        .unwrap();
    // Replacing is idempotent: a retried fetch stores the same rows once.
    tx.conn()
        .replace_payout_transactions(&row, &rows, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut h = store.acquire().await.unwrap();
    let mut conn = h.conn();
    let read = conn.get_payout(&platform, &row.id).await.unwrap().unwrap();
    assert_eq!(read.transactions_status, "fetched");
    assert_eq!(read.amount, 9_000);
    assert!(read.automatic);
    assert!(conn.get_payout(&other, &row.id).await.unwrap().is_none());
    assert_eq!(
        conn.sum_payout_transactions(&platform, &row.id)
            .await
            .unwrap(),
        (2, 9_400, 400, 9_000)
    );
    assert_eq!(
        conn.sum_payout_transactions(&other, &row.id).await.unwrap(),
        (0, 0, 0, 0)
    );
    let listed = conn
        .list_payout_transactions(&platform, &row.id, None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].stripe_balance_transaction_id, "txn_1");
    assert_eq!(listed[1].net, -600);
    assert_eq!(
        listed[0].payment_id, None,
        "no obol payment for that intent"
    );
    let after = conn
        .list_payout_transactions(&platform, &row.id, Some(listed[0].position), 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    // The guarded update: a stale read writes nothing.
    let next = PayoutLedger {
        status: PayoutStatus::Failed,
        observed_at: 1_799_900_020,
    };
    let failed = PayoutView {
        status: PayoutStatus::Failed,
        failure_code: Some("account_closed"),
        ..view.clone()
    };
    let moved = conn
        .update_payout_view(&read, &failed, next, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.status, PayoutStatus::Failed);
    assert_eq!(moved.failure_code.as_deref(), Some("account_closed"));
    assert!(conn
        .update_payout_view(&read, &failed, next, now)
        .await
        .unwrap()
        .is_none());
    let unsettled = conn.list_unsettled_payouts(&other, 0, 10).await.unwrap();
    assert_eq!(unsettled.len(), 1, "the other account's paid payout");
    assert!(
        conn.list_unsettled_payouts(&platform, 0, 10)
            .await
            .unwrap()
            .is_empty(),
        "a failed payout is final"
    );
}
