//! `/v1/charge-runs`: off-session charges of many members' saved cards
//! (rules in `ops::charge_runs`). Secret key only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::AppState;
use crate::error::Result;
use crate::ops::charge_runs::{
    self, ChargeRunIn, ChargeRunOut, ItemPage, ItemsAdded, ItemsIn, ItemsQuery,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_charge_run))
        .routes(routes!(get_charge_run))
        .routes(routes!(add_charge_run_items, list_charge_run_items))
        .routes(routes!(start_charge_run))
        .routes(routes!(cancel_charge_run))
}

/// Creates a draft charge run.
#[utoipa::path(post, path = "/v1/charge-runs", tag = "charge_runs",
    security(("secret_key" = [])),
    request_body = ChargeRunIn,
    responses((status = 201, description = "The draft run.", body = ChargeRunOut)),
    extensions(("x-error-codes" = json!(["field_empty", "field_too_long", "field_invalid", "currency_unsupported"]))),
)]
async fn create_charge_run(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<ChargeRunIn>,
) -> Result<(StatusCode, Json<ChargeRunOut>)> {
    let out = charge_runs::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// A run with its counts and amounts by outcome, progress, rate and
/// estimated time left.
#[utoipa::path(get, path = "/v1/charge-runs/{id}", tag = "charge_runs",
    security(("secret_key" = [])),
    params(("id" = crate::ids::ChargeRunId, Path, description = "The run.")),
    responses((status = 200, description = "The run.", body = ChargeRunOut)),
    extensions(("x-error-codes" = json!(["charge_run_not_found"]))),
)]
async fn get_charge_run(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<ChargeRunOut>> {
    Ok(Json(charge_runs::get(state.ctx(), &actor, &id).await?))
}

/// Adds up to 1,000 items to a draft run, all or none; call it as often
/// as needed (a run of 100,000 items is streamed in).
#[utoipa::path(post, path = "/v1/charge-runs/{id}/items", tag = "charge_runs",
    security(("secret_key" = [])),
    params(("id" = crate::ids::ChargeRunId, Path, description = "The run.")),
    request_body = ItemsIn,
    responses((status = 201, description = "Added.", body = ItemsAdded)),
    extensions(("x-error-codes" = json!([
        "charge_run_not_found", "charge_run_not_draft", "invalid_line_items", "field_invalid", "field_empty",
        "field_too_long", "duplicate_reference", "amount_not_positive", "amount_too_large", "amount_precision",
        "amount_too_small"
    ]))),
)]
async fn add_charge_run_items(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(body): Json<ItemsIn>,
) -> Result<(StatusCode, Json<ItemsAdded>)> {
    let out = charge_runs::add_items(state.ctx(), &actor, &id, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// A run's items in the order they were added, optionally of one outcome.
#[utoipa::path(get, path = "/v1/charge-runs/{id}/items", tag = "charge_runs",
    security(("secret_key" = [])),
    params(("id" = crate::ids::ChargeRunId, Path, description = "The run."), ItemsQuery),
    responses((status = 200, description = "A page of items.", body = ItemPage)),
    extensions(("x-error-codes" = json!(["charge_run_not_found", "invalid_query"]))),
)]
async fn list_charge_run_items(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Query(q): Query<ItemsQuery>,
) -> Result<Json<ItemPage>> {
    Ok(Json(
        charge_runs::list_items(state.ctx(), &actor, &id, q).await?,
    ))
}

/// Starts a draft run: its items are charged off-session, each at most once.
#[utoipa::path(post, path = "/v1/charge-runs/{id}/start", tag = "charge_runs",
    security(("secret_key" = [])),
    params(("id" = crate::ids::ChargeRunId, Path, description = "The run.")),
    responses((status = 200, description = "Running.", body = ChargeRunOut)),
    extensions(("x-error-codes" = json!(["charge_run_not_found", "charge_run_not_draft", "organization_not_connected"]))),
)]
async fn start_charge_run(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<ChargeRunOut>> {
    Ok(Json(charge_runs::start(state.ctx(), &actor, &id).await?))
}

/// Cancels a run: no new charges; items not yet sent are `canceled`,
/// charges already sent finish.
#[utoipa::path(post, path = "/v1/charge-runs/{id}/cancel", tag = "charge_runs",
    security(("secret_key" = [])),
    params(("id" = crate::ids::ChargeRunId, Path, description = "The run.")),
    responses((status = 200, description = "Canceled.", body = ChargeRunOut)),
    extensions(("x-error-codes" = json!(["charge_run_not_found", "charge_run_not_cancelable"]))),
)]
async fn cancel_charge_run(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<ChargeRunOut>> {
    Ok(Json(charge_runs::cancel(state.ctx(), &actor, &id).await?))
}
