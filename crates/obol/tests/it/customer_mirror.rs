//! Customers and saved cards mirrored from Stripe, and `charge.*` events:
//! obol as a process against the sandbox over HTTP, with signed
//! deliveries of our own where the order (or a duplicate) must be exact.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol, Received, TestDb, TestReceiver};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    a_dashboard_customer_is_adopted_once_in_any_order,
    obol_created_stripe_customers_are_never_adopted,
    a_stripe_customer_deleted_at_stripe_is_replaced_when_next_needed,
    a_card_that_arrives_before_its_customer_waits_for_it,
    a_network_card_update_shows_the_new_expiry_and_notifies_once,
    charge_events_show_the_decline_and_survive_duplicates_and_reordering,
    storage_adopts_once_and_guards_mirror_writes,
);

const SECRET: &str = "whsec_obol_test_customer_mirror";

async fn start(backend: Backend) -> (Obol, TestReceiver) {
    let obol = Obol::builder(backend)
        .env("OBOL_STRIPE__WEBHOOK_SECRETS", SECRET)
        .start()
        .await;
    let hooks = TestReceiver::start(0).await;
    let (status, body) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": hooks.url, "event_types": ["customer.created", "customer.updated",
                "customer.deleted", "payment_method.updated"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (obol, hooks)
}

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
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

fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": created, "livemode": false,
        "api_version": "2023-08-16", "data": {"object": object}})
}

/// The inbox row of Stripe event `id`, once applied or ignored.
async fn settled(obol: &Obol, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = obol.get("/v1/webhook-events?limit=100").await;
        let row = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["stripe_event_id"] == id)
            .cloned();
        if let Some(row) = row.filter(|r| r["status"] == "applied" || r["status"] == "ignored") {
            return row;
        }
        assert!(Instant::now() < deadline, "{id} not applied: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Delivers each event and waits until it settled, so arrival order is
/// the one given; answers each one's inbox status.
async fn deliver_in_order(obol: &Obol, events: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for e in events {
        deliver(obol, e).await;
        let row = settled(obol, e["id"].as_str().unwrap()).await;
        out.push(row["status"].as_str().unwrap().to_string());
    }
    out
}

/// How many obol customers hold Stripe customer `cus`.
async fn customers_of(obol: &Obol, backend: Backend, cus: &str) -> i64 {
    use sqlx::Connection;
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM customers WHERE stripe_customer_id = $1";
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&obol.db.url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(cus)
                .fetch_one(&mut c)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&obol.db.url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(cus)
                .fetch_one(&mut c)
                .await
                .unwrap()
        }
    }
}

/// The notifications about Stripe customer `cus`, in arrival order.
fn about(got: &[Received], cus: &str) -> Vec<Value> {
    got.iter()
        .map(Received::json)
        .filter(|n| n["data"]["customer"]["stripe_customer_id"] == cus)
        .collect()
}

/// Waits a moment longer, so a second notification would have arrived.
async fn settle_outbox() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

async fn a_dashboard_customer_is_adopted_once_in_any_order(backend: Backend) {
    let (obol, hooks) = start(backend).await;

    // Made at the sandbox, as a dashboard user would: adopted, then kept.
    let base = sandbox(&obol).await;
    let made = stripe_post(
        &base,
        "/v1/customers",
        &[("email", "ana@old.example"), ("name", "Ana Dashboard")],
    )
    .await;
    let cus = made["id"].as_str().unwrap().to_string();
    let got = hooks
        .until("the adoption", |g| {
            about(g, &cus)
                .iter()
                .any(|n| n["type"] == "customer.created")
        })
        .await;
    let created = about(&got, &cus);
    assert_eq!(created.len(), 1, "{created:?}");
    let n = &created[0];
    assert!(
        n["stripe_event_id"].as_str().unwrap().starts_with("evt_"),
        "{n}"
    );
    let id = n["data"]["customer"]["id"].as_str().unwrap().to_string();
    let (status, c) = obol.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["source"], "stripe", "{c}");
    assert_eq!(c["email"], "ana@old.example");
    assert_eq!(c["name"], "Ana Dashboard");
    assert_eq!(c["stripe_customer_id"], cus.as_str());
    assert_eq!(c["external_id"], Value::Null);
    assert_eq!(c["stripe_customer_deleted_at"], Value::Null);

    stripe_post(
        &base,
        &format!("/v1/customers/{cus}"),
        &[("email", "ana@new.example")],
    )
    .await;
    let got = hooks
        .until("the update", |g| {
            about(g, &cus)
                .iter()
                .any(|n| n["type"] == "customer.updated")
        })
        .await;
    let updated: Vec<Value> = about(&got, &cus)
        .into_iter()
        .filter(|n| n["type"] == "customer.updated")
        .collect();
    assert_eq!(
        updated[0]["data"]["customer"]["email"], "ana@new.example",
        "{updated:?}"
    );
    assert_eq!(updated[0]["data"]["customer"]["id"], id.as_str());
    let (_, c) = obol.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(c["email"], "ana@new.example", "{c}");
    assert_eq!(customers_of(&obol, backend, &cus).await, 1);

    // A customer whose customer.updated arrives before its customer.created,
    // and whose customer.created is delivered twice.
    let s = suffix();
    let cus = format!("cus_dash{s}");
    let t = chrono::Utc::now().timestamp() - 100;
    let object = |email: &str| {
        json!({"id": cus, "object": "customer", "email": email, "name": "Bea", "metadata": {},
            "invoice_settings": {"default_payment_method": null}})
    };
    let created = event(
        &format!("evt_c{s}"),
        "customer.created",
        t,
        object("bea@old.example"),
    );
    let statuses = deliver_in_order(
        &obol,
        &[
            event(
                &format!("evt_u{s}"),
                "customer.updated",
                t + 5,
                object("bea@new.example"),
            ),
            created.clone(),
            created.clone(),
            // Same second as the update: a creation never rolls it back.
            event(
                &format!("evt_c2{s}"),
                "customer.created",
                t + 5,
                object("bea@old.example"),
            ),
        ],
    )
    .await;
    assert_eq!(statuses, ["applied", "ignored", "ignored", "ignored"]);
    assert_eq!(customers_of(&obol, backend, &cus).await, 1);
    settle_outbox().await;
    let notes = about(&hooks.received(), &cus);
    assert_eq!(notes.len(), 1, "adopted once, no rollback: {notes:?}");
    assert_eq!(notes[0]["type"], "customer.created");
    assert_eq!(notes[0]["stripe_event_id"], format!("evt_u{s}"));
    let id = notes[0]["data"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, c) = obol.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(
        (c["email"].as_str(), c["source"].as_str()),
        (Some("bea@new.example"), Some("stripe"))
    );

    // Deleted: final, shown, notified once; a later update changes nothing.
    let statuses = deliver_in_order(
        &obol,
        &[
            event(
                &format!("evt_d{s}"),
                "customer.deleted",
                t + 10,
                object("bea@new.example"),
            ),
            event(
                &format!("evt_u2{s}"),
                "customer.updated",
                t + 20,
                object("bea@later.example"),
            ),
        ],
    )
    .await;
    assert_eq!(statuses, ["applied", "ignored"]);
    let (_, c) = obol.get(&format!("/v1/customers/{id}")).await;
    assert!(c["stripe_customer_deleted_at"].is_string(), "{c}");
    assert_eq!(c["email"], "bea@new.example");
    settle_outbox().await;
    let kinds: Vec<Value> = about(&hooks.received(), &cus)
        .iter()
        .map(|n| n["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("customer.created"), json!("customer.deleted")]
    );
}

async fn obol_created_stripe_customers_are_never_adopted(backend: Backend) {
    let (obol, hooks) = start(backend).await;
    // obol creates the Stripe customer (a card-update link needs it): the
    // sandbox's customer.created for it finds obol's own.
    let mine = obol.create_customer("member-own").await;
    let id = mine["id"].as_str().unwrap();
    let (status, link) = obol
        .post(&format!("/v1/customers/{id}/card-update-links"), json!({}))
        .await;
    assert_eq!(status, 201, "{link}");
    let cus = link["stripe_customer_id"].as_str().unwrap().to_string();
    let path = "/v1/webhook-events?limit=100";
    eventually(&obol, path, |b| {
        b["data"].as_array().is_some_and(|d| {
            d.iter()
                .any(|r| r["type"] == "customer.created" && r["status"] == "applied")
        })
    })
    .await;
    assert_eq!(customers_of(&obol, backend, &cus).await, 1);
    let (_, c) = obol.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(
        (c["source"].as_str(), c["stripe_customer_id"].as_str()),
        (Some("obol"), Some(cus.as_str()))
    );

    // Its customer.created arriving before obol stored the cus_…: linked by
    // metadata[obol_customer_id], not adopted.
    let other = obol.create_customer("member-early").await;
    let other_id = other["id"].as_str().unwrap();
    let s = suffix();
    let early = format!("cus_early{s}");
    let statuses = deliver_in_order(
        &obol,
        &[event(
            &format!("evt_e{s}"),
            "customer.created",
            chrono::Utc::now().timestamp(),
            json!({"id": early, "object": "customer", "email": null, "name": null,
                "metadata": {"obol_customer_id": other_id}}),
        )],
    )
    .await;
    assert_eq!(statuses, ["applied"]);
    let (_, c) = obol.get(&format!("/v1/customers/{other_id}")).await;
    assert_eq!(
        (c["source"].as_str(), c["stripe_customer_id"].as_str()),
        (Some("obol"), Some(early.as_str()))
    );
    assert_eq!(customers_of(&obol, backend, &early).await, 1);
    settle_outbox().await;
    let adopted: Vec<Value> = hooks
        .received()
        .iter()
        .map(Received::json)
        .filter(|n| n["type"] == "customer.created")
        .collect();
    assert!(adopted.is_empty(), "nothing adopted: {adopted:?}");
}

async fn a_card_that_arrives_before_its_customer_waits_for_it(backend: Backend) {
    let (obol, hooks) = start(backend).await;
    let s = suffix();
    let cus = format!("cus_late{s}");
    let pm = format!("pm_early{s}");
    let t = chrono::Utc::now().timestamp();
    let card = json!({"id": pm, "object": "payment_method", "type": "card", "customer": cus,
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031}});
    // The card's event first: its customer is not obol's yet, so it waits.
    deliver(
        &obol,
        &event(&format!("evt_pm{s}"), "payment_method.attached", t, card),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, list) = obol.get("/v1/webhook-events?limit=100").await;
    let row = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stripe_event_id"] == format!("evt_pm{s}"))
        .cloned()
        .unwrap();
    assert_ne!(row["status"], "ignored", "{row}");
    // Then the customer, adopted; the card's retry finds it.
    let customer = json!({"id": cus, "object": "customer", "email": "late@example.com",
        "name": null, "metadata": {}});
    deliver(
        &obol,
        &event(&format!("evt_c{s}"), "customer.created", t, customer),
    )
    .await;
    assert_eq!(
        settled(&obol, &format!("evt_c{s}")).await["status"],
        "applied"
    );
    assert_eq!(
        settled(&obol, &format!("evt_pm{s}")).await["status"],
        "applied"
    );
    let got = hooks
        .until("the adoption", |g| !about(g, &cus).is_empty())
        .await;
    let id = about(&got, &cus)[0]["data"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, cards) = obol
        .get(&format!("/v1/customers/{id}/payment-methods"))
        .await;
    assert_eq!(status, 200, "{cards}");
    let ids: Vec<&Value> = cards["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&json!(pm)], "{cards}");
    assert_eq!(cards["data"][0]["last4"], "4242");
}

/// The Stripe customer a new card-update link for `id` was made for.
async fn card_update_customer(obol: &Obol, id: &str) -> String {
    let (status, link) = obol
        .post(&format!("/v1/customers/{id}/card-update-links"), json!({}))
        .await;
    assert_eq!(status, 201, "{link}");
    link["stripe_customer_id"].as_str().unwrap().to_string()
}

async fn a_stripe_customer_deleted_at_stripe_is_replaced_when_next_needed(backend: Backend) {
    let (obol, _hooks) = start(backend).await;
    let base = sandbox(&obol).await;
    let member = obol.create_customer("member-deleted").await;
    let id = member["id"].as_str().unwrap();
    let old = card_update_customer(&obol, id).await;
    // Someone deletes the customer in Stripe's dashboard.
    let gone: Value = reqwest::Client::new()
        .delete(format!("{base}/v1/customers/{old}"))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(gone["deleted"], true, "{gone}");
    let c = eventually(&obol, &format!("/v1/customers/{id}"), |c| {
        c["stripe_customer_deleted_at"].is_string()
    })
    .await;
    assert_eq!(c["stripe_customer_id"], old.as_str());

    // The next card-update link cannot use it: a new Stripe customer, once.
    let new = card_update_customer(&obol, id).await;
    assert_ne!(new, old, "a deleted Stripe customer is not reused");
    assert_eq!(
        card_update_customer(&obol, id).await,
        new,
        "and replaced only once"
    );
    let (_, c) = obol.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(c["stripe_customer_id"], new.as_str(), "{c}");
    assert_eq!(c["stripe_customer_deleted_at"], Value::Null, "{c}");
    let at_stripe: Value = reqwest::Client::new()
        .get(format!("{base}/v1/customers/{new}"))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(at_stripe["metadata"]["obol_customer_id"], id, "{at_stripe}");
    assert_ne!(at_stripe["deleted"], true, "{at_stripe}");
}

async fn a_network_card_update_shows_the_new_expiry_and_notifies_once(backend: Backend) {
    let (obol, hooks) = start(backend).await;
    let base = sandbox(&obol).await;
    let made = stripe_post(&base, "/v1/customers", &[("email", "cy@example.com")]).await;
    let cus = made["id"].as_str().unwrap().to_string();
    let got = hooks
        .until("the adoption", |g| !about(g, &cus).is_empty())
        .await;
    let id = about(&got, &cus)[0]["data"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pm = stripe_post(
        &base,
        "/v1/payment_methods/pm_card_visa/attach",
        &[("customer", &cus)],
    )
    .await;
    let pm_id = pm["id"].as_str().unwrap().to_string();
    let cards_path = format!("/v1/customers/{id}/payment-methods");
    let listed = eventually(&obol, &cards_path, |b| {
        b["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|c| c["id"] == pm_id.as_str()))
    })
    .await;
    let before = listed["data"][0].clone();
    assert_ne!(
        (before["exp_month"].as_i64(), before["exp_year"].as_i64()),
        (Some(3), Some(2034))
    );

    let r = reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/payment_methods/{pm_id}/network_update",
            base.trim_end_matches('/')
        ))
        .form(&[("exp_month", "3"), ("exp_year", "2034")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed = eventually(&obol, &cards_path, |b| {
        b["data"][0]["exp_year"] == 2034 && b["data"][0]["exp_month"] == 3
    })
    .await;
    assert_eq!(listed["data"][0]["last4"], before["last4"]);
    let got = hooks
        .until("the card's notification", |g| {
            g.iter()
                .any(|r| r.json()["type"] == "payment_method.updated")
        })
        .await;
    let (_, events) = obol.get("/v1/webhook-events?limit=100").await;
    let auto = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "payment_method.automatically_updated")
        .cloned()
        .unwrap();
    assert_eq!(auto["status"], "applied", "{auto}");
    settle_outbox().await;
    let notes: Vec<Value> = hooks
        .received()
        .iter()
        .map(Received::json)
        .filter(|n| n["type"] == "payment_method.updated")
        .collect();
    assert!(!got.is_empty());
    assert_eq!(notes.len(), 1, "{notes:?}");
    let n = &notes[0];
    assert_eq!(n["stripe_event_id"], auto["stripe_event_id"]);
    assert_eq!(n["data"]["customer"]["id"], id.as_str());
    assert_eq!(n["data"]["payment_method"]["id"], pm_id.as_str());
    assert_eq!(n["data"]["payment_method"]["exp_month"], 3);
    assert_eq!(n["data"]["payment_method"]["exp_year"], 2034);

    // The same event again (a redelivery with a new id, as reconciliation
    // might list it): nothing changes, nobody is told twice.
    let pm_now: Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/payment_methods/{pm_id}",
            base.trim_end_matches('/')
        ))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = suffix();
    deliver_in_order(
        &obol,
        &[event(
            &format!("evt_again{s}"),
            "payment_method.automatically_updated",
            chrono::Utc::now().timestamp(),
            pm_now,
        )],
    )
    .await;
    settle_outbox().await;
    let again = hooks
        .received()
        .iter()
        .filter(|r| r.json()["type"] == "payment_method.updated")
        .count();
    assert_eq!(again, 1);
}

/// obol's payment of intent `pi`, once `done` holds for it.
async fn payment_of(obol: &Obol, pi: &str, done: impl Fn(&Value) -> bool) -> Value {
    let list = eventually(obol, "/v1/payments?limit=100", |b| {
        b["data"].as_array().is_some_and(|d| {
            d.iter()
                .any(|p| p["stripe_payment_intent_id"] == pi && done(p))
        })
    })
    .await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["stripe_payment_intent_id"] == pi)
        .cloned()
        .unwrap()
}

async fn charge_of(base: &str, id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/v1/charges/{id}", base.trim_end_matches('/')))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn charge_events_show_the_decline_and_survive_duplicates_and_reordering(backend: Backend) {
    let (obol, _hooks) = start(backend).await;
    let base = sandbox(&obol).await;
    let pi = stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "2500"),
            ("currency", "eur"),
            (
                "payment_method",
                "pm_card_visa_chargeDeclinedInsufficientFunds",
            ),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    let pi_id = pi["error"]["payment_intent"]["id"]
        .as_str()
        .or(pi["id"].as_str())
        .unwrap()
        .to_string();
    let failed = payment_of(&obol, &pi_id, |p| {
        p["status"] == "failed" && p["charge"]["decline_code"].is_string()
    })
    .await;
    let ch = &failed["charge"];
    assert_eq!(ch["status"], "failed", "{failed}");
    assert_eq!(ch["failure_code"], "card_declined");
    assert_eq!(ch["decline_code"], "insufficient_funds");
    assert!(ch["failure_message"].is_string(), "{ch}");
    assert_eq!(ch["card_last4"], "9995");
    let failed_charge = ch["id"].as_str().unwrap().to_string();

    // A second attempt with a card that works.
    let ok = stripe_post(
        &base,
        &format!("/v1/payment_intents/{pi_id}/confirm"),
        &[("payment_method", "pm_card_visa")],
    )
    .await;
    assert_eq!(ok["status"], "succeeded", "{ok}");
    let done = payment_of(&obol, &pi_id, |p| {
        p["status"] == "completed" && p["charge"]["status"] == "succeeded"
    })
    .await;
    assert_eq!(done["charge"]["card_last4"], "4242", "{done}");
    assert_eq!(done["charge"]["decline_code"], Value::Null);
    assert_eq!(done["charge"]["card_brand"], "visa");
    assert_ne!(done["charge"]["id"], failed_charge.as_str());

    // Stripe's charge events again: duplicated and reordered (the failed
    // one last, with its own old time and with the success's second).
    let good = charge_of(&base, done["charge"]["id"].as_str().unwrap()).await;
    let bad = charge_of(&base, &failed_charge).await;
    let s = suffix();
    let t_good = good["created"].as_i64().unwrap();
    let t_bad = bad["created"].as_i64().unwrap();
    let statuses = deliver_in_order(
        &obol,
        &[
            event(
                &format!("evt_g{s}"),
                "charge.succeeded",
                t_good,
                good.clone(),
            ),
            event(
                &format!("evt_g2{s}"),
                "charge.succeeded",
                t_good,
                good.clone(),
            ),
            event(&format!("evt_b{s}"), "charge.failed", t_bad, bad.clone()),
            event(&format!("evt_b2{s}"), "charge.failed", t_good, bad.clone()),
        ],
    )
    .await;
    assert!(statuses.iter().all(|s| s == "ignored"), "{statuses:?}");
    let after = payment_of(&obol, &pi_id, |_| true).await;
    assert_eq!(after["charge"], done["charge"], "{after}");
    assert_eq!(after["status"], "completed");
    assert_eq!(after["amount_captured"], 2500);

    // A charge of an intent obol has not seen, then the intent's own
    // event: one payment, not two.
    let pi_new = format!("pi_unseen{s}");
    let t = chrono::Utc::now().timestamp();
    let mut charge = good.clone();
    charge["id"] = json!(format!("ch_unseen{s}"));
    charge["payment_intent"] = json!(pi_new);
    let intent = json!({"id": pi_new, "object": "payment_intent", "amount": 2500, "currency": "eur",
        "status": "succeeded", "amount_received": 2500, "last_payment_error": null, "metadata": {}});
    // The charge waits (retried) for the intent's payment.
    deliver(
        &obol,
        &event(&format!("evt_n1{s}"), "charge.succeeded", t, charge),
    )
    .await;
    deliver(
        &obol,
        &event(&format!("evt_n2{s}"), "payment_intent.succeeded", t, intent),
    )
    .await;
    assert_eq!(
        settled(&obol, &format!("evt_n1{s}")).await["status"],
        "applied"
    );
    assert_eq!(
        settled(&obol, &format!("evt_n2{s}")).await["status"],
        "applied"
    );
    let (_, list) = obol.get("/v1/payments?limit=100").await;
    let of_new: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["stripe_payment_intent_id"] == pi_new.as_str())
        .collect();
    assert_eq!(of_new.len(), 1, "{of_new:?}");
    assert_eq!(of_new[0]["status"], "completed");
    assert_eq!(of_new[0]["charge"]["id"], format!("ch_unseen{s}"));
}

async fn storage_adopts_once_and_guards_mirror_writes(backend: Backend) {
    use obol::context::AccountId;
    use obol::ids::CustomerId;
    use obol::storage::customers::{AdoptedCustomer, MirroredCustomer};

    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut h = store.acquire().await.unwrap();
    let mut conn = h.conn();
    let now = chrono::Utc::now();
    let adopt = |id: &CustomerId, account: &'static str| AdoptedCustomer {
        id: leak(id),
        account_id: account,
        stripe_customer_id: "cus_adopt1",
        email: Some("ana@example.com"),
        name: Some("Ana"),
        observed: 100,
        deleted: false,
        now,
    };
    let first = CustomerId::generate();
    let row = conn
        .adopt_stripe_customer(&adopt(&first, "default"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.source.as_str(), row.stripe_observed), ("stripe", 100));
    assert_eq!(row.stripe_customer_id.as_deref(), Some("cus_adopt1"));
    // The same Stripe customer again: the first holds it.
    let second = CustomerId::generate();
    assert!(conn
        .adopt_stripe_customer(&adopt(&second, "default"))
        .await
        .unwrap()
        .is_none());
    // Another account's customer of that id is its own.
    assert!(conn
        .adopt_stripe_customer(&adopt(&second, "org_other"))
        .await
        .unwrap()
        .is_some());
    let platform = AccountId::platform();
    let read = conn
        .get_customer_by_stripe_id(&platform, "cus_adopt1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, row);

    let m = |email: &'static str, observed: i64, deleted: bool| MirroredCustomer {
        email: Some(email),
        name: Some("Ana"),
        observed,
        deleted,
        now,
    };
    assert!(conn
        .write_customer_mirror(&read, &m("ana@new.example", 200, false))
        .await
        .unwrap());
    // A write from the stale read loses.
    assert!(!conn
        .write_customer_mirror(&read, &m("ana@stale.example", 300, false))
        .await
        .unwrap());
    let now_row = conn.get_customer(&platform, &first).await.unwrap().unwrap();
    assert_eq!(
        (now_row.email.as_deref(), now_row.stripe_observed),
        (Some("ana@new.example"), 200)
    );
    assert!(conn
        .write_customer_mirror(&now_row, &m("ana@new.example", 250, true))
        .await
        .unwrap());
    let deleted = conn.get_customer(&platform, &first).await.unwrap().unwrap();
    let at = deleted.stripe_deleted_at.unwrap();
    assert!(conn
        .write_customer_mirror(&deleted, &m("ana@new.example", 260, true))
        .await
        .unwrap());
    let again = conn.get_customer(&platform, &first).await.unwrap().unwrap();
    assert_eq!(
        again.stripe_deleted_at,
        Some(at),
        "the first deletion time stays"
    );
}

/// `AdoptedCustomer` borrows its id; the test's ids live to its end.
fn leak(id: &obol::ids::CustomerId) -> &'static obol::ids::CustomerId {
    Box::leak(Box::new(id.clone()))
}
