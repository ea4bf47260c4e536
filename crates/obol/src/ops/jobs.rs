//! Background jobs as operators see them: list, inspect with every attempt,
//! retry a dead one. The runner itself lives in `jobs/`; the HTTP routes
//! in `api/jobs.rs` call these.

use chrono::{DateTime, Utc};

use crate::error::{Error, Resource, Result};
use crate::jobs::{self, JobInput, JobState, JobStatus};
use crate::storage::jobs::{JobRow, JobRunRow};
use crate::storage::{self, Store};

/// Jobs newest first, optionally of one status, after a keyset cursor.
pub async fn list_jobs(
    store: &Store,
    status: Option<JobStatus>,
    before: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> Result<Vec<JobRow>> {
    let mut h = store.acquire().await?;
    h.conn()
        .list_jobs(status.map(JobStatus::as_str), before, limit)
        .await
}

/// One job with its attempts, oldest first.
pub async fn get_job(store: &Store, id: &str) -> Result<(JobRow, Vec<JobRunRow>)> {
    let mut h = store.acquire().await?;
    let mut conn = h.conn();
    let job = conn
        .get_job(id)
        .await?
        .ok_or(Error::NotFound(Resource::Job))?;
    let runs = conn.list_job_runs(&job.id).await?;
    Ok((job, runs))
}

/// Queues a dead job again with a fresh retry schedule. 409 `job_not_dead`
/// for any other status; 409 `job_already_queued` when another job for the
/// same work is queued or running meanwhile.
pub async fn retry_job(store: &Store, id: &str) -> Result<JobRow> {
    let mut tx = store.begin().await?;
    let job = tx
        .conn()
        .get_job(id)
        .await?
        .ok_or(Error::NotFound(Resource::Job))?;
    let not_dead = || {
        Error::rule_conflict(
            "job_not_dead",
            format!("the job is {}; only a dead job can be retried", job.status),
        )
    };
    let status = JobStatus::parse(&job.status).ok_or_else(not_dead)?;
    let state = JobState {
        status,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
    };
    jobs::transition(state, JobInput::OperatorRetry).map_err(|_| not_dead())?;
    let requeued = match tx.conn().requeue_dead_job(&job.id, storage::now()).await {
        Ok(row) => row.ok_or_else(not_dead)?,
        Err(Error::Database(e)) if storage::is_unique_violation(&e) => {
            return Err(Error::rule_conflict(
                "job_already_queued",
                "another job for the same work is queued or running",
            ))
        }
        Err(e) => return Err(e),
    };
    tx.commit().await?;
    jobs::wake();
    Ok(requeued)
}
