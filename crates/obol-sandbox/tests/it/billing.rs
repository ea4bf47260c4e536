//! Products, prices, test clocks, subscriptions, invoices, balance
//! transactions and payouts.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn products_and_prices_with_inline_product_data() {
    let sb = spawn().await;
    let prod = sb
        .post("/v1/products", &[("name", "Membership")])
        .await
        .ok();
    let prod_id = prod["id"].as_str().unwrap();
    assert!(prod_id.starts_with("prod_"));
    let price = sb
        .post(
            "/v1/prices",
            &[
                ("currency", "eur"),
                ("unit_amount", "1500"),
                ("product", prod_id),
                ("recurring[interval]", "month"),
            ],
        )
        .await
        .ok();
    assert_eq!(price["type"], "recurring");
    assert_eq!(price["recurring"]["interval_count"], 1);
    assert_eq!(price["unit_amount_decimal"], "1500");
    let inline = sb
        .post(
            "/v1/prices",
            &[
                ("currency", "eur"),
                ("unit_amount", "700"),
                ("product_data[name]", "Gift"),
            ],
        )
        .await
        .ok();
    assert_eq!(inline["type"], "one_time");
    let gift = sb
        .get(&format!(
            "/v1/products/{}",
            inline["product"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(gift["name"], "Gift");
    let list = sb.get(&format!("/v1/prices?product={prod_id}")).await.ok();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let bad = sb
        .post(
            "/v1/prices",
            &[
                ("currency", "eur"),
                ("unit_amount", "700"),
                ("product", prod_id),
                ("recurring[interval]", "fortnight"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.err()["param"], "recurring[interval]");
    let missing = sb
        .post("/v1/prices", &[("currency", "eur"), ("unit_amount", "700")])
        .await;
    assert_eq!(missing.err()["param"], "product");
    let _: Value = sb.get("/v1/products?active=true").await.ok();
}

const T0: i64 = 1_767_225_600; // 2026-01-01 00:00 UTC

async fn clock(sb: &TestSandbox) -> String {
    sb.post(
        "/v1/test_helpers/test_clocks",
        &[("frozen_time", &T0.to_string())],
    )
    .await
    .ok()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn advance(sb: &TestSandbox, clock: &str, to: i64) {
    let c = sb
        .post(
            &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
            &[("frozen_time", &to.to_string())],
        )
        .await
        .ok();
    assert_eq!(c["status"], "advancing");
    eventually("clock ready", || async {
        let c = sb
            .get(&format!("/v1/test_helpers/test_clocks/{clock}"))
            .await
            .ok();
        (c["status"] == "ready").then_some(())
    })
    .await;
}

async fn customer_with(sb: &TestSandbox, clock: &str, pm: &str) -> String {
    let c = sb
        .post(
            "/v1/customers",
            &[
                ("test_clock", clock),
                ("payment_method", pm),
                ("invoice_settings[default_payment_method]", pm),
            ],
        )
        .await
        .ok();
    let clock = sb
        .get(&format!("/v1/test_helpers/test_clocks/{clock}"))
        .await
        .ok();
    assert_eq!(c["created"], clock["frozen_time"]);
    c["id"].as_str().unwrap().to_string()
}

async fn monthly(sb: &TestSandbox, cus: &str, extra: &[(&str, &str)]) -> crate::helpers::Resp {
    let mut form = vec![
        ("customer", cus),
        ("items[0][price_data][currency]", "eur"),
        ("items[0][price_data][product_data][name]", "Monthly gift"),
        ("items[0][price_data][unit_amount]", "1000"),
        ("items[0][price_data][recurring][interval]", "month"),
        ("expand[]", "latest_invoice.payment_intent"),
    ];
    form.extend_from_slice(extra);
    sb.post("/v1/subscriptions", &form).await
}

fn types(events: &[Value]) -> Vec<String> {
    let mut t: Vec<String> = events
        .iter()
        .rev()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    t.retain(|x| {
        !x.starts_with("test_helpers")
            && !x.starts_with("product")
            && !x.starts_with("payment_method")
            && x != "customer.created"
    });
    t
}

async fn all_events(sb: &TestSandbox) -> Vec<Value> {
    sb.get("/v1/events?limit=100").await.ok()["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn monthly_subscription_renews_three_times_on_a_test_clock() {
    let sb = spawn().await;
    let clk = clock(&sb).await;
    let cus = customer_with(&sb, &clk, "pm_card_visa").await;
    let sub = monthly(&sb, &cus, &[]).await.ok();
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["current_period_start"], T0);
    assert_eq!(sub["current_period_end"], T0 + 31 * 86_400);
    assert_eq!(sub["latest_invoice"]["status"], "paid");
    assert_eq!(
        sub["latest_invoice"]["payment_intent"]["status"],
        "succeeded"
    );
    assert_eq!(
        types(&all_events(&sb).await),
        [
            "customer.subscription.created",
            "invoice.created",
            "payment_intent.created",
            "invoice.finalized",
            "charge.succeeded",
            "payment_intent.succeeded",
            "invoice.payment_succeeded",
            "invoice.paid",
            "customer.subscription.updated",
        ]
    );
    let sub_id = sub["id"].as_str().unwrap();
    // Jan 1 → Apr 2: renewals on Feb 1, Mar 1 and Apr 1.
    advance(&sb, &clk, T0 + 91 * 86_400).await;
    let invs = sb
        .get(&format!("/v1/invoices?subscription={sub_id}&status=paid"))
        .await
        .ok();
    let invs = invs["data"].as_array().unwrap();
    assert_eq!(invs.len(), 4);
    assert!(invs.iter().all(|i| i["amount_paid"] == 1000));
    let sub = sb.get(&format!("/v1/subscriptions/{sub_id}")).await.ok();
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["current_period_start"], T0 + 90 * 86_400);
    assert_eq!(invs[0]["created"], T0 + 90 * 86_400);
    assert_eq!(sb.events_of("invoice.paid").await.len(), 4);
}

#[tokio::test]
async fn a_renewal_that_declines_goes_past_due_then_cancels_after_retries() {
    let sb = spawn().await;
    let clk = clock(&sb).await;
    let cus = customer_with(&sb, &clk, "pm_card_chargeCustomerFail").await;
    // The first payment declines: incomplete, and 23 hours later expired.
    let sub = monthly(&sb, &cus, &[]).await.ok();
    assert_eq!(sub["status"], "incomplete");
    assert_eq!(sub["latest_invoice"]["status"], "open");
    assert_eq!(sub["latest_invoice"]["attempt_count"], 1);
    advance(&sb, &clk, T0 + 86_400).await;
    let s1 = sb
        .get(&format!(
            "/v1/subscriptions/{}",
            sub["id"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(s1["status"], "incomplete_expired");

    // A good card first, then the card starts declining.
    let cus = customer_with(&sb, &clk, "pm_card_visa").await;
    let sub = monthly(&sb, &cus, &[]).await.ok();
    assert_eq!(sub["status"], "active");
    let bad = sb
        .post(
            "/v1/payment_methods/pm_card_chargeCustomerFail/attach",
            &[("customer", &cus)],
        )
        .await;
    let bad_id = if bad.status == 200 {
        bad.id()
    } else {
        let pm = sb
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", "4000000000000341"),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2040"),
                ],
            )
            .await
            .ok();
        let id = pm["id"].as_str().unwrap().to_string();
        sb.post(
            &format!("/v1/payment_methods/{id}/attach"),
            &[("customer", &cus)],
        )
        .await
        .ok();
        id
    };
    sb.post(
        &format!("/v1/customers/{cus}"),
        &[("invoice_settings[default_payment_method]", &bad_id)],
    )
    .await
    .ok();
    let sub_id = sub["id"].as_str().unwrap();
    advance(&sb, &clk, T0 + 2 * 86_400 + 31 * 86_400).await;
    let s2 = sb.get(&format!("/v1/subscriptions/{sub_id}")).await.ok();
    assert_eq!(s2["status"], "past_due");
    let inv = sb
        .get(&format!(
            "/v1/invoices/{}",
            s2["latest_invoice"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(
        (inv["status"].as_str(), inv["attempt_count"].as_i64()),
        (Some("open"), Some(1))
    );
    assert!(inv["next_payment_attempt"].as_i64().unwrap() > T0 + 32 * 86_400);
    // Three retries (3, 5, 7 days apart), then the subscription is canceled.
    advance(&sb, &clk, T0 + 50 * 86_400).await;
    let s3 = sb.get(&format!("/v1/subscriptions/{sub_id}")).await.ok();
    assert_eq!(s3["status"], "canceled");
    assert_eq!(s3["cancellation_details"]["reason"], "payment_failed");
    let inv = sb
        .get(&format!("/v1/invoices/{}", inv["id"].as_str().unwrap()))
        .await
        .ok();
    assert_eq!(inv["attempt_count"], 4);
    assert!(inv["next_payment_attempt"].is_null());
    assert_eq!(sb.events_of("customer.subscription.deleted").await.len(), 1);
}

#[tokio::test]
async fn three_d_secure_renewal_requires_action_and_trial_ends_active() {
    let sb = spawn().await;
    let clk = clock(&sb).await;
    let cus = customer_with(&sb, &clk, "pm_card_authenticationRequired").await;
    let sub = monthly(&sb, &cus, &[("trial_period_days", "14")])
        .await
        .ok();
    assert_eq!(sub["status"], "trialing");
    assert_eq!(sub["trial_end"], T0 + 14 * 86_400);
    assert_eq!(sub["latest_invoice"]["amount_due"], 0);
    assert_eq!(sub["latest_invoice"]["status"], "paid");
    advance(&sb, &clk, T0 + 15 * 86_400).await;
    let sub = sb
        .get(&format!(
            "/v1/subscriptions/{}",
            sub["id"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(sub["status"], "past_due");
    assert_eq!(sub["current_period_start"], T0 + 14 * 86_400);
    let inv = sb
        .get(&format!(
            "/v1/invoices/{}?expand[]=payment_intent",
            sub["latest_invoice"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(inv["payment_intent"]["status"], "requires_action");
    assert_eq!(
        sb.events_of("invoice.payment_action_required").await.len(),
        1
    );
    assert_eq!(
        sb.events_of("customer.subscription.trial_will_end")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn an_invoice_for_a_future_date_is_charged_only_when_the_clock_reaches_it() {
    let sb = spawn().await;
    let clk = clock(&sb).await;
    let cus = customer_with(&sb, &clk, "pm_card_visa").await;
    let when = T0 + 10 * 86_400;
    let inv = sb
        .post(
            "/v1/invoices",
            &[
                ("customer", &cus),
                ("auto_advance", "true"),
                ("automatically_finalizes_at", &when.to_string()),
            ],
        )
        .await
        .ok();
    let id = inv["id"].as_str().unwrap();
    sb.post(
        "/v1/invoiceitems",
        &[
            ("customer", &cus),
            ("invoice", id),
            ("amount", "2500"),
            ("currency", "eur"),
        ],
    )
    .await
    .ok();
    advance(&sb, &clk, when - 60).await;
    let inv = sb.get(&format!("/v1/invoices/{id}")).await.ok();
    assert_eq!(
        (inv["status"].as_str(), inv["amount_due"].as_i64()),
        (Some("draft"), Some(2500))
    );
    advance(&sb, &clk, when + 60).await;
    let inv = sb.get(&format!("/v1/invoices/{id}")).await.ok();
    assert_eq!(inv["status"], "paid");
    assert_eq!(inv["status_transitions"]["paid_at"], when);
    assert!(inv["hosted_invoice_url"].as_str().unwrap().contains(id));

    // Manual lifecycle: finalize, void; mark uncollectible then pay.
    let v = sb.post("/v1/invoices", &[("customer", &cus)]).await.ok();
    let vid = v["id"].as_str().unwrap();
    sb.post(
        "/v1/invoiceitems",
        &[
            ("customer", &cus),
            ("invoice", vid),
            ("amount", "900"),
            ("currency", "eur"),
        ],
    )
    .await
    .ok();
    let f = sb
        .post(&format!("/v1/invoices/{vid}/finalize"), &[])
        .await
        .ok();
    assert_eq!(f["status"], "open");
    let again = sb.post(&format!("/v1/invoices/{vid}/finalize"), &[]).await;
    assert_eq!(again.status, 400);
    let u = sb
        .post(&format!("/v1/invoices/{vid}/mark_uncollectible"), &[])
        .await
        .ok();
    assert_eq!(u["status"], "uncollectible");
    let declined = sb
        .post(
            &format!("/v1/invoices/{vid}/pay"),
            &[("payment_method", "pm_card_visa_chargeDeclined")],
        )
        .await;
    assert_eq!(declined.status, 402);
    let paid = sb.post(&format!("/v1/invoices/{vid}/pay"), &[]).await.ok();
    assert_eq!(
        (paid["status"].as_str(), paid["amount_remaining"].as_i64()),
        (Some("paid"), Some(0))
    );
    let w = sb.post("/v1/invoices", &[("customer", &cus)]).await.ok();
    let wid = w["id"].as_str().unwrap();
    sb.post(
        "/v1/invoiceitems",
        &[
            ("customer", &cus),
            ("invoice", wid),
            ("amount", "900"),
            ("currency", "eur"),
        ],
    )
    .await
    .ok();
    sb.post(&format!("/v1/invoices/{wid}/finalize"), &[])
        .await
        .ok();
    let voided = sb.post(&format!("/v1/invoices/{wid}/void"), &[]).await.ok();
    assert_eq!(voided["status"], "void");
    let pi = sb
        .get(&format!(
            "/v1/payment_intents/{}",
            voided["payment_intent"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(pi["cancellation_reason"], "void_invoice");
    let e = sb.post("/v1/invoices", &[("customer", &cus)]).await.ok();
    let empty = sb
        .post(
            &format!("/v1/invoices/{}/finalize", e["id"].as_str().unwrap()),
            &[],
        )
        .await
        .ok();
    assert_eq!(
        empty["status"], "paid",
        "an empty invoice is paid at finalization"
    );
}

#[tokio::test]
async fn a_payout_settles_charges_refunds_and_disputes_that_add_up() {
    let sb = spawn().await;
    let clk = clock(&sb).await;
    let cus = customer_with(&sb, &clk, "pm_card_visa").await;
    let sub = monthly(&sb, &cus, &[]).await.ok();
    let ch = sub["latest_invoice"]["payment_intent"]["latest_charge"]
        .as_str()
        .unwrap()
        .to_string();
    let charge = sb
        .get(&format!("/v1/charges/{ch}?expand[]=balance_transaction"))
        .await
        .ok();
    let bt = &charge["balance_transaction"];
    assert_eq!(
        (
            bt["amount"].as_i64(),
            bt["fee"].as_i64(),
            bt["net"].as_i64()
        ),
        (Some(1000), Some(58), Some(942))
    );
    assert_eq!(bt["available_on"], T0 + 7 * 86_400);
    sb.post("/v1/refunds", &[("charge", &ch), ("amount", "300")])
        .await
        .ok();
    let pm = sb
        .post(
            "/v1/payment_methods/pm_card_createDispute/attach",
            &[("customer", &cus)],
        )
        .await
        .ok();
    let pi = sb
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "2000"),
                ("currency", "eur"),
                ("customer", &cus),
                ("payment_method", pm["id"].as_str().unwrap()),
                ("confirm", "true"),
                ("off_session", "true"),
            ],
        )
        .await
        .ok();
    assert_eq!(pi["status"], "succeeded");
    let big = sb
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "10000"),
                ("currency", "eur"),
                ("customer", &cus),
                (
                    "payment_method",
                    sub["default_payment_method"]
                        .as_str()
                        .unwrap_or(pm_visa(&sb, &cus).await.as_str()),
                ),
                ("confirm", "true"),
                ("off_session", "true"),
            ],
        )
        .await
        .ok();
    assert_eq!(big["created"], T0);
    let pending = sb.get("/v1/balance").await.ok();
    assert!(pending["pending"][0]["amount"].as_i64().unwrap() != 0);
    advance(&sb, &clk, T0 + 9 * 86_400).await;
    let pos = sb.get("/v1/payouts").await.ok();
    let pos = pos["data"].as_array().unwrap();
    assert!(!pos.is_empty());
    let total: i64 = pos.iter().map(|p| p["amount"].as_i64().unwrap()).sum();
    let mut settled = 0;
    for po in pos {
        assert_eq!(po["status"], "paid");
        let txns = sb
            .get(&format!(
                "/v1/balance_transactions?payout={}&limit=100",
                po["id"].as_str().unwrap()
            ))
            .await
            .ok();
        let sum: i64 = txns["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["type"] != "payout")
            .map(|t| t["net"].as_i64().unwrap())
            .sum();
        assert_eq!(sum, po["amount"].as_i64().unwrap());
        settled += sum;
    }
    assert_eq!(total, settled);
    // 942 - 300 (refund) + 1910 - 3500 (dispute and its fee) + 9650 = 8702.
    assert_eq!(total, 8702);
    let all = sb.get("/v1/balance_transactions?limit=100").await.ok();
    let kinds: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"refund") && kinds.contains(&"adjustment") && kinds.contains(&"charge")
    );
    let types = types(&all_events(&sb).await);
    assert!(types.iter().any(|t| t == "payout.paid"), "{types:?}");
}

async fn pm_visa(sb: &TestSandbox, cus: &str) -> String {
    let c = sb.get(&format!("/v1/customers/{cus}")).await.ok();
    c["invoice_settings"]["default_payment_method"]
        .as_str()
        .unwrap()
        .to_string()
}
