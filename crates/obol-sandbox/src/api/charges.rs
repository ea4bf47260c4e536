//! `/v1/charges`: charges are made by confirms; here they are read, listed
//! and their metadata/description updated.

use serde_json::{json, Value};

use crate::ctx::{diff, Ctx};
use crate::error::ApiError;
use crate::form::{apply_metadata, Params};
use crate::store::Filter;

pub async fn update(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "description",
        "metadata",
        "receipt_email",
        "fraud_details",
        "shipping",
        "transfer_group",
    ])?;
    let mut ch = ctx.load("charge", id, None).await?;
    let before = ch.clone();
    for key in ["description", "receipt_email"] {
        if let Some(v) = p.str(key)? {
            ch[key] = if v.is_empty() { Value::Null } else { json!(v) };
        }
    }
    apply_metadata(&mut ch["metadata"], p)?;
    if ch != before {
        ctx.put(&ch).await?;
        ctx.emit("charge.updated", &ch, Some(diff(&before, &ch)))
            .await?;
    }
    Ok(ch)
}

pub async fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "payment_intent",
        "limit",
        "starting_after",
        "ending_before",
        "created",
        "transfer_group",
    ])?;
    let mut filters = Vec::new();
    if let Some(c) = p.nonempty("customer")? {
        filters.push(Filter::Eq("customer", c.to_string()));
    }
    if let Some(pi) = p.nonempty("payment_intent")? {
        filters.push(Filter::Eq("payment_intent", pi.to_string()));
    }
    ctx.list("charge", filters, p, "/v1/charges").await
}
