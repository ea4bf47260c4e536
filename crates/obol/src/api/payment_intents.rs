//! `/v1/payment-intents`: pay-first authorizations, intents for existing
//! orders, their status and their release (rules in `ops::checkout`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{self, MaybeActor, OrderActor, SecretKey};
use super::json::Json;
use super::AppState;
use crate::error::{Error, Result};
use crate::ops::checkout::{
    self, IntentStatusOut, PaymentIntentIn, PaymentIntentOut, ReleaseIn, ReleasedOut,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_payment_intent))
        .routes(routes!(release_payment_intent))
        .routes(routes!(intent_status))
}

/// Creates a PaymentIntent: pay first, or pay an existing order.
///
/// Either `{amount, currency, customer_id?}` (pay first: authorize now,
/// create the order with `payment_reference` after) or `{order_id,
/// guest_token?}` (pay an existing order; a guest sends its token in the
/// body or `X-Guest-Token`). The answer has what Stripe.js needs: the
/// `client_secret` and the `publishable_key`. An `Idempotency-Key` makes a
/// retried pay-first call answer the same intent (200 instead of 201).
#[utoipa::path(post, path = "/v1/payment-intents", tag = "checkout",
    security(("secret_key" = []), ("customer_token" = []), ("guest_token" = []), ()),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried pay-first call answer the same intent.")),
    request_body = PaymentIntentIn,
    responses(
        (status = 201, description = "Created.", body = PaymentIntentOut),
        (status = 200, description = "The intent an earlier call with this `Idempotency-Key` (or for this order) created.", body = PaymentIntentOut),
    ),
    extensions(("x-error-codes" = json!([
        "invalid_id", "customer_not_found", "order_not_found", "payment_not_found", "amount_not_positive",
        "amount_too_large", "amount_precision", "amount_too_small", "currency_unsupported",
        "order_already_paid", "order_not_payable", "too_many_open_intents", "field_empty",
        "field_too_long", "field_invalid", "idempotency_key_reused", "stripe_invalid_request",
        "card_declined", "stripe_error"
    ]))),
)]
async fn create_payment_intent(
    State(state): State<AppState>,
    MaybeActor(actor, account): MaybeActor,
    headers: HeaderMap,
    Json(body): Json<PaymentIntentIn>,
) -> Result<(StatusCode, Json<PaymentIntentOut>)> {
    let actor = actor
        .or_else(|| {
            body.guest_token
                .as_deref()
                .map(|t| auth::guest(t, account.clone()))
        })
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

/// The intent's Stripe status and the local payment state.
///
/// For the secret key, the paying customer, or the order's guest; 404 for
/// anyone else.
#[utoipa::path(get, path = "/v1/payment-intents/{id}/status", tag = "checkout",
    security(("secret_key" = []), ("customer_token" = []), ("guest_token" = [])),
    params(
        ("id" = String, Path, description = "Stripe's `pi_…`."),
        ("guest_token" = Option<String>, Query, description = "The order's guest token, when it cannot travel in `X-Guest-Token`."),
    ),
    responses((status = 200, description = "The statuses.", body = IntentStatusOut)),
    extensions(("x-error-codes" = json!(["payment_not_found", "stripe_invalid_request", "stripe_error"]))),
)]
async fn intent_status(
    State(state): State<AppState>,
    OrderActor(actor): OrderActor,
    Path(id): Path<String>,
) -> Result<Json<IntentStatusOut>> {
    Ok(Json(
        checkout::intent_status(state.ctx(), &actor, &id).await?,
    ))
}

/// Checkout failed after authorization: releases it (never a refund).
///
/// With Stripe unreachable the release is queued and retried, and the
/// answer says `cancel_pending` at once.
#[utoipa::path(post, path = "/v1/payment-intents/{id}/release", tag = "checkout",
    security(("secret_key" = [])),
    params(("id" = String, Path, description = "Stripe's `pi_…`.")),
    request_body = ReleaseIn,
    responses((status = 200, description = "Released, or queued for release.", body = ReleasedOut)),
    extensions(("x-error-codes" = json!([
        "payment_not_found", "field_empty", "field_too_long", "field_invalid",
        "payment_already_captured", "payment_not_capturable", "stripe_invalid_request", "stripe_error"
    ]))),
)]
async fn release_payment_intent(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(body): Json<ReleaseIn>,
) -> Result<Json<ReleasedOut>> {
    Ok(Json(
        checkout::release_intent(state.ctx(), &actor, &id, body).await?,
    ))
}
