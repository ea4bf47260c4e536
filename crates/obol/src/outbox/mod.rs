//! Notifications to the host application: what obol tells it, signed per
//! the Standard Webhooks specification so hosts verify with an existing
//! library, delivered from a durable outbox.
//!
//! `notify_*` functions run inside the transaction that makes the change,
//! so a notification is written exactly when the change commits, never for
//! a change that was rolled back. `dispatcher` sends the rows.

pub mod dispatcher;

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::ledger::order::OrderStatus;
use crate::ledger::PaymentState;
use crate::money::{Currency, Money};
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
    "invoice.paid",
    "sync_job.failed",
    "charge_run_item.succeeded",
    "charge_run_item.requires_action",
    "charge_run_item.failed",
    "charge_run_item.no_payment_method",
    "charge_run_item.canceled",
    "charge_run.completed",
    "organization.disconnected",
    "subscription.created",
    "subscription.updated",
    "subscription.canceled",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "payout.created",
    "payout.paid",
    "payout.failed",
    "payout.canceled",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "payment_method.updated",
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

/// What a summary line of the OpenAPI document says each type means.
pub fn summary(event_type: &str) -> &'static str {
    match event_type {
        "payment.requires_action" => "The bank asks the customer to authenticate (3-D Secure).",
        "payment.authorized" => "The card is authorized; the money is held, not yet captured.",
        "payment.completed" => "The payment is captured: the money is the merchant's.",
        "payment.failed" => "The payment failed (declined, or authentication failed).",
        "payment.canceled" => {
            "The authorization was released or the intent canceled; nothing was charged."
        }
        "payment.refunded" => "Part or all of the payment was refunded.",
        "payment.disputed" => "The customer's bank opened a dispute (chargeback).",
        "payment.dispute_closed" => "The dispute was closed (won, lost or withdrawn).",
        "order.confirmed" => "The order is paid (or authorized) and confirmed.",
        "order.shipped" => "The order was shipped.",
        "order.delivered" => "The order was delivered.",
        "order.cancelled" => "The order was cancelled.",
        "invoice.paid" => {
            "An invoice was paid: one of obol's own invoices through its public link (`data.invoice`), or a Stripe invoice obol mirrors (`data.billing_invoice`: a subscription's renewal, a scheduled payment)."
        }
        "subscription.created" => "A subscription is mirrored: made through obol, or adopted from Stripe.",
        "subscription.updated" => {
            "A subscription changed: its status (active, past_due, …), its period (a renewal), or cancel_at_period_end."
        }
        "subscription.canceled" => "A subscription ended: canceled now, at its period's end, or after failed renewals.",
        "invoice.payment_failed" => {
            "A Stripe invoice's collection attempt failed (`data.billing_invoice`); Stripe retries on its schedule."
        }
        "invoice.payment_action_required" => {
            "A Stripe invoice's payment waits for the member's bank (3-D Secure): the hosted invoice page completes it."
        }
        "invoice.voided" => "A Stripe invoice was voided (`data.billing_invoice`).",
        "invoice.marked_uncollectible" => "A Stripe invoice was marked uncollectible (`data.billing_invoice`).",
        "sync_job.failed" => {
            "An invoice payment could not be synced to an accounting target and obol stopped retrying."
        }
        "charge_run_item.succeeded" => "A member's charge in a charge run succeeded.",
        "charge_run_item.requires_action" => {
            "A member's bank asks them to authenticate the charge (3-D Secure): pending, not failed."
        }
        "charge_run_item.failed" => "A member's charge was declined.",
        "charge_run_item.no_payment_method" => "A member in a charge run has no saved card.",
        "charge_run_item.canceled" => "A member's charge was not sent: the run was canceled.",
        "charge_run.completed" => "Every item of a charge run has its outcome.",
        "organization.disconnected" => {
            "An organisation's Stripe account was disconnected: obol makes no more Stripe calls for it and stopped its running charge runs."
        }
        "payout.created" => "Stripe created a payout (obol mirrored it for the first time).",
        "payout.paid" => {
            "A payout arrived in the bank account; its transactions are fetched for reconciliation."
        }
        "payout.failed" => {
            "A payout failed (the bank returned it); `failure_code` says why and the funds are back in the balance."
        }
        "payout.canceled" => "A pending payout was canceled before it was sent.",
        "customer.created" => {
            "A Stripe customer obol did not create was adopted as an obol customer (`source: stripe`)."
        }
        "customer.updated" => "A customer's e-mail or name changed at Stripe.",
        "customer.deleted" => {
            "A customer's Stripe customer was deleted: its saved cards are gone; its payments stay."
        }
        "payment_method.updated" => {
            "A saved card's details changed (a new expiry or number, by the holder or the card network)."
        }
        _ => "A notification.",
    }
}

/// A `payment.*` notification's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentNotification {
    /// A `payment.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "payment.authorized", pattern = "^payment\\.")]
    pub kind: &'static str,
    /// When the change happened.
    pub timestamp: DateTime<Utc>,
    pub data: PaymentNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentNotificationData {
    /// The payment as it is after the change.
    pub payment: PaymentSnapshot,
}

/// A payment as a notification carries it (`GET /v1/payments/{id}` has
/// more: the timeline).
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentSnapshot {
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
    #[schema(minimum = 0)]
    pub amount_captured: i64,
    pub disputed: bool,
    /// Stripe's `pi_…`.
    pub stripe_payment_intent_id: String,
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    #[schema(value_type = Option<crate::ids::OrderId>)]
    pub order_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&PaymentRow> for PaymentSnapshot {
    fn from(p: &PaymentRow) -> Self {
        PaymentSnapshot {
            id: p.id.clone(),
            status: p.status,
            amount: p.amount,
            currency: p.currency.clone(),
            amount_refunded: p.amount_refunded,
            amount_captured: p.captured_amount(),
            disputed: p.disputed,
            stripe_payment_intent_id: p.stripe_payment_intent_id.clone(),
            customer_id: p.customer_id.clone(),
            order_id: p.order_id.clone(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// An `order.*` notification's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderNotification {
    /// An `order.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "order.confirmed", pattern = "^order\\.")]
    pub kind: &'static str,
    /// When the change happened.
    pub timestamp: DateTime<Utc>,
    pub data: OrderNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderNotificationData {
    /// The order as it is after the change.
    pub order: OrderSnapshot,
}

/// An order as a notification carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderSnapshot {
    #[schema(value_type = crate::ids::OrderId)]
    pub id: String,
    /// `ORD-YYYYMMDD-XXXXX`.
    pub number: String,
    pub status: OrderStatus,
    pub total: Money,
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
}

/// An `invoice.*` notification's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceNotification {
    /// An `invoice.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "invoice.paid", pattern = "^invoice\\.")]
    pub kind: &'static str,
    pub timestamp: DateTime<Utc>,
    pub data: InvoiceNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceNotificationData {
    pub invoice: InvoiceSnapshot,
}

/// An invoice as a notification carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceSnapshot {
    #[schema(value_type = crate::ids::InvoiceId)]
    pub id: String,
    pub number: String,
    pub status: crate::ledger::invoice::InvoiceStatus,
    /// What the customer pays, the fee line included.
    pub total: Money,
    pub amount_paid: Money,
    /// The fee line's part of `amount_paid`.
    pub fee_paid: Money,
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer_id: String,
    /// The payment that paid it.
    #[schema(value_type = Option<crate::ids::PaymentId>)]
    pub payment_id: Option<String>,
}

/// A `subscription.*` notification's body: the mirrored change and the
/// Stripe event that caused it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionNotification {
    /// A `subscription.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "subscription.updated", pattern = "^subscription\\.")]
    pub kind: &'static str,
    pub timestamp: DateTime<Utc>,
    /// The Stripe event (`evt_…`) this change was mirrored from, the same
    /// on every notification of that event: deduplicate on it. Null when
    /// obol read the object itself (its own call's answer, reconciliation).
    pub stripe_event_id: Option<String>,
    pub data: SubscriptionNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionNotificationData {
    /// The subscription as it is after the change.
    pub subscription: crate::billing::views::SubscriptionOut,
}

/// A notification about a Stripe invoice obol mirrors (`invoice.paid`,
/// `invoice.payment_failed`, …). `invoice.paid` is also sent for obol's
/// own invoices, with `data.invoice` instead of `data.billing_invoice`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingInvoiceNotification {
    /// An `invoice.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "invoice.paid", pattern = "^invoice\\.")]
    pub kind: &'static str,
    pub timestamp: DateTime<Utc>,
    /// The Stripe event (`evt_…`) this change was mirrored from; null when
    /// obol read the invoice itself.
    pub stripe_event_id: Option<String>,
    pub data: BillingInvoiceNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BillingInvoiceNotificationData {
    /// The Stripe invoice as it is after the change.
    pub billing_invoice: crate::billing::views::BillingInvoiceOut,
}

/// Queues `subscription.<kind>` inside the transaction that mirrored it.
pub async fn notify_subscription(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    sub: &crate::storage::billing::SubscriptionRow,
    next_payment_at: Option<i64>,
    stripe_event_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let body = SubscriptionNotification {
        kind: event_type,
        timestamp: now,
        stripe_event_id: stripe_event_id.map(str::to_string),
        data: SubscriptionNotificationData {
            subscription: crate::billing::views::SubscriptionOut::new(sub, next_payment_at)?,
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(&sub.account(), event_type, &body, now)
        .await?;
    Ok(())
}

/// Queues a Stripe invoice's `invoice.<kind>` inside the transaction that
/// mirrored it.
pub async fn notify_billing_invoice(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    invoice: &crate::storage::billing::BillingInvoiceRow,
    stripe_event_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let body = BillingInvoiceNotification {
        kind: event_type,
        timestamp: now,
        stripe_event_id: stripe_event_id.map(str::to_string),
        data: BillingInvoiceNotificationData {
            billing_invoice: crate::billing::views::BillingInvoiceOut::new(invoice)?,
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(&invoice.account(), event_type, &body, now)
        .await?;
    Ok(())
}

/// A `sync_job.*` notification's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncJobNotification {
    /// A `sync_job.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "sync_job.failed", pattern = "^sync_job\\.")]
    pub kind: &'static str,
    pub timestamp: DateTime<Utc>,
    pub data: SyncJobNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncJobNotificationData {
    pub sync_job: SyncJobSnapshot,
}

/// A sync job as a notification carries it (`GET /v1/sync-jobs/{id}` has
/// every attempt).
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncJobSnapshot {
    #[schema(value_type = crate::ids::SyncJobId)]
    pub id: String,
    /// xero, quickbooks or webhook.
    pub target: String,
    /// pending, succeeded or failed.
    pub status: String,
    #[schema(value_type = crate::ids::InvoiceId)]
    pub invoice_id: String,
    #[schema(value_type = crate::ids::PaymentId)]
    pub payment_id: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// A `charge_run_item.*` notification's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeRunItemNotification {
    /// A `charge_run_item.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "charge_run_item.succeeded", pattern = "^charge_run_item\\.")]
    pub kind: &'static str,
    pub timestamp: DateTime<Utc>,
    pub data: ChargeRunItemNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeRunItemNotificationData {
    pub item: ChargeRunItemSnapshot,
}

/// A charge-run item as a notification carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeRunItemSnapshot {
    #[schema(value_type = crate::ids::ChargeRunItemId)]
    pub id: String,
    #[schema(value_type = crate::ids::ChargeRunId)]
    pub run_id: String,
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer_id: String,
    pub amount: Money,
    pub external_reference: Option<String>,
    pub outcome: crate::ledger::charge_run::Outcome,
    /// Stripe's `pi_…`, once one was made.
    pub payment_intent_id: Option<String>,
    /// Stripe's decline code of a failed charge.
    pub decline_code: Option<String>,
}

/// A `charge_run.*` notification's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeRunNotification {
    /// A `charge_run.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "charge_run.completed", pattern = "^charge_run\\.")]
    pub kind: &'static str,
    pub timestamp: DateTime<Utc>,
    pub data: ChargeRunNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeRunNotificationData {
    pub charge_run: ChargeRunSnapshot,
}

/// A charge run as a notification carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeRunSnapshot {
    #[schema(value_type = crate::ids::ChargeRunId)]
    pub id: String,
    pub name: String,
    pub status: crate::ledger::charge_run::RunStatus,
    /// Items by outcome.
    #[schema(value_type = Object)]
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// An `organization.*` notification's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationNotification {
    /// An `organization.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "organization.disconnected", pattern = "^organization\\.")]
    pub kind: &'static str,
    pub timestamp: DateTime<Utc>,
    pub data: OrganizationNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationNotificationData {
    /// The organisation as it is after the change.
    pub organization: OrganizationSnapshot,
    /// The running charge runs this change canceled (no new charges are
    /// sent; charges already sent finish).
    #[schema(value_type = Vec<crate::ids::ChargeRunId>)]
    pub charge_runs_canceled: Vec<String>,
}

/// An organisation as a notification carries it: never its full account
/// id, never a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationSnapshot {
    #[schema(value_type = crate::ids::OrganizationId)]
    pub id: String,
    pub name: String,
    pub external_id: Option<String>,
    /// `pending`, `active` or `disconnected`.
    pub stripe_status: String,
    /// The last four characters of the connected `acct_…` id.
    pub account_id_last4: Option<String>,
    pub account_name: Option<String>,
    pub connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
}

/// A `payout.*` notification's body: the envelope every notification of
/// a mirrored Stripe object shares (`stripe_event_id` lets the host
/// deduplicate across obol's retries and Stripe's duplicates).
#[derive(Debug, Serialize, ToSchema)]
pub struct PayoutNotification {
    /// A `payout.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "payout.paid", pattern = "^payout\\.")]
    pub kind: &'static str,
    pub timestamp: DateTime<Utc>,
    /// The Stripe event that made the change; null when reconciliation
    /// found it by retrieving the payout.
    #[schema(example = "evt_1PayoutPaid")]
    pub stripe_event_id: Option<String>,
    pub data: PayoutNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PayoutNotificationData {
    /// The payout as it is after the change (as `GET /v1/payouts/{id}`).
    pub payout: PayoutSnapshot,
}

/// A payout mirrored from Stripe, as the API and notifications show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PayoutSnapshot {
    #[schema(value_type = crate::ids::PayoutId)]
    pub id: String,
    /// Stripe's `po_…`.
    pub stripe_payout_id: String,
    pub status: crate::ledger::payout::PayoutStatus,
    pub amount: Money,
    /// When the payout is (or was) expected in the bank, a UTC date.
    #[schema(value_type = String, format = Date, example = "2026-12-09")]
    pub arrival_date: chrono::NaiveDate,
    /// Made by the automatic payout schedule (false: requested manually).
    pub automatic: bool,
    /// `standard` or `instant`.
    pub method: String,
    pub description: Option<String>,
    /// Stripe's failure code of a failed payout (`account_closed`, `no_account`, …).
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// `none` (not paid yet), `fetching` (obol is fetching the balance
    /// transactions it settles) or `fetched` (`GET /v1/payouts/{id}/transactions`).
    pub transactions_status: String,
    /// Stripe's `created`.
    pub created: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<&crate::storage::payouts::PayoutRow> for PayoutSnapshot {
    type Error = Error;

    fn try_from(p: &crate::storage::payouts::PayoutRow) -> Result<Self> {
        let at = |t: i64| {
            DateTime::<Utc>::from_timestamp(t, 0)
                .ok_or_else(|| Error::internal(format!("a stored time {t} is out of range")))
        };
        Ok(PayoutSnapshot {
            id: p.id.clone(),
            stripe_payout_id: p.stripe_payout_id.clone(),
            status: p.status,
            amount: Money::balance(p.amount, Currency::parse(&p.currency)?)?,
            arrival_date: at(p.arrival_date)?.date_naive(),
            automatic: p.automatic,
            method: p.method.clone(),
            description: p.description.clone(),
            failure_code: p.failure_code.clone(),
            failure_message: p.failure_message.clone(),
            transactions_status: p.transactions_status.clone(),
            created: at(p.stripe_created)?,
            updated_at: p.updated_at,
        })
    }
}

/// Queues `payout.<kind>` about `payout` as it is now, inside the
/// transaction that mirrored the change.
pub async fn notify_payout(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    payout: &crate::storage::payouts::PayoutRow,
    stripe_event_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let body = PayoutNotification {
        kind: event_type,
        timestamp: now,
        stripe_event_id: stripe_event_id.map(str::to_string),
        data: PayoutNotificationData {
            payout: PayoutSnapshot::try_from(payout)?,
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(&payout.account(), event_type, &body, now)
        .await?;
    Ok(())
}

/// Queues `organization.<kind>` for the organisation's own endpoints and
/// the platform's (organisations are the platform's: a host with one
/// endpoint on the platform learns of every organisation), inside the
/// transaction that made the change.
pub async fn notify_organization(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    org: &crate::storage::organizations::OrganizationRow,
    charge_runs_canceled: Vec<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    let last4 = org.stripe_account_id.as_deref().map(|a| {
        let tail: Vec<char> = a.chars().rev().take(4).collect();
        tail.into_iter().rev().collect()
    });
    let body = OrganizationNotification {
        kind: event_type,
        timestamp: now,
        data: OrganizationNotificationData {
            organization: OrganizationSnapshot {
                id: org.id.clone(),
                name: org.name.clone(),
                external_id: org.external_id.clone(),
                stripe_status: org.stripe_status.clone(),
                account_id_last4: last4,
                account_name: org.account_name.clone(),
                connected_at: org.connected_at,
                disconnected_at: org.disconnected_at,
            },
            charge_runs_canceled,
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    for account in [
        crate::context::AccountId::from_db(org.id.clone()),
        crate::context::AccountId::platform(),
    ] {
        conn.enqueue_notification(&account, event_type, &body, now)
            .await?;
    }
    Ok(())
}

/// A `customer.*` notification's body: a change mirrored from Stripe.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerNotification {
    /// A `customer.*` type (the webhook's name).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "customer.updated", pattern = "^customer\\.")]
    pub kind: &'static str,
    pub timestamp: DateTime<Utc>,
    /// The Stripe event (`evt_…`) that made the change: every notification
    /// mirrored from Stripe carries it, so the host can deduplicate.
    pub stripe_event_id: String,
    pub data: CustomerNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerNotificationData {
    /// The customer as it is after the change.
    pub customer: CustomerSnapshot,
}

/// A customer as a notification carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerSnapshot {
    #[schema(value_type = crate::ids::CustomerId)]
    pub id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// `obol` (created through obol's API) or `stripe` (adopted).
    #[schema(example = "stripe")]
    pub source: String,
    pub stripe_customer_id: Option<String>,
    /// When Stripe's customer was deleted; null while it exists.
    pub stripe_customer_deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&crate::storage::customers::CustomerRow> for CustomerSnapshot {
    fn from(r: &crate::storage::customers::CustomerRow) -> Self {
        CustomerSnapshot {
            id: r.id.clone(),
            external_id: r.external_id.clone(),
            email: r.email.clone(),
            name: r.name.clone(),
            source: r.source.clone(),
            stripe_customer_id: r.stripe_customer_id.clone(),
            stripe_customer_deleted_at: r.stripe_deleted_at,
            created_at: r.created_at,
        }
    }
}

/// A `payment_method.updated` notification's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentMethodNotification {
    /// `payment_method.updated`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "payment_method.updated", pattern = "^payment_method\\.")]
    pub kind: &'static str,
    pub timestamp: DateTime<Utc>,
    /// The Stripe event (`evt_…`) that made the change.
    pub stripe_event_id: String,
    pub data: PaymentMethodNotificationData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentMethodNotificationData {
    /// The card's customer.
    pub customer: CustomerSnapshot,
    /// The card as it is after the change.
    pub payment_method: CardSnapshot,
}

/// A saved card as a notification carries it (as in
/// `GET /v1/customers/{id}/payment-methods`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CardSnapshot {
    /// Stripe's `pm_…`.
    pub id: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
    /// The customer's default card, which obol charges.
    pub default: bool,
}

/// Queues `customer.<kind>` about `customer` (as it is now) from the
/// Stripe event `stripe_event_id`, inside the transaction that changed it.
pub async fn notify_customer(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    customer: &crate::storage::customers::CustomerRow,
    stripe_event_id: &str,
) -> Result<()> {
    let now = storage::now();
    let body = CustomerNotification {
        kind: event_type,
        timestamp: now,
        stripe_event_id: stripe_event_id.to_string(),
        data: CustomerNotificationData {
            customer: CustomerSnapshot::from(customer),
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(&customer.account(), event_type, &body, now)
        .await?;
    Ok(())
}

/// Queues `payment_method.updated` about one card of `customer`.
pub async fn notify_payment_method(
    conn: &mut Conn<'_>,
    customer: &crate::storage::customers::CustomerRow,
    card: CardSnapshot,
    stripe_event_id: &str,
) -> Result<()> {
    let now = storage::now();
    let kind = "payment_method.updated";
    let body = PaymentMethodNotification {
        kind,
        timestamp: now,
        stripe_event_id: stripe_event_id.to_string(),
        data: PaymentMethodNotificationData {
            customer: CustomerSnapshot::from(customer),
            payment_method: card,
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(&customer.account(), kind, &body, now)
        .await?;
    Ok(())
}

/// Queues `charge_run_item.<outcome>` inside the transaction that moved it.
pub async fn notify_charge_run_item(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    item: &crate::storage::charge_runs::ItemRow,
    currency: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let body = ChargeRunItemNotification {
        kind: event_type,
        timestamp: now,
        data: ChargeRunItemNotificationData {
            item: ChargeRunItemSnapshot {
                id: item.id.clone(),
                run_id: item.run_id.clone(),
                customer_id: item.customer_id.clone(),
                amount: Money::balance(item.amount, Currency::parse(currency)?)?,
                external_reference: item.external_reference.clone(),
                outcome: item.outcome,
                payment_intent_id: item.payment_intent_id.clone(),
                decline_code: item.decline_code.clone(),
            },
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(
        &crate::context::AccountId::from_db(item.account_id.clone()),
        event_type,
        &body,
        now,
    )
    .await?;
    Ok(())
}

/// Queues `charge_run.completed`.
pub async fn notify_charge_run(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    run: &crate::storage::charge_runs::ChargeRunRow,
    counts: std::collections::BTreeMap<String, i64>,
    now: DateTime<Utc>,
) -> Result<()> {
    let body = ChargeRunNotification {
        kind: event_type,
        timestamp: now,
        data: ChargeRunNotificationData {
            charge_run: ChargeRunSnapshot {
                id: run.id.clone(),
                name: run.name.clone(),
                status: run.status,
                counts,
            },
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(&run.account(), event_type, &body, now)
        .await?;
    Ok(())
}

/// Queues `invoice.paid` (or another `invoice.*`) inside the transaction
/// that moved the invoice.
pub async fn notify_invoice(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    invoice: &crate::storage::invoices::InvoiceRow,
    payment_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let currency = Currency::parse(&invoice.currency)?;
    let body = InvoiceNotification {
        kind: event_type,
        timestamp: now,
        data: InvoiceNotificationData {
            invoice: InvoiceSnapshot {
                id: invoice.id.clone(),
                number: invoice.number.clone(),
                status: invoice.status,
                total: Money::balance(invoice.total, currency)?,
                amount_paid: Money::balance(invoice.amount_paid, currency)?,
                fee_paid: Money::balance(invoice.fee_paid, currency)?,
                customer_id: invoice.customer_id.clone(),
                payment_id: payment_id.map(str::to_string),
            },
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(&invoice.account(), event_type, &body, now)
        .await?;
    Ok(())
}

/// Queues `sync_job.failed` when a sync stops retrying.
pub async fn notify_sync_job(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    sync: &crate::storage::invoices::SyncJobRow,
    now: DateTime<Utc>,
) -> Result<()> {
    let body = SyncJobNotification {
        kind: event_type,
        timestamp: now,
        data: SyncJobNotificationData {
            sync_job: SyncJobSnapshot {
                id: sync.id.clone(),
                target: sync.target.clone(),
                status: sync.status.clone(),
                invoice_id: sync.invoice_id.clone(),
                payment_id: sync.payment_id.clone(),
                attempts: sync.attempts,
                last_error: sync.last_error.clone(),
            },
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(
        &crate::context::AccountId::from_db(sync.account_id.clone()),
        event_type,
        &body,
        now,
    )
    .await?;
    Ok(())
}

/// Queues `event_type` about `payment` (as it is now, inside the
/// transaction) for every endpoint that wants it.
pub async fn notify_payment(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    payment: &PaymentRow,
) -> Result<()> {
    let now = storage::now();
    let body = PaymentNotification {
        kind: event_type,
        timestamp: now,
        data: PaymentNotificationData {
            payment: PaymentSnapshot::from(payment),
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(&payment.account(), event_type, &body, now)
        .await?;
    if event_type == "payment.refunded" {
        crate::acp::webhook::payment_changed(conn, payment).await?;
    }
    Ok(())
}

/// Queues `event_type` (`order.confirmed`, `order.shipped`, …) about
/// `order` as it is now, inside the transaction that moved it.
pub async fn notify_order(
    conn: &mut Conn<'_>,
    event_type: &'static str,
    order: &OrderRow,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let total = Money::balance(order.total, Currency::parse(&order.currency)?)?;
    let body = OrderNotification {
        kind: event_type,
        timestamp: now,
        data: OrderNotificationData {
            order: OrderSnapshot {
                id: order.id.clone(),
                number: order.number.clone(),
                status: order.status,
                total,
                customer_id: order.customer_id.clone(),
            },
        },
    };
    let body = serde_json::to_string(&body).map_err(Error::internal)?;
    conn.enqueue_notification(
        &crate::context::AccountId::from_db(order.account_id.clone()),
        event_type,
        &body,
        now,
    )
    .await?;
    crate::acp::webhook::order_changed(conn, order, now).await?;
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
