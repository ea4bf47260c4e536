//! How a mirrored subscription and a Stripe invoice look to the host: the
//! API's answers and the notifications' `data` carry the same objects.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Result;
use crate::money::{Currency, Money};
use crate::storage::billing::{BillingInvoiceRow, SubscriptionRow};

fn at(t: Option<i64>) -> Option<DateTime<Utc>> {
    t.and_then(|t| Utc.timestamp_opt(t, 0).single())
}

/// A subscription: a recurring gift or plan at Stripe.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionOut {
    #[schema(value_type = crate::ids::SubscriptionId)]
    pub id: String,
    /// obol's customer; null for a subscription of a Stripe customer obol
    /// does not know (yet).
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    /// Stripe's `sub_…`; null until Stripe answered obol's create.
    pub stripe_subscription_id: Option<String>,
    pub stripe_customer_id: Option<String>,
    /// `obol` (made through `POST /v1/subscriptions`) or `stripe` (made at
    /// Stripe and adopted from its events).
    pub source: String,
    /// Per interval, all items together.
    pub amount: Money,
    /// `month` or `year` (`day`, `week` for adopted ones).
    pub interval: String,
    pub interval_count: i64,
    /// Stripe's: incomplete, incomplete_expired, trialing, active,
    /// past_due, canceled, unpaid or paused.
    #[schema(example = "active")]
    pub status: String,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    /// When the member is next charged: the period's (or trial's) end, a
    /// past-due invoice's next retry; null once it ends or is set to end.
    pub next_payment_at: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    /// When it was canceled (or set to cancel at the period's end).
    pub canceled_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    pub description: Option<String>,
    /// Stripe's `in_…` of the latest invoice.
    pub latest_stripe_invoice_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SubscriptionOut {
    pub fn new(r: &SubscriptionRow, next_payment_at: Option<i64>) -> Result<Self> {
        Ok(SubscriptionOut {
            id: r.id.clone(),
            customer_id: r.customer_id.clone(),
            stripe_subscription_id: r.stripe_subscription_id.clone(),
            stripe_customer_id: r.stripe_customer_id.clone(),
            source: r.source.clone(),
            amount: Money::balance(r.amount, Currency::parse(&r.currency)?)?,
            interval: r.billing_interval.clone(),
            interval_count: r.interval_count,
            status: r.status.clone(),
            current_period_start: at(r.current_period_start),
            current_period_end: at(r.current_period_end),
            next_payment_at: at(next_payment_at),
            cancel_at_period_end: r.cancel_at_period_end,
            canceled_at: at(r.canceled_at),
            ended_at: at(r.ended_at),
            trial_end: at(r.trial_end),
            description: r.description.clone(),
            latest_stripe_invoice_id: r.latest_stripe_invoice_id.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A Stripe invoice as obol mirrors it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BillingInvoiceOut {
    #[schema(value_type = crate::ids::BillingInvoiceId)]
    pub id: String,
    /// Stripe's `in_…`.
    pub stripe_invoice_id: String,
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    /// The subscription it bills, if any.
    #[schema(value_type = Option<crate::ids::SubscriptionId>)]
    pub subscription_id: Option<String>,
    /// The scheduled payment it carries out, if any.
    #[schema(value_type = Option<crate::ids::ScheduledPaymentId>)]
    pub scheduled_payment_id: Option<String>,
    /// The ledger payment of its PaymentIntent, once recorded.
    #[schema(value_type = Option<crate::ids::PaymentId>)]
    pub payment_id: Option<String>,
    pub stripe_payment_intent_id: Option<String>,
    /// Stripe's: draft, open, paid, uncollectible or void.
    #[schema(example = "paid")]
    pub status: String,
    pub amount_due: Money,
    pub amount_paid: Money,
    pub amount_remaining: Money,
    /// Collection attempts so far.
    pub attempt_count: i64,
    pub number: Option<String>,
    pub hosted_invoice_url: Option<String>,
    /// `subscription_create`, `subscription_cycle`, `manual`, …
    pub billing_reason: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub due_date: Option<DateTime<Utc>>,
    /// When Stripe next tries to collect it.
    pub next_payment_attempt: Option<DateTime<Utc>>,
    /// When a draft is finalized (and, charged automatically, collected).
    pub automatically_finalizes_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl BillingInvoiceOut {
    pub fn new(r: &BillingInvoiceRow) -> Result<Self> {
        let c = Currency::parse(&r.currency)?;
        Ok(BillingInvoiceOut {
            id: r.id.clone(),
            stripe_invoice_id: r.stripe_invoice_id.clone(),
            customer_id: r.customer_id.clone(),
            subscription_id: r.subscription_id.clone(),
            scheduled_payment_id: r.scheduled_payment_id.clone(),
            payment_id: r.payment_id.clone(),
            stripe_payment_intent_id: r.stripe_payment_intent_id.clone(),
            status: r.status.clone(),
            amount_due: Money::balance(r.amount_due, c)?,
            amount_paid: Money::balance(r.amount_paid, c)?,
            amount_remaining: Money::balance(r.amount_remaining, c)?,
            attempt_count: r.attempt_count,
            number: r.number.clone(),
            hosted_invoice_url: r.hosted_invoice_url.clone(),
            billing_reason: r.billing_reason.clone(),
            period_start: at(r.period_start),
            period_end: at(r.period_end),
            due_date: at(r.due_date),
            next_payment_attempt: at(r.next_payment_attempt),
            automatically_finalizes_at: at(r.automatically_finalizes_at),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}
