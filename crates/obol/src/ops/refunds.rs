//! Refunding a payment: recorded first, then asked of Stripe with an
//! idempotency key derived from obol's refund id, so a retry after a crash
//! or a timeout can never refund twice. The ledger's refunded amount moves
//! only when Stripe's `charge.refunded` event (or reconciliation) says so.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ledger::refund::{transition, RefundDecision, RefundEvent, RefundStatus};
use crate::ledger::PaymentState;
use crate::storage::refunds::{NewRefund, RefundRow};
use crate::stripe::{IdempotencyKey, Params, StripeError};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundIn {
    /// Minor units; default: everything not yet refunded.
    #[schema(minimum = 1)]
    pub amount: Option<i64>,
    #[schema(value_type = Option<RefundReason>)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundOut {
    #[schema(value_type = crate::ids::RefundId)]
    pub id: String,
    #[schema(value_type = crate::ids::PaymentId)]
    pub payment_id: String,
    /// pending_submission (Stripe not reached yet; retried), pending,
    /// requires_action, succeeded, failed or canceled.
    pub status: RefundStatus,
    /// Minor units.
    #[schema(minimum = 1)]
    pub amount: i64,
    #[schema(value_type = crate::money::Currency)]
    pub currency: String,
    #[schema(value_type = Option<RefundReason>)]
    pub reason: Option<String>,
    /// Stripe's reason when the refund failed.
    pub failure_reason: Option<String>,
    /// Stripe's `re_…`, once Stripe has the refund.
    pub stripe_refund_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RefundRow> for RefundOut {
    fn from(r: RefundRow) -> Self {
        RefundOut {
            id: r.id,
            payment_id: r.payment_id,
            status: r.status,
            amount: r.amount,
            currency: r.currency,
            reason: r.reason,
            failure_reason: r.failure_reason,
            stripe_refund_id: r.stripe_refund_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `POST /v1/payments/{id}/refunds` (secret key only).
pub async fn create(
    ctx: &Ctx,
    actor: &Actor,
    payment_id: &str,
    body: RefundIn,
) -> Result<RefundOut> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let payment_id =
        crate::ids::PaymentId::parse(payment_id).map_err(|_| Error::NotFound(Resource::Payment))?;
    let payment_id = payment_id.as_str();
    actor.require_secret()?;
    let refund = create_refund(ctx, actor, payment_id, body.amount, body.reason.as_deref()).await?;
    Ok(refund.into())
}

/// Reads-then-guarded-writes of one refund before giving up to the
/// refund's own events (each lost race means another writer moved it).
const WRITE_ATTEMPTS: usize = 3;

/// Why a refund was made: Stripe's accepted reasons.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    Duplicate,
    Fraudulent,
    RequestedByCustomer,
}

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
    ctx: &Ctx,
    actor: &Actor,
    payment_id: &str,
    amount: Option<i64>,
    reason: Option<&str>,
) -> Result<RefundRow> {
    if let Some(r) = reason {
        if !REASONS.contains(&r) {
            return Err(Error::rule(
                RuleCode::InvalidRefundReason,
                format!("reason is one of {}", REASONS.join(", ")),
            ));
        }
    }
    let refund = {
        let mut tx = ctx.store().begin().await?;
        let mut conn = tx.conn();
        conn.lock_payment(payment_id).await?;
        let payment = conn
            .get_payment(actor.account(), payment_id)
            .await?
            .ok_or(Error::NotFound(Resource::Payment))?;
        match payment.ledger().state {
            PaymentState::Completed | PaymentState::PartiallyRefunded => {}
            PaymentState::Authorized => return Err(Error::rule(
                RuleCode::PaymentNotCaptured,
                "the payment is only authorized: release the authorization instead of refunding",
            )),
            state @ (PaymentState::Pending
            | PaymentState::RequiresAction
            | PaymentState::Failed
            | PaymentState::Canceled
            | PaymentState::Refunded) => {
                return Err(Error::rule(
                    RuleCode::PaymentNotRefundable,
                    format!("a {} payment cannot be refunded", state.as_str()),
                ))
            }
        }
        let promised = conn.sum_open_refunds(payment_id).await?;
        // Bounded by what Stripe captured, not by the authorization: after a
        // partial capture the released rest was never taken, so it cannot
        // be given back (Stripe would refuse it after we recorded it).
        let remaining = payment.captured_amount() - promised.max(payment.amount_refunded);
        let amount = amount.unwrap_or(remaining);
        if amount <= 0 {
            return Err(if remaining <= 0 {
                Error::rule(RuleCode::PaymentFullyRefunded, "nothing is left to refund")
            } else {
                Error::rule(
                    RuleCode::AmountNotPositive,
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
                RuleCode::RefundExceedsRemaining,
                format!(
                    "at most {remaining} {} can still be refunded",
                    payment.currency
                ),
            ));
        }
        let id = String::from(crate::ids::RefundId::generate());
        let row = conn
            .insert_refund(&NewRefund {
                id: &id,
                payment_id,
                stripe_refund_id: None,
                amount,
                currency: &payment.currency,
                reason,
                status: RefundStatus::PendingSubmission,
                observed_at: 0,
                now: ctx.now(),
            })
            .await?;
        tx.commit().await?;
        row
    };
    let intent = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_payment(actor.account(), payment_id)
            .await?
            .ok_or(Error::NotFound(Resource::Payment))?
            .stripe_payment_intent_id
    };
    match submit(ctx, &refund, &intent).await {
        Ok(row) => Ok(row),
        // Still unanswered after retries: the row stays pending_submission
        // and the resubmission job tries again with the same key.
        Err(Error::Stripe(detail)) if matches!(*detail, StripeError::Unavailable { .. }) => {
            tracing::error!(refund = %refund.id, %detail, "Stripe did not accept a refund yet; it will be resubmitted");
            crate::jobs::refund_resubmit::enqueue_after_failure(ctx.store(), &refund).await?;
            Ok(refund)
        }
        Err(e) => Err(e),
    }
}

/// Sends one recorded refund to Stripe (again) and records the answer.
pub async fn submit(ctx: &Ctx, refund: &RefundRow, intent_id: &str) -> Result<RefundRow> {
    let params = Params::new()
        .set("payment_intent", intent_id)
        .set("amount", refund.amount)
        .set_opt("reason", refund.reason.as_deref())
        .set("metadata[obol_refund_id]", &refund.id)
        .set("metadata[obol_payment_id]", &refund.payment_id);
    let key = IdempotencyKey::for_op("refund", &[&refund.id]);
    let answer = ctx
        .stripe_of(&refund.account())
        .await?
        .post::<StripeRefund>("/v1/refunds", &params, &key)
        .await;
    let now = ctx.now();
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    match answer {
        Ok(r) => {
            // The refund's own event may be applied at the same moment; only
            // a newer view is written, guarded by the row read. A lost race
            // reads again: the winner's view may still be older than Stripe's
            // answer (refund.created's `pending` against a `succeeded` here).
            let status = RefundStatus::parse_stripe(&r.status).ok_or_else(|| {
                Error::from(StripeError::Decode(format!(
                    "a refund in an unknown status {:?}",
                    r.status
                )))
            })?;
            let seen = RefundEvent::Observed {
                status,
                at: r.created,
            };
            for _ in 0..WRITE_ATTEMPTS {
                let Some(current) = conn.get_refund(&refund.account(), &refund.id).await? else {
                    break;
                };
                let RefundDecision::Move { next } = transition(current.ledger(), seen) else {
                    break;
                };
                if conn
                    .update_refund_from_stripe(
                        &current,
                        &r.id,
                        next.status,
                        r.failure_reason.as_deref(),
                        next.observed_at,
                        now,
                    )
                    .await?
                {
                    break;
                }
            }
        }
        Err(e @ StripeError::Refused { .. }) => {
            // Stripe decided: the refund will not happen (unless Stripe has
            // it already and this answers a retry: the machine decides).
            let message = match &e {
                // Shown as the refund's failure_reason: never obol's key.
                StripeError::Refused { error, .. } => {
                    crate::stripe::redact_idempotency_keys(&error.message)
                }
                StripeError::Unavailable { .. } | StripeError::Decode(_) => String::new(),
            };
            let current = conn.get_refund(&refund.account(), &refund.id).await?;
            if let Some(RefundDecision::Move { .. }) =
                current.map(|c| transition(c.ledger(), RefundEvent::Refused))
            {
                conn.fail_refund_submission(&refund.id, &message, now)
                    .await?;
            }
            return Err(e.into());
        }
        Err(e @ StripeError::Unavailable { .. }) => {
            conn.touch_refund(&refund.id, now).await?;
            return Err(e.into());
        }
        Err(e @ StripeError::Decode(_)) => return Err(e.into()),
    }
    conn.get_refund(&refund.account(), &refund.id)
        .await?
        .ok_or(Error::NotFound(Resource::Payment))
}

/// For a reconciliation pass: refunds Stripe has not accepted get their
/// `resubmit_refund` job due now (the job runner sends them); returns how many.
pub async fn resubmit_stale(ctx: &Ctx) -> Result<usize> {
    crate::jobs::refund_resubmit::queue_stale(ctx.store()).await
}
