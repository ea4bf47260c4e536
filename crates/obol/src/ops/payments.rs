//! Payments: the ledger's payments and their timelines, as callers see
//! them. Changes to a payment happen in the payment writer, never here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pagination::{self, Cursor, Page};
use super::refunds::RefundOut;
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result};
use crate::ids::CustomerId;
use crate::ledger::PaymentState;
use crate::storage::payments::{PaymentFilter, PaymentRow, TimelineRow};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentOut {
    #[schema(value_type = crate::ids::PaymentId)]
    pub id: String,
    pub status: PaymentState,
    /// Minor units.
    #[schema(minimum = 0)]
    pub amount: i64,
    #[schema(value_type = crate::money::Currency)]
    pub currency: String,
    #[schema(minimum = 0)]
    pub amount_refunded: i64,
    /// What Stripe captured: the authorized `amount`, or less after a
    /// partial capture; 0 before capture. Refunds are bounded by it.
    #[schema(minimum = 0)]
    pub amount_captured: i64,
    pub disputed: bool,
    /// Stripe's `pi_…`.
    pub stripe_payment_intent_id: String,
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    #[schema(value_type = Option<crate::ids::OrderId>)]
    pub order_id: Option<String>,
    /// For authorized payments: when Stripe releases the uncaptured
    /// authorization (7 days); null otherwise.
    pub authorization_expires_at: Option<DateTime<Utc>>,
    /// The subscription whose invoice this payment pays, if any.
    #[schema(value_type = Option<crate::ids::SubscriptionId>)]
    pub subscription_id: Option<String>,
    /// The Stripe invoice (mirrored) this payment pays, if any.
    #[schema(value_type = Option<crate::ids::BillingInvoiceId>)]
    pub billing_invoice_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest charge, from Stripe's `charge.*` events; null until one
    /// was applied.
    pub charge: Option<ChargeOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineEntryOut>>,
}

/// A payment's latest charge (a declined one shows why).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChargeOut {
    /// Stripe's `ch_…`.
    pub id: String,
    /// Stripe's charge status: `succeeded`, `pending` or `failed`;
    /// `expired` once an uncaptured authorization lapsed.
    #[schema(example = "failed")]
    pub status: String,
    #[schema(example = "visa")]
    pub card_brand: Option<String>,
    #[schema(example = "4242")]
    pub card_last4: Option<String>,
    /// Stripe's receipt page for a successful charge.
    pub receipt_url: Option<String>,
    /// Stripe's error code of a failed charge, e.g. `card_declined`.
    #[schema(example = "card_declined")]
    pub failure_code: Option<String>,
    /// The issuer's reason, e.g. `insufficient_funds`.
    #[schema(example = "insufficient_funds")]
    pub decline_code: Option<String>,
    pub failure_message: Option<String>,
}

impl ChargeOut {
    fn of(c: crate::storage::payments::ChargeDetails) -> Option<Self> {
        Some(ChargeOut {
            id: c.stripe_charge_id?,
            status: c.charge_status.unwrap_or_default(),
            card_brand: c.card_brand,
            card_last4: c.card_last4,
            receipt_url: c.receipt_url,
            failure_code: c.failure_code,
            decline_code: c.decline_code,
            failure_message: c.failure_message,
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimelineEntryOut {
    pub at: DateTime<Utc>,
    /// Null on the first entry.
    #[schema(value_type = Option<PaymentState>)]
    pub from: Option<String>,
    #[schema(value_type = PaymentState)]
    pub to: String,
    pub cause: Cause,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Cause {
    /// api, webhook, reconcile or job.
    pub kind: String,
    /// The Stripe event id, API request or job that caused the change.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

impl From<TimelineRow> for TimelineEntryOut {
    fn from(r: TimelineRow) -> Self {
        TimelineEntryOut {
            at: r.at,
            from: r.from_state,
            to: r.to_state,
            cause: Cause {
                kind: r.cause_kind,
                reference: r.cause_ref,
            },
        }
    }
}

impl From<PaymentRow> for PaymentOut {
    fn from(r: PaymentRow) -> Self {
        PaymentOut {
            authorization_expires_at: super::checkout::authorization_expires_at(&r),
            amount_captured: r.captured_amount(),
            id: r.id,
            status: r.status,
            amount: r.amount,
            currency: r.currency,
            amount_refunded: r.amount_refunded,
            disputed: r.disputed,
            stripe_payment_intent_id: r.stripe_payment_intent_id,
            customer_id: r.customer_id,
            order_id: r.order_id,
            subscription_id: None,
            billing_invoice_id: None,
            created_at: r.created_at,
            updated_at: r.updated_at,
            charge: ChargeOut::of(r.charge),
            timeline: None,
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPayments {
    /// Only payments in this state.
    #[param(value_type = Option<PaymentState>)]
    pub status: Option<String>,
    #[param(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    #[param(value_type = Option<crate::ids::OrderId>)]
    pub order_id: Option<String>,
    /// Created at or after.
    pub created_gte: Option<DateTime<Utc>>,
    /// Created before.
    pub created_lt: Option<DateTime<Utc>>,
    /// Authorized payments whose authorization lapses before this time.
    pub expiring_before: Option<DateTime<Utc>>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Newest first. A customer token sees only that customer's payments.
pub async fn list(ctx: &Ctx, actor: &Actor, q: ListPayments) -> Result<Page<PaymentOut>> {
    if let Some(s) = &q.status {
        PaymentState::parse(s)
            .ok_or_else(|| Error::InvalidQuery(format!("status {s:?} is not a payment state")))?;
    }
    let customer = match actor {
        Actor::Secret { .. } => q.customer_id.clone(),
        Actor::Customer { customer: me, .. } => {
            if q.customer_id.as_deref().is_some_and(|c| c != me.as_str()) {
                // Someone else's payments: an empty list, like no payments at all.
                return Ok(Page {
                    data: Vec::new(),
                    has_more: false,
                    next_cursor: None,
                });
            }
            Some(me.as_str().to_string())
        }
        Actor::Guest { .. } | Actor::Link { .. } => return Err(Error::Unauthenticated),
    };
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let filter = PaymentFilter {
        status: q.status.as_deref(),
        customer_id: customer.as_deref(),
        order_id: q.order_id.as_deref(),
        created_gte: q.created_gte,
        created_lt: q.created_lt,
        authorized_before: q
            .expiring_before
            .map(|t| t - chrono::Duration::days(super::checkout::AUTHORIZATION_DAYS)),
        before: before.map(|c| (c.at, c.id)),
        limit: limit + 1,
    };
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let rows = conn.list_payments(actor.account(), &filter).await?;
    let page = Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    })
    .map(PaymentOut::from);
    let mut data = Vec::with_capacity(page.data.len());
    for p in page.data {
        data.push(with_billing(&mut conn, actor, p).await?);
    }
    Ok(Page {
        data,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    })
}

/// The billing invoice and subscription a payment pays, if any: joined on
/// the PaymentIntent, so the link holds whichever of the intent and the
/// invoice reached obol first.
async fn with_billing(
    conn: &mut crate::storage::Conn<'_>,
    actor: &Actor,
    mut p: PaymentOut,
) -> Result<PaymentOut> {
    if let Some((invoice, subscription)) = conn
        .billing_links_of_intent(actor.account(), &p.stripe_payment_intent_id)
        .await?
    {
        p.billing_invoice_id = Some(invoice);
        p.subscription_id = subscription;
    }
    Ok(p)
}

/// A payment the actor may see; someone else's is 404.
async fn load_owned(
    conn: &mut crate::storage::Conn<'_>,
    actor: &Actor,
    id: &str,
) -> Result<PaymentRow> {
    let row = conn
        .get_payment(actor.account(), id)
        .await?
        .ok_or(Error::NotFound(Resource::Payment))?;
    let owner = row.customer_id.clone().map(CustomerId::from_db);
    if actor.may_access_customer_object(owner.as_ref()) {
        Ok(row)
    } else {
        Err(Error::NotFound(Resource::Payment))
    }
}

/// One payment with its timeline, for the secret key or its customer.
pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<PaymentOut> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::PaymentId::parse(id).map_err(|_| Error::NotFound(Resource::Payment))?;
    let id = id.as_str();
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let row = load_owned(&mut conn, actor, id).await?;
    let timeline = conn.list_timeline(actor.account(), &row.id).await?;
    let mut out = with_billing(&mut conn, actor, PaymentOut::from(row)).await?;
    out.timeline = Some(timeline.into_iter().map(TimelineEntryOut::from).collect());
    Ok(out)
}

/// A payment's refunds, oldest first.
pub async fn list_refunds(ctx: &Ctx, actor: &Actor, id: &str) -> Result<Page<RefundOut>> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::PaymentId::parse(id).map_err(|_| Error::NotFound(Resource::Payment))?;
    let id = id.as_str();
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let payment = load_owned(&mut conn, actor, id).await?;
    let refunds = conn.list_refunds(actor.account(), &payment.id).await?;
    Ok(Page {
        data: refunds.into_iter().map(RefundOut::from).collect(),
        has_more: false,
        next_cursor: None,
    })
}
