//! The admin dashboard's own queries: its sessions (keyed by the SHA-256 of
//! their cookie value), payment search, and the per-day aggregates its
//! plots draw. Everything else the dashboard shows comes from the same
//! queries the API uses.

use chrono::{DateTime, Utc};

use super::charge_runs::{ChargeRunRow, RUN_COLUMNS};
use super::payments::{PaymentRow, COLUMNS as PAYMENT_COLUMNS};
use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ids::TokenHash;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AdminSessionRow {
    pub id_hash: String,
    /// `password` or `api_key`.
    pub kind: String,
    pub account_id: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const COLUMNS: &str = "id_hash, kind, account_id, created_at, last_seen_at, expires_at";

impl Conn<'_> {
    pub async fn insert_admin_session(&mut self, r: &AdminSessionRow) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO admin_sessions (id_hash, kind, account_id, created_at, last_seen_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.id_hash)
            .bind(&r.kind)
            .bind(&r.account_id)
            .bind(r.created_at)
            .bind(r.last_seen_at)
            .bind(r.expires_at)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn get_admin_session(&mut self, hash: &TokenHash) -> Result<Option<AdminSessionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM admin_sessions WHERE id_hash = $1");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, AdminSessionRow>(&sql)
                .bind(hash.as_str())
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Marks the session seen at `now`.
    pub async fn touch_admin_session(
        &mut self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("UPDATE admin_sessions SET last_seen_at = $2 WHERE id_hash = $1")
                .bind(hash.as_str())
                .bind(now)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }

    /// Moves the session to another account (the password admin's
    /// organisation filter).
    pub async fn set_admin_session_account(
        &mut self,
        hash: &TokenHash,
        account_id: &str,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("UPDATE admin_sessions SET account_id = $2 WHERE id_hash = $1")
                .bind(hash.as_str())
                .bind(account_id)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }

    pub async fn delete_admin_session(&mut self, hash: &TokenHash) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("DELETE FROM admin_sessions WHERE id_hash = $1")
                .bind(hash.as_str())
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }

    /// Sessions past either timeout; returns how many went.
    pub async fn delete_expired_admin_sessions(
        &mut self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(on_conn!(self, |conn| {
            sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
                .bind(now)
                .bind(idle_before)
                .execute(&mut **conn)
                .await?
                .rows_affected()
        }))
    }
}

/// What the dashboard's payment list searches and filters by; all
/// optional, combined with AND.
#[derive(Debug, Default)]
pub struct PaymentSearch<'a> {
    pub id: Option<&'a str>,
    pub intent_id: Option<&'a str>,
    /// The customer's or the order's e-mail, compared case-insensitively.
    pub email: Option<&'a str>,
    pub order_number: Option<&'a str>,
    /// Minor units; any of these (a decimal typed without a currency).
    pub amounts: Vec<i64>,
    pub currency: Option<&'a str>,
    pub status: Option<&'a str>,
    pub disputed: Option<bool>,
    pub created_gte: Option<DateTime<Utc>>,
    pub created_lt: Option<DateTime<Utc>>,
    pub before: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

/// Payments per day and status, for the dashboard's plot.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DailyPayments {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub status: String,
    pub currency: String,
    pub payments: i64,
    pub amount: i64,
}

impl Conn<'_> {
    /// Newest first, keyset on (created_at, id), within `account`.
    pub async fn search_payments(
        &mut self,
        account: &AccountId,
        s: &PaymentSearch<'_>,
    ) -> Result<Vec<PaymentRow>> {
        let (before_at, before_id) = super::keyset(&s.before);
        let amounts = |i: usize| s.amounts.get(i).copied();
        let any_amount = !s.amounts.is_empty();
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p WHERE p.account_id = $1 \
             AND ($2 IS NULL OR p.id = $2) \
             AND ($3 IS NULL OR p.stripe_payment_intent_id = $3) \
             AND ($4 IS NULL OR p.customer_id IN (SELECT c.id FROM customers c \
                    WHERE c.account_id = $1 AND lower(c.email) = lower($4)) \
                  OR p.order_id IN (SELECT o.id FROM orders o \
                    WHERE o.account_id = $1 AND lower(o.email) = lower($4))) \
             AND ($5 IS NULL OR p.order_id IN (SELECT o.id FROM orders o \
                    WHERE o.account_id = $1 AND o.number = $5)) \
             AND ($6 = 0 OR p.amount = $7 OR p.amount = $8 OR p.amount = $9) \
             AND ($10 IS NULL OR p.currency = $10) \
             AND ($11 IS NULL OR p.status = $11) \
             AND ($12 IS NULL OR p.disputed = $12) \
             AND ($13 IS NULL OR p.created_at >= $13) \
             AND ($14 IS NULL OR p.created_at < $14) \
             AND ($15 IS NULL OR p.created_at < $15 OR (p.created_at = $15 AND p.id < $16)) \
             ORDER BY p.created_at DESC, p.id DESC LIMIT $17"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentRow>(&sql)
                .bind(account.as_str())
                .bind(s.id)
                .bind(s.intent_id)
                .bind(s.email)
                .bind(s.order_number)
                .bind(i64::from(any_amount))
                .bind(amounts(0))
                .bind(amounts(1))
                .bind(amounts(2))
                .bind(s.currency)
                .bind(s.status)
                .bind(s.disputed)
                .bind(s.created_gte)
                .bind(s.created_lt)
                .bind(before_at)
                .bind(before_id)
                .bind(s.limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Payments of `account` created at or after `since`, per UTC day,
    /// status and currency.
    pub async fn count_payments_per_day(
        &mut self,
        account: &AccountId,
        since: DateTime<Utc>,
    ) -> Result<Vec<DailyPayments>> {
        Ok(match self {
            Conn::Sqlite(conn) => {
                sqlx::query_as::<_, DailyPayments>(
                    "SELECT substr(created_at, 1, 10) AS day, status, currency, \
                     CAST(COUNT(*) AS BIGINT) AS payments, CAST(SUM(amount) AS BIGINT) AS amount \
                     FROM payments WHERE account_id = $1 AND created_at >= $2 \
                     GROUP BY day, status, currency ORDER BY day",
                )
                .bind(account.as_str())
                .bind(since)
                .fetch_all(&mut **conn)
                .await?
            }
            Conn::Postgres(conn) => {
                sqlx::query_as::<_, DailyPayments>(
                    "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, status, currency, \
                     CAST(COUNT(*) AS BIGINT) AS payments, CAST(SUM(amount) AS BIGINT) AS amount \
                     FROM payments WHERE account_id = $1 AND created_at >= $2 \
                     GROUP BY day, status, currency ORDER BY day",
                )
                .bind(account.as_str())
                .bind(since)
                .fetch_all(&mut **conn)
                .await?
            }
        })
    }

    /// The charge runs of `account`, newest first, keyset on (created_at, id).
    pub async fn list_charge_runs(
        &mut self,
        account: &AccountId,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<ChargeRunRow>> {
        let (before_at, before_id) = super::keyset(&before);
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM charge_runs WHERE account_id = $1 \
             AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ChargeRunRow>(&sql)
                .bind(account.as_str())
                .bind(before_at)
                .bind(before_id)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }
}

/// What the dashboard's order list searches by; all optional, with AND.
#[derive(Debug, Default)]
pub struct OrderSearch<'a> {
    /// `ORD-…`, exact.
    pub number: Option<&'a str>,
    /// The order's or its customer's e-mail, case-insensitively.
    pub email: Option<&'a str>,
    pub status: Option<&'a str>,
    pub before: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

/// What the dashboard's customer list searches by.
#[derive(Debug, Default)]
pub struct CustomerSearch<'a> {
    /// The e-mail, case-insensitively, exact.
    pub email: Option<&'a str>,
    /// The start of the name, case-insensitively.
    pub name_prefix: Option<&'a str>,
    pub before: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

/// One inbox event's timing, for the webhook-lag plot.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EventTiming {
    pub received_at: DateTime<Utc>,
    /// Stripe's `created`, unix seconds.
    pub stripe_created: i64,
    pub applied_at: Option<DateTime<Utc>>,
    pub status: String,
}

/// `LIKE` wildcards in a typed prefix, escaped (`ESCAPE '\'`).
fn like_prefix(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Conn<'_> {
    /// Orders of `account`, newest first, keyset on (created_at, id).
    pub async fn search_orders(
        &mut self,
        account: &AccountId,
        s: &OrderSearch<'_>,
    ) -> Result<Vec<super::orders::OrderRow>> {
        let (before_at, before_id) = super::keyset(&s.before);
        let sql = format!(
            "SELECT {} FROM orders o WHERE o.account_id = $1 \
             AND ($2 IS NULL OR o.number = $2) \
             AND ($3 IS NULL OR lower(o.email) = lower($3) \
                  OR o.customer_id IN (SELECT c.id FROM customers c \
                    WHERE c.account_id = $1 AND lower(c.email) = lower($3))) \
             AND ($4 IS NULL OR o.status = $4) \
             AND ($5 IS NULL OR o.created_at < $5 OR (o.created_at = $5 AND o.id < $6)) \
             ORDER BY o.created_at DESC, o.id DESC LIMIT $7",
            super::orders::COLUMNS
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, super::orders::OrderRow>(&sql)
                .bind(account.as_str())
                .bind(s.number)
                .bind(s.email)
                .bind(s.status)
                .bind(before_at)
                .bind(before_id)
                .bind(s.limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Customers of `account`, newest first, keyset on (created_at, id).
    pub async fn search_customers(
        &mut self,
        account: &AccountId,
        s: &CustomerSearch<'_>,
    ) -> Result<Vec<super::customers::CustomerRow>> {
        let (before_at, before_id) = super::keyset(&s.before);
        let sql = format!(
            "SELECT {} FROM customers WHERE account_id = $1 \
             AND ($2 IS NULL OR lower(email) = lower($2)) \
             AND ($3 IS NULL OR lower(name) LIKE $3 ESCAPE '\\') \
             AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6",
            super::customers::COLUMNS
        );
        let prefix = s.name_prefix.map(like_prefix);
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, super::customers::CustomerRow>(&sql)
                .bind(account.as_str())
                .bind(s.email)
                .bind(prefix.as_deref())
                .bind(before_at)
                .bind(before_id)
                .bind(s.limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// The tasks about one object (a dispute), newest first.
    pub async fn list_tasks_about(
        &mut self,
        account: &AccountId,
        subject_id: &str,
    ) -> Result<Vec<super::disputes::TaskRow>> {
        let sql = format!(
            "SELECT {} FROM tasks WHERE account_id = $1 AND subject_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 100",
            super::disputes::TASK_COLUMNS
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, super::disputes::TaskRow>(&sql)
                .bind(account.as_str())
                .bind(subject_id)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// The inbox events (of `account`, or of every account when `None`)
    /// received or applied since `since` (of those received in the day
    /// before it), or still waiting to be applied; newest first, `limit`
    /// at most. Two index ranges (`webhook_events_received`,
    /// `webhook_events_waiting`), not a scan of the inbox.
    pub async fn webhook_event_timings(
        &mut self,
        account: Option<&AccountId>,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<EventTiming>> {
        let day_before = since - chrono::Duration::days(1);
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, EventTiming>(
                "SELECT received_at, stripe_created, applied_at, status FROM webhook_events \
                 WHERE ($1 IS NULL OR account_id = $1) AND received_at >= $3 \
                 AND (received_at >= $2 OR applied_at >= $2 OR status IN ('received', 'failed')) \
                 UNION ALL \
                 SELECT received_at, stripe_created, applied_at, status FROM webhook_events \
                 WHERE ($1 IS NULL OR account_id = $1) AND received_at < $3 \
                 AND status IN ('received', 'failed') \
                 ORDER BY received_at DESC LIMIT $4",
            )
            .bind(account.map(AccountId::as_str))
            .bind(since)
            .bind(day_before)
            .bind(limit)
            .fetch_all(&mut **conn)
            .await?
        }))
    }
}
