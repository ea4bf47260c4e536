//! The catalog: products and shipping methods, priced by the host's
//! backend (secret key), readable by customer tokens and agents, and the
//! pricing of a cart from it. A cart's total is always computed here, from
//! the catalog at the moment the cart is used: a caller never sends a price.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::pagination::{self, Cursor, Page};
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::{ProductId, ShippingMethodId};
use crate::money::{Currency, Money};
use crate::storage::catalog::{ProductRow, ShippingMethodRow};
use crate::storage::Conn;
use crate::validate;

/// Body of `POST /v1/products`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductIn {
    pub name: String,
    /// Price of one, in minor units.
    #[schema(minimum = 1)]
    pub unit_amount: i64,
    #[schema(value_type = Currency)]
    pub currency: String,
    /// Default true; an inactive product cannot be ordered.
    pub active: Option<bool>,
    /// Units left; absent: not tracked. Carts asking for more answer 422
    /// `insufficient_stock`.
    #[schema(minimum = 0)]
    pub stock: Option<i64>,
}

/// Body of `PATCH /v1/products/{id}`: the fields to change. `stock: null`
/// stops tracking stock.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub name: Option<String>,
    #[schema(minimum = 1)]
    pub unit_amount: Option<i64>,
    #[schema(value_type = Option<Currency>)]
    pub currency: Option<String>,
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub stock: Option<Option<i64>>,
}

/// Tells `"stock": null` (stop tracking) from an absent `stock` (keep).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductOut {
    #[schema(value_type = crate::ids::ProductId)]
    pub id: String,
    pub name: String,
    /// Minor units.
    pub unit_amount: i64,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub active: bool,
    /// Units left; null: not tracked.
    pub stock: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ProductRow> for ProductOut {
    fn from(r: ProductRow) -> Self {
        ProductOut {
            id: r.id,
            name: r.name,
            unit_amount: r.unit_amount,
            currency: r.currency,
            active: r.active,
            stock: r.stock,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Body of `POST /v1/shipping-methods`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingMethodIn {
    pub name: String,
    /// Minor units; 0 for free shipping.
    #[schema(minimum = 0)]
    pub amount: i64,
    #[schema(value_type = Currency)]
    pub currency: String,
    /// Default true.
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingMethodPatch {
    pub name: Option<String>,
    #[schema(minimum = 0)]
    pub amount: Option<i64>,
    #[schema(value_type = Option<Currency>)]
    pub currency: Option<String>,
    pub active: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShippingMethodOut {
    #[schema(value_type = crate::ids::ShippingMethodId)]
    pub id: String,
    pub name: String,
    /// Minor units.
    pub amount: i64,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ShippingMethodRow> for ShippingMethodOut {
    fn from(r: ShippingMethodRow) -> Self {
        ShippingMethodOut {
            id: r.id,
            name: r.name,
            amount: r.amount,
            currency: r.currency,
            active: r.active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCatalog {
    /// Only active entries (customer tokens always see only those).
    pub active: Option<bool>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One line of a cart: a catalog product and how many.
#[derive(Debug, Clone, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItemIn {
    /// A product id from the catalog, `prod_…`.
    #[schema(value_type = crate::ids::ProductId)]
    pub product_id: String,
    #[schema(minimum = 1, maximum = 10000)]
    #[schemars(range(min = 1, max = 10000))]
    pub quantity: i64,
}

/// A cart priced from the catalog now.
#[derive(Debug, Clone)]
pub struct PricedCart {
    pub currency: Currency,
    pub lines: Vec<PricedLine>,
    pub shipping: Option<(String, i64)>,
}

#[derive(Debug, Clone)]
pub struct PricedLine {
    pub product_id: String,
    pub name: String,
    pub unit_amount: i64,
    pub quantity: i64,
}

/// Who may read the catalog: the secret key and customer tokens.
fn reader(actor: &Actor) -> Result<bool> {
    match actor {
        Actor::Secret { .. } => Ok(true),
        Actor::Customer { .. } => Ok(false),
        Actor::Guest { .. } | Actor::Link { .. } => Err(Error::Unauthenticated),
    }
}

/// The `active` filter a list applies: customers see active entries only,
/// whatever they ask; the secret key gets what it asks for.
fn visible(secret: bool, asked: Option<bool>) -> Option<bool> {
    if secret {
        asked
    } else {
        Some(true)
    }
}

fn checked_amount(amount: i64, currency: Currency, free_ok: bool) -> Result<i64> {
    if free_ok && amount == 0 {
        return Ok(0);
    }
    if amount < 0 {
        return Err(Error::rule(
            RuleCode::AmountNegative,
            "amount must not be negative",
        ));
    }
    Ok(Money::new(amount, currency)?.minor())
}

fn checked_stock(stock: Option<i64>) -> Result<Option<i64>> {
    match stock {
        Some(s) if !(0..=1_000_000_000).contains(&s) => Err(Error::rule(
            RuleCode::FieldInvalid,
            "stock is between 0 and 1000000000",
        )),
        other => Ok(other),
    }
}

pub async fn create_product(ctx: &Ctx, actor: &Actor, body: ProductIn) -> Result<ProductOut> {
    actor.require_secret()?;
    let currency = Currency::parse(&body.currency)?;
    let now = ctx.now();
    let row = ProductRow {
        id: ProductId::generate().into(),
        account_id: actor.account().as_str().to_string(),
        name: validate::text("name", &body.name, 255)?.to_string(),
        unit_amount: checked_amount(body.unit_amount, currency, false)?,
        currency: currency.as_str().to_string(),
        active: body.active.unwrap_or(true),
        stock: checked_stock(body.stock)?,
        created_at: now,
        updated_at: now,
    };
    let mut h = ctx.store().acquire().await?;
    Ok(h.conn().insert_product(&row).await?.into())
}

async fn load_product(ctx: &Ctx, actor: &Actor, id: &str) -> Result<ProductRow> {
    let secret = reader(actor)?;
    let id = ProductId::parse(id).map_err(|_| Error::NotFound(Resource::Product))?;
    let mut h = ctx.store().acquire().await?;
    let row = h
        .conn()
        .get_product(actor.account(), id.as_str())
        .await?
        .ok_or(Error::NotFound(Resource::Product))?;
    // Customers see what they can buy.
    if !secret && !row.active {
        return Err(Error::NotFound(Resource::Product));
    }
    Ok(row)
}

pub async fn get_product(ctx: &Ctx, actor: &Actor, id: &str) -> Result<ProductOut> {
    Ok(load_product(ctx, actor, id).await?.into())
}

pub async fn update_product(
    ctx: &Ctx,
    actor: &Actor,
    id: &str,
    patch: ProductPatch,
) -> Result<ProductOut> {
    actor.require_secret()?;
    let mut row = load_product(ctx, actor, id).await?;
    if let Some(c) = &patch.currency {
        row.currency = Currency::parse(c)?.as_str().to_string();
    }
    let currency = Currency::parse(&row.currency)?;
    if let Some(name) = &patch.name {
        row.name = validate::text("name", name, 255)?.to_string();
    }
    if let Some(a) = patch.unit_amount {
        row.unit_amount = a;
    }
    row.unit_amount = checked_amount(row.unit_amount, currency, false)?;
    if let Some(active) = patch.active {
        row.active = active;
    }
    if let Some(stock) = patch.stock {
        row.stock = checked_stock(stock)?;
    }
    row.updated_at = ctx.now();
    let mut h = ctx.store().acquire().await?;
    Ok(h.conn()
        .update_product(&row)
        .await?
        .ok_or(Error::NotFound(Resource::Product))?
        .into())
}

pub async fn list_products(ctx: &Ctx, actor: &Actor, q: ListCatalog) -> Result<Page<ProductOut>> {
    let secret = reader(actor)?;
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut h = ctx.store().acquire().await?;
    let rows = h
        .conn()
        .list_products(
            actor.account(),
            visible(secret, q.active),
            before.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    })
    .map(ProductOut::from))
}

pub async fn create_shipping_method(
    ctx: &Ctx,
    actor: &Actor,
    body: ShippingMethodIn,
) -> Result<ShippingMethodOut> {
    actor.require_secret()?;
    let currency = Currency::parse(&body.currency)?;
    let now = ctx.now();
    let row = ShippingMethodRow {
        id: ShippingMethodId::generate().into(),
        account_id: actor.account().as_str().to_string(),
        name: validate::text("name", &body.name, 255)?.to_string(),
        amount: checked_amount(body.amount, currency, true)?,
        currency: currency.as_str().to_string(),
        active: body.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    let mut h = ctx.store().acquire().await?;
    Ok(h.conn().insert_shipping_method(&row).await?.into())
}

async fn load_shipping_method(ctx: &Ctx, actor: &Actor, id: &str) -> Result<ShippingMethodRow> {
    let secret = reader(actor)?;
    let id = ShippingMethodId::parse(id).map_err(|_| Error::NotFound(Resource::ShippingMethod))?;
    let mut h = ctx.store().acquire().await?;
    let row = h
        .conn()
        .get_shipping_method(actor.account(), id.as_str())
        .await?
        .ok_or(Error::NotFound(Resource::ShippingMethod))?;
    if !secret && !row.active {
        return Err(Error::NotFound(Resource::ShippingMethod));
    }
    Ok(row)
}

pub async fn get_shipping_method(ctx: &Ctx, actor: &Actor, id: &str) -> Result<ShippingMethodOut> {
    Ok(load_shipping_method(ctx, actor, id).await?.into())
}

pub async fn update_shipping_method(
    ctx: &Ctx,
    actor: &Actor,
    id: &str,
    patch: ShippingMethodPatch,
) -> Result<ShippingMethodOut> {
    actor.require_secret()?;
    let mut row = load_shipping_method(ctx, actor, id).await?;
    if let Some(c) = &patch.currency {
        row.currency = Currency::parse(c)?.as_str().to_string();
    }
    let currency = Currency::parse(&row.currency)?;
    if let Some(name) = &patch.name {
        row.name = validate::text("name", name, 255)?.to_string();
    }
    if let Some(a) = patch.amount {
        row.amount = a;
    }
    row.amount = checked_amount(row.amount, currency, true)?;
    if let Some(active) = patch.active {
        row.active = active;
    }
    row.updated_at = ctx.now();
    let mut h = ctx.store().acquire().await?;
    Ok(h.conn()
        .update_shipping_method(&row)
        .await?
        .ok_or(Error::NotFound(Resource::ShippingMethod))?
        .into())
}

pub async fn list_shipping_methods(
    ctx: &Ctx,
    actor: &Actor,
    q: ListCatalog,
) -> Result<Page<ShippingMethodOut>> {
    let secret = reader(actor)?;
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut h = ctx.store().acquire().await?;
    let rows = h
        .conn()
        .list_shipping_methods(
            actor.account(),
            visible(secret, q.active),
            before.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    })
    .map(ShippingMethodOut::from))
}

/// Prices `items` (and the shipping method) from the catalog as it is now,
/// on `conn` (the caller's transaction, so the order is written from the
/// prices read). `currency`, when the caller named one, must be the
/// products'. Distinct codes for what a caller can fix: an unknown
/// product, an inactive one, a currency mix, too few in stock, an unknown
/// or inactive shipping method.
pub async fn price_cart(
    conn: &mut Conn<'_>,
    actor: &Actor,
    items: &[CartItemIn],
    shipping_method_id: Option<&str>,
    currency: Option<Currency>,
) -> Result<PricedCart> {
    if items.is_empty() || items.len() > 200 {
        return Err(Error::rule(
            RuleCode::InvalidLineItems,
            "a cart has 1 to 200 items",
        ));
    }
    let account = actor.account();
    let mut lines: Vec<PricedLine> = Vec::with_capacity(items.len());
    let mut cart_currency = currency;
    for item in items {
        if !(1..=10_000).contains(&item.quantity) {
            return Err(Error::rule(
                RuleCode::InvalidQuantity,
                "quantity must be between 1 and 10000",
            ));
        }
        let unknown = || {
            Error::rule(
                RuleCode::UnknownProduct,
                format!("no product {:?} in the catalog", excerpt(&item.product_id)),
            )
        };
        let id = ProductId::parse(&item.product_id).map_err(|_| unknown())?;
        let product = conn
            .get_product(account, id.as_str())
            .await?
            .ok_or_else(unknown)?;
        if !product.active {
            return Err(Error::rule(
                RuleCode::ProductInactive,
                format!("{} ({}) is not for sale", product.name, product.id),
            ));
        }
        let c = Currency::parse(&product.currency)?;
        match cart_currency {
            Some(have) if have != c => {
                return Err(Error::rule(
                    RuleCode::CartCurrencyMixed,
                    format!(
                        "{} is priced in {}, the cart in {}",
                        product.id,
                        c.as_str(),
                        have.as_str()
                    ),
                ))
            }
            _ => cart_currency = Some(c),
        }
        let wanted: i64 = lines
            .iter()
            .filter(|l| l.product_id == product.id)
            .map(|l| l.quantity)
            .sum::<i64>()
            + item.quantity;
        if let Some(stock) = product.stock {
            if wanted > stock {
                return Err(Error::rule(
                    RuleCode::InsufficientStock,
                    format!(
                        "{} has {stock} left, the cart asks for {wanted}",
                        product.id
                    ),
                ));
            }
        }
        lines.push(PricedLine {
            product_id: product.id,
            name: product.name,
            unit_amount: product.unit_amount,
            quantity: item.quantity,
        });
    }
    let currency = cart_currency.ok_or_else(|| Error::internal("a priced cart has a currency"))?;
    let shipping = match shipping_method_id {
        None => None,
        Some(id) => {
            let unknown = || {
                Error::rule(
                    RuleCode::UnknownShippingMethod,
                    format!("no shipping method {:?}", excerpt(id)),
                )
            };
            let sid = ShippingMethodId::parse(id).map_err(|_| unknown())?;
            let method = conn
                .get_shipping_method(account, sid.as_str())
                .await?
                .ok_or_else(unknown)?;
            if !method.active {
                return Err(Error::rule(
                    RuleCode::ShippingMethodInactive,
                    format!("{} ({}) is not offered", method.name, method.id),
                ));
            }
            if Currency::parse(&method.currency)? != currency {
                return Err(Error::rule(
                    RuleCode::CartCurrencyMixed,
                    format!(
                        "{} is priced in {}, the cart in {}",
                        method.id,
                        method.currency,
                        currency.as_str()
                    ),
                ));
            }
            Some((method.name, method.amount))
        }
    };
    Ok(PricedCart {
        currency,
        lines,
        shipping,
    })
}

/// At most 64 characters of a caller's text in a message.
fn excerpt(s: &str) -> String {
    s.chars().take(64).collect()
}
