//! `obol doctor`: checks what obol depends on and prints one line per
//! check, `ok|warn|fail  name: what, and what to fix`. Exit 0 when
//! everything is ok or only warned about, 1 when a check failed, 2 when
//! the configuration does not load.
//!
//! Read-only: it applies no migration and registers no webhook endpoint
//! (it says which command does). Every network check has a short timeout,
//! so a doctor run ends in seconds even when everything is down.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Config, StripeMode, STRIPE_API_BASE};
use crate::inbox::apply::{connect_event_types, platform_event_types};
use crate::ops::connect_webhooks::{
    duplicate_message, list_endpoints, webhook_url, EndpointKind, ObolEndpoints,
};
use crate::storage::Store;
use crate::stripe::{Params, RateLimit, RetryPolicy, StripeClient};

/// How long one network check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// The printed report; the worst level decides the exit code.
#[derive(Default)]
struct Report {
    worst: Option<Level>,
}

impl Report {
    fn line(&mut self, level: Level, name: &str, message: impl AsRef<str>) {
        println!("{:<4}  {name}: {}", level.as_str(), message.as_ref());
        self.worst = self.worst.max(Some(level));
    }
    fn ok(&mut self, name: &str, message: impl AsRef<str>) {
        self.line(Level::Ok, name, message);
    }
    fn warn(&mut self, name: &str, message: impl AsRef<str>) {
        self.line(Level::Warn, name, message);
    }
    fn fail(&mut self, name: &str, message: impl AsRef<str>) {
        self.line(Level::Fail, name, message);
    }
}

pub async fn run(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut report = Report::default();
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            report.fail(
                "config",
                format!("{e}; fix that key (obol config check shows the same)"),
            );
            return Ok(ExitCode::from(2));
        }
    };
    if let Err(e) = crate::context::Settings::from_config(&config) {
        report.fail("config", format!("{e:#}"));
        return Ok(ExitCode::from(2));
    }
    let mode = config.stripe_mode();
    report.ok(
        "config",
        format!(
            "loaded; storage {}, Stripe mode {}, {} API key(s), listen {}",
            config.backend()?.as_str(),
            mode_name(mode),
            config.api_keys.len(),
            config.listen
        ),
    );
    check_metrics(&mut report, &config);
    check_database(&mut report, &config).await;
    check_stripe(&mut report, &config).await;
    check_public_url(&mut report, &config).await;
    check_smtp(&mut report, &config).await;
    Ok(match report.worst {
        Some(Level::Fail) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn mode_name(mode: StripeMode) -> &'static str {
    match mode {
        StripeMode::Sandbox => "sandbox",
        StripeMode::Test => "test",
        StripeMode::Live => "live",
    }
}

fn check_metrics(report: &mut Report, config: &Config) {
    let loopback = config
        .listen_addr()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(true);
    match (&config.metrics.token, loopback) {
        (Some(_), _) => report.ok("metrics", "/metrics requires metrics.token"),
        (None, true) => report.ok(
            "metrics",
            "/metrics is open, on a loopback address only",
        ),
        (None, false) => report.warn(
            "metrics",
            format!(
                "/metrics is open to anyone who reaches {}; set metrics.token (OBOL_METRICS__TOKEN) unless only your network reaches it",
                config.listen
            ),
        ),
    }
}

async fn check_database(report: &mut Report, config: &Config) {
    let connected = tokio::time::timeout(CHECK_TIMEOUT * 2, Store::connect(config)).await;
    let store = match connected {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => {
            report.fail(
                "database",
                format!("cannot connect: {e:#}; check database_url (OBOL_DATABASE_URL)"),
            );
            return;
        }
        Err(_) => {
            report.fail(
                "database",
                "no answer within 10 s; check database_url and that the server runs",
            );
            return;
        }
    };
    let backend = store.backend().as_str();
    match store.migration_status().await {
        Ok(s) if !s.pending.is_empty() => report.warn(
            "database",
            format!(
                "{backend}: {} migration(s) applied, {} pending ({}); obol serve applies them at start, or run obol migrate",
                s.applied,
                s.pending.len(),
                s.pending
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Ok(s) if !s.unknown.is_empty() => report.warn(
            "database",
            format!(
                "{backend}: up to date, and {} migration(s) this obol does not know ({}): a newer obol ran on this database",
                s.unknown.len(),
                s.unknown
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Ok(s) => report.ok(
            "database",
            format!("{backend}: connected, {} migrations applied, none pending", s.applied),
        ),
        Err(e) => report.fail("database", format!("{backend}: cannot read migrations: {e}")),
    }
    store.close().await;
}

#[derive(Deserialize)]
struct Balance {
    livemode: bool,
}

async fn check_stripe(report: &mut Report, config: &Config) {
    let mode = config.stripe_mode();
    let Some(key) = config.stripe.secret_key.clone() else {
        report.ok(
            "stripe",
            "sandbox mode (no Stripe keys): obol serve runs its built-in sandbox; set stripe.secret_key and stripe.publishable_key for test or live",
        );
        report.ok(
            "webhooks",
            "sandbox mode: the built-in sandbox delivers to obol itself",
        );
        return;
    };
    let base = config
        .stripe
        .api_base
        .clone()
        .unwrap_or_else(|| STRIPE_API_BASE.to_string());
    let client = match StripeClient::new(
        &base,
        key,
        RateLimit::per_second(config.stripe_rate_limit()),
        RetryPolicy {
            max_attempts: 1,
            request_timeout: CHECK_TIMEOUT,
            ..RetryPolicy::default()
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            report.fail("stripe", format!("cannot build the client: {e}"));
            return;
        }
    };
    let account: serde_json::Value = match client.get("/v1/account", &Params::new()).await {
        Ok(a) => a,
        Err(e) => {
            report.fail(
                "stripe",
                format!("{base} refused or did not answer GET /v1/account: {e}; check stripe.secret_key (and stripe.api_base)"),
            );
            return;
        }
    };
    let id = account["id"].as_str().unwrap_or("(no id)").to_string();
    let name = crate::stripe::account_name(&account).unwrap_or_else(|| "(no name)".into());
    let live_key = mode == StripeMode::Live;
    match client.get::<Balance>("/v1/balance", &Params::new()).await {
        Ok(b) if b.livemode != live_key => report.fail(
            "stripe",
            format!(
                "account {} ({name}): Stripe answers in {} mode to a {} key; use keys of one mode",
                id,
                if b.livemode { "live" } else { "test" },
                mode_name(mode)
            ),
        ),
        Ok(_) => report.ok(
            "stripe",
            format!(
                "account {} ({name}), {} mode, keys accepted",
                id,
                mode_name(mode)
            ),
        ),
        Err(e) => report.warn(
            "stripe",
            format!(
                "account {id} ({name}): the mode could not be confirmed (GET /v1/balance: {e})"
            ),
        ),
    }
    check_webhook_endpoints(report, config, &client).await;
}

async fn check_webhook_endpoints(report: &mut Report, config: &Config, client: &StripeClient) {
    let Some(public) = &config.public_url else {
        report.fail(
            "webhooks",
            "public_url (OBOL_PUBLIC_URL) is not set, so Stripe cannot deliver events to obol; set it, then run obol stripe register-webhook",
        );
        return;
    };
    let url = webhook_url(public);
    let endpoints = match list_endpoints(client).await {
        Ok(e) => e,
        Err(e) => {
            report.fail(
                "webhooks",
                format!("cannot list the Stripe webhook endpoints: {e}"),
            );
            return;
        }
    };
    let ours = ObolEndpoints::of(&endpoints, &url);
    let missing_of = |id: &str, wanted: Vec<&'static str>| -> Vec<&'static str> {
        endpoints
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.missing(wanted.into_iter()))
            .unwrap_or_default()
    };
    match ours.platform.as_slice() {
        [] => report.fail(
            "webhooks",
            format!(
                "no Stripe webhook endpoint delivers to {url}; run obol stripe register-webhook"
            ),
        ),
        [one] => {
            let missing = missing_of(one, platform_event_types().collect());
            if !missing.is_empty() {
                report.fail(
                    "webhooks",
                    format!(
                        "endpoint {one} at {url} does not send {} event type(s) obol handles: {}; add them in the Stripe dashboard (or delete it and run obol stripe register-webhook)",
                        missing.len(),
                        missing.join(", ")
                    ),
                );
            } else if config.stripe.webhook_secrets.is_empty() {
                report.fail(
                    "webhooks",
                    format!("endpoint {one} at {url} is registered but stripe.webhook_secrets is empty, so obol refuses its deliveries; copy its signing secret into OBOL_STRIPE__WEBHOOK_SECRETS"),
                );
            } else {
                report.ok(
                    "webhooks",
                    format!("endpoint {one} delivers every handled event type to {url}"),
                );
            }
        }
        several => report.fail(
            "webhooks",
            duplicate_message(EndpointKind::Platform, several, &url).unwrap_or_default(),
        ),
    }
    match ours.connect.as_slice() {
        [] => {}
        [one] => {
            let missing = missing_of(one, connect_event_types().collect());
            if missing.is_empty() {
                report.ok("webhooks", format!("Connect endpoint {one} at {url}"));
            } else {
                report.fail(
                    "webhooks",
                    format!(
                        "Connect endpoint {one} does not send {} event type(s) obol handles: {}",
                        missing.len(),
                        missing.join(", ")
                    ),
                );
            }
        }
        several => report.fail(
            "webhooks",
            duplicate_message(EndpointKind::Connect, several, &url).unwrap_or_default(),
        ),
    }
}

/// What `GET /health` says about the obol answering it.
#[derive(Deserialize)]
struct Health {
    version: String,
    publishable_key: String,
}

async fn check_public_url(report: &mut Report, config: &Config) {
    let live = config.stripe_mode() == StripeMode::Live;
    let Some(public) = &config.public_url else {
        if live {
            report.fail(
                "public_url",
                "not set: with live keys Stripe, hosted pages and e-mailed links need obol's public https URL; set public_url (OBOL_PUBLIC_URL)",
            );
        } else {
            report.warn(
                "public_url",
                format!("not set: links obol hands out use http://{}; set public_url (OBOL_PUBLIC_URL) to where customers and Stripe reach obol", config.listen),
            );
        }
        return;
    };
    if live && !public.starts_with("https://") {
        report.fail(
            "public_url",
            format!("{public} is not https: with live keys card data pages and webhooks need TLS"),
        );
        return;
    }
    let health = format!("{}/health", public.trim_end_matches('/'));
    let answer = async {
        let http = reqwest::Client::builder()
            .timeout(CHECK_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let response = http
            .get(&health)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        let body: Health = response
            .json()
            .await
            .map_err(|_| format!("answered {status} without obol's /health body"))?;
        Ok::<_, String>(body)
    }
    .await;
    let expected_pk = config
        .stripe
        .publishable_key
        .clone()
        .unwrap_or_else(|| crate::SANDBOX_PUBLISHABLE_KEY.to_string());
    match answer {
        Ok(h) if h.publishable_key == expected_pk => report.ok(
            "public_url",
            format!("{health} answers: obol {} with this configuration's publishable key", h.version),
        ),
        Ok(h) => report.warn(
            "public_url",
            format!(
                "{health} answers, but as another obol (version {}, another publishable key); check public_url points at this instance",
                h.version
            ),
        ),
        Err(e) => report.warn(
            "public_url",
            format!("{health} is not reachable from here ({e}); fine if obol serve is not running yet, else Stripe cannot reach it either"),
        ),
    }
}

async fn check_smtp(report: &mut Report, config: &Config) {
    let mailer = match crate::email::Mailer::from_config(config) {
        Ok(m) => m,
        Err(e) => {
            report.fail("smtp", format!("{e:#}"));
            return;
        }
    };
    match tokio::time::timeout(CHECK_TIMEOUT * 2, mailer.probe()).await {
        Ok(None) => report.ok(
            "smtp",
            "not configured: member e-mails are kept in the outbox (status logged), not sent; set email.smtp_url and email.from to send them",
        ),
        Ok(Some((server, Ok(())))) => {
            report.ok("smtp", format!("{server} answered EHLO and NOOP"))
        }
        Ok(Some((server, Err(e)))) => report.fail(
            "smtp",
            format!("{server}: {e}; check email.smtp_url (host, port, TLS, credentials)"),
        ),
        Err(_) => report.fail("smtp", "no answer within 10 s; check email.smtp_url"),
    }
}
