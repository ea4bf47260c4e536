//! The member e-mail outbox: `emails`, one row per logical e-mail.
//!
//! `insert_email` is insert-or-nothing on `dedupe_key`, so an e-mail the
//! caller names twice is queued once. The status writes after that are
//! guarded by the statuses they leave (`WHERE status IN ('queued',
//! 'failed')`): an e-mail marked `sent` or `logged` never changes again.
//! What the statuses mean is decided in `email/`, not here.

use chrono::{DateTime, Utc};

use super::{on_conn, Conn};
use crate::context::AccountId;
use crate::error::Result;
use crate::ids::EmailId;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EmailRow {
    pub id: String,
    pub account_id: String,
    pub customer_id: Option<String>,
    pub to_address: String,
    pub template: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub dedupe_key: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// What `insert_email` writes.
#[derive(Debug, Clone)]
pub struct NewEmailRow<'a> {
    pub account_id: &'a str,
    pub customer_id: Option<&'a str>,
    pub to_address: &'a str,
    pub template: &'a str,
    pub subject: &'a str,
    pub text_body: &'a str,
    pub html_body: &'a str,
    pub dedupe_key: &'a str,
    pub now: DateTime<Utc>,
}

const COLUMNS: &str = "id, account_id, customer_id, to_address, template, subject, text_body, \
    html_body, dedupe_key, status, attempts, last_error, created_at, updated_at, sent_at";

impl Conn<'_> {
    /// Queues an e-mail unless one with the same dedupe key exists (in any
    /// status: each logical e-mail is sent once). `None`: it existed.
    pub async fn insert_email(&mut self, email: &NewEmailRow<'_>) -> Result<Option<EmailRow>> {
        let id = EmailId::generate();
        let sql = format!(
            "INSERT INTO emails (id, account_id, customer_id, to_address, template, subject, text_body, \
             html_body, dedupe_key, status, attempts, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, $10, $10) \
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING {COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, EmailRow>(&sql)
                .bind(id.as_str())
                .bind(email.account_id)
                .bind(email.customer_id)
                .bind(email.to_address)
                .bind(email.template)
                .bind(email.subject)
                .bind(email.text_body)
                .bind(email.html_body)
                .bind(email.dedupe_key)
                .bind(email.now)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// An e-mail of `account`; another account's is `None`.
    pub async fn get_email(&mut self, account: &AccountId, id: &str) -> Result<Option<EmailRow>> {
        let sql = format!("SELECT {COLUMNS} FROM emails WHERE account_id = $1 AND id = $2");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, EmailRow>(&sql)
                .bind(account.as_str())
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// queued|failed → sent, counting the attempt; `false` when the e-mail
    /// was already sent or logged.
    pub async fn mark_email_sent(&mut self, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE emails SET status = 'sent', attempts = attempts + 1, last_error = NULL, \
                 sent_at = $2, updated_at = $2 WHERE id = $1 AND status IN ('queued', 'failed')",
            )
            .bind(id)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// queued|failed → logged (no SMTP server configured: kept, not sent).
    pub async fn mark_email_logged(&mut self, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE emails SET status = 'logged', last_error = NULL, updated_at = $2 \
                 WHERE id = $1 AND status IN ('queued', 'failed')",
            )
            .bind(id)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records a failed send attempt: the status stays `queued` (it is
    /// retried) unless `failed` says obol gave up on it.
    pub async fn record_email_failure(
        &mut self,
        id: &str,
        error: &str,
        failed: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let status = if failed { "failed" } else { "queued" };
        let n = on_conn!(self, |conn| {
            sqlx::query(
                "UPDATE emails SET status = $2, attempts = attempts + 1, last_error = $3, \
                 updated_at = $4 WHERE id = $1 AND status IN ('queued', 'failed')",
            )
            .bind(id)
            .bind(status)
            .bind(error)
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// `account`'s e-mails newest first, keyset on (created_at, id),
    /// optionally of one status and one customer.
    pub async fn list_emails(
        &mut self,
        account: &AccountId,
        status: Option<&str>,
        customer_id: Option<&str>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<EmailRow>> {
        let (before_at, before_id) = super::keyset(&before);
        let sql = format!(
            "SELECT {COLUMNS} FROM emails WHERE account_id = $5 AND ($1 IS NULL OR status = $1) \
             AND ($6 IS NULL OR customer_id = $6) \
             AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, EmailRow>(&sql)
                .bind(status)
                .bind(before_at)
                .bind(before_id)
                .bind(limit)
                .bind(account.as_str())
                .bind(customer_id)
                .fetch_all(&mut **conn)
                .await?
        }))
    }
}
