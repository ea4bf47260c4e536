//! The organisation writer: what follows an organisation's disconnection,
//! inside the transaction that recorded it (`disconnect_organization`).
//!
//! Two callers: the inbox, applying `account.application.deauthorized`
//! (the account revoked obol's access at Stripe), and the disconnect call
//! (`ops::organizations`, which re-exports `after_disconnected`). The
//! status change is guarded (only an `active` organisation is
//! disconnected), so whichever comes first acts and the other finds
//! nothing to do: the effects here happen once.
//!
//! No Stripe call here: the account's tokens are already dead, and the
//! inbox calls no Stripe.

use chrono::{DateTime, Utc};

use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::charge_run::RunStatus;
use crate::storage::organizations::OrganizationRow;
use crate::storage::Conn;

/// What `after_disconnected` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Disconnected {
    /// The running charge runs it canceled.
    pub charge_runs_canceled: Vec<String>,
}

/// For `org`, just disconnected in the caller's transaction: cancels its
/// running charge runs (no new charges; charges already sent finish, as
/// with `POST /v1/charge-runs/{id}/cancel`) and queues the host's
/// `organization.disconnected` (the organisation's endpoints and the
/// platform's). Call it only when `disconnect_organization` answered the
/// row, so it runs once per disconnection.
pub async fn after_disconnected(
    conn: &mut Conn<'_>,
    org: &OrganizationRow,
    now: DateTime<Utc>,
) -> Result<Disconnected> {
    let account = AccountId::from_db(org.id.clone());
    let mut done = Disconnected::default();
    for run in conn
        .list_charge_runs_in_status(&account, RunStatus::Running)
        .await?
    {
        if let Some(items) = crate::charge_runs::cancel_run(conn, &run, now).await? {
            tracing::info!(organization_id = %org.id, run = %run.id, items, "charge run canceled: its organisation was disconnected");
            done.charge_runs_canceled.push(run.id);
        }
    }
    crate::outbox::notify_organization(
        conn,
        "organization.disconnected",
        org,
        done.charge_runs_canceled.clone(),
        now,
    )
    .await?;
    Ok(done)
}
