//! Applying stored Stripe events to the ledger.
//!
//! `apply` dispatches on the event type through `HANDLERS`; a later
//! capability (invoices, subscriptions, payouts, customers) adds rows to
//! that table and a handler function, nothing else. Each handler runs in
//! the transaction that also marks the event applied, so an event takes
//! effect exactly once or not at all.
//!
//! Handlers parse Stripe's objects and hand payment observations to
//! `crate::payments` (the one payment writer) and card observations to
//! `crate::saved_cards`; they do not write a payment's state themselves,
//! and nothing here may call `ops` (or Stripe: obol sets a saved card as
//! the default at Stripe from the card-update page, not here). A
//! deauthorization goes to the organisation writer (`crate::organizations`).
//!
//! Whose an event is was decided when it was stored (`inbox::store_event`):
//! `account_id` is the platform's (`default`) for events without Stripe's
//! `account`, else the organisation holding that connected account. Every
//! handler reads and writes rows of that account only, so a platform event
//! never touches an organisation's rows, nor the reverse.
//!
//! What may heal and what never will: a payload that is not JSON (or
//! nested past serde_json's depth limit), an object of the wrong shape, or
//! money that breaks the API's rules (negative, not an integer, an unknown
//! currency) is the same on every attempt, so it is an `Ignored` outcome
//! with its reason. Only errors that may heal (the database, a race with a
//! concurrent writer, a dispute whose payment obol has not seen yet) are
//! `Err` and retried on the worker's schedule.

use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::context::AccountId;
use crate::error::{Error, Result};
use crate::ids::OrganizationId;
use crate::ledger::dispute::{self, DisputeDecision, DisputeStatus};
use crate::ledger::payment_method::{CardSeen, DefaultSource};
use crate::ledger::refund::{self, RefundDecision, RefundEvent, RefundStatus};
use crate::ledger::{IntentStatus, Observation};
use crate::outbox;
pub use crate::payments::Outcome;
use crate::payments::{
    charge_money, id_of, observe, observe_intent, read_charge, read_intent, Adopt, Cause,
    Unreadable,
};
use crate::saved_cards;
use crate::storage::customers::CustomerRow;
use crate::storage::disputes::{NewDispute, NewTask};
use crate::storage::refunds::NewRefund;
use crate::storage::webhook_events::WebhookEventRow;
use crate::storage::{self, Conn};

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
    "charge.succeeded",
    "charge.failed",
    "charge.captured",
    "charge.updated",
    "charge.expired",
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "payment_method.attached",
    "payment_method.updated",
    "payment_method.automatically_updated",
    "payment_method.detached",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "setup_intent.succeeded",
    "account.application.deauthorized",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "invoice.created",
    "invoice.finalized",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.paid",
    "invoice.payment_action_required",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.updated",
    // Payouts (`crate::payouts`).
    "payout.created",
    "payout.updated",
    "payout.paid",
    "payout.failed",
    "payout.canceled",
    "payout.reconciliation_completed",
];

/// Types only a Connect endpoint receives for obol: on the platform's own
/// endpoint `account.application.deauthorized` would mean the platform's
/// account dropped some other application, nothing obol acts on.
pub const CONNECT_ONLY_EVENT_TYPES: &[&str] = &["account.application.deauthorized"];

/// The most types `GET /v1/events` takes in one `types[]` list.
pub const MAX_TYPES_PER_LIST: usize = 20;

/// Every event type obol handles.
pub fn handled_event_types() -> impl Iterator<Item = &'static str> {
    HANDLED_EVENT_TYPES.iter().copied()
}

/// What the platform's own endpoint is registered for (and reconciliation
/// lists for the platform): every handled type but the Connect-only ones.
pub fn platform_event_types() -> impl Iterator<Item = &'static str> {
    handled_event_types().filter(|t| !CONNECT_ONLY_EVENT_TYPES.contains(t))
}

/// What the Connect endpoint is registered for (and reconciliation lists
/// for each organisation): every handled type.
pub fn connect_event_types() -> impl Iterator<Item = &'static str> {
    handled_event_types()
}

/// `types` in lists of at most `MAX_TYPES_PER_LIST`, for `GET /v1/events`
/// (which refuses longer `types[]`): each list is listed on its own.
pub fn type_chunks(types: &[&'static str]) -> Vec<Vec<&'static str>> {
    types
        .chunks(MAX_TYPES_PER_LIST)
        .map(<[&str]>::to_vec)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Intent,
    Charge,
    ChargeRefunded,
    Refund,
    Dispute,
    PaymentMethod,
    Customer,
    SetupSucceeded,
    Deauthorized,
    Subscription,
    BillingInvoice,
    Payout,
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
        "charge.succeeded" | "charge.failed" | "charge.captured" | "charge.updated"
        | "charge.expired" => Kind::Charge,
        "charge.refunded" => Kind::ChargeRefunded,
        "charge.refund.updated" | "refund.created" | "refund.updated" => Kind::Refund,
        "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed" => {
            Kind::Dispute
        }
        "payment_method.attached"
        | "payment_method.updated"
        | "payment_method.automatically_updated"
        | "payment_method.detached" => Kind::PaymentMethod,
        "customer.created" | "customer.updated" | "customer.deleted" => Kind::Customer,
        "setup_intent.succeeded" => Kind::SetupSucceeded,
        "account.application.deauthorized" => Kind::Deauthorized,
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.paused"
        | "customer.subscription.resumed"
        | "customer.subscription.trial_will_end" => Kind::Subscription,
        "invoice.created"
        | "invoice.finalized"
        | "invoice.payment_succeeded"
        | "invoice.payment_failed"
        | "invoice.paid"
        | "invoice.payment_action_required"
        | "invoice.voided"
        | "invoice.marked_uncollectible"
        | "invoice.updated" => Kind::BillingInvoice,
        "payout.created"
        | "payout.updated"
        | "payout.paid"
        | "payout.failed"
        | "payout.canceled"
        | "payout.reconciliation_completed" => Kind::Payout,
        _ => return None,
    })
}

/// Applies one event within the caller's transaction. `live`: obol runs
/// against a live-mode Stripe account.
pub async fn apply(conn: &mut Conn<'_>, event: &WebhookEventRow, live: bool) -> Result<Outcome> {
    let account = AccountId::from_db(event.account_id.clone());
    // Stored for an account no organisation held (or replayed since): its
    // `account_id` is Stripe's `acct_…`, which owns no rows here.
    if !account.is_platform() && OrganizationId::parse(account.as_str()).is_err() {
        return Ok(Outcome::Ignored(unknown_account(account.as_str())));
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
    // The same bytes fail the same way on every attempt: not retried.
    let payload: Value = match serde_json::from_str(&event.payload) {
        Ok(v) => v,
        Err(e) => {
            return Ok(unreadable(Unreadable(format!(
                "the payload is not readable JSON: {e}"
            ))))
        }
    };
    // The routing holds: an event of a connected account belongs to an
    // organisation, one without `account` to the platform, never crossed.
    let connected = payload.get("account").and_then(Value::as_str);
    match (connected, account.is_platform()) {
        (None, false) | (Some(_), true) => {
            return Ok(Outcome::Ignored(format!(
                "the event's account ({}) is not the one it was stored for ({account})",
                connected.unwrap_or("the platform")
            )))
        }
        (None, true) | (Some(_), false) => {}
    }
    let object = &payload["data"]["object"];
    let outcome = match kind {
        Kind::Intent => intent_changed(conn, event, object).await?,
        Kind::Charge => charge_changed(conn, event, object).await?,
        Kind::ChargeRefunded => charge_refunded(conn, event, object).await?,
        Kind::Refund => refund_changed(conn, event, object).await?,
        Kind::Dispute => dispute_changed(conn, event, object).await?,
        Kind::PaymentMethod => payment_method_changed(conn, event, &payload).await?,
        Kind::Customer => customer_changed(conn, event, object).await?,
        Kind::SetupSucceeded => setup_succeeded(conn, event, object).await?,
        Kind::Deauthorized => deauthorized(conn, event, &account, connected).await?,
        Kind::Subscription => subscription_changed(conn, event, &account, object).await?,
        Kind::BillingInvoice => invoice_changed(conn, event, &account, object).await?,
        Kind::Payout => payout_changed(conn, event, &account, object).await?,
    };
    Ok(outcome.unwrap_or_else(unreadable))
}

/// Why an event of a connected account no organisation holds is ignored.
pub fn unknown_account(acct: &str) -> String {
    format!("the event is for connected account {acct}, which no organisation holds")
}

/// An event that can never apply, as the outcome the inbox records.
fn unreadable(why: Unreadable) -> Outcome {
    Outcome::Ignored(format!("never applicable: {why}"))
}

/// A handler's answer: `Err` may heal and is retried; `Ok(Err)` is an
/// object obol can never apply.
type Handled = Result<std::result::Result<Outcome, Unreadable>>;

/// Reads a Stripe object of type `what` into `T`.
fn parse<T: for<'de> Deserialize<'de>>(
    object: &Value,
    what: &str,
) -> std::result::Result<T, Unreadable> {
    crate::payments::parse(object, what)
}

/// The cause of a change an event makes. An event fetched by
/// reconciliation (not delivered) says so.
fn cause_of(event: &WebhookEventRow) -> Cause<'_> {
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

async fn intent_changed(conn: &mut Conn<'_>, event: &WebhookEventRow, object: &Value) -> Handled {
    let intent = match read_intent(object) {
        Ok(i) => i,
        Err(why) => return Ok(Err(why)),
    };
    // An intent paying a Stripe invoice: the invoice mirrored before its
    // intent was named learns it here (either side links the two).
    if let Some(invoice) = id_of(object.get("invoice")) {
        let account = AccountId::from_db(event.account_id.clone());
        crate::billing::link_intent(conn, &account, &invoice, &intent.id).await?;
    }
    observe_intent(conn, &cause_of(event), &intent, event.stripe_created)
        .await
        .map(Ok)
}

/// What the billing writer is told of an event.
fn seen_of(event: &WebhookEventRow) -> crate::billing::Seen<'_> {
    crate::billing::Seen {
        stripe_event_id: Some(&event.stripe_event_id),
        event_type: Some(&event.event_type),
        at: event.stripe_created,
        read: false,
    }
}

/// `customer.subscription.*`: the subscription's mirror, by the ordering
/// rule of `ledger::billing` (a duplicate or an older event changes
/// nothing). `trial_will_end` carries the subscription too and is applied
/// like any observation of it.
async fn subscription_changed(
    conn: &mut Conn<'_>,
    event: &WebhookEventRow,
    account: &AccountId,
    object: &Value,
) -> Handled {
    let (state, obol_id) = match crate::billing::read_subscription(object) {
        Ok(s) => s,
        Err(why) => return Ok(Err(why)),
    };
    crate::billing::observe_subscription(conn, account, &state, obol_id.as_deref(), seen_of(event))
        .await
        .map(Ok)
}

/// `invoice.*`: the Stripe invoice's mirror (`billing_invoices`).
async fn invoice_changed(
    conn: &mut Conn<'_>,
    event: &WebhookEventRow,
    account: &AccountId,
    object: &Value,
) -> Handled {
    let state = match crate::billing::read_invoice(object) {
        Ok(s) => s,
        Err(why) => return Ok(Err(why)),
    };
    crate::billing::observe_invoice(conn, account, &state, seen_of(event))
        .await
        .map(Ok)
}

/// `charge.succeeded|failed|captured|updated|expired`: the payment's
/// charge (id, card, receipt, decline) through the payment writer, and a
/// captured charge's money as `charge.refunded` applies it.
async fn charge_changed(conn: &mut Conn<'_>, event: &WebhookEventRow, object: &Value) -> Handled {
    let seen =
        match crate::payments::read_charge_event(object, event.event_type == "charge.expired") {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
    crate::payments::observe_charge(conn, &cause_of(event), &seen, event.stripe_created)
        .await
        .map(Ok)
}

async fn charge_refunded(conn: &mut Conn<'_>, event: &WebhookEventRow, object: &Value) -> Handled {
    let charge = match read_charge(object) {
        Ok(c) => c,
        Err(why) => return Ok(Err(why)),
    };
    if !charge.amounts.captured {
        // Cancelling an authorization releases the held amount, which Stripe
        // reports as the uncaptured charge being "refunded": no money moved.
        return Ok(Ok(Outcome::Ignored(
            "an uncaptured charge's authorization was released, not refunded".into(),
        )));
    }
    let Some(intent_id) = charge.payment_intent.clone() else {
        return Ok(Ok(Outcome::Ignored(
            "the charge has no payment intent".into(),
        )));
    };
    let amounts = charge.amounts;
    let observation = Observation {
        status: IntentStatus::Succeeded,
        failed_attempt: false,
        amount_received: amounts.captured_amount(),
        charge: Some(amounts),
        at: event.stripe_created,
    };
    let adopt = Adopt {
        intent_id: &intent_id,
        amount: charge.money.minor(),
        currency: charge.money.currency().as_str(),
        order_id: None,
        customer_hint: None,
        stripe_customer: None,
    };
    observe(conn, &cause_of(event), &adopt, &observation)
        .await
        .map(Ok)
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
async fn refund_changed(conn: &mut Conn<'_>, event: &WebhookEventRow, object: &Value) -> Handled {
    let refund: RefundObject = match parse(object, "refund") {
        Ok(r) => r,
        Err(why) => return Ok(Err(why)),
    };
    let money = match charge_money(refund.amount, &refund.currency, "refund") {
        Ok(m) => m,
        Err(why) => return Ok(Err(why)),
    };
    let account = AccountId::from_db(event.account_id.clone());
    let Some(status) = RefundStatus::parse_stripe(&refund.status) else {
        return Ok(Err(Unreadable(format!(
            "unknown refund status {:?}",
            refund.status
        ))));
    };
    let mut local = match refund
        .metadata
        .get("obol_refund_id")
        .and_then(Value::as_str)
    {
        Some(id) => conn.get_refund(&account, id).await?,
        None => None,
    };
    if local.is_none() {
        local = conn.get_refund_by_stripe_id(&account, &refund.id).await?;
    }
    let now = storage::now();
    // obol's own refund call records Stripe's answer on the same row while
    // this event applies (the sandbox, like Stripe, may deliver
    // `refund.created` before the API call has returned): the guarded
    // update then matches nothing. Read the row again and decide anew, a
    // few times, rather than fail the event and wait for its retry.
    let mut tries = 0;
    while let Some(r) = local {
        let seen = RefundEvent::Observed {
            status,
            at: event.stripe_created,
        };
        let next = match refund::transition(r.ledger(), seen) {
            RefundDecision::Move { next } => next,
            RefundDecision::Ignore => {
                return Ok(Ok(Outcome::Ignored(
                    "older than the refund's recorded state".into(),
                )))
            }
        };
        if conn
            .update_refund_from_stripe(
                &r,
                &refund.id,
                next.status,
                refund.failure_reason.as_deref(),
                next.observed_at,
                now,
            )
            .await?
        {
            return Ok(Ok(Outcome::Applied));
        }
        tries += 1;
        if tries == 3 {
            return Err(Error::internal("the refund changed concurrently; retrying"));
        }
        local = conn.get_refund(&account, &r.id).await?;
    }
    // Not known to obol: a refund made outside it (the Dashboard, another
    // integration).
    let Some(intent) = id_of(refund.payment_intent.as_ref()) else {
        return Ok(Ok(Outcome::Ignored(
            "the refund has no payment intent".into(),
        )));
    };
    let Some(payment) = conn
        .get_payment_by_intent(&event.account_id, &intent)
        .await?
    else {
        return Ok(Ok(Outcome::Ignored(format!("no payment for {intent}"))));
    };
    let id = String::from(crate::ids::RefundId::generate());
    conn.insert_refund(&NewRefund {
        id: &id,
        payment_id: &payment.id,
        stripe_refund_id: Some(&refund.id),
        amount: money.minor(),
        currency: money.currency().as_str(),
        reason: None,
        status,
        observed_at: event.stripe_created,
        now,
    })
    .await?;
    Ok(Ok(Outcome::Applied))
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

/// A dispute opened, changed or closed: the dispute record and its
/// timeline, the payment's `disputed` flag while it is open, and a
/// "Respond to dispute" task, closed with the dispute.
async fn dispute_changed(conn: &mut Conn<'_>, event: &WebhookEventRow, object: &Value) -> Handled {
    let d: DisputeObject = match parse(object, "dispute") {
        Ok(d) => d,
        Err(why) => return Ok(Err(why)),
    };
    let money = match charge_money(d.amount, &d.currency, "dispute") {
        Ok(m) => m,
        Err(why) => return Ok(Err(why)),
    };
    let Some(status) = DisputeStatus::parse(&d.status) else {
        return Ok(Err(Unreadable(format!(
            "unknown dispute status {:?}",
            d.status
        ))));
    };
    let Some(intent) = id_of(d.payment_intent.as_ref()) else {
        return Ok(Ok(Outcome::Ignored(
            "the dispute has no payment intent".into(),
        )));
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
    let cause = cause_of(event);
    let due_by = d.evidence_details.as_ref().and_then(|e| e.due_by);
    let account = AccountId::from_db(event.account_id.clone());
    let existing = conn.get_dispute_by_stripe_id(&account, &d.id).await?;
    let dispute = match (
        dispute::transition(
            existing.as_ref().map(|e| e.ledger()),
            status,
            event.stripe_created,
        ),
        existing,
    ) {
        (DisputeDecision::Ignore, _) => {
            return Ok(Ok(Outcome::Ignored(
                "older than the dispute's recorded state, or after it closed for good".into(),
            )))
        }
        (DisputeDecision::Create { next }, _) => {
            let id = String::from(crate::ids::DisputeId::generate());
            let row = conn
                .insert_dispute(&NewDispute {
                    id: &id,
                    stripe_dispute_id: &d.id,
                    payment_id: &payment.id,
                    amount: money.minor(),
                    currency: money.currency().as_str(),
                    reason: &d.reason,
                    status: next.status,
                    evidence_due_by: due_by,
                    observed_at: next.observed_at,
                    now,
                })
                .await?;
            conn.insert_dispute_timeline_entry(
                &row.id,
                None,
                next.status,
                at,
                cause.kind,
                cause.reference,
            )
            .await?;
            row
        }
        (DisputeDecision::Move { .. } | DisputeDecision::Update { .. }, None) => {
            return Err(Error::internal("a dispute decision without a dispute"))
        }
        (DisputeDecision::Move { from, next }, Some(existing)) => {
            update_dispute(conn, &existing, next.status, due_by, next.observed_at, now).await?;
            conn.insert_dispute_timeline_entry(
                &existing.id,
                Some(from),
                next.status,
                at,
                cause.kind,
                cause.reference,
            )
            .await?;
            existing
        }
        (DisputeDecision::Update { next }, Some(existing)) => {
            update_dispute(conn, &existing, next.status, due_by, next.observed_at, now).await?;
            existing
        }
    };
    let open = status.is_open();
    if conn.set_payment_disputed(&payment.id, open, now).await? {
        if let Some(row) = conn.get_payment(&payment.account(), &payment.id).await? {
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
            account_id: &event.account_id,
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
    Ok(Ok(Outcome::Applied))
}

/// Writes a dispute's new view, guarded by the row read; a lost race is
/// retried from a fresh read.
async fn update_dispute(
    conn: &mut Conn<'_>,
    read: &crate::storage::disputes::DisputeRow,
    status: DisputeStatus,
    due_by: Option<i64>,
    observed_at: i64,
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    if conn
        .update_dispute_status(read, status, due_by, observed_at, now)
        .await?
    {
        Ok(())
    } else {
        Err(Error::internal(
            "the dispute changed concurrently; retrying",
        ))
    }
}

/// How long a card event of a Stripe customer obol has not recorded is
/// retried: its `customer.created` (which adopts it) may come later.
const CARD_WAITS_FOR_CUSTOMER_SECS: i64 = 3600;

/// obol's customer for Stripe's `stripe_customer`, its row held for the
/// transaction; `Err(outcome)`: one obol does not know (ignored, with why).
/// A customer not known yet is waited for an hour after the event (a
/// reordered delivery, or reconciliation bringing its `customer.created`),
/// not for ever.
async fn card_owner(
    conn: &mut Conn<'_>,
    account: &AccountId,
    stripe_customer: Option<&str>,
    event_at: i64,
) -> Result<std::result::Result<CustomerRow, Outcome>> {
    let Some(cus) = stripe_customer else {
        return Ok(Err(Outcome::Ignored(
            "the object names no Stripe customer".into(),
        )));
    };
    match conn.get_customer_by_stripe_id(account, cus).await? {
        Some(c) => {
            conn.lock_customer(&c.id).await?;
            Ok(Ok(c))
        }
        None if storage::now().timestamp() - event_at < CARD_WAITS_FOR_CUSTOMER_SECS => {
            Err(Error::internal(format!(
                "Stripe customer {cus} is not one of obol's customers yet; retrying"
            )))
        }
        None => Ok(Err(Outcome::Ignored(format!(
            "Stripe customer {cus} is not one of obol's customers"
        )))),
    }
}

/// A card attached, changed (by its holder or by the card network:
/// `automatically_updated` brings a new number or expiry) or detached. A
/// detached card's customer is in `previous_attributes`, or in obol's row.
async fn payment_method_changed(
    conn: &mut Conn<'_>,
    event: &WebhookEventRow,
    payload: &Value,
) -> Handled {
    let pm = match saved_cards::read_payment_method(&payload["data"]["object"]) {
        Ok(pm) => pm,
        Err(why) => return Ok(Err(why)),
    };
    let Some(details) = pm.card.clone() else {
        return Ok(Ok(Outcome::Ignored(
            "the payment method is not a card".into(),
        )));
    };
    let account = AccountId::from_db(event.account_id.clone());
    let mut stripe_customer = pm
        .customer
        .clone()
        .or_else(|| id_of(payload["data"]["previous_attributes"].get("customer")));
    if stripe_customer.is_none() {
        stripe_customer = conn
            .get_payment_method(&account, &pm.id)
            .await?
            .map(|r| r.stripe_customer_id);
    }
    let customer = match card_owner(
        conn,
        &account,
        stripe_customer.as_deref(),
        event.stripe_created,
    )
    .await?
    {
        Ok(c) => c,
        Err(ignored) => return Ok(Ok(ignored)),
    };
    let stripe_customer = stripe_customer.unwrap_or_default();
    let before = conn
        .get_payment_method(&account, &pm.id)
        .await?
        .filter(|r| !r.detached)
        .and_then(|r| r.details());
    let seen = if event.event_type == "payment_method.detached" {
        CardSeen::Detached { stripe_customer }
    } else {
        CardSeen::Attached {
            stripe_customer,
            details,
        }
    };
    let outcome = saved_cards::observe_card(
        conn,
        &account,
        &customer,
        &pm.id,
        &seen,
        event.stripe_created,
    )
    .await?;
    // A saved card's new expiry or number (the holder's, or the network's
    // `automatically_updated`) is news to a CRM: once per change, not for
    // an attach, a detach or an event that changed nothing.
    if let (Outcome::Applied, Some(before)) = (&outcome, before) {
        if let Some(row) = conn.get_payment_method(&account, &pm.id).await? {
            if let Some(now) = row.details().filter(|d| !row.detached && *d != before) {
                let card = outbox::CardSnapshot {
                    id: row.stripe_payment_method_id.clone(),
                    brand: now.brand,
                    last4: now.last4,
                    exp_month: now.exp_month,
                    exp_year: now.exp_year,
                    default: row.is_default,
                };
                outbox::notify_payment_method(conn, &customer, card, &event.stripe_event_id)
                    .await?;
            }
        }
    }
    Ok(Ok(outcome))
}

#[derive(Debug, Deserialize)]
struct CustomerObject {
    id: String,
    invoice_settings: Option<InvoiceSettings>,
}

#[derive(Debug, Deserialize)]
struct InvoiceSettings {
    default_payment_method: Option<Value>,
}

/// A Stripe customer created, changed or deleted: the customer mirror
/// (`crate::customers`: linked if obol made it, else adopted; e-mail and
/// name by the ordering rule; deleted is final). A `customer.updated`'s
/// `invoice_settings.default_payment_method` is then the default card
/// (none when null); every other card is not.
async fn customer_changed(conn: &mut Conn<'_>, event: &WebhookEventRow, object: &Value) -> Handled {
    let Some(kind) = crate::customers::CustomerEvent::parse(&event.event_type) else {
        return Ok(Err(Unreadable(format!(
            "{} is not a customer event",
            event.event_type
        ))));
    };
    let seen = match crate::customers::read_customer(object) {
        Ok(s) => s,
        Err(why) => return Ok(Err(why)),
    };
    let c: CustomerObject = match parse(object, "customer") {
        Ok(c) => c,
        Err(why) => return Ok(Err(why)),
    };
    let account = AccountId::from_db(event.account_id.clone());
    let observed = crate::customers::observe(
        conn,
        &account,
        &seen,
        kind,
        event.stripe_created,
        &event.stripe_event_id,
    )
    .await?;
    if kind != crate::customers::CustomerEvent::Updated
        || observed.customer.stripe_deleted_at.is_some()
    {
        return Ok(Ok(observed.outcome));
    }
    let default = c
        .invoice_settings
        .and_then(|s| id_of(s.default_payment_method.as_ref()));
    let cards = saved_cards::observe_default(
        conn,
        &account,
        &observed.customer,
        &c.id,
        default.as_deref(),
        event.stripe_created,
        DefaultSource::Event,
    )
    .await?;
    Ok(Ok(match (observed.outcome, cards) {
        (Outcome::Applied, _) | (_, Outcome::Applied) => Outcome::Applied,
        (ignored, _) => ignored,
    }))
}

#[derive(Debug, Deserialize)]
struct SetupIntentObject {
    status: String,
    customer: Option<Value>,
    payment_method: Option<Value>,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
}

/// A card saved through obol's card-update page (`metadata[obol_customer_id]`):
/// it is the customer's default from now on. The page sets it at Stripe
/// too; a SetupIntent made elsewhere changes no default.
async fn setup_succeeded(conn: &mut Conn<'_>, event: &WebhookEventRow, object: &Value) -> Handled {
    let si: SetupIntentObject = match parse(object, "setup_intent") {
        Ok(s) => s,
        Err(why) => return Ok(Err(why)),
    };
    let Some(obol_customer) = si.metadata.get("obol_customer_id").and_then(Value::as_str) else {
        return Ok(Ok(Outcome::Ignored(
            "the SetupIntent was not made by obol's card-update page".into(),
        )));
    };
    if si.status != "succeeded" {
        return Ok(Ok(Outcome::Ignored(format!(
            "the SetupIntent is {}, not succeeded",
            si.status
        ))));
    }
    let account = AccountId::from_db(event.account_id.clone());
    let stripe_customer = id_of(si.customer.as_ref());
    let customer = match card_owner(
        conn,
        &account,
        stripe_customer.as_deref(),
        event.stripe_created,
    )
    .await?
    {
        Ok(c) => c,
        Err(ignored) => return Ok(Ok(ignored)),
    };
    if customer.id != obol_customer {
        return Ok(Ok(Outcome::Ignored(format!(
            "the SetupIntent names obol customer {obol_customer}, but its Stripe customer is {}'s",
            customer.id
        ))));
    }
    let Some(pm) = id_of(si.payment_method.as_ref()) else {
        return Ok(Err(Unreadable(
            "a succeeded SetupIntent without a payment method".into(),
        )));
    };
    saved_cards::observe_default(
        conn,
        &account,
        &customer,
        &stripe_customer.unwrap_or_default(),
        Some(&pm),
        event.stripe_created,
        DefaultSource::Event,
    )
    .await
    .map(Ok)
}

/// `account.application.deauthorized`: the connected account revoked
/// obol's access. The organisation holding it is disconnected once (the
/// write is guarded: a second delivery, or the disconnect call that caused
/// it, finds it no longer active), and the organisation writer stops its
/// charge runs and tells the host, in this transaction.
async fn deauthorized(
    conn: &mut Conn<'_>,
    event: &WebhookEventRow,
    account: &AccountId,
    connected: Option<&str>,
) -> Handled {
    let (Some(acct), Ok(org_id)) = (connected, OrganizationId::parse(account.as_str())) else {
        return Ok(Ok(Outcome::Ignored(
            "the platform's own account deauthorized an application; obol acts on connected accounts' deauthorizations only".into(),
        )));
    };
    let Some(org) = conn.get_organization(&org_id).await? else {
        return Ok(Ok(Outcome::Ignored(format!(
            "organisation {org_id} no longer exists"
        ))));
    };
    if org.stripe_account_id.as_deref() != Some(acct) {
        return Ok(Ok(Outcome::Ignored(format!(
            "organisation {org_id} is connected to another account now"
        ))));
    }
    // A deauthorization older than the current connection (the account was
    // connected again since) must not end the new one.
    if org
        .connected_at
        .is_some_and(|at| event.stripe_created < at.timestamp())
    {
        return Ok(Ok(Outcome::Ignored(
            "older than the organisation's current connection".into(),
        )));
    }
    let Some(row) = conn
        .disconnect_organization(&org_id, storage::now())
        .await?
    else {
        return Ok(Ok(Outcome::Ignored(format!(
            "organisation {org_id} is not connected (already disconnected)"
        ))));
    };
    crate::organizations::after_disconnected(conn, &row, storage::now()).await?;
    tracing::info!(organization_id = %row.id, event = %event.stripe_event_id, "organisation disconnected: its Stripe account deauthorized obol");
    Ok(Ok(Outcome::Applied))
}

/// Any `payout.*` event: the payout's view as of the event, through the
/// payout writer (ordering rule in `ledger::payout`).
async fn payout_changed(
    conn: &mut Conn<'_>,
    event: &WebhookEventRow,
    account: &AccountId,
    object: &Value,
) -> Handled {
    let seen = match crate::payouts::read_payout(object) {
        Ok(p) => p,
        Err(why) => return Ok(Err(why)),
    };
    crate::payouts::observe_payout(
        conn,
        account,
        &seen,
        event.stripe_created,
        Some(&event.stripe_event_id),
    )
    .await
    .map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handled_type_has_a_handler_and_no_other_does() {
        for t in HANDLED_EVENT_TYPES {
            assert!(kind_of(t).is_some(), "{t} has no handler");
        }
        // Reconciliation lists events with at most 20 types[] per request:
        // every chunk it sends fits, and together they are every type.
        for types in [
            platform_event_types().collect::<Vec<_>>(),
            connect_event_types().collect::<Vec<_>>(),
        ] {
            let chunks = type_chunks(&types);
            assert!(chunks
                .iter()
                .all(|c| !c.is_empty() && c.len() <= MAX_TYPES_PER_LIST));
            assert_eq!(chunks.concat(), types);
        }
        assert!(
            connect_event_types().count() > MAX_TYPES_PER_LIST,
            "the split is exercised"
        );
        assert!(platform_event_types().all(|t| !CONNECT_ONLY_EVENT_TYPES.contains(&t)));
        assert!(CONNECT_ONLY_EVENT_TYPES
            .iter()
            .all(|t| HANDLED_EVENT_TYPES.contains(t)));
        for t in [
            "customer.created",
            "charge.succeeded",
            "payout.paid",
            "payout.failed",
            "invoice.paid",
        ] {
            assert!(
                kind_of(t).is_none() || HANDLED_EVENT_TYPES.contains(&t),
                "{t}"
            );
        }
    }

    /// The event types of the README's table (the first column's
    /// backticked names, in the "Stripe webhook inbox" section).
    fn readme_event_types() -> Vec<String> {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md at the workspace root");
        let start = readme
            .find("| Stripe event | What it changes |")
            .expect("the README's event table");
        let mut types = Vec::new();
        for line in readme[start..].lines().skip(2) {
            let Some(row) = line.strip_prefix('|') else {
                break;
            };
            let first = row.split('|').next().unwrap_or("");
            for (i, part) in first.split('`').enumerate() {
                if i % 2 == 1 {
                    types.push(part.to_string());
                }
            }
        }
        types
    }

    #[test]
    fn the_readme_table_lists_exactly_the_handled_types() {
        let listed = readme_event_types();
        let mut seen = std::collections::BTreeSet::new();
        for t in &listed {
            assert!(seen.insert(t.as_str()), "{t} is listed twice");
            assert!(
                HANDLED_EVENT_TYPES.contains(&t.as_str()),
                "the README lists {t}, which obol does not handle"
            );
        }
        for t in HANDLED_EVENT_TYPES {
            assert!(seen.contains(t), "the README's event table misses {t}");
        }
    }
}
