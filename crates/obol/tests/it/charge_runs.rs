//! Charge runs over HTTP against the sandbox: items streamed in, worked
//! by the job runner, each outcome from the member's card, nothing
//! charged twice, cancel, and the run's counts.

use serde_json::{json, Value};

use crate::helpers::{random_api_key, run_obol, Backend, Obol, ObolBuilder, TestReceiver};
use crate::inbox::{sandbox, stripe_post};
use crate::invoices::within;
use crate::on_both_backends;

on_both_backends!(
    a_run_without_saved_cards_ends_with_no_payment_method_everywhere,
    a_draft_run_takes_items_in_calls_and_refuses_bad_ones,
    a_canceled_run_sends_nothing_more,
    the_cli_creates_a_run_from_a_csv_and_watches_it_finish,
    each_card_gets_its_outcome_and_one_intent,
    a_run_killed_twice_finishes_with_no_double_charge,
);

pub async fn members(obol: &Obol, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (s, c) = obol
            .post(
                "/v1/customers",
                json!({"external_id": format!("member-{i}"), "email": format!("member{i}@club.example"), "name": format!("Member {i}")}),
            )
            .await;
        assert_eq!(s, 201, "{c}");
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    ids
}

pub async fn run(obol: &Obol, name: &str) -> String {
    let (s, run) = obol
        .post(
            "/v1/charge-runs",
            json!({"name": name, "currency": "eur", "description": "Autumn release 2026"}),
        )
        .await;
    assert_eq!(s, 201, "{run}");
    assert_eq!(run["status"], "draft");
    run["id"].as_str().unwrap().to_string()
}

pub async fn add(obol: &Obol, run: &str, items: Vec<Value>) -> Value {
    let (s, added) = obol
        .post(
            &format!("/v1/charge-runs/{run}/items"),
            json!({"items": items}),
        )
        .await;
    assert_eq!(s, 201, "{added}");
    added
}

pub async fn finished(obol: &Obol, run: &str, secs: u64) -> Value {
    within(obol, &format!("/v1/charge-runs/{run}"), secs, |r| {
        r["status"] == "completed" || r["status"] == "canceled"
    })
    .await
}

async fn a_run_without_saved_cards_ends_with_no_payment_method_everywhere(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "20")
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .start()
        .await;
    let host = TestReceiver::start(0).await;
    let (s, _) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": host.url, "event_types": ["charge_run_item.no_payment_method", "charge_run.completed"]}),
        )
        .await;
    assert_eq!(s, 201);
    let ids = members(&obol, 12).await;
    let run_id = run(&obol, "No cards").await;
    let items: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"customer_id": c, "amount": 4500 + i as i64, "external_reference": format!("ship-{i}")}))
        .collect();
    let added = add(&obol, &run_id, items).await;
    assert_eq!(
        (added["added"].as_i64(), added["item_count"].as_i64()),
        (Some(12), Some(12))
    );
    let (s, started) = obol
        .post(&format!("/v1/charge-runs/{run_id}/start"), json!({}))
        .await;
    assert_eq!(
        (s, started["status"].as_str()),
        (200, Some("running")),
        "{started}"
    );
    let done = finished(&obol, &run_id, 30).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["counts"]["no_payment_method"], 12, "{done}");
    assert_eq!(done["progress"], 1.0);
    let got = host
        .until("every item and the run notified", |r| r.len() >= 13)
        .await;
    let items = got
        .iter()
        .filter(|r| r.json()["type"] == "charge_run_item.no_payment_method")
        .count();
    assert_eq!(items, 12);
    let completed: Vec<Value> = got
        .iter()
        .map(|r| r.json())
        .filter(|b| b["type"] == "charge_run.completed")
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(
        completed[0]["data"]["charge_run"]["counts"]["no_payment_method"],
        12
    );
    // Paged, in the order they were added, filtered by outcome.
    let (_, page) = obol
        .get(&format!("/v1/charge-runs/{run_id}/items?limit=5"))
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = obol
        .get(&format!(
            "/v1/charge-runs/{run_id}/items?limit=100&cursor={cursor}&outcome=no_payment_method"
        ))
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 7, "{rest}");
    assert!(rest["data"][0]["payment_intent_id"].is_null());
    // Started once only.
    let (s, e) = obol
        .post(&format!("/v1/charge-runs/{run_id}/start"), json!({}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("charge_run_not_draft")),
        "{e}"
    );
}

async fn a_draft_run_takes_items_in_calls_and_refuses_bad_ones(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ids = members(&obol, 3).await;
    let run_id = run(&obol, "Calls").await;
    add(
        &obol,
        &run_id,
        vec![json!({"customer_id": ids[0], "amount": 5000, "external_reference": "a"})],
    )
    .await;
    let added = add(
        &obol,
        &run_id,
        vec![
            json!({"customer_id": ids[1], "amount": 5000, "external_reference": "b"}),
            json!({"customer_id": ids[2], "amount": 5000}),
        ],
    )
    .await;
    assert_eq!(added["item_count"], 3);
    let post = |body: Value| {
        let obol = &obol;
        let path = format!("/v1/charge-runs/{run_id}/items");
        async move { obol.post(&path, body).await }
    };
    // A reference already in the run: nothing of the call is added.
    let (s, e) = post(json!({"items": [{"customer_id": ids[0], "amount": 5000, "external_reference": "c"}, {"customer_id": ids[1], "amount": 5000, "external_reference": "a"}]})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("duplicate_reference")),
        "{e}"
    );
    let (s, e) = post(json!({"items": [{"customer_id": ids[0], "amount": 5000, "external_reference": "d"}, {"customer_id": ids[1], "amount": 5000, "external_reference": "d"}]})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("duplicate_reference")),
        "{e}"
    );
    let (s, e) =
        post(json!({"items": [{"customer_id": "cus_01jd8x3qzv5m2c7e9f0g1h2j3k", "amount": 5000}]}))
            .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("field_invalid")),
        "{e}"
    );
    let (s, e) = post(json!({"items": [{"customer_id": ids[0], "amount": 10}]})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("amount_too_small")),
        "{e}"
    );
    let (s, e) = post(json!({"items": []})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("invalid_line_items")),
        "{e}"
    );
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"customer_id": ids[0], "amount": 5000}))
        .collect();
    let (s, e) = post(json!({"items": many})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("invalid_line_items")),
        "{e}"
    );
    let (_, r) = obol.get(&format!("/v1/charge-runs/{run_id}")).await;
    assert_eq!(
        r["item_count"], 3,
        "nothing of a refused call was added: {r}"
    );
    assert_eq!(r["counts"]["pending"], 3);
    let (s, e) = obol
        .get("/v1/charge-runs/cr_01jd8x3qzv5m2c7e9f0g1h2j3k")
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("charge_run_not_found"))
    );
}

async fn a_canceled_run_sends_nothing_more(backend: Backend) {
    let obol = Obol::start(backend).await;
    let ids = members(&obol, 2).await;
    let run_id = run(&obol, "Canceled").await;
    add(
        &obol,
        &run_id,
        ids.iter()
            .map(|c| json!({"customer_id": c, "amount": 5000}))
            .collect(),
    )
    .await;
    let (s, c) = obol
        .post(&format!("/v1/charge-runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!((s, c["status"].as_str()), (200, Some("canceled")), "{c}");
    assert_eq!(c["counts"]["canceled"], 2, "{c}");
    let (s, e) = obol
        .post(&format!("/v1/charge-runs/{run_id}/start"), json!({}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("charge_run_not_draft")),
        "{e}"
    );
    let (s, e) = obol
        .post(&format!("/v1/charge-runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("charge_run_not_cancelable")),
        "{e}"
    );
    let (s, e) = obol
        .post(
            &format!("/v1/charge-runs/{run_id}/items"),
            json!({"items": [{"customer_id": ids[0], "amount": 5000}]}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("charge_run_not_draft")),
        "{e}"
    );
}

async fn the_cli_creates_a_run_from_a_csv_and_watches_it_finish(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .start()
        .await;
    members(&obol, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("autumn-release.csv");
    std::fs::write(
        &csv,
        "external_id,amount,external_reference\nmember-0,8900,s-0\nmember-1,8900,s-1\nmember-2,12000,s-2\nmember-3,4500,\n",
    )
    .unwrap();
    let addr = obol.base_url.trim_start_matches("http://").to_string();
    let env = [
        ("OBOL_DATABASE_URL", obol.db.url.as_str()),
        ("OBOL_LISTEN", addr.as_str()),
    ];
    let (code, out, err) = run_obol(
        &[
            "charge-runs",
            "create",
            "--file",
            csv.to_str().unwrap(),
            "--currency",
            "eur",
        ],
        &env,
        dir.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    let run_id = out.split_whitespace().next().unwrap().to_string();
    assert!(run_id.starts_with("cr_"), "{out}");
    assert!(
        out.contains("running") && out.contains("4 items") && out.contains("autumn-release"),
        "{out}"
    );
    let (code, out, err) = run_obol(&["charge-runs", "watch", &run_id], &env, dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("completed") && out.contains("no_payment_method 4"),
        "{out}"
    );
    let (_, r) = obol.get(&format!("/v1/charge-runs/{run_id}")).await;
    assert_eq!(
        (
            r["item_count"].as_i64(),
            r["amounts"]["no_payment_method"].as_i64()
        ),
        (Some(4), Some(34300)),
        "{r}"
    );
    // A member the CSV names but obol does not know stops it with the line.
    std::fs::write(&csv, "external_id,amount\nmember-9,8900\n").unwrap();
    let (code, _, err) = run_obol(
        &[
            "charge-runs",
            "create",
            "--file",
            csv.to_str().unwrap(),
            "--currency",
            "eur",
        ],
        &env,
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("line 2") && err.contains("member-9"), "{err}");
}

/// Saves `card` (a `pm_card_*` token or a raw test number) as `member`'s
/// default, the way Stripe would tell obol: attached and made the Stripe
/// customer's default, reported by events.
pub async fn save_default_card(obol: &Obol, member: &str, card: &str) {
    let (s, link) = obol
        .post(
            &format!("/v1/customers/{member}/card-update-links"),
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "{link}");
    let cus = link["stripe_customer_id"].as_str().unwrap().to_string();
    let base = sandbox(obol).await;
    let pm = if card.starts_with("pm_") {
        card.to_string()
    } else {
        let pm = stripe_post(
            &base,
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", card),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2031"),
                ("card[cvc]", "123"),
            ],
        )
        .await;
        pm["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{pm}"))
            .to_string()
    };
    let attached = stripe_post(
        &base,
        &format!("/v1/payment_methods/{pm}/attach"),
        &[("customer", cus.as_str())],
    )
    .await;
    let pm_id = attached["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{attached}"))
        .to_string();
    let updated = stripe_post(
        &base,
        &format!("/v1/customers/{cus}"),
        &[("invoice_settings[default_payment_method]", pm_id.as_str())],
    )
    .await;
    assert_eq!(
        updated["invoice_settings"]["default_payment_method"],
        pm_id.as_str(),
        "{updated}"
    );
    within(
        obol,
        &format!("/v1/customers/{member}/payment-methods"),
        20,
        |b| {
            b["data"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|c| c["id"] == pm_id.as_str() && c["default"] == true)
            })
        },
    )
    .await;
}

async fn each_card_gets_its_outcome_and_one_intent(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .env("OBOL_CHARGE_RUNS__CONCURRENCY", "4")
        .start()
        .await;
    let ids = members(&obol, 15).await;
    // 4242, 3184 (3-D Secure even off-session), 9995 (insufficient
    // funds: Stripe declines attaching it, so the member keeps no card),
    // 0341 (attaches, then declines), and no card: three members each.
    let cards = [
        "pm_card_visa",
        "pm_card_authenticationRequired",
        "",
        "pm_card_chargeCustomerFail",
    ];
    let base = sandbox(&obol).await;
    for (i, member) in ids.iter().enumerate() {
        match cards.get(i % 5) {
            Some(&"") => {
                let pm = stripe_post(
                    &base,
                    "/v1/payment_methods",
                    &[
                        ("type", "card"),
                        ("card[number]", "4000000000009995"),
                        ("card[exp_month]", "12"),
                        ("card[exp_year]", "2031"),
                        ("card[cvc]", "123"),
                    ],
                )
                .await;
                let (_, link) = obol
                    .post(
                        &format!("/v1/customers/{member}/card-update-links"),
                        json!({}),
                    )
                    .await;
                let refused = stripe_post(
                    &base,
                    &format!("/v1/payment_methods/{}/attach", pm["id"].as_str().unwrap()),
                    &[("customer", link["stripe_customer_id"].as_str().unwrap())],
                )
                .await;
                assert_eq!(
                    refused["error"]["decline_code"], "insufficient_funds",
                    "{refused}"
                );
            }
            Some(card) => save_default_card(&obol, member, card).await,
            None => {}
        }
    }
    let run_id = run(&obol, "Release").await;
    add(&obol, &run_id, ids.iter().enumerate().map(|(i, c)| json!({"customer_id": c, "amount": 5000, "external_reference": format!("m-{i}")})).collect()).await;
    obol.post(&format!("/v1/charge-runs/{run_id}/start"), json!({}))
        .await;
    let done = finished(&obol, &run_id, 60).await;
    assert_eq!(done["status"], "completed", "{done}");
    let counts = &done["counts"];
    assert_eq!(
        (
            counts["succeeded"].as_i64(),
            counts["requires_action"].as_i64(),
            counts["failed"].as_i64(),
            counts["no_payment_method"].as_i64()
        ),
        (Some(3), Some(3), Some(3), Some(6)),
        "{done}"
    );
    assert_eq!(done["amounts"]["succeeded"], 15000);
    let (_, items) = obol
        .get(&format!("/v1/charge-runs/{run_id}/items?limit=100"))
        .await;
    let items = items["data"].as_array().unwrap().clone();
    for (i, item) in items.iter().enumerate() {
        let expected = [
            "succeeded",
            "requires_action",
            "no_payment_method",
            "failed",
            "no_payment_method",
        ];
        let idx: usize = item["external_reference"].as_str().unwrap()[2..]
            .parse()
            .unwrap();
        assert_eq!(item["outcome"], expected[idx % 5], "item {i}: {item}");
        match idx % 5 {
            1 => assert_eq!(item["decline_code"], "authentication_required", "{item}"),
            3 => assert!(item["decline_code"].is_string(), "{item}"),
            2 | 4 => assert!(item["payment_intent_id"].is_null(), "{item}"),
            _ => assert!(item["payment_intent_id"]
                .as_str()
                .unwrap()
                .starts_with("pi_")),
        }
        assert_eq!(item["attempts"], 1, "{item}");
    }
    // The sandbox holds exactly one intent per charged item.
    let base = sandbox(&obol).await;
    let listed: Value = reqwest::Client::new()
        .get(format!("{base}/v1/payment_intents?limit=100"))
        .bearer_auth("sk_test_obol_tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut per_item = std::collections::BTreeMap::<String, usize>::new();
    for pi in listed["data"].as_array().unwrap() {
        if pi["metadata"]["obol_charge_run_id"] == run_id.as_str() {
            *per_item
                .entry(
                    pi["metadata"]["obol_charge_run_item_id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
                .or_default() += 1;
        }
    }
    assert_eq!(per_item.len(), 9, "{per_item:?}");
    assert!(per_item.values().all(|n| *n == 1), "{per_item:?}");
    // The successes are in the ledger.
    let (_, payments) = obol.get("/v1/payments?limit=100").await;
    let completed = payments["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "completed")
        .count();
    assert_eq!(completed, 3, "{payments}");
    // Every member whose charge failed or who has no card is asked, once,
    // to update their card; every member whose bank asks for 3-D Secure,
    // once, to confirm it (no SMTP here: the e-mails are kept, `logged`).
    let all = within(&obol, "/v1/emails?limit=100", 30, |e| {
        e["data"]
            .as_array()
            .is_some_and(|d| d.len() >= 12 && d.iter().all(|m| m["status"] == "logged"))
    })
    .await;
    let all = all["data"].as_array().unwrap();
    assert_eq!(all.len(), 12, "{all:?}");
    let confirm: std::collections::BTreeSet<&str> = all
        .iter()
        .filter(|m| m["template"] == "payment_action_required")
        .map(|m| m["customer_id"].as_str().unwrap())
        .collect();
    let waiting: std::collections::BTreeSet<&str> = items
        .iter()
        .filter(|i| i["outcome"] == "requires_action")
        .map(|i| i["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!((confirm.len(), &confirm), (3, &waiting));
    let emails: Vec<&Value> = all
        .iter()
        .filter(|m| m["template"] != "payment_action_required")
        .collect();
    assert_eq!(emails.len(), 9, "{emails:?}");
    let asked: std::collections::BTreeSet<&str> = emails
        .iter()
        .map(|m| m["customer_id"].as_str().unwrap())
        .collect();
    let expected: std::collections::BTreeSet<&str> = items
        .iter()
        .filter(|i| i["outcome"] == "failed" || i["outcome"] == "no_payment_method")
        .map(|i| i["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(asked, expected);
    for m in emails {
        assert_eq!(m["template"], "card_update_requested", "{m}");
        let (_, one) = obol
            .get(&format!("/v1/emails/{}", m["id"].as_str().unwrap()))
            .await;
        let text = one["text_body"].as_str().unwrap();
        assert!(
            text.contains("50.00 EUR") && text.contains("/pay/cards/"),
            "{text}"
        );
    }
}

/// Every PaymentIntent the sandbox holds for `run_id`, per item.
pub async fn intents_per_item(
    obol: &Obol,
    run_id: &str,
) -> std::collections::BTreeMap<String, usize> {
    intents_of_run(&sandbox(obol).await, run_id).await
}

/// The same, from the sandbox at `base` (one obol need not own it).
pub async fn intents_of_run(base: &str, run_id: &str) -> std::collections::BTreeMap<String, usize> {
    let mut per_item = std::collections::BTreeMap::<String, usize>::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/payment_intents?limit=100");
        if let Some(a) = &after {
            url.push_str(&format!("&starting_after={a}"));
        }
        let page: Value = reqwest::Client::new()
            .get(url)
            .bearer_auth("sk_test_obol_tests")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().unwrap();
        for pi in data {
            if pi["metadata"]["obol_charge_run_id"] == run_id {
                *per_item
                    .entry(
                        pi["metadata"]["obol_charge_run_item_id"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    )
                    .or_default() += 1;
            }
        }
        if page["has_more"] != true || data.is_empty() {
            return per_item;
        }
        after = data
            .last()
            .and_then(|p| p["id"].as_str())
            .map(str::to_string);
    }
}

/// Every item of the run, page after page (`outcome` narrows them).
pub async fn all_items(obol: &Obol, run_id: &str, outcome: Option<&str>) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/charge-runs/{run_id}/items?limit=1000");
        if let Some(o) = outcome {
            path.push_str(&format!("&outcome={o}"));
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, page) = obol.get(&path).await;
        assert_eq!(s, 200, "{page}");
        items.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) if page["has_more"] == true => cursor = Some(c.to_string()),
            _ => return items,
        }
    }
}

async fn a_run_killed_twice_finishes_with_no_double_charge(backend: Backend) {
    // 2,000 items: 20 members charged 100 times each (a reference apiece).
    const MEMBERS: usize = 20;
    const ITEMS_EACH: usize = 100;
    let key = random_api_key();
    let sandbox_db = tempfile::tempdir().unwrap();
    let sandbox_file = sandbox_db
        .path()
        .join("sandbox.db")
        .to_string_lossy()
        .into_owned();
    let configure = |b: ObolBuilder| {
        b.env("OBOL_API_KEYS", &key)
            .env("OBOL_SANDBOX__DB", &sandbox_file)
            .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
            .env("OBOL_JOBS__LEASE_SECONDS", "2")
            .env("OBOL_CHARGE_RUNS__ITEM_LEASE_SECONDS", "5")
            .env("OBOL_CHARGE_RUNS__CONCURRENCY", "8")
            .env("OBOL_STRIPE__RATE_LIMIT_PER_SECOND", "500")
    };
    let mut obol = configure(Obol::builder(backend)).start().await;
    let ids = members(&obol, MEMBERS).await;
    for m in &ids {
        save_default_card(&obol, m, "pm_card_visa").await;
    }
    let run_id = run(&obol, "Crash").await;
    let items: Vec<Value> = (0..MEMBERS * ITEMS_EACH)
        .map(|i| json!({"customer_id": ids[i % MEMBERS], "amount": 2500, "external_reference": format!("r-{i}")}))
        .collect();
    for batch in items.chunks(1000) {
        add(&obol, &run_id, batch.to_vec()).await;
    }
    obol.post(&format!("/v1/charge-runs/{run_id}/start"), json!({}))
        .await;
    let total = (MEMBERS * ITEMS_EACH) as i64;
    for kill in 1..=2 {
        // kill -9 once some items (more each time) are charged.
        let target = total * kill / 3;
        within(&obol, &format!("/v1/charge-runs/{run_id}"), 180, |r| {
            r["counts"]["succeeded"].as_i64() >= Some(target)
        })
        .await;
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &obol.pid().to_string()])
            .status();
        let (_, db, _) = obol.terminate();
        obol = configure(Obol::builder(backend)).with_db(db).start().await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let done = loop {
        let (_, r) = obol.get(&format!("/v1/charge-runs/{run_id}")).await;
        if r["status"] == "completed" {
            break r;
        }
        if std::time::Instant::now() > deadline {
            let out = obol.output();
            let tail: Vec<&str> = out
                .lines()
                .filter(|l| {
                    l.contains("charge")
                        || l.contains("job")
                        || l.contains("WARN")
                        || l.contains("ERROR")
                })
                .collect();
            panic!(
                "not completed: {r}\n{}",
                tail[tail.len().saturating_sub(60)..].join("\n")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(done["counts"]["succeeded"].as_i64(), Some(total), "{done}");
    let per_item = intents_per_item(&obol, &run_id).await;
    assert_eq!(per_item.len(), total as usize, "one intent per item");
    let doubles: Vec<_> = per_item.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubles.is_empty(), "charged twice: {doubles:?}");
    let items = all_items(&obol, &run_id, None).await;
    assert_eq!(items.len(), total as usize);
    let resent = items
        .iter()
        .filter(|i| i["attempts"].as_i64() > Some(1))
        .count();
    eprintln!("charge run crash: {total} items, 2 kills, {resent} items sent again after a kill, 0 charged twice");
}
