//! `billing_invoice_notice`: asks the member whose Stripe invoice (a
//! subscription's renewal, a scheduled payment) failed for a card that
//! works. Queued by the billing writer in the transaction that mirrors
//! the invoice's first failed attempt, so it exists exactly when that
//! failure does; its handler makes a card-update link (which may create
//! the member's Stripe customer, a call the inbox's transaction cannot
//! make) and queues the `card_update_requested` e-mail, named by the
//! invoice (`billing_invoice:{id}:card_update`): one e-mail per failed
//! invoice, however often the job or the events run.
//!
//! An attempt the member's bank wants confirmed (3-D Secure,
//! `invoice.payment_action_required`) needs no new card: the member is
//! e-mailed the invoice's Stripe-hosted page, where they confirm it, once
//! per such attempt (`billing_invoice:{id}:action:{attempt}`).

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
    /// Set: ask the member to confirm this attempt with their bank.
    #[serde(default)]
    action_attempt: Option<i64>,
}

/// How long the e-mail says the invoice page can be used: a week, within
/// what Stripe keeps an open invoice's page working.
const ACTION_DAYS: i64 = 7;

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

/// Queues the request to confirm `invoice`'s latest attempt, inside the
/// transaction that mirrored `invoice.payment_action_required`.
pub async fn enqueue_action(conn: &mut Conn<'_>, invoice: &BillingInvoiceRow) -> Result<()> {
    let attempt = invoice.attempt_count.max(1);
    let job = NewJob {
        kind: JobKind::BillingInvoiceNotice,
        payload: crate::billing::action_notice_payload(invoice, attempt),
        account_id: invoice.account(),
        dedupe_key: Some(format!(
            "{}:{}:action:{attempt}",
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
    if invoice.status != "open" || (waiting_for_action && p.action_attempt.is_none()) {
        return Ok(());
    }
    // Stripe sends `invoice.payment_failed` before
    // `invoice.payment_action_required`, and this job may run between the
    // two: whether the attempt waits for the member's bank is asked of
    // Stripe, so a member asked to confirm is not also asked for a card.
    if p.action_attempt.is_none()
        && (invoice.action_required_attempt >= invoice.attempt_count.max(1)
            || intent_waits_for_action(ctx, &account, &invoice).await?)
    {
        tracing::info!(invoice = %invoice.id, "the failed attempt waits for the member's bank: no card-update e-mail");
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
    if let Some(attempt) = p.action_attempt {
        return ask_to_confirm(
            ctx,
            &account,
            &invoice,
            &customer.id,
            &email,
            description,
            attempt,
        )
        .await;
    }
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

/// E-mails the invoice's Stripe-hosted page, where the member confirms
/// the payment their bank asks about.
async fn ask_to_confirm(
    ctx: &JobCtx,
    account: &AccountId,
    invoice: &BillingInvoiceRow,
    customer_id: &str,
    email: &str,
    description: &str,
    attempt: i64,
) -> std::result::Result<(), JobError> {
    let Some(url) = invoice.hosted_invoice_url.clone() else {
        tracing::warn!(invoice = %invoice.id, "an invoice to confirm has no hosted page");
        return Ok(());
    };
    let now = storage::now();
    let template = crate::email::Template::PaymentActionRequired {
        business: ctx.ctx.settings().email_business_name.clone(),
        amount: invoice.amount_remaining,
        currency: invoice.currency.clone(),
        description: description.to_string(),
        action_url: url,
        expires_at: now + chrono::Duration::days(ACTION_DAYS),
    };
    let mut tx = ctx.ctx.store().begin().await.map_err(retry)?;
    crate::email::enqueue(
        &mut tx.conn(),
        account,
        Some(customer_id),
        email,
        &template,
        &format!("billing_invoice:{}:action:{attempt}", invoice.id),
        now,
    )
    .await
    .map_err(|e| match e {
        crate::error::Error::InvalidBody(m) => JobError::Permanent(m),
        e => retry(e),
    })?;
    tx.commit().await.map_err(retry)?;
    tracing::info!(invoice = %invoice.id, customer = %customer_id, attempt, "member asked to confirm a payment");
    Ok(())
}

/// Whether Stripe's PaymentIntent of `invoice` waits for the member to
/// authenticate (`requires_action`).
async fn intent_waits_for_action(
    ctx: &JobCtx,
    account: &AccountId,
    invoice: &BillingInvoiceRow,
) -> std::result::Result<bool, JobError> {
    let Some(pi) = &invoice.stripe_payment_intent_id else {
        return Ok(false);
    };
    let stripe = ctx.ctx.stripe_of(account).await.map_err(retry)?;
    let intent: serde_json::Value = stripe
        .get(
            &format!("/v1/payment_intents/{pi}"),
            &crate::stripe::Params::new(),
        )
        .await
        .map_err(|e| JobError::Retry(e.to_string()))?;
    Ok(intent["status"] == "requires_action")
}
