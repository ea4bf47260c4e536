//! What every use case runs with, and for whom.
//!
//! - `Ctx`: the store, Stripe (behind the `StripeApi` trait), the settings
//!   use cases read and the clock. The HTTP API, the CLI, jobs and later
//!   front ends (MCP tools, hosted pages) build one and call `ops::*`.
//! - `Actor`: who a use case acts for: the host's backend (secret key), one
//!   customer (customer token), the guest of one order (guest token) or the
//!   holder of one capability link. Ownership rules are written once, here
//!   and in `ops/`, never in a front end.
//! - `AccountId`: the Stripe account an object belongs to. Today every row
//!   belongs to the platform account; Stripe Connect adds accounts without
//!   changing a use case's signature.
//!
//! Nothing here knows about HTTP: no axum types, no headers.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::Notify;

use crate::config::{Config, StripeMode};
use crate::ids::{CustomerId, TokenHash};
use crate::ledger::order::OrderStatus;
use crate::storage::Store;
use crate::stripe::{StripeApi, StripeInfo};

/// The Stripe account a row belongs to: `default` for the platform's own
/// account, or a connected account's `acct_…` id.
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
    /// Where caller-supplied URLs (notification endpoints) may point.
    pub outbound: crate::outbound::OutboundPolicy,
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
            outbound: config.outbound_policy(),
        })
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
}

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
        Ctx(Arc::new(Inner {
            store,
            stripe,
            stripe_info,
            settings,
            clock: Arc::new(SystemClock),
            inbox_wake,
        }))
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
        }))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn stripe(&self) -> &dyn StripeApi {
        self.0.stripe.as_ref()
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
