//! `charge_run`: one worker of a running charge run. It claims items in
//! batches and charges them (`ops::charge_runs::work`) for about 20 s,
//! then ends and its successor is queued in the transaction that records
//! it, for as long as the run has items left; so a run resumes after a
//! crash or a restart from where it was (its workers are rows in `jobs`,
//! its items' claims expire), and several obol processes share it.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{JobCtx, JobError, JobKind, NewJob};
use crate::error::Result;
use crate::storage::charge_runs::ChargeRunRow;
use crate::storage::jobs::JobRow;
use crate::storage::Conn;

/// How long one attempt works before handing over to its successor, at
/// most: and at most half the handler's timeout (three quarters of the
/// job lease), so a pass ends before the runner abandons it.
const BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    pub run_id: String,
    pub slot: usize,
}

fn dedupe_key(run_id: &str, slot: usize) -> String {
    format!("{}:{run_id}:{slot}", JobKind::ChargeRun.as_str())
}

fn job(
    account: crate::context::AccountId,
    run_id: &str,
    slot: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> NewJob {
    NewJob {
        kind: JobKind::ChargeRun,
        payload: json!({"run_id": run_id, "slot": slot}),
        account_id: account,
        dedupe_key: Some(dedupe_key(run_id, slot)),
        run_at: now,
    }
}

/// Queues `workers` workers for a run that was just started.
pub async fn enqueue_workers(
    conn: &mut Conn<'_>,
    run: &ChargeRunRow,
    workers: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    for slot in 0..workers.max(1) {
        super::enqueue(conn, &job(run.account(), &run.id, slot, now)).await?;
    }
    Ok(())
}

/// After an attempt ended: the same worker again while the run is running
/// and has items left.
pub async fn schedule_next(
    conn: &mut Conn<'_>,
    finished: &JobRow,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let Ok(p) = serde_json::from_str::<Payload>(&finished.payload) else {
        return Ok(());
    };
    let Some(run) = conn.get_charge_run(None, &p.run_id).await? else {
        return Ok(());
    };
    if run.status != crate::ledger::charge_run::RunStatus::Running {
        return Ok(());
    }
    let open: i64 = conn
        .count_charge_run_items(&p.run_id)
        .await?
        .iter()
        .filter(|c| c.outcome == "pending" || c.outcome == "processing")
        .map(|c| c.items)
        .sum();
    if open > 0 {
        super::enqueue(conn, &job(run.account(), &p.run_id, p.slot, now)).await?;
        super::wake();
    }
    Ok(())
}

pub async fn run(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    let p: Payload = super::payload(job)?;
    // Unique per attempt: a later attempt of this job (after a crash) is
    // another claimant, and the claims of the dead one expire.
    let worker = format!("{}:{}", job.id, job.attempts);
    match crate::ops::charge_runs::work(
        &ctx.ctx,
        &p.run_id,
        &worker,
        ctx.ctx.settings().charge_run_concurrency,
        BUDGET.min(ctx.settings.handler_timeout() / 2),
    )
    .await
    {
        Ok(pass) => {
            tracing::debug!(run = %p.run_id, slot = p.slot, charged = pass.charged, deferred = pass.deferred, "charge run worker pass");
            Ok(())
        }
        Err(e) => Err(JobError::Retry(e.to_string())),
    }
}
