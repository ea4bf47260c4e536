//! Saved cards: `/v1/customers/{id}/card-update-links`,
//! `/v1/customers/{id}/payment-methods` and the card-update page's public
//! routes `/v1/public/card-updates/{token}/*` (rules in
//! `ops::card_updates` and `ops::payment_methods`). The public routes take
//! the link's token as the capability and are rate limited per client
//! address.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::PublicCaller;
use super::json::{Json, OptionalJson};
use super::AppState;
use crate::context::Actor;
use crate::error::Result;
use crate::ops::card_updates::{
    self, CardSetupIntentOut, CardUpdateCompleteIn, CardUpdateCompleteOut, CardUpdateLinkIn,
    CardUpdateLinkOut,
};
use crate::ops::payment_methods::{self, PaymentMethodList};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_card_update_link))
        .routes(routes!(list_payment_methods))
        .routes(routes!(card_update_setup_intent))
        .routes(routes!(complete_card_update))
}

/// A link for the customer to save a card for future payments (the
/// secret key, or that customer's own token).
///
/// Creates the customer's Stripe customer the first time (one per
/// customer, however many calls race). The answer's `url` opens the
/// hosted card-update page until `expires_at`; its token (32 random
/// bytes) is stored hashed, so the url is only in this answer. The body
/// is optional: `ttl_seconds` 300–2592000, default 604800 (7 days).
#[utoipa::path(post, path = "/v1/customers/{id}/card-update-links", tag = "customers",
    security(("secret_key" = []), ("customer_token" = [])),
    params(("id" = crate::ids::CustomerId, Path, description = "The customer.")),
    request_body = Option<CardUpdateLinkIn>,
    responses((status = 201, description = "The link.", body = CardUpdateLinkOut)),
    extensions(("x-error-codes" = json!([
        "customer_not_found", "ttl_out_of_range", "invalid_customer_token", "stripe_error",
        "stripe_invalid_request"
    ]))),
)]
async fn create_card_update_link(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<CardUpdateLinkIn>,
) -> Result<(StatusCode, Json<CardUpdateLinkOut>)> {
    let ttl = body.and_then(|b| b.ttl_seconds);
    let out = card_updates::create_card_update_link(state.ctx(), &actor, &id, ttl).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The customer's saved cards, the default first (the secret key, or that
/// customer's own token).
///
/// From obol's copy, which Stripe's events keep; when it has none but the
/// customer has a Stripe customer, obol reads them from Stripe once.
#[utoipa::path(get, path = "/v1/customers/{id}/payment-methods", tag = "customers",
    security(("secret_key" = []), ("customer_token" = [])),
    params(("id" = crate::ids::CustomerId, Path, description = "The customer.")),
    responses((status = 200, description = "The cards.", body = PaymentMethodList)),
    extensions(("x-error-codes" = json!([
        "customer_not_found", "invalid_customer_token", "stripe_error", "stripe_invalid_request"
    ]))),
)]
async fn list_payment_methods(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<PaymentMethodList>> {
    Ok(Json(payment_methods::list(state.ctx(), &actor, &id).await?))
}

/// The SetupIntent the card-update page confirms with Stripe.js (no
/// credential: the link's token is the capability).
///
/// The link's live SetupIntent while Stripe can still confirm it, else a
/// new one (`usage=off_session`, cards only). Expired link: 410
/// `card_update_link_expired`.
#[utoipa::path(post, path = "/v1/public/card-updates/{token}/setup-intent", tag = "customers",
    security(()),
    params(("token" = String, Path, description = "The card-update link's token.")),
    responses((status = 200, description = "The SetupIntent.", body = CardSetupIntentOut)),
    extensions(("x-error-codes" = json!([
        "card_update_link_not_found", "card_update_link_expired", "rate_limited",
        "stripe_error", "stripe_invalid_request"
    ]))),
)]
async fn card_update_setup_intent(
    State(state): State<AppState>,
    caller: PublicCaller,
    Path(token): Path<String>,
) -> Result<Json<CardSetupIntentOut>> {
    let result = card_updates::setup_intent(state.ctx(), &token).await;
    caller.saw(&state, &result);
    Ok(Json(result?))
}

/// After the page confirmed the SetupIntent: its card becomes the
/// customer's default, at Stripe and in obol's copy.
///
/// The SetupIntent must have succeeded (else 409
/// `setup_intent_not_succeeded`) for this customer (else 422
/// `setup_intent_mismatch`).
#[utoipa::path(post, path = "/v1/public/card-updates/{token}/complete", tag = "customers",
    security(()),
    params(("token" = String, Path, description = "The card-update link's token.")),
    request_body = CardUpdateCompleteIn,
    responses((status = 200, description = "The saved card, now the default.", body = CardUpdateCompleteOut)),
    extensions(("x-error-codes" = json!([
        "card_update_link_not_found", "card_update_link_expired", "field_invalid",
        "setup_intent_mismatch", "setup_intent_not_succeeded", "rate_limited",
        "stripe_error", "stripe_invalid_request"
    ]))),
)]
async fn complete_card_update(
    State(state): State<AppState>,
    caller: PublicCaller,
    Path(token): Path<String>,
    Json(body): Json<CardUpdateCompleteIn>,
) -> Result<Json<CardUpdateCompleteOut>> {
    let result = card_updates::complete(state.ctx(), &token, body).await;
    caller.saw(&state, &result);
    Ok(Json(result?))
}
