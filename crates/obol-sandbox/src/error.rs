//! Stripe's error object and statuses. Every failure an API caller can cause
//! ends up here; internal failures log their cause and answer a bare
//! `api_error` so SQL never reaches a body.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub fields: Map<String, Value>,
    /// Whether the request's transaction must still be committed: a decline
    /// is a failure for the caller but leaves a failed charge and events.
    pub commit: bool,
    pub should_retry: Option<bool>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        let mut fields = Map::new();
        fields.insert("type".into(), Value::String(kind.into()));
        fields.insert("message".into(), Value::String(message.into()));
        ApiError {
            status,
            fields,
            commit: false,
            should_retry: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn missing_param(param: &str) -> Self {
        Self::invalid(format!("Missing required param: {param}."))
            .param(param)
            .code("parameter_missing")
    }

    /// 404 `resource_missing`: "No such customer: 'cus_…'".
    pub fn no_such(noun: &str, id: &str, param: Option<&str>) -> Self {
        let e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("No such {noun}: '{id}'"),
        )
        .code("resource_missing");
        match param {
            Some(p) => e.param(p),
            None => e.param("id"),
        }
    }

    /// 402 `card_error`.
    pub fn card(code: &str, decline_code: Option<&str>, message: &str) -> Self {
        let mut e = Self::new(StatusCode::PAYMENT_REQUIRED, "card_error", message).code(code);
        if let Some(d) = decline_code {
            e = e.with("decline_code", Value::String(d.into()));
        }
        e
    }

    /// 400 `payment_intent_unexpected_state` carrying the whole intent.
    pub fn unexpected_state(message: String, key: &str, object: Value) -> Self {
        let code = if key == "setup_intent" {
            "setup_intent_unexpected_state"
        } else {
            "payment_intent_unexpected_state"
        };
        Self::invalid(message).code(code).with(key, object)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "sandbox internal error");
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "An unknown error occurred while processing your request. Please try again.",
        );
        e.should_retry = Some(true);
        e
    }

    pub fn param(self, p: &str) -> Self {
        self.with("param", Value::String(p.into()))
    }

    pub fn code(self, c: &str) -> Self {
        let doc = format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        );
        self.with("code", Value::String(c.into()))
            .with("doc_url", Value::String(doc))
    }

    pub fn with(mut self, k: &str, v: Value) -> Self {
        self.fields.insert(k.into(), v);
        self
    }

    pub fn committing(mut self) -> Self {
        self.commit = true;
        self
    }

    pub fn body(&self) -> Value {
        json!({ "error": Value::Object(self.fields.clone()) })
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::internal(e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msg = self
            .fields
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        write!(f, "{} {}", self.status.as_u16(), msg)
    }
}
