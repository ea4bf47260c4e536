//! API keys obol generated itself (the sandbox development key), stored
//! hashed. Keys from configuration are never written here.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::error::Result;
use crate::ids::{ApiKeyId, TokenHash};

impl Conn<'_> {
    pub async fn insert_api_key(
        &mut self,
        id: &ApiKeyId,
        hash: &TokenHash,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO api_keys (id, key_hash, label, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id.as_str())
            .bind(hash.as_str())
            .bind(label)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Hashes of every stored key that has not been revoked.
    pub async fn list_live_api_key_hashes(&mut self) -> Result<Vec<TokenHash>> {
        let rows: Vec<String> = on_conn!(self, |conn| {
            sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE revoked_at IS NULL")
                .fetch_all(&mut **conn)
                .await?
        });
        Ok(rows.into_iter().map(TokenHash::from_db).collect())
    }
}
