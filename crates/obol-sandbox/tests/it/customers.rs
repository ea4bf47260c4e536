use crate::helpers::*;

#[tokio::test]
async fn customer_crud_and_default_payment_method_must_be_attached() {
    let sb = spawn().await;
    let c = sb
        .post(
            "/v1/customers",
            &[
                ("email", "jo@example.com"),
                ("name", "Jo"),
                ("metadata[ref]", "r1"),
            ],
        )
        .await
        .ok();
    let id = c["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("cus_") && id.len() == 28);
    assert_eq!(c["livemode"], false);
    assert_eq!(sb.get(&format!("/v1/customers/{id}")).await.ok(), c);

    let pm = sb
        .post(
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", "4242424242424242"),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2040"),
                ("card[cvc]", "123"),
            ],
        )
        .await
        .ok();
    let pm_id = pm["id"].as_str().unwrap();
    assert_eq!(pm["card"]["last4"], "4242");
    assert_eq!(pm["card"]["brand"], "visa");

    let r = sb
        .post(
            &format!("/v1/customers/{id}"),
            &[("invoice_settings[default_payment_method]", pm_id)],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.err()["param"], "invoice_settings[default_payment_method]");

    sb.post(
        &format!("/v1/payment_methods/{pm_id}/attach"),
        &[("customer", &id)],
    )
    .await
    .ok();
    let c2 = sb
        .post(
            &format!("/v1/customers/{id}"),
            &[
                ("invoice_settings[default_payment_method]", pm_id),
                ("metadata[ref]", ""),
            ],
        )
        .await
        .ok();
    assert_eq!(c2["invoice_settings"]["default_payment_method"], pm_id);
    assert_eq!(c2["metadata"], serde_json::json!({}));

    // Expanding the default payment method.
    let c3 = sb
        .get(&format!(
            "/v1/customers/{id}?expand[]=invoice_settings.default_payment_method"
        ))
        .await
        .ok();
    assert_eq!(
        c3["invoice_settings"]["default_payment_method"]["id"],
        pm_id
    );

    // Detaching clears the default.
    sb.post(&format!("/v1/payment_methods/{pm_id}/detach"), &[])
        .await
        .ok();
    let c4 = sb.get(&format!("/v1/customers/{id}")).await.ok();
    assert!(c4["invoice_settings"]["default_payment_method"].is_null());

    let d = sb.delete(&format!("/v1/customers/{id}")).await.ok();
    assert_eq!(
        d,
        serde_json::json!({"id": id, "object": "customer", "deleted": true})
    );
    assert_eq!(
        sb.get(&format!("/v1/customers/{id}")).await.ok()["deleted"],
        true
    );
    assert_eq!(
        sb.get("/v1/customers").await.ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let types: Vec<String> = sb.get("/v1/events?limit=100").await.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .rev()
        .collect();
    assert_eq!(
        types,
        [
            "customer.created",
            "payment_method.attached",
            "customer.updated",
            "payment_method.detached",
            "customer.updated",
            "customer.deleted"
        ]
    );
    sb.stop().await;
}

#[tokio::test]
async fn create_customer_with_test_token_and_default() {
    let sb = spawn().await;
    let c = sb
        .post(
            "/v1/customers",
            &[
                ("payment_method", "pm_card_visa"),
                ("invoice_settings[default_payment_method]", "pm_card_visa"),
            ],
        )
        .await
        .ok();
    let pm = c["invoice_settings"]["default_payment_method"]
        .as_str()
        .unwrap();
    assert!(pm.starts_with("pm_") && !pm.starts_with("pm_card"));
    let list = sb
        .get(&format!(
            "/v1/customers/{}/payment_methods?type=card",
            c["id"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(list["data"][0]["id"], pm);
    assert_eq!(list["data"][0]["customer"], c["id"]);
    sb.stop().await;
}

#[tokio::test]
async fn payment_method_cards_tokens_and_attach_rules() {
    let sb = spawn().await;
    let cus = sb.post("/v1/customers", &[]).await.id();
    // Test tokens materialise a new payment method each time.
    let a = sb
        .post(
            "/v1/payment_methods/pm_card_mastercard/attach",
            &[("customer", &cus)],
        )
        .await
        .ok();
    let b = sb
        .post(
            "/v1/payment_methods/pm_card_mastercard/attach",
            &[("customer", &cus)],
        )
        .await
        .ok();
    assert_ne!(a["id"], b["id"]);
    assert_eq!(a["card"]["brand"], "mastercard");
    assert_eq!(a["card"]["last4"], "4444");

    // Declining cards cannot be attached; chargeCustomerFail can.
    let r = sb
        .post(
            "/v1/payment_methods/pm_card_visa_chargeDeclined/attach",
            &[("customer", &cus)],
        )
        .await;
    assert_eq!(r.status, 402);
    assert_eq!(r.err()["type"], "card_error");
    assert_eq!(r.err()["decline_code"], "generic_decline");
    sb.post(
        "/v1/payment_methods/pm_card_chargeCustomerFail/attach",
        &[("customer", &cus)],
    )
    .await
    .ok();

    // Already attached elsewhere.
    let other = sb.post("/v1/customers", &[]).await.id();
    let r = sb
        .post(
            &format!("/v1/payment_methods/{}/attach", a["id"].as_str().unwrap()),
            &[("customer", &other)],
        )
        .await;
    assert_eq!(r.status, 400);

    let l = sb
        .get(&format!("/v1/payment_methods?customer={cus}&type=card"))
        .await
        .ok();
    assert_eq!(l["data"].as_array().unwrap().len(), 3);
    let l = sb
        .get(&format!("/v1/customers/{cus}/payment_methods?limit=2"))
        .await
        .ok();
    assert_eq!(l["data"].as_array().unwrap().len(), 2);
    assert_eq!(l["has_more"], true);

    // Bad numbers and dates.
    let r = sb
        .post(
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", "4242424242424241"),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2040"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.err()["code"].as_str()),
        (402, Some("incorrect_number"))
    );
    let r = sb
        .post(
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", "4242424242424242"),
                ("card[exp_month]", "13"),
                ("card[exp_year]", "2040"),
            ],
        )
        .await;
    assert_eq!(r.err()["code"], "invalid_expiry_month");
    let r = sb
        .post(
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", "4242424242424242"),
                ("card[exp_month]", "1"),
                ("card[exp_year]", "2001"),
            ],
        )
        .await;
    assert_eq!(r.err()["code"], "invalid_expiry_year");
    let r = sb.post("/v1/payment_methods/pm_nope/detach", &[]).await;
    assert_eq!(r.status, 404);
    let r = sb
        .post(
            &format!(
                "/v1/payment_methods/{}/detach",
                sb.post(
                    "/v1/payment_methods",
                    &[
                        ("type", "card"),
                        ("card[number]", "4000056655665556"),
                        ("card[exp_month]", "1"),
                        ("card[exp_year]", "2040")
                    ]
                )
                .await
                .id()
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 400);
    sb.stop().await;
}
