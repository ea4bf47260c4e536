//! `reconcile`: one reconciliation pass (`ops::reconciliation::run_once`),
//! recurring every `reconcile.interval_seconds`.
//!
//! Exactly one reconcile job is pending however many obol processes share
//! the database: every process queues the first at start with the same
//! dedupe key (the unique index keeps one), and the job queues its
//! successor in the transaction that finishes it. The pass itself is
//! idempotent (events are stored unique on Stripe's id, payments are
//! observed as of now).

use serde_json::json;

use super::{JobCtx, JobError, JobKind, JobSettings, NewJob};
use crate::context::AccountId;
use crate::error::Result;
use crate::storage::jobs::JobRow;
use crate::storage::{self, Conn, Store};

const DEDUPE_KEY: &str = "reconcile";

/// At start: queues the first pass one interval from now, unless a pass is
/// already queued or running (another process, or an earlier run).
pub async fn schedule_first(store: &Store, settings: &JobSettings) -> Result<()> {
    if settings.reconcile_interval.is_zero() {
        return Ok(());
    }
    let mut h = store.acquire().await?;
    schedule_next(
        &mut h.conn(),
        settings,
        &AccountId::platform(),
        storage::now(),
    )
    .await
}

/// Queues the pass after this one, `reconcile.interval_seconds` from `now`.
pub async fn schedule_next(
    conn: &mut Conn<'_>,
    settings: &JobSettings,
    account_id: &AccountId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    if settings.reconcile_interval.is_zero() {
        return Ok(());
    }
    let job = NewJob {
        kind: JobKind::Reconcile,
        payload: json!({}),
        account_id: account_id.clone(),
        dedupe_key: Some(DEDUPE_KEY.to_string()),
        run_at: now + chrono::Duration::from_std(settings.reconcile_interval).unwrap_or_default(),
    };
    super::enqueue(conn, &job).await?;
    Ok(())
}

pub async fn run(ctx: &JobCtx, _job: &JobRow) -> std::result::Result<(), JobError> {
    // Passes are off in this process's configuration: a pass queued by an
    // earlier configuration ends without running and schedules no successor.
    if ctx.settings.reconcile_interval.is_zero() {
        return Ok(());
    }
    match crate::ops::reconciliation::run_once(&ctx.ctx).await {
        Ok(r) if r.events_new > 0 || r.payments_moved > 0 => {
            tracing::info!(
                ?r,
                "reconciliation recovered changes Stripe had not delivered"
            );
            ctx.ctx.wake_inbox();
            Ok(())
        }
        Ok(r) => {
            tracing::debug!(?r, "reconciliation found nothing missing");
            Ok(())
        }
        Err(e) => Err(JobError::Retry(e.to_string())),
    }
}
