//! `/v1/refunds`: full or partial, repeated up to the captured amount. The
//! `pendingRefund` card leaves the refund `pending` and settles it a moment
//! later; `refundFail` succeeds and then fails (both via the jobs table).

use serde_json::{json, Value};

use super::payment_intents::format_amount;
use crate::cards::Behaviour;
use crate::ctx::{diff, i, s, Ctx};
use crate::error::ApiError;
use crate::form::{apply_metadata, Params};
use crate::store::{self, Filter};
use crate::{cards, ids};

/// How long a pending or failing test refund waits before it changes.
pub const SETTLE_DELAY_MS: i64 = 1_000;

pub async fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "payment_intent",
        "charge",
        "amount",
        "reason",
        "metadata",
        "refund_application_fee",
        "reverse_transfer",
        "instructions_email",
        "origin",
    ])?;
    let reason = p.choice(
        "reason",
        &["duplicate", "fraudulent", "requested_by_customer"],
    )?;
    let (mut ch, pi_id) = match (p.nonempty("charge")?, p.nonempty("payment_intent")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("You can only pass one of `charge` or `payment_intent`.").param("payment_intent"))
        }
        (Some(c), None) => {
            let ch = ctx.load("charge", c, Some("charge")).await?;
            let pi = s(&ch, "payment_intent");
            (ch, pi)
        }
        (None, Some(pi_id)) => {
            let pi = ctx.load("payment_intent", pi_id, Some("payment_intent")).await?;
            let ch = match pi.get("latest_charge").and_then(Value::as_str) {
                Some(c) => ctx.load("charge", c, Some("payment_intent")).await?,
                None => {
                    return Err(ApiError::invalid(format!("This PaymentIntent ({pi_id}) does not have a successful charge to refund.")).param("payment_intent"))
                }
            };
            (ch, pi_id.to_string())
        }
        (None, None) => return Err(ApiError::invalid("One of the following params should be provided for this request: payment_intent or charge.")),
    };
    let ch_id = s(&ch, "id");
    if let Some(c) = ctx.find(&s(&ch, "customer")).await? {
        super::billing::use_customer_time(ctx, &c).await?;
    }
    if s(&ch, "status") != "succeeded" {
        return Err(ApiError::invalid(format!(
            "Charge {ch_id} has no successful payment to refund."
        ))
        .param("charge"));
    }
    let currency = s(&ch, "currency");
    let amount_total = i(&ch, "amount");
    let already = i(&ch, "amount_refunded");
    if ch["refunded"].as_bool() == Some(true) || already >= amount_total {
        return Err(
            ApiError::invalid(format!("Charge {ch_id} has already been refunded."))
                .code("charge_already_refunded"),
        );
    }
    let captured = ch["captured"].as_bool() == Some(true);
    let remaining = amount_total - already;
    let amount = p.int("amount")?.unwrap_or(remaining);
    if amount < 1 {
        return Err(
            ApiError::invalid("This value must be greater than or equal to 1.").param("amount"),
        );
    }
    if amount > remaining {
        return Err(ApiError::invalid(format!(
            "Refund amount ({}) is greater than unrefunded amount on charge ({})",
            format_amount(amount, &currency),
            format_amount(remaining, &currency)
        ))
        .param("amount")
        .code("amount_too_large"));
    }
    if !captured && amount != remaining {
        return Err(ApiError::invalid("You cannot partially refund an uncaptured charge. Instead, capture the charge for an amount less than the original amount").param("amount"));
    }
    let pm = ctx
        .find(&s(&ch, "payment_method"))
        .await?
        .unwrap_or(Value::Null);
    let behaviour = cards::behaviour_of(&s(&pm, "_card"));
    let pending = behaviour == Behaviour::PendingRefund && captured;
    let mut re = json!({
        "id": ids::new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": null,
        "charge": ch_id,
        "created": ctx.now,
        "currency": currency,
        "metadata": {},
        "payment_intent": if pi_id.is_empty() { Value::Null } else { json!(pi_id) },
        "reason": reason,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": if pending { "pending" } else { "succeeded" },
        "transfer_reversal": null,
    });
    apply_metadata(&mut re["metadata"], p)?;
    if captured {
        super::balance::for_refund(ctx, &mut re, false).await?;
    }
    ctx.put(&re).await?;
    ch["amount_refunded"] = json!(already + amount);
    ch["refunded"] = json!(already + amount >= amount_total);
    ctx.put(&ch).await?;
    ctx.emit("refund.created", &re, None).await?;
    ctx.emit("charge.refunded", &ch, None).await?;
    if !captured {
        // Refunding an uncaptured charge releases it and cancels the intent.
        if let Ok(mut pi) = ctx.load("payment_intent", &pi_id, None).await {
            pi["status"] = json!("canceled");
            pi["canceled_at"] = json!(ctx.now);
            pi["amount_capturable"] = json!(0);
            ctx.put(&pi).await?;
            ctx.emit("payment_intent.canceled", &pi, None).await?;
        }
    }
    let re_id = s(&re, "id");
    let at = crate::ctx::now_ms() + SETTLE_DELAY_MS;
    if pending {
        store::insert_job(&mut ctx.tx, at, "refund_settle", &re_id).await?;
    } else if behaviour == Behaviour::RefundFail {
        store::insert_job(&mut ctx.tx, at, "refund_fail", &re_id).await?;
    }
    Ok(re)
}

/// Runs a delayed refund transition from the jobs table.
pub async fn run_job(ctx: &mut Ctx<'_>, kind: &str, refund_id: &str) -> Result<(), ApiError> {
    let Ok(mut re) = ctx.load("refund", refund_id, None).await else {
        return Ok(());
    };
    let before = re.clone();
    let ch_id = s(&re, "charge");
    match kind {
        "refund_settle" if s(&re, "status") == "pending" => {
            re["status"] = json!("succeeded");
        }
        "refund_fail" if s(&re, "status") == "succeeded" => {
            re["status"] = json!("failed");
            re["failure_reason"] = json!("expired_or_canceled_card");
            super::balance::for_refund(ctx, &mut re, true).await?;
            // The money comes back to the merchant's balance.
            if let Ok(mut ch) = ctx.load("charge", &ch_id, None).await {
                ch["amount_refunded"] =
                    json!((i(&ch, "amount_refunded") - i(&re, "amount")).max(0));
                ch["refunded"] = json!(false);
                ctx.put(&ch).await?;
            }
        }
        _ => return Ok(()),
    }
    ctx.put(&re).await?;
    let prev = diff(&before, &re);
    ctx.emit("refund.updated", &re, Some(prev.clone())).await?;
    ctx.emit("charge.refund.updated", &re, Some(prev)).await?;
    if s(&re, "status") == "failed" {
        ctx.emit("refund.failed", &re, None).await?;
    }
    Ok(())
}

pub async fn update(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["metadata"])?;
    let mut re = ctx.load("refund", id, None).await?;
    let before = re.clone();
    apply_metadata(&mut re["metadata"], p)?;
    if re != before {
        ctx.put(&re).await?;
        let prev = diff(&before, &re);
        ctx.emit("refund.updated", &re, Some(prev.clone())).await?;
        ctx.emit("charge.refund.updated", &re, Some(prev)).await?;
    }
    Ok(re)
}

pub async fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "charge",
        "payment_intent",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let mut filters = Vec::new();
    if let Some(c) = p.nonempty("charge")? {
        filters.push(Filter::Eq("charge", c.to_string()));
    }
    if let Some(pi) = p.nonempty("payment_intent")? {
        filters.push(Filter::Eq("payment_intent", pi.to_string()));
    }
    ctx.list("refund", filters, p, "/v1/refunds").await
}
