//! The MCP tools. Each is a method with `#[tool]`: its name is the
//! method's (a contract with agents: never rename one), its description
//! what an agent needs to act (what it does, money in minor units, who may
//! call it), its annotations what it changes; its input schema comes from
//! the argument type's `JsonSchema` derive. The body calls exactly one
//! `ops::` function with the caller's actor and hands the result to
//! `answer`.
//!
//! Adding a tool: an input type below (`Deserialize` + `JsonSchema`, doc
//! comments become the schema's descriptions) and a method in one of the
//! routers: `shared_tools` for any credential, `secret_key_tools` for the
//! host's backend only. A new group (the catalog's `list_products`,
//! `list_shipping_methods`, payment links' `create_payment_link`) may be a
//! `#[tool_router(router = catalog_tools)] impl ObolMcp` block in a file of
//! its own, added to `Routers::shared` in `mcp/mod.rs` with `+`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Caller, ObolMcp};
use crate::error::{Error, Result};
use crate::ops;

/// A successful call: the use case's view as structured content (and as
/// JSON text, for clients that read only text). A refused one: obol's
/// error body, `{"error": {"code", "message"}}`, with `isError`.
pub fn answer<T: Serialize>(result: Result<T>) -> CallToolResult {
    match result.and_then(|view| serde_json::to_value(view).map_err(Error::internal)) {
        Ok(view) => CallToolResult::structured(view),
        Err(e) => refused(e),
    }
}

/// A refusal, logged like an HTTP one; an internal error's detail stays in
/// the log (`Error::body` answers a generic message for it).
pub fn refused(e: Error) -> CallToolResult {
    e.log();
    CallToolResult::structured_error(e.body())
}

/// A tool's arguments, read leniently: arguments that do not fit the
/// schema become an `invalid_body` result the agent can correct, like a
/// body of the wrong shape over HTTP, instead of a protocol error. The
/// schema is `T`'s.
pub struct Args<T>(std::result::Result<T, String>);

impl<T> Args<T> {
    pub(super) fn get(self) -> Result<T> {
        self.0.map_err(Error::InvalidBody)
    }

    /// The arguments, or why they do not fit the schema.
    pub(super) fn into_inner(self) -> std::result::Result<T, String> {
        self.0
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Args<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(Args(
            serde_json::from_value(value).map_err(|e| e.to_string()),
        ))
    }
}

impl<T: JsonSchema> JsonSchema for Args<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// An order, by id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRef {
    /// The order's id, `ord_…`.
    pub order_id: String,
}

/// A PaymentIntent, by Stripe's id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentIntentRef {
    /// Stripe's PaymentIntent id, `pi_…`.
    pub payment_intent_id: String,
}

/// An amount to authorize before the order exists.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreorderIntentIn {
    /// Integer minor units of `currency` (4999 with eur is EUR 49.99; 500
    /// with jpy is JPY 500). Positive, at least Stripe's minimum charge.
    #[schemars(range(min = 1, max = 99_999_999))]
    pub amount: i64,
    /// Lowercase ISO 4217 code, e.g. `eur`.
    #[schemars(length(equal = 3))]
    pub currency: String,
    /// The customer paying, `cus_…`. With a customer token: absent or that
    /// customer's own id.
    pub customer_id: Option<String>,
    /// Send the same key again when retrying a call that may have gone
    /// through: the same intent comes back instead of a second one.
    #[schemars(length(min = 1, max = 255))]
    pub idempotency_key: Option<String>,
}

/// Filters of a payments list; all optional.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPaymentsIn {
    /// Only payments in this state.
    #[schemars(extend("enum" = ["pending", "requires_action", "authorized", "completed", "failed", "canceled", "partially_refunded", "refunded"]))]
    pub status: Option<String>,
    /// Only this customer's payments, `cus_…`.
    pub customer_id: Option<String>,
    /// Only this order's payments, `ord_…`.
    pub order_id: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_gte: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_lt: Option<DateTime<Utc>>,
    /// Authorized payments whose 7-day authorization lapses before this
    /// time (RFC 3339): capture or release them first.
    pub expiring_before: Option<DateTime<Utc>>,
    /// Page size, 1–100 (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A refund of a captured payment.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundPaymentIn {
    /// The payment's id, `pay_…` (not the PaymentIntent's `pi_…`).
    pub payment_id: String,
    /// Integer minor units of the payment's currency; absent: everything
    /// not yet refunded.
    #[schemars(range(min = 1))]
    pub amount: Option<i64>,
    /// Why, in Stripe's terms.
    #[schemars(extend("enum" = ["duplicate", "fraudulent", "requested_by_customer"]))]
    pub reason: Option<String>,
}

/// Tools any credential may call; each answers only what the caller may see.
#[tool_router(router = shared_tools, vis = "pub(super)")]
impl ObolMcp {
    #[tool(
        description = "Get one order by its id (ord_…): status (pending, confirmed, shipped, delivered, cancelled), line items, shipping, subtotal and total as {amount, currency} in integer minor units (4999 eur = EUR 49.99), addresses, the payment id and the timeline of status changes. With the secret key any order; with a customer token only that customer's orders: any other id answers order_not_found, exactly like an id that does not exist.",
        annotations(title = "Get an order", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_order(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<OrderRef>>,
    ) -> CallToolResult {
        answer(async { ops::orders::get(self.ctx(), &actor, &args.get()?.order_id).await }.await)
    }

    #[tool(
        description = "Create the Stripe PaymentIntent that pays an existing pending order (ord_…). The amount is always the order's own total, never chosen by the caller. Answers {id: pi_…, client_secret, publishable_key, amount (integer minor units), currency, status, payment_id}: hand client_secret and publishable_key to the customer's Stripe.js page, which confirms the payment; the order is confirmed once Stripe reports success (poll check_payment_status). One open intent per order: calling again returns the same intent. Secret key, or a customer token for that customer's own orders (others: order_not_found). Refusals: order_not_payable, order_already_paid.",
        annotations(
            title = "Pay an existing order",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn create_payment_intent(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<OrderRef>>,
    ) -> CallToolResult {
        answer(
            async {
                let body = ops::checkout::PaymentIntentIn {
                    amount: None,
                    currency: None,
                    customer_id: None,
                    order_id: Some(args.get()?.order_id),
                    guest_token: None,
                };
                ops::checkout::create_intent(self.ctx(), &actor, body, None)
                    .await
                    .map(|made| made.intent)
            }
            .await,
        )
    }

    #[tool(
        description = "Pay first: authorize an amount before the order exists (a manual-capture Stripe PaymentIntent). amount is integer minor units of currency (4999 with eur is EUR 49.99), currency lowercase ISO 4217. Answers {id: pi_…, client_secret, publishable_key, amount, currency, status, payment_id}: the customer's Stripe.js page confirms it with client_secret; the shop's backend then creates the order with payment_reference = id, and obol captures when the order is confirmed. Nothing is charged until then; an authorization no order uses is released, never refunded. Secret key (customer_id optional), or a customer token (for that customer only; at most a few open intents at a time: too_many_open_intents). Pass idempotency_key to make a retry return the same intent. Refusals: amount_too_small, amount_not_positive, amount_precision, currency_unsupported, customer_not_found.",
        annotations(
            title = "Authorize before the order",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn create_preorder_payment_intent(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<PreorderIntentIn>>,
    ) -> CallToolResult {
        answer(
            async {
                let args = args.get()?;
                let body = ops::checkout::PaymentIntentIn {
                    amount: Some(args.amount),
                    currency: Some(args.currency),
                    customer_id: args.customer_id,
                    order_id: None,
                    guest_token: None,
                };
                ops::checkout::create_intent(
                    self.ctx(),
                    &actor,
                    body,
                    args.idempotency_key.as_deref(),
                )
                .await
                .map(|made| made.intent)
            }
            .await,
        )
    }

    #[tool(
        description = "Check whether a payment went through: the PaymentIntent's status as Stripe reports it now (stripe_status: requires_payment_method, requires_action, processing, requires_capture = authorized, succeeded, canceled) and obol's payment state (payment_status: pending, requires_action, authorized, completed, failed, canceled, partially_refunded, refunded), with payment_id and order_id. Poll this after handing out a client secret. Secret key, or a customer token for its own payments (others: payment_not_found).",
        annotations(
            title = "Check a payment",
            read_only_hint = true,
            open_world_hint = true
        )
    )]
    async fn check_payment_status(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<PaymentIntentRef>>,
    ) -> CallToolResult {
        answer(
            async {
                ops::checkout::intent_status(self.ctx(), &actor, &args.get()?.payment_intent_id)
                    .await
            }
            .await,
        )
    }
}

/// Tools for the host's backend only: not listed to a customer token, and
/// refused to it with `secret_key_required`.
#[tool_router(router = secret_key_tools, vis = "pub(super)")]
impl ObolMcp {
    #[tool(
        description = "List payments, newest first: {data: [{id: pay_…, status, amount, amount_captured, amount_refunded (integer minor units), currency, stripe_payment_intent_id, customer_id, order_id, authorization_expires_at, …}], has_more, next_cursor}. Filters: status, customer_id, order_id, created_gte, created_lt, expiring_before (authorized payments whose 7-day authorization lapses before then), limit (1-100), cursor (next_cursor of the previous page). Secret key only.",
        annotations(
            title = "List payments",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_payments(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<ListPaymentsIn>>,
    ) -> CallToolResult {
        answer(
            async {
                let a = args.get()?;
                let filter = ops::payments::ListPayments {
                    status: a.status,
                    customer_id: a.customer_id,
                    order_id: a.order_id,
                    created_gte: a.created_gte,
                    created_lt: a.created_lt,
                    expiring_before: a.expiring_before,
                    limit: a.limit,
                    cursor: a.cursor,
                };
                ops::payments::list(self.ctx(), &actor, filter).await
            }
            .await,
        )
    }

    #[tool(
        description = "Refund a captured payment (pay_…), in full or in part: money goes back to the customer's card, which cannot be undone. amount is integer minor units of the payment's currency; without it everything not yet refunded is refunded; partial refunds add up to at most what was captured. reason: duplicate, fraudulent or requested_by_customer. Answers the refund {id: rf_…, status: pending_submission | pending | succeeded | failed | canceled, amount, currency, …}. Each call is a new refund: do not retry one that answered. Secret key only. Refusals: payment_not_captured (only authorized: release it instead), payment_not_refundable, payment_fully_refunded, refund_exceeds_remaining, payment_not_found.",
        annotations(
            title = "Refund a payment",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn refund_payment(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<RefundPaymentIn>>,
    ) -> CallToolResult {
        answer(
            async {
                let a = args.get()?;
                let body = ops::refunds::RefundIn {
                    amount: a.amount,
                    reason: a.reason,
                };
                ops::refunds::create(self.ctx(), &actor, &a.payment_id, body).await
            }
            .await,
        )
    }
}
