//! Host notification endpoints: where obol sends its signed
//! notifications, and the record of every delivery.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pagination::Page;
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ledger::delivery::DeliveryStatus;
use crate::outbox;
use crate::storage::notifications::{DeliveryRow, EndpointRow, NewEndpoint};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// Where to POST notifications: https (http only to loopback or
    /// private addresses where allowed).
    pub url: String,
    /// Event types to receive (`payment.authorized`, `order.shipped`, …;
    /// see the document's `webhooks`), or `["*"]` for all.
    #[schema(min_items = 1)]
    pub event_types: Vec<String>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointOut {
    #[schema(value_type = crate::ids::EndpointId)]
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub status: crate::storage::notifications::EndpointStatus,
    /// `whsec_…`, in the response that creates the endpoint only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^whsec_")]
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl EndpointOut {
    fn from_row(r: EndpointRow, reveal: bool) -> Self {
        let event_types = r.event_types();
        EndpointOut {
            id: r.id,
            url: r.url,
            event_types,
            description: r.description,
            status: r.status,
            secret: reveal.then_some(r.secret),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    #[schema(value_type = crate::ids::DeliveryId)]
    pub id: String,
    /// The `webhook-id` the receiver saw.
    #[schema(value_type = crate::ids::MessageId)]
    pub message_id: String,
    #[schema(value_type = crate::ids::EndpointId)]
    pub endpoint_id: String,
    /// pending, succeeded, failed (after the retry schedule) or canceled.
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for DeliveryOut {
    fn from(r: DeliveryRow) -> Self {
        let pending = r.status == DeliveryStatus::Pending;
        DeliveryOut {
            id: r.id,
            message_id: r.notification_id,
            endpoint_id: r.endpoint_id,
            status: r.status,
            attempts: r.attempts,
            next_attempt_at: pending.then_some(r.next_attempt_at),
            last_status_code: r.last_status_code,
            last_error: r.last_error,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only deliveries in this status.
    #[param(value_type = Option<DeliveryStatus>)]
    pub status: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// Adds an endpoint; the answer carries its signing secret, once.
pub async fn create(ctx: &Ctx, actor: &Actor, body: EndpointIn) -> Result<EndpointOut> {
    actor.require_secret()?;
    // Checked again at every connection, after DNS (outbound.rs).
    let url = ctx.settings().outbound.check_url(&body.url)?;
    if body.event_types.is_empty() {
        return Err(Error::rule(
            RuleCode::InvalidEventTypes,
            "event_types must name at least one type, or \"*\"",
        ));
    }
    for t in &body.event_types {
        if t != "*" && !outbox::EVENT_TYPES.contains(&t.as_str()) {
            return Err(Error::rule(
                RuleCode::InvalidEventTypes,
                format!(
                    "unknown event type {t:?}; known: {}",
                    outbox::EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    let description = body
        .description
        .as_deref()
        .map(|d| crate::validate::text("description", d, 255))
        .transpose()?;
    let id = String::from(crate::ids::EndpointId::generate());
    let mut h = ctx.store().acquire().await?;
    let row = h
        .conn()
        .insert_endpoint(&NewEndpoint {
            account: actor.account(),
            id: &id,
            url: url.as_str(),
            event_types: &body.event_types,
            secret: &outbox::new_secret(),
            description,
            now: ctx.now(),
        })
        .await?;
    tracing::info!(endpoint = %row.id, "webhook endpoint created");
    Ok(EndpointOut::from_row(row, true))
}

pub async fn list(ctx: &Ctx, actor: &Actor) -> Result<Page<EndpointOut>> {
    actor.require_secret()?;
    let mut h = ctx.store().acquire().await?;
    let rows = h.conn().list_endpoints(actor.account()).await?;
    Ok(Page {
        data: rows
            .into_iter()
            .map(|r| EndpointOut::from_row(r, false))
            .collect(),
        has_more: false,
        next_cursor: None,
    })
}

pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<EndpointOut> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::EndpointId::parse(id)
        .map_err(|_| Error::NotFound(Resource::WebhookEndpoint))?;
    let id = id.as_str();
    actor.require_secret()?;
    let mut h = ctx.store().acquire().await?;
    let row = h
        .conn()
        .get_endpoint(actor.account(), id)
        .await?
        .ok_or(Error::NotFound(Resource::WebhookEndpoint))?;
    Ok(EndpointOut::from_row(row, false))
}

/// Stops deliveries to the endpoint; its delivery history stays.
pub async fn delete(ctx: &Ctx, actor: &Actor, id: &str) -> Result<()> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::EndpointId::parse(id)
        .map_err(|_| Error::NotFound(Resource::WebhookEndpoint))?;
    let id = id.as_str();
    actor.require_secret()?;
    let mut h = ctx.store().acquire().await?;
    if h.conn()
        .delete_endpoint(actor.account(), id, ctx.now())
        .await?
    {
        Ok(())
    } else {
        Err(Error::NotFound(Resource::WebhookEndpoint))
    }
}

pub async fn list_deliveries(
    ctx: &Ctx,
    actor: &Actor,
    id: &str,
    q: DeliveryQuery,
) -> Result<Page<DeliveryOut>> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::EndpointId::parse(id)
        .map_err(|_| Error::NotFound(Resource::WebhookEndpoint))?;
    let id = id.as_str();
    actor.require_secret()?;
    if let Some(s) = &q.status {
        DeliveryStatus::parse(s).ok_or_else(|| {
            Error::InvalidQuery("status is one of pending, succeeded, failed, canceled".into())
        })?;
    }
    let limit = super::pagination::limit(q.limit)?;
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    conn.get_endpoint(actor.account(), id)
        .await?
        .ok_or(Error::NotFound(Resource::WebhookEndpoint))?;
    let rows = conn
        .list_deliveries(actor.account(), id, q.status.as_deref(), limit + 1)
        .await?;
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(0);
    Ok(Page {
        data: rows
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(0))
            .map(DeliveryOut::from)
            .collect(),
        has_more,
        next_cursor: None,
    })
}

/// Sends a delivery again now, whatever became of it.
pub async fn replay_delivery(ctx: &Ctx, actor: &Actor, id: &str) -> Result<DeliveryOut> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::DeliveryId::parse(id)
        .map_err(|_| Error::NotFound(Resource::WebhookDelivery))?;
    let id = id.as_str();
    actor.require_secret()?;
    let mut h = ctx.store().acquire().await?;
    let row = h
        .conn()
        .requeue_delivery(actor.account(), id, ctx.now())
        .await?
        .ok_or(Error::NotFound(Resource::WebhookDelivery))?;
    Ok(row.into())
}
