//! `/v1/disputes` and `/v1/tasks`: chargebacks and the work they create
//! (rules in `ops::disputes`).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::error::Result;
use crate::ops::disputes::{self, DisputeOut, ListQuery, TaskOut};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/disputes", get(list_disputes))
        .route("/v1/disputes/{id}", get(get_dispute))
        .route("/v1/tasks", get(list_tasks))
}

async fn list_disputes(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<DisputeOut>>> {
    Ok(Json(disputes::list(state.ctx(), &actor, q).await?))
}

async fn get_dispute(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<DisputeOut>> {
    Ok(Json(disputes::get(state.ctx(), &actor, &id).await?))
}

async fn list_tasks(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<TaskOut>>> {
    Ok(Json(disputes::list_tasks(state.ctx(), &actor, q).await?))
}
