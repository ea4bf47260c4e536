//! Pay-first checkout: authorize before the order exists, capture when the
//! order reaches the merchant's chosen status, cancel (never refund) when
//! checkout fails. Every Stripe call carries a key derived from the
//! business object, and every change goes through the ledger. Calls made
//! for a customer, guest or link go through `Ctx::stripe_for`, which
//! charges their own Stripe budget; open pay-first intents per customer
//! token are capped.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::CustomerId;
use crate::ledger::order::OrderStatus;
use crate::ledger::PaymentState;
use crate::money::{Currency, Money};
use crate::payments::{self, Cause};
use crate::storage::payments::PaymentRow;
use crate::storage::Conn;
use crate::stripe::{IdempotencyKey, Params, StripeError};

/// Stripe cancels uncaptured intents after seven days.
pub const AUTHORIZATION_DAYS: i64 = 7;

/// When an authorization lapses (for payments still authorized).
pub fn authorization_expires_at(p: &PaymentRow) -> Option<chrono::DateTime<chrono::Utc>> {
    (p.status == PaymentState::Authorized)
        .then(|| p.created_at + Duration::days(AUTHORIZATION_DAYS))
}

/// Records what Stripe answered about an intent inside the caller's
/// transaction (cause: an API call) and returns its payment.
pub async fn record_intent(
    conn: &mut Conn<'_>,
    account: &AccountId,
    intent: &Value,
    reference: &str,
) -> Result<PaymentRow> {
    // An intent obol cannot read (bad money included) is Stripe answering
    // garbage: 502, and nothing is written.
    let seen = payments::read_intent(intent)
        .map_err(|why| Error::from(StripeError::Decode(why.to_string())))?;
    let cause = Cause {
        kind: "api",
        reference: Some(reference),
        account_id: account.as_str(),
    };
    payments::observe_intent(conn, &cause, &seen, chrono::Utc::now().timestamp()).await?;
    conn.get_payment_by_intent(account.as_str(), &seen.id)
        .await?
        .ok_or_else(|| Error::internal("the observed intent has no payment"))
}

/// Records what Stripe answered about an intent, in its own transaction.
pub async fn observe(
    ctx: &Ctx,
    account: &AccountId,
    intent: &Value,
    reference: &str,
) -> Result<PaymentRow> {
    let mut tx = ctx.store().begin().await?;
    let payment = record_intent(&mut tx.conn(), account, intent, reference).await?;
    tx.commit().await?;
    Ok(payment)
}

/// Body of `POST /v1/payment-intents`: either `{amount, currency,
/// customer_id?}` (pay first) or `{order_id, guest_token?}` (pay an
/// existing order).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentIntentIn {
    /// Minor units.
    pub amount: Option<i64>,
    #[schema(value_type = Option<crate::money::Currency>)]
    pub currency: Option<String>,
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    #[schema(value_type = Option<crate::ids::OrderId>)]
    pub order_id: Option<String>,
    /// The order's guest token, for a guest paying its order.
    pub guest_token: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentIntentOut {
    /// Stripe's `pi_…`.
    pub id: String,
    /// What Stripe.js confirms the payment with; null once the intent can
    /// no longer be confirmed.
    pub client_secret: Option<String>,
    /// The Stripe publishable key to load Stripe.js with.
    pub publishable_key: String,
    /// Minor units.
    #[schema(minimum = 1)]
    pub amount: i64,
    #[schema(value_type = crate::money::Currency)]
    pub currency: String,
    #[schema(value_type = StripeIntentStatus)]
    pub status: String,
    #[schema(value_type = crate::ids::PaymentId)]
    pub payment_id: String,
}

/// An intent for the caller, and whether it was made now (`false`: an
/// open intent of the same order was returned again).
#[derive(Debug)]
pub struct IntentFor {
    pub created: bool,
    pub intent: PaymentIntentOut,
}

fn intent_out(ctx: &Ctx, intent: &Value, amount: Money, payment_id: String) -> PaymentIntentOut {
    PaymentIntentOut {
        id: intent["id"].as_str().unwrap_or_default().to_string(),
        client_secret: intent["client_secret"].as_str().map(str::to_string),
        publishable_key: ctx.stripe_info().publishable_key.clone(),
        amount: amount.minor(),
        currency: amount.currency().as_str().to_string(),
        status: intent["status"].as_str().unwrap_or_default().to_string(),
        payment_id,
    }
}

/// `POST /v1/payment-intents`: pays an existing order (`order_id`) or
/// authorizes before the order exists (`amount` + `currency`). The
/// caller's `Idempotency-Key`, if any, makes a retried pay-first call
/// return the same intent.
pub async fn create_intent(
    ctx: &Ctx,
    actor: &Actor,
    body: PaymentIntentIn,
    idempotency_key: Option<&str>,
) -> Result<IntentFor> {
    if let Some(order_id) = &body.order_id {
        if body.amount.is_some() || body.currency.is_some() || body.customer_id.is_some() {
            return Err(Error::InvalidBody(
                "send either order_id (an existing order) or amount and currency (pay first)"
                    .into(),
            ));
        }
        return pay_order(ctx, actor, order_id, Capture::Automatic).await;
    }
    if matches!(actor, Actor::Guest { .. } | Actor::Link { .. }) {
        return Err(Error::Unauthenticated);
    }
    let (Some(amount), Some(currency)) = (body.amount, &body.currency) else {
        return Err(Error::InvalidBody(
            "amount and currency are required (or order_id)".into(),
        ));
    };
    let currency = Currency::parse(currency)?;
    // Stripe's minimum is checked here, not left to Stripe: its refusal
    // would come back after the customer lookup and cost a Stripe call.
    let amount = Money::new(amount, currency)?.ensure_minimum_charge()?;
    let customer = match (actor, &body.customer_id) {
        (Actor::Secret { account }, Some(id)) => {
            let id = CustomerId::parse(id).map_err(|_| Error::NotFound(Resource::Customer))?;
            let mut h = ctx.store().acquire().await?;
            h.conn()
                .get_customer(account, &id)
                .await?
                .ok_or(Error::NotFound(Resource::Customer))?;
            Some(id)
        }
        (Actor::Customer { customer, .. }, Some(id)) if id != customer.as_str() => {
            return Err(Error::NotFound(Resource::Customer))
        }
        (actor, _) => actor.customer().cloned(),
    };
    let request_key = idempotency_key
        .map(|k| {
            format!(
                "{}:{k}",
                customer.as_ref().map(|c| c.as_str()).unwrap_or("-")
            )
        })
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    if let Actor::Customer { account, customer } = actor {
        open_intents_below_cap(ctx, account, customer).await?;
    }
    let (intent, payment) = create_pay_first_intent(
        ctx,
        actor,
        amount,
        customer.as_ref().map(|c| c.as_str()),
        &request_key,
    )
    .await?;
    Ok(IntentFor {
        created: true,
        intent: intent_out(ctx, &intent, amount, payment.id),
    })
}

/// How a new intent for an order is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// Charged on confirmation; the webhook confirms the order.
    Automatic,
    /// Authorized only: a payment link's completion confirms the order
    /// (after checking the total again) and captures per `capture_on`.
    ManualForLink,
}

/// Pays an existing pending order: one open intent per order (a second
/// call returns it), metadata naming the order, `receipt_email` from the
/// billing address. The webhook confirms the order on success.
pub(crate) async fn pay_order(
    ctx: &Ctx,
    actor: &Actor,
    order_id: &str,
    capture: Capture,
) -> Result<IntentFor> {
    let order = super::orders::load_owned(ctx, actor, order_id).await?;
    if order.status != OrderStatus::Pending {
        return Err(Error::rule(
            RuleCode::OrderNotPayable,
            format!("the order is {}, not pending", order.status.as_str()),
        ));
    }
    let currency = Currency::parse(&order.currency)?;
    // Orders stored before the minimum was checked at creation are refused
    // here, before Stripe is asked.
    let amount = Money::new(order.total, currency)?.ensure_minimum_charge()?;
    let existing = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .list_payments_for_order(actor.account(), &order.id)
            .await?
    };
    for p in &existing {
        let state = p.ledger().state;
        if matches!(
            state,
            PaymentState::Pending | PaymentState::RequiresAction | PaymentState::Failed
        ) {
            let intent: Value = ctx
                .stripe_for(actor)
                .await?
                .get(
                    &format!("/v1/payment_intents/{}", p.stripe_payment_intent_id),
                    &Params::new(),
                )
                .await?;
            if !matches!(intent["status"].as_str(), Some("canceled" | "succeeded")) {
                return Ok(IntentFor {
                    created: false,
                    intent: intent_out(ctx, &intent, amount, p.id.clone()),
                });
            }
        }
        if state == PaymentState::Authorized || state.is_captured() {
            return Err(Error::rule(
                RuleCode::OrderAlreadyPaid,
                "the order has a payment already",
            ));
        }
    }
    let receipt_email = order
        .billing_address
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .and_then(|a| a["email"].as_str().map(str::to_string));
    let params = Params::new()
        .set("amount", amount.to_stripe_amount())
        .set("currency", currency.as_str())
        .set("automatic_payment_methods[enabled]", "true")
        .set("description", format!("Order {}", order.number))
        .set("metadata[obol_order_id]", &order.id)
        .set("metadata[obol_order_number]", &order.number)
        .set_opt("metadata[obol_customer_id]", order.customer_id.as_deref())
        .set_opt("receipt_email", receipt_email.as_deref());
    let (params, op) = match capture {
        Capture::Automatic => (params, "order-intent"),
        Capture::ManualForLink => (
            params
                .set("capture_method", "manual")
                .set("metadata[obol_mode]", "payment_link"),
            "link-intent",
        ),
    };
    // One key per order and attempt: a retry replays; after a canceled
    // attempt a new intent is made.
    let attempt = existing.len().to_string();
    let intent: Value = ctx
        .stripe_for(actor)
        .await?
        .post(
            "/v1/payment_intents",
            &params,
            &IdempotencyKey::for_op(op, &[&order.id, &attempt]),
        )
        .await?;
    let payment = observe(ctx, actor.account(), &intent, "POST /v1/payment-intents").await?;
    Ok(IntentFor {
        created: true,
        intent: intent_out(ctx, &intent, amount, payment.id),
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntentStatusOut {
    /// Stripe's `pi_…`.
    pub id: String,
    /// Stripe's status of the intent, read now (the same as `stripe_status`).
    #[schema(value_type = StripeIntentStatus)]
    pub status: String,
    /// Stripe's status of the intent, read now.
    #[schema(value_type = StripeIntentStatus)]
    pub stripe_status: String,
    /// The ledger's state of the payment.
    pub payment_status: PaymentState,
    #[schema(value_type = crate::ids::PaymentId)]
    pub payment_id: String,
    #[schema(value_type = Option<crate::ids::OrderId>)]
    pub order_id: Option<String>,
    /// The status of the newest payment link for this intent
    /// (`pending`, `completing`, `completed`, `canceled`); null without one.
    #[schema(value_type = Option<super::payment_links::LinkStatus>)]
    pub payment_link_status: Option<String>,
}

/// The intent's Stripe status and the local payment state, for the secret
/// key, the paying customer, or the order's guest; 404 for anyone else.
pub async fn intent_status(ctx: &Ctx, actor: &Actor, intent_id: &str) -> Result<IntentStatusOut> {
    let payment = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_payment_by_intent(actor.account().as_str(), intent_id)
            .await?
            .ok_or(Error::NotFound(Resource::Payment))?
    };
    let by_order = match &payment.order_id {
        Some(order_id) => super::orders::load_owned(ctx, actor, order_id)
            .await
            .is_ok(),
        None => false,
    };
    let by_customer = actor.may_access_customer_object(
        payment
            .customer_id
            .clone()
            .map(CustomerId::from_db)
            .as_ref(),
    );
    if !by_order && !by_customer {
        return Err(Error::NotFound(Resource::Payment));
    }
    let intent: Value = ctx
        .stripe_for(actor)
        .await?
        .get(&format!("/v1/payment_intents/{intent_id}"), &Params::new())
        .await?;
    let link = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_payment_link_by_intent(actor.account(), intent_id)
            .await?
    };
    let stripe_status = intent["status"].as_str().unwrap_or_default().to_string();
    Ok(IntentStatusOut {
        id: intent_id.to_string(),
        status: stripe_status.clone(),
        stripe_status,
        payment_status: payment.status,
        payment_id: payment.id,
        order_id: payment.order_id,
        payment_link_status: link.map(|l| l.status),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseIn {
    /// Why checkout failed (insufficient_stock, address_rejected, …); logged.
    pub reason: String,
}

/// Checkout failed after authorization: cancel it (never a refund). With
/// Stripe unreachable the release is queued and retried, and the answer
/// says `cancel_pending` at once.
pub async fn release_intent(
    ctx: &Ctx,
    actor: &Actor,
    intent_id: &str,
    body: ReleaseIn,
) -> Result<ReleasedOut> {
    actor.require_secret()?;
    let reason = crate::validate::text("reason", &body.reason, 255)?;
    let payment = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_payment_by_intent(actor.account().as_str(), intent_id)
            .await?
            .ok_or(Error::NotFound(Resource::Payment))?
    };
    let status = match release(ctx, &payment, reason).await? {
        Released::Canceled => ReleaseStatus::Canceled,
        Released::CancelPending => ReleaseStatus::CancelPending,
    };
    Ok(ReleasedOut {
        id: intent_id.to_string(),
        status,
        payment_id: payment.id,
    })
}

/// The answer of a release.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleasedOut {
    /// Stripe's `pi_…`.
    pub id: String,
    pub status: ReleaseStatus,
    #[schema(value_type = crate::ids::PaymentId)]
    pub payment_id: String,
}

/// `canceled`: Stripe released the authorization. `cancel_pending`:
/// Stripe could not be reached; a job retries until it is released.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    Canceled,
    CancelPending,
}

/// A Stripe PaymentIntent's status, as Stripe names it.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StripeIntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
}

/// A customer token may hold `checkout.max_open_intents_per_customer`
/// open pay-first intents: each is an authorization Stripe holds for up
/// to 7 days and a row obol watches, and a customer minting them in a
/// loop would tie up Stripe calls the backend needs. Checked before
/// Stripe is asked; concurrent requests can pass together, bounded by
/// the customer's Stripe budget (a burst of twice its rate).
async fn open_intents_below_cap(
    ctx: &Ctx,
    account: &AccountId,
    customer: &CustomerId,
) -> Result<()> {
    let cap = ctx.settings().max_open_intents_per_customer;
    let open = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .count_open_pay_first_payments(account, customer.as_str())
            .await?
    };
    if open >= cap {
        return Err(Error::rule(
            RuleCode::TooManyOpenIntents,
            format!(
                "this customer has {open} open pay-first intents (at most {cap}); complete or release one first"
            ),
        ));
    }
    Ok(())
}

/// Creates a manual-capture intent for an amount, before any order.
async fn create_pay_first_intent(
    ctx: &Ctx,
    actor: &Actor,
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
    let intent: Value = ctx
        .stripe_for(actor)
        .await?
        .post(
            "/v1/payment_intents",
            &params,
            &IdempotencyKey::for_op("pay-first-intent", &[request_key]),
        )
        .await?;
    let payment = observe(ctx, actor.account(), &intent, "POST /v1/payment-intents").await?;
    Ok((intent, payment))
}

/// Captures an order's authorized payment. Idempotent: a second call (or
/// a concurrent one) reuses the key and Stripe captures once.
pub async fn capture(ctx: &Ctx, payment: &PaymentRow) -> Result<PaymentRow> {
    match payment.ledger().state {
        PaymentState::Completed | PaymentState::PartiallyRefunded | PaymentState::Refunded => {
            return Ok(payment.clone())
        }
        PaymentState::Authorized => {}
        other => {
            return Err(Error::rule(
                RuleCode::PaymentNotCapturable,
                format!("the payment is {}, not authorized", other.as_str()),
            ))
        }
    }
    if authorization_expires_at(payment).is_some_and(|t| t <= ctx.now()) {
        return Err(Error::rule(
            RuleCode::AuthorizationExpired,
            "the authorization is older than 7 days and Stripe has released it; ask the customer to pay again",
        ));
    }
    let intent: Value = ctx
        .stripe_of(&account_of(payment))
        .await?
        .post(
            &format!(
                "/v1/payment_intents/{}/capture",
                payment.stripe_payment_intent_id
            ),
            &Params::new(),
            &IdempotencyKey::for_op("capture", &[&payment.id]),
        )
        .await?;
    observe(ctx, &account_of(payment), &intent, "capture").await
}

fn account_of(p: &PaymentRow) -> AccountId {
    AccountId::from_db(p.account_id.clone())
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
pub async fn release(ctx: &Ctx, payment: &PaymentRow, reason: &str) -> Result<Released> {
    match payment.ledger().state {
        PaymentState::Canceled => return Ok(Released::Canceled),
        PaymentState::Pending
        | PaymentState::RequiresAction
        | PaymentState::Authorized
        | PaymentState::Failed => {}
        other => {
            return Err(Error::rule(
                RuleCode::PaymentAlreadyCaptured,
                format!("the payment is {}; refund it instead", other.as_str()),
            ))
        }
    }
    let result = ctx
        .stripe_of(&account_of(payment))
        .await?
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
            observe(ctx, &account_of(payment), &intent, "release").await?;
            let mut h = ctx.store().acquire().await?;
            h.conn().clear_pending_cancellation(&payment.id).await?;
            tracing::info!(payment = %payment.id, %reason, "authorization released");
            Ok(Released::Canceled)
        }
        Err(e @ StripeError::Unavailable { .. }) => {
            tracing::error!(payment = %payment.id, %reason, error = %e, "could not release an authorization; queued for retry");
            let mut h = ctx.store().acquire().await?;
            crate::jobs::release::enqueue(&mut h.conn(), payment, reason).await?;
            Ok(Released::CancelPending)
        }
        Err(e) => Err(e.into()),
    }
}

/// For a reconciliation pass: queued releases become due now (the job
/// runner performs them); returns how many.
pub async fn retry_releases(ctx: &Ctx) -> Result<usize> {
    crate::jobs::release::queue_pending(ctx.store()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, StripeMode};
    use crate::storage::Store;
    use crate::stripe::{RateLimit, RetryPolicy, StripeClient, StripeInfo};

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
            amount_captured: 0,
            status: PaymentState::Authorized,
            disputed: false,
            observed_at: 0,
            created_at: created,
            updated_at: created,
            charge: Default::default(),
        };
        assert!(authorization_expires_at(&payment).unwrap() < chrono::Utc::now());
        let ctx = Ctx::new(
            store,
            StripeInfo::new(StripeMode::Test, String::new(), stripe),
            crate::context::Settings::from_config(&config).unwrap(),
            Default::default(),
        );
        let err = capture(&ctx, &payment).await.unwrap_err();
        assert_eq!(err.code(), "authorization_expired");
        assert_eq!(err.status().as_u16(), 409);
    }
}
