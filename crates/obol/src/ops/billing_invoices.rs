//! Stripe invoices as obol mirrors them (`GET /v1/billing/invoices`):
//! subscription renewals and scheduled payments. They change only
//! through Stripe's events and reconciliation (`crate::billing`); nothing
//! here writes but `recheck`, which applies what Stripe shows now.

use serde::Deserialize;
use serde_json::Value;

use super::pagination::{self, Cursor, Page};
use crate::billing::views::BillingInvoiceOut;
use crate::billing::{self, Seen};
use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Resource, Result};
use crate::ids::BillingInvoiceId;
use crate::storage::billing::InvoiceFilter;
use crate::stripe::Params;

const STATUSES: &[&str] = &["draft", "open", "paid", "uncollectible", "void"];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's.
    #[param(value_type = Option<crate::ids::CustomerId>)]
    pub customer: Option<String>,
    /// Only this subscription's.
    #[param(value_type = Option<crate::ids::SubscriptionId>)]
    pub subscription: Option<String>,
    /// draft, open, paid, uncollectible or void.
    pub status: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Newest first.
pub async fn list(ctx: &Ctx, actor: &Actor, q: ListQuery) -> Result<Page<BillingInvoiceOut>> {
    actor.require_secret()?;
    if let Some(s) = &q.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(Error::InvalidQuery(
                "status is one of draft, open, paid, uncollectible, void".into(),
            ));
        }
    }
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut h = ctx.store().acquire().await?;
    let rows = h
        .conn()
        .list_billing_invoices(
            actor.account(),
            &InvoiceFilter {
                customer_id: q.customer.as_deref(),
                subscription_id: q.subscription.as_deref(),
                status: q.status.as_deref(),
                before: before.map(|c| (c.at, c.id)),
                limit: limit + 1,
            },
        )
        .await?;
    let page = Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    });
    Ok(Page {
        data: page
            .data
            .iter()
            .map(BillingInvoiceOut::new)
            .collect::<Result<Vec<_>>>()?,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    })
}

/// One mirrored invoice.
pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<BillingInvoiceOut> {
    actor.require_secret()?;
    let id = BillingInvoiceId::parse(id).map_err(|_| Error::NotFound(Resource::BillingInvoice))?;
    let mut h = ctx.store().acquire().await?;
    let row = h
        .conn()
        .get_billing_invoice(actor.account(), id.as_str())
        .await?
        .ok_or(Error::NotFound(Resource::BillingInvoice))?;
    BillingInvoiceOut::new(&row)
}

/// Applies an invoice obol read from Stripe as an observation made now.
pub async fn observe_read(ctx: &Ctx, account: &AccountId, invoice: &Value) -> Result<()> {
    let state = billing::read_invoice(invoice)
        .map_err(|e| Error::internal(format!("Stripe answered an unreadable invoice: {e}")))?;
    let mut tx = ctx.store().begin().await?;
    billing::observe_invoice(
        &mut tx.conn(),
        account,
        &state,
        Seen {
            stripe_event_id: None,
            event_type: None,
            at: ctx.now().timestamp(),
            read: true,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// For reconciliation: the invoices of `account` Stripe may still move,
/// read again and applied. Returns how many were checked.
pub async fn recheck(ctx: &Ctx, account: &AccountId, limit: i64) -> Result<usize> {
    let rows = {
        let mut h = ctx.store().acquire().await?;
        h.conn().list_open_billing_invoices(account, limit).await?
    };
    let stripe = ctx.stripe_of(account).await?;
    let mut checked = 0;
    for row in rows {
        let path = format!("/v1/invoices/{}", row.stripe_invoice_id);
        let result = match stripe.get::<Value>(&path, &Params::new()).await {
            Ok(inv) => observe_read(ctx, account, &inv).await,
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(()) => checked += 1,
            Err(e) => {
                tracing::warn!(invoice = %row.id, error = %e, "could not reconcile an invoice")
            }
        }
    }
    Ok(checked)
}
