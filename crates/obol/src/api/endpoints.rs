//! `/v1/webhook-endpoints`: where obol sends its signed notifications, and
//! the record of every delivery (rules in `ops::endpoints`).

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::{no_store, AppState};
use crate::error::Result;
use crate::ops::endpoints::{self, DeliveryOut, DeliveryQuery, EndpointIn, EndpointOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, delete_endpoint))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_delivery))
}

/// Adds a notification endpoint.
///
/// The answer carries its signing secret (`whsec_…`), once. The types it
/// may subscribe to are the document's `webhooks`.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "notifications",
    security(("secret_key" = [])),
    request_body = EndpointIn,
    responses((status = 201, description = "Created; `secret` is shown only here.", body = EndpointOut)),
    extensions(("x-error-codes" = json!([
        "invalid_url", "url_not_allowed", "invalid_event_types", "field_empty", "field_too_long", "field_invalid"
    ]))),
)]
async fn create_endpoint(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<EndpointIn>,
) -> Result<(
    StatusCode,
    [(HeaderName, HeaderValue); 1],
    Json<EndpointOut>,
)> {
    let out = endpoints::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, [no_store()], Json(out)))
}

/// Every active endpoint.
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "notifications",
    security(("secret_key" = [])),
    responses((status = 200, description = "The endpoints (one page).", body = crate::openapi::pages::EndpointPage)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn list_endpoints(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
) -> Result<Json<Page<EndpointOut>>> {
    Ok(Json(endpoints::list(state.ctx(), &actor).await?))
}

/// An endpoint (without its secret).
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "notifications",
    security(("secret_key" = [])),
    params(("id" = crate::ids::EndpointId, Path, description = "The endpoint.")),
    responses((status = 200, description = "The endpoint.", body = EndpointOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "webhook_endpoint_not_found"]))),
)]
async fn get_endpoint(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<EndpointOut>> {
    Ok(Json(endpoints::get(state.ctx(), &actor, &id).await?))
}

/// Stops deliveries to the endpoint; its delivery history stays.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "notifications",
    security(("secret_key" = [])),
    params(("id" = crate::ids::EndpointId, Path, description = "The endpoint.")),
    responses((status = 204, description = "Deleted.")),
    extensions(("x-error-codes" = json!(["invalid_id", "webhook_endpoint_not_found"]))),
)]
async fn delete_endpoint(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    endpoints::delete(state.ctx(), &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "notifications",
    security(("secret_key" = [])),
    params(("id" = crate::ids::EndpointId, Path, description = "The endpoint."), DeliveryQuery),
    responses((status = 200, description = "A page of deliveries.", body = crate::openapi::pages::DeliveryPage)),
    extensions(("x-error-codes" = json!(["invalid_id", "invalid_query", "webhook_endpoint_not_found"]))),
)]
async fn list_deliveries(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<Page<DeliveryOut>>> {
    Ok(Json(
        endpoints::list_deliveries(state.ctx(), &actor, &id, q).await?,
    ))
}

/// Sends a delivery again now, whatever became of it.
#[utoipa::path(post, path = "/v1/webhook-deliveries/{id}/replay", tag = "notifications",
    security(("secret_key" = [])),
    params(("id" = crate::ids::DeliveryId, Path, description = "The delivery.")),
    responses((status = 200, description = "The delivery, due now.", body = DeliveryOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "webhook_delivery_not_found"]))),
)]
async fn replay_delivery(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>> {
    Ok(Json(
        endpoints::replay_delivery(state.ctx(), &actor, &id).await?,
    ))
}
