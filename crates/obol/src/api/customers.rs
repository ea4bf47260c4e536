//! `/v1/customers`: obol's record of the host application's customers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::Json;
use super::AppState;
use crate::context::Actor;
use crate::error::Result;
use crate::ops::customers::{self, CustomerIn, CustomerOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_customer))
        .routes(routes!(get_customer))
}

/// Creates a customer.
///
/// A taken `external_id` answers 409 `customer_exists` with `existing_id`,
/// so a host retrying after a timeout finds its record.
#[utoipa::path(post, path = "/v1/customers", tag = "customers",
    security(("secret_key" = [])),
    request_body = CustomerIn,
    responses((status = 201, description = "Created.", body = CustomerOut)),
    extensions(("x-error-codes" = json!([
        "field_empty", "field_too_long", "field_invalid", "invalid_email", "customer_exists"
    ]))),
)]
async fn create_customer(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<CustomerIn>,
) -> Result<(StatusCode, Json<CustomerOut>)> {
    let out = customers::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// A customer, for the secret key or that customer's own token.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    security(("secret_key" = []), ("customer_token" = [])),
    params(("id" = crate::ids::CustomerId, Path, description = "The customer.")),
    responses((status = 200, description = "The customer.", body = CustomerOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "customer_not_found"]))),
)]
async fn get_customer(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<CustomerOut>> {
    Ok(Json(customers::get(state.ctx(), &actor, &id).await?))
}
