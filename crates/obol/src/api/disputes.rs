//! `/v1/disputes` and `/v1/tasks`: chargebacks and the work they create
//! (rules in `ops::disputes`).

use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::error::Result;
use crate::ops::disputes::{self, DisputeOut, ListQuery, TaskOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_disputes))
        .routes(routes!(get_dispute))
        .routes(routes!(list_tasks))
}

/// Disputes, newest first.
#[utoipa::path(get, path = "/v1/disputes", tag = "disputes",
    security(("secret_key" = [])),
    params(ListQuery),
    responses((status = 200, description = "A page of disputes.", body = crate::openapi::pages::DisputePage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_disputes(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<DisputeOut>>> {
    Ok(Json(disputes::list(state.ctx(), &actor, q).await?))
}

/// A dispute with its timeline.
#[utoipa::path(get, path = "/v1/disputes/{id}", tag = "disputes",
    security(("secret_key" = [])),
    params(("id" = crate::ids::DisputeId, Path, description = "The dispute.")),
    responses((status = 200, description = "The dispute.", body = DisputeOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "dispute_not_found"]))),
)]
async fn get_dispute(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<DisputeOut>> {
    Ok(Json(disputes::get(state.ctx(), &actor, &id).await?))
}

/// The merchant's tasks (respond to a dispute, …), newest first.
#[utoipa::path(get, path = "/v1/tasks", tag = "disputes",
    security(("secret_key" = [])),
    params(ListQuery),
    responses((status = 200, description = "A page of tasks.", body = crate::openapi::pages::TaskPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_tasks(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<TaskOut>>> {
    Ok(Json(disputes::list_tasks(state.ctx(), &actor, q).await?))
}
