//! What every use case runs with, and for whom.
//!
//! - `Ctx`: the store, Stripe (behind the `StripeApi` trait), the settings
//!   use cases read and the clock. The HTTP API, the CLI, jobs and later
//!   front ends (MCP tools, hosted pages) build one and call `ops::*`.
//! - `Actor`: who a use case acts for: the host's backend (secret key), one
//!   customer (customer token), the guest of one order (guest token) or the
//!   holder of one capability link. Ownership rules are written once, here
//!   and in `ops/`, never in a front end.
//! - `CustomerStripeBudget`: Stripe calls made for anyone but the secret
//!   key are charged here first (`Ctx::stripe_for`), so no customer, guest
//!   or link holder can spend the Stripe budget the host's backend needs.
//! - `AccountId`: whose an object is: the platform's (`default`) or one
//!   organisation's (its `org_…` id). A request names an organisation with
//!   `Obol-Organization`; a customer token carries its customer's.
//! - Stripe for an account (`Ctx::stripe_for`, `Ctx::stripe_of`): the one
//!   place a Stripe call learns which account it is made for; an
//!   organisation that is not connected is refused here, never served
//!   from the platform's account.
//!
//! Nothing here knows about HTTP: no axum types, no headers.

use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

use crate::config::{Config, StripeMode};
use crate::error::Error;
use crate::ids::{CustomerId, TokenHash};
use crate::ledger::order::OrderStatus;
use crate::storage::Store;
use crate::stripe::{StripeApi, StripeInfo};

/// Whose a row is: `default` for the platform's own account, or an
/// organisation's `org_…` id. An organisation's id, not its connected
/// `acct_…`: the id is stable across a disconnect and a reconnect, and it
/// exists before any Stripe account is connected.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    /// The platform's own Stripe account (what obol used before Connect).
    pub const PLATFORM: &'static str = "default";

    pub fn platform() -> Self {
        AccountId(Self::PLATFORM.to_string())
    }

    /// Wraps an account id read back from storage or from a Stripe event
    /// (`account` is absent for the platform's own events).
    pub fn from_db(s: String) -> Self {
        AccountId(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_platform(&self) -> bool {
        self.0 == Self::PLATFORM
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a use case acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The host application's backend (secret API key): everything in its account.
    Secret { account: AccountId },
    /// One customer's browser, app or agent: only that customer's objects.
    Customer {
        account: AccountId,
        customer: CustomerId,
    },
    /// The guest of one order: the hash of the guest token presented.
    Guest {
        account: AccountId,
        token: TokenHash,
    },
    /// The holder of one capability link: the hash of the link's token.
    Link {
        account: AccountId,
        token: TokenHash,
    },
}

impl Actor {
    /// The secret key acting on the platform account.
    pub fn platform_secret() -> Self {
        Actor::Secret {
            account: AccountId::platform(),
        }
    }

    pub fn account(&self) -> &AccountId {
        match self {
            Actor::Secret { account }
            | Actor::Customer { account, .. }
            | Actor::Guest { account, .. }
            | Actor::Link { account, .. } => account,
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Actor::Secret { .. })
    }

    /// For backend-only use cases: anyone but the secret key is refused
    /// with `secret_key_required`.
    pub fn require_secret(&self) -> crate::error::Result<()> {
        if self.is_secret() {
            Ok(())
        } else {
            Err(crate::error::Error::SecretKeyRequired)
        }
    }

    /// Whether this actor may see an object owned by `owner` (a customer,
    /// or none) that carries no guest or link token of its own.
    pub fn may_access_customer_object(&self, owner: Option<&CustomerId>) -> bool {
        match self {
            Actor::Secret { .. } => true,
            Actor::Customer { customer, .. } => owner == Some(customer),
            Actor::Guest { .. } | Actor::Link { .. } => false,
        }
    }

    /// Whether this actor may see an object owned by `owner` and guarded
    /// by `guest_token_hash` (an order). Compared in constant time.
    pub fn may_access_guarded(&self, owner: Option<&str>, guest_token_hash: Option<&str>) -> bool {
        match self {
            Actor::Secret { .. } => true,
            Actor::Customer { customer, .. } => owner == Some(customer.as_str()),
            Actor::Guest { token, .. } => {
                guest_token_hash.is_some_and(|h| token.ct_eq(&TokenHash::from_db(h.to_string())))
            }
            Actor::Link { .. } => false,
        }
    }

    /// The actor's own customer, if it is one.
    pub fn customer(&self) -> Option<&CustomerId> {
        match self {
            Actor::Customer { customer, .. } => Some(customer),
            Actor::Secret { .. } | Actor::Guest { .. } | Actor::Link { .. } => None,
        }
    }
}

/// A source of the current time, so use cases can be run at a chosen time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock, at the precision both backends store (microseconds).
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// The configuration use cases read (a subset of `Config`, parsed).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The order status at which a pay-first authorization is captured.
    pub capture_on: OrderStatus,
    pub token_default_ttl: u64,
    pub token_max_ttl: u64,
    /// Stripe calls per second one customer, guest or link may cause.
    pub customer_stripe_per_second: u32,
    /// Stripe calls per second all of them together may cause: half the
    /// process's Stripe rate, so the secret key keeps the other half.
    pub customers_stripe_per_second: u32,
    /// Open pay-first intents one customer token may hold.
    pub max_open_intents_per_customer: i64,
    /// Where caller-supplied URLs (notification endpoints) may point.
    pub outbound: crate::outbound::OutboundPolicy,
    /// How long a payment link can be paid.
    pub payment_link_ttl: u64,
    /// The absolute base of links obol hands out (`public_url`, else the
    /// address it listens on), without a trailing slash.
    pub public_base: String,
    /// The fee rate of accounts that set none (`fees.default.*`).
    pub fee_default: crate::invoices::FeeRate,
    /// How long an invoice's intent may stay incomplete before the sweep
    /// settles it (`invoices.stale_intent_seconds`).
    pub invoice_stale_after: u64,
    /// The name invoice pages show (`invoices.business_name`).
    pub business_name: Option<String>,
    /// Worker jobs per running charge run.
    pub charge_run_workers: usize,
    /// Charges one charge-run worker has in flight.
    pub charge_run_concurrency: usize,
    /// How long a charge-run worker holds a claimed item, in seconds.
    pub charge_run_item_lease: u64,
    /// The business member e-mails name (`email.business_name`, else
    /// `invoices.business_name`, else "obol"): what `email::Template`s
    /// are filled in with.
    pub email_business_name: String,
    /// The platform's Connect client id (`stripe.connect.client_id`, the
    /// built-in one in sandbox mode); `None`: organisations cannot connect.
    pub connect_client_id: Option<String>,
    /// Where Stripe's OAuth endpoints live (`stripe.connect.base`; in
    /// sandbox mode the built-in sandbox), without a trailing slash.
    pub connect_base: String,
    /// Return URLs must be https (live mode).
    pub require_https_return: bool,
    /// The signing secret of a Connect webhook endpoint made outside obol
    /// (`stripe.connect.webhook_secret`; `Debug` shows `[REDACTED]`).
    pub connect_webhook_secret: Option<secrecy::SecretString>,
    /// `/health` reports the inbox degraded past this backlog age, seconds.
    pub inbox_lag_warning_seconds: u64,
    /// `acp.*`: the Agentic Commerce Protocol endpoint's settings.
    pub acp: crate::acp::AcpSettings,
}

impl Settings {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let capture_on = OrderStatus::parse(&config.checkout.capture_on)
            .filter(|s| OrderStatus::CAPTURE_POINTS.contains(s))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "checkout.capture_on: {:?} is not confirmed, shipped or delivered",
                    config.checkout.capture_on
                )
            })?;
        Ok(Settings {
            capture_on,
            token_default_ttl: config.customer_tokens.default_ttl_seconds,
            token_max_ttl: config.customer_tokens.max_ttl_seconds,
            customer_stripe_per_second: config.stripe.customer_rate_limit_per_second,
            customers_stripe_per_second: (config.stripe_rate_limit() / 2).max(1),
            max_open_intents_per_customer: i64::from(config.checkout.max_open_intents_per_customer),
            outbound: config.outbound_policy(),
            payment_link_ttl: if (60..=604_800).contains(&config.payment_links.ttl_seconds) {
                config.payment_links.ttl_seconds
            } else {
                anyhow::bail!(
                    "payment_links.ttl_seconds: {} is not between 60 and 604800",
                    config.payment_links.ttl_seconds
                )
            },
            public_base: config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.listen))
                .trim_end_matches('/')
                .to_string(),
            fee_default: crate::invoices::FeeRate {
                percent_bps: config.fees.default.percent_bps,
                fixed: config
                    .fees
                    .default
                    .fixed
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), *v))
                    .collect(),
            },
            invoice_stale_after: config.invoices.stale_intent_seconds,
            business_name: config.invoices.business_name.clone(),
            charge_run_workers: config.charge_runs.workers,
            charge_run_concurrency: config.charge_runs.concurrency,
            charge_run_item_lease: config.charge_runs.item_lease_seconds,
            email_business_name: crate::email::business_name(config),
            connect_client_id: config.connect_client_id(),
            connect_base: config
                .stripe
                .connect
                .base
                .as_deref()
                .unwrap_or(crate::config::STRIPE_CONNECT_BASE)
                .trim_end_matches('/')
                .to_string(),
            require_https_return: config.stripe_mode() == StripeMode::Live,
            connect_webhook_secret: config.stripe.connect.webhook_secret.clone(),
            inbox_lag_warning_seconds: config.inbox.lag_warning_seconds,
            acp: crate::acp::AcpSettings::from_config(
                config,
                config
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", config.listen))
                    .trim_end_matches('/'),
                &crate::email::business_name(config),
            ),
        })
    }
}

/// Who a budgeted Stripe call is charged to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Payer {
    Customer(String),
    Guest(String),
    Link(String),
}

/// The Stripe budget of everyone but the secret key: a token bucket per
/// customer (or guest token, or link), inside one shared bucket for all
/// of them. Stripe's own limit (`stripe.rate_limit_per_second`) is one
/// bucket for the whole process, and its client waits for a slot rather
/// than failing; without this a single customer token firing requests in
/// parallel took the whole 25/s in test mode and the backend's calls
/// queued behind its (40 ms became 2.4 s). A refusal here is a 429 before
/// Stripe is asked.
pub struct CustomerStripeBudget {
    each: DefaultKeyedRateLimiter<Payer>,
    all: DefaultDirectRateLimiter,
}

impl CustomerStripeBudget {
    /// `each` calls per second per payer and `all` for all payers
    /// together, each in bursts of twice its rate.
    pub fn new(each: u32, all: u32) -> Self {
        let quota = |n: u32| {
            let rate = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(n.max(1).saturating_mul(2)).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        };
        Self {
            each: RateLimiter::keyed(quota(each)),
            all: RateLimiter::direct(quota(all)),
        }
    }

    /// Takes one call from `payer`'s bucket, then from the shared one.
    fn charge(&self, payer: &Payer) -> Result<(), Error> {
        let refused = |not_until: governor::NotUntil<_>| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::RateLimited {
                retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        };
        // Keys of payers gone quiet are dropped, so a flood of guest
        // tokens cannot grow the table without bound.
        if self.each.len() > 10_000 {
            self.each.retain_recent();
        }
        self.each.check_key(payer).map_err(refused)?;
        self.all.check().map_err(refused)
    }
}

/// Everything a use case needs. Cheap to clone.
#[derive(Clone)]
pub struct Ctx(Arc<Inner>);

struct Inner {
    store: Store,
    stripe: Arc<dyn StripeApi>,
    stripe_info: StripeInfo,
    settings: Settings,
    clock: Arc<dyn Clock>,
    inbox_wake: Arc<Notify>,
    stripe_budget: Arc<CustomerStripeBudget>,
    secrets: Option<Arc<crate::secrets::Secrets>>,
    /// One client per connected account, made when first needed.
    connected: ConnectedClients,
    connect_secrets: Arc<crate::ops::connect_webhooks::ConnectSecrets>,
}

type ConnectedClients =
    Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<dyn StripeApi>>>>;

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("stripe", &self.0.stripe_info)
            .field("settings", &self.0.settings)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// A context whose Stripe calls go through `stripe_info`'s client.
    pub fn new(
        store: Store,
        stripe_info: StripeInfo,
        settings: Settings,
        inbox_wake: Arc<Notify>,
    ) -> Self {
        let stripe: Arc<dyn StripeApi> = Arc::new(stripe_info.client().clone());
        let stripe_budget = Arc::new(CustomerStripeBudget::new(
            settings.customer_stripe_per_second,
            settings.customers_stripe_per_second,
        ));
        Ctx(Arc::new(Inner {
            store,
            stripe,
            stripe_info,
            settings,
            clock: Arc::new(SystemClock),
            inbox_wake,
            stripe_budget,
            secrets: None,
            connected: ConnectedClients::default(),
            connect_secrets: Arc::default(),
        }))
    }

    /// The same context with the keys secrets at rest are encrypted with.
    pub fn with_secrets(&self, secrets: Option<Arc<crate::secrets::Secrets>>) -> Self {
        Ctx(Arc::new(Inner {
            store: self.0.store.clone(),
            stripe: self.0.stripe.clone(),
            stripe_info: self.0.stripe_info.clone(),
            settings: self.0.settings.clone(),
            clock: self.0.clock.clone(),
            inbox_wake: self.0.inbox_wake.clone(),
            stripe_budget: self.0.stripe_budget.clone(),
            secrets,
            connected: self.0.connected.clone(),
            connect_secrets: self.0.connect_secrets.clone(),
        }))
    }

    /// The encryption keys (`secrets.encryption_key`, or the one obol
    /// generated in sandbox mode); `None` with real Stripe keys and no
    /// key configured.
    pub fn secrets(&self) -> Option<&crate::secrets::Secrets> {
        self.0.secrets.as_deref()
    }

    /// The same context with another clock (tests, replays at a chosen time).
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        Ctx(Arc::new(Inner {
            store: self.0.store.clone(),
            stripe: self.0.stripe.clone(),
            stripe_info: self.0.stripe_info.clone(),
            settings: self.0.settings.clone(),
            clock,
            inbox_wake: self.0.inbox_wake.clone(),
            stripe_budget: self.0.stripe_budget.clone(),
            secrets: self.0.secrets.clone(),
            connected: self.0.connected.clone(),
            connect_secrets: self.0.connect_secrets.clone(),
        }))
    }

    /// The Connect webhook endpoints' signing secrets, cached
    /// (`ops::connect_webhooks::signing_secrets` fills it).
    pub fn connect_secrets(&self) -> &crate::ops::connect_webhooks::ConnectSecrets {
        &self.0.connect_secrets
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The platform's own Stripe account, for calls that belong to no
    /// organisation (reconciliation of the platform's events, start-up).
    /// A use case acting for an account calls `stripe_of` or `stripe_for`.
    pub fn stripe(&self) -> &dyn StripeApi {
        self.0.stripe.as_ref()
    }

    /// Stripe, for a call made for `account`: the platform's account as
    /// it always was (no lookup), or an organisation's. An organisation
    /// that is not `active` is refused with 409 `organization_not_connected`
    /// before anything is sent, so nothing of it is ever created on the
    /// platform's account. An active one answers its connected account's
    /// client (`connected`).
    pub async fn stripe_of(&self, account: &AccountId) -> Result<Arc<dyn StripeApi>, Error> {
        match crate::ops::organizations::stripe_account(self, account).await? {
            None => Ok(self.0.stripe.clone()),
            Some(acct) => Ok(self.connected(&acct)),
        }
    }

    /// The client acting for connected account `acct` (`Stripe-Account`
    /// on every request, the platform's key, the process's HTTP
    /// connections), with its own pacer and idempotency keys
    /// (`StripeClient::for_account`, `stripe::budget`). Made once per
    /// account and kept. No check that an organisation holds it: use
    /// cases go through `stripe_of`; the connect step calls this before
    /// the organisation is active.
    pub fn connected(&self, acct: &str) -> Arc<dyn StripeApi> {
        let mut clients = self.0.connected.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(acct.to_string())
            .or_insert_with(|| {
                let platform = self.0.stripe_info.client();
                let limit = crate::stripe::RateLimit::following(platform.rate_limit());
                let client: Arc<dyn StripeApi> = Arc::new(platform.for_account(acct, limit));
                client
            })
            .clone()
    }

    /// Stripe, for a call made on `actor`'s behalf, for its account
    /// (`stripe_of`): free for the secret key; anyone else's call is
    /// charged to their budget first and refused with 429 `rate_limited`
    /// (and `Retry-After`) beyond it. Use cases a customer, guest or link
    /// can reach call Stripe through this, never `stripe()`.
    pub async fn stripe_for(&self, actor: &Actor) -> Result<Arc<dyn StripeApi>, Error> {
        let payer = match actor {
            Actor::Secret { .. } => None,
            Actor::Customer { customer, .. } => {
                Some(Payer::Customer(customer.as_str().to_string()))
            }
            Actor::Guest { token, .. } => Some(Payer::Guest(token.as_str().to_string())),
            Actor::Link { token, .. } => Some(Payer::Link(token.as_str().to_string())),
        };
        if let Some(payer) = payer {
            self.0.stripe_budget.charge(&payer)?;
        }
        self.stripe_of(actor.account()).await
    }

    /// Which Stripe obol talks to (mode, publishable key, account summary).
    pub fn stripe_info(&self) -> &StripeInfo {
        &self.0.stripe_info
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.0.clock.now()
    }

    /// obol runs against a live-mode Stripe account.
    pub fn live(&self) -> bool {
        self.0.stripe_info.mode == StripeMode::Live
    }

    /// Tells the inbox workers a new or requeued event is waiting.
    pub fn wake_inbox(&self) {
        self.0.inbox_wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_payer_has_its_own_bucket_inside_a_shared_one() {
        // 1/s each (burst 2), 2/s for all (burst 4).
        let budget = CustomerStripeBudget::new(1, 2);
        let ana = Payer::Customer("cus_ana".into());
        let bob = Payer::Customer("cus_bob".into());
        let guest = Payer::Guest("hash".into());
        assert!(budget.charge(&ana).is_ok());
        assert!(budget.charge(&ana).is_ok());
        match budget.charge(&ana) {
            Err(Error::RateLimited {
                retry_after_seconds,
            }) => assert!(retry_after_seconds >= 1),
            other => panic!("ana over her burst: {other:?}"),
        }
        // Bob has his own bucket, until the shared one is spent.
        assert!(budget.charge(&bob).is_ok());
        assert!(budget.charge(&bob).is_ok());
        assert!(matches!(
            budget.charge(&guest),
            Err(Error::RateLimited { .. })
        ));
    }
}
