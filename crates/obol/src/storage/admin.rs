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
    /// Newest first, keyset on (created_at, id), within `account`. Only the
    /// filters given are in the statement, so each one's index can serve it
    /// (a `$n IS NULL OR …` form hides them from PostgreSQL's generic plan);
    /// the e-mail is a union of two index lookups, not a scan.
    pub async fn search_payments(
        &mut self,
        account: &AccountId,
        s: &PaymentSearch<'_>,
    ) -> Result<Vec<PaymentRow>> {
        let mut w = Where::new("p", account.as_str());
        if let Some(id) = s.id {
            w.and("p.id = ", Bind::Text(id.into()));
        }
        if let Some(pi) = s.intent_id {
            w.and("p.stripe_payment_intent_id = ", Bind::Text(pi.into()));
        }
        if let Some(email) = s.email {
            let n = w.bind(Bind::Text(email.into()));
            w.raw(format!(
                "p.id IN (SELECT p2.id FROM payments p2 JOIN customers c ON c.id = p2.customer_id \
                 WHERE c.account_id = $1 AND lower(c.email) = lower(${n}) \
                 UNION SELECT p3.id FROM payments p3 JOIN orders o ON o.id = p3.order_id \
                 WHERE o.account_id = $1 AND lower(o.email) = lower(${n}))"
            ));
        }
        if let Some(number) = s.order_number {
            let n = w.bind(Bind::Text(number.into()));
            w.raw(format!(
                "p.order_id IN (SELECT o.id FROM orders o WHERE o.account_id = $1 AND o.number = ${n})"
            ));
        }
        if !s.amounts.is_empty() {
            let list: Vec<String> = s
                .amounts
                .iter()
                .map(|a| format!("${}", w.bind(Bind::Int(*a))))
                .collect();
            w.raw(format!("p.amount IN ({})", list.join(", ")));
        }
        if let Some(c) = s.currency {
            w.and("p.currency = ", Bind::Text(c.into()));
        }
        if let Some(st) = s.status {
            w.and("p.status = ", Bind::Text(st.into()));
        }
        if let Some(d) = s.disputed {
            w.and("p.disputed = ", Bind::Bool(d));
        }
        if let Some(t) = s.created_gte {
            w.and("p.created_at >= ", Bind::Time(t));
        }
        if let Some(t) = s.created_lt {
            w.and("p.created_at < ", Bind::Time(t));
        }
        w.before(&s.before);
        let limit = w.bind(Bind::Int(s.limit));
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p WHERE {} \
             ORDER BY p.created_at DESC, p.id DESC LIMIT ${limit}",
            w.sql
        );
        Ok(on_conn!(self, |conn| {
            w.query_as::<_, PaymentRow>(&sql)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Payments per day (UTC), status and currency, summed from the
    /// payments created in `[from, until)`, with the versions of those days
    /// (`payment_day_versions`) read in the same statement, so from one
    /// snapshot: totals cached with these versions hold until a payment of
    /// their day changes.
    pub async fn sum_payments_per_day(
        &mut self,
        account: &AccountId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<(Vec<DailyPayments>, std::collections::HashMap<String, i64>)> {
        let day = match self {
            Conn::Sqlite(_) => "substr(created_at, 1, 10)",
            Conn::Postgres(_) => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        };
        let sql = format!(
            "SELECT {day} AS day, status, currency, \
             CAST(COUNT(*) AS BIGINT) AS payments, CAST(SUM(amount) AS BIGINT) AS amount, \
             CAST(0 AS BIGINT) AS version \
             FROM payments WHERE account_id = $1 AND created_at >= $2 AND created_at < $3 \
             GROUP BY 1, status, currency \
             UNION ALL \
             SELECT day, '' AS status, '' AS currency, CAST(0 AS BIGINT) AS payments, \
             CAST(0 AS BIGINT) AS amount, version FROM payment_day_versions \
             WHERE account_id = $1 AND day >= $4 AND day < $5"
        );
        let rows: Vec<(String, String, String, i64, i64, i64)> = on_conn!(self, |conn| {
            sqlx::query_as(&sql)
                .bind(account.as_str())
                .bind(from)
                .bind(until)
                .bind(day_of(from))
                .bind(day_of(until))
                .fetch_all(&mut **conn)
                .await?
        });
        let mut totals = Vec::new();
        let mut versions = std::collections::HashMap::new();
        for (day, status, currency, payments, amount, version) in rows {
            if status.is_empty() {
                versions.insert(day, version);
            } else {
                totals.push(DailyPayments {
                    day,
                    status,
                    currency,
                    payments,
                    amount,
                });
            }
        }
        Ok((totals, versions))
    }

    /// The cached totals of the days in `[from_day, until_day)` whose
    /// version is still the current one: each valid day, with its totals
    /// (none for a day without payments).
    pub async fn cached_payment_days(
        &mut self,
        account: &AccountId,
        from_day: &str,
        until_day: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<DailyPayments>>> {
        let rows: Vec<CachedDayRow> = on_conn!(self, |conn| {
            sqlx::query_as(
                    "SELECT c.day, t.status, t.currency, t.payments, t.amount \
                     FROM payment_days_cached c \
                     LEFT JOIN payment_day_versions v ON v.account_id = c.account_id AND v.day = c.day \
                     LEFT JOIN payment_day_totals t ON t.account_id = c.account_id AND t.day = c.day \
                     WHERE c.account_id = $1 AND c.day >= $2 AND c.day < $3 \
                     AND c.version = COALESCE(v.version, 0)",
                )
                .bind(account.as_str())
                .bind(from_day)
                .bind(until_day)
                .fetch_all(&mut **conn)
                .await?
        });
        let mut out = std::collections::BTreeMap::<String, Vec<DailyPayments>>::new();
        for (day, status, currency, payments, amount) in rows {
            let totals = out.entry(day.clone()).or_default();
            if let (Some(status), Some(currency), Some(payments), Some(amount)) =
                (status, currency, payments, amount)
            {
                totals.push(DailyPayments {
                    day,
                    status,
                    currency,
                    payments,
                    amount,
                });
            }
        }
        Ok(out)
    }

    /// Caches the totals of `days` (each with the version it was summed
    /// at), replacing what was cached for them; in the caller's
    /// transaction. An older version written over a newer one only makes
    /// the day be summed again.
    pub async fn cache_payment_days(
        &mut self,
        account: &AccountId,
        days: &[(String, i64)],
        totals: &[DailyPayments],
    ) -> Result<()> {
        for (day, version) in days {
            on_conn!(self, |conn| {
                sqlx::query("DELETE FROM payment_day_totals WHERE account_id = $1 AND day = $2")
                    .bind(account.as_str())
                    .bind(day)
                    .execute(&mut **conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO payment_days_cached (account_id, day, version) VALUES ($1, $2, $3) \
                     ON CONFLICT (account_id, day) DO UPDATE SET version = excluded.version",
                )
                .bind(account.as_str())
                .bind(day)
                .bind(*version)
                .execute(&mut **conn)
                .await?;
            });
        }
        for t in totals
            .iter()
            .filter(|t| days.iter().any(|(d, _)| *d == t.day))
        {
            on_conn!(self, |conn| {
                sqlx::query(
                    "INSERT INTO payment_day_totals (account_id, day, status, currency, payments, amount) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(account.as_str())
                .bind(&t.day)
                .bind(&t.status)
                .bind(&t.currency)
                .bind(t.payments)
                .bind(t.amount)
                .execute(&mut **conn)
                .await?;
            });
        }
        Ok(())
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
    /// Orders of `account`, newest first, keyset on (created_at, id); only
    /// the filters given are in the statement (as for payments).
    pub async fn search_orders(
        &mut self,
        account: &AccountId,
        s: &OrderSearch<'_>,
    ) -> Result<Vec<super::orders::OrderRow>> {
        let mut w = Where::new("o", account.as_str());
        if let Some(number) = s.number {
            w.and("o.number = ", Bind::Text(number.into()));
        }
        if let Some(email) = s.email {
            let n = w.bind(Bind::Text(email.into()));
            w.raw(format!(
                "o.id IN (SELECT o2.id FROM orders o2 WHERE o2.account_id = $1 AND lower(o2.email) = lower(${n}) \
                 UNION SELECT o3.id FROM orders o3 JOIN customers c ON c.id = o3.customer_id \
                 WHERE c.account_id = $1 AND lower(c.email) = lower(${n}))"
            ));
        }
        if let Some(st) = s.status {
            w.and("o.status = ", Bind::Text(st.into()));
        }
        w.before(&s.before);
        let limit = w.bind(Bind::Int(s.limit));
        let sql = format!(
            "SELECT {} FROM orders o WHERE {} ORDER BY o.created_at DESC, o.id DESC LIMIT ${limit}",
            super::orders::COLUMNS,
            w.sql
        );
        Ok(on_conn!(self, |conn| {
            w.query_as::<_, super::orders::OrderRow>(&sql)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Customers of `account`, newest first, keyset on (created_at, id);
    /// only the filters given are in the statement.
    pub async fn search_customers(
        &mut self,
        account: &AccountId,
        s: &CustomerSearch<'_>,
    ) -> Result<Vec<super::customers::CustomerRow>> {
        let mut w = Where::new("c", account.as_str());
        if let Some(email) = s.email {
            let n = w.bind(Bind::Text(email.into()));
            w.raw(format!("lower(c.email) = lower(${n})"));
        }
        if let Some(prefix) = s.name_prefix {
            let n = w.bind(Bind::Text(like_prefix(prefix)));
            w.raw(format!("lower(c.name) LIKE ${n} ESCAPE '\\'"));
        }
        w.before(&s.before);
        let limit = w.bind(Bind::Int(s.limit));
        let sql = format!(
            "SELECT {} FROM customers c WHERE {} ORDER BY c.created_at DESC, c.id DESC LIMIT ${limit}",
            super::customers::COLUMNS,
            w.sql
        );
        Ok(on_conn!(self, |conn| {
            w.query_as::<_, super::customers::CustomerRow>(&sql)
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

/// A value bound to a statement built from the filters given.
enum Bind {
    Text(String),
    Int(i64),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// A `WHERE` clause of the filters given, `$1` being the account: the
/// statement names only what is searched for, so the planner sees each
/// filter (and its index) for what it is.
struct Where {
    table: &'static str,
    sql: String,
    binds: Vec<Bind>,
}

impl Where {
    /// `<table>.account_id = $1`.
    fn new(table: &'static str, account: &str) -> Self {
        Self {
            table,
            sql: format!("{table}.account_id = $1"),
            binds: vec![Bind::Text(account.into())],
        }
    }

    /// Binds `v`; answers its placeholder's number.
    fn bind(&mut self, v: Bind) -> usize {
        self.binds.push(v);
        self.binds.len()
    }

    fn raw(&mut self, clause: String) {
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause);
    }

    /// `<column op> $n`.
    fn and(&mut self, column_op: &str, v: Bind) {
        let n = self.bind(v);
        self.raw(format!("{column_op}${n}"));
    }

    /// `sql` with every value bound, in order, on either backend.
    fn query_as<'q, DB, O>(
        &'q self,
        sql: &'q str,
    ) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>
    where
        DB: sqlx::Database,
        O: for<'r> sqlx::FromRow<'r, DB::Row>,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        let mut q = sqlx::query_as::<DB, O>(sql);
        for b in &self.binds {
            q = match b {
                Bind::Text(v) => q.bind(v.as_str()),
                Bind::Int(v) => q.bind(*v),
                Bind::Bool(v) => q.bind(*v),
                Bind::Time(v) => q.bind(*v),
            };
        }
        q
    }

    /// The keyset page boundary on `(created_at, id)`.
    fn before(&mut self, before: &Option<(DateTime<Utc>, String)>) {
        if let Some((at, id)) = before {
            let t = self.table;
            let a = self.bind(Bind::Time(*at));
            let i = self.bind(Bind::Text(id.clone()));
            self.raw(format!(
                "({t}.created_at < ${a} OR ({t}.created_at = ${a} AND {t}.id < ${i}))"
            ));
        }
    }
}

/// A cached day with one of its totals (none: a day without payments):
/// day, status, currency, payments, amount.
type CachedDayRow = (
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// `YYYY-MM-DD` of `t` (UTC), as the payments-per-day queries name days.
pub fn day_of(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}
