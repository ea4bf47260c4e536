//! `GET /health`: liveness plus what a script needs to find its Stripe;
//! `GET /openapi.json`: this API's description.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::json::Json;
use super::AppState;
use crate::ops;
use crate::ops::health::{HealthOut, HealthStatus};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(openapi_document))
}

/// Liveness, and where obol's Stripe is.
///
/// 200 with `status: ok` when storage answers, else 503 `degraded`. No
/// credential: monitors and the quickstart call it.
#[utoipa::path(get, path = "/health", tag = "health", security(()),
    responses(
        (status = 200, description = "Storage answers.", body = HealthOut),
        (status = 503, description = "Storage does not answer.", body = HealthOut),
    ),
    extensions(("x-error-codes" = json!([]))),
)]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthOut>) {
    let out = ops::health::check(state.ctx()).await;
    let code = if out.status == HealthStatus::Ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(out))
}

/// This document: obol's API as OpenAPI 3.1.
///
/// No credential. `obol openapi` prints the same document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn openapi_document() -> Json<&'static Value> {
    Json(crate::openapi::document())
}
