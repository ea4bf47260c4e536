//! The payout writer: the one place a mirrored payout changes, from a
//! `payout.*` event (inbox) or a retrieval (reconciliation), inside the
//! caller's transaction.
//!
//! `ledger::payout::transition` decides (the ordering rule is documented
//! there); this writes the row guarded by the view it read, queues the
//! host notification for the status entered, and, when a payout is paid,
//! queues the `payout_transactions` job that fetches what it settles, all
//! in the same transaction. It calls neither `ops` nor Stripe.

use serde::Deserialize;
use serde_json::Value;

use crate::context::AccountId;
use crate::error::{Error, Result};
use crate::ledger::payout::{self, PayoutDecision, PayoutStatus};
use crate::money::{Currency, Money};
use crate::outbox;
use crate::payments::{Outcome, Unreadable};
use crate::storage::payouts::{PayoutRow, PayoutView};
use crate::storage::{self, Conn};

/// Stripe's payout object, the fields obol mirrors.
#[derive(Debug, Clone, Deserialize)]
pub struct StripePayout {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub arrival_date: i64,
    #[serde(default)]
    pub automatic: bool,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub failure_message: Option<String>,
    #[serde(default)]
    pub reconciliation_status: Option<String>,
    pub created: i64,
}

/// A payout Stripe sent, checked: a known status, money by the API's
/// rules (never negative).
pub struct SeenPayout {
    pub object: StripePayout,
    pub status: PayoutStatus,
    pub money: Money,
}

pub fn read_payout(object: &Value) -> std::result::Result<SeenPayout, Unreadable> {
    let p: StripePayout = crate::payments::parse(object, "payout")?;
    if !p.id.starts_with("po_") {
        return Err(Unreadable(format!("{:?} is not a payout id", p.id)));
    }
    let status = PayoutStatus::parse(&p.status)
        .ok_or_else(|| Unreadable(format!("unknown payout status {:?}", p.status)))?;
    let currency = Currency::parse(&p.currency)
        .map_err(|e| Unreadable(format!("the payout's currency: {e}")))?;
    let money = Money::balance(p.amount, currency)
        .map_err(|e| Unreadable(format!("the payout's amount: {e}")))?;
    Ok(SeenPayout {
        object: p,
        status,
        money,
    })
}

/// Host notification for entering `status`.
fn event_for(status: PayoutStatus) -> Option<&'static str> {
    match status {
        PayoutStatus::Pending | PayoutStatus::InTransit => None,
        PayoutStatus::Paid => Some("payout.paid"),
        PayoutStatus::Failed => Some("payout.failed"),
        PayoutStatus::Canceled => Some("payout.canceled"),
    }
}

/// Applies Stripe's view of a payout as of `at` (the event's `created`,
/// or now for a retrieval). `stripe_event_id`: the event, for the
/// notification's envelope.
pub async fn observe_payout(
    conn: &mut Conn<'_>,
    account: &AccountId,
    seen: &SeenPayout,
    at: i64,
    stripe_event_id: Option<&str>,
) -> Result<Outcome> {
    let p = &seen.object;
    let view = PayoutView {
        stripe_payout_id: &p.id,
        amount: seen.money.minor(),
        currency: seen.money.currency().as_str(),
        status: seen.status,
        arrival_date: p.arrival_date,
        automatic: p.automatic,
        method: p.method.as_deref().unwrap_or("standard"),
        description: p.description.as_deref(),
        failure_code: p.failure_code.as_deref(),
        failure_message: p.failure_message.as_deref(),
        reconciliation_status: p.reconciliation_status.as_deref(),
        stripe_created: p.created,
        observed_at: at,
    };
    let now = storage::now();
    let existing = conn.get_payout_by_stripe_id(account, &p.id).await?;
    let (row, entered, created) = match (
        payout::transition(existing.as_ref().map(PayoutRow::ledger), seen.status, at),
        existing,
    ) {
        (PayoutDecision::Ignore, _) => {
            return Ok(Outcome::Ignored(
                "older or less far along than the payout's recorded state".into(),
            ))
        }
        (PayoutDecision::Create { .. }, _) => {
            let id = String::from(crate::ids::PayoutId::generate());
            let row = conn
                .insert_payout(account, &id, &view, now)
                .await?
                .ok_or_else(|| Error::internal("the payout was mirrored concurrently; retrying"))?;
            (row, Some(seen.status), true)
        }
        (PayoutDecision::Update { .. }, None) => {
            return Err(Error::internal("a payout update without a payout"))
        }
        (PayoutDecision::Update { next, entered }, Some(read)) => {
            let row = conn
                .update_payout_view(&read, &view, next, now)
                .await?
                .ok_or_else(|| Error::internal("the payout changed concurrently; retrying"))?;
            (row, entered, false)
        }
    };
    let mut row = row;
    if entered == Some(PayoutStatus::Paid) {
        conn.set_payout_transactions_fetching(&row.id, now).await?;
        crate::jobs::payout_transactions::enqueue(conn, &row).await?;
        row.transactions_status = "fetching".into();
    }
    if created {
        outbox::notify_payout(conn, "payout.created", &row, stripe_event_id, now).await?;
    }
    if let Some(kind) = entered.and_then(event_for) {
        outbox::notify_payout(conn, kind, &row, stripe_event_id, now).await?;
    }
    Ok(Outcome::Applied)
}
