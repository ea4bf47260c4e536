//! Host webhook endpoints, the notification outbox and its deliveries.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::delivery::DeliveryStatus;

/// An endpoint is active until deleted (soft: its history stays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    Active,
    Deleted,
}

impl EndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::Active => "active",
            EndpointStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(EndpointStatus::Active),
            "deleted" => Some(EndpointStatus::Deleted),
            _ => None,
        }
    }
}

impl TryFrom<String> for EndpointStatus {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        EndpointStatus::parse(&s).ok_or_else(|| format!("unknown EndpointStatus {s:?}"))
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub event_types: String,
    pub secret: String,
    pub description: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: EndpointStatus,
    pub created_at: DateTime<Utc>,
}

impl EndpointRow {
    pub fn event_types(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }

    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types()
            .iter()
            .any(|t| t == "*" || t == event_type)
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub notification_id: String,
    pub endpoint_id: String,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A claimed delivery with what sending it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: String,
    pub notification_id: String,
    pub attempts: i32,
    pub url: String,
    pub secret: String,
    pub event_type: String,
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

const ENDPOINT_COLUMNS: &str = "id, url, event_types, secret, description, status, created_at";
const DELIVERY_COLUMNS: &str =
    "id, notification_id, endpoint_id, status, attempts, next_attempt_at, \
    last_status_code, last_error, created_at, updated_at, delivered_at";

pub struct NewEndpoint<'a> {
    pub account: &'a AccountId,
    pub id: &'a str,
    pub url: &'a str,
    pub event_types: &'a [String],
    pub secret: &'a str,
    pub description: Option<&'a str>,
    pub now: DateTime<Utc>,
}

impl Conn<'_> {
    pub async fn insert_endpoint(&mut self, e: &NewEndpoint<'_>) -> Result<EndpointRow> {
        let NewEndpoint {
            account,
            id,
            url,
            event_types,
            secret,
            description,
            now,
        } = *e;
        let types = serde_json::to_string(event_types).unwrap_or_else(|_| "[]".into());
        let sql = format!(
            "INSERT INTO webhook_endpoints (id, url, event_types, secret, description, status, created_at, account_id) \
             VALUES ($1, $2, $3, $4, $5, 'active', $6, $7) RETURNING {ENDPOINT_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, EndpointRow>(&sql)
                .bind(id)
                .bind(url)
                .bind(&types)
                .bind(secret)
                .bind(description)
                .bind(now)
                .bind(account.as_str())
                .fetch_one(&mut **conn)
                .await?
        }))
    }

    pub async fn list_endpoints(&mut self, account: &AccountId) -> Result<Vec<EndpointRow>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE account_id = $1 AND deleted_at IS NULL \
             ORDER BY created_at, id"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, EndpointRow>(&sql)
                .bind(account.as_str())
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    pub async fn get_endpoint(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<EndpointRow>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE account_id = $1 AND id = $2 \
             AND deleted_at IS NULL"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, EndpointRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Soft delete: past deliveries stay visible; pending ones stop.
    pub async fn delete_endpoint(
        &mut self,
        account: &AccountId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query("UPDATE webhook_endpoints SET deleted_at = $1, status = 'deleted' WHERE id = $2 AND account_id = $3 AND deleted_at IS NULL")
                .bind(now)
                .bind(id)
                .bind(account.as_str())
                .execute(&mut **conn)
                .await?
                .rows_affected()
        });
        if n == 1 {
            on_conn!(self, |conn| {
                sqlx::query("UPDATE notification_deliveries SET status = 'canceled', updated_at = $1 WHERE endpoint_id = $2 AND status = 'pending'")
                    .bind(now)
                    .bind(id)
                    .execute(&mut **conn)
                    .await?;
            });
        }
        Ok(n == 1)
    }

    /// Writes a notification and one pending delivery per interested
    /// endpoint of the same account, in the caller's transaction: rolled
    /// back with the change.
    pub async fn enqueue_notification(
        &mut self,
        account: &AccountId,
        event_type: &str,
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let endpoints: Vec<EndpointRow> = self
            .list_endpoints(account)
            .await?
            .into_iter()
            .filter(|e| e.status == EndpointStatus::Active && e.wants(event_type))
            .collect();
        if endpoints.is_empty() {
            return Ok(None);
        }
        let id = String::from(crate::ids::MessageId::generate());
        on_conn!(self, |conn| {
            sqlx::query("INSERT INTO notifications (id, event_type, payload, created_at, account_id) VALUES ($1, $2, $3, $4, $5)")
                .bind(&id)
                .bind(event_type)
                .bind(payload)
                .bind(now)
                .bind(account.as_str())
                .execute(&mut **conn)
                .await?;
        });
        for endpoint in endpoints {
            let delivery = String::from(crate::ids::DeliveryId::generate());
            on_conn!(self, |conn| {
                sqlx::query(
                    "INSERT INTO notification_deliveries (id, notification_id, endpoint_id, status, \
                     next_attempt_at, created_at, updated_at, account_id) VALUES ($1, $2, $3, 'pending', $4, $4, $4, $5)",
                )
                .bind(&delivery)
                .bind(&id)
                .bind(&endpoint.id)
                .bind(now)
                .bind(account.as_str())
                .execute(&mut **conn)
                .await?;
            });
        }
        Ok(Some(id))
    }

    /// Claims due deliveries (exclusive on PostgreSQL with SKIP LOCKED).
    pub async fn claim_due_deliveries(
        &mut self,
        now: DateTime<Utc>,
        lock_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DueDelivery>> {
        let lock = match self {
            Conn::Sqlite(_) => "",
            Conn::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        };
        // The due rows are picked in a CTE, evaluated once: as an
        // `IN (SELECT … LIMIT … SKIP LOCKED)` subquery PostgreSQL may rescan
        // it and claim far more than `limit` (the job queue measured 289 rows
        // claimed with LIMIT 8), so a worker would hold rows past its lease.
        let due = "status = 'pending' AND next_attempt_at <= $2 \
                   AND (locked_until IS NULL OR locked_until <= $2)";
        let claim = format!(
            "WITH due AS (SELECT id FROM notification_deliveries WHERE {due} \
               ORDER BY next_attempt_at LIMIT $3 {lock}) \
             UPDATE notification_deliveries SET locked_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM due) AND {due} RETURNING id"
        );
        let ids: Vec<String> = on_conn!(self, |conn| {
            sqlx::query_scalar(&claim)
                .bind(lock_until)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        });
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row: Option<DueDelivery> = on_conn!(self, |conn| {
                sqlx::query_as::<_, DueDelivery>(
                    "SELECT d.id, d.notification_id, d.attempts, e.url, e.secret, n.event_type, n.payload, n.created_at \
                     FROM notification_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                     JOIN notifications n ON n.id = d.notification_id WHERE d.id = $1",
                )
                .bind(&id)
                .fetch_optional(&mut **conn)
                .await?
            });
            out.extend(row);
        }
        Ok(out)
    }

    /// Records the outcome of the attempt that claimed the delivery as
    /// `pending` with `claimed_attempts`, guarded by that state: `false`
    /// when it changed while the attempt was in flight (the endpoint was
    /// deleted and the delivery canceled, a replay re-queued it, or the
    /// claim expired and another dispatcher took it), so a late answer
    /// never overwrites the newer state.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_delivery_attempt(
        &mut self,
        id: &str,
        claimed_attempts: i32,
        status: DeliveryStatus,
        status_code: Option<i32>,
        error: Option<&str>,
        next_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let delivered = (status == DeliveryStatus::Succeeded).then_some(now);
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE notification_deliveries SET status = $1, last_status_code = $2, last_error = $3, \
                 next_attempt_at = $4, locked_until = NULL, updated_at = $5, delivered_at = COALESCE($6, delivered_at) \
                 WHERE id = $7 AND status = 'pending' AND attempts = $8",
            )
            .bind(status.as_str())
            .bind(status_code)
            .bind(error)
            .bind(next_attempt_at)
            .bind(now)
            .bind(delivered)
            .bind(id)
            .bind(claimed_attempts)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn list_deliveries(
        &mut self,
        account: &AccountId,
        endpoint_id: &str,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE endpoint_id = $1 \
             AND ($2 IS NULL OR status = $2) AND account_id = $4 ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, DeliveryRow>(&sql)
                .bind(endpoint_id)
                .bind(status)
                .bind(limit)
                .bind(account.as_str())
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Queues a delivery again (replay), whatever its outcome was.
    pub async fn requeue_delivery(
        &mut self,
        account: &AccountId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DeliveryRow>> {
        let sql = format!(
            "UPDATE notification_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, \
             locked_until = NULL, updated_at = $1 WHERE id = $2 AND account_id = $3 RETURNING {DELIVERY_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, DeliveryRow>(&sql)
                .bind(now)
                .bind(id)
                .bind(account.as_str())
                .fetch_optional(&mut **conn)
                .await?
        }))
    }
}
