//! `GET /health`: liveness plus what a script needs to find its Stripe.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::json::Json;
use super::AppState;
use crate::ops;

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

/// 200 with `status: ok` when storage answers, else 503 `degraded`.
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (ok, body) = ops::health::check(state.ctx()).await;
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
