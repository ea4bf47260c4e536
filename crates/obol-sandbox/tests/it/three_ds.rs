use crate::helpers::*;

/// Reads the challenge page and submits one of its two forms, like a browser.
async fn answer(sb: &TestSandbox, url: &str, button: &str) -> reqwest::Response {
    let page = sb.raw_get(url).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"complete\"") && html.contains("id=\"fail\""));
    let token = html
        .split("name=\"token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let action = html
        .split("<form method=\"post\" action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    sb.http
        .post(format!("{}{action}", sb.base))
        .form(&[("token", token.as_str()), ("action", button)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn three_ds_redirect_complete_succeeds_and_redirects() {
    let sb = spawn().await;
    let pi = sb
        .pay(
            "2500",
            "pm_card_threeDSecure2Required",
            &[("return_url", "https://shop.test/done?o=1")],
        )
        .await
        .ok();
    assert_eq!(pi["status"], "requires_action");
    assert_eq!(pi["next_action"]["type"], "redirect_to_url");
    assert_eq!(
        pi["next_action"]["redirect_to_url"]["return_url"],
        "https://shop.test/done?o=1"
    );
    let url = pi["next_action"]["redirect_to_url"]["url"]
        .as_str()
        .unwrap();
    assert!(url.starts_with(&format!(
        "{}/_sandbox/3ds/{}",
        sb.base,
        pi["id"].as_str().unwrap()
    )));
    let r = answer(&sb, url, "complete").await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(
        loc.starts_with("https://shop.test/done?o=1&payment_intent=pi_"),
        "{loc}"
    );
    assert!(loc.ends_with("redirect_status=succeeded"));
    let after = sb
        .get(&format!(
            "/v1/payment_intents/{}?expand[]=latest_charge",
            pi["id"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(after["status"], "succeeded");
    assert_eq!(
        after["latest_charge"]["payment_method_details"]["card"]["three_d_secure"]["result"],
        "authenticated"
    );
    // The page is single-use.
    assert_eq!(sb.raw_get(url).await.status(), 400);
    let types: Vec<String> = sb.get("/v1/events").await.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .rev()
        .collect();
    assert_eq!(
        types,
        [
            "payment_intent.created",
            "payment_intent.requires_action",
            "charge.succeeded",
            "payment_intent.succeeded"
        ]
    );
    sb.stop().await;
}

#[tokio::test]
async fn three_ds_fail_returns_to_requires_payment_method() {
    let sb = spawn().await;
    let pi = sb
        .pay(
            "2500",
            "pm_card_authenticationRequired",
            &[("capture_method", "manual")],
        )
        .await
        .ok();
    assert_eq!(pi["next_action"]["type"], "use_stripe_sdk");
    let url = pi["next_action"]["use_stripe_sdk"]["stripe_js"]
        .as_str()
        .unwrap();
    let r = answer(&sb, url, "fail").await;
    assert_eq!(r.status(), 200);
    let after = sb
        .get(&format!(
            "/v1/payment_intents/{}",
            pi["id"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(after["status"], "requires_payment_method");
    assert_eq!(
        after["last_payment_error"]["code"],
        "payment_intent_authentication_failure"
    );
    assert_eq!(sb.events_of("payment_intent.payment_failed").await.len(), 1);

    // Manual capture after a completed challenge ends in requires_capture.
    let pi = sb
        .pay(
            "2500",
            "pm_card_authenticationRequired",
            &[("capture_method", "manual")],
        )
        .await
        .ok();
    answer(
        &sb,
        pi["next_action"]["use_stripe_sdk"]["stripe_js"]
            .as_str()
            .unwrap(),
        "complete",
    )
    .await;
    let after = sb
        .get(&format!(
            "/v1/payment_intents/{}",
            pi["id"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(after["status"], "requires_capture");

    // 1629: authenticates, then declines.
    let pi = sb
        .pay("2500", "pm_card_threeDSecureRequiredChargeDeclined", &[])
        .await
        .ok();
    answer(
        &sb,
        pi["next_action"]["use_stripe_sdk"]["stripe_js"]
            .as_str()
            .unwrap(),
        "complete",
    )
    .await;
    let after = sb
        .get(&format!(
            "/v1/payment_intents/{}",
            pi["id"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(after["status"], "requires_payment_method");
    assert_eq!(after["last_payment_error"]["code"], "card_declined");

    // A wrong token is refused.
    let pi = sb
        .pay("2500", "pm_card_authenticationRequired", &[])
        .await
        .ok();
    let r = sb
        .http
        .post(format!(
            "{}/_sandbox/3ds/{}",
            sb.base,
            pi["id"].as_str().unwrap()
        ))
        .form(&[("token", "nope"), ("action", "complete")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    sb.stop().await;
}
