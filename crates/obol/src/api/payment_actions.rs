//! The 3-D Secure action page's public routes,
//! `/v1/public/payment-actions/{token}*` (rules in `ops::payment_actions`).
//! The link's token is the capability; the routes are rate limited per
//! client address like the other token routes.

use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::PublicCaller;
use super::json::Json;
use super::AppState;
use crate::error::Result;
use crate::ops::payment_actions::{self, PaymentActionConfirmOut, PublicPaymentActionOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_payment_action))
        .routes(routes!(confirm_payment_action))
}

/// What the action page shows: the business, the amount, what it is for
/// and where the payment stands (no credential: the token is the
/// capability).
///
/// While the charge waits for the member, obol asks Stripe for its
/// PaymentIntent, so `status` turns `succeeded` as soon as the member
/// authenticated with their bank. Unknown links: 404; expired: 410.
#[utoipa::path(get, path = "/v1/public/payment-actions/{token}", tag = "charge_runs",
    security(()),
    params(("token" = String, Path, description = "The action link's token.")),
    responses((status = 200, description = "The payment.", body = PublicPaymentActionOut)),
    extensions(("x-error-codes" = json!([
        "payment_action_not_found", "payment_action_expired", "payment_action_closed",
        "rate_limited", "stripe_error", "stripe_invalid_request"
    ]))),
)]
async fn get_payment_action(
    State(state): State<AppState>,
    caller: PublicCaller,
    Path(token): Path<String>,
) -> Result<Json<PublicPaymentActionOut>> {
    let result = payment_actions::get_public(state.ctx(), &token).await;
    caller.saw(&state, &result);
    Ok(Json(result?))
}

/// Confirms the charge-run item's own PaymentIntent on session, with a
/// `return_url` back to the action page, and answers the bank's 3-D
/// Secure page for the page to open (`redirect_url`).
///
/// Never a second PaymentIntent, and nothing is sent to Stripe twice for
/// one click (an idempotency key derived from the item); a confirmation
/// already waiting for the bank answers the same page again. A payment
/// made already answers 409 `payment_action_completed`, before Stripe is
/// asked. A refused card answers 402 `card_declined`.
#[utoipa::path(post, path = "/v1/public/payment-actions/{token}/confirm", tag = "charge_runs",
    security(()),
    params(("token" = String, Path, description = "The action link's token.")),
    responses((status = 200, description = "Where the payment stands, and the bank's page to open.", body = PaymentActionConfirmOut)),
    extensions(("x-error-codes" = json!([
        "payment_action_not_found", "payment_action_expired", "payment_action_completed",
        "payment_action_closed", "card_declined", "idempotency_key_reused", "rate_limited",
        "stripe_error", "stripe_invalid_request"
    ]))),
)]
async fn confirm_payment_action(
    State(state): State<AppState>,
    caller: PublicCaller,
    Path(token): Path<String>,
) -> Result<Json<PaymentActionConfirmOut>> {
    let result = payment_actions::confirm(state.ctx(), &token).await;
    caller.saw(&state, &result);
    Ok(Json(result?))
}
