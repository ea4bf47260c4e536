//! The Stripe webhook inbox as callers see it: receiving a delivery
//! (verify, store, acknowledge), listing and replaying stored events.
//! Applying events is the inbox worker's, not a use case's.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::pagination::{self, Cursor, Page};
use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Resource, Result};
use crate::inbox;
use crate::ledger::inbox_event::InboxStatus;
use crate::storage::webhook_events::WebhookEventRow;

/// Stripe's delivery: stored before it is acknowledged; a bad or missing
/// signature is `invalid_signature` and stores nothing. `secrets` are the
/// platform endpoint's; the Connect endpoint's (configured or stored by
/// `connect_webhooks`) are accepted too: each endpoint signs with its own.
pub async fn receive(
    ctx: &Ctx,
    secrets: &[SecretString],
    body: &[u8],
    signature: Option<&str>,
) -> Result<ReceiptOut> {
    let mut all = secrets.to_vec();
    all.extend(super::connect_webhooks::signing_secrets(ctx, false).await?);
    let receipt = match inbox::receive(ctx.store(), &all, body, signature).await {
        // Another process may have registered the Connect endpoint since
        // the secrets were read: read them again (at most every few
        // seconds, so forged deliveries cannot make every request a read).
        Err(Error::InvalidSignature(crate::stripe::signature::SignatureError::Mismatch)) => {
            let mut all = secrets.to_vec();
            all.extend(super::connect_webhooks::signing_secrets(ctx, true).await?);
            inbox::receive(ctx.store(), &all, body, signature).await?
        }
        other => other?,
    };
    if receipt.stored {
        ctx.wake_inbox();
    }
    Ok(ReceiptOut {
        received: true,
        duplicate: !receipt.stored,
    })
}

/// obol's answer to a Stripe delivery: stored (or already stored).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReceiptOut {
    /// Always true: the event is stored.
    pub received: bool,
    /// The inbox already had this event (Stripe retried, or reconciliation got it first).
    pub duplicate: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookEventOut {
    #[schema(value_type = crate::ids::WebhookEventId)]
    pub id: String,
    /// Stripe's `evt_…`.
    pub stripe_event_id: String,
    /// Stripe's event type (`payment_intent.succeeded`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The account the event belongs to: `default` (the platform), the
    /// organisation holding the event's connected account (`org_…`), or
    /// Stripe's `acct_…` when no organisation holds it (then `ignored`).
    pub account_id: String,
    /// received, applied, ignored or failed.
    pub status: InboxStatus,
    /// Why an event was ignored, or why its application failed.
    pub reason: Option<String>,
    /// How obol got it: `webhook` or `reconcile`.
    pub source: String,
    pub attempts: i32,
    /// Stripe's `created`, Unix seconds.
    pub stripe_created: i64,
    pub received_at: DateTime<Utc>,
    pub applied_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<WebhookEventRow> for WebhookEventOut {
    fn from(r: WebhookEventRow) -> Self {
        let retrying = r.status.is_waiting();
        WebhookEventOut {
            id: r.id,
            stripe_event_id: r.stripe_event_id,
            event_type: r.event_type,
            account_id: r.account_id,
            status: r.status,
            reason: r.reason,
            source: r.source,
            attempts: r.attempts,
            stripe_created: r.stripe_created,
            received_at: r.received_at,
            applied_at: r.applied_at,
            next_attempt_at: retrying.then_some(r.next_attempt_at),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListWebhookEvents {
    /// Only events in this status.
    #[param(value_type = Option<InboxStatus>)]
    pub status: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The inbox events the actor may see: the platform's secret key sees
/// every account's (Stripe delivers them all to the platform), an
/// organisation only its own.
fn scope(actor: &Actor) -> Result<Option<&AccountId>> {
    match actor {
        Actor::Secret { account } if account.is_platform() => Ok(None),
        Actor::Secret { account } => Ok(Some(account)),
        Actor::Customer { .. } | Actor::Guest { .. } | Actor::Link { .. } => {
            Err(Error::SecretKeyRequired)
        }
    }
}

/// Newest first.
pub async fn list(ctx: &Ctx, actor: &Actor, q: ListWebhookEvents) -> Result<Page<WebhookEventOut>> {
    let scope = scope(actor)?;
    if let Some(s) = &q.status {
        if !matches!(s.as_str(), "received" | "applied" | "ignored" | "failed") {
            return Err(Error::InvalidQuery(
                "status is one of received, applied, ignored, failed".into(),
            ));
        }
    }
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut h = ctx.store().acquire().await?;
    let rows = h
        .conn()
        .list_webhook_events(
            scope,
            q.status.as_deref(),
            before.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.received_at,
        id: r.id.clone(),
    })
    .map(WebhookEventOut::from))
}

pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<WebhookEventOut> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::WebhookEventId::parse(id)
        .map_err(|_| Error::NotFound(Resource::WebhookEvent))?;
    let id = id.as_str();
    let scope = scope(actor)?;
    let mut h = ctx.store().acquire().await?;
    let row = h
        .conn()
        .get_webhook_event(scope, id)
        .await?
        .ok_or(Error::NotFound(Resource::WebhookEvent))?;
    Ok(row.into())
}

/// Queues a stored event for application again (after a fix, or to re-run
/// an ignored one). Applying is idempotent: a replay of an applied event
/// changes nothing.
pub async fn replay(ctx: &Ctx, actor: &Actor, id: &str) -> Result<WebhookEventOut> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::WebhookEventId::parse(id)
        .map_err(|_| Error::NotFound(Resource::WebhookEvent))?;
    let id = id.as_str();
    let scope = scope(actor)?;
    let mut h = ctx.store().acquire().await?;
    if !h.conn().requeue_webhook_event(scope, id, ctx.now()).await? {
        return Err(Error::NotFound(Resource::WebhookEvent));
    }
    ctx.wake_inbox();
    let row = h
        .conn()
        .get_webhook_event(scope, id)
        .await?
        .ok_or(Error::NotFound(Resource::WebhookEvent))?;
    Ok(row.into())
}
