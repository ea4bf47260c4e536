//! `/v1/payouts`: payouts mirrored from Stripe and what each settles
//! (rules in `ops::payouts`). Secret key only.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::error::Result;
use crate::ops::payouts::{
    self, ListPayoutTransactions, ListPayouts, PayoutOut, PayoutTransactionsOut,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_payouts))
        .routes(routes!(get_payout))
        .routes(routes!(list_payout_transactions))
        .routes(routes!(export_payout_transactions))
}

/// Payouts mirrored from Stripe's `payout.*` events, newest first.
#[utoipa::path(get, path = "/v1/payouts", tag = "payouts",
    security(("secret_key" = [])),
    params(ListPayouts),
    responses((status = 200, description = "A page of payouts.", body = crate::openapi::pages::PayoutPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_payouts(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListPayouts>,
) -> Result<Json<Page<PayoutOut>>> {
    Ok(Json(payouts::list(state.ctx(), &actor, q).await?))
}

/// One payout, by obol's `pout_…` id or Stripe's `po_…`.
#[utoipa::path(get, path = "/v1/payouts/{id}", tag = "payouts",
    security(("secret_key" = [])),
    params(("id" = String, Path, description = "The payout: `pout_…` or Stripe's `po_…`.")),
    responses((status = 200, description = "The payout.", body = PayoutOut)),
    extensions(("x-error-codes" = json!(["payout_not_found"]))),
)]
async fn get_payout(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<PayoutOut>> {
    Ok(Json(payouts::get(state.ctx(), &actor, &id).await?))
}

/// The balance transactions a paid payout settles, oldest first, from
/// obol's copy (fetched from Stripe once, when the payout is paid).
///
/// Charges, refunds, dispute adjustments, fees, returned payouts: their
/// `net` sums to the payout's amount (`totals.net`). The payout's own
/// `payout` transaction is not listed. Before the copy is complete it
/// answers 409 `payout_transactions_not_ready`.
#[utoipa::path(get, path = "/v1/payouts/{id}/transactions", tag = "payouts",
    security(("secret_key" = [])),
    params(("id" = String, Path, description = "The payout: `pout_…` or Stripe's `po_…`."), ListPayoutTransactions),
    responses((status = 200, description = "A page of the payout's transactions, with totals over all.", body = PayoutTransactionsOut)),
    extensions(("x-error-codes" = json!(["payout_not_found", "payout_transactions_not_ready", "invalid_query"]))),
)]
async fn list_payout_transactions(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Query(q): Query<ListPayoutTransactions>,
) -> Result<Json<PayoutTransactionsOut>> {
    Ok(Json(
        payouts::transactions(state.ctx(), &actor, &id, q).await?,
    ))
}

/// The same transactions as CSV for a bookkeeper: a header row, then one
/// row per transaction (RFC 4180), amounts as decimals in the currency's
/// exponent (`-12.34`). Every row carries `payout_amount`: the check is
/// that the `net` column sums to it.
#[utoipa::path(get, path = "/v1/payouts/{id}/transactions.csv", tag = "payouts",
    security(("secret_key" = [])),
    params(("id" = String, Path, description = "The payout: `pout_…` or Stripe's `po_…`.")),
    responses((status = 200, description = "The transactions as CSV (columns: payout_id, stripe_payout_id, payout_amount, payout_arrival_date, stripe_balance_transaction_id, type, reporting_category, created, available_on, currency, gross, fee, net, description, source_id, payment_id, refund_id, dispute_id, customer_id, order_id).",
        content_type = "text/csv", body = String)),
    extensions(("x-error-codes" = json!(["payout_not_found", "payout_transactions_not_ready"]))),
)]
async fn export_payout_transactions(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let (name, csv) = payouts::transactions_csv(state.ctx(), &actor, &id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        csv,
    ))
}
