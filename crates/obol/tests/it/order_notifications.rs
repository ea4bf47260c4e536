//! Order notifications and the order timeline, on every path that moves
//! an order: created confirmed by a pay-first checkout, confirmed by its
//! payment's webhook, moved and cancelled by PATCH.

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol, Received, TestReceiver};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    every_order_move_is_notified_once_and_on_the_timeline,
    a_paid_order_first_order_is_confirmed_by_its_webhook_and_notified,
);

const ORDER_EVENTS: [&str; 4] = [
    "order.confirmed",
    "order.shipped",
    "order.delivered",
    "order.cancelled",
];

async fn order_endpoint(obol: &Obol) -> TestReceiver {
    let receiver = TestReceiver::start(0).await;
    let (status, ep) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": receiver.url, "event_types": ORDER_EVENTS}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    receiver
}

/// (type, order id, status) of each order notification received, sorted:
/// deliveries run concurrently, so their arrival order is not promised
/// (receivers order by `timestamp`).
fn order_events(got: &[Received]) -> Vec<(String, String, String)> {
    let mut events: Vec<_> = got
        .iter()
        .map(|r| {
            let b = r.json();
            (
                b["type"].as_str().unwrap().to_string(),
                b["data"]["order"]["id"].as_str().unwrap().to_string(),
                b["data"]["order"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    events.sort();
    events
}

fn order_body(pi: Option<&str>) -> Value {
    json!({
        "email": "ana@example.com", "currency": "eur",
        "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 2}],
        "shipping": {"name": "Standard", "amount": 999},
        "payment_reference": pi
    })
}

async fn patch(obol: &Obol, id: &str, status: &str) -> (u16, Value) {
    let r = obol
        .http
        .patch(obol.url(&format!("/v1/orders/{id}")))
        .bearer_auth(&obol.api_key)
        .json(&json!({ "status": status }))
        .send()
        .await
        .unwrap();
    crate::helpers::status_json(r).await
}

fn timeline(order: &Value) -> Vec<(Option<String>, String, String)> {
    order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().map(str::to_string),
                e["to"].as_str().unwrap().to_string(),
                e["cause"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn entry(from: Option<&str>, to: &str, cause: &str) -> (Option<String>, String, String) {
    (from.map(str::to_string), to.to_string(), cause.to_string())
}

async fn every_order_move_is_notified_once_and_on_the_timeline(backend: Backend) {
    let obol = Obol::start(backend).await;
    let receiver = order_endpoint(&obol).await;

    // Pay first: the order is created confirmed.
    let (status, pi) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 4999, "currency": "eur"}),
        )
        .await;
    assert_eq!(status, 201, "{pi}");
    let pi = pi["id"].as_str().unwrap().to_string();
    let base = sandbox(&obol).await;
    let confirmed = stripe_post(
        &base,
        &format!("/v1/payment_intents/{pi}/confirm"),
        &[
            ("payment_method", "pm_card_visa"),
            ("return_url", "https://shop.example.com/r"),
        ],
    )
    .await;
    assert_eq!(confirmed["status"], "requires_capture", "{confirmed}");
    let (status, order) = obol.post("/v1/orders", order_body(Some(&pi))).await;
    assert_eq!(status, 201, "{order}");
    let paid = order["id"].as_str().unwrap().to_string();

    for to in ["shipped", "shipped", "delivered"] {
        let (status, body) = patch(&obol, &paid, to).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], to);
    }
    // Backwards is refused and notifies nothing.
    let (status, body) = patch(&obol, &paid, "confirmed").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_order_transition"))
    );

    // A pending order cancelled.
    let (status, order) = obol.post("/v1/orders", order_body(None)).await;
    assert_eq!(status, 201, "{order}");
    let cancelled = order["id"].as_str().unwrap().to_string();
    let (status, body) = patch(&obol, &cancelled, "cancelled").await;
    assert_eq!(status, 200, "{body}");

    let got = receiver
        .until("four order notifications", |g| g.len() >= 4)
        .await;
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    let mut expected = vec![
        s("order.confirmed", &paid, "confirmed"),
        s("order.shipped", &paid, "shipped"),
        s("order.delivered", &paid, "delivered"),
        s("order.cancelled", &cancelled, "cancelled"),
    ];
    expected.sort();
    assert_eq!(order_events(&got), expected);
    let mut ids: Vec<&str> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one message per move");
    let (_, order) = obol.get(&format!("/v1/orders/{paid}")).await;
    assert_eq!(
        timeline(&order),
        vec![
            entry(None, "confirmed", "api"),
            entry(Some("confirmed"), "shipped", "api"),
            entry(Some("shipped"), "delivered", "api"),
        ]
    );
    let (_, order) = obol.get(&format!("/v1/orders/{cancelled}")).await;
    assert_eq!(
        timeline(&order),
        vec![
            entry(None, "pending", "api"),
            entry(Some("pending"), "cancelled", "api")
        ]
    );
}

async fn a_paid_order_first_order_is_confirmed_by_its_webhook_and_notified(backend: Backend) {
    let obol = Obol::start(backend).await;
    let receiver = order_endpoint(&obol).await;
    let (status, order) = obol.post("/v1/orders", order_body(None)).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_string();
    let guest = order["guest_token"].as_str().unwrap().to_string();
    let r = obol
        .http
        .post(obol.url("/v1/payment-intents"))
        .json(&json!({"order_id": id, "guest_token": guest}))
        .send()
        .await
        .unwrap();
    let (status, intent) = crate::helpers::status_json(r).await;
    assert_eq!(status, 201, "{intent}");
    let base = sandbox(&obol).await;
    let paid = stripe_post(
        &base,
        &format!(
            "/v1/payment_intents/{}/confirm",
            intent["id"].as_str().unwrap()
        ),
        &[
            ("payment_method", "pm_card_visa"),
            ("return_url", "https://shop.example.com/r"),
        ],
    )
    .await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let order = eventually(&obol, &format!("/v1/orders/{id}"), |o| {
        o["status"] == "confirmed"
    })
    .await;
    let tl = timeline(&order);
    assert_eq!(tl.len(), 2, "{tl:?}");
    assert_eq!(tl[0], entry(None, "pending", "api"));
    assert_eq!(
        (tl[1].0.as_deref(), tl[1].1.as_str()),
        (Some("pending"), "confirmed")
    );
    assert!(
        matches!(tl[1].2.as_str(), "webhook" | "reconcile"),
        "{tl:?}"
    );
    let got = receiver.until("order.confirmed", |g| !g.is_empty()).await;
    assert_eq!(
        order_events(&got),
        vec![(
            "order.confirmed".to_string(),
            id.clone(),
            "confirmed".to_string()
        )]
    );
}
