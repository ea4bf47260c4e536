//! The Stripe webhook inbox: events stored before they are acknowledged,
//! claimed by workers, applied once.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::inbox_event::InboxStatus;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WebhookEventRow {
    pub id: String,
    pub stripe_event_id: String,
    pub account_id: String,
    pub event_type: String,
    pub stripe_created: i64,
    pub livemode: bool,
    pub payload: String,
    pub source: String,
    #[sqlx(try_from = "String")]
    pub status: InboxStatus,
    pub reason: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub applied_at: Option<DateTime<Utc>>,
}

pub struct NewWebhookEvent<'a> {
    pub stripe_event_id: &'a str,
    pub account_id: &'a str,
    pub event_type: &'a str,
    pub stripe_created: i64,
    pub livemode: bool,
    pub payload: &'a str,
    /// `webhook` (delivered by Stripe) or `reconcile` (fetched by obol).
    pub source: &'a str,
    /// Why a delivery can never be applied (its payload is unreadable): it
    /// is stored `ignored` with this reason, never claimed by a worker.
    pub ignored: Option<&'a str>,
    pub now: DateTime<Utc>,
}

const COLUMNS: &str = "id, stripe_event_id, account_id, event_type, stripe_created, livemode, \
    payload, source, status, reason, attempts, next_attempt_at, received_at, applied_at";

impl Conn<'_> {
    /// Stores an event; `false` when Stripe's id is already in the inbox.
    pub async fn insert_webhook_event(&mut self, e: &NewWebhookEvent<'_>) -> Result<bool> {
        let id = String::from(crate::ids::WebhookEventId::generate());
        let status = crate::ledger::inbox_event::initial(e.ignored.is_some());
        let inserted: Option<String> = on_conn!(self, |conn| {
            sqlx::query_scalar(
                "INSERT INTO webhook_events (id, stripe_event_id, account_id, event_type, stripe_created, \
                 livemode, payload, source, status, reason, next_attempt_at, received_at, applied_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $11, $9, $9, $12) \
                 ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id",
            )
            .bind(&id)
            .bind(e.stripe_event_id)
            .bind(e.account_id)
            .bind(e.event_type)
            .bind(e.stripe_created)
            .bind(e.livemode)
            .bind(e.payload)
            .bind(e.source)
            .bind(e.now)
            .bind(status.as_str())
            .bind(e.ignored)
            .bind(e.ignored.map(|_| e.now))
            .fetch_optional(&mut **conn)
            .await?
        });
        Ok(inserted.is_some())
    }

    /// Claims up to `limit` due events, oldest Stripe event first, for
    /// `lock_until`; a crashed worker's claim expires and another takes it.
    pub async fn claim_due_webhook_events(
        &mut self,
        now: DateTime<Utc>,
        lock_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<WebhookEventRow>> {
        // PostgreSQL: SKIP LOCKED so instances side by side never claim
        // the same row. SQLite: one writer at a time already.
        let lock = match self {
            Conn::Sqlite(_) => "",
            Conn::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        };
        // A CTE, evaluated once, picks the rows: as an `IN (SELECT … LIMIT
        // … SKIP LOCKED)` subquery PostgreSQL may rescan it and claim far
        // more than `limit` (see `claim_due_deliveries`).
        let due = "status IN ('received', 'failed') AND next_attempt_at <= $2 \
                   AND (locked_until IS NULL OR locked_until <= $2)";
        let sql = format!(
            "WITH due AS (SELECT id FROM webhook_events WHERE {due} \
               ORDER BY stripe_created, received_at LIMIT $3 {lock}) \
             UPDATE webhook_events SET locked_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM due) AND {due} RETURNING {COLUMNS}"
        );
        let mut rows = on_conn!(self, |conn| {
            sqlx::query_as::<_, WebhookEventRow>(&sql)
                .bind(lock_until)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        });
        rows.sort_by(|a, b| {
            (a.stripe_created, &a.received_at).cmp(&(b.stripe_created, &b.received_at))
        });
        Ok(rows)
    }

    /// Final outcome of the claim `claimed` (the row as claimed):
    /// `applied` or `ignored` (with the reason). Guarded by the claimed
    /// state and attempt: `false` when the claim lapsed and another worker
    /// took the event (or it was replayed), so the caller rolls back
    /// instead of overwriting the newer outcome.
    pub async fn finish_webhook_event(
        &mut self,
        claimed: &WebhookEventRow,
        status: InboxStatus,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE webhook_events SET status = $1, reason = $2, applied_at = $3, locked_until = NULL \
                 WHERE id = $4 AND status = $5 AND attempts = $6",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .bind(&claimed.id)
            .bind(claimed.status.as_str())
            .bind(claimed.attempts)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// A failed application of the claim `claimed`: visible as `failed`,
    /// retried at `next_attempt_at`. Guarded like `finish_webhook_event`
    /// (`false`: another worker's claim owns the event now).
    pub async fn fail_webhook_event(
        &mut self,
        claimed: &WebhookEventRow,
        reason: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE webhook_events SET status = 'failed', reason = $1, next_attempt_at = $2, \
                 locked_until = NULL WHERE id = $3 AND status = $4 AND attempts = $5",
            )
            .bind(reason)
            .bind(next_attempt_at)
            .bind(&claimed.id)
            .bind(claimed.status.as_str())
            .bind(claimed.attempts)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Puts an event back in the queue (`POST /v1/webhook-events/{id}/replay`).
    /// `scope`: the account whose events the caller may touch; `None` for
    /// the platform, which receives (and may replay) every account's events.
    pub async fn requeue_webhook_event(
        &mut self,
        scope: Option<&AccountId>,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE webhook_events SET status = 'received', reason = NULL, next_attempt_at = $1, \
                 locked_until = NULL, applied_at = NULL WHERE id = $2 AND ($3 IS NULL OR account_id = $3)",
            )
            .bind(now)
            .bind(id)
            .bind(scope.map(AccountId::as_str))
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// `scope` as for `requeue_webhook_event`.
    pub async fn get_webhook_event(
        &mut self,
        scope: Option<&AccountId>,
        id: &str,
    ) -> Result<Option<WebhookEventRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_events WHERE id = $1 AND ($2 IS NULL OR account_id = $2)"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, WebhookEventRow>(&sql)
                .bind(id)
                .bind(scope.map(AccountId::as_str))
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Newest first; keyset pagination on (received_at, id).
    pub async fn list_webhook_events(
        &mut self,
        scope: Option<&AccountId>,
        status: Option<&str>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<WebhookEventRow>> {
        let (before_at, before_id) = super::keyset(&before);
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_events WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR received_at < $2 OR (received_at = $2 AND id < $3)) \
             AND ($5 IS NULL OR account_id = $5) \
             ORDER BY received_at DESC, id DESC LIMIT $4"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, WebhookEventRow>(&sql)
                .bind(status)
                .bind(before_at)
                .bind(before_id)
                .bind(limit)
                .bind(scope.map(AccountId::as_str))
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Counts by status, for health and metrics.
    pub async fn count_webhook_events_by_status(&mut self) -> Result<Vec<(String, i64)>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT status, COUNT(*) FROM webhook_events GROUP BY status ORDER BY status",
            )
            .fetch_all(&mut **conn)
            .await?
        }))
    }
}
