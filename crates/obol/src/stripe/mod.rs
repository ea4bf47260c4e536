//! obol's side of Stripe: which Stripe it talks to, and the client.

pub mod budget;
pub mod client;
pub mod signature;

pub use client::{
    redact_idempotency_keys, ApiError, IdempotencyKey, OAuthError, Params, RateLimit, RetryPolicy,
    StripeClient, StripeError,
};

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::StripeMode;

/// The Stripe API version obol pins; the shapes it parses are this version's.
pub const STRIPE_VERSION: &str = "2023-08-16";

/// Stripe as use cases see it: the calls `ops/` makes, behind a trait so a
/// use case does not depend on the HTTP client (`StripeClient` is the one
/// implementation; the sandbox is reached through it too). Object-safe, so
/// `Ctx` holds an `Arc<dyn StripeApi>`; the typed `get`/`post` helpers on
/// `dyn StripeApi` decode the JSON.
pub trait StripeApi: Send + Sync {
    fn get_json<'a>(
        &'a self,
        path: &'a str,
        query: &'a Params,
    ) -> BoxFuture<'a, Result<Value, StripeError>>;

    /// A POST; the key names the business operation, never a random value.
    fn post_json<'a>(
        &'a self,
        path: &'a str,
        params: &'a Params,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<Value, StripeError>>;

    /// A DELETE (Stripe's cancel of a subscription); naturally idempotent.
    fn delete_json<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Value, StripeError>>;
}

impl StripeApi for StripeClient {
    fn get_json<'a>(
        &'a self,
        path: &'a str,
        query: &'a Params,
    ) -> BoxFuture<'a, Result<Value, StripeError>> {
        Box::pin(self.get(path, query))
    }

    fn post_json<'a>(
        &'a self,
        path: &'a str,
        params: &'a Params,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<Value, StripeError>> {
        Box::pin(self.post(path, params, key))
    }

    fn delete_json<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Value, StripeError>> {
        Box::pin(self.delete(path))
    }
}

impl dyn StripeApi + '_ {
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Params,
    ) -> Result<T, StripeError> {
        decode(self.get_json(path, query).await?)
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &Params,
        key: &IdempotencyKey,
    ) -> Result<T, StripeError> {
        decode(self.post_json(path, params, key).await?)
    }
}

fn decode<T: DeserializeOwned>(v: Value) -> Result<T, StripeError> {
    serde_json::from_value(v).map_err(|e| StripeError::Decode(e.to_string()))
}

/// Which Stripe obol talks to, its client, and the account seen there.
#[derive(Clone)]
pub struct StripeInfo {
    pub mode: StripeMode,
    pub api_base: String,
    pub publishable_key: String,
    client: StripeClient,
    account: Arc<Mutex<AccountCache>>,
}

#[derive(Default)]
struct AccountCache {
    value: Option<AccountSummary>,
    fetched: Option<Instant>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AccountSummary {
    pub name: Option<String>,
    /// The last four characters of the account id: enough to tell accounts
    /// apart on a dashboard without publishing the id.
    pub id_last4: String,
}

#[derive(Deserialize)]
struct Account {
    id: String,
    business_profile: Option<BusinessProfile>,
    settings: Option<Settings>,
}
#[derive(Deserialize)]
struct BusinessProfile {
    name: Option<String>,
}
#[derive(Deserialize)]
struct Settings {
    dashboard: Option<Dashboard>,
}
#[derive(Deserialize)]
struct Dashboard {
    display_name: Option<String>,
}

impl std::fmt::Debug for StripeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeInfo")
            .field("mode", &self.mode)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl StripeInfo {
    pub fn new(mode: StripeMode, publishable_key: String, client: StripeClient) -> Self {
        Self {
            mode,
            api_base: client.api_base().to_string(),
            publishable_key,
            client,
            account: Arc::default(),
        }
    }

    pub fn client(&self) -> &StripeClient {
        &self.client
    }

    /// The Stripe account, fetched at most once a minute; `None` while
    /// Stripe cannot be reached.
    pub async fn account(&self) -> Option<AccountSummary> {
        let mut cache = self.account.lock().await;
        let fresh = cache
            .fetched
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
        if !fresh {
            cache.fetched = Some(Instant::now());
            let probe = self.client.with_retry(RetryPolicy {
                max_attempts: 1,
                request_timeout: Duration::from_secs(5),
                ..RetryPolicy::default()
            });
            match probe.get::<Account>("/v1/account", &Params::new()).await {
                Ok(account) => cache.value = Some(summarize(account)),
                Err(e) => tracing::warn!(error = %e, "could not read the Stripe account"),
            }
        }
        cache.value.clone()
    }
}

/// An account object's name as Stripe shows it: the dashboard's display
/// name, else the business profile's name.
pub fn account_name(account: &Value) -> Option<String> {
    let account: Account = serde_json::from_value(account.clone()).ok()?;
    summarize(account).name
}

fn summarize(account: Account) -> AccountSummary {
    let name = account
        .settings
        .and_then(|s| s.dashboard)
        .and_then(|d| d.display_name)
        .or_else(|| account.business_profile.and_then(|b| b.name));
    let chars: Vec<char> = account.id.chars().collect();
    let id_last4 = chars.iter().skip(chars.len().saturating_sub(4)).collect();
    AccountSummary { name, id_last4 }
}
