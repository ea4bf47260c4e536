//! `POST /mcp`: obol's MCP server (`crate::mcp`) over streamable HTTP.
//!
//! rmcp's `StreamableHttpService` speaks the transport; this handler
//! stands in front of it, so `/mcp` is a route like every other: routed
//! with `routes!` and described in the OpenAPI document (a service mounted
//! with `nest_service` would be neither), behind the same layers (body
//! limit, request id, security headers, JSON errors). In order it:
//!
//! 1. refuses a `Host` or `Origin` outside the allow-list (403
//!    `host_not_allowed`): the host of `public_url`, or with none set
//!    loopback only, so a web page cannot reach a local obol by DNS
//!    rebinding;
//! 2. authenticates `Authorization: Bearer` (a secret key or a customer
//!    token) with the API's own extractor, throttle included; without one
//!    it answers 401 with `WWW-Authenticate: Bearer` (RFC 6750);
//! 3. reads the body with the API's JSON extractor (obol's 400, 413, 415);
//! 4. hands the request to rmcp with the caller's `Actor` in its
//!    extensions (`mcp::Caller`), where the tools find it;
//! 5. turns rmcp's own plain-text refusals (a missing `Accept`, a bad
//!    protocol version header) into obol's error shape.

use std::str::FromStr;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::uri::Authority;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::json::Json;
use super::AppState;
use crate::config::Config;
use crate::context::{Actor, Ctx};
use crate::error::{Error, Result};
use crate::mcp::{self, Caller};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mcp_endpoint))
}

/// What `/mcp` needs: rmcp's service and the allow-list.
#[derive(Clone)]
pub struct McpEndpoint {
    service: mcp::HttpService,
    hosts: AllowedHosts,
}

impl McpEndpoint {
    pub fn new(config: &Config, ctx: Ctx) -> Self {
        McpEndpoint {
            service: mcp::http_service(ctx, config.http.body_limit_bytes),
            hosts: AllowedHosts::from_public_url(config.public_url.as_deref()),
        }
    }
}

/// MCP (Model Context Protocol) over streamable HTTP, for AI agents.
///
/// One JSON-RPC 2.0 message per POST (`initialize`, `tools/list`,
/// `tools/call`, …), answered as JSON; no session is kept (each request
/// carries its credential and is authorized on its own). Send `Accept:
/// application/json, text/event-stream`. The tools and their rules are in
/// the README (MCP server); a refused tool call is a JSON-RPC result with
/// `isError: true` and obol's error body. A customer token sees only the
/// tools and the objects it may touch. Without a valid credential: 401
/// with `WWW-Authenticate: Bearer`. The `Host` (and a browser's `Origin`)
/// must be `public_url`'s, or loopback when it is unset.
#[utoipa::path(post, path = "/mcp", tag = "mcp",
    security(("secret_key" = []), ("customer_token" = [])),
    request_body(content = Object, content_type = "application/json",
        description = "One JSON-RPC 2.0 message of the Model Context Protocol: a request (`initialize`, `tools/list`, `tools/call`, `ping`) or a notification."),
    responses(
        (status = 200, description = "The JSON-RPC response (a result, or a JSON-RPC error).", body = Object, content_type = "application/json"),
        (status = 202, description = "A notification, accepted; no body."),
    ),
    extensions(("x-error-codes" = json!(["host_not_allowed", "not_acceptable"]))),
)]
async fn mcp_endpoint(State(state): State<AppState>, request: Request) -> Response {
    match forward(&state, request).await {
        Ok(response) => response,
        Err(e) => refusal(e),
    }
}

async fn forward(state: &AppState, request: Request) -> Result<Response> {
    let endpoint = state.mcp();
    let (mut parts, body) = request.into_parts();
    endpoint.hosts.check(&parts.headers)?;
    let actor = Actor::from_request_parts(&mut parts, state).await?;
    let mut headers = parts.headers.clone();
    let Json(message) =
        Json::<serde_json::Value>::from_request(Request::from_parts(parts, body), state).await?;
    let bytes = serde_json::to_vec(&message).map_err(Error::internal)?;
    // The body was read and parsed once; rmcp gets it again, whole. The
    // credential has done its work: rmcp and the tools get the actor only.
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::AUTHORIZATION);
    let mut inner = Request::new(axum::body::Body::from(bytes));
    *inner.method_mut() = axum::http::Method::POST;
    *inner.headers_mut() = headers;
    inner.extensions_mut().insert(Caller(actor));
    let response = endpoint
        .service
        .handle(inner)
        .await
        .map(axum::body::Body::new);
    in_obol_shape(response).await
}

/// An error answer; a 401 says how to authenticate (RFC 6750).
fn refusal(e: Error) -> Response {
    let challenge = match &e {
        Error::Unauthenticated => Some(r#"Bearer realm="obol""#),
        Error::InvalidApiKey | Error::InvalidCustomerToken => {
            Some(r#"Bearer realm="obol", error="invalid_token""#)
        }
        _ => None,
    };
    let mut response = e.into_response();
    if let Some(challenge) = challenge {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

/// rmcp answers transport errors in plain text; callers of obol parse one
/// error shape, so those become obol's. JSON answers (JSON-RPC results and
/// errors) pass as they are.
async fn in_obol_shape(response: Response) -> Result<Response> {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.is_success() || is_json {
        return Ok(response);
    }
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| {
            String::from_utf8_lossy(&b)
                .chars()
                .take(300)
                .collect::<String>()
        })
        .unwrap_or_default();
    Err(match status {
        StatusCode::BAD_REQUEST => Error::InvalidBody(text),
        StatusCode::NOT_ACCEPTABLE => Error::NotAcceptable,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType,
        StatusCode::PAYLOAD_TOO_LARGE => Error::BodyTooLarge,
        StatusCode::METHOD_NOT_ALLOWED => Error::MethodNotAllowed,
        other => Error::internal(format!("the MCP transport answered {other}: {text}")),
    })
}

/// The hosts `/mcp` answers for. A browser on a page of another site can
/// reach a server on the visitor's machine by pointing its own name at
/// 127.0.0.1 (DNS rebinding); its requests then carry that name in `Host`,
/// and a page's fetch carries the page's `Origin`. Only obol's own name
/// passes: `public_url`'s host, or loopback names when it is unset.
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    /// `public_url`'s host (lowercase) and origin (`scheme://host[:port]`).
    public: Option<(String, String)>,
}

const LOOPBACK: &[&str] = &["localhost", "127.0.0.1", "::1", "[::1]"];

impl AllowedHosts {
    pub fn from_public_url(public_url: Option<&str>) -> Self {
        let public = public_url
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| {
                let host = u.host_str()?.to_ascii_lowercase();
                Some((host, u.origin().ascii_serialization()))
            });
        AllowedHosts { public }
    }

    /// The request's `Host` must name an allowed host (any port: the name
    /// is what rebinding changes), and an `Origin`, when a browser sends
    /// one, must be `public_url`'s origin, or a loopback one.
    pub fn check(&self, headers: &HeaderMap) -> Result<()> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| Authority::from_str(h).ok())
            .map(|a| a.host().to_ascii_lowercase());
        if !host.is_some_and(|h| self.allows_host(&h)) {
            return Err(Error::HostNotAllowed { header: "Host" });
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let allowed = origin.to_str().ok().is_some_and(|o| self.allows_origin(o));
        if allowed {
            Ok(())
        } else {
            Err(Error::HostNotAllowed { header: "Origin" })
        }
    }

    fn allows_host(&self, host: &str) -> bool {
        match &self.public {
            Some((public, _)) => host == public,
            None => LOOPBACK.contains(&host),
        }
    }

    fn allows_origin(&self, origin: &str) -> bool {
        match &self.public {
            Some((_, public)) => origin.eq_ignore_ascii_case(public),
            None => url::Url::parse(origin).ok().is_some_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str()
                        .is_some_and(|h| LOOPBACK.contains(&h.to_ascii_lowercase().as_str()))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn without_public_url_only_loopback_passes() {
        let hosts = AllowedHosts::from_public_url(None);
        for ok in ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080"] {
            assert!(hosts.check(&headers(ok, None)).is_ok(), "{ok}");
        }
        assert!(hosts
            .check(&headers("127.0.0.1:8080", Some("http://localhost:3000")))
            .is_ok());
        for bad in [
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "10.0.0.1:8080",
        ] {
            assert_eq!(
                hosts.check(&headers(bad, None)).unwrap_err().code(),
                "host_not_allowed",
                "{bad}"
            );
        }
        let err = hosts
            .check(&headers("127.0.0.1:8080", Some("https://evil.example")))
            .unwrap_err();
        assert_eq!(err.code(), "host_not_allowed");
        assert!(err.to_string().contains("Origin"));
        assert!(hosts.check(&HeaderMap::new()).is_err());
    }

    #[test]
    fn with_public_url_only_its_host_and_origin_pass() {
        let hosts = AllowedHosts::from_public_url(Some("https://Pay.Example.com/base"));
        assert!(hosts.check(&headers("pay.example.com", None)).is_ok());
        assert!(hosts
            .check(&headers("pay.example.com", Some("https://pay.example.com")))
            .is_ok());
        assert!(hosts.check(&headers("127.0.0.1:8080", None)).is_err());
        assert!(hosts
            .check(&headers("pay.example.com", Some("http://pay.example.com")))
            .is_err());
        assert!(hosts
            .check(&headers(
                "pay.example.com",
                Some("https://pay.example.com:8443")
            ))
            .is_err());
    }
}
