//! The order writer: moves an order's status inside the caller's
//! transaction, through `ledger::order::transition`, and writes the new
//! status (guarded by the status it read), its timeline entry and its host
//! notification together, so they commit or roll back as one.
//!
//! Every path that changes an order's status comes through here: order
//! creation (pay-first orders start confirmed), the operator's PATCH, and
//! the payment writer confirming an order whose payment succeeded. No
//! use-case logic lives here (pricing, captures, ownership): that is
//! `ops::orders` and `ops::checkout`.

use chrono::{DateTime, Utc};

use crate::context::AccountId;
use crate::error::{Error, Result, RuleCode};
use crate::ledger::order::{self, IllegalMove, OrderInput};
use crate::outbox;
use crate::storage::orders::{NewOrderTimelineEntry, OrderRow};
use crate::storage::Conn;

/// What caused a change, for the timeline: `api`, `webhook`, `reconcile`
/// or `job`, and the request, Stripe event or job that did.
#[derive(Debug, Clone, Copy)]
pub struct OrderCause<'a> {
    pub kind: &'a str,
    pub reference: Option<&'a str>,
}

/// Records a new order's first timeline entry and, for an order created
/// confirmed (pay-first), its `order.confirmed` notification.
pub async fn record_created(
    conn: &mut Conn<'_>,
    order: &OrderRow,
    cause: OrderCause<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    let status = order.status;
    conn.insert_order_timeline_entry(&NewOrderTimelineEntry {
        account_id: &order.account_id,
        order_id: &order.id,
        from: None,
        to: status.as_str(),
        at: now,
        cause_kind: cause.kind,
        cause_ref: cause.reference,
    })
    .await?;
    if let Some(kind) = status.event_type() {
        outbox::notify_order(conn, kind, order, now).await?;
    }
    Ok(())
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The order moved; the row as it is now.
    Moved(OrderRow),
    /// Nothing to change (a duplicate, or the status it already has).
    Unchanged(OrderRow),
}

/// Applies one input to an order, locked and read in this transaction. A
/// move the table forbids is `Err(IllegalMove)` inside `Ok`, so callers
/// decide whether that is the caller's error (PATCH) or nothing (a late
/// event). A guarded write that lost a race anyway is an error: the
/// transaction must be retried from a fresh read.
pub async fn apply(
    conn: &mut Conn<'_>,
    account: &AccountId,
    order_id: &str,
    input: OrderInput,
    cause: OrderCause<'_>,
    now: DateTime<Utc>,
) -> Result<std::result::Result<Applied, IllegalMove>> {
    conn.lock_order(order_id).await?;
    let order = &conn
        .get_order(account, order_id)
        .await?
        .ok_or(Error::NotFound(crate::error::Resource::Order))?;
    let current = order.status;
    let step = match order::transition(current, input) {
        Ok(Some(step)) => step,
        Ok(None) => return Ok(Ok(Applied::Unchanged(order.clone()))),
        Err(illegal) => return Ok(Err(illegal)),
    };
    if !conn
        .update_order_status(&order.id, step.from.as_str(), step.to.as_str(), now)
        .await?
    {
        return Err(Error::rule(
            RuleCode::OrderChanged,
            "the order changed meanwhile; read it and try again",
        ));
    }
    conn.insert_order_timeline_entry(&NewOrderTimelineEntry {
        account_id: &order.account_id,
        order_id: &order.id,
        from: Some(step.from.as_str()),
        to: step.to.as_str(),
        at: now,
        cause_kind: cause.kind,
        cause_ref: cause.reference,
    })
    .await?;
    let moved = conn
        .get_order(account, &order.id)
        .await?
        .ok_or_else(|| Error::internal("the order vanished while it moved"))?;
    if let Some(kind) = step.to.event_type() {
        outbox::notify_order(conn, kind, &moved, now).await?;
    }
    tracing::info!(order = %order.id, from = step.from.as_str(), to = step.to.as_str(), cause = cause.kind, "order moved");
    Ok(Ok(Applied::Moved(moved)))
}
