//! obol's API description: an OpenAPI 3.1 document generated from the
//! code, served at `GET /openapi.json` and printed by `obol openapi`.
//!
//! utoipa builds the paths and schemas from the handlers' `#[utoipa::path]`
//! attributes and the request and view types' `ToSchema` derives; the
//! routes are registered through `utoipa_axum`'s `routes!`, so a handler
//! cannot be routed without its description. [`finish`] then adds what
//! utoipa has no attribute for:
//!
//! - every operation's error responses, one per status, each with the
//!   error shape and the codes that status can carry on that route (the
//!   route's own `x-error-codes` plus the codes every route of its kind can
//!   answer: credentials, bodies, the HTTP layer). The codes are listed in
//!   the description and in the response's `x-error-codes`, not as an enum
//!   of `error.code`: one shared `ErrorBody` keeps generated clients at one
//!   error type, and a client built today still parses a code added later.
//!   The test suite's validator checks `x-error-codes`;
//! - the `x-request-id` header on every response, `Retry-After` on 429;
//! - `webhooks`: the notifications obol sends to host applications.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::{json, Map, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::error::{catalogue, ErrorBody};
use crate::outbox::{
    self, BillingInvoiceNotification, ChargeRunItemNotification, ChargeRunNotification,
    CustomerNotification, InvoiceNotification, OrderNotification, OrganizationNotification,
    PaymentMethodNotification, PaymentNotification, PayoutNotification, SubscriptionNotification,
    SyncJobNotification,
};

/// The names of the three credential schemes, as operations cite them.
pub const SECRET_KEY: &str = "secret_key";
pub const CUSTOMER_TOKEN: &str = "customer_token";
pub const GUEST_TOKEN: &str = "guest_token";
pub const ADMIN_SESSION: &str = "admin_session";
/// `GET /metrics`'s credential, when `metrics.token` is configured.
pub const METRICS_TOKEN: &str = "metrics_token";
/// The Agentic Commerce Protocol credential (`acp.api_keys`).
pub const ACP_KEY: &str = "acp_key";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "obol",
        description = "A self-hosted Stripe payments hub: customers, orders, pay-first checkout, \
            payments and refunds, disputes, the Stripe webhook inbox and signed notifications to \
            the host application.\n\nMoney is always integer minor units plus a lowercase ISO 4217 \
            currency. Errors answer `{\"error\": {\"code\", \"message\"}}` with a stable `code`; \
            each operation lists the codes it can answer per status. Lists are cursor-paginated: \
            `limit` (1–100, default 20) and the `next_cursor` of the previous page as `cursor`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    modifiers(&Credentials),
    components(schemas(ErrorBody)),
    tags(
        (name = "health", description = "Liveness and this document."),
        (name = "organizations", description = "The businesses one obol serves, each with its own objects and Stripe account; requests name one with `Obol-Organization`."),
        (name = "customers", description = "The host application's customers and their tokens."),
        (name = "orders", description = "What a customer or a guest buys; obol computes totals."),
        (name = "checkout", description = "PaymentIntents: pay-first authorizations and payments of existing orders."),
        (name = "payments", description = "The ledger: payments, their timelines and refunds."),
        (name = "disputes", description = "Chargebacks and the tasks they create."),
        (name = "notifications", description = "Where obol sends its signed notifications, and every delivery."),
        (name = "stripe_inbox", description = "Stripe's webhook deliveries, the inbox that stores them, reconciliation."),
        (name = "jobs", description = "The background job queue."),
        (name = "emails", description = "The member e-mail outbox: what obol sent (or, without SMTP, kept) for customers."),
        (name = "catalog", description = "Products and shipping methods: the prices carts are computed from."),
        (name = "payment_links", description = "Links to a hosted payment page an agent hands a customer."),
        (name = "invoices", description = "Invoices paid through a public link, their fee passthrough and their accounting syncs."),
        (name = "charge_runs", description = "Off-session charges of many members' saved cards, each at most once."),
        (name = "billing", description = "Subscriptions (recurring gifts and plans), scheduled payments and the Stripe invoices obol mirrors."),
        (name = "payouts", description = "Payouts mirrored from Stripe and the balance transactions each one settles."),
        (name = "mcp", description = "obol's tools for AI agents (Model Context Protocol, streamable HTTP)."),
        (name = "admin", description = "The admin dashboard (HTML for operators in a browser; a session cookie and a CSRF token on every form)."),
        (name = "acp", description = "The Agentic Commerce Protocol (2026-04-17) merchant endpoint agent platforms check out against; its errors are ACP's flat `{type, code, message, param}`."),
    )
)]
struct ApiDoc;

/// The three credential schemes. Both bearer schemes travel in
/// `Authorization: Bearer …`; obol tells them apart by prefix.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECRET_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("obol_sk_…")
                    .description(Some(
                        "The host application's secret API key (`obol_sk_…`). Server to server only: \
                         it may do everything.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            CUSTOMER_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("obol_ct_…")
                    .description(Some(
                        "A customer token (`obol_ct_…`) the host backend minted with \
                         `POST /v1/customer-tokens`: acts for that one customer, sees only what is theirs.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            ADMIN_SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "obol_admin",
                "The admin dashboard's session cookie, set by `POST /admin/login`.",
            ))),
        );
        components.add_security_scheme(
            METRICS_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`metrics.token` (`OBOL_METRICS__TOKEN`), required by `GET /metrics` when it is configured.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            ACP_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An agent platform's credential, one of `acp.api_keys`: `/acp` routes only.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            GUEST_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Guest-Token",
                "The guest token (`obol_gt_…`) returned once when a guest order is created: \
                 reads and pays that one order. Also accepted as the `guest_token` query parameter.",
            ))),
        );
    }
}

/// The document, built once.
static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let (_, api) = crate::api::routes().split_for_parts();
    finish(api)
});

/// The whole OpenAPI document as JSON.
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// The document utoipa starts from (info, credentials, tags).
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Codes any route may answer whatever it does: the HTTP layer's limits
/// and an internal error.
const EVERY_ROUTE: &[&str] = &["uri_too_long", "headers_too_large", "internal_error"];
/// Codes of a route that reads a JSON body.
const WITH_BODY: &[&str] = &[
    "malformed_json",
    "invalid_body",
    "unsupported_media_type",
    "body_too_large",
    "request_timeout",
];
/// Codes of a route that takes a credential.
const WITH_CREDENTIAL: &[&str] = &["unauthenticated", "invalid_api_key", "rate_limited"];

/// Adds the error responses, the response headers and the webhooks to
/// what utoipa generated.
pub fn finish(api: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(&api).unwrap_or_else(|_| json!({}));
    let statuses: BTreeMap<&str, u16> = catalogue()
        .into_iter()
        .map(|(status, code)| (code, status.as_u16()))
        .collect();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for op in item.values_mut() {
                if let Some(op) = op.as_object_mut() {
                    if is_acp(op) {
                        add_acp(op);
                    } else {
                        add_errors(op, &statuses);
                    }
                    add_headers(op);
                }
            }
        }
    }
    add_schemas(&mut doc);
    doc["webhooks"] = webhooks();
    doc
}

/// The codes an operation can answer: its own `x-error-codes` and those
/// of its kind, then one response per status.
fn add_errors(op: &mut Map<String, Value>, statuses: &BTreeMap<&str, u16>) {
    let mut codes: Vec<String> = op
        .get("x-error-codes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut also: Vec<&str> = EVERY_ROUTE.to_vec();
    if op.contains_key("requestBody") {
        also.extend(WITH_BODY);
    }
    let security: Vec<String> = op
        .get("security")
        .and_then(Value::as_array)
        .map(|reqs| {
            reqs.iter()
                .filter_map(Value::as_object)
                .flat_map(|r| r.keys().cloned())
                .collect()
        })
        .unwrap_or_default();
    if security
        .iter()
        .any(|s| s == SECRET_KEY || s == CUSTOMER_TOKEN)
    {
        also.extend(WITH_CREDENTIAL);
    }
    if security
        .iter()
        .any(|s| s == SECRET_KEY || s == CUSTOMER_TOKEN || s == GUEST_TOKEN)
    {
        // `Obol-Organization` naming no organisation (or, with a customer
        // token, another than its own).
        also.push("organization_not_found");
        add_organization_header(op);
    }
    // A route that calls Stripe may be asked to for an organisation whose
    // Stripe account is not connected.
    if codes.iter().any(|c| c == "stripe_error") {
        also.push("organization_not_connected");
    }
    if security.iter().any(|s| s == CUSTOMER_TOKEN) {
        also.push("invalid_customer_token");
    } else if security.iter().any(|s| s == SECRET_KEY) {
        // A customer token sent where only the secret key goes.
        also.push("secret_key_required");
        also.push("invalid_customer_token");
    }
    for c in also {
        if !codes.iter().any(|have| have == c) {
            codes.push(c.to_string());
        }
    }
    let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for code in &codes {
        // An unknown code is a mistake in an attribute; `every_listed_code_is_one_obol_answers`
        // fails on it, and here it is left out rather than given a status.
        if let Some(status) = statuses.get(code.as_str()) {
            by_status.entry(*status).or_default().push(code.clone());
        }
    }
    op.insert("x-error-codes".into(), json!(codes));
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    for (status, codes) in by_status {
        let mut codes = codes;
        codes.sort();
        let description = format!("Error; `error.code` is one of: {}.", codes.join(", "));
        responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                "x-error-codes": codes,
            }),
        );
    }
}

/// An operation of the Agentic Commerce Protocol (tag `acp`).
pub fn is_acp(op: &Map<String, Value>) -> bool {
    op.get("tags")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|x| x == "acp"))
}

/// Codes every `/acp/checkout_sessions…` route can answer.
const ACP_EVERY_ROUTE: &[&str] = &[
    "unauthorized",
    "signature_required",
    "invalid_signature",
    "timestamp_out_of_range",
    "missing_api_version",
    "unsupported_api_version",
    "internal_error",
];
/// Codes of an `/acp` POST.
const ACP_POST: &[&str] = &[
    "idempotency_key_required",
    "idempotency_key_invalid",
    "idempotency_conflict",
    "idempotency_in_flight",
    "invalid_json",
];

/// An ACP operation's documented answers: the success body (`x-acp-response`
/// names its schema), ACP's error shape per status with the codes from
/// `acp::ERROR_CODES`, and the protocol's headers.
fn add_acp(op: &mut Map<String, Value>) {
    let schema = op
        .get("x-acp-response")
        .and_then(Value::as_str)
        .unwrap_or("AcpCheckoutSession")
        .to_string();
    let secured = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|r| r.get(ACP_KEY).is_some()));
    let post = op.contains_key("requestBody");
    let mut codes: Vec<String> = op
        .get("x-error-codes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if secured {
        let mut also: Vec<&str> = ACP_EVERY_ROUTE.to_vec();
        if post {
            also.extend(ACP_POST);
        }
        for c in also {
            if !codes.iter().any(|have| have == c) {
                codes.push(c.to_string());
            }
        }
    }
    let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for code in &codes {
        if let Some((_, status, _)) = crate::acp::ERROR_CODES.iter().find(|(c, _, _)| c == code) {
            by_status.entry(*status).or_default().push(code.clone());
        }
    }
    op.insert("x-error-codes".into(), json!(codes));
    if secured {
        let params = op.entry("parameters").or_insert_with(|| json!([]));
        if let Some(params) = params.as_array_mut() {
            params.push(json!({"name": "API-Version", "in": "header", "required": true,
                "description": "The ACP version, `2026-04-17`; missing or another answers 400 with `supported_versions`.",
                "schema": {"type": "string", "enum": crate::acp::SUPPORTED_VERSIONS}}));
            params.push(json!({"name": "Request-Id", "in": "header", "required": false,
                "description": "The caller's id of this request; echoed.", "schema": {"type": "string", "maxLength": 255}}));
            params.push(json!({"name": "Signature", "in": "header", "required": false,
                "description": "Required when `acp.signing_secret` is set: base64url of HMAC-SHA256 (that secret) over `\"<Timestamp>.<canonical JSON body>\"` (keys sorted, no whitespace; nothing after the dot without a body). Missing: 401 `signature_required`; wrong: 401 `invalid_signature`.",
                "schema": {"type": "string"}}));
            params.push(json!({"name": "Timestamp", "in": "header", "required": false,
                "description": "Required with `Signature`: RFC 3339, within 300 seconds of obol's clock (else 401 `timestamp_out_of_range`).",
                "schema": {"type": "string", "format": "date-time"}}));
            if post {
                params.push(json!({"name": "Idempotency-Key", "in": "header", "required": true,
                    "description": "Required on every POST (RFC §6): the same key and body replay the stored answer (`Idempotent-Replayed: true`), another body answers 422 `idempotency_conflict`, a request still in flight 409 `idempotency_in_flight` with `Retry-After`. 5xx answers are not stored; keys are kept 24 hours.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255}}));
            }
        }
    }
    let Some(responses) = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    for (_, r) in responses.iter_mut() {
        r["content"] = json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
        if post {
            r["headers"] = json!({
                "idempotency-key": {"description": "The request's Idempotency-Key, echoed.", "required": false, "schema": {"type": "string"}},
                "idempotent-replayed": {"description": "`true` when this is the stored answer of an earlier request with this key.", "required": false, "schema": {"type": "string", "enum": ["true"]}}
            });
        }
    }
    for (status, mut codes) in by_status {
        codes.sort();
        let mut response = json!({
            "description": format!("ACP error; `code` is one of: {}.", codes.join(", ")),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AcpError"}}},
            "x-error-codes": codes,
        });
        if status == 409 || status == 503 {
            response["headers"] = json!({"retry-after": {"description": "Seconds to wait before trying again.", "required": false, "schema": {"type": "integer", "minimum": 1}}});
        }
        responses.insert(status.to_string(), response);
    }
}

/// The schemas of ACP's answers as obol's document describes them: the
/// protocol's required fields; the copied ACP JSON schemas
/// (`spec/acp/2026-04-17/`) are the full contract the tests check too.
fn acp_schemas() -> Vec<(String, Value)> {
    let total = json!({"type": "object", "required": ["type", "display_text", "amount"], "properties": {
        "type": {"type": "string"}, "display_text": {"type": "string"}, "amount": {"type": "integer"}}});
    vec![
        (
            "AcpError".into(),
            json!({
                "type": "object", "additionalProperties": false,
                "description": "ACP's flat error. `param` is an RFC 9535 JSONPath into the request.",
                "required": ["type", "code", "message"],
                "properties": {
                    "type": {"type": "string", "enum": ["invalid_request", "processing_error", "service_unavailable"]},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "param": {"type": "string", "pattern": "^\\$"},
                    "supported_versions": {"type": "array", "items": {"type": "string"}}
                }
            }),
        ),
        (
            "AcpCheckoutSession".into(),
            json!({
                "type": "object",
                "description": "An ACP CheckoutSession (or CheckoutSessionWithOrder once completed). Amounts are integer minor units.",
                "required": ["id", "status", "currency", "line_items", "totals", "fulfillment_options", "messages", "links", "capabilities"],
                "properties": {
                    "id": {"type": "string", "pattern": "^acs_"},
                    "status": {"type": "string", "enum": ["not_ready_for_payment", "ready_for_payment", "authentication_required", "complete_in_progress", "completed", "canceled"]},
                    "currency": {"type": "string", "pattern": "^[a-z]{3}$"},
                    "line_items": {"type": "array", "items": {"type": "object", "required": ["id", "item", "quantity", "totals"],
                        "properties": {"quantity": {"type": "integer", "minimum": 1}, "unit_amount": {"type": "integer"}, "totals": {"type": "array", "items": total}}}},
                    "totals": {"type": "array", "items": total},
                    "fulfillment_options": {"type": "array", "items": {"type": "object", "required": ["type", "id", "title", "totals"]}},
                    "messages": {"type": "array", "items": {"type": "object", "required": ["type", "content_type", "content"]}},
                    "links": {"type": "array"},
                    "capabilities": {"type": "object"},
                    "authentication_metadata": {"type": "object", "required": ["acquirer_details", "directory_server"]},
                    "order": {"type": "object", "required": ["id", "checkout_session_id", "permalink_url"],
                        "properties": {"id": {"type": "string"}, "checkout_session_id": {"type": "string"}, "permalink_url": {"type": "string", "format": "uri"}}}
                }
            }),
        ),
        (
            "AcpDiscovery".into(),
            json!({
                "type": "object",
                "description": "The ACP discovery document (`/.well-known/acp.json`).",
                "required": ["protocol", "api_base_url", "transports", "capabilities"],
                "properties": {
                    "protocol": {"type": "object", "required": ["name", "version", "supported_versions"]},
                    "api_base_url": {"type": "string", "format": "uri"},
                    "transports": {"type": "array", "items": {"type": "string", "enum": ["rest", "mcp"]}},
                    "capabilities": {"type": "object", "required": ["services"]}
                }
            }),
        ),
    ]
}

/// The optional `Obol-Organization` header of a route that takes a credential.
fn add_organization_header(op: &mut Map<String, Value>) {
    let params = op.entry("parameters").or_insert_with(|| json!([]));
    if let Some(params) = params.as_array_mut() {
        params.push(json!({
            "name": "Obol-Organization",
            "in": "header",
            "required": false,
            "description": "The organisation (`org_…`) the request acts for; without it, the platform's own account. An unknown one answers 404 `organization_not_found`, never the platform; a customer token answers it to any organisation but its own.",
            "schema": {"type": "string", "pattern": "^org_[0-9a-z]{26}$"}
        }));
    }
}

/// `x-request-id` on every response; `Retry-After` on 429.
fn add_headers(op: &mut Map<String, Value>) {
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        let headers = response
            .entry("headers")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        let Some(headers) = headers else {
            continue;
        };
        headers.insert(
            "x-request-id".into(),
            json!({
                "description": "obol's id of this request (`req_…`); quote it when asking about one, it finds the request in obol's log.",
                "required": true,
                "schema": {"$ref": "#/components/schemas/RequestId"}
            }),
        );
        if status == "429" {
            headers.insert(
                "retry-after".into(),
                json!({
                    "description": "Seconds to wait before trying again.",
                    "required": true,
                    "schema": {"type": "integer", "minimum": 1}
                }),
            );
        }
    }
}

/// Schemas [`finish`] refers to that no operation brings in.
fn add_schemas(doc: &mut Value) {
    // RequestId: the `x-request-id` header; MessageId: the webhooks' `webhook-id`.
    let extra: [(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    ); 2] = [
        (
            crate::ids::RequestId::name().into_owned(),
            crate::ids::RequestId::schema(),
        ),
        (
            crate::ids::MessageId::name().into_owned(),
            crate::ids::MessageId::schema(),
        ),
    ];
    let mut more = Vec::new();
    PaymentNotification::schemas(&mut more);
    OrderNotification::schemas(&mut more);
    InvoiceNotification::schemas(&mut more);
    SyncJobNotification::schemas(&mut more);
    ChargeRunItemNotification::schemas(&mut more);
    ChargeRunNotification::schemas(&mut more);
    OrganizationNotification::schemas(&mut more);
    SubscriptionNotification::schemas(&mut more);
    BillingInvoiceNotification::schemas(&mut more);
    more.push((
        SubscriptionNotification::name().into_owned(),
        SubscriptionNotification::schema(),
    ));
    more.push((
        BillingInvoiceNotification::name().into_owned(),
        BillingInvoiceNotification::schema(),
    ));
    PayoutNotification::schemas(&mut more);
    CustomerNotification::schemas(&mut more);
    PaymentMethodNotification::schemas(&mut more);
    more.push((
        CustomerNotification::name().into_owned(),
        CustomerNotification::schema(),
    ));
    more.push((
        PaymentMethodNotification::name().into_owned(),
        PaymentMethodNotification::schema(),
    ));
    more.push((
        ChargeRunItemNotification::name().into_owned(),
        ChargeRunItemNotification::schema(),
    ));
    more.push((
        ChargeRunNotification::name().into_owned(),
        ChargeRunNotification::schema(),
    ));
    more.push((
        InvoiceNotification::name().into_owned(),
        InvoiceNotification::schema(),
    ));
    more.push((
        SyncJobNotification::name().into_owned(),
        SyncJobNotification::schema(),
    ));
    more.push((
        PaymentNotification::name().into_owned(),
        PaymentNotification::schema(),
    ));
    more.push((
        OrderNotification::name().into_owned(),
        OrderNotification::schema(),
    ));
    more.push((
        OrganizationNotification::name().into_owned(),
        OrganizationNotification::schema(),
    ));
    more.push((
        PayoutNotification::name().into_owned(),
        PayoutNotification::schema(),
    ));
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, schema) in extra.into_iter().chain(more) {
        if !schemas.contains_key(&name) {
            schemas.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
        }
    }
    for (name, schema) in acp_schemas() {
        schemas.entry(name).or_insert(schema);
    }
}

/// One OpenAPI 3.1 webhook per notification type obol sends: a POST to
/// the endpoint's URL, signed per Standard Webhooks, answered 2xx.
fn webhooks() -> Value {
    let mut hooks = Map::new();
    for kind in outbox::EVENT_TYPES {
        let schema = match kind.split('.').next() {
            Some("order") => "OrderNotification",
            // obol's own invoices and the Stripe invoices it mirrors share
            // `invoice.paid`; the data key tells them apart.
            Some("invoice") if *kind == "invoice.paid" => "invoice.paid",
            Some("invoice") => "BillingInvoiceNotification",
            Some("subscription") => "SubscriptionNotification",
            Some("sync_job") => "SyncJobNotification",
            Some("charge_run_item") => "ChargeRunItemNotification",
            Some("charge_run") => "ChargeRunNotification",
            Some("organization") => "OrganizationNotification",
            Some("payout") => "PayoutNotification",
            Some("customer") => "CustomerNotification",
            Some("payment_method") => "PaymentMethodNotification",
            _ => "PaymentNotification",
        };
        let body = if schema == "invoice.paid" {
            json!({"oneOf": [
                {"$ref": "#/components/schemas/InvoiceNotification"},
                {"$ref": "#/components/schemas/BillingInvoiceNotification"}
            ]})
        } else {
            json!({"$ref": format!("#/components/schemas/{schema}")})
        };
        hooks.insert(
            kind.to_string(),
            json!({"post": {
                "operationId": format!("notification_{}", kind.replace('.', "_")),
                "summary": outbox::summary(kind),
                "description": "Sent to every webhook endpoint subscribed to this type, from a durable outbox: \
                    retried with backoff until the endpoint answers 2xx, with the same `webhook-id` each time \
                    (deduplicate on it). Verify `webhook-signature` with any Standard Webhooks library and the \
                    endpoint's `whsec_…` secret.",
                "tags": ["notifications"],
                "parameters": [
                    {"name": "webhook-id", "in": "header", "required": true, "description": "The notification's id (`msg_…`), the same on every retry.", "schema": {"$ref": "#/components/schemas/MessageId"}},
                    {"name": "webhook-timestamp", "in": "header", "required": true, "description": "Unix seconds when this attempt was signed.", "schema": {"type": "integer"}},
                    {"name": "webhook-signature", "in": "header", "required": true, "description": "`v1,` + base64(HMAC-SHA256(secret, \"{webhook-id}.{webhook-timestamp}.{body}\")).", "schema": {"type": "string", "pattern": "^v1,"}}
                ],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "allOf": [
                        body,
                        {"type": "object", "properties": {"type": {"const": kind}}}
                    ]
                }}}},
                "responses": {
                    "2XX": {"description": "Received; obol stops retrying."},
                    "default": {"description": "Anything else (or no answer within the timeout): obol retries later."}
                }
            }}),
        );
    }
    for kind in ["order_create", "order_update"] {
        hooks.insert(
            kind.to_string(),
            json!({"post": {
                "operationId": format!("acp_{kind}"),
                "summary": if kind == "order_create" {
                    "ACP: an order was created from a checkout session."
                } else {
                    "ACP: an ACP order changed (confirmed, shipped, delivered, canceled, refunded)."
                },
                "description": "Sent to `acp.webhook_url` (the agent platform), never to obol's notification endpoints:                     the ACP `WebhookEvent` `{type, data}`, `data` the full ACP `Order` (line items, fulfillments,                     refunds as `adjustments`, totals) as it was at the change. Queued in the transaction of the change                     and retried by the job runner until the receiver answers 2xx.",
                "tags": ["acp"],
                "parameters": [
                    {"name": "Merchant-Signature", "in": "header", "required": true,
                     "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256(acp.webhook_secret, \"{t}.{body}\")>`, signed afresh at each attempt.",
                     "schema": {"type": "string", "pattern": "^t=\\d+,v1=[a-f0-9]{64}$"}}
                ],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["type", "data"],
                    "properties": {
                        "type": {"const": kind},
                        "data": {"type": "object", "required": ["type", "id", "checkout_session_id", "permalink_url", "status"],
                            "properties": {"type": {"const": "order"}, "status": {"type": "string"},
                                "line_items": {"type": "array"}, "adjustments": {"type": "array"}, "totals": {"type": "array"}}}
                    }
                }}}},
                "responses": {
                    "2XX": {"description": "Received; obol stops retrying."},
                    "default": {"description": "Anything else (or no answer within 10 s): retried later."}
                }
            }}),
        );
    }
    Value::Object(hooks)
}

/// The schemas of `Page<T>`, one named type per kind of item. Declared
/// here rather than derived on `Page<T>`: utoipa's derive inlines a
/// generic argument's whole schema into every page, and a generated
/// client then gets a second `PaymentOut` per list. `data` here refers to
/// the item's own component.
pub mod pages {
    macro_rules! pages {
        ($($page:ident => $item:ty,)*) => {$(
            #[doc = concat!("One page of `", stringify!($item), "`, newest first.")]
            #[derive(utoipa::ToSchema)]
            #[allow(dead_code)]
            pub struct $page {
                data: Vec<$item>,
                /// More rows follow: ask again with `cursor` set to `next_cursor`.
                has_more: bool,
                /// Present when `has_more`.
                #[schema(nullable = false)]
                next_cursor: Option<String>,
            }
        )*};
    }

    pages! {
        PaymentPage => crate::ops::payments::PaymentOut,
        RefundPage => crate::ops::refunds::RefundOut,
        DisputePage => crate::ops::disputes::DisputeOut,
        TaskPage => crate::ops::disputes::TaskOut,
        EndpointPage => crate::ops::endpoints::EndpointOut,
        DeliveryPage => crate::ops::endpoints::DeliveryOut,
        JobPage => crate::ops::jobs::JobOut,
        WebhookEventPage => crate::ops::webhook_events::WebhookEventOut,
        ProductPage => crate::ops::catalog::ProductOut,
        ShippingMethodPage => crate::ops::catalog::ShippingMethodOut,
        InvoicePage => crate::ops::invoices::InvoiceOut,
        SyncJobPage => crate::ops::sync_jobs::SyncJobOut,
        EmailPage => crate::ops::emails::EmailOut,
        OrganizationPage => crate::ops::organizations::OrganizationOut,
        SubscriptionPage => crate::billing::views::SubscriptionOut,
        BillingInvoicePage => crate::billing::views::BillingInvoiceOut,
        ScheduledPaymentPage => crate::ops::scheduled_payments::ScheduledPaymentOut,
        PayoutPage => crate::outbox::PayoutSnapshot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_is_one_obol_answers() {
        let known: Vec<&str> = catalogue().into_iter().map(|(_, c)| c).collect();
        let (_, api) = crate::api::routes().split_for_parts();
        let raw = serde_json::to_value(&api).unwrap_or_default();
        let mut checked = 0;
        for (path, item) in raw["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let codes = op["x-error-codes"].as_array();
                if op.as_object().is_some_and(is_acp) {
                    // ACP's own codes, in their own catalogue.
                    for c in codes.into_iter().flatten() {
                        let c = c.as_str().unwrap_or_default();
                        assert!(
                            crate::acp::ERROR_CODES.iter().any(|(k, _, _)| *k == c),
                            "{method} {path} lists {c:?}, which obol's ACP endpoint never answers"
                        );
                    }
                    continue;
                }
                assert!(
                    codes.is_some(),
                    "{method} {path} lists no x-error-codes (an empty list says it has none of its own)"
                );
                for c in codes.into_iter().flatten() {
                    let c = c.as_str().unwrap_or_default();
                    assert!(
                        known.contains(&c),
                        "{method} {path} lists {c:?}, which obol never answers"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "only {checked} codes listed");
    }

    #[test]
    fn every_operation_has_an_id_a_tag_a_summary_and_its_security() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                assert!(op["operationId"].is_string(), "{method} {path}");
                assert!(
                    op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                    "{method} {path}"
                );
                assert!(op["summary"].is_string(), "{method} {path}: no doc comment");
                assert!(
                    op["security"].is_array(),
                    "{method} {path}: no security (use `security(())` for none)"
                );
            }
        }
    }
}
