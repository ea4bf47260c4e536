//! Use cases, one function each; the HTTP API, the CLI, jobs and (later)
//! the MCP tools call these, never storage and Stripe directly.

pub mod checkout;
pub mod jobs;
pub mod refunds;
