//! The payment writer: one observation of a PaymentIntent in, the ledger
//! decision written out (payment row guarded by the state read, timeline
//! entry, host notification), inside the caller's transaction.
//!
//! Stripe's objects are read here once, with the API's own money rules
//! (`read_intent`, `read_charge`): an amount that is negative, not an
//! integer or in an unknown currency is `Unreadable`, never written. A
//! signed event is Stripe's word about *what happened*, not proof that its
//! numbers are sane, and a payment of −5000 "xxx" would corrupt every sum.

use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ledger::{
    self, ChargeAmounts, Decision, IntentStatus, Ledger, Observation, PaymentState,
};
use crate::money::{Currency, Money, MoneyError};
use crate::outbox;
use crate::storage::payments::{NewPayment, NewTimelineEntry, PaymentRow};
use crate::storage::{self, Conn};

/// What became of an observation (and of the event that carried it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Stored and visible, deliberately not applied (the reason says why).
    Ignored(String),
}

/// Who or what caused a change: the timeline entry's cause, and the
/// account the object belongs to.
pub struct Cause<'a> {
    /// `webhook`, `reconcile`, `api` or `job`.
    pub kind: &'a str,
    /// The Stripe event id, request id or job name.
    pub reference: Option<&'a str>,
    pub account_id: &'a str,
}

#[derive(Debug, Deserialize)]
struct IntentObject {
    id: String,
    amount: i64,
    currency: String,
    status: IntentStatus,
    #[serde(default)]
    amount_received: i64,
    last_payment_error: Option<Value>,
    #[serde(default)]
    cancellation_reason: Option<String>,
    #[serde(default)]
    customer: Option<Value>,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
}

/// The parts of a charge the ledger reads, as Stripe sent them.
#[derive(Debug, Deserialize)]
struct ChargeObject {
    pub payment_intent: Option<Value>,
    /// Absent on old API versions, where every charge listed was captured.
    #[serde(default = "yes")]
    pub captured: bool,
    pub amount: i64,
    #[serde(default)]
    pub amount_captured: i64,
    #[serde(default)]
    pub amount_refunded: i64,
    pub currency: String,
}

fn yes() -> bool {
    true
}

/// A Stripe object obol can never apply: a field missing or of the wrong
/// type, or money that breaks obol's rules. Retrying cannot change it, so
/// the inbox records the event as ignored with this reason, and an API
/// answer this bad is Stripe answering garbage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// Reads a Stripe object of type `what` into `T`.
pub fn parse<T: for<'de> Deserialize<'de>>(
    object: &Value,
    what: &str,
) -> std::result::Result<T, Unreadable> {
    T::deserialize(object).map_err(|e| Unreadable(format!("unexpected {what} object: {e}")))
}

/// A charge amount (positive, at most 8 digits, Stripe's precision) in a
/// currency obol knows, with the money rules of the API.
pub fn charge_money(
    amount: i64,
    currency: &str,
    what: &str,
) -> std::result::Result<Money, Unreadable> {
    let bad = |e: MoneyError| Unreadable(format!("the {what}'s amount is not valid money: {e}"));
    Money::new(amount, Currency::parse(currency).map_err(bad)?).map_err(bad)
}

/// A sum that may be zero but never negative (captured, refunded).
fn sum_money(amount: i64, currency: Currency, field: &str) -> std::result::Result<i64, Unreadable> {
    Money::balance(amount, currency)
        .map(|m| m.minor())
        .map_err(|e| Unreadable(format!("{field} is not valid money: {e}")))
}

/// A charge as the ledger takes it, its money checked.
#[derive(Debug, Clone)]
pub struct ChargeSeen {
    /// The charge's intent (an id, or the id of an expanded object).
    pub payment_intent: Option<String>,
    pub money: Money,
    /// The ledger works out what of `amount_refunded` was really given back.
    pub amounts: ChargeAmounts,
}

/// An id field that may be expanded into an object.
pub fn id_of(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Reads a charge object with the API's money rules.
pub fn read_charge(object: &Value) -> std::result::Result<ChargeSeen, Unreadable> {
    let c: ChargeObject = parse(object, "charge")?;
    let money = charge_money(c.amount, &c.currency, "charge")?;
    Ok(ChargeSeen {
        payment_intent: id_of(c.payment_intent.as_ref()),
        money,
        amounts: ChargeAmounts {
            amount: money.minor(),
            amount_captured: sum_money(c.amount_captured, money.currency(), "amount_captured")?,
            amount_refunded: sum_money(c.amount_refunded, money.currency(), "amount_refunded")?,
            captured: c.captured,
        },
    })
}

/// A PaymentIntent as the writer takes it, its money checked.
#[derive(Debug, Clone)]
pub struct IntentSeen {
    pub id: String,
    pub money: Money,
    pub status: IntentStatus,
    pub amount_received: i64,
    pub failed_attempt: bool,
    /// The expanded latest charge (reconciliation reads it that way); an
    /// event's intent has none, which leaves the ledger's refunds as they are.
    pub charge: Option<ChargeAmounts>,
    pub order_id: Option<String>,
    pub customer_hint: Option<String>,
    /// The intent's Stripe customer (`cus_…`), for an intent obol did not
    /// create (a subscription's renewal, a dashboard charge).
    pub stripe_customer: Option<String>,
    /// `metadata[obol_mode]=pre_order`: the checkout confirmed the order.
    pub pre_order: bool,
    /// `metadata[obol_invoice_id]`: the intent pays an invoice.
    pub invoice_id: Option<String>,
    /// `metadata[obol_charge_run_item_id]`: the intent charges a run item.
    pub charge_run_item_id: Option<String>,
    pub cancellation_reason: Option<String>,
}

/// Reads a PaymentIntent object with the API's money rules.
pub fn read_intent(object: &Value) -> std::result::Result<IntentSeen, Unreadable> {
    let pi: IntentObject = parse(object, "payment_intent")?;
    let money = charge_money(pi.amount, &pi.currency, "payment_intent")?;
    let charge = match object.get("latest_charge") {
        Some(c @ Value::Object(_)) => Some(read_charge(c)?.amounts),
        _ => None,
    };
    let text = |k: &str| {
        pi.metadata
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(IntentSeen {
        amount_received: sum_money(pi.amount_received, money.currency(), "amount_received")?,
        failed_attempt: pi.last_payment_error.as_ref().is_some_and(|v| !v.is_null()),
        order_id: text("obol_order_id"),
        customer_hint: text("obol_customer_id"),
        stripe_customer: id_of(pi.customer.as_ref()),
        pre_order: text("obol_mode").as_deref() == Some("pre_order"),
        invoice_id: text("obol_invoice_id"),
        charge_run_item_id: text("obol_charge_run_item_id"),
        cancellation_reason: pi.cancellation_reason,
        id: pi.id,
        money,
        status: pi.status,
        charge,
    })
}

/// Applies a PaymentIntent as Stripe showed it at `at` (unix seconds):
/// from an event, an API answer, or retrieved by reconciliation.
pub async fn observe_intent(
    conn: &mut Conn<'_>,
    cause: &Cause<'_>,
    pi: &IntentSeen,
    at: i64,
) -> Result<Outcome> {
    let observation = Observation {
        status: pi.status,
        failed_attempt: pi.failed_attempt,
        amount_received: pi.amount_received,
        charge: pi.charge,
        at,
    };
    let adopt = Adopt {
        intent_id: &pi.id,
        amount: pi.money.minor(),
        currency: pi.money.currency().as_str(),
        order_id: pi.order_id.as_deref(),
        customer_hint: pi.customer_hint.as_deref(),
        stripe_customer: pi.stripe_customer.as_deref(),
    };
    // An intent for an invoice obol does not know is not attributed: the
    // event is kept as ignored with the reason, nothing is written.
    if let Some(invoice_id) = &pi.invoice_id {
        if let Some(reason) = crate::invoices::unknown(conn, cause.account_id, invoice_id).await? {
            return Ok(Outcome::Ignored(reason));
        }
    }
    let outcome = observe(conn, cause, &adopt, &observation).await?;
    if let Some(invoice_id) = &pi.invoice_id {
        crate::invoices::observe_intent(conn, cause, invoice_id, pi, outcome == Outcome::Applied)
            .await?;
    }
    if let Some(item_id) = &pi.charge_run_item_id {
        crate::charge_runs::observe_intent(conn, cause, item_id, pi).await?;
    }
    // An order paid after it was created (not pay-first, where the checkout
    // confirmed the order already) is confirmed by its payment's success.
    if let (Some(order_id), false, IntentStatus::Succeeded) =
        (adopt.order_id, pi.pre_order, pi.status)
    {
        confirm_paid_order(conn, cause, order_id).await?;
    }
    Ok(outcome)
}

/// pending → confirmed for an order whose payment succeeded, once, with
/// its timeline entry and `order.confirmed` notification in the same
/// transaction (the order writer). A late or duplicate success changes
/// nothing; an order cancelled meanwhile stays cancelled.
pub async fn confirm_paid_order(
    conn: &mut Conn<'_>,
    cause: &Cause<'_>,
    order_id: &str,
) -> Result<()> {
    let account = crate::context::AccountId::from_db(cause.account_id.to_string());
    if conn.get_order(&account, order_id).await?.is_none() {
        return Ok(());
    }
    let order_cause = crate::orders::OrderCause {
        kind: cause.kind,
        reference: cause.reference,
    };
    let applied = crate::orders::apply(
        conn,
        &account,
        order_id,
        crate::ledger::order::OrderInput::Paid,
        order_cause,
        storage::now(),
    )
    .await?;
    if let Err(illegal) = applied {
        tracing::warn!(order = %order_id, from = illegal.from.as_str(), "a payment succeeded for an order that cannot be confirmed");
    }
    Ok(())
}

/// What obol needs to start a payment record for an intent it has not seen.
pub struct Adopt<'a> {
    pub intent_id: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub order_id: Option<&'a str>,
    pub customer_hint: Option<&'a str>,
    /// The intent's Stripe customer: the payment is that customer's when
    /// no hint names one (obol's customer holding that `cus_…`).
    pub stripe_customer: Option<&'a str>,
}

/// Moves the payment of an intent by one observation, creating the payment
/// when the intent is new to obol (created elsewhere, or its creating call
/// was lost), and appends the timeline entry.
pub async fn observe(
    conn: &mut Conn<'_>,
    cause: &Cause<'_>,
    adopt: &Adopt<'_>,
    observation: &Observation,
) -> Result<Outcome> {
    let now = storage::now();
    let at = Utc.timestamp_opt(observation.at, 0).single().unwrap_or(now);
    let existing = conn
        .get_payment_by_intent(cause.account_id, adopt.intent_id)
        .await?;
    let payment: PaymentRow = match existing {
        // Lock, then read again: concurrent writers of this payment (the
        // inbox worker and an API call) wait for each other on PostgreSQL
        // instead of failing the guarded write.
        Some(p) => {
            conn.lock_payment(&p.id).await?;
            conn.get_payment(&p.account(), &p.id).await?.unwrap_or(p)
        }
        None => {
            let account = crate::context::AccountId::from_db(cause.account_id.to_string());
            let mut customer_id = match adopt.customer_hint {
                Some(id) => conn
                    .get_customer(&account, &crate::ids::CustomerId::from_db(id.to_string()))
                    .await?
                    .map(|c| c.id),
                None => None,
            };
            if let (None, Some(cus)) = (&customer_id, adopt.stripe_customer) {
                customer_id = conn
                    .get_customer_by_stripe_id(&account, cus)
                    .await?
                    .map(|c| c.id);
            }
            let start = Ledger {
                state: PaymentState::Pending,
                amount_refunded: 0,
                amount_captured: 0,
                observed_at: 0,
            };
            let first = match ledger::transition(start, observation) {
                Decision::Move { next, .. } | Decision::Update { next } => next,
                Decision::Ignore => start,
            };
            let id = String::from(crate::ids::PaymentId::generate());
            let inserted = conn
                .insert_payment(&NewPayment {
                    id: &id,
                    account_id: cause.account_id,
                    customer_id: customer_id.as_deref(),
                    order_id: adopt.order_id,
                    stripe_payment_intent_id: adopt.intent_id,
                    amount: adopt.amount,
                    currency: adopt.currency,
                    ledger: first,
                    now,
                })
                .await?;
            match inserted {
                Some(inserted) => {
                    conn.insert_timeline_entry(&NewTimelineEntry {
                        payment_id: &inserted.id,
                        from: None,
                        to: first.state,
                        at,
                        cause_kind: cause.kind,
                        cause_ref: cause.reference,
                    })
                    .await?;
                    if let Some(kind) = outbox::event_for_state(first.state) {
                        outbox::notify_payment(conn, kind, &inserted).await?;
                    }
                    return Ok(Outcome::Applied);
                }
                // Recorded meanwhile by a concurrent writer (an API call and
                // an event about one new intent): apply to that record.
                None => {
                    let p = conn
                        .get_payment_by_intent(cause.account_id, adopt.intent_id)
                        .await?
                        .ok_or_else(|| Error::internal("the payment vanished; retrying"))?;
                    conn.lock_payment(&p.id).await?;
                    conn.get_payment(&p.account(), &p.id).await?.unwrap_or(p)
                }
            }
        }
    };
    let read = payment.ledger();
    match ledger::transition(read, observation) {
        Decision::Ignore => Ok(Outcome::Ignored(format!(
            "older than or equal to the payment's state ({})",
            read.state.as_str()
        ))),
        Decision::Update { next } => {
            guarded(
                conn.update_payment_ledger(&payment.id, &read, &next, now)
                    .await?,
            )?;
            Ok(Outcome::Applied)
        }
        Decision::Move { from, next } => {
            guarded(
                conn.update_payment_ledger(&payment.id, &read, &next, now)
                    .await?,
            )?;
            conn.insert_timeline_entry(&NewTimelineEntry {
                payment_id: &payment.id,
                from: Some(from),
                to: next.state,
                at,
                cause_kind: cause.kind,
                cause_ref: cause.reference,
            })
            .await?;
            if let Some(kind) = outbox::event_for_state(next.state) {
                if let Some(now_row) = conn.get_payment(&payment.account(), &payment.id).await? {
                    outbox::notify_payment(conn, kind, &now_row).await?;
                }
            }
            Ok(Outcome::Applied)
        }
    }
}

/// A guarded write that lost a race: the event is retried from a fresh read.
fn guarded(written: bool) -> Result<()> {
    if written {
        Ok(())
    } else {
        Err(Error::internal(
            "the payment changed concurrently; retrying",
        ))
    }
}

/// How long a charge of an intent obol has not recorded is retried.
const CHARGE_WAITS_FOR_INTENT_SECS: i64 = 3600;

/// What a `charge.*` event says of a payment's charge.
#[derive(Debug, Clone)]
pub struct ChargeEventSeen {
    pub charge: ChargeSeen,
    pub details: crate::storage::payments::ChargeDetails,
    /// `metadata[obol_order_id]` / `[obol_customer_id]` (Stripe copies the
    /// intent's metadata to its charges), for a payment adopted from it.
    pub order_id: Option<String>,
    pub customer_hint: Option<String>,
    /// `metadata[obol_invoice_id]`: the charge pays an invoice.
    pub invoice_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChargeDetailObject {
    id: String,
    status: String,
    receipt_url: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    outcome: Option<ChargeOutcomeObject>,
    payment_method_details: Option<PaymentMethodDetailsObject>,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct ChargeOutcomeObject {
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PaymentMethodDetailsObject {
    card: Option<ChargeCardObject>,
}

#[derive(Debug, Deserialize)]
struct ChargeCardObject {
    brand: Option<String>,
    last4: Option<String>,
}

/// Reads a charge object (a `charge.*` event's) with its details.
/// `expired`: a `charge.expired` event (an uncaptured authorization
/// lapsed; Stripe's status stays what it was, obol shows `expired`).
pub fn read_charge_event(
    object: &Value,
    expired: bool,
) -> std::result::Result<ChargeEventSeen, Unreadable> {
    let charge = read_charge(object)?;
    let d: ChargeDetailObject = parse(object, "charge")?;
    let failed = d.status == "failed";
    let card = d.payment_method_details.and_then(|p| p.card);
    let short = |s: Option<String>| s.map(|s| s.chars().take(255).collect::<String>());
    let text = |k: &str| {
        d.metadata
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (order_id, customer_hint) = (text("obol_order_id"), text("obol_customer_id"));
    let invoice_id = text("obol_invoice_id");
    Ok(ChargeEventSeen {
        order_id,
        customer_hint,
        invoice_id,
        charge,
        details: crate::storage::payments::ChargeDetails {
            stripe_charge_id: Some(d.id),
            charge_status: Some(if expired { "expired".into() } else { d.status }),
            card_brand: short(card.as_ref().and_then(|c| c.brand.clone())),
            card_last4: card
                .and_then(|c| c.last4)
                .map(|l| l.chars().take(4).collect()),
            receipt_url: short(d.receipt_url),
            failure_code: short(d.failure_code.filter(|_| failed)),
            decline_code: short(d.outcome.and_then(|o| o.reason).filter(|_| failed)),
            failure_message: d
                .failure_message
                .filter(|_| failed)
                .map(|m| m.chars().take(1000).collect()),
            charge_observed: 0,
        },
    })
}

/// Whether a charge observation at `at` replaces the payment's recorded
/// one. A payment may have several charges (a declined card, then one
/// that works): the newest observation wins; within one second the same
/// charge's later arrival wins, and another charge wins unless it failed
/// (a failed attempt never hides the charge that went through).
pub fn charge_applies(
    recorded: &crate::storage::payments::ChargeDetails,
    seen: &crate::storage::payments::ChargeDetails,
    at: i64,
) -> bool {
    if recorded.stripe_charge_id.is_none() || at > recorded.charge_observed {
        return true;
    }
    if at < recorded.charge_observed {
        return false;
    }
    recorded.stripe_charge_id == seen.stripe_charge_id
        || seen.charge_status.as_deref() != Some("failed")
}

/// Applies a `charge.*` event at `at`: the charge's details (id, card,
/// receipt, decline) are written under `charge_applies`. The payment's
/// state and money stay the intent events' (and `charge.refunded`'s), so
/// charge events never race them; a charge of an intent obol has not
/// recorded yet is retried (for an hour): the intent's own event creates
/// the one payment.
pub async fn observe_charge(
    conn: &mut Conn<'_>,
    cause: &Cause<'_>,
    seen: &ChargeEventSeen,
    at: i64,
) -> Result<Outcome> {
    let Some(intent_id) = seen.charge.payment_intent.as_deref() else {
        return Ok(Outcome::Ignored("the charge has no payment intent".into()));
    };
    // A charge for an invoice obol does not know is not attributed, as its
    // intent's events are not.
    if let Some(invoice_id) = &seen.invoice_id {
        if let Some(reason) = crate::invoices::unknown(conn, cause.account_id, invoice_id).await? {
            return Ok(Outcome::Ignored(reason));
        }
    }
    let mut outcome = Outcome::Ignored("not newer than the payment's recorded charge".into());
    let Some(payment) = conn
        .get_payment_by_intent(cause.account_id, intent_id)
        .await?
    else {
        // The intent's own event creates the payment: wait for it an hour
        // (a reordered delivery, or reconciliation), not for ever.
        if storage::now().timestamp() - at < CHARGE_WAITS_FOR_INTENT_SECS {
            return Err(Error::internal(format!(
                "no payment for {intent_id} yet; retrying"
            )));
        }
        return Ok(Outcome::Ignored(format!(
            "no payment for {intent_id}, whose events never arrived"
        )));
    };
    conn.lock_payment(&payment.id).await?;
    let payment = conn
        .get_payment(&payment.account(), &payment.id)
        .await?
        .unwrap_or(payment);
    if charge_applies(&payment.charge, &seen.details, at) {
        let next = crate::storage::payments::ChargeDetails {
            charge_observed: at.max(payment.charge.charge_observed),
            ..seen.details.clone()
        };
        if next != payment.charge {
            guarded(
                conn.write_payment_charge(
                    &payment.id,
                    payment.charge.charge_observed,
                    &next,
                    storage::now(),
                )
                .await?,
            )?;
            outcome = Outcome::Applied;
        }
    }
    Ok(outcome)
}
