//! Billing: test clocks, subscriptions, invoices and invoice items, and the
//! engine that moves them through time.
//!
//! Time: objects of a customer on a test clock take the clock's
//! `frozen_time` as "now" (`created`, periods, due dates, and the events
//! they cause: the sandbox's reading of Stripe's simulated time). Every
//! subscription and invoice carries `_clock` and `_due` (when it next has
//! something to do); advancing a clock runs, in time order, everything of
//! that clock due up to the new time. Objects of customers without a clock
//! wake up through a `billing_tick` job at their real due time.
//!
//! Subscriptions (Stripe's states): create → `incomplete` until the first
//! invoice is paid → `active`; `trialing` until `trial_end`; a failed
//! renewal → `past_due`, retried 3, 5 and 7 days after each failed attempt
//! (Stripe's classic schedule; Smart Retries differ), then `canceled`
//! (the dashboard's default "cancel the subscription" — a guess at the
//! account setting); an unpaid first invoice → `incomplete_expired` after
//! 23 hours; a trial ending without a payment method with
//! `trial_settings[end_behavior][missing_payment_method]=pause` → `paused`.
//!
//! Invoices: `draft` → (finalize) `open` → `paid` | `void` |
//! `uncollectible`. Finalizing creates the PaymentIntent; automatic
//! collection confirms it off-session with the default card, and a card
//! that needs 3-D Secure leaves it `requires_action`
//! (`invoice.payment_action_required`).

use serde_json::{json, Map, Value};

use super::payment_intents::{self, Outcome};
use super::{payment_methods, products};
use crate::ctx::{diff, i, render, s, Ctx};
use crate::error::ApiError;
use crate::form::{apply_metadata, int_at, Params};
use crate::ids;
use crate::store::{self, Arg, Filter};
use crate::time::{add_interval, next_boundary};

pub const CLOCK: &str = "test_helpers.test_clock";
/// Retry delays after the 1st, 2nd and 3rd failed renewal attempt (unconfirmed
/// against Smart Retries; Stripe's classic custom schedule).
const RETRY_DAYS: [i64; 3] = [3, 5, 7];
/// An unpaid first invoice expires the subscription after 23 hours.
const INCOMPLETE_TTL: i64 = 23 * 3600;
/// Stripe finalizes an auto-advancing draft about an hour after creation.
const FINALIZE_DELAY: i64 = 3600;

// ---------------------------------------------------------------- clocks

/// Makes `ctx.now` the customer's clock time; returns the clock id.
pub async fn use_customer_time(
    ctx: &mut Ctx<'_>,
    customer: &Value,
) -> Result<Option<String>, ApiError> {
    let Some(id) = customer.get("test_clock").and_then(Value::as_str) else {
        return Ok(None);
    };
    let clock = ctx.load(CLOCK, id, Some("test_clock")).await?;
    ctx.now = i(&clock, "frozen_time");
    Ok(Some(id.to_string()))
}

pub async fn create_clock(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["frozen_time", "name", "customer"])?;
    let frozen = p
        .int("frozen_time")?
        .ok_or_else(|| ApiError::missing_param("frozen_time"))?;
    let clock = json!({
        "id": format!("clock_{}", ids::random(24)),
        "object": CLOCK,
        "created": ctx.now,
        "deletes_after": ctx.now + 30 * 86_400,
        "frozen_time": frozen,
        "livemode": false,
        "name": p.nonempty("name")?,
        "status": "ready",
    });
    // `customer`: the sandbox's reading of the newest API version, which
    // puts an existing customer (without a clock) on the new clock.
    let customer = match p.nonempty("customer")? {
        Some(c) => {
            let cus = ctx.load("customer", c, Some("customer")).await?;
            if !cus["test_clock"].is_null() {
                return Err(ApiError::invalid(format!(
                    "The customer {c} is already attached to a test clock."
                ))
                .param("customer"));
            }
            Some(cus)
        }
        None => None,
    };
    ctx.put(&clock).await?;
    ctx.emit("test_helpers.test_clock.created", &clock, None)
        .await?;
    if let Some(mut cus) = customer {
        let before = cus.clone();
        let clock_id = s(&clock, "id");
        cus["test_clock"] = json!(clock_id);
        ctx.put(&cus).await?;
        ctx.emit("customer.updated", &cus, Some(diff(&before, &cus)))
            .await?;
        for kind in ["subscription", "invoice", "invoiceitem"] {
            let objs = store::find_objects(
                &mut ctx.tx,
                kind,
                ctx.account.as_deref(),
                "customer = ?",
                vec![Arg::Text(Some(s(&cus, "id")))],
                "seq",
                10_000,
            )
            .await?;
            for mut o in objs {
                o["test_clock"] = json!(clock_id);
                o["_clock"] = json!(clock_id);
                ctx.put(&o).await?;
            }
        }
    }
    Ok(clock)
}

pub async fn advance_clock(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["frozen_time"])?;
    let mut clock = ctx.load(CLOCK, id, None).await?;
    let to = p
        .int("frozen_time")?
        .ok_or_else(|| ApiError::missing_param("frozen_time"))?;
    if s(&clock, "status") != "ready" {
        return Err(ApiError::invalid(format!(
            "The test clock {id} is advancing; wait until its status is ready."
        ))
        .code("test_clock_advancing"));
    }
    let from = i(&clock, "frozen_time");
    if to <= from {
        return Err(ApiError::invalid(format!(
            "The test clock can only move forward: frozen_time must be after {from}."
        ))
        .param("frozen_time"));
    }
    clock["frozen_time"] = json!(to);
    clock["status"] = json!("advancing");
    ctx.put(&clock).await?;
    ctx.emit("test_helpers.test_clock.advancing", &clock, None)
        .await?;
    store::insert_job(&mut ctx.tx, crate::ctx::now_ms(), "clock_advance", id).await?;
    Ok(clock)
}

/// The `clock_advance` job: everything due up to the new time, then `ready`.
pub async fn run_advance(ctx: &mut Ctx<'_>, id: &str) -> Result<(), ApiError> {
    let Some(mut clock) = ctx.find(id).await? else {
        return Ok(());
    };
    if s(&clock, "status") != "advancing" {
        return Ok(());
    }
    let to = i(&clock, "frozen_time");
    run_due(ctx, Some(id), to).await?;
    super::balance::run_payouts(ctx, to).await?;
    ctx.now = to;
    clock["status"] = json!("ready");
    ctx.put(&clock).await?;
    ctx.emit("test_helpers.test_clock.ready", &clock, None)
        .await?;
    Ok(())
}

pub async fn delete_clock(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let clock = ctx.load(CLOCK, id, None).await?;
    let customers = store::find_objects(
        &mut ctx.tx,
        "customer",
        ctx.account.as_deref(),
        "json_extract(data, '$.test_clock') = ?",
        vec![Arg::Text(Some(id.to_string()))],
        "seq",
        10_000,
    )
    .await?;
    // Deleting a clock deletes its customers (and so stops their billing).
    for c in customers {
        let stub =
            json!({"id": c["id"], "object": "customer", "deleted": true, "created": c["created"]});
        ctx.put(&stub).await?;
        ctx.emit("customer.deleted", &c, None).await?;
    }
    let stub = json!({"id": id, "object": CLOCK, "deleted": true, "created": clock["created"]});
    ctx.put(&stub).await?;
    ctx.emit("test_helpers.test_clock.deleted", &clock, None)
        .await?;
    Ok(json!({"id": id, "object": CLOCK, "deleted": true}))
}

pub async fn list_clocks(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["limit", "starting_after", "ending_before"])?;
    ctx.list(CLOCK, Vec::new(), p, "/v1/test_helpers/test_clocks")
        .await
}

// ---------------------------------------------------------------- engine

/// When a subscription next has something to do.
fn sub_due(sub: &Value) -> Option<i64> {
    let period_end = i(sub, "current_period_end");
    match s(sub, "status").as_str() {
        "incomplete" => Some(i(sub, "created") + INCOMPLETE_TTL),
        "trialing" => {
            let end = i(sub, "trial_end");
            if sub["_trial_will_end_sent"].as_bool() == Some(true)
                || end - 3 * 86_400 <= i(sub, "created")
            {
                Some(end)
            } else {
                Some(end - 3 * 86_400)
            }
        }
        "active" | "past_due" | "unpaid" => Some(period_end),
        _ => None,
    }
}

fn invoice_due(inv: &Value) -> Option<i64> {
    match s(inv, "status").as_str() {
        "draft" if inv["auto_advance"].as_bool() == Some(true) => {
            inv["automatically_finalizes_at"].as_i64()
        }
        "open"
            if s(inv, "collection_method") == "charge_automatically"
                && inv["auto_advance"].as_bool() == Some(true) =>
        {
            inv["next_payment_attempt"].as_i64()
        }
        _ => None,
    }
}

/// `save`s a changed object and emits `event` with what changed since
/// `before` (`data.previous_attributes`).
async fn save_updated(
    ctx: &mut Ctx<'_>,
    event: &str,
    before: &Value,
    obj: &mut Value,
) -> Result<(), ApiError> {
    save(ctx, obj).await?;
    ctx.emit(event, obj, Some(diff(before, obj))).await
}

/// Stores a subscription or invoice with its `_due`, and for objects off
/// any clock queues the real-time wake-up.
async fn save(ctx: &mut Ctx<'_>, obj: &mut Value) -> Result<(), ApiError> {
    let due = if s(obj, "object") == "subscription" {
        sub_due(obj)
    } else {
        invoice_due(obj)
    };
    obj["_due"] = json!(due);
    ctx.put(obj).await?;
    if let (Some(t), true) = (due, obj["_clock"].is_null()) {
        let target = ctx.account.clone().unwrap_or_default();
        store::insert_job(&mut ctx.tx, t.saturating_mul(1000), "billing_tick", &target).await?;
    }
    Ok(())
}

/// Runs everything of `clock` (None: objects off any clock) due up to
/// `until`, earliest first.
pub async fn run_due(ctx: &mut Ctx<'_>, clock: Option<&str>, until: i64) -> Result<(), ApiError> {
    for _ in 0..10_000 {
        let mut next: Option<Value> = None;
        for kind in ["invoice", "subscription"] {
            let found = store::find_objects(
                &mut ctx.tx,
                kind,
                ctx.account.as_deref(),
                "json_extract(data, '$._clock') IS ? AND json_extract(data, '$._due') <= ?",
                vec![Arg::Text(clock.map(str::to_string)), Arg::Int(until)],
                "json_extract(data, '$._due'), seq",
                1,
            )
            .await?;
            if let Some(o) = found.into_iter().next() {
                if next
                    .as_ref()
                    .map(|n| i(&o, "_due") < i(n, "_due"))
                    .unwrap_or(true)
                {
                    next = Some(o);
                }
            }
        }
        let Some(obj) = next else {
            return Ok(());
        };
        let due = i(&obj, "_due");
        if clock.is_some() {
            ctx.now = due;
        }
        let id = s(&obj, "id");
        if s(&obj, "object") == "subscription" {
            sub_tick(ctx, obj).await?;
        } else {
            invoice_tick(ctx, obj).await?;
        }
        // Whatever ran must have moved its own due time; never spin.
        if let Some(mut o) = ctx.find(&id).await? {
            if o["_due"].as_i64() == Some(due) {
                o["_due"] = Value::Null;
                ctx.put(&o).await?;
            }
        }
    }
    Ok(())
}

/// The `billing_tick` job for objects off any clock.
pub async fn run_tick(ctx: &mut Ctx<'_>, account: &str) -> Result<(), ApiError> {
    ctx.adopt((!account.is_empty()).then(|| account.to_string()));
    let now = ctx.now;
    run_due(ctx, None, now).await
}

async fn sub_tick(ctx: &mut Ctx<'_>, mut sub: Value) -> Result<(), ApiError> {
    let before = sub.clone();
    let now = ctx.now;
    match s(&sub, "status").as_str() {
        "incomplete" => {
            sub["status"] = json!("incomplete_expired");
            sub["ended_at"] = json!(now);
            save_updated(ctx, "customer.subscription.updated", &before, &mut sub).await?;
            if let Some(inv_id) = sub["latest_invoice"].as_str() {
                let inv = ctx.load("invoice", inv_id, None).await?;
                if s(&inv, "status") == "open" {
                    void_inner(ctx, inv).await?;
                }
            }
        }
        "trialing" if now < i(&sub, "trial_end") => {
            sub["_trial_will_end_sent"] = json!(true);
            save(ctx, &mut sub).await?;
            ctx.emit("customer.subscription.trial_will_end", &sub, None)
                .await?;
        }
        "trialing" => {
            let pm = payment_method_for(ctx, &sub, None).await?;
            let behaviour = s(
                &sub["trial_settings"]["end_behavior"],
                "missing_payment_method",
            );
            if pm.is_none() && behaviour == "pause" {
                sub["status"] = json!("paused");
                save_updated(ctx, "customer.subscription.updated", &before, &mut sub).await?;
                ctx.emit("customer.subscription.paused", &sub, None).await?;
                return Ok(());
            }
            if pm.is_none() && behaviour == "cancel" {
                return cancel_inner(ctx, sub, "cancellation_requested")
                    .await
                    .map(|_| ());
            }
            sub["status"] = json!("active");
            renew(ctx, sub, before).await?;
        }
        "active" | "past_due" | "unpaid" => {
            if sub["cancel_at_period_end"].as_bool() == Some(true) {
                ctx.now = i(&sub, "current_period_end");
                cancel_inner(ctx, sub, "cancellation_requested").await?;
            } else {
                renew(ctx, sub, before).await?;
            }
        }
        _ => {
            sub["_due"] = Value::Null;
            ctx.put(&sub).await?;
        }
    }
    Ok(())
}

/// A new period: `customer.subscription.updated`, then its invoice,
/// finalized and collected at once (Stripe waits about an hour).
async fn renew(ctx: &mut Ctx<'_>, mut sub: Value, before: Value) -> Result<(), ApiError> {
    let start = i(&sub, "current_period_end");
    let (interval, count) = interval_of(&sub);
    let end = next_boundary(i(&sub, "billing_cycle_anchor"), &interval, count, start);
    sub["current_period_start"] = json!(start);
    sub["current_period_end"] = json!(end);
    let customer = ctx.load("customer", &s(&sub, "customer"), None).await?;
    let lines = sub_lines(&sub, start, end, None);
    let inv = new_invoice(
        ctx,
        &customer,
        Some(&sub),
        lines,
        "subscription_cycle",
        Defaults::subscription(),
    )
    .await?;
    // Stripe's order for a renewal: invoice.created, then the subscription's
    // new period and latest_invoice in customer.subscription.updated (unconfirmed).
    sub["latest_invoice"] = inv["id"].clone();
    save_updated(ctx, "customer.subscription.updated", &before, &mut sub).await?;
    let inv = finalize_inner(ctx, inv).await?;
    if s(&inv, "status") == "open" {
        collect(ctx, inv, None, true).await?;
    }
    Ok(())
}

async fn invoice_tick(ctx: &mut Ctx<'_>, inv: Value) -> Result<(), ApiError> {
    match s(&inv, "status").as_str() {
        "draft" => {
            let inv = finalize_inner(ctx, inv).await?;
            if s(&inv, "status") == "open" && s(&inv, "collection_method") == "charge_automatically"
            {
                collect(ctx, inv, None, true).await?;
            }
        }
        "open" => {
            collect(ctx, inv, None, true).await?;
        }
        _ => {}
    }
    Ok(())
}

fn interval_of(sub: &Value) -> (String, i64) {
    let r = &sub["items"]["data"][0]["price"]["recurring"];
    (s(r, "interval"), r["interval_count"].as_i64().unwrap_or(1))
}

// ---------------------------------------------------------------- invoices

struct Defaults {
    collection_method: String,
    auto_advance: bool,
    finalizes_at: Option<i64>,
    due_date: Option<i64>,
    days_until_due: Option<i64>,
    default_payment_method: Option<String>,
    description: Option<String>,
}

impl Defaults {
    fn subscription() -> Self {
        Defaults {
            collection_method: "charge_automatically".into(),
            auto_advance: true,
            finalizes_at: None,
            due_date: None,
            days_until_due: None,
            default_payment_method: None,
            description: None,
        }
    }
}

fn totals(inv: &mut Value) {
    let total: i64 = inv["lines"]["data"]
        .as_array()
        .map(|l| l.iter().map(|x| i(x, "amount")).sum())
        .unwrap_or(0);
    for k in [
        "subtotal",
        "subtotal_excluding_tax",
        "total",
        "total_excluding_tax",
        "amount_due",
        "amount_remaining",
    ] {
        inv[k] = json!(total);
    }
}

async fn new_invoice(
    ctx: &mut Ctx<'_>,
    customer: &Value,
    sub: Option<&Value>,
    lines: Vec<Value>,
    billing_reason: &str,
    d: Defaults,
) -> Result<Value, ApiError> {
    let id = format!("in_{}", ids::random(24));
    let now = ctx.now;
    let currency = lines
        .first()
        .map(|l| s(l, "currency"))
        .or_else(|| sub.map(|x| s(x, "currency")))
        .unwrap_or_else(|| "eur".into());
    let mut inv = json!({
        "id": id, "object": "invoice",
        "account_country": "DE", "account_name": "obol sandbox", "account_tax_ids": null,
        "amount_due": 0, "amount_paid": 0, "amount_remaining": 0, "amount_shipping": 0,
        "application": null, "application_fee_amount": null,
        "attempt_count": 0, "attempted": false,
        "auto_advance": d.auto_advance,
        "automatic_tax": {"enabled": false, "status": null},
        "automatically_finalizes_at": if d.auto_advance { Some(d.finalizes_at.unwrap_or(now + FINALIZE_DELAY)) } else { None },
        "billing_reason": billing_reason, "charge": null,
        "collection_method": d.collection_method,
        "created": now, "currency": currency, "custom_fields": null,
        "customer": customer["id"], "customer_address": customer["address"],
        "customer_email": customer["email"], "customer_name": customer["name"],
        "customer_phone": customer["phone"], "customer_shipping": customer["shipping"],
        "customer_tax_exempt": customer["tax_exempt"], "customer_tax_ids": [],
        "default_payment_method": d.default_payment_method, "default_source": null, "default_tax_rates": [],
        "description": d.description, "discount": null, "discounts": [],
        "due_date": d.due_date, "effective_at": null, "ending_balance": null, "footer": null,
        "from_invoice": null, "hosted_invoice_url": null, "invoice_pdf": null,
        "last_finalization_error": null, "latest_revision": null,
        "lines": {"object": "list", "data": lines, "has_more": false, "url": format!("/v1/invoices/{id}/lines")},
        "livemode": false, "metadata": {}, "next_payment_attempt": null, "number": null,
        "on_behalf_of": null, "paid": false, "paid_out_of_band": false, "payment_intent": null,
        "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
        "period_end": now, "period_start": now,
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
        "quote": null, "receipt_number": null, "rendering_options": null,
        "shipping_cost": null, "shipping_details": null, "starting_balance": 0,
        "statement_descriptor": null, "status": "draft",
        "status_transitions": {"finalized_at": null, "marked_uncollectible_at": null, "paid_at": null, "voided_at": null},
        "subscription": sub.map(|x| x["id"].clone()),
        "subscription_details": {"metadata": sub.map(|x| x["metadata"].clone())},
        "subtotal": 0, "subtotal_excluding_tax": 0, "tax": null,
        "test_clock": customer["test_clock"], "total": 0, "total_discount_amounts": [],
        "total_excluding_tax": 0, "total_tax_amounts": [], "transfer_data": null,
        "webhooks_delivered_at": now,
        "_clock": customer["test_clock"], "_days_until_due": d.days_until_due,
    });
    totals(&mut inv);
    save(ctx, &mut inv).await?;
    ctx.emit("invoice.created", &inv, None).await?;
    Ok(inv)
}

/// draft → open: number, hosted URL, due date, and the PaymentIntent.
async fn finalize_inner(ctx: &mut Ctx<'_>, mut inv: Value) -> Result<Value, ApiError> {
    let now = ctx.now;
    let mut customer = ctx.load("customer", &s(&inv, "customer"), None).await?;
    let seq = customer["next_invoice_sequence"].as_i64().unwrap_or(1);
    customer["next_invoice_sequence"] = json!(seq + 1);
    ctx.put(&customer).await?;
    let id = s(&inv, "id");
    inv["number"] = json!(format!("{}-{seq:04}", s(&customer, "invoice_prefix")));
    inv["status"] = json!("open");
    inv["status_transitions"]["finalized_at"] = json!(now);
    inv["effective_at"] = json!(now);
    inv["automatically_finalizes_at"] = Value::Null;
    inv["hosted_invoice_url"] = json!(format!("{}/_sandbox/invoices/{id}", ctx.app.base_url));
    inv["invoice_pdf"] = json!(format!("{}/_sandbox/invoices/{id}/pdf", ctx.app.base_url));
    if s(&inv, "collection_method") == "send_invoice" && inv["due_date"].is_null() {
        let days = inv["_days_until_due"].as_i64().unwrap_or(30);
        inv["due_date"] = json!(now + days * 86_400);
    }
    let amount = i(&inv, "amount_due");
    if amount > 0 {
        let mut form = Map::new();
        form.insert("amount".into(), json!(amount.to_string()));
        form.insert("currency".into(), inv["currency"].clone());
        form.insert("customer".into(), inv["customer"].clone());
        form.insert(
            "description".into(),
            json!(format!("Invoice {}", s(&inv, "number"))),
        );
        let pi = payment_intents::create_for_invoice(ctx, &Params(form), &id).await?;
        inv["payment_intent"] = pi["id"].clone();
    }
    if s(&inv, "collection_method") == "charge_automatically"
        && inv["auto_advance"].as_bool() == Some(true)
        && amount > 0
    {
        inv["next_payment_attempt"] = json!(now);
    }
    save(ctx, &mut inv).await?;
    ctx.emit("invoice.finalized", &inv, None).await?;
    if amount == 0 {
        return mark_paid(ctx, inv, None, false).await;
    }
    Ok(inv)
}

/// open → paid; from a PaymentIntent success (`charge`) or out of band.
async fn mark_paid(
    ctx: &mut Ctx<'_>,
    mut inv: Value,
    charge: Option<&Value>,
    out_of_band: bool,
) -> Result<Value, ApiError> {
    inv["status"] = json!("paid");
    inv["paid"] = json!(true);
    inv["paid_out_of_band"] = json!(out_of_band);
    inv["amount_paid"] = json!(i(&inv, "amount_due"));
    inv["amount_remaining"] = json!(0);
    inv["next_payment_attempt"] = Value::Null;
    inv["status_transitions"]["paid_at"] = json!(ctx.now);
    if let Some(ch) = charge {
        inv["charge"] = ch["id"].clone();
        inv["attempt_count"] = json!(i(&inv, "attempt_count") + 1);
        inv["attempted"] = json!(true);
    }
    save(ctx, &mut inv).await?;
    // Stripe sends both; `invoice.paid` also covers out-of-band payments.
    if !out_of_band {
        ctx.emit("invoice.payment_succeeded", &inv, None).await?;
    }
    ctx.emit("invoice.paid", &inv, None).await?;
    if let Some(sub_id) = inv["subscription"].as_str() {
        let mut sub = ctx.load("subscription", sub_id, None).await?;
        let status = s(&sub, "status");
        if matches!(status.as_str(), "incomplete" | "past_due" | "unpaid") {
            let prev = sub.clone();
            sub["status"] = json!("active");
            save_updated(ctx, "customer.subscription.updated", &prev, &mut sub).await?;
        }
    }
    Ok(inv)
}

/// Called when an invoice's PaymentIntent succeeds, however it was
/// confirmed (automatic collection, `/pay`, the 3-D Secure page, the API).
pub async fn on_intent_succeeded(
    ctx: &mut Ctx<'_>,
    inv_id: &str,
    charge: &Value,
) -> Result<(), ApiError> {
    let inv = ctx.load("invoice", inv_id, None).await?;
    if matches!(s(&inv, "status").as_str(), "open" | "uncollectible") {
        mark_paid(ctx, inv, Some(charge), false).await?;
    }
    Ok(())
}

/// The card an invoice is charged to: the invoice's, the subscription's,
/// then the customer's `invoice_settings.default_payment_method`.
async fn payment_method_for(
    ctx: &mut Ctx<'_>,
    obj: &Value,
    explicit: Option<&str>,
) -> Result<Option<Value>, ApiError> {
    let mut candidates = vec![
        explicit.map(str::to_string),
        obj["default_payment_method"].as_str().map(str::to_string),
    ];
    if let Some(sub_id) = obj["subscription"].as_str() {
        let sub = ctx.load("subscription", sub_id, None).await?;
        candidates.push(sub["default_payment_method"].as_str().map(str::to_string));
    }
    if let Some(c) = ctx.find(&s(obj, "customer")).await? {
        candidates.push(
            c["invoice_settings"]["default_payment_method"]
                .as_str()
                .map(str::to_string),
        );
    }
    for id in candidates.into_iter().flatten() {
        if id.starts_with("pm_card_") {
            return Ok(Some(
                payment_methods::resolve(ctx, &id, "payment_method").await?,
            ));
        }
        if let Some(pm) = ctx.find(&id).await? {
            return Ok(Some(pm));
        }
    }
    Ok(None)
}

/// One collection attempt. Returns the invoice and, on failure, the error
/// `/pay` answers with (the invoice's own state is already recorded).
async fn collect(
    ctx: &mut Ctx<'_>,
    inv: Value,
    explicit_pm: Option<&str>,
    off_session: bool,
) -> Result<(Value, Option<ApiError>), ApiError> {
    let inv_id = s(&inv, "id");
    let Some(pm) = payment_method_for(ctx, &inv, explicit_pm).await? else {
        let e = ApiError::invalid("This customer has no attached payment source or default payment method. Please consider adding a default payment method.")
            .code("invoice_no_payment_method_types");
        let inv = failed(ctx, inv, false).await?;
        return Ok((inv, Some(e)));
    };
    let mut pi = ctx
        .load("payment_intent", &s(&inv, "payment_intent"), None)
        .await?;
    if !matches!(
        s(&pi, "status").as_str(),
        "requires_payment_method" | "requires_confirmation" | "requires_action"
    ) {
        return Ok((inv, None));
    }
    pi["payment_method"] = pm["id"].clone();
    pi["last_payment_error"] = Value::Null;
    pi["_off_session"] = json!(off_session);
    let set_up = pm.get("_setup").and_then(Value::as_bool) == Some(true);
    let outcome = match payment_intents::decide(
        payment_methods::behaviour(&pm),
        off_session,
        false,
        set_up,
    ) {
        // An invoice's payment that needs 3-D Secure waits in requires_action
        // for the customer (hosted invoice page) instead of failing.
        Outcome::Decline("authentication_required", _) => Outcome::Action,
        o => o,
    };
    match payment_intents::attempt(ctx, pi, pm, outcome, false).await {
        Ok(pi) if s(&pi, "status") == "requires_action" => {
            let inv = ctx.load("invoice", &inv_id, None).await?;
            let inv = failed(ctx, inv, true).await?;
            let e = ApiError::card(
                "invoice_payment_intent_requires_action",
                None,
                "This payment requires additional user action before it can be completed successfully. Payment can be completed using the PaymentIntent associated with the invoice.",
            )
            .with("payment_intent", render(&pi));
            Ok((inv, Some(e)))
        }
        Ok(_) => Ok((ctx.load("invoice", &inv_id, None).await?, None)),
        Err(e) if e.commit => {
            let inv = ctx.load("invoice", &inv_id, None).await?;
            let inv = failed(ctx, inv, false).await?;
            Ok((inv, Some(e)))
        }
        Err(e) => Err(e),
    }
}

/// A failed (or action-requiring) attempt: attempt count, next retry,
/// `invoice.payment_failed` (+ `invoice.payment_action_required`), and the
/// subscription `past_due` — or `canceled` once the retries are spent.
async fn failed(ctx: &mut Ctx<'_>, mut inv: Value, action: bool) -> Result<Value, ApiError> {
    let attempts = i(&inv, "attempt_count") + 1;
    inv["attempt_count"] = json!(attempts);
    inv["attempted"] = json!(true);
    let first = s(&inv, "billing_reason") == "subscription_create";
    let retry = RETRY_DAYS.get((attempts - 1) as usize).copied();
    inv["next_payment_attempt"] = match retry {
        Some(days) if !first && inv["auto_advance"].as_bool() == Some(true) => {
            json!(ctx.now + days * 86_400)
        }
        _ => Value::Null,
    };
    save(ctx, &mut inv).await?;
    ctx.emit("invoice.payment_failed", &inv, None).await?;
    if action {
        ctx.emit("invoice.payment_action_required", &inv, None)
            .await?;
    }
    if let (Some(sub_id), false) = (inv["subscription"].as_str(), first) {
        let mut sub = ctx.load("subscription", sub_id, None).await?;
        if retry.is_none() && s(&inv, "collection_method") == "charge_automatically" {
            if s(&sub, "status") != "canceled" {
                cancel_inner(ctx, sub, "payment_failed").await?;
            }
        } else if matches!(s(&sub, "status").as_str(), "active" | "trialing") {
            let prev = sub.clone();
            sub["status"] = json!("past_due");
            save_updated(ctx, "customer.subscription.updated", &prev, &mut sub).await?;
        }
    }
    Ok(inv)
}

async fn void_inner(ctx: &mut Ctx<'_>, mut inv: Value) -> Result<Value, ApiError> {
    if let Some(pi_id) = inv["payment_intent"].as_str() {
        let mut pi = ctx.load("payment_intent", pi_id, None).await?;
        if !matches!(s(&pi, "status").as_str(), "succeeded" | "canceled") {
            pi["status"] = json!("canceled");
            pi["canceled_at"] = json!(ctx.now);
            pi["cancellation_reason"] = json!("void_invoice");
            pi["next_action"] = Value::Null;
            ctx.put(&pi).await?;
            ctx.emit("payment_intent.canceled", &pi, None).await?;
        }
    }
    inv["status"] = json!("void");
    inv["next_payment_attempt"] = Value::Null;
    inv["amount_remaining"] = json!(0);
    inv["status_transitions"]["voided_at"] = json!(ctx.now);
    save(ctx, &mut inv).await?;
    ctx.emit("invoice.voided", &inv, None).await?;
    Ok(inv)
}

fn line_for_item(ii: &Value) -> Value {
    json!({
        "id": format!("il_{}", ids::random(24)), "object": "line_item",
        "amount": ii["amount"], "amount_excluding_tax": ii["amount"], "currency": ii["currency"],
        "description": ii["description"], "discount_amounts": [], "discountable": true, "discounts": [],
        "invoice_item": ii["id"], "livemode": false, "metadata": ii["metadata"], "period": ii["period"],
        "price": ii["price"], "proration": false, "proration_details": {"credited_items": null},
        "quantity": ii["quantity"], "subscription": null, "tax_amounts": [], "tax_rates": [],
        "type": "invoiceitem", "unit_amount_excluding_tax": ii["unit_amount_decimal"],
    })
}

async fn load_customer_for(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    let id = p.required("customer")?;
    let c = ctx.load("customer", id, Some("customer")).await?;
    use_customer_time(ctx, &c).await?;
    Ok(c)
}

pub async fn create_invoice(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "collection_method",
        "auto_advance",
        "due_date",
        "days_until_due",
        "automatically_finalizes_at",
        "default_payment_method",
        "description",
        "metadata",
        "pending_invoice_items_behavior",
        "currency",
        "footer",
        "statement_descriptor",
        "payment_settings",
        "subscription",
    ])?;
    let customer = load_customer_for(ctx, p).await?;
    let collection = p
        .choice(
            "collection_method",
            &["charge_automatically", "send_invoice"],
        )?
        .unwrap_or_else(|| "charge_automatically".into());
    let send = collection == "send_invoice";
    for k in ["due_date", "days_until_due"] {
        if p.has(k) && !send {
            return Err(ApiError::invalid(format!(
                "The `{k}` parameter can only be set when `collection_method` is `send_invoice`."
            ))
            .param(k));
        }
    }
    let finalizes_at = p.int("automatically_finalizes_at")?;
    if let Some(t) = finalizes_at {
        if t <= ctx.now {
            return Err(
                ApiError::invalid("automatically_finalizes_at must be in the future.")
                    .param("automatically_finalizes_at"),
            );
        }
    }
    // Default `auto_advance`: false unless a finalization time is given
    // (the sandbox's choice; Stripe's default for API invoices is unconfirmed).
    let auto_advance = p.bool("auto_advance")?.unwrap_or(finalizes_at.is_some());
    let pm = match p.nonempty("default_payment_method")? {
        Some(id) => Some(s(
            &ctx.load("payment_method", id, Some("default_payment_method"))
                .await?,
            "id",
        )),
        None => None,
    };
    let mut lines = Vec::new();
    let include = p
        .choice("pending_invoice_items_behavior", &["exclude", "include"])?
        .as_deref()
        == Some("include");
    let mut pending = Vec::new();
    if include {
        pending = store::find_objects(
            &mut ctx.tx,
            "invoiceitem",
            ctx.account.as_deref(),
            "customer = ? AND json_extract(data, '$.invoice') IS NULL",
            vec![Arg::Text(Some(s(&customer, "id")))],
            "seq",
            250,
        )
        .await?;
        lines = pending.iter().map(line_for_item).collect();
    }
    let d = Defaults {
        collection_method: collection,
        auto_advance,
        finalizes_at,
        due_date: p.int("due_date")?,
        days_until_due: p.int("days_until_due")?,
        default_payment_method: pm,
        description: p.nonempty("description")?.map(str::to_string),
    };
    let mut inv = new_invoice(ctx, &customer, None, lines, "manual", d).await?;
    if let Some(c) = p.nonempty("currency")? {
        inv["currency"] = json!(c.to_lowercase());
    }
    apply_metadata(&mut inv["metadata"], p)?;
    save(ctx, &mut inv).await?;
    for mut ii in pending {
        ii["invoice"] = inv["id"].clone();
        ctx.put(&ii).await?;
    }
    Ok(inv)
}

pub async fn create_invoiceitem(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "invoice",
        "amount",
        "currency",
        "price",
        "price_data",
        "quantity",
        "description",
        "metadata",
        "period",
        "unit_amount",
        "subscription",
        "discountable",
    ])?;
    let customer = load_customer_for(ctx, p).await?;
    let quantity = p.int("quantity")?.unwrap_or(1);
    let price = products::price_param(ctx, &p.0, "").await?;
    let (amount, currency, unit) = match (&price, p.int("amount")?) {
        (Some(pr), None) => {
            let unit = i(pr, "unit_amount");
            (unit * quantity, s(pr, "currency"), unit)
        }
        (None, Some(a)) => {
            let c = payment_intents::parse_currency(p)?;
            (a, c, a)
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "You may only specify one of these parameters: amount, price.",
            )
            .param("amount"))
        }
        (None, None) => return Err(ApiError::missing_param("amount")),
    };
    let now = ctx.now;
    let period = match p.obj("period")? {
        Some(m) => {
            json!({"start": int_at(m.get("start"), "period[start]")?.unwrap_or(now), "end": int_at(m.get("end"), "period[end]")?.unwrap_or(now)})
        }
        None => json!({"start": now, "end": now}),
    };
    let mut ii = json!({
        "id": format!("ii_{}", ids::random(24)), "object": "invoiceitem",
        "amount": amount, "currency": currency, "customer": customer["id"], "date": now,
        "description": p.nonempty("description")?, "discountable": true, "discounts": [],
        "invoice": null, "livemode": false, "metadata": {}, "period": period,
        "price": price.clone().unwrap_or(Value::Null), "proration": false, "quantity": quantity,
        "subscription": null, "tax_rates": [], "test_clock": customer["test_clock"],
        "unit_amount": unit, "unit_amount_decimal": unit.to_string(),
    });
    if price.is_none() {
        // Stripe makes a one-off price for a bare amount.
        ii["price"] = json!({
            "id": ids::new_id("price"), "object": "price", "active": false, "billing_scheme": "per_unit",
            "created": now, "currency": currency, "custom_unit_amount": null, "livemode": false,
            "lookup_key": null, "metadata": {}, "nickname": null, "product": format!("prod_{}", ids::random(14)),
            "recurring": null, "tax_behavior": "unspecified", "tiers_mode": null, "transform_quantity": null,
            "type": "one_time", "unit_amount": unit, "unit_amount_decimal": unit.to_string(),
        });
    }
    apply_metadata(&mut ii["metadata"], p)?;
    if let Some(inv_id) = p.nonempty("invoice")? {
        let mut inv = ctx.load("invoice", inv_id, Some("invoice")).await?;
        if s(&inv, "customer") != s(&customer, "id") {
            return Err(
                ApiError::invalid("The invoice belongs to a different customer.").param("invoice"),
            );
        }
        if s(&inv, "status") != "draft" {
            return Err(ApiError::invalid(format!(
                "You can only add invoice items to draft invoices; invoice {inv_id} is {}.",
                s(&inv, "status")
            ))
            .param("invoice")
            .code("invoice_not_editable"));
        }
        if i(&inv, "total") == 0
            && inv["lines"]["data"]
                .as_array()
                .map(Vec::is_empty)
                .unwrap_or(true)
        {
            inv["currency"] = json!(currency);
        } else if s(&inv, "currency") != currency {
            return Err(ApiError::invalid(
                "The currency of an invoice item must match its invoice's.",
            )
            .param("currency"));
        }
        ii["invoice"] = json!(inv_id);
        if let Some(lines) = inv["lines"]["data"].as_array_mut() {
            lines.push(line_for_item(&ii));
        }
        totals(&mut inv);
        save(ctx, &mut inv).await?;
    }
    ctx.put(&ii).await?;
    ctx.emit("invoiceitem.created", &ii, None).await?;
    Ok(ii)
}

async fn load_invoice(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let inv = ctx.load("invoice", id, None).await?;
    if let Some(c) = ctx.find(&s(&inv, "customer")).await? {
        use_customer_time(ctx, &c).await?;
    }
    Ok(inv)
}

fn wrong_state(inv: &Value, what: &str) -> ApiError {
    ApiError::invalid(format!(
        "You can only {what} an invoice that is {}; invoice {} is {}.",
        match what {
            "finalize" => "a draft",
            "pay" => "open or uncollectible",
            _ => "open",
        },
        s(inv, "id"),
        s(inv, "status")
    ))
    .code("invoice_not_editable")
}

pub async fn finalize(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["auto_advance"])?;
    let mut inv = load_invoice(ctx, id).await?;
    if s(&inv, "status") != "draft" {
        return Err(wrong_state(&inv, "finalize"));
    }
    if let Some(a) = p.bool("auto_advance")? {
        inv["auto_advance"] = json!(a);
    }
    let inv = finalize_inner(ctx, inv).await?;
    // Automatic collection charges the default card right away (Stripe: soon after).
    if s(&inv, "status") == "open" && invoice_due(&inv).is_some_and(|t| t <= ctx.now) {
        return Ok(collect(ctx, inv, None, true).await?.0);
    }
    Ok(inv)
}

pub async fn pay(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "payment_method",
        "off_session",
        "paid_out_of_band",
        "forgive",
        "source",
        "mandate",
    ])?;
    let inv = load_invoice(ctx, id).await?;
    if !matches!(s(&inv, "status").as_str(), "open" | "uncollectible") {
        return Err(if s(&inv, "status") == "paid" {
            ApiError::invalid("Invoice is already paid").code("invoice_not_editable")
        } else {
            wrong_state(&inv, "pay")
        });
    }
    if p.bool("paid_out_of_band")?.unwrap_or(false) {
        return mark_paid(ctx, inv, None, true).await;
    }
    let off_session = p.bool("off_session")?.unwrap_or(true);
    let (inv, err) = collect(ctx, inv, p.nonempty("payment_method")?, off_session).await?;
    match err {
        Some(e) => Err(e.committing()),
        None => Ok(inv),
    }
}

pub async fn void(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let inv = load_invoice(ctx, id).await?;
    if !matches!(s(&inv, "status").as_str(), "open" | "uncollectible") {
        return Err(wrong_state(&inv, "void"));
    }
    void_inner(ctx, inv).await
}

pub async fn mark_uncollectible(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let mut inv = load_invoice(ctx, id).await?;
    if s(&inv, "status") != "open" {
        return Err(wrong_state(&inv, "mark as uncollectible"));
    }
    inv["status"] = json!("uncollectible");
    inv["next_payment_attempt"] = Value::Null;
    inv["status_transitions"]["marked_uncollectible_at"] = json!(ctx.now);
    save(ctx, &mut inv).await?;
    ctx.emit("invoice.marked_uncollectible", &inv, None).await?;
    Ok(inv)
}

pub async fn list_invoices(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "subscription",
        "status",
        "collection_method",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let mut filters = Vec::new();
    if let Some(c) = p.nonempty("customer")? {
        filters.push(Filter::Eq("customer", c.to_string()));
    }
    if let Some(v) = p.nonempty("subscription")? {
        filters.push(Filter::Json("$.subscription", v.to_string()));
    }
    if let Some(v) = p.choice(
        "status",
        &["draft", "open", "paid", "uncollectible", "void"],
    )? {
        filters.push(Filter::Json("$.status", v));
    }
    if let Some(v) = p.choice(
        "collection_method",
        &["charge_automatically", "send_invoice"],
    )? {
        filters.push(Filter::Json("$.collection_method", v));
    }
    ctx.list("invoice", filters, p, "/v1/invoices").await
}

pub async fn list_invoiceitems(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "invoice",
        "pending",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let mut filters = Vec::new();
    if let Some(c) = p.nonempty("customer")? {
        filters.push(Filter::Eq("customer", c.to_string()));
    }
    if let Some(v) = p.nonempty("invoice")? {
        filters.push(Filter::Json("$.invoice", v.to_string()));
    }
    ctx.list("invoiceitem", filters, p, "/v1/invoiceitems")
        .await
}

// ---------------------------------------------------------------- subscriptions

fn sub_lines(sub: &Value, start: i64, end: i64, amount_override: Option<i64>) -> Vec<Value> {
    let items = sub["items"]["data"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .map(|it| {
            let price = &it["price"];
            let q = it["quantity"].as_i64().unwrap_or(1);
            let amount = amount_override.unwrap_or(i(price, "unit_amount") * q);
            json!({
                "id": format!("il_{}", ids::random(24)), "object": "line_item",
                "amount": amount, "amount_excluding_tax": amount, "currency": price["currency"],
                "description": format!("{q} × subscription (at {} / {})",
                    payment_intents::format_amount(i(price, "unit_amount"), &s(price, "currency")),
                    s(&price["recurring"], "interval")),
                "discount_amounts": [], "discountable": true, "discounts": [], "livemode": false,
                "metadata": {}, "period": {"start": start, "end": end}, "price": price,
                "proration": amount_override.is_some(), "proration_details": {"credited_items": null},
                "quantity": q, "subscription": sub["id"], "subscription_item": it["id"],
                "tax_amounts": [], "tax_rates": [], "type": "subscription",
                "unit_amount_excluding_tax": price["unit_amount_decimal"],
            })
        })
        .collect()
}

async fn cancel_inner(ctx: &mut Ctx<'_>, mut sub: Value, reason: &str) -> Result<Value, ApiError> {
    let now = ctx.now;
    sub["status"] = json!("canceled");
    sub["canceled_at"] = json!(now);
    sub["ended_at"] = json!(now);
    sub["cancellation_details"]["reason"] = json!(reason);
    save(ctx, &mut sub).await?;
    ctx.emit("customer.subscription.deleted", &sub, None)
        .await?;
    Ok(sub)
}

async fn load_sub(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let sub = ctx.load("subscription", id, None).await?;
    if let Some(c) = ctx.find(&s(&sub, "customer")).await? {
        use_customer_time(ctx, &c).await?;
    }
    Ok(sub)
}

pub async fn create_subscription(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "items",
        "default_payment_method",
        "trial_period_days",
        "trial_end",
        "billing_cycle_anchor",
        "payment_behavior",
        "off_session",
        "metadata",
        "collection_method",
        "days_until_due",
        "cancel_at_period_end",
        "description",
        "proration_behavior",
        "trial_settings",
        "currency",
        "payment_settings",
    ])?;
    let customer = load_customer_for(ctx, p).await?;
    let now = ctx.now;
    let behaviour = p
        .choice(
            "payment_behavior",
            &[
                "allow_incomplete",
                "default_incomplete",
                "error_if_incomplete",
                "pending_if_incomplete",
            ],
        )?
        .unwrap_or_else(|| "allow_incomplete".into());
    if behaviour == "pending_if_incomplete" {
        return Err(ApiError::invalid(
            "payment_behavior=pending_if_incomplete can only be used when updating a subscription.",
        )
        .param("payment_behavior"));
    }
    let raw_items = match p.get("items") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        _ => return Err(ApiError::missing_param("items")),
    };
    let sub_id = format!("sub_{}", ids::random(24));
    let mut items = Vec::new();
    for (n, it) in raw_items.iter().enumerate() {
        let m = it.as_object().cloned().unwrap_or_default();
        let prefix = format!("items[{n}][");
        let price = products::price_param(ctx, &m, &prefix).await?;
        let Some(price) = price else {
            return Err(ApiError::missing_param(&format!("items[{n}][price]")));
        };
        if price["recurring"].is_null() {
            return Err(ApiError::invalid("The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.").param(&format!("items[{n}][price]")));
        }
        let quantity = int_at(m.get("quantity"), &format!("items[{n}][quantity]"))?.unwrap_or(1);
        items.push(json!({
            "id": format!("si_{}", ids::random(14)), "object": "subscription_item",
            "billing_thresholds": null, "created": now, "metadata": {}, "price": price,
            "quantity": quantity, "subscription": sub_id, "tax_rates": [],
        }));
    }
    let currency = s(&items[0]["price"], "currency");
    let r0 = &items[0]["price"]["recurring"];
    let (interval, count) = (
        s(r0, "interval"),
        r0["interval_count"].as_i64().unwrap_or(1),
    );
    if items.iter().any(|it| {
        s(&it["price"], "currency") != currency
            || it["price"]["recurring"]["interval"] != r0["interval"]
            || it["price"]["recurring"]["interval_count"] != r0["interval_count"]
    }) {
        return Err(ApiError::invalid(
            "All prices on a subscription must have the same currency and recurring interval.",
        )
        .param("items"));
    }
    let pm = match p.nonempty("default_payment_method")? {
        Some(id) => {
            let pm = ctx
                .load("payment_method", id, Some("default_payment_method"))
                .await?;
            if pm["customer"].as_str() != customer["id"].as_str() {
                return Err(ApiError::invalid(format!("The customer does not have a payment method with the ID {id}. The payment method must be attached to the customer.")).param("default_payment_method").code("resource_missing"));
            }
            Some(id.to_string())
        }
        None => None,
    };
    let trial_end = match (p.str("trial_end")?, p.int("trial_period_days")?) {
        (Some("now"), _) => None,
        (Some(t), _) if !t.is_empty() => {
            let t = p.int("trial_end")?.unwrap_or_default();
            if t <= now {
                return Err(ApiError::invalid(
                    "Invalid timestamp: must be an integer Unix timestamp in the future.",
                )
                .param("trial_end"));
            }
            Some(t)
        }
        (_, Some(d)) if d > 0 => Some(now + d * 86_400),
        _ => None,
    };
    let anchor = match p.int("billing_cycle_anchor")? {
        Some(a) if a < now => {
            return Err(
                ApiError::invalid("billing_cycle_anchor cannot be in the past.")
                    .param("billing_cycle_anchor"),
            )
        }
        Some(a) => a,
        None => trial_end.unwrap_or(now),
    };
    let period_end = match trial_end {
        Some(t) => t,
        None if anchor > now => anchor,
        None => next_boundary(anchor, &interval, count, now),
    };
    let collection = p
        .choice(
            "collection_method",
            &["charge_automatically", "send_invoice"],
        )?
        .unwrap_or_else(|| "charge_automatically".into());
    let missing_pm = match p.obj("trial_settings")? {
        Some(ts) => ts
            .get("end_behavior")
            .and_then(Value::as_object)
            .and_then(|e| e.get("missing_payment_method"))
            .and_then(Value::as_str)
            .unwrap_or("create_invoice")
            .to_string(),
        None => "create_invoice".into(),
    };
    let mut sub = json!({
        "id": sub_id, "object": "subscription", "application": null, "application_fee_percent": null,
        "automatic_tax": {"enabled": false}, "billing_cycle_anchor": anchor, "billing_thresholds": null,
        "cancel_at": null, "cancel_at_period_end": p.bool("cancel_at_period_end")?.unwrap_or(false),
        "canceled_at": null, "cancellation_details": {"comment": null, "feedback": null, "reason": null},
        "collection_method": collection, "created": now, "currency": currency,
        "current_period_end": period_end, "current_period_start": now, "customer": customer["id"],
        "days_until_due": p.int("days_until_due")?, "default_payment_method": pm, "default_source": null,
        "default_tax_rates": [], "description": p.nonempty("description")?, "discount": null, "ended_at": null,
        "items": {"object": "list", "data": items, "has_more": false, "url": format!("/v1/subscription_items?subscription={sub_id}")},
        "latest_invoice": null, "livemode": false, "metadata": {}, "next_pending_invoice_item_invoice": null,
        "on_behalf_of": null, "pause_collection": null,
        "payment_settings": {"payment_method_options": null, "payment_method_types": null, "save_default_payment_method": "off"},
        "pending_invoice_item_interval": null, "pending_setup_intent": null, "pending_update": null,
        "schedule": null, "start_date": now, "status": if trial_end.is_some() { "trialing" } else { "incomplete" },
        "test_clock": customer["test_clock"], "transfer_data": null, "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": missing_pm}},
        "trial_start": trial_end.map(|_| now), "_clock": customer["test_clock"],
    });
    apply_metadata(&mut sub["metadata"], p)?;
    // Until the first invoice decides, nothing is due on the subscription.
    sub["_due"] = Value::Null;
    ctx.put(&sub).await?;
    ctx.emit("customer.subscription.created", &sub, None)
        .await?;
    // The first invoice: zero for a trial or a free stretch to a future
    // anchor with proration_behavior=none, else prorated up to the anchor.
    let prorate = p
        .choice(
            "proration_behavior",
            &["create_prorations", "none", "always_invoice"],
        )?
        .as_deref()
        != Some("none");
    let amount_override = if trial_end.is_some() {
        Some(0)
    } else if anchor > now {
        if prorate {
            let full_start = add_interval(anchor, &interval, count, -1);
            let full = (anchor - full_start).max(1);
            let base: i64 = sub_lines(&sub, now, anchor, None)
                .iter()
                .map(|l| i(l, "amount"))
                .sum();
            // Rounded half up to a minor unit (Stripe's rounding is unconfirmed).
            Some((base * (anchor - now) * 2 + full) / (2 * full))
        } else {
            Some(0)
        }
    } else {
        None
    };
    let lines = sub_lines(&sub, now, period_end, amount_override);
    let mut d = Defaults::subscription();
    d.collection_method = s(&sub, "collection_method");
    d.days_until_due = sub["days_until_due"].as_i64();
    let inv = new_invoice(ctx, &customer, Some(&sub), lines, "subscription_create", d).await?;
    sub["latest_invoice"] = inv["id"].clone();
    ctx.put(&sub).await?;
    let inv = finalize_inner(ctx, inv).await?;
    let mut sub = ctx.load("subscription", &sub_id, None).await?;
    if amount_override == Some(0) && trial_end.is_none() {
        // A free first stretch: active at once.
        let prev = sub.clone();
        if s(&sub, "status") == "incomplete" {
            sub["status"] = json!("active");
            save_updated(ctx, "customer.subscription.updated", &prev, &mut sub).await?;
        }
    }
    if s(&inv, "status") == "open"
        && collection == "charge_automatically"
        && behaviour != "default_incomplete"
    {
        let off_session = p.bool("off_session")?.unwrap_or(false);
        let (_, err) = collect(ctx, inv, None, off_session).await?;
        if let (Some(e), "error_if_incomplete") = (err, behaviour.as_str()) {
            return Err(e);
        }
    }
    let mut sub = ctx.load("subscription", &sub_id, None).await?;
    save(ctx, &mut sub).await?;
    Ok(sub)
}

pub async fn update_subscription(
    ctx: &mut Ctx<'_>,
    id: &str,
    p: &Params,
) -> Result<Value, ApiError> {
    p.allow(&[
        "cancel_at_period_end",
        "metadata",
        "default_payment_method",
        "description",
        "off_session",
        "proration_behavior",
        "payment_behavior",
    ])?;
    let mut sub = load_sub(ctx, id).await?;
    if matches!(
        s(&sub, "status").as_str(),
        "canceled" | "incomplete_expired"
    ) {
        return Err(ApiError::invalid(format!("A canceled subscription can only update its cancellation_details and metadata; {id} is {}.", s(&sub, "status"))));
    }
    let before = sub.clone();
    if let Some(c) = p.bool("cancel_at_period_end")? {
        sub["cancel_at_period_end"] = json!(c);
        sub["cancel_at"] = if c {
            sub["current_period_end"].clone()
        } else {
            Value::Null
        };
        sub["canceled_at"] = if c { json!(ctx.now) } else { Value::Null };
        sub["cancellation_details"]["reason"] = if c {
            json!("cancellation_requested")
        } else {
            Value::Null
        };
    }
    if let Some(pm) = p.str("default_payment_method")? {
        sub["default_payment_method"] = if pm.is_empty() {
            Value::Null
        } else {
            let v = ctx
                .load("payment_method", pm, Some("default_payment_method"))
                .await?;
            v["id"].clone()
        };
    }
    if let Some(d) = p.str("description")? {
        sub["description"] = if d.is_empty() { Value::Null } else { json!(d) };
    }
    apply_metadata(&mut sub["metadata"], p)?;
    if sub != before {
        save_updated(ctx, "customer.subscription.updated", &before, &mut sub).await?;
    }
    Ok(sub)
}

pub async fn cancel_subscription(
    ctx: &mut Ctx<'_>,
    id: &str,
    p: &Params,
) -> Result<Value, ApiError> {
    p.allow(&["invoice_now", "prorate", "cancellation_details"])?;
    let sub = load_sub(ctx, id).await?;
    if matches!(
        s(&sub, "status").as_str(),
        "canceled" | "incomplete_expired"
    ) {
        return Err(ApiError::invalid(format!(
            "No such subscription: '{id}'; it is already canceled."
        ))
        .code("resource_missing"));
    }
    cancel_inner(ctx, sub, "cancellation_requested").await
}

pub async fn list_subscriptions(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "customer",
        "status",
        "price",
        "test_clock",
        "collection_method",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let mut filters = Vec::new();
    if let Some(c) = p.nonempty("customer")? {
        filters.push(Filter::Eq("customer", c.to_string()));
    }
    if let Some(t) = p.nonempty("test_clock")? {
        filters.push(Filter::Json("$.test_clock", t.to_string()));
    }
    match p
        .choice(
            "status",
            &[
                "active",
                "all",
                "canceled",
                "ended",
                "incomplete",
                "incomplete_expired",
                "past_due",
                "paused",
                "trialing",
                "unpaid",
            ],
        )?
        .as_deref()
    {
        // Stripe lists every subscription not canceled unless told otherwise.
        None => filters.push(Filter::JsonNot("$.status", "canceled".into())),
        Some("all") => {}
        Some(st) => filters.push(Filter::Json("$.status", st.to_string())),
    }
    ctx.list("subscription", filters, p, "/v1/subscriptions")
        .await
}
