//! Payments and their timeline.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::{Ledger, PaymentState};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: String,
    pub account_id: String,
    pub customer_id: Option<String>,
    pub order_id: Option<String>,
    pub stripe_payment_intent_id: String,
    pub amount: i64,
    pub currency: String,
    pub amount_refunded: i64,
    /// What Stripe captured (0 until captured; rows of an older obol may
    /// hold 0 for a captured payment: see `captured_amount`).
    pub amount_captured: i64,
    #[sqlx(try_from = "String")]
    pub status: PaymentState,
    pub disputed: bool,
    pub observed_at: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest charge, as Stripe's `charge.*` events showed it.
    #[sqlx(flatten)]
    pub charge: ChargeDetails,
}

/// A payment's latest charge (all `None` until a `charge.*` event).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct ChargeDetails {
    pub stripe_charge_id: Option<String>,
    /// Stripe's charge status: `succeeded`, `pending`, `failed`; `expired`
    /// once an uncaptured authorization lapsed.
    pub charge_status: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub receipt_url: Option<String>,
    pub failure_code: Option<String>,
    pub decline_code: Option<String>,
    pub failure_message: Option<String>,
    /// The event time of the newest charge observation applied.
    pub charge_observed: i64,
}

impl PaymentRow {
    /// The Stripe account the payment belongs to.
    pub fn account(&self) -> AccountId {
        AccountId::from_db(self.account_id.clone())
    }

    /// The part the state machine reads. An unknown stored status cannot
    /// happen: reading the row refuses it.
    pub fn ledger(&self) -> Ledger {
        Ledger {
            state: self.status,
            amount_refunded: self.amount_refunded,
            amount_captured: self.amount_captured,
            observed_at: self.observed_at,
        }
    }

    /// The captured amount refunds are bounded by. A captured payment
    /// written by an obol before `amount_captured` existed (rolling
    /// upgrade) holds 0 there and was captured in full.
    pub fn captured_amount(&self) -> i64 {
        let captured = self.ledger().state.is_captured();
        if captured && self.amount_captured <= 0 {
            self.amount
        } else {
            self.amount_captured
        }
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TimelineRow {
    pub id: String,
    pub payment_id: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub at: DateTime<Utc>,
    pub cause_kind: String,
    pub cause_ref: Option<String>,
}

pub struct NewPayment<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub customer_id: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub stripe_payment_intent_id: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub ledger: Ledger,
    pub now: DateTime<Utc>,
}

pub struct NewTimelineEntry<'a> {
    pub payment_id: &'a str,
    pub from: Option<PaymentState>,
    pub to: PaymentState,
    pub at: DateTime<Utc>,
    pub cause_kind: &'a str,
    pub cause_ref: Option<&'a str>,
}

pub(super) const COLUMNS: &str = "id, account_id, customer_id, order_id, stripe_payment_intent_id, amount, \
    currency, amount_refunded, amount_captured, status, disputed, observed_at, created_at, updated_at, \
    stripe_charge_id, charge_status, card_brand, card_last4, receipt_url, failure_code, decline_code, \
    failure_message, charge_observed";

/// Filters of `GET /v1/payments`.
#[derive(Debug, Default)]
pub struct PaymentFilter<'a> {
    pub status: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub created_gte: Option<DateTime<Utc>>,
    pub created_lt: Option<DateTime<Utc>>,
    /// Authorized payments created before this (their 7-day authorization
    /// lapses before `expiring_before`).
    pub authorized_before: Option<DateTime<Utc>>,
    /// Keyset cursor: rows strictly after (created_at, id) in descending order.
    pub before: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

impl Conn<'_> {
    /// Inserts a payment; `Ok(None)` when the intent is already recorded.
    /// (ON CONFLICT rather than a caught violation: on PostgreSQL a failed
    /// statement would abort the caller's transaction.)
    pub async fn insert_payment(&mut self, p: &NewPayment<'_>) -> Result<Option<PaymentRow>> {
        let sql = format!(
            "INSERT INTO payments (id, account_id, customer_id, order_id, stripe_payment_intent_id, \
             amount, currency, amount_refunded, amount_captured, status, observed_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $12, $9, $10, $11, $11) \
             ON CONFLICT (account_id, stripe_payment_intent_id) DO NOTHING RETURNING {COLUMNS}"
        );
        let result = on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentRow>(&sql)
                .bind(p.id)
                .bind(p.account_id)
                .bind(p.customer_id)
                .bind(p.order_id)
                .bind(p.stripe_payment_intent_id)
                .bind(p.amount)
                .bind(p.currency)
                .bind(p.ledger.amount_refunded)
                .bind(p.ledger.state.as_str())
                .bind(p.ledger.observed_at)
                .bind(p.now)
                .bind(p.ledger.amount_captured)
                .fetch_optional(&mut **conn)
                .await
        });
        Ok(result?)
    }

    /// Serialises writers of one payment for the rest of the transaction
    /// (SQLite transactions are already exclusive: `BEGIN IMMEDIATE`).
    pub async fn lock_payment(&mut self, id: &str) -> Result<()> {
        if let Conn::Postgres(conn) = self {
            sqlx::query("SELECT id FROM payments WHERE id = $1 FOR UPDATE")
                .bind(id)
                .execute(&mut **conn)
                .await?;
        }
        Ok(())
    }

    /// A payment of `account`; another account's is `None`.
    pub async fn get_payment(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<PaymentRow>> {
        let sql = format!("SELECT {COLUMNS} FROM payments WHERE account_id = $1 AND id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_payment_by_intent(
        &mut self,
        account_id: &str,
        intent_id: &str,
    ) -> Result<Option<PaymentRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payments WHERE account_id = $1 AND stripe_payment_intent_id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentRow>(&sql)
                .bind(account_id)
                .bind(intent_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Writes a new ledger state, guarded by the one read: `false` when
    /// another writer got there first (the caller retries from a fresh read).
    pub async fn update_payment_ledger(
        &mut self,
        id: &str,
        read: &Ledger,
        next: &Ledger,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE payments SET status = $1, amount_refunded = $2, observed_at = $3, updated_at = $4, \
                 amount_captured = $9 WHERE id = $5 AND status = $6 AND amount_refunded = $7 \
                 AND observed_at = $8 AND amount_captured = $10",
            )
            .bind(next.state.as_str())
            .bind(next.amount_refunded)
            .bind(next.observed_at)
            .bind(now)
            .bind(id)
            .bind(read.state.as_str())
            .bind(read.amount_refunded)
            .bind(read.observed_at)
            .bind(next.amount_captured)
            .bind(read.amount_captured)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Writes the payment's latest charge, guarded by the charge
    /// observation read: `false` when it changed since (retry).
    pub async fn write_payment_charge(
        &mut self,
        id: &str,
        read_observed: i64,
        c: &ChargeDetails,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE payments SET stripe_charge_id = $1, charge_status = $2, card_brand = $3, \
                 card_last4 = $4, receipt_url = $5, failure_code = $6, decline_code = $7, \
                 failure_message = $8, charge_observed = $9, updated_at = $10 \
                 WHERE id = $11 AND charge_observed = $12",
            )
            .bind(&c.stripe_charge_id)
            .bind(&c.charge_status)
            .bind(&c.card_brand)
            .bind(&c.card_last4)
            .bind(&c.receipt_url)
            .bind(&c.failure_code)
            .bind(&c.decline_code)
            .bind(&c.failure_message)
            .bind(c.charge_observed)
            .bind(now)
            .bind(id)
            .bind(read_observed)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    pub async fn set_payment_disputed(
        &mut self,
        id: &str,
        disputed: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query("UPDATE payments SET disputed = $1, updated_at = $2 WHERE id = $3 AND disputed <> $1")
                .bind(disputed)
                .bind(now)
                .bind(id)
                .execute(&mut **conn)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    pub async fn insert_timeline_entry(&mut self, e: &NewTimelineEntry<'_>) -> Result<()> {
        let id = String::from(crate::ids::PaymentTimelineId::generate());
        on_conn!(self, |conn| {
            sqlx::query(
                // The entry belongs to its payment's account.
                "INSERT INTO payment_timeline (id, payment_id, from_state, to_state, at, cause_kind, cause_ref, account_id) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, account_id FROM payments WHERE id = $2",
            )
            .bind(&id)
            .bind(e.payment_id)
            .bind(e.from.map(PaymentState::as_str))
            .bind(e.to.as_str())
            .bind(e.at)
            .bind(e.cause_kind)
            .bind(e.cause_ref)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn list_timeline(
        &mut self,
        account: &AccountId,
        payment_id: &str,
    ) -> Result<Vec<TimelineRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, TimelineRow>(
                "SELECT id, payment_id, from_state, to_state, at, cause_kind, cause_ref \
                 FROM payment_timeline WHERE account_id = $1 AND payment_id = $2 ORDER BY id",
            )
            .bind(account.as_str())
            .bind(payment_id)
            .fetch_all(&mut **conn)
            .await?
        }))
    }

    /// Newest first, keyset-paginated on (created_at, id).
    pub async fn list_payments(
        &mut self,
        account: &AccountId,
        f: &PaymentFilter<'_>,
    ) -> Result<Vec<PaymentRow>> {
        let (before_at, before_id) = super::keyset(&f.before);
        let sql = format!(
            "SELECT {COLUMNS} FROM payments WHERE \
             ($1 IS NULL OR status = $1) AND ($2 IS NULL OR customer_id = $2) \
             AND ($3 IS NULL OR order_id = $3) AND ($4 IS NULL OR created_at >= $4) \
             AND ($5 IS NULL OR created_at < $5) \
             AND ($6 IS NULL OR created_at < $6 OR (created_at = $6 AND id < $7)) \
             AND ($9 IS NULL OR (status = 'authorized' AND created_at < $9)) \
             AND account_id = $10 \
             ORDER BY created_at DESC, id DESC LIMIT $8"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentRow>(&sql)
                .bind(f.status)
                .bind(f.customer_id)
                .bind(f.order_id)
                .bind(f.created_gte)
                .bind(f.created_lt)
                .bind(before_at)
                .bind(before_id)
                .bind(f.limit)
                .bind(f.authorized_before)
                .bind(account.as_str())
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Payments whose state Stripe may still change, least recently
    /// reconciled first, so every one gets its turn however many there are.
    pub async fn list_unsettled_payments(
        &mut self,
        account: &AccountId,
        limit: i64,
    ) -> Result<Vec<PaymentRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payments WHERE status IN ('pending', 'requires_action', 'authorized', 'failed') \
             AND account_id = $2 \
             ORDER BY reconciled_at IS NOT NULL, reconciled_at, created_at LIMIT $1"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentRow>(&sql)
                .bind(limit)
                .bind(account.as_str())
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    pub async fn mark_payment_reconciled(&mut self, id: &str, now: DateTime<Utc>) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("UPDATE payments SET reconciled_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }
}

impl Conn<'_> {
    /// Links a payment to the order it pays.
    pub async fn set_payment_order(
        &mut self,
        payment_id: &str,
        order_id: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("UPDATE payments SET order_id = $1, updated_at = $2 WHERE id = $3")
                .bind(order_id)
                .bind(now)
                .bind(payment_id)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }

    /// Every payment of an order, oldest first.
    pub async fn list_payments_for_order(
        &mut self,
        account: &AccountId,
        order_id: &str,
    ) -> Result<Vec<PaymentRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payments WHERE account_id = $1 AND order_id = $2 ORDER BY created_at, id"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentRow>(&sql)
                .bind(account.as_str())
                .bind(order_id)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// A customer's pay-first payments (no order yet) still open: pending,
    /// requires_action or authorized.
    pub async fn count_open_pay_first_payments(
        &mut self,
        account: &AccountId,
        customer_id: &str,
    ) -> Result<i64> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM payments WHERE account_id = $1 AND customer_id = $2 \
                 AND order_id IS NULL AND status IN ('pending', 'requires_action', 'authorized')",
            )
            .bind(account.as_str())
            .bind(customer_id)
            .fetch_one(&mut **conn)
            .await?
        }))
    }

    /// The newest payment of an order.
    pub async fn get_payment_for_order(
        &mut self,
        account: &AccountId,
        order_id: &str,
    ) -> Result<Option<PaymentRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payments WHERE account_id = $1 AND order_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentRow>(&sql)
                .bind(account.as_str())
                .bind(order_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn queue_cancellation(
        &mut self,
        payment_id: &str,
        reason: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO pending_cancellations (payment_id, reason, attempts, last_error, created_at, updated_at, account_id) \
                 SELECT $1, $2, 1, $3, $4, $4, account_id FROM payments WHERE id = $1 \
                 ON CONFLICT (payment_id) DO UPDATE SET \
                 attempts = pending_cancellations.attempts + 1, last_error = excluded.last_error, updated_at = excluded.updated_at",
            )
            .bind(payment_id)
            .bind(reason)
            .bind(error)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// (account, payment, reason) of queued releases, oldest first, across
    /// accounts: the retry job serves them all.
    pub async fn list_pending_cancellations(
        &mut self,
        limit: i64,
    ) -> Result<Vec<(String, String, String)>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT account_id, payment_id, reason FROM pending_cancellations ORDER BY updated_at LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&mut **conn)
            .await?
        }))
    }

    pub async fn clear_pending_cancellation(&mut self, payment_id: &str) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("DELETE FROM pending_cancellations WHERE payment_id = $1")
                .bind(payment_id)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }
}
