//! Charge runs: off-session charges of members' saved cards, many at once
//! (a wine-club release). A run is created as a draft, items are streamed
//! in (at most 1,000 per call, as many calls as needed), then started:
//! `charge_run` jobs claim items in batches and charge them concurrently
//! under the process's Stripe rate limiter.
//!
//! Never twice: each item's PaymentIntent is created and confirmed with an
//! idempotency key derived from the item, so a worker that died mid-charge,
//! a restart or a second obol process sending the same item again gets
//! Stripe's first answer back. An item is written only by the worker
//! holding its claim; a success Stripe reports for it later (3-D Secure
//! completed by the member) moves it on through the payment writer.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::checkout;
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::{ChargeRunId, ChargeRunItemId, CustomerId};
use crate::ledger::charge_run::{Outcome, RunStatus};
use crate::money::{Currency, Money};
use crate::storage::charge_runs::{ChargeRunRow, ItemResult, ItemRow};
use crate::stripe::{IdempotencyKey, Params, StripeError};

/// At most this many items per `POST /v1/charge-runs/{id}/items`.
pub const MAX_ITEMS_PER_CALL: usize = 1_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeRunIn {
    /// 1–200 characters ("Autumn release 2026").
    pub name: String,
    #[schema(value_type = Currency)]
    pub currency: String,
    /// On the members' statements and receipts (at most 500 characters).
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemIn {
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer_id: String,
    /// Minor units of the run's currency.
    pub amount: i64,
    /// The host's own reference (an order or shipment number), unique per run.
    pub external_reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemsIn {
    /// 1–1000 items.
    pub items: Vec<ItemIn>,
}

/// What an items call added.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemsAdded {
    pub added: usize,
    /// Items in the run now.
    pub item_count: i64,
}

/// Items and their amounts by outcome.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Tally {
    pub items: i64,
    /// Minor units.
    pub amount: i64,
}

/// A charge run with its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeRunOut {
    #[schema(value_type = crate::ids::ChargeRunId)]
    pub id: String,
    pub name: String,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub description: Option<String>,
    pub status: RunStatus,
    pub item_count: i64,
    /// Items by outcome (`pending`, `processing`, `succeeded`,
    /// `requires_action`, `failed`, `no_payment_method`, `canceled`).
    #[schema(value_type = Object)]
    pub counts: BTreeMap<String, i64>,
    /// Amounts (minor units) by outcome.
    #[schema(value_type = Object)]
    pub amounts: BTreeMap<String, i64>,
    /// Items with their outcome, 0–1.
    pub progress: f64,
    /// Items decided per second over the last minute.
    pub rate_per_second: f64,
    /// Seconds until every item is decided at that rate; null when idle.
    pub estimated_seconds_left: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
}

/// One member's charge.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemOut {
    #[schema(value_type = crate::ids::ChargeRunItemId)]
    pub id: String,
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer_id: String,
    pub amount: i64,
    pub external_reference: Option<String>,
    pub outcome: Outcome,
    /// Stripe's `pi_…`, once one was made.
    pub payment_intent_id: Option<String>,
    /// Stripe's decline code (`insufficient_funds`, …) of a failed charge.
    pub decline_code: Option<String>,
    pub failure_message: Option<String>,
    pub attempts: i32,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<ItemRow> for ItemOut {
    fn from(r: ItemRow) -> Self {
        ItemOut {
            id: r.id,
            customer_id: r.customer_id,
            amount: r.amount,
            external_reference: r.external_reference,
            outcome: r.outcome,
            payment_intent_id: r.payment_intent_id,
            decline_code: r.decline_code,
            failure_message: r.failure_message,
            attempts: r.attempts,
            finished_at: r.finished_at,
        }
    }
}

/// A page of items, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemPage {
    pub data: Vec<ItemOut>,
    pub has_more: bool,
    /// Present when `has_more`: pass it as `cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemsQuery {
    /// Only items with this outcome.
    #[param(value_type = Option<Outcome>)]
    pub outcome: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn parse_id(id: &str) -> Result<ChargeRunId> {
    ChargeRunId::parse(id).map_err(|_| Error::NotFound(Resource::ChargeRun))
}

async fn load(ctx: &Ctx, actor: &Actor, id: &str) -> Result<ChargeRunRow> {
    actor.require_secret()?;
    let id = parse_id(id)?;
    let mut h = ctx.store().acquire().await?;
    h.conn()
        .get_charge_run(Some(actor.account()), id.as_str())
        .await?
        .ok_or(Error::NotFound(Resource::ChargeRun))
}

pub async fn create(ctx: &Ctx, actor: &Actor, body: ChargeRunIn) -> Result<ChargeRunOut> {
    actor.require_secret()?;
    let name = crate::validate::text("name", &body.name, 200)?.to_string();
    let currency = Currency::parse(&body.currency)?;
    let description = match body.description.as_deref() {
        None => None,
        Some(d) => Some(crate::validate::text("description", d, 500)?.to_string()),
    };
    let now = ctx.now();
    let row = ChargeRunRow {
        id: ChargeRunId::generate().into(),
        account_id: actor.account().as_str().to_string(),
        name,
        currency: currency.as_str().to_string(),
        description,
        status: RunStatus::Draft,
        created_at: now,
        updated_at: now,
        started_at: None,
        completed_at: None,
        canceled_at: None,
    };
    let row = {
        let mut h = ctx.store().acquire().await?;
        h.conn().insert_charge_run(&row).await?
    };
    view(ctx, row).await
}

/// Adds up to 1,000 items to a draft run, all or none.
pub async fn add_items(ctx: &Ctx, actor: &Actor, id: &str, body: ItemsIn) -> Result<ItemsAdded> {
    let run = load(ctx, actor, id).await?;
    if run.status != RunStatus::Draft {
        return Err(Error::rule(
            RuleCode::ChargeRunNotDraft,
            format!(
                "the run is {}; items are added to a draft",
                run.status.as_str()
            ),
        ));
    }
    if body.items.is_empty() || body.items.len() > MAX_ITEMS_PER_CALL {
        return Err(Error::rule(
            RuleCode::InvalidLineItems,
            format!("send 1 to {MAX_ITEMS_PER_CALL} items per call"),
        ));
    }
    let currency = Currency::parse(&run.currency)?;
    let now = ctx.now();
    let mut rows = Vec::with_capacity(body.items.len());
    let mut seen = std::collections::HashSet::new();
    for (i, it) in body.items.iter().enumerate() {
        let customer = CustomerId::parse(&it.customer_id).map_err(|_| {
            Error::rule(
                RuleCode::FieldInvalid,
                format!("items[{i}].customer_id is not a customer id"),
            )
        })?;
        let amount = Money::new(it.amount, currency)?.ensure_minimum_charge()?;
        let reference = match it.external_reference.as_deref() {
            None => None,
            Some(r) => {
                let r = crate::validate::text(&format!("items[{i}].external_reference"), r, 200)?;
                if !seen.insert(r.to_string()) {
                    return Err(Error::rule(
                        RuleCode::DuplicateReference,
                        format!("items[{i}].external_reference {r:?} appears twice"),
                    ));
                }
                Some(r.to_string())
            }
        };
        rows.push(ItemRow {
            id: ChargeRunItemId::generate().into(),
            run_id: run.id.clone(),
            account_id: run.account_id.clone(),
            customer_id: customer.as_str().to_string(),
            amount: amount.minor(),
            external_reference: reference,
            outcome: Outcome::Pending,
            payment_intent_id: None,
            decline_code: None,
            failure_message: None,
            attempts: 0,
            claimed_by: None,
            claimed_until: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        });
    }
    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    let current = conn
        .get_charge_run(Some(actor.account()), &run.id)
        .await?
        .ok_or(Error::NotFound(Resource::ChargeRun))?;
    if current.status != RunStatus::Draft {
        return Err(Error::rule(
            RuleCode::ChargeRunNotDraft,
            "the run was started meanwhile",
        ));
    }
    match conn.insert_charge_run_items(&rows).await {
        Ok(()) => {}
        Err(Error::Database(e)) if crate::storage::is_unique_violation(&e) => {
            return Err(Error::rule(
                RuleCode::DuplicateReference,
                "an external_reference of these items is in the run already",
            ))
        }
        // A customer obol does not know (the foreign key).
        Err(Error::Database(sqlx::Error::Database(db))) if db.is_foreign_key_violation() => {
            return Err(Error::rule(
                RuleCode::FieldInvalid,
                "an item names a customer obol does not know",
            ))
        }
        Err(e) => return Err(e),
    }
    let total: i64 = conn
        .count_charge_run_items(&run.id)
        .await?
        .iter()
        .map(|c| c.items)
        .sum();
    tx.commit().await?;
    Ok(ItemsAdded {
        added: rows.len(),
        item_count: total,
    })
}

/// draft → running: queues the run's workers.
pub async fn start(ctx: &Ctx, actor: &Actor, id: &str) -> Result<ChargeRunOut> {
    let run = load(ctx, actor, id).await?;
    // Every item is a Stripe charge: an organisation without a connected
    // account is refused now, not item by item in the workers.
    ctx.stripe_of(&run.account()).await?;
    let now = ctx.now();
    {
        let mut tx = ctx.store().begin().await?;
        let mut conn = tx.conn();
        if !conn
            .move_charge_run(&run.id, RunStatus::Draft, RunStatus::Running, now)
            .await?
        {
            return Err(Error::rule(
                RuleCode::ChargeRunNotDraft,
                format!(
                    "the run is {}; only a draft can be started",
                    run.status.as_str()
                ),
            ));
        }
        crate::jobs::charge_run::enqueue_workers(
            &mut conn,
            &run,
            ctx.settings().charge_run_workers,
            now,
        )
        .await?;
        tx.commit().await?;
    }
    crate::jobs::wake();
    tracing::info!(run = %run.id, "charge run started");
    get(ctx, actor, id).await
}

/// No new charges: items not yet sent are canceled; charges already sent
/// finish. A run with nothing in flight is canceled at once.
pub async fn cancel(ctx: &Ctx, actor: &Actor, id: &str) -> Result<ChargeRunOut> {
    let run = load(ctx, actor, id).await?;
    if !matches!(run.status, RunStatus::Draft | RunStatus::Running) {
        return Err(Error::rule(
            RuleCode::ChargeRunNotCancelable,
            format!("the run is {}", run.status.as_str()),
        ));
    }
    let now = ctx.now();
    let mut tx = ctx.store().begin().await?;
    let Some(canceled) = crate::charge_runs::cancel_run(&mut tx.conn(), &run, now).await? else {
        return Err(Error::rule(
            RuleCode::ChargeRunNotCancelable,
            "the run changed meanwhile; read it and try again",
        ));
    };
    tx.commit().await?;
    tracing::info!(run = %run.id, canceled, "charge run canceled");
    get(ctx, actor, id).await
}

pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<ChargeRunOut> {
    let run = load(ctx, actor, id).await?;
    view(ctx, run).await
}

async fn view(ctx: &Ctx, run: ChargeRunRow) -> Result<ChargeRunOut> {
    let (counts, recent) = {
        let mut h = ctx.store().acquire().await?;
        let mut conn = h.conn();
        let counts = conn.count_charge_run_items(&run.id).await?;
        let recent = conn
            .count_items_decided_since(&run.id, ctx.now() - Duration::seconds(60))
            .await?;
        (counts, recent)
    };
    let mut by_outcome = BTreeMap::new();
    let mut amounts = BTreeMap::new();
    for o in Outcome::ALL {
        by_outcome.insert(o.as_str().to_string(), 0);
        amounts.insert(o.as_str().to_string(), 0);
    }
    let mut total = 0;
    let mut open = 0;
    for c in counts {
        total += c.items;
        if matches!(
            Outcome::parse(&c.outcome),
            Some(Outcome::Pending | Outcome::Processing)
        ) {
            open += c.items;
        }
        by_outcome.insert(c.outcome.clone(), c.items);
        amounts.insert(c.outcome, c.amount);
    }
    let elapsed = run
        .started_at
        .map(|s| (ctx.now() - s).num_milliseconds().max(1) as f64 / 1000.0)
        .unwrap_or(60.0)
        .min(60.0);
    let rate = if run.status == RunStatus::Running {
        recent as f64 / elapsed
    } else {
        0.0
    };
    Ok(ChargeRunOut {
        id: run.id,
        name: run.name,
        currency: run.currency,
        description: run.description,
        status: run.status,
        item_count: total,
        counts: by_outcome,
        amounts,
        progress: if total == 0 {
            0.0
        } else {
            (total - open) as f64 / total as f64
        },
        rate_per_second: (rate * 100.0).round() / 100.0,
        estimated_seconds_left: (rate > 0.0 && open > 0)
            .then(|| (open as f64 / rate).ceil() as i64),
        created_at: run.created_at,
        started_at: run.started_at,
        completed_at: run.completed_at,
        canceled_at: run.canceled_at,
    })
}

pub async fn list_items(ctx: &Ctx, actor: &Actor, id: &str, q: ItemsQuery) -> Result<ItemPage> {
    let run = load(ctx, actor, id).await?;
    let outcome = q
        .outcome
        .as_deref()
        .map(|o| {
            Outcome::parse(o).ok_or_else(|| {
                Error::InvalidQuery(
                    "outcome is pending, processing, succeeded, requires_action, failed, no_payment_method or canceled".into(),
                )
            })
        })
        .transpose()?;
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => return Err(Error::InvalidQuery("limit is between 1 and 1000".into())),
    };
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            ChargeRunItemId::parse(c)
                .map_err(|_| Error::InvalidQuery("cursor is not one obol gave".into()))?,
        ),
    };
    let mut rows = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .list_charge_run_items(
                &run.id,
                outcome.map(Outcome::as_str),
                after.as_ref().map(ChargeRunItemId::as_str),
                limit + 1,
            )
            .await?
    };
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(0);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = has_more
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    Ok(ItemPage {
        data: rows.into_iter().map(ItemOut::from).collect(),
        has_more,
        next_cursor,
    })
}

/// What one worker pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pass {
    pub charged: usize,
    /// Items whose charge could not be sent (Stripe unreachable); retried
    /// when their claim expires.
    pub deferred: usize,
}

/// Claims and charges items of `run_id` until `budget` is spent or none
/// is left; `concurrency` charges at once.
pub async fn work(
    ctx: &Ctx,
    run_id: &str,
    worker: &str,
    concurrency: usize,
    budget: std::time::Duration,
) -> Result<Pass> {
    let started = std::time::Instant::now();
    let mut pass = Pass::default();
    let lease =
        Duration::seconds(i64::try_from(ctx.settings().charge_run_item_lease).unwrap_or(120));
    loop {
        if started.elapsed() >= budget {
            break;
        }
        let run = {
            let mut h = ctx.store().acquire().await?;
            h.conn().get_charge_run(None, run_id).await?
        };
        let Some(run) = run else { break };
        if run.status != RunStatus::Running {
            break;
        }
        let now = ctx.now();
        let t_claim = std::time::Instant::now();
        let batch = {
            let mut h = ctx.store().acquire().await?;
            h.conn()
                .claim_charge_run_items(
                    run_id,
                    worker,
                    now,
                    now + lease,
                    i64::try_from(concurrency * 2).unwrap_or(16),
                )
                .await?
        };
        if batch.is_empty() {
            break;
        }
        let claimed_in = t_claim.elapsed();
        let size = batch.len();
        let results: Vec<Result<bool>> = futures::stream::iter(batch)
            .map(|item| {
                let run = &run;
                async move { charge(ctx, run, &item, worker).await }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        tracing::trace!(
            run = %run_id,
            size,
            claim_us = claimed_in.as_micros() as u64,
            batch_us = (t_claim.elapsed() - claimed_in).as_micros() as u64,
            "charge run batch timing"
        );
        for r in results {
            match r {
                Ok(true) => pass.charged += 1,
                Ok(false) => pass.deferred += 1,
                Err(e) => {
                    tracing::warn!(run = %run_id, error = %e, "a charge run item could not be recorded; its claim will expire");
                    pass.deferred += 1;
                }
            }
        }
    }
    finish_if_done(ctx, run_id).await?;
    Ok(pass)
}

/// running → completed once no item is left pending or in flight.
pub async fn finish_if_done(ctx: &Ctx, run_id: &str) -> Result<bool> {
    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    let Some(run) = conn.get_charge_run(None, run_id).await? else {
        return Ok(false);
    };
    let counts = conn.count_charge_run_items(run_id).await?;
    let open = counts
        .iter()
        .filter(|c| {
            matches!(
                Outcome::parse(&c.outcome),
                Some(Outcome::Pending | Outcome::Processing)
            )
        })
        .map(|c| c.items)
        .sum::<i64>();
    if open > 0 || run.status != RunStatus::Running {
        return Ok(false);
    }
    let now = ctx.now();
    if !conn
        .move_charge_run(run_id, RunStatus::Running, RunStatus::Completed, now)
        .await?
    {
        return Ok(false);
    }
    let mut by = BTreeMap::new();
    for c in counts {
        by.insert(c.outcome, c.items);
    }
    let done = conn
        .get_charge_run(None, run_id)
        .await?
        .ok_or_else(|| Error::internal("the run vanished"))?;
    crate::outbox::notify_charge_run(&mut conn, "charge_run.completed", &done, by, now).await?;
    tx.commit().await?;
    tracing::info!(run = %run_id, "charge run completed");
    Ok(true)
}

/// Charges one claimed item; `Ok(false)` when it must be tried again.
async fn charge(ctx: &Ctx, run: &ChargeRunRow, item: &ItemRow, worker: &str) -> Result<bool> {
    let account = run.account();
    let t0 = std::time::Instant::now();
    let (card, stripe_customer) = {
        let mut h = ctx.store().acquire().await?;
        let mut conn = h.conn();
        let card = conn
            .get_default_payment_method(&account, &item.customer_id)
            .await?;
        let customer = conn
            .get_customer(&account, &CustomerId::from_db(item.customer_id.clone()))
            .await?;
        (card, customer.and_then(|c| c.stripe_customer_id))
    };
    let (Some(card), Some(stripe_customer)) = (card, stripe_customer) else {
        return record(
            ctx,
            run,
            item,
            worker,
            ItemResult {
                outcome: Outcome::NoPaymentMethod,
                payment_intent_id: None,
                decline_code: None,
                failure_message: Some("the member has no saved card"),
            },
        )
        .await;
    };
    let params = Params::new()
        .set("amount", item.amount)
        .set("currency", run.currency.as_str())
        .set("customer", stripe_customer.as_str())
        .set("payment_method", card.stripe_payment_method_id.as_str())
        .set("payment_method_types[]", "card")
        .set("off_session", "true")
        .set("confirm", "true")
        .set_opt(
            "description",
            run.description.as_deref().or(Some(run.name.as_str())),
        )
        .set("metadata[obol_charge_run_id]", &run.id)
        .set("metadata[obol_charge_run_item_id]", &item.id)
        .set("metadata[obol_customer_id]", &item.customer_id);
    let t_read = t0.elapsed();
    let answer = ctx
        .stripe_of(&account)
        .await?
        .post::<Value>(
            "/v1/payment_intents",
            &params,
            &IdempotencyKey::for_op("charge-run-item", &[&item.id]),
        )
        .await;
    let t_stripe = t0.elapsed();
    match answer {
        Ok(intent) => {
            let status = intent["status"].as_str().unwrap_or_default().to_string();
            let pi = intent["id"].as_str().unwrap_or_default().to_string();
            if let Err(e) = checkout::observe(ctx, &account, &intent, "charge run").await {
                tracing::warn!(item = %item.id, error = %e, "recording a charge run payment failed; the webhook records it");
            }
            let t_observe = t0.elapsed();
            let outcome = match status.as_str() {
                "succeeded" => Outcome::Succeeded,
                "requires_action" => Outcome::RequiresAction,
                "processing" | "requires_capture" => {
                    // Decided by its webhook; looked at again when the
                    // claim expires (the same key answers the same intent).
                    let mut h = ctx.store().acquire().await?;
                    h.conn()
                        .reclaim_charge_run_item(
                            &item.id,
                            worker,
                            ctx.now() + Duration::hours(1),
                            Some(&pi),
                        )
                        .await?;
                    return Ok(false);
                }
                other => {
                    return record(
                        ctx,
                        run,
                        item,
                        worker,
                        ItemResult {
                            outcome: Outcome::Failed,
                            payment_intent_id: Some(&pi),
                            decline_code: None,
                            failure_message: Some(&format!("Stripe left the payment {other}")),
                        },
                    )
                    .await
                }
            };
            let recorded = record(
                ctx,
                run,
                item,
                worker,
                ItemResult {
                    outcome,
                    payment_intent_id: Some(&pi),
                    decline_code: None,
                    failure_message: None,
                },
            )
            .await;
            // Where an item's time goes (`OBOL_LOG=obol::ops::charge_runs=trace`).
            tracing::trace!(
                item = %item.id,
                read_us = t_read.as_micros() as u64,
                stripe_us = (t_stripe - t_read).as_micros() as u64,
                observe_us = (t_observe - t_stripe).as_micros() as u64,
                record_us = (t0.elapsed() - t_observe).as_micros() as u64,
                "charge run item timing"
            );
            recorded
        }
        Err(StripeError::Refused { status, error }) => {
            let pi = error.payment_intent.as_ref().map(|p| p.id.clone());
            let code = error.decline_code.clone().or(error.code.clone());
            let outcome = if code.as_deref() == Some("authentication_required") {
                Outcome::RequiresAction
            } else {
                Outcome::Failed
            };
            tracing::debug!(item = %item.id, status, code = ?code, "charge run item refused");
            record(
                ctx,
                run,
                item,
                worker,
                ItemResult {
                    outcome,
                    payment_intent_id: pi.as_deref(),
                    decline_code: code.as_deref(),
                    failure_message: Some(&error.message),
                },
            )
            .await
        }
        Err(e) => {
            // Unreachable, or a garbled answer: try again when the claim
            // expires, with the same key.
            tracing::warn!(item = %item.id, error = %e, "charge run item not sent; retried later");
            let mut h = ctx.store().acquire().await?;
            h.conn()
                .reclaim_charge_run_item(&item.id, worker, ctx.now() + Duration::seconds(30), None)
                .await?;
            Ok(false)
        }
    }
}

/// Writes a claimed item's result and its notification in one transaction.
async fn record(
    ctx: &Ctx,
    run: &ChargeRunRow,
    item: &ItemRow,
    worker: &str,
    result: ItemResult<'_>,
) -> Result<bool> {
    let now = ctx.now();
    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    if !conn
        .finish_charge_run_item(&item.id, worker, &result, now)
        .await?
    {
        // Our claim passed to another worker (or a webhook decided it).
        return Ok(true);
    }
    let after = conn
        .get_charge_run_item(&run.account(), &item.id)
        .await?
        .ok_or_else(|| Error::internal("the item vanished"))?;
    if let Some(event) = after.outcome.event() {
        crate::outbox::notify_charge_run_item(&mut conn, event, &after, &run.currency, now).await?;
    }
    // The member must act: confirm with their bank, or give a card.
    let notice = matches!(
        after.outcome,
        Outcome::RequiresAction | Outcome::Failed | Outcome::NoPaymentMethod
    );
    if notice {
        crate::jobs::charge_run_notice::enqueue(&mut conn, &after).await?;
    }
    tx.commit().await?;
    let outcome = after.outcome.as_str();
    crate::metrics::record(|m| m.charge_run_item(outcome));
    tracing::debug!(run_id = %run.id, item_id = %item.id, outcome, "charge run item finished");
    if notice {
        crate::jobs::wake();
    }
    Ok(true)
}

/// The account's runs, newest first, with their progress (the admin
/// dashboard's list).
pub async fn list(
    ctx: &Ctx,
    actor: &Actor,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<super::pagination::Page<ChargeRunOut>> {
    actor.require_secret()?;
    let limit = super::pagination::limit(limit)?;
    let before = cursor
        .filter(|c| !c.is_empty())
        .map(super::pagination::Cursor::decode)
        .transpose()?
        .map(|c| (c.at, c.id));
    let rows = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .list_charge_runs(actor.account(), before, limit + 1)
            .await?
    };
    let page = super::pagination::Page::from_rows(rows, limit, |r| super::pagination::Cursor {
        at: r.created_at,
        id: r.id.clone(),
    });
    let mut data = Vec::with_capacity(page.data.len());
    for run in page.data {
        data.push(view(ctx, run).await?);
    }
    Ok(super::pagination::Page {
        data,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    })
}
