//! Subscriptions: recurring gifts and plans, billed by Stripe on the
//! member's default card and mirrored from Stripe's events
//! (`crate::billing`).
//!
//! - `create`: the member must have a default card (`no_default_card`
//!   otherwise); their Stripe customer is made if needed. The local row is
//!   written first (status `incomplete`, no Stripe id), then the Stripe
//!   subscription is created with inline `price_data` on obol's one
//!   product per account (`obol_subscriptions`, created with that fixed id
//!   the first time: a second create answers `resource_already_exists`,
//!   which obol takes as done), `off_session`, `metadata[obol_subscription_id]`
//!   and an idempotency key derived from obol's id. A crash between the
//!   two is healed by the `customer.subscription.created` event (matched
//!   by the metadata) or by reconciliation resubmitting with the same key.
//!   No `default_payment_method` is set on the subscription: Stripe
//!   charges the customer's `invoice_settings.default_payment_method`,
//!   which is the card obol records as the default, so a card the member
//!   saves through a card-update link pays the next renewal.
//! - Trials are `trial_days`; a later first charge is `start_date`
//!   (Stripe's `billing_cycle_anchor`, nothing charged before it). Not both.
//! - `cancel`: now (Stripe's cancel) or at the period's end.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::customers::billable_stripe_customer;
use super::pagination::{self, Cursor, Page};
use crate::billing::views::SubscriptionOut;
use crate::billing::{self, Seen};
use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::SubscriptionId;
use crate::money::{Currency, Money};
use crate::storage::billing::{NewSubscription, SubscriptionFilter, SubscriptionRow};
use crate::stripe::{IdempotencyKey, Params, StripeError};

/// obol's product for inline prices, one per Stripe account.
pub const PRODUCT_ID: &str = "obol_subscriptions";
const STATUSES: &[&str] = &[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
];

/// Body of `POST /v1/subscriptions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionIn {
    /// obol's customer (`cus_…`); they need a default card.
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer: String,
    /// Per interval, minor units.
    #[schema(minimum = 1)]
    pub amount: i64,
    #[schema(value_type = crate::money::Currency)]
    pub currency: String,
    /// `month` or `year`.
    #[schema(example = "month")]
    pub interval: String,
    /// Every `interval_count` intervals (1–12 months, 1–3 years); default 1.
    #[schema(minimum = 1)]
    pub interval_count: Option<i64>,
    /// The first charge at this (future) time instead of now; the period
    /// is anchored there.
    pub start_date: Option<DateTime<Utc>>,
    /// A free trial of this many days (1–730) before the first charge.
    #[schema(minimum = 1, maximum = 730)]
    pub trial_days: Option<i64>,
    /// Shown on the member's invoices.
    pub description: Option<String>,
}

/// Body of `POST /v1/subscriptions/{id}/cancel`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelIn {
    /// `true`: it stays active until the current period ends, then ends
    /// (no further charge). `false` (default): it ends now.
    #[serde(default)]
    pub at_period_end: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's.
    #[param(value_type = Option<crate::ids::CustomerId>)]
    pub customer: Option<String>,
    /// Only in this status.
    pub status: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn invalid(msg: &str) -> Error {
    Error::InvalidBody(msg.to_string())
}

/// Creates the subscription at Stripe and answers it as mirrored.
pub async fn create(ctx: &Ctx, actor: &Actor, body: SubscriptionIn) -> Result<SubscriptionOut> {
    actor.require_secret()?;
    let account = actor.account().clone();
    let money = Money::new(body.amount, Currency::parse(&body.currency)?)?;
    let count = body.interval_count.unwrap_or(1);
    match body.interval.as_str() {
        "month" if (1..=12).contains(&count) => {}
        "year" if (1..=3).contains(&count) => {}
        "month" | "year" => {
            return Err(invalid("interval_count is 1–12 for month and 1–3 for year"))
        }
        _ => return Err(invalid("interval is month or year")),
    }
    if let Some(d) = body.trial_days {
        if !(1..=730).contains(&d) {
            return Err(invalid("trial_days is between 1 and 730"));
        }
    }
    if body.trial_days.is_some() && body.start_date.is_some() {
        return Err(invalid(
            "give start_date or trial_days, not both (a trial starts the period at its end)",
        ));
    }
    let start = match body.start_date {
        Some(d) if d <= ctx.now() => {
            return Err(Error::rule(
                RuleCode::DateNotInFuture,
                "start_date must be in the future",
            ))
        }
        Some(d) => Some(d.timestamp()),
        None => None,
    };
    if let Some(d) = &body.description {
        if d.chars().count() > 500 {
            return Err(invalid("description is at most 500 characters"));
        }
    }
    let (customer_id, stripe_customer) =
        billable_stripe_customer(ctx, &account, &body.customer).await?;
    ensure_product(ctx, &account).await?;
    let id = String::from(SubscriptionId::generate());
    {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .insert_subscription(&NewSubscription {
                id: &id,
                account_id: account.as_str(),
                customer_id: Some(customer_id.as_str()),
                stripe_customer_id: Some(&stripe_customer),
                source: "obol",
                amount: money.minor(),
                currency: money.currency().as_str(),
                billing_interval: &body.interval,
                interval_count: count,
                status: "incomplete",
                start_date: start,
                trial_days: body.trial_days,
                description: body.description.as_deref(),
                now: ctx.now(),
            })
            .await?;
    }
    tracing::info!(subscription = %id, customer = %customer_id, "subscription created locally; creating it at Stripe");
    let row = load(ctx, &account, &id).await?;
    submit(ctx, &row).await?;
    view(ctx, &account, &id).await
}

/// Creates `row`'s Stripe subscription (again: the key is derived from
/// obol's id, so a retry answers the same one) and mirrors the answer.
/// A refusal (Stripe decided, retrying cannot help) ends the row as
/// `incomplete_expired`.
pub async fn submit(ctx: &Ctx, row: &SubscriptionRow) -> Result<()> {
    let account = row.account();
    let stripe_customer = row
        .stripe_customer_id
        .clone()
        .ok_or_else(|| Error::internal("a subscription without a Stripe customer"))?;
    let mut params = Params::new()
        .set("customer", &stripe_customer)
        .set("items[0][price_data][currency]", &row.currency)
        .set("items[0][price_data][product]", PRODUCT_ID)
        .set("items[0][price_data][unit_amount]", row.amount)
        .set(
            "items[0][price_data][recurring][interval]",
            &row.billing_interval,
        )
        .set(
            "items[0][price_data][recurring][interval_count]",
            row.interval_count,
        )
        .set("off_session", "true")
        .set("payment_behavior", "allow_incomplete")
        .set("metadata[obol_subscription_id]", &row.id)
        .set_opt("metadata[obol_customer_id]", row.customer_id.as_deref())
        .set_opt("description", row.description.as_deref())
        .set_opt("trial_period_days", row.trial_days);
    if let Some(anchor) = row.start_date {
        params = params
            .set("billing_cycle_anchor", anchor)
            .set("proration_behavior", "none");
    }
    let answer = ctx
        .stripe_of(&account)
        .await?
        .post::<Value>(
            "/v1/subscriptions",
            &params,
            &IdempotencyKey::for_op("subscription", &[&row.id]),
        )
        .await;
    let sub = match answer {
        Ok(sub) => sub,
        Err(e @ StripeError::Refused { .. }) => {
            tracing::warn!(subscription = %row.id, error = %e, "Stripe refused the subscription");
            let mut h = ctx.store().acquire().await?;
            h.conn()
                .expire_unsent_subscription(&row.id, ctx.now())
                .await?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    observe_read(ctx, &account, &sub).await
}

/// Applies a subscription obol read from Stripe (an answer, a retrieve)
/// as an observation made now.
pub async fn observe_read(ctx: &Ctx, account: &AccountId, sub: &Value) -> Result<()> {
    let (state, obol_id) = billing::read_subscription(sub)
        .map_err(|e| Error::internal(format!("Stripe answered an unreadable subscription: {e}")))?;
    let mut tx = ctx.store().begin().await?;
    billing::observe_subscription(
        &mut tx.conn(),
        account,
        &state,
        obol_id.as_deref(),
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

/// obol's product for inline prices in `account`, created once with a
/// fixed id.
async fn ensure_product(ctx: &Ctx, account: &AccountId) -> Result<()> {
    let params = Params::new()
        .set("id", PRODUCT_ID)
        .set("name", "Subscriptions (obol)")
        .set("metadata[obol]", "subscriptions");
    let answer = ctx
        .stripe_of(account)
        .await?
        .post::<Value>(
            "/v1/products",
            &params,
            &IdempotencyKey::for_op("subscriptions-product", &[account.as_str()]),
        )
        .await;
    match answer {
        Ok(_) => Ok(()),
        Err(StripeError::Refused { error, .. })
            if error.code.as_deref() == Some("resource_already_exists") =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn load(ctx: &Ctx, account: &AccountId, id: &str) -> Result<SubscriptionRow> {
    let mut h = ctx.store().acquire().await?;
    h.conn()
        .get_subscription(account, id)
        .await?
        .ok_or(Error::NotFound(Resource::Subscription))
}

async fn view(ctx: &Ctx, account: &AccountId, id: &str) -> Result<SubscriptionOut> {
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let row = conn
        .get_subscription(account, id)
        .await?
        .ok_or(Error::NotFound(Resource::Subscription))?;
    let next = billing::next_payment_at(&mut conn, &row).await?;
    SubscriptionOut::new(&row, next)
}

/// One subscription (secret key).
pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<SubscriptionOut> {
    actor.require_secret()?;
    let id = SubscriptionId::parse(id).map_err(|_| Error::NotFound(Resource::Subscription))?;
    view(ctx, actor.account(), id.as_str()).await
}

/// Newest first, by customer and status.
pub async fn list(ctx: &Ctx, actor: &Actor, q: ListQuery) -> Result<Page<SubscriptionOut>> {
    actor.require_secret()?;
    if let Some(s) = &q.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(Error::InvalidQuery(format!(
                "status is one of {}",
                STATUSES.join(", ")
            )));
        }
    }
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let rows = conn
        .list_subscriptions(
            actor.account(),
            &SubscriptionFilter {
                customer_id: q.customer.as_deref(),
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
    let mut data = Vec::with_capacity(page.data.len());
    for r in &page.data {
        let next = billing::next_payment_at(&mut conn, r).await?;
        data.push(SubscriptionOut::new(r, next)?);
    }
    Ok(Page {
        data,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    })
}

/// Cancels now, or at the current period's end. Cancelling an ended one
/// is `subscription_not_cancelable`.
pub async fn cancel(ctx: &Ctx, actor: &Actor, id: &str, body: CancelIn) -> Result<SubscriptionOut> {
    actor.require_secret()?;
    let account = actor.account().clone();
    let id = SubscriptionId::parse(id).map_err(|_| Error::NotFound(Resource::Subscription))?;
    let row = load(ctx, &account, id.as_str()).await?;
    let Some(stripe_id) = row.stripe_subscription_id.clone() else {
        return Err(Error::rule(
            RuleCode::SubscriptionNotCancelable,
            "the subscription is not at Stripe (yet)",
        ));
    };
    if crate::ledger::billing::subscription_final(&row.status) {
        return Err(Error::rule(
            RuleCode::SubscriptionNotCancelable,
            format!("the subscription is {} already", row.status),
        ));
    }
    let stripe = ctx.stripe_of(&account).await?;
    let path = format!("/v1/subscriptions/{stripe_id}");
    let answer: Value = if body.at_period_end {
        stripe
            .post(
                &path,
                &Params::new().set("cancel_at_period_end", "true"),
                &IdempotencyKey::for_op("subscription-cancel-at-period-end", &[&row.id]),
            )
            .await?
    } else {
        stripe.delete_json(&path).await?
    };
    observe_read(ctx, &account, &answer).await?;
    tracing::info!(subscription = %row.id, at_period_end = body.at_period_end, "subscription canceled");
    view(ctx, &account, id.as_str()).await
}

/// For reconciliation: the subscriptions of `account` Stripe may still
/// move, read again and applied as observations made now; one never sent
/// (a crash before Stripe answered) is submitted again with its key.
/// Returns how many were checked.
pub async fn recheck(ctx: &Ctx, account: &AccountId, limit: i64) -> Result<usize> {
    let rows = {
        let mut h = ctx.store().acquire().await?;
        h.conn().list_open_subscriptions(account, limit).await?
    };
    let stripe = ctx.stripe_of(account).await?;
    let mut checked = 0;
    for row in rows {
        let result = match &row.stripe_subscription_id {
            Some(sid) => match stripe
                .get::<Value>(&format!("/v1/subscriptions/{sid}"), &Params::new())
                .await
            {
                Ok(sub) => observe_read(ctx, account, &sub).await,
                Err(e) => Err(e.into()),
            },
            // Only a while after its create began: the create may be
            // under way in another request.
            None if row.source == "obol"
                && row.created_at < ctx.now() - chrono::Duration::minutes(1) =>
            {
                submit(ctx, &row).await
            }
            None => continue,
        };
        match result {
            Ok(()) => checked += 1,
            Err(e) => {
                tracing::warn!(subscription = %row.id, error = %e, "could not reconcile a subscription")
            }
        }
    }
    Ok(checked)
}
