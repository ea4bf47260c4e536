//! `/v1/orders`: what a customer or a guest buys (rules in `ops::orders`).
//!
//! Who may create one: the secret key. Who may see an order: the secret key, the owning customer's token, or
//! the order's guest token (`X-Guest-Token`, or `?guest_token=`); anyone
//! else gets 404, and no credential at all 401.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use super::auth::{OrderActor, SecretKey};
use super::json::Json;
use super::AppState;
use crate::context::Actor;
use crate::error::Result;
use crate::ops::orders::{self, OrderIn, OrderOut, OrderPatch};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders", post(create_order))
        .route("/v1/orders/{id}", get(get_order).patch(update_order))
}

/// Creates an order with the total computed by obol (secret key only: a
/// customer token answers 401 `secret_key_required`, see `ops::orders::create`).
async fn create_order(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<OrderIn>,
) -> Result<(StatusCode, Json<OrderOut>)> {
    let out = orders::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

async fn get_order(
    State(state): State<AppState>,
    OrderActor(actor): OrderActor,
    Path(id): Path<String>,
) -> Result<Json<OrderOut>> {
    Ok(Json(orders::get(state.ctx(), &actor, &id).await?))
}

/// Moves an order along the transition table (secret key only).
async fn update_order(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(patch): Json<OrderPatch>,
) -> Result<Json<OrderOut>> {
    Ok(Json(
        orders::update_status(state.ctx(), &actor, &id, patch).await?,
    ))
}
