//! Pure state machines, one file each, every one a single `transition`
//! function with property tests over any arrival order: `payment` (the
//! payment ledger, re-exported here as `ledger::transition` and friends),
//! `order`, `refund`, `dispute`, `delivery` (host notifications),
//! `inbox_event` (Stripe events in the inbox), `job` (background work) and
//! `payment_method` (saved cards and a customer's default card).
//!
//! Nothing here touches storage, Stripe or the clock: callers pass what
//! was observed and when, and `storage/` writes the outcome guarded by the
//! state that was read. No `_ =>` over a state: a new state must be
//! decided everywhere it matters.

pub mod billing;
pub mod charge_run;
pub mod delivery;
pub mod dispute;
pub mod inbox_event;
pub mod invoice;
pub mod job;
pub mod order;
pub mod payment;
pub mod payment_method;
pub mod payout;
pub mod refund;

pub use payment::{
    transition, ChargeAmounts, Decision, IntentStatus, Ledger, Observation, PaymentState,
};
