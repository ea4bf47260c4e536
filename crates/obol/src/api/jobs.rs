//! `/v1/jobs`: the background job queue, for operators (rules in
//! `ops::jobs`). Secret key only.

use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::error::Result;
use crate::ops::jobs::{self, JobOut, ListQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(retry_job))
}

/// Background jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    security(("secret_key" = [])),
    params(ListQuery),
    responses((status = 200, description = "A page of jobs.", body = crate::openapi::pages::JobPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_jobs(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<JobOut>>> {
    Ok(Json(jobs::list(state.ctx(), &actor, q).await?))
}

/// A job with every attempt (`runs`).
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    security(("secret_key" = [])),
    params(("id" = crate::ids::JobId, Path, description = "The job.")),
    responses((status = 200, description = "The job.", body = JobOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "job_not_found"]))),
)]
async fn get_job(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<JobOut>> {
    Ok(Json(jobs::get(state.ctx(), &actor, &id).await?))
}

/// Queues a dead job again now, with a fresh retry schedule.
///
/// 409 `job_not_dead` for a job that is not dead.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    security(("secret_key" = [])),
    params(("id" = crate::ids::JobId, Path, description = "The job.")),
    responses((status = 200, description = "The job, queued.", body = JobOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "job_not_found", "job_not_dead", "job_already_queued"]))),
)]
async fn retry_job(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<JobOut>> {
    Ok(Json(jobs::retry(state.ctx(), &actor, &id).await?))
}
