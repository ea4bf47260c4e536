//! Member e-mails end to end: a real SMTP server (`aiosmtpd`, from the
//! conformance venv) receives what a running obol sends.
//!
//! No public route queues an e-mail yet (the charge runs will), so each
//! test does what such a use case does: opens the database and calls
//! `obol::email::enqueue` inside a transaction it commits. The running
//! obol's job runner finds the `send_email` job on its next poll.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use obol::context::AccountId;
use obol::email::Template;
use serde_json::Value;

use crate::helpers::{Backend, Obol};

crate::on_both_backends!(
    an_email_is_sent_once_as_text_and_html,
    an_email_waits_for_the_smtp_server_and_is_sent_when_it_is_up,
    a_permanent_refusal_fails_the_email_at_once,
    without_smtp_an_email_is_logged_and_listed,
);

const FROM: &str = "Weingut Ana <club@weingut.example>";

/// `conformance/python/smtp_sink.py`: each message it accepts is one JSON
/// line in `out`.
pub(crate) struct SmtpSink {
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    pub(crate) fn start(port: u16, extra: &[&str]) -> SmtpSink {
        let python = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../conformance/.venv/bin/python"
        );
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../conformance/python/smtp_sink.py"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("messages.jsonl");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(&out)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the conformance venv exists (conformance/run.sh --setup creates it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("listening on"), "smtp_sink: {line:?}");
        SmtpSink {
            child,
            out,
            _dir: dir,
        }
    }

    pub(crate) fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (yet).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_obol(backend: Backend, smtp_port: Option<u16>) -> Obol {
    let mut b = Obol::builder(backend)
        .env("OBOL_JOBS__RETRY_UNIT_MS", "20")
        .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
        .env("OBOL_EMAIL__BUSINESS_NAME", "Weingut Ana");
    if let Some(port) = smtp_port {
        b = b
            .env("OBOL_EMAIL__SMTP_URL", &format!("smtp://127.0.0.1:{port}"))
            .env("OBOL_EMAIL__FROM", FROM);
    }
    b.start().await
}

fn template(description: &str) -> Template {
    Template::PaymentActionRequired {
        business: "Weingut Ana".into(),
        amount: 10330,
        currency: "usd".into(),
        description: description.into(),
        action_url: "https://club.weingut.example/pay/3ds/tok_1".into(),
        expires_at: "2026-12-03T14:00:00Z".parse().unwrap(),
    }
}

/// What a use case does: queue the e-mail in a transaction and commit.
/// `None`: an e-mail with this key existed.
async fn enqueue(
    obol: &Obol,
    customer: Option<&str>,
    to: &str,
    description: &str,
    key: &str,
) -> Option<String> {
    let store = obol.db.store().await;
    let mut tx = store.begin().await.unwrap();
    let row = obol::email::enqueue(
        &mut tx.conn(),
        &AccountId::platform(),
        customer,
        to,
        &template(description),
        key,
        obol::storage::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store.close().await;
    row.map(|r| r.id)
}

/// Polls `GET /v1/jobs?status=` until a `send_email` job there meets
/// `done`, for up to 20 s (the runner records a job's outcome just after
/// its handler wrote the e-mail's).
async fn send_job_until(obol: &Obol, status: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, jobs) = obol.get(&format!("/v1/jobs?status={status}")).await;
        assert_eq!(code, 200, "{jobs}");
        let found = jobs["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["kind"] == "send_email" && done(j))
            .cloned();
        if let Some(job) = found {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a {status} send_email job: {jobs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `GET /v1/emails/{id}` until `done`, for up to 20 s.
async fn email_until(obol: &Obol, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, email) = obol.get(&format!("/v1/emails/{id}")).await;
        assert_eq!(status, 200, "{email}");
        if done(&email) {
            return email;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {email}\n{}",
            obol.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_email_is_sent_once_as_text_and_html(backend: Backend) {
    let port = free_port();
    let sink = SmtpSink::start(port, &[]);
    let obol = start_obol(backend, Some(port)).await;
    let customer = obol.create_customer("ana").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = "charge_run_item:cri_1:requires_action";
    let description = "Wine club <script>alert(1)</script>";
    let id = enqueue(&obol, Some(&customer), "ana@example.com", description, key)
        .await
        .expect("queued");
    assert!(id.starts_with("eml_"), "{id}");
    // The same logical e-mail again: nothing is queued.
    assert_eq!(
        enqueue(&obol, Some(&customer), "ana@example.com", description, key).await,
        None
    );

    let email = email_until(&obol, &id, "the e-mail to be sent", |e| {
        e["status"] == "sent"
    })
    .await;
    assert_eq!(email["attempts"], 1, "{email}");
    assert_eq!(email["to"], "ana@example.com");
    assert_eq!(email["customer_id"], customer.as_str());
    assert_eq!(email["dedupe_key"], key);
    assert_eq!(email["template"], "payment_action_required");
    assert!(email["sent_at"].is_string(), "{email}");
    assert!(email["html_body"]
        .as_str()
        .unwrap()
        .contains("&lt;script&gt;"));

    let got = sink.messages();
    assert_eq!(got.len(), 1, "one message per dedupe key: {got:?}");
    let m = &got[0];
    assert_eq!(m["from"], FROM, "{m}");
    assert_eq!(m["mail_from"], "club@weingut.example", "{m}");
    assert_eq!(m["to"], "ana@example.com", "{m}");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["ana@example.com"]));
    assert_eq!(
        m["subject"],
        "Weingut Ana: please confirm your payment of 103.30 USD"
    );
    assert_eq!(m["message_id"], format!("<{id}@weingut.example>"));
    assert_eq!(m["content_type"], "multipart/alternative", "{m}");
    let parts = m["parts"].as_array().unwrap();
    let part = |t: &str| {
        parts
            .iter()
            .find(|p| p["content_type"] == t)
            .unwrap_or_else(|| panic!("no {t} part: {m}"))["body"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (text, html) = (part("text/plain"), part("text/html"));
    for body in [&text, &html] {
        assert!(body.contains("Weingut Ana"), "{body}");
        assert!(body.contains("103.30 USD"), "{body}");
        assert!(
            body.contains("https://club.weingut.example/pay/3ds/tok_1"),
            "{body}"
        );
    }
    assert!(text.contains("<script>alert(1)</script>"), "{text}");
    assert!(!html.contains("<script>"), "{html}");

    // Listed, filtered by status and customer; one job sent it.
    let (status, page) = obol
        .get(&format!("/v1/emails?status=sent&customer_id={customer}"))
        .await;
    assert_eq!(status, 200, "{page}");
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{page}");
    assert_eq!(data[0]["id"], id.as_str());
    assert!(data[0].get("text_body").is_none(), "lists carry no bodies");
    let (_, page) = obol.get("/v1/emails?status=queued").await;
    assert_eq!(page["data"], serde_json::json!([]), "{page}");
    let (status, body) = obol.get("/v1/emails?status=lost").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_query");
    let (status, body) = obol.get("/v1/emails?customer_id=ana").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_query");
    let (status, body) = obol.get("/v1/emails/eml_01jd8x3qzv5m2c7e9f0g1h2j3k").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "email_not_found");
    let job = send_job_until(&obol, "succeeded", |j| {
        j["payload"]["email_id"] == id.as_str()
    })
    .await;
    assert_eq!(job["attempts"], 1, "{job}");
    let (_, jobs) = obol.get("/v1/jobs").await;
    let sends = jobs["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "send_email")
        .count();
    assert_eq!(sends, 1, "one job per e-mail: {jobs}");
    assert_eq!(sink.messages().len(), 1);
}

async fn an_email_waits_for_the_smtp_server_and_is_sent_when_it_is_up(backend: Backend) {
    let port = free_port();
    let obol = start_obol(backend, Some(port)).await;
    let id = enqueue(&obol, None, "ben@example.com", "Wine club", "down-first")
        .await
        .unwrap();
    let email = email_until(&obol, &id, "a failed attempt", |e| {
        e["attempts"].as_i64() >= Some(1)
    })
    .await;
    assert_eq!(email["status"], "queued", "{email}");
    assert!(email["last_error"].is_string(), "{email}");

    let sink = SmtpSink::start(port, &[]);
    let email = email_until(&obol, &id, "the retry to send it", |e| {
        e["status"] == "sent"
    })
    .await;
    assert!(email["attempts"].as_i64().unwrap() >= 2, "{email}");
    assert_eq!(email["last_error"], Value::Null);
    let got = sink.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["to"], "ben@example.com");
}

async fn a_permanent_refusal_fails_the_email_at_once(backend: Backend) {
    let port = free_port();
    let sink = SmtpSink::start(port, &["--reject-rcpt", "gone@example.com"]);
    let obol = start_obol(backend, Some(port)).await;
    let id = enqueue(&obol, None, "gone@example.com", "Wine club", "refused")
        .await
        .unwrap();
    let email = email_until(&obol, &id, "the e-mail to fail", |e| {
        e["status"] == "failed"
    })
    .await;
    assert_eq!(email["attempts"], 1, "{email}");
    assert!(
        email["last_error"].as_str().unwrap().contains("550"),
        "{email}"
    );
    let job = send_job_until(&obol, "dead", |j| j["payload"]["email_id"] == id.as_str()).await;
    assert_eq!(job["attempts"], 1, "a 5xx is not retried: {job}");
    assert!(sink.messages().is_empty());
}

async fn without_smtp_an_email_is_logged_and_listed(backend: Backend) {
    let obol = start_obol(backend, None).await;
    let id = enqueue(&obol, None, "cleo@example.com", "Wine club", "logged")
        .await
        .unwrap();
    let email = email_until(&obol, &id, "the e-mail to be logged", |e| {
        e["status"] == "logged"
    })
    .await;
    assert_eq!(email["sent_at"], Value::Null);
    assert!(email["text_body"]
        .as_str()
        .unwrap()
        .contains("https://club.weingut.example/pay/3ds/tok_1"));
    let (status, page) = obol.get("/v1/emails?status=logged").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"][0]["id"], id.as_str(), "{page}");
    let output = obol.output();
    assert!(output.contains(&id), "the e-mail is logged: {output}");
    assert!(
        !output.contains("If you do not confirm it"),
        "the body is not logged: {output}"
    );
}
