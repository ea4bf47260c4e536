//! The whole-club check: a run of 10,000 members against the
//! sandbox with a mix of cards, every member who must act e-mailed once
//! through a real SMTP server (aiosmtpd). Ignored in the parallel suite
//! (it wants the machine to itself); `scripts/test.sh` runs it on its own
//! with `--ignored`. `OBOL_SCALE_MEMBERS` shrinks it for a quick look.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::charge_runs::{add, all_items, intents_of_run, run, save_default_card};
use crate::emails::{free_port, SmtpSink};
use crate::helpers::{Backend, Obol};
use crate::inbox::{sandbox, stripe_post};

/// The five kinds of member, in turn: the card each saves (none for the
/// last) and the outcome it must end with.
const KINDS: [(&str, &str); 5] = [
    ("4242424242424242", "succeeded"),
    // 3-D Secure even off-session.
    ("4000002760003184", "requires_action"),
    // Declined when attached (insufficient funds): the member keeps no card.
    ("4000000000009995", "no_payment_method"),
    // Attaches, then every charge is declined.
    ("4000000000000341", "failed"),
    ("", "no_payment_method"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "ten thousand members: run alone by scripts/test.sh (--ignored)"]
async fn ten_thousand_members_end_as_their_cards_say_and_each_who_must_act_gets_one_email() {
    let n: usize = std::env::var("OBOL_SCALE_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let started = Instant::now();
    let smtp_port = free_port();
    let sink = SmtpSink::start(smtp_port, &[]);
    let obol = Obol::builder(Backend::Postgres)
        .env("OBOL_LOG", "warn")
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .env("OBOL_JOBS__WORKERS", "6")
        .env("OBOL_CHARGE_RUNS__WORKERS", "2")
        .env("OBOL_CHARGE_RUNS__CONCURRENCY", "16")
        .env("OBOL_STRIPE__RATE_LIMIT_PER_SECOND", "1000")
        .env(
            "OBOL_EMAIL__SMTP_URL",
            &format!("smtp://127.0.0.1:{smtp_port}"),
        )
        .env("OBOL_EMAIL__FROM", "Weingut Ana <club@weingut.example>")
        .env("OBOL_EMAIL__BUSINESS_NAME", "Weingut Ana")
        .start()
        .await;

    // Members, and the card each saves, 32 at a time.
    let ids = members_concurrently(&obol, n).await;
    let base = sandbox(&obol).await;
    futures::stream::iter(ids.iter().enumerate())
        .for_each_concurrent(32, |(i, member)| {
            let (obol, base) = (&obol, &base);
            async move {
                match KINDS[i % 5].0 {
                    "" => {}
                    "4000000000009995" => refused_card(obol, base, member).await,
                    card => save_default_card(obol, member, card).await,
                }
            }
        })
        .await;
    let set_up = started.elapsed();

    let run_id = run(&obol, "Winter release").await;
    let items: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"customer_id": c, "amount": 4900, "external_reference": format!("m-{i}")}))
        .collect();
    for batch in items.chunks(1000) {
        add(&obol, &run_id, batch.to_vec()).await;
    }
    let (s, _) = obol
        .post(&format!("/v1/charge-runs/{run_id}/start"), json!({}))
        .await;
    assert_eq!(s, 200);
    let charging = Instant::now();
    let done = loop {
        let (_, r) = obol.get(&format!("/v1/charge-runs/{run_id}")).await;
        if r["status"] == "completed" {
            break r;
        }
        assert!(
            charging.elapsed() < Duration::from_secs(1200),
            "the run did not finish: {r}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let charged_in = charging.elapsed();
    eprintln!(
        "charge run of {n} members: set up in {:.0} s, charged in {:.0} s",
        set_up.as_secs_f64(),
        charged_in.as_secs_f64()
    );

    // Outcome counts match the cards exactly.
    let per_kind = n / 5;
    let extra = |k: usize| usize::from(n % 5 > k);
    let want = |outcome: &str| -> i64 {
        KINDS
            .iter()
            .enumerate()
            .filter(|(_, (_, o))| *o == outcome)
            .map(|(k, _)| (per_kind + extra(k)) as i64)
            .sum()
    };
    for outcome in [
        "succeeded",
        "requires_action",
        "failed",
        "no_payment_method",
    ] {
        assert_eq!(
            done["counts"][outcome].as_i64(),
            Some(want(outcome)),
            "{outcome}: {done}"
        );
    }
    let items = all_items(&obol, &run_id, None).await;
    assert_eq!(items.len(), n);
    let mut who = BTreeMap::new();
    for item in &items {
        let i: usize = item["external_reference"].as_str().unwrap()[2..]
            .parse()
            .unwrap();
        assert_eq!(item["outcome"], KINDS[i % 5].1, "{item}");
        who.insert(i, item.clone());
    }

    // The sandbox holds exactly one intent per charged item.
    let per_item = intents_of_run(&base, &run_id).await;
    let charged = (want("succeeded") + want("requires_action") + want("failed")) as usize;
    assert_eq!(per_item.len(), charged, "one intent per charged item");
    let doubles: Vec<_> = per_item.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubles.is_empty(), "charged twice: {doubles:?}");

    // Every member who must act, and nobody else, gets one e-mail: a
    // link to confirm the payment, or to update the card.
    let must_act = n - want("succeeded") as usize;
    let mailing = Instant::now();
    let messages = loop {
        let m = sink.messages();
        if m.len() >= must_act {
            // A moment more: a second e-mail to anyone would show now.
            tokio::time::sleep(Duration::from_secs(3)).await;
            break sink.messages();
        }
        assert!(
            mailing.elapsed() < Duration::from_secs(600),
            "{} of {must_act} e-mails arrived",
            m.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut to: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &messages {
        to.entry(m["rcpt_tos"][0].as_str().unwrap().to_string())
            .or_default()
            .push(m["subject"].as_str().unwrap().to_string());
    }
    assert_eq!(
        messages.len(),
        must_act,
        "one e-mail per member who must act"
    );
    for (i, _) in who.iter() {
        let address = format!("member{i}@club.example");
        let got = to.get(&address).cloned().unwrap_or_default();
        let expected = match KINDS[i % 5].1 {
            "succeeded" => None,
            "requires_action" => Some("please confirm your payment"),
            _ => Some("please update your card"),
        };
        match expected {
            None => assert!(got.is_empty(), "member {i} paid and was e-mailed: {got:?}"),
            Some(words) => assert!(
                got.len() == 1 && got[0].contains(words),
                "member {i} ({}): {got:?}",
                KINDS[i % 5].1
            ),
        }
    }
    let rate = n as f64 / charged_in.as_secs_f64();
    eprintln!(
        "charge run of {n} members: set up in {:.0} s, charged in {:.0} s ({rate:.0} items/s), {} e-mails in {:.0} s more; {charged} intents, 0 doubles",
        set_up.as_secs_f64(),
        charged_in.as_secs_f64(),
        messages.len(),
        mailing.elapsed().as_secs_f64()
    );
}

async fn members_concurrently(obol: &Obol, n: usize) -> Vec<String> {
    // Named as `charge_runs::members` names them, 8 chunks of 500 at once.
    let chunks: Vec<Vec<String>> = futures::stream::iter((0..n).step_by(500))
        .map(|start| async move { offset_members(obol, start, 500.min(n - start)).await })
        .buffered(8)
        .collect()
        .await;
    let ids: Vec<String> = chunks.into_iter().flatten().collect();
    assert_eq!(ids.len(), n);
    ids
}

async fn offset_members(obol: &Obol, start: usize, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for i in start..start + count {
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

/// The member tries a card Stripe refuses to attach: a Stripe customer,
/// but no card.
async fn refused_card(obol: &Obol, base: &str, member: &str) {
    let pm = stripe_post(
        base,
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
    let (s, link) = obol
        .post(
            &format!("/v1/customers/{member}/card-update-links"),
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "{link}");
    let refused = stripe_post(
        base,
        &format!("/v1/payment_methods/{}/attach", pm["id"].as_str().unwrap()),
        &[("customer", link["stripe_customer_id"].as_str().unwrap())],
    )
    .await;
    assert_eq!(
        refused["error"]["decline_code"], "insufficient_funds",
        "{refused}"
    );
}

/// Two `obol serve` on one PostgreSQL database work one run against one
/// Stripe (a sandbox that answers 429 above its rate, as Stripe does):
/// both charge items, none is charged twice, and together they never go
/// over the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_work_one_run_without_a_double_charge_or_going_over_the_rate() {
    const RATE: u32 = 40;
    const MEMBERS: usize = 20;
    const ITEMS: usize = 600;
    let sandbox = obol_sandbox::Sandbox::bind(
        "127.0.0.1:0".parse().unwrap(),
        obol_sandbox::SandboxConfig {
            rate_limit_per_second: Some(RATE),
            webhook_retry_base: Duration::from_millis(200),
            ..obol_sandbox::SandboxConfig::default()
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", sandbox.local_addr());
    tokio::spawn(sandbox.run_until(std::future::pending()));
    // Stripe delivers to the first process; both apply what it stores.
    let port = free_port();
    let endpoint = stripe_post(
        &base,
        "/v1/webhook_endpoints",
        &[
            ("url", &format!("http://127.0.0.1:{port}/webhooks/stripe")),
            ("enabled_events[]", "*"),
        ],
    )
    .await;
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    let key = crate::helpers::random_api_key();
    let builder = || {
        Obol::builder(Backend::Postgres)
            .env("OBOL_API_KEYS", &key)
            .env("OBOL_STRIPE__SECRET_KEY", "sk_test_obol_tests")
            .env("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_test_obol_tests")
            .env("OBOL_STRIPE__API_BASE", &base)
            .env("OBOL_STRIPE__WEBHOOK_SECRETS", &secret)
            .env("OBOL_STRIPE__RATE_LIMIT_PER_SECOND", &RATE.to_string())
            .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
            .env("OBOL_CHARGE_RUNS__CONCURRENCY", "8")
            // Four worker jobs and two runner tasks per process: neither
            // process can hold more than two, so both work the run.
            .env("OBOL_CHARGE_RUNS__WORKERS", "4")
            .env("OBOL_JOBS__WORKERS", "2")
            .env("OBOL_LOG", "info,obol=debug")
    };
    let a = builder()
        .env("OBOL_LISTEN", &format!("127.0.0.1:{port}"))
        .start()
        .await;
    let b = builder().with_db(a.db.share()).start().await;
    let ids = crate::charge_runs::members(&a, MEMBERS).await;
    for m in &ids {
        save_default_card(&a, m, "pm_card_visa").await;
    }
    let http = reqwest::Client::new();
    let rate = |path: &'static str| {
        let (http, base) = (&http, &base);
        async move {
            let r = http.request(
                if path.ends_with("reset") {
                    reqwest::Method::POST
                } else {
                    reqwest::Method::GET
                },
                format!("{base}/_sandbox/{path}"),
            );
            r.send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap_or_default()
        }
    };
    rate("rate/reset").await;

    let run_id = run(&a, "Two processes").await;
    let items: Vec<Value> = (0..ITEMS)
        .map(|i| json!({"customer_id": ids[i % MEMBERS], "amount": 3100, "external_reference": format!("t-{i}")}))
        .collect();
    add(&a, &run_id, items).await;
    let (s, _) = b
        .post(&format!("/v1/charge-runs/{run_id}/start"), json!({}))
        .await;
    assert_eq!(s, 200);
    let started = Instant::now();
    let done = loop {
        let (_, r) = b.get(&format!("/v1/charge-runs/{run_id}")).await;
        if r["status"] == "completed" {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not completed: {r}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let took = started.elapsed();
    assert_eq!(
        done["counts"]["succeeded"].as_i64(),
        Some(ITEMS as i64),
        "{done}"
    );
    let stats = rate("rate").await;

    let per_item = intents_of_run(&base, &run_id).await;
    assert_eq!(per_item.len(), ITEMS, "one intent per item");
    assert!(
        per_item.values().all(|n| *n == 1),
        "charged twice: {:?}",
        per_item.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );

    // Both processes charged items (their job runners' worker ids begin
    // with the process id).
    let pg = sqlx::PgPool::connect(&a.db.url).await.unwrap();
    let workers: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT r.worker FROM job_runs r JOIN jobs j ON j.id = r.job_id WHERE j.kind = 'charge_run'",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    for p in [a.pid(), b.pid()] {
        assert!(
            workers.iter().any(|w| w.starts_with(&format!("{p}-"))),
            "process {p} worked no part of the run: {workers:?}"
        );
    }

    // Stripe never had to refuse them, and no second saw more than the
    // rate (a token bucket of one second would let a burst through; the
    // sliding-window count shows there was none).
    assert_eq!(stats["rate_limited"], 0, "429s: {stats}");
    let most = stats["max_in_any_second"].as_u64().unwrap();
    assert!(
        most <= u64::from(RATE),
        "{most} requests in one second: {stats}"
    );
    let ideal = ITEMS as f64 / f64::from(RATE);
    eprintln!(
        "two processes, one run: {ITEMS} items in {:.1} s (the rate allows {ideal:.1} s), at most {most}/s at the sandbox, 0 doubles",
        took.as_secs_f64()
    );
}
