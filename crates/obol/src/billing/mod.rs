//! The billing mirror's writer: one observation of a Stripe subscription
//! or invoice in (an event's object, an API answer, a reconciliation
//! read), the ordering rule's decision (`ledger::billing`) written out
//! with its host notification and, for a failed invoice, the member's
//! card-update notice job — all inside the caller's transaction.
//!
//! Callers: `inbox/apply.rs` (events), `ops/` (obol's own calls' answers,
//! reconciliation). Nothing here calls Stripe or `ops`, or commits.
//!
//! Adoption: a subscription obol did not create is mirrored with source
//! `stripe`, whether or not obol knows its customer yet (the customer is
//! resolved on read through `stripe_customer_id`, so it links whenever
//! the customer is created or adopted). A subscription obol created is
//! found by `metadata[obol_subscription_id]` the first time.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::context::AccountId;
use crate::error::{Error, Result};
use crate::ledger::billing::{self, InvoiceKey, SubscriptionKey};
use crate::outbox;
use crate::payments::{id_of, parse, Outcome, Unreadable};
use crate::storage::billing::{
    BillingInvoiceRow, InvoiceState, NewSubscription, SubscriptionRow, SubscriptionState,
};
use crate::storage::{self, Conn};

/// Where an observation came from: an event (its id goes into the host
/// notification), or obol's own read of Stripe (no event).
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub stripe_event_id: Option<&'a str>,
    /// The event's type (`invoice.payment_action_required` adds to what
    /// the object shows).
    pub event_type: Option<&'a str>,
    /// The event's `created`, or when obol read the object.
    pub at: i64,
    /// obol read the object itself (API answer, reconciliation): it is
    /// Stripe's state now, newer than any event already sent.
    pub read: bool,
}

#[derive(Debug, Deserialize)]
struct SubscriptionObject {
    id: String,
    customer: Value,
    status: String,
    #[serde(default)]
    currency: Option<String>,
    current_period_start: Option<i64>,
    current_period_end: Option<i64>,
    #[serde(default)]
    cancel_at_period_end: bool,
    canceled_at: Option<i64>,
    ended_at: Option<i64>,
    trial_end: Option<i64>,
    latest_invoice: Option<Value>,
    items: Items,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Items {
    data: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    price: Price,
    #[serde(default = "one")]
    quantity: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Deserialize)]
struct Price {
    currency: String,
    unit_amount: Option<i64>,
    recurring: Option<Recurring>,
}

#[derive(Debug, Deserialize)]
struct Recurring {
    interval: String,
    #[serde(default = "one")]
    interval_count: i64,
}

/// A Stripe subscription as the mirror takes it, and the obol id its
/// metadata names.
pub fn read_subscription(
    object: &Value,
) -> std::result::Result<(SubscriptionState, Option<String>), Unreadable> {
    let s: SubscriptionObject = parse(object, "subscription")?;
    if !billing::subscription_status_known(&s.status) {
        return Err(Unreadable(format!(
            "unknown subscription status {:?}",
            s.status
        )));
    }
    let first = s
        .items
        .data
        .first()
        .ok_or_else(|| Unreadable("a subscription without items".into()))?;
    let recurring = first
        .price
        .recurring
        .as_ref()
        .ok_or_else(|| Unreadable("a subscription item without a recurring price".into()))?;
    let mut amount: i64 = 0;
    for it in &s.items.data {
        let unit = it.price.unit_amount.unwrap_or(0);
        if unit < 0 || it.quantity < 0 {
            return Err(Unreadable("a negative subscription amount".into()));
        }
        amount = amount
            .checked_add(unit.saturating_mul(it.quantity))
            .ok_or_else(|| Unreadable("a subscription amount out of range".into()))?;
    }
    let currency = s
        .currency
        .unwrap_or_else(|| first.price.currency.clone())
        .to_lowercase();
    crate::money::Currency::parse(&currency)
        .map_err(|e| Unreadable(format!("the subscription's currency: {e}")))?;
    let customer = id_of(Some(&s.customer))
        .ok_or_else(|| Unreadable("a subscription without a customer".into()))?;
    let hint = s
        .metadata
        .get("obol_subscription_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((
        SubscriptionState {
            stripe_subscription_id: s.id,
            stripe_customer_id: customer,
            amount,
            currency,
            billing_interval: recurring.interval.clone(),
            interval_count: recurring.interval_count,
            status: s.status,
            current_period_start: s.current_period_start,
            current_period_end: s.current_period_end,
            cancel_at_period_end: s.cancel_at_period_end,
            canceled_at: s.canceled_at,
            ended_at: s.ended_at,
            trial_end: s.trial_end,
            latest_stripe_invoice_id: id_of(s.latest_invoice.as_ref()),
        },
        hint,
    ))
}

fn sub_key<'a>(status: &'a str, period: Option<i64>, cancel: bool, at: i64) -> SubscriptionKey<'a> {
    SubscriptionKey {
        status,
        current_period_start: period.unwrap_or(0),
        cancel_at_period_end: cancel,
        at,
    }
}

/// What the host sees change (a notification is sent when it does).
type Visible<'a> = (
    &'a str,
    Option<i64>,
    Option<i64>,
    bool,
    Option<i64>,
    i64,
    Option<i64>,
);

fn visible(r: &SubscriptionRow) -> Visible<'_> {
    (
        r.status.as_str(),
        r.current_period_start,
        r.current_period_end,
        r.cancel_at_period_end,
        r.canceled_at,
        r.amount,
        r.trial_end,
    )
}

/// Applies one observation of a Stripe subscription in `account`.
pub async fn observe_subscription(
    conn: &mut Conn<'_>,
    account: &AccountId,
    state: &SubscriptionState,
    obol_id: Option<&str>,
    seen: Seen<'_>,
) -> Result<Outcome> {
    let now = storage::now();
    let mut row = conn
        .get_subscription_by_stripe_id(account, &state.stripe_subscription_id)
        .await?;
    if row.is_none() {
        if let Some(id) = obol_id {
            // obol's own, not yet linked (its create's answer is on its way
            // or was lost): the metadata names it.
            row = conn
                .get_subscription(account, id)
                .await?
                .filter(|r| r.stripe_subscription_id.is_none());
        }
    }
    let row = match row {
        Some(r) => {
            conn.lock_subscription(&r.id).await?;
            conn.get_subscription(account, &r.id).await?.unwrap_or(r)
        }
        None => {
            // Adopted: a subscription made at Stripe, not through obol.
            let id = String::from(crate::ids::SubscriptionId::generate());
            let customer = conn
                .get_customer_by_stripe_id(account, &state.stripe_customer_id)
                .await?
                .map(|c| c.id);
            conn.insert_subscription(&NewSubscription {
                id: &id,
                account_id: account.as_str(),
                customer_id: customer.as_deref(),
                stripe_customer_id: Some(&state.stripe_customer_id),
                source: "stripe",
                amount: state.amount,
                currency: &state.currency,
                billing_interval: &state.billing_interval,
                interval_count: state.interval_count,
                status: "incomplete",
                start_date: None,
                trial_days: None,
                description: None,
                now,
            })
            .await?;
            conn.get_subscription(account, &id)
                .await?
                .ok_or_else(|| Error::internal("the adopted subscription vanished"))?
        }
    };
    let first = row.stripe_subscription_id.is_none();
    let held = sub_key(
        &row.status,
        row.current_period_start,
        row.cancel_at_period_end,
        row.observed_at,
    );
    let new = sub_key(
        &state.status,
        state.current_period_start,
        state.cancel_at_period_end,
        seen.at,
    );
    let applies = first
        || if seen.read {
            billing::subscription_read_applies(&held, &new)
        } else {
            billing::subscription_event_applies(&held, &new)
        };
    if !applies {
        return Ok(Outcome::Ignored(format!(
            "older than or equal to the subscription's mirrored state ({})",
            row.status
        )));
    }
    let observed_at = seen.at.max(row.observed_at);
    if !conn
        .write_subscription_state(&row, state, observed_at, now)
        .await?
    {
        return Err(Error::internal(
            "the subscription changed concurrently; retrying",
        ));
    }
    let after = conn
        .get_subscription(account, &row.id)
        .await?
        .ok_or_else(|| Error::internal("the subscription vanished"))?;
    let kind = if first {
        Some("subscription.created")
    } else if after.status == "canceled" && row.status != "canceled" {
        Some("subscription.canceled")
    } else if visible(&after) != visible(&row) {
        Some("subscription.updated")
    } else {
        None
    };
    if let Some(kind) = kind {
        let next = next_payment_at(conn, &after).await?;
        outbox::notify_subscription(conn, kind, &after, next, seen.stripe_event_id, now).await?;
    }
    Ok(Outcome::Applied)
}

/// When the member is next charged: the period's end (or the trial's),
/// a past-due invoice's next retry; none once the subscription ends or
/// is set to end.
pub async fn next_payment_at(conn: &mut Conn<'_>, s: &SubscriptionRow) -> Result<Option<i64>> {
    Ok(match s.status.as_str() {
        _ if s.cancel_at_period_end => None,
        "trialing" => s.trial_end.or(s.current_period_end),
        "active" => s.current_period_end,
        "past_due" | "unpaid" => {
            let retry = match &s.latest_stripe_invoice_id {
                Some(inv) => conn
                    .get_billing_invoice_by_stripe_id(&s.account(), inv)
                    .await?
                    .and_then(|i| i.next_payment_attempt),
                None => None,
            };
            retry.or(s.current_period_end)
        }
        "incomplete" | "incomplete_expired" | "canceled" | "paused" => None,
        _ => None,
    })
}

#[derive(Debug, Deserialize)]
struct InvoiceObject {
    id: String,
    customer: Option<Value>,
    subscription: Option<Value>,
    payment_intent: Option<Value>,
    status: Option<String>,
    currency: String,
    #[serde(default)]
    amount_due: i64,
    #[serde(default)]
    amount_paid: i64,
    #[serde(default)]
    amount_remaining: i64,
    #[serde(default)]
    attempt_count: i64,
    billing_reason: Option<String>,
    collection_method: Option<String>,
    number: Option<String>,
    hosted_invoice_url: Option<String>,
    period_start: Option<i64>,
    period_end: Option<i64>,
    due_date: Option<i64>,
    next_payment_attempt: Option<i64>,
    automatically_finalizes_at: Option<i64>,
    #[serde(default)]
    created: i64,
}

/// A Stripe invoice as the mirror takes it.
pub fn read_invoice(object: &Value) -> std::result::Result<InvoiceState, Unreadable> {
    let i: InvoiceObject = parse(object, "invoice")?;
    let status = i.status.unwrap_or_else(|| "draft".into());
    if !billing::invoice_status_known(&status) {
        return Err(Unreadable(format!("unknown invoice status {status:?}")));
    }
    let currency = i.currency.to_lowercase();
    let c = crate::money::Currency::parse(&currency)
        .map_err(|e| Unreadable(format!("the invoice's currency: {e}")))?;
    for (v, name) in [
        (i.amount_due, "amount_due"),
        (i.amount_paid, "amount_paid"),
        (i.amount_remaining, "amount_remaining"),
    ] {
        crate::money::Money::balance(v, c)
            .map_err(|e| Unreadable(format!("the invoice's {name} is not valid money: {e}")))?;
    }
    Ok(InvoiceState {
        stripe_invoice_id: i.id,
        stripe_customer_id: id_of(i.customer.as_ref()),
        stripe_subscription_id: id_of(i.subscription.as_ref()),
        stripe_payment_intent_id: id_of(i.payment_intent.as_ref()),
        status,
        currency,
        amount_due: i.amount_due,
        amount_paid: i.amount_paid,
        amount_remaining: i.amount_remaining,
        attempt_count: i.attempt_count.max(0),
        billing_reason: i.billing_reason,
        collection_method: i.collection_method,
        number: i.number,
        hosted_invoice_url: i.hosted_invoice_url,
        period_start: i.period_start,
        period_end: i.period_end,
        due_date: i.due_date,
        next_payment_attempt: i.next_payment_attempt,
        automatically_finalizes_at: i.automatically_finalizes_at,
        stripe_created: i.created,
    })
}

/// Applies one observation of a Stripe invoice in `account`.
pub async fn observe_invoice(
    conn: &mut Conn<'_>,
    account: &AccountId,
    state: &InvoiceState,
    seen: Seen<'_>,
) -> Result<Outcome> {
    let now = storage::now();
    let mut existing = conn
        .get_billing_invoice_by_stripe_id(account, &state.stripe_invoice_id)
        .await?;
    let mut inserted = None;
    if existing.is_none() {
        let id = String::from(crate::ids::BillingInvoiceId::generate());
        if conn
            .insert_billing_invoice(&id, account, state, seen.at, now)
            .await?
        {
            inserted = Some(id);
        } else {
            // Mirrored meanwhile by a concurrent writer (an event and
            // obol's own read of one new invoice): apply to that row.
            existing = conn
                .get_billing_invoice_by_stripe_id(account, &state.stripe_invoice_id)
                .await?;
            if existing.is_none() {
                return Err(Error::internal("the mirrored invoice vanished; retrying"));
            }
        }
    }
    let (before, after) = match (inserted, existing) {
        (Some(id), _) => {
            let after = conn
                .get_billing_invoice(account, &id)
                .await?
                .ok_or_else(|| Error::internal("the mirrored invoice vanished"))?;
            (None, after)
        }
        (None, None) => return Err(Error::internal("the mirrored invoice vanished")),
        (None, Some(row)) => {
            let held = InvoiceKey {
                status: &row.status,
                attempt_count: row.attempt_count,
                at: row.observed_at,
            };
            let new = InvoiceKey {
                status: &state.status,
                attempt_count: state.attempt_count,
                at: seen.at,
            };
            let applies = if seen.read {
                billing::invoice_read_applies(&held, &new)
            } else {
                billing::invoice_event_applies(&held, &new)
            };
            if applies {
                if !conn
                    .write_billing_invoice_state(&row, state, seen.at.max(row.observed_at), now)
                    .await?
                {
                    return Err(Error::internal(
                        "the invoice changed concurrently; retrying",
                    ));
                }
                let after = conn
                    .get_billing_invoice(account, &row.id)
                    .await?
                    .ok_or_else(|| Error::internal("the mirrored invoice vanished"))?;
                (Some(row), after)
            } else if seen.event_type == Some("invoice.payment_action_required") {
                // The object may equal the failure just applied; the event
                // itself is the news.
                (Some(row.clone()), row)
            } else {
                return Ok(Outcome::Ignored(format!(
                    "older than or equal to the invoice's mirrored state ({}, {} attempts)",
                    row.status, row.attempt_count
                )));
            }
        }
    };
    let old_status = before.as_ref().map_or("draft", |b| b.status.as_str());
    let old_attempts = before.as_ref().map_or(0, |b| b.attempt_count);
    let mut kinds: Vec<&'static str> = Vec::new();
    if after.attempt_count > old_attempts && after.status != "paid" {
        kinds.push("invoice.payment_failed");
    }
    if seen.event_type == Some("invoice.payment_action_required")
        && after.status == "open"
        && conn
            .mark_billing_invoice_action_required(&after.id, after.attempt_count.max(1))
            .await?
    {
        kinds.push("invoice.payment_action_required");
        // The member must confirm the payment with their bank: asked once
        // per attempt that needs it, on Stripe's hosted invoice page.
        crate::jobs::billing_notice::enqueue_action(conn, &after).await?;
    }
    if after.status != old_status {
        match after.status.as_str() {
            "paid" => kinds.push("invoice.paid"),
            "void" => kinds.push("invoice.voided"),
            "uncollectible" => kinds.push("invoice.marked_uncollectible"),
            _ => {}
        }
    }
    for kind in kinds {
        outbox::notify_billing_invoice(conn, kind, &after, seen.stripe_event_id, now).await?;
    }
    // The first failed attempt of an automatically collected invoice: the
    // member is asked, once per invoice, for a card that works.
    if old_attempts == 0
        && after.attempt_count > 0
        && after.status == "open"
        && after.collection_method.as_deref() == Some("charge_automatically")
        && seen.event_type != Some("invoice.payment_action_required")
    {
        crate::jobs::billing_notice::enqueue(conn, &after).await?;
    }
    Ok(Outcome::Applied)
}

/// The intent's side of the invoice–payment link: a PaymentIntent whose
/// `invoice` is a mirrored invoice not yet naming it. Either side arriving
/// first links the two (the payment's view joins on the intent).
pub async fn link_intent(
    conn: &mut Conn<'_>,
    account: &AccountId,
    stripe_invoice_id: &str,
    intent: &str,
) -> Result<()> {
    conn.set_billing_invoice_intent(account, stripe_invoice_id, intent)
        .await?;
    Ok(())
}

/// The job payload of a billing notice (kept here so the writer and the
/// job agree).
pub fn notice_payload(invoice: &BillingInvoiceRow) -> Value {
    json!({"billing_invoice_id": invoice.id})
}

/// The payload of the notice asking the member to confirm attempt
/// `attempt` of `invoice` with their bank.
pub fn action_notice_payload(invoice: &BillingInvoiceRow, attempt: i64) -> Value {
    json!({"billing_invoice_id": invoice.id, "action_attempt": attempt})
}

pub mod views;
