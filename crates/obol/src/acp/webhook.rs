//! The order webhooks of ACP: `order_create` when an order is created
//! from a checkout session, `order_update` on every later change (the
//! order's status, a refund), POSTed to `acp.webhook_url` with
//! `Merchant-Signature`.
//!
//! `order_changed` and `payment_changed` run inside the transaction that
//! changed the order or payment (the outbox calls them next to the host
//! notification), so an event is queued exactly when its change commits.
//! The event is a job (`acp_order_event`): the job runner delivers it and
//! retries it on its schedule. The body is the order as it is at the
//! change (the full Order object, never a delta); only `permalink_url`,
//! which depends on configuration alone, is filled in at sending.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::context::AccountId;
use crate::error::Result;
use crate::jobs::{self, JobKind, NewJob};
use crate::ledger::order::OrderStatus;
use crate::storage::orders::OrderRow;
use crate::storage::payments::PaymentRow;
use crate::storage::Conn;

/// An order changed (created, or moved): queue its ACP event if it was
/// checked out through ACP. The first event of an order completes its
/// session (found by the PaymentIntent the order was created with).
pub async fn order_changed(
    conn: &mut Conn<'_>,
    order: &OrderRow,
    now: DateTime<Utc>,
) -> Result<()> {
    let account = AccountId::from_db(order.account_id.clone());
    let Some(found) = conn
        .find_acp_session_for_order(&account, &order.id, order.payment_reference.as_deref())
        .await?
    else {
        return Ok(());
    };
    let (event, session_id) = if found.order_id.is_none() {
        let Some(intent) = order.payment_reference.as_deref() else {
            return Ok(());
        };
        match conn
            .complete_acp_session(&account, intent, &order.id, now)
            .await?
        {
            Some(s) => ("order_create", s.id),
            None => return Ok(()),
        }
    } else {
        ("order_update", found.id)
    };
    let payment = match order.payment_reference.as_deref() {
        Some(pi) => conn.get_payment_by_intent(account.as_str(), pi).await?,
        None => None,
    };
    let body = order_event(conn, event, &session_id, order, payment.as_ref()).await?;
    let job = NewJob {
        kind: JobKind::AcpOrderEvent,
        payload: json!({"event": event, "order_id": order.id, "body": body}),
        account_id: account,
        dedupe_key: None,
        run_at: now,
    };
    jobs::enqueue(conn, &job).await?;
    jobs::wake();
    Ok(())
}

/// A payment changed (a refund): its order's event, when it has one.
pub async fn payment_changed(conn: &mut Conn<'_>, payment: &PaymentRow) -> Result<()> {
    let Some(order_id) = payment.order_id.as_deref() else {
        return Ok(());
    };
    let account = payment.account();
    if let Some(order) = conn.get_order(&account, order_id).await? {
        order_changed(conn, &order, crate::storage::now()).await?;
    }
    Ok(())
}

/// ACP's name for an order status.
fn status_name(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Pending => "created",
        OrderStatus::Confirmed => "confirmed",
        OrderStatus::Shipped => "shipped",
        OrderStatus::Delivered => "delivered",
        OrderStatus::Cancelled => "canceled",
    }
}

fn total(kind: &str, text: &str, amount: i64) -> Value {
    json!({"type": kind, "display_text": text, "amount": amount})
}

/// `{type, data}`: the webhook body (`WebhookEvent` of the spec), with
/// `data.permalink_url` empty until sending.
async fn order_event(
    conn: &mut Conn<'_>,
    event: &str,
    session_id: &str,
    order: &OrderRow,
    payment: Option<&PaymentRow>,
) -> Result<Value> {
    let account = AccountId::from_db(order.account_id.clone());
    let items = conn.list_line_items(&account, &order.id).await?;
    let shipped = matches!(order.status, OrderStatus::Shipped | OrderStatus::Delivered);
    let cancelled = order.status == OrderStatus::Cancelled;
    let line_items: Vec<Value> = items
        .iter()
        .map(|li| {
            let q = i64::from(li.quantity);
            let mut v = json!({
                "id": li.id,
                "title": li.name,
                "quantity": {
                    "ordered": q,
                    "current": if cancelled { 0 } else { q },
                    "fulfilled": if shipped { q } else { 0 },
                },
                "unit_price": li.unit_amount,
                "subtotal": li.amount,
                "status": if cancelled { "canceled" } else if shipped { "fulfilled" } else { "pending" },
            });
            if let Some(p) = &li.product_id {
                v["product_id"] = json!(p);
            }
            v
        })
        .collect();
    let mut fulfillments = Vec::new();
    if order.shipping_name.is_some() || shipped {
        let mut f = json!({
            "id": format!("ful_{}", order.id),
            "type": "shipping",
            "status": match order.status {
                OrderStatus::Pending | OrderStatus::Confirmed => "pending",
                OrderStatus::Shipped => "shipped",
                OrderStatus::Delivered => "delivered",
                OrderStatus::Cancelled => "canceled",
            },
            "line_items": items.iter().map(|li| json!({"id": li.id, "quantity": li.quantity})).collect::<Vec<_>>(),
        });
        if let Some(name) = &order.shipping_name {
            f["carrier"] = json!(name);
        }
        fulfillments.push(f);
    }
    let mut adjustments = Vec::new();
    let mut refunded = 0;
    if let Some(p) = payment {
        refunded = p.amount_refunded;
        for r in conn.list_refunds(&account, &p.id).await? {
            adjustments.push(json!({
                "id": r.id,
                "type": "refund",
                "occurred_at": r.updated_at,
                "status": match r.status.as_str() {
                    "succeeded" => "completed",
                    "failed" | "canceled" => "failed",
                    _ => "pending",
                },
                "amount": r.amount,
                "currency": r.currency,
                "reason": r.reason.clone().unwrap_or_else(|| "refund".into()),
            }));
        }
    }
    let mut totals = vec![total("subtotal", "Subtotal", order.subtotal)];
    if order.shipping_name.is_some() {
        totals.push(total("fulfillment", "Shipping", order.shipping_amount));
    }
    totals.push(total("total", "Total", order.total));
    if refunded > 0 {
        totals.push(total("amount_refunded", "Refunded", refunded));
    }
    Ok(json!({
        "type": event,
        "data": {
            "type": "order",
            "id": order.id,
            "checkout_session_id": session_id,
            "order_number": order.number,
            "permalink_url": "",
            "status": status_name(order.status),
            "line_items": line_items,
            "fulfillments": fulfillments,
            "adjustments": adjustments,
            "totals": totals,
        }
    }))
}
