//! Mirrored payouts and the balance transactions each paid payout settles.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::payout::{PayoutLedger, PayoutStatus};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PayoutRow {
    pub id: String,
    pub account_id: String,
    pub stripe_payout_id: String,
    pub amount: i64,
    pub currency: String,
    #[sqlx(try_from = "String")]
    pub status: PayoutStatus,
    pub arrival_date: i64,
    pub automatic: bool,
    pub method: String,
    pub description: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub reconciliation_status: Option<String>,
    pub stripe_created: i64,
    pub observed_at: i64,
    pub transactions_status: String,
    pub transactions_fetched_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, account_id, stripe_payout_id, amount, currency, status, arrival_date, \
    automatic, method, description, failure_code, failure_message, reconciliation_status, \
    stripe_created, observed_at, transactions_status, transactions_fetched_at, created_at, updated_at";

impl PayoutRow {
    pub fn account(&self) -> AccountId {
        AccountId::from_db(self.account_id.clone())
    }

    pub fn ledger(&self) -> PayoutLedger {
        PayoutLedger {
            status: self.status,
            observed_at: self.observed_at,
        }
    }
}

/// Stripe's view of a payout, as obol stores it.
#[derive(Debug, Clone)]
pub struct PayoutView<'a> {
    pub stripe_payout_id: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub status: PayoutStatus,
    pub arrival_date: i64,
    pub automatic: bool,
    pub method: &'a str,
    pub description: Option<&'a str>,
    pub failure_code: Option<&'a str>,
    pub failure_message: Option<&'a str>,
    pub reconciliation_status: Option<&'a str>,
    pub stripe_created: i64,
    pub observed_at: i64,
}

/// `GET /v1/payouts` filters.
#[derive(Debug, Default)]
pub struct PayoutFilter<'a> {
    pub status: Option<&'a str>,
    /// Unix seconds, inclusive.
    pub arrival_gte: Option<i64>,
    /// Unix seconds, exclusive.
    pub arrival_lt: Option<i64>,
    /// Keyset: (stripe_created, id) of the previous page's last row.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// One balance transaction a payout settles.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PayoutTransactionRow {
    pub position: i64,
    pub stripe_balance_transaction_id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub reporting_category: String,
    pub amount: i64,
    pub fee: i64,
    pub net: i64,
    pub currency: String,
    pub created: i64,
    pub available_on: i64,
    pub description: Option<String>,
    pub source_id: Option<String>,
    pub payment_intent_id: Option<String>,
    /// obol's objects, joined at read time so a payment mirrored after the
    /// fetch still links.
    pub payment_id: Option<String>,
    pub customer_id: Option<String>,
    pub order_id: Option<String>,
    pub refund_id: Option<String>,
    pub dispute_id: Option<String>,
}

/// A transaction to store.
#[derive(Debug, Clone)]
pub struct NewPayoutTransaction {
    pub stripe_balance_transaction_id: String,
    pub kind: String,
    pub reporting_category: String,
    pub amount: i64,
    pub fee: i64,
    pub net: i64,
    pub currency: String,
    pub created: i64,
    pub available_on: i64,
    pub description: Option<String>,
    pub source_id: Option<String>,
    pub payment_intent_id: Option<String>,
}

impl Conn<'_> {
    pub async fn insert_payout(
        &mut self,
        account: &AccountId,
        id: &str,
        v: &PayoutView<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<PayoutRow>> {
        // A concurrent first sight of the same payout inserts nothing: the
        // caller retries and finds the row.
        let sql = format!(
            "INSERT INTO payouts (id, account_id, stripe_payout_id, amount, currency, status, arrival_date, \
             automatic, method, description, failure_code, failure_message, reconciliation_status, \
             stripe_created, observed_at, transactions_status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'none', $16, $16) \
             ON CONFLICT (account_id, stripe_payout_id) DO NOTHING RETURNING {COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PayoutRow>(&sql)
                .bind(id)
                .bind(account.as_str())
                .bind(v.stripe_payout_id)
                .bind(v.amount)
                .bind(v.currency)
                .bind(v.status.as_str())
                .bind(v.arrival_date)
                .bind(v.automatic)
                .bind(v.method)
                .bind(v.description)
                .bind(v.failure_code)
                .bind(v.failure_message)
                .bind(v.reconciliation_status)
                .bind(v.stripe_created)
                .bind(v.observed_at)
                .bind(now)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Writes Stripe's newer view, guarded by the (status, observed_at)
    /// read: `None` when another writer got there first.
    pub async fn update_payout_view(
        &mut self,
        read: &PayoutRow,
        v: &PayoutView<'_>,
        next: PayoutLedger,
        now: DateTime<Utc>,
    ) -> Result<Option<PayoutRow>> {
        let sql = format!(
            "UPDATE payouts SET status = $1, observed_at = $2, amount = $3, arrival_date = $4, \
             method = $5, description = $6, failure_code = $7, failure_message = $8, \
             reconciliation_status = $9, updated_at = $10 \
             WHERE id = $11 AND account_id = $12 AND status = $13 AND observed_at = $14 RETURNING {COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PayoutRow>(&sql)
                .bind(next.status.as_str())
                .bind(next.observed_at)
                .bind(v.amount)
                .bind(v.arrival_date)
                .bind(v.method)
                .bind(v.description)
                .bind(v.failure_code)
                .bind(v.failure_message)
                .bind(v.reconciliation_status)
                .bind(now)
                .bind(&read.id)
                .bind(&read.account_id)
                .bind(read.status.as_str())
                .bind(read.observed_at)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_payout(&mut self, account: &AccountId, id: &str) -> Result<Option<PayoutRow>> {
        let sql = format!("SELECT {COLUMNS} FROM payouts WHERE account_id = $1 AND id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PayoutRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_payout_by_stripe_id(
        &mut self,
        account: &AccountId,
        stripe_id: &str,
    ) -> Result<Option<PayoutRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payouts WHERE account_id = $1 AND stripe_payout_id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PayoutRow>(&sql)
                .bind(account.as_str())
                .bind(stripe_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Newest first (by Stripe's `created`, then id).
    pub async fn list_payouts(
        &mut self,
        account: &AccountId,
        f: &PayoutFilter<'_>,
    ) -> Result<Vec<PayoutRow>> {
        let (before_at, before_id) = match &f.before {
            Some((at, id)) => (Some(*at), Some(id.as_str())),
            None => (None, None),
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM payouts WHERE account_id = $1 \
             AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR arrival_date >= $3) \
             AND ($4 IS NULL OR arrival_date < $4) \
             AND ($5 IS NULL OR stripe_created < $5 OR (stripe_created = $5 AND id < $6)) \
             ORDER BY stripe_created DESC, id DESC LIMIT $7"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PayoutRow>(&sql)
                .bind(account.as_str())
                .bind(f.status)
                .bind(f.arrival_gte)
                .bind(f.arrival_lt)
                .bind(before_at)
                .bind(before_id)
                .bind(f.limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Payouts Stripe may still move (pending, in transit, or paid and
    /// arrived since `paid_since`: a bank may still return them), oldest
    /// observation first, for reconciliation.
    pub async fn list_unsettled_payouts(
        &mut self,
        account: &AccountId,
        paid_since: i64,
        limit: i64,
    ) -> Result<Vec<PayoutRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payouts WHERE account_id = $1 \
             AND (status IN ('pending', 'in_transit') OR (status = 'paid' AND arrival_date >= $2)) \
             ORDER BY observed_at, id LIMIT $3"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PayoutRow>(&sql)
                .bind(account.as_str())
                .bind(paid_since)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Marks the payout's transactions as being fetched (a job is queued).
    pub async fn set_payout_transactions_fetching(
        &mut self,
        payout_id: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE payouts SET transactions_status = 'fetching', updated_at = $1 \
                 WHERE id = $2 AND transactions_status = 'none'",
            )
            .bind(now)
            .bind(payout_id)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Replaces the payout's stored transactions with `rows` (Stripe's
    /// order) and marks them fetched.
    pub async fn replace_payout_transactions(
        &mut self,
        payout: &PayoutRow,
        rows: &[NewPayoutTransaction],
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("DELETE FROM payout_transactions WHERE payout_id = $1")
                .bind(&payout.id)
                .execute(&mut **conn)
                .await?
                .rows_affected()
        });
        for (n, r) in rows.iter().enumerate() {
            let position = i64::try_from(n).unwrap_or(i64::MAX);
            on_conn!(self, |conn| {
                sqlx::query(
                    "INSERT INTO payout_transactions (account_id, payout_id, position, \
                     stripe_balance_transaction_id, type, reporting_category, amount, fee, net, currency, \
                     created, available_on, description, source_id, payment_intent_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(&payout.account_id)
                .bind(&payout.id)
                .bind(position)
                .bind(&r.stripe_balance_transaction_id)
                .bind(&r.kind)
                .bind(&r.reporting_category)
                .bind(r.amount)
                .bind(r.fee)
                .bind(r.net)
                .bind(&r.currency)
                .bind(r.created)
                .bind(r.available_on)
                .bind(&r.description)
                .bind(&r.source_id)
                .bind(&r.payment_intent_id)
                .execute(&mut **conn)
                .await?
                .rows_affected()
            });
        }
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE payouts SET transactions_status = 'fetched', transactions_fetched_at = $1, \
                 updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(&payout.id)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// A page of the payout's transactions in Stripe's order, after
    /// `after_position`, with obol's objects joined by Stripe id within
    /// the same account.
    pub async fn list_payout_transactions(
        &mut self,
        account: &AccountId,
        payout_id: &str,
        after_position: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PayoutTransactionRow>> {
        let sql = "SELECT t.position, t.stripe_balance_transaction_id, t.type, t.reporting_category, \
             t.amount, t.fee, t.net, t.currency, t.created, t.available_on, t.description, t.source_id, \
             t.payment_intent_id, p.id AS payment_id, p.customer_id, p.order_id, \
             r.id AS refund_id, d.id AS dispute_id \
             FROM payout_transactions t \
             LEFT JOIN payments p ON p.account_id = t.account_id AND p.stripe_payment_intent_id = t.payment_intent_id \
             LEFT JOIN refunds r ON r.account_id = t.account_id AND r.stripe_refund_id = t.source_id \
             LEFT JOIN disputes d ON d.account_id = t.account_id AND d.stripe_dispute_id = t.source_id \
             WHERE t.account_id = $1 AND t.payout_id = $2 AND ($3 IS NULL OR t.position > $3) \
             ORDER BY t.position LIMIT $4";
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PayoutTransactionRow>(sql)
                .bind(account.as_str())
                .bind(payout_id)
                .bind(after_position)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// (count, gross, fee, net) of the payout's stored transactions.
    pub async fn sum_payout_transactions(
        &mut self,
        account: &AccountId,
        payout_id: &str,
    ) -> Result<(i64, i64, i64, i64)> {
        let sql = "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(amount), 0) AS BIGINT), \
             CAST(COALESCE(SUM(fee), 0) AS BIGINT), CAST(COALESCE(SUM(net), 0) AS BIGINT) \
             FROM payout_transactions WHERE account_id = $1 AND payout_id = $2";
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, (i64, i64, i64, i64)>(sql)
                .bind(account.as_str())
                .bind(payout_id)
                .fetch_one(&mut **conn)
                .await?
        }))
    }
}
