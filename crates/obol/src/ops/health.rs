//! Health: liveness plus what a script needs to find its Stripe.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::StripeMode;
use crate::context::Ctx;
use crate::stripe::AccountSummary;

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    /// `ok` when storage answers, else `degraded` (with status 503).
    pub status: HealthStatus,
    /// obol's version.
    pub version: &'static str,
    /// The Stripe publishable key a browser's Stripe.js needs.
    pub publishable_key: String,
    pub stripe: StripeHealth,
    pub storage: StorageHealth,
    pub checked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Degraded,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StripeHealth {
    /// `sandbox` (the built-in offline Stripe), `test` or `live`.
    pub mode: StripeMode,
    /// Where obol sends its Stripe calls.
    pub api_base: String,
    /// The Stripe account; null while Stripe cannot be reached.
    pub account: Option<AccountSummary>,
    /// The Stripe webhook endpoints delivering to obol, as last checked:
    /// `degraded` when two platform endpoints (or two Connect endpoints)
    /// deliver to obol's URL. Not part of `status`: each copy of an event
    /// is stored once, so obol keeps working; the message says what to
    /// delete.
    pub webhooks: crate::ops::connect_webhooks::WebhooksHealth,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StorageHealth {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub ok: bool,
}

/// `status` is `ok` when storage answers, else `degraded`.
pub async fn check(ctx: &Ctx) -> HealthOut {
    let storage_ok = ctx.store().ping().await.is_ok();
    let stripe = ctx.stripe_info();
    let account = stripe.account().await;
    let webhooks = crate::ops::connect_webhooks::health(ctx).await;
    HealthOut {
        status: if storage_ok {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded
        },
        version: env!("CARGO_PKG_VERSION"),
        publishable_key: stripe.publishable_key.clone(),
        stripe: StripeHealth {
            mode: stripe.mode,
            api_base: stripe.api_base.clone(),
            account,
            webhooks,
        },
        storage: StorageHealth {
            backend: ctx.store().backend().as_str(),
            ok: storage_ok,
        },
        checked_at: ctx.now(),
    }
}
