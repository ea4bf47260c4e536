//! Organisations and the `Obol-Organization` header, over HTTP against
//! `obol serve`: what an organisation owns is invisible to the platform
//! and to every other organisation, with the secret key and with
//! customer tokens; an organisation without a connected Stripe account is
//! never charged on the platform's; tokens at rest are ciphertext.

use serde_json::{json, Value};

use crate::helpers::{status_json, Backend, Obol};
use crate::on_both_backends;

on_both_backends!(
    create_read_and_list_organizations,
    duplicate_external_id_is_409_with_the_existing_id,
    an_unknown_or_malformed_organization_is_404_never_the_platform,
    an_organizations_objects_are_404_from_the_platform_and_other_organizations,
    a_customer_token_is_bound_to_its_organization,
    lists_hold_only_the_accounts_own_rows,
    an_unconnected_organization_is_never_charged_on_the_platforms_account,
    organization_routes_belong_to_the_platform,
    with_real_stripe_keys_organisations_need_an_encryption_key,
    tokens_at_rest_are_ciphertext_and_rotate_to_a_new_key,
);

const ORG: &str = "obol-organization";

/// `method path` with the secret key (or `bearer`), as organisation `org`.
async fn call(
    obol: &Obol,
    method: reqwest::Method,
    path: &str,
    org: Option<&str>,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = obol
        .http
        .request(method, obol.url(path))
        .bearer_auth(bearer.unwrap_or(&obol.api_key));
    if let Some(org) = org {
        r = r.header(ORG, org);
    }
    if let Some(body) = body {
        r = r.json(&body);
    }
    status_json(r.send().await.unwrap()).await
}

async fn post_in(obol: &Obol, org: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    call(obol, reqwest::Method::POST, path, org, None, Some(body)).await
}

async fn get_in(obol: &Obol, org: Option<&str>, path: &str) -> (u16, Value) {
    call(obol, reqwest::Method::GET, path, org, None, None).await
}

async fn get_with_token(obol: &Obol, org: Option<&str>, path: &str, token: &str) -> (u16, Value) {
    call(obol, reqwest::Method::GET, path, org, Some(token), None).await
}

async fn organization(obol: &Obol, name: &str) -> String {
    let (status, org) = obol
        .post(
            "/v1/organizations",
            json!({"name": name, "external_id": format!("ext-{name}")}),
        )
        .await;
    assert_eq!(status, 201, "{org}");
    org["id"].as_str().unwrap().to_string()
}

async fn customer_in(obol: &Obol, org: Option<&str>, external_id: &str) -> String {
    let (status, c) = post_in(
        obol,
        org,
        "/v1/customers",
        json!({"external_id": external_id, "email": format!("{external_id}@example.com")}),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    c["id"].as_str().unwrap().to_string()
}

async fn token_in(obol: &Obol, org: Option<&str>, customer: &str) -> String {
    let (status, t) = post_in(
        obol,
        org,
        "/v1/customer-tokens",
        json!({"customer_id": customer, "ttl_seconds": 600}),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    t["token"].as_str().unwrap().to_string()
}

fn order_for(customer: Option<&str>) -> Value {
    json!({
        "customer_id": customer,
        "email": "ana@example.com", "currency": "eur",
        "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 2}],
        "shipping": {"name": "Standard", "amount": 999},
        "shipping_address": {"first_name": "Ana", "last_name": "Lima", "street": "Weinstr. 1", "city": "Mainz", "zip": "55116", "country": "DE"}
    })
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn create_read_and_list_organizations(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (status, created) = obol
        .post(
            "/v1/organizations",
            json!({"name": "Weingut Ana", "external_id": "winery-1"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("org_"), "{id}");
    assert_eq!(created["name"], "Weingut Ana");
    assert_eq!(created["external_id"], "winery-1");
    assert_eq!(
        created["stripe"],
        json!({"status": "pending", "account_id_last4": null, "account_name": null,
               "livemode": null, "connected_at": null, "disconnected_at": null})
    );
    let (status, read) = obol.get(&format!("/v1/organizations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(read, created);

    // Without external_id; then pages of one, newest first.
    let (status, second) = obol
        .post("/v1/organizations", json!({"name": "Bodega Bob"}))
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["external_id"], Value::Null);
    let third = organization(&obol, "Chateau Cleo").await;
    let (status, page) = obol.get("/v1/organizations?limit=2").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"][0]["id"], third.as_str());
    assert_eq!(page["data"][1]["id"], second["id"]);
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = obol
        .get(&format!("/v1/organizations?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["data"][0]["id"], id);
    assert_eq!(rest["has_more"], false);

    // Names are checked like every other field.
    let (status, body) = obol.post("/v1/organizations", json!({"name": "  "})).await;
    assert_eq!((status, code(&body)), (422, "field_empty"), "{body}");
    let (status, body) = obol
        .post("/v1/organizations", json!({"external_id": "x"}))
        .await;
    assert_eq!(status, 400, "{body}");
}

async fn duplicate_external_id_is_409_with_the_existing_id(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (_, first) = obol
        .post(
            "/v1/organizations",
            json!({"name": "A", "external_id": "winery-7"}),
        )
        .await;
    let (status, body) = obol
        .post(
            "/v1/organizations",
            json!({"name": "B", "external_id": "winery-7"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(code(&body), "organization_exists");
    assert_eq!(body["error"]["existing_id"], first["id"]);
}

async fn an_unknown_or_malformed_organization_is_404_never_the_platform(backend: Backend) {
    let obol = Obol::start(backend).await;
    let platform_customer = customer_in(&obol, None, "plat").await;
    for bad in [
        "org_01jzzzzzzzzzzzzzzzzzzzzzzz",
        "org_nope",
        "default",
        "",
        "cus_01jzzzzzzzzzzzzzzzzzzzzzzz",
    ] {
        let (status, body) = get_in(
            &obol,
            Some(bad),
            &format!("/v1/customers/{platform_customer}"),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (404, "organization_not_found"),
            "{bad:?}: {body}"
        );
        let (status, body) = post_in(&obol, Some(bad), "/v1/customers", json!({})).await;
        assert_eq!(
            (status, code(&body)),
            (404, "organization_not_found"),
            "{bad:?}"
        );
    }
    let (status, body) = obol
        .get("/v1/organizations/org_01jzzzzzzzzzzzzzzzzzzzzzzz")
        .await;
    assert_eq!((status, code(&body)), (404, "organization_not_found"));
    let (status, body) = obol.get("/v1/organizations/nope").await;
    assert_eq!((status, code(&body)), (404, "organization_not_found"));
}

async fn an_organizations_objects_are_404_from_the_platform_and_other_organizations(
    backend: Backend,
) {
    let obol = Obol::start(backend).await;
    let a = organization(&obol, "a").await;
    let b = organization(&obol, "b").await;

    // A customer, an order and a charge run made inside organisation A.
    let (status, customer) = post_in(
        &obol,
        Some(&a),
        "/v1/customers",
        json!({"external_id": "member-1", "email": "m1@example.com"}),
    )
    .await;
    assert_eq!(status, 201, "{customer}");
    let cus = customer["id"].as_str().unwrap();
    let (status, order) = post_in(&obol, Some(&a), "/v1/orders", order_for(Some(cus))).await;
    assert_eq!(status, 201, "{order}");
    let ord = order["id"].as_str().unwrap();
    let (status, run) = post_in(
        &obol,
        Some(&a),
        "/v1/charge-runs",
        json!({"name": "Autumn release", "currency": "eur"}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let cr = run["id"].as_str().unwrap();

    let paths = [
        (format!("/v1/customers/{cus}"), "customer_not_found"),
        (format!("/v1/orders/{ord}"), "order_not_found"),
        (format!("/v1/charge-runs/{cr}"), "charge_run_not_found"),
    ];
    for (path, not_found) in &paths {
        let (status, _) = get_in(&obol, Some(&a), path).await;
        assert_eq!(status, 200, "{path} inside its organisation");
        for other in [None, Some(b.as_str())] {
            let (status, body) = get_in(&obol, other, path).await;
            assert_eq!(
                (status, code(&body)),
                (404, *not_found),
                "{path} from {other:?}: {body}"
            );
        }
    }
    // The same external_id is free in another account: ids are per account.
    let other = customer_in(&obol, Some(&b), "member-1").await;
    assert_ne!(other, cus);
    let _ = customer_in(&obol, None, "member-1").await;

    // And the other way round: the platform's pay-first intent is 404 from
    // an organisation.
    let (status, intent) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 4999, "currency": "eur"}),
        )
        .await;
    assert_eq!(status, 201, "{intent}");
    let pi = intent["id"].as_str().unwrap();
    let status_path = format!("/v1/payment-intents/{pi}/status");
    let (status, _) = get_in(&obol, None, &status_path).await;
    assert_eq!(status, 200);
    let (status, body) = get_in(&obol, Some(&a), &status_path).await;
    assert_eq!(status, 404, "{body}");

    // A guest order of A is found by its guest token only inside A.
    let (status, guest_order) = post_in(&obol, Some(&a), "/v1/orders", order_for(None)).await;
    assert_eq!(status, 201, "{guest_order}");
    let guest_token = guest_order["guest_token"].as_str().unwrap();
    let path = format!("/v1/orders/{}", guest_order["id"].as_str().unwrap());
    for (org, expected) in [
        (Some(a.as_str()), 200),
        (None, 404),
        (Some(b.as_str()), 404),
    ] {
        let mut r = obol
            .http
            .get(obol.url(&path))
            .header("x-guest-token", guest_token);
        if let Some(org) = org {
            r = r.header(ORG, org);
        }
        let (status, body) = status_json(r.send().await.unwrap()).await;
        assert_eq!(status, expected, "guest in {org:?}: {body}");
    }
}

async fn a_customer_token_is_bound_to_its_organization(backend: Backend) {
    let obol = Obol::start(backend).await;
    let a = organization(&obol, "a").await;
    let b = organization(&obol, "b").await;
    let cus = customer_in(&obol, Some(&a), "member-1").await;
    let token = token_in(&obol, Some(&a), &cus).await;
    let path = format!("/v1/customers/{cus}");

    // The token acts in its own organisation, with or without the header.
    for org in [None, Some(a.as_str())] {
        let (status, body) = get_with_token(&obol, org, &path, &token).await;
        assert_eq!(status, 200, "{org:?}: {body}");
        assert_eq!(body["id"], cus.as_str());
    }
    // Naming another organisation, the platform or nothing real never
    // widens it: 404 organization_not_found.
    for org in [b.as_str(), "default", "org_01jzzzzzzzzzzzzzzzzzzzzzzz"] {
        let (status, body) = get_with_token(&obol, Some(org), &path, &token).await;
        assert_eq!(
            (status, code(&body)),
            (404, "organization_not_found"),
            "{org}: {body}"
        );
    }
    // Its customer's order in its organisation: the token reads it, the
    // platform and the other organisation do not.
    let (status, order) = post_in(&obol, Some(&a), "/v1/orders", order_for(Some(&cus))).await;
    assert_eq!(status, 201, "{order}");
    let ord = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    assert_eq!(get_with_token(&obol, None, &ord, &token).await.0, 200);
    assert_eq!(get_in(&obol, None, &ord).await.0, 404);
    assert_eq!(get_in(&obol, Some(&b), &ord).await.0, 404);

    // A token minted on the platform for a platform customer does not
    // reach into an organisation either.
    let plat = customer_in(&obol, None, "plat").await;
    let plat_token = token_in(&obol, None, &plat).await;
    let (status, body) = get_with_token(&obol, Some(&a), &path, &plat_token).await;
    assert_eq!((status, code(&body)), (404, "organization_not_found"));
    let (status, body) = get_with_token(&obol, None, &path, &plat_token).await;
    assert_eq!((status, code(&body)), (404, "customer_not_found"));

    // Minting a token for A's customer needs A's header.
    let (status, body) = obol
        .post(
            "/v1/customer-tokens",
            json!({"customer_id": cus, "ttl_seconds": 60}),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "customer_not_found"));
}

async fn lists_hold_only_the_accounts_own_rows(backend: Backend) {
    let obol = Obol::start(backend).await;
    let a = organization(&obol, "a").await;
    let b = organization(&obol, "b").await;
    // Products in A and on the platform.
    for (org, name) in [(Some(a.as_str()), "A wine"), (None, "Platform wine")] {
        let (status, p) = post_in(
            &obol,
            org,
            "/v1/products",
            json!({"name": name, "unit_amount": 1500, "currency": "eur"}),
        )
        .await;
        assert_eq!(status, 201, "{p}");
    }
    let names = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, in_a) = get_in(&obol, Some(&a), "/v1/products").await;
    assert_eq!(names(&in_a), ["A wine"], "{in_a}");
    let (_, on_platform) = get_in(&obol, None, "/v1/products").await;
    assert_eq!(names(&on_platform), ["Platform wine"]);
    let (_, in_b) = get_in(&obol, Some(&b), "/v1/products").await;
    assert_eq!(names(&in_b), Vec::<String>::new());

    // A customer token of A lists A's products; payments are the
    // platform's only (its pay-first intent made one).
    let cus = customer_in(&obol, Some(&a), "m").await;
    let token = token_in(&obol, Some(&a), &cus).await;
    let (status, seen) = get_with_token(&obol, None, "/v1/products", &token).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(names(&seen), ["A wine"]);
    let (status, _) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 2500, "currency": "eur"}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, platform_payments) = get_in(&obol, None, "/v1/payments").await;
    assert_eq!(platform_payments["data"].as_array().unwrap().len(), 1);
    let (_, a_payments) = get_in(&obol, Some(&a), "/v1/payments").await;
    assert_eq!(a_payments["data"], json!([]));
    let (_, token_payments) = get_with_token(&obol, None, "/v1/payments", &token).await;
    assert_eq!(token_payments["data"], json!([]));

    // The organisations list, with A's header, is A alone.
    let (_, orgs) = get_in(&obol, Some(&a), "/v1/organizations").await;
    assert_eq!(orgs["data"].as_array().unwrap().len(), 1);
    assert_eq!(orgs["data"][0]["id"], a.as_str());
    let (_, all) = get_in(&obol, None, "/v1/organizations").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
}

async fn an_unconnected_organization_is_never_charged_on_the_platforms_account(backend: Backend) {
    let obol = Obol::start(backend).await;
    let a = organization(&obol, "a").await;
    let cus = customer_in(&obol, Some(&a), "member-1").await;
    let (status, body) = post_in(
        &obol,
        Some(&a),
        "/v1/payment-intents",
        json!({"amount": 4999, "currency": "eur", "customer_id": cus}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (409, "organization_not_connected"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{body}"
    );
    // Nor with the organisation's customer token, nor for an order.
    let token = token_in(&obol, Some(&a), &cus).await;
    let (status, body) = call(
        &obol,
        reqwest::Method::POST,
        "/v1/payment-intents",
        None,
        Some(&token),
        Some(json!({"amount": 4999, "currency": "eur"})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (409, "organization_not_connected"),
        "{body}"
    );
    let (_, order) = post_in(&obol, Some(&a), "/v1/orders", order_for(Some(&cus))).await;
    let (status, body) = post_in(
        &obol,
        Some(&a),
        "/v1/payment-intents",
        json!({"order_id": order["id"]}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (409, "organization_not_connected"),
        "{body}"
    );

    // Nothing reached Stripe: no payment in A, and the customer never got
    // a Stripe customer (which would have been the platform's).
    let (_, payments) = get_in(&obol, Some(&a), "/v1/payments").await;
    assert_eq!(payments["data"], json!([]));
    let (_, customer) = get_in(&obol, Some(&a), &format!("/v1/customers/{cus}")).await;
    assert_eq!(customer["stripe_customer_id"], Value::Null, "{customer}");
    // A charge run is refused when it starts, not item by item later.
    let (status, run) = post_in(
        &obol,
        Some(&a),
        "/v1/charge-runs",
        json!({"name": "Autumn release", "currency": "eur"}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let start = format!("/v1/charge-runs/{}/start", run["id"].as_str().unwrap());
    let (status, body) = post_in(&obol, Some(&a), &start, json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (409, "organization_not_connected"),
        "{body}"
    );
    let (_, run) = get_in(
        &obol,
        Some(&a),
        &format!("/v1/charge-runs/{}", run["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(run["status"], "draft", "{run}");
    // The platform charges as before.
    let (status, body) = obol
        .post(
            "/v1/payment-intents",
            json!({"amount": 4999, "currency": "eur"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn organization_routes_belong_to_the_platform(backend: Backend) {
    let obol = Obol::start(backend).await;
    let a = organization(&obol, "a").await;
    let b = organization(&obol, "b").await;
    let (status, body) = post_in(
        &obol,
        Some(&a),
        "/v1/organizations",
        json!({"name": "child"}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (422, "organization_header_not_allowed"),
        "{body}"
    );
    assert_eq!(
        get_in(&obol, Some(&a), &format!("/v1/organizations/{a}"))
            .await
            .0,
        200
    );
    let (status, body) = get_in(&obol, Some(&a), &format!("/v1/organizations/{b}")).await;
    assert_eq!((status, code(&body)), (404, "organization_not_found"));
    // A customer token is not the platform.
    let cus = customer_in(&obol, Some(&a), "m").await;
    let token = token_in(&obol, Some(&a), &cus).await;
    let (status, body) =
        get_with_token(&obol, None, &format!("/v1/organizations/{a}"), &token).await;
    assert_eq!((status, code(&body)), (401, "secret_key_required"));
}

/// With real Stripe keys and no `secrets.encryption_key`, organisations
/// cannot be created (their tokens could not be stored), and obol refuses
/// to start on a database that holds some.
async fn with_real_stripe_keys_organisations_need_an_encryption_key(backend: Backend) {
    // Sandbox mode first: a key is generated, organisations work.
    let obol = Obol::start(backend).await;
    let _ = organization(&obol, "a").await;
    assert!(obol
        .output()
        .contains("secrets at rest use a key obol generated"));
    let (_, db, _) = obol.terminate();

    // A fake "real" Stripe: obol only needs an answer to start.
    let stripe = obol_sandbox::Sandbox::bind(
        "127.0.0.1:0".parse().unwrap(),
        obol_sandbox::SandboxConfig::default(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", stripe.local_addr());
    tokio::spawn(stripe.run_until(std::future::pending()));

    let real = |db: crate::helpers::TestDb| {
        Obol::builder(backend)
            .with_db(db)
            .env("OBOL_STRIPE__SECRET_KEY", "sk_test_obol_orgs")
            .env("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_test_obol_orgs")
            .env("OBOL_STRIPE__API_BASE", &base)
            .env("OBOL_STRIPE__WEBHOOK_SECRETS", "whsec_test")
    };
    // Refused at start: organisations exist and no key is configured.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_obol"));
    let out = cmd
        .arg("serve")
        .current_dir(db.dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OBOL_LISTEN", "127.0.0.1:0")
        .env("OBOL_DATABASE_URL", &db.url)
        .env("OBOL_API_KEYS", crate::helpers::random_api_key())
        .env("OBOL_STRIPE__SECRET_KEY", "sk_test_obol_orgs")
        .env("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_test_obol_orgs")
        .env("OBOL_STRIPE__API_BASE", &base)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("secrets.encryption_key") && stderr.contains("organisation(s) exist"),
        "{stderr}"
    );

    // On a fresh database it starts, and refuses to create one.
    let fresh = real(crate::helpers::TestDb::new(backend).await)
        .start()
        .await;
    let (status, body) = fresh.post("/v1/organizations", json!({"name": "a"})).await;
    assert_eq!(
        (status, code(&body)),
        (409, "encryption_key_required"),
        "{body}"
    );
    drop(fresh);

    // With a key, it starts on the first database.
    let key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    };
    let keyed = real(db)
        .env("OBOL_SECRETS__ENCRYPTION_KEY", &key)
        .start()
        .await;
    let (status, _) = keyed.get("/v1/organizations").await;
    assert_eq!(status, 200);
    assert!(!keyed.output().contains(&key), "the key was logged");
}

/// The connect step will write tokens through `crate::secrets`; here they
/// are written the same way, read back raw from the database, and rotated
/// to a new key with `obol secrets rotate`.
async fn tokens_at_rest_are_ciphertext_and_rotate_to_a_new_key(backend: Backend) {
    use obol::secrets::{EncryptionKey, Secrets};
    use obol::storage::organizations::SecretColumn;
    use secrecy::{ExposeSecret, SecretString};

    let (old, old_text) = EncryptionKey::generate();
    let (new, new_text) = EncryptionKey::generate();
    let obol = Obol::builder(backend)
        .env("OBOL_SECRETS__ENCRYPTION_KEY", old_text.expose_secret())
        .start()
        .await;
    let org = organization(&obol, "a").await;
    let id = obol::ids::OrganizationId::parse(&org).unwrap();
    let store = obol.db.store().await;
    let before = Secrets::new(old.clone(), vec![]);
    let token = "sk_test_CONNECTED_ACCESS_TOKEN";
    let sealed = before
        .encrypt(
            &SecretString::from(token),
            &SecretColumn::StripeAccessToken.context(&org),
        )
        .unwrap();
    {
        let mut h = store.acquire().await.unwrap();
        assert!(h
            .conn()
            .set_organization_secret(
                &id,
                SecretColumn::StripeAccessToken,
                Some(&sealed),
                obol::storage::now()
            )
            .await
            .unwrap());
    }
    let raw = |store: obol::storage::Store| async move {
        let mut h = store.acquire().await.unwrap();
        h.conn()
            .list_organization_secrets(None, 10)
            .await
            .unwrap()
            .remove(0)
            .stripe_access_token_enc
            .unwrap()
    };
    let stored = raw(store.clone()).await;
    assert!(!stored.contains("CONNECTED"), "{stored}");
    assert!(stored.starts_with(&format!("v1:{}:", old.fingerprint())));
    // Never in an answer or the log either.
    let (_, shown) = obol.get(&format!("/v1/organizations/{org}")).await;
    assert!(!shown.to_string().contains("CONNECTED") && !shown.to_string().contains("v1:"));
    assert!(!obol.output().contains(old_text.expose_secret()));

    // Rotation: the new key current, the old one previous.
    let dir = obol.db.dir.path().to_path_buf();
    let env = [
        ("OBOL_DATABASE_URL", obol.db.url.as_str()),
        ("OBOL_SECRETS__ENCRYPTION_KEY", new_text.expose_secret()),
        ("OBOL_SECRETS__PREVIOUS_KEYS", old_text.expose_secret()),
    ];
    let (code_, out, err) = crate::helpers::run_obol(&["secrets", "rotate"], &env, &dir);
    assert_eq!(code_, 0, "{out}{err}");
    // The organisation's token, and the signing secret of the Connect
    // webhook endpoint obol registered with its sandbox at start-up.
    assert!(out.contains("2 stored secret(s), 2 re-encrypted"), "{out}");
    let rotated = raw(store.clone()).await;
    assert!(
        rotated.starts_with(&format!("v1:{}:", new.fingerprint())),
        "{rotated}"
    );
    let after = Secrets::new(new.clone(), vec![]);
    assert_eq!(
        after
            .decrypt(&rotated, &SecretColumn::StripeAccessToken.context(&org))
            .unwrap()
            .expose_secret(),
        token
    );
    // Again: nothing left to rewrite.
    let (_, out, _) = crate::helpers::run_obol(&["secrets", "rotate"], &env, &dir);
    assert!(out.contains("2 stored secret(s), 0 re-encrypted"), "{out}");
    // Without the old key a value it wrote stops the rotation, naming the
    // row and never the value.
    {
        let mut h = store.acquire().await.unwrap();
        h.conn()
            .set_organization_secret(
                &id,
                SecretColumn::StripeRefreshToken,
                Some(
                    &before
                        .encrypt(
                            &SecretString::from("rt_SECRET"),
                            &SecretColumn::StripeRefreshToken.context(&org),
                        )
                        .unwrap(),
                ),
                obol::storage::now(),
            )
            .await
            .unwrap();
    }
    let (code_, out, err) = crate::helpers::run_obol(&["secrets", "rotate"], &env[..2], &dir);
    assert_ne!(code_, 0, "{out}{err}");
    assert!(
        err.contains(&org) && err.contains("stripe_refresh_token_enc"),
        "{err}"
    );
    assert!(!err.contains("rt_SECRET"), "{err}");
}
