//! The queries `/metrics` and `/health` run at scrape time: the inbox
//! backlog and the job queue. Both read only rows still waiting (indexed by
//! status), never the applied events or finished jobs that make up most of
//! a large database.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::error::Result;

/// Waiting inbox events of one status (`received` or `failed`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InboxBacklog {
    pub status: String,
    pub events: i64,
    /// When the oldest of them was stored.
    pub oldest_received_at: Option<DateTime<Utc>>,
}

/// Jobs of one kind and status that are not finished (`queued`, `running`)
/// or that need an operator (`dead`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JobQueue {
    pub kind: String,
    pub status: String,
    pub jobs: i64,
    /// `queued`: the earliest `next_attempt_at` (when the most overdue job
    /// became due); `running` and `dead`: the earliest `updated_at` (when
    /// the oldest was claimed, or died).
    pub oldest_at: Option<DateTime<Utc>>,
}

impl Conn<'_> {
    /// Events waiting for the applier, by status. Every instance's inbox
    /// is the same table, so this is the backlog of all of them. Served by
    /// the partial index `webhook_events_waiting`.
    pub async fn inbox_backlog(&mut self) -> Result<Vec<InboxBacklog>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, InboxBacklog>(
                "SELECT status, CAST(COUNT(*) AS BIGINT) AS events, MIN(received_at) AS oldest_received_at \
                 FROM webhook_events WHERE status IN ('received', 'failed') \
                 GROUP BY status ORDER BY status",
            )
            .fetch_all(&mut **conn)
            .await?
        }))
    }

    /// Queued, running and dead jobs by kind and status (succeeded ones,
    /// the bulk of the table, are not read: `jobs_due` leads with status).
    pub async fn job_queue(&mut self) -> Result<Vec<JobQueue>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, JobQueue>(
                "SELECT kind, status, CAST(COUNT(*) AS BIGINT) AS jobs, \
                 MIN(CASE WHEN status = 'queued' THEN next_attempt_at ELSE updated_at END) AS oldest_at \
                 FROM jobs WHERE status IN ('queued', 'running', 'dead') \
                 GROUP BY kind, status ORDER BY kind, status",
            )
            .fetch_all(&mut **conn)
            .await?
        }))
    }
}
