//! `/v1/customer-tokens`: short-lived bearer tokens the host backend mints
//! so a customer's browser, app or agent can act for that customer only.

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::routing::{delete, post};
use axum::Router;

use super::auth::SecretKey;
use super::json::Json;
use super::{no_store, AppState};
use crate::error::Result;
use crate::ops::customer_tokens::{self, CustomerTokenIn, CustomerTokenOut};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customer-tokens", post(create_customer_token))
        .route("/v1/customer-tokens/{id}", delete(revoke_customer_token))
}

async fn create_customer_token(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<CustomerTokenIn>,
) -> Result<(
    StatusCode,
    [(HeaderName, HeaderValue); 1],
    Json<CustomerTokenOut>,
)> {
    let out = customer_tokens::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, [no_store()], Json(out)))
}

/// Revokes a token at once; later requests with it answer 401.
async fn revoke_customer_token(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<CustomerTokenOut>> {
    Ok(Json(
        customer_tokens::revoke(state.ctx(), &actor, &id).await?,
    ))
}
