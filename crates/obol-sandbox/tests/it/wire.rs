use crate::helpers::*;

#[tokio::test]
async fn missing_and_live_keys_are_401_with_stripes_message() {
    let sb = spawn().await;
    let r = sb
        .http
        .get(format!("{}/v1/customers", sb.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("You did not provide an API key"));

    let r = sb
        .http
        .get(format!("{}/v1/customers", sb.base))
        .bearer_auth("sk_live_abcdefgh12345678")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert_eq!(msg, "Invalid API Key provided: sk_live_************5678");

    // Basic auth with the key as user name works too.
    let r = sb
        .http
        .get(format!("{}/v1/account", sb.base))
        .basic_auth(KEY, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sb.stop().await;
}

#[tokio::test]
async fn every_response_has_request_id_and_echoes_stripe_version() {
    let sb = spawn().await;
    let r = sb.get("/v1/account").await;
    assert!(r.header("request-id").unwrap().starts_with("req_"));
    assert_eq!(r.header("stripe-version"), Some("2023-08-16"));
    let acct = r.ok();
    assert!(acct["id"].as_str().unwrap().starts_with("acct_"));
    assert_eq!(
        acct["settings"]["dashboard"]["display_name"],
        "obol sandbox"
    );
    assert_eq!(acct["default_currency"], "eur");
    assert_eq!(acct["charges_enabled"], true);

    let r = sb
        .post_with(
            "/v1/customers",
            &[],
            &[("Stripe-Version", "2026-10-28.endive")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("stripe-version"), Some("2026-10-28.endive"));
    assert_eq!(sb.get("/v1/nope").await.status, 404);
    sb.stop().await;
}

#[tokio::test]
async fn bad_parameters_get_stripes_error_object() {
    let sb = spawn().await;
    let r = sb.post("/v1/customers", &[("bogus", "1")]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.err()["param"], "bogus");
    assert_eq!(r.err()["message"], "Received unknown parameter: bogus");

    let r = sb.post("/v1/payment_intents", &[("currency", "eur")]).await;
    assert_eq!((r.status, r.err()["param"].as_str()), (400, Some("amount")));
    let r = sb
        .post(
            "/v1/payment_intents",
            &[("amount", "12.5"), ("currency", "eur")],
        )
        .await;
    assert_eq!(r.err()["message"], "Invalid integer: 12.5");
    let r = sb
        .post(
            "/v1/payment_intents",
            &[("amount", "100"), ("currency", "xyz")],
        )
        .await;
    assert_eq!(r.err()["param"], "currency");
    let r = sb
        .post(
            "/v1/payment_intents",
            &[("amount", "1005"), ("currency", "kwd")],
        )
        .await;
    assert_eq!(r.status, 400);
    let r = sb
        .post(
            "/v1/payment_intents",
            &[("amount", "10"), ("currency", "eur")],
        )
        .await;
    assert_eq!(r.err()["code"], "amount_too_small");
    let r = sb
        .post(
            "/v1/payment_intents",
            &[("amount", "100000000"), ("currency", "eur")],
        )
        .await;
    assert_eq!(r.err()["code"], "amount_too_large");
    let r = sb
        .post(
            "/v1/payment_intents",
            &[("amount", "100"), ("currency", "jpy")],
        )
        .await;
    assert_eq!(r.status, 200);

    // Malformed bracket keys are a 400, not a panic.
    let r = sb.post("/v1/customers", &[("metadata[a", "1")]).await;
    assert_eq!(r.status, 400);
    let r = sb
        .post("/v1/customers", &[("metadata", "x"), ("metadata[a]", "1")])
        .await;
    assert_eq!(r.status, 400);

    // 404 in Stripe's words.
    let r = sb.get("/v1/customers/cus_missing").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.err()["code"], "resource_missing");
    assert_eq!(r.err()["message"], "No such customer: 'cus_missing'");

    // Body limit.
    let big = "x".repeat(2 * 1024 * 1024);
    let r = sb
        .post("/v1/customers", &[("description", big.as_str())])
        .await;
    assert!(r.status == 400 || r.status == 413, "{}", r.status);
    sb.stop().await;
}

#[tokio::test]
async fn idempotency_replays_refuses_other_params_and_is_per_key() {
    let sb = spawn().await;
    let h = [("Idempotency-Key", "order-1")];
    let a = sb
        .post_with("/v1/customers", &[("email", "a@x.io")], &h)
        .await;
    let b = sb
        .post_with("/v1/customers", &[("email", "a@x.io")], &h)
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b.body);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(a.header("idempotent-replayed"), None);

    let c = sb
        .post_with("/v1/customers", &[("email", "b@x.io")], &h)
        .await;
    assert_eq!(c.status, 400);
    assert_eq!(c.err()["type"], "idempotency_error");

    // The event of the first request carries the key.
    let ev = sb.events_of("customer.created").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["request"]["idempotency_key"], "order-1");

    // Declines are saved and replayed too (402, same charge).
    let h2 = [("Idempotency-Key", "pay-1")];
    let form = [
        ("amount", "500"),
        ("currency", "eur"),
        ("payment_method", "pm_card_chargeDeclinedExpiredCard"),
        ("confirm", "true"),
    ];
    let d1 = sb.post_with("/v1/payment_intents", &form, &h2).await;
    let d2 = sb.post_with("/v1/payment_intents", &form, &h2).await;
    assert_eq!((d1.status, d2.status), (402, 402));
    assert_eq!(d1.err()["charge"], d2.err()["charge"]);
    assert_eq!(d1.err()["code"], "expired_card");

    // Another API key does not see the first key's responses.
    let mut sb2 = sb;
    sb2.key = "sk_test_someoneelse".into();
    let e = sb2
        .post_with("/v1/customers", &[("email", "a@x.io")], &h)
        .await;
    assert_eq!(e.status, 200);
    assert_ne!(e.id(), a.id());
    sb2.stop().await;
}

#[tokio::test]
async fn lists_paginate_newest_first() {
    let sb = spawn().await;
    let mut ids = Vec::new();
    for n in 0..25 {
        ids.push(
            sb.post("/v1/customers", &[("name", &format!("c{n}"))])
                .await
                .id(),
        );
    }
    ids.reverse();
    let first = sb.get("/v1/customers").await.ok();
    assert_eq!(first["object"], "list");
    assert_eq!(first["url"], "/v1/customers");
    assert_eq!(first["has_more"], true);
    let page: Vec<String> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(page, ids[..10]);

    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("/v1/customers?limit=7&starting_after={a}"),
            None => "/v1/customers?limit=7".into(),
        };
        let l = sb.get(&q).await.ok();
        let data = l["data"].as_array().unwrap();
        all.extend(data.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        if l["has_more"] == false {
            break;
        }
        after = data.last().map(|c| c["id"].as_str().unwrap().to_string());
    }
    assert_eq!(all, ids);

    let before = sb
        .get(&format!("/v1/customers?limit=3&ending_before={}", ids[10]))
        .await
        .ok();
    let got: Vec<&str> = before["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ids[7..10].iter().map(String::as_str).collect::<Vec<_>>()
    );

    assert_eq!(sb.get("/v1/customers?limit=0").await.status, 400);
    assert_eq!(sb.get("/v1/customers?limit=101").await.status, 400);
    assert_eq!(
        sb.get("/v1/customers?starting_after=cus_nope").await.status,
        404
    );
    sb.stop().await;
}

#[tokio::test]
async fn events_filter_by_type_and_created() {
    let sb = spawn().await;
    let cus = sb.post("/v1/customers", &[]).await.id();
    sb.post(&format!("/v1/customers/{cus}"), &[("metadata[a]", "b")])
        .await
        .ok();
    sb.pay("1000", "pm_card_visa", &[]).await.ok();
    let updated = sb.events_of("customer.updated").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(
        updated[0]["data"]["previous_attributes"]["metadata"],
        serde_json::json!({})
    );
    let pi_events = sb.get("/v1/events?type=payment_intent.*").await.ok();
    let types: Vec<&str> = pi_events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["payment_intent.succeeded", "payment_intent.created"]
    );
    let all = sb.get("/v1/events?created[gte]=0&limit=100").await.ok();
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
    let none = sb.get("/v1/events?created[gt]=99999999999").await.ok();
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    let one = &all["data"][0];
    let again = sb
        .get(&format!("/v1/events/{}", one["id"].as_str().unwrap()))
        .await
        .ok();
    assert_eq!(&again, one);
    assert_eq!(again["object"], "event");
    assert!(again["request"]["id"].as_str().unwrap().starts_with("req_"));
    sb.stop().await;
}

/// A publishable key does what Stripe.js does with one: read and confirm
/// the PaymentIntent whose client secret it presents, nothing else; and a
/// page on another origin may call the API (CORS).
#[tokio::test]
async fn a_publishable_key_reads_and_confirms_one_intent_by_its_client_secret() {
    let sb = spawn().await;
    let pi = sb
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "2000"),
                ("currency", "eur"),
                ("capture_method", "manual"),
            ],
        )
        .await
        .ok();
    let id = pi["id"].as_str().unwrap();
    let secret = pi["client_secret"].as_str().unwrap();
    let pk = "pk_test_obol_page";
    let get = |q: String| {
        sb.http
            .get(format!("{}/v1/payment_intents/{id}?{q}", sb.base))
            .bearer_auth(pk)
            .send()
    };
    let r = get(format!("client_secret={secret}")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let r = get("client_secret=pi_wrong_secret_x".into()).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = get(String::new()).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = sb
        .http
        .get(format!("{}/v1/payment_intents", sb.base))
        .bearer_auth(pk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a publishable key lists nothing");
    let r = sb
        .http
        .post(format!("{}/v1/payment_intents/{id}/confirm", sb.base))
        .bearer_auth(pk)
        .form(&[
            ("client_secret", secret),
            ("payment_method_data[type]", "card"),
            ("payment_method_data[card][number]", "4242424242424242"),
            ("payment_method_data[card][exp_month]", "12"),
            ("payment_method_data[card][exp_year]", "2034"),
            ("payment_method_data[card][cvc]", "123"),
        ])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "requires_capture", "{body}");
    let preflight = sb
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/payment_intents/{id}/confirm", sb.base),
        )
        .header("origin", "http://127.0.0.1:8080")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert!(preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
}

/// Stripe.js's `confirmSetup` with a publishable key: read and confirm the
/// SetupIntent whose client secret it presents with the card typed into
/// the payment element; it saves the card to the SetupIntent's customer.
#[tokio::test]
async fn a_publishable_key_confirms_a_setup_intent_by_its_client_secret() {
    let sb = spawn().await;
    let cus = sb.post("/v1/customers", &[]).await.id();
    let si = sb
        .post(
            "/v1/setup_intents",
            &[("customer", &cus), ("usage", "off_session")],
        )
        .await
        .ok();
    let id = si["id"].as_str().unwrap();
    let secret = si["client_secret"].as_str().unwrap();
    let pk = "pk_test_obol_page";
    let r = sb
        .http
        .get(format!(
            "{}/v1/setup_intents/{id}?client_secret={secret}",
            sb.base
        ))
        .bearer_auth(pk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = sb
        .http
        .get(format!(
            "{}/v1/setup_intents/{id}?client_secret=seti_wrong_secret_x",
            sb.base
        ))
        .bearer_auth(pk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let confirm = |secret: String, number: &'static str| {
        sb.http
            .post(format!("{}/v1/setup_intents/{id}/confirm", sb.base))
            .bearer_auth(pk)
            .form(&[
                ("client_secret", secret.as_str()),
                ("payment_method_data[type]", "card"),
                ("payment_method_data[card][number]", number),
                ("payment_method_data[card][exp_month]", "12"),
                ("payment_method_data[card][exp_year]", "2034"),
                ("payment_method_data[card][cvc]", "123"),
                ("return_url", "https://shop.test/saved"),
            ])
            .send()
    };
    let r = confirm("seti_wrong_secret_x".into(), "4242424242424242")
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the wrong secret confirms nothing");
    let r = confirm(secret.to_string(), "4000000000000002")
        .await
        .unwrap();
    assert_eq!(r.status(), 402, "a declined card is a card error");
    let r = confirm(secret.to_string(), "4242424242424242")
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "succeeded", "{body}");
    let pm = sb
        .get(&format!(
            "/v1/payment_methods/{}",
            body["payment_method"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(pm["customer"], cus.as_str());
    assert_eq!(pm["card"]["last4"], "4242");
    assert_eq!(pm["card"]["exp_year"], 2034);
    assert_eq!(sb.events_of("payment_method.attached").await.len(), 1);
    let r = sb
        .http
        .post(format!("{}/v1/setup_intents/{id}/cancel", sb.base))
        .bearer_auth(pk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a publishable key cancels nothing");
}
