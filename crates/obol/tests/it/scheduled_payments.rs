//! Scheduled payments end to end: a Stripe invoice finalized and charged
//! from the default card when the member's test clock reaches the date,
//! not a day before; refusals of a past date and of a member without a card.

use serde_json::json;

use crate::helpers::{Backend, Obol};
use crate::invoices::within;
use crate::on_both_backends;
use crate::subscriptions::{advance, member_on_clock};

on_both_backends!(
    a_scheduled_payment_is_charged_on_its_date_not_before,
    a_scheduled_payment_needs_a_future_date_and_a_card,
);

async fn a_scheduled_payment_is_charged_on_its_date_not_before(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .start()
        .await;
    let (member, clock, t0) = member_on_clock(&obol, "pledge-member", "pm_card_visa").await;
    let date = t0 + 10 * 86_400;
    let when = chrono::DateTime::from_timestamp(date, 0)
        .unwrap()
        .to_rfc3339();
    let (s, sp) = obol
        .post(
            "/v1/scheduled-payments",
            json!({"customer": member, "amount": 5000, "currency": "eur", "date": when,
                   "description": "Pledge, instalment 2 of 4"}),
        )
        .await;
    assert_eq!(s, 201, "{sp}");
    assert_eq!(sp["status"], "draft", "{sp}");
    assert_eq!(sp["amount"], json!({"amount": 5000, "currency": "eur"}));
    let id = sp["id"].as_str().unwrap().to_string();
    let inv_id = sp["billing_invoice_id"].as_str().unwrap().to_string();
    let (_, inv) = obol.get(&format!("/v1/billing/invoices/{inv_id}")).await;
    assert_eq!(inv["status"], "draft");
    assert_eq!(inv["amount_due"]["amount"], 5000, "{inv}");
    assert_eq!(inv["scheduled_payment_id"], id.as_str());
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(inv["automatically_finalizes_at"].as_str().unwrap())
            .unwrap()
            .timestamp(),
        date
    );

    // The day before: nothing charged.
    advance(&obol, &clock, date - 86_400).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let (_, before) = obol.get(&format!("/v1/scheduled-payments/{id}")).await;
    assert_eq!(before["status"], "draft", "{before}");
    assert!(before["payment_id"].is_null());
    let (_, inv) = obol.get(&format!("/v1/billing/invoices/{inv_id}")).await;
    assert_eq!(inv["status"], "draft", "{inv}");
    assert!(inv["payment_id"].is_null() && inv["stripe_payment_intent_id"].is_null());
    assert_eq!(inv["amount_paid"]["amount"], 0);

    // The date: finalized and charged from the default card.
    advance(&obol, &clock, date + 3600).await;
    let paid = within(&obol, &format!("/v1/scheduled-payments/{id}"), 20, |b| {
        b["status"] == "paid" && b["payment_id"].is_string()
    })
    .await;
    // The intent's own success event may come after the invoice's.
    let pay = within(
        &obol,
        &format!("/v1/payments/{}", paid["payment_id"].as_str().unwrap()),
        20,
        |p| p["status"] == "completed",
    )
    .await;
    assert_eq!(pay["amount"], 5000);
    assert_eq!(pay["billing_invoice_id"], inv_id.as_str());
    assert!(pay["subscription_id"].is_null());
    let (_, inv) = obol.get(&format!("/v1/billing/invoices/{inv_id}")).await;
    assert_eq!(inv["status"], "paid");
    assert_eq!(inv["amount_paid"]["amount"], 5000);
    let (_, list) = obol
        .get(&format!("/v1/scheduled-payments?customer={member}"))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

async fn a_scheduled_payment_needs_a_future_date_and_a_card(backend: Backend) {
    let obol = Obol::start(backend).await;
    let bare = obol.create_customer("no-card-pledge").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, e) = obol
        .post(
            "/v1/scheduled-payments",
            json!({"customer": bare, "amount": 5000, "currency": "eur", "date": "2020-01-01"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("date_not_in_future")),
        "{e}"
    );
    let (s, e) = obol
        .post(
            "/v1/scheduled-payments",
            json!({"customer": bare, "amount": 5000, "currency": "eur", "date": "2099-01-01"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("no_default_card")),
        "{e}"
    );
    let (s, e) = obol
        .post(
            "/v1/scheduled-payments",
            json!({"customer": bare, "amount": 5000, "currency": "eur", "date": "next week"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{e}"
    );
    let (s, e) = obol
        .get("/v1/scheduled-payments/spay_01jd8x3qzv5m2c7e9f0g1h2j3k")
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("scheduled_payment_not_found"))
    );
}
