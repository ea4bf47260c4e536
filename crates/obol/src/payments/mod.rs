//! The payments domain: the one writer of a payment's ledger state.
//!
//! `writer` turns what Stripe said about a PaymentIntent (an event's
//! object, an API answer, a reconciliation read) into an `Observation`,
//! runs it through `ledger::transition` and writes the outcome, the
//! timeline entry and the host notification — all inside the caller's
//! transaction (every function takes a `&mut Conn`), so the change commits
//! with whatever else the caller writes (the inbox marking an event
//! applied, an order created with its authorization).
//!
//! Callers: `inbox/` (webhook events, reconciliation), `ops/` (API use
//! cases) and `api/` (order creation). This module must not call them
//! back, ask Stripe anything, or open or commit transactions of its own;
//! the state decisions live in the pure `ledger`, the SQL in `storage`.

pub mod writer;

pub use writer::{
    charge_applies, charge_money, confirm_paid_order, id_of, observe, observe_charge,
    observe_intent, parse, read_charge, read_charge_event, read_intent, Adopt, Cause,
    ChargeEventSeen, ChargeSeen, IntentSeen, Outcome, Unreadable,
};
