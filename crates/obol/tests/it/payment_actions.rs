//! The 3-D Secure action page of charge-run items over HTTP against the
//! sandbox: a `requires_action` item gets one e-mail with a link; the
//! link's page confirms the item's own PaymentIntent, the bank's
//! challenge completes it and the item turns `succeeded`, with one
//! intent per item; expired, unknown and foreign links open nothing.

use serde_json::{json, Value};

use crate::charge_runs::{add, finished, intents_per_item, members, run, save_default_card};
use crate::helpers::{Backend, Obol, TestReceiver};
use crate::inbox::sandbox;
use crate::invoices::within;
use crate::on_both_backends;

on_both_backends!(
    a_member_confirms_a_requires_action_charge_from_the_emailed_link,
    expired_unknown_and_foreign_action_links_open_nothing,
);

/// The token of the action link in an e-mail body.
pub fn action_token(body: &str) -> String {
    let at = body
        .find("/pay/actions/")
        .unwrap_or_else(|| panic!("no action link in {body}"));
    body[at + "/pay/actions/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn public(obol: &Obol, method: &str, token: &str, tail: &str) -> (u16, Value) {
    let url = obol.url(&format!("/v1/public/payment-actions/{token}{tail}"));
    let r = match method {
        "GET" => obol.http.get(url),
        _ => obol.http.post(url),
    }
    .send()
    .await
    .unwrap();
    crate::helpers::status_json(r).await
}

/// Completes (or fails) the sandbox's 3-D Secure challenge at `url`, as
/// the member's click would; answers where the bank sends them back.
pub async fn answer_challenge(obol: &Obol, url: &str, action: &str) -> String {
    let parsed = url::Url::parse(url).unwrap();
    let token = parsed
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = sandbox(obol).await;
    let r = no_redirects
        .post(format!("{base}{}", parsed.path()))
        .form(&[("token", token.as_str()), ("action", action)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the bank's page sends the member back");
    r.headers()["location"].to_str().unwrap().to_string()
}

/// One 3-D Secure member (…3184) and `others` whose card just works,
/// charged 50.00 EUR each in a completed run: (run, the 3-D Secure item,
/// the others' items).
async fn charged(obol: &Obol, others: usize) -> (String, Value, Vec<Value>) {
    let ids = members(obol, 1 + others).await;
    save_default_card(obol, &ids[0], "pm_card_authenticationRequired").await;
    for m in &ids[1..] {
        save_default_card(obol, m, "pm_card_visa").await;
    }
    let run_id = run(obol, "Autumn release").await;
    add(
        obol,
        &run_id,
        ids.iter()
            .enumerate()
            .map(|(i, c)| json!({"customer_id": c, "amount": 5000, "external_reference": format!("m-{i}")}))
            .collect(),
    )
    .await;
    obol.post(&format!("/v1/charge-runs/{run_id}/start"), json!({}))
        .await;
    let done = finished(obol, &run_id, 60).await;
    assert_eq!(done["counts"]["requires_action"], 1, "{done}");
    let (_, items) = obol
        .get(&format!("/v1/charge-runs/{run_id}/items?limit=10"))
        .await;
    let items = items["data"].as_array().unwrap();
    let of = |o: &str| -> Vec<Value> {
        items
            .iter()
            .filter(|i| i["outcome"] == o)
            .cloned()
            .collect()
    };
    assert_eq!(of("succeeded").len(), others, "{items:?}");
    (run_id, of("requires_action").remove(0), of("succeeded"))
}

/// The action e-mails obol queued, once each have been kept (`logged`).
async fn action_emails(obol: &Obol, n: usize) -> Vec<Value> {
    let got = within(obol, "/v1/emails?limit=100", 30, |e| {
        e["data"].as_array().is_some_and(|d| {
            d.iter()
                .filter(|m| m["template"] == "payment_action_required" && m["status"] == "logged")
                .count()
                >= n
        })
    })
    .await;
    got["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["template"] == "payment_action_required")
        .cloned()
        .collect()
}

async fn a_member_confirms_a_requires_action_charge_from_the_emailed_link(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "20")
        .env("OBOL_EMAIL__BUSINESS_NAME", "Weingut Ana")
        // The test asks faster than a member clicks (2/s per link by default).
        .env("OBOL_STRIPE__CUSTOMER_RATE_LIMIT_PER_SECOND", "100")
        .start()
        .await;
    let host = TestReceiver::start(0).await;
    let (s, _) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": host.url, "event_types": ["charge_run_item.succeeded"]}),
        )
        .await;
    assert_eq!(s, 201);
    let (run_id, item, paid) = charged(&obol, 1).await;
    let item_id = item["id"].as_str().unwrap();
    let pi = item["payment_intent_id"].as_str().unwrap();

    // One e-mail, to the member who must act, naming the charge.
    let emails = action_emails(&obol, 1).await;
    assert_eq!(emails.len(), 1, "{emails:?}");
    let m = &emails[0];
    assert_eq!(m["customer_id"], item["customer_id"], "{m}");
    assert_eq!(
        m["dedupe_key"],
        format!("charge_run_item:{item_id}:action").as_str()
    );
    assert_eq!(
        m["subject"], "Weingut Ana: please confirm your payment of 50.00 EUR",
        "{m}"
    );
    let (_, one) = obol
        .get(&format!("/v1/emails/{}", m["id"].as_str().unwrap()))
        .await;
    let text = one["text_body"].as_str().unwrap();
    assert!(text.contains("Autumn release 2026"), "{text}");
    assert!(
        text.contains(&format!("{}/pay/actions/", obol.base_url)),
        "{text}"
    );
    let token = action_token(text);
    assert_eq!(token.len(), 43, "32 random bytes, base64url: {token}");
    assert!(one["html_body"]
        .as_str()
        .unwrap()
        .contains(&format!("/pay/actions/{token}")));

    // The page: the business, the amount, what it is for, one button.
    let page_url = obol.url(&format!("/pay/actions/{token}"));
    let r = obol.http.get(&page_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.ends_with("connect-src 'self'"), "no Stripe.js: {csp}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    for shown in [
        "Weingut Ana",
        "50.00 EUR",
        "For Autumn release 2026",
        "Confirm payment of 50.00 EUR",
        r#"data-state="ready""#,
        "/assets/payment-action.js",
    ] {
        assert!(html.contains(shown), "{shown}: {html}");
    }
    let r = obol
        .http
        .get(obol.url("/assets/payment-action.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, view) = public(&obol, "GET", &token, "").await;
    assert_eq!(s, 200, "{view}");
    assert_eq!(
        (
            &view["status"],
            &view["amount"],
            &view["currency"],
            &view["amount_display"],
            &view["business_name"]
        ),
        (
            &json!("requires_action"),
            &json!(5000),
            &json!("eur"),
            &json!("50.00 EUR"),
            &json!("Weingut Ana")
        ),
        "{view}"
    );

    // Confirm: the bank's page, for the item's own intent. A second click
    // answers the same page and sends nothing new.
    let (s, confirmed) = public(&obol, "POST", &token, "/confirm").await;
    assert_eq!(s, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "requires_action", "{confirmed}");
    let challenge = confirmed["redirect_url"].as_str().unwrap().to_string();
    let base = sandbox(&obol).await;
    assert!(
        challenge.starts_with(&format!("{base}/_sandbox/3ds/{pi}?")),
        "{challenge}"
    );
    let (s, again) = public(&obol, "POST", &token, "/confirm").await;
    assert_eq!((s, &again["redirect_url"]), (200, &json!(challenge)));

    // A failed authentication: nothing charged, and the member may try again.
    let back = answer_challenge(&obol, &challenge, "fail").await;
    assert!(back.contains("redirect_status=failed"), "{back}");
    let (_, view) = public(&obol, "GET", &token, "").await;
    assert_eq!(view["status"], "requires_action", "{view}");
    let (s, retried) = public(&obol, "POST", &token, "/confirm").await;
    assert_eq!(s, 200, "{retried}");
    let challenge = retried["redirect_url"].as_str().unwrap().to_string();

    // The bank says yes and sends the member back to the page.
    let back = answer_challenge(&obol, &challenge, "complete").await;
    assert!(
        back.starts_with(&format!("{page_url}?payment_intent={pi}&")),
        "{back}"
    );
    assert!(back.contains("redirect_status=succeeded"), "{back}");
    let view = within(
        &obol,
        &format!("/v1/public/payment-actions/{token}"),
        20,
        |v| v["status"] == "succeeded",
    )
    .await;
    assert_eq!(view["amount"], 5000);
    let items = within(
        &obol,
        &format!("/v1/charge-runs/{run_id}/items?outcome=succeeded"),
        20,
        |p| p["data"].as_array().is_some_and(|d| d.len() == 2),
    )
    .await;
    let now = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == item_id)
        .cloned()
        .unwrap();
    assert_eq!(now["payment_intent_id"], pi, "{now}");
    let (_, done) = obol.get(&format!("/v1/charge-runs/{run_id}")).await;
    assert_eq!(
        (
            &done["counts"]["succeeded"],
            &done["counts"]["requires_action"]
        ),
        (&json!(2), &json!(0)),
        "{done}"
    );
    assert_eq!(done["amounts"]["succeeded"], 10000, "{done}");
    // /metrics counts the outcomes reached: the 4242 member's success, the
    // 3-D Secure item's requires_action and then its success.
    let samples = crate::metrics::scrape(&obol).await;
    let items = |outcome: &str| {
        crate::metrics::value(
            &samples,
            "obol_charge_run_items_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!((items("succeeded"), items("requires_action")), (2.0, 1.0));
    let got = host
        .until("the item's success notified", |r| {
            r.iter().any(|n| n.json()["data"]["item"]["id"] == item_id)
        })
        .await;
    let note = got
        .iter()
        .map(|r| r.json())
        .find(|n| n["data"]["item"]["id"] == item_id)
        .unwrap();
    assert_eq!(note["type"], "charge_run_item.succeeded", "{note}");

    // The page says paid; paying again is refused before Stripe is asked.
    let html = obol
        .http
        .get(&page_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Thank you, your payment went through") && html.contains("is paid"),
        "{html}"
    );
    let (s, refused) = public(&obol, "POST", &token, "/confirm").await;
    assert_eq!(
        (s, refused["error"]["code"].as_str()),
        (409, Some("payment_action_completed")),
        "{refused}"
    );

    // One intent per item in the sandbox: the page confirmed the run's own.
    let per_item = intents_per_item(&obol, &run_id).await;
    assert_eq!(per_item.len(), 2, "{per_item:?}");
    assert!(per_item.values().all(|n| *n == 1), "{per_item:?}");
    let intent: Value = reqwest::Client::new()
        .get(format!("{base}/v1/payment_intents/{pi}"))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&intent["status"], &intent["amount_received"]),
        (&json!("succeeded"), &json!(5000)),
        "{intent}"
    );
    // Still one e-mail: nobody else was asked, and this member once.
    let emails = action_emails(&obol, 1).await;
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert_ne!(emails[0]["customer_id"], paid[0]["customer_id"]);
}

async fn expired_unknown_and_foreign_action_links_open_nothing(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .env("OBOL_HTTP__AUTH_FAILURES_PER_MINUTE", "30")
        .env("OBOL_STRIPE__CUSTOMER_RATE_LIMIT_PER_SECOND", "100")
        .start()
        .await;
    let (_, item, paid) = charged(&obol, 3).await;
    let emails = action_emails(&obol, 1).await;
    let (_, one) = obol
        .get(&format!("/v1/emails/{}", emails[0]["id"].as_str().unwrap()))
        .await;
    let good = action_token(one["text_body"].as_str().unwrap());

    // Links written as obol writes them, for items paid off session: one
    // expired, one of another account, one naming another item's intent.
    let now = chrono::Utc::now();
    let expired = obol::ids::SecretToken::generate("");
    let foreign = obol::ids::SecretToken::generate("");
    let mismatched = obol::ids::SecretToken::generate("");
    {
        use obol::storage::payment_actions::NewPaymentActionLink;
        let store = obol.db.store().await;
        let mut h = store.acquire().await.unwrap();
        let mut conn = h.conn();
        let platform = obol::context::AccountId::platform();
        let other = obol::context::AccountId::from_db("acct_someone_else".into());
        let ra_pi = item["payment_intent_id"].as_str().unwrap();
        let links = [
            (
                &expired,
                &platform,
                &paid[0],
                None,
                now - chrono::Duration::seconds(1),
            ),
            (
                &foreign,
                &other,
                &paid[1],
                None,
                now + chrono::Duration::days(7),
            ),
            (
                &mismatched,
                &platform,
                &paid[2],
                Some(ra_pi),
                now + chrono::Duration::days(7),
            ),
        ];
        for (token, account, it, pi, expires_at) in links {
            let pi = pi.unwrap_or_else(|| it["payment_intent_id"].as_str().unwrap());
            assert!(conn
                .insert_payment_action_link(&NewPaymentActionLink {
                    token_hash: token.hash().as_str(),
                    account,
                    charge_run_item_id: it["id"].as_str().unwrap(),
                    customer_id: it["customer_id"].as_str().unwrap(),
                    payment_intent_id: pi,
                    expires_at,
                    now: now - chrono::Duration::days(8),
                })
                .await
                .unwrap());
        }
    }
    let page = |token: &str| {
        let url = obol.url(&format!("/pay/actions/{token}"));
        let http = obol.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let csp = r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(csp.ends_with("connect-src 'self'"), "{csp}");
            (status, r.text().await.unwrap())
        }
    };
    let (s, html) = page(&good).await;
    assert_eq!(s, 200, "{html}");

    // Expired: 410, a page saying so; nothing can be confirmed.
    let (s, html) = page(expired.expose()).await;
    assert_eq!(s, 410);
    assert!(html.contains("This payment link has expired"), "{html}");
    assert!(!html.contains("obol-confirm-button"), "{html}");
    for (method, tail) in [("GET", ""), ("POST", "/confirm")] {
        let (s, e) = public(&obol, method, expired.expose(), tail).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (410, Some("payment_action_expired")),
            "{method} {e}"
        );
    }

    // Another account's link, a link not matching its item, an unknown
    // and a malformed token: 404, and nothing about the payment.
    for token in [
        foreign.expose(),
        mismatched.expose(),
        &"A".repeat(43),
        "short",
    ] {
        let (s, html) = page(token).await;
        assert_eq!(s, 404, "{token}");
        assert!(html.contains("Payment link not found"), "{html}");
        assert!(!html.contains("50.00"), "{html}");
        for (method, tail) in [("GET", ""), ("POST", "/confirm")] {
            let (s, e) = public(&obol, method, token, tail).await;
            assert_eq!(
                (s, e["error"]["code"].as_str()),
                (404, Some("payment_action_not_found")),
                "{method} {token}: {e}"
            );
        }
    }
    // Nothing was confirmed or created through them.
    let base = sandbox(&obol).await;
    for it in &paid {
        let pi = it["payment_intent_id"].as_str().unwrap();
        let intent: Value = reqwest::Client::new()
            .get(format!("{base}/v1/payment_intents/{pi}"))
            .bearer_auth("sk_test_obol_tests")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(intent["status"], "succeeded", "{intent}");
    }
    let ra_pi = item["payment_intent_id"].as_str().unwrap();
    let intent: Value = reqwest::Client::new()
        .get(format!("{base}/v1/payment_intents/{ra_pi}"))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(intent["status"], "requires_payment_method", "{intent}");

    // Guessing tokens is rate limited per address, like every token route.
    let mut limited = None;
    for i in 0..40 {
        let (s, _) = public(&obol, "GET", &"B".repeat(43), "").await;
        if s == 429 {
            limited = Some(i);
            break;
        }
        assert_eq!(s, 404);
    }
    assert!(limited.is_some(), "never rate limited");
    let (s, html) = page(&good).await;
    assert_eq!(s, 429);
    assert!(html.contains("Too many attempts"), "{html}");
}
