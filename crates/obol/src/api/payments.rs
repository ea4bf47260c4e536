//! `/v1/payments`: the ledger's payments, their timelines and refunds
//! (rules in `ops::payments` and `ops::refunds`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::context::Actor;
use crate::error::Result;
use crate::ops::payments::{self, ListPayments, PaymentOut};
use crate::ops::refunds::{self, RefundIn, RefundOut};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/payments", get(list_payments))
        .route("/v1/payments/{id}", get(get_payment))
        .route(
            "/v1/payments/{id}/refunds",
            get(list_refunds).post(create_refund),
        )
}

/// Newest first. A customer token sees only that customer's payments.
async fn list_payments(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<ListPayments>,
) -> Result<Json<Page<PaymentOut>>> {
    Ok(Json(payments::list(state.ctx(), &actor, q).await?))
}

/// One payment with its timeline, for the secret key or its customer.
async fn get_payment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<PaymentOut>> {
    Ok(Json(payments::get(state.ctx(), &actor, &id).await?))
}

/// Refunds all or part of a captured payment (secret key only).
async fn create_refund(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(body): Json<RefundIn>,
) -> Result<(StatusCode, Json<RefundOut>)> {
    let out = refunds::create(state.ctx(), &actor, &id, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

async fn list_refunds(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Page<RefundOut>>> {
    Ok(Json(
        payments::list_refunds(state.ctx(), &actor, &id).await?,
    ))
}
