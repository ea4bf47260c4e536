//! `billing_invoice_notice`: asks the member whose Stripe invoice (a
//! subscription's renewal, a scheduled payment) failed for a card that
//! works. Queued by the billing writer in the transaction that mirrors
//! the invoice's first failed attempt, so it exists exactly when that
//! failure does; its handler makes a card-update link (which may create
//! the member's Stripe customer, a call the inbox's transaction cannot
//! make) and queues the `card_update_requested` e-mail, named by the
//! invoice (`billing_invoice:{id}:card_update`): one e-mail per failed
//! invoice, however often the job or the events run.

use serde::Deserialize;

use super::card_update_notice::CardUpdateNotice;
use super::{JobCtx, JobError, JobKind, NewJob};
use crate::context::AccountId;
use crate::error::Result;
use crate::ids::CustomerId;
use crate::storage::billing::BillingInvoiceRow;
use crate::storage::jobs::JobRow;
use crate::storage::{self, Conn};

#[derive(Debug, Deserialize)]
struct Payload {
    billing_invoice_id: String,
}

/// Queues the notice of `invoice`, inside the transaction that mirrored
/// its failure.
pub async fn enqueue(conn: &mut Conn<'_>, invoice: &BillingInvoiceRow) -> Result<()> {
    let job = NewJob {
        kind: JobKind::BillingInvoiceNotice,
        payload: crate::billing::notice_payload(invoice),
        account_id: invoice.account(),
        dedupe_key: Some(format!(
            "{}:{}",
            JobKind::BillingInvoiceNotice.as_str(),
            invoice.id
        )),
        run_at: storage::now(),
    };
    super::enqueue(conn, &job).await?;
    Ok(())
}

fn retry(e: crate::error::Error) -> JobError {
    JobError::Retry(e.to_string())
}

pub async fn run(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    let p: Payload = super::payload(job)?;
    let account = AccountId::from_db(job.account_id.clone());
    let (invoice, customer, waiting_for_action) = {
        let mut h = ctx.ctx.store().acquire().await.map_err(retry)?;
        let mut conn = h.conn();
        let invoice = conn
            .get_billing_invoice(&account, &p.billing_invoice_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| {
                JobError::Permanent(format!("invoice {} does not exist", p.billing_invoice_id))
            })?;
        let customer = match &invoice.customer_id {
            Some(c) => conn
                .get_customer(&account, &CustomerId::from_db(c.clone()))
                .await
                .map_err(retry)?,
            None => None,
        };
        // A payment waiting for 3-D Secure needs the member's bank, not a
        // new card (the host is told with `invoice.payment_action_required`).
        let waiting = match &invoice.payment_id {
            Some(pid) => conn
                .get_payment(&account, pid)
                .await
                .map_err(retry)?
                .is_some_and(|p| p.status == crate::ledger::PaymentState::RequiresAction),
            None => false,
        };
        (invoice, customer, waiting)
    };
    if invoice.status != "open" || waiting_for_action {
        return Ok(());
    }
    let Some(customer) = customer else {
        tracing::warn!(invoice = %invoice.id, "a failed invoice's member is not one of obol's customers");
        return Ok(());
    };
    let Some(email) = customer.email.clone() else {
        tracing::warn!(invoice = %invoice.id, "a member to tell about their card has no e-mail address");
        return Ok(());
    };
    let description = if invoice.subscription_id.is_some() {
        "your recurring payment"
    } else {
        "your scheduled payment"
    };
    super::card_update_notice::send(
        ctx,
        CardUpdateNotice {
            account: &account,
            customer_id: &customer.id,
            email: &email,
            reason: "your card was declined",
            amount: (invoice.amount_due, invoice.currency.clone()),
            description: description.to_string(),
            name: format!("billing_invoice:{}:card_update", invoice.id),
        },
    )
    .await?;
    tracing::info!(invoice = %invoice.id, customer = %customer.id, "member asked to update their card");
    Ok(())
}
