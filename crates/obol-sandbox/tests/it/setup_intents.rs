use crate::helpers::*;

#[tokio::test]
async fn setup_intent_success_attaches_and_3ds_and_decline() {
    let sb = spawn().await;
    let cus = sb.post("/v1/customers", &[]).await.id();
    let si = sb
        .post(
            "/v1/setup_intents",
            &[
                ("customer", &cus),
                ("payment_method", "pm_card_visa"),
                ("confirm", "true"),
            ],
        )
        .await
        .ok();
    assert!(si["id"].as_str().unwrap().starts_with("seti_"));
    assert_eq!(si["status"], "succeeded");
    assert_eq!(si["usage"], "off_session");
    let pm = sb
        .get(&format!(
            "/v1/payment_methods/{}",
            si["payment_method"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(pm["customer"], cus.as_str());
    assert_eq!(sb.events_of("setup_intent.succeeded").await.len(), 1);
    assert_eq!(sb.events_of("payment_method.attached").await.len(), 1);

    // 3155: requires_action on setup; afterwards off-session payments succeed.
    let si = sb
        .post(
            "/v1/setup_intents",
            &[("customer", &cus), ("payment_method_types[]", "card")],
        )
        .await
        .ok();
    let si = sb
        .post(
            &format!("/v1/setup_intents/{}/confirm", si["id"].as_str().unwrap()),
            &[
                ("payment_method", "pm_card_authenticationRequiredOnSetup"),
                ("return_url", "https://shop.test/saved"),
            ],
        )
        .await
        .ok();
    assert_eq!(si["status"], "requires_action");
    let url = si["next_action"]["redirect_to_url"]["url"]
        .as_str()
        .unwrap();
    let html = sb.raw_get(url).await.text().await.unwrap();
    let token = html
        .split("name=\"token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let r = sb
        .http
        .post(format!(
            "{}/_sandbox/3ds/{}",
            sb.base,
            si["id"].as_str().unwrap()
        ))
        .form(&[("token", token), ("action", "complete")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("setup_intent=seti_"));
    let si = sb
        .get(&format!("/v1/setup_intents/{}", si["id"].as_str().unwrap()))
        .await
        .ok();
    assert_eq!(si["status"], "succeeded");
    let pm = si["payment_method"].as_str().unwrap();
    let pi = sb
        .pay("1000", pm, &[("customer", &cus), ("off_session", "true")])
        .await
        .ok();
    assert_eq!(pi["status"], "succeeded");

    // Declines at setup: 402 with the setup intent.
    let r = sb
        .post(
            "/v1/setup_intents",
            &[
                ("customer", &cus),
                ("payment_method", "pm_card_visa_chargeDeclined"),
                ("confirm", "true"),
            ],
        )
        .await;
    assert_eq!(r.status, 402);
    assert_eq!(r.err()["setup_intent"]["status"], "requires_payment_method");
    assert_eq!(
        r.err()["setup_intent"]["last_setup_error"]["decline_code"],
        "generic_decline"
    );

    let si = sb.post("/v1/setup_intents", &[]).await.ok();
    let c = sb
        .post(
            &format!("/v1/setup_intents/{}/cancel", si["id"].as_str().unwrap()),
            &[("cancellation_reason", "abandoned")],
        )
        .await
        .ok();
    assert_eq!(c["status"], "canceled");
    let r = sb
        .post(
            &format!("/v1/setup_intents/{}/cancel", si["id"].as_str().unwrap()),
            &[],
        )
        .await;
    assert_eq!(r.err()["code"], "setup_intent_unexpected_state");
    assert_eq!(
        sb.get(&format!("/v1/setup_intents?customer={cus}"))
            .await
            .ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    sb.stop().await;
}
