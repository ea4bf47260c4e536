//! `/v1/webhook-endpoints`: where obol sends its signed notifications, and
//! the record of every delivery.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::{no_store, AppState};
use crate::error::{Error, Resource, Result};
use crate::outbox;
use crate::storage::notifications::{DeliveryRow, EndpointRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/webhook-endpoints",
            post(create_endpoint).get(list_endpoints),
        )
        .route(
            "/v1/webhook-endpoints/{id}",
            get(get_endpoint).delete(delete_endpoint),
        )
        .route(
            "/v1/webhook-endpoints/{id}/deliveries",
            get(list_deliveries),
        )
        .route("/v1/webhook-deliveries/{id}/replay", post(replay_delivery))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    pub url: String,
    /// Event types to receive, or `["*"]` for all.
    pub event_types: Vec<String>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EndpointOut {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub status: String,
    /// `whsec_…`, in the response that creates the endpoint only.
    #[serde(skip_serializing_if = "Option::is_none")]
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

#[derive(Debug, Serialize)]
pub struct DeliveryOut {
    pub id: String,
    /// The `webhook-id` the receiver saw.
    pub message_id: String,
    pub endpoint_id: String,
    /// pending, succeeded, failed (after the retry schedule) or canceled.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for DeliveryOut {
    fn from(r: DeliveryRow) -> Self {
        let pending = r.status == "pending";
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

async fn create_endpoint(
    State(state): State<AppState>,
    _: SecretKey,
    Json(body): Json<EndpointIn>,
) -> Result<(
    StatusCode,
    [(axum::http::HeaderName, axum::http::HeaderValue); 1],
    Json<EndpointOut>,
)> {
    let url = url::Url::parse(&body.url)
        .map_err(|_| Error::rule("invalid_url", "url must be an absolute http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::rule(
            "invalid_url",
            "url must be an absolute http(s) URL",
        ));
    }
    if body.event_types.is_empty() {
        return Err(Error::rule(
            "invalid_event_types",
            "event_types must name at least one type, or \"*\"",
        ));
    }
    for t in &body.event_types {
        if t != "*" && !outbox::EVENT_TYPES.contains(&t.as_str()) {
            return Err(Error::rule(
                "invalid_event_types",
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
    let id = crate::ids::new_id("ep_");
    let mut h = state.store().acquire().await?;
    let row = h
        .conn()
        .insert_endpoint(
            &id,
            url.as_str(),
            &body.event_types,
            &outbox::new_secret(),
            description,
            crate::storage::now(),
        )
        .await?;
    tracing::info!(endpoint = %row.id, "webhook endpoint created");
    Ok((
        StatusCode::CREATED,
        [no_store()],
        Json(EndpointOut::from_row(row, true)),
    ))
}

async fn list_endpoints(
    State(state): State<AppState>,
    _: SecretKey,
) -> Result<Json<Page<EndpointOut>>> {
    let mut h = state.store().acquire().await?;
    let rows = h.conn().list_endpoints().await?;
    Ok(Json(Page {
        data: rows
            .into_iter()
            .map(|r| EndpointOut::from_row(r, false))
            .collect(),
        has_more: false,
        next_cursor: None,
    }))
}

async fn get_endpoint(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
) -> Result<Json<EndpointOut>> {
    let mut h = state.store().acquire().await?;
    let row = h
        .conn()
        .get_endpoint(&id)
        .await?
        .ok_or(Error::NotFound(Resource::WebhookEndpoint))?;
    Ok(Json(EndpointOut::from_row(row, false)))
}

/// Stops deliveries to the endpoint; its delivery history stays.
async fn delete_endpoint(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let mut h = state.store().acquire().await?;
    if h.conn().delete_endpoint(&id, crate::storage::now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(Resource::WebhookEndpoint))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    pub status: Option<String>,
    pub limit: Option<i64>,
}

async fn list_deliveries(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<Page<DeliveryOut>>> {
    let limit = super::pagination::limit(q.limit)?;
    let mut h = state.store().acquire().await?;
    let mut conn = h.conn();
    conn.get_endpoint(&id)
        .await?
        .ok_or(Error::NotFound(Resource::WebhookEndpoint))?;
    let rows = conn
        .list_deliveries(&id, q.status.as_deref(), limit + 1)
        .await?;
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(0);
    Ok(Json(Page {
        data: rows
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(0))
            .map(DeliveryOut::from)
            .collect(),
        has_more,
        next_cursor: None,
    }))
}

/// Sends a delivery again now, whatever became of it.
async fn replay_delivery(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>> {
    let mut h = state.store().acquire().await?;
    let row = h
        .conn()
        .requeue_delivery(&id, crate::storage::now())
        .await?
        .ok_or(Error::NotFound(Resource::WebhookDelivery))?;
    Ok(Json(row.into()))
}
