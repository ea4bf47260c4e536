//! `GET /metrics`: Prometheus text format, behind `metrics.token` when
//! one is configured; and `POST /v1/sandbox/panic`, a test aid that makes a
//! handler panic, answered only in sandbox mode.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::config::StripeMode;
use crate::context::Actor;
use crate::error::Error;
use crate::ids::TokenHash;
use crate::ops;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(sandbox_panic))
}

/// The content type of Prometheus's text exposition format 0.0.4.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics.
///
/// The text exposition format (0.0.4): HTTP requests, Stripe webhook
/// events, the inbox backlog, the job queue, Stripe calls, notification
/// deliveries, e-mails, charge-run items, build info; the README's
/// "Metrics" section lists every series. With `metrics.token` configured
/// it takes `Authorization: Bearer <token>` (compared in constant time;
/// failures are throttled like other credentials); without one it is
/// open (it carries counts and route templates, no ids or amounts).
#[utoipa::path(get, path = "/metrics", tag = "health",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "The series, in Prometheus text format.", content_type = "text/plain", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_metrics_token", "rate_limited"]))),
)]
async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers();
    if let Some(expected) = state.metrics_token() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .unwrap_or_default();
        // Hashes of equal length, compared in constant time: the time
        // taken tells nothing about the token.
        if !TokenHash::of(presented).ct_eq(expected) {
            let ip = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| state.auth_throttle().client_ip(c.0.ip(), headers));
            return super::auth::refuse(
                &state,
                ip,
                super::throttle::CredentialKind::SecretKey,
                Error::InvalidMetricsToken,
            )
            .into_response();
        }
    }
    let body = ops::metrics::render(state.ctx()).await;
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(EXPOSITION))],
        body,
    )
        .into_response()
}

/// Panics (sandbox mode only: a test aid).
///
/// Makes its handler panic, so a test can see what a panic does: a 500
/// `internal_error` carrying the `x-request-id`, and one log line. With
/// real Stripe keys (test or live) the route does not exist: it answers
/// 404 `route_not_found` like any unknown path.
#[utoipa::path(post, path = "/v1/sandbox/panic", tag = "health",
    security(("secret_key" = [])),
    responses(
        (status = 500, description = "The handler panicked (always, in sandbox mode)."),
    ),
    extensions(("x-error-codes" = json!(["route_not_found"]))),
)]
async fn sandbox_panic(State(state): State<AppState>, request: Request) -> Response {
    // The mode first: with real keys not even a credential check tells
    // that the route is there.
    if state.ctx().stripe_info().mode != StripeMode::Sandbox {
        return Error::RouteNotFound {
            method: "POST".into(),
            path: "/v1/sandbox/panic".into(),
        }
        .into_response();
    }
    let (mut parts, _) = request.into_parts();
    if let Err(e) = Actor::from_request_parts(&mut parts, &state).await {
        return e.into_response();
    }
    sandbox_panics()
}

#[allow(clippy::panic)]
fn sandbox_panics() -> Response {
    panic!("POST /v1/sandbox/panic: a deliberate panic (sandbox test aid)")
}
