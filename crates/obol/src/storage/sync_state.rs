//! Named values that background jobs keep between runs, per account.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;

/// The stored key: the bare name for the platform account (as before
/// tenancy), `acct_…:name` for a connected account.
fn key(account: &AccountId, name: &str) -> String {
    if account.is_platform() {
        name.to_string()
    } else {
        format!("{account}:{name}")
    }
}

impl Conn<'_> {
    pub async fn get_sync_state(
        &mut self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<String>> {
        let key = key(account, name);
        Ok(on_conn!(self, |conn| {
            sqlx::query_scalar("SELECT value FROM sync_state WHERE name = $1 AND account_id = $2")
                .bind(&key)
                .bind(account.as_str())
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn set_sync_state(
        &mut self,
        account: &AccountId,
        name: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let key = key(account, name);
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO sync_state (name, value, updated_at, account_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(&key)
            .bind(value)
            .bind(now)
            .bind(account.as_str())
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }
}
