//! Shared payment tokens (`spt_…`): the limited-use reference to a buyer's
//! PaymentMethod an AI agent grants a seller (Agentic Commerce Protocol).
//!
//! - `POST /v1/test_helpers/shared_payment/granted_tokens`: what an agent
//!   would grant, made by the seller in test mode (`payment_method`,
//!   `usage_limits[currency|max_amount|expires_at]`, `customer`,
//!   `shared_metadata`);
//! - `GET /v1/shared_payment/granted_tokens/{id}`;
//! - `POST /v1/test_helpers/shared_payment/granted_tokens/{id}/revoke`;
//! - a PaymentIntent confirmed with
//!   `payment_method_data[shared_payment_granted_token]=spt_…` charges the
//!   token's card, refused (400, nothing charged) above `max_amount`, in
//!   another currency, after `expires_at`, once revoked, or once consumed.
//!
//! Field names follow Stripe's reference for the `2026-04-22.preview` API
//! (`shared_payment.granted_token`: `usage_limits`, `usage_details`,
//! `deactivated_at`, `deactivated_reason` ∈ consumed | expired | resolved |
//! revoked), which the copied OpenAPI spec (2023-08-16) predates. What the
//! reference does not show is marked "unconfirmed" below: the error codes
//! of a refused use, and that one successful authorization consumes a
//! token (agents set `max_amount` to the one purchase's total).

use serde_json::{json, Value};

use crate::ctx::{i, s, Ctx};
use crate::error::ApiError;
use crate::form::{int_at, str_at, Params};
use crate::ids;

use super::payment_intents;

pub const OBJECT: &str = "shared_payment.granted_token";
/// The parameter a PaymentIntent names the token with.
pub const PARAM: &str = "payment_method_data[shared_payment_granted_token]";

/// `POST /v1/test_helpers/shared_payment/granted_tokens`.
pub async fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "payment_method",
        "usage_limits",
        "customer",
        "shared_metadata",
        "seller_details",
    ])?;
    let pm_id = p.required("payment_method")?;
    let pm = super::payment_methods::resolve(ctx, pm_id, "payment_method").await?;
    let limits = p
        .obj("usage_limits")?
        .ok_or_else(|| ApiError::missing_param("usage_limits"))?;
    let currency = str_at(limits.get("currency"), "usage_limits[currency]")?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::missing_param("usage_limits[currency]"))?
        .to_lowercase();
    let currency_params = Params(
        [("currency".to_string(), json!(currency))]
            .into_iter()
            .collect(),
    );
    payment_intents::parse_currency(&currency_params)
        .map_err(|e| e.param("usage_limits[currency]"))?;
    let max_amount = int_at(limits.get("max_amount"), "usage_limits[max_amount]")?
        .ok_or_else(|| ApiError::missing_param("usage_limits[max_amount]"))?;
    if max_amount < 1 {
        return Err(
            ApiError::invalid("This value must be greater than or equal to 1.")
                .param("usage_limits[max_amount]"),
        );
    }
    let expires_at = int_at(limits.get("expires_at"), "usage_limits[expires_at]")?;
    let customer = match p.nonempty("customer")? {
        Some(c) => {
            ctx.load("customer", c, Some("customer")).await?;
            Some(c.to_string())
        }
        None => None,
    };
    let mut shared_metadata = json!({});
    if let Some(m) = p.obj("shared_metadata")? {
        for (k, v) in m {
            shared_metadata[k] = v.clone();
        }
    }
    let card = &pm["card"];
    let token = json!({
        "id": ids::new_id("spt"),
        "object": OBJECT,
        "agent_details": {"network_business_profile": format!("profile_test_{}", ids::random(24))},
        "created": ctx.now,
        "customer": customer,
        "deactivated_at": null,
        "deactivated_reason": null,
        "livemode": false,
        "payment_method_details": {
            "type": "card",
            "billing_details": pm["billing_details"],
            "card": {
                "brand": card["brand"],
                "country": card["country"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "funding": card["funding"],
                "last4": card["last4"],
            },
        },
        "risk_details": null,
        "shared_metadata": shared_metadata,
        "usage_details": {"amount_captured": {"currency": currency, "value": 0}},
        "usage_limits": {"currency": currency, "expires_at": expires_at, "max_amount": max_amount},
        "_payment_method": pm["id"],
    });
    ctx.put(&token).await?;
    Ok(token)
}

/// A token as it is now: one past its `expires_at` is deactivated
/// (`expired`) when next read.
async fn load_current(ctx: &mut Ctx<'_>, id: &str, param: Option<&str>) -> Result<Value, ApiError> {
    let mut token = ctx.load(OBJECT, id, param).await?;
    let expires = token["usage_limits"]["expires_at"].as_i64();
    if token["deactivated_reason"].is_null() && expires.is_some_and(|t| t <= ctx.now) {
        token["deactivated_reason"] = json!("expired");
        token["deactivated_at"] = json!(expires);
        ctx.put(&token).await?;
    }
    Ok(token)
}

/// `GET /v1/shared_payment/granted_tokens/{id}`.
pub async fn retrieve(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    load_current(ctx, id, None).await
}

/// `POST /v1/test_helpers/shared_payment/granted_tokens/{id}/revoke`: what
/// the agent does when the buyer withdraws the grant.
pub async fn revoke(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[])?;
    let mut token = load_current(ctx, id, None).await?;
    if !token["deactivated_reason"].is_null() {
        // unconfirmed: Stripe's answer to revoking a deactivated token.
        return Err(ApiError::invalid(format!(
            "This SharedPaymentGrantedToken is already deactivated ({}).",
            s(&token, "deactivated_reason")
        ))
        .code("shared_payment_granted_token_deactivated"));
    }
    token["deactivated_reason"] = json!("revoked");
    token["deactivated_at"] = json!(ctx.now);
    ctx.put(&token).await?;
    Ok(token)
}

/// The token a confirm names and its PaymentMethod.
pub async fn resolve(ctx: &mut Ctx<'_>, id: &str) -> Result<(Value, Value), ApiError> {
    let token = load_current(ctx, id, Some(PARAM)).await?;
    let pm = ctx
        .load("payment_method", &s(&token, "_payment_method"), Some(PARAM))
        .await?;
    Ok((token, pm))
}

/// Refuses a use of `token` for `amount` `currency` the grant does not
/// cover. Checked before any charge attempt, so a refusal charges nothing.
/// The codes are unconfirmed (Stripe's reference shows none).
pub fn check_use(token: &Value, amount: i64, currency: &str) -> Result<(), ApiError> {
    let refuse =
        |code: &str, message: String| Err(ApiError::invalid(message).param(PARAM).code(code));
    match token["deactivated_reason"].as_str() {
        None => {}
        Some("expired") => {
            return refuse(
                "shared_payment_granted_token_expired",
                "This SharedPaymentGrantedToken has expired and can no longer be used to confirm a PaymentIntent.".into(),
            )
        }
        Some(reason) => {
            return refuse(
                "shared_payment_granted_token_deactivated",
                format!("This SharedPaymentGrantedToken has been deactivated ({reason}) and can no longer be used."),
            )
        }
    }
    let limits = &token["usage_limits"];
    let allowed = s(limits, "currency");
    if allowed != currency {
        return refuse(
            "shared_payment_granted_token_currency_mismatch",
            format!("This SharedPaymentGrantedToken can only be used for {allowed} payments, not {currency}."),
        );
    }
    let max = i(limits, "max_amount");
    let used = i(&token["usage_details"]["amount_captured"], "value");
    if amount > max - used {
        return refuse(
            "shared_payment_granted_token_limit_exceeded",
            format!(
                "The amount ({}) exceeds what this SharedPaymentGrantedToken allows ({}).",
                payment_intents::format_amount(amount, currency),
                payment_intents::format_amount(max - used, currency)
            ),
        );
    }
    Ok(())
}

/// A use succeeded (authorized or charged): the token is consumed
/// (unconfirmed: one authorization deactivates it) and the intent
/// remembers it, so its capture is counted in `usage_details`.
pub async fn record_authorization(ctx: &mut Ctx<'_>, token_id: &str) -> Result<(), ApiError> {
    let mut token = ctx.load(OBJECT, token_id, None).await?;
    if token["deactivated_reason"].is_null() {
        token["deactivated_reason"] = json!("consumed");
        token["deactivated_at"] = json!(ctx.now);
        ctx.put(&token).await?;
    }
    Ok(())
}

/// `amount` was captured from an intent confirmed with the token.
pub async fn record_capture(
    ctx: &mut Ctx<'_>,
    token_id: &str,
    amount: i64,
) -> Result<(), ApiError> {
    let mut token = ctx.load(OBJECT, token_id, None).await?;
    let used = i(&token["usage_details"]["amount_captured"], "value");
    token["usage_details"]["amount_captured"]["value"] = json!(used + amount);
    ctx.put(&token).await?;
    Ok(())
}
