//! `invoice_sweep`: settles invoice PaymentIntents left incomplete past
//! `invoices.stale_intent_seconds` (`ops::invoices::sweep_stale`),
//! recurring every `invoices.sweep_interval_seconds`. One such job is
//! pending at a time, like `reconcile`: every process queues the first
//! with the same dedupe key, and the job queues its successor when it
//! ends.

use serde_json::json;

use super::{JobCtx, JobError, JobKind, JobSettings, NewJob};
use crate::context::AccountId;
use crate::error::Result;
use crate::storage::jobs::JobRow;
use crate::storage::{self, Conn, Store};

const DEDUPE_KEY: &str = "invoice_sweep";

pub async fn schedule_first(store: &Store, settings: &JobSettings) -> Result<()> {
    let mut h = store.acquire().await?;
    schedule_next(
        &mut h.conn(),
        settings,
        &AccountId::platform(),
        storage::now(),
    )
    .await
}

pub async fn schedule_next(
    conn: &mut Conn<'_>,
    settings: &JobSettings,
    account_id: &AccountId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    if settings.invoice_sweep_interval.is_zero() {
        return Ok(());
    }
    let job = NewJob {
        kind: JobKind::InvoiceSweep,
        payload: json!({}),
        account_id: account_id.clone(),
        dedupe_key: Some(DEDUPE_KEY.to_string()),
        run_at: now
            + chrono::Duration::from_std(settings.invoice_sweep_interval).unwrap_or_default(),
    };
    super::enqueue(conn, &job).await?;
    Ok(())
}

pub async fn run(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    if ctx.settings.invoice_sweep_interval.is_zero() {
        return Ok(());
    }
    let account = AccountId::from_db(job.account_id.clone());
    match crate::ops::invoices::sweep_stale(&ctx.ctx, &account).await {
        Ok(r) => {
            if r.checked > 0 {
                tracing::info!(?r, "stale invoice intents settled");
            }
            Ok(())
        }
        Err(e) => Err(JobError::Retry(e.to_string())),
    }
}
