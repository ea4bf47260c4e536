//! `POST /webhooks/stripe` (Stripe's deliveries) and the inbox's API:
//! `GET /v1/webhook-events`, `POST /v1/webhook-events/{id}/replay`,
//! `POST /v1/reconciliations` (rules in `ops::webhook_events` and
//! `ops::reconciliation`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::error::Result;
use crate::ops::reconciliation::{self, Report};
use crate::ops::webhook_events::{self, ListWebhookEvents, ReceiptOut, WebhookEventOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive_stripe_event))
        .routes(routes!(list_webhook_events))
        .routes(routes!(get_webhook_event))
        .routes(routes!(replay_webhook_event))
        .routes(routes!(reconcile))
}

/// Stripe's webhook delivery (point the Stripe endpoint here).
///
/// The signature is checked against the configured `whsec_…` secrets;
/// 200 only once the event is stored, so Stripe retries anything obol did
/// not keep. A bad or missing signature answers 401 `invalid_signature`
/// and stores nothing. An event obol cannot read is stored as ignored and
/// answered 200 (a retry would not help).
#[utoipa::path(post, path = "/webhooks/stripe", tag = "stripe_inbox",
    security(()),
    params(("Stripe-Signature" = String, Header, description = "`t=…,v1=…`, Stripe's signature of the raw body.")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe Event, as Stripe sends it."),
    responses((status = 200, description = "Stored (or already stored).", body = ReceiptOut)),
    extensions(("x-error-codes" = json!(["invalid_signature"]))),
)]
async fn receive_stripe_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ReceiptOut>> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let secrets = state.webhook_secrets();
    Ok(Json(
        webhook_events::receive(state.ctx(), &secrets, &body, signature).await?,
    ))
}

/// The Stripe events obol stored, newest first.
#[utoipa::path(get, path = "/v1/webhook-events", tag = "stripe_inbox",
    security(("secret_key" = [])),
    params(ListWebhookEvents),
    responses((status = 200, description = "A page of events.", body = crate::openapi::pages::WebhookEventPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_webhook_events(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListWebhookEvents>,
) -> Result<Json<Page<WebhookEventOut>>> {
    Ok(Json(webhook_events::list(state.ctx(), &actor, q).await?))
}

/// One stored event.
#[utoipa::path(get, path = "/v1/webhook-events/{id}", tag = "stripe_inbox",
    security(("secret_key" = [])),
    params(("id" = crate::ids::WebhookEventId, Path, description = "The stored event.")),
    responses((status = 200, description = "The event.", body = WebhookEventOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "webhook_event_not_found"]))),
)]
async fn get_webhook_event(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<WebhookEventOut>> {
    Ok(Json(webhook_events::get(state.ctx(), &actor, &id).await?))
}

/// Queues a stored event for application again.
///
/// Applying is idempotent: an event already applied changes nothing twice.
#[utoipa::path(post, path = "/v1/webhook-events/{id}/replay", tag = "stripe_inbox",
    security(("secret_key" = [])),
    params(("id" = crate::ids::WebhookEventId, Path, description = "The stored event.")),
    responses((status = 200, description = "The event, queued.", body = WebhookEventOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "webhook_event_not_found"]))),
)]
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
///
/// Lists Stripe's recent events and stores those the inbox lacks, then
/// compares open payments with their PaymentIntents.
#[utoipa::path(post, path = "/v1/reconciliations", tag = "stripe_inbox",
    security(("secret_key" = [])),
    responses((status = 200, description = "What the pass found.", body = Report)),
    extensions(("x-error-codes" = json!(["stripe_error"]))),
)]
async fn reconcile(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
) -> Result<Json<Report>> {
    Ok(Json(reconciliation::run(state.ctx(), &actor).await?))
}
