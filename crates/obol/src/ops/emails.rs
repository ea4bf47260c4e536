//! Member e-mails as operators see them: the outbox, newest first, and one
//! e-mail with its bodies. Secret key only. E-mails are queued by the use
//! cases that cause them (`email::enqueue`) and sent by the `send_email`
//! job; nothing here sends.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pagination::{self, Cursor, Page};
use crate::context::{Actor, Ctx};
use crate::email::EmailStatus;
use crate::error::{Error, Resource, Result};
use crate::ids::{CustomerId, EmailId};
use crate::storage::emails::EmailRow;

/// An e-mail to a member.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmailOut {
    #[schema(value_type = crate::ids::EmailId)]
    pub id: String,
    /// The customer it is for, when there is one.
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    pub to: String,
    /// payment_action_required or card_update_requested.
    pub template: String,
    pub subject: String,
    #[schema(value_type = EmailStatus)]
    pub status: String,
    /// The logical e-mail, as the use case that queued it named it: each
    /// is sent once.
    pub dedupe_key: String,
    /// Send attempts made.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The plain-text body (on `GET /v1/emails/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_body: Option<String>,
    /// The HTML body (on `GET /v1/emails/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html_body: Option<String>,
}

impl EmailOut {
    fn of(r: EmailRow, bodies: bool) -> EmailOut {
        let (text_body, html_body) = if bodies {
            (Some(r.text_body), Some(r.html_body))
        } else {
            (None, None)
        };
        EmailOut {
            id: r.id,
            customer_id: r.customer_id,
            to: r.to_address,
            template: r.template,
            subject: r.subject,
            status: r.status,
            dedupe_key: r.dedupe_key,
            attempts: r.attempts,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            sent_at: r.sent_at,
            text_body,
            html_body,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only e-mails in this status.
    #[param(value_type = Option<EmailStatus>)]
    pub status: Option<String>,
    /// Only this customer's e-mails.
    #[param(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The account's e-mails newest first, optionally of one status and one
/// customer; without their bodies.
pub async fn list(ctx: &Ctx, actor: &Actor, q: ListQuery) -> Result<Page<EmailOut>> {
    actor.require_secret()?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            EmailStatus::parse(s).ok_or_else(|| {
                Error::InvalidQuery("status is queued, sent, failed or logged".into())
            })
        })
        .transpose()?;
    let customer = q
        .customer_id
        .as_deref()
        .map(|c| {
            CustomerId::parse(c)
                .map_err(|_| Error::InvalidQuery(format!("customer_id {c:?} is not a cus_ id")))
        })
        .transpose()?;
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut h = ctx.store().acquire().await?;
    let rows = h
        .conn()
        .list_emails(
            actor.account(),
            status.map(EmailStatus::as_str),
            customer.as_ref().map(CustomerId::as_str),
            before.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    })
    .map(|r| EmailOut::of(r, false)))
}

/// One e-mail with its subject and both bodies.
pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<EmailOut> {
    actor.require_secret()?;
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = EmailId::parse(id).map_err(|_| Error::NotFound(Resource::Email))?;
    let mut h = ctx.store().acquire().await?;
    let row = h
        .conn()
        .get_email(actor.account(), id.as_str())
        .await?
        .ok_or(Error::NotFound(Resource::Email))?;
    Ok(EmailOut::of(row, true))
}
