//! Saved cards: obol's copy of the cards Stripe keeps for a customer
//! (`payment_methods`, keyed by Stripe's `pm_…`) and the card-update links
//! (`card_update_links`). What an observation does to a row is decided in
//! `ledger::payment_method`; these functions write the outcome. Writers
//! hold the customer's row (`lock_customer`) for the transaction, so two
//! observations of one customer's cards never interleave.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::payment_method::{CardDetails, CardView};

/// One saved card.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentMethodRow {
    /// Stripe's `pm_…`.
    pub stripe_payment_method_id: String,
    pub account_id: String,
    /// obol's customer (`cus_…` of obol); `None` until known.
    pub customer_id: Option<String>,
    /// Stripe's `cus_…`.
    pub stripe_customer_id: String,
    /// `None` until Stripe reported the card (a row can exist from the
    /// moment a `customer.updated` named it the default).
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
    pub is_default: bool,
    pub detached: bool,
    /// Unix seconds of the newest observation of the details applied.
    pub stripe_updated: i64,
    /// Unix seconds of the newest observation of the customer's default.
    pub default_observed: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PaymentMethodRow {
    /// The card's details, once Stripe reported them.
    pub fn details(&self) -> Option<CardDetails> {
        match (&self.brand, &self.last4, self.exp_month, self.exp_year) {
            (Some(brand), Some(last4), Some(exp_month), Some(exp_year)) => Some(CardDetails {
                brand: brand.clone(),
                last4: last4.clone(),
                exp_month,
                exp_year,
            }),
            _ => None,
        }
    }

    /// What `ledger::payment_method` reads.
    pub fn view(&self) -> CardView {
        CardView {
            stripe_customer: self.stripe_customer_id.clone(),
            details: self.details(),
            detached: self.detached,
            observed_at: self.stripe_updated,
        }
    }
}

/// A card-update link.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CardUpdateLinkRow {
    pub token_hash: String,
    pub account_id: String,
    pub customer_id: String,
    /// The link's live SetupIntent, reused while Stripe can confirm it.
    pub stripe_setup_intent_id: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl CardUpdateLinkRow {
    pub fn account(&self) -> AccountId {
        AccountId::from_db(self.account_id.clone())
    }
}

const COLUMNS: &str = "stripe_payment_method_id, account_id, customer_id, stripe_customer_id, \
    brand, last4, exp_month, exp_year, is_default, detached, stripe_updated, default_observed, \
    created_at, updated_at";

const LINK_COLUMNS: &str =
    "token_hash, account_id, customer_id, stripe_setup_intent_id, expires_at, used_at, created_at";

impl Conn<'_> {
    /// The customer's default card: attached (not detached) and named the
    /// default at Stripe, or `None`. Its details may be `None` for a moment
    /// after Stripe named it, before the card's own event arrived; its id
    /// is enough to charge it.
    pub async fn get_default_payment_method(
        &mut self,
        account: &AccountId,
        customer_id: &str,
    ) -> Result<Option<PaymentMethodRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payment_methods WHERE account_id = $1 AND customer_id = $2 \
             AND is_default = TRUE AND detached = FALSE \
             ORDER BY default_observed DESC, stripe_payment_method_id LIMIT 1"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentMethodRow>(&sql)
                .bind(account.as_str())
                .bind(customer_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// One card of `account`.
    pub async fn get_payment_method(
        &mut self,
        account: &AccountId,
        stripe_payment_method_id: &str,
    ) -> Result<Option<PaymentMethodRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payment_methods WHERE account_id = $1 AND stripe_payment_method_id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentMethodRow>(&sql)
                .bind(account.as_str())
                .bind(stripe_payment_method_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Every card of one Stripe customer, detached ones included.
    pub async fn list_payment_methods_of_stripe_customer(
        &mut self,
        account: &AccountId,
        stripe_customer_id: &str,
    ) -> Result<Vec<PaymentMethodRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payment_methods WHERE account_id = $1 AND stripe_customer_id = $2 \
             ORDER BY created_at, stripe_payment_method_id"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentMethodRow>(&sql)
                .bind(account.as_str())
                .bind(stripe_customer_id)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// A customer's attached cards: the default first, then newest first.
    pub async fn list_payment_methods(
        &mut self,
        account: &AccountId,
        customer_id: &str,
    ) -> Result<Vec<PaymentMethodRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payment_methods WHERE account_id = $1 AND customer_id = $2 \
             AND detached = FALSE \
             ORDER BY is_default DESC, created_at DESC, stripe_payment_method_id DESC LIMIT 100"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentMethodRow>(&sql)
                .bind(account.as_str())
                .bind(customer_id)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Writes a card as `ledger::payment_method` decided (inserting it if
    /// new). A detached card stops being the default.
    pub async fn write_payment_method(
        &mut self,
        account: &AccountId,
        customer_id: Option<&str>,
        stripe_payment_method_id: &str,
        card: &CardView,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let d = card.details.as_ref();
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO payment_methods (stripe_payment_method_id, account_id, customer_id, \
                 stripe_customer_id, brand, last4, exp_month, exp_year, is_default, detached, \
                 stripe_updated, default_observed, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, FALSE, $9, $10, 0, $11, $11) \
                 ON CONFLICT (stripe_payment_method_id) DO UPDATE SET \
                 customer_id = COALESCE(excluded.customer_id, payment_methods.customer_id), \
                 stripe_customer_id = excluded.stripe_customer_id, \
                 brand = excluded.brand, last4 = excluded.last4, \
                 exp_month = excluded.exp_month, exp_year = excluded.exp_year, \
                 detached = excluded.detached, \
                 is_default = (payment_methods.is_default AND NOT excluded.detached), \
                 stripe_updated = excluded.stripe_updated, updated_at = excluded.updated_at",
            )
            .bind(stripe_payment_method_id)
            .bind(account.as_str())
            .bind(customer_id)
            .bind(&card.stripe_customer)
            .bind(d.map(|d| d.brand.as_str()))
            .bind(d.map(|d| d.last4.as_str()))
            .bind(d.map(|d| d.exp_month))
            .bind(d.map(|d| d.exp_year))
            .bind(card.detached)
            .bind(card.observed_at)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Every card of a deleted Stripe customer: Stripe deleted them with it,
    /// so they are detached (final) and none is the default. Returns how
    /// many cards were still attached.
    pub async fn detach_payment_methods_of_stripe_customer(
        &mut self,
        account: &AccountId,
        stripe_customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE payment_methods SET detached = TRUE, is_default = FALSE, updated_at = $3 \
                 WHERE account_id = $1 AND stripe_customer_id = $2 AND detached = FALSE",
            )
            .bind(account.as_str())
            .bind(stripe_customer_id)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        }))
    }

    /// When the customer's default was last observed (`None`: never).
    pub async fn get_default_observed(
        &mut self,
        account: &AccountId,
        stripe_customer_id: &str,
    ) -> Result<Option<i64>> {
        let max: Option<i64> = on_conn!(self, |conn| {
            sqlx::query_scalar(
                "SELECT MAX(default_observed) FROM payment_methods \
                 WHERE account_id = $1 AND stripe_customer_id = $2",
            )
            .bind(account.as_str())
            .bind(stripe_customer_id)
            .fetch_one(&mut **conn)
            .await?
        });
        Ok(max.filter(|m| *m > 0))
    }

    /// Makes `default` (or none) the customer's default card as observed
    /// at `at`: every other card of the customer is not, and a detached
    /// card never is. The card's row must exist.
    pub async fn set_default_payment_method(
        &mut self,
        account: &AccountId,
        stripe_customer_id: &str,
        default: Option<&str>,
        at: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE payment_methods SET \
                 is_default = (detached = FALSE AND stripe_payment_method_id = COALESCE($3, '')), \
                 default_observed = $4, updated_at = $5 \
                 WHERE account_id = $1 AND stripe_customer_id = $2",
            )
            .bind(account.as_str())
            .bind(stripe_customer_id)
            .bind(default)
            .bind(at)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn insert_card_update_link(
        &mut self,
        token_hash: &str,
        account: &AccountId,
        customer_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO card_update_links (token_hash, account_id, customer_id, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(account.as_str())
            .bind(customer_id)
            .bind(expires_at)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn get_card_update_link(
        &mut self,
        token_hash: &str,
    ) -> Result<Option<CardUpdateLinkRow>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM card_update_links WHERE token_hash = $1");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, CardUpdateLinkRow>(&sql)
                .bind(token_hash)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Records the link's live SetupIntent, guarded by the one read;
    /// `false` when another request replaced it first.
    pub async fn set_card_update_link_setup_intent(
        &mut self,
        token_hash: &str,
        read: Option<&str>,
        setup_intent_id: &str,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE card_update_links SET stripe_setup_intent_id = $3 \
                 WHERE token_hash = $1 AND COALESCE(stripe_setup_intent_id, '') = COALESCE($2, '')",
            )
            .bind(token_hash)
            .bind(read)
            .bind(setup_intent_id)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// A card was saved through the link (the first time is kept).
    pub async fn mark_card_update_link_used(
        &mut self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE card_update_links SET used_at = COALESCE(used_at, $2) WHERE token_hash = $1",
            )
            .bind(token_hash)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }
}
