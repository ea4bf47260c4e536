//! `/v1/jobs`: the background job queue, for operators. Secret key only.
//! Parse, one `ops::jobs` call, render; no SQL here.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::{self, Cursor, Page};
use super::AppState;
use crate::error::{Error, Result};
use crate::jobs::JobStatus;
use crate::ops;
use crate::storage::jobs::{JobRow, JobRunRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/retry", post(retry_job))
}

/// A background job.
#[derive(Debug, Serialize)]
pub struct JobOut {
    pub id: String,
    /// release_authorization, resubmit_refund or reconcile.
    pub kind: String,
    /// The kind's own payload, e.g. `{"payment_id": "pay_…", "reason": "…"}`.
    pub payload: serde_json::Value,
    pub account_id: String,
    /// queued, running, succeeded or dead.
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
    /// The worker holding the job (`<pid>-<ulid>`), while running.
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Every attempt, oldest first (on `GET /v1/jobs/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<JobRunOut>>,
}

/// One attempt of a job.
#[derive(Debug, Serialize)]
pub struct JobRunOut {
    pub attempt: i32,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// running, succeeded, retry, dead, lease_lost or lease_expired.
    pub outcome: String,
    pub error: Option<String>,
}

impl From<JobRow> for JobOut {
    fn from(r: JobRow) -> Self {
        JobOut {
            payload: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
            id: r.id,
            kind: r.kind,
            account_id: r.account_id,
            status: r.status,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            next_attempt_at: r.next_attempt_at,
            locked_until: r.locked_until,
            locked_by: r.locked_by,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            runs: None,
        }
    }
}

impl From<JobRunRow> for JobRunOut {
    fn from(r: JobRunRow) -> Self {
        JobRunOut {
            attempt: r.attempt,
            worker: r.worker,
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome,
            error: r.error,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// `GET /v1/jobs?status=queued|running|succeeded|dead`, newest first.
async fn list_jobs(
    State(state): State<AppState>,
    _: SecretKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<JobOut>>> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                Error::InvalidQuery("status is queued, running, succeeded or dead".into())
            })
        })
        .transpose()?;
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let rows = ops::jobs::list_jobs(
        state.store(),
        status,
        before.map(|c| (c.at, c.id)),
        limit + 1,
    )
    .await?;
    Ok(Json(
        Page::from_rows(rows, limit, |r| Cursor {
            at: r.created_at,
            id: r.id.clone(),
        })
        .map(JobOut::from),
    ))
}

/// `GET /v1/jobs/{id}`: the job with `runs`.
async fn get_job(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
) -> Result<Json<JobOut>> {
    let (job, runs) = ops::jobs::get_job(state.store(), &id).await?;
    let mut out = JobOut::from(job);
    out.runs = Some(runs.into_iter().map(JobRunOut::from).collect());
    Ok(Json(out))
}

/// `POST /v1/jobs/{id}/retry`: queues a dead job again now, with a fresh
/// retry schedule. 409 `job_not_dead` otherwise.
async fn retry_job(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
) -> Result<Json<JobOut>> {
    let job = ops::jobs::retry_job(state.store(), &id).await?;
    Ok(Json(JobOut::from(job)))
}
