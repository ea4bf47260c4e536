//! `GET /metrics` end to end: the exposition parses with Prometheus's own
//! Python parser (`prometheus_client.parser`, conformance venv), and a
//! scripted flow (pay-first intent confirmed in the sandbox, webhooks
//! applied, capture, refund, a notification retried once, an e-mail)
//! moves the counters by the expected amounts. Also: `metrics.token`,
//! the inbox lag on `/health` and `/metrics`, and the scrape-time queries
//! on both backends.

use std::io::Write;
use std::time::{Duration, Instant};

use obol::context::AccountId;
use serde_json::{json, Value};

use crate::helpers::{Backend, Obol, TestDb, TestReceiver};
use crate::inbox::eventually;
use crate::on_both_backends;

on_both_backends!(
    a_scripted_flow_moves_the_counters_by_the_expected_amounts,
    an_inbox_that_falls_behind_shows_on_health_and_metrics,
    the_scrape_queries_read_only_what_waits,
);

/// One sample of a parsed exposition.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: serde_json::Map<String, Value>,
    pub value: f64,
}

/// Parses `text` with `prometheus_client.parser.text_string_to_metric_families`;
/// panics with the parser's error when Prometheus would refuse it.
pub fn parse(text: &str) -> Vec<Sample> {
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/.venv/bin/python"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/python/parse_metrics.py"
    );
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the conformance venv exists (conformance/run.sh --setup creates it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Sample {
                name: v["name"].as_str().unwrap().to_string(),
                labels: v["labels"].as_object().unwrap().clone(),
                value: v["value"].as_f64().unwrap(),
            }
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include `labels`
/// (0 when there is none: a counter not yet incremented).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k) == Some(&json!(v)))
        })
        .map(|s| s.value)
        .sum()
}

/// Scrapes `/metrics` (through the OpenAPI-checking client) and parses it.
pub async fn scrape(obol: &Obol) -> Vec<Sample> {
    scrape_with(obol, None).await.1
}

async fn scrape_with(obol: &Obol, token: Option<&str>) -> (u16, Vec<Sample>, String) {
    let mut req = obol.http.get(obol.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = r.text().await.unwrap();
    if status != 200 {
        return (status, Vec::new(), text);
    }
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    (status, parse(&text), text)
}

/// Scrapes until `done` holds on the samples, for at most 20 s.
async fn scrape_until(obol: &Obol, what: &str, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(obol).await;
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counter deltas between two scrapes.
struct Delta<'a> {
    before: &'a [Sample],
    after: &'a [Sample],
}

impl Delta<'_> {
    fn of(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        value(self.after, name, labels) - value(self.before, name, labels)
    }
}

async fn a_scripted_flow_moves_the_counters_by_the_expected_amounts(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_NOTIFICATIONS__RETRY_UNIT_MS", "20")
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .env("OBOL_JOBS__RETRY_UNIT_MS", "20")
        .start()
        .await;
    // The receiver refuses the first delivery: one retry, one success.
    let receiver = TestReceiver::start(1).await;
    let (status, endpoint) = obol
        .post(
            "/v1/webhook-endpoints",
            json!({"url": receiver.url, "event_types": ["payment.completed"]}),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let before = scrape(&obol).await;
    assert_eq!(
        value(
            &before,
            "obol_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // Pay first: obol creates the intent, the card confirms it in the
    // sandbox, the order captures it.
    let pi = crate::checkout::authorize(&obol, 4999).await;
    let (status, order) = obol
        .post(
            "/v1/orders",
            json!({
                "email": "ana@example.com", "currency": "eur",
                "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 2}],
                "shipping": {"name": "Standard", "amount": 999},
                "payment_reference": pi
            }),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let payment = order["payment_id"].as_str().unwrap().to_string();
    eventually(&obol, &format!("/v1/payments/{payment}"), |b| {
        b["status"] == "completed"
    })
    .await;
    let (status, refund) = obol
        .post(
            &format!("/v1/payments/{payment}/refunds"),
            json!({"amount": 1000}),
        )
        .await;
    assert_eq!(status, 201, "{refund}");
    eventually(&obol, &format!("/v1/payments/{payment}"), |b| {
        b["amount_refunded"] == 1000
    })
    .await;
    receiver
        .until("payment.completed delivered", |got| got.len() == 2)
        .await;
    // An e-mail, queued the way a use case does (no SMTP: it is logged).
    {
        let store = obol.db.store().await;
        let mut tx = store.begin().await.unwrap();
        obol::email::enqueue(
            &mut tx.conn(),
            &AccountId::platform(),
            None,
            "cleo@example.com",
            &obol::email::Template::PaymentActionRequired {
                business: "Weingut Ana".into(),
                amount: 4999,
                currency: "eur".into(),
                description: "Wine club".into(),
                action_url: "https://club.example/pay/3ds/x".into(),
                expires_at: "2026-12-03T14:00:00Z".parse().unwrap(),
            },
            "metrics-flow",
            obol::storage::now(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        store.close().await;
    }

    // Every stored event applied, the notification settled, the e-mail
    // logged: then the counters are final.
    let after = scrape_until(&obol, "the flow to settle", |s| {
        value(s, "obol_inbox_unapplied_events", &[("status", "received")]) == 0.0
            && value(
                s,
                "obol_notification_deliveries_total",
                &[("outcome", "succeeded")],
            ) >= 1.0
            && value(s, "obol_emails_total", &[("outcome", "logged")]) >= 1.0
            && value(s, "obol_webhook_events_processed_total", &[])
                >= value(
                    s,
                    "obol_webhook_events_received_total",
                    &[("result", "stored")],
                )
    })
    .await;
    let d = Delta {
        before: &before,
        after: &after,
    };
    let http = "obol_http_requests_total";
    for (method, route, status) in [
        ("POST", "/v1/payment-intents", "201"),
        ("POST", "/v1/orders", "201"),
        ("POST", "/v1/payments/{id}/refunds", "201"),
    ] {
        assert_eq!(
            d.of(
                http,
                &[("method", method), ("route", route), ("status", status)]
            ),
            1.0,
            "{method} {route}"
        );
        assert_eq!(
            d.of(
                "obol_http_request_duration_seconds_count",
                &[("method", method), ("route", route)]
            ),
            1.0,
            "{method} {route} latency"
        );
    }
    // The sandbox's deliveries, each one a request on the webhook route.
    let stored = d.of(
        "obol_webhook_events_received_total",
        &[("source", "webhook"), ("result", "stored")],
    );
    assert!(
        stored >= 4.0,
        "created, capturable, succeeded, refund: {stored}"
    );
    assert!(
        d.of(
            http,
            &[
                ("method", "POST"),
                ("route", "/webhooks/stripe"),
                ("status", "200")
            ]
        ) >= stored
    );
    for t in [
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
    ] {
        assert_eq!(
            d.of(
                "obol_webhook_events_received_total",
                &[("type", t), ("source", "webhook"), ("result", "stored")]
            ),
            1.0,
            "{t} stored"
        );
        // Applied, or ignored when obol's own API answer got there first
        // (the capture's response and its event race): once, either way.
        let processed: Vec<_> = after
            .iter()
            .filter(|s| s.name == "obol_webhook_events_processed_total" && s.labels["type"] == t)
            .collect();
        assert_eq!(
            d.of("obol_webhook_events_processed_total", &[("type", t)]),
            1.0,
            "{t} processed once: {processed:?}"
        );
    }
    // Every stored event was processed exactly once, none failed.
    assert_eq!(
        d.of("obol_webhook_events_processed_total", &[]),
        d.of(
            "obol_webhook_events_received_total",
            &[("result", "stored")]
        )
    );
    assert_eq!(
        d.of(
            "obol_webhook_events_processed_total",
            &[("outcome", "failed")]
        ),
        0.0,
        "an event failed to apply:\n{}",
        obol.output()
            .lines()
            .filter(|l| l.contains("event application failed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // obol's Stripe calls, by endpoint template (no ids).
    let stripe = "obol_stripe_requests_total";
    for endpoint in [
        "/v1/payment_intents",
        "/v1/payment_intents/{id}/capture",
        "/v1/refunds",
    ] {
        assert_eq!(
            d.of(
                stripe,
                &[
                    ("method", "POST"),
                    ("endpoint", endpoint),
                    ("outcome", "2xx")
                ]
            ),
            1.0,
            "POST {endpoint}"
        );
    }
    assert!(
        after
            .iter()
            .filter(|s| s.name.starts_with("obol_stripe_"))
            .all(|s| !s
                .labels
                .get("endpoint")
                .is_some_and(|e| e.as_str().unwrap().contains("pi_"))),
        "no id in a label"
    );
    assert!(
        d.of("obol_stripe_rate_limiter_wait_seconds_count", &[]) >= 3.0,
        "every attempt waited on the budget"
    );
    assert_eq!(
        d.of(
            "obol_notification_deliveries_total",
            &[("outcome", "retrying")]
        ),
        1.0
    );
    assert_eq!(
        d.of(
            "obol_notification_deliveries_total",
            &[("outcome", "succeeded")]
        ),
        1.0
    );
    assert_eq!(d.of("obol_emails_total", &[("outcome", "logged")]), 1.0);
    // Scrape-time gauges: the job queue has a series per kind and status.
    assert!(after.iter().any(|s| s.name == "obol_job_queue_jobs"
        && s.labels.get("kind") == Some(&json!("send_email"))
        && s.labels.get("status") == Some(&json!("dead"))));
    assert_eq!(value(&after, "obol_database_up", &[]), 1.0);
    assert_eq!(
        value(&after, "obol_inbox_lag_seconds", &[("status", "received")]),
        0.0
    );
}

#[tokio::test]
async fn a_configured_token_is_required_and_compared() {
    let token = "metrics-token-0123456789abcdef";
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_METRICS__TOKEN", token)
        .start()
        .await;
    for presented in [None, Some("metrics-token-wrong-0123456789")] {
        let (status, _, body) = scrape_with(&obol, presented).await;
        assert_eq!(status, 401, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "invalid_metrics_token", "{body}");
    }
    let (status, samples, _) = scrape_with(&obol, Some(token)).await;
    assert_eq!(status, 200);
    assert!(value(&samples, "obol_build_info", &[]) == 1.0);
    // The refusals are counted too, under the route's template.
    assert!(
        value(
            &samples,
            "obol_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ) >= 2.0
    );
    let (_, _, out) = obol.terminate();
    assert!(!out.contains(token), "the token reached the log");
}

#[tokio::test]
async fn without_a_token_metrics_are_open_and_unmatched_paths_share_one_label() {
    let obol = Obol::start(Backend::Sqlite).await;
    let (status, _) = obol.get("/v1/nothing/ord_01jd0000000000000000000000").await;
    assert_eq!(status, 404);
    let samples = scrape(&obol).await;
    assert!(
        value(
            &samples,
            "obol_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert!(
        samples.iter().all(|s| !s
            .labels
            .values()
            .any(|v| v.as_str().is_some_and(|v| v.contains("ord_")))),
        "no path reaches a label"
    );
}

/// Stores an event and claims it for an hour in one transaction, so the
/// running applier cannot take it: it waits, `received`, as under load.
async fn a_stuck_event(store: &obol::storage::Store, id: &str, age_s: i64) {
    use obol::storage::webhook_events::NewWebhookEvent;
    let then = obol::storage::now() - chrono::Duration::seconds(age_s);
    let mut tx = store.begin().await.unwrap();
    assert!(tx
        .conn()
        .insert_webhook_event(&NewWebhookEvent {
            stripe_event_id: id,
            account_id: "default",
            event_type: "payment_intent.succeeded",
            stripe_created: then.timestamp(),
            livemode: false,
            payload: "{}",
            source: "webhook",
            ignored: None,
            now: then,
        })
        .await
        .unwrap());
    let claimed = tx
        .conn()
        .claim_due_webhook_events(
            obol::storage::now(),
            obol::storage::now() + chrono::Duration::hours(1),
            100,
        )
        .await
        .unwrap();
    assert!(claimed.iter().any(|e| e.stripe_event_id == id));
    tx.commit().await.unwrap();
}

async fn an_inbox_that_falls_behind_shows_on_health_and_metrics(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_INBOX__LAG_WARNING_SECONDS", "60")
        .start()
        .await;
    let (status, health) = obol.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["inbox"]["status"], "ok", "{health}");
    assert_eq!(health["inbox"]["lag_warning_seconds"], 60);
    let store = obol.db.store().await;
    a_stuck_event(&store, "evt_behind", 120).await;
    let (status, health) = obol.get("/health").await;
    // Degraded, yet 200: the instance still stores and acknowledges.
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    let inbox = &health["inbox"];
    assert_eq!(inbox["status"], "degraded", "{health}");
    assert_eq!(inbox["received"], 1, "{health}");
    let lag = inbox["lag_seconds"].as_f64().unwrap();
    assert!((119.0..200.0).contains(&lag), "{lag}");
    assert!(
        inbox["message"]
            .as_str()
            .unwrap()
            .contains("inbox.lag_warning_seconds"),
        "{health}"
    );
    let samples = scrape(&obol).await;
    assert_eq!(
        value(
            &samples,
            "obol_inbox_unapplied_events",
            &[("status", "received")]
        ),
        1.0
    );
    let lag = value(
        &samples,
        "obol_inbox_lag_seconds",
        &[("status", "received")],
    );
    assert!((119.0..200.0).contains(&lag), "{lag}");
    // A young backlog is no alarm.
    let (_, events) = obol.get("/v1/webhook-events?status=received").await;
    let id = events["data"][0]["id"].as_str().unwrap().to_string();
    // Replayed, the operator's way: it is applied (an empty payload is
    // ignored with a reason) and the inbox is ok again.
    let (status, body) = obol
        .post(&format!("/v1/webhook-events/{id}/replay"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let health = eventually(&obol, "/health", |h| h["inbox"]["status"] == "ok").await;
    assert_eq!(health["inbox"]["received"], 0, "{health}");
    store.close().await;
}

async fn the_scrape_queries_read_only_what_waits(backend: Backend) {
    use obol::storage::webhook_events::NewWebhookEvent;
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let now = obol::storage::now();
    let mut h = store.acquire().await.unwrap();
    let mut conn = h.conn();
    assert_eq!(conn.inbox_backlog().await.unwrap(), vec![]);
    for (id, age, unreadable) in [
        ("evt_old", 300, None),
        ("evt_new", 10, None),
        ("evt_bad", 900, Some("unreadable")),
    ] {
        conn.insert_webhook_event(&NewWebhookEvent {
            stripe_event_id: id,
            account_id: "default",
            event_type: "payment_intent.succeeded",
            stripe_created: 1,
            livemode: false,
            payload: "{}",
            source: "webhook",
            ignored: unreadable,
            now: now - chrono::Duration::seconds(age),
        })
        .await
        .unwrap();
    }
    let backlog = conn.inbox_backlog().await.unwrap();
    assert_eq!(backlog.len(), 1, "{backlog:?}");
    assert_eq!(backlog[0].status, "received");
    assert_eq!(backlog[0].events, 2, "the ignored one does not wait");
    assert_eq!(
        backlog[0].oldest_received_at,
        Some(now - chrono::Duration::seconds(300))
    );
    assert_eq!(conn.job_queue().await.unwrap(), vec![]);
    drop(h);
    let mut tx = store.begin().await.unwrap();
    obol::email::enqueue(
        &mut tx.conn(),
        &AccountId::platform(),
        None,
        "cleo@example.com",
        &obol::email::Template::PaymentActionRequired {
            business: "Weingut Ana".into(),
            amount: 4999,
            currency: "eur".into(),
            description: "Wine club".into(),
            action_url: "https://club.example/pay/3ds/x".into(),
            expires_at: "2026-12-03T14:00:00Z".parse().unwrap(),
        },
        "queue",
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut h = store.acquire().await.unwrap();
    let queue = h.conn().job_queue().await.unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(
        (
            queue[0].kind.as_str(),
            queue[0].status.as_str(),
            queue[0].jobs
        ),
        ("send_email", "queued", 1)
    );
    assert!(queue[0].oldest_at.is_some());
    drop(h);
    store.close().await;
}
