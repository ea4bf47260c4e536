//! `/v1/payment-intents`: pay-first authorizations, intents for existing
//! orders, their status and their release (rules in `ops::checkout`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use super::auth::{self, MaybeActor, OrderActor, SecretKey};
use super::json::Json;
use super::AppState;
use crate::error::{Error, Result};
use crate::ops::checkout::{self, IntentStatusOut, PaymentIntentIn, PaymentIntentOut, ReleaseIn};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/payment-intents", post(create_payment_intent))
        .route(
            "/v1/payment-intents/{id}/release",
            post(release_payment_intent),
        )
        .route("/v1/payment-intents/{id}/status", get(intent_status))
}

/// Either `{amount, currency, customer_id?}` (pay first) or `{order_id,
/// guest_token?}` (pay an existing order). An `Idempotency-Key` header
/// makes a retried pay-first call return the same intent.
async fn create_payment_intent(
    State(state): State<AppState>,
    MaybeActor(actor): MaybeActor,
    headers: HeaderMap,
    Json(body): Json<PaymentIntentIn>,
) -> Result<(StatusCode, Json<PaymentIntentOut>)> {
    let actor = actor
        .or_else(|| body.guest_token.as_deref().map(auth::guest))
        .ok_or(Error::Unauthenticated)?;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let made = checkout::create_intent(state.ctx(), &actor, body, key).await?;
    let status = if made.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(made.intent)))
}

/// The intent's Stripe status and the local payment state, for the secret
/// key, the paying customer, or the order's guest; 404 for anyone else.
async fn intent_status(
    State(state): State<AppState>,
    OrderActor(actor): OrderActor,
    Path(id): Path<String>,
) -> Result<Json<IntentStatusOut>> {
    Ok(Json(
        checkout::intent_status(state.ctx(), &actor, &id).await?,
    ))
}

/// Checkout failed after authorization: cancel it (never a refund).
async fn release_payment_intent(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(body): Json<ReleaseIn>,
) -> Result<Json<Value>> {
    Ok(Json(
        checkout::release_intent(state.ctx(), &actor, &id, body).await?,
    ))
}
