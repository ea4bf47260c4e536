//! Agentic Commerce Protocol: checkout sessions and the Idempotency-Key
//! records of the `/acp` POSTs (`ops::acp`).

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AcpSessionRow {
    pub id: String,
    pub account_id: String,
    pub status: String,
    pub currency: String,
    /// The agent's input as last set (JSON, `ops::acp::Cart`).
    pub cart: String,
    pub payment_intent_id: Option<String>,
    pub attempts: i32,
    pub authentication_metadata: Option<String>,
    pub decline_message: Option<String>,
    pub order_id: Option<String>,
    pub completing_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AcpIdempotencyRow {
    pub body_hash: String,
    /// Null while the first request is in flight.
    pub status: Option<i32>,
    pub response: Option<String>,
    pub locked_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const SESSION_COLUMNS: &str =
    "id, account_id, status, currency, cart, payment_intent_id, attempts, \
    authentication_metadata, decline_message, order_id, completing_until, created_at, updated_at";

/// An Idempotency-Key as the RFC scopes it: the caller's credential, the
/// endpoint and the key.
#[derive(Debug, Clone, Copy)]
pub struct AcpKey<'a> {
    pub credential: &'a str,
    pub route: &'a str,
    pub key: &'a str,
}

/// A key's request in flight: its body's fingerprint, how long it holds
/// the key, and how long the record is kept.
#[derive(Debug, Clone, Copy)]
pub struct AcpKeyRecord<'a> {
    pub body_hash: &'a str,
    pub locked_until: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a finished completion attempt leaves on the session.
pub struct AcpAttempt<'a> {
    pub status: &'a str,
    pub payment_intent_id: Option<&'a str>,
    pub attempts: i32,
    pub authentication_metadata: Option<&'a str>,
    pub decline_message: Option<&'a str>,
}

impl Conn<'_> {
    pub async fn insert_acp_session(&mut self, s: &AcpSessionRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO acp_checkout_sessions ({SESSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        on_conn!(self, |conn| {
            sqlx::query(&sql)
                .bind(&s.id)
                .bind(&s.account_id)
                .bind(&s.status)
                .bind(&s.currency)
                .bind(&s.cart)
                .bind(&s.payment_intent_id)
                .bind(s.attempts)
                .bind(&s.authentication_metadata)
                .bind(&s.decline_message)
                .bind(&s.order_id)
                .bind(s.completing_until)
                .bind(s.created_at)
                .bind(s.updated_at)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }

    pub async fn get_acp_session(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<AcpSessionRow>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM acp_checkout_sessions WHERE account_id = $1 AND id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, AcpSessionRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// The session an order was completed from, by its order or by the
    /// PaymentIntent the order was created with.
    pub async fn find_acp_session_for_order(
        &mut self,
        account: &AccountId,
        order_id: &str,
        payment_intent_id: Option<&str>,
    ) -> Result<Option<AcpSessionRow>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM acp_checkout_sessions WHERE account_id = $1 \
             AND (order_id = $2 OR ($3 IS NOT NULL AND payment_intent_id = $3)) LIMIT 1"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, AcpSessionRow>(&sql)
                .bind(account.as_str())
                .bind(order_id)
                .bind(payment_intent_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Replaces an open session's input; `false` once it is completed or
    /// canceled, or while a completion holds it.
    pub async fn update_acp_cart(
        &mut self,
        account: &AccountId,
        id: &str,
        currency: &str,
        cart: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE acp_checkout_sessions SET currency = $3, cart = $4, decline_message = NULL, updated_at = $5 \
                 WHERE account_id = $1 AND id = $2 AND status NOT IN ('completed', 'canceled') \
                 AND (completing_until IS NULL OR completing_until < $5)",
            )
            .bind(account.as_str())
            .bind(id)
            .bind(currency)
            .bind(cart)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Takes the one right to charge an open session until `until`: of
    /// concurrent completes exactly one gets `true`; a holder that died
    /// lets go when its lease passes.
    pub async fn claim_acp_completion(
        &mut self,
        account: &AccountId,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE acp_checkout_sessions SET completing_until = $4 \
                 WHERE account_id = $1 AND id = $2 AND status NOT IN ('completed', 'canceled') \
                 AND (completing_until IS NULL OR completing_until < $3)",
            )
            .bind(account.as_str())
            .bind(id)
            .bind(now)
            .bind(until)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Replaces the input of a session whose completion this caller holds.
    pub async fn set_acp_cart(&mut self, id: &str, cart: &str, now: DateTime<Utc>) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE acp_checkout_sessions SET cart = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(cart)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Records the PaymentIntent of the attempt under way (before the
    /// order is created from it, so the order finds its session).
    pub async fn set_acp_intent(
        &mut self,
        id: &str,
        intent: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE acp_checkout_sessions SET payment_intent_id = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(intent)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Ends a completion attempt that did not complete the session, and
    /// lets go of the lease.
    pub async fn finish_acp_attempt(
        &mut self,
        id: &str,
        a: &AcpAttempt<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE acp_checkout_sessions SET status = $2, payment_intent_id = $3, attempts = $4, \
                 authentication_metadata = $5, decline_message = $6, completing_until = NULL, updated_at = $7 \
                 WHERE id = $1 AND status NOT IN ('completed', 'canceled')",
            )
            .bind(id)
            .bind(a.status)
            .bind(a.payment_intent_id)
            .bind(a.attempts)
            .bind(a.authentication_metadata)
            .bind(a.decline_message)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Lets go of the lease only (the session is as it was).
    pub async fn release_acp_completion(&mut self, id: &str) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("UPDATE acp_checkout_sessions SET completing_until = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }

    /// The order was created from the session's intent: the session is
    /// completed, in the order's own transaction. `None` when no session
    /// charged that intent (an order of another path).
    pub async fn complete_acp_session(
        &mut self,
        account: &AccountId,
        intent: &str,
        order_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AcpSessionRow>> {
        let sql = format!(
            "UPDATE acp_checkout_sessions SET status = 'completed', order_id = $3, completing_until = NULL, \
             authentication_metadata = NULL, decline_message = NULL, updated_at = $4 \
             WHERE account_id = $1 AND payment_intent_id = $2 AND order_id IS NULL \
             RETURNING {SESSION_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, AcpSessionRow>(&sql)
                .bind(account.as_str())
                .bind(intent)
                .bind(order_id)
                .bind(now)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Cancels an open session nobody is completing; `false` otherwise.
    pub async fn cancel_acp_session(
        &mut self,
        account: &AccountId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE acp_checkout_sessions SET status = 'canceled', updated_at = $3 \
                 WHERE account_id = $1 AND id = $2 AND status NOT IN ('completed', 'canceled') \
                 AND (completing_until IS NULL OR completing_until < $3)",
            )
            .bind(account.as_str())
            .bind(id)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records a new Idempotency-Key in flight; `false` if the key is
    /// already recorded (see `take_over_acp_idempotency`).
    pub async fn insert_acp_idempotency(
        &mut self,
        k: &AcpKey<'_>,
        r: &AcpKeyRecord<'_>,
    ) -> Result<bool> {
        self.write_acp_idempotency(
            "INSERT INTO acp_idempotency_keys (credential, route, idem_key, body_hash, status, response, \
             locked_until, created_at, expires_at) VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6, $7) \
             ON CONFLICT (credential, route, idem_key) DO NOTHING",
            k,
            r,
        )
        .await
    }

    /// Starts the key afresh when its record expired, or when its first
    /// request's holder died in flight (the lock passed): of concurrent
    /// callers one gets `true`.
    pub async fn take_over_acp_idempotency(
        &mut self,
        k: &AcpKey<'_>,
        r: &AcpKeyRecord<'_>,
    ) -> Result<bool> {
        self.write_acp_idempotency(
            "UPDATE acp_idempotency_keys SET body_hash = $4, status = NULL, response = NULL, \
             locked_until = $5, created_at = $6, expires_at = $7 \
             WHERE credential = $1 AND route = $2 AND idem_key = $3 \
             AND (expires_at <= $6 OR (status IS NULL AND locked_until <= $6 AND body_hash = $4))",
            k,
            r,
        )
        .await
    }

    /// `sql` with the key as $1–$3 and the record as $4–$7; one row or none.
    async fn write_acp_idempotency(
        &mut self,
        sql: &str,
        k: &AcpKey<'_>,
        r: &AcpKeyRecord<'_>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(sql)
                .bind(k.credential)
                .bind(k.route)
                .bind(k.key)
                .bind(r.body_hash)
                .bind(r.locked_until)
                .bind(r.now)
                .bind(r.expires_at)
                .execute(&mut **conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn get_acp_idempotency(
        &mut self,
        k: &AcpKey<'_>,
    ) -> Result<Option<AcpIdempotencyRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, AcpIdempotencyRow>(
                "SELECT body_hash, status, response, locked_until, expires_at FROM acp_idempotency_keys \
                 WHERE credential = $1 AND route = $2 AND idem_key = $3",
            )
            .bind(k.credential)
            .bind(k.route)
            .bind(k.key)
            .fetch_optional(&mut **conn)
            .await?
        }))
    }

    /// Stores the answer to replay.
    pub async fn finish_acp_idempotency(
        &mut self,
        k: &AcpKey<'_>,
        status: i32,
        response: &str,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE acp_idempotency_keys SET status = $4, response = $5 \
                 WHERE credential = $1 AND route = $2 AND idem_key = $3",
            )
            .bind(k.credential)
            .bind(k.route)
            .bind(k.key)
            .bind(status)
            .bind(response)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Forgets a key (its request answered 5xx or "try again shortly": a
    /// retry runs afresh).
    pub async fn delete_acp_idempotency(&mut self, k: &AcpKey<'_>) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "DELETE FROM acp_idempotency_keys WHERE credential = $1 AND route = $2 AND idem_key = $3",
            )
            .bind(k.credential)
            .bind(k.route)
            .bind(k.key)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Deletes the records past their retention; returns how many.
    pub async fn sweep_acp_idempotency(&mut self, now: DateTime<Utc>) -> Result<u64> {
        Ok(on_conn!(self, |conn| {
            sqlx::query("DELETE FROM acp_idempotency_keys WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut **conn)
                .await?
                .rows_affected()
        }))
    }
}
