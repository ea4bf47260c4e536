//! Stripe Connect: the OAuth consent page followed like a browser, the
//! token endpoint, `Stripe-Account` partitioning, `account` on events,
//! Connect webhook endpoints and deauthorization.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::*;

const CLIENT_ID: &str = "ca_obolplatformtest";
const REDIRECT: &str = "https://platform.test/connect/callback?from=sandbox";

/// The query parameters of a redirect's `Location`.
fn query_of(location: &str) -> HashMap<String, String> {
    reqwest::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The consent form's action and hidden fields, read from its HTML.
fn read_form(html: &str) -> (String, Vec<(String, String)>) {
    let action = html
        .split("<form method=\"post\" action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let mut fields = Vec::new();
    for part in html.split("<input type=\"hidden\" name=\"").skip(1) {
        let name = part.split('"').next().unwrap().to_string();
        let value = part
            .split("value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        fields.push((name, unescape(value)));
    }
    (action, fields)
}

fn authorize_url(sb: &TestSandbox, extra: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse(&format!("{}/oauth/authorize", sb.base)).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("scope", "read_write")
            .append_pair("redirect_uri", REDIRECT);
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// Opens the consent page, submits it with `decision` (and the extra form
/// fields) and returns the redirect's `Location`.
async fn consent(sb: &TestSandbox, state: &str, decision: &str, extra: &[(&str, &str)]) -> String {
    let page = sb.raw_get(&authorize_url(sb, &[("state", state)])).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"decision\" value=\"allow\""), "{html}");
    assert!(html.contains("name=\"decision\" value=\"deny\""));
    let (action, mut fields) = read_form(&html);
    fields.push(("decision".into(), decision.into()));
    for (k, v) in extra {
        fields.push((k.to_string(), v.to_string()));
    }
    let r = sb
        .http
        .post(format!("{}{action}", sb.base))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    r.headers()["location"].to_str().unwrap().to_string()
}

async fn oauth(sb: &TestSandbox, path: &str, form: &[(&str, &str)]) -> Resp {
    sb.post(path, form).await
}

/// Connects a new account named `name` through the whole redirect chain
/// and exchanges the code: the token response.
async fn connect(sb: &TestSandbox, name: &str) -> Value {
    let location = consent(sb, "st-1", "allow", &[("account_name", name)]).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query_of(&location);
    assert_eq!(q["from"], "sandbox");
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["scope"], "read_write");
    oauth(
        sb,
        "/oauth/token",
        &[("grant_type", "authorization_code"), ("code", &q["code"])],
    )
    .await
    .ok()
}

fn as_account(acct: &str) -> [(&'static str, &str); 1] {
    [("stripe-account", acct)]
}

async fn get_as(sb: &TestSandbox, path: &str, acct: &str) -> Resp {
    let r = sb
        .http
        .get(format!("{}{path}", sb.base))
        .bearer_auth(&sb.key)
        .header("stripe-account", acct)
        .send()
        .await
        .unwrap();
    read(r).await
}

async fn get_with_key(sb: &TestSandbox, path: &str, key: &str) -> Resp {
    let r = sb
        .http
        .get(format!("{}{path}", sb.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    read(r).await
}

async fn post_with_key(sb: &TestSandbox, path: &str, key: &str, form: &[(&str, &str)]) -> Resp {
    let r = sb
        .http
        .post(format!("{}{path}", sb.base))
        .bearer_auth(key)
        .form(form)
        .send()
        .await
        .unwrap();
    read(r).await
}

async fn read(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

fn signed_by(secret: &str, header: &str, body: &str) -> bool {
    let t = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    header
        .split(',')
        .any(|p| p.strip_prefix("v1=") == Some(&expected))
}

#[tokio::test]
async fn consent_redirects_with_a_code_that_exchanges_once_for_tokens() {
    let sb = spawn().await;
    let location = consent(
        &sb,
        "xyz 1/2",
        "allow",
        &[("account_name", "Weingut Alpha")],
    )
    .await;
    let q = query_of(&location);
    assert_eq!(q["state"], "xyz 1/2");
    let code = q["code"].clone();
    assert!(code.starts_with("ac_"), "{code}");

    let tok = oauth(
        &sb,
        "/oauth/token",
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await
    .ok();
    let acct = tok["stripe_user_id"].as_str().unwrap();
    assert!(acct.starts_with("acct_"));
    assert!(tok["access_token"]
        .as_str()
        .unwrap()
        .starts_with("sk_test_"));
    assert!(tok["refresh_token"].as_str().unwrap().starts_with("rt_"));
    assert!(tok["stripe_publishable_key"]
        .as_str()
        .unwrap()
        .starts_with("pk_test_"));
    assert_eq!(tok["token_type"], "bearer");
    assert_eq!(tok["livemode"], false);
    assert_eq!(tok["scope"], "read_write");

    // Single use: the second exchange is OAuth's invalid_grant.
    let again = oauth(
        &sb,
        "/oauth/token",
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"], "invalid_grant");
    assert!(again.body["error_description"]
        .as_str()
        .unwrap()
        .contains("already used"));

    // The account, seen with Stripe-Account and with its own token.
    let by_header = get_as(&sb, "/v1/account", acct).await.ok();
    assert_eq!(by_header["id"], acct);
    assert_eq!(by_header["business_profile"]["name"], "Weingut Alpha");
    assert_eq!(
        by_header["settings"]["dashboard"]["display_name"],
        "Weingut Alpha"
    );
    assert_eq!(by_header["charges_enabled"], true);
    assert!(by_header.get("_client_id").is_none());
    let by_token = get_with_key(&sb, "/v1/account", tok["access_token"].as_str().unwrap())
        .await
        .ok();
    assert_eq!(by_token, by_header);
    // The platform's own account is unchanged.
    let platform = sb.get("/v1/account").await.ok();
    assert_ne!(platform["id"], acct);
    assert_eq!(platform["business_profile"]["name"], "obol sandbox");
    sb.stop().await;
}

#[tokio::test]
async fn denied_consent_and_bad_requests_answer_as_stripe_does() {
    let sb = spawn().await;
    let location = consent(&sb, "st-deny", "deny", &[]).await;
    assert!(location.starts_with(REDIRECT));
    let q = query_of(&location);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-deny");
    assert!(!q["error_description"].is_empty());
    assert!(!q.contains_key("code"));
    assert_eq!(
        sb.get("/v1/accounts").await.ok()["data"],
        serde_json::json!([])
    );

    // No trusted redirect: an error page.
    let bad_client = sb
        .raw_get(&format!(
            "{}/oauth/authorize?response_type=code&client_id=nope&redirect_uri=https://x.test/cb",
            sb.base
        ))
        .await;
    assert_eq!(bad_client.status(), 400);
    assert!(bad_client.text().await.unwrap().contains("client_id"));
    let no_redirect = sb
        .raw_get(&format!(
            "{}/oauth/authorize?response_type=code&client_id={CLIENT_ID}",
            sb.base
        ))
        .await;
    assert_eq!(no_redirect.status(), 400);
    assert!(no_redirect.text().await.unwrap().contains("redirect_uri"));
    // A bad scope is redirected with OAuth's error.
    let bad_scope = sb
        .raw_get(&authorize_url(
            &sb,
            &[("scope", "everything"), ("state", "s")],
        ))
        .await;
    assert_eq!(bad_scope.status(), 302);
    let q = query_of(bad_scope.headers()["location"].to_str().unwrap());
    assert_eq!(q["error"], "invalid_scope");
    assert_eq!(q["state"], "s");

    // The token endpoint.
    let unknown = oauth(
        &sb,
        "/oauth/token",
        &[("grant_type", "authorization_code"), ("code", "ac_forged")],
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["error"], "invalid_grant");
    let grant = oauth(&sb, "/oauth/token", &[("grant_type", "password")]).await;
    assert_eq!(grant.body["error"], "unsupported_grant_type");
    let anonymous = sb
        .http
        .post(format!("{}/oauth/token", sb.base))
        .form(&[("grant_type", "authorization_code"), ("code", "ac_x")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // The platform's key may also come as client_secret.
    let location = consent(&sb, "st", "allow", &[]).await;
    let code = query_of(&location)["code"].clone();
    let r = sb
        .http
        .post(format!("{}/oauth/token", sb.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_secret", KEY),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    let acct = get_as(&sb, "/v1/account", tok["stripe_user_id"].as_str().unwrap())
        .await
        .ok();
    assert!(acct["business_profile"]["name"]
        .as_str()
        .unwrap()
        .starts_with("Sandbox Winery "));
    sb.stop().await;
}

#[tokio::test]
async fn refresh_grant_issues_new_access_tokens_of_equal_or_lesser_scope() {
    let sb = spawn().await;
    let tok = connect(&sb, "Refreshing Winery").await;
    let acct = tok["stripe_user_id"].as_str().unwrap();
    let rt = tok["refresh_token"].as_str().unwrap();
    let fresh = oauth(
        &sb,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
    .ok();
    assert_eq!(fresh["stripe_user_id"], acct);
    assert_eq!(fresh["refresh_token"], rt);
    assert_ne!(fresh["access_token"], tok["access_token"]);
    let key = fresh["access_token"].as_str().unwrap();
    assert_eq!(get_with_key(&sb, "/v1/account", key).await.ok()["id"], acct);

    let ro = oauth(
        &sb,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("scope", "read_only"),
        ],
    )
    .await
    .ok();
    assert_eq!(ro["scope"], "read_only");
    let ro_key = ro["access_token"].as_str().unwrap();
    assert!(ro_key.starts_with("rk_test_"));
    assert_eq!(get_with_key(&sb, "/v1/customers", ro_key).await.status, 200);
    let write = post_with_key(&sb, "/v1/customers", ro_key, &[]).await;
    assert_eq!(write.status, 403, "{}", write.body);

    let bad = oauth(
        &sb,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt_forged"),
        ],
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"], "invalid_grant");
    sb.stop().await;
}

#[tokio::test]
async fn stripe_account_partitions_every_object() {
    let sb = spawn().await;
    let a = connect(&sb, "Winery A").await;
    let b = connect(&sb, "Winery B").await;
    let acct_a = a["stripe_user_id"].as_str().unwrap();
    let key_b = b["access_token"].as_str().unwrap();

    let cus_a = sb
        .post_with(
            "/v1/customers",
            &[("email", "a@a.test")],
            &as_account(acct_a),
        )
        .await
        .ok();
    let pi_a = sb
        .post_with(
            "/v1/payment_intents",
            &[
                ("amount", "1500"),
                ("currency", "eur"),
                ("customer", cus_a["id"].as_str().unwrap()),
                ("payment_method", "pm_card_visa"),
                ("confirm", "true"),
            ],
            &as_account(acct_a),
        )
        .await
        .ok();
    assert_eq!(pi_a["status"], "succeeded");
    let pi_b = post_with_key(
        &sb,
        "/v1/payment_intents",
        key_b,
        &[("amount", "900"), ("currency", "eur")],
    )
    .await
    .ok();
    let pi_platform = sb.pay("700", "pm_card_visa", &[]).await.ok();

    let pi_a_id = pi_a["id"].as_str().unwrap();
    let pi_b_id = pi_b["id"].as_str().unwrap();
    // Reads across accounts are 404s.
    let cross = get_with_key(&sb, &format!("/v1/payment_intents/{pi_a_id}"), key_b).await;
    assert_eq!(cross.status, 404);
    assert_eq!(cross.err()["code"], "resource_missing");
    assert_eq!(
        get_as(&sb, &format!("/v1/payment_intents/{pi_b_id}"), acct_a)
            .await
            .status,
        404
    );
    assert_eq!(
        sb.get(&format!("/v1/payment_intents/{pi_a_id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        get_as(&sb, &format!("/v1/payment_intents/{pi_a_id}"), acct_a)
            .await
            .ok()["id"],
        pi_a_id
    );
    let cus_a_id = cus_a["id"].as_str().unwrap();
    assert_eq!(
        get_with_key(&sb, &format!("/v1/customers/{cus_a_id}"), key_b)
            .await
            .status,
        404
    );
    // Writes too, and references to another account's objects.
    let upd = post_with_key(
        &sb,
        &format!("/v1/customers/{cus_a_id}"),
        key_b,
        &[("name", "stolen")],
    )
    .await;
    assert_eq!(upd.status, 404);
    let refd = post_with_key(
        &sb,
        "/v1/payment_intents",
        key_b,
        &[
            ("amount", "900"),
            ("currency", "eur"),
            ("customer", cus_a_id),
        ],
    )
    .await;
    assert_eq!(refd.status, 404, "{}", refd.body);
    // Lists hold only the account's objects.
    assert_eq!(
        ids(&get_as(&sb, "/v1/payment_intents", acct_a).await.ok()),
        vec![pi_a_id]
    );
    assert_eq!(
        ids(&get_with_key(&sb, "/v1/payment_intents", key_b).await.ok()),
        vec![pi_b_id]
    );
    assert_eq!(
        ids(&sb.get("/v1/payment_intents").await.ok()),
        vec![pi_platform["id"].as_str().unwrap()]
    );
    assert_eq!(
        ids(&get_with_key(&sb, "/v1/customers", key_b).await.ok()),
        Vec::<String>::new()
    );
    assert_eq!(
        get_as(&sb, "/v1/charges", acct_a).await.ok()["data"][0]["payment_intent"],
        pi_a_id
    );

    // Events carry `account`; the platform's do not.
    let ev_a = get_as(&sb, "/v1/events?type=payment_intent.succeeded", acct_a)
        .await
        .ok();
    assert_eq!(ev_a["data"].as_array().unwrap().len(), 1);
    assert_eq!(ev_a["data"][0]["account"], acct_a);
    assert_eq!(ev_a["data"][0]["data"]["object"]["id"], pi_a_id);
    let ev_p = sb.events_of("payment_intent.succeeded").await;
    assert_eq!(ev_p.len(), 1);
    assert!(ev_p[0].get("account").is_none());
    assert_eq!(ev_p[0]["data"]["object"]["id"], pi_platform["id"]);

    // Idempotency keys are scoped per account.
    let acct_b = b["stripe_user_id"].as_str().unwrap();
    let sbr = &sb;
    let idem = |acct| async move {
        sbr.post_with(
            "/v1/customers",
            &[("name", "idem")],
            &[("idempotency-key", "k-1"), ("stripe-account", acct)],
        )
        .await
    };
    let b1 = idem(acct_b).await;
    let a1 = idem(acct_a).await;
    assert_eq!(a1.header("idempotent-replayed"), None);
    assert_ne!(a1.id(), b1.id());
    let a2 = idem(acct_a).await;
    assert_eq!(a2.header("idempotent-replayed"), Some("true"));
    assert_eq!(a2.id(), a1.id());

    // An account never connected is refused.
    let unknown = get_as(&sb, "/v1/customers", "acct_1NeverConnected").await;
    assert_eq!(unknown.status, 403);
    assert_eq!(unknown.err()["code"], "account_invalid");
    sb.stop().await;
}

#[tokio::test]
async fn three_ds_in_a_connected_account_stays_in_that_account() {
    let sb = spawn().await;
    let a = connect(&sb, "Winery 3DS").await;
    let acct = a["stripe_user_id"].as_str().unwrap();
    let pi = sb
        .post_with(
            "/v1/payment_intents",
            &[
                ("amount", "2500"),
                ("currency", "eur"),
                ("payment_method", "pm_card_threeDSecure2Required"),
                ("confirm", "true"),
                ("return_url", "https://shop.test/done"),
            ],
            &as_account(acct),
        )
        .await
        .ok();
    let url = pi["next_action"]["redirect_to_url"]["url"]
        .as_str()
        .unwrap();
    let html = sb.raw_get(url).await.text().await.unwrap();
    let token = html
        .split("name=\"token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = sb
        .http
        .post(format!(
            "{}/_sandbox/3ds/{}",
            sb.base,
            pi["id"].as_str().unwrap()
        ))
        .form(&[("token", token.as_str()), ("action", "complete")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let charges = get_as(&sb, "/v1/charges", acct).await.ok();
    assert_eq!(charges["data"].as_array().unwrap().len(), 1);
    assert_eq!(ids(&sb.get("/v1/charges").await.ok()), Vec::<String>::new());
    let ev = get_as(&sb, "/v1/events?type=payment_intent.succeeded", acct)
        .await
        .ok();
    assert_eq!(ev["data"][0]["account"], acct);
    sb.stop().await;
}

#[tokio::test]
async fn connect_endpoints_get_connected_accounts_events_only() {
    let sb = spawn().await;
    let platform_rx = Receiver::start(0).await;
    let connect_rx = Receiver::start(0).await;
    let plain = sb
        .post(
            "/v1/webhook_endpoints",
            &[("url", &platform_rx.url), ("enabled_events[]", "*")],
        )
        .await
        .ok();
    let conn = sb
        .post(
            "/v1/webhook_endpoints",
            &[
                ("url", &connect_rx.url),
                ("enabled_events[]", "payment_intent.succeeded"),
                ("enabled_events[]", "account.application.deauthorized"),
                ("connect", "true"),
            ],
        )
        .await
        .ok();
    assert!(plain["application"].is_null());
    assert!(conn["application"].as_str().unwrap().starts_with("ca_"));
    assert!(conn.get("connect").is_none());
    let secret = conn["secret"].as_str().unwrap();

    let a = connect(&sb, "Winery Hooks").await;
    let acct = a["stripe_user_id"].as_str().unwrap();
    let pi_a = post_with_key(
        &sb,
        "/v1/payment_intents",
        a["access_token"].as_str().unwrap(),
        &[
            ("amount", "1000"),
            ("currency", "eur"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
        ],
    )
    .await
    .ok();
    sb.pay("1000", "pm_card_visa", &[]).await.ok();

    let got = connect_rx
        .wait_for("the connected account's event", |d| !d.is_empty())
        .await;
    platform_rx
        .wait_for("the platform's 3 events", |d| d.len() >= 3)
        .await;
    eventually("every delivery made", || async {
        (sb.stats().await["deliveries"]["pending"] == 0).then_some(())
    })
    .await;
    let got_connect = connect_rx.deliveries();
    assert_eq!(got_connect.len(), 1, "{:?}", connect_rx.event_types());
    let ev: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(ev["type"], "payment_intent.succeeded");
    assert_eq!(ev["account"], acct);
    assert_eq!(ev["data"]["object"]["id"], pi_a["id"]);
    assert!(signed_by(secret, &got[0].signature, &got[0].body));
    for d in platform_rx.deliveries() {
        let ev: Value = serde_json::from_str(&d.body).unwrap();
        assert!(ev.get("account").is_none(), "{ev}");
        assert!(!d.body.contains(acct));
    }
    assert_eq!(platform_rx.deliveries().len(), 3);
    sb.stop().await;
}

#[tokio::test]
async fn deauthorize_emits_the_event_and_revokes_access() {
    let sb = spawn().await;
    let rx = Receiver::start(0).await;
    let platform_rx = Receiver::start(0).await;
    let conn = sb
        .post(
            "/v1/webhook_endpoints",
            &[
                ("url", &rx.url),
                ("enabled_events[]", "*"),
                ("connect", "true"),
            ],
        )
        .await
        .ok();
    sb.post(
        "/v1/webhook_endpoints",
        &[("url", &platform_rx.url), ("enabled_events[]", "*")],
    )
    .await
    .ok();
    let a = connect(&sb, "Leaving Winery").await;
    let acct = a["stripe_user_id"].as_str().unwrap();
    let key = a["access_token"].as_str().unwrap();

    let wrong_client = oauth(
        &sb,
        "/oauth/deauthorize",
        &[("client_id", "ca_someoneelse"), ("stripe_user_id", acct)],
    )
    .await;
    assert_eq!(wrong_client.body["error"], "invalid_client");
    let r = oauth(
        &sb,
        "/oauth/deauthorize",
        &[("client_id", CLIENT_ID), ("stripe_user_id", acct)],
    )
    .await
    .ok();
    assert_eq!(r, serde_json::json!({"stripe_user_id": acct}));

    let got = rx.wait_for("the deauthorization", |d| !d.is_empty()).await;
    let ev: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(ev["type"], "account.application.deauthorized");
    assert_eq!(ev["account"], acct);
    assert_eq!(ev["data"]["object"]["object"], "application");
    assert_eq!(ev["data"]["object"]["id"], CLIENT_ID);
    assert!(signed_by(
        conn["secret"].as_str().unwrap(),
        &got[0].signature,
        &got[0].body
    ));

    // The token and the header no longer work; nor does the refresh token.
    let by_token = get_with_key(&sb, "/v1/account", key).await;
    assert_eq!(by_token.status, 401);
    assert_eq!(by_token.err()["code"], "api_key_expired");
    let by_header = get_as(&sb, "/v1/payment_intents", acct).await;
    assert_eq!(by_header.status, 403);
    assert_eq!(by_header.err()["code"], "account_invalid");
    assert!(by_header.err()["message"]
        .as_str()
        .unwrap()
        .contains("Application access may have been revoked"));
    let refresh = oauth(
        &sb,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", a["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(refresh.body["error"], "invalid_grant");
    let twice = oauth(
        &sb,
        "/oauth/deauthorize",
        &[("client_id", CLIENT_ID), ("stripe_user_id", acct)],
    )
    .await;
    assert_eq!(twice.body["error"], "invalid_client");
    assert!(sb.get("/v1/accounts").await.ok()["data"]
        .as_array()
        .unwrap()
        .is_empty());
    eventually("every delivery made", || async {
        (sb.stats().await["deliveries"]["pending"] == 0).then_some(())
    })
    .await;
    assert!(platform_rx.deliveries().is_empty());

    // The same account can be connected again from the consent page.
    let location = consent(&sb, "again", "allow", &[("account", acct)]).await;
    let code = query_of(&location)["code"].clone();
    let tok = oauth(
        &sb,
        "/oauth/token",
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await
    .ok();
    assert_eq!(tok["stripe_user_id"], acct);
    assert_eq!(get_as(&sb, "/v1/account", acct).await.ok()["id"], acct);
    sb.stop().await;
}

#[tokio::test]
async fn platform_creates_lists_and_retrieves_connected_accounts() {
    let sb = spawn().await;
    let made = sb
        .post(
            "/v1/accounts",
            &[
                ("type", "standard"),
                ("country", "fr"),
                ("business_profile[name]", "Domaine Direct"),
            ],
        )
        .await
        .ok();
    let id = made["id"].as_str().unwrap();
    assert_eq!(made["object"], "account");
    assert_eq!(made["country"], "FR");
    let tok = connect(&sb, "Winery OAuth").await;
    let listed = ids(&sb.get("/v1/accounts").await.ok());
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&id.to_string()));
    assert_eq!(
        sb.get(&format!("/v1/accounts/{id}")).await.ok()["business_profile"]["name"],
        "Domaine Direct"
    );
    let cus = sb
        .post_with("/v1/customers", &[], &as_account(id))
        .await
        .ok();
    assert_eq!(
        ids(&get_as(&sb, "/v1/customers", id).await.ok()),
        vec![cus["id"].as_str().unwrap()]
    );
    // A connected account sees no accounts of its own.
    let own = get_with_key(&sb, "/v1/accounts", tok["access_token"].as_str().unwrap())
        .await
        .ok();
    assert!(own["data"].as_array().unwrap().is_empty());
    assert_eq!(sb.post("/v1/accounts", &[]).await.status, 400);
    sb.stop().await;
}

#[tokio::test]
async fn a_database_from_before_connect_is_migrated_and_stays_the_platforms() {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::ConnectOptions;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    // The objects table as the sandbox made it before accounts existed.
    sqlx::query(
        "CREATE TABLE objects (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL, created INTEGER NOT NULL, customer TEXT,
            payment_intent TEXT, charge TEXT, etype TEXT,
            deleted INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("INSERT INTO objects (id, kind, created, data) VALUES (?, 'customer', 1, ?)")
        .bind("cus_old")
        .bind(r#"{"id":"cus_old","object":"customer","created":1,"metadata":{}}"#)
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    let mut config = config();
    config.db = obol_sandbox::SandboxDb::File(path);
    let sb = spawn_with(config).await;
    assert_eq!(sb.get("/v1/customers/cus_old").await.ok()["id"], "cus_old");
    assert_eq!(ids(&sb.get("/v1/customers").await.ok()), vec!["cus_old"]);
    let a = connect(&sb, "Winery New").await;
    let acct = a["stripe_user_id"].as_str().unwrap();
    assert_eq!(get_as(&sb, "/v1/customers/cus_old", acct).await.status, 404);
    assert!(get_as(&sb, "/v1/customers", acct).await.ok()["data"]
        .as_array()
        .unwrap()
        .is_empty());
    sb.stop().await;
}
