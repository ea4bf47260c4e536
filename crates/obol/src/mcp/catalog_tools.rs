//! The catalog and payment-link tools: what an agent needs to sell from
//! the catalog in a chat without ever setting a price (see `tools.rs` for
//! how tools are written).

use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::tools::{answer, Args};
use super::{Caller, ObolMcp};
use crate::address::Address;
use crate::ops;

/// A page of the catalog.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListCatalogIn {
    /// Page size, 1–100 (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A payment link for a cart (obol creates the order) or an existing order.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentLinkToolIn {
    /// An existing pending order, `ord_…` (then no cart fields).
    pub order_id: Option<String>,
    /// The cart: catalog products and quantities. obol prices them.
    pub items: Option<Vec<ops::catalog::CartItemIn>>,
    /// A shipping method id from list_shipping_methods, `shm_…`.
    pub shipping_method_id: Option<String>,
    pub shipping_address: Option<Address>,
    pub billing_address: Option<Address>,
    /// The customer's e-mail (required with a cart).
    pub email: Option<String>,
    /// The customer, `cus_…` (a customer token: absent or its own).
    pub customer_id: Option<String>,
}

#[tool_router(router = catalog_tools, vis = "pub(super)")]
impl ObolMcp {
    #[tool(
        description = "List the products for sale, newest first: {data: [{id: prod_…, name, unit_amount (integer minor units: 2000 eur = EUR 20.00), currency, active, stock (units left, null when not tracked)}], has_more, next_cursor}. Prices are obol's: build carts from these ids, never from prices you compute. A customer token sees active products only.",
        annotations(
            title = "List products",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_products(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<ListCatalogIn>>,
    ) -> CallToolResult {
        answer(
            async {
                let a = args.get()?;
                let q = ops::catalog::ListCatalog {
                    active: None,
                    limit: a.limit,
                    cursor: a.cursor,
                };
                ops::catalog::list_products(self.ctx(), &actor, q).await
            }
            .await,
        )
    }

    #[tool(
        description = "List the shipping methods: {data: [{id: shm_…, name, amount (integer minor units), currency, active}], has_more, next_cursor}. Put one id in a cart's shipping_method_id.",
        annotations(
            title = "List shipping methods",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_shipping_methods(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<ListCatalogIn>>,
    ) -> CallToolResult {
        answer(
            async {
                let a = args.get()?;
                let q = ops::catalog::ListCatalog {
                    active: None,
                    limit: a.limit,
                    cursor: a.cursor,
                };
                ops::catalog::list_shipping_methods(self.ctx(), &actor, q).await
            }
            .await,
        )
    }

    #[tool(
        description = "Create a payment link to hand the customer in the chat: the customer cannot type a card into a chat, so they open payment_url and pay on obol's hosted page. Give a cart (items of product ids from list_products with quantities, shipping_method_id, shipping_address, email; obol prices it from the catalog and creates the pending order) or an existing pending order_id. Answers {id: plink_…, payment_url, token, payment_intent_id, order_id, status: pending, expires_at} (the link expires after 30 minutes by default). Then poll check_payment_status with payment_intent_id until payment_link_status is completed (the order is confirmed). Refusals: unknown_product, product_inactive, cart_currency_mixed, insufficient_stock, unknown_shipping_method, order_not_payable, order_not_found. Secret key, or a customer token for that customer.",
        annotations(
            title = "Create a payment link",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn create_payment_link(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<PaymentLinkToolIn>>,
    ) -> CallToolResult {
        answer(
            async {
                let a = args.get()?;
                let body = ops::payment_links::PaymentLinkIn {
                    order_id: a.order_id,
                    items: a.items,
                    shipping_method_id: a.shipping_method_id,
                    shipping_address: a.shipping_address,
                    billing_address: a.billing_address,
                    email: a.email,
                    customer_id: a.customer_id,
                };
                ops::payment_links::create(self.ctx(), &actor, body).await
            }
            .await,
        )
    }
}
