//! Connecting organisations the way a host's admin does, shared by the
//! Connect tests: every redirect followed by hand (connect link → obol →
//! the sandbox's consent form, submitted → obol's callback → the host's
//! return URL), and requests made for an organisation
//! (`Obol-Organization`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{status_json, Obol};

pub const ORG: &str = "obol-organization";
pub const RETURN: &str = "https://crm.example/wineries/settings?tab=stripe";

/// A client that follows no redirect: each hop is checked by hand.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `browser()` with every response from `obol` checked against its
/// OpenAPI document (the connect pages and callback included).
pub fn browser_of(obol: &Obol) -> reqwest_middleware::ClientWithMiddleware {
    crate::openapi_check::checked(browser(), &obol.base_url)
}

pub async fn sandbox_base(obol: &Obol) -> String {
    let (_, health) = obol.get("/health").await;
    health["stripe"]["api_base"]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

pub async fn organization(obol: &Obol, name: &str) -> String {
    let (status, org) = obol.post("/v1/organizations", json!({"name": name})).await;
    assert_eq!(status, 201, "{org}");
    org["id"].as_str().unwrap().to_string()
}

pub async fn org_of(obol: &Obol, org: &str) -> Value {
    let (status, body) = obol.get(&format!("/v1/organizations/{org}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn connect_link(obol: &Obol, org: &str) -> String {
    let (status, body) = obol
        .post(
            &format!("/v1/organizations/{org}/connect-links"),
            json!({"return_url": RETURN}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["expires_at"].is_string(), "{body}");
    body["url"].as_str().unwrap().to_string()
}

pub fn location(r: &reqwest::Response) -> String {
    assert!(
        r.status() == 303 || r.status() == 302,
        "expected a redirect, got {}",
        r.status()
    );
    r.headers()["location"].to_str().unwrap().to_string()
}

pub fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the sandbox's consent form.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in html.split("<input type=\"hidden\" ").skip(1) {
        let name = part
            .split("name=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let value = part
            .split("value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        out.push((unescape(name), unescape(value)));
    }
    out
}

/// Where a journey got to.
pub struct Journey {
    /// obol's callback URL as the sandbox redirected to it.
    pub callback: String,
    /// Where obol's callback sent the browser.
    pub back: String,
}

/// From a connect link to the consent form, submitted with `decision`
/// (a new account named `account_name`); then the callback.
pub async fn journey(obol: &Obol, link: &str, decision: &str, account_name: &str) -> Journey {
    let http = browser_of(obol);
    let sandbox = sandbox_base(obol).await;
    let r = http.get(link).send().await.unwrap();
    let authorize = location(&r);
    assert!(
        authorize.starts_with(&format!("{sandbox}/oauth/authorize?")),
        "{authorize}"
    );
    let q = query_of(&authorize);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "read_write");
    assert!(q["client_id"].starts_with("ca_"), "{q:?}");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/connect/stripe/callback", obol.base_url)
    );
    assert!(q.contains_key("state"));
    let page = http.get(&authorize).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("id=\"allow\"") && html.contains("id=\"deny\""),
        "{html}"
    );
    let mut form = hidden_fields(&html);
    assert!(form.iter().any(|(k, v)| k == "state" && *v == q["state"]));
    form.push(("decision".into(), decision.into()));
    form.push(("account".into(), String::new()));
    form.push(("account_name".into(), account_name.into()));
    let r = http
        .post(format!("{sandbox}/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("{}/connect/stripe/callback?", obol.base_url)),
        "{callback}"
    );
    let r = http.get(&callback).send().await.unwrap();
    let back = location(&r);
    Journey { callback, back }
}

/// The part of `journey` up to the sandbox's redirect to the callback,
/// without following it.
pub async fn until_callback(obol: &Obol, link: &str, decision: &str) -> String {
    let http = browser_of(obol);
    let sandbox = sandbox_base(obol).await;
    let authorize = location(&http.get(link).send().await.unwrap());
    let html = http
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = hidden_fields(&html);
    form.push(("decision".into(), decision.into()));
    form.push(("account".into(), String::new()));
    form.push(("account_name".into(), "Weingut Late".into()));
    let r = http
        .post(format!("{sandbox}/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    location(&r)
}

pub fn assert_back(back: &str, outcome: &str, org: &str) {
    assert!(
        back.starts_with("https://crm.example/wineries/settings?"),
        "{back}"
    );
    let q = query_of(back);
    assert_eq!(q["tab"], "stripe", "the host's own query stays: {back}");
    assert_eq!(q["obol_connect"], outcome, "{back}");
    assert_eq!(q["organization"], org, "{back}");
}

/// Connects `org` through the whole chain; answers its `acct_…`.
pub async fn connect(obol: &Obol, org: &str, name: &str) -> String {
    connect_journey(obol, org, name).await.0
}

/// `connect`, and the journey it took.
pub async fn connect_journey(obol: &Obol, org: &str, name: &str) -> (String, Journey) {
    let link = connect_link(obol, org).await;
    let j = journey(obol, &link, "allow", name).await;
    assert_back(&j.back, "active", org);
    let o = org_of(obol, org).await;
    assert_eq!(o["stripe"]["status"], "active", "{o}");
    // The account's id, from the sandbox's list of connected accounts.
    let sandbox = sandbox_base(obol).await;
    let accounts: Value = browser()
        .get(format!("{sandbox}/v1/accounts?limit=100"))
        .bearer_auth("sk_test_obol_sandbox")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let acct = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["business_profile"]["name"] == name)
        .unwrap_or_else(|| panic!("no sandbox account named {name}: {accounts}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    (acct, j)
}

pub fn last4(s: &str) -> String {
    s[s.len() - 4..].to_string()
}

/// `GET path` with the secret key, as organisation `org` (none: the platform).
pub async fn get_in(obol: &Obol, org: Option<&str>, path: &str) -> (u16, Value) {
    let mut r = obol.http.get(obol.url(path)).bearer_auth(&obol.api_key);
    if let Some(org) = org {
        r = r.header(ORG, org);
    }
    status_json(r.send().await.unwrap()).await
}

/// `POST path` with the secret key, as organisation `org`.
pub async fn post_in(obol: &Obol, org: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let mut r = obol
        .http
        .post(obol.url(path))
        .bearer_auth(&obol.api_key)
        .json(&body);
    if let Some(org) = org {
        r = r.header(ORG, org);
    }
    status_json(r.send().await.unwrap()).await
}

/// Polls `GET path` as `org` until `done` holds, for at most 20 s.
pub async fn eventually_in(
    obol: &Obol,
    org: Option<&str>,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = get_in(obol, org, path).await;
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "timed out on {path}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new organisation named `name`, connected through the whole chain to
/// a new sandbox account of the same name: (org, acct).
pub async fn connected_organization(obol: &Obol, name: &str) -> (String, String) {
    let org = organization(obol, name).await;
    let acct = connect(obol, &org, name).await;
    (org, acct)
}
