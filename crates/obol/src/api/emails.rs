//! `/v1/emails`: the member e-mail outbox, for operators (rules in
//! `ops::emails`). Secret key only.

use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::error::Result;
use crate::ops::emails::{self, EmailOut, ListQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_emails))
        .routes(routes!(get_email))
}

/// E-mails to members, newest first, without their bodies.
///
/// Each is queued with the change that causes it, named by the use case
/// (`dedupe_key`) so it is sent once, and sent by a `send_email` job.
/// Without an SMTP server configured they are kept as `logged`.
#[utoipa::path(get, path = "/v1/emails", tag = "emails",
    security(("secret_key" = [])),
    params(ListQuery),
    responses((status = 200, description = "A page of e-mails.", body = crate::openapi::pages::EmailPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_emails(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<EmailOut>>> {
    Ok(Json(emails::list(state.ctx(), &actor, q).await?))
}

/// An e-mail with its subject, plain-text body and HTML body.
#[utoipa::path(get, path = "/v1/emails/{id}", tag = "emails",
    security(("secret_key" = [])),
    params(("id" = crate::ids::EmailId, Path, description = "The e-mail.")),
    responses((status = 200, description = "The e-mail.", body = EmailOut)),
    extensions(("x-error-codes" = json!(["email_not_found"]))),
)]
async fn get_email(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<EmailOut>> {
    Ok(Json(emails::get(state.ctx(), &actor, &id).await?))
}
