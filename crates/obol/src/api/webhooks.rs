//! `POST /webhooks/stripe` (Stripe's deliveries) and the inbox's API:
//! `GET /v1/webhook-events`, `POST /v1/webhook-events/{id}/replay`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::{Cursor, Page};
use super::AppState;
use crate::error::{Error, Resource, Result};
use crate::inbox;
use crate::storage::webhook_events::WebhookEventRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/stripe", post(receive_stripe_event))
        .route("/v1/webhook-events", get(list_webhook_events))
        .route("/v1/webhook-events/{id}", get(get_webhook_event))
        .route("/v1/webhook-events/{id}/replay", post(replay_webhook_event))
        .route("/v1/reconciliations", post(reconcile))
}

/// Stripe's delivery. 200 only once the event is stored; a bad or missing
/// signature answers 401 `invalid_signature` and stores nothing.
async fn receive_stripe_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let secrets = state.webhook_secrets();
    let receipt = inbox::receive(state.store(), &secrets, &body, signature).await?;
    if receipt.stored {
        state.wake_inbox();
    }
    Ok(Json(
        json!({"received": true, "duplicate": !receipt.stored}),
    ))
}

#[derive(Debug, Serialize)]
pub struct WebhookEventOut {
    pub id: String,
    pub stripe_event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub account_id: String,
    /// received, applied, ignored or failed.
    pub status: String,
    /// Why an event was ignored, or why its application failed.
    pub reason: Option<String>,
    pub source: String,
    pub attempts: i32,
    pub stripe_created: i64,
    pub received_at: DateTime<Utc>,
    pub applied_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<WebhookEventRow> for WebhookEventOut {
    fn from(r: WebhookEventRow) -> Self {
        let retrying = r.status == "failed" || r.status == "received";
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListWebhookEvents {
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

async fn list_webhook_events(
    State(state): State<AppState>,
    _: SecretKey,
    Query(q): Query<ListWebhookEvents>,
) -> Result<Json<Page<WebhookEventOut>>> {
    if let Some(s) = &q.status {
        if !matches!(s.as_str(), "received" | "applied" | "ignored" | "failed") {
            return Err(Error::InvalidQuery(
                "status is one of received, applied, ignored, failed".into(),
            ));
        }
    }
    let limit = super::pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut h = state.store().acquire().await?;
    let rows = h
        .conn()
        .list_webhook_events(q.status.as_deref(), before.map(|c| (c.at, c.id)), limit + 1)
        .await?;
    Ok(Json(
        Page::from_rows(rows, limit, |r| Cursor {
            at: r.received_at,
            id: r.id.clone(),
        })
        .map(WebhookEventOut::from),
    ))
}

async fn get_webhook_event(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
) -> Result<Json<WebhookEventOut>> {
    let mut h = state.store().acquire().await?;
    let row = h
        .conn()
        .get_webhook_event(&id)
        .await?
        .ok_or(Error::NotFound(Resource::WebhookEvent))?;
    Ok(Json(row.into()))
}

/// Queues a stored event for application again (after a fix, or to re-run
/// an ignored one). Applying is idempotent: a replay of an applied event
/// changes nothing.
async fn replay_webhook_event(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
) -> Result<Json<WebhookEventOut>> {
    let mut h = state.store().acquire().await?;
    let now = crate::storage::now();
    if !h.conn().requeue_webhook_event(&id, now).await? {
        return Err(Error::NotFound(Resource::WebhookEvent));
    }
    state.wake_inbox();
    let row = h
        .conn()
        .get_webhook_event(&id)
        .await?
        .ok_or(Error::NotFound(Resource::WebhookEvent))?;
    Ok(Json(row.into()))
}

/// Runs one reconciliation pass now and answers what it recovered:
/// `{"events_listed", "events_new", "payments_checked", "payments_moved"}`.
async fn reconcile(
    State(state): State<AppState>,
    _: SecretKey,
) -> Result<Json<inbox::reconcile::Report>> {
    let report = inbox::reconcile::run_once(state.store(), state.stripe().client()).await?;
    if report.events_new > 0 {
        state.wake_inbox();
    }
    Ok(Json(report))
}
