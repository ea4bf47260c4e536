//! A charge run's member e-mails, followed in real headless Chromium
//! (conformance/node/browser/charge-run-action-page.mjs): obol sends them
//! to a real SMTP server (aiosmtpd, `conformance/python/smtp_sink.py`);
//! the member whose bank asks for 3-D Secure (…3184) opens the e-mailed
//! action page, confirms, completes the bank's challenge and sees the
//! payment paid, and their item turns `succeeded`; the member whose card
//! was declined (…0341) opens the e-mailed card-update page, saves
//! 4242 4242 4242 4242, and it is their default card. Screenshots go to
//! `target/browser-screenshots/`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::charge_runs::{add, finished, intents_per_item, run, save_default_card};
use crate::emails::{free_port, SmtpSink};
use crate::helpers::{Backend, Obol};
use crate::invoice_pages::{assert_png, case, Browser};
use crate::invoices::within;

const FROM: &str = "Weingut Ana <club@weingut.example>";

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

/// The link in a message's plain-text part after `marker`.
fn link_in(message: &Value, marker: &str) -> String {
    let text = message["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == "text/plain")
        .and_then(|p| p["body"].as_str())
        .unwrap_or_else(|| panic!("no text part: {message}"));
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} link in {text}"));
    let start = text[..at].rfind("http").unwrap();
    text[start..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_confirm_3ds_and_update_their_card_from_the_emails_in_a_real_browser() {
    let started = Instant::now();
    let port = free_port();
    let sink = SmtpSink::start(port, &[]);
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .env("OBOL_EMAIL__SMTP_URL", &format!("smtp://127.0.0.1:{port}"))
        .env("OBOL_EMAIL__FROM", FROM)
        .env("OBOL_EMAIL__BUSINESS_NAME", "Weingut Ana")
        .env("OBOL_INVOICES__BUSINESS_NAME", "Weingut Ana")
        .start()
        .await;
    let (_, health) = obol.get("/health").await;
    let sandbox = health["stripe"]["api_base"]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();

    // Two members with saved cards: one whose bank asks for 3-D Secure
    // even off session, one whose card is declined.
    let three_ds = obol.create_customer("member-3184").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let declined = obol.create_customer("member-0341").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    save_default_card(&obol, &three_ds, "4000002760003184").await;
    save_default_card(&obol, &declined, "4000000000000341").await;
    let old_card = default_card(&obol, &declined).await;
    assert_eq!(old_card["last4"], "0341", "{old_card}");

    let run_id = run(&obol, "Autumn release").await;
    add(
        &obol,
        &run_id,
        vec![
            json!({"customer_id": three_ds, "amount": 8900, "external_reference": "ship-1"}),
            json!({"customer_id": declined, "amount": 8900, "external_reference": "ship-2"}),
        ],
    )
    .await;
    obol.post(&format!("/v1/charge-runs/{run_id}/start"), json!({}))
        .await;
    let done = finished(&obol, &run_id, 60).await;
    assert_eq!(
        (
            &done["counts"]["requires_action"],
            &done["counts"]["failed"]
        ),
        (&json!(1), &json!(1)),
        "{done}"
    );
    let (_, items) = obol
        .get(&format!("/v1/charge-runs/{run_id}/items?limit=10"))
        .await;
    let item = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["customer_id"] == three_ds.as_str())
        .cloned()
        .unwrap();
    assert_eq!(item["outcome"], "requires_action", "{item}");

    // The e-mails, as the SMTP server got them: one each.
    let deadline = Instant::now() + Duration::from_secs(30);
    let messages = loop {
        let m = sink.messages();
        if m.len() >= 2 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the two e-mails did not arrive: {m:?}\n{}",
            obol.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let to = |member: &str| {
        messages
            .iter()
            .find(|m| m["to"] == format!("{member}@example.com").as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no e-mail to {member}: {messages:?}"))
    };
    let action_mail = to("member-3184");
    assert_eq!(
        action_mail["subject"], "Weingut Ana: please confirm your payment of 89.00 EUR",
        "{action_mail}"
    );
    let action_url = link_in(&action_mail, "/pay/actions/");
    let card_mail = to("member-0341");
    let card_url = link_in(&card_mail, "/pay/cards/");
    assert!(
        action_url.starts_with(&obol.url("/pay/actions/"))
            && card_url.starts_with(&obol.url("/pay/cards/")),
        "{action_url} {card_url}"
    );
    let unknown_url = obol.url(&format!("/pay/actions/{}", "A".repeat(43)));

    let mut browser = Browser::start_script(
        "browser/charge-run-action-page.mjs",
        json!([
            {"name": "action", "url": action_url, "steps": [
                {"expect": "ready", "read": "before", "shot": "charge-run-action-before.png"},
                {"confirm": true},
                {"challenge": "complete", "shot": "charge-run-action-3ds-challenge.png"},
                {"expect": "paid", "read": "paid", "shot": "charge-run-action-paid.png", "pause": "paid"},
                {"reload": true},
                {"expect": "paid", "read": "reloaded", "shot": "charge-run-action-paid-reloaded.png"}]},
            {"name": "card", "url": card_url, "steps": [
                {"expect": "card-ready", "read": "before", "shot": "charge-run-card-update-before.png"},
                {"card": "4242 4242 4242 4242"},
                {"expect": "saved", "read": "saved", "shot": "charge-run-card-update-saved.png"}]},
            {"name": "unknown", "url": unknown_url, "steps": [{"read": "unknown", "shot": "charge-run-action-unknown.png"}]},
        ]),
    )
    .await;
    let mut results = Vec::new();
    let mut item_when_paid = Value::Null;
    while let Some(line) = browser.next().await {
        match line["paused"].as_str() {
            Some("paid") => {
                // The page says paid: obol has the item as succeeded.
                let page = within(
                    &obol,
                    &format!("/v1/charge-runs/{run_id}/items?outcome=succeeded"),
                    20,
                    |p| p["data"].as_array().is_some_and(|d| !d.is_empty()),
                )
                .await;
                item_when_paid = page["data"][0].clone();
                browser.resume().await;
            }
            Some(other) => panic!("unexpected pause {other}"),
            None => results.push(line),
        }
    }
    let (exit, stderr) = browser.finish().await;

    let action = case(&results, "action");
    assert_eq!(action["status"], 200, "{action}");
    let before = &action["reads"]["before"];
    assert_eq!(
        (
            &before["business"],
            &before["amount"],
            &before["description"]
        ),
        (
            &json!("Weingut Ana"),
            &json!("89.00 EUR"),
            &json!("For Autumn release 2026")
        ),
        "{before}"
    );
    assert_eq!(
        before["button"],
        json!({"text": "Confirm payment of 89.00 EUR", "disabled": false})
    );
    assert!(
        action["challenge_url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{sandbox}/_sandbox/3ds/"))),
        "{action}"
    );
    let paid = &action["reads"]["paid"];
    assert_eq!(
        (&paid["paid_visible"], &paid["form_visible"]),
        (&json!(true), &json!(false)),
        "{paid}"
    );
    assert_eq!(paid["heading"], "Thank you, your payment went through");
    assert_eq!(
        paid["paid_text"], "89.00 EUR for Autumn release 2026 is paid. Nothing more is due.",
        "{paid}"
    );
    assert!(
        !paid["url"].as_str().unwrap().contains("payment_intent"),
        "the page drops the bank's query: {paid}"
    );
    assert_eq!(action["reload_status"], 200);
    assert_eq!(action["reads"]["reloaded"]["paid_visible"], true);
    assert_eq!(action["console_errors"], json!([]), "{action}");
    assert_eq!(action["failed_requests"], json!([]), "{action}");
    assert_eq!(action["http_errors"], json!([]), "{action}");
    assert_eq!(action["overflows"], false, "{action}");
    // The page asked obol to confirm once, and never talked to the sandbox's API.
    let requests: Vec<&str> = action["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("POST ") && r.ends_with("/confirm"))
            .count(),
        1,
        "{requests:?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.contains(&format!("{sandbox}/v1/"))),
        "{requests:?}"
    );

    // The item turned succeeded, paid with its one intent.
    assert_eq!(item_when_paid["id"], item["id"], "{item_when_paid}");
    assert_eq!(
        item_when_paid["payment_intent_id"], item["payment_intent_id"],
        "{item_when_paid}"
    );
    let per_item = intents_per_item(&obol, &run_id).await;
    assert_eq!(per_item.len(), 2, "{per_item:?}");
    assert!(per_item.values().all(|n| *n == 1), "{per_item:?}");
    let (_, run_now) = obol.get(&format!("/v1/charge-runs/{run_id}")).await;
    assert_eq!(
        (
            &run_now["counts"]["succeeded"],
            &run_now["counts"]["requires_action"]
        ),
        (&json!(1), &json!(0)),
        "{run_now}"
    );

    // The declined member saved a new card: it is their default now.
    let card = case(&results, "card");
    assert_eq!(card["status"], 200, "{card}");
    assert_eq!(card["reads"]["before"]["business"], "Weingut Ana", "{card}");
    assert_eq!(
        card["reads"]["saved"]["saved_text"], "Your card ending 4242 is saved for future payments.",
        "{card}"
    );
    assert_eq!(card["console_errors"], json!([]), "{card}");
    assert_eq!(card["http_errors"], json!([]), "{card}");
    let new_card = default_card(&obol, &declined).await;
    assert_eq!(
        (&new_card["brand"], &new_card["last4"]),
        (&json!("visa"), &json!("4242")),
        "{new_card}"
    );
    assert_ne!(new_card["id"], old_card["id"], "the default card changed");

    let unknown = case(&results, "unknown");
    assert_eq!(unknown["status"], 404, "{unknown}");
    assert_eq!(
        unknown["reads"]["unknown"]["heading"], "Payment link not found",
        "{unknown}"
    );
    assert_eq!(unknown["console_errors"], json!([]), "{unknown}");

    // Still one e-mail each.
    assert_eq!(sink.messages().len(), 2, "{:?}", sink.messages());
    assert!(
        exit.success(),
        "the browser run failed: {results:?}\n{stderr}"
    );
    for shot in [
        "charge-run-action-before.png",
        "charge-run-action-3ds-challenge.png",
        "charge-run-action-paid.png",
        "charge-run-action-paid-reloaded.png",
        "charge-run-card-update-before.png",
        "charge-run-card-update-saved.png",
        "charge-run-action-unknown.png",
    ] {
        assert_png(shot);
    }
    eprintln!(
        "charge-run action page: whole test {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
