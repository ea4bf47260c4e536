//! Prometheus metrics: every series obol exports at `GET /metrics`, in one
//! place, so the README's table and the code can be read side by side.
//!
//! Why tikv's `prometheus` crate rather than `metrics` +
//! `metrics-exporter-prometheus`: series are typed values declared once
//! here (a typo in a name is a compile error, not a new series), the
//! registry is ours rather than a process-global recorder, histograms have
//! explicit buckets, and with default features off it adds one crate to the
//! build (the exporter brings an HTTP server, quanta and sketches obol has
//! no use for).
//!
//! Counters live in this process (several instances each count their own;
//! Prometheus sums them). Gauges about shared state (the inbox backlog, the
//! job queue) are read from the database at scrape time by
//! `ops::metrics::render`, so every instance reports the same values.
//!
//! Label values are bounded: HTTP routes are axum's route templates (or
//! `unmatched`), Stripe endpoints have their ids replaced by `{id}`, event
//! types are the ones obol handles (else `other`). No id ever becomes a
//! label.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Seconds; from 5 ms (a cached read) to 10 s (a request that timed out).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Seconds a Stripe call waited for the shared rate budget: zero most of
/// the time, up to Stripe's longest `Retry-After` (60 s) when paused.
const WAIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The process's series.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    webhook_received: IntCounterVec,
    webhook_processed: IntCounterVec,
    stripe_requests: IntCounterVec,
    stripe_duration: HistogramVec,
    stripe_wait: HistogramVec,
    notification_deliveries: IntCounterVec,
    emails: IntCounterVec,
    charge_run_items: IntCounterVec,
}

/// Registered on first use. `None` only if a series were declared wrongly
/// (a bad name, one registered twice), which the unit test below catches:
/// obol then runs without metrics rather than not at all.
static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match Metrics::new() {
    Ok(m) => Some(m),
    Err(e) => {
        tracing::error!(error = %e, "metrics could not be registered; /metrics is empty");
        None
    }
});

/// The process's series.
pub fn get() -> Option<&'static Metrics> {
    METRICS.as_ref()
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("obol_build_info", "Always 1; the version of this obol."),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build))?;
        Ok(Metrics {
            http_requests: counter(
                &registry,
                "obol_http_requests_total",
                "HTTP requests answered, by method, route template and status code.",
                &["method", "route", "status"],
            )?,
            http_duration: histogram(
                &registry,
                "obol_http_request_duration_seconds",
                "Time to answer an HTTP request (until the response head), by method and route template.",
                &["method", "route"],
                LATENCY_BUCKETS,
            )?,
            webhook_received: counter(
                &registry,
                "obol_webhook_events_received_total",
                "Signed Stripe events stored in the inbox (result stored) or already there (duplicate), by type and source (webhook, reconcile).",
                &["type", "source", "result"],
            )?,
            webhook_processed: counter(
                &registry,
                "obol_webhook_events_processed_total",
                "Inbox events the applier finished, by type and outcome (applied, ignored, failed: retried later).",
                &["type", "outcome"],
            )?,
            stripe_requests: counter(
                &registry,
                "obol_stripe_requests_total",
                "HTTP attempts to Stripe, by method, endpoint template and outcome (2xx, 4xx, 429, 5xx, network); each retry counts.",
                &["method", "endpoint", "outcome"],
            )?,
            stripe_duration: histogram(
                &registry,
                "obol_stripe_request_duration_seconds",
                "Time of one HTTP attempt to Stripe, by method and endpoint template.",
                &["method", "endpoint"],
                LATENCY_BUCKETS,
            )?,
            stripe_wait: histogram(
                &registry,
                "obol_stripe_rate_limiter_wait_seconds",
                "Time a Stripe attempt waited for the shared rate budget, by budget (platform, connected).",
                &["budget"],
                WAIT_BUCKETS,
            )?,
            notification_deliveries: counter(
                &registry,
                "obol_notification_deliveries_total",
                "Host notification delivery attempts, by outcome (succeeded, retrying, failed, canceled).",
                &["outcome"],
            )?,
            emails: counter(
                &registry,
                "obol_emails_total",
                "E-mail send attempts, by outcome (sent, logged: no SMTP configured, retrying, failed).",
                &["outcome"],
            )?,
            charge_run_items: counter(
                &registry,
                "obol_charge_run_items_total",
                "Outcomes charge-run items reached, by outcome (succeeded, requires_action, failed, no_payment_method, canceled): each item's first outcome, and a later success (3-D Secure completed by the member).",
                &["outcome"],
            )?,
            registry,
        })
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = bounded_method(method);
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// An event stored (`stored`) or found already stored (`duplicate`).
    pub fn webhook_received(&self, event_type: &str, source: &str, stored: bool) {
        let source = match source {
            "webhook" => "webhook",
            _ => "reconcile",
        };
        let result = if stored { "stored" } else { "duplicate" };
        self.webhook_received
            .with_label_values(&[event_type_label(event_type), source, result])
            .inc();
    }

    /// `outcome`: applied, ignored or failed.
    pub fn webhook_processed(&self, event_type: &str, outcome: &'static str) {
        self.webhook_processed
            .with_label_values(&[event_type_label(event_type), outcome])
            .inc();
    }

    pub fn stripe_request(&self, method: &str, path: &str, outcome: &str, elapsed: Duration) {
        let method = bounded_method(method);
        let endpoint = stripe_endpoint(path);
        self.stripe_requests
            .with_label_values(&[method, &endpoint, outcome])
            .inc();
        self.stripe_duration
            .with_label_values(&[method, &endpoint])
            .observe(elapsed.as_secs_f64());
    }

    pub fn stripe_wait(&self, connected: bool, waited: Duration) {
        let budget = if connected { "connected" } else { "platform" };
        self.stripe_wait
            .with_label_values(&[budget])
            .observe(waited.as_secs_f64());
    }

    pub fn notification_delivery(&self, outcome: &'static str) {
        self.notification_deliveries
            .with_label_values(&[outcome])
            .inc();
    }

    pub fn email(&self, outcome: &'static str) {
        self.emails.with_label_values(&[outcome]).inc();
    }

    pub fn charge_run_item(&self, outcome: &'static str) {
        self.charge_run_items.with_label_values(&[outcome]).inc();
    }
}

/// The text exposition of the process's series plus `extra` (gauges read
/// from the database for this scrape).
pub fn render(extra: &Registry) -> String {
    let mut families = get().map(|m| m.registry.gather()).unwrap_or_default();
    families.extend(extra.gather());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::error!(error = %e, "could not encode the metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Counts on the process's series when they exist (see `METRICS`).
pub fn record(f: impl FnOnce(&Metrics)) {
    if let Some(m) = get() {
        f(m);
    }
}

/// The outcome label of a Stripe attempt's HTTP status.
pub fn stripe_outcome(status: u16) -> &'static str {
    match status {
        429 => "429",
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

fn bounded_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// An event type obol handles as itself; any other as `other` (Stripe
/// has hundreds, and an endpoint may be subscribed to all of them).
pub fn event_type_label(event_type: &str) -> &'static str {
    crate::inbox::apply::HANDLED_EVENT_TYPES
        .iter()
        .find(|t| **t == event_type)
        .copied()
        .unwrap_or("other")
}

/// A Stripe path with its ids as `{id}`: `/v1/payment_intents/pi_3Mt…/confirm`
/// is `/v1/payment_intents/{id}/confirm`. A segment is an id when it has
/// a lowercase prefix, `_`, and a body with a digit or capital or of 14
/// characters or more (Stripe's resource names, `payment_intents`,
/// `test_clocks`, have none of these); any other segment of 24 characters
/// or more is one too. The query string is dropped.
pub fn stripe_endpoint(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    path.split('/')
        .map(|seg| if is_id_segment(seg) { "{id}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_id_segment(seg: &str) -> bool {
    if seg.len() >= 24 {
        return true;
    }
    match seg.split_once('_') {
        Some((prefix, body)) => {
            !prefix.is_empty()
                && prefix.bytes().all(|b| b.is_ascii_lowercase())
                && !body.is_empty()
                && (body.len() >= 14
                    || body
                        .bytes()
                        .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase()))
        }
        None => seg.bytes().any(|b| b.is_ascii_digit()) && seg.len() >= 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_paths_lose_their_ids() {
        for (path, want) in [
            (
                "/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa/confirm",
                "/v1/payment_intents/{id}/confirm",
            ),
            ("/v1/payment_intents", "/v1/payment_intents"),
            (
                "/v1/test_helpers/test_clocks/clock_1Mt/advance",
                "/v1/test_helpers/test_clocks/{id}/advance",
            ),
            (
                "/v1/customers/cus_abcdefghijklmnop?expand[]=x",
                "/v1/customers/{id}",
            ),
            ("/v1/balance_transactions", "/v1/balance_transactions"),
            ("/v1/webhook_endpoints/we_123", "/v1/webhook_endpoints/{id}"),
            ("/v1/accounts/acct_1ABC", "/v1/accounts/{id}"),
            ("/v1/events", "/v1/events"),
            ("/oauth/token", "/oauth/token"),
        ] {
            assert_eq!(stripe_endpoint(path), want, "{path}");
        }
    }

    #[test]
    fn unknown_event_types_share_one_label() {
        assert_eq!(
            event_type_label("payment_intent.succeeded"),
            "payment_intent.succeeded"
        );
        assert_eq!(event_type_label("issuing_card.created"), "other");
    }

    #[test]
    fn the_exposition_names_every_family() {
        let m = get().unwrap();
        m.http_request("GET", "/health", 200, Duration::from_millis(3));
        m.stripe_request(
            "POST",
            "/v1/refunds",
            stripe_outcome(200),
            Duration::from_millis(3),
        );
        let text = render(&Registry::new());
        for name in [
            "obol_build_info{version=\"",
            "obol_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"}",
            "obol_http_request_duration_seconds_bucket",
            "obol_stripe_requests_total{endpoint=\"/v1/refunds\",method=\"POST\",outcome=\"2xx\"}",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }
}
