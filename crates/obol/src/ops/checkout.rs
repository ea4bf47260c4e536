//! Pay-first checkout: authorize before the order exists, capture when the
//! order reaches the merchant's chosen status, cancel (never refund) when
//! checkout fails. Every Stripe call carries a key derived from the
//! business object, and every change goes through the ledger.

use chrono::Duration;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::inbox::apply::{self, Cause};
use crate::ledger::PaymentState;
use crate::money::Money;
use crate::storage::payments::PaymentRow;
use crate::storage::Store;
use crate::stripe::{IdempotencyKey, Params, StripeClient, StripeError};

/// Stripe cancels uncaptured intents after seven days.
pub const AUTHORIZATION_DAYS: i64 = 7;

/// When an authorization lapses (for payments still authorized).
pub fn authorization_expires_at(p: &PaymentRow) -> Option<chrono::DateTime<chrono::Utc>> {
    (p.status == PaymentState::Authorized.as_str())
        .then(|| p.created_at + Duration::days(AUTHORIZATION_DAYS))
}

fn stripe_error(e: StripeError) -> Error {
    Error::Stripe(e.to_string())
}

/// Records what Stripe answered about an intent (cause: an API call).
pub async fn observe(store: &Store, intent: &Value, reference: &str) -> Result<PaymentRow> {
    let id = intent["id"]
        .as_str()
        .ok_or_else(|| Error::Stripe("an intent without an id".into()))?;
    let cause = Cause {
        kind: "api",
        reference: Some(reference),
        account_id: crate::api::customers::DEFAULT_ACCOUNT,
    };
    let mut tx = store.begin().await?;
    apply::observe_intent(
        &mut tx.conn(),
        &cause,
        intent,
        chrono::Utc::now().timestamp(),
    )
    .await?;
    let payment = tx
        .conn()
        .get_payment_by_intent(crate::api::customers::DEFAULT_ACCOUNT, id)
        .await?
        .ok_or_else(|| Error::internal("the observed intent has no payment"))?;
    tx.commit().await?;
    Ok(payment)
}

/// Creates a manual-capture intent for an amount, before any order.
pub async fn create_pay_first_intent(
    store: &Store,
    stripe: &StripeClient,
    amount: Money,
    customer_id: Option<&str>,
    request_key: &str,
) -> Result<(Value, PaymentRow)> {
    let params = Params::new()
        .set("amount", amount.to_stripe_amount())
        .set("currency", amount.currency().as_str())
        .set("capture_method", "manual")
        .set("automatic_payment_methods[enabled]", "true")
        .set("metadata[obol_mode]", "pre_order")
        .set_opt("metadata[obol_customer_id]", customer_id);
    let intent: Value = stripe
        .post(
            "/v1/payment_intents",
            &params,
            &IdempotencyKey::for_op("pay-first-intent", &[request_key]),
        )
        .await
        .map_err(stripe_error)?;
    let payment = observe(store, &intent, "POST /v1/payment-intents").await?;
    Ok((intent, payment))
}

/// Captures an order's authorized payment. Idempotent: a second call (or
/// a concurrent one) reuses the key and Stripe captures once.
pub async fn capture(
    store: &Store,
    stripe: &StripeClient,
    payment: &PaymentRow,
) -> Result<PaymentRow> {
    match payment.ledger().state {
        PaymentState::Completed | PaymentState::PartiallyRefunded | PaymentState::Refunded => {
            return Ok(payment.clone())
        }
        PaymentState::Authorized => {}
        other => {
            return Err(Error::rule_conflict(
                "payment_not_capturable",
                format!("the payment is {}, not authorized", other.as_str()),
            ))
        }
    }
    if authorization_expires_at(payment).is_some_and(|t| t <= chrono::Utc::now()) {
        return Err(Error::rule_conflict(
            "authorization_expired",
            "the authorization is older than 7 days and Stripe has released it; ask the customer to pay again",
        ));
    }
    let intent: Value = stripe
        .post(
            &format!(
                "/v1/payment_intents/{}/capture",
                payment.stripe_payment_intent_id
            ),
            &Params::new(),
            &IdempotencyKey::for_op("capture", &[&payment.id]),
        )
        .await
        .map_err(stripe_error)?;
    observe(store, &intent, "capture").await
}

/// What became of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    Canceled,
    /// Stripe could not be reached: a `release_authorization` job retries it.
    CancelPending,
}

/// Cancels an authorization (checkout failed, order cancelled). Never a
/// refund: nothing was captured.
pub async fn release(
    store: &Store,
    stripe: &StripeClient,
    payment: &PaymentRow,
    reason: &str,
) -> Result<Released> {
    match payment.ledger().state {
        PaymentState::Canceled => return Ok(Released::Canceled),
        PaymentState::Pending
        | PaymentState::RequiresAction
        | PaymentState::Authorized
        | PaymentState::Failed => {}
        other => {
            return Err(Error::rule_conflict(
                "payment_already_captured",
                format!("the payment is {}; refund it instead", other.as_str()),
            ))
        }
    }
    let result = stripe
        .post::<Value>(
            &format!(
                "/v1/payment_intents/{}/cancel",
                payment.stripe_payment_intent_id
            ),
            &Params::new().set("cancellation_reason", "abandoned"),
            &IdempotencyKey::for_op("cancel", &[&payment.id]),
        )
        .await;
    match result {
        Ok(intent) => {
            observe(store, &intent, "release").await?;
            let mut h = store.acquire().await?;
            h.conn().clear_pending_cancellation(&payment.id).await?;
            tracing::info!(payment = %payment.id, %reason, "authorization released");
            Ok(Released::Canceled)
        }
        Err(e @ StripeError::Unavailable { .. }) => {
            tracing::error!(payment = %payment.id, %reason, error = %e, "could not release an authorization; queued for retry");
            let mut h = store.acquire().await?;
            crate::jobs::release::enqueue(&mut h.conn(), payment, reason).await?;
            Ok(Released::CancelPending)
        }
        Err(e) => Err(stripe_error(e)),
    }
}

/// For a reconciliation pass: queued releases become due now (the job
/// runner performs them); returns how many.
pub async fn retry_releases(store: &Store) -> Result<usize> {
    crate::jobs::release::queue_pending(store).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::stripe::{RateLimit, RetryPolicy};

    /// A capture of an authorization older than 7 days answers 409 without
    /// asking Stripe (the client here points nowhere).
    #[tokio::test]
    async fn an_expired_authorization_is_refused_before_stripe_is_asked() {
        let config = Config::from_yaml("database_url: \"sqlite::memory:\"\n").unwrap();
        let store = Store::connect(&config).await.unwrap();
        let stripe = StripeClient::new(
            "http://127.0.0.1:9",
            secrecy::SecretString::from("sk_test_x"),
            RateLimit::per_second(10),
            RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
        )
        .unwrap();
        let created = chrono::Utc::now() - Duration::days(8);
        let payment = PaymentRow {
            id: "pay_x".into(),
            account_id: "default".into(),
            customer_id: None,
            order_id: None,
            stripe_payment_intent_id: "pi_x".into(),
            amount: 100,
            currency: "eur".into(),
            amount_refunded: 0,
            status: "authorized".into(),
            disputed: false,
            observed_at: 0,
            created_at: created,
            updated_at: created,
        };
        assert!(authorization_expires_at(&payment).unwrap() < chrono::Utc::now());
        let err = capture(&store, &stripe, &payment).await.unwrap_err();
        assert_eq!(err.code(), "authorization_expired");
        assert_eq!(err.status().as_u16(), 409);
    }
}
