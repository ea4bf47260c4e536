//! Disputes, their timeline, and tasks.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::dispute::{DisputeLedger, DisputeStatus};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DisputeRow {
    pub id: String,
    pub stripe_dispute_id: String,
    pub payment_id: String,
    pub amount: i64,
    pub currency: String,
    pub reason: String,
    #[sqlx(try_from = "String")]
    pub status: DisputeStatus,
    pub evidence_due_by: Option<i64>,
    pub observed_at: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl DisputeRow {
    /// The part the dispute state machine reads.
    pub fn ledger(&self) -> DisputeLedger {
        DisputeLedger {
            status: self.status,
            observed_at: self.observed_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DisputeTimelineRow {
    pub id: String,
    pub dispute_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub at: DateTime<Utc>,
    pub cause_kind: String,
    pub cause_ref: Option<String>,
}

/// A task is open until its subject settles (the dispute closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Done,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(TaskStatus::Open),
            "done" => Some(TaskStatus::Done),
            _ => None,
        }
    }
}

impl TryFrom<String> for TaskStatus {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        TaskStatus::parse(&s).ok_or_else(|| format!("unknown TaskStatus {s:?}"))
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub subject_type: String,
    pub subject_id: String,
    pub payment_id: Option<String>,
    pub customer_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    pub due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

const DISPUTE_COLUMNS: &str =
    "id, stripe_dispute_id, payment_id, amount, currency, reason, status, \
    evidence_due_by, observed_at, created_at, updated_at";
pub(crate) const TASK_COLUMNS: &str =
    "id, kind, title, subject_type, subject_id, payment_id, customer_id, \
    status, due_at, created_at, closed_at";

pub struct NewDispute<'a> {
    pub id: &'a str,
    pub stripe_dispute_id: &'a str,
    pub payment_id: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub reason: &'a str,
    pub status: DisputeStatus,
    pub evidence_due_by: Option<i64>,
    pub observed_at: i64,
    pub now: DateTime<Utc>,
}

pub struct NewTask<'a> {
    pub account_id: &'a str,
    pub kind: &'a str,
    pub title: &'a str,
    pub subject_type: &'a str,
    pub subject_id: &'a str,
    pub payment_id: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub due_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

impl Conn<'_> {
    pub async fn get_dispute_by_stripe_id(
        &mut self,
        account: &AccountId,
        stripe_id: &str,
    ) -> Result<Option<DisputeRow>> {
        let sql = format!(
            "SELECT {DISPUTE_COLUMNS} FROM disputes WHERE account_id = $1 AND stripe_dispute_id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, DisputeRow>(&sql)
                .bind(account.as_str())
                .bind(stripe_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_dispute(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<DisputeRow>> {
        let sql =
            format!("SELECT {DISPUTE_COLUMNS} FROM disputes WHERE account_id = $1 AND id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, DisputeRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn insert_dispute(&mut self, d: &NewDispute<'_>) -> Result<DisputeRow> {
        let sql = format!(
            // A dispute belongs to its payment's account.
            "INSERT INTO disputes (id, stripe_dispute_id, payment_id, amount, currency, reason, status, \
             evidence_due_by, observed_at, created_at, updated_at, account_id) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, account_id FROM payments WHERE id = $3 \
             RETURNING {DISPUTE_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, DisputeRow>(&sql)
                .bind(d.id)
                .bind(d.stripe_dispute_id)
                .bind(d.payment_id)
                .bind(d.amount)
                .bind(d.currency)
                .bind(d.reason)
                .bind(d.status.as_str())
                .bind(d.evidence_due_by)
                .bind(d.observed_at)
                .bind(d.now)
                .fetch_one(&mut **conn)
                .await?
        }))
    }

    /// Writes a dispute's new status, guarded by the state read (`false`
    /// when another writer changed it meanwhile).
    pub async fn update_dispute_status(
        &mut self,
        read: &DisputeRow,
        status: DisputeStatus,
        evidence_due_by: Option<i64>,
        observed_at: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE disputes SET status = $1, evidence_due_by = COALESCE($2, evidence_due_by), \
                 observed_at = $3, updated_at = $4 WHERE id = $5 AND status = $6 AND observed_at = $7",
            )
            .bind(status.as_str())
            .bind(evidence_due_by)
            .bind(observed_at)
            .bind(now)
            .bind(&read.id)
            .bind(read.status.as_str())
            .bind(read.observed_at)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn insert_dispute_timeline_entry(
        &mut self,
        dispute_id: &str,
        from: Option<DisputeStatus>,
        to: DisputeStatus,
        at: DateTime<Utc>,
        cause_kind: &str,
        cause_ref: Option<&str>,
    ) -> Result<()> {
        let id = String::from(crate::ids::DisputeTimelineId::generate());
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO dispute_timeline (id, dispute_id, from_status, to_status, at, cause_kind, cause_ref, account_id) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, account_id FROM disputes WHERE id = $2",
            )
            .bind(&id)
            .bind(dispute_id)
            .bind(from.map(DisputeStatus::as_str))
            .bind(to.as_str())
            .bind(at)
            .bind(cause_kind)
            .bind(cause_ref)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn list_dispute_timeline(
        &mut self,
        account: &AccountId,
        dispute_id: &str,
    ) -> Result<Vec<DisputeTimelineRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, DisputeTimelineRow>(
                "SELECT id, dispute_id, from_status, to_status, at, cause_kind, cause_ref \
                 FROM dispute_timeline WHERE account_id = $1 AND dispute_id = $2 ORDER BY id",
            )
            .bind(account.as_str())
            .bind(dispute_id)
            .fetch_all(&mut **conn)
            .await?
        }))
    }

    /// Disputes newest first, keyset-paginated on (created_at, id).
    pub async fn list_disputes(
        &mut self,
        account: &AccountId,
        status: Option<DisputeStatus>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<DisputeRow>> {
        let (before_at, before_id) = super::keyset(&before);
        let sql = format!(
            "SELECT {DISPUTE_COLUMNS} FROM disputes WHERE account_id = $5 AND ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, DisputeRow>(&sql)
                .bind(status.map(DisputeStatus::as_str))
                .bind(before_at)
                .bind(before_id)
                .bind(limit)
                .bind(account.as_str())
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Opens a task unless one exists for the same subject (redeliveries).
    pub async fn open_task(&mut self, t: &NewTask<'_>) -> Result<()> {
        let id = String::from(crate::ids::TaskId::generate());
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO tasks (id, kind, title, subject_type, subject_id, payment_id, customer_id, \
                 status, due_at, created_at, account_id) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10) \
                 ON CONFLICT (kind, subject_type, subject_id) DO NOTHING",
            )
            .bind(&id)
            .bind(t.kind)
            .bind(t.title)
            .bind(t.subject_type)
            .bind(t.subject_id)
            .bind(t.payment_id)
            .bind(t.customer_id)
            .bind(t.due_at)
            .bind(t.now)
            .bind(t.account_id)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn close_task(
        &mut self,
        kind: &str,
        subject_type: &str,
        subject_id: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE tasks SET status = 'done', closed_at = $1 \
                 WHERE kind = $2 AND subject_type = $3 AND subject_id = $4 AND status = 'open'",
            )
            .bind(now)
            .bind(kind)
            .bind(subject_type)
            .bind(subject_id)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn list_tasks(
        &mut self,
        account: &AccountId,
        status: Option<&str>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<TaskRow>> {
        let (before_at, before_id) = super::keyset(&before);
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE account_id = $5 AND ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, TaskRow>(&sql)
                .bind(status)
                .bind(before_at)
                .bind(before_id)
                .bind(limit)
                .bind(account.as_str())
                .fetch_all(&mut **conn)
                .await?
        }))
    }
}
