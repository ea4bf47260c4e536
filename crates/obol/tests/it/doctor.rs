//! `obol doctor` against real things: a SQLite file before and after
//! migrating, the sandbox as the Stripe account (its webhook endpoints
//! missing, then registered, then with their secret), a public URL that
//! answers as this obol or not at all, an SMTP server that is down and one
//! that is up, and a bad configuration.

use crate::emails::{free_port, SmtpSink};
use crate::helpers::{run_obol, Backend, Obol};

/// The line of check `name`, e.g. `fail  webhooks: …`.
fn line<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter(|l| {
            l.split_once("  ")
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(&format!("{name}:")))
        })
        .collect()
}

fn level<'a>(stdout: &'a str, name: &str) -> &'a str {
    let lines = line(stdout, name);
    assert!(!lines.is_empty(), "no {name} line:\n{stdout}");
    // The worst of the check's lines.
    if lines.iter().any(|l| l.starts_with("fail")) {
        "fail"
    } else if lines.iter().any(|l| l.starts_with("warn")) {
        "warn"
    } else {
        "ok"
    }
}

#[test]
fn a_fresh_database_has_pending_migrations_until_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/doctor.db?mode=rwc", dir.path().display());
    let env = [("OBOL_DATABASE_URL", db.as_str())];
    let (code, out, err) = run_obol(&["doctor"], &env, dir.path());
    assert_eq!(code, 0, "warnings only:\n{out}{err}");
    assert_eq!(level(&out, "config"), "ok", "{out}");
    assert_eq!(level(&out, "database"), "warn", "{out}");
    assert!(
        out.contains("pending") && out.contains("obol migrate"),
        "{out}"
    );
    assert_eq!(level(&out, "stripe"), "ok", "sandbox mode:\n{out}");
    assert!(out.contains("sandbox mode"), "{out}");
    assert_eq!(level(&out, "smtp"), "ok", "{out}");
    assert_eq!(level(&out, "public_url"), "warn", "{out}");
    let (code, _, err) = run_obol(&["migrate"], &env, dir.path());
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run_obol(&["doctor"], &env, dir.path());
    assert_eq!(code, 0, "{out}");
    assert_eq!(level(&out, "database"), "ok", "{out}");
    assert!(out.contains("none pending"), "{out}");
    // Every line has the documented shape.
    for l in out.lines() {
        let (lvl, rest) = l.split_once("  ").unwrap();
        assert!(matches!(lvl.trim(), "ok" | "warn" | "fail"), "{l}");
        assert!(rest.contains(": "), "{l}");
    }
}

#[test]
fn a_bad_configuration_fails_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_obol(
        &["doctor"],
        &[("OBOL_INBOX__LAG_WARNING_SECONDS", "0")],
        dir.path(),
    );
    assert_eq!(code, 2, "{out}");
    assert_eq!(level(&out, "config"), "fail", "{out}");
    assert!(out.contains("inbox.lag_warning_seconds"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_answers_as_this_obol() {
    let obol = Obol::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("OBOL_DATABASE_URL", obol.db.url.as_str()),
        ("OBOL_PUBLIC_URL", obol.base_url.as_str()),
    ];
    let (code, out, err) = run_obol(&["doctor"], &env, dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(level(&out, "public_url"), "ok", "{out}");
    assert!(out.contains("answers: obol"), "{out}");
    assert_eq!(level(&out, "database"), "ok", "obol serve migrated:\n{out}");
}

// Several threads: the sandbox serves while the doctor process runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_endpoints_and_smtp_are_checked_and_what_to_fix_is_said() {
    let sandbox = obol_sandbox::Sandbox::bind(
        "127.0.0.1:0".parse().unwrap(),
        obol_sandbox::SandboxConfig::default(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", sandbox.local_addr());
    tokio::spawn(sandbox.run_until(std::future::pending()));
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/doctor.db?mode=rwc", dir.path().display());
    let key = crate::helpers::random_api_key();
    let smtp_port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let public = format!("http://127.0.0.1:{}", free_port());
    let mut env = vec![
        ("OBOL_DATABASE_URL", db.clone()),
        ("OBOL_API_KEYS", key.clone()),
        ("OBOL_STRIPE__SECRET_KEY", "sk_test_obol_doctor".to_string()),
        (
            "OBOL_STRIPE__PUBLISHABLE_KEY",
            "pk_test_obol_doctor".to_string(),
        ),
        ("OBOL_STRIPE__API_BASE", base.clone()),
        ("OBOL_PUBLIC_URL", public.clone()),
        ("OBOL_EMAIL__SMTP_URL", smtp_url.clone()),
        (
            "OBOL_EMAIL__FROM",
            "Club <club@weingut.example>".to_string(),
        ),
    ];
    let run = |env: &[(&str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_obol(&["doctor"], &env, dir.path())
    };

    // Nothing registered, nobody at the public URL, SMTP down.
    let (code, out, err) = run(&env);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(level(&out, "stripe"), "ok", "{out}");
    assert!(out.contains("test mode, keys accepted"), "{out}");
    assert_eq!(level(&out, "webhooks"), "fail", "{out}");
    assert!(
        out.contains("no Stripe webhook endpoint delivers to")
            && out.contains("obol stripe register-webhook"),
        "{out}"
    );
    assert_eq!(level(&out, "public_url"), "warn", "{out}");
    assert!(out.contains("not reachable"), "{out}");
    assert_eq!(level(&out, "smtp"), "fail", "{out}");
    assert!(out.contains(&format!("127.0.0.1:{smtp_port}")), "{out}");
    assert!(!out.contains("sk_test_obol_doctor"), "no key in the report");

    // Registered, but its signing secret is not configured.
    let plain: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, reg, err) = run_obol(&["stripe", "register-webhook"], &plain, dir.path());
    assert_eq!(code, 0, "{reg}{err}");
    let secret = reg
        .lines()
        .find_map(|l| l.split("signing secret (shown once by Stripe): ").nth(1))
        .unwrap()
        .trim()
        .to_string();
    let _smtp = SmtpSink::start(smtp_port, &[]);
    let (code, out, _) = run(&env);
    assert_eq!(code, 1, "{out}");
    assert_eq!(level(&out, "webhooks"), "fail", "{out}");
    assert!(out.contains("stripe.webhook_secrets is empty"), "{out}");
    assert_eq!(level(&out, "smtp"), "ok", "{out}");
    assert!(out.contains("answered EHLO and NOOP"), "{out}");

    // With its secret: nothing fails.
    env.push(("OBOL_STRIPE__WEBHOOK_SECRETS", secret));
    let (code, out, _) = run(&env);
    assert_eq!(code, 0, "{out}");
    assert_eq!(level(&out, "webhooks"), "ok", "{out}");

    // A second endpoint to the same URL is a duplicate to delete.
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/webhook_endpoints"))
        .bearer_auth("sk_test_obol_doctor")
        .form(&[
            ("url", format!("{public}/webhooks/stripe")),
            ("enabled_events[]", "*".to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(created["id"].as_str().is_some(), "{created}");
    let (code, out, _) = run(&env);
    assert_eq!(code, 1, "{out}");
    assert_eq!(level(&out, "webhooks"), "fail", "{out}");
    assert!(
        out.contains(created["id"].as_str().unwrap()),
        "the duplicate is named:\n{out}"
    );
}
