//! The catalog and payment links over HTTP against the sandbox: carts
//! priced by obol, links paid once, concurrent completions, a price
//! changed between link and payment.

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    carts_are_priced_from_the_catalog_and_break_rules_with_distinct_codes,
    a_payment_link_is_paid_once_on_the_page_side,
    twenty_concurrent_completions_make_one_order_and_one_capture,
    a_price_change_before_completion_releases_the_authorization,
    an_expired_link_answers_410,
    link_token_routes_are_rate_limited_per_address,
    a_link_that_reused_the_orders_paid_intent_completes,
);

struct Shop {
    riesling: String,
    sekt: String,
    shipping: String,
    customer: String,
    token: String,
}

async fn shop(obol: &Obol) -> Shop {
    let product = |name: &str, amount: i64, stock: Option<i64>| json!({"name": name, "unit_amount": amount, "currency": "eur", "stock": stock});
    let (s, riesling) = obol
        .post("/v1/products", product("Riesling 2022", 2000, Some(5)))
        .await;
    assert_eq!(s, 201, "{riesling}");
    let (_, sekt) = obol
        .post("/v1/products", product("Sekt brut", 1500, None))
        .await;
    let (s, shipping) = obol
        .post(
            "/v1/shipping-methods",
            json!({"name": "Standard", "amount": 499, "currency": "eur"}),
        )
        .await;
    assert_eq!(s, 201, "{shipping}");
    let customer = obol.create_customer("member-7").await;
    let cus = customer["id"].as_str().unwrap().to_string();
    let token = obol.customer_token(&cus, 900).await;
    Shop {
        riesling: riesling["id"].as_str().unwrap().to_string(),
        sekt: sekt["id"].as_str().unwrap().to_string(),
        shipping: shipping["id"].as_str().unwrap().to_string(),
        customer: cus,
        token,
    }
}

async fn post_as(obol: &Obol, bearer: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let mut req = obol.http.post(obol.url(path)).json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    crate::helpers::status_json(req.send().await.unwrap()).await
}

async fn get_public(obol: &Obol, path: &str) -> (u16, Value) {
    let r = obol.http.get(obol.url(path)).send().await.unwrap();
    crate::helpers::status_json(r).await
}

async fn carts_are_priced_from_the_catalog_and_break_rules_with_distinct_codes(backend: Backend) {
    let obol = Obol::start(backend).await;
    let s = shop(&obol).await;
    let cart = |items: Value| json!({"email": "ana@example.com", "items": items, "shipping_method_id": s.shipping});
    // An agent (customer token) orders from the catalog; obol prices it.
    let (status, order) = post_as(
        &obol,
        Some(&s.token),
        "/v1/orders",
        cart(json!([{"product_id": s.riesling, "quantity": 2}, {"product_id": s.sekt, "quantity": 1}])),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(
        order["total"],
        json!({"amount": 2 * 2000 + 1500 + 499, "currency": "eur"})
    );
    assert_eq!(order["customer_id"], s.customer.as_str());
    assert_eq!(
        order["shipping"],
        json!({"name": "Standard", "amount": 499})
    );
    // Priced free-form lines stay the backend's.
    let (status, body) = post_as(
        &obol,
        Some(&s.token),
        "/v1/orders",
        json!({"email": "ana@example.com", "currency": "eur",
               "line_items": [{"name": "Riesling", "unit_amount": 5, "quantity": 1}]}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("secret_key_required"))
    );

    let (_, usd) = obol
        .post(
            "/v1/products",
            json!({"name": "Bourbon", "unit_amount": 4000, "currency": "usd"}),
        )
        .await;
    let (_, off) = obol
        .post(
            "/v1/products",
            json!({"name": "Old vintage", "unit_amount": 9000, "currency": "eur", "active": false}),
        )
        .await;
    let cases = [
        (
            json!([{"product_id": "prod_01jd8x3qzv5m2c7e9f0g1h2j3k", "quantity": 1}]),
            "unknown_product",
        ),
        (
            json!([{"product_id": off["id"], "quantity": 1}]),
            "product_inactive",
        ),
        (
            json!([{"product_id": s.riesling, "quantity": 1}, {"product_id": usd["id"], "quantity": 1}]),
            "cart_currency_mixed",
        ),
        (
            json!([{"product_id": s.riesling, "quantity": 4}, {"product_id": s.riesling, "quantity": 2}]),
            "insufficient_stock",
        ),
    ];
    for (items, code) in cases {
        let (status, body) = post_as(&obol, Some(&s.token), "/v1/orders", cart(items)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some(code)),
            "{body}"
        );
    }
    // The customer sees what is for sale only.
    let (status, listed) = obol.get_as("/v1/products", &s.token).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"Old vintage") && names.contains(&"Sekt brut"),
        "{names:?}"
    );
    let (status, _) = obol
        .get_as(
            &format!("/v1/products/{}", off["id"].as_str().unwrap()),
            &s.token,
        )
        .await;
    assert_eq!(status, 404);
    // The secret key filters either way, across pages (newer active
    // products do not hide an older inactive one); a customer asking for
    // inactive ones still gets active ones only.
    for name in ["Rosé 2023", "Spätburgunder 2021"] {
        obol.post(
            "/v1/products",
            json!({"name": name, "unit_amount": 1800, "currency": "eur"}),
        )
        .await;
    }
    let (_, inactive) = obol.get("/v1/products?active=false&limit=1").await;
    assert_eq!(
        (
            inactive["data"][0]["name"].as_str(),
            inactive["has_more"].as_bool()
        ),
        (Some("Old vintage"), Some(false)),
        "{inactive}"
    );
    let (_, asked) = obol.get_as("/v1/products?active=false", &s.token).await;
    assert!(
        asked["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["active"] == true),
        "{asked}"
    );
    // Shipping methods: listed, read, changed, and off sale for customers.
    let (status, methods) = obol.get_as("/v1/shipping-methods", &s.token).await;
    assert_eq!(
        (status, methods["data"][0]["id"].as_str()),
        (200, Some(s.shipping.as_str()))
    );
    let r = obol
        .http
        .patch(obol.url(&format!("/v1/shipping-methods/{}", s.shipping)))
        .bearer_auth(&obol.api_key)
        .json(&json!({"amount": 0, "active": false}))
        .send()
        .await
        .unwrap();
    let changed: Value = r.json().await.unwrap();
    assert_eq!(
        (changed["amount"].as_i64(), changed["active"].as_bool()),
        (Some(0), Some(false))
    );
    let (status, _) = obol
        .get_as(&format!("/v1/shipping-methods/{}", s.shipping), &s.token)
        .await;
    assert_eq!(
        status, 404,
        "an inactive method is not offered to customers"
    );
    let (status, one) = obol
        .get(&format!("/v1/shipping-methods/{}", s.shipping))
        .await;
    assert_eq!((status, one["active"].as_bool()), (200, Some(false)));
    let (status, body) = post_as(
        &obol,
        Some(&s.token),
        "/v1/orders",
        cart(json!([{"product_id": s.sekt, "quantity": 1}])),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("shipping_method_inactive"))
    );
    // Only the secret key changes prices.
    let r = obol
        .http
        .patch(obol.url(&format!("/v1/products/{}", s.riesling)))
        .bearer_auth(&s.token)
        .json(&json!({"unit_amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Pays a link's intent the way the page does: the card confirms it.
async fn pay_on_page(obol: &Obol, pi: &str, card: &str) -> Value {
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

async fn a_payment_link_is_paid_once_on_the_page_side(backend: Backend) {
    let obol = Obol::start(backend).await;
    let s = shop(&obol).await;
    let (status, link) = post_as(
        &obol,
        Some(&s.token),
        "/v1/payment-links",
        json!({"email": "ana@example.com", "items": [{"product_id": s.riesling, "quantity": 1}],
               "shipping_method_id": s.shipping,
               "shipping_address": {"first_name": "Ana", "last_name": "Lopez", "street": "Hauptstr. 1", "city": "Mainz", "zip": "55116", "country": "DE"}}),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let token = link["token"].as_str().unwrap();
    assert_eq!(token.len(), 43);
    assert_eq!(
        link["payment_url"],
        format!("{}/pay/{token}", obol.base_url)
    );
    let pi = link["payment_intent_id"].as_str().unwrap();

    // The page's view: no credential, nothing but what it needs.
    let (status, page) = get_public(&obol, &format!("/v1/payment-links/{token}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["amount"].as_i64(), page["currency"].as_str()),
        (Some(2499), Some("eur"))
    );
    assert!(page["client_secret"].as_str().unwrap().starts_with(pi));
    assert!(
        !page.to_string().contains("Hauptstr"),
        "addresses never reach the page: {page}"
    );

    // Completing before the card authorized: refused, and the link still pays.
    let (status, early) = post_as(
        &obol,
        None,
        &format!("/v1/payment-links/{token}/complete"),
        json!({"payment_intent_id": pi}),
    )
    .await;
    assert_eq!(
        (status, early["error"]["code"].as_str()),
        (422, Some("payment_not_authorized")),
        "{early}"
    );
    let declined = pay_on_page(&obol, pi, "pm_card_chargeDeclined").await;
    assert!(
        declined.get("error").is_some() || declined["status"] != "requires_capture",
        "{declined}"
    );
    let paid = pay_on_page(&obol, pi, "pm_card_visa").await;
    assert_eq!(paid["status"], "requires_capture", "{paid}");
    let (status, other) = post_as(
        &obol,
        None,
        &format!("/v1/payment-links/{token}/complete"),
        json!({"payment_intent_id": "pi_other"}),
    )
    .await;
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (422, Some("payment_intent_mismatch"))
    );
    let (status, done) = post_as(
        &obol,
        None,
        &format!("/v1/payment-links/{token}/complete"),
        json!({"payment_intent_id": pi}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["status"].as_str(), done["order_status"].as_str()),
        (Some("completed"), Some("confirmed"))
    );

    // Captured on confirmation (capture_on: confirmed); the agent sees it.
    let order = done["order_id"].as_str().unwrap();
    eventually(
        &obol,
        &format!("/v1/payments/{}", done["payment_id"].as_str().unwrap()),
        |p| p["status"] == "completed",
    )
    .await;
    let (status, st) = obol
        .get_as(&format!("/v1/payment-intents/{pi}/status"), &s.token)
        .await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(
        (st["payment_link_status"].as_str(), st["order_id"].as_str()),
        (Some("completed"), Some(order))
    );

    // Used now; an unknown token is 404; someone else's token cannot see the status.
    let (status, used) = get_public(&obol, &format!("/v1/payment-links/{token}")).await;
    assert_eq!(
        (status, used["error"]["code"].as_str()),
        (410, Some("payment_link_used"))
    );
    let (status, again) = post_as(
        &obol,
        None,
        &format!("/v1/payment-links/{token}/complete"),
        json!({"payment_intent_id": pi}),
    )
    .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (410, Some("payment_link_used"))
    );
    let (status, _) = get_public(&obol, &format!("/v1/payment-links/{}", "A".repeat(43))).await;
    assert_eq!(status, 404);
    let (status, _) = get_public(&obol, "/v1/payment-links/short").await;
    assert_eq!(status, 404);
    let stranger = obol.create_customer("member-8").await;
    let stranger = obol
        .customer_token(stranger["id"].as_str().unwrap(), 900)
        .await;
    let (status, _) = obol
        .get_as(&format!("/v1/payment-intents/{pi}/status"), &stranger)
        .await;
    assert_eq!(status, 404);
}

async fn twenty_concurrent_completions_make_one_order_and_one_capture(backend: Backend) {
    let obol = Obol::start(backend).await;
    let s = shop(&obol).await;
    let (status, link) = obol
        .post(
            "/v1/payment-links",
            json!({"email": "ana@example.com", "items": [{"product_id": s.sekt, "quantity": 2}]}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let token = link["token"].as_str().unwrap().to_string();
    let pi = link["payment_intent_id"].as_str().unwrap().to_string();
    pay_on_page(&obol, &pi, "pm_card_visa").await;
    let calls = (0..20).map(|_| {
        let path = format!("/v1/payment-links/{token}/complete");
        let pi = pi.clone();
        let obol = &obol;
        async move { post_as(obol, None, &path, json!({"payment_intent_id": pi})).await }
    });
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "{results:?}");
    for (status, body) in &results {
        assert!(
            *status == 200
                || (*status == 409 && body["error"]["code"] == "payment_link_busy")
                || (*status == 410 && body["error"]["code"] == "payment_link_used"),
            "{status} {body}"
        );
    }
    let order = link["order_id"].as_str().unwrap();
    let (_, payments) = obol.get(&format!("/v1/payments?order_id={order}")).await;
    assert_eq!(payments["data"].as_array().unwrap().len(), 1, "{payments}");
    let base = sandbox(&obol).await;
    let intent: Value = reqwest::Client::new()
        .get(format!("{base}/v1/payment_intents/{pi}"))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            intent["status"].as_str(),
            intent["amount_received"].as_i64()
        ),
        (Some("succeeded"), Some(3000)),
        "{intent}"
    );
    let (_, o) = obol.get(&format!("/v1/orders/{order}")).await;
    let confirmations = o["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to"] == "confirmed")
        .count();
    assert_eq!(confirmations, 1, "{o}");
}

async fn a_price_change_before_completion_releases_the_authorization(backend: Backend) {
    let obol = Obol::start(backend).await;
    let s = shop(&obol).await;
    let (_, link) = post_as(
        &obol,
        Some(&s.token),
        "/v1/payment-links",
        json!({"email": "ana@example.com", "items": [{"product_id": s.riesling, "quantity": 1}]}),
    )
    .await;
    let token = link["token"].as_str().unwrap();
    let pi = link["payment_intent_id"].as_str().unwrap();
    pay_on_page(&obol, pi, "pm_card_visa").await;
    let r = obol
        .http
        .patch(obol.url(&format!("/v1/products/{}", s.riesling)))
        .bearer_auth(&obol.api_key)
        .json(&json!({"unit_amount": 2500}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = post_as(
        &obol,
        None,
        &format!("/v1/payment-links/{token}/complete"),
        json!({"payment_intent_id": pi}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("amount_mismatch")),
        "{body}"
    );
    // Nothing charged: the authorization is released, the order not confirmed.
    let order = link["order_id"].as_str().unwrap();
    let (_, o) = obol.get(&format!("/v1/orders/{order}")).await;
    assert_eq!(o["status"], "pending", "{o}");
    assert!(
        o["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["cause"]["ref"]
                .as_str()
                .is_some_and(|r| r.starts_with("amount_mismatch"))),
        "the mismatch is on the timeline: {o}"
    );
    let (_, st) = obol.get(&format!("/v1/payment-intents/{pi}/status")).await;
    assert_eq!(
        (
            st["stripe_status"].as_str(),
            st["payment_link_status"].as_str()
        ),
        (Some("canceled"), Some("canceled")),
        "{st}"
    );
    let (status, _) = get_public(&obol, &format!("/v1/payment-links/{token}")).await;
    assert_eq!(status, 410);
}

/// Moves every link's expiry to its creation, as if its time had passed.
async fn expire_links(obol: &Obol, backend: Backend) {
    use sqlx::Connection;
    let sql = "UPDATE payment_links SET expires_at = created_at";
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&obol.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&obol.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

async fn an_expired_link_answers_410(backend: Backend) {
    let obol = Obol::start(backend).await;
    let s = shop(&obol).await;
    let (_, order) = post_as(
        &obol,
        Some(&s.token),
        "/v1/orders",
        json!({"email": "ana@example.com", "items": [{"product_id": s.sekt, "quantity": 1}]}),
    )
    .await;
    // A link for an existing order, made by the agent that made the order.
    let (status, link) = post_as(
        &obol,
        Some(&s.token),
        "/v1/payment-links",
        json!({"order_id": order["id"]}),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["order_id"], order["id"]);
    let token = link["token"].as_str().unwrap();
    pay_on_page(
        &obol,
        link["payment_intent_id"].as_str().unwrap(),
        "pm_card_visa",
    )
    .await;
    expire_links(&obol, backend).await;
    let (status, body) = get_public(&obol, &format!("/v1/payment-links/{token}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("payment_link_expired"))
    );
    let (status, body) = post_as(
        &obol,
        None,
        &format!("/v1/payment-links/{token}/complete"),
        json!({"payment_intent_id": link["payment_intent_id"]}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("payment_link_expired"))
    );
    let (_, o) = obol
        .get(&format!("/v1/orders/{}", order["id"].as_str().unwrap()))
        .await;
    assert_eq!(o["status"], "pending");
    // Another customer cannot make a link for this order.
    let other = obol.create_customer("member-9").await;
    let other = obol
        .customer_token(other["id"].as_str().unwrap(), 900)
        .await;
    let (status, body) = post_as(
        &obol,
        Some(&other),
        "/v1/payment-links",
        json!({"order_id": order["id"]}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("order_not_found"))
    );
}

async fn link_token_routes_are_rate_limited_per_address(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_HTTP__PUBLIC_REQUESTS_PER_MINUTE", "5")
        .start()
        .await;
    let unknown = format!("/v1/payment-links/{}", "B".repeat(43));
    for _ in 0..5 {
        let (status, _) = get_public(&obol, &unknown).await;
        assert_eq!(status, 404);
    }
    let r = obol.http.get(obol.url(&unknown)).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    // The API's credentialed routes are not affected.
    let (status, _) = obol.get("/v1/products").await;
    assert_eq!(status, 200);
}

/// An order whose own (automatic-capture) intent existed before the link:
/// the link reuses it, the card pays it, the webhook confirms the order
/// first, and completing the link then succeeds instead of refusing.
async fn a_link_that_reused_the_orders_paid_intent_completes(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (status, order) = obol
        .post(
            "/v1/orders",
            json!({"email": "guest@example.com", "currency": "eur",
                   "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let (status, intent) = obol
        .post("/v1/payment-intents", json!({"order_id": order["id"]}))
        .await;
    assert_eq!(status, 201, "{intent}");
    let (status, link) = obol
        .post("/v1/payment-links", json!({"order_id": order["id"]}))
        .await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(
        link["payment_intent_id"], intent["id"],
        "one open intent per order"
    );
    let pi = intent["id"].as_str().unwrap();
    let paid = pay_on_page(&obol, pi, "pm_card_visa").await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let order_path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    eventually(&obol, &order_path, |o| o["status"] == "confirmed").await;
    eventually(
        &obol,
        &format!("/v1/payments/{}", intent["payment_id"].as_str().unwrap()),
        |p| p["status"] == "completed",
    )
    .await;
    let token = link["token"].as_str().unwrap();
    let (status, done) = post_as(
        &obol,
        None,
        &format!("/v1/payment-links/{token}/complete"),
        json!({"payment_intent_id": pi}),
    )
    .await;
    assert_eq!(
        (status, done["status"].as_str()),
        (200, Some("completed")),
        "{done}"
    );
    let (_, st) = obol.get(&format!("/v1/payment-intents/{pi}/status")).await;
    assert_eq!(st["payment_link_status"], "completed");
}
