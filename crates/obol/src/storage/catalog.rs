//! The catalog (products, shipping methods) and payment links.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ProductRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub unit_amount: i64,
    pub currency: String,
    pub active: bool,
    pub stock: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ShippingMethodRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub amount: i64,
    pub currency: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentLinkRow {
    pub id: String,
    pub account_id: String,
    pub token_hash: String,
    pub order_id: String,
    pub payment_id: String,
    pub stripe_payment_intent_id: String,
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

const PRODUCT_COLUMNS: &str =
    "id, account_id, name, unit_amount, currency, active, stock, created_at, updated_at";
const SHIPPING_COLUMNS: &str =
    "id, account_id, name, amount, currency, active, created_at, updated_at";
const LINK_COLUMNS: &str = "id, account_id, token_hash, order_id, payment_id, \
    stripe_payment_intent_id, status, expires_at, created_at, updated_at, completed_at";

impl Conn<'_> {
    pub async fn insert_product(&mut self, p: &ProductRow) -> Result<ProductRow> {
        let sql = format!(
            "INSERT INTO products ({PRODUCT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING {PRODUCT_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ProductRow>(&sql)
                .bind(&p.id)
                .bind(&p.account_id)
                .bind(&p.name)
                .bind(p.unit_amount)
                .bind(&p.currency)
                .bind(p.active)
                .bind(p.stock)
                .bind(p.created_at)
                .bind(p.updated_at)
                .fetch_one(&mut **conn)
                .await?
        }))
    }

    /// Writes every field but the id, account and creation time.
    pub async fn update_product(&mut self, p: &ProductRow) -> Result<Option<ProductRow>> {
        let sql = format!(
            "UPDATE products SET name = $3, unit_amount = $4, currency = $5, active = $6, stock = $7, \
             updated_at = $8 WHERE account_id = $1 AND id = $2 RETURNING {PRODUCT_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ProductRow>(&sql)
                .bind(&p.account_id)
                .bind(&p.id)
                .bind(&p.name)
                .bind(p.unit_amount)
                .bind(&p.currency)
                .bind(p.active)
                .bind(p.stock)
                .bind(p.updated_at)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_product(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<ProductRow>> {
        let sql =
            format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE account_id = $1 AND id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ProductRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Newest first, `limit` rows after the cursor (created_at, id); with
    /// `active`, only products that are (or are not) active.
    pub async fn list_products(
        &mut self,
        account: &AccountId,
        active: Option<bool>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<ProductRow>> {
        let (before_at, before_id) = super::keyset(&before);
        let sql = format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE account_id = $1 AND ($2 IS NULL OR active = $2) \
             AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ProductRow>(&sql)
                .bind(account.as_str())
                .bind(active)
                .bind(before_at)
                .bind(before_id)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    pub async fn insert_shipping_method(
        &mut self,
        s: &ShippingMethodRow,
    ) -> Result<ShippingMethodRow> {
        let sql = format!(
            "INSERT INTO shipping_methods ({SHIPPING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING {SHIPPING_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ShippingMethodRow>(&sql)
                .bind(&s.id)
                .bind(&s.account_id)
                .bind(&s.name)
                .bind(s.amount)
                .bind(&s.currency)
                .bind(s.active)
                .bind(s.created_at)
                .bind(s.updated_at)
                .fetch_one(&mut **conn)
                .await?
        }))
    }

    pub async fn update_shipping_method(
        &mut self,
        s: &ShippingMethodRow,
    ) -> Result<Option<ShippingMethodRow>> {
        let sql = format!(
            "UPDATE shipping_methods SET name = $3, amount = $4, currency = $5, active = $6, updated_at = $7 \
             WHERE account_id = $1 AND id = $2 RETURNING {SHIPPING_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ShippingMethodRow>(&sql)
                .bind(&s.account_id)
                .bind(&s.id)
                .bind(&s.name)
                .bind(s.amount)
                .bind(&s.currency)
                .bind(s.active)
                .bind(s.updated_at)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_shipping_method(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<ShippingMethodRow>> {
        let sql = format!(
            "SELECT {SHIPPING_COLUMNS} FROM shipping_methods WHERE account_id = $1 AND id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ShippingMethodRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn list_shipping_methods(
        &mut self,
        account: &AccountId,
        active: Option<bool>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<ShippingMethodRow>> {
        let (before_at, before_id) = super::keyset(&before);
        let sql = format!(
            "SELECT {SHIPPING_COLUMNS} FROM shipping_methods WHERE account_id = $1 AND ($2 IS NULL OR active = $2) \
             AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ShippingMethodRow>(&sql)
                .bind(account.as_str())
                .bind(active)
                .bind(before_at)
                .bind(before_id)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    pub async fn insert_payment_link(&mut self, l: &PaymentLinkRow) -> Result<PaymentLinkRow> {
        let sql = format!(
            "INSERT INTO payment_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             RETURNING {LINK_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentLinkRow>(&sql)
                .bind(&l.id)
                .bind(&l.account_id)
                .bind(&l.token_hash)
                .bind(&l.order_id)
                .bind(&l.payment_id)
                .bind(&l.stripe_payment_intent_id)
                .bind(&l.status)
                .bind(l.expires_at)
                .bind(l.created_at)
                .bind(l.updated_at)
                .bind(l.completed_at)
                .fetch_one(&mut **conn)
                .await?
        }))
    }

    /// The link whose token hashes to `token_hash`, in any account: the
    /// token is the capability.
    pub async fn get_payment_link_by_token(
        &mut self,
        token_hash: &str,
    ) -> Result<Option<PaymentLinkRow>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM payment_links WHERE token_hash = $1");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentLinkRow>(&sql)
                .bind(token_hash)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// The newest link for a PaymentIntent of `account`.
    pub async fn get_payment_link_by_intent(
        &mut self,
        account: &AccountId,
        intent_id: &str,
    ) -> Result<Option<PaymentLinkRow>> {
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM payment_links WHERE account_id = $1 AND stripe_payment_intent_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, PaymentLinkRow>(&sql)
                .bind(account.as_str())
                .bind(intent_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Moves a link from `from` to `to`, guarded by the status read: of
    /// many concurrent calls exactly one gets `true`.
    pub async fn move_payment_link(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let completed = (to == "completed").then_some(now);
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE payment_links SET status = $3, updated_at = $4, completed_at = COALESCE($5, completed_at) \
                 WHERE id = $1 AND status = $2",
            )
            .bind(id)
            .bind(from)
            .bind(to)
            .bind(now)
            .bind(completed)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }
}
