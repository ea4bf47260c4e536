//! obol's integration tests: one binary, a file per area. Storage and API
//! tests run once per backend (`sqlite::…` and `postgres::…`).

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod accounting_standin;
mod api_customers;
mod api_errors;
mod auth_throttle;
mod chaos;
mod checkout;
mod crash;
mod disputes;
mod event_payloads;
mod helpers;
mod http_hardening;
mod inbox;
mod invoice_pages;
mod invoice_sync;
mod invoices;
mod jobs;
mod layering;
mod legacy;
mod mcp;
mod notifications;
mod openapi;
mod openapi_check;
mod order_input;
mod order_notifications;
mod orders;
mod pages;
mod payment_links;
mod refunds;
mod serve;
mod signature;
mod storage;
mod stripe_budget;
mod stripe_client;
mod stripe_refusals;
