//! `/v1/products` and `/v1/prices`: enough of the catalogue for
//! subscriptions and invoice items, including the inline `price_data`
//! those take (which creates an inactive price, as Stripe does).

use serde_json::{json, Map, Value};

use super::payment_intents::parse_currency;
use crate::ctx::{diff, s, Ctx};
use crate::error::ApiError;
use crate::form::{apply_metadata, bool_at, int_at, str_at, Params};
use crate::ids;
use crate::store::Filter;

fn new_product(ctx: &Ctx<'_>, name: &str) -> Value {
    json!({
        "id": format!("prod_{}", ids::random(14)),
        "object": "product",
        "active": true,
        "created": ctx.now,
        "default_price": null,
        "description": null,
        "features": [],
        "images": [],
        "livemode": false,
        "metadata": {},
        "name": name,
        "package_dimensions": null,
        "shippable": null,
        "statement_descriptor": null,
        "tax_code": null,
        "unit_label": null,
        "updated": ctx.now,
        "url": null,
    })
}

pub async fn create_product(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "name",
        "id",
        "active",
        "description",
        "metadata",
        "statement_descriptor",
        "unit_label",
        "url",
        "images",
        "shippable",
        "tax_code",
        "default_price_data",
    ])?;
    let name = p.required("name")?;
    let mut prod = new_product(ctx, name);
    if let Some(id) = p.nonempty("id")? {
        if ctx.find(id).await?.is_some() {
            return Err(ApiError::invalid(format!("Product already exists: {id}"))
                .param("id")
                .code("resource_already_exists"));
        }
        prod["id"] = json!(id);
    }
    apply_product(&mut prod, p)?;
    ctx.put(&prod).await?;
    ctx.emit("product.created", &prod, None).await?;
    if let Some(dp) = p.obj("default_price_data")? {
        let price = price_from(ctx, dp, &s(&prod, "id"), "default_price_data", true).await?;
        prod["default_price"] = price["id"].clone();
        ctx.put(&prod).await?;
    }
    Ok(prod)
}

fn apply_product(prod: &mut Value, p: &Params) -> Result<(), ApiError> {
    for key in [
        "name",
        "description",
        "statement_descriptor",
        "unit_label",
        "url",
    ] {
        if let Some(v) = p.str(key)? {
            prod[key] = if v.is_empty() { Value::Null } else { json!(v) };
        }
    }
    if let Some(a) = p.bool("active")? {
        prod["active"] = json!(a);
    }
    if let Some(sh) = p.bool("shippable")? {
        prod["shippable"] = json!(sh);
    }
    if let Some(images) = p.list("images")? {
        prod["images"] = json!(images);
    }
    apply_metadata(&mut prod["metadata"], p)
}

pub async fn update_product(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "name",
        "active",
        "description",
        "metadata",
        "statement_descriptor",
        "unit_label",
        "url",
        "images",
        "shippable",
        "default_price",
    ])?;
    let mut prod = ctx.load("product", id, None).await?;
    let before = prod.clone();
    apply_product(&mut prod, p)?;
    if let Some(dp) = p.nonempty("default_price")? {
        let price = ctx.load("price", dp, Some("default_price")).await?;
        if s(&price, "product") != id {
            return Err(ApiError::invalid(format!(
                "The price {dp} does not belong to product {id}."
            ))
            .param("default_price"));
        }
        prod["default_price"] = json!(dp);
    }
    if prod != before {
        prod["updated"] = json!(ctx.now);
        ctx.put(&prod).await?;
        ctx.emit("product.updated", &prod, Some(diff(&before, &prod)))
            .await?;
    }
    Ok(prod)
}

pub async fn list_products(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "limit",
        "starting_after",
        "ending_before",
        "created",
        "active",
    ])?;
    let mut filters = Vec::new();
    if let Some(a) = p.bool("active")? {
        filters.push(Filter::JsonInt("$.active", i64::from(a)));
    }
    ctx.list("product", filters, p, "/v1/products").await
}

/// `recurring[interval|interval_count]` → Stripe's `recurring` hash.
fn recurring_from(m: &Map<String, Value>, param: &str) -> Result<Value, ApiError> {
    let interval = str_at(m.get("interval"), &format!("{param}[interval]"))?
        .ok_or_else(|| ApiError::missing_param(&format!("{param}[interval]")))?;
    if !["day", "week", "month", "year"].contains(&interval) {
        return Err(ApiError::invalid(format!(
            "Invalid {param}[interval]: must be one of day, week, month, or year"
        ))
        .param(&format!("{param}[interval]")));
    }
    let count = int_at(m.get("interval_count"), &format!("{param}[interval_count]"))?.unwrap_or(1);
    // Stripe's limit: at most one year (12 months, 52 weeks, 365 days).
    let max = match interval {
        "day" => 365,
        "week" => 52,
        "month" => 12,
        _ => 1,
    };
    if !(1..=max).contains(&count) {
        return Err(ApiError::invalid(
            "The maximum billing frequency is one year (1 year, 12 months, 52 weeks or 365 days).",
        )
        .param(&format!("{param}[interval_count]")));
    }
    Ok(
        json!({"aggregate_usage": null, "interval": interval, "interval_count": count, "usage_type": "licensed"}),
    )
}

/// Builds and stores a price from `/v1/prices` parameters or an inline
/// `price_data` hash (`param` names it in errors). `product` is the
/// product id (or empty: then `product` / `product_data[name]` inside `m`).
pub async fn price_from(
    ctx: &mut Ctx<'_>,
    m: &Map<String, Value>,
    product: &str,
    param: &str,
    active: bool,
) -> Result<Value, ApiError> {
    let at = |k: &str| {
        if param.is_empty() {
            k.to_string()
        } else {
            format!("{param}[{k}]")
        }
    };
    let mut cur = Map::new();
    cur.insert(
        "currency".into(),
        m.get("currency").cloned().unwrap_or(Value::Null),
    );
    let currency = parse_currency(&Params(cur)).map_err(|e| e.param(&at("currency")))?;
    let unit_amount = match int_at(m.get("unit_amount"), &at("unit_amount"))? {
        Some(a) => a,
        None => match str_at(m.get("unit_amount_decimal"), &at("unit_amount_decimal"))? {
            Some(d) => d
                .split('.')
                .next()
                .unwrap_or("0")
                .parse::<i64>()
                .map_err(|_| {
                    ApiError::invalid(format!("Invalid decimal: {d}"))
                        .param(&at("unit_amount_decimal"))
                })?,
            None => return Err(ApiError::missing_param(&at("unit_amount"))),
        },
    };
    if unit_amount < 0 {
        return Err(
            ApiError::invalid("This value must be greater than or equal to 0.")
                .param(&at("unit_amount")),
        );
    }
    if unit_amount > 99_999_999 {
        return Err(
            ApiError::invalid("This value must be less than or equal to 99999999.")
                .param(&at("unit_amount")),
        );
    }
    if ["bhd", "jod", "kwd", "omr", "tnd"].contains(&currency.as_str()) && unit_amount % 10 != 0 {
        return Err(ApiError::invalid(format!(
            "Amounts in {} must be a multiple of 10 (the last digit of a three-decimal currency amount must be 0).",
            currency.to_uppercase()
        ))
        .param(&at("unit_amount"))
        .code("invalid_amount"));
    }
    let product = if !product.is_empty() {
        product.to_string()
    } else if let Some(id) = str_at(m.get("product"), &at("product"))?.filter(|v| !v.is_empty()) {
        ctx.load("product", id, Some(&at("product"))).await?;
        id.to_string()
    } else if let Some(pd) = m.get("product_data").and_then(Value::as_object) {
        let name = str_at(pd.get("name"), &format!("{}[name]", at("product_data")))?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::missing_param(&format!("{}[name]", at("product_data"))))?;
        let prod = new_product(ctx, name);
        ctx.put(&prod).await?;
        ctx.emit("product.created", &prod, None).await?;
        s(&prod, "id")
    } else {
        return Err(ApiError::missing_param(&at("product")));
    };
    let recurring = match m.get("recurring") {
        Some(Value::Object(r)) => Some(recurring_from(r, &at("recurring"))?),
        _ => None,
    };
    let mut price = json!({
        "id": ids::new_id("price"),
        "object": "price",
        "active": bool_at(m.get("active"), &at("active"))?.unwrap_or(active),
        "billing_scheme": "per_unit",
        "created": ctx.now,
        "currency": currency,
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": str_at(m.get("lookup_key"), &at("lookup_key"))?,
        "metadata": {},
        "nickname": str_at(m.get("nickname"), &at("nickname"))?,
        "product": product,
        "recurring": recurring,
        "tax_behavior": str_at(m.get("tax_behavior"), &at("tax_behavior"))?.unwrap_or("unspecified"),
        "tiers_mode": null,
        "transform_quantity": null,
        "type": if recurring.is_some() { "recurring" } else { "one_time" },
        "unit_amount": unit_amount,
        "unit_amount_decimal": unit_amount.to_string(),
    });
    if param.is_empty() {
        let mut md = Map::new();
        if let Some(v) = m.get("metadata") {
            md.insert("metadata".into(), v.clone());
        }
        apply_metadata(&mut price["metadata"], &Params(md))?;
    }
    ctx.put(&price).await?;
    // Inline prices are not announced (Stripe hides them); catalogue prices are.
    if param.is_empty() || param == "default_price_data" {
        ctx.emit("price.created", &price, None).await?;
    }
    Ok(price)
}

pub async fn create_price(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "currency",
        "unit_amount",
        "unit_amount_decimal",
        "product",
        "product_data",
        "recurring",
        "active",
        "metadata",
        "nickname",
        "lookup_key",
        "tax_behavior",
        "billing_scheme",
    ])?;
    if let Some(b) = p.choice("billing_scheme", &["per_unit", "tiered"])? {
        if b == "tiered" {
            return Err(
                ApiError::invalid("The sandbox supports only billing_scheme=per_unit.")
                    .param("billing_scheme"),
            );
        }
    }
    price_from(ctx, &p.0, "", "", true).await
}

pub async fn update_price(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["active", "metadata", "nickname", "lookup_key"])?;
    let mut price = ctx.load("price", id, None).await?;
    let before = price.clone();
    if let Some(a) = p.bool("active")? {
        price["active"] = json!(a);
    }
    for key in ["nickname", "lookup_key"] {
        if let Some(v) = p.str(key)? {
            price[key] = if v.is_empty() { Value::Null } else { json!(v) };
        }
    }
    apply_metadata(&mut price["metadata"], p)?;
    if price != before {
        ctx.put(&price).await?;
        ctx.emit("price.updated", &price, Some(diff(&before, &price)))
            .await?;
    }
    Ok(price)
}

pub async fn list_prices(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "limit",
        "starting_after",
        "ending_before",
        "created",
        "active",
        "product",
        "type",
        "currency",
    ])?;
    let mut filters = Vec::new();
    if let Some(a) = p.bool("active")? {
        filters.push(Filter::JsonInt("$.active", i64::from(a)));
    }
    if let Some(prod) = p.nonempty("product")? {
        filters.push(Filter::Json("$.product", prod.to_string()));
    }
    if let Some(t) = p.choice("type", &["one_time", "recurring"])? {
        filters.push(Filter::Json("$.type", t));
    }
    if let Some(c) = p.nonempty("currency")? {
        filters.push(Filter::Json("$.currency", c.to_lowercase()));
    }
    ctx.list("price", filters, p, "/v1/prices").await
}

/// The price of one subscription item or invoice item: `price` (an id)
/// or inline `price_data`.
pub async fn price_param(
    ctx: &mut Ctx<'_>,
    m: &Map<String, Value>,
    prefix: &str,
) -> Result<Option<Value>, ApiError> {
    let at = |k: &str| format!("{prefix}{k}");
    if let Some(id) = str_at(m.get("price"), &at("price"))?.filter(|v| !v.is_empty()) {
        return Ok(Some(ctx.load("price", id, Some(&at("price"))).await?));
    }
    match m.get("price_data") {
        Some(Value::Object(pd)) => {
            let param = at("price_data");
            Ok(Some(price_from(ctx, pd, "", &param, false).await?))
        }
        _ => Ok(None),
    }
}
