//! 3-D Secure action links of charge-run items (`payment_action_links`):
//! a capability token, stored hashed, for one item's PaymentIntent.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentActionLinkRow {
    pub token_hash: String,
    pub account_id: String,
    pub charge_run_item_id: String,
    pub customer_id: String,
    /// The item's PaymentIntent, the one the page confirms.
    pub payment_intent_id: String,
    /// Confirmations sent to Stripe through the link so far.
    pub confirm_attempts: i32,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl PaymentActionLinkRow {
    pub fn account(&self) -> AccountId {
        AccountId::from_db(self.account_id.clone())
    }
}

/// A new link, as `insert_payment_action_link` writes it.
pub struct NewPaymentActionLink<'a> {
    pub token_hash: &'a str,
    pub account: &'a AccountId,
    pub charge_run_item_id: &'a str,
    pub customer_id: &'a str,
    pub payment_intent_id: &'a str,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

const COLUMNS: &str =
    "token_hash, account_id, charge_run_item_id, customer_id, payment_intent_id, \
    confirm_attempts, expires_at, created_at";

impl Conn<'_> {
    /// Writes the item's link; `false` when the item has one already (one
    /// link per item: the first one minted stays).
    pub async fn insert_payment_action_link(
        &mut self,
        l: &NewPaymentActionLink<'_>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO payment_action_links (token_hash, account_id, charge_run_item_id, \
                 customer_id, payment_intent_id, confirm_attempts, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7) ON CONFLICT (charge_run_item_id) DO NOTHING",
            )
            .bind(l.token_hash)
            .bind(l.account.as_str())
            .bind(l.charge_run_item_id)
            .bind(l.customer_id)
            .bind(l.payment_intent_id)
            .bind(l.expires_at)
            .bind(l.now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    pub async fn get_payment_action_link(
        &mut self,
        token_hash: &str,
    ) -> Result<Option<PaymentActionLinkRow>> {
        let sql = format!("SELECT {COLUMNS} FROM payment_action_links WHERE token_hash = $1");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentActionLinkRow>(&sql)
                .bind(token_hash)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Counts a confirmation sent to Stripe, guarded by the count read
    /// (concurrent confirmations that read the same count sent the same
    /// idempotency key, and are counted once).
    pub async fn count_payment_action_confirm(
        &mut self,
        token_hash: &str,
        read: i32,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE payment_action_links SET confirm_attempts = confirm_attempts + 1 \
                 WHERE token_hash = $1 AND confirm_attempts = $2",
            )
            .bind(token_hash)
            .bind(read)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }
}
