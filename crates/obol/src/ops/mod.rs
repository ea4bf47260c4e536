//! Use cases, one function each; the HTTP API, the CLI, jobs and (later)
//! the MCP tools call these, never storage and Stripe directly.
//!
//! Payment state changes go through `crate::payments` (the writer), never
//! through `inbox`: ops and the inbox are two front ends of one core and
//! must not import each other.

pub mod checkout;
pub mod refunds;
