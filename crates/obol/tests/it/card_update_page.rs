//! obol's hosted card-update page, `/pay/cards/{token}`, in real headless
//! Chromium (conformance/node/browser/card-update-page.mjs): a member
//! types a card into the payment element in setup mode, saves it, sees it
//! saved, and it is their default card; then replaces it. Screenshots go
//! to `target/browser-screenshots/`.

use std::time::Instant;

use serde_json::{json, Value};

use crate::helpers::{Backend, Obol};
use crate::invoice_pages::{assert_png, case, Browser};

async fn default_card(obol: &Obol, customer: &str) -> Value {
    let (status, body) = obol
        .get(&format!("/v1/customers/{customer}/payment-methods"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["default"] == true)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_save_a_card_in_a_real_browser() {
    let started = Instant::now();
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_INVOICES__BUSINESS_NAME", "Tennisclub Grün-Weiss")
        .start()
        .await;
    let (_, health) = obol.get("/health").await;
    let sandbox = health["stripe"]["api_base"]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let customer = obol.create_customer("member-browser").await;
    let id = customer["id"].as_str().unwrap().to_string();
    let (status, made) = obol
        .post(
            &format!("/v1/customers/{id}/card-update-links"),
            json!({"ttl_seconds": 3600}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let url = made["url"].as_str().unwrap().to_string();
    // A second member, whose bank asks for 3-D Secure.
    let other = obol.create_customer("member-3ds").await;
    let other_id = other["id"].as_str().unwrap().to_string();
    let (status, made) = obol
        .post(
            &format!("/v1/customers/{other_id}/card-update-links"),
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let three_ds_url = made["url"].as_str().unwrap().to_string();
    // An expired link, written as obol writes them.
    let expired = obol::ids::SecretToken::generate("");
    {
        let store = obol.db.store().await;
        let mut h = store.acquire().await.unwrap();
        let now = chrono::Utc::now();
        h.conn()
            .insert_card_update_link(
                expired.hash().as_str(),
                &obol::context::AccountId::platform(),
                &id,
                now - chrono::Duration::seconds(1),
                now - chrono::Duration::seconds(3600),
            )
            .await
            .unwrap();
    }
    let expired_url = obol.url(&format!("/pay/cards/{}", expired.expose()));
    let unknown_url = obol.url(&format!("/pay/cards/{}", "A".repeat(43)));

    // The headers: the page may talk to obol and the sandbox only.
    let r = obol.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains(&format!("connect-src 'self' {sandbox}")),
        "{csp}"
    );
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-frame-options"], "DENY");
    let r = obol.http.get(&expired_url).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .ends_with("connect-src 'self'"));
    let r = obol
        .http
        .get(obol.url("/assets/card-update.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut browser = Browser::start_script(
        "browser/card-update-page.mjs",
        json!([
            {"name": "save", "url": url, "steps": [
                {"expect": "ready", "read": "before", "shot": "card-update-before.png"},
                {"card": "4000 0000 0000 0002"},
                {"expect": "error", "read": "declined", "shot": "card-update-declined.png"},
                {"card": "4242 4242 4242 4242"},
                {"expect": "saved", "read": "saved", "shot": "card-update-after.png", "pause": "saved"},
                {"reload": true},
                {"expect": "ready", "read": "reloaded", "shot": "card-update-on-file.png"},
                {"card": "5555 5555 5555 4444"},
                {"expect": "saved", "read": "replaced", "shot": "card-update-replaced.png"}]},
            {"name": "3ds", "url": three_ds_url, "steps": [
                {"expect": "ready"},
                {"card": "4000 0027 6000 3184"},
                {"challenge": "complete", "shot": "card-update-3ds-challenge.png"},
                {"expect": "saved", "read": "saved", "shot": "card-update-3ds-saved.png"}]},
            {"name": "expired", "url": expired_url, "steps": [{"read": "expired", "shot": "card-update-expired.png"}]},
            {"name": "unknown", "url": unknown_url, "steps": [{"read": "unknown", "shot": "card-update-unknown.png"}]},
        ]),
    )
    .await;
    let mut results = Vec::new();
    let mut seen_saved = Value::Null;
    while let Some(line) = browser.next().await {
        match line["paused"].as_str() {
            Some("saved") => {
                // Saved in the browser: obol already has it as the default.
                seen_saved = default_card(&obol, &id).await;
                browser.resume().await;
            }
            Some(other) => panic!("unexpected pause {other}"),
            None => results.push(line),
        }
    }
    let (exit, stderr) = browser.finish().await;

    let save = case(&results, "save");
    assert_eq!(save["status"], 200, "{save}");
    let before = &save["reads"]["before"];
    assert_eq!(before["business"], "Tennisclub Grün-Weiss", "{before}");
    assert_eq!(before["current"], "No card is saved yet.", "{before}");
    assert_eq!(
        before["save_button"],
        json!({"text": "Save card", "disabled": false})
    );
    assert_eq!(before["card_inputs"], true, "{before}");
    let declined = &save["reads"]["declined"];
    assert_eq!(declined["state"], "error", "{declined}");
    let shown = save["errors_shown"][0].as_str().unwrap_or_default();
    assert!(
        shown.contains("declined") && shown.contains("Nothing was saved"),
        "{shown}"
    );
    let saved = &save["reads"]["saved"];
    assert_eq!(
        (&saved["form_visible"], &saved["saved_visible"]),
        (&json!(false), &json!(true)),
        "{saved}"
    );
    assert_eq!(
        saved["saved_text"], "Your card ending 4242 is saved for future payments.",
        "{saved}"
    );
    assert_eq!(
        (
            &seen_saved["brand"],
            &seen_saved["last4"],
            &seen_saved["exp_month"],
            &seen_saved["exp_year"]
        ),
        (&json!("visa"), &json!("4242"), &json!(12), &json!(2034)),
        "{seen_saved}"
    );
    let reloaded = &save["reads"]["reloaded"];
    assert_eq!(
        reloaded["current_card"], "Visa •••• 4242, expires 12/2034",
        "{reloaded}"
    );
    let replaced = &save["reads"]["replaced"];
    assert_eq!(
        replaced["saved_text"], "Your card ending 4444 is saved for future payments.",
        "{replaced}"
    );
    let now_default = default_card(&obol, &id).await;
    assert_eq!(
        (&now_default["brand"], &now_default["last4"]),
        (&json!("mastercard"), &json!("4444")),
        "{now_default}"
    );
    assert_ne!(now_default["id"], seen_saved["id"]);
    assert_eq!(
        save["overflows"], false,
        "scrolls sideways at 360 px: {save}"
    );
    assert_eq!(save["console_errors"], json!([]), "{save}");
    assert_eq!(save["failed_requests"], json!([]), "{save}");
    // The one error answer: the sandbox declining the first card.
    let http_errors = save["http_errors"].as_array().unwrap();
    assert!(
        http_errors.len() == 1
            && http_errors[0].as_str().is_some_and(|e| e
                .starts_with(&format!("402 POST {sandbox}/v1/setup_intents/"))
                && e.ends_with("/confirm")),
        "{http_errors:?}"
    );

    // 3-D Secure: the bank's page returns to the card-update page, which
    // completes the saved card at once.
    let r = case(&results, "3ds");
    assert!(
        r["challenge_url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&sandbox)),
        "{r}"
    );
    assert_eq!(
        r["reads"]["saved"]["saved_text"], "Your card ending 3184 is saved for future payments.",
        "{r}"
    );
    assert!(
        !r["final_url"]
            .as_str()
            .unwrap_or_default()
            .contains("setup_intent"),
        "the page drops the bank's query: {r}"
    );
    assert_eq!(r["console_errors"], json!([]), "{r}");
    assert_eq!(r["http_errors"], json!([]), "{r}");
    let theirs = default_card(&obol, &other_id).await;
    assert_eq!(theirs["last4"], "3184", "{theirs}");

    let expired = case(&results, "expired");
    assert_eq!(expired["status"], 410, "{expired}");
    let seen = &expired["reads"]["expired"];
    assert_eq!(
        seen["heading"], "This card-update link has expired",
        "{seen}"
    );
    assert_eq!(seen["message_state"], "expired", "{seen}");
    assert_eq!(seen["card_inputs"], false, "{seen}");
    let unknown = case(&results, "unknown");
    assert_eq!(unknown["status"], 404, "{unknown}");
    assert_eq!(
        unknown["reads"]["unknown"]["heading"], "Card-update link not found",
        "{unknown}"
    );
    for r in [expired, unknown] {
        assert_eq!(r["console_errors"], json!([]), "{r}");
        assert_eq!(r["failed_requests"], json!([]), "{r}");
        assert_eq!(r["overflows"], false, "{r}");
    }
    assert!(
        exit.success(),
        "the browser run failed: {results:?}\n{stderr}"
    );
    for shot in [
        "card-update-before.png",
        "card-update-declined.png",
        "card-update-after.png",
        "card-update-on-file.png",
        "card-update-replaced.png",
        "card-update-3ds-challenge.png",
        "card-update-3ds-saved.png",
        "card-update-expired.png",
        "card-update-unknown.png",
    ] {
        assert_png(shot);
    }
    eprintln!(
        "card-update page: whole test {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
