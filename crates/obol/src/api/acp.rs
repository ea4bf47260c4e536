//! `/acp/checkout_sessions…` and `GET /.well-known/acp.json`: the Agentic
//! Commerce Protocol merchant REST API (rules in `ops::acp`). A handler
//! passes the protocol headers and the raw body to `ops::acp::rest` and
//! writes its answer with the protocol's response headers:
//! `Idempotency-Key` echoed on every POST, `Request-Id` echoed when sent,
//! `Idempotent-Replayed: true` on a replay, `Retry-After` when asked to
//! wait. Errors are ACP's flat `{type, code, message, param}`, not obol's.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::json::Json;
use super::AppState;
use crate::ops::acp::{self, Answer, Meta, Op};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_checkout_session))
        .routes(routes!(get_checkout_session, update_checkout_session))
        .routes(routes!(complete_checkout_session))
        .routes(routes!(cancel_checkout_session))
        .routes(routes!(acp_discovery))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn meta(h: &HeaderMap) -> Meta {
    Meta {
        api_version: header(h, "api-version").map(str::to_string),
        idempotency_key: header(h, "idempotency-key").map(str::to_string),
        signature: header(h, "signature").map(str::to_string),
        timestamp: header(h, "timestamp").map(str::to_string),
    }
}

async fn serve(state: &AppState, headers: &HeaderMap, op: Op, body: Option<&[u8]>) -> Response {
    let post = !matches!(op, Op::Get(_));
    let answer = acp::rest(
        state.ctx(),
        header(headers, "authorization"),
        meta(headers),
        op,
        body,
    )
    .await;
    respond(headers, post, answer)
}

fn respond(request: &HeaderMap, post: bool, a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(a.body)).into_response();
    let h = response.headers_mut();
    let mut echo = |name: &'static str| {
        // Echoed only when it is a short printable value.
        if let Some(v) = request
            .get(name)
            .filter(|v| v.len() <= 255 && v.to_str().is_ok())
        {
            h.insert(HeaderName::from_static(name), v.clone());
        }
    };
    echo("request-id");
    if post {
        echo("idempotency-key");
    }
    if a.replayed {
        h.insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    if let Some(s) = a.retry_after {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            h.insert(axum::http::header::RETRY_AFTER, v);
        }
    }
    response
}

/// Creates a checkout session (ACP `POST /checkout_sessions`).
///
/// `line_items` are catalog product ids (`prod_…`), each one unit unless
/// it carries a `quantity`; obol prices them, lists its active shipping
/// methods as `fulfillment_options` and answers the authoritative session
/// (201). `not_ready_for_payment` with messages until an address, an
/// e-mail and a fulfillment option are set and every item can be sold.
#[utoipa::path(post, path = "/acp/checkout_sessions", tag = "acp",
    security(("acp_key" = [])),
    request_body(content = Object, description = "ACP CheckoutSessionCreateRequest."),
    responses((status = 201, description = "Created: the session.")),
    extensions(
        ("x-acp-response" = json!("AcpCheckoutSession")),
        ("x-error-codes" = json!(["invalid", "missing"])),
    ),
)]
async fn create_checkout_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, Op::Create, Some(&body)).await
}

/// Reads a checkout session (ACP `GET /checkout_sessions/{id}`), priced now.
#[utoipa::path(get, path = "/acp/checkout_sessions/{id}", tag = "acp",
    security(("acp_key" = [])),
    params(("id" = String, Path, description = "The session's id, `acs_…`.")),
    responses((status = 200, description = "The session.")),
    extensions(
        ("x-acp-response" = json!("AcpCheckoutSession")),
        ("x-error-codes" = json!(["session_not_found"])),
    ),
)]
async fn get_checkout_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    serve(&state, &headers, Op::Get(id), None).await
}

/// Updates a checkout session (ACP `POST /checkout_sessions/{id}`).
///
/// Any of `line_items`, `buyer`, `fulfillment_details`,
/// `selected_fulfillment_options`: absent keeps a field, `null` clears it.
#[utoipa::path(post, path = "/acp/checkout_sessions/{id}", tag = "acp",
    security(("acp_key" = [])),
    params(("id" = String, Path, description = "The session's id, `acs_…`.")),
    request_body(content = Object, description = "ACP CheckoutSessionUpdateRequest."),
    responses((status = 200, description = "The session.")),
    extensions(
        ("x-acp-response" = json!("AcpCheckoutSession")),
        ("x-error-codes" = json!(["invalid", "missing", "session_not_found", "session_not_modifiable", "checkout_in_progress"])),
    ),
)]
async fn update_checkout_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    serve(&state, &headers, Op::Update(id), Some(&body)).await
}

/// Completes a checkout session with a Stripe shared payment token (ACP
/// `POST /checkout_sessions/{id}/complete`).
///
/// Charges the token once, through a PaymentIntent, never above its
/// `max_amount` nor after its expiry, and creates the order through
/// obol's pay-first checkout: `status: completed` with `order`. A decline
/// answers the payable session with a `payment_declined` message; a bank
/// asking for 3-D Secure answers `authentication_required` with
/// `authentication_metadata`, and the next complete must carry
/// `authentication_result` (else 400 `requires_3ds`).
#[utoipa::path(post, path = "/acp/checkout_sessions/{id}/complete", tag = "acp",
    security(("acp_key" = [])),
    params(("id" = String, Path, description = "The session's id, `acs_…`.")),
    request_body(content = Object, description = "ACP CheckoutSessionCompleteRequest."),
    responses((status = 200, description = "The session: completed with its order, declined, or waiting for authentication.")),
    extensions(
        ("x-acp-response" = json!("AcpCheckoutSession")),
        ("x-error-codes" = json!(["invalid", "missing", "requires_3ds", "session_not_found", "session_not_modifiable", "session_not_ready", "checkout_in_progress", "payment_processor_error", "service_unavailable"])),
    ),
)]
async fn complete_checkout_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    serve(&state, &headers, Op::Complete(id), Some(&body)).await
}

/// Cancels a checkout session (ACP `POST /checkout_sessions/{id}/cancel`);
/// 405 once it is completed or canceled.
#[utoipa::path(post, path = "/acp/checkout_sessions/{id}/cancel", tag = "acp",
    security(("acp_key" = [])),
    params(("id" = String, Path, description = "The session's id, `acs_…`.")),
    request_body(content = Object, description = "ACP CancelSessionRequest (optional `intent_trace`)."),
    responses((status = 200, description = "The canceled session.")),
    extensions(
        ("x-acp-response" = json!("AcpCheckoutSession")),
        ("x-error-codes" = json!(["session_not_found", "session_not_cancelable", "checkout_in_progress"])),
    ),
)]
async fn cancel_checkout_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    serve(&state, &headers, Op::Cancel(id), Some(&body)).await
}

/// The ACP discovery document: versions, the REST base URL, transports
/// (REST and MCP) and capabilities. No credential.
#[utoipa::path(get, path = "/.well-known/acp.json", tag = "acp",
    security(()),
    responses((status = 200, description = "The discovery document.")),
    extensions(
        ("x-acp-response" = json!("AcpDiscovery")),
        ("x-error-codes" = json!([])),
    ),
)]
async fn acp_discovery(State(state): State<AppState>) -> Response {
    (StatusCode::OK, Json(acp::discovery(state.ctx()))).into_response()
}
