//! Disputes and tasks: chargebacks as the ledger recorded them, and the
//! work they create for the merchant. Disputes change only through
//! Stripe's events (the inbox); nothing here writes.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::pagination::{self, Cursor, Page};
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result};
use crate::ledger::dispute::DisputeStatus;
use crate::storage::disputes::{DisputeRow, DisputeTimelineRow, TaskRow};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DisputeOut {
    #[schema(value_type = crate::ids::DisputeId)]
    pub id: String,
    #[schema(value_type = crate::ids::PaymentId)]
    pub payment_id: String,
    /// Stripe's `dp_…`.
    pub stripe_dispute_id: String,
    /// Minor units.
    #[schema(minimum = 0)]
    pub amount: i64,
    #[schema(value_type = crate::money::Currency)]
    pub currency: String,
    /// Stripe's reason (`fraudulent`, `product_not_received`, …).
    pub reason: String,
    /// Stripe's status: warning_needs_response, warning_under_review,
    /// warning_closed, needs_response, under_review, won or lost.
    pub status: DisputeStatus,
    pub evidence_due_by: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<DisputeTimelineOut>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DisputeTimelineOut {
    pub at: DateTime<Utc>,
    #[schema(value_type = Option<DisputeStatus>)]
    pub from: Option<String>,
    #[schema(value_type = DisputeStatus)]
    pub to: String,
    pub cause: super::payments::Cause,
}

impl From<DisputeRow> for DisputeOut {
    fn from(r: DisputeRow) -> Self {
        DisputeOut {
            id: r.id,
            payment_id: r.payment_id,
            stripe_dispute_id: r.stripe_dispute_id,
            amount: r.amount,
            currency: r.currency,
            reason: r.reason,
            status: r.status,
            evidence_due_by: r
                .evidence_due_by
                .and_then(|t| Utc.timestamp_opt(t, 0).single()),
            created_at: r.created_at,
            updated_at: r.updated_at,
            timeline: None,
        }
    }
}

impl From<DisputeTimelineRow> for DisputeTimelineOut {
    fn from(r: DisputeTimelineRow) -> Self {
        DisputeTimelineOut {
            at: r.at,
            from: r.from_status,
            to: r.to_status,
            cause: super::payments::Cause {
                kind: r.cause_kind,
                reference: r.cause_ref,
            },
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskOut {
    #[schema(value_type = crate::ids::TaskId)]
    pub id: String,
    /// respond_to_dispute, …
    pub kind: String,
    pub title: String,
    /// What the task is about (`dispute`).
    pub subject_type: String,
    /// The id of that object (`dsp_…`).
    pub subject_id: String,
    #[schema(value_type = Option<crate::ids::PaymentId>)]
    pub payment_id: Option<String>,
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    /// open or done.
    pub status: crate::storage::disputes::TaskStatus,
    pub due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl From<TaskRow> for TaskOut {
    fn from(r: TaskRow) -> Self {
        TaskOut {
            id: r.id,
            kind: r.kind,
            title: r.title,
            subject_type: r.subject_type,
            subject_id: r.subject_id,
            payment_id: r.payment_id,
            customer_id: r.customer_id,
            status: r.status,
            due_at: r.due_at,
            created_at: r.created_at,
            closed_at: r.closed_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only objects in this status (a dispute status for disputes, `open`
    /// or `done` for tasks).
    pub status: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Newest first.
pub async fn list(ctx: &Ctx, actor: &Actor, q: ListQuery) -> Result<Page<DisputeOut>> {
    actor.require_secret()?;
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    // Parsed at the edge: an unknown status is the caller's mistake, not
    // an empty list.
    let status = q
        .status
        .as_deref()
        .map(|s| {
            DisputeStatus::parse(s).ok_or_else(|| {
                Error::InvalidQuery(
                    "status is one of warning_needs_response, warning_under_review, \
                     warning_closed, needs_response, under_review, won, lost"
                        .into(),
                )
            })
        })
        .transpose()?;
    let mut h = ctx.store().acquire().await?;
    let rows = h
        .conn()
        .list_disputes(
            actor.account(),
            status,
            before.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    })
    .map(DisputeOut::from))
}

/// One dispute with its timeline.
pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<DisputeOut> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::DisputeId::parse(id).map_err(|_| Error::NotFound(Resource::Dispute))?;
    let id = id.as_str();
    actor.require_secret()?;
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let row = conn
        .get_dispute(actor.account(), id)
        .await?
        .ok_or(Error::NotFound(Resource::Dispute))?;
    let timeline = conn.list_dispute_timeline(actor.account(), &row.id).await?;
    let mut out = DisputeOut::from(row);
    out.timeline = Some(timeline.into_iter().map(DisputeTimelineOut::from).collect());
    Ok(out)
}

/// Newest first; `status` is open or done.
pub async fn list_tasks(ctx: &Ctx, actor: &Actor, q: ListQuery) -> Result<Page<TaskOut>> {
    actor.require_secret()?;
    if let Some(s) = &q.status {
        crate::storage::disputes::TaskStatus::parse(s)
            .ok_or_else(|| Error::InvalidQuery("status is open or done".into()))?;
    }
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut h = ctx.store().acquire().await?;
    let rows = h
        .conn()
        .list_tasks(
            actor.account(),
            q.status.as_deref(),
            before.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    })
    .map(TaskOut::from))
}
