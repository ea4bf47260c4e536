//! Accounting syncs as the host sees them: each invoice payment's sync to
//! each target, with every attempt, and a retry. Secret key only. The
//! work is done by the `accounting_sync` job (`jobs::accounting`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::jobs::JobRunOut;
use super::pagination::{self, Cursor, Page};
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::SyncJobId;
use crate::jobs;
use crate::storage::invoices::SyncJobRow;

/// A sync's status: `pending` (not tried yet), `failed` (the last attempt
/// failed: `next_attempt_at` says when it is tried again, null once obol
/// stopped retrying) or `succeeded` (final).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Pending,
    Failed,
    Succeeded,
}

impl SyncStatus {
    fn parse(s: &str) -> Option<SyncStatus> {
        match s {
            "pending" => Some(SyncStatus::Pending),
            "failed" => Some(SyncStatus::Failed),
            "succeeded" => Some(SyncStatus::Succeeded),
            _ => None,
        }
    }
}

/// The sync of one invoice payment to one accounting target.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncJobOut {
    #[schema(value_type = crate::ids::SyncJobId)]
    pub id: String,
    pub target: crate::accounting::Target,
    pub status: SyncStatus,
    #[schema(value_type = crate::ids::InvoiceId)]
    pub invoice_id: String,
    #[schema(value_type = crate::ids::PaymentId)]
    pub payment_id: String,
    /// What the target dedupes on (Xero `Idempotency-Key`, QuickBooks
    /// `requestid`, the webhook's `webhook-id`): the same on every attempt.
    pub idempotency_key: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// When the next attempt runs; null when none is scheduled.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// What the target answered (Xero PaymentID, QuickBooks SalesReceipt Id).
    pub external_id: Option<String>,
    #[schema(value_type = crate::ids::JobId)]
    pub job_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
    /// Every attempt, oldest first (on `GET /v1/sync-jobs/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<JobRunOut>>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only syncs in this status.
    #[param(value_type = Option<SyncStatus>)]
    pub status: Option<String>,
    /// Only this invoice's syncs.
    #[param(value_type = Option<crate::ids::InvoiceId>)]
    pub invoice_id: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn parse_id(id: &str) -> Result<SyncJobId> {
    SyncJobId::parse(id).map_err(|_| Error::NotFound(Resource::SyncJob))
}

async fn view(ctx: &Ctx, actor: &Actor, row: SyncJobRow, runs: bool) -> Result<SyncJobOut> {
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let job = conn.get_job(actor.account(), &row.job_id).await?;
    let next_attempt_at = match (&job, row.status.as_str()) {
        (Some(j), "pending" | "failed") if j.status == "queued" || j.status == "running" => {
            Some(j.next_attempt_at)
        }
        _ => None,
    };
    let runs = if runs && !row.job_id.is_empty() {
        Some(
            conn.list_job_runs(&row.job_id)
                .await?
                .into_iter()
                .map(JobRunOut::from)
                .collect(),
        )
    } else {
        None
    };
    Ok(SyncJobOut {
        target: crate::accounting::Target::parse(&row.target)
            .ok_or_else(|| Error::internal("a sync job names an unknown target"))?,
        status: SyncStatus::parse(&row.status).unwrap_or(SyncStatus::Pending),
        idempotency_key: jobs::accounting::idempotency_key(&row.id),
        id: row.id,
        invoice_id: row.invoice_id,
        payment_id: row.payment_id,
        attempts: row.attempts,
        last_error: row.last_error,
        next_attempt_at,
        external_id: row.external_id,
        job_id: row.job_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        succeeded_at: row.succeeded_at,
        runs,
    })
}

pub async fn list(ctx: &Ctx, actor: &Actor, q: ListQuery) -> Result<Page<SyncJobOut>> {
    actor.require_secret()?;
    if let Some(s) = q.status.as_deref() {
        if SyncStatus::parse(s).is_none() {
            return Err(Error::InvalidQuery(
                "status is pending, failed or succeeded".into(),
            ));
        }
    }
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let rows = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .list_sync_jobs(
                actor.account(),
                q.status.as_deref(),
                q.invoice_id.as_deref(),
                before.map(|c| (c.at, c.id)),
                limit + 1,
            )
            .await?
    };
    let page = Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    });
    let mut data = Vec::with_capacity(page.data.len());
    for row in page.data {
        data.push(view(ctx, actor, row, false).await?);
    }
    Ok(Page {
        data,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    })
}

pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<SyncJobOut> {
    actor.require_secret()?;
    let id = parse_id(id)?;
    let row = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_sync_job(Some(actor.account()), id.as_str())
            .await?
            .ok_or(Error::NotFound(Resource::SyncJob))?
    };
    view(ctx, actor, row, true).await
}

/// Tries a failed sync again now: one obol stopped retrying starts a fresh
/// schedule, one waiting for its next attempt runs at once. 409
/// `sync_job_not_failed` for a pending or succeeded one.
pub async fn retry(ctx: &Ctx, actor: &Actor, id: &str) -> Result<SyncJobOut> {
    actor.require_secret()?;
    let id = parse_id(id)?;
    let row = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_sync_job(Some(actor.account()), id.as_str())
            .await?
            .ok_or(Error::NotFound(Resource::SyncJob))?
    };
    if row.status != "failed" {
        return Err(Error::rule(
            RuleCode::SyncJobNotFailed,
            format!(
                "the sync is {}; only a failed sync can be retried",
                row.status
            ),
        ));
    }
    let now = ctx.now();
    {
        let mut tx = ctx.store().begin().await?;
        let mut conn = tx.conn();
        let job = conn
            .get_job(actor.account(), &row.job_id)
            .await?
            .ok_or_else(|| Error::internal("a sync job's runner job is missing"))?;
        match job.status.as_str() {
            "dead" => {
                conn.requeue_dead_job(actor.account(), &job.id, now).await?;
            }
            "queued" => {
                conn.expedite_job(&job.id, now).await?;
            }
            // Running now: its attempt is the retry.
            _ => {}
        }
        tx.commit().await?;
    }
    jobs::wake();
    tracing::info!(sync = %row.id, target = %row.target, "accounting sync retried by the host");
    get(ctx, actor, id.as_str()).await
}
