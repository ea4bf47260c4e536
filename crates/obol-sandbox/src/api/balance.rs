//! Balance transactions, `/v1/balance` and payouts.
//!
//! Every succeeded (captured) charge books a `charge` transaction with
//! Stripe's card fee; refunds book `refund` (negative, no fee returned),
//! disputes an `adjustment` of the disputed amount plus the dispute fee.
//! A transaction is `pending` until `available_on` (00:00 UTC seven days
//! after creation, the account's `delay_days`); the automatic daily payout
//! runs when a test clock advances or `POST /_sandbox/payouts/run` is
//! called: for each day that funds became available, one payout per
//! currency of everything available and not yet paid out, `pending` →
//! `in_transit` at once → `paid` on `arrival_date` (the next day).
//! A payout fails with `POST /_sandbox/payouts/{id}/fail` (`failure_code`,
//! default `account_closed`; the bank returning it, in transit or paid) and
//! a pending one is canceled with `POST /v1/payouts/{id}/cancel`: either
//! books a `payout_failure` / `payout_cancel` transaction returning the
//! amount to the balance (paid out again by the next payout), and emits
//! `payout.updated` then `payout.failed` / `payout.canceled`, as Stripe does.
//! `GET /v1/balance_transactions?payout=po_…` lists what a payout settles
//! plus the payout's own `payout` transaction, as Stripe does; the settled
//! ones sum to the payout's amount.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use crate::ctx::{diff, i, s, App, Ctx, DEFAULT_API_VERSION};
use crate::error::ApiError;
use crate::form::{apply_metadata, Params};
use crate::ids;
use crate::store::{self, Arg, Filter};
use crate::time::day_start;

/// Days until a charge's funds are available (the account's payout delay).
const DELAY_DAYS: i64 = 7;
/// Dispute fee in minor units (unconfirmed: Stripe's fee varies by country).
const DISPUTE_FEE: i64 = 1500;

const EEA: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

/// Stripe's card fee for a German account (unconfirmed, from the public
/// price list): 1.5% + 25 for EEA cards, 3.25% + 25 for other cards (the
/// US test cards among them); percentages rounded half up to a minor unit.
pub fn card_fee(amount: i64, card_country: &str) -> i64 {
    let basis_points = if EEA.contains(&card_country) {
        150
    } else {
        325
    };
    (amount * basis_points + 5_000) / 10_000 + 25
}

#[allow(clippy::too_many_arguments)] // one flat constructor reads better than a builder here
fn txn(
    ctx: &Ctx<'_>,
    amount: i64,
    fee: i64,
    currency: &str,
    kind: &str,
    category: &str,
    source: &str,
    fee_label: &str,
    available_on: i64,
) -> Value {
    let fee_details = if fee != 0 {
        json!([{"amount": fee, "application": null, "currency": currency, "description": fee_label, "type": "stripe_fee"}])
    } else {
        json!([])
    };
    json!({
        "id": format!("txn_{}", ids::random(24)), "object": "balance_transaction",
        "amount": amount, "available_on": available_on, "created": ctx.now, "currency": currency,
        "description": null, "exchange_rate": null, "fee": fee, "fee_details": fee_details,
        "net": amount - fee, "reporting_category": category, "source": source,
        "status": if available_on <= ctx.now { "available" } else { "pending" }, "type": kind,
        "_payout": null,
    })
}

fn available_on(ctx: &Ctx<'_>) -> i64 {
    day_start(ctx.now) + DELAY_DAYS * 86_400
}

/// Books a captured charge; sets its `balance_transaction`.
pub async fn for_charge(ctx: &mut Ctx<'_>, ch: &mut Value, pm: &Value) -> Result<(), ApiError> {
    let amount = i(ch, "amount_captured").max(i(ch, "amount"));
    let fee = card_fee(amount, &s(&pm["card"], "country"));
    let on = available_on(ctx);
    let t = txn(
        ctx,
        amount,
        fee,
        &s(ch, "currency"),
        "charge",
        "charge",
        &s(ch, "id"),
        "Stripe processing fees",
        on,
    );
    ctx.put(&t).await?;
    ch["balance_transaction"] = t["id"].clone();
    Ok(())
}

/// Books a refund (negative) or, with `failed`, its return.
pub async fn for_refund(ctx: &mut Ctx<'_>, re: &mut Value, failed: bool) -> Result<(), ApiError> {
    let amount = i(re, "amount");
    let on = day_start(ctx.now);
    let (amount, kind) = if failed {
        (amount, "refund_failure")
    } else {
        (-amount, "refund")
    };
    let t = txn(
        ctx,
        amount,
        0,
        &s(re, "currency"),
        kind,
        kind,
        &s(re, "id"),
        "",
        on,
    );
    ctx.put(&t).await?;
    let field = if failed {
        "failure_balance_transaction"
    } else {
        "balance_transaction"
    };
    re[field] = t["id"].clone();
    Ok(())
}

/// Books a dispute's withdrawal (amount plus fee) or, with `reinstated`,
/// the amount's return; appends it to the dispute's `balance_transactions`.
pub async fn for_dispute(
    ctx: &mut Ctx<'_>,
    dp: &mut Value,
    reinstated: bool,
) -> Result<(), ApiError> {
    let amount = i(dp, "amount");
    let on = day_start(ctx.now);
    let t = if reinstated {
        txn(
            ctx,
            amount,
            0,
            &s(dp, "currency"),
            "adjustment",
            "dispute_reversal",
            &s(dp, "id"),
            "",
            on,
        )
    } else {
        txn(
            ctx,
            -amount,
            DISPUTE_FEE,
            &s(dp, "currency"),
            "adjustment",
            "dispute",
            &s(dp, "id"),
            "Dispute fee",
            on,
        )
    };
    ctx.put(&t).await?;
    if let Some(list) = dp["balance_transactions"].as_array_mut() {
        list.push(crate::ctx::render(&t));
    }
    Ok(())
}

/// The automatic daily payouts up to `until` (see the module notes).
pub async fn run_payouts(ctx: &mut Ctx<'_>, until: i64) -> Result<(), ApiError> {
    let account = ctx.account.clone();
    let open = store::find_objects(
        &mut ctx.tx,
        "balance_transaction",
        account.as_deref(),
        "json_extract(data, '$._payout') IS NULL AND json_extract(data, '$.type') != 'payout' AND json_extract(data, '$.available_on') <= ?",
        vec![Arg::Int(until)],
        "json_extract(data, '$.available_on'), seq",
        100_000,
    )
    .await?;
    let mut days: Vec<i64> = open
        .iter()
        .map(|t| day_start(i(t, "available_on")))
        .collect();
    days.dedup();
    let mut settled: Vec<bool> = vec![false; open.len()];
    for day in days {
        let mut by_currency: BTreeMap<String, (i64, Vec<usize>)> = BTreeMap::new();
        for (n, t) in open.iter().enumerate() {
            if !settled[n] && i(t, "available_on") <= day {
                let e = by_currency.entry(s(t, "currency")).or_default();
                e.0 += i(t, "net");
                e.1.push(n);
            }
        }
        for (currency, (total, members)) in by_currency {
            // A negative or empty balance waits for more funds.
            if total <= 0 {
                continue;
            }
            ctx.now = day;
            let po_id = format!("po_{}", ids::random(24));
            let mut own = txn(
                ctx, -total, 0, &currency, "payout", "payout", &po_id, "", day,
            );
            own["_payout"] = json!(po_id);
            own["description"] = json!("STRIPE PAYOUT");
            ctx.put(&own).await?;
            for n in members {
                settled[n] = true;
                let mut t = open[n].clone();
                t["status"] = json!("available");
                t["_payout"] = json!(po_id);
                ctx.put(&t).await?;
            }
            let mut po = payout(ctx, &po_id, total, &currency, true, day + 86_400);
            po["balance_transaction"] = own["id"].clone();
            ctx.put(&po).await?;
            ctx.emit("payout.created", &po, None).await?;
            let before = po.clone();
            po["status"] = json!("in_transit");
            ctx.put(&po).await?;
            ctx.emit("payout.updated", &po, Some(diff(&before, &po)))
                .await?;
        }
    }
    // Funds that became available without being paid out yet.
    for (n, t) in open.iter().enumerate() {
        if !settled[n] && s(t, "status") == "pending" {
            let mut t = t.clone();
            t["status"] = json!("available");
            ctx.put(&t).await?;
        }
    }
    let arriving = store::find_objects(
        &mut ctx.tx,
        "payout",
        account.as_deref(),
        "json_extract(data, '$.status') = 'in_transit' AND json_extract(data, '$.arrival_date') <= ?",
        vec![Arg::Int(until)],
        "seq",
        100_000,
    )
    .await?;
    for mut po in arriving {
        ctx.now = i(&po, "arrival_date");
        let before = po.clone();
        po["status"] = json!("paid");
        ctx.put(&po).await?;
        ctx.emit("payout.updated", &po, Some(diff(&before, &po)))
            .await?;
        ctx.emit("payout.paid", &po, None).await?;
    }
    Ok(())
}

fn payout(
    ctx: &Ctx<'_>,
    id: &str,
    amount: i64,
    currency: &str,
    automatic: bool,
    arrival: i64,
) -> Value {
    json!({
        "id": id, "object": "payout", "amount": amount, "arrival_date": arrival,
        "automatic": automatic, "balance_transaction": null, "created": ctx.now, "currency": currency,
        "description": "STRIPE PAYOUT", "destination": "ba_sandboxbankaccount0000",
        "failure_balance_transaction": null, "failure_code": null, "failure_message": null,
        "livemode": false, "metadata": {}, "method": "standard", "original_payout": null,
        "reconciliation_status": if automatic { "completed" } else { "not_applicable" },
        "reversed_by": null, "source_type": "card", "statement_descriptor": null,
        "status": "pending", "type": "bank_account",
    })
}

async fn all_txns(ctx: &mut Ctx<'_>) -> Result<Vec<Value>, ApiError> {
    let account = ctx.account.clone();
    Ok(store::find_objects(
        &mut ctx.tx,
        "balance_transaction",
        account.as_deref(),
        "1 = 1",
        vec![],
        "seq",
        1_000_000,
    )
    .await?)
}

pub async fn balance(ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    let mut avail: BTreeMap<String, i64> = BTreeMap::new();
    let mut pending: BTreeMap<String, i64> = BTreeMap::new();
    for t in all_txns(ctx).await? {
        let m = if s(&t, "status") == "available" {
            &mut avail
        } else {
            &mut pending
        };
        *m.entry(s(&t, "currency")).or_default() += i(&t, "net");
        let other = if s(&t, "status") == "available" {
            &mut pending
        } else {
            &mut avail
        };
        other.entry(s(&t, "currency")).or_default();
    }
    let render = |m: BTreeMap<String, i64>| -> Value {
        if m.is_empty() {
            return json!([{"amount": 0, "currency": "eur", "source_types": {"card": 0}}]);
        }
        Value::Array(
            m.into_iter()
                .map(|(c, a)| json!({"amount": a, "currency": c, "source_types": {"card": a}}))
                .collect(),
        )
    };
    Ok(
        json!({"object": "balance", "available": render(avail), "connect_reserved": [], "livemode": false, "pending": render(pending)}),
    )
}

pub async fn list_txns(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "payout",
        "type",
        "source",
        "currency",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let mut filters = Vec::new();
    if let Some(v) = p.nonempty("payout")? {
        filters.push(Filter::Json("$._payout", v.to_string()));
    }
    if let Some(v) = p.nonempty("type")? {
        filters.push(Filter::Json("$.type", v.to_string()));
    }
    if let Some(v) = p.nonempty("source")? {
        filters.push(Filter::Json("$.source", v.to_string()));
    }
    if let Some(v) = p.nonempty("currency")? {
        filters.push(Filter::Json("$.currency", v.to_lowercase()));
    }
    ctx.list(
        "balance_transaction",
        filters,
        p,
        "/v1/balance_transactions",
    )
    .await
}

/// A manual payout of available funds; moves to `in_transit` and `paid`
/// through delayed jobs.
pub async fn create_payout(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "amount",
        "currency",
        "description",
        "metadata",
        "method",
        "statement_descriptor",
        "destination",
        "source_type",
    ])?;
    let amount = p
        .int("amount")?
        .ok_or_else(|| ApiError::missing_param("amount"))?;
    let currency = super::payment_intents::parse_currency(p)?;
    if amount < 1 {
        return Err(
            ApiError::invalid("This value must be greater than or equal to 1.").param("amount"),
        );
    }
    let available: i64 = all_txns(ctx)
        .await?
        .iter()
        .filter(|t| s(t, "status") == "available" && s(t, "currency") == currency)
        .map(|t| i(t, "net"))
        .sum();
    if amount > available {
        return Err(ApiError::invalid("You have insufficient funds in your Stripe account for this transfer. Your card balance is too low.").code("balance_insufficient").param("amount"));
    }
    let po_id = format!("po_{}", ids::random(24));
    let now = ctx.now;
    let mut own = txn(
        ctx, -amount, 0, &currency, "payout", "payout", &po_id, "", now,
    );
    own["_payout"] = json!(po_id);
    ctx.put(&own).await?;
    let mut po = payout(
        ctx,
        &po_id,
        amount,
        &currency,
        false,
        day_start(now) + 86_400,
    );
    po["balance_transaction"] = own["id"].clone();
    if let Some(d) = p.nonempty("description")? {
        po["description"] = json!(d);
    }
    if let Some(m) = p.choice("method", &["standard", "instant"])? {
        po["method"] = json!(m);
    }
    apply_metadata(&mut po["metadata"], p)?;
    ctx.put(&po).await?;
    ctx.emit("payout.created", &po, None).await?;
    let at = crate::ctx::now_ms() + super::refunds::SETTLE_DELAY_MS;
    store::insert_job(&mut ctx.tx, at, "payout_in_transit", &po_id).await?;
    store::insert_job(
        &mut ctx.tx,
        at + super::refunds::SETTLE_DELAY_MS,
        "payout_paid",
        &po_id,
    )
    .await?;
    Ok(po)
}

pub async fn run_job(ctx: &mut Ctx<'_>, kind: &str, id: &str) -> Result<(), ApiError> {
    let Ok(mut po) = ctx.load("payout", id, None).await else {
        return Ok(());
    };
    let before = po.clone();
    match (kind, s(&po, "status").as_str()) {
        ("payout_in_transit", "pending") => po["status"] = json!("in_transit"),
        ("payout_paid", "in_transit") => po["status"] = json!("paid"),
        _ => return Ok(()),
    }
    ctx.put(&po).await?;
    ctx.emit("payout.updated", &po, Some(diff(&before, &po)))
        .await?;
    if s(&po, "status") == "paid" {
        ctx.emit("payout.paid", &po, None).await?;
    }
    Ok(())
}

/// Stripe's message for a payout failure code (its documented codes).
fn failure_message(code: &str) -> &'static str {
    match code {
        "account_closed" => "The bank account has been closed.",
        "account_frozen" => "The bank account has been frozen.",
        "bank_account_restricted" => "The bank account has restrictions on either the type, or the number, of payouts allowed.",
        "could_not_process" => "The bank could not process this payout.",
        "insufficient_funds" => "Your Stripe account has insufficient funds to cover the payout.",
        "invalid_account_number" => "The routing number seems correct, but the account number is invalid.",
        "no_account" => "The bank account details on file are probably incorrect. No bank account could be located with those details.",
        _ => "The payout failed.",
    }
}

/// Returns a failed or canceled payout's amount to the balance.
async fn reverse_payout(
    ctx: &mut Ctx<'_>,
    po: &mut Value,
    status: &str,
    kind: &str,
) -> Result<(), ApiError> {
    let before = po.clone();
    let now = ctx.now;
    let t = txn(
        ctx,
        i(po, "amount"),
        0,
        &s(po, "currency"),
        kind,
        kind,
        &s(po, "id"),
        "",
        day_start(now),
    );
    ctx.put(&t).await?;
    po["status"] = json!(status);
    po["failure_balance_transaction"] = t["id"].clone();
    ctx.put(po).await?;
    ctx.emit("payout.updated", po, Some(diff(&before, po)))
        .await?;
    let event = if status == "failed" {
        "payout.failed"
    } else {
        "payout.canceled"
    };
    ctx.emit(event, po, None).await?;
    Ok(())
}

/// `POST /v1/payouts/{id}/cancel`: only a pending payout.
pub async fn cancel_payout(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[])?;
    let mut po = ctx.load("payout", id, Some("payout")).await?;
    if s(&po, "status") != "pending" {
        return Err(ApiError::invalid(format!(
            "Payouts can only be canceled while they are pending. This payout has a status of {}.",
            s(&po, "status")
        )));
    }
    reverse_payout(ctx, &mut po, "canceled", "payout_cancel").await?;
    Ok(po)
}

/// `POST /_sandbox/payouts/{id}/fail` (`failure_code`, `account`): the
/// bank returns an in-transit or paid payout.
pub async fn fail_payout_route(
    State(app): State<Arc<App>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let form = crate::form::parse(&body).unwrap_or_default();
    let p = Params(form);
    let result = async {
        let code = p
            .nonempty("failure_code")?
            .unwrap_or("account_closed")
            .to_string();
        let account = p.nonempty("account")?.map(str::to_string);
        let _guard = app.write_lock.lock().await;
        let mut ctx = Ctx::begin_write(&app, None, None, DEFAULT_API_VERSION.into()).await?;
        ctx.act_as(account);
        let mut po = ctx.load("payout", &id, Some("payout")).await?;
        if !matches!(s(&po, "status").as_str(), "in_transit" | "paid") {
            return Err(ApiError::invalid(format!(
                "Only an in-transit or paid payout can fail; this one is {}.",
                s(&po, "status")
            )));
        }
        po["failure_code"] = json!(code);
        po["failure_message"] = json!(failure_message(&code));
        reverse_payout(&mut ctx, &mut po, "failed", "payout_failure").await?;
        if ctx.commit().await? > 0 {
            app.notify.notify_one();
        }
        Ok::<_, ApiError>(crate::ctx::render(&po))
    }
    .await;
    match result {
        Ok(v) => super::json_response(axum::http::StatusCode::OK, v.to_string()),
        Err(e) => super::error_response(&e),
    }
}

pub async fn list_payouts(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "status",
        "arrival_date",
        "destination",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let mut filters = Vec::new();
    if let Some(v) = p.nonempty("status")? {
        filters.push(Filter::Json("$.status", v.to_string()));
    }
    ctx.list("payout", filters, p, "/v1/payouts").await
}

/// `POST /_sandbox/payouts/run` (`until`: unix time, default now;
/// `account`: a connected account, default the platform): the automatic
/// payouts a day boundary would make, for balances off any test clock.
pub async fn run_payouts_route(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let form = crate::form::parse(&body).unwrap_or_default();
    let p = Params(form);
    let result = async {
        let until = p.int("until")?.unwrap_or_else(crate::ctx::now_secs);
        let account = p.nonempty("account")?.map(str::to_string);
        let _guard = app.write_lock.lock().await;
        let mut ctx = Ctx::begin_write(&app, None, None, DEFAULT_API_VERSION.into()).await?;
        ctx.act_as(account);
        run_payouts(&mut ctx, until).await?;
        if ctx.commit().await? > 0 {
            app.notify.notify_one();
        }
        Ok::<_, ApiError>(json!({"ok": true, "until": until}))
    }
    .await;
    match result {
        Ok(v) => super::json_response(axum::http::StatusCode::OK, v.to_string()),
        Err(e) => super::error_response(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_fee_rounds_half_up() {
        assert_eq!(card_fee(1000, "DE"), 40);
        assert_eq!(card_fee(1000, "US"), 58);
        assert_eq!(card_fee(1500, "US"), 74);
    }
}
