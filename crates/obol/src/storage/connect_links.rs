//! Connect links (`connect_links`): one organisation's way through
//! Stripe Connect's OAuth flow. The link's token and the OAuth state's
//! secret are stored hashed; each is used up by one guarded update, so
//! of two concurrent visits (or callbacks) exactly one proceeds.
//! Expiry is decided by the caller (`ops::connect`), against its clock.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConnectLinkRow {
    pub id: String,
    pub organization_id: String,
    /// Where the admin's browser is sent back to with the outcome.
    pub return_url: String,
    pub link_hash: String,
    pub link_expires_at: DateTime<Utc>,
    pub link_used_at: Option<DateTime<Utc>>,
    pub state_hash: Option<String>,
    pub state_expires_at: Option<DateTime<Utc>>,
    pub state_used_at: Option<DateTime<Utc>>,
    /// `active`, `denied` or `error:<code>`, once the callback ran.
    pub outcome: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A new link, as `insert_connect_link` writes it.
pub struct NewConnectLink<'a> {
    pub id: &'a str,
    pub organization_id: &'a str,
    pub return_url: &'a str,
    pub link_hash: &'a str,
    pub link_expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

const COLUMNS: &str = "id, organization_id, return_url, link_hash, link_expires_at, \
     link_used_at, state_hash, state_expires_at, state_used_at, outcome, created_at";

impl Conn<'_> {
    pub async fn insert_connect_link(&mut self, l: &NewConnectLink<'_>) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO connect_links (id, organization_id, return_url, link_hash, \
                 link_expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(l.id)
            .bind(l.organization_id)
            .bind(l.return_url)
            .bind(l.link_hash)
            .bind(l.link_expires_at)
            .bind(l.now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// The link whose token hashes to `link_hash`, used or not.
    pub async fn get_connect_link_by_token(
        &mut self,
        link_hash: &str,
    ) -> Result<Option<ConnectLinkRow>> {
        let sql = format!("SELECT {COLUMNS} FROM connect_links WHERE link_hash = $1");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ConnectLinkRow>(&sql)
                .bind(link_hash)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_connect_link(&mut self, id: &str) -> Result<Option<ConnectLinkRow>> {
        let sql = format!("SELECT {COLUMNS} FROM connect_links WHERE id = $1");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ConnectLinkRow>(&sql)
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Uses up the link (its visit) and stores the OAuth state minted for
    /// it. `Ok(None)`: it was used already (another visit won).
    pub async fn use_connect_link(
        &mut self,
        id: &str,
        state_hash: &str,
        state_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<ConnectLinkRow>> {
        let sql = format!(
            "UPDATE connect_links SET link_used_at = $1, state_hash = $2, state_expires_at = $3 \
             WHERE id = $4 AND link_used_at IS NULL RETURNING {COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ConnectLinkRow>(&sql)
                .bind(now)
                .bind(state_hash)
                .bind(state_expires_at)
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Uses up the OAuth state of link `id` (the callback). `false`: it was
    /// used already (a replayed or concurrent callback).
    pub async fn use_connect_state(&mut self, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE connect_links SET state_used_at = $1 \
                 WHERE id = $2 AND state_hash IS NOT NULL AND state_used_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Records how the flow ended (for support: what happened to a link).
    pub async fn set_connect_link_outcome(&mut self, id: &str, outcome: &str) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("UPDATE connect_links SET outcome = $1 WHERE id = $2")
                .bind(outcome)
                .bind(id)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }
}
