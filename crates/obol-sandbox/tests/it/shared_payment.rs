//! Shared payment tokens: granted by the test helper, read, revoked, and
//! charged through a PaymentIntent within their usage limits only.

use crate::helpers::*;

async fn grant(sb: &TestSandbox, pm: &str, max: &str, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![
        ("payment_method", pm),
        ("usage_limits[currency]", "usd"),
        ("usage_limits[max_amount]", max),
    ];
    form.extend_from_slice(extra);
    sb.post("/v1/test_helpers/shared_payment/granted_tokens", &form)
        .await
}

async fn charge(sb: &TestSandbox, spt: &str, amount: &str, currency: &str) -> Resp {
    sb.post(
        "/v1/payment_intents",
        &[
            ("amount", amount),
            ("currency", currency),
            ("payment_method_types[]", "card"),
            ("capture_method", "manual"),
            ("confirm", "true"),
            ("payment_method_data[shared_payment_granted_token]", spt),
        ],
    )
    .await
}

#[tokio::test]
async fn a_granted_token_charges_its_card_once_within_its_limits() {
    let sb = spawn().await;
    let spt = grant(&sb, "pm_card_visa", "5000", &[]).await.ok();
    let id = spt["id"].as_str().unwrap();
    assert!(id.starts_with("spt_"));
    assert_eq!(spt["object"], "shared_payment.granted_token");
    assert_eq!(spt["usage_limits"]["max_amount"], 5000);
    assert_eq!(spt["usage_limits"]["currency"], "usd");
    assert_eq!(spt["deactivated_reason"], serde_json::Value::Null);
    assert_eq!(spt["payment_method_details"]["card"]["last4"], "4242");
    assert!(
        spt.get("_payment_method").is_none(),
        "private fields stay private"
    );

    let pi = charge(&sb, id, "4200", "usd").await.ok();
    assert_eq!(pi["status"], "requires_capture");
    let read = sb
        .get(&format!("/v1/shared_payment/granted_tokens/{id}"))
        .await
        .ok();
    assert_eq!(read["deactivated_reason"], "consumed");
    assert_eq!(read["usage_details"]["amount_captured"]["value"], 0);
    let pi_id = pi["id"].as_str().unwrap();
    sb.post(&format!("/v1/payment_intents/{pi_id}/capture"), &[])
        .await
        .ok();
    let read = sb
        .get(&format!("/v1/shared_payment/granted_tokens/{id}"))
        .await
        .ok();
    assert_eq!(read["usage_details"]["amount_captured"]["value"], 4200);

    // Consumed: a second use is refused and charges nothing.
    let again = charge(&sb, id, "100", "usd").await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(
        again.err()["code"],
        "shared_payment_granted_token_deactivated"
    );
    assert_eq!(
        again.err()["param"],
        "payment_method_data[shared_payment_granted_token]"
    );
}

#[tokio::test]
async fn uses_beyond_the_grant_are_refused_before_any_charge() {
    let sb = spawn().await;
    let spt = grant(&sb, "pm_card_visa", "1000", &[]).await.ok();
    let id = spt["id"].as_str().unwrap();
    let over = charge(&sb, id, "1001", "usd").await;
    assert_eq!(over.status, 400, "{}", over.body);
    assert_eq!(
        over.err()["code"],
        "shared_payment_granted_token_limit_exceeded"
    );
    let other = charge(&sb, id, "500", "eur").await;
    assert_eq!(
        other.err()["code"],
        "shared_payment_granted_token_currency_mismatch"
    );
    assert!(
        sb.events_of("charge.*").await.is_empty(),
        "no charge was attempted"
    );

    let expired = grant(
        &sb,
        "pm_card_visa",
        "1000",
        &[("usage_limits[expires_at]", "1")],
    )
    .await
    .ok();
    let eid = expired["id"].as_str().unwrap();
    let r = charge(&sb, eid, "500", "usd").await;
    assert_eq!(r.err()["code"], "shared_payment_granted_token_expired");
    let read = sb
        .get(&format!("/v1/shared_payment/granted_tokens/{eid}"))
        .await
        .ok();
    assert_eq!(read["deactivated_reason"], "expired");
    assert_eq!(read["deactivated_at"], 1);

    let revoked = sb
        .post(
            &format!("/v1/test_helpers/shared_payment/granted_tokens/{id}/revoke"),
            &[],
        )
        .await
        .ok();
    assert_eq!(revoked["deactivated_reason"], "revoked");
    let r = charge(&sb, id, "500", "usd").await;
    assert_eq!(r.err()["code"], "shared_payment_granted_token_deactivated");
    let twice = sb
        .post(
            &format!("/v1/test_helpers/shared_payment/granted_tokens/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(twice.status, 400);

    let missing = sb.get("/v1/shared_payment/granted_tokens/spt_nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.err()["code"], "resource_missing");
}

#[tokio::test]
async fn a_declined_card_leaves_the_token_usable() {
    let sb = spawn().await;
    let spt = grant(&sb, "pm_card_visa_chargeDeclined", "1000", &[])
        .await
        .ok();
    let id = spt["id"].as_str().unwrap();
    let r = charge(&sb, id, "500", "usd").await;
    assert_eq!(r.status, 402);
    assert_eq!(r.err()["code"], "card_declined");
    let read = sb
        .get(&format!("/v1/shared_payment/granted_tokens/{id}"))
        .await
        .ok();
    assert_eq!(read["deactivated_reason"], serde_json::Value::Null);
}

#[tokio::test]
async fn three_d_secure_done_elsewhere_is_imported_on_confirm() {
    let sb = spawn().await;
    let spt = grant(&sb, "pm_card_threeDSecure2Required", "1000", &[])
        .await
        .ok();
    let id = spt["id"].as_str().unwrap();
    let pi = charge(&sb, id, "800", "usd").await.ok();
    assert_eq!(pi["status"], "requires_action");
    let pi_id = pi["id"].as_str().unwrap();
    let key = "payment_method_options[card][three_d_secure]";
    let confirm = |status: &'static str| {
        vec![
            (format!("{key}[ares_trans_status]"), status.to_string()),
            (
                format!("{key}[cryptogram]"),
                "AbCdEfGhIjKlMnOpQrStUvWxY0=".to_string(),
            ),
            (
                format!("{key}[electronic_commerce_indicator]"),
                "05".to_string(),
            ),
            (
                format!("{key}[transaction_id]"),
                "dsTransId_abc123".to_string(),
            ),
            (format!("{key}[version]"), "2.2.0".to_string()),
        ]
    };
    let form = confirm("Y");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let done = sb
        .post(&format!("/v1/payment_intents/{pi_id}/confirm"), &form)
        .await
        .ok();
    assert_eq!(done["status"], "requires_capture");
    let read = sb
        .get(&format!("/v1/shared_payment/granted_tokens/{id}"))
        .await
        .ok();
    assert_eq!(read["deactivated_reason"], "consumed");

    // A failed authentication (N) fails the attempt.
    let spt = grant(&sb, "pm_card_threeDSecure2Required", "1000", &[])
        .await
        .ok();
    let pi = charge(&sb, spt["id"].as_str().unwrap(), "800", "usd")
        .await
        .ok();
    let form = confirm("N");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = sb
        .post(
            &format!("/v1/payment_intents/{}/confirm", pi["id"].as_str().unwrap()),
            &form,
        )
        .await;
    assert_eq!(r.status, 402, "{}", r.body);
}
