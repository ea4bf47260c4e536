//! Refunds of payments.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::refund::{RefundLedger, RefundStatus};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RefundRow {
    pub id: String,
    pub account_id: String,
    pub payment_id: String,
    pub stripe_refund_id: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub reason: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: RefundStatus,
    pub failure_reason: Option<String>,
    pub observed_at: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, account_id, payment_id, stripe_refund_id, amount, currency, reason, status, \
    failure_reason, observed_at, created_at, updated_at";

pub struct NewRefund<'a> {
    pub id: &'a str,
    pub payment_id: &'a str,
    pub stripe_refund_id: Option<&'a str>,
    pub amount: i64,
    pub currency: &'a str,
    pub reason: Option<&'a str>,
    pub status: RefundStatus,
    pub observed_at: i64,
    pub now: DateTime<Utc>,
}

impl RefundRow {
    /// The Stripe account the refund (and its payment) belongs to.
    pub fn account(&self) -> AccountId {
        AccountId::from_db(self.account_id.clone())
    }

    /// The part the refund state machine reads.
    pub fn ledger(&self) -> RefundLedger {
        RefundLedger {
            status: self.status,
            observed_at: self.observed_at,
        }
    }
}

impl Conn<'_> {
    pub async fn insert_refund(&mut self, r: &NewRefund<'_>) -> Result<RefundRow> {
        let sql = format!(
            // A refund belongs to its payment's account.
            "INSERT INTO refunds (id, payment_id, stripe_refund_id, amount, currency, reason, status, \
             observed_at, created_at, updated_at, account_id) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $9, account_id FROM payments WHERE id = $2 \
             RETURNING {COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, RefundRow>(&sql)
                .bind(r.id)
                .bind(r.payment_id)
                .bind(r.stripe_refund_id)
                .bind(r.amount)
                .bind(r.currency)
                .bind(r.reason)
                .bind(r.status.as_str())
                .bind(r.observed_at)
                .bind(r.now)
                .fetch_one(&mut **conn)
                .await?
        }))
    }

    pub async fn get_refund(&mut self, account: &AccountId, id: &str) -> Result<Option<RefundRow>> {
        let sql = format!("SELECT {COLUMNS} FROM refunds WHERE account_id = $1 AND id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, RefundRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_refund_by_stripe_id(
        &mut self,
        account: &AccountId,
        stripe_id: &str,
    ) -> Result<Option<RefundRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM refunds WHERE account_id = $1 AND stripe_refund_id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, RefundRow>(&sql)
                .bind(account.as_str())
                .bind(stripe_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn list_refunds(
        &mut self,
        account: &AccountId,
        payment_id: &str,
    ) -> Result<Vec<RefundRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM refunds WHERE account_id = $1 AND payment_id = $2 ORDER BY created_at, id"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, RefundRow>(&sql)
                .bind(account.as_str())
                .bind(payment_id)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Refunds Stripe has not accepted yet, oldest first, for resubmission.
    pub async fn list_unsubmitted_refunds(
        &mut self,
        older_than: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RefundRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM refunds WHERE status = 'pending_submission' AND updated_at < $1 \
             ORDER BY created_at LIMIT $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, RefundRow>(&sql)
                .bind(older_than)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Sum of refunds not failed or canceled: what is already promised back.
    pub async fn sum_open_refunds(&mut self, payment_id: &str) -> Result<i64> {
        let sum: Option<i64> = on_conn!(self, |conn| {
            sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds \
                 WHERE payment_id = $1 AND status IN ('pending_submission', 'pending', 'succeeded')",
            )
            .bind(payment_id)
            .fetch_one(&mut **conn)
            .await?
        });
        Ok(sum.unwrap_or(0))
    }

    /// Records what Stripe said about a refund, guarded by the row read
    /// (`false` when another writer changed it meanwhile).
    pub async fn update_refund_from_stripe(
        &mut self,
        read: &RefundRow,
        stripe_refund_id: &str,
        status: RefundStatus,
        failure_reason: Option<&str>,
        observed_at: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE refunds SET stripe_refund_id = $1, status = $2, failure_reason = $3, \
                 observed_at = $4, updated_at = $5 WHERE id = $6 AND status = $7 AND observed_at = $8",
            )
            .bind(stripe_refund_id)
            .bind(status.as_str())
            .bind(failure_reason)
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

    /// Stripe refused the refund outright; it will never happen.
    pub async fn fail_refund_submission(
        &mut self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE refunds SET status = 'failed', failure_reason = $1, updated_at = $2 \
                 WHERE id = $3 AND status = 'pending_submission'",
            )
            .bind(reason)
            .bind(now)
            .bind(id)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn touch_refund(&mut self, id: &str, now: DateTime<Utc>) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("UPDATE refunds SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }
}
