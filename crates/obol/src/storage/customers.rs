//! Customers: obol's record of a host application's customer.

use chrono::{DateTime, Utc};

use super::{is_unique_violation, on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ids::CustomerId;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CustomerRow {
    pub id: String,
    pub account_id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub stripe_customer_id: Option<String>,
    /// `obol` (created through obol's API) or `stripe` (adopted).
    pub source: String,
    /// Event time (unix seconds) of the newest Stripe observation of the
    /// e-mail and name applied; 0: none yet.
    pub stripe_observed: i64,
    /// When Stripe's `customer.deleted` was applied.
    pub stripe_deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CustomerRow {
    pub fn account(&self) -> AccountId {
        AccountId::from_db(self.account_id.clone())
    }
}

pub struct NewCustomer<'a> {
    pub id: &'a CustomerId,
    pub account_id: &'a str,
    pub external_id: Option<&'a str>,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// A Stripe customer obol did not create, adopted from its events.
pub struct AdoptedCustomer<'a> {
    pub id: &'a CustomerId,
    pub account_id: &'a str,
    pub stripe_customer_id: &'a str,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    /// The observation's event time.
    pub observed: i64,
    /// Adopted from its `customer.deleted` (it arrived first).
    pub deleted: bool,
    pub now: DateTime<Utc>,
}

/// What a newer Stripe observation makes of a customer's mirrored fields.
pub struct MirroredCustomer<'a> {
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub observed: i64,
    pub deleted: bool,
    pub now: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str =
    "id, account_id, external_id, email, name, stripe_customer_id, source, \
     stripe_observed, stripe_deleted_at, created_at, updated_at";

impl Conn<'_> {
    /// Inserts a customer; `Ok(None)` when the external id is taken.
    pub async fn insert_customer(&mut self, c: &NewCustomer<'_>) -> Result<Option<CustomerRow>> {
        let sql = format!(
            "INSERT INTO customers (id, account_id, external_id, email, name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {COLUMNS}"
        );
        let result = on_conn!(self, |conn| {
            sqlx::query_as::<_, CustomerRow>(&sql)
                .bind(c.id.as_str())
                .bind(c.account_id)
                .bind(c.external_id)
                .bind(c.email)
                .bind(c.name)
                .bind(c.now)
                .fetch_one(&mut **conn)
                .await
        });
        match result {
            Ok(row) => Ok(Some(row)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A customer of `account`; another account's is `None`.
    pub async fn get_customer(
        &mut self,
        account: &AccountId,
        id: &CustomerId,
    ) -> Result<Option<CustomerRow>> {
        let sql = format!("SELECT {COLUMNS} FROM customers WHERE account_id = $1 AND id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, CustomerRow>(&sql)
                .bind(account.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_customer_by_external_id(
        &mut self,
        account_id: &str,
        external_id: &str,
    ) -> Result<Option<CustomerRow>> {
        let sql =
            format!("SELECT {COLUMNS} FROM customers WHERE account_id = $1 AND external_id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, CustomerRow>(&sql)
                .bind(account_id)
                .bind(external_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// The customer whose Stripe customer is `stripe_customer_id`.
    pub async fn get_customer_by_stripe_id(
        &mut self,
        account: &AccountId,
        stripe_customer_id: &str,
    ) -> Result<Option<CustomerRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM customers WHERE account_id = $1 AND stripe_customer_id = $2 \
             ORDER BY created_at, id LIMIT 1"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, CustomerRow>(&sql)
                .bind(account.as_str())
                .bind(stripe_customer_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Records the customer's Stripe customer unless one is recorded
    /// already; `false` then (the caller reads which one won).
    pub async fn set_stripe_customer_id(
        &mut self,
        account: &AccountId,
        id: &CustomerId,
        stripe_customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE customers SET stripe_customer_id = $3, updated_at = $4 \
                 WHERE account_id = $1 AND id = $2 AND stripe_customer_id IS NULL",
            )
            .bind(account.as_str())
            .bind(id.as_str())
            .bind(stripe_customer_id)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Replaces a Stripe customer that Stripe has deleted (`customer.deleted`
    /// applied) with a new one, clearing the deletion and the observation
    /// time (they were the old customer's); `false` when the row no longer
    /// holds the deleted `old` (a concurrent replacement won: read it).
    pub async fn replace_deleted_stripe_customer(
        &mut self,
        account: &AccountId,
        id: &CustomerId,
        old: &str,
        new: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE customers SET stripe_customer_id = $4, stripe_deleted_at = NULL, \
                 stripe_observed = 0, updated_at = $5 \
                 WHERE account_id = $1 AND id = $2 AND stripe_customer_id = $3 \
                 AND stripe_deleted_at IS NOT NULL",
            )
            .bind(account.as_str())
            .bind(id.as_str())
            .bind(old)
            .bind(new)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Adopts a Stripe customer as an obol customer (`source = stripe`);
    /// `Ok(None)` when one of this account already holds that Stripe
    /// customer (a concurrent adoption or link won: read it). ON CONFLICT,
    /// not a caught violation: on PostgreSQL a failed statement would abort
    /// the caller's transaction.
    pub async fn adopt_stripe_customer(
        &mut self,
        c: &AdoptedCustomer<'_>,
    ) -> Result<Option<CustomerRow>> {
        let sql = format!(
            "INSERT INTO customers (id, account_id, external_id, email, name, stripe_customer_id, \
             source, stripe_observed, stripe_deleted_at, created_at, updated_at) \
             VALUES ($1, $2, NULL, $3, $4, $5, 'stripe', $6, $7, $8, $8) \
             ON CONFLICT (account_id, stripe_customer_id) DO NOTHING RETURNING {COLUMNS}"
        );
        let deleted_at = c.deleted.then_some(c.now);
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, CustomerRow>(&sql)
                .bind(c.id.as_str())
                .bind(c.account_id)
                .bind(c.email)
                .bind(c.name)
                .bind(c.stripe_customer_id)
                .bind(c.observed)
                .bind(deleted_at)
                .bind(c.now)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Writes a Stripe observation of the customer `read` (e-mail, name,
    /// deleted), guarded by the observation time read: `false` when the
    /// row changed since (the caller retries from a fresh read). Deleted is
    /// final: a later write keeps the first deletion time.
    pub async fn write_customer_mirror(
        &mut self,
        read: &CustomerRow,
        m: &MirroredCustomer<'_>,
    ) -> Result<bool> {
        let deleted_at = m.deleted.then_some(m.now);
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE customers SET email = $3, name = $4, stripe_observed = $5, \
                 stripe_deleted_at = COALESCE(stripe_deleted_at, $6), updated_at = $7 \
                 WHERE account_id = $1 AND id = $2 AND stripe_observed = $8",
            )
            .bind(&read.account_id)
            .bind(&read.id)
            .bind(m.email)
            .bind(m.name)
            .bind(m.observed)
            .bind(deleted_at)
            .bind(m.now)
            .bind(read.stripe_observed)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Holds the customer's row until the transaction ends (PostgreSQL;
    /// SQLite's write transactions are serialized already).
    pub async fn lock_customer(&mut self, id: &str) -> Result<()> {
        if let Conn::Postgres(conn) = self {
            sqlx::query("SELECT id FROM customers WHERE id = $1 FOR UPDATE")
                .bind(id)
                .execute(&mut **conn)
                .await?;
        }
        Ok(())
    }
}
