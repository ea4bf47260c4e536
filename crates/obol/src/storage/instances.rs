//! `instances`: the obol processes sharing this database, one row each,
//! renewed every second with the process's demand and claim on the
//! Stripe budget (see `stripe::budget`).

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::error::Result;

impl Conn<'_> {
    pub async fn insert_instance(
        &mut self,
        id: &str,
        demand: i64,
        claim_milli: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO instances (id, started_at, heartbeat_at, demand, claim_milli) \
                 VALUES ($1, $2, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
                 heartbeat_at = excluded.heartbeat_at, demand = excluded.demand, \
                 claim_milli = excluded.claim_milli",
            )
            .bind(id)
            .bind(now)
            .bind(demand)
            .bind(claim_milli)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Renews the row with what the process publishes; `false` when it
    /// is gone (dropped as stale).
    pub async fn renew_instance(
        &mut self,
        id: &str,
        demand: i64,
        claim_milli: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE instances SET heartbeat_at = $2, demand = $3, claim_milli = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(demand)
            .bind(claim_milli)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Renews the heartbeat only; `false` when the row is gone.
    pub async fn touch_instance(&mut self, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query("UPDATE instances SET heartbeat_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut **conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn remove_instance(&mut self, id: &str) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("DELETE FROM instances WHERE id = $1")
                .bind(id)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }

    pub async fn remove_instances_older_than(&mut self, before: DateTime<Utc>) -> Result<u64> {
        Ok(on_conn!(self, |conn| {
            sqlx::query("DELETE FROM instances WHERE heartbeat_at < $1")
                .bind(before)
                .execute(&mut **conn)
                .await?
                .rows_affected()
        }))
    }

    /// Rows renewed at or after `since`.
    pub async fn count_live_instances(&mut self, since: DateTime<Utc>) -> Result<i64> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_scalar::<_, i64>(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM instances WHERE heartbeat_at >= $1",
            )
            .bind(since)
            .fetch_one(&mut **conn)
            .await?
        }))
    }

    /// The rows renewed at or after `since`: (id, demand, claim in
    /// thousandths of a request per second).
    pub async fn live_instances(
        &mut self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, i64)>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, (String, i64, i64)>(
                "SELECT id, demand, claim_milli FROM instances WHERE heartbeat_at >= $1 ORDER BY id",
            )
            .bind(since)
            .fetch_all(&mut **conn)
            .await?
        }))
    }
}
