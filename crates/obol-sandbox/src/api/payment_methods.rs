//! `/v1/payment_methods`: cards from raw test numbers or `pm_card_*` tokens
//! (materialised into a fresh `pm_…` wherever a payment method id is
//! accepted, as Stripe does), attach, detach, list.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::cards::{self, Behaviour};
use crate::ctx::{diff, s, Ctx};
use crate::error::ApiError;
use crate::form::{apply_metadata, int_at, str_at, Params};
use crate::ids;
use crate::store::Filter;

fn billing_details(m: Option<&Map<String, Value>>) -> Value {
    let m = m.cloned().unwrap_or_default();
    let f = |o: &Map<String, Value>, k: &str| {
        o.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let a = m
        .get("address")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    json!({
        "address": {"city": f(&a, "city"), "country": f(&a, "country"), "line1": f(&a, "line1"),
                    "line2": f(&a, "line2"), "postal_code": f(&a, "postal_code"), "state": f(&a, "state")},
        "email": f(&m, "email"), "name": f(&m, "name"), "phone": f(&m, "phone")
    })
}

fn fingerprint(number: &str) -> String {
    let h = Sha256::digest(format!("obol-sandbox-card:{number}").as_bytes());
    let b62 = hex::encode(h);
    b62.chars().take(16).collect()
}

fn card_object(
    number: &str,
    brand: &str,
    funding: &str,
    exp_month: i64,
    exp_year: i64,
    cvc_given: bool,
) -> Value {
    let last4: String = number
        .chars()
        .skip(number.len().saturating_sub(4))
        .collect();
    json!({
        "brand": brand,
        "checks": {"address_line1_check": null, "address_postal_code_check": null,
                   "cvc_check": if cvc_given { Value::from("pass") } else { Value::Null }},
        "country": "US",
        "exp_month": exp_month,
        "exp_year": exp_year,
        "fingerprint": fingerprint(number),
        "funding": funding,
        "generated_from": null,
        "last4": last4,
        "networks": {"available": [brand], "preferred": null},
        "three_d_secure_usage": {"supported": true},
        "wallet": null
    })
}

fn new_pm(ctx: &Ctx<'_>, card: Value, token: &str, billing: Value, metadata: Value) -> Value {
    json!({
        "id": ids::new_id("pm"),
        "object": "payment_method",
        "billing_details": billing,
        "card": card,
        "created": ctx.now,
        "customer": null,
        "livemode": false,
        "metadata": metadata,
        "type": "card",
        "_card": token,
    })
}

/// A PaymentMethod from `card[number]`, `card[exp_month]`, `card[exp_year]`, `card[cvc]`.
pub fn from_card_params(
    ctx: &Ctx<'_>,
    card: &Map<String, Value>,
    billing: Option<&Map<String, Value>>,
    prefix: &str,
) -> Result<Value, ApiError> {
    let param = |k: &str| format!("{prefix}[{k}]");
    if let Some(t) = str_at(card.get("token"), &param("token"))? {
        return Err(ApiError::invalid(format!("Card tokens are not supported by the sandbox: {t}; use card[number] or a pm_card_* test payment method.")).param(&param("token")));
    }
    let number: String = str_at(card.get("number"), &param("number"))?
        .ok_or_else(|| ApiError::missing_param(&param("number")))?
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let exp_month = int_at(card.get("exp_month"), &param("exp_month"))?
        .ok_or_else(|| ApiError::missing_param(&param("exp_month")))?;
    let mut exp_year = int_at(card.get("exp_year"), &param("exp_year"))?
        .ok_or_else(|| ApiError::missing_param(&param("exp_year")))?;
    if (0..100).contains(&exp_year) {
        exp_year += 2000;
    }
    let cvc = str_at(card.get("cvc"), &param("cvc"))?;
    let known = cards::by_number(&number);
    if known.is_none() && !cards::luhn(&number) {
        return Err(ApiError::card(
            "incorrect_number",
            None,
            cards::decline_message("incorrect_number", None),
        )
        .param(&param("number")));
    }
    if !(1..=12).contains(&exp_month) {
        return Err(ApiError::card(
            "invalid_expiry_month",
            None,
            "Your card's expiration month is invalid.",
        )
        .param(&param("exp_month")));
    }
    let this_year = 1970 + ctx.now / 31_556_952;
    if exp_year < this_year || exp_year > this_year + 50 {
        return Err(ApiError::card(
            "invalid_expiry_year",
            None,
            "Your card's expiration year is invalid.",
        )
        .param(&param("exp_year")));
    }
    if let Some(c) = cvc {
        if !(3..=4).contains(&c.len()) || !c.chars().all(|d| d.is_ascii_digit()) {
            return Err(ApiError::card(
                "invalid_cvc",
                None,
                "Your card's security code is invalid.",
            )
            .param(&param("cvc")));
        }
    }
    let (brand, funding, token) = match known {
        Some(c) => (c.brand, c.funding, c.token),
        None => (cards::brand_for(&number), "credit", ""),
    };
    let card = card_object(&number, brand, funding, exp_month, exp_year, cvc.is_some());
    Ok(new_pm(
        ctx,
        card,
        token,
        billing_details(billing),
        json!({}),
    ))
}

/// A fresh PaymentMethod for a `pm_card_*` test token.
pub fn from_token(ctx: &Ctx<'_>, token: &str) -> Option<Value> {
    let c = cards::by_token(token)?;
    // Stripe's fixture cards expire next year in the month of creation (unconfirmed).
    let days = ctx.now / 86_400;
    let year = 1970 + ctx.now / 31_556_952;
    let month = (days % 365) / 31 + 1;
    let card = card_object(c.number, c.brand, c.funding, month.min(12), year + 1, true);
    Some(new_pm(ctx, card, c.token, billing_details(None), json!({})))
}

/// Resolves a payment method parameter: an existing `pm_…` or a test token
/// (which creates a new payment method, like Stripe).
pub async fn resolve(ctx: &mut Ctx<'_>, id: &str, param: &str) -> Result<Value, ApiError> {
    if id.starts_with("pm_card_") || id.starts_with("tok_") {
        let token = id.replacen("tok_", "pm_card_", 1);
        if let Some(pm) = from_token(ctx, &token) {
            ctx.put(&pm).await?;
            return Ok(pm);
        }
    }
    ctx.load("payment_method", id, Some(param)).await
}

pub fn behaviour(pm: &Value) -> Behaviour {
    cards::behaviour_of(&s(pm, "_card"))
}

/// Attaches `pm` to `customer` (which must exist), refusing declining cards.
pub async fn attach_to(
    ctx: &mut Ctx<'_>,
    mut pm: Value,
    customer: &str,
) -> Result<Value, ApiError> {
    ctx.load("customer", customer, Some("customer")).await?;
    match pm.get("customer").and_then(Value::as_str) {
        Some(c) if c == customer => return Ok(pm),
        Some(_) => {
            return Err(ApiError::invalid(
                "The payment method you provided has already been attached to a customer.",
            )
            .param("payment_method")
            .code("payment_method_unexpected_state"))
        }
        None => {}
    }
    if pm.get("_used").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::invalid(format!("The provided PaymentMethod was previously used without being attached to a Customer or was detached from a Customer, and may not be used again. You can attach the PaymentMethod to a Customer before using it, or create a new PaymentMethod. ({})", s(&pm, "id"))).param("payment_method"));
    }
    let refused = match behaviour(&pm) {
        Behaviour::Decline { code, decline_code } => Some((code, decline_code)),
        Behaviour::RadarBlock => Some(("card_declined", Some("fraudulent"))),
        _ => None,
    };
    if let Some((code, decline_code)) = refused {
        return Err(ApiError::card(
            code,
            decline_code,
            crate::cards::decline_message(code, decline_code),
        ));
    }
    pm["customer"] = json!(customer);
    ctx.put(&pm).await?;
    ctx.emit("payment_method.attached", &pm, None).await?;
    Ok(pm)
}

pub async fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "type",
        "card",
        "billing_details",
        "metadata",
        "customer",
        "payment_method",
        "allow_redisplay",
    ])?;
    if let Some(existing) = p.nonempty("payment_method")? {
        // Cloning a customer's PaymentMethod is a Connect feature; a test token is the useful case.
        let pm = resolve(ctx, existing, "payment_method").await?;
        return Ok(pm);
    }
    let kind = p.required("type")?;
    if kind != "card" {
        return Err(ApiError::invalid(format!(
            "The sandbox only supports payment methods of type card, not {kind}."
        ))
        .param("type"));
    }
    let card = p
        .obj("card")?
        .ok_or_else(|| ApiError::missing_param("card"))?;
    let mut pm = from_card_params(ctx, card, p.obj("billing_details")?, "card")?;
    apply_metadata(&mut pm["metadata"], p)?;
    ctx.put(&pm).await?;
    Ok(pm)
}

pub async fn retrieve(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    if id.starts_with("pm_card_") {
        if let Some(pm) = from_token(ctx, id) {
            ctx.put(&pm).await?;
            return Ok(pm);
        }
    }
    ctx.load("payment_method", id, None).await
}

pub async fn update(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["billing_details", "metadata", "card", "allow_redisplay"])?;
    let mut pm = ctx.load("payment_method", id, None).await?;
    let before = pm.clone();
    if let Some(b) = p.obj("billing_details")? {
        let mut merged = before["billing_details"].clone();
        let new = billing_details(Some(b));
        for k in ["email", "name", "phone"] {
            if b.contains_key(k) {
                merged[k] = new[k].clone();
            }
        }
        if b.contains_key("address") {
            merged["address"] = new["address"].clone();
        }
        pm["billing_details"] = merged;
    }
    if let Some(c) = p.obj("card")? {
        if let Some(m) = int_at(c.get("exp_month"), "card[exp_month]")? {
            pm["card"]["exp_month"] = json!(m);
        }
        if let Some(y) = int_at(c.get("exp_year"), "card[exp_year]")? {
            pm["card"]["exp_year"] = json!(y);
        }
    }
    apply_metadata(&mut pm["metadata"], p)?;
    if pm != before {
        ctx.put(&pm).await?;
        ctx.emit("payment_method.updated", &pm, Some(diff(&before, &pm)))
            .await?;
    }
    Ok(pm)
}

pub async fn attach(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["customer"])?;
    let customer = p.required("customer")?.to_string();
    let pm = resolve(ctx, id, "payment_method").await?;
    attach_to(ctx, pm, &customer).await
}

pub async fn detach(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[])?;
    let mut pm = ctx.load("payment_method", id, None).await?;
    let Some(customer) = pm
        .get("customer")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(ApiError::invalid("The payment method you provided is not attached to a customer so detachment is impossible.")
            .code("payment_method_unexpected_state"));
    };
    let before = pm.clone();
    pm["customer"] = Value::Null;
    pm["_used"] = json!(true);
    ctx.put(&pm).await?;
    ctx.emit("payment_method.detached", &pm, Some(diff(&before, &pm)))
        .await?;
    if let Ok(mut c) = ctx.load("customer", &customer, None).await {
        if c["invoice_settings"]["default_payment_method"].as_str() == Some(id) {
            let before = c.clone();
            c["invoice_settings"]["default_payment_method"] = Value::Null;
            ctx.put(&c).await?;
            ctx.emit("customer.updated", &c, Some(diff(&before, &c)))
                .await?;
        }
    }
    Ok(pm)
}

pub async fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "type",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let mut filters = Vec::new();
    if let Some(c) = p.nonempty("customer")? {
        ctx.load("customer", c, Some("customer")).await?;
        filters.push(Filter::Eq("customer", c.to_string()));
    }
    if let Some(t) = p.nonempty("type")? {
        filters.push(Filter::Json("$.type", t.to_string()));
    }
    ctx.list("payment_method", filters, p, "/v1/payment_methods")
        .await
}

pub async fn list_for_customer(
    ctx: &mut Ctx<'_>,
    customer: &str,
    p: &Params,
) -> Result<Value, ApiError> {
    p.allow(&[
        "type",
        "limit",
        "starting_after",
        "ending_before",
        "allow_redisplay",
    ])?;
    ctx.load("customer", customer, None).await?;
    let mut filters = vec![Filter::Eq("customer", customer.to_string())];
    if let Some(t) = p.nonempty("type")? {
        filters.push(Filter::Json("$.type", t.to_string()));
    }
    ctx.list(
        "payment_method",
        filters,
        p,
        &format!("/v1/customers/{customer}/payment_methods"),
    )
    .await
}

/// `POST /_sandbox/payment_methods/{id}/network_update` (`exp_month`,
/// `exp_year`, optional `last4`; `account`: a connected account, default
/// the platform): what Stripe's card account updater does when the network
/// reissues a saved card. The card's expiry (and number) change and
/// `payment_method.automatically_updated` is emitted, as at Stripe.
pub async fn network_update_route(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<crate::ctx::App>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let form = crate::form::parse(&body).unwrap_or_default();
    let p = Params(form);
    let result = async {
        let account = p.nonempty("account")?.map(str::to_string);
        let _guard = app.write_lock.lock().await;
        let mut ctx =
            Ctx::begin_write(&app, None, None, crate::ctx::DEFAULT_API_VERSION.into()).await?;
        ctx.act_as(account);
        let mut pm = ctx.load("payment_method", &id, None).await?;
        if pm["type"] != "card" {
            return Err(ApiError::invalid("payment_method is not a card"));
        }
        let before = pm.clone();
        if let Some(m) = p.int("exp_month")? {
            if !(1..=12).contains(&m) {
                return Err(ApiError::invalid("exp_month must be 1 to 12"));
            }
            pm["card"]["exp_month"] = json!(m);
        }
        if let Some(y) = p.int("exp_year")? {
            pm["card"]["exp_year"] = json!(y);
        }
        if let Some(l) = p.nonempty("last4")? {
            if l.len() != 4 || !l.chars().all(|c| c.is_ascii_digit()) {
                return Err(ApiError::invalid("last4 must be 4 digits"));
            }
            pm["card"]["last4"] = json!(l);
        }
        if pm != before {
            ctx.put(&pm).await?;
            ctx.emit(
                "payment_method.automatically_updated",
                &pm,
                Some(diff(&before, &pm)),
            )
            .await?;
        }
        if ctx.commit().await? > 0 {
            app.notify.notify_one();
        }
        Ok::<_, ApiError>(pm)
    }
    .await;
    match result {
        Ok(v) => super::json_response(axum::http::StatusCode::OK, v.to_string()),
        Err(e) => super::error_response(&e),
    }
}
