//! `/v1/orders`: what a customer or a guest buys (rules in `ops::orders`).
//!
//! Who may create one: the secret key. Who may see an order: the secret key, the owning customer's token, or
//! the order's guest token (`X-Guest-Token`, or `?guest_token=`); anyone
//! else gets 404, and no credential at all 401.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{OrderActor, SecretKey};
use super::json::Json;
use super::AppState;
use crate::context::Actor;
use crate::error::Result;
use crate::ops::orders::{self, OrderIn, OrderOut, OrderPatch};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_order))
        .routes(routes!(get_order, update_order))
}

/// Creates an order; obol computes its total.
///
/// Two shapes: priced `line_items` (and `shipping`), secret key only
/// since the request carries the prices; or a cart (`items` of catalog
/// products, `shipping_method_id`), priced by obol from the catalog, which
/// a customer token (an agent) may also send, for itself. Totals sent by
/// the client are ignored. With `payment_reference` (a pay-first `pi_…` whose
/// amount and currency equal the total) the order is confirmed at once.
/// A guest order (no `customer_id`) answers its `guest_token` once.
#[utoipa::path(post, path = "/v1/orders", tag = "orders",
    security(("secret_key" = []), ("customer_token" = [])),
    request_body = OrderIn,
    responses((status = 201, description = "Created.", body = OrderOut)),
    extensions(("x-error-codes" = json!([
        "field_empty", "field_too_long", "field_invalid", "invalid_email", "invalid_line_items",
        "invalid_quantity", "amount_not_positive", "amount_too_large", "amount_precision",
        "amount_negative", "amount_too_small", "currency_unsupported", "invalid_id", "customer_not_found",
        "invalid_payment_reference", "payment_reference_in_use", "amount_mismatch",
        "payment_not_authorized", "secret_key_required", "unknown_product", "product_inactive", "cart_currency_mixed",
        "insufficient_stock", "unknown_shipping_method", "shipping_method_inactive",
        "stripe_invalid_request", "stripe_error"
    ]))),
)]
async fn create_order(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<OrderIn>,
) -> Result<(StatusCode, Json<OrderOut>)> {
    let out = orders::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// An order with its timeline.
///
/// For the secret key, the owning customer's token, or the order's guest
/// token; 404 for anyone else.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders",
    security(("secret_key" = []), ("customer_token" = []), ("guest_token" = [])),
    params(
        ("id" = crate::ids::OrderId, Path, description = "The order."),
        ("guest_token" = Option<String>, Query, description = "The order's guest token, when it cannot travel in `X-Guest-Token`."),
    ),
    responses((status = 200, description = "The order.", body = OrderOut)),
    extensions(("x-error-codes" = json!(["invalid_id", "order_not_found"]))),
)]
async fn get_order(
    State(state): State<AppState>,
    OrderActor(actor): OrderActor,
    Path(id): Path<String>,
) -> Result<Json<OrderOut>> {
    Ok(Json(orders::get(state.ctx(), &actor, &id).await?))
}

/// Moves an order along its transition table.
///
/// Secret key only. `confirmed → shipped` captures an authorized payment
/// when `checkout.capture_on` says so; `cancelled` releases an
/// authorization (never a refund).
#[utoipa::path(patch, path = "/v1/orders/{id}", tag = "orders",
    security(("secret_key" = [])),
    params(("id" = crate::ids::OrderId, Path, description = "The order.")),
    request_body = OrderPatch,
    responses((status = 200, description = "The order after the move.", body = OrderOut)),
    extensions(("x-error-codes" = json!([
        "invalid_id", "order_not_found", "field_invalid", "invalid_order_transition", "order_changed",
        "authorization_expired", "payment_not_capturable", "stripe_invalid_request", "card_declined", "stripe_error"
    ]))),
)]
async fn update_order(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(patch): Json<OrderPatch>,
) -> Result<Json<OrderOut>> {
    Ok(Json(
        orders::update_status(state.ctx(), &actor, &id, patch).await?,
    ))
}
