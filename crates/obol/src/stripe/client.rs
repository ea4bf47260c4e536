//! obol's Stripe client: one thin HTTP client for Stripe and for the
//! sandbox (the base URL is configuration).
//!
//! Why hand-written over async-stripe: obol calls a few dozen endpoints,
//! needs control of every retry, idempotency key and timeout, and must
//! build in minutes on two cores; the generated SDK covers the whole API
//! and its types would decide which fields obol may read.
//!
//! Rules it enforces for every caller:
//! - every POST carries an idempotency key derived from the business
//!   operation (`IdempotencyKey::for_op`), so a retry, even from a restarted
//!   process, can never charge twice;
//! - retries with exponential backoff and full jitter on network errors,
//!   timeouts, 5xx and 429, honouring `Stripe-Should-Retry`; a 4xx decision
//!   (a decline, a bad parameter) is never retried;
//! - one pacer per process (`RateLimit`), shared by all callers and, through
//!   the database, with the other obol processes (`stripe::budget`); a 429
//!   pauses the whole process, not only the request that got it;
//! - `Stripe-Version` pinned; the secret key never reaches a log or error;
//! - a client for a connected account (`for_account`) sends
//!   `Stripe-Account: acct_…` on every request with the platform's key (as
//!   Stripe Connect does for Standard accounts), paces on the account's own
//!   `RateLimit`, and scopes every idempotency key to the account
//!   (`IdempotencyKey::scoped`): Stripe keeps keys per account already,
//!   but obol's keys name business operations, and two organisations'
//!   identical operations must never share one anywhere.

use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use super::budget::RateLimit;
use super::STRIPE_VERSION;

/// Form parameters in Stripe's bracket notation, in insertion order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// `set("metadata[obol_order_id]", id)`, `set("expand[]", "latest_charge")`.
    pub fn set(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.0.push((key.into(), value.to_string()));
        self
    }

    pub fn set_opt(self, key: impl Into<String>, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// An idempotency key derived from a business operation: the same
/// operation on the same objects always yields the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `for_op("capture", &[payment_id])` → `obol-capture-<sha256 prefix>`.
    /// Stripe keeps keys for 24 hours and allows 255 characters.
    pub fn for_op(operation: &str, parts: &[&str]) -> Self {
        let mut h = Sha256::new();
        h.update(operation.as_bytes());
        for p in parts {
            h.update([0u8]);
            h.update(p.as_bytes());
        }
        let digest = hex::encode(h.finalize());
        Self(format!("obol-{operation}-{}", &digest[..32]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key for the same operation on connected account `account`:
    /// `obol-<account>-<operation>-<hex>`.
    pub fn scoped(&self, account: &str) -> Self {
        let rest = self.0.strip_prefix("obol-").unwrap_or(&self.0);
        Self(format!("obol-{account}-{rest}"))
    }
}

/// `text` with every obol idempotency key (`obol-<operation>-<hex>`) cut
/// out. Stripe quotes the key in its `idempotency_error` message; obol's
/// keys name its internal operations and must not reach a caller.
pub fn redact_idempotency_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("obol-") {
        out.push_str(rest.get(..at).unwrap_or_default());
        let tail = rest.get(at..).unwrap_or_default();
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(tail.len());
        out.push_str("[idempotency key]");
        rest = tail.get(end..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Stripe's error object, as Stripe sent it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: String,
    pub param: Option<Box<str>>,
    /// The PaymentIntent a card error happened on (its id and status
    /// only: the object also carries its client secret).
    #[serde(default)]
    pub payment_intent: Option<Box<IntentRef>>,
}

/// The id and status of a PaymentIntent inside an error.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct IntentRef {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe decided (4xx other than 429): retrying cannot help.
    #[error("Stripe refused the request ({status}): {}", .error.message)]
    Refused { status: u16, error: ApiError },
    /// 5xx, 429, network errors and timeouts, still failing after retries.
    #[error("Stripe is unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    /// A 2xx whose body obol could not read.
    #[error("unexpected response from Stripe: {0}")]
    Decode(String),
}

impl StripeError {
    pub fn decline_code(&self) -> Option<&str> {
        match self {
            StripeError::Refused { error, .. } => error.decline_code.as_deref(),
            _ => None,
        }
    }
}

/// How hard to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The backoff's ceiling after `retry` retries: min(max, base·2^n).
    fn cap(&self, retry: u32) -> Duration {
        self.base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.max_delay)
    }

    /// Exponential backoff with full jitter: uniform in [0, cap(n)].
    fn delay(&self, retry: u32) -> Duration {
        let cap = self.cap(retry);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    api_base: String,
    secret_key: SecretString,
    limit: RateLimit,
    retry: RetryPolicy,
    /// The connected account every request acts for (`Stripe-Account`);
    /// `None`: the platform's own account.
    stripe_account: Option<String>,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.api_base)
            .field("stripe_account", &self.stripe_account)
            .finish_non_exhaustive()
    }
}

/// A refusal or failure of one of Stripe's OAuth endpoints, which answer
/// OAuth's error shape (`{"error", "error_description"}`), not Stripe's.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// Stripe decided: `error` is OAuth's code (`invalid_grant`,
    /// `invalid_client`, …).
    #[error("Stripe's OAuth endpoint refused the request ({status}, {error})")]
    Refused {
        status: u16,
        error: String,
        description: String,
    },
    #[error("Stripe's OAuth endpoint is unavailable: {0}")]
    Unavailable(String),
}

impl From<OAuthError> for StripeError {
    /// As a Stripe error that no caller can fix (502 `stripe_error`): the
    /// description is left out, it may quote an authorization code.
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::Refused { status, error, .. } => StripeError::Refused {
                status,
                error: ApiError {
                    kind: "oauth_error".into(),
                    code: Some(error.clone()),
                    decline_code: None,
                    message: format!("Stripe's OAuth endpoint answered {error}"),
                    param: None,
                    payment_intent: None,
                },
            },
            OAuthError::Unavailable(last) => StripeError::Unavailable { attempts: 1, last },
        }
    }
}

impl StripeClient {
    pub fn new(
        api_base: &str,
        secret_key: SecretString,
        limit: RateLimit,
        retry: RetryPolicy,
    ) -> Result<Self, StripeError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("obol/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StripeError::Decode(e.to_string()))?;
        Ok(Self {
            http,
            api_base: api_base.trim_end_matches('/').to_string(),
            secret_key,
            limit,
            retry,
            stripe_account: None,
        })
    }

    /// The same client (same HTTP connections, same key) acting for
    /// connected account `account`, paced by `limit` (the account's own).
    pub fn for_account(&self, account: &str, limit: RateLimit) -> Self {
        Self {
            limit,
            stripe_account: Some(account.to_string()),
            ..self.clone()
        }
    }

    /// The connected account this client acts for, if any.
    pub fn stripe_account(&self) -> Option<&str> {
        self.stripe_account.as_deref()
    }

    /// One form POST to Stripe's OAuth endpoints at `base` (`/oauth/token`,
    /// `/oauth/deauthorize`) with the platform's secret key as
    /// `client_secret`, as Stripe's SDKs send it. One attempt: an
    /// authorization code is single-use, so a retry after a lost answer
    /// could only fail; the caller decides what a failure means.
    pub async fn oauth_post(
        &self,
        base: &str,
        path: &str,
        params: &Params,
    ) -> Result<serde_json::Value, OAuthError> {
        #[derive(Deserialize)]
        struct OAuthRefusal {
            error: String,
            #[serde(default)]
            error_description: String,
        }
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let mut form = params.pairs().to_vec();
        form.push((
            "client_secret".to_string(),
            self.secret_key.expose_secret().to_string(),
        ));
        let started = std::time::Instant::now();
        let sent = self
            .http
            .post(&url)
            .timeout(self.retry.request_timeout)
            .header("Stripe-Version", STRIPE_VERSION)
            .form(&form)
            .send()
            .await;
        let elapsed = started.elapsed();
        let outcome = match &sent {
            Ok(r) => crate::metrics::stripe_outcome(r.status().as_u16()),
            Err(_) => "network",
        };
        crate::metrics::record(|m| m.stripe_request("POST", path, outcome, elapsed));
        let response = sent.map_err(|e| OAuthError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| OAuthError::Unavailable(format!("reading the response: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| OAuthError::Unavailable(format!("{path}: {e}")));
        }
        match serde_json::from_slice::<OAuthRefusal>(&body) {
            Ok(r) if status.is_client_error() => Err(OAuthError::Refused {
                status: status.as_u16(),
                error: r.error,
                description: r.error_description,
            }),
            _ => Err(OAuthError::Unavailable(format!("{path}: HTTP {status}"))),
        }
    }

    /// The same client (same rate limit) with another retry policy, e.g. a
    /// single short attempt for a status probe.
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        Self {
            retry,
            ..self.clone()
        }
    }

    /// The pacer every request of this client waits on.
    pub fn rate_limit(&self) -> &RateLimit {
        &self.limit
    }

    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Params,
    ) -> Result<T, StripeError> {
        self.send(Method::GET, path, query, None).await
    }

    /// A POST; the key names the business operation, never a random value.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &Params,
        key: &IdempotencyKey,
    ) -> Result<T, StripeError> {
        self.send(Method::POST, path, params, Some(key)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, StripeError> {
        self.send(Method::DELETE, path, &Params::new(), None).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &Params,
        key: Option<&IdempotencyKey>,
    ) -> Result<T, StripeError> {
        let url = format!("{}{}", self.api_base, path);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let waiting = std::time::Instant::now();
            self.limit.wait().await;
            let waited = waiting.elapsed();
            crate::metrics::record(|m| m.stripe_wait(self.stripe_account.is_some(), waited));
            let started = std::time::Instant::now();
            let mut req = self
                .http
                .request(method.clone(), &url)
                .timeout(self.retry.request_timeout)
                .bearer_auth(self.secret_key.expose_secret())
                .header("Stripe-Version", STRIPE_VERSION);
            req = if method == Method::GET {
                req.query(params.pairs())
            } else {
                req.form(params.pairs())
            };
            if let Some(acct) = &self.stripe_account {
                req = req.header("Stripe-Account", acct);
            }
            if let Some(k) = key {
                match &self.stripe_account {
                    Some(acct) => req = req.header("Idempotency-Key", k.scoped(acct).as_str()),
                    None => req = req.header("Idempotency-Key", k.as_str()),
                }
            }
            let outcome = match req.send().await {
                Ok(response) => {
                    let status = response.status();
                    let elapsed = started.elapsed();
                    crate::metrics::record(|m| {
                        m.stripe_request(
                            method.as_str(),
                            path,
                            crate::metrics::stripe_outcome(status.as_u16()),
                            elapsed,
                        )
                    });
                    // The path's ids (pi_…, cus_…) say what the call is
                    // about; the query, the form and the key stay out.
                    tracing::debug!(stripe_method = %method, stripe_path = %path.split('?').next().unwrap_or_default(), stripe_account = self.stripe_account.as_deref().unwrap_or("platform"), status = status.as_u16(), attempt, elapsed_ms = elapsed.as_millis() as u64, waited_ms = waited.as_millis() as u64, "Stripe call");
                    let should_retry = response
                        .headers()
                        .get("stripe-should-retry")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v == "true");
                    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
                        && response
                            .headers()
                            .contains_key("stripe-rate-limited-reason");
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(60)));
                    let body = response.bytes().await;
                    match body {
                        Ok(body) if status.is_success() => {
                            return serde_json::from_slice(&body)
                                .map_err(|e| StripeError::Decode(format!("{path}: {e}")));
                        }
                        Ok(body) => {
                            let error = parse_error(&body);
                            if rate_limited || error.code.as_deref() == Some("rate_limit") {
                                // Over Stripe's rate (not one object's lock
                                // contention, `lock_timeout`): every caller
                                // of this process pauses, for Stripe's
                                // `Retry-After` when it gives one.
                                let pause =
                                    retry_after.unwrap_or_else(|| self.retry.cap(attempt - 1));
                                tracing::warn!(%path, pause_ms = pause.as_millis() as u64, "Stripe rate-limited obol: pausing its Stripe requests");
                                self.limit.back_off(pause);
                            }
                            let retryable = match should_retry {
                                Some(explicit) => explicit,
                                None => {
                                    status == StatusCode::TOO_MANY_REQUESTS
                                        || status.is_server_error()
                                }
                            };
                            if !retryable {
                                return Err(StripeError::Refused {
                                    status: status.as_u16(),
                                    error,
                                });
                            }
                            format!("{status}: {}", error.message)
                        }
                        Err(e) => format!("reading the response: {e}"),
                    }
                }
                Err(e) => {
                    let elapsed = started.elapsed();
                    crate::metrics::record(|m| {
                        m.stripe_request(method.as_str(), path, "network", elapsed)
                    });
                    tracing::debug!(stripe_method = %method, stripe_path = %path.split('?').next().unwrap_or_default(), attempt, elapsed_ms = elapsed.as_millis() as u64, timed_out = e.is_timeout(), "Stripe call failed without an answer");
                    if e.is_timeout() {
                        "timed out".to_string()
                    } else {
                        format!("network error: {}", e.without_url())
                    }
                }
            };
            if attempt >= self.retry.max_attempts {
                return Err(StripeError::Unavailable {
                    attempts: attempt,
                    last: outcome,
                });
            }
            let delay = self.retry.delay(attempt - 1);
            tracing::debug!(%path, attempt, delay_ms = delay.as_millis() as u64, reason = %outcome, "retrying a Stripe request");
            tokio::time::sleep(delay).await;
        }
    }
}

fn parse_error(body: &[u8]) -> ApiError {
    #[derive(Deserialize)]
    struct Envelope {
        error: ApiError,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| ApiError {
            kind: "api_error".into(),
            code: None,
            decline_code: None,
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
            param: None,
            payment_intent: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_stable_per_operation() {
        let a = IdempotencyKey::for_op("capture", &["pay_1"]);
        assert_eq!(a, IdempotencyKey::for_op("capture", &["pay_1"]));
        assert_ne!(a, IdempotencyKey::for_op("capture", &["pay_2"]));
        assert_ne!(a, IdempotencyKey::for_op("refund", &["pay_1"]));
        // Parts are separated, so ("ab","c") and ("a","bc") differ.
        assert_ne!(
            IdempotencyKey::for_op("x", &["ab", "c"]),
            IdempotencyKey::for_op("x", &["a", "bc"])
        );
        assert!(a.as_str().starts_with("obol-capture-") && a.as_str().len() < 255);
    }

    #[test]
    fn a_connected_accounts_keys_are_its_own_and_still_redacted() {
        let key = IdempotencyKey::for_op("capture", &["pay_1"]);
        let a = key.scoped("acct_1A");
        assert_ne!(a, key);
        assert_ne!(a, key.scoped("acct_2B"));
        assert_eq!(
            a,
            IdempotencyKey::for_op("capture", &["pay_1"]).scoped("acct_1A")
        );
        assert!(a.as_str().starts_with("obol-acct_1A-capture-"), "{a:?}");
        assert_eq!(
            redact_idempotency_keys(&format!("key '{}'", a.as_str())),
            "key '[idempotency key]'"
        );
    }

    #[test]
    fn idempotency_keys_are_redacted() {
        let key = IdempotencyKey::for_op("pay-first-intent", &["a"]);
        let text = format!("Try a key other than '{}' if you meant to.", key.as_str());
        assert_eq!(
            redact_idempotency_keys(&text),
            "Try a key other than '[idempotency key]' if you meant to."
        );
        assert_eq!(redact_idempotency_keys("obol-"), "[idempotency key]");
        assert_eq!(redact_idempotency_keys("no key"), "no key");
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        let p = RetryPolicy::default();
        for retry in 0..40 {
            assert!(p.delay(retry) <= p.max_delay);
        }
        assert!(p.delay(0) <= p.base_delay);
    }
}
