//! Orders: totals computed by obol, guest and customer ownership, the
//! status transition table, and amounts in zero- and three-decimal
//! currencies.

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};
use crate::on_both_backends;

on_both_backends!(
    a_guest_order_is_priced_by_obol_and_seen_only_with_its_token,
    a_customer_sees_only_their_own_orders,
    orders_move_along_the_transition_table_only,
    amounts_follow_each_currencys_rules,
    a_customer_token_cannot_price_its_own_order,
);

fn wine_order() -> Value {
    json!({
        "email": "ana@example.com", "currency": "eur",
        "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 2}],
        "shipping": {"name": "Standard", "amount": 999},
        "shipping_address": {"first_name": "Ana", "last_name": "Lima", "street": "Weinstr. 1", "city": "Mainz", "zip": "55116", "country": "DE"},
        "total": {"amount": 1, "currency": "eur"}
    })
}

async fn get_with_guest(obol: &Obol, id: &str, token: &str) -> (u16, Value) {
    let r = obol
        .http
        .get(obol.url(&format!("/v1/orders/{id}")))
        .header("x-guest-token", token)
        .send()
        .await
        .unwrap();
    crate::helpers::status_json(r).await
}

async fn a_guest_order_is_priced_by_obol_and_seen_only_with_its_token(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (status, order) = obol.post("/v1/orders", wine_order()).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(
        order["total"],
        json!({"amount": 4999, "currency": "eur"}),
        "the client's total is ignored"
    );
    assert_eq!(order["subtotal"]["amount"], 4000);
    assert_eq!(order["status"], "pending");
    assert_eq!(order["customer_id"], Value::Null);
    let number = order["number"].as_str().unwrap();
    assert!(
        number.starts_with("ORD-") && number.len() == "ORD-20261129-A1B2C".len(),
        "{number}"
    );
    let token = order["guest_token"].as_str().unwrap();
    assert!(token.starts_with("obol_gt_"));
    let id = order["id"].as_str().unwrap();

    let (status, seen) = get_with_guest(&obol, id, token).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["total"]["amount"], 4999);
    assert!(seen.get("guest_token").is_none());
    let r = obol
        .http
        .get(obol.url(&format!("/v1/orders/{id}?guest_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (_, other) = obol.post("/v1/orders", wine_order()).await;
    let (status, body) = get_with_guest(&obol, id, other["guest_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("order_not_found"))
    );
    let (status, _) = get_with_guest(&obol, "ord_guessed", token).await;
    assert_eq!(status, 404);
    let r = obol
        .http
        .get(obol.url(&format!("/v1/orders/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no credential at all");
    let (status, _) = obol.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(status, 200, "the secret key sees every order");
}

async fn a_customer_sees_only_their_own_orders(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ana = obol.create_customer("ana").await;
    let bob = obol.create_customer("bob").await;
    let ana_token = obol.customer_token(ana["id"].as_str().unwrap(), 600).await;
    let bob_token = obol.customer_token(bob["id"].as_str().unwrap(), 600).await;
    // The backend creates (and prices) Ana's order; her token reads it.
    let mut for_ana = wine_order();
    for_ana["customer_id"] = ana["id"].clone();
    let (status, order) = obol.post("/v1/orders", for_ana).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["customer_id"], ana["id"]);
    assert!(order.get("guest_token").is_none());
    let id = order["id"].as_str().unwrap();
    let (status, _) = obol.get_as(&format!("/v1/orders/{id}"), &ana_token).await;
    assert_eq!(status, 200);
    let (status, body) = obol.get_as(&format!("/v1/orders/{id}"), &bob_token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("order_not_found"))
    );

    // Ana can create no order, in her name or in Bob's.
    let mut for_bob = wine_order();
    for_bob["customer_id"] = bob["id"].clone();
    let r = obol
        .http
        .post(obol.url("/v1/orders"))
        .bearer_auth(&ana_token)
        .json(&for_bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The backend may.
    let (status, for_bob) = obol.post("/v1/orders", for_bob).await;
    assert_eq!(status, 201);
    assert_eq!(for_bob["customer_id"], bob["id"]);
}

/// Finding: a customer token created an order of its own pricing
/// (`unit_amount: 5`), paid it and had it confirmed. Until a catalog
/// exists, only the secret key prices orders; the customer pays them.
async fn a_customer_token_cannot_price_its_own_order(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ana = obol.create_customer("ana").await;
    let ana_id = ana["id"].as_str().unwrap();
    let token = obol.customer_token(ana_id, 600).await;
    let cheap = json!({
        "email": "ana@example.com", "currency": "eur",
        "line_items": [{"name": "Riesling 2022", "unit_amount": 5, "quantity": 1}]
    });
    for body in [cheap.clone(), {
        let mut b = cheap.clone();
        b["customer_id"] = ana["id"].clone();
        b
    }] {
        let r = obol
            .http
            .post(obol.url("/v1/orders"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, body) = crate::helpers::status_json(r).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("secret_key_required")),
            "{body}"
        );
    }

    // The secret key still prices orders, for Ana too.
    let mut for_ana = wine_order();
    for_ana["customer_id"] = ana["id"].clone();
    let (status, order) = obol.post("/v1/orders", for_ana).await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["id"].as_str().unwrap();

    // Ana pays the order the backend created, at the backend's price.
    let r = obol
        .http
        .post(obol.url("/v1/payment-intents"))
        .bearer_auth(&token)
        .json(&json!({ "order_id": order_id }))
        .send()
        .await
        .unwrap();
    let (status, intent) = crate::helpers::status_json(r).await;
    assert_eq!(status, 201, "{intent}");
    assert_eq!(intent["amount"], 4999);

    // A pay-first authorization stays open to her: it pays nothing until
    // the backend creates an order of exactly that total.
    let r = obol
        .http
        .post(obol.url("/v1/payment-intents"))
        .bearer_auth(&token)
        .json(&json!({"amount": 4999, "currency": "eur"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn orders_move_along_the_transition_table_only(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (_, order) = obol.post("/v1/orders", wine_order()).await;
    let id = order["id"].as_str().unwrap();
    let patch = |status: &'static str| {
        let req = obol
            .http
            .patch(obol.url(&format!("/v1/orders/{id}")))
            .bearer_auth(&obol.api_key)
            .json(&json!({ "status": status }));
        async move { crate::helpers::status_json(req.send().await.unwrap()).await }
    };
    let (status, body) = patch("shipped").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_order_transition"))
    );
    for next in ["confirmed", "shipped", "delivered"] {
        let (status, body) = patch(next).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some(next)),
            "{body}"
        );
    }
    let (status, body) = patch("cancelled").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_order_transition"))
    );
    let (status, body) = patch("lost").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );

    let (_, second) = obol.post("/v1/orders", wine_order()).await;
    let r = obol
        .http
        .patch(obol.url(&format!("/v1/orders/{}", second["id"].as_str().unwrap())))
        .header("x-guest-token", second["guest_token"].as_str().unwrap())
        .json(&json!({"status": "cancelled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a guest cannot move an order");
}

async fn amounts_follow_each_currencys_rules(backend: Backend) {
    let obol = Obol::start(backend).await;
    let order = |currency: &str, unit: i64, qty: i64, shipping: i64| {
        json!({"email": "ana@example.com", "currency": currency,
            "line_items": [{"name": "Item", "unit_amount": unit, "quantity": qty}],
            "shipping": {"name": "Post", "amount": shipping}})
    };
    let (status, jpy) = obol.post("/v1/orders", order("JPY", 500, 2, 0)).await;
    assert_eq!(status, 201, "{jpy}");
    assert_eq!(jpy["total"], json!({"amount": 1000, "currency": "jpy"}));
    let (status, kwd) = obol.post("/v1/orders", order("kwd", 1000, 1, 990)).await;
    assert_eq!(status, 201, "{kwd}");
    assert_eq!(kwd["total"], json!({"amount": 1990, "currency": "kwd"}));
    for (body, code) in [
        (order("kwd", 1005, 1, 0), "amount_precision"),
        (order("kwd", 1000, 1, 5), "amount_precision"),
        (order("eur", 0, 1, 0), "amount_not_positive"),
        (order("eur", -100, 1, 0), "amount_not_positive"),
        (order("eur", 100, 0, 0), "invalid_quantity"),
        (order("eur", 60_000_000, 2, 0), "amount_too_large"),
        (order("xyz", 100, 1, 0), "currency_unsupported"),
        (order("eur", 100, 1, -1), "amount_negative"),
    ] {
        let (status, b) = obol.post("/v1/orders", body.clone()).await;
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (422, Some(code)),
            "{body} -> {b}"
        );
    }
}
