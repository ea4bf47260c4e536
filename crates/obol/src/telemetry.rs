//! Logging: tracing with a human format by default and JSON with
//! `OBOL_LOG_FORMAT=json`; request ids on every request.
//!
//! A request id a client sends is kept only if it has obol's own form
//! (`req_` + 26 lowercase alphanumerics): anything else (markup, a line
//! break, 8,000 characters) would be echoed to the client and written into
//! every log line of the request. Such an id is replaced by a generated
//! one, and logged, sanitized and truncated, as `client_request_id`.
//!
//! Nothing here ever formats a secret: configuration secrets are
//! `SecretString`, and handlers are instrumented with `skip_all`.

use std::io::IsTerminal;

use axum::http::{HeaderName, HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global subscriber. Logs go to stderr; stdout carries only
/// the lines scripts read (`listening on …`, a generated development key).
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Human => registry
            .with(
                fmt::layer()
                    // Colour for a terminal only; a log file gets plain text.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A subscriber may already be installed (several commands in one test
    // process); keeping the first one is right.
    let _ = result;
    install_panic_hook();
}

/// A panic becomes one error line in the log's format, carrying the span
/// it happened in (a handler's `request` span: its `request_id` and
/// `account_id`), instead of Rust's default print to stderr. The HTTP
/// layer's panic catcher answers 500 without logging it again.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %message, %location, "a panic; a handler's request is answered 500");
    }));
}

/// Request ids `req_<ulid>`: sortable, and distinct from Stripe's `req_` ids
/// by their length and alphabet.
#[derive(Clone, Copy, Default)]
pub struct MakeObolRequestId;

impl MakeRequestId for MakeObolRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = String::from(crate::ids::RequestId::generate());
        id.parse().ok().map(RequestId::new)
    }
}

/// Longest client request id kept for the log.
const CLIENT_ID_MAX: usize = 64;

/// A foreign request id the client sent, sanitized; logged beside ours.
#[derive(Clone, Debug)]
pub struct ClientRequestId(pub String);

/// Whether `s` is a request id obol could have made.
pub fn is_obol_request_id(s: &str) -> bool {
    s.strip_prefix("req_").is_some_and(|body| {
        body.len() == 26
            && body
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

/// Drops an `x-request-id` not of obol's form (so `SetRequestIdLayer`
/// generates one) and keeps a printable, bounded copy for the log.
pub fn screen_request_id<B>(mut req: Request<B>) -> Request<B> {
    let foreign = match req.headers().get(REQUEST_ID_HEADER) {
        None => return req,
        Some(v) if v.to_str().is_ok_and(is_obol_request_id) => return req,
        Some(v) => sanitize_client_id(v),
    };
    req.headers_mut().remove(REQUEST_ID_HEADER);
    req.extensions_mut().insert(ClientRequestId(foreign));
    req
}

fn sanitize_client_id(v: &HeaderValue) -> String {
    let mut out: String = v
        .as_bytes()
        .iter()
        .take(CLIENT_ID_MAX)
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' => char::from(*b),
            _ => '_',
        })
        .collect();
    if v.len() > CLIENT_ID_MAX {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_obol_shaped_ids_are_kept() {
        let ours = String::from(crate::ids::RequestId::generate());
        assert!(is_obol_request_id(&ours));
        for bad in [
            "req_01JZZZZZZZZZZZZZZZZZZZZZZZ",
            "req_short",
            "<script>alert(1)</script>",
            "",
        ] {
            assert!(!is_obol_request_id(bad), "{bad}");
        }
        let long = "<b>".repeat(3000);
        let req = Request::builder()
            .header(REQUEST_ID_HEADER, long.as_str())
            .body(())
            .unwrap();
        let req = screen_request_id(req);
        assert!(req.headers().get(REQUEST_ID_HEADER).is_none());
        let kept = &req.extensions().get::<ClientRequestId>().unwrap().0;
        assert!(
            kept.len() <= CLIENT_ID_MAX + 3 && !kept.contains('<'),
            "{kept}"
        );
    }
}
