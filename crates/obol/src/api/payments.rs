//! `/v1/payments`: the ledger's payments and their timelines.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use axum::http::StatusCode;

use super::auth::{Caller, SecretKey};
use super::json::{Json, Query};
use super::pagination::{self, Cursor, Page};
use super::AppState;
use crate::error::{Error, Resource, Result};
use crate::ids::CustomerId;
use crate::ledger::PaymentState;
use crate::ops;
use crate::storage::payments::{PaymentFilter, PaymentRow, TimelineRow};
use crate::storage::refunds::RefundRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/payments", get(list_payments))
        .route("/v1/payments/{id}", get(get_payment))
        .route(
            "/v1/payments/{id}/refunds",
            get(list_refunds).post(create_refund),
        )
}

#[derive(Debug, Serialize)]
pub struct PaymentOut {
    pub id: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub amount_refunded: i64,
    /// What Stripe captured: the authorized `amount`, or less after a
    /// partial capture; 0 before capture. Refunds are bounded by it.
    pub amount_captured: i64,
    pub disputed: bool,
    pub stripe_payment_intent_id: String,
    pub customer_id: Option<String>,
    pub order_id: Option<String>,
    /// For authorized payments: when Stripe releases the uncaptured
    /// authorization (7 days); null otherwise.
    pub authorization_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineEntryOut>>,
}

#[derive(Debug, Serialize)]
pub struct TimelineEntryOut {
    pub at: DateTime<Utc>,
    pub from: Option<String>,
    pub to: String,
    pub cause: Cause,
}

#[derive(Debug, Serialize)]
pub struct Cause {
    /// api, webhook, reconcile or job.
    pub kind: String,
    /// The Stripe event id, API request or job that caused the change.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

impl From<TimelineRow> for TimelineEntryOut {
    fn from(r: TimelineRow) -> Self {
        TimelineEntryOut {
            at: r.at,
            from: r.from_state,
            to: r.to_state,
            cause: Cause {
                kind: r.cause_kind,
                reference: r.cause_ref,
            },
        }
    }
}

impl From<PaymentRow> for PaymentOut {
    fn from(r: PaymentRow) -> Self {
        PaymentOut {
            authorization_expires_at: crate::ops::checkout::authorization_expires_at(&r),
            amount_captured: r.captured_amount(),
            id: r.id,
            status: r.status,
            amount: r.amount,
            currency: r.currency,
            amount_refunded: r.amount_refunded,
            disputed: r.disputed,
            stripe_payment_intent_id: r.stripe_payment_intent_id,
            customer_id: r.customer_id,
            order_id: r.order_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            timeline: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListPayments {
    pub status: Option<String>,
    pub customer_id: Option<String>,
    pub order_id: Option<String>,
    pub created_gte: Option<DateTime<Utc>>,
    pub created_lt: Option<DateTime<Utc>>,
    /// Authorized payments whose authorization lapses before this time.
    pub expiring_before: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Newest first. A customer token sees only that customer's payments.
async fn list_payments(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListPayments>,
) -> Result<Json<Page<PaymentOut>>> {
    if let Some(s) = &q.status {
        PaymentState::parse(s)
            .ok_or_else(|| Error::InvalidQuery(format!("status {s:?} is not a payment state")))?;
    }
    let customer = match &caller {
        Caller::Secret => q.customer_id.clone(),
        Caller::Customer(me) => {
            if q.customer_id.as_deref().is_some_and(|c| c != me.as_str()) {
                // Someone else's payments: an empty list, like no payments at all.
                return Ok(Json(Page {
                    data: Vec::new(),
                    has_more: false,
                    next_cursor: None,
                }));
            }
            Some(me.as_str().to_string())
        }
    };
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let filter = PaymentFilter {
        status: q.status.as_deref(),
        customer_id: customer.as_deref(),
        order_id: q.order_id.as_deref(),
        created_gte: q.created_gte,
        created_lt: q.created_lt,
        authorized_before: q
            .expiring_before
            .map(|t| t - chrono::Duration::days(crate::ops::checkout::AUTHORIZATION_DAYS)),
        before: before.map(|c| (c.at, c.id)),
        limit: limit + 1,
    };
    let mut h = state.store().acquire().await?;
    let rows = h.conn().list_payments(&filter).await?;
    Ok(Json(
        Page::from_rows(rows, limit, |r| Cursor {
            at: r.created_at,
            id: r.id.clone(),
        })
        .map(PaymentOut::from),
    ))
}

/// One payment with its timeline, for the secret key or its customer.
async fn get_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PaymentOut>> {
    let mut h = state.store().acquire().await?;
    let mut conn = h.conn();
    let row = conn
        .get_payment(&id)
        .await?
        .ok_or(Error::NotFound(Resource::Payment))?;
    let owner = row.customer_id.clone().map(CustomerId::from_db);
    if !caller.may_access(owner.as_ref()) {
        return Err(Error::NotFound(Resource::Payment));
    }
    let timeline = conn.list_timeline(&row.id).await?;
    let mut out = PaymentOut::from(row);
    out.timeline = Some(timeline.into_iter().map(TimelineEntryOut::from).collect());
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundIn {
    /// Minor units; default: everything not yet refunded.
    pub amount: Option<i64>,
    /// duplicate, fraudulent or requested_by_customer.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RefundOut {
    pub id: String,
    pub payment_id: String,
    /// pending_submission (Stripe not reached yet; retried), pending,
    /// requires_action, succeeded, failed or canceled.
    pub status: crate::ledger::refund::RefundStatus,
    pub amount: i64,
    pub currency: String,
    pub reason: Option<String>,
    pub failure_reason: Option<String>,
    pub stripe_refund_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RefundRow> for RefundOut {
    fn from(r: RefundRow) -> Self {
        RefundOut {
            id: r.id,
            payment_id: r.payment_id,
            status: r.status,
            amount: r.amount,
            currency: r.currency,
            reason: r.reason,
            failure_reason: r.failure_reason,
            stripe_refund_id: r.stripe_refund_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Refunds all or part of a captured payment (secret key only).
async fn create_refund(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
    Json(body): Json<RefundIn>,
) -> Result<(StatusCode, Json<RefundOut>)> {
    let refund = ops::refunds::create_refund(
        state.store(),
        state.stripe().client(),
        &id,
        body.amount,
        body.reason.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(refund.into())))
}

async fn list_refunds(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Page<RefundOut>>> {
    let mut h = state.store().acquire().await?;
    let mut conn = h.conn();
    let payment = conn
        .get_payment(&id)
        .await?
        .ok_or(Error::NotFound(Resource::Payment))?;
    let owner = payment.customer_id.clone().map(CustomerId::from_db);
    if !caller.may_access(owner.as_ref()) {
        return Err(Error::NotFound(Resource::Payment));
    }
    let refunds = conn.list_refunds(&id).await?;
    Ok(Json(Page {
        data: refunds.into_iter().map(RefundOut::from).collect(),
        has_more: false,
        next_cursor: None,
    }))
}
