//! Applying stored Stripe events to the ledger.
//!
//! `apply` dispatches on the event type through `HANDLERS`; a later
//! capability (invoices, subscriptions, payouts, customers) adds rows to
//! that table and a handler function, nothing else. Each handler runs in
//! the transaction that also marks the event applied, so an event takes
//! effect exactly once or not at all.

use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ledger::{self, Decision, IntentStatus, Ledger, Observation, PaymentState};
use crate::outbox;
use crate::storage::disputes::{NewDispute, NewTask};
use crate::storage::payments::{NewPayment, NewTimelineEntry, PaymentRow};
use crate::storage::refunds::NewRefund;
use crate::storage::webhook_events::WebhookEventRow;
use crate::storage::{self, Conn};

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Stored and visible, deliberately not applied (the reason says why).
    Ignored(String),
}

/// Event types obol applies. A later capability (invoices, subscriptions,
/// payouts, customers, payment methods) adds its types here and a `Kind`
/// with its handler; nothing else changes.
pub const HANDLED_EVENT_TYPES: &[&str] = &[
    "payment_intent.created",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
];

/// Every event type obol handles (for webhook endpoint registration).
pub fn handled_event_types() -> impl Iterator<Item = &'static str> {
    HANDLED_EVENT_TYPES.iter().copied()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Intent,
    ChargeRefunded,
    Refund,
    Dispute,
}

fn kind_of(event_type: &str) -> Option<Kind> {
    Some(match event_type {
        "payment_intent.created"
        | "payment_intent.processing"
        | "payment_intent.requires_action"
        | "payment_intent.amount_capturable_updated"
        | "payment_intent.succeeded"
        | "payment_intent.payment_failed"
        | "payment_intent.canceled" => Kind::Intent,
        "charge.refunded" => Kind::ChargeRefunded,
        "charge.refund.updated" | "refund.created" | "refund.updated" => Kind::Refund,
        "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed" => {
            Kind::Dispute
        }
        _ => return None,
    })
}

/// Applies one event within the caller's transaction. `live`: obol runs
/// against a live-mode Stripe account.
pub async fn apply(conn: &mut Conn<'_>, event: &WebhookEventRow, live: bool) -> Result<Outcome> {
    if event.account_id != crate::context::AccountId::PLATFORM {
        return Ok(Outcome::Ignored(format!(
            "the event is for connected account {}, which obol does not know",
            event.account_id
        )));
    }
    if event.livemode != live {
        return Ok(Outcome::Ignored(format!(
            "a {} event, but obol runs in {} mode",
            if event.livemode { "live" } else { "test" },
            if live { "live" } else { "test" }
        )));
    }
    let Some(kind) = kind_of(&event.event_type) else {
        return Ok(Outcome::Ignored(format!(
            "obol does not handle {} events",
            event.event_type
        )));
    };
    let payload: Value = serde_json::from_str(&event.payload)
        .map_err(|e| Error::internal(format!("stored event {} is not JSON: {e}", event.id)))?;
    let object = &payload["data"]["object"];
    match kind {
        Kind::Intent => intent_changed(conn, event, object).await,
        Kind::ChargeRefunded => charge_refunded(conn, event, object).await,
        Kind::Refund => refund_changed(conn, event, object).await,
        Kind::Dispute => dispute_changed(conn, event, object).await,
    }
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
    metadata: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct ChargeObject {
    payment_intent: Option<Value>,
    #[serde(default = "yes")]
    captured: bool,
    amount: i64,
    #[serde(default)]
    amount_captured: i64,
    #[serde(default)]
    amount_refunded: i64,
    currency: String,
}

fn yes() -> bool {
    true
}

fn parse<T: for<'de> Deserialize<'de>>(object: &Value, what: &str) -> Result<T> {
    serde_json::from_value(object.clone())
        .map_err(|e| Error::internal(format!("unexpected {what} object: {e}")))
}

/// An id field that may be expanded into an object.
fn id_of(v: &Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

async fn intent_changed(
    conn: &mut Conn<'_>,
    event: &WebhookEventRow,
    object: &Value,
) -> Result<Outcome> {
    observe_intent(conn, &Cause::of(event), object, event.stripe_created).await
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

impl<'a> Cause<'a> {
    fn of(event: &'a WebhookEventRow) -> Self {
        // An event fetched by reconciliation (not delivered) says so.
        let kind = if event.source == "reconcile" {
            "reconcile"
        } else {
            "webhook"
        };
        Cause {
            kind,
            reference: Some(&event.stripe_event_id),
            account_id: &event.account_id,
        }
    }
}

/// Applies a PaymentIntent object as Stripe showed it at `at` (unix
/// seconds): from an event, or retrieved by reconciliation.
pub async fn observe_intent(
    conn: &mut Conn<'_>,
    cause: &Cause<'_>,
    object: &Value,
    at: i64,
) -> Result<Outcome> {
    let pi: IntentObject = parse(object, "payment_intent")?;
    // Reconciliation expands the latest charge, which carries the refunded
    // amount; an event's intent does not (0 leaves the ledger's amount as is).
    let amount_refunded = object["latest_charge"]["amount_refunded"]
        .as_i64()
        .unwrap_or(0);
    let observation = Observation {
        status: pi.status,
        failed_attempt: pi.last_payment_error.as_ref().is_some_and(|v| !v.is_null()),
        amount_received: pi.amount_received,
        amount_refunded,
        at,
    };
    let adopt = Adopt {
        intent_id: &pi.id,
        amount: pi.amount,
        currency: &pi.currency,
        order_id: pi.metadata.get("obol_order_id").and_then(Value::as_str),
        customer_hint: pi.metadata.get("obol_customer_id").and_then(Value::as_str),
    };
    let outcome = observe(conn, cause, &adopt, &observation).await?;
    // An order paid after it was created (not pay-first, where the checkout
    // confirmed the order already) is confirmed by its payment's success.
    let pre_order = pi.metadata.get("obol_mode").and_then(Value::as_str) == Some("pre_order");
    if let (Some(order_id), false, IntentStatus::Succeeded) = (adopt.order_id, pre_order, pi.status)
    {
        confirm_paid_order(conn, cause, order_id).await?;
    }
    Ok(outcome)
}

/// pending → confirmed for an order whose payment succeeded, once, with
/// its timeline entry and `order.confirmed` notification in the same
/// transaction (the order writer). A late or duplicate success changes
/// nothing; an order cancelled meanwhile stays cancelled.
async fn confirm_paid_order(conn: &mut Conn<'_>, cause: &Cause<'_>, order_id: &str) -> Result<()> {
    if conn.get_order(order_id).await?.is_none() {
        return Ok(());
    }
    let order_cause = crate::orders::OrderCause {
        kind: cause.kind,
        reference: cause.reference,
    };
    let applied = crate::orders::apply(
        conn,
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

async fn charge_refunded(
    conn: &mut Conn<'_>,
    event: &WebhookEventRow,
    object: &Value,
) -> Result<Outcome> {
    let charge: ChargeObject = parse(object, "charge")?;
    if !charge.captured {
        // Cancelling an authorization releases the held amount, which Stripe
        // reports as the uncaptured charge being "refunded": no money moved.
        return Ok(Outcome::Ignored(
            "an uncaptured charge's authorization was released, not refunded".into(),
        ));
    }
    let Some(intent_id) = id_of(&charge.payment_intent) else {
        return Ok(Outcome::Ignored("the charge has no payment intent".into()));
    };
    let observation = Observation {
        status: IntentStatus::Succeeded,
        failed_attempt: false,
        amount_received: if charge.amount_captured > 0 {
            charge.amount_captured
        } else {
            charge.amount
        },
        amount_refunded: charge.amount_refunded,
        at: event.stripe_created,
    };
    let adopt = Adopt {
        intent_id: &intent_id,
        amount: charge.amount,
        currency: &charge.currency,
        order_id: None,
        customer_hint: None,
    };
    observe(conn, &Cause::of(event), &adopt, &observation).await
}

#[derive(Debug, Deserialize)]
struct RefundObject {
    id: String,
    amount: i64,
    currency: String,
    status: String,
    payment_intent: Option<Value>,
    failure_reason: Option<String>,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
}

/// A refund's own status (pending → succeeded, failed or canceled). The
/// refunded amount reaches the payment through `charge.refunded`; this
/// keeps the refund record true, and records refunds made outside obol.
async fn refund_changed(
    conn: &mut Conn<'_>,
    event: &WebhookEventRow,
    object: &Value,
) -> Result<Outcome> {
    let refund: RefundObject = parse(object, "refund")?;
    let mut local = match refund
        .metadata
        .get("obol_refund_id")
        .and_then(Value::as_str)
    {
        Some(id) => conn.get_refund(id).await?,
        None => None,
    };
    if local.is_none() {
        local = conn.get_refund_by_stripe_id(&refund.id).await?;
    }
    let now = storage::now();
    match local {
        Some(r) => {
            if !r.is_older_than(&refund.status, event.stripe_created) {
                return Ok(Outcome::Ignored(
                    "older than the refund's recorded state".into(),
                ));
            }
            if !conn
                .update_refund_from_stripe(
                    &r,
                    &refund.id,
                    &refund.status,
                    refund.failure_reason.as_deref(),
                    event.stripe_created,
                    now,
                )
                .await?
            {
                return Err(Error::internal("the refund changed concurrently; retrying"));
            }
            Ok(Outcome::Applied)
        }
        None => {
            let Some(intent) = id_of(&refund.payment_intent) else {
                return Ok(Outcome::Ignored("the refund has no payment intent".into()));
            };
            let Some(payment) = conn
                .get_payment_by_intent(&event.account_id, &intent)
                .await?
            else {
                return Ok(Outcome::Ignored(format!("no payment for {intent}")));
            };
            let id = crate::ids::new_id("rf_");
            conn.insert_refund(&NewRefund {
                id: &id,
                payment_id: &payment.id,
                stripe_refund_id: Some(&refund.id),
                amount: refund.amount,
                currency: &refund.currency,
                reason: None,
                status: &refund.status,
                observed_at: event.stripe_created,
                now,
            })
            .await?;
            Ok(Outcome::Applied)
        }
    }
}

#[derive(Debug, Deserialize)]
struct DisputeObject {
    id: String,
    amount: i64,
    currency: String,
    payment_intent: Option<Value>,
    reason: String,
    status: String,
    evidence_details: Option<EvidenceDetails>,
}

#[derive(Debug, Deserialize)]
struct EvidenceDetails {
    due_by: Option<i64>,
}

/// Stripe's dispute statuses in which the merchant still has to act or wait.
fn dispute_is_open(status: &str) -> bool {
    matches!(
        status,
        "warning_needs_response" | "warning_under_review" | "needs_response" | "under_review"
    )
}

/// How far along a dispute is, for events of the same second.
fn dispute_progress(status: &str) -> u8 {
    match status {
        "warning_needs_response" | "needs_response" => 0,
        "warning_under_review" | "under_review" => 1,
        _ => 2,
    }
}

/// A dispute opened, changed or closed: the dispute record and its
/// timeline, the payment's `disputed` flag while it is open, and a
/// "Respond to dispute" task, closed with the dispute.
async fn dispute_changed(
    conn: &mut Conn<'_>,
    event: &WebhookEventRow,
    object: &Value,
) -> Result<Outcome> {
    let d: DisputeObject = parse(object, "dispute")?;
    let Some(intent) = id_of(&d.payment_intent) else {
        return Ok(Outcome::Ignored("the dispute has no payment intent".into()));
    };
    // The intent's own events may still be on their way: fail and retry
    // rather than lose the dispute.
    let payment = conn
        .get_payment_by_intent(&event.account_id, &intent)
        .await?
        .ok_or_else(|| Error::internal(format!("no payment for {intent} yet; retrying")))?;
    let now = storage::now();
    let at = Utc
        .timestamp_opt(event.stripe_created, 0)
        .single()
        .unwrap_or(now);
    let cause = Cause::of(event);
    let due_by = d.evidence_details.as_ref().and_then(|e| e.due_by);
    let dispute = match conn.get_dispute_by_stripe_id(&d.id).await? {
        None => {
            let id = crate::ids::new_id("dsp_");
            let row = conn
                .insert_dispute(&NewDispute {
                    id: &id,
                    stripe_dispute_id: &d.id,
                    payment_id: &payment.id,
                    amount: d.amount,
                    currency: &d.currency,
                    reason: &d.reason,
                    status: &d.status,
                    evidence_due_by: due_by,
                    observed_at: event.stripe_created,
                    now,
                })
                .await?;
            conn.insert_dispute_timeline_entry(
                &row.id,
                None,
                &d.status,
                at,
                cause.kind,
                cause.reference,
            )
            .await?;
            row
        }
        Some(existing) => {
            // Newer observations win; within one second (Stripe's
            // resolution) the further-along status does.
            let newer = event.stripe_created > existing.observed_at
                || (event.stripe_created == existing.observed_at
                    && dispute_progress(&d.status) > dispute_progress(&existing.status));
            if !newer {
                return Ok(Outcome::Ignored(
                    "older than the dispute's recorded state".into(),
                ));
            }
            if !conn
                .update_dispute_status(&existing, &d.status, due_by, event.stripe_created, now)
                .await?
            {
                return Err(Error::internal(
                    "the dispute changed concurrently; retrying",
                ));
            }
            if existing.status != d.status {
                conn.insert_dispute_timeline_entry(
                    &existing.id,
                    Some(&existing.status),
                    &d.status,
                    at,
                    cause.kind,
                    cause.reference,
                )
                .await?;
            }
            existing
        }
    };
    let open = dispute_is_open(&d.status);
    if conn.set_payment_disputed(&payment.id, open, now).await? {
        if let Some(row) = conn.get_payment(&payment.id).await? {
            let kind = if open {
                "payment.disputed"
            } else {
                "payment.dispute_closed"
            };
            outbox::notify_payment(conn, kind, &row).await?;
        }
    }
    if open {
        conn.open_task(&NewTask {
            kind: "respond_to_dispute",
            title: "Respond to dispute",
            subject_type: "dispute",
            subject_id: &dispute.id,
            payment_id: Some(&payment.id),
            customer_id: payment.customer_id.as_deref(),
            due_at: due_by.and_then(|t| Utc.timestamp_opt(t, 0).single()),
            now,
        })
        .await?;
    } else {
        conn.close_task("respond_to_dispute", "dispute", &dispute.id, now)
            .await?;
    }
    Ok(Outcome::Applied)
}

/// What obol needs to start a payment record for an intent it has not seen.
struct Adopt<'a> {
    intent_id: &'a str,
    amount: i64,
    currency: &'a str,
    order_id: Option<&'a str>,
    customer_hint: Option<&'a str>,
}

/// Moves the payment of an intent by one observation, creating the payment
/// when the intent is new to obol (created elsewhere, or its creating call
/// was lost), and appends the timeline entry.
async fn observe(
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
            conn.get_payment(&p.id).await?.unwrap_or(p)
        }
        None => {
            let customer_id = match adopt.customer_hint {
                Some(id) => conn
                    .get_customer(&crate::ids::CustomerId::from_db(id.to_string()))
                    .await?
                    .map(|c| c.id),
                None => None,
            };
            let start = Ledger {
                state: PaymentState::Pending,
                amount_refunded: 0,
                observed_at: 0,
            };
            let first = match ledger::transition(start, observation) {
                Decision::Move { next, .. } | Decision::Update { next } => next,
                Decision::Ignore => start,
            };
            let id = crate::ids::new_id("pay_");
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
                    conn.get_payment(&p.id).await?.unwrap_or(p)
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
                if let Some(now_row) = conn.get_payment(&payment.id).await? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handled_type_has_a_handler_and_no_other_does() {
        for t in HANDLED_EVENT_TYPES {
            assert!(kind_of(t).is_some(), "{t} has no handler");
        }
        for t in [
            "customer.created",
            "charge.succeeded",
            "payout.paid",
            "invoice.paid",
        ] {
            assert!(
                kind_of(t).is_none() || HANDLED_EVENT_TYPES.contains(&t),
                "{t}"
            );
        }
    }
}
