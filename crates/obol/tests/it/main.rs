//! obol's integration tests: one binary, a file per area. Storage and API
//! tests run once per backend (`sqlite::…` and `postgres::…`).

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod api_customers;
mod api_errors;
mod chaos;
mod checkout;
mod crash;
mod disputes;
mod helpers;
mod http_hardening;
mod inbox;
mod jobs;
mod layering;
mod legacy;
mod notifications;
mod order_notifications;
mod orders;
mod refunds;
mod serve;
mod signature;
mod storage;
mod stripe_client;
