//! Background jobs as operators see them: list, inspect with every attempt,
//! retry a dead one. The runner itself lives in `jobs/`; the HTTP routes
//! in `api/jobs.rs` call these. Secret key only; a job belongs to the
//! Stripe account of the work it does.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pagination::{self, Cursor, Page};
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::jobs::{self, JobInput, JobState, JobStatus};
use crate::storage;
use crate::storage::jobs::{JobRow, JobRunRow};

/// A background job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobOut {
    #[schema(value_type = crate::ids::JobId)]
    pub id: String,
    /// release_authorization, resubmit_refund, reconcile, invoice_paid,
    /// accounting_sync, invoice_sweep or send_email.
    pub kind: String,
    /// The kind's own payload, e.g. `{"payment_id": "pay_…", "reason": "…"}`.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The account the job acts for (`default`: the platform).
    pub account_id: String,
    #[schema(value_type = crate::ledger::job::JobStatus)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this status.
    #[param(value_type = Option<crate::ledger::job::JobStatus>)]
    pub status: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A malformed id is as unknown as a well-formed one that does not exist.
fn parse_id(id: &str) -> Result<crate::ids::JobId> {
    crate::ids::JobId::parse(id).map_err(|_| Error::NotFound(Resource::Job))
}

/// The account's jobs newest first, optionally of one status.
pub async fn list(ctx: &Ctx, actor: &Actor, q: ListQuery) -> Result<Page<JobOut>> {
    actor.require_secret()?;
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
    let mut h = ctx.store().acquire().await?;
    let rows = h
        .conn()
        .list_jobs(
            actor.account(),
            status.map(JobStatus::as_str),
            before.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    })
    .map(JobOut::from))
}

/// One job with its attempts, oldest first.
pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<JobOut> {
    actor.require_secret()?;
    let id = parse_id(id)?;
    let id = id.as_str();
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let job = conn
        .get_job(actor.account(), id)
        .await?
        .ok_or(Error::NotFound(Resource::Job))?;
    let runs = conn.list_job_runs(&job.id).await?;
    let mut out = JobOut::from(job);
    out.runs = Some(runs.into_iter().map(JobRunOut::from).collect());
    Ok(out)
}

/// Queues a dead job again now with a fresh retry schedule. 409
/// `job_not_dead` for any other status; 409 `job_already_queued` when
/// another job for the same work is queued or running meanwhile.
pub async fn retry(ctx: &Ctx, actor: &Actor, id: &str) -> Result<JobOut> {
    actor.require_secret()?;
    let id = parse_id(id)?;
    let id = id.as_str();
    let mut tx = ctx.store().begin().await?;
    let job = tx
        .conn()
        .get_job(actor.account(), id)
        .await?
        .ok_or(Error::NotFound(Resource::Job))?;
    let not_dead = || {
        Error::rule(
            RuleCode::JobNotDead,
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
    let requeued = match tx
        .conn()
        .requeue_dead_job(actor.account(), &job.id, ctx.now())
        .await
    {
        Ok(row) => row.ok_or_else(not_dead)?,
        Err(Error::Database(e)) if storage::is_unique_violation(&e) => {
            return Err(Error::rule(
                RuleCode::JobAlreadyQueued,
                "another job for the same work is queued or running",
            ))
        }
        Err(e) => return Err(e),
    };
    tx.commit().await?;
    jobs::wake();
    Ok(requeued.into())
}
