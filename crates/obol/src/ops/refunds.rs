//! Refunding a payment: recorded first, then asked of Stripe with an
//! idempotency key derived from obol's refund id, so a retry after a crash
//! or a timeout can never refund twice. The ledger's refunded amount moves
//! only when Stripe's `charge.refunded` event (or reconciliation) says so.

use serde::Deserialize;

use crate::error::{Error, Resource, Result};
use crate::ledger::PaymentState;
use crate::storage::refunds::{NewRefund, RefundRow};
use crate::storage::{self, Store};
use crate::stripe::{IdempotencyKey, Params, StripeClient, StripeError};

/// Stripe's accepted refund reasons.
pub const REASONS: [&str; 3] = ["duplicate", "fraudulent", "requested_by_customer"];

#[derive(Debug, Deserialize)]
struct StripeRefund {
    id: String,
    status: String,
    failure_reason: Option<String>,
    created: i64,
}

/// Records a refund of `amount` (default: all that remains) and submits it.
pub async fn create_refund(
    store: &Store,
    stripe: &StripeClient,
    payment_id: &str,
    amount: Option<i64>,
    reason: Option<&str>,
) -> Result<RefundRow> {
    if let Some(r) = reason {
        if !REASONS.contains(&r) {
            return Err(Error::rule(
                "invalid_refund_reason",
                format!("reason is one of {}", REASONS.join(", ")),
            ));
        }
    }
    let refund = {
        let mut tx = store.begin().await?;
        let mut conn = tx.conn();
        conn.lock_payment(payment_id).await?;
        let payment = conn
            .get_payment(payment_id)
            .await?
            .ok_or(Error::NotFound(Resource::Payment))?;
        match payment.ledger().state {
            PaymentState::Completed | PaymentState::PartiallyRefunded => {}
            PaymentState::Authorized => return Err(Error::rule_conflict(
                "payment_not_captured",
                "the payment is only authorized: release the authorization instead of refunding",
            )),
            state @ (PaymentState::Pending
            | PaymentState::RequiresAction
            | PaymentState::Failed
            | PaymentState::Canceled
            | PaymentState::Refunded) => {
                return Err(Error::rule_conflict(
                    "payment_not_refundable",
                    format!("a {} payment cannot be refunded", state.as_str()),
                ))
            }
        }
        let promised = conn.sum_open_refunds(payment_id).await?;
        let remaining = payment.amount - promised.max(payment.amount_refunded);
        let amount = amount.unwrap_or(remaining);
        if amount <= 0 {
            return Err(if remaining <= 0 {
                Error::rule_conflict("payment_fully_refunded", "nothing is left to refund")
            } else {
                Error::rule(
                    "amount_not_positive",
                    "amount must be a positive number of minor units",
                )
            });
        }
        // Refunds follow the currency's rules too (multiples of 10 in
        // three-decimal currencies).
        let currency = crate::money::Currency::parse(&payment.currency)?;
        crate::money::Money::new(amount, currency)?;
        if amount > remaining {
            return Err(Error::rule(
                "refund_exceeds_remaining",
                format!(
                    "at most {remaining} {} can still be refunded",
                    payment.currency
                ),
            ));
        }
        let id = crate::ids::new_id("rf_");
        let row = conn
            .insert_refund(&NewRefund {
                id: &id,
                payment_id,
                stripe_refund_id: None,
                amount,
                currency: &payment.currency,
                reason,
                status: "pending_submission",
                observed_at: 0,
                now: storage::now(),
            })
            .await?;
        tx.commit().await?;
        row
    };
    let intent = {
        let mut h = store.acquire().await?;
        h.conn()
            .get_payment(payment_id)
            .await?
            .ok_or(Error::NotFound(Resource::Payment))?
            .stripe_payment_intent_id
    };
    match submit(store, stripe, &refund, &intent).await {
        Ok(row) => Ok(row),
        // Still unanswered after retries: the row stays pending_submission
        // and the resubmission job tries again with the same key.
        Err(Error::Stripe(detail)) if detail.starts_with("unavailable") => {
            tracing::error!(refund = %refund.id, %detail, "Stripe did not accept a refund yet; it will be resubmitted");
            crate::jobs::refund_resubmit::enqueue_after_failure(store, &refund).await?;
            Ok(refund)
        }
        Err(e) => Err(e),
    }
}

/// Sends one recorded refund to Stripe (again) and records the answer.
pub async fn submit(
    store: &Store,
    stripe: &StripeClient,
    refund: &RefundRow,
    intent_id: &str,
) -> Result<RefundRow> {
    let params = Params::new()
        .set("payment_intent", intent_id)
        .set("amount", refund.amount)
        .set_opt("reason", refund.reason.as_deref())
        .set("metadata[obol_refund_id]", &refund.id)
        .set("metadata[obol_payment_id]", &refund.payment_id);
    let key = IdempotencyKey::for_op("refund", &[&refund.id]);
    let answer = stripe
        .post::<StripeRefund>("/v1/refunds", &params, &key)
        .await;
    let mut h = store.acquire().await?;
    let mut conn = h.conn();
    match answer {
        Ok(r) => {
            // The refund's own event may have been applied first; only a
            // newer view is written.
            if let Some(current) = conn.get_refund(&refund.id).await? {
                if current.is_older_than(&r.status, r.created) {
                    conn.update_refund_from_stripe(
                        &current,
                        &r.id,
                        &r.status,
                        r.failure_reason.as_deref(),
                        r.created,
                        storage::now(),
                    )
                    .await?;
                }
            }
        }
        Err(StripeError::Refused { error, .. }) => {
            // Stripe decided: the refund will not happen.
            conn.fail_refund_submission(&refund.id, &error.message, storage::now())
                .await?;
            return Err(Error::Stripe(format!(
                "Stripe refused the refund: {}",
                error.message
            )));
        }
        Err(e @ StripeError::Unavailable { .. }) => {
            conn.touch_refund(&refund.id, storage::now()).await?;
            return Err(Error::Stripe(format!("unavailable: {e}")));
        }
        Err(e @ StripeError::Decode(_)) => return Err(Error::Stripe(e.to_string())),
    }
    conn.get_refund(&refund.id)
        .await?
        .ok_or(Error::NotFound(Resource::Payment))
}

/// For a reconciliation pass: refunds Stripe has not accepted get their
/// `resubmit_refund` job due now (the job runner sends them); returns how many.
pub async fn resubmit_stale(store: &Store) -> Result<usize> {
    crate::jobs::refund_resubmit::queue_stale(store).await
}
