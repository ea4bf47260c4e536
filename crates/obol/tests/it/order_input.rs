//! What an order's input may say: a `payment_reference` of another
//! customer answers like an unknown one, and addresses are typed.

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};
use crate::inbox::{sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    another_customers_payment_reference_answers_like_an_unknown_one,
    addresses_are_typed_with_iso_countries,
);

fn order_body(extra: Value) -> Value {
    let mut body = json!({
        "email": "ana@example.com", "currency": "eur",
        "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 2}],
        "shipping": {"name": "Standard", "amount": 999},
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn another_customers_payment_reference_answers_like_an_unknown_one(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ana = obol.create_customer("ana").await;
    let bob = obol.create_customer("bob").await;
    let (status, pi) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 4999, "currency": "eur", "customer_id": ana["id"]}),
        )
        .await;
    assert_eq!(status, 201, "{pi}");
    let ana_pi = pi["id"].as_str().unwrap();
    let base = sandbox(&obol).await;
    let confirmed = stripe_post(
        &base,
        &format!("/v1/payment_intents/{ana_pi}/confirm"),
        &[
            ("payment_method", "pm_card_visa"),
            ("return_url", "https://shop.example.com/return"),
        ],
    )
    .await;
    assert_eq!(confirmed["status"], "requires_capture", "{confirmed}");

    // Only the secret key creates orders; it names the customer they are for.
    let answer = |(status, body): (u16, Value)| {
        (
            status,
            body["error"]["code"].clone(),
            body["error"]["message"].clone(),
        )
    };
    let someone_elses = answer(
        obol.post(
            "/v1/orders",
            order_body(json!({"payment_reference": ana_pi, "customer_id": bob["id"]})),
        )
        .await,
    );
    let unknown = answer(
        obol.post(
            "/v1/orders",
            order_body(
                json!({"payment_reference": "pi_3UnknownIntent000000000", "customer_id": bob["id"]}),
            ),
        )
        .await,
    );
    assert_eq!(someone_elses.0, 422, "{someone_elses:?}");
    assert_eq!(someone_elses, unknown);
    // Ana's own order may use it.
    let (status, order) = obol
        .post(
            "/v1/orders",
            order_body(json!({"payment_reference": ana_pi, "customer_id": ana["id"]})),
        )
        .await;
    assert_eq!(status, 201, "{order}");
}

async fn addresses_are_typed_with_iso_countries(backend: Backend) {
    let obol = Obol::start(backend).await;
    let good = json!({"first_name": "Ana", "last_name": "Lima", "street": "Weinstr. 1",
        "city": "Mainz", "zip": "55116", "country": "de"});
    let (status, order) = obol
        .post(
            "/v1/orders",
            order_body(json!({"shipping_address": good,
                "billing_address": {"email": "billing@example.com", "country": "DE", "company": "Lima GmbH"}})),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["shipping_address"]["country"], "DE");
    assert_eq!(order["billing_address"]["email"], "billing@example.com");

    let with = |k: &str, v: Value| {
        let mut a = good.clone();
        a[k] = v;
        a
    };
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("city");
    // (address, status, code, and whether a billing address may be so).
    let cases = [
        (with("admin", json!(true)), 400, "invalid_body", false),
        (
            with("city", json!({"nested": "x"})),
            400,
            "invalid_body",
            false,
        ),
        (with("zip", json!(55116)), 400, "invalid_body", false),
        (with("country", json!("XX")), 422, "field_invalid", false),
        (
            with("country", json!("Germany")),
            422,
            "field_invalid",
            false,
        ),
        (
            with("street", json!("x".repeat(201))),
            422,
            "field_too_long",
            false,
        ),
        (
            with("first_name", json!("Ana\u{0}")),
            422,
            "field_invalid",
            false,
        ),
        (
            with("email", json!("not-an-address")),
            422,
            "invalid_email",
            false,
        ),
        // A billing address may leave out all but the country.
        (missing, 400, "invalid_body", true),
        (json!("Weinstr. 1, Mainz"), 400, "invalid_body", false),
    ];
    for (address, status, code, billing_ok) in cases {
        for field in ["shipping_address", "billing_address"] {
            let (got, body) = obol
                .post("/v1/orders", order_body(json!({ field: address.clone() })))
                .await;
            if field == "billing_address" && billing_ok {
                assert_eq!(got, 201, "{body}");
                continue;
            }
            assert_eq!(
                (got, body["error"]["code"].as_str()),
                (status, Some(code)),
                "{field} {address}: {body}"
            );
        }
    }
}
