//! `/v1/subscriptions`, `/v1/scheduled-payments` and
//! `/v1/billing/invoices`: recurring gifts and plans, payments on future
//! dates, and the Stripe invoices that carry them out (rules in
//! `ops::subscriptions`, `ops::scheduled_payments`, `ops::billing_invoices`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::billing::views::{BillingInvoiceOut, SubscriptionOut};
use crate::error::Result;
use crate::ops::billing_invoices;
use crate::ops::scheduled_payments::{self, ScheduledPaymentIn, ScheduledPaymentOut};
use crate::ops::subscriptions::{self, CancelIn, SubscriptionIn};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_subscription, list_subscriptions))
        .routes(routes!(get_subscription))
        .routes(routes!(cancel_subscription))
        .routes(routes!(create_scheduled_payment, list_scheduled_payments))
        .routes(routes!(get_scheduled_payment))
        .routes(routes!(list_billing_invoices))
        .routes(routes!(get_billing_invoice))
}

/// Starts a subscription (a recurring gift or plan) on the customer's
/// default card, at Stripe, with inline price data.
#[utoipa::path(post, path = "/v1/subscriptions", tag = "billing",
    security(("secret_key" = [])),
    request_body = SubscriptionIn,
    responses((status = 201, description = "The subscription as Stripe answered it.", body = SubscriptionOut)),
    extensions(("x-error-codes" = json!(["customer_not_found", "no_default_card", "date_not_in_future",
        "amount_not_positive", "amount_precision", "amount_too_large", "currency_unsupported", "stripe_invalid_request", "stripe_error"]))),
)]
async fn create_subscription(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<SubscriptionIn>,
) -> Result<(StatusCode, Json<SubscriptionOut>)> {
    let out = subscriptions::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Subscriptions, newest first: obol's and those adopted from Stripe.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "billing",
    security(("secret_key" = [])),
    params(subscriptions::ListQuery),
    responses((status = 200, description = "A page of subscriptions.", body = crate::openapi::pages::SubscriptionPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_subscriptions(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<subscriptions::ListQuery>,
) -> Result<Json<Page<SubscriptionOut>>> {
    Ok(Json(subscriptions::list(state.ctx(), &actor, q).await?))
}

/// One subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "billing",
    security(("secret_key" = [])),
    params(("id" = crate::ids::SubscriptionId, Path, description = "The subscription.")),
    responses((status = 200, description = "The subscription.", body = SubscriptionOut)),
    extensions(("x-error-codes" = json!(["subscription_not_found"]))),
)]
async fn get_subscription(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionOut>> {
    Ok(Json(subscriptions::get(state.ctx(), &actor, &id).await?))
}

/// Cancels a subscription now, or at the end of its current period.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/cancel", tag = "billing",
    security(("secret_key" = [])),
    params(("id" = crate::ids::SubscriptionId, Path, description = "The subscription.")),
    request_body = CancelIn,
    responses((status = 200, description = "The subscription as Stripe answered the cancel.", body = SubscriptionOut)),
    extensions(("x-error-codes" = json!(["subscription_not_found", "subscription_not_cancelable", "stripe_invalid_request", "stripe_error"]))),
)]
async fn cancel_subscription(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(body): Json<CancelIn>,
) -> Result<Json<SubscriptionOut>> {
    Ok(Json(
        subscriptions::cancel(state.ctx(), &actor, &id, body).await?,
    ))
}

/// Schedules a payment on a future date: a Stripe invoice finalized and
/// charged from the default card on that date, not before.
#[utoipa::path(post, path = "/v1/scheduled-payments", tag = "billing",
    security(("secret_key" = [])),
    request_body = ScheduledPaymentIn,
    responses((status = 201, description = "The scheduled payment and its Stripe invoice.", body = ScheduledPaymentOut)),
    extensions(("x-error-codes" = json!(["customer_not_found", "no_default_card", "date_not_in_future",
        "amount_not_positive", "amount_precision", "amount_too_large", "currency_unsupported", "stripe_invalid_request", "stripe_error"]))),
)]
async fn create_scheduled_payment(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<ScheduledPaymentIn>,
) -> Result<(StatusCode, Json<ScheduledPaymentOut>)> {
    let out = scheduled_payments::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Scheduled payments, newest first.
#[utoipa::path(get, path = "/v1/scheduled-payments", tag = "billing",
    security(("secret_key" = [])),
    params(scheduled_payments::ListQuery),
    responses((status = 200, description = "A page of scheduled payments.", body = crate::openapi::pages::ScheduledPaymentPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_scheduled_payments(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<scheduled_payments::ListQuery>,
) -> Result<Json<Page<ScheduledPaymentOut>>> {
    Ok(Json(
        scheduled_payments::list(state.ctx(), &actor, q).await?,
    ))
}

/// One scheduled payment.
#[utoipa::path(get, path = "/v1/scheduled-payments/{id}", tag = "billing",
    security(("secret_key" = [])),
    params(("id" = crate::ids::ScheduledPaymentId, Path, description = "The scheduled payment.")),
    responses((status = 200, description = "The scheduled payment.", body = ScheduledPaymentOut)),
    extensions(("x-error-codes" = json!(["scheduled_payment_not_found"]))),
)]
async fn get_scheduled_payment(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<ScheduledPaymentOut>> {
    Ok(Json(
        scheduled_payments::get(state.ctx(), &actor, &id).await?,
    ))
}

/// Stripe invoices obol mirrors, newest first.
#[utoipa::path(get, path = "/v1/billing/invoices", tag = "billing",
    security(("secret_key" = [])),
    params(billing_invoices::ListQuery),
    responses((status = 200, description = "A page of Stripe invoices.", body = crate::openapi::pages::BillingInvoicePage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_billing_invoices(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<billing_invoices::ListQuery>,
) -> Result<Json<Page<BillingInvoiceOut>>> {
    Ok(Json(billing_invoices::list(state.ctx(), &actor, q).await?))
}

/// One mirrored Stripe invoice.
#[utoipa::path(get, path = "/v1/billing/invoices/{id}", tag = "billing",
    security(("secret_key" = [])),
    params(("id" = crate::ids::BillingInvoiceId, Path, description = "The invoice.")),
    responses((status = 200, description = "The invoice.", body = BillingInvoiceOut)),
    extensions(("x-error-codes" = json!(["billing_invoice_not_found"]))),
)]
async fn get_billing_invoice(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<BillingInvoiceOut>> {
    Ok(Json(billing_invoices::get(state.ctx(), &actor, &id).await?))
}
