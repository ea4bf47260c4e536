//! Payouts mirrored from Stripe and the balance transactions each paid
//! payout settles, as callers see them (secret key only: payouts are the
//! business's, not a customer's). Changes happen in the payout writer
//! (`crate::payouts`) and the `payout_transactions` job, never here, and
//! nothing here calls Stripe.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::pagination::{self, Cursor, Page};
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ledger::payout::PayoutStatus;
use crate::money::{Currency, Money};
pub use crate::outbox::PayoutSnapshot as PayoutOut;
use crate::storage::payouts::{PayoutFilter, PayoutRow, PayoutTransactionRow};
use crate::storage::Conn;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPayouts {
    /// Only payouts in this status.
    #[param(value_type = Option<PayoutStatus>)]
    pub status: Option<String>,
    /// Arriving on or after this date (`YYYY-MM-DD`, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub arrival_date_gte: Option<String>,
    /// Arriving before this date (`YYYY-MM-DD`, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub arrival_date_lt: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn date_param(name: &str, v: Option<&str>) -> Result<Option<i64>> {
    v.map(|s| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp())
            .ok_or_else(|| Error::InvalidQuery(format!("{name} must be a date, YYYY-MM-DD")))
    })
    .transpose()
}

/// Payouts, newest first (by Stripe's `created`).
pub async fn list(ctx: &Ctx, actor: &Actor, q: ListPayouts) -> Result<Page<PayoutOut>> {
    actor.require_secret()?;
    if let Some(s) = &q.status {
        PayoutStatus::parse(s)
            .ok_or_else(|| Error::InvalidQuery(format!("status {s:?} is not a payout status")))?;
    }
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let filter = PayoutFilter {
        status: q.status.as_deref(),
        arrival_gte: date_param("arrival_date_gte", q.arrival_date_gte.as_deref())?,
        arrival_lt: date_param("arrival_date_lt", q.arrival_date_lt.as_deref())?,
        before: before.map(|c| (c.at.timestamp(), c.id)),
        limit: limit + 1,
    };
    let mut h = ctx.store().acquire().await?;
    let rows = h.conn().list_payouts(actor.account(), &filter).await?;
    Page::from_rows(rows, limit, |r| Cursor {
        at: DateTime::<Utc>::from_timestamp(r.stripe_created, 0).unwrap_or_default(),
        id: r.id.clone(),
    })
    .try_map(|r| PayoutOut::try_from(&r))
}

/// The payout `id` names: obol's `pout_…` or Stripe's `po_…`; someone
/// else's (or a malformed id) is 404.
async fn load(conn: &mut Conn<'_>, actor: &Actor, id: &str) -> Result<PayoutRow> {
    let row = if id.starts_with("po_") {
        conn.get_payout_by_stripe_id(actor.account(), id).await?
    } else {
        let id = crate::ids::PayoutId::parse(id).map_err(|_| Error::NotFound(Resource::Payout))?;
        conn.get_payout(actor.account(), id.as_str()).await?
    };
    row.ok_or(Error::NotFound(Resource::Payout))
}

pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<PayoutOut> {
    actor.require_secret()?;
    let mut h = ctx.store().acquire().await?;
    let row = load(&mut h.conn(), actor, id).await?;
    PayoutOut::try_from(&row)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPayoutTransactions {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One balance transaction a payout settles. Amounts are signed minor
/// units of `currency` (a refund or a dispute withdrawal is negative):
/// `amount` is the gross, `fee` Stripe's fee, `net = amount - fee`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayoutTransactionOut {
    /// Stripe's `txn_…`.
    pub stripe_balance_transaction_id: String,
    /// Stripe's transaction type: `charge`, `refund`, `adjustment` (a
    /// dispute's withdrawal or reinstatement), `payout_failure`,
    /// `stripe_fee`, `refund_failure`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Stripe's reporting category (`charge`, `refund`, `dispute`,
    /// `dispute_reversal`, `fee`, …): what a bookkeeper classifies by.
    pub reporting_category: String,
    pub amount: i64,
    pub fee: i64,
    pub net: i64,
    #[schema(value_type = crate::money::Currency)]
    pub currency: String,
    pub created: DateTime<Utc>,
    /// When the funds became available (UTC date).
    #[schema(value_type = String, format = Date)]
    pub available_on: NaiveDate,
    pub description: Option<String>,
    /// Stripe's source object (`ch_…`, `re_…`, `dp_…`, `po_…`).
    pub source_id: Option<String>,
    /// obol's payment the charge, refund or dispute belongs to.
    #[schema(value_type = Option<crate::ids::PaymentId>)]
    pub payment_id: Option<String>,
    #[schema(value_type = Option<crate::ids::RefundId>)]
    pub refund_id: Option<String>,
    #[schema(value_type = Option<crate::ids::DisputeId>)]
    pub dispute_id: Option<String>,
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    #[schema(value_type = Option<crate::ids::OrderId>)]
    pub order_id: Option<String>,
}

/// Signed sums of a payout's transactions, in minor units.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransactionTotals {
    pub count: i64,
    pub amount: i64,
    pub fee: i64,
    /// Equals the payout's `amount`.
    pub net: i64,
}

/// `GET /v1/payouts/{id}/transactions`: one page, oldest first, with the
/// totals over every page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayoutTransactionsOut {
    pub payout: PayoutOut,
    pub totals: TransactionTotals,
    pub data: Vec<PayoutTransactionOut>,
    /// More rows follow: ask again with `cursor` set to `next_cursor`.
    pub has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
}

fn out(r: PayoutTransactionRow) -> Result<PayoutTransactionOut> {
    let created = DateTime::<Utc>::from_timestamp(r.created, 0)
        .ok_or_else(|| Error::internal("a stored time is out of range"))?;
    let available_on = DateTime::<Utc>::from_timestamp(r.available_on, 0)
        .ok_or_else(|| Error::internal("a stored time is out of range"))?
        .date_naive();
    Ok(PayoutTransactionOut {
        stripe_balance_transaction_id: r.stripe_balance_transaction_id,
        kind: r.kind,
        reporting_category: r.reporting_category,
        amount: r.amount,
        fee: r.fee,
        net: r.net,
        currency: r.currency,
        created,
        available_on,
        description: r.description,
        source_id: r.source_id,
        payment_id: r.payment_id,
        refund_id: r.refund_id,
        dispute_id: r.dispute_id,
        customer_id: r.customer_id,
        order_id: r.order_id,
    })
}

/// The payout, once its transactions are stored; 409
/// `payout_transactions_not_ready` before (not paid yet, or the fetch job
/// has not finished).
async fn load_fetched(conn: &mut Conn<'_>, actor: &Actor, id: &str) -> Result<PayoutRow> {
    let row = load(conn, actor, id).await?;
    match row.transactions_status.as_str() {
        "fetched" => Ok(row),
        "fetching" => Err(Error::rule(
            RuleCode::PayoutTransactionsNotReady,
            "obol is fetching this payout's transactions from Stripe; ask again shortly",
        )),
        _ => Err(Error::rule(
            RuleCode::PayoutTransactionsNotReady,
            format!(
                "the payout is {}: its transactions are fetched once it is paid",
                row.status.as_str()
            ),
        )),
    }
}

fn decode_cursor(c: &str) -> Result<i64> {
    c.strip_prefix("t")
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| Error::InvalidQuery("cursor is not one obol issued".into()))
}

pub async fn transactions(
    ctx: &Ctx,
    actor: &Actor,
    id: &str,
    q: ListPayoutTransactions,
) -> Result<PayoutTransactionsOut> {
    actor.require_secret()?;
    let limit = pagination::limit(q.limit)?;
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let payout = load_fetched(&mut conn, actor, id).await?;
    let (count, amount, fee, net) = conn
        .sum_payout_transactions(actor.account(), &payout.id)
        .await?;
    let mut rows = conn
        .list_payout_transactions(actor.account(), &payout.id, after, limit + 1)
        .await?;
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(0);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = if has_more {
        rows.last().map(|r| format!("t{}", r.position))
    } else {
        None
    };
    Ok(PayoutTransactionsOut {
        payout: PayoutOut::try_from(&payout)?,
        totals: TransactionTotals {
            count,
            amount,
            fee,
            net,
        },
        data: rows.into_iter().map(out).collect::<Result<_>>()?,
        has_more,
        next_cursor,
    })
}

/// Signed minor units as a decimal string in the currency's exponent,
/// from integers only: -1234 EUR is "-12.34", 500 JPY is "500".
pub fn decimal(minor: i64, currency: Currency) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    match currency.exponent() {
        0 => format!("{sign}{abs}"),
        e => {
            let unit = 10u64.pow(e);
            let width = usize::try_from(e).unwrap_or(2);
            format!("{sign}{}.{:0width$}", abs / unit, abs % unit)
        }
    }
}

/// The CSV's columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "payout_id",
    "stripe_payout_id",
    "payout_amount",
    "payout_arrival_date",
    "stripe_balance_transaction_id",
    "type",
    "reporting_category",
    "created",
    "available_on",
    "currency",
    "gross",
    "fee",
    "net",
    "description",
    "source_id",
    "payment_id",
    "refund_id",
    "dispute_id",
    "customer_id",
    "order_id",
];

/// `GET /v1/payouts/{id}/transactions.csv`: every transaction, oldest
/// first, one row each (RFC 4180: CRLF, quoted where needed), amounts as
/// decimals in the currency's exponent. Every row repeats the payout's
/// amount, so the check is `SUM(net) = payout_amount`.
pub async fn transactions_csv(ctx: &Ctx, actor: &Actor, id: &str) -> Result<(String, String)> {
    actor.require_secret()?;
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let payout = load_fetched(&mut conn, actor, id).await?;
    let currency = Currency::parse(&payout.currency)?;
    let snapshot = PayoutOut::try_from(&payout)?;
    let payout_amount = Money::balance(payout.amount, currency)?.format_decimal();
    let arrival = snapshot.arrival_date.format("%Y-%m-%d").to_string();
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(CSV_COLUMNS).map_err(Error::internal)?;
    let mut after = None;
    loop {
        let rows = conn
            .list_payout_transactions(actor.account(), &payout.id, after, 500)
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.position);
        for r in rows {
            let r = out(r)?;
            let record = [
                payout.id.clone(),
                payout.stripe_payout_id.clone(),
                payout_amount.clone(),
                arrival.clone(),
                r.stripe_balance_transaction_id,
                r.kind,
                r.reporting_category,
                r.created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                r.available_on.format("%Y-%m-%d").to_string(),
                r.currency,
                decimal(r.amount, currency),
                decimal(r.fee, currency),
                decimal(r.net, currency),
                r.description.unwrap_or_default(),
                r.source_id.unwrap_or_default(),
                r.payment_id.unwrap_or_default(),
                r.refund_id.unwrap_or_default(),
                r.dispute_id.unwrap_or_default(),
                r.customer_id.unwrap_or_default(),
                r.order_id.unwrap_or_default(),
            ];
            w.write_record(&record).map_err(Error::internal)?;
        }
    }
    let bytes = w.into_inner().map_err(Error::internal)?;
    let text = String::from_utf8(bytes).map_err(Error::internal)?;
    let name = format!("payout-{}.csv", payout.stripe_payout_id);
    Ok((name, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_come_from_integers_in_the_currencys_exponent() {
        let eur = Currency::parse("eur").unwrap();
        assert_eq!(decimal(-1234, eur), "-12.34");
        assert_eq!(decimal(5, eur), "0.05");
        assert_eq!(decimal(-5, eur), "-0.05");
        assert_eq!(decimal(0, eur), "0.00");
        assert_eq!(decimal(500, Currency::parse("jpy").unwrap()), "500");
        assert_eq!(decimal(-1230, Currency::parse("kwd").unwrap()), "-1.230");
        assert_eq!(decimal(i64::MIN, eur), "-92233720368547758.08");
    }
}
