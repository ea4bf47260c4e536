//! `/v1/payment_intents`: create, confirm, capture, cancel, update, list,
//! and the charge attempt every confirm makes (test-card outcomes, 3-D
//! Secure, declines with a failed charge, disputes after capture).
//!
//! State machine (Stripe's): requires_payment_method → requires_confirmation
//! → (confirm) → requires_action | requires_capture | succeeded, a decline
//! goes back to requires_payment_method; capture → succeeded; cancel from
//! any non-terminal state → canceled.

use serde_json::{json, Value};

use super::{disputes, payment_methods, shared_payment};
use crate::cards::{self, Behaviour};
use crate::ctx::{i, render, s, Ctx};
use crate::error::ApiError;
use crate::form::{apply_metadata, bool_at, choice_at, str_at, Params};
use crate::ids;
use crate::store::Filter;

const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];
const CURRENCIES: &[&str] = &[
    "usd", "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd",
    "bdt", "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad",
    "cdf", "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp",
    "etb", "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl",
    "htg", "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr", "kmf",
    "krw", "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd",
    "mmk", "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok",
    "npr", "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd",
    "rub", "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "std", "szl",
    "thb", "tjs", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "uyu", "uzs", "vnd",
    "vuv", "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
];

fn exponent(currency: &str) -> u32 {
    if ZERO_DECIMAL.contains(&currency) {
        0
    } else if THREE_DECIMAL.contains(&currency) {
        3
    } else {
        2
    }
}

/// Stripe's minimum charge amounts, in minor units.
fn minimum(currency: &str) -> i64 {
    match currency {
        "usd" | "eur" | "aud" | "cad" | "chf" | "nzd" | "sgd" | "brl" | "inr" => 50,
        "gbp" => 30,
        "jpy" => 50,
        "aed" | "myr" | "pln" | "ron" => 200,
        "bgn" => 100,
        "czk" => 1500,
        "dkk" => 250,
        "nok" | "sek" => 300,
        "hkd" => 400,
        "huf" => 17500,
        "mxn" | "thb" => 1000,
        _ => 1,
    }
}

/// `1234 eur` → `€12.34`, the way Stripe words amounts in messages.
pub fn format_amount(amount: i64, currency: &str) -> String {
    let symbol = match currency {
        "usd" | "aud" | "cad" | "nzd" | "sgd" | "hkd" | "mxn" => "$".to_string(),
        "eur" => "€".to_string(),
        "gbp" => "£".to_string(),
        "jpy" => "¥".to_string(),
        other => format!("{} ", other.to_uppercase()),
    };
    let e = exponent(currency);
    if e == 0 {
        return format!("{symbol}{amount}");
    }
    let div = 10i64.pow(e);
    format!(
        "{symbol}{}.{:0width$}",
        amount / div,
        (amount % div).abs(),
        width = e as usize
    )
}

pub fn parse_currency(p: &Params) -> Result<String, ApiError> {
    let c = p.required("currency")?.to_lowercase();
    if !CURRENCIES.contains(&c.as_str()) {
        return Err(ApiError::invalid(format!(
            "Invalid currency: {c}. Stripe currently supports these currencies: {}",
            CURRENCIES.join(", ")
        ))
        .param("currency"));
    }
    Ok(c)
}

/// Positive, at most 8 digits, above the currency minimum, and a multiple
/// of 10 for three-decimal currencies.
pub fn validate_amount(amount: i64, currency: &str, param: &str) -> Result<(), ApiError> {
    if amount < 1 {
        return Err(
            ApiError::invalid("This value must be greater than or equal to 1.").param(param),
        );
    }
    if amount > 99_999_999 {
        return Err(ApiError::invalid(format!(
            "Amount must be no more than {}",
            format_amount(99_999_999, currency)
        ))
        .param(param)
        .code("amount_too_large"));
    }
    let min = minimum(currency);
    if amount < min {
        return Err(ApiError::invalid(format!(
            "Amount must be at least {} {currency}",
            format_amount(min, currency)
        ))
        .param(param)
        .code("amount_too_small"));
    }
    if exponent(currency) == 3 && amount % 10 != 0 {
        return Err(ApiError::invalid(format!(
            "Amounts in {} must be a multiple of 10 (the last digit of a three-decimal currency amount must be 0).",
            currency.to_uppercase()
        ))
        .param(param)
        .code("invalid_amount"));
    }
    Ok(())
}

fn require_confirm(p: &Params, confirm: bool, key: &str) -> Result<(), ApiError> {
    if p.has(key) && !confirm {
        return Err(ApiError::invalid(format!(
            "You can only pass `{key}` when `confirm` is true."
        ))
        .param(key));
    }
    Ok(())
}

/// Parameters shared by `create?confirm=true` and `confirm`.
struct ConfirmArgs {
    payment_method: Option<Value>,
    off_session: bool,
    return_url: Option<String>,
    error_on_requires_action: bool,
    use_stripe_sdk: bool,
    /// The shared payment token the card comes from, if any.
    spt: Option<Value>,
    /// 3-D Secure performed outside Stripe and imported with
    /// `payment_method_options[card][three_d_secure]`: `Some(true)` when
    /// its `ares_trans_status` is `Y` (authenticated) or `A` (attempted)
    /// and it carries a cryptogram, `Some(false)` otherwise.
    imported_3ds: Option<bool>,
}

/// Reads `payment_method_options[card][three_d_secure]` (Stripe's import
/// of an authentication done elsewhere, as an agent platform does for
/// Agentic Commerce). The sandbox trusts a well-formed result the way
/// Stripe trusts the directory server's: the issuer (the test card) still
/// decides whether the authenticated charge succeeds.
fn imported_three_d_secure(p: &Params) -> Result<Option<bool>, ApiError> {
    let Some(tds) = p
        .obj("payment_method_options")?
        .and_then(|o| o.get("card"))
        .and_then(Value::as_object)
        .and_then(|c| c.get("three_d_secure"))
        .and_then(Value::as_object)
    else {
        return Ok(None);
    };
    const KEY: &str = "payment_method_options[card][three_d_secure]";
    let status = choice_at(
        tds.get("ares_trans_status"),
        &format!("{KEY}[ares_trans_status]"),
        &["A", "C", "I", "N", "R", "U", "Y"],
    )?;
    let cryptogram = str_at(tds.get("cryptogram"), &format!("{KEY}[cryptogram]"))?.unwrap_or("");
    choice_at(
        tds.get("electronic_commerce_indicator"),
        &format!("{KEY}[electronic_commerce_indicator]"),
        &["01", "02", "05", "06", "07"],
    )?;
    if str_at(tds.get("transaction_id"), &format!("{KEY}[transaction_id]"))?.is_none() {
        return Err(ApiError::missing_param(&format!("{KEY}[transaction_id]")));
    }
    choice_at(
        tds.get("version"),
        &format!("{KEY}[version]"),
        &["1.0.2", "2.1.0", "2.2.0"],
    )?
    .ok_or_else(|| ApiError::missing_param(&format!("{KEY}[version]")))?;
    Ok(Some(
        matches!(status.as_deref(), Some("Y" | "A")) && !cryptogram.is_empty(),
    ))
}

async fn confirm_args(ctx: &mut Ctx<'_>, p: &Params) -> Result<ConfirmArgs, ApiError> {
    let mut spt = None;
    let payment_method = match (p.nonempty("payment_method")?, p.obj("payment_method_data")?) {
        (Some(id), _) => Some(payment_methods::resolve(ctx, id, "payment_method").await?),
        (None, Some(data)) if data.contains_key("shared_payment_granted_token") => {
            let id = str_at(
                data.get("shared_payment_granted_token"),
                shared_payment::PARAM,
            )?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing_param(shared_payment::PARAM))?;
            let (token, pm) = shared_payment::resolve(ctx, id).await?;
            spt = Some(token);
            Some(pm)
        }
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
    // `off_session` is a boolean, or `one_off` / `recurring`.
    let off_session = match p.str("off_session")? {
        None | Some("") | Some("false") => false,
        Some("true") | Some("one_off") | Some("recurring") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!("Invalid boolean: {other}")).param("off_session"))
        }
    };
    Ok(ConfirmArgs {
        payment_method,
        off_session,
        return_url: p.nonempty("return_url")?.map(str::to_string),
        error_on_requires_action: p.bool("error_on_requires_action")?.unwrap_or(false),
        use_stripe_sdk: p.bool("use_stripe_sdk")?.unwrap_or(false),
        spt,
        imported_3ds: imported_three_d_secure(p)?,
    })
}

const CREATE_FIELDS: &[&str] = &[
    "amount",
    "currency",
    "customer",
    "payment_method",
    "payment_method_types",
    "automatic_payment_methods",
    "capture_method",
    "confirmation_method",
    "confirm",
    "off_session",
    "return_url",
    "error_on_requires_action",
    "description",
    "metadata",
    "receipt_email",
    "setup_future_usage",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "use_stripe_sdk",
    "payment_method_options",
    "payment_method_data",
    "shipping",
    "mandate_data",
    "radar_options",
];

pub async fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(CREATE_FIELDS)?;
    create_inner(ctx, p, None).await
}

/// The PaymentIntent an invoice creates when it is finalized.
pub async fn create_for_invoice(
    ctx: &mut Ctx<'_>,
    p: &Params,
    invoice: &str,
) -> Result<Value, ApiError> {
    create_inner(ctx, p, Some(invoice)).await
}

async fn create_inner(
    ctx: &mut Ctx<'_>,
    p: &Params,
    invoice: Option<&str>,
) -> Result<Value, ApiError> {
    let amount = p
        .int("amount")?
        .ok_or_else(|| ApiError::missing_param("amount"))?;
    let currency = parse_currency(p)?;
    validate_amount(amount, &currency, "amount")?;
    let customer = match p.nonempty("customer")? {
        Some(c) => {
            let cus = ctx.load("customer", c, Some("customer")).await?;
            // A customer on a test clock pays in the clock's time (an
            // invoice's intent already runs in it, mid-advance).
            if invoice.is_none() {
                super::billing::use_customer_time(ctx, &cus).await?;
            }
            Some(c.to_string())
        }
        None => None,
    };
    let capture_method = p
        .choice(
            "capture_method",
            &["automatic", "automatic_async", "manual"],
        )?
        .unwrap_or_else(|| {
            // The default changed to automatic_async in API version 2024-06-20.
            if ctx.api_version.as_str() >= "2024-06-20" {
                "automatic_async"
            } else {
                "automatic"
            }
            .into()
        });
    let confirmation_method = p
        .choice("confirmation_method", &["automatic", "manual"])?
        .unwrap_or_else(|| "automatic".into());
    let apm = match p.obj("automatic_payment_methods")? {
        Some(m) => {
            let enabled = bool_at(m.get("enabled"), "automatic_payment_methods[enabled]")?
                .ok_or_else(|| ApiError::missing_param("automatic_payment_methods[enabled]"))?;
            let redirects = choice_at(
                m.get("allow_redirects"),
                "automatic_payment_methods[allow_redirects]",
                &["always", "never"],
            )?;
            enabled.then(|| json!({"allow_redirects": redirects.unwrap_or_else(|| "always".into()), "enabled": true}))
        }
        None => None,
    };
    let types = p.list("payment_method_types")?;
    if apm.is_some() && types.is_some() {
        return Err(ApiError::invalid("You may only specify one of these parameters: automatic_payment_methods, payment_method_types.").param("automatic_payment_methods"));
    }
    let types = types.unwrap_or_else(|| vec!["card".into()]);
    if let Some(bad) = types.iter().find(|t| t.as_str() != "card") {
        return Err(ApiError::invalid(format!(
            "The payment method type \"{bad}\" is invalid. Please ensure the provided type is activated in your dashboard (https://dashboard.stripe.com/account/payments/settings) and your account is enabled for any preview features that you are trying to use."
        ))
        .param("payment_method_types"));
    }
    let confirm = p.bool("confirm")?.unwrap_or(false);
    for k in [
        "off_session",
        "return_url",
        "error_on_requires_action",
        "use_stripe_sdk",
    ] {
        require_confirm(p, confirm, k)?;
    }
    let setup_future_usage = p.choice("setup_future_usage", &["on_session", "off_session"])?;
    let args = confirm_args(ctx, p).await?;
    let id = ids::new_id("pi");
    let pm_id = args.payment_method.as_ref().map(|pm| s(pm, "id"));
    let mut pi = json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": apm,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": capture_method,
        "client_secret": format!("{id}_secret_{}", ids::random(25)),
        "confirmation_method": confirmation_method,
        "created": ctx.now,
        "currency": currency,
        "customer": customer,
        "description": p.nonempty("description")?,
        "invoice": invoice,
        "last_payment_error": null,
        "latest_charge": null,
        "livemode": false,
        "metadata": {},
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": pm_id,
        "payment_method_configuration_details": null,
        "payment_method_options": {"card": {"installments": null, "mandate_options": null, "network": null, "request_three_d_secure": "automatic"}},
        "payment_method_types": types,
        "processing": null,
        "receipt_email": p.nonempty("receipt_email")?,
        "review": null,
        "setup_future_usage": setup_future_usage,
        "shipping": null,
        "source": null,
        "statement_descriptor": p.nonempty("statement_descriptor")?,
        "statement_descriptor_suffix": p.nonempty("statement_descriptor_suffix")?,
        "status": if pm_id.is_some() { "requires_confirmation" } else { "requires_payment_method" },
        "transfer_data": null,
        "transfer_group": null,
    });
    apply_metadata(&mut pi["metadata"], p)?;
    ctx.put(&pi).await?;
    ctx.emit("payment_intent.created", &pi, None).await?;
    if confirm {
        return confirm_inner(ctx, pi, args).await;
    }
    Ok(pi)
}

pub async fn confirm(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "payment_method",
        "payment_method_data",
        "off_session",
        "return_url",
        "error_on_requires_action",
        "use_stripe_sdk",
        "receipt_email",
        "setup_future_usage",
        "payment_method_options",
        "payment_method_types",
        "mandate_data",
        "shipping",
        "capture_method",
        "radar_options",
        "client_secret",
    ])?;
    let mut pi = ctx.load("payment_intent", id, None).await?;
    if let Some(sfu) = p.choice("setup_future_usage", &["on_session", "off_session"])? {
        pi["setup_future_usage"] = json!(sfu);
    }
    if let Some(cm) = p.choice(
        "capture_method",
        &["automatic", "automatic_async", "manual"],
    )? {
        pi["capture_method"] = json!(cm);
    }
    if let Some(e) = p.nonempty("receipt_email")? {
        pi["receipt_email"] = json!(e);
    }
    let args = confirm_args(ctx, p).await?;
    confirm_inner(ctx, pi, args).await
}

async fn confirm_inner(
    ctx: &mut Ctx<'_>,
    mut pi: Value,
    args: ConfirmArgs,
) -> Result<Value, ApiError> {
    let status = s(&pi, "status");
    if !matches!(
        status.as_str(),
        "requires_payment_method" | "requires_confirmation" | "requires_action"
    ) {
        return Err(ApiError::unexpected_state(
            format!("You cannot confirm this PaymentIntent because it has a status of {status}. Only a PaymentIntent with one of the following statuses may be confirmed: requires_payment_method, requires_confirmation, requires_action."),
            "payment_intent",
            render(&pi),
        ));
    }
    let new_payment_method = args.payment_method.is_some();
    let pm = match args.payment_method {
        Some(pm) => pm,
        None => match pi.get("payment_method").and_then(Value::as_str) {
            Some(id) => {
                ctx.load("payment_method", id, Some("payment_method"))
                    .await?
            }
            None => {
                return Err(ApiError::invalid("You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the PaymentIntent, you can either provide a payment method when confirming, or update the PaymentIntent with a payment method and then confirm it again.")
                    .param("payment_method")
                    .code("payment_intent_unexpected_state")
                    .with("payment_intent", render(&pi)));
            }
        },
    };
    // A shared payment token's limits are checked before the attempt: a
    // use it does not cover is refused with nothing charged. An intent
    // confirmed again (after 3-D Secure) is held to its token again.
    let spt = match &args.spt {
        Some(t) => Some(t.clone()),
        None => match pi.get("_spt").and_then(Value::as_str) {
            Some(id) if !new_payment_method => Some(shared_payment::resolve(ctx, id).await?.0),
            _ => None,
        },
    };
    if let Some(token) = &spt {
        shared_payment::check_use(token, i(&pi, "amount"), &s(&pi, "currency"))?;
        pi["_spt"] = token["id"].clone();
    }
    let apm_redirects = pi["automatic_payment_methods"]["enabled"].as_bool() == Some(true)
        && pi["automatic_payment_methods"]["allow_redirects"].as_str() != Some("never");
    if apm_redirects && args.return_url.is_none() && !args.use_stripe_sdk {
        return Err(ApiError::invalid("This PaymentIntent is configured to accept payment methods enabled in your Dashboard, some of which may require a full page redirect to succeed. If you do not want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.")
            .param("return_url"));
    }
    let pm_customer = pm.get("customer").and_then(Value::as_str);
    let pi_customer = pi.get("customer").and_then(Value::as_str);
    match (pm_customer, pi_customer) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid(format!("The provided PaymentMethod ({}) belongs to a different Customer than the one on this PaymentIntent.", s(&pm, "id"))).param("payment_method"));
        }
        (Some(_), None) => {
            return Err(ApiError::invalid(format!("The provided PaymentMethod ({}) is attached to a Customer. To use it, also provide the `customer` on the PaymentIntent.", s(&pm, "id"))).param("payment_method"));
        }
        _ => {}
    }
    if pm.get("_used").and_then(Value::as_bool) == Some(true) && pm_customer.is_none() {
        return Err(ApiError::invalid(format!("The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, shared with a connected account without Customer attachment, or was detached from a Customer. It may not be used again. To use a PaymentMethod multiple times, you must attach it to a Customer first. ({})", s(&pm, "id"))).param("payment_method"));
    }
    pi["payment_method"] = pm["id"].clone();
    pi["last_payment_error"] = Value::Null;
    pi["next_action"] = Value::Null;
    pi["_return_url"] = json!(args.return_url);
    pi["_off_session"] = json!(args.off_session);
    pi["_use_stripe_sdk"] = json!(args.use_stripe_sdk);
    // Authenticated earlier with confirmation_method=manual: no second challenge.
    let authenticated = pi.get("_authenticated").and_then(Value::as_bool) == Some(true)
        || args.imported_3ds == Some(true);
    pi["_authenticated"] = Value::Null;
    if args.imported_3ds == Some(false) {
        // The imported authentication failed: like a failed challenge.
        return attempt(
            ctx,
            pi,
            pm,
            Outcome::Decline("authentication_required", Some("authentication_required")),
            false,
        )
        .await;
    }
    let outcome = decide(
        behaviour_of(&pm),
        args.off_session,
        authenticated,
        pm.get("_setup").and_then(Value::as_bool) == Some(true),
    );
    let outcome = match outcome {
        Outcome::Action if args.error_on_requires_action => {
            Outcome::Decline("authentication_required", Some("authentication_required"))
        }
        o => o,
    };
    attempt(ctx, pi, pm, outcome, authenticated).await
}

fn behaviour_of(pm: &Value) -> Behaviour {
    payment_methods::behaviour(pm)
}

#[derive(Clone, Copy)]
pub enum Outcome {
    Success,
    Action,
    Decline(&'static str, Option<&'static str>),
}

/// What the issuer does with this card, given where we are in 3DS.
pub fn decide(b: Behaviour, off_session: bool, authenticated: bool, set_up: bool) -> Outcome {
    const AUTH_FAIL: Outcome =
        Outcome::Decline("authentication_required", Some("authentication_required"));
    match b {
        Behaviour::Succeed
        | Behaviour::Dispute { .. }
        | Behaviour::PendingRefund
        | Behaviour::RefundFail => Outcome::Success,
        Behaviour::Decline { code, decline_code } => Outcome::Decline(code, decline_code),
        Behaviour::ChargeFail => Outcome::Decline("card_declined", Some("generic_decline")),
        Behaviour::RadarBlock => Outcome::Decline("card_declined", Some("fraudulent")),
        Behaviour::AuthAlways | Behaviour::ThreeDs2 => {
            if authenticated {
                Outcome::Success
            } else if off_session {
                AUTH_FAIL
            } else {
                Outcome::Action
            }
        }
        Behaviour::AuthOnSetup => {
            if authenticated || set_up {
                Outcome::Success
            } else if off_session {
                AUTH_FAIL
            } else {
                Outcome::Action
            }
        }
        Behaviour::AuthSetupOffSession => {
            if authenticated || off_session {
                Outcome::Success
            } else {
                Outcome::Action
            }
        }
        Behaviour::ThreeDsDecline => {
            if authenticated {
                Outcome::Decline("card_declined", Some("generic_decline"))
            } else if off_session {
                AUTH_FAIL
            } else {
                Outcome::Action
            }
        }
    }
}

pub fn three_ds_url(ctx: &Ctx<'_>, intent: &mut Value) -> String {
    let token = ids::random(24);
    intent["_3ds_token"] = json!(token);
    format!(
        "{}/_sandbox/3ds/{}?token={token}",
        ctx.app.base_url,
        s(intent, "id")
    )
}

/// `next_action` for 3-D Secure: `redirect_to_url` when a `return_url` was
/// given, `use_stripe_sdk` otherwise (with the same page as `stripe_js`).
pub fn next_action(ctx: &Ctx<'_>, intent: &mut Value) -> Value {
    let url = three_ds_url(ctx, intent);
    match intent.get("_return_url").and_then(Value::as_str) {
        Some(ret) => {
            json!({"type": "redirect_to_url", "redirect_to_url": {"url": url, "return_url": ret}})
        }
        None => json!({"type": "use_stripe_sdk", "use_stripe_sdk": {
            "type": "three_d_secure_redirect", "stripe_js": url, "source": ids::new_id("src")
        }}),
    }
}

fn outcome_json(kind: &str, decline_code: Option<&str>) -> Value {
    match kind {
        "authorized" => {
            json!({"network_status": "approved_by_network", "reason": null, "risk_level": "normal",
            "risk_score": 32, "seller_message": "Payment complete.", "type": "authorized"})
        }
        "blocked" => {
            json!({"network_status": "not_sent_to_network", "reason": "highest_risk_level", "risk_level": "highest",
            "risk_score": 95, "seller_message": "Stripe blocked this payment as too risky.", "type": "blocked"})
        }
        _ => {
            json!({"network_status": "declined_by_network", "reason": decline_code, "risk_level": "normal",
            "risk_score": 32, "seller_message": "The bank did not return any further details with this decline.", "type": "issuer_declined"})
        }
    }
}

fn new_charge(ctx: &Ctx<'_>, pi: &Value, pm: &Value, three_ds: bool) -> Value {
    let id = ids::new_id("ch");
    let card = &pm["card"];
    json!({
        "id": id,
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": 0,
        "amount_refunded": 0,
        "application": null,
        "application_fee": null,
        "application_fee_amount": null,
        "balance_transaction": null,
        "billing_details": pm["billing_details"],
        "calculated_statement_descriptor": "OBOL SANDBOX",
        "captured": false,
        "created": ctx.now,
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": null,
        "failure_message": null,
        "fraud_details": {},
        "invoice": pi["invoice"],
        "livemode": false,
        "metadata": pi["metadata"],
        "on_behalf_of": null,
        "outcome": null,
        "paid": false,
        "payment_intent": pi["id"],
        "payment_method": pm["id"],
        "payment_method_details": {
            "card": {
                "amount_authorized": pi["amount"],
                "brand": card["brand"],
                "capture_before": null,
                "checks": card["checks"],
                "country": card["country"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "fingerprint": card["fingerprint"],
                "funding": card["funding"],
                "installments": null,
                "last4": card["last4"],
                "mandate": null,
                "network": card["brand"],
                "network_token": {"used": false},
                "three_d_secure": if three_ds {
                    json!({"authentication_flow": "challenge", "result": "authenticated", "result_reason": null, "version": "2.2.0"})
                } else { Value::Null },
                "wallet": null
            },
            "type": "card"
        },
        "receipt_email": pi["receipt_email"],
        "receipt_number": null,
        "receipt_url": null,
        "refunded": false,
        "review": null,
        "shipping": null,
        "source_transfer": null,
        "statement_descriptor": pi["statement_descriptor"],
        "statement_descriptor_suffix": pi["statement_descriptor_suffix"],
        "status": "pending",
        "transfer_data": null,
        "transfer_group": null,
    })
}

/// Runs one charge attempt for a confirmed (or just authenticated) intent.
pub async fn attempt(
    ctx: &mut Ctx<'_>,
    mut pi: Value,
    mut pm: Value,
    outcome: Outcome,
    three_ds: bool,
) -> Result<Value, ApiError> {
    match outcome {
        Outcome::Action => {
            pi["status"] = json!("requires_action");
            let na = next_action(ctx, &mut pi);
            pi["next_action"] = na;
            ctx.put(&pi).await?;
            ctx.emit("payment_intent.requires_action", &pi, None)
                .await?;
            Ok(pi)
        }
        Outcome::Decline(code, decline_code) => {
            let message = cards::decline_message(code, decline_code);
            let mut ch = new_charge(ctx, &pi, &pm, three_ds);
            ch["status"] = json!("failed");
            ch["failure_code"] = json!(code);
            ch["failure_message"] = json!(message);
            let blocked = matches!(behaviour_of(&pm), Behaviour::RadarBlock);
            ch["outcome"] = outcome_json(
                if blocked { "blocked" } else { "declined" },
                decline_code.or(Some(code)),
            );
            ctx.put(&ch).await?;
            let mut err = json!({
                "charge": ch["id"], "code": code, "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")),
                "message": message, "payment_method": render(&pm), "type": "card_error"
            });
            if let Some(d) = decline_code {
                err["decline_code"] = json!(d);
            }
            pi["status"] = json!("requires_payment_method");
            pi["last_payment_error"] = err;
            pi["latest_charge"] = ch["id"].clone();
            pi["next_action"] = Value::Null;
            pi["amount_capturable"] = json!(0);
            ctx.put(&pi).await?;
            ctx.emit("charge.failed", &ch, None).await?;
            ctx.emit("payment_intent.payment_failed", &pi, None).await?;
            Err(ApiError::card(code, decline_code, message)
                .with("charge", ch["id"].clone())
                .with("payment_intent", render(&pi))
                .with("payment_method", render(&pm))
                .committing())
        }
        Outcome::Success => {
            let manual = s(&pi, "capture_method") == "manual";
            let amount = i(&pi, "amount");
            let mut ch = new_charge(ctx, &pi, &pm, three_ds);
            ch["status"] = json!("succeeded");
            ch["paid"] = json!(true);
            ch["outcome"] = outcome_json("authorized", None);
            if manual {
                ch["payment_method_details"]["card"]["capture_before"] =
                    json!(ctx.now + 7 * 86_400);
            } else {
                ch["captured"] = json!(true);
                ch["amount_captured"] = json!(amount);
                super::balance::for_charge(ctx, &mut ch, &pm).await?;
            }
            ctx.put(&ch).await?;
            pi["latest_charge"] = ch["id"].clone();
            pi["next_action"] = Value::Null;
            if manual {
                pi["status"] = json!("requires_capture");
                pi["amount_capturable"] = json!(amount);
            } else {
                pi["status"] = json!("succeeded");
                pi["amount_received"] = json!(amount);
                pi["amount_capturable"] = json!(0);
            }
            // A PaymentMethod used without a customer cannot be used again;
            // `setup_future_usage` with a customer attaches it instead.
            let customer = pi
                .get("customer")
                .and_then(Value::as_str)
                .map(str::to_string);
            if pm.get("customer").map(Value::is_null).unwrap_or(true) {
                match (
                    &customer,
                    pi.get("setup_future_usage").and_then(Value::as_str),
                ) {
                    (Some(c), Some(_)) => {
                        pm = payment_methods::attach_to(ctx, pm, c).await?;
                    }
                    _ => {
                        pm["_used"] = json!(true);
                        ctx.put(&pm).await?;
                    }
                }
            }
            ctx.put(&pi).await?;
            if let Some(spt) = pi.get("_spt").and_then(Value::as_str).map(str::to_string) {
                shared_payment::record_authorization(ctx, &spt).await?;
                if !manual {
                    shared_payment::record_capture(ctx, &spt, amount).await?;
                }
            }
            ctx.emit("charge.succeeded", &ch, None).await?;
            if manual {
                ctx.emit("payment_intent.amount_capturable_updated", &pi, None)
                    .await?;
            } else {
                ctx.emit("payment_intent.succeeded", &pi, None).await?;
                if let Some(inv) = pi["invoice"].as_str().map(str::to_string) {
                    super::billing::on_intent_succeeded(ctx, &inv, &ch).await?;
                }
                disputes::maybe_open(ctx, &ch, behaviour_of(&pm)).await?;
            }
            Ok(pi)
        }
    }
}

/// Completes or fails the 3-D Secure challenge of a `requires_action` intent.
pub async fn authenticate(
    ctx: &mut Ctx<'_>,
    mut pi: Value,
    success: bool,
) -> Result<Value, ApiError> {
    let pm_id = s(&pi, "payment_method");
    let pm = ctx.load("payment_method", &pm_id, None).await?;
    pi["_3ds_token"] = Value::Null;
    if success {
        let outcome = decide(behaviour_of(&pm), false, true, false);
        if s(&pi, "confirmation_method") == "manual" {
            pi["status"] = json!("requires_confirmation");
            pi["next_action"] = Value::Null;
            pi["_authenticated"] = json!(true);
            ctx.put(&pi).await?;
            return Ok(pi);
        }
        match attempt(ctx, pi, pm, outcome, true).await {
            Ok(pi) => Ok(pi),
            Err(e) => e.fields.get("payment_intent").cloned().ok_or(e),
        }
    } else {
        pi["status"] = json!("requires_payment_method");
        pi["next_action"] = Value::Null;
        pi["last_payment_error"] = json!({
            "code": "payment_intent_authentication_failure",
            "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
            "message": "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
            "payment_method": render(&pm),
            "type": "invalid_request_error"
        });
        ctx.put(&pi).await?;
        ctx.emit("payment_intent.payment_failed", &pi, None).await?;
        Ok(pi)
    }
}

pub async fn capture(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "amount_to_capture",
        "metadata",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "application_fee_amount",
        "final_capture",
    ])?;
    let mut pi = ctx.load("payment_intent", id, None).await?;
    if s(&pi, "status") != "requires_capture" {
        return Err(ApiError::unexpected_state(
            format!("This PaymentIntent could not be captured because it has a status of {}. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.", s(&pi, "status")),
            "payment_intent",
            render(&pi),
        ));
    }
    let capturable = i(&pi, "amount_capturable");
    let amount = p.int("amount_to_capture")?.unwrap_or(capturable);
    if amount < 1 {
        return Err(
            ApiError::invalid("This value must be greater than or equal to 1.")
                .param("amount_to_capture"),
        );
    }
    if amount > capturable {
        return Err(ApiError::invalid(format!(
            "The amount to capture ({}) is greater than the amount capturable ({}) on this PaymentIntent.",
            format_amount(amount, &s(&pi, "currency")),
            format_amount(capturable, &s(&pi, "currency"))
        ))
        .param("amount_to_capture")
        .code("amount_too_large"));
    }
    apply_metadata(&mut pi["metadata"], p)?;
    let ch_id = s(&pi, "latest_charge");
    let mut ch = ctx.load("charge", &ch_id, None).await?;
    ch["captured"] = json!(true);
    ch["amount_captured"] = json!(amount);
    // The uncaptured rest is released; Stripe shows it as refunded.
    ch["amount_refunded"] = json!(i(&ch, "amount") - amount);
    let pm_for_fee = ctx
        .find(&s(&pi, "payment_method"))
        .await?
        .unwrap_or(Value::Null);
    super::balance::for_charge(ctx, &mut ch, &pm_for_fee).await?;
    ctx.put(&ch).await?;
    pi["status"] = json!("succeeded");
    pi["amount_received"] = json!(amount);
    pi["amount_capturable"] = json!(0);
    ctx.put(&pi).await?;
    if let Some(spt) = pi.get("_spt").and_then(Value::as_str).map(str::to_string) {
        shared_payment::record_capture(ctx, &spt, amount).await?;
    }
    ctx.emit("charge.captured", &ch, None).await?;
    ctx.emit("payment_intent.succeeded", &pi, None).await?;
    let pm = ctx
        .find(&s(&pi, "payment_method"))
        .await?
        .unwrap_or(Value::Null);
    disputes::maybe_open(ctx, &ch, behaviour_of(&pm)).await?;
    Ok(pi)
}

pub async fn cancel(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["cancellation_reason"])?;
    let reason = p.choice(
        "cancellation_reason",
        &[
            "duplicate",
            "fraudulent",
            "requested_by_customer",
            "abandoned",
        ],
    )?;
    let mut pi = ctx.load("payment_intent", id, None).await?;
    let status = s(&pi, "status");
    if !matches!(
        status.as_str(),
        "requires_payment_method"
            | "requires_capture"
            | "requires_confirmation"
            | "requires_action"
            | "processing"
    ) {
        return Err(ApiError::unexpected_state(
            format!("You cannot cancel this PaymentIntent because it has a status of {status}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing."),
            "payment_intent",
            render(&pi),
        ));
    }
    if status == "requires_capture" {
        let ch_id = s(&pi, "latest_charge");
        let mut ch = ctx.load("charge", &ch_id, None).await?;
        ch["amount_refunded"] = ch["amount"].clone();
        ch["refunded"] = json!(true);
        ctx.put(&ch).await?;
        ctx.emit("charge.refunded", &ch, None).await?;
    }
    pi["status"] = json!("canceled");
    pi["canceled_at"] = json!(ctx.now);
    pi["cancellation_reason"] = json!(reason);
    pi["amount_capturable"] = json!(0);
    pi["next_action"] = Value::Null;
    ctx.put(&pi).await?;
    ctx.emit("payment_intent.canceled", &pi, None).await?;
    Ok(pi)
}

pub async fn update(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "amount",
        "currency",
        "customer",
        "description",
        "metadata",
        "payment_method",
        "payment_method_types",
        "receipt_email",
        "setup_future_usage",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "capture_method",
        "shipping",
        "payment_method_options",
        "payment_method_data",
        "application_fee_amount",
    ])?;
    let mut pi = ctx.load("payment_intent", id, None).await?;
    let status = s(&pi, "status");
    let open = matches!(
        status.as_str(),
        "requires_payment_method" | "requires_confirmation" | "requires_action"
    );
    let money_keys = [
        "amount",
        "currency",
        "payment_method",
        "payment_method_types",
        "capture_method",
        "payment_method_data",
    ];
    if !open {
        if let Some(k) = money_keys.iter().find(|k| p.has(k)) {
            return Err(ApiError::unexpected_state(
                format!("You cannot update `{k}` on this PaymentIntent because it has a status of {status}."),
                "payment_intent",
                render(&pi),
            ));
        }
    }
    let currency = match p.nonempty("currency")? {
        Some(_) => parse_currency(p)?,
        None => s(&pi, "currency"),
    };
    let amount = p.int("amount")?.unwrap_or(i(&pi, "amount"));
    if p.has("amount") || p.has("currency") {
        validate_amount(amount, &currency, "amount")?;
        pi["amount"] = json!(amount);
        pi["currency"] = json!(currency);
    }
    if let Some(c) = p.str("customer")? {
        if c.is_empty() {
            return Err(
                ApiError::invalid("You cannot unset the customer of a PaymentIntent.")
                    .param("customer"),
            );
        }
        ctx.load("customer", c, Some("customer")).await?;
        pi["customer"] = json!(c);
    }
    for key in [
        "description",
        "receipt_email",
        "statement_descriptor",
        "statement_descriptor_suffix",
    ] {
        if let Some(v) = p.str(key)? {
            pi[key] = if v.is_empty() { Value::Null } else { json!(v) };
        }
    }
    if let Some(sfu) = p.str("setup_future_usage")? {
        pi["setup_future_usage"] = if sfu.is_empty() {
            Value::Null
        } else {
            json!(p.choice("setup_future_usage", &["on_session", "off_session"])?)
        };
    }
    if let Some(cm) = p.choice(
        "capture_method",
        &["automatic", "automatic_async", "manual"],
    )? {
        pi["capture_method"] = json!(cm);
    }
    if let Some(t) = p.list("payment_method_types")? {
        if let Some(bad) = t.iter().find(|t| t.as_str() != "card") {
            return Err(ApiError::invalid(format!(
                "The payment method type \"{bad}\" is invalid."
            ))
            .param("payment_method_types"));
        }
        pi["payment_method_types"] = json!(t);
    }
    if p.has("payment_method") || p.has("payment_method_data") {
        let args = confirm_args(ctx, p).await?;
        if let Some(pm) = args.payment_method {
            pi["payment_method"] = pm["id"].clone();
            pi["status"] = json!("requires_confirmation");
            pi["next_action"] = Value::Null;
        }
    }
    apply_metadata(&mut pi["metadata"], p)?;
    pi["last_payment_error"] = Value::Null;
    ctx.put(&pi).await?;
    Ok(pi)
}

pub async fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let mut filters = Vec::new();
    if let Some(c) = p.nonempty("customer")? {
        filters.push(Filter::Eq("customer", c.to_string()));
    }
    ctx.list("payment_intent", filters, p, "/v1/payment_intents")
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_follow_currency_rules() {
        assert!(validate_amount(50, "eur", "amount").is_ok());
        assert!(validate_amount(49, "eur", "amount").is_err());
        assert!(validate_amount(100_000_000, "eur", "amount").is_err());
        assert!(validate_amount(1005, "kwd", "amount").is_err());
        assert!(validate_amount(1010, "kwd", "amount").is_ok());
        assert!(validate_amount(0, "jpy", "amount").is_err());
        assert_eq!(format_amount(1234, "eur"), "€12.34");
        assert_eq!(format_amount(500, "jpy"), "¥500");
        assert_eq!(format_amount(1230, "kwd"), "KWD 1.230");
    }
}
