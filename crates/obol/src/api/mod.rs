//! The HTTP API: the router, shared state, and a thin file per resource.
//!
//! A handler parses the request (extractors, `Json`, `Query`, `Path`),
//! calls one `ops::` function with the `Ctx` and the `Actor`, and renders
//! the answer (status code, headers, JSON). Nothing under `api/` touches
//! storage or the Stripe client: `tests/it/layering.rs` fails the build if
//! a file here names them.

pub mod acp;
pub mod auth;
pub mod billing;
pub mod card_updates;
pub mod catalog;
pub mod charge_runs;
pub mod connect;
pub mod customer_tokens;
pub mod customers;
pub mod diagnostics;
pub mod disputes;
pub mod emails;
pub mod endpoints;
pub mod health;
pub mod invoices;
pub mod jobs;
pub mod json;
pub mod mcp;
pub mod orders;
pub mod organizations;
pub mod pages;
pub mod payment_actions;
pub mod payment_intents;
pub mod payment_links;
pub mod payments;
pub mod payouts;
pub mod throttle;
pub mod webhooks;

pub use crate::ops::pagination;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::context::Ctx;
use crate::error::Error;
use crate::ids::TokenHash;
use crate::telemetry::{ClientRequestId, MakeObolRequestId, REQUEST_ID_HEADER};

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    ctx: Ctx,
    api_key_hashes: Vec<TokenHash>,
    auth_throttle: throttle::AuthThrottle,
    webhook_secrets: std::sync::RwLock<Vec<SecretString>>,
    cors_origins: Vec<String>,
    mcp: mcp::McpEndpoint,
    admin: crate::admin::AdminConfig,
    metrics_token: Option<TokenHash>,
}

impl AppState {
    pub fn new(config: &Config, ctx: Ctx, api_key_hashes: Vec<TokenHash>) -> Self {
        AppState(Arc::new(Inner {
            mcp: mcp::McpEndpoint::new(config, ctx.clone()),
            ctx,
            api_key_hashes,
            auth_throttle: throttle::AuthThrottle::new(
                config.http.auth_failures_per_minute,
                config.http.public_requests_per_minute,
                config.trusted_proxies(),
            ),
            webhook_secrets: std::sync::RwLock::new(config.stripe.webhook_secrets.clone()),
            cors_origins: config.http.cors_allowed_origins.clone(),
            admin: crate::admin::AdminConfig::of(config),
            metrics_token: config
                .metrics
                .token
                .as_ref()
                .map(|t| TokenHash::of(t.expose_secret().trim())),
        }))
    }

    /// The context every use case runs with.
    pub fn ctx(&self) -> &Ctx {
        &self.0.ctx
    }

    pub fn api_key_hashes(&self) -> &[TokenHash] {
        &self.0.api_key_hashes
    }

    /// The Stripe webhook signing secrets in force: configured ones plus
    /// the one obol registered with its built-in sandbox.
    pub fn webhook_secrets(&self) -> Vec<SecretString> {
        self.0
            .webhook_secrets
            .read()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    pub fn add_webhook_secret(&self, secret: SecretString) {
        if let Ok(mut s) = self.0.webhook_secrets.write() {
            s.push(secret);
        }
    }

    pub fn auth_throttle(&self) -> &throttle::AuthThrottle {
        &self.0.auth_throttle
    }

    /// The admin dashboard's configuration.
    pub fn admin(&self) -> &crate::admin::AdminConfig {
        &self.0.admin
    }

    /// The hash of `metrics.token`, when `/metrics` requires one.
    pub fn metrics_token(&self) -> Option<&TokenHash> {
        self.0.metrics_token.as_ref()
    }

    /// The MCP server behind `POST /mcp`.
    pub fn mcp(&self) -> &mcp::McpEndpoint {
        &self.0.mcp
    }
}

/// Every route of the API with its description: `routes!` registers a
/// handler and its `#[utoipa::path]` together, so no route goes
/// undescribed (`crate::openapi` builds the document from the same list).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .merge(health::router())
        .merge(diagnostics::router())
        .merge(organizations::router())
        .merge(connect::router())
        .merge(customers::router())
        .merge(card_updates::router())
        .merge(customer_tokens::router())
        .merge(payments::router())
        .merge(disputes::router())
        .merge(endpoints::router())
        .merge(orders::router())
        .merge(payment_intents::router())
        .merge(catalog::router())
        .merge(payment_links::router())
        .merge(payment_actions::router())
        .merge(pages::router())
        .merge(webhooks::router())
        .merge(jobs::router())
        .merge(emails::router())
        .merge(invoices::router())
        .merge(charge_runs::router())
        .merge(billing::router())
        .merge(payouts::router())
        .merge(mcp::router())
        .merge(crate::admin::router())
        .merge(acp::router())
}

/// CORS for the origins in `http.cors_allowed_origins` (storefronts that
/// embed `<obol-checkout>`): their pages may call the API with a customer
/// token. None configured: no CORS headers at all, browsers refuse.
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("idempotency-key"),
                header::HeaderName::from_static("x-guest-token"),
                header::HeaderName::from_static(auth::ORGANIZATION_HEADER),
            ])
            .expose_headers([REQUEST_ID_HEADER])
            .max_age(Duration::from_secs(600)),
    )
}

pub fn router(state: AppState, body_limit: usize, body_timeout: Duration) -> Router {
    let request_id = ServiceBuilder::new()
        .map_request(crate::telemetry::screen_request_id::<axum::body::Body>)
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeObolRequestId))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                let span = tracing::info_span!("request", method = %req.method(), path = %logged_path(req), request_id = %id, client_request_id = tracing::field::Empty, account_id = tracing::field::Empty);
                if let Some(ClientRequestId(theirs)) = req.extensions().get::<ClientRequestId>() {
                    span.record("client_request_id", theirs.as_str());
                }
                span
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER));

    let (routes, _) = routes().split_for_parts();
    routes
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        // Refuses a declared Content-Length over the limit before reading
        // any of it (clients sending `Expect: 100-continue` never upload);
        // DefaultBodyLimit above catches chunked bodies while reading.
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::throttle_guest_tokens,
        ))
        // A body that stalls this long between two chunks ends the read
        // (408 from the JSON extractor), so one slow upload cannot hold a
        // handler, or shutdown, for the whole grace period.
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(middleware::from_fn(errors_as_json))
        .layer(middleware::from_fn(request_head_limits))
        // The panic itself is logged once, by the panic hook
        // (`telemetry::init`), inside this request's span; the answer is
        // built without logging again.
        .layer(CatchPanicLayer::custom(|_| {
            let error = Error::internal("a handler panicked");
            (error.status(), axum::Json(error.body())).into_response()
        }))
        // Outside the panic catcher, so a panic counts as the 500 it is.
        .layer(middleware::from_fn(http_metrics))
        .layer(request_id)
        .layer(tower::util::option_layer(cors(&state.0.cors_origins)))
        // On every response, errors from the layers included; each only
        // where a handler did not set its own, so a future page can carry
        // a looser policy. no-store: answers carry tokens, secrets and
        // payment data. nosniff and the CSP: a JSON answer opened in a
        // browser is never rendered as HTML, runs nothing, cannot be
        // framed. no-referrer: URLs with ids do not leak onwards.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state)
}

/// The request's path as the request log shows it: the capability token
/// of a link route (`/pay/{token}`, `/connect/stripe/authorize/{token}`,
/// `/v1/public/invoices/{token}`, …) is replaced by `{token}`, so whoever
/// reads the log cannot open the link; other segments (ids) stay. The
/// route template comes from the router (`MatchedPath`, set before these
/// layers run). A path no route matched has every segment of 32
/// characters or more, which a token is and an id is not, replaced by
/// `{redacted}`.
fn logged_path(req: &Request) -> String {
    let path = req.uri().path();
    match req.extensions().get::<axum::extract::MatchedPath>() {
        Some(matched) => redact_by_template(matched.as_str(), path),
        None => path
            .split('/')
            .map(|seg| if seg.len() >= 32 { "{redacted}" } else { seg })
            .collect::<Vec<_>>()
            .join("/"),
    }
}

/// `path` with the segments its route `template` names `{token}` replaced
/// by `{token}`; the template itself when the two do not line up.
fn redact_by_template(template: &str, path: &str) -> String {
    if !template.contains("{token}") {
        return path.to_string();
    }
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    if t.len() != p.len() {
        return template.to_string();
    }
    t.iter()
        .zip(&p)
        .map(|(t, p)| if *t == "{token}" { *t } else { *p })
        .collect::<Vec<_>>()
        .join("/")
}

/// Counts the request in `obol_http_requests_total` and its latency (to
/// the response head) under its route template, `unmatched` when no route
/// matched: never the path itself, whose ids and tokens are unbounded.
async fn http_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    crate::metrics::record(|m| m.http_request(method.as_str(), &route, status, started.elapsed()));
    response
}

async fn route_not_found(method: Method, uri: Uri) -> Error {
    Error::RouteNotFound {
        method: method.to_string(),
        path: uri.path().chars().take(200).collect(),
    }
}

async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

/// Longest request URI obol reads (path and query).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header bytes (names and values) obol reads in one request.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses oversized URIs and header sets in obol's JSON shape. hyper
/// has limits of its own (about 64 KiB of URI, ~400 KiB of buffered head,
/// 100 headers) and answers those with an empty body before any service
/// runs; these lower limits catch everything short of that, so a client
/// almost always gets the error shape.
async fn request_head_limits(req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Error::UriTooLong {
            limit: MAX_URI_BYTES,
        }
        .into_response();
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Error::HeadersTooLarge {
            limit: MAX_HEADER_BYTES,
        }
        .into_response();
    }
    next.run(req).await
}

/// Any error response that a layer (not a handler) produced in plain text
/// is rewritten into obol's shape, so callers parse one format only.
async fn errors_as_json(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    // Layers answer plain text or nothing; JSON and obol's own pages (HTML)
    // are answers of a handler and stay as they are.
    let handler_made = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if !status.is_client_error() && !status.is_server_error() || handler_made {
        return response;
    }
    let error = match status.as_u16() {
        413 => Error::BodyTooLarge,
        405 => Error::MethodNotAllowed,
        415 => Error::UnsupportedMediaType,
        408 => Error::RequestTimeout,
        414 => Error::UriTooLong {
            limit: MAX_URI_BYTES,
        },
        431 => Error::HeadersTooLarge {
            limit: MAX_HEADER_BYTES,
        },
        401 => Error::Unauthenticated,
        400 => Error::InvalidBody("the request could not be read".into()),
        _ => Error::internal(format!("unexpected plain {status} response")),
    };
    let mut rewritten = error.into_response();
    *rewritten.status_mut() = status;
    rewritten
}

/// Default timeout for outbound calls made while serving a request.
pub const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(10);

pub fn no_store() -> (header::HeaderName, HeaderValue) {
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_segments_never_reach_the_log() {
        let token = "Zk3x9Qy7LmN2pR5tV8wB1cD4fG6hJ0kM3nP5qS7uW9y";
        assert_eq!(
            redact_by_template("/pay/{token}", &format!("/pay/{token}")),
            "/pay/{token}"
        );
        assert_eq!(
            redact_by_template(
                "/v1/public/invoices/{token}/payment-intent",
                &format!("/v1/public/invoices/{token}/payment-intent")
            ),
            "/v1/public/invoices/{token}/payment-intent"
        );
        // Ids stay: they open nothing.
        assert_eq!(
            redact_by_template(
                "/v1/orders/{id}",
                "/v1/orders/ord_01jd0000000000000000000000"
            ),
            "/v1/orders/ord_01jd0000000000000000000000"
        );
        let unmatched = |path: &str| {
            let req = Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap();
            logged_path(&req)
        };
        assert_eq!(
            unmatched(&format!("/connect/stripe/authorize/{token}/")),
            "/connect/stripe/authorize/{redacted}/"
        );
        assert_eq!(
            unmatched("/v1/nothing/ord_01jd0000000000000000000000"),
            "/v1/nothing/ord_01jd0000000000000000000000"
        );
    }
}
