//! Integration tests: one binary, the sandbox in-process on port 0.

// Test helpers outside #[test] fns may panic on broken fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod billing;
mod chaos;
mod connect;
mod customers;
mod payment_intents;
mod rate_limit;
mod refunds_disputes;
mod setup_intents;
mod shared_payment;
mod three_ds;
mod trigger;
mod webhooks;
mod wire;
