//! `/v1/setup_intents`: save a card for later. 3-D Secure cards go through
//! `requires_action`; success with a customer attaches the payment method
//! and marks it set up (so `authenticationRequiredOnSetup` stops asking).

use serde_json::{json, Value};

use super::payment_intents::next_action;
use super::payment_methods;
use crate::cards::{self, Behaviour};
use crate::ctx::{render, s, Ctx};
use crate::error::ApiError;
use crate::form::{apply_metadata, bool_at, choice_at, str_at, Params};
use crate::ids;
use crate::store::Filter;

pub async fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "payment_method",
        "payment_method_types",
        "usage",
        "confirm",
        "return_url",
        "metadata",
        "description",
        "automatic_payment_methods",
        "payment_method_options",
        "mandate_data",
        "use_stripe_sdk",
        "payment_method_data",
        "single_use",
        "on_behalf_of",
    ])?;
    let customer = match p.nonempty("customer")? {
        Some(c) => {
            ctx.load("customer", c, Some("customer")).await?;
            Some(c.to_string())
        }
        None => None,
    };
    let usage = p
        .choice("usage", &["off_session", "on_session"])?
        .unwrap_or_else(|| "off_session".into());
    let apm = match p.obj("automatic_payment_methods")? {
        Some(m) => {
            let enabled =
                bool_at(m.get("enabled"), "automatic_payment_methods[enabled]")?.unwrap_or(false);
            let redirects = choice_at(
                m.get("allow_redirects"),
                "automatic_payment_methods[allow_redirects]",
                &["always", "never"],
            )?;
            enabled.then(|| json!({"allow_redirects": redirects.unwrap_or_else(|| "always".into()), "enabled": true}))
        }
        None => None,
    };
    let types = p
        .list("payment_method_types")?
        .unwrap_or_else(|| vec!["card".into()]);
    if let Some(bad) = types.iter().find(|t| t.as_str() != "card") {
        return Err(
            ApiError::invalid(format!("The payment method type \"{bad}\" is invalid."))
                .param("payment_method_types"),
        );
    }
    let confirm = p.bool("confirm")?.unwrap_or(false);
    if p.has("return_url") && !confirm {
        return Err(
            ApiError::invalid("You can only pass `return_url` when `confirm` is true.")
                .param("return_url"),
        );
    }
    let pm = match p.nonempty("payment_method")? {
        Some(id) => Some(payment_methods::resolve(ctx, id, "payment_method").await?),
        None => None,
    };
    let id = ids::new_id("seti");
    let mut si = json!({
        "id": id,
        "object": "setup_intent",
        "application": null,
        "automatic_payment_methods": apm,
        "cancellation_reason": null,
        "client_secret": format!("{id}_secret_{}", ids::random(25)),
        "created": ctx.now,
        "customer": customer,
        "description": p.nonempty("description")?,
        "flow_directions": null,
        "last_setup_error": null,
        "latest_attempt": null,
        "livemode": false,
        "mandate": null,
        "metadata": {},
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": pm.as_ref().map(|pm| pm["id"].clone()),
        "payment_method_configuration_details": null,
        "payment_method_options": {"card": {"mandate_options": null, "network": null, "request_three_d_secure": "automatic"}},
        "payment_method_types": types,
        "single_use_mandate": null,
        "status": if pm.is_some() { "requires_confirmation" } else { "requires_payment_method" },
        "usage": usage,
    });
    apply_metadata(&mut si["metadata"], p)?;
    ctx.put(&si).await?;
    ctx.emit("setup_intent.created", &si, None).await?;
    if confirm {
        return confirm_inner(ctx, si, None, p.nonempty("return_url")?.map(str::to_string)).await;
    }
    Ok(si)
}

pub async fn confirm(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "payment_method",
        "return_url",
        "mandate_data",
        "payment_method_options",
        "use_stripe_sdk",
        "payment_method_data",
        "client_secret",
    ])?;
    let si = ctx.load("setup_intent", id, None).await?;
    let pm = match (p.nonempty("payment_method")?, p.obj("payment_method_data")?) {
        (Some(pm), _) => Some(payment_methods::resolve(ctx, pm, "payment_method").await?),
        // Stripe.js sends the card typed into the payment element.
        (None, Some(data)) => {
            let kind = str_at(data.get("type"), "payment_method_data[type]")?.unwrap_or_default();
            if kind != "card" {
                return Err(ApiError::invalid(
                    "The sandbox only supports payment_method_data[type]=card.",
                )
                .param("payment_method_data[type]"));
            }
            let card = data
                .get("card")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let pm = payment_methods::from_card_params(
                ctx,
                &card,
                data.get("billing_details").and_then(Value::as_object),
                "payment_method_data[card]",
            )?;
            ctx.put(&pm).await?;
            Some(pm)
        }
        (None, None) => None,
    };
    confirm_inner(ctx, si, pm, p.nonempty("return_url")?.map(str::to_string)).await
}

async fn confirm_inner(
    ctx: &mut Ctx<'_>,
    mut si: Value,
    pm: Option<Value>,
    return_url: Option<String>,
) -> Result<Value, ApiError> {
    let status = s(&si, "status");
    if !matches!(
        status.as_str(),
        "requires_payment_method" | "requires_confirmation" | "requires_action"
    ) {
        return Err(ApiError::unexpected_state(
            format!("You cannot confirm this SetupIntent because it has a status of {status}."),
            "setup_intent",
            render(&si),
        ));
    }
    let pm =
        match pm {
            Some(pm) => pm,
            None => match si.get("payment_method").and_then(Value::as_str) {
                Some(id) => {
                    ctx.load("payment_method", id, Some("payment_method"))
                        .await?
                }
                None => return Err(ApiError::invalid(
                    "You cannot confirm this SetupIntent because it's missing a payment method.",
                )
                .param("payment_method")
                .code("setup_intent_unexpected_state")
                .with("setup_intent", render(&si))),
            },
        };
    si["payment_method"] = pm["id"].clone();
    si["last_setup_error"] = Value::Null;
    si["_return_url"] = json!(return_url);
    match payment_methods::behaviour(&pm) {
        Behaviour::Decline { code, decline_code } => {
            decline(ctx, si, &pm, code, decline_code).await
        }
        Behaviour::RadarBlock => decline(ctx, si, &pm, "card_declined", Some("fraudulent")).await,
        Behaviour::AuthAlways
        | Behaviour::AuthOnSetup
        | Behaviour::ThreeDs2
        | Behaviour::ThreeDsDecline
        | Behaviour::AuthSetupOffSession => {
            si["status"] = json!("requires_action");
            let na = next_action(ctx, &mut si);
            si["next_action"] = na;
            ctx.put(&si).await?;
            ctx.emit("setup_intent.requires_action", &si, None).await?;
            Ok(si)
        }
        _ => succeed(ctx, si, pm).await,
    }
}

async fn decline(
    ctx: &mut Ctx<'_>,
    mut si: Value,
    pm: &Value,
    code: &str,
    decline_code: Option<&str>,
) -> Result<Value, ApiError> {
    let message = cards::decline_message(code, decline_code);
    let mut err = json!({"code": code, "message": message, "payment_method": render(pm), "type": "card_error",
        "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-"))});
    if let Some(d) = decline_code {
        err["decline_code"] = json!(d);
    }
    si["status"] = json!("requires_payment_method");
    si["last_setup_error"] = err;
    si["next_action"] = Value::Null;
    ctx.put(&si).await?;
    ctx.emit("setup_intent.setup_failed", &si, None).await?;
    Err(ApiError::card(code, decline_code, message)
        .with("setup_intent", render(&si))
        .with("payment_method", render(pm))
        .committing())
}

async fn succeed(ctx: &mut Ctx<'_>, mut si: Value, mut pm: Value) -> Result<Value, ApiError> {
    pm["_setup"] = json!(true);
    ctx.put(&pm).await?;
    if let Some(c) = si
        .get("customer")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        pm = payment_methods::attach_to(ctx, pm, &c).await?;
    }
    let _ = pm;
    si["status"] = json!("succeeded");
    si["next_action"] = Value::Null;
    ctx.put(&si).await?;
    ctx.emit("setup_intent.succeeded", &si, None).await?;
    Ok(si)
}

/// Completes or fails the 3-D Secure challenge of a `requires_action` SetupIntent.
pub async fn authenticate(
    ctx: &mut Ctx<'_>,
    mut si: Value,
    success: bool,
) -> Result<Value, ApiError> {
    let pm = ctx
        .load("payment_method", &s(&si, "payment_method"), None)
        .await?;
    si["_3ds_token"] = Value::Null;
    if success {
        return succeed(ctx, si, pm).await;
    }
    si["status"] = json!("requires_payment_method");
    si["next_action"] = Value::Null;
    si["last_setup_error"] = json!({
        "code": "setup_intent_authentication_failure",
        "doc_url": "https://stripe.com/docs/error-codes/setup-intent-authentication-failure",
        "message": "The latest attempt to set up the payment method has failed because authentication failed.",
        "payment_method": render(&pm),
        "type": "invalid_request_error"
    });
    ctx.put(&si).await?;
    ctx.emit("setup_intent.setup_failed", &si, None).await?;
    Ok(si)
}

pub async fn cancel(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["cancellation_reason"])?;
    let reason = p.choice(
        "cancellation_reason",
        &["abandoned", "duplicate", "requested_by_customer"],
    )?;
    let mut si = ctx.load("setup_intent", id, None).await?;
    let status = s(&si, "status");
    if matches!(status.as_str(), "succeeded" | "canceled" | "processing") {
        return Err(ApiError::unexpected_state(
            format!("You cannot cancel this SetupIntent because it has a status of {status}. Only a SetupIntent with one of the following statuses may be canceled: requires_payment_method, requires_confirmation, requires_action."),
            "setup_intent",
            render(&si),
        ));
    }
    si["status"] = json!("canceled");
    si["cancellation_reason"] = json!(reason);
    si["next_action"] = Value::Null;
    ctx.put(&si).await?;
    ctx.emit("setup_intent.canceled", &si, None).await?;
    Ok(si)
}

pub async fn update(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "description",
        "metadata",
        "payment_method",
        "payment_method_types",
        "payment_method_options",
    ])?;
    let mut si = ctx.load("setup_intent", id, None).await?;
    if let Some(c) = p.nonempty("customer")? {
        ctx.load("customer", c, Some("customer")).await?;
        si["customer"] = json!(c);
    }
    if let Some(d) = p.str("description")? {
        si["description"] = if d.is_empty() { Value::Null } else { json!(d) };
    }
    if let Some(pm) = p.nonempty("payment_method")? {
        let status = s(&si, "status");
        if !matches!(
            status.as_str(),
            "requires_payment_method" | "requires_confirmation" | "requires_action"
        ) {
            return Err(ApiError::unexpected_state(
                format!("You cannot update this SetupIntent because it has a status of {status}."),
                "setup_intent",
                render(&si),
            ));
        }
        let pm = payment_methods::resolve(ctx, pm, "payment_method").await?;
        si["payment_method"] = pm["id"].clone();
        si["status"] = json!("requires_confirmation");
    }
    apply_metadata(&mut si["metadata"], p)?;
    ctx.put(&si).await?;
    Ok(si)
}

pub async fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "payment_method",
        "limit",
        "starting_after",
        "ending_before",
        "created",
        "attach_to_self",
    ])?;
    let mut filters = Vec::new();
    if let Some(c) = p.nonempty("customer")? {
        filters.push(Filter::Eq("customer", c.to_string()));
    }
    if let Some(pm) = p.nonempty("payment_method")? {
        filters.push(Filter::Json("$.payment_method", pm.to_string()));
    }
    ctx.list("setup_intent", filters, p, "/v1/setup_intents")
        .await
}
