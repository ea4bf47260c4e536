//! `release_authorization`: cancels an authorization Stripe could not be
//! reached for when checkout failed or an order was cancelled.
//!
//! Idempotent: the cancel carries the key derived from the payment id, and
//! a payment already canceled answers at once. The payment rules live in
//! `ops::checkout::release`; this file only queues and runs the job.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{JobCtx, JobError, JobKind, NewJob};
use crate::context::AccountId;
use crate::error::{Error, Result};
use crate::ops::checkout::{self, Released};
use crate::storage::jobs::JobRow;
use crate::storage::payments::PaymentRow;
use crate::storage::{self, Conn, Store};

#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    pub payment_id: String,
    pub reason: String,
}

pub fn dedupe_key(payment_id: &str) -> String {
    format!("{}:{payment_id}", JobKind::ReleaseAuthorization.as_str())
}

/// Queues the release of `payment` (nothing if one is queued or running).
pub async fn enqueue(conn: &mut Conn<'_>, payment: &PaymentRow, reason: &str) -> Result<bool> {
    let job = NewJob {
        kind: JobKind::ReleaseAuthorization,
        payload: json!({"payment_id": payment.id, "reason": reason}),
        account_id: payment.account(),
        dedupe_key: Some(dedupe_key(&payment.id)),
        run_at: storage::now(),
    };
    let queued = super::enqueue(conn, &job).await?.is_some();
    if queued {
        super::wake();
    }
    Ok(queued)
}

pub async fn run(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    let p: Payload = super::payload(job)?;
    let payment = {
        let mut h = ctx.ctx.store().acquire().await.map_err(retry)?;
        h.conn()
            .get_payment(&AccountId::from_db(job.account_id.clone()), &p.payment_id)
            .await
            .map_err(retry)?
    }
    .ok_or_else(|| JobError::Permanent(format!("payment {} does not exist", p.payment_id)))?;
    match checkout::release(&ctx.ctx, &payment, &p.reason).await {
        Ok(Released::Canceled) => Ok(()),
        Ok(Released::CancelPending) => Err(JobError::Retry("Stripe could not be reached".into())),
        // Captured meanwhile (409), or Stripe refused the cancel: trying
        // again gives the same answer.
        Err(e @ (Error::Rule { .. } | Error::Stripe(_))) => Err(JobError::Permanent(e.to_string())),
        Err(e) => Err(retry(e)),
    }
}

fn retry(e: Error) -> JobError {
    JobError::Retry(e.to_string())
}

/// For a reconciliation pass: turns rows an older obol left in
/// `pending_cancellations` into jobs, and makes every queued release job
/// due now. Returns how many release jobs are now due.
pub async fn queue_pending(store: &Store) -> Result<usize> {
    let mut tx = store.begin().await?;
    let mut conn = tx.conn();
    for (account, payment_id, reason) in conn.list_pending_cancellations(100).await? {
        if let Some(payment) = conn
            .get_payment(&AccountId::from_db(account), &payment_id)
            .await?
        {
            enqueue(&mut conn, &payment, &reason).await?;
        }
        conn.clear_pending_cancellation(&payment_id).await?;
    }
    let due = conn
        .expedite_queued_jobs(JobKind::ReleaseAuthorization.as_str(), storage::now())
        .await?;
    tx.commit().await?;
    if due > 0 {
        super::wake();
    }
    Ok(usize::try_from(due).unwrap_or(usize::MAX))
}
