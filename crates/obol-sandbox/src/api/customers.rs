//! `/v1/customers`: create, retrieve, update, list, delete. A customer's
//! `invoice_settings.default_payment_method` must be attached to it.

use serde_json::{json, Value};

use super::payment_methods;
use crate::ctx::{diff, s, Ctx};
use crate::error::ApiError;
use crate::form::{apply_metadata, Params};
use crate::ids;
use crate::store::Filter;

const FIELDS: &[&str] = &[
    "email",
    "name",
    "description",
    "phone",
    "metadata",
    "payment_method",
    "invoice_settings",
    "address",
    "shipping",
    "preferred_locales",
    "tax_exempt",
    "balance",
    "invoice_prefix",
    "test_clock",
];

fn address(m: Option<&serde_json::Map<String, Value>>) -> Value {
    match m {
        None => Value::Null,
        Some(m) => {
            let f = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            json!({"city": f("city"), "country": f("country"), "line1": f("line1"), "line2": f("line2"),
                   "postal_code": f("postal_code"), "state": f("state")})
        }
    }
}

async fn apply(ctx: &mut Ctx<'_>, c: &mut Value, p: &Params) -> Result<(), ApiError> {
    for key in ["email", "name", "description", "phone"] {
        if let Some(v) = p.str(key)? {
            c[key] = if v.is_empty() {
                Value::Null
            } else {
                Value::String(v.into())
            };
        }
    }
    if let Some(v) = p.str("email")? {
        if !v.is_empty() && (!v.contains('@') || v.len() > 512) {
            return Err(ApiError::invalid(format!("Invalid email address: {v}"))
                .param("email")
                .code("email_invalid"));
        }
    }
    if let Some(b) = p.int("balance")? {
        c["balance"] = json!(b);
    }
    if let Some(t) = p.choice("tax_exempt", &["none", "exempt", "reverse"])? {
        c["tax_exempt"] = json!(t);
    }
    if let Some(l) = p.list("preferred_locales")? {
        c["preferred_locales"] = json!(l);
    }
    if p.has("address") {
        c["address"] = address(p.obj("address")?);
    }
    if p.has("shipping") {
        c["shipping"] = match p.obj("shipping")? {
            None => Value::Null,
            Some(m) => {
                let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() {
                    return Err(ApiError::missing_param("shipping[name]"));
                }
                json!({"address": address(m.get("address").and_then(Value::as_object)), "name": name,
                       "phone": m.get("phone").and_then(Value::as_str)})
            }
        };
    }
    apply_metadata(&mut c["metadata"], p)?;
    if let Some(is) = p.obj("invoice_settings")? {
        if let Some(pm) = crate::form::str_at(
            is.get("default_payment_method"),
            "invoice_settings[default_payment_method]",
        )? {
            if pm.is_empty() {
                c["invoice_settings"]["default_payment_method"] = Value::Null;
            } else {
                let attached = match ctx.find(pm).await? {
                    Some(v) => {
                        s(&v, "object") == "payment_method"
                            && v.get("customer").and_then(Value::as_str)
                                == c.get("id").and_then(Value::as_str)
                    }
                    None => false,
                };
                if !attached {
                    return Err(ApiError::invalid(format!(
                        "The customer does not have a payment method with the ID {pm}. The payment method must be attached to the customer."
                    ))
                    .param("invoice_settings[default_payment_method]")
                    .code("resource_missing"));
                }
                c["invoice_settings"]["default_payment_method"] = json!(pm);
            }
        }
    }
    Ok(())
}

pub async fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(FIELDS)?;
    // A customer on a test clock lives in the clock's time from the start.
    let clock = match p.nonempty("test_clock")? {
        Some(tc) => {
            let clock = ctx
                .load(super::billing::CLOCK, tc, Some("test_clock"))
                .await?;
            ctx.now = crate::ctx::i(&clock, "frozen_time");
            Some(tc.to_string())
        }
        None => None,
    };
    let id = ids::new_id("cus");
    let mut c = json!({
        "id": id, "object": "customer", "address": null, "balance": 0, "created": ctx.now,
        "currency": null, "default_source": null, "delinquent": false, "description": null,
        "discount": null, "email": null,
        "invoice_prefix": ids::random(8).to_uppercase(),
        "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null},
        "livemode": false, "metadata": {}, "name": null, "next_invoice_sequence": 1, "phone": null,
        "preferred_locales": [], "shipping": null, "tax_exempt": "none", "test_clock": clock
    });
    let mut rest = Params(p.0.clone());
    let invoice_settings = rest.0.remove("invoice_settings");
    rest.0.remove("test_clock");
    apply(ctx, &mut c, &rest).await?;
    ctx.put(&c).await?;
    let mut attached = None;
    if let Some(pm) = p.nonempty("payment_method")? {
        let token = pm.to_string();
        let pm = payment_methods::resolve(ctx, pm, "payment_method").await?;
        let pm = payment_methods::attach_to(ctx, pm, &id).await?;
        attached = Some((token, s(&pm, "id")));
    }
    if let Some(mut is) = invoice_settings {
        // `payment_method=pm_card_visa&invoice_settings[default_payment_method]=pm_card_visa`
        // names the payment method just materialised from the token.
        if let (Some((token, pm_id)), Some(d)) = (&attached, is.get_mut("default_payment_method")) {
            if d.as_str() == Some(token.as_str()) {
                *d = Value::String(pm_id.clone());
            }
        }
        let mut only = serde_json::Map::new();
        only.insert("invoice_settings".into(), is);
        apply(ctx, &mut c, &Params(only)).await?;
        ctx.put(&c).await?;
    }
    ctx.emit("customer.created", &c, None).await?;
    Ok(c)
}

pub async fn retrieve(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    match ctx.find(id).await? {
        Some(v) if s(&v, "object") == "customer" => Ok(v),
        _ => Err(ApiError::no_such("customer", id, None)),
    }
}

pub async fn update(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(FIELDS)?;
    let mut c = ctx.load("customer", id, None).await?;
    let before = c.clone();
    if let Some(pm) = p.nonempty("payment_method")? {
        let pm = payment_methods::resolve(ctx, pm, "payment_method").await?;
        payment_methods::attach_to(ctx, pm, id).await?;
    }
    apply(ctx, &mut c, p).await?;
    if c != before {
        ctx.put(&c).await?;
        ctx.emit("customer.updated", &c, Some(diff(&before, &c)))
            .await?;
    }
    Ok(c)
}

pub async fn delete(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let c = ctx.load("customer", id, None).await?;
    let stub = json!({"id": id, "object": "customer", "deleted": true, "created": c["created"]});
    ctx.put(&stub).await?;
    ctx.emit("customer.deleted", &c, None).await?;
    Ok(json!({"id": id, "object": "customer", "deleted": true}))
}

pub async fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "limit",
        "starting_after",
        "ending_before",
        "created",
        "email",
        "test_clock",
    ])?;
    let mut filters = Vec::new();
    if let Some(email) = p.nonempty("email")? {
        filters.push(Filter::Json("$.email", email.to_string()));
    }
    ctx.list("customer", filters, p, "/v1/customers").await
}
