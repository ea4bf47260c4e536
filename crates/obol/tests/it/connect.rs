//! Stripe Connect's OAuth flow over HTTP against `obol serve` and its
//! built-in sandbox, every redirect followed by hand: connect link →
//! obol → the sandbox's consent form (submitted) → obol's callback → the
//! host's return URL. Then: what a bad step changes (nothing), the raw
//! rows (ciphertext only), a payment made in the connected account, and
//! the disconnect.

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::connecting::{
    assert_back, browser, browser_of, connect, connect_journey, connect_link, hidden_fields,
    journey, last4, location, org_of, organization, query_of, sandbox_base, until_callback, ORG,
    RETURN,
};
use crate::helpers::{status_json, Backend, Obol};
use crate::on_both_backends;

on_both_backends!(
    two_organisations_connect_through_the_real_redirect_chain,
    denied_forged_replayed_and_expired_steps_change_nothing,
    tokens_are_ciphertext_in_the_raw_rows_and_never_logged,
    a_payment_for_an_organisation_lives_in_its_connected_account,
    disconnect_deauthorizes_and_stops_payments,
    connect_links_are_the_platforms_or_the_organisations_own,
    with_real_keys_connect_needs_a_client_id_and_goes_to_connect_base,
);

/// `page` is one of obol's connect pages, with `status`.
async fn assert_page(r: reqwest::Response, status: u16, state: &str) {
    assert_eq!(r.status(), status);
    assert!(r.headers().get("location").is_none());
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("data-state=\"{state}\"")),
        "{state}: {html}"
    );
    assert!(html.contains("Nothing was changed"), "{html}");
}

async fn exec(obol: &Obol, backend: Backend, sql_sqlite: &str, sql_pg: &str) {
    use sqlx::Connection;
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&obol.db.url).await.unwrap();
            sqlx::query(sql_sqlite).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&obol.db.url).await.unwrap();
            sqlx::query(sql_pg).execute(&mut c).await.unwrap();
        }
    }
}

async fn two_organisations_connect_through_the_real_redirect_chain(backend: Backend) {
    let obol = Obol::start(backend).await;
    let a = organization(&obol, "Weingut Ana").await;
    let b = organization(&obol, "Bodega Bob").await;
    let acct_a = connect(&obol, &a, "Weingut Ana GmbH").await;
    let acct_b = connect(&obol, &b, "Bodega Bob SL").await;
    assert_ne!(acct_a, acct_b);
    for (org, acct, name) in [
        (&a, &acct_a, "Weingut Ana GmbH"),
        (&b, &acct_b, "Bodega Bob SL"),
    ] {
        let o = org_of(&obol, org).await;
        let s = &o["stripe"];
        assert_eq!(s["status"], "active", "{o}");
        assert_eq!(s["account_name"], name, "{o}");
        assert_eq!(s["account_id_last4"], last4(acct), "{o}");
        assert_eq!(s["livemode"], false);
        assert!(
            s["connected_at"].is_string() && s["disconnected_at"].is_null(),
            "{o}"
        );
        assert!(
            !o.to_string().contains(acct.as_str()),
            "never the whole id: {o}"
        );
    }
    // An active organisation gets no new link.
    let (status, body) = obol
        .post(
            &format!("/v1/organizations/{a}/connect-links"),
            json!({"return_url": RETURN}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("organization_already_connected"))
    );
}

async fn denied_forged_replayed_and_expired_steps_change_nothing(backend: Backend) {
    let obol = Obol::start(backend).await;
    let http = browser_of(&obol);
    let org = organization(&obol, "Weingut Ana").await;
    let pending = org_of(&obol, &org).await;
    assert_eq!(pending["stripe"]["status"], "pending");

    // Denied consent: back to the host with the outcome; nothing changed.
    let link = connect_link(&obol, &org).await;
    let j = journey(&obol, &link, "deny", "Never").await;
    assert!(j.callback.contains("error=access_denied"), "{}", j.callback);
    assert_back(&j.back, "denied", &org);
    assert_eq!(org_of(&obol, &org).await, pending);
    // The link was used by that visit.
    assert_page(http.get(&link).send().await.unwrap(), 410, "used").await;

    // Forged states: unknown, malformed, a real link's id with another secret.
    let cb = |state: &str| {
        format!(
            "{}/connect/stripe/callback?code=ac_forged&state={state}",
            obol.base_url
        )
    };
    let fake_secret = "A".repeat(43);
    let real_id = query_of(&until_callback(&obol, &connect_link(&obol, &org).await, "deny").await)
        ["state"]
        .split('.')
        .next()
        .unwrap()
        .to_string();
    for state in [
        format!("01jdzzzzzzzzzzzzzzzzzzzzzz.{fake_secret}"),
        "nonsense".to_string(),
        format!("{real_id}.{fake_secret}"),
    ] {
        assert_page(http.get(cb(&state)).send().await.unwrap(), 400, "invalid").await;
    }
    let r = http
        .get(format!(
            "{}/connect/stripe/callback?code=ac_x",
            obol.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_page(r, 400, "invalid").await;
    assert_eq!(org_of(&obol, &org).await, pending);

    // Unknown link.
    let unknown = format!(
        "{}/connect/stripe/authorize/{}",
        obol.base_url,
        "B".repeat(43)
    );
    assert_page(http.get(&unknown).send().await.unwrap(), 404, "unknown").await;

    // An expired link (its expiry moved into the past).
    let link = connect_link(&obol, &org).await;
    exec(
        &obol,
        backend,
        "UPDATE connect_links SET link_expires_at = '2020-01-01T00:00:00+00:00' WHERE link_used_at IS NULL",
        "UPDATE connect_links SET link_expires_at = '2020-01-01T00:00:00+00:00' WHERE link_used_at IS NULL",
    )
    .await;
    assert_page(http.get(&link).send().await.unwrap(), 410, "expired").await;

    // An attempt whose state expired while the admin was at Stripe.
    let link = connect_link(&obol, &org).await;
    let callback = until_callback(&obol, &link, "allow").await;
    exec(
        &obol,
        backend,
        "UPDATE connect_links SET state_expires_at = '2020-01-01T00:00:00+00:00' WHERE state_used_at IS NULL",
        "UPDATE connect_links SET state_expires_at = '2020-01-01T00:00:00+00:00' WHERE state_used_at IS NULL",
    )
    .await;
    assert_page(http.get(&callback).send().await.unwrap(), 410, "expired").await;
    assert_eq!(org_of(&obol, &org).await, pending);

    // Connected for real; then the callback replayed: a page, nothing changed.
    let link = connect_link(&obol, &org).await;
    let j = journey(&obol, &link, "allow", "Weingut Ana GmbH").await;
    assert_back(&j.back, "active", &org);
    let active = org_of(&obol, &org).await;
    assert_eq!(active["stripe"]["status"], "active");
    assert_page(http.get(&j.callback).send().await.unwrap(), 410, "used").await;
    assert_eq!(org_of(&obol, &org).await, active);

    // Another organisation consenting with the same Stripe account is refused.
    let other = organization(&obol, "Copycat").await;
    let link = connect_link(&obol, &other).await;
    let sandbox = sandbox_base(&obol).await;
    let authorize = location(&http.get(&link).send().await.unwrap());
    let html = http
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let held = html
        .split("name=\"account\" value=\"")
        .filter_map(|p| p.split('"').next())
        .find(|v| {
            v.starts_with("acct_")
                && v.ends_with(active["stripe"]["account_id_last4"].as_str().unwrap())
        })
        .unwrap()
        .to_string();
    let mut form = hidden_fields(&html);
    form.push(("decision".into(), "allow".into()));
    form.push(("account".into(), held.clone()));
    let callback = location(
        &http
            .post(format!("{sandbox}/oauth/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    );
    let back = location(&http.get(&callback).send().await.unwrap());
    let q = query_of(&back);
    assert_eq!(
        (q["obol_connect"].as_str(), q["obol_error"].as_str()),
        ("error", "stripe_account_in_use"),
        "{back}"
    );
    assert_eq!(org_of(&obol, &other).await["stripe"]["status"], "pending");
    assert_eq!(org_of(&obol, &org).await, active);
}

async fn tokens_are_ciphertext_in_the_raw_rows_and_never_logged(backend: Backend) {
    use obol::secrets::{EncryptionKey, Secrets};
    use obol::storage::organizations::SecretColumn;

    let obol = Obol::start(backend).await;
    let org = organization(&obol, "Weingut Ana").await;
    let (acct, j) = connect_journey(&obol, &org, "Weingut Ana GmbH").await;
    let code = query_of(&j.callback)["code"].clone();
    let store = obol.db.store().await;
    let mut h = store.acquire().await.unwrap();
    let row = h
        .conn()
        .list_organization_secrets(None, 10)
        .await
        .unwrap()
        .remove(0);
    let access_enc = row.stripe_access_token_enc.unwrap();
    let refresh_enc = row.stripe_refresh_token_enc.unwrap();
    assert!(access_enc.starts_with("v1:") && refresh_enc.starts_with("v1:"));
    // Open them with the key obol generated (sandbox mode) to learn what
    // the sandbox issued.
    let (key, _) = h
        .conn()
        .get_generated_key("sandbox")
        .await
        .unwrap()
        .unwrap();
    let secrets = Secrets::new(EncryptionKey::from_base64(&key).unwrap(), vec![]);
    let access = secrets
        .decrypt(&access_enc, &SecretColumn::StripeAccessToken.context(&org))
        .unwrap();
    let refresh = secrets
        .decrypt(
            &refresh_enc,
            &SecretColumn::StripeRefreshToken.context(&org),
        )
        .unwrap();
    let (access, refresh) = (access.expose_secret(), refresh.expose_secret());
    assert!(
        access.starts_with("sk_test_") && refresh.starts_with("rt_"),
        "what the sandbox issues"
    );
    // They are the account's real tokens: the sandbox answers the account for it.
    let sandbox = sandbox_base(&obol).await;
    let me: Value = browser()
        .get(format!("{sandbox}/v1/account"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], acct);
    // Nowhere in plain text: not in the row, not in an answer, not in the log.
    for stored in [&access_enc, &refresh_enc] {
        assert!(!stored.contains(access) && !stored.contains(refresh));
    }
    let (_, shown) = obol.get(&format!("/v1/organizations/{org}")).await;
    let (_, listed) = obol.get("/v1/organizations").await;
    for body in [shown.to_string(), listed.to_string()] {
        assert!(!body.contains(access) && !body.contains(refresh) && !body.contains("v1:"));
    }
    let output = obol.output();
    assert!(!output.contains(access), "the access token was logged");
    assert!(!output.contains(refresh), "the refresh token was logged");
    assert!(!output.contains(&code), "the authorization code was logged");
}

async fn a_payment_for_an_organisation_lives_in_its_connected_account(backend: Backend) {
    let obol = Obol::start(backend).await;
    let a = organization(&obol, "Weingut Ana").await;
    let b = organization(&obol, "Bodega Bob").await;
    let acct_a = connect(&obol, &a, "Weingut Ana GmbH").await;
    let acct_b = connect(&obol, &b, "Bodega Bob SL").await;
    let r = obol
        .http
        .post(obol.url("/v1/payment-intents"))
        .bearer_auth(&obol.api_key)
        .header(ORG, &a)
        .json(&json!({"amount": 4999, "currency": "eur"}))
        .send()
        .await
        .unwrap();
    let (status, pi) = status_json(r).await;
    assert_eq!(status, 201, "{pi}");
    let pi_id = pi["id"].as_str().unwrap();
    let sandbox = sandbox_base(&obol).await;
    let at = |acct: Option<&str>| {
        let mut r = browser()
            .get(format!("{sandbox}/v1/payment_intents/{pi_id}"))
            .bearer_auth("sk_test_obol_sandbox");
        if let Some(acct) = acct {
            r = r.header("Stripe-Account", acct);
        }
        r.send()
    };
    let found = at(Some(&acct_a)).await.unwrap();
    assert_eq!(found.status(), 200);
    let found: Value = found.json().await.unwrap();
    assert_eq!(found["amount"], 4999);
    assert_eq!(
        at(None).await.unwrap().status(),
        404,
        "not on the platform's account"
    );
    assert_eq!(at(Some(&acct_b)).await.unwrap().status(), 404, "not in B's");
    // Its idempotency key was scoped to the account (the event's request).
    let events: Value = browser()
        .get(format!("{sandbox}/v1/events?type=payment_intent.created"))
        .bearer_auth("sk_test_obol_sandbox")
        .header("Stripe-Account", &acct_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = events["data"][0]["request"]["idempotency_key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(key.starts_with(&format!("obol-{acct_a}-")), "{events}");
    // The platform itself still pays on its own account.
    let (status, own) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 1000, "currency": "eur"}),
        )
        .await;
    assert_eq!(status, 201, "{own}");
    let own_id = own["id"].as_str().unwrap();
    let r = browser()
        .get(format!("{sandbox}/v1/payment_intents/{own_id}"))
        .bearer_auth("sk_test_obol_sandbox")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn disconnect_deauthorizes_and_stops_payments(backend: Backend) {
    let obol = Obol::start(backend).await;
    let org = organization(&obol, "Weingut Ana").await;
    // Never connected: nothing to disconnect.
    let (status, body) = obol
        .post(&format!("/v1/organizations/{org}/disconnect"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("organization_not_connected")),
        "{body}"
    );
    let acct = connect(&obol, &org, "Weingut Ana GmbH").await;
    let (status, body) = obol
        .post(&format!("/v1/organizations/{org}/disconnect"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stripe"]["status"], "disconnected");
    assert!(body["stripe"]["disconnected_at"].is_string());
    assert_eq!(body["stripe"]["account_id_last4"], last4(&acct));
    // Idempotent.
    let (status, again) = obol
        .post(&format!("/v1/organizations/{org}/disconnect"), json!({}))
        .await;
    assert_eq!((status, &again), (200, &body));
    // The sandbox says so: the platform may no longer act for it.
    let sandbox = sandbox_base(&obol).await;
    let r = browser()
        .get(format!("{sandbox}/v1/account"))
        .bearer_auth("sk_test_obol_sandbox")
        .header("Stripe-Account", &acct)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "account_invalid", "{err}");
    // Both OAuth calls are Stripe calls on /metrics, like any other.
    let samples = crate::metrics::scrape(&obol).await;
    for endpoint in ["/oauth/token", "/oauth/deauthorize"] {
        let n = crate::metrics::value(
            &samples,
            "obol_stripe_requests_total",
            &[
                ("method", "POST"),
                ("endpoint", endpoint),
                ("outcome", "2xx"),
            ],
        );
        assert_eq!(n, 1.0, "{endpoint}");
    }
    // The tokens are gone from the row.
    let store = obol.db.store().await;
    let mut h = store.acquire().await.unwrap();
    assert!(h
        .conn()
        .list_organization_secrets(None, 10)
        .await
        .unwrap()
        .is_empty());
    // And nothing more is charged for it.
    let r = obol
        .http
        .post(obol.url("/v1/payment-intents"))
        .bearer_auth(&obol.api_key)
        .header(ORG, &org)
        .json(&json!({"amount": 4999, "currency": "eur"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("organization_not_connected")),
        "{body}"
    );
}

async fn connect_links_are_the_platforms_or_the_organisations_own(backend: Backend) {
    let obol = Obol::start(backend).await;
    let a = organization(&obol, "a").await;
    let b = organization(&obol, "b").await;
    let post_as = |org: Option<String>, path: String, body: Value| {
        let mut r = obol
            .http
            .post(obol.url(&path))
            .bearer_auth(&obol.api_key)
            .json(&body);
        if let Some(org) = org {
            r = r.header(ORG, org);
        }
        async move { status_json(r.send().await.unwrap()).await }
    };
    let path = format!("/v1/organizations/{a}/connect-links");
    // The key acting for A may; acting for B, A is someone else's: 404.
    let (status, body) =
        post_as(Some(a.clone()), path.clone(), json!({"return_url": RETURN})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        post_as(Some(b.clone()), path.clone(), json!({"return_url": RETURN})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("organization_not_found"))
    );
    let (status, body) = post_as(
        Some(b.clone()),
        format!("/v1/organizations/{a}/disconnect"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("organization_not_found"))
    );
    for bad in [
        "/relative",
        "ftp://x.example/",
        "https://user:pw@x.example/",
        "not a url",
    ] {
        let (status, body) = post_as(None, path.clone(), json!({"return_url": bad})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("invalid_url")),
            "{bad}: {body}"
        );
    }
}

async fn with_real_keys_connect_needs_a_client_id_and_goes_to_connect_base(backend: Backend) {
    // A stand-in for Stripe, serving the API and Connect's OAuth endpoints.
    let stripe = obol_sandbox::Sandbox::bind(
        "127.0.0.1:0".parse().unwrap(),
        obol_sandbox::SandboxConfig::default(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", stripe.local_addr());
    tokio::spawn(stripe.run_until(std::future::pending()));
    let (_, key) = obol::secrets::EncryptionKey::generate();
    let real = |backend| {
        Obol::builder(backend)
            .env("OBOL_STRIPE__SECRET_KEY", "sk_test_obol_connect")
            .env("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_test_obol_connect")
            .env("OBOL_STRIPE__API_BASE", &base)
            .env("OBOL_STRIPE__WEBHOOK_SECRETS", "whsec_test")
            .env("OBOL_SECRETS__ENCRYPTION_KEY", key.expose_secret())
    };
    let obol = real(backend).start().await;
    let org = organization(&obol, "Weingut Ana").await;
    let (status, body) = obol
        .post(
            &format!("/v1/organizations/{org}/connect-links"),
            json!({"return_url": RETURN}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("connect_not_configured")),
        "{body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("stripe.connect.client_id"));
    drop(obol);

    let obol = real(backend)
        .env("OBOL_STRIPE__CONNECT__CLIENT_ID", "ca_obolplatform42")
        .env("OBOL_STRIPE__CONNECT__BASE", &base)
        .start()
        .await;
    let org = organization(&obol, "Weingut Ana").await;
    let link = connect_link(&obol, &org).await;
    let authorize = location(&browser_of(&obol).get(&link).send().await.unwrap());
    assert_eq!(query_of(&authorize)["client_id"], "ca_obolplatform42");
    // The whole way, with the configured client id and base.
    let link = connect_link(&obol, &org).await;
    let j = journey(&obol, &link, "allow", "Weingut Ana GmbH").await;
    assert_back(&j.back, "active", &org);
    let o = org_of(&obol, &org).await;
    assert_eq!(o["stripe"]["account_name"], "Weingut Ana GmbH", "{o}");
}
