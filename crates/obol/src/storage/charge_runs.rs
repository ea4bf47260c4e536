//! Charge runs and their items; the items table is the run's work queue.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::charge_run::{Outcome, RunStatus};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChargeRunRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub currency: String,
    pub description: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
}

impl ChargeRunRow {
    pub fn account(&self) -> AccountId {
        AccountId::from_db(self.account_id.clone())
    }
}

pub(super) const RUN_COLUMNS: &str =
    "id, account_id, name, currency, description, status, created_at, \
    updated_at, started_at, completed_at, canceled_at";

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ItemRow {
    pub id: String,
    pub run_id: String,
    pub account_id: String,
    pub customer_id: String,
    pub amount: i64,
    pub external_reference: Option<String>,
    #[sqlx(try_from = "String")]
    pub outcome: Outcome,
    pub payment_intent_id: Option<String>,
    pub decline_code: Option<String>,
    pub failure_message: Option<String>,
    pub attempts: i32,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const ITEM_COLUMNS: &str = "id, run_id, account_id, customer_id, amount, external_reference, \
    outcome, payment_intent_id, decline_code, failure_message, attempts, claimed_by, \
    claimed_until, created_at, updated_at, finished_at";

/// Counts and amounts of a run's items by outcome.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutcomeCount {
    pub outcome: String,
    pub items: i64,
    pub amount: i64,
}

/// What a worker decided for a claimed item.
pub struct ItemResult<'a> {
    pub outcome: Outcome,
    pub payment_intent_id: Option<&'a str>,
    pub decline_code: Option<&'a str>,
    pub failure_message: Option<&'a str>,
}

/// Rows per item insert. A statement of 1,000 rows (10,000 parameters)
/// compiles to megabytes in SQLite, allocated and freed on the
/// connection's own thread for every batch added; 100 rows is a tenth of
/// that and as fast (the rows share the caller's transaction either way).
const ITEM_INSERT_ROWS: usize = 100;

impl Conn<'_> {
    pub async fn insert_charge_run(&mut self, r: &ChargeRunRow) -> Result<ChargeRunRow> {
        let sql = format!(
            "INSERT INTO charge_runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             RETURNING {RUN_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ChargeRunRow>(&sql)
                .bind(&r.id)
                .bind(&r.account_id)
                .bind(&r.name)
                .bind(&r.currency)
                .bind(&r.description)
                .bind(r.status.as_str())
                .bind(r.created_at)
                .bind(r.updated_at)
                .bind(r.started_at)
                .bind(r.completed_at)
                .bind(r.canceled_at)
                .fetch_one(&mut **conn)
                .await?
        }))
    }

    /// A run of `account` (`None`: any account, for its own jobs).
    pub async fn get_charge_run(
        &mut self,
        account: Option<&AccountId>,
        id: &str,
    ) -> Result<Option<ChargeRunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM charge_runs WHERE id = $1 AND ($2 IS NULL OR account_id = $2)"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ChargeRunRow>(&sql)
                .bind(id)
                .bind(account.map(AccountId::as_str))
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// The runs of `account` in `status`, oldest first (a disconnected
    /// organisation's running runs are canceled; there are few).
    pub async fn list_charge_runs_in_status(
        &mut self,
        account: &AccountId,
        status: RunStatus,
    ) -> Result<Vec<ChargeRunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM charge_runs WHERE account_id = $1 AND status = $2 \
             ORDER BY created_at, id"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ChargeRunRow>(&sql)
                .bind(account.as_str())
                .bind(status.as_str())
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Moves a run from `from` to `to`, guarded: `true` once.
    pub async fn move_charge_run(
        &mut self,
        id: &str,
        from: RunStatus,
        to: RunStatus,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE charge_runs SET status = $3, updated_at = $4, \
                 started_at = CASE WHEN $3 = 'running' THEN $4 ELSE started_at END, \
                 completed_at = CASE WHEN $3 = 'completed' THEN $4 ELSE completed_at END, \
                 canceled_at = CASE WHEN $3 = 'canceled' THEN $4 ELSE canceled_at END \
                 WHERE id = $1 AND status = $2",
            )
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Adds items (the caller's transaction: all or none), in statements
    /// of at most `ITEM_INSERT_ROWS` rows.
    pub async fn insert_charge_run_items(&mut self, items: &[ItemRow]) -> Result<()> {
        for chunk in items.chunks(ITEM_INSERT_ROWS) {
            self.insert_item_rows(chunk).await?;
        }
        Ok(())
    }

    async fn insert_item_rows(&mut self, items: &[ItemRow]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut sql = String::from(
            "INSERT INTO charge_run_items (id, run_id, account_id, customer_id, amount, external_reference, \
             outcome, attempts, created_at, updated_at) VALUES ",
        );
        for i in 0..items.len() {
            let b = i * 10;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10
            ));
        }
        on_conn!(self, |conn| {
            // Not kept in the connection's statement cache: the last
            // chunk's text differs by the batch's size, and each pooled
            // connection would keep every variant for good.
            let mut q = sqlx::query(&sql).persistent(false);
            for it in items {
                q = q
                    .bind(&it.id)
                    .bind(&it.run_id)
                    .bind(&it.account_id)
                    .bind(&it.customer_id)
                    .bind(it.amount)
                    .bind(&it.external_reference)
                    .bind(it.outcome.as_str())
                    .bind(it.attempts)
                    .bind(it.created_at)
                    .bind(it.updated_at);
            }
            q.execute(&mut **conn).await?;
        });
        Ok(())
    }

    pub async fn count_charge_run_items(&mut self, run_id: &str) -> Result<Vec<OutcomeCount>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, OutcomeCount>(
                "SELECT outcome, COUNT(*) AS items, CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount \
                 FROM charge_run_items WHERE run_id = $1 GROUP BY outcome",
            )
            .bind(run_id)
            .fetch_all(&mut **conn)
            .await?
        }))
    }

    /// Items of a run decided since `since` (for its rate).
    pub async fn count_items_decided_since(
        &mut self,
        run_id: &str,
        since: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM charge_run_items WHERE run_id = $1 AND finished_at >= $2",
            )
            .bind(run_id)
            .bind(since)
            .fetch_one(&mut **conn)
            .await?
        }))
    }

    /// Claims up to `limit` items of a run for `worker` until `until`:
    /// pending ones, and processing ones whose claim expired (their
    /// worker died; their charge is sent again with the same key).
    pub async fn claim_charge_run_items(
        &mut self,
        run_id: &str,
        worker: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ItemRow>> {
        let pick = "SELECT id FROM charge_run_items WHERE run_id = $1 \
                    AND (outcome = 'pending' OR (outcome = 'processing' AND claimed_until < $2)) \
                    ORDER BY id LIMIT $5";
        // SQLite answers the OR above by reading every item of the run and
        // sorting them (a temp B-tree): each claim cost time, and time
        // under the write lock, in proportion to the run's size. Each arm
        // here walks the (run_id, outcome, id) index in order and stops
        // after $5 rows; the same items, oldest first.
        let pick_sqlite = "SELECT id FROM (SELECT id FROM charge_run_items WHERE run_id = $1 \
                    AND outcome = 'processing' AND claimed_until < $2 ORDER BY id LIMIT $5) \
                    UNION ALL SELECT id FROM (SELECT id FROM charge_run_items WHERE run_id = $1 \
                    AND outcome = 'pending' ORDER BY id LIMIT $5) ORDER BY id LIMIT $5";
        let sql = match self {
            Conn::Sqlite(_) => format!(
                "UPDATE charge_run_items SET outcome = 'processing', claimed_by = $3, claimed_until = $4, \
                 attempts = attempts + 1, updated_at = $2 WHERE id IN ({pick_sqlite}) RETURNING {ITEM_COLUMNS}"
            ),
            // Concurrent claimants skip each other's rows instead of waiting.
            Conn::Postgres(_) => format!(
                "UPDATE charge_run_items SET outcome = 'processing', claimed_by = $3, claimed_until = $4, \
                 attempts = attempts + 1, updated_at = $2 WHERE id IN ({pick} FOR UPDATE SKIP LOCKED) \
                 RETURNING {ITEM_COLUMNS}"
            ),
        };
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ItemRow>(&sql)
                .bind(run_id)
                .bind(now)
                .bind(worker)
                .bind(until)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Records a claimed item's result, guarded by the claim: a worker
    /// whose claim passed to another writes nothing.
    pub async fn finish_charge_run_item(
        &mut self,
        id: &str,
        worker: &str,
        r: &ItemResult<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE charge_run_items SET outcome = $3, payment_intent_id = COALESCE($4, payment_intent_id), \
                 decline_code = $5, failure_message = $6, claimed_by = NULL, claimed_until = NULL, \
                 updated_at = $7, finished_at = $7 \
                 WHERE id = $1 AND outcome = 'processing' AND claimed_by = $2",
            )
            .bind(id)
            .bind(worker)
            .bind(r.outcome.as_str())
            .bind(r.payment_intent_id)
            .bind(r.decline_code)
            .bind(r.failure_message)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Extends (or shortens) a claim: a charge Stripe could not be
    /// reached for is tried again when it expires.
    pub async fn reclaim_charge_run_item(
        &mut self,
        id: &str,
        worker: &str,
        until: DateTime<Utc>,
        payment_intent_id: Option<&str>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE charge_run_items SET claimed_until = $3, payment_intent_id = COALESCE($4, payment_intent_id) \
                 WHERE id = $1 AND outcome = 'processing' AND claimed_by = $2",
            )
            .bind(id)
            .bind(worker)
            .bind(until)
            .bind(payment_intent_id)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Moves an item from `from` to `to` whoever holds it (an observation
    /// of Stripe), guarded by the outcome read.
    pub async fn move_charge_run_item(
        &mut self,
        id: &str,
        from: Outcome,
        to: Outcome,
        payment_intent_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE charge_run_items SET outcome = $3, payment_intent_id = COALESCE($4, payment_intent_id), \
                 claimed_by = NULL, claimed_until = NULL, updated_at = $5, finished_at = $5 \
                 WHERE id = $1 AND outcome = $2",
            )
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(payment_intent_id)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Items not yet sent become canceled; returns how many.
    pub async fn cancel_pending_items(&mut self, run_id: &str, now: DateTime<Utc>) -> Result<u64> {
        Ok(on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE charge_run_items SET outcome = 'canceled', updated_at = $2, finished_at = $2 \
                 WHERE run_id = $1 AND outcome = 'pending'",
            )
            .bind(run_id)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        }))
    }

    pub async fn get_charge_run_item(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<ItemRow>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM charge_run_items WHERE account_id = $1 AND id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ItemRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// A run's items in the order they were added, optionally of one
    /// outcome; keyset on the id (ULIDs sort by creation).
    pub async fn list_charge_run_items(
        &mut self,
        run_id: &str,
        outcome: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ItemRow>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM charge_run_items WHERE run_id = $1 AND ($2 IS NULL OR outcome = $2) \
             AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ItemRow>(&sql)
                .bind(run_id)
                .bind(outcome)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }
}
