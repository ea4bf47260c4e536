//! `/v1/customers`: obol's record of the host application's customers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use super::auth::SecretKey;
use super::json::Json;
use super::AppState;
use crate::context::Actor;
use crate::error::Result;
use crate::ops::customers::{self, CustomerIn, CustomerOut};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customers", post(create_customer))
        .route("/v1/customers/{id}", get(get_customer))
}

/// Creates a customer. A taken `external_id` answers 409 `customer_exists`
/// with `existing_id`, so a host retrying after a timeout finds its record.
async fn create_customer(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<CustomerIn>,
) -> Result<(StatusCode, Json<CustomerOut>)> {
    let out = customers::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// A customer, for the secret key or that customer's own token.
async fn get_customer(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<CustomerOut>> {
    Ok(Json(customers::get(state.ctx(), &actor, &id).await?))
}
