//! The one error type of obol's service code and its HTTP rendering.
//!
//! Every variant has a stable snake_case `code()` and an HTTP `status()`;
//! host applications branch on the code, so renaming one is a breaking change
//! (the `error_code_table` snapshot test makes a rename visible in review).
//! Internal variants (`Database`, `Internal`) log their detail and answer a
//! generic message: SQL and stack traces never reach a response body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::money::MoneyError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // 400: the request could not be understood.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidBody(String),
    #[error("invalid query parameter: {0}")]
    InvalidQuery(String),
    #[error("{0}")]
    InvalidId(String),

    // 401
    #[error("this endpoint needs credentials: send `Authorization: Bearer obol_sk_…` or a customer token")]
    Unauthenticated,
    #[error("the API key is not valid")]
    InvalidApiKey,
    #[error("the customer token is not valid, has expired or was revoked")]
    InvalidCustomerToken,
    #[error("GET /metrics needs `Authorization: Bearer` with the configured metrics.token")]
    InvalidMetricsToken,
    #[error("this endpoint takes the secret API key, not a customer token")]
    SecretKeyRequired,
    #[error("Stripe-Signature check failed: {0}")]
    InvalidSignature(crate::stripe::signature::SignatureError),
    /// The dashboard's sign-in: neither the admin password nor a secret key.
    #[error("wrong password or API key")]
    AdminSignInFailed,
    /// The dashboard's session cookie is missing, unknown or timed out.
    #[error("the admin session has ended: sign in again")]
    AdminSessionExpired,

    // 404
    #[error("no {0} with that id")]
    NotFound(Resource),
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },

    // 403: a browser-reachable endpoint (MCP) refuses a Host or Origin
    // outside its allow-list, so a page cannot reach it by DNS rebinding.
    #[error(
        "the {header} header names a host obol does not serve this endpoint at (see public_url)"
    )]
    HostNotAllowed { header: &'static str },
    /// A dashboard form came without its session's CSRF token, or from
    /// another origin.
    #[error("the form's CSRF token is missing or wrong: reload the page and try again")]
    CsrfTokenInvalid,

    // 405 / 406 / 413 / 415
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("send `Accept: application/json, text/event-stream` (MCP's streamable HTTP)")]
    NotAcceptable,
    #[error("the request body is larger than obol accepts (http.body_limit_bytes)")]
    BodyTooLarge,
    #[error("send the body as JSON with `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("the request URI is longer than obol accepts ({limit} bytes)")]
    UriTooLong { limit: usize },
    #[error("the request headers are larger than obol accepts ({limit} bytes in all)")]
    HeadersTooLarge { limit: usize },
    // 408
    #[error("the request body stalled for longer than obol waits (http.body_timeout_seconds)")]
    RequestTimeout,

    // 409
    #[error("a customer with external_id {external_id:?} already exists ({existing_id})")]
    CustomerExists {
        external_id: String,
        existing_id: String,
    },
    #[error("an organisation with external_id {external_id:?} already exists ({existing_id})")]
    OrganizationExists {
        external_id: String,
        existing_id: String,
    },

    // 422 (a rule broken) or 409 (a conflict with the object's state):
    // the status is the code's own, in `RuleCode`.
    #[error("{message}")]
    Rule { code: RuleCode, message: String },
    #[error(transparent)]
    Money(#[from] MoneyError),

    // 429
    #[error("too many requests; retry after {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },

    // 402 / 409 / 422 when Stripe refused what the caller asked for, 502
    // when Stripe could not be reached or answered garbage (`stripe_rule`).
    /// Stripe's own error (type, code, decline code, HTTP status), kept
    /// whole so callers and logs see what Stripe decided. The message is
    /// obol's wording plus Stripe's message with obol's idempotency keys
    /// cut out (`stripe_message`): Stripe echoes the key it was sent, and
    /// obol's keys name its internal operations.
    #[error("{}", stripe_message(.0))]
    Stripe(Box<crate::stripe::StripeError>),

    // 500: detail to the log only.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("internal error")]
    Internal(String),
}

impl From<crate::stripe::StripeError> for Error {
    fn from(e: crate::stripe::StripeError) -> Self {
        Error::Stripe(Box::new(e))
    }
}

/// Declares `RuleCode`: every rule a request can break, with its stable
/// code and its status, in one table, so the snapshot below lists every
/// code obol can answer and a new rule cannot be answered without a row.
macro_rules! rule_codes {
    ($($name:ident => ($code:literal, $status:literal),)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum RuleCode {
            $($name,)*
        }

        impl RuleCode {
            pub const ALL: &'static [RuleCode] = &[$(RuleCode::$name,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(RuleCode::$name => $code,)*
                }
            }

            /// 422 for a rule the request breaks, 409 for a conflict with
            /// the object's current state.
            pub fn status(self) -> StatusCode {
                match self {
                    $(RuleCode::$name => match StatusCode::from_u16($status) {
                        Ok(s) => s,
                        Err(_) => StatusCode::UNPROCESSABLE_ENTITY,
                    },)*
                }
            }
        }
    };
}

rule_codes! {
    AmountMismatch => ("amount_mismatch", 409),
    AmountNegative => ("amount_negative", 422),
    AmountNotPositive => ("amount_not_positive", 422),
    AmountTooSmall => ("amount_too_small", 422),
    AuthorizationExpired => ("authorization_expired", 409),
    CardDeclined => ("card_declined", 402),
    FieldEmpty => ("field_empty", 422),
    FieldInvalid => ("field_invalid", 422),
    FieldTooLong => ("field_too_long", 422),
    IdempotencyKeyReused => ("idempotency_key_reused", 409),
    InvalidEmail => ("invalid_email", 422),
    InvalidEventTypes => ("invalid_event_types", 422),
    InvalidLineItems => ("invalid_line_items", 422),
    InvalidOrderTransition => ("invalid_order_transition", 409),
    InvalidPaymentReference => ("invalid_payment_reference", 422),
    InvalidQuantity => ("invalid_quantity", 422),
    InvalidRefundReason => ("invalid_refund_reason", 422),
    InvalidUrl => ("invalid_url", 422),
    JobAlreadyQueued => ("job_already_queued", 409),
    JobNotDead => ("job_not_dead", 409),
    OrderAlreadyPaid => ("order_already_paid", 409),
    OrderChanged => ("order_changed", 409),
    OrderNotPayable => ("order_not_payable", 409),
    PaymentAlreadyCaptured => ("payment_already_captured", 409),
    PaymentFullyRefunded => ("payment_fully_refunded", 409),
    PaymentNotAuthorized => ("payment_not_authorized", 422),
    PaymentNotCapturable => ("payment_not_capturable", 409),
    PaymentNotCaptured => ("payment_not_captured", 409),
    PaymentNotRefundable => ("payment_not_refundable", 409),
    PaymentReferenceInUse => ("payment_reference_in_use", 409),
    RefundExceedsRemaining => ("refund_exceeds_remaining", 422),
    TooManyOpenIntents => ("too_many_open_intents", 409),
    StripeInvalidRequest => ("stripe_invalid_request", 422),
    TtlOutOfRange => ("ttl_out_of_range", 422),
    UrlNotAllowed => ("url_not_allowed", 422),
    UnknownProduct => ("unknown_product", 422),
    ProductInactive => ("product_inactive", 422),
    CartCurrencyMixed => ("cart_currency_mixed", 422),
    InsufficientStock => ("insufficient_stock", 422),
    UnknownShippingMethod => ("unknown_shipping_method", 422),
    ShippingMethodInactive => ("shipping_method_inactive", 422),
    PaymentLinkExpired => ("payment_link_expired", 410),
    PaymentLinkUsed => ("payment_link_used", 410),
    PaymentLinkBusy => ("payment_link_busy", 409),
    PaymentIntentMismatch => ("payment_intent_mismatch", 422),
    InvoiceNotPayable => ("invoice_not_payable", 422),
    InvoiceStatusConflict => ("invoice_status_conflict", 409),
    InvoiceNumberTaken => ("invoice_number_taken", 409),
    InvalidFeeSettings => ("invalid_fee_settings", 422),
    SyncJobNotFailed => ("sync_job_not_failed", 409),
    ChargeRunNotDraft => ("charge_run_not_draft", 409),
    ChargeRunNotCancelable => ("charge_run_not_cancelable", 409),
    DuplicateReference => ("duplicate_reference", 409),
    CardUpdateLinkExpired => ("card_update_link_expired", 410),
    SetupIntentNotSucceeded => ("setup_intent_not_succeeded", 409),
    SetupIntentMismatch => ("setup_intent_mismatch", 422),
    PaymentActionExpired => ("payment_action_expired", 410),
    PaymentActionCompleted => ("payment_action_completed", 409),
    PaymentActionClosed => ("payment_action_closed", 410),
    OrganizationNotConnected => ("organization_not_connected", 409),
    EncryptionKeyRequired => ("encryption_key_required", 409),
    OrganizationHeaderNotAllowed => ("organization_header_not_allowed", 422),
    ConnectNotConfigured => ("connect_not_configured", 409),
    OrganizationAlreadyConnected => ("organization_already_connected", 409),
    ConnectLinkExpired => ("connect_link_expired", 410),
    ConnectLinkUsed => ("connect_link_used", 410),
    ConnectStateInvalid => ("connect_state_invalid", 400),
    ConnectStateUsed => ("connect_state_used", 410),
    ConnectStateExpired => ("connect_state_expired", 410),
    StripeAccountInUse => ("stripe_account_in_use", 409),
    NoDefaultCard => ("no_default_card", 422),
    DateNotInFuture => ("date_not_in_future", 422),
    SubscriptionNotCancelable => ("subscription_not_cancelable", 409),
    PayoutTransactionsNotReady => ("payout_transactions_not_ready", 409),
}

/// The kinds of object a caller can ask for; used in `*_not_found` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Customer,
    CustomerToken,
    Payment,
    WebhookEvent,
    Dispute,
    WebhookEndpoint,
    WebhookDelivery,
    Order,
    Job,
    Product,
    ShippingMethod,
    PaymentLink,
    Invoice,
    SyncJob,
    ChargeRun,
    CardUpdateLink,
    Email,
    PaymentAction,
    Organization,
    ConnectLink,
    Subscription,
    BillingInvoice,
    ScheduledPayment,
    Payout,
}

impl Resource {
    fn as_str(self) -> &'static str {
        match self {
            Resource::Customer => "customer",
            Resource::CustomerToken => "customer token",
            Resource::Payment => "payment",
            Resource::WebhookEvent => "webhook event",
            Resource::Dispute => "dispute",
            Resource::WebhookEndpoint => "webhook endpoint",
            Resource::WebhookDelivery => "webhook delivery",
            Resource::Order => "order",
            Resource::Job => "job",
            Resource::Product => "product",
            Resource::ShippingMethod => "shipping method",
            Resource::PaymentLink => "payment link",
            Resource::Invoice => "invoice",
            Resource::SyncJob => "sync job",
            Resource::ChargeRun => "charge run",
            Resource::CardUpdateLink => "card update link",
            Resource::Email => "e-mail",
            Resource::PaymentAction => "payment action link",
            Resource::Organization => "organisation",
            Resource::ConnectLink => "connect link",
            Resource::Subscription => "subscription",
            Resource::BillingInvoice => "billing invoice",
            Resource::ScheduledPayment => "scheduled payment",
            Resource::Payout => "payout",
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    pub fn rule(code: RuleCode, message: impl Into<String>) -> Self {
        Error::Rule {
            code,
            message: message.into(),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal(detail.to_string())
    }

    /// Logs what the caller is not shown: an internal error's detail at
    /// error level, a Stripe failure at warn; any other refusal at debug.
    /// Every front end (HTTP, MCP) logs an error it answers through this.
    pub fn log(&self) {
        match self {
            Error::Database(e) => tracing::error!(error = %e, "database error"),
            Error::Internal(detail) => tracing::error!(%detail, "internal error"),
            Error::Stripe(detail) => tracing::warn!(%detail, "Stripe call failed"),
            _ => tracing::debug!(code = self.code(), "request refused"),
        }
    }

    /// The stable, documented code host applications match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MalformedJson(_) => "malformed_json",
            Error::InvalidBody(_) => "invalid_body",
            Error::InvalidQuery(_) => "invalid_query",
            Error::InvalidId(_) => "invalid_id",
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidApiKey => "invalid_api_key",
            Error::InvalidCustomerToken => "invalid_customer_token",
            Error::InvalidMetricsToken => "invalid_metrics_token",
            Error::SecretKeyRequired => "secret_key_required",
            Error::InvalidSignature(_) => "invalid_signature",
            Error::AdminSignInFailed => "admin_sign_in_failed",
            Error::AdminSessionExpired => "admin_session_expired",
            Error::CsrfTokenInvalid => "csrf_token_invalid",
            Error::NotFound(Resource::Customer) => "customer_not_found",
            Error::NotFound(Resource::CustomerToken) => "customer_token_not_found",
            Error::NotFound(Resource::Payment) => "payment_not_found",
            Error::NotFound(Resource::WebhookEvent) => "webhook_event_not_found",
            Error::NotFound(Resource::Dispute) => "dispute_not_found",
            Error::NotFound(Resource::WebhookEndpoint) => "webhook_endpoint_not_found",
            Error::NotFound(Resource::WebhookDelivery) => "webhook_delivery_not_found",
            Error::NotFound(Resource::Order) => "order_not_found",
            Error::NotFound(Resource::Job) => "job_not_found",
            Error::NotFound(Resource::Product) => "product_not_found",
            Error::NotFound(Resource::ShippingMethod) => "shipping_method_not_found",
            Error::NotFound(Resource::PaymentLink) => "payment_link_not_found",
            Error::NotFound(Resource::Invoice) => "invoice_not_found",
            Error::NotFound(Resource::SyncJob) => "sync_job_not_found",
            Error::NotFound(Resource::ChargeRun) => "charge_run_not_found",
            Error::NotFound(Resource::CardUpdateLink) => "card_update_link_not_found",
            Error::NotFound(Resource::Email) => "email_not_found",
            Error::NotFound(Resource::PaymentAction) => "payment_action_not_found",
            Error::NotFound(Resource::Organization) => "organization_not_found",
            Error::NotFound(Resource::ConnectLink) => "connect_link_not_found",
            Error::NotFound(Resource::Subscription) => "subscription_not_found",
            Error::NotFound(Resource::BillingInvoice) => "billing_invoice_not_found",
            Error::NotFound(Resource::ScheduledPayment) => "scheduled_payment_not_found",
            Error::NotFound(Resource::Payout) => "payout_not_found",
            Error::RouteNotFound { .. } => "route_not_found",
            Error::HostNotAllowed { .. } => "host_not_allowed",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::NotAcceptable => "not_acceptable",
            Error::BodyTooLarge => "body_too_large",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::RequestTimeout => "request_timeout",
            Error::UriTooLong { .. } => "uri_too_long",
            Error::HeadersTooLarge { .. } => "headers_too_large",
            Error::CustomerExists { .. } => "customer_exists",
            Error::OrganizationExists { .. } => "organization_exists",
            Error::Rule { code, .. } => code.as_str(),
            Error::Money(e) => e.code(),
            Error::RateLimited { .. } => "rate_limited",
            Error::Stripe(e) => stripe_rule(e).map_or("stripe_error", RuleCode::as_str),
            Error::Database(_) | Error::Internal(_) => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::MalformedJson(_)
            | Error::InvalidBody(_)
            | Error::InvalidQuery(_)
            | Error::InvalidId(_) => StatusCode::BAD_REQUEST,
            Error::Unauthenticated
            | Error::InvalidApiKey
            | Error::InvalidCustomerToken
            | Error::InvalidMetricsToken
            | Error::SecretKeyRequired
            | Error::InvalidSignature(_)
            | Error::AdminSignInFailed
            | Error::AdminSessionExpired => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) | Error::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Error::HostNotAllowed { .. } | Error::CsrfTokenInvalid => StatusCode::FORBIDDEN,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Error::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Error::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::CustomerExists { .. } | Error::OrganizationExists { .. } => StatusCode::CONFLICT,
            Error::Rule { code, .. } => code.status(),
            Error::Money(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Stripe(e) => stripe_rule(e).map_or(StatusCode::BAD_GATEWAY, RuleCode::status),
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `{"error": {"code", "message", …}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(self.to_body())
            .unwrap_or_else(|_| json!({"error": {"code": self.code()}}))
    }

    fn to_body(&self) -> ErrorBody {
        let message = match self {
            Error::Database(_) | Error::Internal(_) => {
                "obol hit an internal error; the request id in the `x-request-id` header finds it in the log".to_string()
            }
            other => other.to_string(),
        };
        let existing_id = match self {
            Error::CustomerExists { existing_id, .. }
            | Error::OrganizationExists { existing_id, .. } => Some(existing_id.clone()),
            _ => None,
        };
        let stripe = match self {
            Error::Stripe(stripe) => match stripe.as_ref() {
                crate::stripe::StripeError::Refused { status, error: e } => Some(StripeRefusal {
                    status: *status,
                    kind: e.kind.clone(),
                    code: e.code.clone(),
                    decline_code: e.decline_code.clone(),
                    param: e.param.as_deref().map(str::to_string),
                }),
                _ => None,
            },
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                existing_id,
                stripe,
            },
        }
    }
}

/// Every error obol answers: `{"error": {…}}` with a stable `code`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and snake_case: branch on it (each operation lists its codes).
    #[schema(value_type = String, example = "order_not_found")]
    pub code: &'static str,
    /// For people: what went wrong and, where it helps, what to do.
    pub message: String,
    /// `customer_exists` and `organization_exists` only: the customer
    /// (`cus_…`) or organisation (`org_…`) that has this `external_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
    /// When Stripe refused the request: Stripe's own error, whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe: Option<StripeRefusal>,
}

/// Stripe's answer when it refused what obol asked for the caller.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StripeRefusal {
    /// Stripe's HTTP status.
    pub status: u16,
    /// Stripe's error type (`card_error`, `invalid_request_error`, …).
    #[serde(rename = "type")]
    pub kind: String,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub param: Option<String>,
}

/// Which of obol's codes a Stripe error is, if it is the caller's to fix:
/// a refused parameter or state (`invalid_request_error`, 422), a card
/// error (402, like Stripe's own status), a key reused with another body
/// (409). `None` (502 `stripe_error`): Stripe unreachable, an unreadable
/// answer, or a refusal of obol's own credentials (401, 403), which no
/// caller can fix.
fn stripe_rule(e: &crate::stripe::StripeError) -> Option<RuleCode> {
    use crate::stripe::StripeError;
    match e {
        StripeError::Refused { status, error } => match (error.kind.as_str(), status) {
            (_, 401 | 403) => None,
            ("card_error", _) => Some(RuleCode::CardDeclined),
            ("idempotency_error", _) => Some(RuleCode::IdempotencyKeyReused),
            ("invalid_request_error", _) => Some(RuleCode::StripeInvalidRequest),
            _ => None,
        },
        StripeError::Unavailable { .. } | StripeError::Decode(_) => None,
    }
}

/// The message of a Stripe error as it may appear in a response body, a
/// job's `last_error` or a refund's `failure_reason`: never an obol
/// idempotency key, and for a reused key not even Stripe's text (it is
/// about the key and nothing else).
fn stripe_message(e: &crate::stripe::StripeError) -> String {
    use crate::stripe::{redact_idempotency_keys, StripeError};
    let detail = match e {
        StripeError::Refused { error, .. } => redact_idempotency_keys(&error.message),
        other => redact_idempotency_keys(&other.to_string()),
    };
    match stripe_rule(e) {
        Some(RuleCode::IdempotencyKeyReused) => {
            "this Idempotency-Key was already used with a different request; send a new key for a different request".to_string()
        }
        Some(RuleCode::CardDeclined) => format!("the card was declined: {detail}"),
        Some(RuleCode::StripeInvalidRequest) => format!("Stripe refused the request: {detail}"),
        _ => format!("Stripe did not answer as expected: {detail}"),
    }
}

/// Every code obol can answer, with its status, once each: one sample of
/// every variant plus every `RuleCode`. The OpenAPI document lists each
/// route's codes from here (`crate::openapi`), and the snapshot test
/// below makes a renamed code visible in review.
pub fn catalogue() -> Vec<(StatusCode, &'static str)> {
    let samples = vec![
        Error::MalformedJson("x".into()),
        Error::InvalidBody("x".into()),
        Error::InvalidQuery("x".into()),
        Error::InvalidId("x".into()),
        Error::Unauthenticated,
        Error::InvalidApiKey,
        Error::InvalidCustomerToken,
        Error::InvalidMetricsToken,
        Error::SecretKeyRequired,
        Error::InvalidSignature(crate::stripe::signature::SignatureError::Mismatch),
        Error::AdminSignInFailed,
        Error::AdminSessionExpired,
        Error::CsrfTokenInvalid,
        Error::NotFound(Resource::Customer),
        Error::NotFound(Resource::CustomerToken),
        Error::NotFound(Resource::Payment),
        Error::NotFound(Resource::WebhookEvent),
        Error::NotFound(Resource::Dispute),
        Error::NotFound(Resource::WebhookEndpoint),
        Error::NotFound(Resource::WebhookDelivery),
        Error::NotFound(Resource::Order),
        Error::NotFound(Resource::Job),
        Error::NotFound(Resource::Product),
        Error::NotFound(Resource::ShippingMethod),
        Error::NotFound(Resource::PaymentLink),
        Error::NotFound(Resource::Invoice),
        Error::NotFound(Resource::SyncJob),
        Error::NotFound(Resource::ChargeRun),
        Error::NotFound(Resource::CardUpdateLink),
        Error::NotFound(Resource::Email),
        Error::NotFound(Resource::PaymentAction),
        Error::NotFound(Resource::Organization),
        Error::NotFound(Resource::ConnectLink),
        Error::NotFound(Resource::Subscription),
        Error::NotFound(Resource::BillingInvoice),
        Error::NotFound(Resource::ScheduledPayment),
        Error::NotFound(Resource::Payout),
        Error::RouteNotFound {
            method: "GET".into(),
            path: "/x".into(),
        },
        Error::HostNotAllowed { header: "Host" },
        Error::MethodNotAllowed,
        Error::NotAcceptable,
        Error::BodyTooLarge,
        Error::UnsupportedMediaType,
        Error::RequestTimeout,
        Error::UriTooLong { limit: 1 },
        Error::HeadersTooLarge { limit: 1 },
        Error::CustomerExists {
            external_id: "a".into(),
            existing_id: "cus_1".into(),
        },
        Error::OrganizationExists {
            external_id: "a".into(),
            existing_id: "org_1".into(),
        },
        Error::Money(MoneyError::NotPositive { got: 0 }),
        Error::Money(MoneyError::TooLarge),
        Error::Money(MoneyError::Precision {
            currency: crate::money::Currency::KWD,
        }),
        Error::Money(MoneyError::UnsupportedCurrency { code: "x".into() }),
        Error::Money(MoneyError::CurrencyMismatch {
            left: crate::money::Currency::EUR,
            right: crate::money::Currency::USD,
        }),
        Error::Money(MoneyError::InvalidDecimal {
            input: "x".into(),
            reason: "x",
        }),
        Error::Money(MoneyError::Negative { got: -1 }),
        Error::Money(MoneyError::TooSmall {
            minimum: 50,
            currency: crate::money::Currency::EUR,
        }),
        Error::RateLimited {
            retry_after_seconds: 1,
        },
        Error::from(crate::stripe::StripeError::Decode("x".into())),
        Error::Database(sqlx::Error::RowNotFound),
        Error::Internal("x".into()),
    ];
    let mut table: Vec<(StatusCode, &'static str)> = samples
        .iter()
        .chain(
            RuleCode::ALL
                .iter()
                .map(|c| Error::rule(*c, "x"))
                .collect::<Vec<_>>()
                .iter(),
        )
        .map(|e| (e.status(), e.code()))
        .collect();
    // A code two variants share (amount_negative) is listed once.
    let mut seen = std::collections::HashSet::new();
    table.retain(|(_, code)| seen.insert(*code));
    table
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        self.log();
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Error::RateLimited {
            retry_after_seconds,
        } = self
        {
            if let Ok(v) = retry_after_seconds.to_string().parse() {
                response.headers_mut().insert("retry-after", v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code and status, in one table: a renamed code is a breaking
    /// change for host applications and must show up in review.
    #[test]
    fn error_code_table() {
        let table: Vec<String> = catalogue()
            .iter()
            .map(|(status, code)| format!("{} {code}", status.as_u16()))
            .collect();
        insta::assert_snapshot!(table.join("\n"));
    }

    fn refused(status: u16, kind: &str, code: &str, message: &str) -> Error {
        Error::from(crate::stripe::StripeError::Refused {
            status,
            error: crate::stripe::ApiError {
                kind: kind.into(),
                code: Some(code.into()),
                decline_code: None,
                message: message.into(),
                param: Some("amount".into()),
                payment_intent: None,
            },
        })
    }

    #[test]
    fn stripe_errors_map_to_stable_codes() {
        let cases = [
            (refused(400, "invalid_request_error", "amount_too_small", "Amount must be at least €0.50 eur"), 422, "stripe_invalid_request"),
            (refused(404, "invalid_request_error", "resource_missing", "No such payment_intent: 'pi_x'"), 422, "stripe_invalid_request"),
            (refused(402, "card_error", "card_declined", "Your card was declined."), 402, "card_declined"),
            (refused(400, "idempotency_error", "idempotency_error", "Try using a key other than 'obol-pay-first-intent-0123456789abcdef0123456789abcdef'"), 409, "idempotency_key_reused"),
            // obol's own credentials refused: nothing the caller can fix.
            (refused(401, "invalid_request_error", "api_key_invalid", "Invalid API Key provided"), 502, "stripe_error"),
            (Error::from(crate::stripe::StripeError::Decode("garbage".into())), 502, "stripe_error"),
            (Error::from(crate::stripe::StripeError::Unavailable { attempts: 6, last: "timed out".into() }), 502, "stripe_error"),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status().as_u16(), e.code()), (status, code), "{e:?}");
        }
        let body = refused(
            400,
            "invalid_request_error",
            "amount_too_small",
            "Amount must be at least €0.50 eur",
        )
        .body();
        assert_eq!(body["error"]["stripe"]["code"], "amount_too_small");
        assert_eq!(body["error"]["stripe"]["param"], "amount");
        assert_eq!(body["error"]["stripe"]["type"], "invalid_request_error");
    }

    #[test]
    fn no_stripe_message_carries_an_obol_idempotency_key() {
        let key = "obol-capture-0123456789abcdef0123456789abcdef";
        for kind in [
            "invalid_request_error",
            "idempotency_error",
            "card_error",
            "api_error",
        ] {
            let e = refused(
                400,
                kind,
                "x",
                &format!("Try using a key other than '{key}' if you meant to"),
            );
            let body = e.body().to_string();
            assert!(
                !body.contains(key) && !body.contains("obol-capture"),
                "{body}"
            );
            assert!(!e.to_string().contains(key), "{e}");
        }
        let e = refused(
            400,
            "idempotency_error",
            "x",
            "Keys for idempotent requests can only be used with the same parameters",
        );
        assert!(
            !e.body().to_string().contains("Keys for idempotent"),
            "{}",
            e.body()
        );
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let e = Error::Internal("SELECT secret FROM table".into());
        let body = e.body().to_string();
        assert!(!body.contains("SELECT"), "{body}");
        assert_eq!(e.code(), "internal_error");
    }
}
