//! `/v1/jobs`: the background job queue, for operators (rules in
//! `ops::jobs`). Secret key only.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::error::Result;
use crate::ops::jobs::{self, JobOut, ListQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/retry", post(retry_job))
}

/// `GET /v1/jobs?status=queued|running|succeeded|dead`, newest first.
async fn list_jobs(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<JobOut>>> {
    Ok(Json(jobs::list(state.ctx(), &actor, q).await?))
}

/// `GET /v1/jobs/{id}`: the job with `runs`.
async fn get_job(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<JobOut>> {
    Ok(Json(jobs::get(state.ctx(), &actor, &id).await?))
}

/// `POST /v1/jobs/{id}/retry`: queues a dead job again now, with a fresh
/// retry schedule. 409 `job_not_dead` otherwise.
async fn retry_job(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<JobOut>> {
    Ok(Json(jobs::retry(state.ctx(), &actor, &id).await?))
}
