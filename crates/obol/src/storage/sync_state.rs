//! Named values that background jobs keep between runs.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::error::Result;

impl Conn<'_> {
    pub async fn get_sync_state(&mut self, name: &str) -> Result<Option<String>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_scalar("SELECT value FROM sync_state WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn set_sync_state(
        &mut self,
        name: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO sync_state (name, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(value)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }
}
