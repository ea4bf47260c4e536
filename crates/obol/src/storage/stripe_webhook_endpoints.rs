//! Stripe webhook endpoints obol registered itself, with their signing
//! secret encrypted (`crate::secrets`; nothing here encrypts or decrypts).

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::error::Result;

#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct StripeEndpointRow {
    /// Stripe's `we_…`.
    pub id: String,
    pub url: String,
    pub connect: bool,
    /// The signing secret, sealed with `secret_context(id)`.
    pub secret_enc: String,
    pub created_at: DateTime<Utc>,
}

/// Never the sealed secret, even in a log line.
impl std::fmt::Debug for StripeEndpointRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeEndpointRow")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("connect", &self.connect)
            .finish_non_exhaustive()
    }
}

/// The associated data an endpoint's secret is sealed with: its table,
/// column and row, so the ciphertext opens nowhere else.
pub fn secret_context(id: &str) -> String {
    format!("stripe_webhook_endpoints.secret_enc:{id}")
}

impl Conn<'_> {
    /// Records an endpoint obol registered; another process recording the
    /// same endpoint first (Stripe answered both the same, by idempotency
    /// key) is not an error.
    pub async fn insert_stripe_endpoint(
        &mut self,
        id: &str,
        url: &str,
        connect: bool,
        secret_enc: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO stripe_webhook_endpoints (id, url, connect, secret_enc, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(url)
            .bind(connect)
            .bind(secret_enc)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn list_stripe_endpoints(&mut self) -> Result<Vec<StripeEndpointRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, StripeEndpointRow>(
                "SELECT id, url, connect, secret_enc, created_at FROM stripe_webhook_endpoints \
                 ORDER BY created_at, id",
            )
            .fetch_all(&mut **conn)
            .await?
        }))
    }

    /// Forgets an endpoint Stripe no longer has (deleted there).
    pub async fn delete_stripe_endpoint(&mut self, id: &str) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query("DELETE FROM stripe_webhook_endpoints WHERE id = $1")
                .bind(id)
                .execute(&mut **conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Replaces a sealed secret if it is still `old` (re-encryption).
    pub async fn replace_stripe_endpoint_secret(
        &mut self,
        id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE stripe_webhook_endpoints SET secret_enc = $1 WHERE id = $2 AND secret_enc = $3",
            )
            .bind(new)
            .bind(id)
            .bind(old)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }
}
