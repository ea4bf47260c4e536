//! `/v1/payments`: the ledger's payments, their timelines and refunds
//! (rules in `ops::payments` and `ops::refunds`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::context::Actor;
use crate::error::Result;
use crate::ops::payments::{self, ListPayments, PaymentOut};
use crate::ops::refunds::{self, RefundIn, RefundOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_payments))
        .routes(routes!(get_payment))
        .routes(routes!(list_refunds, create_refund))
}

/// Payments, newest first.
///
/// A customer token sees only that customer's payments.
#[utoipa::path(get, path = "/v1/payments", tag = "payments",
    security(("secret_key" = []), ("customer_token" = [])),
    params(ListPayments),
    responses((status = 200, description = "A page of payments.", body = crate::openapi::pages::PaymentPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_payments(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<ListPayments>,
) -> Result<Json<Page<PaymentOut>>> {
    Ok(Json(payments::list(state.ctx(), &actor, q).await?))
}

/// One payment with its timeline, for the secret key or its customer.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments",
    security(("secret_key" = []), ("customer_token" = [])),
    params(("id" = crate::ids::PaymentId, Path, description = "The payment.")),
    responses((status = 200, description = "The payment.", body = PaymentOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "payment_not_found"]))),
)]
async fn get_payment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<PaymentOut>> {
    Ok(Json(payments::get(state.ctx(), &actor, &id).await?))
}

/// Refunds all or part of a captured payment (secret key only).
///
/// The refund is recorded before Stripe is called; with Stripe
/// unreachable it answers `pending_submission` and a job submits it.
#[utoipa::path(post, path = "/v1/payments/{id}/refunds", tag = "payments",
    security(("secret_key" = [])),
    params(("id" = crate::ids::PaymentId, Path, description = "The payment.")),
    request_body = RefundIn,
    responses((status = 201, description = "Recorded (and submitted, unless `pending_submission`).", body = RefundOut)),
    extensions(("x-error-codes" = json!([
        "invalid_id", "payment_not_found", "amount_not_positive", "amount_too_large", "amount_precision",
        "invalid_refund_reason",
        "payment_not_captured", "payment_not_refundable", "payment_fully_refunded",
        "refund_exceeds_remaining", "stripe_invalid_request", "stripe_error"
    ]))),
)]
async fn create_refund(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(body): Json<RefundIn>,
) -> Result<(StatusCode, Json<RefundOut>)> {
    let out = refunds::create(state.ctx(), &actor, &id, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// A payment's refunds, newest first.
#[utoipa::path(get, path = "/v1/payments/{id}/refunds", tag = "payments",
    security(("secret_key" = []), ("customer_token" = [])),
    params(("id" = crate::ids::PaymentId, Path, description = "The payment.")),
    responses((status = 200, description = "The refunds (one page).", body = crate::openapi::pages::RefundPage)),
    extensions(("x-error-codes" = json!(["invalid_id", "payment_not_found"]))),
)]
async fn list_refunds(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Page<RefundOut>>> {
    Ok(Json(
        payments::list_refunds(state.ctx(), &actor, &id).await?,
    ))
}
