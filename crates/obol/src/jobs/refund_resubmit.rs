//! `resubmit_refund`: sends a refund Stripe has not accepted yet again,
//! with the idempotency key derived from obol's refund id, so Stripe
//! refunds once however often this runs.
//!
//! The refund rules live in `ops::refunds`; this file only queues and runs
//! the job.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{JobCtx, JobError, JobKind, NewJob};
use crate::context::AccountId;
use crate::error::{Error, Result};
use crate::ledger::refund::RefundStatus;
use crate::ops::refunds;
use crate::storage::jobs::JobRow;
use crate::storage::refunds::RefundRow;
use crate::storage::{self, Conn, Store};
use crate::stripe::StripeError;

/// A refund recorded this long ago and still not submitted is swept into a
/// job by the reconciliation pass (obol stopped between recording it and
/// asking Stripe).
const STALE_SECONDS: i64 = 60;

#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    pub refund_id: String,
}

pub fn dedupe_key(refund_id: &str) -> String {
    format!("{}:{refund_id}", JobKind::ResubmitRefund.as_str())
}

/// Queues the resubmission of `refund` (nothing if one is queued or running).
pub async fn enqueue(conn: &mut Conn<'_>, refund: &RefundRow) -> Result<bool> {
    let job = NewJob {
        kind: JobKind::ResubmitRefund,
        payload: json!({"refund_id": refund.id}),
        account_id: refund.account(),
        dedupe_key: Some(dedupe_key(&refund.id)),
        run_at: storage::now(),
    };
    let queued = super::enqueue(conn, &job).await?.is_some();
    if queued {
        super::wake();
    }
    Ok(queued)
}

/// Queues a refund's resubmission after Stripe could not be reached.
pub async fn enqueue_after_failure(store: &Store, refund: &RefundRow) -> Result<bool> {
    let mut h = store.acquire().await?;
    enqueue(&mut h.conn(), refund).await
}

pub async fn run(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    let p: Payload = super::payload(job)?;
    let (refund, intent) = {
        let account = AccountId::from_db(job.account_id.clone());
        let mut h = ctx.ctx.store().acquire().await.map_err(retry)?;
        let mut conn = h.conn();
        let refund = conn
            .get_refund(&account, &p.refund_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobError::Permanent(format!("refund {} does not exist", p.refund_id)))?;
        if refund.status != RefundStatus::PendingSubmission {
            // Submitted by an earlier attempt or the request itself.
            return Ok(());
        }
        let intent = conn
            .get_payment(&account, &refund.payment_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| {
                JobError::Permanent(format!("payment {} does not exist", refund.payment_id))
            })?
            .stripe_payment_intent_id;
        (refund, intent)
    };
    match refunds::submit(&ctx.ctx, &refund, &intent).await {
        Ok(_) => Ok(()),
        Err(Error::Stripe(e)) if matches!(*e, StripeError::Unavailable { .. }) => {
            Err(JobError::Retry(e.to_string()))
        }
        // Stripe refused: the refund is recorded as failed; a person decides.
        Err(e @ Error::Stripe(_)) => Err(JobError::Permanent(e.to_string())),
        Err(e) => Err(retry(e)),
    }
}

fn retry(e: Error) -> JobError {
    JobError::Retry(e.to_string())
}

/// For a reconciliation pass: queues a job for each refund left unsubmitted
/// for a minute without one (obol stopped between recording it and asking
/// Stripe; a dead job is left for an operator), and makes every queued
/// resubmission due now. Returns how many resubmission jobs are now due.
pub async fn queue_stale(store: &Store) -> Result<usize> {
    let cutoff = storage::now() - chrono::Duration::seconds(STALE_SECONDS);
    let mut tx = store.begin().await?;
    let mut conn = tx.conn();
    for refund in conn.list_unsubmitted_refunds(cutoff, 100).await? {
        if conn.count_unfinished_jobs(&dedupe_key(&refund.id)).await? == 0 {
            enqueue(&mut conn, &refund).await?;
        }
    }
    let due = conn
        .expedite_queued_jobs(JobKind::ResubmitRefund.as_str(), storage::now())
        .await?;
    tx.commit().await?;
    if due > 0 {
        super::wake();
    }
    Ok(usize::try_from(due).unwrap_or(usize::MAX))
}
