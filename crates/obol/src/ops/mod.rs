//! Use cases: one file per resource, one function per use case, each
//! taking a `Ctx` and (where someone acts) an `Actor`. The HTTP API, the
//! CLI, jobs, the MCP tools and later front ends (hosted pages) call these;
//! none of them touches storage or Stripe directly. Request and view
//! types live beside their use case, so every front end speaks the same
//! shapes.
//!
//! What must not live here: HTTP (status codes, headers, extractors),
//! SQL (that is `storage/`), and state-machine rules (those are the pure
//! `ledger::*::transition` functions, written through `payments::` and
//! `orders::`). Payment state changes go through `crate::payments` (the
//! writer), never through `inbox`: ops and the inbox are two front ends
//! of one core and must not import each other.

pub mod acp;
pub mod admin;
pub mod billing_invoices;
pub mod card_updates;
pub mod catalog;
pub mod charge_runs;
pub mod checkout;
pub mod connect;
pub mod connect_webhooks;
pub mod credentials;
pub mod customer_tokens;
pub mod customers;
pub mod disputes;
pub mod emails;
pub mod endpoints;
pub mod fees;
pub mod health;
pub mod invoices;
pub mod jobs;
pub mod metrics;
pub mod orders;
pub mod organizations;
pub mod pagination;
pub mod payment_actions;
pub mod payment_links;
pub mod payment_methods;
pub mod payments;
pub mod payouts;
pub mod reconciliation;
pub mod refunds;
pub mod scheduled_payments;
pub mod subscriptions;
pub mod sync_jobs;
pub mod webhook_events;
