//! `/v1/invoices`, `/v1/public/invoices/{token}`, `/v1/fee-settings` and
//! `/v1/sync-jobs` (rules in `ops::invoices`, `ops::fees` and
//! `ops::sync_jobs`). The public routes take the link's token as the
//! capability and are rate limited per client address; the others take
//! the secret key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{PublicCaller, SecretKey};
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::context::Actor;
use crate::error::{Error, Result};
use crate::ops::fees::{self, FeeSettingsIn, FeeSettingsOut};
use crate::ops::invoices::{
    self, InvoiceIn, InvoiceIntentOut, InvoiceOut, ListQuery, PublicInvoiceOut,
};
use crate::ops::sync_jobs::{self, SyncJobOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_invoice, list_invoices))
        .routes(routes!(get_invoice))
        .routes(routes!(process_invoice))
        .routes(routes!(void_invoice))
        .routes(routes!(pay_invoice))
        .routes(routes!(get_public_invoice))
        .routes(routes!(
            get_fee_settings,
            put_fee_settings,
            delete_fee_settings
        ))
        .routes(routes!(list_sync_jobs))
        .routes(routes!(get_sync_job))
        .routes(routes!(retry_sync_job))
}

/// Creates a draft invoice, with a first link (`payment_url`).
///
/// With `pass_fees` the card fee is a separate line, grossed up so the
/// business nets the subtotal (`fee` shows the amount, the rate and where
/// it came from). A draft is not payable: its link shows "not issued yet"
/// until it is processed.
#[utoipa::path(post, path = "/v1/invoices", tag = "invoices",
    security(("secret_key" = [])),
    request_body = InvoiceIn,
    responses((status = 201, description = "The draft.", body = InvoiceOut)),
    extensions(("x-error-codes" = json!([
        "customer_not_found", "currency_unsupported", "invalid_line_items", "invalid_quantity",
        "field_empty", "field_too_long", "field_invalid", "amount_not_positive", "amount_too_large",
        "amount_precision", "amount_too_small", "invoice_number_taken"
    ]))),
)]
async fn create_invoice(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<InvoiceIn>,
) -> Result<(StatusCode, Json<InvoiceOut>)> {
    let out = invoices::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Invoices, newest first; filter by `status` and `customer_id`.
#[utoipa::path(get, path = "/v1/invoices", tag = "invoices",
    security(("secret_key" = [])),
    params(ListQuery),
    responses((status = 200, description = "A page of invoices.", body = crate::openapi::pages::InvoicePage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_invoices(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<InvoiceOut>>> {
    Ok(Json(invoices::list(state.ctx(), &actor, q).await?))
}

/// An invoice with its timeline and every PaymentIntent made for it.
#[utoipa::path(get, path = "/v1/invoices/{id}", tag = "invoices",
    security(("secret_key" = [])),
    params(("id" = crate::ids::InvoiceId, Path, description = "The invoice.")),
    responses((status = 200, description = "The invoice.", body = InvoiceOut)),
    extensions(("x-error-codes" = json!(["invoice_not_found"]))),
)]
async fn get_invoice(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<InvoiceOut>> {
    Ok(Json(invoices::get(state.ctx(), &actor, &id).await?))
}

/// Makes a draft payable: freezes its fee and answers a `payment_url`.
///
/// Each link's token (32 random bytes) is stored hashed, so a
/// `payment_url` is only in the answer that minted it; the draft's link
/// works too. Processing a processed invoice again mints another link
/// (its fee and total stay as issued).
#[utoipa::path(post, path = "/v1/invoices/{id}/process", tag = "invoices",
    security(("secret_key" = [])),
    params(("id" = crate::ids::InvoiceId, Path, description = "The invoice.")),
    responses((status = 200, description = "Processed, with its link.", body = InvoiceOut)),
    extensions(("x-error-codes" = json!([
        "invoice_not_found", "invoice_status_conflict", "amount_too_large", "amount_too_small", "amount_precision"
    ]))),
)]
async fn process_invoice(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<InvoiceOut>> {
    Ok(Json(invoices::process(state.ctx(), &actor, &id).await?))
}

/// Voids a draft or processed invoice; its live PaymentIntent is canceled.
///
/// 409 `invoice_status_conflict` for a paid (or partially paid) invoice;
/// 422 `invoice_not_payable` when it was paid just now.
#[utoipa::path(post, path = "/v1/invoices/{id}/void", tag = "invoices",
    security(("secret_key" = [])),
    params(("id" = crate::ids::InvoiceId, Path, description = "The invoice.")),
    responses((status = 200, description = "Void.", body = InvoiceOut)),
    extensions(("x-error-codes" = json!([
        "invoice_not_found", "invoice_status_conflict", "invoice_not_payable", "stripe_error"
    ]))),
)]
async fn void_invoice(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<InvoiceOut>> {
    Ok(Json(invoices::void(state.ctx(), &actor, &id).await?))
}

/// The PaymentIntent a customer pays the invoice with (the token is the
/// capability; the secret key or the invoice customer's token work too).
///
/// Only a processed invoice with its whole balance due is payable (422
/// `invoice_not_payable` says why otherwise). One live intent per
/// invoice: asking again answers it (`created: false`, 200) while Stripe
/// can still confirm it; one stuck in a bank challenge or canceled is
/// replaced (canceled at Stripe, on the timeline) by a new one (201).
#[utoipa::path(post, path = "/v1/public/invoices/{token}/payment-intent", tag = "invoices",
    security((), ("secret_key" = []), ("customer_token" = [])),
    params(("token" = String, Path, description = "The invoice link's token.")),
    responses(
        (status = 201, description = "A new intent.", body = InvoiceIntentOut),
        (status = 200, description = "The invoice's live intent.", body = InvoiceIntentOut),
    ),
    extensions(("x-error-codes" = json!([
        "invoice_not_found", "invoice_not_payable", "invalid_api_key", "invalid_customer_token",
        "rate_limited", "amount_too_small", "stripe_error", "stripe_invalid_request"
    ]))),
)]
async fn pay_invoice(
    State(state): State<AppState>,
    caller: PublicCaller,
    credential: std::result::Result<Actor, Error>,
    Path(token): Path<String>,
) -> Result<(StatusCode, Json<InvoiceIntentOut>)> {
    let credential = match credential {
        Ok(actor) => Some(actor),
        Err(Error::Unauthenticated) => None,
        Err(e) => return Err(e),
    };
    let result = invoices::pay(state.ctx(), &token, credential).await;
    caller.saw(&state, &result);
    let out = result?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)))
}

/// What the invoice page shows (no credential: the token is the capability).
#[utoipa::path(get, path = "/v1/public/invoices/{token}", tag = "invoices",
    security(()),
    params(("token" = String, Path, description = "The invoice link's token.")),
    responses((status = 200, description = "The invoice, as its customer sees it.", body = PublicInvoiceOut)),
    extensions(("x-error-codes" = json!(["invoice_not_found", "rate_limited", "stripe_error"]))),
)]
async fn get_public_invoice(
    State(state): State<AppState>,
    caller: PublicCaller,
    Path(token): Path<String>,
) -> Result<Json<PublicInvoiceOut>> {
    let result = invoices::get_public(state.ctx(), &token).await;
    caller.saw(&state, &result);
    Ok(Json(result?))
}

/// The fee rate this account's invoices pass on, and its source
/// (`integration`: set here; `default`: `fees.default.*`).
#[utoipa::path(get, path = "/v1/fee-settings", tag = "invoices",
    security(("secret_key" = [])),
    responses((status = 200, description = "The rate in effect.", body = FeeSettingsOut)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn get_fee_settings(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
) -> Result<Json<FeeSettingsOut>> {
    Ok(Json(fees::get(state.ctx(), &actor).await?))
}

/// Sets this account's fee rate (basis points plus a fixed part per
/// currency). Invoices processed from now on use it.
#[utoipa::path(put, path = "/v1/fee-settings", tag = "invoices",
    security(("secret_key" = [])),
    request_body = FeeSettingsIn,
    responses((status = 200, description = "The rate in effect.", body = FeeSettingsOut)),
    extensions(("x-error-codes" = json!(["invalid_fee_settings"]))),
)]
async fn put_fee_settings(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<FeeSettingsIn>,
) -> Result<Json<FeeSettingsOut>> {
    Ok(Json(fees::put(state.ctx(), &actor, body).await?))
}

/// Drops this account's own rate: the configured default applies again.
#[utoipa::path(delete, path = "/v1/fee-settings", tag = "invoices",
    security(("secret_key" = [])),
    responses((status = 200, description = "The rate in effect now (the default).", body = FeeSettingsOut)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn delete_fee_settings(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
) -> Result<Json<FeeSettingsOut>> {
    Ok(Json(fees::delete(state.ctx(), &actor).await?))
}

/// Accounting syncs of invoice payments, newest first; `status=failed`
/// lists those whose last attempt failed (retrying or given up).
#[utoipa::path(get, path = "/v1/sync-jobs", tag = "invoices",
    security(("secret_key" = [])),
    params(sync_jobs::ListQuery),
    responses((status = 200, description = "A page of syncs.", body = crate::openapi::pages::SyncJobPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_sync_jobs(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<sync_jobs::ListQuery>,
) -> Result<Json<Page<SyncJobOut>>> {
    Ok(Json(sync_jobs::list(state.ctx(), &actor, q).await?))
}

/// A sync with every attempt (`runs`).
#[utoipa::path(get, path = "/v1/sync-jobs/{id}", tag = "invoices",
    security(("secret_key" = [])),
    params(("id" = crate::ids::SyncJobId, Path, description = "The sync.")),
    responses((status = 200, description = "The sync.", body = SyncJobOut)),
    extensions(("x-error-codes" = json!(["sync_job_not_found"]))),
)]
async fn get_sync_job(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<SyncJobOut>> {
    Ok(Json(sync_jobs::get(state.ctx(), &actor, &id).await?))
}

/// Tries a failed sync again now (a fresh schedule once obol had stopped
/// retrying). 409 `sync_job_not_failed` otherwise.
#[utoipa::path(post, path = "/v1/sync-jobs/{id}/retry", tag = "invoices",
    security(("secret_key" = [])),
    params(("id" = crate::ids::SyncJobId, Path, description = "The sync.")),
    responses((status = 200, description = "The sync, queued.", body = SyncJobOut)),
    extensions(("x-error-codes" = json!(["sync_job_not_found", "sync_job_not_failed"]))),
)]
async fn retry_sync_job(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<SyncJobOut>> {
    Ok(Json(sync_jobs::retry(state.ctx(), &actor, &id).await?))
}
