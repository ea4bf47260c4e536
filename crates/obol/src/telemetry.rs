//! Logging: tracing with a human format by default and JSON with
//! `OBOL_LOG_FORMAT=json`; request ids on every request.
//!
//! Nothing here ever formats a secret: configuration secrets are
//! `SecretString`, and handlers are instrumented with `skip_all`.

use std::io::IsTerminal;

use axum::http::{HeaderName, Request};
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
