//! Orders and their line items.

use chrono::{DateTime, Utc};

use super::{is_unique_violation, on_conn, Conn};
use crate::context::AccountId;
use crate::error::{Result, RuleCode};
use crate::ledger::order::OrderStatus;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrderRow {
    pub id: String,
    pub number: String,
    pub account_id: String,
    pub customer_id: Option<String>,
    pub guest_token_hash: Option<String>,
    pub email: String,
    pub currency: String,
    pub subtotal: i64,
    pub shipping_name: Option<String>,
    pub shipping_amount: i64,
    pub total: i64,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub shipping_address: Option<String>,
    pub billing_address: Option<String>,
    pub payment_reference: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LineItemRow {
    pub id: String,
    pub order_id: String,
    pub position: i32,
    pub name: String,
    pub unit_amount: i64,
    pub quantity: i32,
    pub amount: i64,
    pub product_id: Option<String>,
}

pub struct NewLineItem<'a> {
    /// The catalog product a cart line was priced from.
    pub product_id: Option<&'a str>,
    pub name: &'a str,
    pub unit_amount: i64,
    pub quantity: i32,
    pub amount: i64,
}

pub(crate) const COLUMNS: &str =
    "id, number, account_id, customer_id, guest_token_hash, email, currency, \
    subtotal, shipping_name, shipping_amount, total, status, shipping_address, billing_address, \
    payment_reference, created_at, updated_at";

impl Conn<'_> {
    /// Inserts an order; `Ok(None)` when its number is taken (the caller
    /// draws another). A payment reference used by another order is
    /// `Error::Conflict` `payment_reference_in_use`.
    pub async fn insert_order(&mut self, o: &OrderRow) -> Result<Option<OrderRow>> {
        let sql = format!(
            "INSERT INTO orders ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17) ON CONFLICT (number) DO NOTHING RETURNING {COLUMNS}"
        );
        let result = on_conn!(self, |conn| {
            sqlx::query_as::<_, OrderRow>(&sql)
                .bind(&o.id)
                .bind(&o.number)
                .bind(&o.account_id)
                .bind(&o.customer_id)
                .bind(&o.guest_token_hash)
                .bind(&o.email)
                .bind(&o.currency)
                .bind(o.subtotal)
                .bind(&o.shipping_name)
                .bind(o.shipping_amount)
                .bind(o.total)
                .bind(o.status.as_str())
                .bind(&o.shipping_address)
                .bind(&o.billing_address)
                .bind(&o.payment_reference)
                .bind(o.created_at)
                .bind(o.updated_at)
                .fetch_optional(&mut **conn)
                .await
        });
        match result {
            Ok(row) => Ok(row),
            Err(e) if is_unique_violation(&e) && e.to_string().contains("payment_reference") => {
                Err(crate::error::Error::rule(
                    RuleCode::PaymentReferenceInUse,
                    "another order already uses this payment",
                ))
            }
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn insert_line_items(
        &mut self,
        account: &AccountId,
        order_id: &str,
        items: &[NewLineItem<'_>],
    ) -> Result<()> {
        for (position, item) in items.iter().enumerate() {
            let id = String::from(crate::ids::LineItemId::generate());
            let position = i32::try_from(position).unwrap_or(i32::MAX);
            on_conn!(self, |conn| {
                sqlx::query(
                    "INSERT INTO order_line_items (id, order_id, position, name, unit_amount, quantity, amount, account_id, product_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&id)
                .bind(order_id)
                .bind(position)
                .bind(item.name)
                .bind(item.unit_amount)
                .bind(item.quantity)
                .bind(item.amount)
                .bind(account.as_str())
                .bind(item.product_id)
                .execute(&mut **conn)
                .await?;
            });
        }
        Ok(())
    }

    /// An order of `account`; another account's is `None`.
    pub async fn get_order(&mut self, account: &AccountId, id: &str) -> Result<Option<OrderRow>> {
        let sql = format!("SELECT {COLUMNS} FROM orders WHERE account_id = $1 AND id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, OrderRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn list_line_items(
        &mut self,
        account: &AccountId,
        order_id: &str,
    ) -> Result<Vec<LineItemRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, LineItemRow>(
                "SELECT id, order_id, position, name, unit_amount, quantity, amount, product_id \
                 FROM order_line_items WHERE account_id = $1 AND order_id = $2 ORDER BY position",
            )
            .bind(account.as_str())
            .bind(order_id)
            .fetch_all(&mut **conn)
            .await?
        }))
    }

    /// Moves an order from `from` to `to`; `false` when it was no longer
    /// in `from` (a concurrent change won).
    pub async fn update_order_status(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
            )
            .bind(to)
            .bind(now)
            .bind(id)
            .bind(from)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrderTimelineRow {
    pub id: String,
    pub order_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub at: DateTime<Utc>,
    pub cause_kind: String,
    pub cause_ref: Option<String>,
}

pub struct NewOrderTimelineEntry<'a> {
    pub account_id: &'a str,
    pub order_id: &'a str,
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub at: DateTime<Utc>,
    pub cause_kind: &'a str,
    pub cause_ref: Option<&'a str>,
}

impl Conn<'_> {
    pub async fn insert_order_timeline_entry(
        &mut self,
        e: &NewOrderTimelineEntry<'_>,
    ) -> Result<()> {
        let id = String::from(crate::ids::OrderTimelineId::generate());
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO order_timeline (id, account_id, order_id, from_status, to_status, at, \
                 cause_kind, cause_ref) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(e.account_id)
            .bind(e.order_id)
            .bind(e.from)
            .bind(e.to)
            .bind(e.at)
            .bind(e.cause_kind)
            .bind(e.cause_ref)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Oldest first.
    pub async fn list_order_timeline(
        &mut self,
        account: &AccountId,
        order_id: &str,
    ) -> Result<Vec<OrderTimelineRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, OrderTimelineRow>(
                "SELECT id, order_id, from_status, to_status, at, cause_kind, cause_ref \
                 FROM order_timeline WHERE account_id = $1 AND order_id = $2 ORDER BY at, id",
            )
            .bind(account.as_str())
            .bind(order_id)
            .fetch_all(&mut **conn)
            .await?
        }))
    }
}

impl Conn<'_> {
    /// Serialises writers of one order for the rest of the transaction
    /// (SQLite transactions are already exclusive: `BEGIN IMMEDIATE`).
    pub async fn lock_order(&mut self, id: &str) -> Result<()> {
        if let Conn::Postgres(conn) = self {
            sqlx::query("SELECT id FROM orders WHERE id = $1 FOR UPDATE")
                .bind(id)
                .execute(&mut **conn)
                .await?;
        }
        Ok(())
    }
}
