//! Saved cards: one Stripe customer per member however many calls race,
//! the card-update page's API (a SetupIntent confirmed on the sandbox the
//! way the page's Stripe.js does, then `complete`), Stripe's card events
//! applied in any order, and who may see what.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{status_json, Backend, Obol};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    twenty_concurrent_links_for_a_new_member_make_one_stripe_customer,
    a_card_saved_through_the_link_becomes_the_default_and_the_next_replaces_it,
    card_events_apply_in_any_order,
    another_customers_token_or_setup_intent_gets_nothing,
    expired_and_unknown_links_say_so,
);

const SECRET: &str = "whsec_obol_test_saved_cards";

async fn start(backend: Backend) -> Obol {
    Obol::builder(backend)
        .env("OBOL_STRIPE__WEBHOOK_SECRETS", SECRET)
        .env("OBOL_INVOICES__BUSINESS_NAME", "Tennisclub Grün-Weiss")
        // One link saves several cards within a second here; a member's
        // own budget (2 Stripe calls/s) would refuse the fifth.
        .env("OBOL_STRIPE__CUSTOMER_RATE_LIMIT_PER_SECOND", "20")
        .start()
        .await
}

/// `POST path` with the secret key and no body at all.
async fn post_empty(obol: &Obol, path: &str) -> (u16, Value) {
    let r = obol
        .http
        .post(obol.url(path))
        .bearer_auth(&obol.api_key)
        .send()
        .await
        .unwrap();
    status_json(r).await
}

/// A public (token) route: no credential.
async fn public_post(obol: &Obol, path: &str, body: Value) -> (u16, Value) {
    let r = obol
        .http
        .post(obol.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    status_json(r).await
}

/// A link for `customer`; (its token, the whole answer).
pub async fn link(obol: &Obol, customer: &str) -> (String, Value) {
    let (status, body) = obol
        .post(
            &format!("/v1/customers/{customer}/card-update-links"),
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    (token, body)
}

/// The page's side: the link's SetupIntent, confirmed on the sandbox with
/// `card` (as Stripe.js would), then `complete`.
pub async fn save_card(obol: &Obol, token: &str, card: &str) -> Value {
    let (status, si) = public_post(
        obol,
        &format!("/v1/public/card-updates/{token}/setup-intent"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{si}");
    assert!(si["client_secret"]
        .as_str()
        .unwrap()
        .starts_with(si["id"].as_str().unwrap()));
    assert!(si["publishable_key"]
        .as_str()
        .unwrap()
        .starts_with("pk_test_"));
    let id = si["id"].as_str().unwrap();
    let base = sandbox(obol).await;
    let confirmed = stripe_post(
        &base,
        &format!("/v1/setup_intents/{id}/confirm"),
        &[
            ("payment_method", card),
            ("return_url", "https://club.example.com/cards"),
        ],
    )
    .await;
    assert_eq!(confirmed["status"], "succeeded", "{confirmed}");
    let (status, done) = public_post(
        obol,
        &format!("/v1/public/card-updates/{token}/complete"),
        json!({"setup_intent_id": id}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    done["payment_method"].clone()
}

async fn cards(obol: &Obol, customer: &str) -> Vec<Value> {
    let (status, body) = obol
        .get(&format!("/v1/customers/{customer}/payment-methods"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Waits until every stored event is applied or ignored and at least
/// `n` of each of `types` arrived.
async fn inbox_settled(obol: &Obol, types: &[&str], n: usize) -> Vec<Value> {
    let list = eventually(obol, "/v1/webhook-events?limit=100", |b| {
        b["data"].as_array().is_some_and(|d| {
            d.iter()
                .all(|e| e["status"] == "applied" || e["status"] == "ignored")
                && types
                    .iter()
                    .all(|t| d.iter().filter(|e| e["type"] == *t).count() >= n)
        })
    })
    .await;
    list["data"].as_array().unwrap().clone()
}

async fn twenty_concurrent_links_for_a_new_member_make_one_stripe_customer(backend: Backend) {
    let obol = start(backend).await;
    let customer = obol.create_customer("member-20").await;
    let id = customer["id"].as_str().unwrap();
    assert_eq!(customer["stripe_customer_id"], Value::Null);
    let path = format!("/v1/customers/{id}/card-update-links");
    let calls = (0..20).map(|i| {
        let obol = &obol;
        let path = path.clone();
        async move {
            // Half without a body at all: it is optional.
            if i % 2 == 0 {
                post_empty(obol, &path).await
            } else {
                obol.post(&path, json!({"ttl_seconds": 86400})).await
            }
        }
    });
    let answers = join_all(calls).await;
    let mut stripe_ids = Vec::new();
    let mut urls = Vec::new();
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
        stripe_ids.push(body["stripe_customer_id"].as_str().unwrap().to_string());
        let url = body["url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/pay/cards/", obol.base_url)),
            "{url}"
        );
        assert_eq!(url.rsplit('/').next().unwrap().len(), 43, "{url}");
        urls.push(url.to_string());
    }
    stripe_ids.dedup();
    assert_eq!(stripe_ids.len(), 1, "{stripe_ids:?}");
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), 20, "every call mints its own link");
    let (_, after) = obol.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(after["stripe_customer_id"], stripe_ids[0].as_str());

    // The sandbox has exactly one Stripe customer for the member, with
    // obol's id, the e-mail and the name.
    let base = sandbox(&obol).await;
    let list: Value = reqwest::Client::new()
        .get(format!("{base}/v1/customers?limit=100"))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let theirs: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metadata"]["obol_customer_id"] == id)
        .collect();
    assert_eq!(theirs.len(), 1, "{list}");
    assert_eq!(theirs[0]["id"], stripe_ids[0].as_str());
    assert_eq!(theirs[0]["email"], "member-20@example.com");
    assert_eq!(theirs[0]["name"], "Ana");

    // A TTL outside 300–2592000 is refused.
    for ttl in [299, 2_592_001] {
        let (status, body) = obol.post(&path, json!({"ttl_seconds": ttl})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("ttl_out_of_range")),
            "{body}"
        );
    }
}

async fn a_card_saved_through_the_link_becomes_the_default_and_the_next_replaces_it(
    backend: Backend,
) {
    let obol = start(backend).await;
    let customer = obol.create_customer("member-1").await;
    let id = customer["id"].as_str().unwrap();
    let (token, made) = link(&obol, id).await;
    let cus = made["stripe_customer_id"].as_str().unwrap();
    assert!(cus.starts_with("cus_"), "{made}");
    assert!(cards(&obol, id).await.is_empty());

    let visa = save_card(&obol, &token, "pm_card_visa").await;
    assert_eq!(
        (&visa["brand"], &visa["last4"], &visa["default"]),
        (&json!("visa"), &json!("4242"), &json!(true)),
        "{visa}"
    );
    assert!(visa["exp_month"]
        .as_i64()
        .is_some_and(|m| (1..=12).contains(&m)));
    let listed = cards(&obol, id).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], visa["id"]);
    assert_eq!(listed[0]["default"], true);
    // The customer's own token sees the same.
    let ct = obol.customer_token(id, 600).await;
    let (status, own) = obol
        .get_as(&format!("/v1/customers/{id}/payment-methods"), &ct)
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["data"][0]["id"], visa["id"]);

    // The same link saves a second card, which replaces the first as the default.
    let mastercard = save_card(&obol, &token, "pm_card_mastercard").await;
    assert_eq!(
        (
            &mastercard["brand"],
            &mastercard["last4"],
            &mastercard["default"]
        ),
        (&json!("mastercard"), &json!("4444"), &json!(true)),
        "{mastercard}"
    );
    assert_ne!(mastercard["id"], visa["id"]);
    let check = |listed: Vec<Value>| {
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(listed[0]["id"], mastercard["id"], "the default first");
        assert_eq!(listed[0]["default"], true);
        assert_eq!(listed[1]["id"], visa["id"]);
        assert_eq!(listed[1]["default"], false);
    };
    check(cards(&obol, id).await);
    // Stripe's events for both cards arrive afterwards, in any order, in
    // the same second: none brings the first card back as the default.
    let events = inbox_settled(
        &obol,
        &[
            "payment_method.attached",
            "setup_intent.succeeded",
            "customer.updated",
        ],
        2,
    )
    .await;
    assert!(
        events.iter().all(|e| e["status"] == "applied"
            || e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not newer") || r.contains("older"))),
        "{events:?}"
    );
    check(cards(&obol, id).await);
    // Stripe agrees.
    let base = sandbox(&obol).await;
    let them: Value = reqwest::Client::new()
        .get(format!("{base}/v1/customers/{cus}"))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        them["invoice_settings"]["default_payment_method"],
        mastercard["id"]
    );
    // What charge runs read.
    let store = obol.db.store().await;
    let mut h = store.acquire().await.unwrap();
    let default = h
        .conn()
        .get_default_payment_method(&obol::context::AccountId::platform(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        default.stripe_payment_method_id,
        mastercard["id"].as_str().unwrap()
    );
    assert_eq!(default.stripe_customer_id, cus);
    assert_eq!(default.last4.as_deref(), Some("4444"));

    // Completing an intent that has not succeeded is refused.
    let (status, si) = public_post(
        &obol,
        &format!("/v1/public/card-updates/{token}/setup-intent"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{si}");
    let (status, body) = public_post(
        &obol,
        &format!("/v1/public/card-updates/{token}/complete"),
        json!({"setup_intent_id": si["id"]}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("setup_intent_not_succeeded")),
        "{body}"
    );
    // Asked again, the page gets the same live SetupIntent.
    let (_, again) = public_post(
        &obol,
        &format!("/v1/public/card-updates/{token}/setup-intent"),
        json!({}),
    )
    .await;
    assert_eq!(again["id"], si["id"]);
}

/// Delivers `body` signed with the configured secret.
async fn deliver(obol: &Obol, body: &Value) {
    let text = body.to_string();
    let now = chrono::Utc::now().timestamp();
    let sig = obol::stripe::signature::sign(text.as_bytes(), &SECRET.to_string().into(), now);
    let r = obol
        .http
        .post(obol.url("/webhooks/stripe"))
        .header("stripe-signature", sig)
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn event(id: &str, kind: &str, created: i64, object: Value, previous: Option<Value>) -> Value {
    let mut data = json!({"object": object});
    if let Some(p) = previous {
        data["previous_attributes"] = p;
    }
    json!({"id": id, "object": "event", "type": kind, "created": created, "livemode": false,
        "api_version": "2023-08-16", "data": data})
}

fn pm(id: &str, customer: Option<&str>, brand: &str, last4: &str, month: i64, year: i64) -> Value {
    json!({"id": id, "object": "payment_method", "type": "card", "customer": customer,
        "billing_details": {}, "metadata": {}, "livemode": false, "created": 1,
        "card": {"brand": brand, "last4": last4, "exp_month": month, "exp_year": year}})
}

fn stripe_customer(id: &str, default: Option<&str>) -> Value {
    json!({"id": id, "object": "customer", "metadata": {},
        "invoice_settings": {"default_payment_method": default}})
}

/// Applies `events` one after another (each applied before the next is
/// sent), so the arrival order is the one given.
async fn deliver_in_order(obol: &Obol, events: &[Value]) {
    for e in events {
        deliver(obol, e).await;
        let id = e["id"].as_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, list) = obol.get("/v1/webhook-events?limit=100").await;
            let row = list["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["stripe_event_id"] == id)
                .cloned();
            if row
                .as_ref()
                .is_some_and(|r| r["status"] == "applied" || r["status"] == "ignored")
            {
                break;
            }
            assert!(Instant::now() < deadline, "{id} not applied: {list}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn event_row(obol: &Obol, id: &str) -> Value {
    let (_, list) = obol.get("/v1/webhook-events?limit=100").await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stripe_event_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not stored: {list}"))
}

async fn card_events_apply_in_any_order(backend: Backend) {
    let obol = start(backend).await;
    let customer = obol.create_customer("member-events").await;
    let id = customer["id"].as_str().unwrap();
    let (_, made) = link(&obol, id).await;
    let cus = made["stripe_customer_id"].as_str().unwrap();
    let t = chrono::Utc::now().timestamp() - 1000;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let a = format!("pm_a{}", &suffix[..20]);
    let b = format!("pm_b{}", &suffix[..20]);
    let evt = |n: &str| format!("evt_{n}{}", &suffix[..16]);
    deliver_in_order(
        &obol,
        &[
            // A: detached (newer) arrives before attached (older).
            event(
                &evt("a2"),
                "payment_method.detached",
                t + 200,
                pm(&a, None, "visa", "4242", 12, 2030),
                Some(json!({"customer": cus})),
            ),
            event(
                &evt("a1"),
                "payment_method.attached",
                t + 100,
                pm(&a, Some(cus), "visa", "4242", 12, 2030),
                None,
            ),
            // B: named the default before its own event arrived.
            event(
                &evt("b2"),
                "customer.updated",
                t + 110,
                stripe_customer(cus, Some(&b)),
                None,
            ),
            event(
                &evt("b1"),
                "payment_method.attached",
                t + 100,
                pm(&b, Some(cus), "mastercard", "4444", 3, 2029),
                None,
            ),
            // The network replaced B's number and expiry…
            event(
                &evt("b4"),
                "payment_method.automatically_updated",
                t + 150,
                pm(&b, Some(cus), "mastercard", "1881", 1, 2032),
                None,
            ),
            // …and an older update arriving late changes nothing.
            event(
                &evt("b3"),
                "payment_method.updated",
                t + 120,
                pm(&b, Some(cus), "mastercard", "4444", 3, 2029),
                None,
            ),
            // An older default (A) arriving late changes nothing either.
            event(
                &evt("a3"),
                "customer.updated",
                t + 105,
                stripe_customer(cus, Some(&a)),
                None,
            ),
            // A Stripe customer obol does not know, an hour after the
            // event: its customer.created is not coming (a younger one
            // waits for it: customer_mirror.rs).
            event(
                &evt("x1"),
                "payment_method.attached",
                t - 3700,
                pm(
                    &format!("pm_x{}", &suffix[..20]),
                    Some("cus_nobodyknows"),
                    "visa",
                    "4242",
                    1,
                    2031,
                ),
                None,
            ),
        ],
    )
    .await;
    let listed = cards(&obol, id).await;
    assert_eq!(listed.len(), 1, "A is detached: {listed:?}");
    assert_eq!(
        listed[0],
        json!({"id": b, "brand": "mastercard", "last4": "1881", "exp_month": 1, "exp_year": 2032, "default": true})
    );
    let store = obol.db.store().await;
    let account = obol::context::AccountId::platform();
    {
        let mut h = store.acquire().await.unwrap();
        let mut conn = h.conn();
        let row_a = conn
            .get_payment_method(&account, &a)
            .await
            .unwrap()
            .unwrap();
        assert!(row_a.detached && !row_a.is_default, "{row_a:?}");
        assert_eq!(row_a.last4.as_deref(), Some("4242"), "details learned late");
        assert_eq!(row_a.customer_id.as_deref(), Some(id));
        let default = conn
            .get_default_payment_method(&account, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(default.stripe_payment_method_id, b);
        assert_eq!(default.stripe_updated, t + 150);
    }
    for (e, applied) in [("a3", false), ("b3", false), ("b4", true), ("b2", true)] {
        let row = event_row(&obol, &evt(e)).await;
        let want = if applied { "applied" } else { "ignored" };
        assert_eq!(row["status"], want, "{e}: {row}");
    }
    let unknown = event_row(&obol, &evt("x1")).await;
    assert_eq!(unknown["status"], "ignored", "{unknown}");
    assert!(
        unknown["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cus_nobodyknows") && r.contains("not one of obol's")),
        "{unknown}"
    );

    // A detached card is never the default, even when Stripe's (newer)
    // customer names it; and B then is not the default either.
    deliver_in_order(
        &obol,
        &[
            event(
                &evt("a4"),
                "customer.updated",
                t + 300,
                stripe_customer(cus, Some(&a)),
                None,
            ),
            event(
                &evt("b5"),
                "payment_method.detached",
                t + 90,
                pm(&b, None, "mastercard", "1881", 1, 2032),
                Some(json!({"customer": cus})),
            ),
        ],
    )
    .await;
    let mut h = store.acquire().await.unwrap();
    assert_eq!(
        h.conn()
            .get_default_payment_method(&account, id)
            .await
            .unwrap(),
        None
    );
    assert!(cards(&obol, id).await.is_empty());
}

async fn another_customers_token_or_setup_intent_gets_nothing(backend: Backend) {
    let obol = start(backend).await;
    let ana = obol.create_customer("ana").await;
    let bob = obol.create_customer("bob").await;
    let (ana_id, bob_id) = (ana["id"].as_str().unwrap(), bob["id"].as_str().unwrap());
    let ana_token = obol.customer_token(ana_id, 600).await;
    // Ana's token makes her own link…
    let r = obol
        .http
        .post(obol.url(&format!("/v1/customers/{ana_id}/card-update-links")))
        .bearer_auth(&ana_token)
        .json(&json!({"ttl_seconds": 3600}))
        .send()
        .await
        .unwrap();
    let (status, own) = status_json(r).await;
    assert_eq!(status, 201, "{own}");
    // …but sees nothing of Bob's.
    let r = obol
        .http
        .post(obol.url(&format!("/v1/customers/{bob_id}/card-update-links")))
        .bearer_auth(&ana_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("customer_not_found")),
        "{body}"
    );
    let (status, body) = obol
        .get_as(
            &format!("/v1/customers/{bob_id}/payment-methods"),
            &ana_token,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("customer_not_found")),
        "{body}"
    );
    // Bob has no Stripe customer: Ana's attempt made none.
    let (_, bob_now) = obol.get(&format!("/v1/customers/{bob_id}")).await;
    assert_eq!(bob_now["stripe_customer_id"], Value::Null);

    // Bob's succeeded SetupIntent completes nothing on Ana's link.
    let (bob_token, _) = link(&obol, bob_id).await;
    let (_, bob_si) = public_post(
        &obol,
        &format!("/v1/public/card-updates/{bob_token}/setup-intent"),
        json!({}),
    )
    .await;
    let base = sandbox(&obol).await;
    let confirmed = stripe_post(
        &base,
        &format!(
            "/v1/setup_intents/{}/confirm",
            bob_si["id"].as_str().unwrap()
        ),
        &[("payment_method", "pm_card_visa")],
    )
    .await;
    assert_eq!(confirmed["status"], "succeeded", "{confirmed}");
    let ana_link = own["url"].as_str().unwrap().rsplit('/').next().unwrap();
    let (status, body) = public_post(
        &obol,
        &format!("/v1/public/card-updates/{ana_link}/complete"),
        json!({"setup_intent_id": bob_si["id"]}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("setup_intent_mismatch")),
        "{body}"
    );
    assert!(cards(&obol, ana_id).await.is_empty());
}

async fn expired_and_unknown_links_say_so(backend: Backend) {
    let obol = start(backend).await;
    let customer = obol.create_customer("member-late").await;
    let id = customer["id"].as_str().unwrap();
    link(&obol, id).await;
    // A link that expired a minute ago, written as obol writes them.
    let token = obol::ids::SecretToken::generate("");
    let store = obol.db.store().await;
    {
        let mut h = store.acquire().await.unwrap();
        let now = chrono::Utc::now();
        h.conn()
            .insert_card_update_link(
                token.hash().as_str(),
                &obol::context::AccountId::platform(),
                id,
                now - chrono::Duration::seconds(60),
                now - chrono::Duration::seconds(3600),
            )
            .await
            .unwrap();
    }
    let expired = token.expose();
    let unknown = "A".repeat(43);
    for (t, status, code, text) in [
        (expired, 410, "card_update_link_expired", "has expired"),
        (
            unknown.as_str(),
            404,
            "card_update_link_not_found",
            "not found",
        ),
    ] {
        let r = obol
            .http
            .get(obol.url(&format!("/pay/cards/{t}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let html = r.text().await.unwrap();
        assert!(html.contains(text), "{html}");
        assert!(!html.contains("card-update.js"), "{html}");
        for path in ["setup-intent", "complete"] {
            let (s, body) = public_post(
                &obol,
                &format!("/v1/public/card-updates/{t}/{path}"),
                json!({"setup_intent_id": "seti_x"}),
            )
            .await;
            assert_eq!(
                (s, body["error"]["code"].as_str()),
                (status, Some(code)),
                "{body}"
            );
        }
    }
}
