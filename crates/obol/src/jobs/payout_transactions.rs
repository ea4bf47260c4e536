//! `payout_transactions`: fetches the balance transactions a paid payout
//! settles (`GET /v1/balance_transactions?payout=po_…`, paged, with
//! `expand[]=data.source` to learn each charge's, refund's and dispute's
//! PaymentIntent) in the payout's own Stripe account (`Ctx::stripe_of`:
//! an organisation's payouts live in its connected account), and stores
//! them in one transaction, so `GET /v1/payouts/{id}/transactions` never
//! calls Stripe.
//!
//! Queued by the payout writer in the transaction that records the payout
//! as paid, so it is never lost; its Stripe calls go through the shared
//! client (and its budget). The payout's own `payout` transaction (minus
//! the amount) is left out: what is stored is what the payout settles, and
//! its `net` sums to the payout's amount. A list that does not add up yet
//! (Stripe still reconciling) is retried, not stored.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{JobCtx, JobError, JobKind, NewJob};
use crate::context::AccountId;
use crate::error::{Error, Result};
use crate::storage::jobs::JobRow;
use crate::storage::payouts::{NewPayoutTransaction, PayoutRow};
use crate::storage::{self, Conn};
use crate::stripe::{Params, StripeError};

#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    pub payout_id: String,
}

pub fn dedupe_key(payout_id: &str) -> String {
    format!("{}:{payout_id}", JobKind::PayoutTransactions.as_str())
}

/// Queues the fetch for `payout` in the caller's transaction (nothing if
/// one is queued or running).
pub async fn enqueue(conn: &mut Conn<'_>, payout: &PayoutRow) -> Result<bool> {
    let job = NewJob {
        kind: JobKind::PayoutTransactions,
        payload: json!({"payout_id": payout.id}),
        account_id: payout.account(),
        dedupe_key: Some(dedupe_key(&payout.id)),
        run_at: storage::now(),
    };
    let queued = super::enqueue(conn, &job).await?.is_some();
    if queued {
        super::wake();
    }
    Ok(queued)
}

#[derive(Debug, Deserialize)]
struct TxnList {
    data: Vec<Value>,
    has_more: bool,
}

#[derive(Debug, Deserialize)]
struct StripeTxn {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    reporting_category: Option<String>,
    amount: i64,
    fee: i64,
    net: i64,
    currency: String,
    created: i64,
    available_on: i64,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    source: Option<Value>,
}

/// Reads one listed transaction: the source's id, and its PaymentIntent
/// when the source is a charge, refund or dispute (expanded).
fn read_txn(v: &Value) -> std::result::Result<NewPayoutTransaction, String> {
    let t: StripeTxn = serde_json::from_value(v.clone())
        .map_err(|e| format!("Stripe listed a malformed balance transaction: {e}"))?;
    let source_id = crate::payments::id_of(t.source.as_ref());
    let payment_intent_id = t
        .source
        .as_ref()
        .filter(|s| s.is_object())
        .and_then(|s| crate::payments::id_of(s.get("payment_intent")));
    Ok(NewPayoutTransaction {
        stripe_balance_transaction_id: t.id,
        reporting_category: t.reporting_category.unwrap_or_else(|| t.kind.clone()),
        kind: t.kind,
        amount: t.amount,
        fee: t.fee,
        net: t.net,
        currency: t.currency.to_ascii_lowercase(),
        created: t.created,
        available_on: t.available_on,
        description: t.description,
        source_id,
        payment_intent_id,
    })
}

pub async fn run(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    let p: Payload = super::payload(job)?;
    let account = AccountId::from_db(job.account_id.clone());
    let store = ctx.ctx.store();
    let payout = {
        let mut h = store.acquire().await.map_err(retry)?;
        h.conn()
            .get_payout(&account, &p.payout_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobError::Permanent(format!("payout {} does not exist", p.payout_id)))?
    };
    if payout.transactions_status == "fetched" {
        return Ok(());
    }
    let stripe = ctx.ctx.stripe_of(&account).await.map_err(retry)?;
    let mut rows = Vec::new();
    let mut starting_after: Option<String> = None;
    loop {
        let params = Params::new()
            .set("payout", payout.stripe_payout_id.as_str())
            .set("limit", 100)
            .set("expand[]", "data.source")
            .set_opt("starting_after", starting_after.as_deref());
        let page: TxnList = stripe
            .get("/v1/balance_transactions", &params)
            .await
            .map_err(stripe_error)?;
        for v in &page.data {
            let t = read_txn(v).map_err(JobError::Permanent)?;
            // The payout's own withdrawal from the balance: not something
            // it settles.
            if t.kind == "payout" && t.source_id.as_deref() == Some(&payout.stripe_payout_id) {
                continue;
            }
            rows.push(t);
        }
        match (
            page.has_more,
            page.data.last().and_then(|t| t["id"].as_str()),
        ) {
            (true, Some(last)) => starting_after = Some(last.to_string()),
            _ => break,
        }
    }
    // Stripe lists newest first; the bookkeeper reads oldest first.
    rows.reverse();
    let net: i64 = rows.iter().map(|t| t.net).sum();
    if rows.iter().any(|t| t.currency != payout.currency) || net != payout.amount {
        return Err(JobError::Retry(format!(
            "the {} balance transactions Stripe listed for {} net {net}, not the payout's {} {}: \
             Stripe may still be reconciling it",
            rows.len(),
            payout.stripe_payout_id,
            payout.amount,
            payout.currency
        )));
    }
    let mut tx = store.begin().await.map_err(retry)?;
    tx.conn()
        .replace_payout_transactions(&payout, &rows, storage::now())
        .await
        .map_err(retry)?;
    tx.commit().await.map_err(retry)?;
    tracing::info!(payout = %payout.id, transactions = rows.len(), "payout transactions fetched");
    Ok(())
}

fn retry(e: Error) -> JobError {
    JobError::Retry(e.to_string())
}

fn stripe_error(e: StripeError) -> JobError {
    match e {
        StripeError::Refused { .. } => JobError::Permanent(e.to_string()),
        StripeError::Unavailable { .. } | StripeError::Decode(_) => JobError::Retry(e.to_string()),
    }
}
