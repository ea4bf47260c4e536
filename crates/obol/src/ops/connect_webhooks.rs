//! The platform's Stripe webhook endpoints: registering the one Connect
//! endpoint (`connect=true`: Stripe delivers every connected account's
//! events to it, each with `account`), the signing secrets deliveries are
//! verified with, and the duplicate check `/health` shows.
//!
//! - `ensure_registered`: once per platform, after an organisation's first
//!   connection (and at start-up in sandbox mode). Idempotent across
//!   processes and restarts: an endpoint with obol's URL and
//!   `connect=true` at Stripe is reused; otherwise one is created with an
//!   idempotency key derived from the URL, so two processes registering at
//!   once get the same endpoint back. Its signing secret, shown by Stripe
//!   once, is stored encrypted (`crate::secrets`) so every process and
//!   every restart can verify with it.
//! - `signing_secrets`: the Connect secrets in force, beside the platform
//!   endpoint's (`stripe.webhook_secrets`): `stripe.connect.webhook_secret`
//!   and the stored ones, cached in the process and read again after a
//!   minute, or at once (at most every few seconds) when a delivery
//!   matches none (another process may have registered meanwhile).
//! - `refresh_check`: lists Stripe's endpoints and records how many
//!   deliver to obol's URL, platform and Connect apart; `/health` reads
//!   the record (one row, no Stripe call per health request). Refreshed
//!   at start-up, by every reconciliation pass and at registration.
//!
//! Secrets are `SecretString`s from Stripe's answer to the database; no
//! log line, error or `Debug` output carries one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{AccountId, Ctx};
use crate::error::{Error, Result, RuleCode};
use crate::storage::stripe_webhook_endpoints::secret_context;
use crate::stripe::{IdempotencyKey, Params, StripeApi};

/// Where Stripe delivers to obol (`POST /webhooks/stripe`), after the
/// public base. Platform and Connect endpoints share it: the event's
/// `account` tells them apart.
pub const WEBHOOK_PATH: &str = "/webhooks/stripe";

/// The `sync_state` row holding the last duplicate check.
const CHECK_STATE: &str = "webhooks.check";
/// How long cached Connect secrets are used before they are read again.
const SECRETS_TTL: Duration = Duration::from_secs(60);
/// How soon a delivery no secret matches may read them again.
const RELOAD_AFTER_MISMATCH: Duration = Duration::from_secs(5);

/// obol's webhook URL under `public_base`.
pub fn webhook_url(public_base: &str) -> String {
    format!("{}{WEBHOOK_PATH}", public_base.trim_end_matches('/'))
}

/// A Stripe webhook endpoint, as listed.
#[derive(Clone, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub enabled_events: Vec<String>,
    /// Set (the platform's Connect application, `ca_…`) on Connect
    /// endpoints only.
    #[serde(default)]
    pub application: Option<Value>,
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
    /// Only in the answer that created it.
    #[serde(default)]
    secret: Option<SecretString>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("connect", &self.is_connect())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// A Connect endpoint (`connect=true`): it receives connected
    /// accounts' events, not the platform's.
    pub fn is_connect(&self) -> bool {
        self.application.as_ref().is_some_and(|a| !a.is_null())
    }

    /// Event types obol handles that this endpoint does not send.
    pub fn missing<'a>(&self, wanted: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        wanted
            .filter(|t| !self.enabled_events.iter().any(|e| e == "*" || e == t))
            .collect()
    }
}

#[derive(Deserialize)]
struct EndpointList {
    data: Vec<Endpoint>,
    has_more: bool,
}

/// Every webhook endpoint of the platform's Stripe account.
pub async fn list_endpoints(stripe: &dyn StripeApi) -> Result<Vec<Endpoint>> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: EndpointList = stripe
            .get(
                "/v1/webhook_endpoints",
                &Params::new()
                    .set("limit", 100)
                    .set_opt("starting_after", after.as_deref()),
            )
            .await?;
        after = page.data.last().map(|e| e.id.clone());
        all.extend(page.data);
        if !page.has_more || after.is_none() {
            break;
        }
    }
    Ok(all)
}

/// The endpoints delivering to obol's URL, platform and Connect apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObolEndpoints {
    pub url: String,
    /// Ids of platform endpoints with obol's URL.
    pub platform: Vec<String>,
    /// Ids of Connect endpoints with obol's URL.
    pub connect: Vec<String>,
}

impl ObolEndpoints {
    pub fn of(endpoints: &[Endpoint], url: &str) -> Self {
        let ours = || endpoints.iter().filter(|e| e.url == url);
        ObolEndpoints {
            url: url.to_string(),
            platform: ours()
                .filter(|e| !e.is_connect())
                .map(|e| e.id.clone())
                .collect(),
            connect: ours()
                .filter(|e| e.is_connect())
                .map(|e| e.id.clone())
                .collect(),
        }
    }

    /// What is wrong, if anything: more than one endpoint of a kind
    /// delivers to obol, so each of their events arrives more than once
    /// (the inbox stores it once, but every copy is a request to answer).
    pub fn duplicates(&self) -> Option<String> {
        let problems: Vec<String> = [
            duplicate_message(EndpointKind::Platform, &self.platform, &self.url),
            duplicate_message(EndpointKind::Connect, &self.connect, &self.url),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    Platform,
    Connect,
}

/// The message for `ids` (endpoints of one kind delivering to `url`) when
/// there are several.
pub fn duplicate_message(kind: EndpointKind, ids: &[String], url: &str) -> Option<String> {
    if ids.len() < 2 {
        return None;
    }
    let (name, events) = match kind {
        EndpointKind::Platform => ("platform", "platform"),
        EndpointKind::Connect => ("Connect", "connected-account"),
    };
    Some(format!(
        "{} {name} webhook endpoints deliver to {url} ({}): every {events} event arrives {} times; delete all but one in Stripe's dashboard",
        ids.len(),
        ids.join(", "),
        ids.len()
    ))
}

/// The last duplicate check, as `/health` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Check {
    endpoints: ObolEndpoints,
    checked_at: DateTime<Utc>,
}

/// `ok`, `degraded` (duplicate endpoints) or `unknown` (not checked yet,
/// or Stripe could not be asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookCheckStatus {
    Ok,
    Degraded,
    Unknown,
}

/// `stripe.webhooks` of `/health`: the Stripe endpoints delivering to obol.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhooksHealth {
    pub status: WebhookCheckStatus,
    /// obol's webhook URL (`public_url` + `/webhooks/stripe`).
    pub url: String,
    /// Platform endpoints delivering to it (one is right).
    pub platform_endpoints: usize,
    /// Connect endpoints delivering to it (none before the first
    /// organisation connects, then one).
    pub connect_endpoints: usize,
    /// What is wrong, when `degraded`.
    pub message: Option<String>,
    /// When Stripe was last asked (start-up, every reconciliation pass,
    /// registration); null before the first look.
    pub checked_at: Option<DateTime<Utc>>,
}

/// Asks Stripe which endpoints deliver to obol and records it for
/// `/health`. A duplicate is logged as a warning each time it is seen.
/// The stored secrets of endpoints Stripe no longer has are dropped.
pub async fn refresh_check(ctx: &Ctx) -> Result<ObolEndpoints> {
    let url = webhook_url(&ctx.settings().public_base);
    let all = list_endpoints(ctx.stripe()).await?;
    forget_deleted(ctx, &all).await?;
    let endpoints = ObolEndpoints::of(&all, &url);
    record_check(ctx, &endpoints).await?;
    Ok(endpoints)
}

async fn record_check(ctx: &Ctx, endpoints: &ObolEndpoints) -> Result<()> {
    if let Some(problem) = endpoints.duplicates() {
        tracing::warn!(%problem, "duplicate Stripe webhook endpoints");
    }
    let check = Check {
        endpoints: endpoints.clone(),
        checked_at: ctx.now(),
    };
    let value = serde_json::to_string(&check).map_err(Error::internal)?;
    let mut h = ctx.store().acquire().await?;
    h.conn()
        .set_sync_state(&AccountId::platform(), CHECK_STATE, &value, ctx.now())
        .await
}

/// The last recorded check (no Stripe call).
pub async fn health(ctx: &Ctx) -> WebhooksHealth {
    let url = webhook_url(&ctx.settings().public_base);
    let recorded = async {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_sync_state(&AccountId::platform(), CHECK_STATE)
            .await
    }
    .await
    .ok()
    .flatten()
    .and_then(|v| serde_json::from_str::<Check>(&v).ok())
    // A check made for another URL (public_url changed) says nothing.
    .filter(|c| c.endpoints.url == url);
    match recorded {
        None => WebhooksHealth {
            status: WebhookCheckStatus::Unknown,
            url,
            platform_endpoints: 0,
            connect_endpoints: 0,
            message: None,
            checked_at: None,
        },
        Some(c) => {
            let message = c.endpoints.duplicates();
            WebhooksHealth {
                status: if message.is_some() {
                    WebhookCheckStatus::Degraded
                } else {
                    WebhookCheckStatus::Ok
                },
                url,
                platform_endpoints: c.endpoints.platform.len(),
                connect_endpoints: c.endpoints.connect.len(),
                message,
                checked_at: Some(c.checked_at),
            }
        }
    }
}

/// Registers the platform's Connect webhook endpoint unless Stripe has
/// one with obol's URL already: `connect=true`, `url` = obol's webhook
/// URL, `enabled_events[]` = exactly the types obol handles
/// (`account.application.deauthorized` among them). Called after an
/// organisation's first successful connection; safe to call again, from
/// any process, at any time.
///
/// An existing endpoint whose secret obol does not hold (made in Stripe's
/// dashboard) is kept, with a warning unless
/// `stripe.connect.webhook_secret` is set. A new endpoint's secret is
/// stored encrypted, so it needs the encryption key
/// (`encryption_key_required` without one).
#[tracing::instrument(skip_all)]
pub async fn ensure_registered(ctx: &Ctx) -> Result<()> {
    let url = webhook_url(&ctx.settings().public_base);
    let endpoints = list_endpoints(ctx.stripe()).await?;
    let ours = ObolEndpoints::of(&endpoints, &url);
    forget_deleted(ctx, &endpoints).await?;
    if let Some(existing) = ours.connect.first() {
        let known = stored_ids(ctx).await?;
        if !known.contains(existing) && ctx.settings().connect_webhook_secret.is_none() {
            tracing::warn!(endpoint = %existing, %url, "a Connect webhook endpoint for obol exists, but obol does not hold its signing secret: set stripe.connect.webhook_secret (OBOL_STRIPE__CONNECT__WEBHOOK_SECRET) to it, or deliveries to it are refused");
        }
        if let Some(endpoint) = endpoints.iter().find(|e| &e.id == existing) {
            let missing = endpoint.missing(crate::inbox::apply::connect_event_types());
            if !missing.is_empty() {
                tracing::warn!(endpoint = %existing, missing = %missing.join(", "), "the Connect webhook endpoint does not send every event type obol handles");
            }
        }
        return record_check(ctx, &ours).await;
    }
    let created = create_connect_endpoint(
        ctx,
        &url,
        &IdempotencyKey::for_op("register-connect-webhook", &[&url]),
        "obol (Connect)",
    )
    .await?;
    let mut ours = ours;
    ours.connect.push(created);
    record_check(ctx, &ours).await
}

/// Creates a Connect endpoint for `url` and stores its secret encrypted;
/// answers its id.
pub(crate) async fn create_connect_endpoint(
    ctx: &Ctx,
    url: &str,
    key: &IdempotencyKey,
    description: &str,
) -> Result<String> {
    let Some(secrets) = ctx.secrets() else {
        return Err(Error::rule(
            RuleCode::EncryptionKeyRequired,
            "the Connect webhook endpoint's signing secret is stored encrypted: set secrets.encryption_key (OBOL_SECRETS__ENCRYPTION_KEY) and restart",
        ));
    };
    let mut params = Params::new()
        .set("url", url)
        .set("connect", "true")
        .set("description", description)
        .set("metadata[obol_managed]", "true");
    for t in crate::inbox::apply::connect_event_types() {
        params = params.set("enabled_events[]", t);
    }
    let created: Endpoint = ctx
        .stripe()
        .post("/v1/webhook_endpoints", &params, key)
        .await?;
    let secret = created.secret.as_ref().ok_or_else(|| {
        Error::internal("Stripe returned no signing secret for the new Connect webhook endpoint")
    })?;
    let sealed = secrets
        .encrypt(secret, &secret_context(&created.id))
        .map_err(Error::internal)?;
    {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .insert_stripe_endpoint(&created.id, url, true, &sealed, ctx.now())
            .await?;
    }
    ctx.connect_secrets().invalidate();
    tracing::info!(endpoint = %created.id, %url, "Connect webhook endpoint registered");
    Ok(created.id)
}

/// Ids of the endpoints whose secret obol stores.
async fn stored_ids(ctx: &Ctx) -> Result<Vec<String>> {
    let mut h = ctx.store().acquire().await?;
    Ok(h.conn()
        .list_stripe_endpoints()
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

/// Drops the stored secrets of endpoints Stripe no longer lists.
pub(crate) async fn forget_deleted(ctx: &Ctx, endpoints: &[Endpoint]) -> Result<()> {
    let mut h = ctx.store().acquire().await?;
    for id in h
        .conn()
        .list_stripe_endpoints()
        .await?
        .into_iter()
        .map(|r| r.id)
        .filter(|id| !endpoints.iter().any(|e| &e.id == id))
        .collect::<Vec<_>>()
    {
        h.conn().delete_stripe_endpoint(&id).await?;
        tracing::info!(endpoint = %id, "forgot the secret of a webhook endpoint Stripe no longer has");
    }
    Ok(())
}

/// The Connect endpoint secrets one process verifies with, read from the
/// database at most once a `SECRETS_TTL` (or sooner, see `signing_secrets`).
#[derive(Default)]
pub struct ConnectSecrets {
    cached: Mutex<Option<(Vec<SecretString>, Instant)>>,
}

impl ConnectSecrets {
    fn get(&self, max_age: Duration) -> Option<Vec<SecretString>> {
        let cached = self.cached.lock().ok()?;
        cached
            .as_ref()
            .filter(|(_, at)| at.elapsed() < max_age)
            .map(|(s, _)| s.clone())
    }

    fn put(&self, secrets: Vec<SecretString>) {
        if let Ok(mut c) = self.cached.lock() {
            *c = Some((secrets, Instant::now()));
        }
    }

    /// Read again on next use (a new endpoint was registered).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cached.lock() {
            *c = None;
        }
    }
}

/// The Connect endpoints' signing secrets: `stripe.connect.webhook_secret`
/// and every stored one. `fresh`: the caller found no match with the
/// cached ones, so they are read again unless that happened moments ago.
pub async fn signing_secrets(ctx: &Ctx, fresh: bool) -> Result<Vec<SecretString>> {
    let max_age = if fresh {
        RELOAD_AFTER_MISMATCH
    } else {
        SECRETS_TTL
    };
    let cache = ctx.connect_secrets();
    if let Some(s) = cache.get(max_age) {
        return Ok(s);
    }
    let mut all: Vec<SecretString> = ctx
        .settings()
        .connect_webhook_secret
        .iter()
        .cloned()
        .collect();
    let rows = {
        let mut h = ctx.store().acquire().await?;
        h.conn().list_stripe_endpoints().await?
    };
    if let Some(secrets) = ctx.secrets() {
        for row in rows {
            match secrets.decrypt(&row.secret_enc, &secret_context(&row.id)) {
                Ok(s) => all.push(s),
                Err(e) => {
                    tracing::error!(endpoint = %row.id, error = %e, "a stored webhook signing secret does not open; deliveries signed with it are refused")
                }
            }
        }
    } else if !rows.is_empty() {
        tracing::error!("webhook signing secrets are stored encrypted, but no encryption key is configured (secrets.encryption_key)");
    }
    cache.put(all.clone());
    Ok(all)
}
