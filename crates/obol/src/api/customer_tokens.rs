//! `/v1/customer-tokens`: short-lived bearer tokens the host backend mints
//! so a customer's browser, app or agent can act for that customer only.

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::Json;
use super::{no_store, AppState};
use crate::error::Result;
use crate::ops::customer_tokens::{self, CustomerTokenIn, CustomerTokenOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_customer_token))
        .routes(routes!(revoke_customer_token))
}

/// Mints a customer token.
///
/// The answer carries the token itself, once (obol stores its hash). Hand
/// it to the customer's browser, app or agent: it acts for that customer
/// only, until it expires or is revoked.
#[utoipa::path(post, path = "/v1/customer-tokens", tag = "customers",
    security(("secret_key" = [])),
    request_body = CustomerTokenIn,
    responses((status = 201, description = "Created; `token` is shown only here.", body = CustomerTokenOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "customer_not_found", "ttl_out_of_range"]))),
)]
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
#[utoipa::path(delete, path = "/v1/customer-tokens/{id}", tag = "customers",
    security(("secret_key" = [])),
    params(("id" = crate::ids::CustomerTokenId, Path, description = "The token's id (not the token).")),
    responses((status = 200, description = "Revoked (again, if it already was).", body = CustomerTokenOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "customer_token_not_found"]))),
)]
async fn revoke_customer_token(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<CustomerTokenOut>> {
    Ok(Json(
        customer_tokens::revoke(state.ctx(), &actor, &id).await?,
    ))
}
