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
    pub inbox: InboxHealth,
    pub checked_at: DateTime<Utc>,
}

/// The Stripe webhook inbox's backlog: whether the applier keeps up.
/// Not part of `status`: a lagging instance still stores and acknowledges
/// every delivery, and a 503 would make a load balancer take away the
/// instance that is catching up.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxHealth {
    /// `degraded` when the oldest event waiting for the applier
    /// (`received`) was stored more than `lag_warning_seconds` ago, or the
    /// backlog could not be read; else `ok`.
    pub status: HealthStatus,
    /// Age in seconds of the oldest `received` event; 0 when none waits.
    pub lag_seconds: f64,
    /// Events waiting for the applier.
    pub received: i64,
    /// Events whose application failed and waits for a retry (their age
    /// is in `/metrics`, `obol_inbox_lag_seconds{status="failed"}`).
    pub failed: i64,
    /// `inbox.lag_warning_seconds`.
    pub lag_warning_seconds: u64,
    /// Why the inbox is degraded, in words; absent when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

async fn inbox(ctx: &Ctx) -> InboxHealth {
    let warn = ctx.settings().inbox_lag_warning_seconds;
    match crate::ops::metrics::backlog(ctx).await {
        Ok(b) => {
            let (received, lag) = b.get("received");
            let (failed, _) = b.get("failed");
            let behind = lag > warn as f64;
            InboxHealth {
                status: if behind {
                    HealthStatus::Degraded
                } else {
                    HealthStatus::Ok
                },
                lag_seconds: (lag * 1000.0).round() / 1000.0,
                received,
                failed,
                lag_warning_seconds: warn,
                message: behind.then(|| {
                    format!(
                        "the applier is {lag:.0} s behind ({received} events waiting), more than inbox.lag_warning_seconds ({warn} s); deliveries are still stored and acknowledged"
                    )
                }),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "health: the inbox backlog could not be read");
            InboxHealth {
                status: HealthStatus::Degraded,
                lag_seconds: 0.0,
                received: 0,
                failed: 0,
                lag_warning_seconds: warn,
                message: Some("the inbox backlog could not be read".into()),
            }
        }
    }
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
    let inbox = inbox(ctx).await;
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
        inbox,
        checked_at: ctx.now(),
    }
}
