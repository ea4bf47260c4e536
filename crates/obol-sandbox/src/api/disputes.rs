//! `/v1/disputes`: opened right after capture for the dispute test cards;
//! evidence updates (`winning_evidence` / `losing_evidence` decide the
//! outcome in test mode), close → lost.

use serde_json::{json, Map, Value};

use crate::cards::Behaviour;
use crate::ctx::{diff, i, s, Ctx};
use crate::error::ApiError;
use crate::form::{apply_metadata, Params};
use crate::ids;
use crate::store::Filter;

const EVIDENCE_FIELDS: &[&str] = &[
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
];

/// Opens a dispute on a freshly captured charge when the card asks for one.
pub async fn maybe_open(ctx: &mut Ctx<'_>, charge: &Value, b: Behaviour) -> Result<(), ApiError> {
    let Behaviour::Dispute { reason, inquiry } = b else {
        return Ok(());
    };
    let evidence: Map<String, Value> = EVIDENCE_FIELDS
        .iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    let mut dp = json!({
        "id": ids::new_id("dp"),
        "object": "dispute",
        "amount": i(charge, "amount_captured"),
        "balance_transactions": [],
        "charge": charge["id"],
        "created": ctx.now,
        "currency": charge["currency"],
        "evidence": evidence,
        "evidence_details": {"due_by": ctx.now + 7 * 86_400, "has_evidence": false, "past_due": false, "submission_count": 0},
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "network_reason_code": "10.4",
        "payment_intent": charge["payment_intent"],
        "payment_method_details": {"card": {"brand": charge["payment_method_details"]["card"]["brand"], "network_reason_code": "10.4"}, "type": "card"},
        "reason": reason,
        "status": if inquiry { "warning_needs_response" } else { "needs_response" },
    });
    if !inquiry {
        super::balance::for_dispute(ctx, &mut dp, false).await?;
    }
    ctx.put(&dp).await?;
    let mut ch = charge.clone();
    ch["disputed"] = json!(true);
    ctx.put(&ch).await?;
    ctx.emit("charge.dispute.created", &dp, None).await?;
    if !inquiry {
        ctx.emit("charge.dispute.funds_withdrawn", &dp, None)
            .await?;
    }
    Ok(())
}

fn closed(status: &str) -> bool {
    matches!(
        status,
        "won" | "lost" | "warning_closed" | "charge_refunded"
    )
}

pub async fn update(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["evidence", "metadata", "submit"])?;
    let mut dp = ctx.load("dispute", id, None).await?;
    let status = s(&dp, "status");
    if closed(&status) {
        return Err(ApiError::invalid(format!(
            "This dispute is already closed (status: {status}); it cannot be updated."
        )));
    }
    let before = dp.clone();
    if let Some(ev) = p.obj("evidence")? {
        for (k, v) in ev {
            if !EVIDENCE_FIELDS.contains(&k.as_str()) {
                return Err(ApiError::invalid(format!(
                    "Received unknown parameter: evidence[{k}]"
                ))
                .param(&format!("evidence[{k}]")));
            }
            let Value::String(v) = v else {
                return Err(ApiError::invalid(format!("Invalid string: evidence[{k}]"))
                    .param(&format!("evidence[{k}]")));
            };
            dp["evidence"][k] = if v.is_empty() { Value::Null } else { json!(v) };
        }
        dp["evidence_details"]["has_evidence"] = json!(true);
    }
    apply_metadata(&mut dp["metadata"], p)?;
    let submit = p.bool("submit")?.unwrap_or(true);
    let inquiry = status.starts_with("warning_");
    if submit && p.has("evidence") {
        dp["evidence_details"]["submission_count"] =
            json!(i(&dp["evidence_details"], "submission_count") + 1);
        dp["status"] = json!(if inquiry {
            "warning_under_review"
        } else {
            "under_review"
        });
    }
    ctx.put(&dp).await?;
    if dp != before {
        ctx.emit("charge.dispute.updated", &dp, Some(diff(&before, &dp)))
            .await?;
    }
    // Test mode decides at once on the magic evidence strings.
    if submit {
        let verdict = match dp["evidence"]["uncategorized_text"].as_str() {
            Some("winning_evidence") => Some(if inquiry { "warning_closed" } else { "won" }),
            Some("losing_evidence") => Some(if inquiry { "warning_closed" } else { "lost" }),
            _ => None,
        };
        if let Some(v) = verdict {
            dp["status"] = json!(v);
            ctx.put(&dp).await?;
            ctx.emit("charge.dispute.closed", &dp, None).await?;
            if v == "won" {
                super::balance::for_dispute(ctx, &mut dp, true).await?;
                ctx.put(&dp).await?;
                ctx.emit("charge.dispute.funds_reinstated", &dp, None)
                    .await?;
            }
        }
    }
    Ok(dp)
}

pub async fn close(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let mut dp = ctx.load("dispute", id, None).await?;
    let status = s(&dp, "status");
    if closed(&status) {
        return Err(ApiError::invalid(format!(
            "This dispute is already closed (status: {status})."
        )));
    }
    dp["status"] = json!(if status.starts_with("warning_") {
        "warning_closed"
    } else {
        "lost"
    });
    ctx.put(&dp).await?;
    ctx.emit("charge.dispute.closed", &dp, None).await?;
    Ok(dp)
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
    ctx.list("dispute", filters, p, "/v1/disputes").await
}
