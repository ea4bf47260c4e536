//! Stripe Connect webhooks: events of connected accounts reach obol
//! through the platform's Connect endpoint (registered at start-up in
//! sandbox mode), are routed by their `account` to the organisation
//! holding it, and `account.application.deauthorized` disconnects it.
//!
//! Organisations are connected through obol's real redirect chain
//! (`connecting::connected_organization`: connect link → the sandbox's
//! consent form → obol's callback); an account no organisation holds is
//! connected at the sandbox alone (`sandbox_account`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::connecting::{connected_organization, eventually_in, get_in, post_in};
use crate::helpers::{run_obol, Backend, Obol, TestReceiver};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    a_connected_accounts_payment_reaches_only_its_organization,
    an_event_for_an_account_no_organization_holds_is_ignored_with_the_reason,
    deauthorization_disconnects_stops_charge_runs_and_notifies_the_host,
    duplicate_endpoints_are_reported_by_health_and_register_webhook,
);

const CLIENT_ID: &str = "ca_obolConnectTests";
const PLATFORM_KEY: &str = "sk_test_obol_tests";

/// Connects a new account named `name` at the sandbox, as an account's
/// admin allowing the platform on the consent form would; its `acct_…`.
async fn sandbox_account(base: &str, name: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{base}/oauth/authorize"))
        .form(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "https://crm.example/connected"),
            ("scope", "read_write"),
            ("state", "test"),
            ("account_name", name),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"));
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .bearer_auth(PLATFORM_KEY)
        .form(&[("grant_type", "authorization_code"), ("code", &code)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["stripe_user_id"].as_str().unwrap().to_string()
}

/// A PaymentIntent confirmed with 4242 on connected account `acct`.
async fn pay_on(base: &str, acct: &str) -> String {
    let pi: Value = reqwest::Client::new()
        .post(format!("{base}/v1/payment_intents"))
        .bearer_auth(PLATFORM_KEY)
        .header("Stripe-Account", acct)
        .form(&[
            ("amount", "4999"),
            ("currency", "eur"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pi["status"], "succeeded", "{pi}");
    pi["id"].as_str().unwrap().to_string()
}

fn payments_of(list: &Value, pi: &str) -> usize {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["stripe_payment_intent_id"] == pi)
        .count()
}

async fn a_connected_accounts_payment_reaches_only_its_organization(backend: Backend) {
    let obol = Obol::start(backend).await;
    let base = sandbox(&obol).await;
    let (a, acct_a) = connected_organization(&obol, "Weingut A").await;
    let (b, _) = connected_organization(&obol, "Weingut B").await;
    let pi = pay_on(&base, &acct_a).await;

    // Delivered to the Connect endpoint with `account`, stored for A.
    let payments = eventually_in(&obol, Some(&a), "/v1/payments", |l| {
        l["data"].as_array().is_some_and(|d| {
            d.iter()
                .any(|p| p["stripe_payment_intent_id"] == pi && p["status"] == "completed")
        })
    })
    .await;
    assert_eq!(payments_of(&payments, &pi), 1, "{payments}");
    // Neither the platform nor B sees it.
    let (_, platform) = get_in(&obol, None, "/v1/payments").await;
    assert_eq!(payments_of(&platform, &pi), 0, "{platform}");
    let (_, other) = get_in(&obol, Some(&b), "/v1/payments").await;
    assert_eq!(payments_of(&other, &pi), 0, "{other}");

    // The inbox stored its events with A's account id and applied them.
    let events = eventually(&obol, "/v1/webhook-events?limit=100", |l| {
        l["data"].as_array().is_some_and(|d| {
            d.iter()
                .any(|e| e["type"] == "payment_intent.succeeded" && e["status"] == "applied")
        })
    })
    .await;
    let theirs: Vec<&Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("payment_intent."))
        .collect();
    assert!(!theirs.is_empty());
    for e in &theirs {
        assert_eq!(e["account_id"], a.as_str(), "{e}");
    }
    let (_, seen_by_a) = get_in(&obol, Some(&a), "/v1/webhook-events?limit=100").await;
    assert!(!seen_by_a["data"].as_array().unwrap().is_empty());
    let (_, seen_by_b) = get_in(&obol, Some(&b), "/v1/webhook-events?limit=100").await;
    assert_eq!(seen_by_b["data"], json!([]), "{seen_by_b}");

    // A platform payment still lands on the platform only.
    let own = stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "1500"),
            ("currency", "eur"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    let own = own["id"].as_str().unwrap().to_string();
    eventually(&obol, "/v1/payments", |l| payments_of(l, &own) == 1).await;
    let (_, in_a) = get_in(&obol, Some(&a), "/v1/payments").await;
    assert_eq!(payments_of(&in_a, &own), 0, "{in_a}");

    // The Connect endpoint's signing secret is stored encrypted only.
    let store = obol.db.store().await;
    let mut h = store.acquire().await.unwrap();
    let rows = h.conn().list_stripe_endpoints().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].connect);
    assert!(rows[0].secret_enc.starts_with("v1:"), "sealed");
    assert!(!rows[0].secret_enc.contains("whsec_"), "sealed");
    assert!(!format!("{:?}", rows[0]).contains(&rows[0].secret_enc));
    assert!(!obol.output().contains("whsec_"), "no secret in the log");
}

async fn an_event_for_an_account_no_organization_holds_is_ignored_with_the_reason(
    backend: Backend,
) {
    let obol = Obol::start(backend).await;
    let base = sandbox(&obol).await;
    // Connected at Stripe, but no organisation of this obol holds it.
    let stranger = sandbox_account(&base, "Somebody else").await;
    let pi = pay_on(&base, &stranger).await;
    let events = eventually(&obol, "/v1/webhook-events?status=ignored&limit=100", |l| {
        l["data"].as_array().is_some_and(|d| {
            d.iter()
                .any(|e| e["type"] == "payment_intent.succeeded" && e["account_id"] == stranger)
        })
    })
    .await;
    for e in events["data"].as_array().unwrap() {
        if e["account_id"] == stranger.as_str() {
            assert_eq!(e["status"], "ignored", "{e}");
            let reason = e["reason"].as_str().unwrap();
            assert!(
                reason.contains(&stranger) && reason.contains("no organisation holds"),
                "{reason}"
            );
        }
    }
    // Acknowledged, never applied: the platform has no payment for it,
    // and replaying it changes nothing.
    let (_, platform) = get_in(&obol, None, "/v1/payments").await;
    assert_eq!(payments_of(&platform, &pi), 0, "{platform}");
    let id = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["account_id"] == stranger.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = obol
        .post(&format!("/v1/webhook-events/{id}/replay"), json!({}))
        .await;
    assert_eq!(status, 200);
    let again = eventually(&obol, &format!("/v1/webhook-events/{id}"), |e| {
        e["status"] == "ignored"
    })
    .await;
    assert!(
        again["reason"]
            .as_str()
            .unwrap()
            .contains("no organisation holds"),
        "{again}"
    );
    let (_, platform) = get_in(&obol, None, "/v1/payments").await;
    assert_eq!(payments_of(&platform, &pi), 0, "{platform}");
}

/// A POST to the sandbox's API for connected account `acct`.
async fn stripe_post_in(base: &str, acct: &str, path: &str, form: &[(&str, &str)]) -> Value {
    reqwest::Client::new()
        .post(format!("{}{path}", base.trim_end_matches('/')))
        .bearer_auth(PLATFORM_KEY)
        .header("Stripe-Account", acct)
        .form(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Changes the sandbox's fault injection (`/_sandbox/chaos`).
async fn set_chaos(base: &str, chaos: Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/chaos", base.trim_end_matches('/')))
        .json(&chaos)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
}

/// Saves a 4242 card as `member`'s default in organisation `org`, the
/// way its connected account `acct` tells obol: a card-update link makes
/// the member's Stripe customer there, the card is attached and made the
/// default, and the events reach obol through the Connect endpoint.
async fn save_card_in(obol: &Obol, base: &str, org: &str, acct: &str, member: &str) {
    let (s, link) = post_in(
        obol,
        Some(org),
        &format!("/v1/customers/{member}/card-update-links"),
        json!({}),
    )
    .await;
    assert_eq!(s, 201, "{link}");
    let cus = link["stripe_customer_id"].as_str().unwrap().to_string();
    let attached = stripe_post_in(
        base,
        acct,
        "/v1/payment_methods/pm_card_visa/attach",
        &[("customer", cus.as_str())],
    )
    .await;
    let pm = attached["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{attached}"))
        .to_string();
    let updated = stripe_post_in(
        base,
        acct,
        &format!("/v1/customers/{cus}"),
        &[("invoice_settings[default_payment_method]", pm.as_str())],
    )
    .await;
    assert_eq!(
        updated["invoice_settings"]["default_payment_method"],
        pm.as_str(),
        "{updated}"
    );
    eventually_in(
        obol,
        Some(org),
        &format!("/v1/customers/{member}/payment-methods"),
        |b| {
            b["data"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|c| c["id"] == pm.as_str() && c["default"] == true)
            })
        },
    )
    .await;
}

async fn deauthorization_disconnects_stops_charge_runs_and_notifies_the_host(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "20")
        .env("OBOL_CHARGE_RUNS__WORKERS", "1")
        .env("OBOL_CHARGE_RUNS__CONCURRENCY", "1")
        .start()
        .await;
    let base = sandbox(&obol).await;
    let (org, acct) = connected_organization(&obol, "Weingut C").await;
    // The host listens on the platform (organisations are the platform's)
    // and in the organisation.
    let platform_hooks = TestReceiver::start(0).await;
    let org_hooks = TestReceiver::start(0).await;
    let (s, _) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": platform_hooks.url, "event_types": ["organization.disconnected"]}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = post_in(
        &obol,
        Some(&org),
        "/v1/webhook-endpoints",
        json!({"url": org_hooks.url, "event_types": ["organization.disconnected"]}),
    )
    .await;
    assert_eq!(s, 201);

    // A charge run in progress: four members with saved cards, one worker
    // charging one at a time; the sandbox holds each charge for 3 s, so
    // two items are in flight and two not yet sent when the account goes.
    let mut members = Vec::new();
    for i in 0..4 {
        let (s, c) = post_in(
            &obol,
            Some(&org),
            "/v1/customers",
            json!({"external_id": format!("m-{i}"), "email": format!("m{i}@club.example")}),
        )
        .await;
        assert_eq!(s, 201, "{c}");
        let member = c["id"].as_str().unwrap().to_string();
        save_card_in(&obol, &base, &org, &acct, &member).await;
        members.push(member);
    }
    let (s, run) = post_in(
        &obol,
        Some(&org),
        "/v1/charge-runs",
        json!({"name": "Autumn release", "currency": "eur"}),
    )
    .await;
    assert_eq!(s, 201, "{run}");
    let run = run["id"].as_str().unwrap().to_string();
    let items: Vec<Value> = members
        .iter()
        .map(|c| json!({"customer_id": c, "amount": 5000}))
        .collect();
    let (s, added) = post_in(
        &obol,
        Some(&org),
        &format!("/v1/charge-runs/{run}/items"),
        json!({"items": items}),
    )
    .await;
    assert_eq!(s, 201, "{added}");
    set_chaos(&base, json!({"latency_ms": 3000})).await;
    let (s, started) = post_in(
        &obol,
        Some(&org),
        &format!("/v1/charge-runs/{run}/start"),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, started["status"].as_str()),
        (200, Some("running")),
        "{started}"
    );
    eventually_in(&obol, Some(&org), &format!("/v1/charge-runs/{run}"), |r| {
        r["counts"]["processing"] == 2 && r["counts"]["pending"] == 2
    })
    .await;

    // The account's admin disconnects the platform at Stripe.
    let r = reqwest::Client::new()
        .post(format!("{base}/oauth/deauthorize"))
        .bearer_auth(PLATFORM_KEY)
        // The application obol connected it to (its built-in client id).
        .form(&[
            ("client_id", obol::config::SANDBOX_CONNECT_CLIENT_ID),
            ("stripe_user_id", acct.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());

    let shown = eventually_in(&obol, None, &format!("/v1/organizations/{org}"), |o| {
        o["stripe"]["status"] == "disconnected"
    })
    .await;
    assert!(shown["stripe"]["disconnected_at"].is_string(), "{shown}");
    let stopped = eventually_in(&obol, Some(&org), &format!("/v1/charge-runs/{run}"), |r| {
        r["status"] == "canceled"
    })
    .await;
    assert_eq!(stopped["counts"]["canceled"], 2, "{stopped}");
    assert_eq!(stopped["counts"]["pending"], 0, "{stopped}");
    assert_eq!(stopped["counts"]["succeeded"], 0, "{stopped}");
    set_chaos(&base, json!({})).await;

    for hooks in [&platform_hooks, &org_hooks] {
        let got = hooks
            .until("organization.disconnected", |r| !r.is_empty())
            .await;
        let body = got[0].json();
        assert_eq!(body["type"], "organization.disconnected", "{body}");
        assert_eq!(body["data"]["organization"]["id"], org.as_str());
        assert_eq!(
            body["data"]["organization"]["stripe_status"],
            "disconnected"
        );
        assert_eq!(body["data"]["charge_runs_canceled"], json!([run]));
        assert!(
            !body.to_string().contains(&acct),
            "never the full account id"
        );
    }

    // The event is the organisation's, applied once: a replay (or the
    // disconnect call that caused it) finds it disconnected already.
    let (_, events) = get_in(&obol, Some(&org), "/v1/webhook-events?limit=100").await;
    let deauth = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "account.application.deauthorized")
        .cloned()
        .unwrap_or_else(|| panic!("{events}"));
    assert_eq!(deauth["status"], "applied", "{deauth}");
    assert_eq!(deauth["account_id"], org.as_str());
    let id = deauth["id"].as_str().unwrap();
    let (s, _) = obol
        .post(&format!("/v1/webhook-events/{id}/replay"), json!({}))
        .await;
    assert_eq!(s, 200);
    let again = eventually(&obol, &format!("/v1/webhook-events/{id}"), |e| {
        e["status"] == "ignored"
    })
    .await;
    assert!(
        again["reason"]
            .as_str()
            .unwrap()
            .contains("already disconnected"),
        "{again}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(platform_hooks.received().len(), 1, "notified once");
    assert_eq!(org_hooks.received().len(), 1, "notified once");
}

async fn duplicate_endpoints_are_reported_by_health_and_register_webhook(backend: Backend) {
    let obol = Obol::start(backend).await;
    let base = sandbox(&obol).await;
    let url = format!("{}/webhooks/stripe", obol.base_url);
    // Start-up registered one platform and one Connect endpoint.
    let (status, health) = obol.get("/health").await;
    assert_eq!(status, 200);
    let webhooks = &health["stripe"]["webhooks"];
    assert_eq!(webhooks["status"], "ok", "{health}");
    assert_eq!(webhooks["url"], url.as_str());
    assert_eq!(webhooks["platform_endpoints"], 1, "{health}");
    assert_eq!(webhooks["connect_endpoints"], 1, "{health}");

    // Someone adds a second of each for obol's URL by hand.
    for connect in ["false", "true"] {
        let we = stripe_post(
            &base,
            "/v1/webhook_endpoints",
            &[
                ("url", url.as_str()),
                ("enabled_events[]", "*"),
                ("connect", connect),
            ],
        )
        .await;
        assert!(we["id"].as_str().unwrap().starts_with("we_"), "{we}");
    }
    // `/health` does not ask Stripe itself: the next look does (each
    // reconciliation pass, here one run now).
    let (_, health) = obol.get("/health").await;
    assert_eq!(health["stripe"]["webhooks"]["status"], "ok", "cached");
    let (status, _) = obol.post("/v1/reconciliations", json!({})).await;
    assert_eq!(status, 200);
    let (status, health) = obol.get("/health").await;
    assert_eq!(status, 200, "duplicates do not take obol out of service");
    assert_eq!(health["status"], "ok");
    let webhooks = &health["stripe"]["webhooks"];
    assert_eq!(webhooks["status"], "degraded", "{health}");
    assert_eq!(webhooks["platform_endpoints"], 2);
    assert_eq!(webhooks["connect_endpoints"], 2);
    let message = webhooks["message"].as_str().unwrap();
    assert!(
        message.contains("2 platform webhook endpoints deliver to")
            && message.contains("2 Connect webhook endpoints deliver to")
            && message.contains(&url),
        "{message}"
    );

    // The command says the same, and adds nothing.
    let key = crate::helpers::random_api_key();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("OBOL_STRIPE__SECRET_KEY", PLATFORM_KEY),
        ("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_test_obol_tests"),
        ("OBOL_STRIPE__API_BASE", base.as_str()),
        ("OBOL_PUBLIC_URL", obol.base_url.as_str()),
        ("OBOL_API_KEYS", key.as_str()),
    ];
    let owned: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let path = dir.path().to_path_buf();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        run_obol(&["stripe", "register-webhook"], &env, &path)
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("2 platform webhook endpoints deliver to"),
        "{out}"
    );
    assert!(
        out.contains("2 Connect webhook endpoints deliver to"),
        "{out}"
    );
    let list: Value = reqwest::Client::new()
        .get(format!("{base}/v1/webhook_endpoints?limit=100"))
        .bearer_auth(PLATFORM_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 4, "none added");
}
