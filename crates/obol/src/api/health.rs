//! `GET /health`: liveness plus what a script needs to find its Stripe.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::json::Json;
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

/// `status` is `ok` when storage answers, else `degraded` with 503.
/// `stripe.account` is null while Stripe cannot be reached.
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let storage_ok = state.store().ping().await.is_ok();
    let stripe = state.stripe();
    let account = stripe.account().await;
    let status = if storage_ok { "ok" } else { "degraded" };
    let code = if storage_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "publishable_key": stripe.publishable_key,
            "stripe": {
                "mode": stripe.mode,
                "api_base": stripe.api_base,
                "account": account,
            },
            "storage": { "backend": state.store().backend().as_str(), "ok": storage_ok },
            "checked_at": crate::storage::now(),
        })),
    )
}
