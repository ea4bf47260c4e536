//! The billing mirror's tables: `subscriptions`, `billing_invoices` and
//! `scheduled_payments`. Every query filters by the account; a row's obol
//! customer is its `customer_id`, else the customer holding its
//! `stripe_customer_id` (resolved on read, so the order in which a
//! customer and its subscription reach obol does not matter).

use chrono::{DateTime, Utc};

use super::{keyset, on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: String,
    pub account_id: String,
    /// Resolved: the row's own, else the customer of `stripe_customer_id`.
    pub customer_id: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub source: String,
    pub amount: i64,
    pub currency: String,
    pub billing_interval: String,
    pub interval_count: i64,
    pub status: String,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_end: Option<i64>,
    pub start_date: Option<i64>,
    pub trial_days: Option<i64>,
    pub description: Option<String>,
    pub latest_stripe_invoice_id: Option<String>,
    pub observed_at: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SubscriptionRow {
    pub fn account(&self) -> AccountId {
        AccountId::from_db(self.account_id.clone())
    }
}

const SUB_COLUMNS: &str = "s.id, s.account_id, COALESCE(s.customer_id, c.id) AS customer_id, \
    s.stripe_customer_id, s.stripe_subscription_id, s.source, s.amount, s.currency, \
    s.billing_interval, s.interval_count, s.status, s.current_period_start, s.current_period_end, \
    s.cancel_at_period_end, s.canceled_at, s.ended_at, s.trial_end, s.start_date, s.trial_days, \
    s.description, s.latest_stripe_invoice_id, s.observed_at, s.created_at, s.updated_at";
const SUB_FROM: &str = "subscriptions s LEFT JOIN customers c \
    ON c.account_id = s.account_id AND c.stripe_customer_id = s.stripe_customer_id";

/// What Stripe says of a subscription, as the mirror stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionState {
    pub stripe_subscription_id: String,
    pub stripe_customer_id: String,
    pub amount: i64,
    pub currency: String,
    pub billing_interval: String,
    pub interval_count: i64,
    pub status: String,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_end: Option<i64>,
    pub latest_stripe_invoice_id: Option<String>,
}

pub struct NewSubscription<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub customer_id: Option<&'a str>,
    pub stripe_customer_id: Option<&'a str>,
    pub source: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub billing_interval: &'a str,
    pub interval_count: i64,
    pub status: &'a str,
    pub start_date: Option<i64>,
    pub trial_days: Option<i64>,
    pub description: Option<&'a str>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct SubscriptionFilter<'a> {
    pub customer_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub before: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BillingInvoiceRow {
    pub id: String,
    pub account_id: String,
    pub stripe_invoice_id: String,
    /// Resolved through `stripe_customer_id`.
    pub customer_id: Option<String>,
    pub stripe_customer_id: Option<String>,
    /// obol's subscription of `stripe_subscription_id`, if mirrored.
    pub subscription_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub stripe_payment_intent_id: Option<String>,
    /// obol's payment of `stripe_payment_intent_id`, if recorded.
    pub payment_id: Option<String>,
    /// The scheduled payment this invoice carries out, if any.
    pub scheduled_payment_id: Option<String>,
    pub status: String,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub attempt_count: i64,
    pub action_required_attempt: i64,
    pub billing_reason: Option<String>,
    pub collection_method: Option<String>,
    pub number: Option<String>,
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub due_date: Option<i64>,
    pub next_payment_attempt: Option<i64>,
    pub automatically_finalizes_at: Option<i64>,
    pub stripe_created: i64,
    pub observed_at: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl BillingInvoiceRow {
    pub fn account(&self) -> AccountId {
        AccountId::from_db(self.account_id.clone())
    }
}

const INV_COLUMNS: &str = "b.id, b.account_id, b.stripe_invoice_id, c.id AS customer_id, \
    b.stripe_customer_id, s.id AS subscription_id, b.stripe_subscription_id, \
    b.stripe_payment_intent_id, p.id AS payment_id, sp.id AS scheduled_payment_id, b.status, \
    b.currency, b.amount_due, b.amount_paid, b.amount_remaining, b.attempt_count, \
    b.action_required_attempt, b.billing_reason, b.collection_method, b.number, \
    b.hosted_invoice_url, b.period_start, b.period_end, b.due_date, b.next_payment_attempt, \
    b.automatically_finalizes_at, b.stripe_created, b.observed_at, b.created_at, b.updated_at";
const INV_FROM: &str = "billing_invoices b \
    LEFT JOIN customers c ON c.account_id = b.account_id AND c.stripe_customer_id = b.stripe_customer_id \
    LEFT JOIN subscriptions s ON s.account_id = b.account_id AND s.stripe_subscription_id = b.stripe_subscription_id \
    LEFT JOIN payments p ON p.account_id = b.account_id AND p.stripe_payment_intent_id = b.stripe_payment_intent_id \
    LEFT JOIN scheduled_payments sp ON sp.account_id = b.account_id AND sp.stripe_invoice_id = b.stripe_invoice_id";

/// What Stripe says of an invoice, as the mirror stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceState {
    pub stripe_invoice_id: String,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub stripe_payment_intent_id: Option<String>,
    pub status: String,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub attempt_count: i64,
    pub billing_reason: Option<String>,
    pub collection_method: Option<String>,
    pub number: Option<String>,
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub due_date: Option<i64>,
    pub next_payment_attempt: Option<i64>,
    pub automatically_finalizes_at: Option<i64>,
    pub stripe_created: i64,
}

#[derive(Debug, Default)]
pub struct InvoiceFilter<'a> {
    pub customer_id: Option<&'a str>,
    pub subscription_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub before: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScheduledPaymentRow {
    pub id: String,
    pub account_id: String,
    pub customer_id: String,
    pub amount: i64,
    pub currency: String,
    pub charge_at: i64,
    pub description: Option<String>,
    pub stripe_invoice_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SP_COLUMNS: &str = "id, account_id, customer_id, amount, currency, charge_at, description, \
    stripe_invoice_id, created_at, updated_at";

impl Conn<'_> {
    pub async fn insert_subscription(&mut self, n: &NewSubscription<'_>) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO subscriptions (id, account_id, customer_id, stripe_customer_id, source, \
                 amount, currency, billing_interval, interval_count, status, start_date, trial_days, \
                 description, observed_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, $14)",
            )
            .bind(n.id)
            .bind(n.account_id)
            .bind(n.customer_id)
            .bind(n.stripe_customer_id)
            .bind(n.source)
            .bind(n.amount)
            .bind(n.currency)
            .bind(n.billing_interval)
            .bind(n.interval_count)
            .bind(n.status)
            .bind(n.start_date)
            .bind(n.trial_days)
            .bind(n.description)
            .bind(n.now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn get_subscription(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<SubscriptionRow>> {
        let sql =
            format!("SELECT {SUB_COLUMNS} FROM {SUB_FROM} WHERE s.account_id = $1 AND s.id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, SubscriptionRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_subscription_by_stripe_id(
        &mut self,
        account: &AccountId,
        stripe_id: &str,
    ) -> Result<Option<SubscriptionRow>> {
        let sql = format!(
            "SELECT {SUB_COLUMNS} FROM {SUB_FROM} WHERE s.account_id = $1 AND s.stripe_subscription_id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, SubscriptionRow>(&sql)
                .bind(account.as_str())
                .bind(stripe_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Holds the subscription's row for the transaction (PostgreSQL; a
    /// SQLite write transaction holds the database already).
    pub async fn lock_subscription(&mut self, id: &str) -> Result<()> {
        if let Conn::Postgres(conn) = self {
            sqlx::query("SELECT id FROM subscriptions WHERE id = $1 FOR UPDATE")
                .bind(id)
                .execute(&mut **conn)
                .await?;
        }
        Ok(())
    }

    /// Writes Stripe's state over the row, guarded by the `observed_at`
    /// and status read (`false` when another writer moved it meanwhile).
    pub async fn write_subscription_state(
        &mut self,
        read: &SubscriptionRow,
        s: &SubscriptionState,
        observed_at: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE subscriptions SET stripe_subscription_id = $1, stripe_customer_id = $2, \
                 amount = $3, currency = $4, billing_interval = $5, interval_count = $6, status = $7, \
                 current_period_start = $8, current_period_end = $9, cancel_at_period_end = $10, \
                 canceled_at = $11, ended_at = $12, trial_end = $13, latest_stripe_invoice_id = $14, \
                 observed_at = $15, updated_at = $16 \
                 WHERE id = $17 AND account_id = $18 AND observed_at = $19 AND status = $20",
            )
            .bind(&s.stripe_subscription_id)
            .bind(&s.stripe_customer_id)
            .bind(s.amount)
            .bind(&s.currency)
            .bind(&s.billing_interval)
            .bind(s.interval_count)
            .bind(&s.status)
            .bind(s.current_period_start)
            .bind(s.current_period_end)
            .bind(s.cancel_at_period_end)
            .bind(s.canceled_at)
            .bind(s.ended_at)
            .bind(s.trial_end)
            .bind(&s.latest_stripe_invoice_id)
            .bind(observed_at)
            .bind(now)
            .bind(&read.id)
            .bind(&read.account_id)
            .bind(read.observed_at)
            .bind(&read.status)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// A subscription Stripe refused to create ends `incomplete_expired`,
    /// linked to nothing.
    pub async fn expire_unsent_subscription(&mut self, id: &str, now: DateTime<Utc>) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE subscriptions SET status = 'incomplete_expired', updated_at = $1 \
                 WHERE id = $2 AND stripe_subscription_id IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Newest first.
    pub async fn list_subscriptions(
        &mut self,
        account: &AccountId,
        f: &SubscriptionFilter<'_>,
    ) -> Result<Vec<SubscriptionRow>> {
        let sql = format!(
            "SELECT {SUB_COLUMNS} FROM {SUB_FROM} WHERE s.account_id = $1 \
             AND ($2 IS NULL OR COALESCE(s.customer_id, c.id) = $2) AND ($3 IS NULL OR s.status = $3) \
             AND ($4 IS NULL OR s.created_at < $4 OR (s.created_at = $4 AND s.id < $5)) \
             ORDER BY s.created_at DESC, s.id DESC LIMIT $6"
        );
        let (at, id) = keyset(&f.before);
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, SubscriptionRow>(&sql)
                .bind(account.as_str())
                .bind(f.customer_id)
                .bind(f.status)
                .bind(at)
                .bind(id)
                .bind(f.limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Subscriptions Stripe may still move (not canceled or expired), for
    /// reconciliation; those never sent to Stripe included.
    pub async fn list_open_subscriptions(
        &mut self,
        account: &AccountId,
        limit: i64,
    ) -> Result<Vec<SubscriptionRow>> {
        let sql = format!(
            "SELECT {SUB_COLUMNS} FROM {SUB_FROM} WHERE s.account_id = $1 \
             AND s.status NOT IN ('canceled', 'incomplete_expired') \
             ORDER BY s.updated_at, s.id LIMIT $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, SubscriptionRow>(&sql)
                .bind(account.as_str())
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    pub async fn get_billing_invoice(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<BillingInvoiceRow>> {
        let sql =
            format!("SELECT {INV_COLUMNS} FROM {INV_FROM} WHERE b.account_id = $1 AND b.id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, BillingInvoiceRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_billing_invoice_by_stripe_id(
        &mut self,
        account: &AccountId,
        stripe_id: &str,
    ) -> Result<Option<BillingInvoiceRow>> {
        let sql = format!(
            "SELECT {INV_COLUMNS} FROM {INV_FROM} WHERE b.account_id = $1 AND b.stripe_invoice_id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, BillingInvoiceRow>(&sql)
                .bind(account.as_str())
                .bind(stripe_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// The invoice a PaymentIntent pays, if mirrored.
    pub async fn get_billing_invoice_by_intent(
        &mut self,
        account: &AccountId,
        intent: &str,
    ) -> Result<Option<BillingInvoiceRow>> {
        let sql = format!(
            "SELECT {INV_COLUMNS} FROM {INV_FROM} WHERE b.account_id = $1 AND b.stripe_payment_intent_id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, BillingInvoiceRow>(&sql)
                .bind(account.as_str())
                .bind(intent)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Inserts the invoice's first mirrored state; `false` when a
    /// concurrent writer inserted it first.
    pub async fn insert_billing_invoice(
        &mut self,
        id: &str,
        account: &AccountId,
        s: &InvoiceState,
        observed_at: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let r = on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO billing_invoices (id, account_id, stripe_invoice_id, stripe_customer_id, \
                 stripe_subscription_id, stripe_payment_intent_id, status, currency, amount_due, \
                 amount_paid, amount_remaining, attempt_count, billing_reason, collection_method, \
                 number, hosted_invoice_url, period_start, period_end, due_date, next_payment_attempt, \
                 automatically_finalizes_at, stripe_created, observed_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21, $22, $23, $24, $24) \
                 ON CONFLICT (account_id, stripe_invoice_id) DO NOTHING",
            )
            .bind(id)
            .bind(account.as_str())
            .bind(&s.stripe_invoice_id)
            .bind(&s.stripe_customer_id)
            .bind(&s.stripe_subscription_id)
            .bind(&s.stripe_payment_intent_id)
            .bind(&s.status)
            .bind(&s.currency)
            .bind(s.amount_due)
            .bind(s.amount_paid)
            .bind(s.amount_remaining)
            .bind(s.attempt_count)
            .bind(&s.billing_reason)
            .bind(&s.collection_method)
            .bind(&s.number)
            .bind(&s.hosted_invoice_url)
            .bind(s.period_start)
            .bind(s.period_end)
            .bind(s.due_date)
            .bind(s.next_payment_attempt)
            .bind(s.automatically_finalizes_at)
            .bind(s.stripe_created)
            .bind(observed_at)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        // A conflict leaves a PostgreSQL transaction usable (no error).
        Ok(r == 1)
    }

    /// Writes Stripe's state over the row, guarded by what was read.
    pub async fn write_billing_invoice_state(
        &mut self,
        read: &BillingInvoiceRow,
        s: &InvoiceState,
        observed_at: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE billing_invoices SET stripe_customer_id = $1, stripe_subscription_id = $2, \
                 stripe_payment_intent_id = COALESCE($3, stripe_payment_intent_id), status = $4, \
                 currency = $5, amount_due = $6, amount_paid = $7, amount_remaining = $8, \
                 attempt_count = $9, billing_reason = $10, collection_method = $11, number = $12, \
                 hosted_invoice_url = $13, period_start = $14, period_end = $15, due_date = $16, \
                 next_payment_attempt = $17, automatically_finalizes_at = $18, observed_at = $19, \
                 updated_at = $20 \
                 WHERE id = $21 AND observed_at = $22 AND status = $23 AND attempt_count = $24",
            )
            .bind(&s.stripe_customer_id)
            .bind(&s.stripe_subscription_id)
            .bind(&s.stripe_payment_intent_id)
            .bind(&s.status)
            .bind(&s.currency)
            .bind(s.amount_due)
            .bind(s.amount_paid)
            .bind(s.amount_remaining)
            .bind(s.attempt_count)
            .bind(&s.billing_reason)
            .bind(&s.collection_method)
            .bind(&s.number)
            .bind(&s.hosted_invoice_url)
            .bind(s.period_start)
            .bind(s.period_end)
            .bind(s.due_date)
            .bind(s.next_payment_attempt)
            .bind(s.automatically_finalizes_at)
            .bind(observed_at)
            .bind(now)
            .bind(&read.id)
            .bind(read.observed_at)
            .bind(&read.status)
            .bind(read.attempt_count)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records that the host was told attempt `attempt` needs the member's
    /// action; `false` when it was told already.
    pub async fn mark_billing_invoice_action_required(
        &mut self,
        id: &str,
        attempt: i64,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE billing_invoices SET action_required_attempt = $1 \
                 WHERE id = $2 AND action_required_attempt < $1",
            )
            .bind(attempt)
            .bind(id)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// The intent's side of the link: an invoice mirrored before its
    /// intent was named learns it from the intent's `invoice` field.
    pub async fn set_billing_invoice_intent(
        &mut self,
        account: &AccountId,
        stripe_invoice_id: &str,
        intent: &str,
    ) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE billing_invoices SET stripe_payment_intent_id = $1 \
                 WHERE account_id = $2 AND stripe_invoice_id = $3 AND stripe_payment_intent_id IS NULL",
            )
            .bind(intent)
            .bind(account.as_str())
            .bind(stripe_invoice_id)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Newest first.
    pub async fn list_billing_invoices(
        &mut self,
        account: &AccountId,
        f: &InvoiceFilter<'_>,
    ) -> Result<Vec<BillingInvoiceRow>> {
        let sql = format!(
            "SELECT {INV_COLUMNS} FROM {INV_FROM} WHERE b.account_id = $1 \
             AND ($2 IS NULL OR c.id = $2) AND ($3 IS NULL OR s.id = $3) AND ($4 IS NULL OR b.status = $4) \
             AND ($5 IS NULL OR b.created_at < $5 OR (b.created_at = $5 AND b.id < $6)) \
             ORDER BY b.created_at DESC, b.id DESC LIMIT $7"
        );
        let (at, id) = keyset(&f.before);
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, BillingInvoiceRow>(&sql)
                .bind(account.as_str())
                .bind(f.customer_id)
                .bind(f.subscription_id)
                .bind(f.status)
                .bind(at)
                .bind(id)
                .bind(f.limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Invoices Stripe may still move (draft, open, uncollectible), for
    /// reconciliation.
    pub async fn list_open_billing_invoices(
        &mut self,
        account: &AccountId,
        limit: i64,
    ) -> Result<Vec<BillingInvoiceRow>> {
        let sql = format!(
            "SELECT {INV_COLUMNS} FROM {INV_FROM} WHERE b.account_id = $1 \
             AND b.status IN ('draft', 'open', 'uncollectible') ORDER BY b.updated_at, b.id LIMIT $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, BillingInvoiceRow>(&sql)
                .bind(account.as_str())
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    pub async fn insert_scheduled_payment(&mut self, r: &ScheduledPaymentRow) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO scheduled_payments (id, account_id, customer_id, amount, currency, \
                 charge_at, description, stripe_invoice_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&r.id)
            .bind(&r.account_id)
            .bind(&r.customer_id)
            .bind(r.amount)
            .bind(&r.currency)
            .bind(r.charge_at)
            .bind(&r.description)
            .bind(&r.stripe_invoice_id)
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn set_scheduled_payment_invoice(
        &mut self,
        account: &AccountId,
        id: &str,
        stripe_invoice_id: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE scheduled_payments SET stripe_invoice_id = $1, updated_at = $2 \
                 WHERE account_id = $3 AND id = $4",
            )
            .bind(stripe_invoice_id)
            .bind(now)
            .bind(account.as_str())
            .bind(id)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    pub async fn get_scheduled_payment(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<ScheduledPaymentRow>> {
        let sql = format!(
            "SELECT {SP_COLUMNS} FROM scheduled_payments WHERE account_id = $1 AND id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ScheduledPaymentRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Newest first.
    pub async fn list_scheduled_payments(
        &mut self,
        account: &AccountId,
        customer_id: Option<&str>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<ScheduledPaymentRow>> {
        let sql = format!(
            "SELECT {SP_COLUMNS} FROM scheduled_payments WHERE account_id = $1 \
             AND ($2 IS NULL OR customer_id = $2) \
             AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5"
        );
        let (at, id) = keyset(&before);
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, ScheduledPaymentRow>(&sql)
                .bind(account.as_str())
                .bind(customer_id)
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// The billing invoice and subscription (obol ids) a PaymentIntent
    /// pays, for the payment's view.
    pub async fn billing_links_of_intent(
        &mut self,
        account: &AccountId,
        intent: &str,
    ) -> Result<Option<(String, Option<String>)>> {
        let row: Option<(String, Option<String>)> = on_conn!(self, |conn| {
            sqlx::query_as(
                "SELECT b.id, s.id FROM billing_invoices b LEFT JOIN subscriptions s \
                 ON s.account_id = b.account_id AND s.stripe_subscription_id = b.stripe_subscription_id \
                 WHERE b.account_id = $1 AND b.stripe_payment_intent_id = $2",
            )
            .bind(account.as_str())
            .bind(intent)
            .fetch_optional(&mut **conn)
            .await?
        });
        Ok(row)
    }
}
