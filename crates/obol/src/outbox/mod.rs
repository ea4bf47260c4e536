//! Notifications to the host application: what obol tells it, signed per
//! the Standard Webhooks specification so hosts verify with an existing
//! library, delivered from a durable outbox.
//!
//! `notify_*` functions run inside the transaction that makes the change,
//! so a notification is written exactly when the change commits, never for
//! a change that was rolled back. `dispatcher` sends the rows.

pub mod dispatcher;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::error::Result;
use crate::ledger::PaymentState;
use crate::storage::orders::OrderRow;
use crate::storage::payments::PaymentRow;
use crate::storage::{self, Conn};

/// Event types obol sends to host applications.
pub const EVENT_TYPES: &[&str] = &[
    "payment.requires_action",
    "payment.authorized",
    "payment.completed",
    "payment.failed",
    "payment.canceled",
    "payment.refunded",
    "payment.disputed",
    "payment.dispute_closed",
    "order.confirmed",
    "order.shipped",
    "order.delivered",
    "order.cancelled",
];

/// The host event for a payment entering `state`, if any.
pub fn event_for_state(state: PaymentState) -> Option<&'static str> {
    match state {
        PaymentState::Pending => None,
        PaymentState::RequiresAction => Some("payment.requires_action"),
        PaymentState::Authorized => Some("payment.authorized"),
        PaymentState::Completed => Some("payment.completed"),
        PaymentState::Failed => Some("payment.failed"),
        PaymentState::Canceled => Some("payment.canceled"),
        PaymentState::PartiallyRefunded | PaymentState::Refunded => Some("payment.refunded"),
    }
}

fn payment_json(p: &PaymentRow) -> Value {
    json!({
        "id": p.id,
        "status": p.status,
        "amount": p.amount,
        "currency": p.currency,
        "amount_refunded": p.amount_refunded,
        "amount_captured": p.captured_amount(),
        "disputed": p.disputed,
        "stripe_payment_intent_id": p.stripe_payment_intent_id,
        "customer_id": p.customer_id,
        "order_id": p.order_id,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    })
}

/// Queues `event_type` about `payment` (as it is now, inside the
/// transaction) for every endpoint that wants it.
pub async fn notify_payment(
    conn: &mut Conn<'_>,
    event_type: &str,
    payment: &PaymentRow,
) -> Result<()> {
    let now = storage::now();
    let body = json!({
        "type": event_type,
        "timestamp": now,
        "data": { "payment": payment_json(payment) },
    });
    conn.enqueue_notification(&payment.account(), event_type, &body.to_string(), now)
        .await?;
    Ok(())
}

/// Queues `event_type` (`order.confirmed`, `order.shipped`, …) about
/// `order` as it is now, inside the transaction that moved it.
pub async fn notify_order(
    conn: &mut Conn<'_>,
    event_type: &str,
    order: &OrderRow,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let body = json!({
        "type": event_type,
        "timestamp": now,
        "data": {"order": {
            "id": order.id,
            "number": order.number,
            "status": order.status,
            "total": {"amount": order.total, "currency": order.currency},
            "customer_id": order.customer_id,
        }},
    });
    conn.enqueue_notification(
        &crate::context::AccountId::from_db(order.account_id.clone()),
        event_type,
        &body.to_string(),
        now,
    )
    .await?;
    Ok(())
}

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes, the form
/// Standard Webhooks libraries take.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// `webhook-signature` for a message: `v1,` + base64(HMAC-SHA256(key,
/// "{id}.{timestamp}.{body}")), the key being the base64 after `whsec_`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Option<String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{msg_id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification's test vectors.
    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn every_state_event_is_declared() {
        for s in [
            PaymentState::RequiresAction,
            PaymentState::Authorized,
            PaymentState::Completed,
            PaymentState::Failed,
            PaymentState::Canceled,
            PaymentState::Refunded,
        ] {
            assert!(EVENT_TYPES.contains(&event_for_state(s).unwrap()));
        }
    }
}
