//! The charge-run item writer for the payment writer: a success Stripe
//! reports for an item's PaymentIntent (the member completed 3-D Secure,
//! or the worker's answer was lost in a crash) moves the item on, once,
//! with its notification, in the payment's transaction; and canceling a
//! run inside the caller's transaction (`cancel_run`: the cancel call, and
//! an organisation's disconnection).

use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::charge_run::{item_may_move, Outcome, RunStatus};
use crate::ledger::IntentStatus;
use crate::payments::{Cause, IntentSeen};
use crate::storage::charge_runs::ChargeRunRow;
use crate::storage::{self, Conn};

pub async fn observe_intent(
    conn: &mut Conn<'_>,
    cause: &Cause<'_>,
    item_id: &str,
    pi: &IntentSeen,
) -> Result<()> {
    if pi.status != IntentStatus::Succeeded {
        return Ok(());
    }
    let account = AccountId::from_db(cause.account_id.to_string());
    let Some(item) = conn.get_charge_run_item(&account, item_id).await? else {
        return Ok(());
    };
    if !item_may_move(item.outcome, Outcome::Succeeded) {
        return Ok(());
    }
    let now = storage::now();
    if !conn
        .move_charge_run_item(
            &item.id,
            item.outcome,
            Outcome::Succeeded,
            Some(&pi.id),
            now,
        )
        .await?
    {
        return Err(crate::error::Error::internal(
            "a charge run item changed concurrently; retrying",
        ));
    }
    let Some(run) = conn.get_charge_run(Some(&account), &item.run_id).await? else {
        return Ok(());
    };
    if let Some(after) = conn.get_charge_run_item(&account, &item.id).await? {
        crate::outbox::notify_charge_run_item(
            conn,
            "charge_run_item.succeeded",
            &after,
            &run.currency,
            now,
        )
        .await?;
    }
    // Counted as the outcome it reached; the event's transaction may still
    // roll back and be retried, which counts it again (rare: a conflict).
    crate::metrics::record(|m| m.charge_run_item(Outcome::Succeeded.as_str()));
    tracing::info!(item = %item.id, from = item.outcome.as_str(), intent = %pi.id, "charge run item succeeded");
    Ok(())
}

/// draft or running → canceled, in the caller's transaction: items not yet
/// sent are canceled (no new charges); charges already sent finish and
/// record their outcome. `Ok(None)` when the run was neither draft nor
/// running as read (canceled, completed, or moved meanwhile): the write is
/// guarded by the status read. `Ok(Some(n))`: `n` items canceled.
pub async fn cancel_run(
    conn: &mut Conn<'_>,
    run: &ChargeRunRow,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<u64>> {
    if !matches!(run.status, RunStatus::Draft | RunStatus::Running) {
        return Ok(None);
    }
    if !conn
        .move_charge_run(&run.id, run.status, RunStatus::Canceled, now)
        .await?
    {
        return Ok(None);
    }
    Ok(Some(conn.cancel_pending_items(&run.id, now).await?))
}
