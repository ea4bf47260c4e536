//! `POST /webhooks/stripe` (Stripe's deliveries) and the inbox's API:
//! `GET /v1/webhook-events`, `POST /v1/webhook-events/{id}/replay`,
//! `POST /v1/reconciliations` (rules in `ops::webhook_events` and
//! `ops::reconciliation`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::error::Result;
use crate::ops::reconciliation::{self, Report};
use crate::ops::webhook_events::{self, ListWebhookEvents, WebhookEventOut};

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
    Ok(Json(
        webhook_events::receive(state.ctx(), &secrets, &body, signature).await?,
    ))
}

async fn list_webhook_events(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListWebhookEvents>,
) -> Result<Json<Page<WebhookEventOut>>> {
    Ok(Json(webhook_events::list(state.ctx(), &actor, q).await?))
}

async fn get_webhook_event(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<WebhookEventOut>> {
    Ok(Json(webhook_events::get(state.ctx(), &actor, &id).await?))
}

/// Queues a stored event for application again.
async fn replay_webhook_event(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<WebhookEventOut>> {
    Ok(Json(
        webhook_events::replay(state.ctx(), &actor, &id).await?,
    ))
}

/// Runs one reconciliation pass now and answers what it recovered.
async fn reconcile(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
) -> Result<Json<Report>> {
    Ok(Json(reconciliation::run(state.ctx(), &actor).await?))
}
