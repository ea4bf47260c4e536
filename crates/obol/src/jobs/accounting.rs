//! `invoice_paid` and `accounting_sync`: an invoice payment reaches every
//! configured accounting target, exactly once each, whatever fails.
//!
//! The payment writer queues `invoice_paid` in the transaction that
//! records the payment, so the sync exists exactly when the payment does.
//! Its handler fans out: one `sync_jobs` row per configured target (unique
//! per payment and target) and one `accounting_sync` job for it, in one
//! transaction. Each `accounting_sync` attempt sends the payment with the
//! sync's idempotency key (`obol-{sync id}`), stable across retries and
//! restarts, so a target that saw an attempt whose answer was lost
//! dedupes the next. A sync that stops retrying (its schedule spent, or
//! an answer retrying cannot change) notifies the host `sync_job.failed`;
//! `POST /v1/sync-jobs/{id}/retry` starts it again.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{JobCtx, JobError, JobKind, NewJob};
use crate::accounting::{InvoicePayment, Line, Target};
use crate::context::AccountId;
use crate::error::{Error, Result};
use crate::ids::{CustomerId, SyncJobId};
use crate::storage::invoices::{InvoiceRow, SyncJobRow};
use crate::storage::jobs::JobRow;
use crate::storage::{self, Conn};

#[derive(Debug, Serialize, Deserialize)]
struct FanoutPayload {
    invoice_id: String,
    payment_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SyncPayload {
    pub sync_job_id: String,
}

/// The key a target dedupes one sync on.
pub fn idempotency_key(sync_id: &str) -> String {
    format!("obol-{sync_id}")
}

pub fn sync_dedupe_key(sync_id: &str) -> String {
    format!("{}:{sync_id}", JobKind::AccountingSync.as_str())
}

/// Queues the fan-out for one payment of `invoice`, inside the payment's
/// transaction.
pub async fn enqueue_fanout(
    conn: &mut Conn<'_>,
    invoice: &InvoiceRow,
    payment_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let job = NewJob {
        kind: JobKind::InvoicePaid,
        payload: json!({"invoice_id": invoice.id, "payment_id": payment_id}),
        account_id: invoice.account(),
        dedupe_key: Some(format!("{}:{payment_id}", JobKind::InvoicePaid.as_str())),
        run_at: now,
    };
    super::enqueue(conn, &job).await?;
    super::wake();
    Ok(())
}

fn retry(e: Error) -> JobError {
    JobError::Retry(e.to_string())
}

pub async fn fanout(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    let p: FanoutPayload = super::payload(job)?;
    let account = AccountId::from_db(job.account_id.clone());
    let now = storage::now();
    let mut tx = ctx.ctx.store().begin().await.map_err(retry)?;
    let mut conn = tx.conn();
    for target in ctx.accounting.targets() {
        let row = SyncJobRow {
            id: SyncJobId::generate().into(),
            account_id: account.as_str().to_string(),
            invoice_id: p.invoice_id.clone(),
            payment_id: p.payment_id.clone(),
            target: target.as_str().to_string(),
            status: "pending".into(),
            job_id: String::new(),
            attempts: 0,
            last_error: None,
            external_id: None,
            created_at: now,
            updated_at: now,
            succeeded_at: None,
        };
        let Some(sync) = conn.insert_sync_job(&row).await.map_err(retry)? else {
            continue;
        };
        let queued = super::enqueue(
            &mut conn,
            &NewJob {
                kind: JobKind::AccountingSync,
                payload: json!({"sync_job_id": sync.id}),
                account_id: account.clone(),
                dedupe_key: Some(sync_dedupe_key(&sync.id)),
                run_at: now,
            },
        )
        .await
        .map_err(retry)?
        .ok_or_else(|| JobError::Retry("the sync's job is queued already".into()))?;
        conn.set_sync_job_job(&sync.id, &queued.id)
            .await
            .map_err(retry)?;
        tracing::info!(sync = %sync.id, target = target.as_str(), invoice = %p.invoice_id, "accounting sync queued");
    }
    tx.commit().await.map_err(retry)?;
    super::wake();
    Ok(())
}

/// What is sent: the invoice, its customer and the payment, as stored.
async fn payment_of(ctx: &JobCtx, sync: &SyncJobRow) -> Result<InvoicePayment> {
    let account = AccountId::from_db(sync.account_id.clone());
    let mut h = ctx.ctx.store().acquire().await?;
    let mut conn = h.conn();
    let invoice = conn
        .get_invoice(&account, &sync.invoice_id)
        .await?
        .ok_or_else(|| Error::internal("the sync's invoice does not exist"))?;
    let payment = conn
        .get_payment(&account, &sync.payment_id)
        .await?
        .ok_or_else(|| Error::internal("the sync's payment does not exist"))?;
    let customer = conn
        .get_customer(&account, &CustomerId::from_db(invoice.customer_id.clone()))
        .await?;
    let attempt = conn
        .get_attempt_by_intent(&sync.account_id, &payment.stripe_payment_intent_id)
        .await?;
    let mut lines: Vec<Line> = serde_json::from_str(&invoice.line_items).unwrap_or_default();
    let fee_amount = attempt.map_or(0, |a| a.fee_amount);
    if fee_amount > 0 {
        lines.push(Line {
            description: "Card processing fee".into(),
            unit_amount: fee_amount,
            quantity: 1,
            amount: fee_amount,
        });
    }
    Ok(InvoicePayment {
        invoice_id: invoice.id.clone(),
        number: invoice.number.clone(),
        customer_name: customer.as_ref().and_then(|c| c.name.clone()),
        customer_email: customer.as_ref().and_then(|c| c.email.clone()),
        currency: invoice.currency.clone(),
        issue_date: invoice
            .processed_at
            .unwrap_or(invoice.created_at)
            .format("%Y-%m-%d")
            .to_string(),
        due_date: invoice.due_date.clone(),
        lines,
        total: invoice.total,
        amount: match payment.captured_amount() {
            0 => payment.amount,
            captured => captured,
        },
        fee_amount,
        stripe_payment_intent_id: payment.stripe_payment_intent_id.clone(),
        payment_id: payment.id.clone(),
        paid_at: invoice.paid_at.unwrap_or(payment.updated_at),
    })
}

pub async fn sync(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    let p: SyncPayload = super::payload(job)?;
    let sync = {
        let mut h = ctx.ctx.store().acquire().await.map_err(retry)?;
        h.conn()
            .get_sync_job(None, &p.sync_job_id)
            .await
            .map_err(retry)?
    }
    .ok_or_else(|| JobError::Permanent(format!("sync job {} does not exist", p.sync_job_id)))?;
    if sync.status == "succeeded" {
        return Ok(());
    }
    let outcome = match Target::parse(&sync.target) {
        Some(target) if ctx.accounting.targets().contains(&target) => {
            let payment = payment_of(ctx, &sync).await.map_err(retry)?;
            ctx.accounting
                .deliver(target, &idempotency_key(&sync.id), &payment)
                .await
        }
        _ => Err(crate::accounting::SyncError {
            retryable: false,
            message: format!("the {} target is not configured in this obol", sync.target),
            retry_after: None,
        }),
    };
    let now = storage::now();
    let mut tx = ctx.ctx.store().begin().await.map_err(retry)?;
    let mut conn = tx.conn();
    match outcome {
        Ok(delivered) => {
            conn.record_sync_attempt(
                &sync.id,
                "succeeded",
                None,
                delivered.external_id.as_deref(),
                now,
            )
            .await
            .map_err(retry)?;
            tx.commit().await.map_err(retry)?;
            tracing::info!(sync = %sync.id, target = %sync.target, attempt = job.attempts, "accounting sync landed");
            Ok(())
        }
        Err(e) => {
            let message = e.message.clone();
            conn.record_sync_attempt(&sync.id, "failed", Some(&message), None, now)
                .await
                .map_err(retry)?;
            let last = !e.retryable || job.attempts >= job.max_attempts;
            if last {
                if let Some(now_row) = conn.get_sync_job(None, &sync.id).await.map_err(retry)? {
                    crate::outbox::notify_sync_job(&mut conn, "sync_job.failed", &now_row, now)
                        .await
                        .map_err(retry)?;
                }
            }
            tx.commit().await.map_err(retry)?;
            tracing::warn!(sync = %sync.id, target = %sync.target, attempt = job.attempts, error = %message, last, "accounting sync attempt failed");
            if e.retryable {
                Err(JobError::Retry(message))
            } else {
                Err(JobError::Permanent(message))
            }
        }
    }
}
