//! `/v1/account` (the account a request acts for) and the platform's
//! `/v1/accounts`: connected accounts, made by the OAuth consent page or
//! created here without OAuth.

use serde_json::{json, Value};

use crate::connect::{deauthorized, new_account};
use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::form::{apply_metadata, Params};
use crate::ids;
use crate::store::{self, Filter};

/// `GET /v1/account`: the platform's account, or with `Stripe-Account` (or
/// a connected account's key) that connected account.
pub async fn current(ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    match ctx.account.clone() {
        None => Ok(super::platform_account(&ctx.app.account_id)),
        Some(a) => match store::get_object(&mut ctx.tx, &a).await? {
            Some((_, v)) => Ok(v),
            None => Err(ApiError::no_such("account", &a, None)),
        },
    }
}

pub async fn retrieve(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    if ctx.account.as_deref() == Some(id) || (ctx.account.is_none() && id == ctx.app.account_id) {
        return current(ctx).await;
    }
    match ctx.load("account", id, None).await {
        Ok(v) if !deauthorized(&v) => Ok(v),
        _ => Err(ApiError::no_such("account", id, None)),
    }
}

pub async fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "limit",
        "starting_after",
        "ending_before",
        "created",
        "expand",
    ])?;
    let filters = vec![Filter::Json("$._status", "connected".into())];
    ctx.list("account", filters, p, "/v1/accounts").await
}

/// `POST /v1/accounts`: a connected account the platform creates itself.
pub async fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "type",
        "country",
        "email",
        "business_profile",
        "business_type",
        "capabilities",
        "default_currency",
        "metadata",
        "expand",
    ])?;
    if ctx.account.is_some() {
        return Err(ApiError::invalid(
            "You cannot create connected accounts on behalf of a connected account.",
        ));
    }
    let kind = p
        .choice("type", &["standard", "express", "custom"])?
        .ok_or_else(|| ApiError::missing_param("type"))?;
    let name = p
        .obj("business_profile")?
        .and_then(|b| b.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let id = ids::new_id("acct");
    let name = name.unwrap_or_else(|| format!("Sandbox account {}", &id[id.len() - 4..]));
    let mut a = new_account(
        super::platform_account(&ctx.app.account_id),
        &id,
        &name,
        p.nonempty("email")?,
        ctx.now,
    );
    a["type"] = json!(kind);
    if let Some(c) = p.nonempty("country")? {
        a["country"] = json!(c.to_uppercase());
    }
    if let Some(c) = p.nonempty("default_currency")? {
        a["default_currency"] = json!(c.to_lowercase());
    }
    if let Some(t) = p.nonempty("business_type")? {
        a["business_type"] = json!(t);
    }
    apply_metadata(&mut a["metadata"], p)?;
    ctx.put(&a).await?;
    Ok(a)
}
