//! Invoices paid through a public link, over HTTP against the sandbox:
//! fee passthrough from the default and from an integration rate, every
//! kind of currency, one live intent per invoice, what is not payable,
//! declines, lost webhooks, stale intents and unattributable events.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{status_json, Backend, Obol};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    a_usd_invoice_passes_the_default_fee_and_is_paid_by_webhook,
    an_integration_rate_sets_the_fee_and_deleting_it_falls_back,
    jpy_and_kwd_invoices_are_paid_in_their_minor_units,
    an_abandoned_attempt_is_replaced_and_the_invoice_paid_once,
    drafts_void_and_paid_invoices_are_not_payable,
    a_declined_card_then_a_good_card_pays_the_invoice,
    a_lost_webhook_is_recovered_by_reconciliation,
    a_stale_intent_is_canceled_by_the_sweep,
    an_event_for_an_unknown_invoice_is_kept_as_ignored,
    only_the_owner_may_pay_with_a_credential,
);

pub async fn customer(obol: &Obol) -> String {
    let (s, c) = obol
        .post(
            "/v1/customers",
            json!({"external_id": format!("w-{}", rand_suffix()), "email": "ana@example.com", "name": "Ana Lopez"}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    c["id"].as_str().unwrap().to_string()
}

fn rand_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A processed invoice: (invoice, token).
pub async fn issued(obol: &Obol, body: Value) -> (Value, String) {
    let (s, draft) = obol.post("/v1/invoices", body).await;
    assert_eq!(s, 201, "{draft}");
    assert_eq!(draft["status"], "draft");
    assert!(draft["payment_url"].as_str().is_some(), "{draft}");
    let id = draft["id"].as_str().unwrap();
    let (s, processed) = obol
        .post(&format!("/v1/invoices/{id}/process"), json!({}))
        .await;
    assert_eq!(s, 200, "{processed}");
    assert_eq!(processed["status"], "processed");
    let url = processed["payment_url"].as_str().unwrap().to_string();
    let token = url
        .strip_prefix(&format!("{}/pay/invoices/", obol.base_url))
        .unwrap_or_else(|| panic!("payment_url {url} is under {}", obol.base_url))
        .to_string();
    assert_eq!(token.len(), 43, "{token}");
    (processed, token)
}

/// `POST /v1/public/invoices/{token}/payment-intent` with no credential.
pub async fn pay_intent(obol: &Obol, token: &str) -> (u16, Value) {
    let r = obol
        .http
        .post(obol.url(&format!("/v1/public/invoices/{token}/payment-intent")))
        .send()
        .await
        .unwrap();
    status_json(r).await
}

/// The page's side: Stripe.js confirms the intent with a card.
pub async fn confirm(obol: &Obol, pi: &str, card: &str) -> Value {
    let base = sandbox(obol).await;
    stripe_post(
        &base,
        &format!("/v1/payment_intents/{pi}/confirm"),
        &[
            ("payment_method", card),
            ("return_url", "https://shop.example.com/done"),
        ],
    )
    .await
}

pub async fn paid(obol: &Obol, id: &str) -> Value {
    eventually(obol, &format!("/v1/invoices/{id}"), |i| {
        i["status"] == "paid"
    })
    .await
}

fn notes(invoice: &Value) -> Vec<String> {
    invoice["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["note"].as_str().map(str::to_string))
        .collect()
}

async fn a_usd_invoice_passes_the_default_fee_and_is_paid_by_webhook(backend: Backend) {
    let obol = Obol::start(backend).await;
    let cus = customer(&obol).await;
    let (invoice, token) = issued(
        &obol,
        json!({"customer_id": cus, "currency": "usd", "due_date": "2026-12-31", "number": "W-2026-001",
               "memo": "Thank you for attending.", "pass_fees": true,
               "line_items": [{"description": "Pottery workshop", "unit_amount": 4500, "quantity": 2},
                              {"description": "Materials", "unit_amount": 1000, "quantity": 1}]}),
    )
    .await;
    // The default rate, 2.9 % + 30 ¢, grossed up: 100.00 → 103.30.
    assert_eq!(invoice["subtotal"], 10000);
    assert_eq!(
        invoice["fee"],
        json!({"amount": 330, "percent_bps": 290, "fixed": 30, "source": "default"})
    );
    assert_eq!(invoice["total"], 10330);
    assert_eq!(invoice["number"], "W-2026-001");
    let id = invoice["id"].as_str().unwrap();

    let (s, intent) = pay_intent(&obol, &token).await;
    assert_eq!(s, 201, "{intent}");
    assert_eq!(
        (intent["amount"].as_i64(), intent["currency"].as_str()),
        (Some(10330), Some("usd"))
    );
    assert!(intent["client_secret"]
        .as_str()
        .unwrap()
        .starts_with(intent["id"].as_str().unwrap()));
    // Asking again answers the same live intent.
    let (s, again) = pay_intent(&obol, &token).await;
    assert_eq!(
        (s, &again["id"], &again["created"]),
        (200, &intent["id"], &json!(false))
    );

    let pi = intent["id"].as_str().unwrap();
    let confirmed = confirm(&obol, pi, "pm_card_visa").await;
    assert_eq!(confirmed["status"], "succeeded", "{confirmed}");
    let invoice = paid(&obol, id).await;
    assert_eq!(invoice["amount_paid"], 10330);
    assert_eq!(invoice["amount_due"], 0);
    let attempts = invoice["payment_attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status"], "succeeded");
    assert_eq!(attempts[0]["fee_amount"], 330);
    let paid_entry = invoice["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "paid")
        .unwrap();
    assert_eq!(paid_entry["cause"], "webhook");
    assert!(paid_entry["note"]
        .as_str()
        .unwrap()
        .contains("fee line 330"));
    // The payment is in the ledger, for the whole total.
    let (_, payments) = obol.get("/v1/payments").await;
    let payment = payments["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["stripe_payment_intent_id"] == pi)
        .unwrap();
    assert_eq!(
        (payment["amount"].as_i64(), payment["status"].as_str()),
        (Some(10330), Some("completed"))
    );
    // The public view and the list agree.
    let (s, public) = obol.get(&format!("/v1/public/invoices/{token}")).await;
    assert_eq!(
        (s, public["status"].as_str()),
        (200, Some("paid")),
        "{public}"
    );
    assert_eq!(public["payable"], false);
    let (_, list) = obol.get("/v1/invoices?status=paid").await;
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == id));
    let (_, drafts) = obol
        .get(&format!("/v1/invoices?status=draft&customer={cus}"))
        .await;
    assert_eq!(drafts["data"], json!([]));
}

async fn an_integration_rate_sets_the_fee_and_deleting_it_falls_back(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (s, fees) = obol.get("/v1/fee-settings").await;
    assert_eq!(s, 200);
    assert_eq!(fees["source"], "default");
    assert_eq!(
        (fees["percent_bps"].as_i64(), &fees["fixed"]),
        (Some(290), &json!({"usd": 30}))
    );
    let r = obol
        .http
        .put(obol.url("/v1/fee-settings"))
        .bearer_auth(&obol.api_key)
        .json(&json!({"percent_bps": 150, "fixed": {"USD": 10}}))
        .send()
        .await
        .unwrap();
    let (s, set) = status_json(r).await;
    assert_eq!(s, 200, "{set}");
    assert_eq!(set["source"], "integration");
    assert_eq!(set["fixed"], json!({"usd": 10}));
    for bad in [
        json!({"percent_bps": 5001}),
        json!({"percent_bps": 100, "fixed": {"xyz": 1}}),
        json!({"percent_bps": 100, "fixed": {"usd": -1}}),
    ] {
        let r = obol
            .http
            .put(obol.url("/v1/fee-settings"))
            .bearer_auth(&obol.api_key)
            .json(&bad)
            .send()
            .await
            .unwrap();
        let (s, e) = status_json(r).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (422, Some("invalid_fee_settings")),
            "{bad}: {e}"
        );
    }

    let cus = customer(&obol).await;
    // 1.5 % + 10 ¢ on 50.00 USD: 50.86 (the fee on 50.86 is 0.76 + 0.10).
    let (invoice, token) = issued(
        &obol,
        json!({"customer_id": cus, "currency": "usd", "due_date": "2027-01-15", "pass_fees": true,
               "line_items": [{"description": "Consultation", "unit_amount": 5000, "quantity": 1}]}),
    )
    .await;
    assert_eq!(
        invoice["fee"],
        json!({"amount": 86, "percent_bps": 150, "fixed": 10, "source": "integration"})
    );
    assert_eq!(invoice["total"], 5086);
    let (_, intent) = pay_intent(&obol, &token).await;
    assert_eq!(
        intent["amount"], 5086,
        "the intent charges the invoice's total"
    );
    confirm(&obol, intent["id"].as_str().unwrap(), "pm_card_visa").await;
    let done = paid(&obol, invoice["id"].as_str().unwrap()).await;
    assert_eq!(done["amount_paid"], 5086);

    // Back to the default; an invoice already processed keeps its fee.
    let r = obol
        .http
        .delete(obol.url("/v1/fee-settings"))
        .bearer_auth(&obol.api_key)
        .send()
        .await
        .unwrap();
    let (s, back) = status_json(r).await;
    assert_eq!(
        (s, back["source"].as_str()),
        (200, Some("default")),
        "{back}"
    );
    let (_, again) = obol
        .get(&format!("/v1/invoices/{}", invoice["id"].as_str().unwrap()))
        .await;
    assert_eq!(again["fee"]["source"], "integration");
    // Without pass_fees there is no fee line.
    let (s, plain) = obol
        .post(
            "/v1/invoices",
            json!({"customer_id": cus, "currency": "eur", "due_date": "2027-01-15",
                   "line_items": [{"description": "Consultation", "unit_amount": 5000, "quantity": 1}]}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        (plain["fee"].clone(), plain["total"].as_i64()),
        (Value::Null, Some(5000))
    );
    // A customer token may not set rates.
    let token = obol.customer_token(&cus, 300).await;
    let (s, e) = obol.get_as("/v1/fee-settings", &token).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (401, Some("secret_key_required"))
    );
}

/// Zero-decimal and three-decimal currencies keep Stripe's minor units
/// end to end; KRW, EUR and BHD fees are checked on the invoice.
async fn jpy_and_kwd_invoices_are_paid_in_their_minor_units(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_FEES__DEFAULT__PERCENT_BPS", "360")
        .env("OBOL_FEES__DEFAULT__FIXED__JPY", "40")
        .env("OBOL_FEES__DEFAULT__FIXED__KWD", "100")
        .start()
        .await;
    let cus = customer(&obol).await;
    let line =
        |amount: i64| json!([{"description": "Workshop", "unit_amount": amount, "quantity": 1}]);
    // ¥10,000 at 3.6 % + ¥40: T₀ = ceil(10040 / 0.964) = 10415; the fee on
    // 10,415 is 374.94 → 375 + 40 = 415.
    let (jpy, jpy_token) = issued(
        &obol,
        json!({"customer_id": cus, "currency": "jpy", "due_date": "2027-01-31", "pass_fees": true, "line_items": line(10000)}),
    )
    .await;
    assert_eq!(jpy["fee"]["amount"], 415, "{jpy}");
    assert_eq!(jpy["total"], 10415);
    // 10.000 KWD (10000 fils) at 3.6 % + 0.100: 10477.17… → 10478, rounded
    // up to a multiple of 10 for Stripe: 10480.
    let (kwd, kwd_token) = issued(
        &obol,
        json!({"customer_id": cus, "currency": "kwd", "due_date": "2027-01-31", "pass_fees": true, "line_items": line(10000)}),
    )
    .await;
    assert_eq!(kwd["total"], 10480, "{kwd}");
    assert_eq!(kwd["fee"]["amount"], 480);
    assert_eq!(kwd["total"].as_i64().unwrap() % 10, 0);
    for (invoice, token, amount, currency) in [
        (&jpy, &jpy_token, 10415, "jpy"),
        (&kwd, &kwd_token, 10480, "kwd"),
    ] {
        let (s, intent) = pay_intent(&obol, token).await;
        assert_eq!(s, 201, "{intent}");
        assert_eq!(
            (intent["amount"].as_i64(), intent["currency"].as_str()),
            (Some(amount), Some(currency))
        );
        let c = confirm(&obol, intent["id"].as_str().unwrap(), "pm_card_visa").await;
        assert_eq!(
            (c["amount"].as_i64(), c["currency"].as_str()),
            (Some(amount), Some(currency)),
            "Stripe was asked for the same minor units"
        );
        let done = paid(&obol, invoice["id"].as_str().unwrap()).await;
        assert_eq!(done["amount_paid"], amount);
    }
    // KRW (zero-decimal), EUR and BHD (three-decimal) fee lines.
    for (currency, unit, fee, total) in [
        ("krw", 50_000, 1_867, 51_867),
        ("eur", 2_500, 93, 2_593),
        ("bhd", 20_000, 750, 20_750),
    ] {
        let (s, inv) = obol
            .post(
                "/v1/invoices",
                json!({"customer_id": cus, "currency": currency, "due_date": "2027-01-31", "pass_fees": true, "line_items": line(unit)}),
            )
            .await;
        assert_eq!(s, 201, "{currency}: {inv}");
        assert_eq!(
            (inv["fee"]["amount"].as_i64(), inv["total"].as_i64()),
            (Some(fee), Some(total)),
            "{currency}: {inv}"
        );
    }
    // A three-decimal amount that is not a multiple of 10 is refused.
    let (s, e) = obol
        .post(
            "/v1/invoices",
            json!({"customer_id": cus, "currency": "kwd", "due_date": "2027-01-31", "line_items": line(10005)}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("amount_precision")),
        "{e}"
    );
    // Below Stripe's minimum charge.
    let (s, e) = obol
        .post(
            "/v1/invoices",
            json!({"customer_id": cus, "currency": "usd", "due_date": "2027-01-31", "line_items": line(20)}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("amount_too_small")),
        "{e}"
    );
}

async fn an_abandoned_attempt_is_replaced_and_the_invoice_paid_once(backend: Backend) {
    let obol = Obol::start(backend).await;
    let cus = customer(&obol).await;
    let (invoice, token) = issued(
        &obol,
        json!({"customer_id": cus, "currency": "eur", "due_date": "2027-01-31",
               "line_items": [{"description": "Ceramics course", "unit_amount": 12000, "quantity": 1}]}),
    )
    .await;
    let id = invoice["id"].as_str().unwrap();
    let (_, first) = pay_intent(&obol, &token).await;
    let first_pi = first["id"].as_str().unwrap().to_string();
    // The customer starts 3-D Secure and walks away.
    let c = confirm(&obol, &first_pi, "pm_card_authenticationRequired").await;
    assert_eq!(c["status"], "requires_action", "{c}");
    // Coming back, a new intent replaces the one stuck at the bank.
    let (s, second) = pay_intent(&obol, &token).await;
    assert_eq!(s, 201, "{second}");
    let second_pi = second["id"].as_str().unwrap().to_string();
    assert_ne!(first_pi, second_pi);
    let base = sandbox(&obol).await;
    let old: Value = reqwest::Client::new()
        .get(format!("{base}/v1/payment_intents/{first_pi}"))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        old["status"], "canceled",
        "the old intent is canceled at Stripe: {old}"
    );
    let c = confirm(&obol, &second_pi, "pm_card_visa").await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let done = paid(&obol, id).await;
    assert_eq!(done["amount_paid"], 12000, "paid once: {done}");
    let attempts = done["payment_attempts"].as_array().unwrap();
    let statuses: Vec<&str> = attempts
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["void", "succeeded"], "{done}");
    assert!(
        notes(&done).iter().any(|n| n.contains(&format!(
            "replaced payment intent {first_pi} (requires_action)"
        ))),
        "the replacement is on the timeline: {done}"
    );
    // One captured payment for this invoice in the ledger.
    let (_, payments) = obol.get("/v1/payments").await;
    let captured: Vec<&Value> = payments["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "completed")
        .collect();
    assert_eq!(captured.len(), 1, "{payments}");
    assert_eq!(captured[0]["stripe_payment_intent_id"], second_pi.as_str());
}

async fn drafts_void_and_paid_invoices_are_not_payable(backend: Backend) {
    let obol = Obol::start(backend).await;
    let cus = customer(&obol).await;
    let body = json!({"customer_id": cus, "currency": "usd", "due_date": "2027-01-31",
                      "line_items": [{"description": "Lesson", "unit_amount": 3000, "quantity": 1}]});
    // A draft's link opens it but cannot pay it.
    let tok = |v: &Value| {
        v["payment_url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    };
    let (_, draft) = obol.post("/v1/invoices", body.clone()).await;
    let draft_id = draft["id"].as_str().unwrap();
    let t0 = tok(&draft);
    let (s, e) = pay_intent(&obol, &t0).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("invoice_not_payable")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("draft"),
        "{e}"
    );
    let (s, public) = obol.get(&format!("/v1/public/invoices/{t0}")).await;
    assert_eq!(
        (s, public["status"].as_str(), public["payable"].as_bool()),
        (200, Some("draft"), Some(false))
    );
    let page = obol
        .http
        .get(obol.url(&format!("/pay/invoices/{t0}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"data-state="draft""#) && html.contains("has not been issued yet"),
        "{html}"
    );
    assert!(
        !html.contains("stripe-sandbox.js"),
        "a draft's page loads no Stripe.js"
    );
    // Processing (twice: a lost answer) mints more links; all of them
    // open the same invoice and its one live intent.
    let (_, p1) = obol
        .post(&format!("/v1/invoices/{draft_id}/process"), json!({}))
        .await;
    let t1 = tok(&p1);
    let (_, p2) = obol
        .post(&format!("/v1/invoices/{draft_id}/process"), json!({}))
        .await;
    let t2 = tok(&p2);
    assert_ne!(t1, t2);
    let (s, first) = pay_intent(&obol, &t1).await;
    assert_eq!(s, 201, "{first}");
    for t in [&t0, &t2] {
        let (s, same) = pay_intent(&obol, t).await;
        assert_eq!((s, &same["id"]), (200, &first["id"]), "{same}");
    }

    // Void: the live intent is canceled, and the link says why it cannot pay.
    let (s, void) = obol
        .post(&format!("/v1/invoices/{draft_id}/void"), json!({}))
        .await;
    assert_eq!((s, void["status"].as_str()), (200, Some("void")), "{void}");
    let (s, e) = pay_intent(&obol, &t2).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("invoice_not_payable")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("voided"),
        "{e}"
    );
    let (_, after) = obol.get(&format!("/v1/invoices/{draft_id}")).await;
    assert_eq!(after["payment_attempts"][0]["status"], "void", "{after}");
    let (s, e) = obol
        .post(&format!("/v1/invoices/{draft_id}/process"), json!({}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("invoice_status_conflict")),
        "{e}"
    );

    // Paid: not payable again, and not voidable.
    let (invoice, token) = issued(&obol, body.clone()).await;
    let (_, intent) = pay_intent(&obol, &token).await;
    confirm(&obol, intent["id"].as_str().unwrap(), "pm_card_visa").await;
    let id = invoice["id"].as_str().unwrap();
    paid(&obol, id).await;
    let (s, e) = pay_intent(&obol, &token).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("invoice_not_payable")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already paid"),
        "{e}"
    );
    let (s, e) = obol
        .post(&format!("/v1/invoices/{id}/void"), json!({}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("invoice_status_conflict")),
        "{e}"
    );
    assert_eq!(
        e["error"]["message"],
        "the invoice is paid; it cannot be voided"
    );

    // Unknown and malformed tokens are the same 404.
    for t in ["nope", &"A".repeat(43)] {
        let (s, e) = pay_intent(&obol, t).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (404, Some("invoice_not_found")),
            "{e}"
        );
    }
    // Another account's or an unknown id is 404 too.
    let (s, e) = obol
        .get("/v1/invoices/inv_01jd8x3qzv5m2c7e9f0g1h2j3k")
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("invoice_not_found"))
    );
    let (s, e) = obol
        .post("/v1/invoices", json!({"customer_id": cus, "currency": "usd", "due_date": "2027-01-31", "number": invoice["number"],
                                     "line_items": [{"description": "x", "unit_amount": 3000, "quantity": 1}]}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("invoice_number_taken")),
        "{e}"
    );
    let (s, e) = obol
        .post("/v1/invoices", json!({"customer_id": cus, "currency": "usd", "due_date": "31/01/2027",
                                     "line_items": [{"description": "x", "unit_amount": 3000, "quantity": 1}]}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("field_invalid")),
        "{e}"
    );
}

async fn a_declined_card_then_a_good_card_pays_the_invoice(backend: Backend) {
    let obol = Obol::start(backend).await;
    let cus = customer(&obol).await;
    let (invoice, token) = issued(
        &obol,
        json!({"customer_id": cus, "currency": "usd", "due_date": "2027-01-31", "pass_fees": true,
               "line_items": [{"description": "Lesson", "unit_amount": 3000, "quantity": 1}]}),
    )
    .await;
    let id = invoice["id"].as_str().unwrap();
    let (_, intent) = pay_intent(&obol, &token).await;
    let pi = intent["id"].as_str().unwrap();
    let declined = confirm(&obol, pi, "pm_card_chargeDeclinedExpiredCard").await;
    assert!(declined.get("error").is_some(), "{declined}");
    // Recorded, and still payable on the same intent.
    let after = eventually(&obol, &format!("/v1/invoices/{id}"), |i| {
        i["timeline"].as_array().is_some_and(|t| {
            t.iter()
                .any(|e| e["note"].as_str().is_some_and(|n| n.contains("declined")))
        })
    })
    .await;
    assert_eq!(after["status"], "processed");
    let (s, again) = pay_intent(&obol, &token).await;
    assert_eq!((s, again["id"].as_str()), (200, Some(pi)), "{again}");
    let good = confirm(&obol, pi, "pm_card_visa").await;
    assert_eq!(good["status"], "succeeded", "{good}");
    let done = paid(&obol, id).await;
    assert_eq!(done["amount_paid"], invoice["total"]);
    assert_eq!(done["payment_attempts"].as_array().unwrap().len(), 1);
}

async fn a_lost_webhook_is_recovered_by_reconciliation(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_SANDBOX__CHAOS", "seed=5,drop=1")
        .env("OBOL_RECONCILE__INTERVAL_SECONDS", "0")
        .start()
        .await;
    let cus = customer(&obol).await;
    let (invoice, token) = issued(
        &obol,
        json!({"customer_id": cus, "currency": "gbp", "due_date": "2027-01-31",
               "line_items": [{"description": "Lesson", "unit_amount": 3000, "quantity": 1}]}),
    )
    .await;
    let id = invoice["id"].as_str().unwrap();
    let (_, intent) = pay_intent(&obol, &token).await;
    confirm(&obol, intent["id"].as_str().unwrap(), "pm_card_visa").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, still) = obol.get(&format!("/v1/invoices/{id}")).await;
    assert_eq!(
        still["status"], "processed",
        "every delivery was dropped: {still}"
    );
    let (s, report) = obol.post("/v1/reconciliations", json!({})).await;
    assert_eq!(s, 200, "{report}");
    let done = paid(&obol, id).await;
    let entry = done["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "paid")
        .unwrap()
        .clone();
    assert_eq!(entry["cause"], "reconcile", "{done}");
}

async fn a_stale_intent_is_canceled_by_the_sweep(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_INVOICES__STALE_INTENT_SECONDS", "60")
        .env("OBOL_INVOICES__SWEEP_INTERVAL_SECONDS", "1")
        .start()
        .await;
    let cus = customer(&obol).await;
    let (invoice, token) = issued(
        &obol,
        json!({"customer_id": cus, "currency": "usd", "due_date": "2027-01-31",
               "line_items": [{"description": "Lesson", "unit_amount": 3000, "quantity": 1}]}),
    )
    .await;
    let id = invoice["id"].as_str().unwrap();
    let (_, intent) = pay_intent(&obol, &token).await;
    let pi = intent["id"].as_str().unwrap().to_string();
    // Age the attempt past the threshold in the database: the sweep judges
    // by the attempt's age, and a minute is too long to wait in a test.
    let store = obol.db.store().await;
    age_attempts(&store, id).await;
    let done = eventually(&obol, &format!("/v1/invoices/{id}"), |i| {
        i["payment_attempts"][0]["status"] == "void"
    })
    .await;
    assert_eq!(done["status"], "processed", "payable again: {done}");
    assert_eq!(done["payment_attempts"][0]["void_reason"], "stale");
    assert!(
        notes(&done)
            .iter()
            .any(|n| n.contains(&pi) && n.contains("canceled by the stale-intent sweep")),
        "{done}"
    );
    let (s, fresh) = pay_intent(&obol, &token).await;
    assert_eq!(s, 201, "{fresh}");
    assert_ne!(fresh["id"].as_str(), Some(pi.as_str()));
}

async fn age_attempts(store: &obol::storage::Store, invoice_id: &str) {
    let old = chrono::Utc::now() - chrono::Duration::hours(2);
    let mut h = store.acquire().await.unwrap();
    match h.conn() {
        obol::storage::Conn::Sqlite(c) => {
            sqlx::query("UPDATE invoice_attempts SET created_at = $1 WHERE invoice_id = $2")
                .bind(old)
                .bind(invoice_id)
                .execute(&mut *c)
                .await
                .unwrap();
        }
        obol::storage::Conn::Postgres(c) => {
            sqlx::query("UPDATE invoice_attempts SET created_at = $1 WHERE invoice_id = $2")
                .bind(old)
                .bind(invoice_id)
                .execute(&mut *c)
                .await
                .unwrap();
        }
    }
}

async fn an_event_for_an_unknown_invoice_is_kept_as_ignored(backend: Backend) {
    let obol = Obol::start(backend).await;
    let base = sandbox(&obol).await;
    let pi = stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "2000"),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
            (
                "metadata[obol_invoice_id]",
                "inv_01jd8x3qzv5m2c7e9f0g1h2j3k",
            ),
        ],
    )
    .await;
    let pi_id = pi["id"].as_str().unwrap().to_string();
    let events = eventually(&obol, "/v1/webhook-events?status=ignored", |e| {
        e["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|e| e["type"] == "payment_intent.succeeded"))
    })
    .await;
    let ignored = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "payment_intent.succeeded")
        .unwrap()
        .clone();
    let reason = ignored["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.contains("inv_01jd8x3qzv5m2c7e9f0g1h2j3k") && reason.contains("does not know"),
        "{ignored}"
    );
    let (_, payments) = obol.get("/v1/payments").await;
    assert!(
        !payments["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["stripe_payment_intent_id"] == pi_id.as_str()),
        "nothing was attributed: {payments}"
    );
}

async fn only_the_owner_may_pay_with_a_credential(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ana = customer(&obol).await;
    let bob = customer(&obol).await;
    let (_, token) = issued(
        &obol,
        json!({"customer_id": ana, "currency": "usd", "due_date": "2027-01-31",
               "line_items": [{"description": "Lesson", "unit_amount": 3000, "quantity": 1}]}),
    )
    .await;
    let post = |bearer: String| {
        let req = obol
            .http
            .post(obol.url(&format!("/v1/public/invoices/{token}/payment-intent")))
            .bearer_auth(bearer);
        async move { status_json(req.send().await.unwrap()).await }
    };
    let bob_token = obol.customer_token(&bob, 300).await;
    let (s, e) = post(bob_token).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("invoice_not_found")),
        "someone else's invoice: {e}"
    );
    let (s, e) = post("obol_sk_wrong".into()).await;
    assert_eq!(s, 401, "{e}");
    let ana_token = obol.customer_token(&ana, 300).await;
    let (s, first) = post(ana_token).await;
    assert_eq!(s, 201, "{first}");
    let (s, again) = post(obol.api_key.clone()).await;
    assert_eq!((s, &again["id"]), (200, &first["id"]), "{again}");
}

/// Waits until `done` holds for `GET path`, polling, at most `secs`.
pub async fn within(obol: &Obol, path: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, body) = obol.get(path).await;
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on {path}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
