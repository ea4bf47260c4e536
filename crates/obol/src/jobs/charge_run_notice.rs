//! `charge_run_notice`: tells a member who must act about their charge.
//! Queued in the transaction that records a `requires_action`, `failed`
//! or `no_payment_method` item, so the notice exists exactly when the
//! outcome does; its handler queues the e-mail, named by the item so it
//! is sent once however often this job runs:
//!
//! - `requires_action`: a 3-D Secure action link (`ops::payment_actions`),
//!   minted in the transaction that queues the `payment_action_required`
//!   e-mail (`charge_run_item:{id}:action`), so there is one link per
//!   item and its only copy is in that e-mail;
//! - `failed`, `no_payment_method`: a card-update link (which may create
//!   the member's Stripe customer, a Stripe call the outcome's
//!   transaction cannot make) and the `card_update_requested` e-mail.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{JobCtx, JobError, JobKind, NewJob};
use crate::context::AccountId;
use crate::error::Result;
use crate::ids::CustomerId;
use crate::ledger::charge_run::Outcome;
use crate::storage::charge_runs::{ChargeRunRow, ItemRow};
use crate::storage::customers::CustomerRow;
use crate::storage::jobs::JobRow;
use crate::storage::{self, Conn};

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    item_id: String,
}

/// Queues the notice of `item`, inside the transaction that decided it.
pub async fn enqueue(conn: &mut Conn<'_>, item: &ItemRow) -> Result<()> {
    let job = NewJob {
        kind: JobKind::ChargeRunNotice,
        payload: json!({"item_id": item.id}),
        account_id: AccountId::from_db(item.account_id.clone()),
        dedupe_key: Some(format!("{}:{}", JobKind::ChargeRunNotice.as_str(), item.id)),
        run_at: storage::now(),
    };
    super::enqueue(conn, &job).await?;
    Ok(())
}

fn retry(e: crate::error::Error) -> JobError {
    JobError::Retry(e.to_string())
}

fn enqueue_failed(e: crate::error::Error) -> JobError {
    match e {
        crate::error::Error::InvalidBody(m) => JobError::Permanent(m),
        e => retry(e),
    }
}

/// The bank asks the member to authenticate: the action link and its
/// e-mail, in one transaction (the link is minted only with its e-mail).
async fn action_required(
    ctx: &JobCtx,
    account: &AccountId,
    item: &ItemRow,
    run: &ChargeRunRow,
    customer: Option<CustomerRow>,
) -> std::result::Result<(), JobError> {
    let Some(email) = customer.and_then(|c| c.email) else {
        tracing::warn!(item = %item.id, "a member to ask to confirm their payment has no e-mail address");
        return Ok(());
    };
    let now = storage::now();
    let mut tx = ctx.ctx.store().begin().await.map_err(retry)?;
    let mut conn = tx.conn();
    let Some(link) = crate::ops::payment_actions::mint(&ctx.ctx, &mut conn, item, now)
        .await
        .map_err(retry)?
    else {
        // Minted (and its e-mail queued) by an earlier run of this job.
        return Ok(());
    };
    let template = crate::email::Template::PaymentActionRequired {
        business: ctx.ctx.settings().email_business_name.clone(),
        amount: item.amount,
        currency: run.currency.clone(),
        description: run.description.clone().unwrap_or_else(|| run.name.clone()),
        action_url: link.url,
        expires_at: link.expires_at,
    };
    crate::email::enqueue(
        &mut conn,
        account,
        Some(&item.customer_id),
        &email,
        &template,
        &format!("charge_run_item:{}:action", item.id),
        now,
    )
    .await
    .map_err(enqueue_failed)?;
    tx.commit().await.map_err(retry)?;
    tracing::info!(item = %item.id, "member asked to confirm their payment");
    Ok(())
}

pub async fn run(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    let p: Payload = super::payload(job)?;
    let account = AccountId::from_db(job.account_id.clone());
    let (item, run, customer) = {
        let mut h = ctx.ctx.store().acquire().await.map_err(retry)?;
        let mut conn = h.conn();
        let item = conn
            .get_charge_run_item(&account, &p.item_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobError::Permanent(format!("item {} does not exist", p.item_id)))?;
        let run = conn
            .get_charge_run(Some(&account), &item.run_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobError::Permanent("the item's run does not exist".into()))?;
        let customer = conn
            .get_customer(&account, &CustomerId::from_db(item.customer_id.clone()))
            .await
            .map_err(retry)?;
        (item, run, customer)
    };
    let reason = match item.outcome {
        Outcome::RequiresAction => {
            return action_required(ctx, &account, &item, &run, customer).await
        }
        Outcome::Failed => "your card was declined",
        Outcome::NoPaymentMethod => "we have no card on file for you",
        // Paid meanwhile (or not a notice's outcome): nothing to ask.
        _ => return Ok(()),
    };
    let Some(email) = customer.and_then(|c| c.email) else {
        tracing::warn!(item = %item.id, "a member to tell about their card has no e-mail address");
        return Ok(());
    };
    super::card_update_notice::send(
        ctx,
        super::card_update_notice::CardUpdateNotice {
            account: &account,
            customer_id: &item.customer_id,
            email: &email,
            reason,
            amount: (item.amount, run.currency.clone()),
            description: run.description.clone().unwrap_or_else(|| run.name.clone()),
            name: format!("charge_run_item:{}:card_update", item.id),
        },
    )
    .await
}
