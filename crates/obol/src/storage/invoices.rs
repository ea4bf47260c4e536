//! Invoices, their payment attempts and timeline, fee settings, and the
//! accounting sync jobs.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::invoice::InvoiceStatus;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InvoiceRow {
    pub id: String,
    pub account_id: String,
    pub customer_id: String,
    pub number: String,
    #[sqlx(try_from = "String")]
    pub status: InvoiceStatus,
    pub currency: String,
    /// JSON array of `{description, unit_amount, quantity, amount}`.
    pub line_items: String,
    pub subtotal: i64,
    pub pass_fees: bool,
    pub fee_amount: Option<i64>,
    pub fee_percent_bps: Option<i32>,
    pub fee_fixed: Option<i64>,
    pub fee_source: Option<String>,
    pub total: i64,
    pub amount_paid: i64,
    pub fee_paid: i64,
    pub due_date: String,
    pub memo: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub voided_at: Option<DateTime<Utc>>,
}

impl InvoiceRow {
    pub fn account(&self) -> AccountId {
        AccountId::from_db(self.account_id.clone())
    }
}

const COLUMNS: &str =
    "id, account_id, customer_id, number, status, currency, line_items, subtotal, \
    pass_fees, fee_amount, fee_percent_bps, fee_fixed, fee_source, total, amount_paid, fee_paid, \
    due_date, memo, created_at, updated_at, processed_at, paid_at, voided_at";

/// The fee frozen on an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeColumns<'a> {
    pub amount: i64,
    pub percent_bps: i32,
    pub fixed: i64,
    pub source: &'a str,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: String,
    pub account_id: String,
    pub invoice_id: String,
    pub stripe_payment_intent_id: String,
    pub amount: i64,
    pub fee_amount: i64,
    /// open, succeeded, void
    pub status: String,
    pub void_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ATTEMPT_COLUMNS: &str = "id, account_id, invoice_id, stripe_payment_intent_id, amount, \
    fee_amount, status, void_reason, created_at, updated_at";

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InvoiceTimelineRow {
    pub id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
    pub cause_kind: String,
    pub cause_ref: Option<String>,
}

/// One timeline entry to write.
pub struct NewInvoiceEntry<'a> {
    pub invoice: &'a InvoiceRow,
    pub from: Option<InvoiceStatus>,
    pub to: InvoiceStatus,
    pub note: Option<&'a str>,
    pub at: DateTime<Utc>,
    pub cause_kind: &'a str,
    pub cause_ref: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FeeSettingsRow {
    pub account_id: String,
    pub percent_bps: i32,
    /// JSON object: currency -> minor units.
    pub fixed: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SyncJobRow {
    pub id: String,
    pub account_id: String,
    pub invoice_id: String,
    pub payment_id: String,
    pub target: String,
    /// pending, succeeded, failed
    pub status: String,
    pub job_id: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
}

const SYNC_COLUMNS: &str = "id, account_id, invoice_id, payment_id, target, status, job_id, \
    attempts, last_error, external_id, created_at, updated_at, succeeded_at";

impl Conn<'_> {
    pub async fn insert_invoice(&mut self, i: &InvoiceRow) -> Result<InvoiceRow> {
        let sql = format!(
            "INSERT INTO invoices ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) RETURNING {COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, InvoiceRow>(&sql)
                .bind(&i.id)
                .bind(&i.account_id)
                .bind(&i.customer_id)
                .bind(&i.number)
                .bind(i.status.as_str())
                .bind(&i.currency)
                .bind(&i.line_items)
                .bind(i.subtotal)
                .bind(i.pass_fees)
                .bind(i.fee_amount)
                .bind(i.fee_percent_bps)
                .bind(i.fee_fixed)
                .bind(&i.fee_source)
                .bind(i.total)
                .bind(i.amount_paid)
                .bind(i.fee_paid)
                .bind(&i.due_date)
                .bind(&i.memo)
                .bind(i.created_at)
                .bind(i.updated_at)
                .bind(i.processed_at)
                .bind(i.paid_at)
                .bind(i.voided_at)
                .fetch_one(&mut **conn)
                .await?
        }))
    }

    pub async fn get_invoice(
        &mut self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<InvoiceRow>> {
        let sql = format!("SELECT {COLUMNS} FROM invoices WHERE account_id = $1 AND id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, InvoiceRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// The invoice one of whose links' tokens hashes to `token_hash`, in
    /// any account: the token is the capability.
    pub async fn get_invoice_by_token(&mut self, token_hash: &str) -> Result<Option<InvoiceRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM invoices WHERE id = (SELECT invoice_id FROM invoice_links WHERE token_hash = $1)"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, InvoiceRow>(&sql)
                .bind(token_hash)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Holds the invoice's row until the transaction ends (PostgreSQL;
    /// SQLite's write transactions are serialized already).
    pub async fn lock_invoice(&mut self, id: &str) -> Result<()> {
        if let Conn::Postgres(conn) = self {
            sqlx::query("SELECT id FROM invoices WHERE id = $1 FOR UPDATE")
                .bind(id)
                .execute(&mut **conn)
                .await?;
        }
        Ok(())
    }

    /// `account`'s invoices newest first, optionally of one status and
    /// one customer.
    pub async fn list_invoices(
        &mut self,
        account: &AccountId,
        status: Option<&str>,
        customer_id: Option<&str>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<InvoiceRow>> {
        let (before_at, before_id) = super::keyset(&before);
        let sql = format!(
            "SELECT {COLUMNS} FROM invoices WHERE account_id = $1 AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR customer_id = $3) \
             AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, InvoiceRow>(&sql)
                .bind(account.as_str())
                .bind(status)
                .bind(customer_id)
                .bind(before_at)
                .bind(before_id)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// A new link to `invoice`.
    pub async fn insert_invoice_link(
        &mut self,
        invoice: &InvoiceRow,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO invoice_links (token_hash, account_id, invoice_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(&invoice.account_id)
            .bind(&invoice.id)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// draft|processed → processed with the fee frozen, guarded by the
    /// status read.
    pub async fn process_invoice(
        &mut self,
        id: &str,
        from: InvoiceStatus,
        fee: Option<FeeColumns<'_>>,
        total: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE invoices SET status = 'processed', fee_amount = $3, \
                 fee_percent_bps = $4, fee_fixed = $5, fee_source = $6, total = $7, updated_at = $8, \
                 processed_at = COALESCE(processed_at, $8) WHERE id = $1 AND status = $2",
            )
            .bind(id)
            .bind(from.as_str())
            .bind(fee.map(|f| f.amount))
            .bind(fee.map(|f| f.percent_bps))
            .bind(fee.map(|f| f.fixed))
            .bind(fee.map(|f| f.source))
            .bind(total)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// → void, guarded by the status read.
    pub async fn void_invoice(
        &mut self,
        id: &str,
        from: InvoiceStatus,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE invoices SET status = 'void', voided_at = $3, updated_at = $3 \
                 WHERE id = $1 AND status = $2",
            )
            .bind(id)
            .bind(from.as_str())
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Adds a payment (and the fee it carried) to the invoice and moves
    /// it to `to`, guarded by the status and amount read.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_invoice_payment(
        &mut self,
        id: &str,
        from: InvoiceStatus,
        paid_before: i64,
        to: InvoiceStatus,
        amount: i64,
        fee: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let paid_at = (to == InvoiceStatus::Paid).then_some(now);
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE invoices SET status = $4, amount_paid = amount_paid + $5, fee_paid = fee_paid + $6, \
                 paid_at = COALESCE($7, paid_at), updated_at = $8 \
                 WHERE id = $1 AND status = $2 AND amount_paid = $3",
            )
            .bind(id)
            .bind(from.as_str())
            .bind(paid_before)
            .bind(to.as_str())
            .bind(amount)
            .bind(fee)
            .bind(paid_at)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    pub async fn insert_invoice_entry(&mut self, e: &NewInvoiceEntry<'_>) -> Result<()> {
        let id = String::from(crate::ids::InvoiceTimelineId::generate());
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO invoice_timeline (id, account_id, invoice_id, from_status, to_status, note, at, cause_kind, cause_ref) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&id)
            .bind(&e.invoice.account_id)
            .bind(&e.invoice.id)
            .bind(e.from.map(InvoiceStatus::as_str))
            .bind(e.to.as_str())
            .bind(e.note)
            .bind(e.at)
            .bind(e.cause_kind)
            .bind(e.cause_ref)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// An invoice's timeline, oldest first.
    pub async fn list_invoice_timeline(
        &mut self,
        invoice_id: &str,
    ) -> Result<Vec<InvoiceTimelineRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, InvoiceTimelineRow>(
                "SELECT id, from_status, to_status, note, at, cause_kind, cause_ref FROM invoice_timeline \
                 WHERE invoice_id = $1 ORDER BY at, id",
            )
            .bind(invoice_id)
            .fetch_all(&mut **conn)
            .await?
        }))
    }

    /// Records a new open attempt; `None` when the invoice has an open one
    /// already (or this intent is recorded), so the caller reads that.
    pub async fn insert_invoice_attempt(&mut self, a: &AttemptRow) -> Result<Option<AttemptRow>> {
        let sql = format!(
            "INSERT INTO invoice_attempts ({ATTEMPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT DO NOTHING RETURNING {ATTEMPT_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, AttemptRow>(&sql)
                .bind(&a.id)
                .bind(&a.account_id)
                .bind(&a.invoice_id)
                .bind(&a.stripe_payment_intent_id)
                .bind(a.amount)
                .bind(a.fee_amount)
                .bind(&a.status)
                .bind(&a.void_reason)
                .bind(a.created_at)
                .bind(a.updated_at)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_open_attempt(&mut self, invoice_id: &str) -> Result<Option<AttemptRow>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM invoice_attempts WHERE invoice_id = $1 AND status = 'open'"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, AttemptRow>(&sql)
                .bind(invoice_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_attempt_by_intent(
        &mut self,
        account: &str,
        intent_id: &str,
    ) -> Result<Option<AttemptRow>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM invoice_attempts WHERE account_id = $1 AND stripe_payment_intent_id = $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, AttemptRow>(&sql)
                .bind(account)
                .bind(intent_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// An invoice's attempts, oldest first.
    pub async fn list_invoice_attempts(&mut self, invoice_id: &str) -> Result<Vec<AttemptRow>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM invoice_attempts WHERE invoice_id = $1 ORDER BY created_at, id"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, AttemptRow>(&sql)
                .bind(invoice_id)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Moves an attempt from `from` to `to`, guarded: `true` once.
    pub async fn move_invoice_attempt(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE invoice_attempts SET status = $3, void_reason = COALESCE($4, void_reason), updated_at = $5 \
                 WHERE id = $1 AND status = $2",
            )
            .bind(id)
            .bind(from)
            .bind(to)
            .bind(reason)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Voids an open (or already void) attempt with obol's reason.
    pub async fn void_invoice_attempt(
        &mut self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE invoice_attempts SET status = 'void', void_reason = $2, updated_at = $3 \
                 WHERE id = $1 AND status IN ('open', 'void')",
            )
            .bind(id)
            .bind(reason)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }

    /// Open attempts of `account` made before `before`, oldest first.
    pub async fn list_stale_attempts(
        &mut self,
        account: &AccountId,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<AttemptRow>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM invoice_attempts WHERE status = 'open' AND account_id = $1 \
             AND created_at < $2 ORDER BY created_at, id LIMIT $3"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, AttemptRow>(&sql)
                .bind(account.as_str())
                .bind(before)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    pub async fn get_fee_settings(
        &mut self,
        account: &AccountId,
    ) -> Result<Option<FeeSettingsRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, FeeSettingsRow>(
                "SELECT account_id, percent_bps, fixed, created_at, updated_at FROM fee_settings WHERE account_id = $1",
            )
            .bind(account.as_str())
            .fetch_optional(&mut **conn)
            .await?
        }))
    }

    pub async fn upsert_fee_settings(
        &mut self,
        account: &AccountId,
        percent_bps: i32,
        fixed: &str,
        now: DateTime<Utc>,
    ) -> Result<FeeSettingsRow> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, FeeSettingsRow>(
                "INSERT INTO fee_settings (account_id, percent_bps, fixed, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (account_id) DO UPDATE SET percent_bps = $2, fixed = $3, updated_at = $4 \
                 RETURNING account_id, percent_bps, fixed, created_at, updated_at",
            )
            .bind(account.as_str())
            .bind(percent_bps)
            .bind(fixed)
            .bind(now)
            .fetch_one(&mut **conn)
            .await?
        }))
    }

    pub async fn delete_fee_settings(&mut self, account: &AccountId) -> Result<bool> {
        let done = on_conn!(self, |conn| {
            sqlx::query("DELETE FROM fee_settings WHERE account_id = $1")
                .bind(account.as_str())
                .execute(&mut **conn)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Records a sync; `None` when this payment already has one for this
    /// target.
    pub async fn insert_sync_job(&mut self, s: &SyncJobRow) -> Result<Option<SyncJobRow>> {
        let sql = format!(
            "INSERT INTO sync_jobs ({SYNC_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT DO NOTHING RETURNING {SYNC_COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, SyncJobRow>(&sql)
                .bind(&s.id)
                .bind(&s.account_id)
                .bind(&s.invoice_id)
                .bind(&s.payment_id)
                .bind(&s.target)
                .bind(&s.status)
                .bind(&s.job_id)
                .bind(s.attempts)
                .bind(&s.last_error)
                .bind(&s.external_id)
                .bind(s.created_at)
                .bind(s.updated_at)
                .bind(s.succeeded_at)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// A sync of `account` (`None`: any account, for its own job).
    pub async fn get_sync_job(
        &mut self,
        account: Option<&AccountId>,
        id: &str,
    ) -> Result<Option<SyncJobRow>> {
        let sql = format!(
            "SELECT {SYNC_COLUMNS} FROM sync_jobs WHERE id = $1 AND ($2 IS NULL OR account_id = $2)"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, SyncJobRow>(&sql)
                .bind(id)
                .bind(account.map(AccountId::as_str))
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// `account`'s syncs newest first, optionally of one status and invoice.
    pub async fn list_sync_jobs(
        &mut self,
        account: &AccountId,
        status: Option<&str>,
        invoice_id: Option<&str>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<SyncJobRow>> {
        let (before_at, before_id) = super::keyset(&before);
        let sql = format!(
            "SELECT {SYNC_COLUMNS} FROM sync_jobs WHERE account_id = $1 AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR invoice_id = $3) \
             AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, SyncJobRow>(&sql)
                .bind(account.as_str())
                .bind(status)
                .bind(invoice_id)
                .bind(before_at)
                .bind(before_id)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Records one attempt's outcome. A succeeded sync never changes again.
    pub async fn record_sync_attempt(
        &mut self,
        id: &str,
        status: &str,
        error: Option<&str>,
        external_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let succeeded_at = (status == "succeeded").then_some(now);
        let done = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE sync_jobs SET status = $2, attempts = attempts + 1, last_error = COALESCE($3, last_error), \
                 external_id = COALESCE($4, external_id), succeeded_at = $5, updated_at = $6 \
                 WHERE id = $1 AND status <> 'succeeded'",
            )
            .bind(id)
            .bind(status)
            .bind(error)
            .bind(external_id)
            .bind(succeeded_at)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }
}

impl Conn<'_> {
    /// Links a sync to the runner job that performs it.
    pub async fn set_sync_job_job(&mut self, id: &str, job_id: &str) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query("UPDATE sync_jobs SET job_id = $2 WHERE id = $1")
                .bind(id)
                .bind(job_id)
                .execute(&mut **conn)
                .await?;
        });
        Ok(())
    }
}
