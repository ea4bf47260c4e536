//! Subscriptions end to end, against the sandbox over HTTP: a monthly
//! gift through three renewals on a test clock (paid invoices, ledger
//! payments linked to them, the host told once per change), a card that
//! starts declining (past_due, one e-mail to the member), cancel now and
//! at the period's end; and the billing tables on both backends.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::charge_runs::save_default_card;
use crate::emails::{free_port, SmtpSink};
use crate::helpers::{Backend, Obol, TestDb, TestReceiver};
use crate::inbox::{sandbox, stripe_post};
use crate::invoices::within;
use crate::on_both_backends;

on_both_backends!(
    a_monthly_gift_renews_three_times_then_goes_past_due_and_emails_once,
    cancel_now_and_at_period_end_behave_as_stripe_does,
    a_renewal_the_bank_wants_confirmed_emails_the_invoice_page_once,
    creating_refuses_a_member_without_a_card_and_bad_input,
    the_billing_tables_store_and_filter_per_account,
    the_mirror_equals_stripe_after_chaos_and_reconciliation,
);

pub const MIRROR_TYPES: &[&str] = &[
    "subscription.created",
    "subscription.updated",
    "subscription.canceled",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.voided",
    "invoice.marked_uncollectible",
];

/// A member with an e-mail, a default card, and their Stripe customer on
/// a test clock frozen now. Returns (member, clock, clock time).
pub async fn member_on_clock(obol: &Obol, name: &str, card: &str) -> (String, String, i64) {
    let (s, c) = obol
        .post(
            "/v1/customers",
            json!({"external_id": name, "email": format!("{name}@club.example"), "name": name}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let member = c["id"].as_str().unwrap().to_string();
    save_default_card(obol, &member, card).await;
    let (_, c) = obol.get(&format!("/v1/customers/{member}")).await;
    let cus = c["stripe_customer_id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now().timestamp();
    let base = sandbox(obol).await;
    let clock = stripe_post(
        &base,
        "/v1/test_helpers/test_clocks",
        &[("frozen_time", &now.to_string()), ("customer", &cus)],
    )
    .await;
    let clock = clock["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{clock}"))
        .to_string();
    (member, clock, now)
}

/// Moves the clock to `to` and waits until the sandbox ran everything due.
pub async fn advance(obol: &Obol, clock: &str, to: i64) {
    let base = sandbox(obol).await;
    let c = stripe_post(
        &base,
        &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
        &[("frozen_time", &to.to_string())],
    )
    .await;
    assert_eq!(c["status"], "advancing", "{c}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c: Value = reqwest::Client::new()
            .get(format!("{base}/v1/test_helpers/test_clocks/{clock}"))
            .bearer_auth("sk_test_obol_tests")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if c["status"] == "ready" {
            return;
        }
        assert!(Instant::now() < deadline, "clock never ready: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ts(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .timestamp()
}

/// obol with quick jobs and notifications, e-mailing through a local
/// SMTP catcher.
async fn start_with_mail(backend: Backend) -> (Obol, SmtpSink) {
    let port = free_port();
    let sink = SmtpSink::start(port, &[]);
    let obol = Obol::builder(backend)
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "20")
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .env("OBOL_EMAIL__SMTP_URL", &format!("smtp://127.0.0.1:{port}"))
        .env("OBOL_EMAIL__FROM", "Club <club@club.example>")
        .start()
        .await;
    (obol, sink)
}

/// Gives the member a new default card at Stripe (as a dashboard would):
/// Stripe charges its own default, whenever obol hears of it.
async fn set_default_at_stripe(obol: &Obol, member: &str, card: &str) {
    let (_, m) = obol.get(&format!("/v1/customers/{member}")).await;
    let cus = m["stripe_customer_id"].as_str().unwrap().to_string();
    let base = sandbox(obol).await;
    let pm = stripe_post(
        &base,
        &format!("/v1/payment_methods/{card}/attach"),
        &[("customer", &cus)],
    )
    .await;
    let pm = pm["id"].as_str().unwrap_or_else(|| panic!("{pm}"));
    stripe_post(
        &base,
        &format!("/v1/customers/{cus}"),
        &[("invoice_settings[default_payment_method]", pm)],
    )
    .await;
}

async fn subscribe_endpoint(obol: &Obol) -> TestReceiver {
    let host = TestReceiver::start(0).await;
    let (s, e) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": host.url, "event_types": MIRROR_TYPES}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    host
}

fn of_type(got: &[crate::helpers::Received], t: &str) -> Vec<Value> {
    got.iter()
        .map(|r| r.json())
        .filter(|b| b["type"] == t)
        .collect()
}

async fn a_monthly_gift_renews_three_times_then_goes_past_due_and_emails_once(backend: Backend) {
    let (obol, sink) = start_with_mail(backend).await;
    let host = subscribe_endpoint(&obol).await;
    let (member, clock, _t0) = member_on_clock(&obol, "gift-member", "pm_card_visa").await;

    let (s, sub) = obol
        .post(
            "/v1/subscriptions",
            json!({"customer": member, "amount": 2500, "currency": "eur", "interval": "month",
                   "description": "Monthly gift"}),
        )
        .await;
    assert_eq!(s, 201, "{sub}");
    assert_eq!(sub["status"], "active", "{sub}");
    assert_eq!(sub["amount"], json!({"amount": 2500, "currency": "eur"}));
    assert_eq!(sub["source"], "obol");
    assert_eq!(sub["customer_id"], member.as_str());
    assert!(sub["stripe_subscription_id"]
        .as_str()
        .unwrap()
        .starts_with("sub_"));
    let id = sub["id"].as_str().unwrap().to_string();
    assert_eq!(sub["next_payment_at"], sub["current_period_end"]);

    // Three renewals: each period's end reached on the clock.
    let mut period_end = ts(&sub["current_period_end"]);
    for n in 1..=3 {
        advance(&obol, &clock, period_end + 60).await;
        let after = within(&obol, &format!("/v1/subscriptions/{id}"), 20, |b| {
            b["status"] == "active" && ts(&b["current_period_start"]) == period_end
        })
        .await;
        period_end = ts(&after["current_period_end"]);
        within(
            &obol,
            &format!("/v1/billing/invoices?subscription={id}&status=paid"),
            20,
            |b| b["data"].as_array().unwrap().len() == n + 1,
        )
        .await;
    }
    // Four paid invoices: the first and three renewals, each with its
    // ledger payment linked back to the subscription and the invoice.
    let invoices = within(
        &obol,
        &format!("/v1/billing/invoices?subscription={id}"),
        20,
        |b| {
            b["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["payment_id"].is_string())
        },
    )
    .await;
    let invoices = invoices["data"].as_array().unwrap().clone();
    assert_eq!(invoices.len(), 4, "{invoices:?}");
    let renewals = invoices
        .iter()
        .filter(|i| i["billing_reason"] == "subscription_cycle")
        .count();
    assert_eq!(renewals, 3);
    for inv in &invoices {
        assert_eq!(inv["status"], "paid");
        assert_eq!(
            inv["amount_paid"],
            json!({"amount": 2500, "currency": "eur"})
        );
        assert_eq!(inv["amount_remaining"]["amount"], 0);
        assert_eq!(inv["customer_id"], member.as_str());
        let pay = inv["payment_id"].as_str().unwrap();
        // The intent's own success event may come after the invoice's.
        let p = within(&obol, &format!("/v1/payments/{pay}"), 20, |p| {
            p["status"] == "completed"
        })
        .await;
        assert_eq!(p["subscription_id"], id.as_str());
        assert_eq!(p["billing_invoice_id"], inv["id"]);
        assert_eq!(
            p["customer_id"],
            member.as_str(),
            "the renewal is the member's"
        );
        let (_, one) = obol
            .get(&format!(
                "/v1/billing/invoices/{}",
                inv["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(one["id"], inv["id"]);
    }
    // One ledger payment per invoice, none twice.
    let (_, payments) = obol.get("/v1/payments?limit=100").await;
    let linked: Vec<&Value> = payments["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["subscription_id"] == id.as_str())
        .collect();
    assert_eq!(linked.len(), 4, "{payments}");

    // The card starts declining: the next renewal fails.
    // (Set at Stripe: Stripe charges its own default, whenever obol hears of it.)
    set_default_at_stripe(&obol, &member, "pm_card_chargeCustomerFail").await;
    advance(&obol, &clock, period_end + 60).await;
    let past_due = within(&obol, &format!("/v1/subscriptions/{id}"), 20, |b| {
        b["status"] == "past_due"
    })
    .await;
    let failed = within(
        &obol,
        &format!("/v1/billing/invoices?subscription={id}&status=open"),
        20,
        |b| b["data"].as_array().unwrap().len() == 1 && b["data"][0]["attempt_count"] == 1,
    )
    .await;
    let failed = &failed["data"][0];
    assert_eq!(failed["attempt_count"], 1);
    assert!(failed["hosted_invoice_url"].is_string());
    // The next payment is Stripe's retry, 3 days on (once the failed
    // invoice is mirrored too).
    assert_eq!(past_due["status"], "past_due");
    let retry = failed["next_payment_attempt"].clone();
    assert!(retry.is_string(), "{failed}");
    within(&obol, &format!("/v1/subscriptions/{id}"), 20, |b| {
        b["next_payment_at"] == retry
    })
    .await;

    // The member is e-mailed a card-update link, once.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.messages().is_empty() {
        assert!(Instant::now() < deadline, "no e-mail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Replayed and reconciled: still one e-mail, no new notifications.
    let (s, r) = obol.post("/v1/reconciliations", json!({})).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["subscriptions_checked"].as_u64().unwrap() >= 1, "{r}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let text = mails[0].to_string();
    assert!(text.contains("gift-member@club.example"), "{text}");
    assert!(text.contains("/pay/cards/"), "{text}");

    // The host was told once per change.
    let got = host
        .until("the failed renewal notified", |r| {
            !of_type(r, "invoice.payment_failed").is_empty()
        })
        .await;
    assert_eq!(of_type(&got, "subscription.created").len(), 1);
    assert_eq!(of_type(&got, "invoice.paid").len(), 4);
    assert_eq!(of_type(&got, "invoice.payment_failed").len(), 1);
    for paid in of_type(&got, "invoice.paid") {
        assert!(
            paid["stripe_event_id"]
                .as_str()
                .unwrap()
                .starts_with("evt_"),
            "{paid}"
        );
        assert_eq!(paid["data"]["billing_invoice"]["status"], "paid");
    }
    let updates = of_type(&got, "subscription.updated");
    assert!(updates.len() >= 4, "{updates:?}");
    let mut seen = std::collections::HashSet::new();
    for u in &updates {
        let s = &u["data"]["subscription"];
        assert!(
            seen.insert((
                s["status"].to_string(),
                s["current_period_start"].to_string()
            )),
            "the same change notified twice: {u}"
        );
    }
    assert!(updates
        .iter()
        .any(|u| u["data"]["subscription"]["status"] == "past_due"));
}

async fn a_renewal_the_bank_wants_confirmed_emails_the_invoice_page_once(backend: Backend) {
    let (obol, sink) = start_with_mail(backend).await;
    let host = subscribe_endpoint(&obol).await;
    let (member, clock, _) = member_on_clock(&obol, "confirm-member", "pm_card_visa").await;
    let (s, sub) = obol
        .post(
            "/v1/subscriptions",
            json!({"customer": member, "amount": 1800, "currency": "eur", "interval": "month"}),
        )
        .await;
    assert_eq!(s, 201, "{sub}");
    let id = sub["id"].as_str().unwrap().to_string();

    // The member's bank starts asking for 3-D Secure on every payment.
    set_default_at_stripe(&obol, &member, "pm_card_authenticationRequired").await;
    advance(&obol, &clock, ts(&sub["current_period_end"]) + 60).await;
    let open = within(
        &obol,
        &format!("/v1/billing/invoices?subscription={id}&status=open"),
        20,
        // The renewal's, after its attempt (not the first invoice, open
        // until its own payment is mirrored).
        |b| b["data"].as_array().unwrap().len() == 1 && b["data"][0]["attempt_count"] == 1,
    )
    .await;
    let page = open["data"][0]["hosted_invoice_url"]
        .as_str()
        .unwrap()
        .to_string();
    host.until("the host told the bank asks", |r| {
        !of_type(r, "invoice.payment_action_required").is_empty()
    })
    .await;

    // One e-mail, with the invoice's page, not a card-update link; a
    // reconciliation pass adds none.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.messages().is_empty() {
        assert!(Instant::now() < deadline, "no e-mail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, r) = obol.post("/v1/reconciliations", json!({})).await;
    assert_eq!(s, 200, "{r}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let text = mails[0].to_string();
    assert!(text.contains("confirm-member@club.example"), "{text}");
    assert!(text.contains("confirm your payment"), "{text}");
    assert!(text.contains(&page), "the invoice's page: {text}");
    assert!(!text.contains("/pay/cards/"), "no card-update link: {text}");
    let got = host.received();
    assert_eq!(of_type(&got, "invoice.payment_action_required").len(), 1);
}

async fn cancel_now_and_at_period_end_behave_as_stripe_does(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "20")
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .start()
        .await;
    let host = subscribe_endpoint(&obol).await;
    let (member, clock, _) = member_on_clock(&obol, "cancel-member", "pm_card_visa").await;
    let create = |interval: &'static str| json!({"customer": member, "amount": 12000, "currency": "eur", "interval": interval});
    let (s, now_sub) = obol.post("/v1/subscriptions", create("year")).await;
    assert_eq!(s, 201, "{now_sub}");
    let (s, end_sub) = obol.post("/v1/subscriptions", create("month")).await;
    assert_eq!(s, 201, "{end_sub}");
    let now_id = now_sub["id"].as_str().unwrap();
    let end_id = end_sub["id"].as_str().unwrap();

    // Now: canceled at once.
    let (s, c) = obol
        .post(&format!("/v1/subscriptions/{now_id}/cancel"), json!({}))
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["status"], "canceled");
    assert!(c["canceled_at"].is_string());
    assert!(c["next_payment_at"].is_null());
    let (s, e) = obol
        .post(&format!("/v1/subscriptions/{now_id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("subscription_not_cancelable"))
    );

    // At period end: active until then, no next payment, then canceled
    // without another invoice.
    let (s, c) = obol
        .post(
            &format!("/v1/subscriptions/{end_id}/cancel"),
            json!({"at_period_end": true}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["status"], "active");
    assert_eq!(c["cancel_at_period_end"], true);
    assert!(c["next_payment_at"].is_null());
    let end = ts(&c["current_period_end"]);
    advance(&obol, &clock, end + 60).await;
    let ended = within(&obol, &format!("/v1/subscriptions/{end_id}"), 20, |b| {
        b["status"] == "canceled"
    })
    .await;
    assert_eq!(ended["cancel_at_period_end"], true);
    let (_, invoices) = obol
        .get(&format!("/v1/billing/invoices?subscription={end_id}"))
        .await;
    assert_eq!(invoices["data"].as_array().unwrap().len(), 1, "{invoices}");

    let got = host
        .until("both cancellations notified", |r| {
            of_type(r, "subscription.canceled").len() >= 2
        })
        .await;
    assert_eq!(of_type(&got, "subscription.canceled").len(), 2);
    let (_, list) = obol
        .get(&format!(
            "/v1/subscriptions?customer={member}&status=canceled"
        ))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
    let (_, active) = obol.get("/v1/subscriptions?status=active").await;
    assert_eq!(active["data"].as_array().unwrap().len(), 0);
}

async fn creating_refuses_a_member_without_a_card_and_bad_input(backend: Backend) {
    let obol = Obol::start(backend).await;
    let bare = obol.create_customer("no-card").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body =
        |c: &str| json!({"customer": c, "amount": 500, "currency": "eur", "interval": "month"});
    let (s, e) = obol.post("/v1/subscriptions", body(&bare)).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("no_default_card")),
        "{e}"
    );
    let (s, e) = obol
        .post("/v1/subscriptions", body("cus_01jd8x3qzv5m2c7e9f0g1h2j3k"))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("customer_not_found"))
    );
    let (s, e) = obol
        .post(
            "/v1/subscriptions",
            json!({"customer": bare, "amount": 500, "currency": "eur", "interval": "week"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{e}"
    );
    let (s, e) = obol
        .post(
            "/v1/subscriptions",
            json!({"customer": bare, "amount": 0, "currency": "eur", "interval": "month"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("amount_not_positive"))
    );
    let (s, e) = obol
        .post(
            "/v1/subscriptions",
            json!({"customer": bare, "amount": 500, "currency": "eur", "interval": "month",
                   "start_date": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("date_not_in_future"))
    );
    let (s, e) = obol
        .get("/v1/subscriptions/sub_01jd8x3qzv5m2c7e9f0g1h2j3k")
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("subscription_not_found"))
    );
    let (s, e) = obol.get("/v1/subscriptions?status=nope").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
    let (s, e) = obol
        .get("/v1/billing/invoices/binv_01jd8x3qzv5m2c7e9f0g1h2j3k")
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("billing_invoice_not_found"))
    );
}

async fn the_billing_tables_store_and_filter_per_account(backend: Backend) {
    use obol::context::AccountId;
    use obol::storage::billing::{
        InvoiceFilter, InvoiceState, NewSubscription, SubscriptionFilter, SubscriptionState,
    };
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut h = store.acquire().await.unwrap();
    let mut conn = h.conn();
    let platform = AccountId::platform();
    let other = AccountId::from_db("org_01jd8x3qzv5m2c7e9f0g1h2j3k".into());
    let now = obol::storage::now();
    for (id, account) in [("sub_a", &platform), ("sub_b", &other)] {
        conn.insert_subscription(&NewSubscription {
            id,
            account_id: account.as_str(),
            customer_id: None,
            stripe_customer_id: Some("cus_stripe1"),
            source: "stripe",
            amount: 1000,
            currency: "eur",
            billing_interval: "month",
            interval_count: 1,
            status: "incomplete",
            start_date: None,
            trial_days: None,
            description: None,
            now,
        })
        .await
        .unwrap();
    }
    let row = conn
        .get_subscription(&platform, "sub_a")
        .await
        .unwrap()
        .unwrap();
    assert!(conn
        .get_subscription(&platform, "sub_b")
        .await
        .unwrap()
        .is_none());
    let state = SubscriptionState {
        stripe_subscription_id: "sub_stripe1".into(),
        stripe_customer_id: "cus_stripe1".into(),
        amount: 1000,
        currency: "eur".into(),
        billing_interval: "month".into(),
        interval_count: 1,
        status: "active".into(),
        current_period_start: Some(100),
        current_period_end: Some(200),
        cancel_at_period_end: false,
        canceled_at: None,
        ended_at: None,
        trial_end: None,
        latest_stripe_invoice_id: Some("in_1".into()),
    };
    assert!(conn
        .write_subscription_state(&row, &state, 100, now)
        .await
        .unwrap());
    // Guarded: a second write from the same read loses.
    assert!(!conn
        .write_subscription_state(&row, &state, 101, now)
        .await
        .unwrap());
    let got = conn
        .get_subscription_by_stripe_id(&platform, "sub_stripe1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.status.as_str(), got.observed_at), ("active", 100));
    assert!(conn
        .get_subscription_by_stripe_id(&other, "sub_stripe1")
        .await
        .unwrap()
        .is_none());
    let f = |status| SubscriptionFilter {
        status,
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        conn.list_subscriptions(&platform, &f(Some("active")))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        conn.list_subscriptions(&platform, &f(Some("canceled")))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        conn.list_open_subscriptions(&other, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let inv = InvoiceState {
        stripe_invoice_id: "in_1".into(),
        stripe_customer_id: Some("cus_stripe1".into()),
        stripe_subscription_id: Some("sub_stripe1".into()),
        stripe_payment_intent_id: None,
        status: "open".into(),
        currency: "eur".into(),
        amount_due: 1000,
        amount_paid: 0,
        amount_remaining: 1000,
        attempt_count: 0,
        billing_reason: Some("subscription_cycle".into()),
        collection_method: Some("charge_automatically".into()),
        number: Some("A-0001".into()),
        hosted_invoice_url: None,
        period_start: Some(100),
        period_end: Some(200),
        due_date: None,
        next_payment_attempt: Some(150),
        automatically_finalizes_at: None,
        stripe_created: 100,
    };
    assert!(conn
        .insert_billing_invoice("binv_1", &platform, &inv, 100, now)
        .await
        .unwrap());
    assert!(!conn
        .insert_billing_invoice("binv_2", &platform, &inv, 100, now)
        .await
        .unwrap());
    assert!(conn
        .set_billing_invoice_intent(&platform, "in_1", "pi_1")
        .await
        .unwrap());
    assert!(!conn
        .set_billing_invoice_intent(&platform, "in_1", "pi_2")
        .await
        .unwrap());
    let b = conn
        .get_billing_invoice(&platform, "binv_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.subscription_id.as_deref(), Some("sub_a"));
    assert_eq!(b.stripe_payment_intent_id.as_deref(), Some("pi_1"));
    assert!(conn
        .mark_billing_invoice_action_required("binv_1", 1)
        .await
        .unwrap());
    assert!(!conn
        .mark_billing_invoice_action_required("binv_1", 1)
        .await
        .unwrap());
    let by_sub = InvoiceFilter {
        subscription_id: Some("sub_a"),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        conn.list_billing_invoices(&platform, &by_sub)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        conn.list_billing_invoices(&other, &by_sub)
            .await
            .unwrap()
            .len(),
        0
    );
    let links = conn
        .billing_links_of_intent(&platform, "pi_1")
        .await
        .unwrap();
    assert_eq!(
        links,
        Some(("binv_1".to_string(), Some("sub_a".to_string())))
    );
    assert_eq!(
        conn.list_open_billing_invoices(&platform, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Reconciles until the inbox has applied everything it stored.
async fn reconcile_and_settle(obol: &Obol) {
    let (s, r) = obol.post("/v1/reconciliations", json!({})).await;
    assert_eq!(s, 200, "{r}");
    within(
        obol,
        "/v1/webhook-events?status=received&limit=1",
        30,
        |b| b["data"] == json!([]),
    )
    .await;
}

async fn sandbox_get(base: &str, path: &str) -> Value {
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

/// Subscriptions through renewals, a declining card and a cancel at the
/// period's end while the sandbox duplicates, reorders and drops
/// deliveries: after reconciliation every mirrored subscription and
/// invoice equals the sandbox's, and each invoice was notified paid once.
async fn the_mirror_equals_stripe_after_chaos_and_reconciliation(backend: Backend) {
    let obol = Obol::builder(backend)
        .env(
            "OBOL_SANDBOX__CHAOS",
            "seed=20261201,duplicate=0.3,reorder=0.3,drop=0.25",
        )
        .env("OBOL_RECONCILE__INTERVAL_SECONDS", "0")
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "20")
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .start()
        .await;
    let host = subscribe_endpoint(&obol).await;
    let base = sandbox(&obol).await;
    let now = chrono::Utc::now().timestamp();
    let mut subs = Vec::new();
    for n in 0..3 {
        let member = obol.create_customer(&format!("chaos-{n}")).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, link) = obol
            .post(
                &format!("/v1/customers/{member}/card-update-links"),
                json!({}),
            )
            .await;
        let cus = link["stripe_customer_id"].as_str().unwrap().to_string();
        let pm = stripe_post(
            &base,
            "/v1/payment_methods/pm_card_visa/attach",
            &[("customer", &cus)],
        )
        .await;
        let pm = pm["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{pm}"))
            .to_string();
        stripe_post(
            &base,
            &format!("/v1/customers/{cus}"),
            &[("invoice_settings[default_payment_method]", &pm)],
        )
        .await;
        let clock = stripe_post(
            &base,
            "/v1/test_helpers/test_clocks",
            &[("frozen_time", &now.to_string()), ("customer", &cus)],
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        // A dropped delivery of the card is recovered by reconciliation.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, cards) = obol
                .get(&format!("/v1/customers/{member}/payment-methods"))
                .await;
            if cards["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|c| c["default"] == true))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the card never reached obol: {cards}"
            );
            reconcile_and_settle(&obol).await;
        }
        let (s, sub) = obol
            .post(
                "/v1/subscriptions",
                json!({"customer": member, "amount": 1000 + n * 100, "currency": "eur", "interval": "month"}),
            )
            .await;
        assert_eq!(s, 201, "{sub}");
        subs.push((sub, cus, clock));
    }
    // Member 1's card starts declining; member 2 cancels at the period's end.
    let declining = stripe_post(
        &base,
        "/v1/payment_methods/pm_card_chargeCustomerFail/attach",
        &[("customer", &subs[1].1)],
    )
    .await;
    stripe_post(
        &base,
        &format!("/v1/customers/{}", subs[1].1),
        &[(
            "invoice_settings[default_payment_method]",
            declining["id"].as_str().unwrap(),
        )],
    )
    .await;
    let (s, c) = obol
        .post(
            &format!(
                "/v1/subscriptions/{}/cancel",
                subs[2].0["id"].as_str().unwrap()
            ),
            json!({"at_period_end": true}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    // Two renewals for each clock.
    for (sub, _, clock) in &subs {
        let mut end = ts(&sub["current_period_end"]);
        let mut at = now;
        for _ in 0..2 {
            // An ended subscription's period stops moving: a day on then.
            at = (end + 60).max(at + 86_400);
            advance(&obol, clock, at).await;
            end = sandbox_get(
                &base,
                &format!(
                    "/v1/subscriptions/{}",
                    sub["stripe_subscription_id"].as_str().unwrap()
                ),
            )
            .await["current_period_end"]
                .as_i64()
                .unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    reconcile_and_settle(&obol).await;
    reconcile_and_settle(&obol).await;

    let mut paid_at_stripe = 0;
    for (sub, cus, _) in &subs {
        let id = sub["id"].as_str().unwrap();
        let truth = sandbox_get(
            &base,
            &format!(
                "/v1/subscriptions/{}",
                sub["stripe_subscription_id"].as_str().unwrap()
            ),
        )
        .await;
        let (_, mirror) = obol.get(&format!("/v1/subscriptions/{id}")).await;
        assert_eq!(mirror["status"], truth["status"], "{mirror} vs {truth}");
        assert_eq!(
            mirror["cancel_at_period_end"],
            truth["cancel_at_period_end"]
        );
        assert_eq!(
            ts(&mirror["current_period_end"]),
            truth["current_period_end"].as_i64().unwrap()
        );
        let invoices = sandbox_get(&base, &format!("/v1/invoices?customer={cus}&limit=100")).await;
        let invoices = invoices["data"].as_array().unwrap();
        let (_, mirrored) = obol
            .get(&format!("/v1/billing/invoices?subscription={id}&limit=100"))
            .await;
        let mirrored = mirrored["data"].as_array().unwrap();
        assert_eq!(mirrored.len(), invoices.len(), "{mirrored:?}");
        for inv in invoices {
            let m = mirrored
                .iter()
                .find(|m| m["stripe_invoice_id"] == inv["id"])
                .unwrap_or_else(|| panic!("{} not mirrored", inv["id"]));
            assert_eq!(m["status"], inv["status"], "{m} vs {inv}");
            assert_eq!(m["attempt_count"], inv["attempt_count"]);
            assert_eq!(m["amount_paid"]["amount"], inv["amount_paid"]);
            if inv["status"] == "paid" {
                paid_at_stripe += 1;
                assert!(m["payment_id"].is_string(), "{m}");
            }
        }
    }
    // The declining card's renewal was retried 3, 5 and 7 days on, then
    // Stripe ended the subscription (the month passed them all).
    assert_eq!(subs_status(&obol, &subs[0].0).await, "active");
    assert_eq!(subs_status(&obol, &subs[1].0).await, "canceled");
    assert_eq!(subs_status(&obol, &subs[2].0).await, "canceled");
    // Each paid invoice notified once, however often its events arrived.
    host.until("every paid invoice notified", |r| {
        of_type(r, "invoice.paid").len() >= paid_at_stripe
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paid = of_type(&host.received(), "invoice.paid");
    let mut ids: Vec<String> = paid
        .iter()
        .map(|p| {
            p["data"]["billing_invoice"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(paid.len(), paid_at_stripe, "{paid:?}");
    assert_eq!(ids.len(), paid_at_stripe);
}

async fn subs_status(obol: &Obol, sub: &Value) -> String {
    let (_, s) = obol
        .get(&format!(
            "/v1/subscriptions/{}",
            sub["id"].as_str().unwrap()
        ))
        .await;
    s["status"].as_str().unwrap().to_string()
}
