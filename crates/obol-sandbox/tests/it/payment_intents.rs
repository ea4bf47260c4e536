use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn automatic_capture_succeeds_with_a_charge() {
    let sb = spawn().await;
    let pi = sb
        .pay(
            "2000",
            "pm_card_visa",
            &[("expand[]", "latest_charge"), ("metadata[order]", "o-1")],
        )
        .await
        .ok();
    assert_eq!(pi["status"], "succeeded");
    assert_eq!(pi["amount_received"], 2000);
    assert!(pi["client_secret"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}_secret_", pi["id"].as_str().unwrap())));
    let ch = &pi["latest_charge"];
    assert!(ch["id"].as_str().unwrap().starts_with("ch_"));
    assert_eq!(ch["captured"], true);
    assert_eq!(ch["paid"], true);
    assert_eq!(ch["payment_method_details"]["card"]["last4"], "4242");
    assert_eq!(ch["metadata"]["order"], "o-1");
    let again = sb
        .get(&format!("/v1/charges/{}", ch["id"].as_str().unwrap()))
        .await
        .ok();
    assert_eq!(&again, ch);
    let events: Vec<String> = sb.get("/v1/events").await.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .rev()
        .collect();
    assert_eq!(
        events,
        [
            "payment_intent.created",
            "charge.succeeded",
            "payment_intent.succeeded"
        ]
    );
    sb.stop().await;
}

#[tokio::test]
async fn manual_capture_partial_and_state_errors() {
    let sb = spawn().await;
    let pi = sb
        .pay("5000", "pm_card_visa", &[("capture_method", "manual")])
        .await
        .ok();
    assert_eq!(pi["status"], "requires_capture");
    assert_eq!(pi["amount_capturable"], 5000);
    let id = pi["id"].as_str().unwrap();
    let ch = sb
        .get(&format!(
            "/v1/charges/{}",
            pi["latest_charge"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(ch["captured"], false);
    assert!(
        ch["payment_method_details"]["card"]["capture_before"]
            .as_i64()
            .unwrap()
            > ch["created"].as_i64().unwrap()
    );

    let r = sb
        .post(
            &format!("/v1/payment_intents/{id}/capture"),
            &[("amount_to_capture", "6000")],
        )
        .await;
    assert_eq!(r.status, 400);
    let done = sb
        .post(
            &format!("/v1/payment_intents/{id}/capture"),
            &[("amount_to_capture", "3000")],
        )
        .await
        .ok();
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["amount_received"], 3000);
    assert_eq!(done["amount_capturable"], 0);
    let ch = sb
        .get(&format!(
            "/v1/charges/{}",
            pi["latest_charge"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(
        (
            ch["captured"].as_bool(),
            ch["amount_captured"].as_i64(),
            ch["amount_refunded"].as_i64()
        ),
        (Some(true), Some(3000), Some(2000))
    );

    let r = sb
        .post(&format!("/v1/payment_intents/{id}/capture"), &[])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.err()["code"], "payment_intent_unexpected_state");
    assert_eq!(r.err()["payment_intent"]["id"], id);
    assert!(r.err()["message"]
        .as_str()
        .unwrap()
        .contains("status of succeeded"));
    let r = sb
        .post(&format!("/v1/payment_intents/{id}/cancel"), &[])
        .await;
    assert_eq!(r.err()["code"], "payment_intent_unexpected_state");
    let evs = sb
        .events_of("payment_intent.amount_capturable_updated")
        .await;
    assert_eq!(evs.len(), 1);
    assert_eq!(sb.events_of("charge.captured").await.len(), 1);
    sb.stop().await;
}

#[tokio::test]
async fn create_then_confirm_update_cancel_and_list() {
    let sb = spawn().await;
    let cus = sb.post("/v1/customers", &[]).await.id();
    let pi = sb
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "1500"),
                ("currency", "usd"),
                ("customer", &cus),
                ("automatic_payment_methods[enabled]", "true"),
            ],
        )
        .await
        .ok();
    assert_eq!(pi["status"], "requires_payment_method");
    assert_eq!(pi["automatic_payment_methods"]["enabled"], true);
    let id = pi["id"].as_str().unwrap();
    let r = sb
        .post(&format!("/v1/payment_intents/{id}/confirm"), &[])
        .await;
    assert_eq!(r.status, 400);
    // automatic_payment_methods without return_url refuses to confirm.
    let r = sb
        .post(
            &format!("/v1/payment_intents/{id}/confirm"),
            &[("payment_method", "pm_card_visa")],
        )
        .await;
    assert_eq!(
        (r.status, r.err()["param"].as_str()),
        (400, Some("return_url"))
    );
    let up = sb
        .post(
            &format!("/v1/payment_intents/{id}"),
            &[("amount", "1700"), ("description", "hi")],
        )
        .await
        .ok();
    assert_eq!(up["amount"], 1700);
    let ok = sb
        .post(
            &format!("/v1/payment_intents/{id}/confirm"),
            &[
                ("payment_method", "pm_card_visa"),
                ("return_url", "https://shop.test/back"),
            ],
        )
        .await
        .ok();
    assert_eq!(ok["status"], "succeeded");

    let other = sb
        .post(
            "/v1/payment_intents",
            &[("amount", "1500"), ("currency", "usd")],
        )
        .await
        .ok();
    let canceled = sb
        .post(
            &format!(
                "/v1/payment_intents/{}/cancel",
                other["id"].as_str().unwrap()
            ),
            &[("cancellation_reason", "abandoned")],
        )
        .await
        .ok();
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["cancellation_reason"], "abandoned");

    let l = sb
        .get(&format!("/v1/payment_intents?customer={cus}"))
        .await
        .ok();
    assert_eq!(l["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        sb.get("/v1/payment_intents").await.ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let with_pm = sb
        .get(&format!(
            "/v1/payment_intents/{id}?expand[]=payment_method&expand[]=customer"
        ))
        .await
        .ok();
    assert_eq!(with_pm["payment_method"]["object"], "payment_method");
    assert_eq!(with_pm["customer"]["id"], cus);
    let lx = sb
        .get("/v1/payment_intents?expand[]=data.latest_charge")
        .await
        .ok();
    assert_eq!(lx["data"][1]["latest_charge"]["object"], "charge");
    sb.stop().await;
}

#[tokio::test]
async fn declines_are_402_card_errors_with_a_failed_charge() {
    let sb = spawn().await;
    for (pm, code, decline) in [
        (
            "pm_card_visa_chargeDeclined",
            "card_declined",
            Some("generic_decline"),
        ),
        (
            "pm_card_visa_chargeDeclinedInsufficientFunds",
            "card_declined",
            Some("insufficient_funds"),
        ),
        (
            "pm_card_visa_chargeDeclinedLostCard",
            "card_declined",
            Some("lost_card"),
        ),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", None),
        (
            "pm_card_chargeCustomerFail",
            "card_declined",
            Some("generic_decline"),
        ),
    ] {
        let r = sb.pay("1000", pm, &[]).await;
        assert_eq!(r.status, 402, "{pm}");
        let e = r.err();
        assert_eq!(e["type"], "card_error");
        assert_eq!(e["code"], code);
        assert_eq!(e["decline_code"].as_str(), decline);
        let pi = &e["payment_intent"];
        assert_eq!(pi["status"], "requires_payment_method");
        assert_eq!(pi["last_payment_error"]["code"], code);
        let ch = sb
            .get(&format!("/v1/charges/{}", e["charge"].as_str().unwrap()))
            .await
            .ok();
        assert_eq!(ch["status"], "failed");
        assert_eq!(ch["failure_code"], code);
        assert_eq!(ch["paid"], false);
    }
    // Raw numbers decline the same way.
    let pm = sb
        .post(
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", "4000000000009995"),
                ("card[exp_month]", "3"),
                ("card[exp_year]", "2040"),
            ],
        )
        .await
        .id();
    let r = sb.pay("1000", &pm, &[]).await;
    assert_eq!(r.err()["decline_code"], "insufficient_funds");
    // After a decline the intent can be retried with another card.
    let pi_id = r.err()["payment_intent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = sb
        .post(
            &format!("/v1/payment_intents/{pi_id}/confirm"),
            &[("payment_method", "pm_card_visa")],
        )
        .await
        .ok();
    assert_eq!(ok["status"], "succeeded");
    assert!(ok["last_payment_error"].is_null());
    assert_eq!(sb.events_of("payment_intent.payment_failed").await.len(), 6);
    assert_eq!(sb.events_of("charge.failed").await.len(), 6);
    sb.stop().await;
}

#[tokio::test]
async fn off_session_authentication_cards() {
    let sb = spawn().await;
    let cus = sb.post("/v1/customers", &[]).await.id();
    let pm = sb
        .post(
            "/v1/payment_methods/pm_card_authenticationRequired/attach",
            &[("customer", &cus)],
        )
        .await
        .id();
    let r = sb
        .pay("1000", &pm, &[("customer", &cus), ("off_session", "true")])
        .await;
    assert_eq!(r.status, 402);
    assert_eq!(r.err()["code"], "authentication_required");
    assert_eq!(r.err()["decline_code"], "authentication_required");
    assert_eq!(
        r.err()["payment_intent"]["status"],
        "requires_payment_method"
    );

    // 3155 needs authentication on-session only until set up.
    let pm2 = sb
        .post(
            "/v1/payment_methods/pm_card_authenticationRequiredOnSetup/attach",
            &[("customer", &cus)],
        )
        .await
        .id();
    let r = sb.pay("1000", &pm2, &[("customer", &cus)]).await.ok();
    assert_eq!(r["status"], "requires_action");
    assert_eq!(r["next_action"]["type"], "use_stripe_sdk");

    let r = sb
        .pay(
            "1000",
            &pm2,
            &[("customer", &cus), ("error_on_requires_action", "true")],
        )
        .await;
    assert_eq!(r.status, 402);

    // A payment method used once without a customer cannot be reused.
    let pm3 = sb
        .post(
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", "4242424242424242"),
                ("card[exp_month]", "3"),
                ("card[exp_year]", "2040"),
            ],
        )
        .await
        .id();
    sb.pay("1000", &pm3, &[]).await.ok();
    assert_eq!(sb.pay("1000", &pm3, &[]).await.status, 400);
    let _ = json!({});
    sb.stop().await;
}
