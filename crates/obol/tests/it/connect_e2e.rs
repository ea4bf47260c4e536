//! Stripe Connect end to end (issue 15's first Check): organisations
//! connected through obol's real redirect chain, a payment of each made
//! through obol's API for it (`Obol-Organization`), confirmed at the
//! sandbox in its connected account (`Stripe-Account`), delivered to
//! obol's Connect endpoint and routed by `account` to its ledger; each
//! organisation sees only its own, with the secret key and with customer
//! tokens. Then a delivery lost for a connected account, recovered by
//! reconciliation into the organisation's ledger.

use serde_json::{json, Value};

use crate::connecting::{
    browser, connected_organization, eventually_in, get_in, last4, org_of, post_in, sandbox_base,
    ORG,
};
use crate::helpers::{status_json, Backend, Obol};
use crate::on_both_backends;

on_both_backends!(
    two_organisations_pay_end_to_end_and_see_only_their_own,
    a_lost_connect_delivery_is_recovered_by_reconciliation_into_the_organisation,
);

const PLATFORM_KEY: &str = "sk_test_obol_e2e";

/// A request to the sandbox's API, for connected account `acct` (none:
/// the platform's).
async fn stripe_in(
    base: &str,
    acct: Option<&str>,
    method: reqwest::Method,
    path: &str,
    form: &[(&str, &str)],
) -> Value {
    let mut r = browser()
        .request(method, format!("{base}{path}"))
        .bearer_auth(PLATFORM_KEY);
    if let Some(acct) = acct {
        r = r.header("Stripe-Account", acct);
    }
    if !form.is_empty() {
        r = r.form(form);
    }
    r.send().await.unwrap().json().await.unwrap()
}

/// A GET with `bearer` (a customer token), naming organisation `org` or none.
async fn get_as(obol: &Obol, bearer: &str, org: Option<&str>, path: &str) -> (u16, Value) {
    let mut r = obol.http.get(obol.url(path)).bearer_auth(bearer);
    if let Some(org) = org {
        r = r.header(ORG, org);
    }
    status_json(r.send().await.unwrap()).await
}

/// What one organisation's payment left behind.
struct Paid {
    org: String,
    customer: String,
    token: String,
    payment: String,
    intent: String,
    order: String,
    event: String,
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

/// The Connect webhook endpoints the sandbox delivers to obol's URL.
async fn connect_endpoints(obol: &Obol, base: &str) -> Vec<Value> {
    let list = stripe_in(
        base,
        None,
        reqwest::Method::GET,
        "/v1/webhook_endpoints?limit=100",
        &[],
    )
    .await;
    let url = format!("{}/webhooks/stripe", obol.base_url);
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|we| we["url"] == url.as_str() && we["application"].is_string())
        .cloned()
        .collect()
}

/// A pay-first payment of organisation `org` (connected to `acct`), the
/// way a shop's page makes one: obol creates the intent for a member of
/// the organisation, the card confirms it at Stripe in the connected
/// account, the webhook reaches obol's Connect endpoint and authorizes the
/// payment, the backend creates the order, obol captures.
async fn pay(obol: &Obol, base: &str, org: &str, acct: &str, amount: i64) -> Paid {
    let (s, customer) = post_in(
        obol,
        Some(org),
        "/v1/customers",
        json!({"external_id": "member-1", "email": "member@club.example", "name": "Ana"}),
    )
    .await;
    assert_eq!(s, 201, "{customer}");
    let customer = customer["id"].as_str().unwrap().to_string();
    let (s, token) = post_in(
        obol,
        Some(org),
        "/v1/customer-tokens",
        json!({"customer_id": customer, "ttl_seconds": 900}),
    )
    .await;
    assert_eq!(s, 201, "{token}");
    let token = token["token"].as_str().unwrap().to_string();

    let (s, pi) = post_in(
        obol,
        Some(org),
        "/v1/payment-intents",
        json!({"amount": amount, "currency": "eur", "customer_id": customer}),
    )
    .await;
    assert_eq!(s, 201, "{pi}");
    assert!(pi["client_secret"].as_str().unwrap().contains("_secret_"));
    let intent = pi["id"].as_str().unwrap().to_string();
    let payment = pi["payment_id"].as_str().unwrap().to_string();
    // The intent lives in the connected account, not on the platform's.
    let there = stripe_in(
        base,
        None,
        reqwest::Method::GET,
        &format!("/v1/payment_intents/{intent}"),
        &[],
    )
    .await;
    assert!(there["error"].is_object(), "not the platform's: {there}");
    let confirmed = stripe_in(
        base,
        Some(acct),
        reqwest::Method::POST,
        &format!("/v1/payment_intents/{intent}/confirm"),
        &[
            ("payment_method", "pm_card_visa"),
            ("return_url", "https://shop.example.com/return"),
        ],
    )
    .await;
    assert_eq!(confirmed["status"], "requires_capture", "{confirmed}");

    // The sandbox's event reaches the Connect endpoint and is routed by
    // `account` into the organisation's ledger.
    let authorized = eventually_in(obol, Some(org), &format!("/v1/payments/{payment}"), |p| {
        p["status"] == "authorized"
    })
    .await;
    assert_eq!(authorized["amount"], amount, "{authorized}");
    assert_eq!(authorized["stripe_payment_intent_id"], intent.as_str());
    let causes: Vec<&str> = authorized["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cause"]["kind"].as_str().unwrap())
        .collect();
    assert!(causes.contains(&"webhook"), "{authorized}");

    let (s, order) = post_in(
        obol,
        Some(org),
        "/v1/orders",
        json!({
            "customer_id": customer, "email": "member@club.example", "currency": "eur",
            "payment_reference": intent,
            "line_items": [{"name": "Riesling 2022", "unit_amount": amount, "quantity": 1}]
        }),
    )
    .await;
    assert_eq!(s, 201, "{order}");
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(order["payment_id"], payment.as_str());
    let order = order["id"].as_str().unwrap().to_string();
    let done = eventually_in(obol, Some(org), &format!("/v1/payments/{payment}"), |p| {
        p["status"] == "completed"
    })
    .await;
    assert_eq!(done["order_id"], order.as_str(), "{done}");
    let at_stripe = stripe_in(
        base,
        Some(acct),
        reqwest::Method::GET,
        &format!("/v1/payment_intents/{intent}"),
        &[],
    )
    .await;
    assert_eq!(at_stripe["status"], "succeeded", "{at_stripe}");

    // The organisation's inbox holds the events as its own: the one that
    // authorized applied, the success decided (applied, or ignored when
    // obol's own capture recorded it first).
    let events = eventually_in(obol, Some(org), "/v1/webhook-events?limit=100", |l| {
        l["data"].as_array().is_some_and(|d| {
            d.iter().any(|e| {
                e["type"] == "payment_intent.succeeded"
                    && (e["status"] == "applied" || e["status"] == "ignored")
            })
        })
    })
    .await;
    for e in events["data"].as_array().unwrap() {
        assert_eq!(e["account_id"], org, "{e}");
        assert_eq!(e["source"], "webhook", "{e}");
    }
    let event = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["type"] == "payment_intent.amount_capturable_updated" && e["status"] == "applied"
        })
        .unwrap_or_else(|| panic!("{events}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    Paid {
        org: org.to_string(),
        customer,
        token,
        payment,
        intent,
        order,
        event,
    }
}

/// Everything of `theirs` answers 404 to `org` (an organisation, or the
/// platform with `None`) with the secret key, and is absent from its
/// lists. The inbox is the exception for the platform: Stripe delivers
/// every account's events to it, so its key lists them all, each under
/// its organisation's `account_id`.
async fn sees_nothing_of(obol: &Obol, org: Option<&str>, theirs: &Paid) {
    let mut paths = vec![
        (
            format!("/v1/customers/{}", theirs.customer),
            "customer_not_found",
        ),
        (format!("/v1/orders/{}", theirs.order), "order_not_found"),
        (
            format!("/v1/payments/{}", theirs.payment),
            "payment_not_found",
        ),
        (
            format!("/v1/payments/{}/refunds", theirs.payment),
            "payment_not_found",
        ),
        (
            format!("/v1/payment-intents/{}/status", theirs.intent),
            "payment_not_found",
        ),
    ];
    if org.is_some() {
        paths.push((
            format!("/v1/webhook-events/{}", theirs.event),
            "webhook_event_not_found",
        ));
    }
    for (path, code) in paths {
        let (s, body) = get_in(obol, org, &path).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (404, Some(code)),
            "{org:?} reading {path} of {}: {body}",
            theirs.org
        );
    }
    let (_, payments) = get_in(obol, org, "/v1/payments?limit=100").await;
    assert!(!ids(&payments).contains(&theirs.payment), "{payments}");
    let (_, events) = get_in(obol, org, "/v1/webhook-events?limit=100").await;
    if org.is_some() {
        assert!(!ids(&events).contains(&theirs.event), "{events}");
        assert!(
            !events.to_string().contains(&theirs.intent),
            "no event of theirs: {events}"
        );
    } else {
        let event = events["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == theirs.event.as_str())
            .unwrap_or_else(|| panic!("the platform's inbox lists it: {events}"));
        assert_eq!(event["account_id"], theirs.org.as_str(), "{event}");
    }
}

async fn two_organisations_pay_end_to_end_and_see_only_their_own(backend: Backend) {
    let obol = Obol::start(backend).await;
    let base = sandbox_base(&obol).await;
    let (a, acct_a) = connected_organization(&obol, "Weingut Ana GmbH").await;
    let (b, acct_b) = connected_organization(&obol, "Bodega Bob SL").await;
    for (org, acct, name) in [
        (&a, &acct_a, "Weingut Ana GmbH"),
        (&b, &acct_b, "Bodega Bob SL"),
    ] {
        let o = org_of(&obol, org).await;
        assert_eq!(o["stripe"]["status"], "active", "{o}");
        assert_eq!(o["stripe"]["account_name"], name, "{o}");
        assert_eq!(o["stripe"]["account_id_last4"], last4(acct), "{o}");
    }
    // The first connection registered the platform's one Connect endpoint
    // for obol's URL, and obol holds its secret.
    let endpoints = connect_endpoints(&obol, &base).await;
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert_eq!(endpoints[0]["status"], "enabled");
    let (_, health) = obol.get("/health").await;
    assert_eq!(
        health["stripe"]["webhooks"]["connect_endpoints"], 1,
        "{health}"
    );

    let paid_a = pay(&obol, &base, &a, &acct_a, 4999).await;
    let paid_b = pay(&obol, &base, &b, &acct_b, 2500).await;

    // Each organisation sees its own with the secret key ...
    for p in [&paid_a, &paid_b] {
        for path in [
            format!("/v1/customers/{}", p.customer),
            format!("/v1/orders/{}", p.order),
            format!("/v1/payments/{}", p.payment),
            format!("/v1/webhook-events/{}", p.event),
        ] {
            let (s, body) = get_in(&obol, Some(&p.org), &path).await;
            assert_eq!(s, 200, "{path}: {body}");
        }
        let (_, payments) = get_in(&obol, Some(&p.org), "/v1/payments?limit=100").await;
        assert_eq!(ids(&payments), vec![p.payment.clone()], "{payments}");
    }
    // ... and nothing of the other, nor does the platform see either.
    sees_nothing_of(&obol, Some(&a), &paid_b).await;
    sees_nothing_of(&obol, Some(&b), &paid_a).await;
    sees_nothing_of(&obol, None, &paid_a).await;
    sees_nothing_of(&obol, None, &paid_b).await;

    // Customer tokens: bound to their organisation without the header.
    for (mine, theirs) in [(&paid_a, &paid_b), (&paid_b, &paid_a)] {
        let (s, order) = get_as(
            &obol,
            &mine.token,
            None,
            &format!("/v1/orders/{}", mine.order),
        )
        .await;
        assert_eq!(s, 200, "{order}");
        let (s, order) = get_as(
            &obol,
            &mine.token,
            Some(&mine.org),
            &format!("/v1/orders/{}", mine.order),
        )
        .await;
        assert_eq!(s, 200, "its own organisation named: {order}");
        let (_, payments) = get_as(&obol, &mine.token, None, "/v1/payments?limit=100").await;
        assert_eq!(ids(&payments), vec![mine.payment.clone()], "{payments}");
        for (path, code) in [
            (format!("/v1/orders/{}", theirs.order), "order_not_found"),
            (
                format!("/v1/payments/{}", theirs.payment),
                "payment_not_found",
            ),
            (
                format!("/v1/customers/{}", theirs.customer),
                "customer_not_found",
            ),
            (
                format!("/v1/payment-intents/{}/status", theirs.intent),
                "payment_not_found",
            ),
        ] {
            let (s, body) = get_as(&obol, &mine.token, None, &path).await;
            assert_eq!(
                (s, body["error"]["code"].as_str()),
                (404, Some(code)),
                "{path}: {body}"
            );
        }
        // Naming the other organisation moves nothing: 404.
        let (s, body) = get_as(
            &obol,
            &mine.token,
            Some(&theirs.org),
            &format!("/v1/orders/{}", theirs.order),
        )
        .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (404, Some("organization_not_found")),
            "{body}"
        );
    }
    // The secret key acting for A cannot mint a token for B's customer.
    let (s, body) = post_in(
        &obol,
        Some(&a),
        "/v1/customer-tokens",
        json!({"customer_id": paid_b.customer, "ttl_seconds": 900}),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("customer_not_found")),
        "{body}"
    );
}

async fn a_lost_connect_delivery_is_recovered_by_reconciliation_into_the_organisation(
    backend: Backend,
) {
    let obol = Obol::builder(backend)
        .env("OBOL_RECONCILE__INTERVAL_SECONDS", "0")
        .start()
        .await;
    let base = sandbox_base(&obol).await;
    let (org, acct) = connected_organization(&obol, "Weingut Rec").await;
    // The Connect endpoint stops receiving (disabled at Stripe): every
    // event of the connected account is lost to obol from here on.
    let endpoints = connect_endpoints(&obol, &base).await;
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    let we = endpoints[0]["id"].as_str().unwrap();
    let disabled = stripe_in(
        &base,
        None,
        reqwest::Method::POST,
        &format!("/v1/webhook_endpoints/{we}"),
        &[("disabled", "true")],
    )
    .await;
    assert_eq!(disabled["status"], "disabled", "{disabled}");

    let (s, pi) = post_in(
        &obol,
        Some(&org),
        "/v1/payment-intents",
        json!({"amount": 3100, "currency": "eur"}),
    )
    .await;
    assert_eq!(s, 201, "{pi}");
    let intent = pi["id"].as_str().unwrap().to_string();
    let payment = pi["payment_id"].as_str().unwrap().to_string();
    let confirmed = stripe_in(
        &base,
        Some(&acct),
        reqwest::Method::POST,
        &format!("/v1/payment_intents/{intent}/confirm"),
        &[
            ("payment_method", "pm_card_visa"),
            ("return_url", "https://shop.example.com/return"),
        ],
    )
    .await;
    assert_eq!(confirmed["status"], "requires_capture", "{confirmed}");
    let captured = stripe_in(
        &base,
        Some(&acct),
        reqwest::Method::POST,
        &format!("/v1/payment_intents/{intent}/capture"),
        &[],
    )
    .await;
    assert_eq!(captured["status"], "succeeded", "{captured}");
    let (_, before) = get_in(&obol, Some(&org), &format!("/v1/payments/{payment}")).await;
    assert_ne!(
        before["status"], "completed",
        "nothing was delivered: {before}"
    );
    let (_, events) = get_in(&obol, Some(&org), "/v1/webhook-events?limit=100").await;
    assert!(
        !events.to_string().contains(&intent),
        "nothing reached the inbox: {events}"
    );

    // One pass (the platform's key, no organisation named) lists the
    // connected account's events with its Stripe-Account and rechecks its
    // open payment in its account.
    let (s, report) = obol.post("/v1/reconciliations", json!({})).await;
    assert_eq!(s, 200, "{report}");
    assert!(report["events_new"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        report["payments_checked"].as_u64().unwrap() >= 1,
        "the organisation's open payment was compared with its intent: {report}"
    );
    let done = eventually_in(&obol, Some(&org), &format!("/v1/payments/{payment}"), |p| {
        p["status"] == "completed"
    })
    .await;
    let causes: Vec<&str> = done["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cause"]["kind"].as_str().unwrap())
        .collect();
    assert!(
        causes.contains(&"reconcile") && !causes.contains(&"webhook"),
        "{done}"
    );
    // The recovered events are the organisation's, stored by the pass.
    let events = eventually_in(&obol, Some(&org), "/v1/webhook-events?limit=100", |l| {
        l["data"].as_array().is_some_and(|d| {
            d.iter().any(|e| {
                e["type"] == "payment_intent.succeeded"
                    && e["status"] != "pending"
                    && e["status"] != "processing"
            })
        })
    })
    .await;
    let recovered: Vec<&Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("payment_intent."))
        .collect();
    assert!(!recovered.is_empty(), "{events}");
    for e in &recovered {
        assert_eq!(e["account_id"], org.as_str(), "{e}");
        assert_eq!(e["source"], "reconcile", "{e}");
        assert!(
            !e["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("no organisation holds"),
            "routed to the organisation: {e}"
        );
    }
    let (_, platform) = obol.get("/v1/payments?limit=100").await;
    assert!(!ids(&platform).contains(&payment), "{platform}");

    // A second pass finds nothing new.
    let (_, again) = obol.post("/v1/reconciliations", json!({})).await;
    assert_eq!(again["events_new"], 0, "{again}");
    assert_eq!(again["payments_moved"], 0, "{again}");
}
