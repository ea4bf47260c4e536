//! `/v1/webhook-endpoints`: where obol sends its signed notifications, and
//! the record of every delivery (rules in `ops::endpoints`).

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::{no_store, AppState};
use crate::error::Result;
use crate::ops::endpoints::{self, DeliveryOut, DeliveryQuery, EndpointIn, EndpointOut};

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

async fn list_endpoints(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
) -> Result<Json<Page<EndpointOut>>> {
    Ok(Json(endpoints::list(state.ctx(), &actor).await?))
}

async fn get_endpoint(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<EndpointOut>> {
    Ok(Json(endpoints::get(state.ctx(), &actor, &id).await?))
}

/// Stops deliveries to the endpoint; its delivery history stays.
async fn delete_endpoint(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    endpoints::delete(state.ctx(), &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

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
async fn replay_delivery(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>> {
    Ok(Json(
        endpoints::replay_delivery(state.ctx(), &actor, &id).await?,
    ))
}
