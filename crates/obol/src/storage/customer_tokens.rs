//! Customer tokens: short-lived bearer tokens a host mints for one customer.
//! Only the SHA-256 of a token is stored.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ids::{CustomerId, CustomerTokenId, TokenHash};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CustomerTokenRow {
    pub id: String,
    pub account_id: String,
    pub customer_id: String,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Conn<'_> {
    pub async fn insert_customer_token(
        &mut self,
        account: &AccountId,
        id: &CustomerTokenId,
        customer_id: &CustomerId,
        hash: &TokenHash,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<CustomerTokenRow> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, CustomerTokenRow>(
                "INSERT INTO customer_tokens (id, customer_id, token_hash, expires_at, created_at, account_id) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 RETURNING id, account_id, customer_id, expires_at, revoked_at, created_at",
            )
            .bind(id.as_str())
            .bind(customer_id.as_str())
            .bind(hash.as_str())
            .bind(expires_at)
            .bind(now)
            .bind(account.as_str())
            .fetch_one(&mut **conn)
            .await?
        }))
    }

    /// The customer a live token (not expired, not revoked) belongs to. Not
    /// scoped by account: the token itself says which account it acts in.
    pub async fn find_live_customer_token(
        &mut self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<CustomerTokenRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, CustomerTokenRow>(
                "SELECT id, account_id, customer_id, expires_at, revoked_at, created_at FROM customer_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
            )
            .bind(hash.as_str())
            .bind(now)
            .fetch_optional(&mut **conn)
            .await?
        }))
    }

    /// Revokes a token; `None` when no such token exists. Revoking twice
    /// keeps the first revocation time.
    pub async fn revoke_customer_token(
        &mut self,
        account: &AccountId,
        id: &CustomerTokenId,
        now: DateTime<Utc>,
    ) -> Result<Option<CustomerTokenRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, CustomerTokenRow>(
                "UPDATE customer_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 AND account_id = $3 \
                 RETURNING id, account_id, customer_id, expires_at, revoked_at, created_at",
            )
            .bind(id.as_str())
            .bind(now)
            .bind(account.as_str())
            .fetch_optional(&mut **conn)
            .await?
        }))
    }
}
