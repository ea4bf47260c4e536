//! The Agentic Commerce Protocol (ACP, version 2026-04-17) wire format:
//! what obol answers agent platforms at `/acp` and sends them as order
//! webhooks. The use cases are `ops::acp`; this module holds only the
//! protocol's shapes and rules that need no storage or Stripe: settings,
//! the flat error object, the request-body fingerprint for
//! `Idempotency-Key`, the agent's request `Signature` / `Timestamp`,
//! `Merchant-Signature`, and the order webhook body (`webhook`).
//!
//! The spec and its JSON schemas are copied in `spec/acp/2026-04-17/`;
//! `tests/it/acp*.rs` validate obol's answers against them.

pub mod webhook;

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::ids::TokenHash;

/// The protocol version obol implements.
pub const API_VERSION: &str = "2026-04-17";
/// Every `API-Version` obol accepts.
pub const SUPPORTED_VERSIONS: &[&str] = &[API_VERSION];

/// `acp.*`, parsed. `Debug` shows no key or secret.
#[derive(Clone, Debug, Default)]
pub struct AcpSettings {
    /// The SHA-256 of each `acp.api_keys` entry (compared in constant time).
    pub key_hashes: Vec<TokenHash>,
    pub organization: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<SecretString>,
    /// `acp.signing_secret`: when set, every `/acp` request must carry a
    /// valid `Signature` and a fresh `Timestamp` ([`verify_request`]).
    pub signing_secret: Option<SecretString>,
    /// `{id}` / `{number}` template of the buyer's order page.
    pub order_url: String,
    pub acquirer_bin: String,
    pub acquirer_country: String,
    pub acquirer_merchant_id: String,
    pub merchant_name: String,
    /// `test` or `production`, for the payment handler's config.
    pub environment: &'static str,
}

impl AcpSettings {
    pub fn from_config(config: &Config, public_base: &str, business_name: &str) -> Self {
        let acp = &config.acp;
        AcpSettings {
            key_hashes: acp
                .api_keys
                .iter()
                .map(|k| TokenHash::of(k.expose_secret()))
                .collect(),
            organization: acp.organization.clone(),
            webhook_url: acp.webhook_url.clone(),
            webhook_secret: acp.webhook_secret.clone(),
            signing_secret: acp.signing_secret.clone(),
            order_url: acp
                .order_url
                .clone()
                .unwrap_or_else(|| format!("{public_base}/orders/{{id}}")),
            acquirer_bin: acp.acquirer_bin.clone().unwrap_or_else(|| "000000".into()),
            acquirer_country: acp.acquirer_country.clone().unwrap_or_else(|| "US".into()),
            acquirer_merchant_id: acp
                .acquirer_merchant_id
                .clone()
                .unwrap_or_else(|| "obol".into()),
            merchant_name: business_name.chars().take(40).collect(),
            environment: if config.stripe_mode() == crate::config::StripeMode::Live {
                "production"
            } else {
                "test"
            },
        }
    }

    /// The credential `token` is, as a short fingerprint that scopes its
    /// idempotency keys (never the key itself); `None` if it is none of
    /// `acp.api_keys`. Every configured key is compared, in constant time.
    pub fn credential(&self, token: &str) -> Option<String> {
        let presented = TokenHash::of(token);
        let mut found = None;
        for h in &self.key_hashes {
            if h.ct_eq(&presented) {
                found = Some(format!("acp:{}", &h.as_str()[..16]));
            }
        }
        found
    }

    /// The order's `permalink_url`.
    pub fn permalink(&self, order_id: &str, number: &str) -> String {
        self.order_url
            .replace("{id}", order_id)
            .replace("{number}", number)
    }
}

/// `type` of an ACP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequest,
    ProcessingError,
    ServiceUnavailable,
}

/// Every ACP error code obol answers, its HTTP status and type. The
/// OpenAPI document's `x-error-codes` of the `/acp` routes come from here.
pub const ERROR_CODES: &[(&str, u16, ErrorType)] = &[
    ("unauthorized", 401, ErrorType::InvalidRequest),
    ("signature_required", 401, ErrorType::InvalidRequest),
    ("invalid_signature", 401, ErrorType::InvalidRequest),
    ("timestamp_out_of_range", 401, ErrorType::InvalidRequest),
    ("missing_api_version", 400, ErrorType::InvalidRequest),
    ("unsupported_api_version", 400, ErrorType::InvalidRequest),
    ("idempotency_key_required", 400, ErrorType::InvalidRequest),
    ("idempotency_key_invalid", 400, ErrorType::InvalidRequest),
    ("idempotency_conflict", 422, ErrorType::InvalidRequest),
    ("idempotency_in_flight", 409, ErrorType::InvalidRequest),
    ("invalid_json", 400, ErrorType::InvalidRequest),
    ("invalid", 400, ErrorType::InvalidRequest),
    ("missing", 400, ErrorType::InvalidRequest),
    ("requires_3ds", 400, ErrorType::InvalidRequest),
    ("session_not_found", 404, ErrorType::InvalidRequest),
    ("session_not_cancelable", 405, ErrorType::InvalidRequest),
    ("session_not_modifiable", 409, ErrorType::InvalidRequest),
    ("session_not_ready", 409, ErrorType::InvalidRequest),
    ("checkout_in_progress", 409, ErrorType::InvalidRequest),
    ("payment_processor_error", 502, ErrorType::ProcessingError),
    ("service_unavailable", 503, ErrorType::ServiceUnavailable),
    ("internal_error", 500, ErrorType::ProcessingError),
];

/// The flat ACP error: `{type, code, message, param?}` (plus
/// `supported_versions` for a refused `API-Version`).
#[derive(Debug, Clone, PartialEq)]
pub struct AcpError {
    pub code: &'static str,
    pub message: String,
    /// An RFC 9535 JSONPath into the request (`$.payment_data.instrument`).
    pub param: Option<String>,
    /// Seconds, for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl AcpError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        AcpError {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn at(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn entry(&self) -> (u16, ErrorType) {
        ERROR_CODES
            .iter()
            .find(|(c, _, _)| *c == self.code)
            .map(|(_, s, t)| (*s, *t))
            .unwrap_or((500, ErrorType::ProcessingError))
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.entry().0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": self.entry().1,
            "code": self.code,
            "message": self.message,
        });
        if let Some(p) = &self.param {
            body["param"] = json!(p);
        }
        if matches!(self.code, "missing_api_version" | "unsupported_api_version") {
            body["supported_versions"] = json!(SUPPORTED_VERSIONS);
        }
        body
    }

    /// An obol error met while serving an ACP call: its detail goes to
    /// the log (an internal one's never reaches the body), the agent gets
    /// the ACP type its status calls for.
    pub fn from_obol(e: &crate::error::Error) -> Self {
        e.log();
        let status = e.status().as_u16();
        match status {
            502 => AcpError::new(
                "payment_processor_error",
                "the payment processor could not complete the request; try again",
            ),
            503 | 504 => AcpError::new("service_unavailable", "try again shortly").retry_after(5),
            400..=499 => AcpError::new("invalid", e.to_string()),
            _ => AcpError::new("internal_error", "an internal error occurred"),
        }
    }
}

/// The canonical form of a JSON value (RFC §6.2), the text both the
/// `Idempotency-Key` fingerprint and the request `Signature` are computed
/// over: object keys sorted at every depth, no whitespace, numbers with an
/// integral value written as integers (`1.0` and `1` are one value),
/// arrays in order, `null` kept (it differs from an absent key).
pub fn canonical_json(v: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    if let Some(x) = m.get(*k) {
                        canonical(x, out);
                    }
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(x, out);
                }
                out.push(']');
            }
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => out.push_str(&i.to_string()),
                (None, Some(u), _) => out.push_str(&u.to_string()),
                (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    out.push_str(&format!("{}", f as i64))
                }
                _ => out.push_str(&n.to_string()),
            },
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canonical(v, &mut s);
    s
}

/// SHA-256 (hex) of a JSON body's [`canonical_json`].
pub fn body_fingerprint(body: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(body).as_bytes()))
}

/// How far an agent's `Timestamp` may be from obol's clock, either way.
pub const SIGNATURE_TOLERANCE_SECONDS: i64 = 300;

/// The request `Signature` of the RFC (§2.1, §7: "over canonical JSON with
/// an accompanying `Timestamp`", algorithm published out of band). obol's
/// algorithm: base64url (padding optional) of HMAC-SHA256 keyed with
/// `acp.signing_secret` over `"<Timestamp>.<canonical JSON of the body>"`,
/// the `Timestamp` header's text exactly as sent (RFC 3339); a request
/// without a body (GET) signs `"<Timestamp>."`.
pub fn request_signature(secret: &str, timestamp: &str, body: Option<&Value>) -> Vec<u8> {
    signing_mac(secret, timestamp, body)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

fn signing_mac(secret: &str, timestamp: &str, body: Option<&Value>) -> Option<Hmac<Sha256>> {
    // HMAC takes keys of any length: `None` is unreachable.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    if let Some(b) = body {
        mac.update(canonical_json(b).as_bytes());
    }
    Some(mac)
}

/// Checks an agent's `Signature` and `Timestamp` against `secret` (the
/// digests compared in constant time) and `now` (within
/// [`SIGNATURE_TOLERANCE_SECONDS`]). Nothing to check without a secret.
pub fn verify_request(
    secret: Option<&SecretString>,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: Option<&Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AcpError> {
    use base64::Engine as _;
    let Some(secret) = secret else {
        return Ok(());
    };
    let (Some(signature), Some(timestamp)) = (
        signature.map(str::trim).filter(|s| !s.is_empty()),
        timestamp.map(str::trim).filter(|s| !s.is_empty()),
    ) else {
        return Err(AcpError::new(
            "signature_required",
            "this merchant requires signed requests: the Signature and Timestamp headers are required",
        ));
    };
    let at = chrono::DateTime::parse_from_rfc3339(timestamp).map_err(|_| {
        AcpError::new(
            "timestamp_out_of_range",
            "Timestamp must be an RFC 3339 date-time such as 2026-04-17T10:30:00Z",
        )
    })?;
    let skew = (now - at.with_timezone(&chrono::Utc)).num_seconds();
    if skew.abs() > SIGNATURE_TOLERANCE_SECONDS {
        return Err(AcpError::new(
            "timestamp_out_of_range",
            format!(
                "Timestamp is more than {SIGNATURE_TOLERANCE_SECONDS} seconds from the merchant's clock; sign the request anew"
            ),
        ));
    }
    let presented = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .unwrap_or_default();
    let mac = signing_mac(secret.expose_secret(), timestamp, body)
        .ok_or_else(|| AcpError::new("internal_error", "an internal error occurred"))?;
    // `verify_slice` compares in constant time.
    mac.verify_slice(&presented).map_err(|_| {
        AcpError::new(
            "invalid_signature",
            "the Signature does not match the request (HMAC-SHA256 over \"<Timestamp>.<canonical JSON body>\")",
        )
    })
}

/// `Merchant-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`.
pub fn merchant_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; unreachable.
        Err(_) => return format!("t={timestamp},v1="),
    };
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_bodies_share_a_fingerprint() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": null}});
        let b: Value =
            serde_json::from_str(r#"{"a": {"x": null, "y": [1.0, 2]}, "b": 1.0}"#).unwrap();
        assert_eq!(body_fingerprint(&a), body_fingerprint(&b));
        // null differs from absent, and arrays are ordered.
        assert_ne!(
            body_fingerprint(&json!({"a": null})),
            body_fingerprint(&json!({}))
        );
        assert_ne!(
            body_fingerprint(&json!([1, 2])),
            body_fingerprint(&json!([2, 1]))
        );
    }

    #[test]
    fn merchant_signature_is_hmac_of_timestamp_dot_body() {
        // HMAC-SHA256("key", "1.{}"), computed independently with openssl.
        assert_eq!(
            merchant_signature("key", 1, "{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn request_signatures_verify_within_the_window() {
        use base64::Engine as _;
        let secret = SecretString::from("agent-platform-signing-secret".to_string());
        let now = chrono::DateTime::parse_from_rfc3339("2026-04-17T10:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let body = json!({"b": 1, "a": [1, 2]});
        let ts = "2026-04-17T10:29:00Z";
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(request_signature(
            "agent-platform-signing-secret",
            ts,
            Some(&body),
        ));
        let check = |sig: Option<&str>, ts: Option<&str>, body: &Value| {
            verify_request(Some(&secret), sig, ts, Some(body), now).map_err(|e| e.code)
        };
        assert_eq!(check(Some(&sig), Some(ts), &body), Ok(()));
        // Key order and whitespace do not matter, values do.
        let same: Value = serde_json::from_str(r#"{ "a": [1, 2.0], "b": 1 }"#).unwrap();
        assert_eq!(check(Some(&sig), Some(ts), &same), Ok(()));
        assert_eq!(
            check(Some(&sig), Some(ts), &json!({"b": 2, "a": [1, 2]})),
            Err("invalid_signature")
        );
        assert_eq!(
            check(Some(&sig), Some("2026-04-17T10:29:01Z"), &body),
            Err("invalid_signature")
        );
        assert_eq!(
            check(Some("AAAA"), Some(ts), &body),
            Err("invalid_signature")
        );
        assert_eq!(check(None, Some(ts), &body), Err("signature_required"));
        assert_eq!(check(Some(&sig), None, &body), Err("signature_required"));
        assert_eq!(
            check(Some(&sig), Some("yesterday"), &body),
            Err("timestamp_out_of_range")
        );
        let stale = "2026-04-17T10:24:59Z";
        let stale_sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(request_signature(
            "agent-platform-signing-secret",
            stale,
            Some(&body),
        ));
        assert_eq!(
            check(Some(&stale_sig), Some(stale), &body),
            Err("timestamp_out_of_range")
        );
        // Unconfigured: nothing is checked.
        assert!(verify_request(None, None, None, None, now).is_ok());
    }

    #[test]
    fn every_code_has_one_entry() {
        let mut codes: Vec<&str> = ERROR_CODES.iter().map(|(c, _, _)| *c).collect();
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n);
        let e = AcpError::new("unsupported_api_version", "x");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.body()["supported_versions"], json!(["2026-04-17"]));
        assert_eq!(e.body()["type"], "invalid_request");
    }
}
