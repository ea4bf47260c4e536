//! Scheduled payments: a payment on a future date (a pledge paid in
//! instalments), carried out by Stripe as an invoice that finalizes
//! itself at that date (`automatically_finalizes_at`, `auto_advance`) and
//! is then collected from the member's default card
//! (`collection_method=charge_automatically`). Nothing is charged before
//! the date. The invoice is mirrored like any other
//! (`GET /v1/billing/invoices`), its payment recorded in the ledger.
//!
//! The local row is written first; the invoice and its item are created
//! with idempotency keys derived from its id and
//! `metadata[obol_scheduled_payment_id]`, so a retry makes no second
//! invoice while Stripe keeps the keys.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::customers::billable_stripe_customer;
use super::pagination::{self, Cursor, Page};
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::ScheduledPaymentId;
use crate::money::{Currency, Money};
use crate::storage::billing::ScheduledPaymentRow;
use crate::stripe::{IdempotencyKey, Params};

/// Body of `POST /v1/scheduled-payments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledPaymentIn {
    /// obol's customer (`cus_…`); they need a default card.
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer: String,
    /// Minor units.
    #[schema(minimum = 1)]
    pub amount: i64,
    #[schema(value_type = crate::money::Currency)]
    pub currency: String,
    /// When to charge: a date (`2027-03-01`, charged from 00:00 UTC) or an
    /// RFC 3339 time; in the future.
    #[schema(example = "2027-03-01")]
    pub date: String,
    /// Shown on the member's invoice.
    pub description: Option<String>,
}

/// A scheduled payment and the Stripe invoice carrying it out.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledPaymentOut {
    #[schema(value_type = crate::ids::ScheduledPaymentId)]
    pub id: String,
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer_id: String,
    pub amount: Money,
    /// When Stripe finalizes and charges it.
    pub charge_at: DateTime<Utc>,
    pub description: Option<String>,
    /// The mirrored Stripe invoice.
    #[schema(value_type = Option<crate::ids::BillingInvoiceId>)]
    pub billing_invoice_id: Option<String>,
    pub stripe_invoice_id: Option<String>,
    /// The invoice's status: `draft` until the date, then `open` while
    /// being collected, `paid`, `uncollectible` or `void`; `pending` until
    /// Stripe answered.
    #[schema(example = "draft")]
    pub status: String,
    /// The ledger payment, once it was charged.
    #[schema(value_type = Option<crate::ids::PaymentId>)]
    pub payment_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's.
    #[param(value_type = Option<crate::ids::CustomerId>)]
    pub customer: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn parse_date(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| Error::InvalidBody("date is YYYY-MM-DD or an RFC 3339 time".into()))
}

pub async fn create(
    ctx: &Ctx,
    actor: &Actor,
    body: ScheduledPaymentIn,
) -> Result<ScheduledPaymentOut> {
    actor.require_secret()?;
    let account = actor.account().clone();
    let money = Money::new(body.amount, Currency::parse(&body.currency)?)?;
    let at = parse_date(&body.date)?;
    if at <= ctx.now() {
        return Err(Error::rule(
            RuleCode::DateNotInFuture,
            "date must be in the future",
        ));
    }
    if let Some(d) = &body.description {
        if d.chars().count() > 500 {
            return Err(Error::InvalidBody(
                "description is at most 500 characters".into(),
            ));
        }
    }
    let (customer_id, stripe_customer) =
        billable_stripe_customer(ctx, &account, &body.customer).await?;
    let now = ctx.now();
    let row = ScheduledPaymentRow {
        id: String::from(ScheduledPaymentId::generate()),
        account_id: account.as_str().to_string(),
        customer_id: customer_id.as_str().to_string(),
        amount: money.minor(),
        currency: money.currency().as_str().to_string(),
        charge_at: at.timestamp(),
        description: body.description.clone(),
        stripe_invoice_id: None,
        created_at: now,
        updated_at: now,
    };
    {
        let mut h = ctx.store().acquire().await?;
        h.conn().insert_scheduled_payment(&row).await?;
    }
    let stripe = ctx.stripe_of(&account).await?;
    let invoice: Value = stripe
        .post(
            "/v1/invoices",
            &Params::new()
                .set("customer", &stripe_customer)
                .set("currency", &row.currency)
                .set("collection_method", "charge_automatically")
                .set("auto_advance", "true")
                .set("automatically_finalizes_at", row.charge_at)
                .set("pending_invoice_items_behavior", "exclude")
                .set_opt("description", row.description.as_deref())
                .set("metadata[obol_scheduled_payment_id]", &row.id)
                .set("metadata[obol_customer_id]", &row.customer_id),
            &IdempotencyKey::for_op("scheduled-payment-invoice", &[&row.id]),
        )
        .await?;
    let invoice_id = invoice["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::internal("Stripe answered an invoice without an id"))?
        .to_string();
    {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .set_scheduled_payment_invoice(&account, &row.id, &invoice_id, ctx.now())
            .await?;
    }
    let _item: Value = stripe
        .post(
            "/v1/invoiceitems",
            &Params::new()
                .set("customer", &stripe_customer)
                .set("invoice", &invoice_id)
                .set("amount", row.amount)
                .set("currency", &row.currency)
                .set(
                    "description",
                    row.description.as_deref().unwrap_or("Scheduled payment"),
                )
                .set("metadata[obol_scheduled_payment_id]", &row.id),
            &IdempotencyKey::for_op("scheduled-payment-item", &[&row.id]),
        )
        .await?;
    // Adding the item changes the draft without an event: read it back so
    // the mirror shows the amount from the start.
    let current: Value = stripe
        .get(&format!("/v1/invoices/{invoice_id}"), &Params::new())
        .await?;
    super::billing_invoices::observe_read(ctx, &account, &current).await?;
    tracing::info!(scheduled_payment = %row.id, invoice = %invoice_id, charge_at = %at, "scheduled payment created");
    view(ctx, actor, &row.id).await
}

async fn view(ctx: &Ctx, actor: &Actor, id: &str) -> Result<ScheduledPaymentOut> {
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let row = conn
        .get_scheduled_payment(actor.account(), id)
        .await?
        .ok_or(Error::NotFound(Resource::ScheduledPayment))?;
    out(&mut conn, actor, row).await
}

async fn out(
    conn: &mut crate::storage::Conn<'_>,
    actor: &Actor,
    row: ScheduledPaymentRow,
) -> Result<ScheduledPaymentOut> {
    let invoice = match &row.stripe_invoice_id {
        Some(i) => {
            conn.get_billing_invoice_by_stripe_id(actor.account(), i)
                .await?
        }
        None => None,
    };
    Ok(ScheduledPaymentOut {
        amount: Money::balance(row.amount, Currency::parse(&row.currency)?)?,
        charge_at: Utc
            .timestamp_opt(row.charge_at, 0)
            .single()
            .ok_or_else(|| Error::internal("a scheduled payment's date is out of range"))?,
        billing_invoice_id: invoice.as_ref().map(|i| i.id.clone()),
        status: invoice
            .as_ref()
            .map_or_else(|| "pending".to_string(), |i| i.status.clone()),
        payment_id: invoice.and_then(|i| i.payment_id),
        id: row.id,
        customer_id: row.customer_id,
        description: row.description,
        stripe_invoice_id: row.stripe_invoice_id,
        created_at: row.created_at,
    })
}

pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<ScheduledPaymentOut> {
    actor.require_secret()?;
    let id =
        ScheduledPaymentId::parse(id).map_err(|_| Error::NotFound(Resource::ScheduledPayment))?;
    view(ctx, actor, id.as_str()).await
}

/// Newest first.
pub async fn list(ctx: &Ctx, actor: &Actor, q: ListQuery) -> Result<Page<ScheduledPaymentOut>> {
    actor.require_secret()?;
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let rows = conn
        .list_scheduled_payments(
            actor.account(),
            q.customer.as_deref(),
            before.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
    let page = Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    });
    let mut data = Vec::with_capacity(page.data.len());
    for r in page.data {
        data.push(out(&mut conn, actor, r).await?);
    }
    Ok(Page {
        data,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    })
}
