//! Records a paid invoice in the accounting systems the operator configured
//! (`accounting:` in the configuration): Xero, QuickBooks Online and a
//! generic webhook signed per Standard Webhooks.
//!
//! `Accounting::deliver` sends one payment to one target and says whether a
//! failure may succeed later. It keeps no state: the durable sync job calls
//! it once per target, retries on `SyncError::retryable`, and passes a key
//! that is the same on every retry, which each target deduplicates on (Xero
//! `Idempotency-Key`, QuickBooks `requestid`, Standard Webhooks
//! `webhook-id`). Nothing here reads or writes storage.
//!
//! Amounts leave as JSON numbers in major units written digit by digit from
//! the integer minor units (`RawValue`), never through a float. Errors name
//! the target, the HTTP status and an excerpt of the answer; configured
//! tokens and secrets are scrubbed from them, and URLs (a webhook URL may
//! carry a token of its own) are never included.

mod quickbooks;
mod webhook;
mod xero;

#[cfg(test)]
mod tests;

use std::time::Duration;

use anyhow::Context;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::money::{Currency, Money};

/// Longest answer excerpt an error message carries, in characters.
const EXCERPT_CHARS: usize = 200;

/// An accounting system a payment is recorded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Xero,
    Quickbooks,
    Webhook,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Xero, Target::Quickbooks, Target::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Xero => "xero",
            Target::Quickbooks => "quickbooks",
            Target::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What is synced: one payment of one invoice. Money is integer minor units
/// plus the currency, never floats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvoicePayment {
    /// `inv_…`.
    pub invoice_id: String,
    /// `INV-…`.
    pub number: String,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    /// Lowercase ISO 4217 (`usd`, `jpy`, `kwd`).
    pub currency: String,
    /// `YYYY-MM-DD`.
    pub issue_date: String,
    /// `YYYY-MM-DD`.
    pub due_date: String,
    /// The invoice's lines; a card fee passed on to the customer is one of
    /// them ("Card processing fee").
    pub lines: Vec<Line>,
    /// Minor units.
    pub total: i64,
    /// The payment, minor units.
    pub amount: i64,
    /// The fee part of `amount` (0 without fee passthrough).
    pub fee_amount: i64,
    pub stripe_payment_intent_id: String,
    /// `pay_…`.
    pub payment_id: String,
    pub paid_at: chrono::DateTime<chrono::Utc>,
}

/// One invoice line; amounts in minor units.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    pub description: String,
    pub unit_amount: i64,
    pub quantity: i64,
    /// `unit_amount × quantity`.
    pub amount: i64,
}

/// A target's answer to a successful delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Xero's PaymentID, QuickBooks' SalesReceipt Id; None for the webhook,
    /// or when a 2xx answer could not be read.
    pub external_id: Option<String>,
}

/// Why a delivery failed. Its message names the target and, for an HTTP
/// answer, the status and an excerpt of the body; never a secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SyncError {
    /// Connection errors, timeouts, 408, 409, 429 and 5xx: the same request
    /// may succeed later. Other answers need a person (credentials, data).
    pub retryable: bool,
    pub message: String,
    /// The target's `Retry-After` (in seconds), when it sent one.
    pub retry_after: Option<Duration>,
}

impl SyncError {
    fn permanent(message: impl Into<String>) -> SyncError {
        SyncError {
            retryable: false,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The configured targets and one HTTP client for all of them.
#[derive(Debug)]
pub struct Accounting {
    http: reqwest::Client,
    xero: Option<xero::Xero>,
    quickbooks: Option<quickbooks::Quickbooks>,
    webhook: Option<webhook::Webhook>,
}

impl Accounting {
    /// The targets of `config.accounting` (validated by `Config::validate`).
    pub fn from_config(config: &Config) -> anyhow::Result<Accounting> {
        let a = &config.accounting;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(a.timeout_seconds))
            .user_agent(concat!("obol-accounting/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the request to a URL nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the accounting HTTP client")?;
        let xero = a.xero.as_ref().map(xero::Xero::from_settings).transpose()?;
        let quickbooks = a
            .quickbooks
            .as_ref()
            .map(quickbooks::Quickbooks::from_settings)
            .transpose()?;
        let webhook = match (&a.webhook_url, &a.webhook_secret) {
            (Some(url), Some(secret)) => Some(webhook::Webhook::new(url, secret.clone())?),
            (Some(_), None) => anyhow::bail!("accounting.webhook_secret is required"),
            (None, _) => None,
        };
        Ok(Accounting {
            http,
            xero,
            quickbooks,
            webhook,
        })
    }

    /// The targets that are configured, in the order Xero, QuickBooks, webhook.
    pub fn targets(&self) -> Vec<Target> {
        Target::ALL
            .into_iter()
            .filter(|t| match t {
                Target::Xero => self.xero.is_some(),
                Target::Quickbooks => self.quickbooks.is_some(),
                Target::Webhook => self.webhook.is_some(),
            })
            .collect()
    }

    /// Sends one payment to one target. `idempotency_key` is stable across
    /// retries of the same sync (e.g. `obol-sync_01J…`).
    #[tracing::instrument(skip_all, fields(target = target.as_str(), invoice_id = %p.invoice_id))]
    pub async fn deliver(
        &self,
        target: Target,
        idempotency_key: &str,
        p: &InvoicePayment,
    ) -> Result<Delivered, SyncError> {
        let result = match target {
            Target::Xero => match &self.xero {
                Some(x) => x.deliver(self, idempotency_key, p).await,
                None => Err(SyncError::permanent("not configured")),
            },
            Target::Quickbooks => match &self.quickbooks {
                Some(q) => q.deliver(self, idempotency_key, p).await,
                None => Err(SyncError::permanent("not configured")),
            },
            Target::Webhook => match &self.webhook {
                Some(w) => w.deliver(self, idempotency_key, p).await,
                None => Err(SyncError::permanent("not configured")),
            },
        };
        result.map_err(|mut e| {
            e.message = self.scrub(&format!("{}: {}", target.as_str(), e.message));
            e
        })
    }

    /// Sends `request`; the answer's body on 2xx, else the classified failure.
    /// `what` names the call in messages ("PUT Invoices").
    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<String, SyncError> {
        let answer = request.send().await.map_err(|e| transport_error(what, e))?;
        let status = answer.status();
        let retry_after = retry_after(answer.headers());
        let body = answer.text().await.map_err(|e| transport_error(what, e))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(SyncError {
            retryable: retryable_status(status),
            message: format!("{what} answered {status}: {}", excerpt(&self.scrub(&body))),
            retry_after,
        })
    }

    /// Reads the id out of a 2xx answer; an answer that does not parse is
    /// still a success (the target took the request), logged.
    fn answered_id<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        body: &str,
        id: impl FnOnce(T) -> Option<String>,
    ) -> Option<String> {
        let found = serde_json::from_str::<T>(body).ok().and_then(id);
        if found.is_none() {
            tracing::warn!(
                call = what,
                answer = %excerpt(&self.scrub(body)),
                "a 2xx answer without the expected id"
            );
        }
        found
    }

    /// `text` without any configured token or secret.
    fn scrub(&self, text: &str) -> String {
        let secrets = [
            self.xero.as_ref().map(|x| &x.access_token),
            self.quickbooks.as_ref().map(|q| &q.access_token),
            self.webhook.as_ref().map(|w| &w.secret),
        ];
        let mut out = text.to_string();
        for secret in secrets.into_iter().flatten() {
            let s = secret.expose_secret();
            if !s.is_empty() && out.contains(s) {
                out = out.replace(s, "[redacted]");
            }
        }
        out
    }
}

/// 408, 409 (Xero, while an idempotent request with the same key is still
/// in flight), 429 and 5xx may pass later; every other answer stays the same
/// until someone fixes a credential or the data.
fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
}

/// A failure before an answer: the connection, a timeout, the body cut off.
/// The request may or may not have landed; the retry carries the same key.
fn transport_error(what: &str, e: reqwest::Error) -> SyncError {
    // Without the URL: a webhook URL may hold a token.
    let e = e.without_url();
    let mut message = format!("{what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    SyncError {
        // A request that could not even be built fails the same way again.
        retryable: !e.is_builder(),
        message,
        retry_after: None,
    }
}

/// `Retry-After` in seconds (the form Xero and QuickBooks send).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// At most `EXCERPT_CHARS` characters of `body`, whitespace collapsed.
fn excerpt(body: &str) -> String {
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "(empty body)".to_string();
    }
    match flat.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// The payment's currency, refused for good when unknown: no retry fixes it.
fn currency(p: &InvoicePayment) -> Result<Currency, SyncError> {
    Currency::parse(&p.currency).map_err(|e| SyncError::permanent(format!("invoice data: {e}")))
}

/// `minor` as a JSON number in major units: `12.34` for 1234 usd, `500` for
/// 500 jpy, `1.230` for 1230 kwd; a negative line (a discount) keeps its sign.
fn decimal(minor: i64, currency: Currency) -> Result<Box<RawValue>, SyncError> {
    let invalid = |e: String| SyncError::permanent(format!("invoice data: {e}"));
    let magnitude = minor
        .checked_abs()
        .ok_or_else(|| invalid(format!("amount {minor} is out of range")))?;
    let digits = Money::balance(magnitude, currency)
        .map_err(|e| invalid(e.to_string()))?
        .format_decimal();
    let text = if minor < 0 {
        format!("-{digits}")
    } else {
        digits
    };
    RawValue::from_string(text).map_err(|e| invalid(e.to_string()))
}

/// The date of `paid_at` (UTC), `YYYY-MM-DD`.
fn paid_date(p: &InvoicePayment) -> String {
    p.paid_at.date_naive().format("%Y-%m-%d").to_string()
}

/// `key` if it fits in `max` characters, else a stable digest of it that
/// does: the same sync sends the same key on every retry either way.
fn bounded_key(key: &str, max: usize) -> String {
    if key.len() <= max {
        return key.to_string();
    }
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let room = max.saturating_sub("obol-".len()).min(digest.len());
    format!("obol-{}", &digest[..room])
}

/// `base` with `segments` appended as path segments, each percent-encoded.
fn endpoint(base: &url::Url, segments: &[&str]) -> Result<url::Url, SyncError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| SyncError::permanent("the base URL cannot take a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Parses a configured base URL (checked by `Config::validate`).
fn base_url(key: &str, value: &str) -> anyhow::Result<url::Url> {
    url::Url::parse(value).with_context(|| format!("{key} is not a URL"))
}

/// Settings values `Config::validate` requires; an error here means the
/// configuration was built without validation.
fn required<T: Clone>(key: &str, value: &Option<T>) -> anyhow::Result<T> {
    value.clone().with_context(|| format!("{key} is required"))
}
