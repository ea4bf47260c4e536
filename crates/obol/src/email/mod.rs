//! Member e-mails: a durable outbox sent over SMTP.
//!
//! A use case that decides a customer must hear from the business (a
//! payment to confirm, a card to update) calls `enqueue` inside its own
//! transaction: the e-mail row and the `send_email` job that sends it
//! commit with the change that causes them, or not at all. The caller
//! names the logical e-mail (`dedupe_key`, e.g.
//! `charge_run_item:{item}:requires_action`); a second `enqueue` with the
//! same name does nothing, so each e-mail is sent once however often the
//! change is observed.
//!
//! `Mailer` sends one stored e-mail through the configured SMTP server
//! (`email.smtp_url`), as multipart/alternative text + HTML with a
//! `Message-ID` derived from the e-mail's id, so a resend after a crash
//! between the SMTP answer and the status write is recognisable as the
//! same message. With no server configured the e-mail is kept as
//! `logged` (readable at `GET /v1/emails/{id}`). The retry policy lives in
//! the job (`jobs/email.rs`); nothing here retries.
//!
//! What must not live here: SQL (`storage/emails.rs`) and HTTP.

pub mod templates;

use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::context::AccountId;
use crate::error::{Error, Result};
use crate::jobs::{self, JobKind, NewJob};
use crate::storage::emails::{EmailRow, NewEmailRow};
use crate::storage::Conn;

pub use templates::{Rendered, Template};

/// How long one SMTP conversation may take; below the job's timeout.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where an e-mail is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailStatus {
    /// Waiting to be sent, or to be tried again (`last_error` says why).
    Queued,
    /// The SMTP server accepted it (final).
    Sent,
    /// The SMTP server refused it for good (a 5xx answer), or obol stopped
    /// retrying (final).
    Failed,
    /// No SMTP server is configured: kept and listed, not sent (final).
    Logged,
}

impl EmailStatus {
    pub const ALL: [EmailStatus; 4] = [
        EmailStatus::Queued,
        EmailStatus::Sent,
        EmailStatus::Failed,
        EmailStatus::Logged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EmailStatus::Queued => "queued",
            EmailStatus::Sent => "sent",
            EmailStatus::Failed => "failed",
            EmailStatus::Logged => "logged",
        }
    }

    pub fn parse(s: &str) -> Option<EmailStatus> {
        EmailStatus::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// The name e-mails sign with: `email.business_name`, else
/// `invoices.business_name`, else "obol".
pub fn business_name(config: &Config) -> String {
    config
        .email
        .business_name
        .clone()
        .or_else(|| config.invoices.business_name.clone())
        .unwrap_or_else(|| "obol".to_string())
}

/// The `send_email` job's dedupe key for an e-mail.
pub fn job_dedupe_key(email_id: &str) -> String {
    format!("{}:{email_id}", JobKind::SendEmail.as_str())
}

/// Queues `template` to `to`, in the caller's transaction, with the job
/// that sends it. `None`: an e-mail named `dedupe_key` exists already
/// (in any status), and nothing was written. Refuses an address that is
/// not one (`invalid_body`) and a template that does not render (an
/// unknown currency, a link that is not http(s)).
pub async fn enqueue(
    conn: &mut Conn<'_>,
    account: &AccountId,
    customer_id: Option<&str>,
    to: &str,
    template: &Template,
    dedupe_key: &str,
    now: DateTime<Utc>,
) -> Result<Option<EmailRow>> {
    let to = to.trim();
    to.parse::<Mailbox>()
        .map_err(|_| Error::InvalidBody(format!("{to:?} is not an e-mail address")))?;
    let rendered = template.render()?;
    let Some(row) = conn
        .insert_email(&NewEmailRow {
            account_id: account.as_str(),
            customer_id,
            to_address: to,
            template: template.name(),
            subject: &rendered.subject,
            text_body: &rendered.text,
            html_body: &rendered.html,
            dedupe_key,
            now,
        })
        .await?
    else {
        return Ok(None);
    };
    jobs::enqueue(
        conn,
        &NewJob {
            kind: JobKind::SendEmail,
            payload: json!({"email_id": row.id}),
            account_id: account.clone(),
            dedupe_key: Some(job_dedupe_key(&row.id)),
            run_at: now,
        },
    )
    .await?;
    // Runners of this process look at once (a runner that wakes before the
    // caller commits finds the job on its next poll).
    jobs::wake();
    Ok(Some(row))
}

/// What `Mailer::send` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The SMTP server accepted the message.
    Sent,
    /// No SMTP server is configured; the e-mail was logged (without its body).
    Logged,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// A 5xx answer or a message that cannot be built: sending it again
    /// gives the same answer. Otherwise (a 4xx answer, a connection or TLS
    /// failure, a timeout) a later attempt may succeed.
    pub permanent: bool,
    pub message: String,
}

/// The configured SMTP server and sender. `Debug` shows the server's host
/// and port only: the URL may carry a password.
pub struct Mailer {
    smtp: Option<Smtp>,
    business_name: String,
}

struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for logs.
    server: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.smtp.as_ref().map(|s| s.server.as_str()))
            .field("from", &self.smtp.as_ref().map(|s| s.from.to_string()))
            .field("business_name", &self.business_name)
            .finish()
    }
}

impl Mailer {
    /// From `email.*` (validated at load: the URL parses, `from` is a
    /// mailbox and is set with the URL).
    pub fn from_config(config: &Config) -> anyhow::Result<Mailer> {
        let business_name = business_name(config);
        let Some(url) = &config.email.smtp_url else {
            return Ok(Mailer {
                smtp: None,
                business_name,
            });
        };
        let url = url.expose_secret();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("email.smtp_url: {e}"))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let server = url::Url::parse(url)
            .ok()
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or_default(),
                    u.port().map(|p| p.to_string()).unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let from = config
            .email
            .from
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("email.from: is required when email.smtp_url is set"))?
            .parse::<Mailbox>()
            .map_err(|e| anyhow::anyhow!("email.from: {e}"))?;
        Ok(Mailer {
            smtp: Some(Smtp {
                transport,
                from,
                server,
            }),
            business_name,
        })
    }

    /// No SMTP server: e-mails are logged, not sent.
    pub fn unconfigured(business_name: impl Into<String>) -> Mailer {
        Mailer {
            smtp: None,
            business_name: business_name.into(),
        }
    }

    /// Connects to the SMTP server, greets it (EHLO) and sends NOOP, for
    /// `obol doctor`: `None` when no server is configured, else the server
    /// (`host:port`) and whether it answered.
    pub async fn probe(&self) -> Option<(String, std::result::Result<(), String>)> {
        let smtp = self.smtp.as_ref()?;
        let outcome = match smtp.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the server did not answer NOOP".to_string()),
            Err(e) => Err(e.to_string()),
        };
        Some((smtp.server.clone(), outcome))
    }

    pub fn is_configured(&self) -> bool {
        self.smtp.is_some()
    }

    pub fn business_name(&self) -> &str {
        &self.business_name
    }

    /// The `Message-ID` of an e-mail: `<eml_…@the sender's domain>`, the
    /// same on every attempt.
    pub fn message_id(&self, email_id: &str) -> Option<String> {
        self.smtp
            .as_ref()
            .map(|s| format!("<{email_id}@{}>", s.from.email.domain()))
    }

    /// Sends one stored e-mail (or, with no server configured, logs it).
    pub async fn send(&self, email: &EmailRow) -> std::result::Result<Delivery, SendError> {
        let Some(smtp) = &self.smtp else {
            tracing::info!(email = %email.id, template = %email.template, to = %email.to_address,
                subject = %email.subject, "no SMTP server configured (email.smtp_url): e-mail kept as logged, not sent");
            return Ok(Delivery::Logged);
        };
        let permanent = |message: String| SendError {
            permanent: true,
            message,
        };
        let to = email
            .to_address
            .parse::<Mailbox>()
            .map_err(|e| permanent(format!("the recipient is not an address: {e}")))?;
        let message = Message::builder()
            .from(smtp.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(self.message_id(&email.id))
            .multipart(MultiPart::alternative_plain_html(
                email.text_body.clone(),
                email.html_body.clone(),
            ))
            .map_err(|e| permanent(format!("the message could not be built: {e}")))?;
        match smtp.transport.send(message).await {
            Ok(_) => {
                tracing::info!(email = %email.id, template = %email.template, server = %smtp.server, "e-mail sent");
                Ok(Delivery::Sent)
            }
            Err(e) => Err(SendError {
                permanent: e.is_permanent(),
                message: format!("SMTP {}: {e}", smtp.server),
            }),
        }
    }
}
