//! `/v1/payment-links`: links an agent hands a customer (rules in
//! `ops::payment_links`). Creating one takes the secret key or a customer
//! token; reading and completing one takes only its token, which is the
//! capability, so those routes are rate limited per client address.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::PublicCaller;
use super::json::Json;
use super::AppState;
use crate::context::Actor;
use crate::error::Result;
use crate::ops::payment_links::{
    self, CompleteIn, CompletedOut, PaymentLinkIn, PaymentLinkOut, PublicLinkOut,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_payment_link))
        .routes(routes!(get_payment_link))
        .routes(routes!(complete_payment_link))
}

/// Creates a payment link for an order, or for a cart.
///
/// With `order_id`: a pending order. With a cart (`items`,
/// `shipping_method_id`, addresses, `email`): obol prices it from the
/// catalog and creates the pending order. Either way obol creates a
/// manual-capture PaymentIntent of its own total and answers the link
/// (`payment_url`, and its `token`, shown only here). It expires after
/// `payment_links.ttl_seconds` (30 minutes by default).
#[utoipa::path(post, path = "/v1/payment-links", tag = "payment_links",
    security(("secret_key" = []), ("customer_token" = [])),
    request_body = PaymentLinkIn,
    responses((status = 201, description = "Created.", body = PaymentLinkOut)),
    extensions(("x-error-codes" = json!([
        "order_not_found", "customer_not_found", "order_not_payable", "order_already_paid",
        "unknown_product", "product_inactive", "cart_currency_mixed", "insufficient_stock",
        "unknown_shipping_method", "shipping_method_inactive", "invalid_line_items", "invalid_quantity",
        "invalid_email", "field_empty", "field_too_long", "field_invalid", "amount_not_positive",
        "amount_too_large", "amount_precision", "amount_too_small", "currency_unsupported",
        "stripe_invalid_request", "stripe_error"
    ]))),
)]
async fn create_payment_link(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<PaymentLinkIn>,
) -> Result<(StatusCode, Json<PaymentLinkOut>)> {
    let out = payment_links::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// What the payment page needs to take the card (no credential: the
/// token is the capability).
///
/// Only the client secret, the publishable key, the amount, the currency
/// and the e-mail, never an address. Unknown: 404; expired or used: 410.
#[utoipa::path(get, path = "/v1/payment-links/{token}", tag = "payment_links",
    security(()),
    params(("token" = String, Path, description = "The link's token.")),
    responses((status = 200, description = "The link can be paid.", body = PublicLinkOut)),
    extensions(("x-error-codes" = json!([
        "payment_link_not_found", "payment_link_expired", "payment_link_used", "rate_limited", "stripe_error"
    ]))),
)]
async fn get_payment_link(
    State(state): State<AppState>,
    caller: PublicCaller,
    Path(token): Path<String>,
) -> Result<Json<PublicLinkOut>> {
    let result = payment_links::get_public(state.ctx(), &token).await;
    caller.saw(&state, &result);
    Ok(Json(result?))
}

/// Completes a link after the page confirmed its PaymentIntent.
///
/// Checks that the link is pending and unexpired, that the intent is the
/// link's, and that Stripe holds an authorization (or a charge) of exactly
/// the order's total; then confirms the order and captures per
/// `checkout.capture_on`. Of concurrent calls exactly one proceeds (409
/// `payment_link_busy` for the others). A total changed since the link was
/// made answers 409 `amount_mismatch`: the authorization is released and
/// nothing is charged. A card not yet authorized answers 422
/// `payment_not_authorized` and the link can be paid again.
#[utoipa::path(post, path = "/v1/payment-links/{token}/complete", tag = "payment_links",
    security(()),
    params(("token" = String, Path, description = "The link's token.")),
    request_body = CompleteIn,
    responses((status = 200, description = "Paid: the order is confirmed.", body = CompletedOut)),
    extensions(("x-error-codes" = json!([
        "payment_link_not_found", "payment_link_expired", "payment_link_used", "payment_link_busy",
        "payment_intent_mismatch", "payment_not_authorized", "amount_mismatch", "order_not_payable",
        "rate_limited", "stripe_error"
    ]))),
)]
async fn complete_payment_link(
    State(state): State<AppState>,
    caller: PublicCaller,
    Path(token): Path<String>,
    Json(body): Json<CompleteIn>,
) -> Result<Json<CompletedOut>> {
    let result = payment_links::complete(state.ctx(), &token, body).await;
    caller.saw(&state, &result);
    Ok(Json(result?))
}
