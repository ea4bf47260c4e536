//! The HTTP surface: `/v1/*` dispatch with Stripe's wire protocol (auth,
//! versions, request ids, idempotency, chaos) and the `/_sandbox/*` routes.
//!
//! Every state-changing call takes `App::write_lock` and runs in one SQLite
//! transaction together with its events, delivery rows and idempotency row.

mod accounts;
pub(crate) mod balance;
pub(crate) mod billing;
mod charges;
mod customers;
mod disputes;
mod events;
pub(crate) mod payment_intents;
mod payment_methods;
mod products;
mod refunds;
pub(crate) mod setup_intents;
mod shared_payment;
mod webhook_endpoints;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Router};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::chaos::ApiFault;
use crate::ctx::{render, App, Ctx, DEFAULT_API_VERSION};
use crate::error::ApiError;
use crate::form::{self, Params};
use crate::{connect, ids, pages, store};

pub const BODY_LIMIT: usize = 1024 * 1024;
const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;

#[derive(Clone)]
pub struct RequestId(pub String);

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/{*rest}", any(api))
        .route(
            "/_sandbox/3ds/{id}",
            get(pages::three_ds_page).post(pages::three_ds_submit),
        )
        .route(
            "/_sandbox/chaos",
            get(pages::get_chaos).post(pages::set_chaos),
        )
        .route("/_sandbox/stats", get(pages::stats))
        .route("/_sandbox/payouts/run", post(balance::run_payouts_route))
        .route(
            "/_sandbox/payouts/{id}/fail",
            post(balance::fail_payout_route),
        )
        .route(
            "/_sandbox/payment_methods/{id}/network_update",
            post(payment_methods::network_update_route),
        )
        .route(
            "/oauth/authorize",
            get(connect::authorize_page).post(connect::authorize_decide),
        )
        .route("/oauth/authorize/decide", post(connect::authorize_decide))
        .route("/oauth/token", post(connect::token))
        .route("/oauth/deauthorize", post(connect::deauthorize))
        .route("/_sandbox/rate", get(pages::rate))
        .route(
            "/_sandbox/rate/reset",
            axum::routing::post(pages::reset_rate),
        )
        .fallback(unknown_url)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(app.clone(), request_meta))
        .layer(middleware::from_fn(cors))
        .with_state(app)
}

/// Gives every response a `Request-Id` and counts responses by status.
async fn request_meta(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let rid = ids::new_id("req");
    req.extensions_mut().insert(RequestId(rid.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("request-id", v);
    }
    if let Ok(mut m) = app.requests_by_status.lock() {
        *m.entry(resp.status().as_u16()).or_default() += 1;
    }
    resp
}

async fn unknown_url(method: Method, uri: axum::http::Uri) -> Response {
    error_response(&unrecognized(&method, uri.path()))
}

fn unrecognized(method: &Method, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."),
    )
}

pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

pub fn error_response(e: &ApiError) -> Response {
    let mut resp = json_response(e.status, e.body().to_string());
    if let Some(retry) = e.should_retry {
        resp.headers_mut().insert(
            "stripe-should-retry",
            HeaderValue::from_static(if retry { "true" } else { "false" }),
        );
    }
    resp
}

struct Reply {
    status: StatusCode,
    body: String,
    replayed: bool,
}

async fn api(
    State(app): State<Arc<App>>,
    Extension(RequestId(rid)): Extension<RequestId>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let version = parts
        .headers
        .get("stripe-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let idem = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let admitted = app.rate.admit();
    let outcome = if admitted {
        handle(
            &app,
            &rid,
            &parts.method,
            &parts.uri,
            &parts.headers,
            body,
            version.as_deref(),
            idem.as_deref(),
        )
        .await
    } else {
        Err(rate_limited())
    };
    let mut resp = match outcome {
        Ok(r) => {
            let mut resp = json_response(r.status, r.body);
            if r.replayed {
                resp.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            resp
        }
        Err(e) => error_response(&e),
    };
    if !admitted {
        resp.headers_mut().insert(
            "stripe-rate-limited-reason",
            HeaderValue::from_static("global-rate"),
        );
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(version.as_deref().unwrap_or(DEFAULT_API_VERSION)) {
        h.insert("stripe-version", v);
    }
    if let Some(k) = idem.as_deref().and_then(|k| HeaderValue::from_str(k).ok()) {
        h.insert("idempotency-key", k);
    }
    resp
}

/// Stripe's answer over the rate limit: 429 `rate_limit`, and (as with
/// the other retryable errors here) `Stripe-Should-Retry: true`, since the
/// same request succeeds once the bucket has refilled.
fn rate_limited() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "invalid_request_error",
        "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
    )
    .code("rate_limit");
    e.should_retry = Some(true);
    e
}

pub(crate) fn api_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let missing = || {
        ApiError::unauthorized("You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.")
    };
    let raw = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?
        .trim();
    let key = if let Some(k) = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
    {
        k.trim().to_string()
    } else if let Some(b) = raw
        .strip_prefix("Basic ")
        .or_else(|| raw.strip_prefix("basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(missing)?;
        decoded.split(':').next().unwrap_or_default().to_string()
    } else {
        return Err(ApiError::unauthorized(
            "Invalid API Key provided: the Authorization header must use Bearer or Basic auth.",
        ));
    };
    if key.is_empty() {
        return Err(missing());
    }
    let well_formed = |rest: &str| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match key
        .strip_prefix("sk_test_")
        .or_else(|| key.strip_prefix("rk_test_"))
        .or_else(|| key.strip_prefix("pk_test_"))
    {
        Some(rest) if well_formed(rest) => Ok(key),
        _ => Err(ApiError::unauthorized(format!(
            "Invalid API Key provided: {}",
            mask(&key)
        ))),
    }
}

/// What a publishable key may do, as with Stripe.js in a browser: read
/// and confirm one PaymentIntent or SetupIntent whose `client_secret` it
/// presents. The secret is checked in constant time and taken out of a
/// read's parameters (retrieving takes none).
async fn publishable_may(
    app: &App,
    account: Option<String>,
    method: &Method,
    segs: &[&str],
    p: &mut Params,
) -> Result<(), ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "This API call cannot be made with a publishable API key. Please use a secret API key.",
        )
    };
    let (kind, id) = match (method, segs) {
        (&Method::GET, ["payment_intents", id])
        | (&Method::POST, ["payment_intents", id, "confirm"]) => ("payment_intent", *id),
        (&Method::GET, ["setup_intents", id])
        | (&Method::POST, ["setup_intents", id, "confirm"]) => ("setup_intent", *id),
        _ => return Err(refused()),
    };
    let presented =
        p.0.get("client_secret")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(refused)?;
    let mut ctx = Ctx::begin(app, None, None, DEFAULT_API_VERSION.into()).await?;
    ctx.act_as(account);
    let intent = ctx.load(kind, id, None).await?;
    let secret = intent["client_secret"].as_str().unwrap_or_default();
    use subtle::ConstantTimeEq;
    if !bool::from(secret.as_bytes().ct_eq(presented.as_bytes())) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("No such {kind}: '{id}'"),
        )
        .code("resource_missing"));
    }
    if *method == Method::GET {
        p.0.remove("client_secret");
    }
    Ok(())
}

/// Lets a browser page on another origin call the API (Stripe.js does,
/// from every shop's origin): `Access-Control-Allow-Origin: *` on every
/// answer, and preflights answered here.
async fn cors(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS;
    let mut resp = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    if preflight {
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, DELETE"),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static(
                "authorization, content-type, stripe-version, idempotency-key, stripe-account",
            ),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("600"));
    }
    resp
}

/// `sk_live_abc…wxyz` → `sk_live_****…wxyz`, as Stripe echoes bad keys.
pub(crate) fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let prefix_len = key
        .find('_')
        .and_then(|i| key[i + 1..].find('_').map(|j| i + j + 2))
        .unwrap_or(0)
        .min(chars.len());
    let tail = chars.len().saturating_sub(4).max(prefix_len);
    let mut out: String = chars[..prefix_len].iter().collect();
    out.push_str(&"*".repeat(tail - prefix_len));
    out.extend(&chars[tail..]);
    out
}

fn valid_version(v: &str) -> bool {
    let date = v.split('.').next().unwrap_or_default();
    let b = date.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    app: &App,
    rid: &str,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Body,
    version: Option<&str>,
    idem: Option<&str>,
) -> Result<Reply, ApiError> {
    let latency = match app.chaos.lock() {
        Ok(c) => c.config.latency_ms,
        Err(_) => return Err(ApiError::internal("chaos lock poisoned")),
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let key = api_key(headers)?;
    let account = connect::resolve(app, &key, headers, method).await?;
    let fault = match app.chaos.lock() {
        Ok(mut c) => c.api(),
        Err(_) => return Err(ApiError::internal("chaos lock poisoned")),
    };
    match fault {
        ApiFault::None => {}
        ApiFault::ServerError => return Err(ApiError::internal("chaos: injected api_5xx")),
        ApiFault::RateLimited => {
            app.rate.chaos_refused();
            return Err(rate_limited());
        }
    }
    if let Some(v) = version {
        if !valid_version(v) {
            return Err(ApiError::invalid(format!(
                "Invalid Stripe API version: {v}"
            )));
        }
    }
    let api_version = version
        .map(str::to_string)
        .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
    let path = uri.path().to_string();
    let segs: Vec<&str> = path
        .trim_start_matches("/v1/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let raw: Bytes = if *method == Method::POST {
        axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .map_err(|_| ApiError::invalid("The request body is too large or could not be read."))?
    } else {
        Bytes::from(uri.query().unwrap_or_default().to_string())
    };
    let mut p = Params(form::parse(&raw).map_err(ApiError::invalid)?);
    if key.starts_with("pk_test_") {
        publishable_may(app, account.clone(), method, &segs, &mut p).await?;
    }
    let expand = p.expand();

    if *method == Method::GET {
        let mut ctx = Ctx::begin(app, Some(rid.to_string()), None, api_version).await?;
        ctx.act_as(account);
        let v = route(&mut ctx, method, &segs, &p, &path).await?;
        let v = ctx.expand(v, &expand).await?;
        return Ok(Reply {
            status: StatusCode::OK,
            body: render(&v).to_string(),
            replayed: false,
        });
    }
    if *method != Method::POST && *method != Method::DELETE {
        return Err(unrecognized(method, &path));
    }

    let _guard = app.write_lock.lock().await;
    let now = crate::ctx::now_secs();
    let idem_row = match idem {
        None => None,
        Some(k) if k.len() > 255 || k.is_empty() => {
            return Err(ApiError::invalid(
                "Idempotency keys must be between 1 and 255 characters long.",
            )
            .param("Idempotency-Key"))
        }
        Some(k) => {
            // Keys are scoped per account, as with Stripe.
            let scope = match &account {
                Some(a) => format!("{key}\n{a}"),
                None => key.clone(),
            };
            let key_hash = hex::encode(Sha256::digest(format!("{scope}\n{k}").as_bytes()));
            let fingerprint = format!("{method} {path} {}", Value::Object(p.0.clone()));
            let mut conn = app.pool.acquire().await?;
            if let Some(saved) =
                store::get_idempotent(&mut conn, &key_hash, now - IDEMPOTENCY_TTL_SECS).await?
            {
                if saved.fingerprint != fingerprint {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "idempotency_error",
                        format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{k}' if you meant to execute a different request."),
                    ));
                }
                return Ok(Reply {
                    status: StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK),
                    body: saved.body,
                    replayed: true,
                });
            }
            Some((key_hash, fingerprint))
        }
    };
    let mut ctx = Ctx::begin_write(
        app,
        Some(rid.to_string()),
        idem.map(str::to_string),
        api_version,
    )
    .await?;
    ctx.act_as(account);
    let outcome = match route(&mut ctx, method, &segs, &p, &path).await {
        Ok(v) => ctx.expand(v, &expand).await.map(|v| Reply {
            status: StatusCode::OK,
            body: render(&v).to_string(),
            replayed: false,
        }),
        Err(e) => Err(e),
    };
    let (reply, keep) = match outcome {
        Ok(r) => (Ok(r), true),
        Err(e) => {
            let keep = e.commit;
            (Err(e), keep)
        }
    };
    if !keep {
        return reply;
    }
    if let Some((key_hash, fingerprint)) = idem_row {
        let (status, body) = match &reply {
            Ok(r) => (r.status.as_u16(), r.body.clone()),
            Err(e) => (e.status.as_u16(), e.body().to_string()),
        };
        store::save_idempotent(
            &mut ctx.tx,
            &key_hash,
            now,
            &store::SavedResponse {
                fingerprint,
                status,
                body,
            },
        )
        .await?;
    }
    let emitted = ctx.commit().await?;
    if emitted > 0 {
        app.notify.notify_one();
    }
    reply
}

async fn route(
    ctx: &mut Ctx<'_>,
    method: &Method,
    segs: &[&str],
    p: &Params,
    path: &str,
) -> Result<Value, ApiError> {
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    let delete = *method == Method::DELETE;
    match segs {
        ["account"] if get => accounts::current(ctx).await,
        ["accounts"] if post => accounts::create(ctx, p).await,
        ["accounts"] if get => accounts::list(ctx, p).await,
        ["accounts", id] if get => accounts::retrieve(ctx, id).await,
        ["customers"] if post => customers::create(ctx, p).await,
        ["customers"] if get => customers::list(ctx, p).await,
        ["customers", id] if get => customers::retrieve(ctx, id).await,
        ["customers", id] if post => customers::update(ctx, id, p).await,
        ["customers", id] if delete => customers::delete(ctx, id).await,
        ["customers", id, "payment_methods"] if get => {
            payment_methods::list_for_customer(ctx, id, p).await
        }
        ["payment_methods"] if post => payment_methods::create(ctx, p).await,
        ["payment_methods"] if get => payment_methods::list(ctx, p).await,
        ["payment_methods", id] if get => payment_methods::retrieve(ctx, id).await,
        ["payment_methods", id] if post => payment_methods::update(ctx, id, p).await,
        ["payment_methods", id, "attach"] if post => payment_methods::attach(ctx, id, p).await,
        ["payment_methods", id, "detach"] if post => payment_methods::detach(ctx, id, p).await,
        ["payment_intents"] if post => payment_intents::create(ctx, p).await,
        ["payment_intents"] if get => payment_intents::list(ctx, p).await,
        ["payment_intents", id] if get => ctx.load("payment_intent", id, None).await,
        ["payment_intents", id] if post => payment_intents::update(ctx, id, p).await,
        ["payment_intents", id, "confirm"] if post => payment_intents::confirm(ctx, id, p).await,
        ["payment_intents", id, "capture"] if post => payment_intents::capture(ctx, id, p).await,
        ["payment_intents", id, "cancel"] if post => payment_intents::cancel(ctx, id, p).await,
        ["setup_intents"] if post => setup_intents::create(ctx, p).await,
        ["setup_intents"] if get => setup_intents::list(ctx, p).await,
        ["setup_intents", id] if get => ctx.load("setup_intent", id, None).await,
        ["setup_intents", id] if post => setup_intents::update(ctx, id, p).await,
        ["setup_intents", id, "confirm"] if post => setup_intents::confirm(ctx, id, p).await,
        ["setup_intents", id, "cancel"] if post => setup_intents::cancel(ctx, id, p).await,
        ["charges"] if get => charges::list(ctx, p).await,
        ["charges", id] if get => ctx.load("charge", id, None).await,
        ["charges", id] if post => charges::update(ctx, id, p).await,
        ["refunds"] if post => refunds::create(ctx, p).await,
        ["refunds"] if get => refunds::list(ctx, p).await,
        ["refunds", id] if get => ctx.load("refund", id, None).await,
        ["refunds", id] if post => refunds::update(ctx, id, p).await,
        ["disputes"] if get => disputes::list(ctx, p).await,
        ["disputes", id] if get => ctx.load("dispute", id, None).await,
        ["disputes", id] if post => disputes::update(ctx, id, p).await,
        ["disputes", id, "close"] if post => disputes::close(ctx, id).await,
        ["products"] if post => products::create_product(ctx, p).await,
        ["products"] if get => products::list_products(ctx, p).await,
        ["products", id] if get => ctx.load("product", id, None).await,
        ["products", id] if post => products::update_product(ctx, id, p).await,
        ["prices"] if post => products::create_price(ctx, p).await,
        ["prices"] if get => products::list_prices(ctx, p).await,
        ["prices", id] if get => ctx.load("price", id, None).await,
        ["prices", id] if post => products::update_price(ctx, id, p).await,
        ["test_helpers", "test_clocks"] if post => billing::create_clock(ctx, p).await,
        ["test_helpers", "test_clocks"] if get => billing::list_clocks(ctx, p).await,
        ["test_helpers", "test_clocks", id] if get => ctx.load(billing::CLOCK, id, None).await,
        ["test_helpers", "test_clocks", id] if delete => billing::delete_clock(ctx, id).await,
        ["test_helpers", "test_clocks", id, "advance"] if post => {
            billing::advance_clock(ctx, id, p).await
        }
        ["subscriptions"] if post => billing::create_subscription(ctx, p).await,
        ["subscriptions"] if get => billing::list_subscriptions(ctx, p).await,
        ["subscriptions", id] if get => ctx.load("subscription", id, None).await,
        ["subscriptions", id] if post => billing::update_subscription(ctx, id, p).await,
        ["subscriptions", id] if delete => billing::cancel_subscription(ctx, id, p).await,
        ["invoices"] if post => billing::create_invoice(ctx, p).await,
        ["invoices"] if get => billing::list_invoices(ctx, p).await,
        ["invoices", id] if get => ctx.load("invoice", id, None).await,
        ["invoices", id, "finalize"] if post => billing::finalize(ctx, id, p).await,
        ["invoices", id, "pay"] if post => billing::pay(ctx, id, p).await,
        ["invoices", id, "void"] if post => billing::void(ctx, id).await,
        ["invoices", id, "mark_uncollectible"] if post => {
            billing::mark_uncollectible(ctx, id).await
        }
        ["invoiceitems"] if post => billing::create_invoiceitem(ctx, p).await,
        ["invoiceitems"] if get => billing::list_invoiceitems(ctx, p).await,
        ["invoiceitems", id] if get => ctx.load("invoiceitem", id, None).await,
        ["balance"] if get => balance::balance(ctx).await,
        ["balance_transactions"] if get => balance::list_txns(ctx, p).await,
        ["balance_transactions", id] if get => ctx.load("balance_transaction", id, None).await,
        ["payouts"] if post => balance::create_payout(ctx, p).await,
        ["payouts"] if get => balance::list_payouts(ctx, p).await,
        ["payouts", id] if get => ctx.load("payout", id, None).await,
        ["payouts", id, "cancel"] if post => balance::cancel_payout(ctx, id, p).await,
        ["test_helpers", "shared_payment", "granted_tokens"] if post => {
            shared_payment::create(ctx, p).await
        }
        ["test_helpers", "shared_payment", "granted_tokens", id, "revoke"] if post => {
            shared_payment::revoke(ctx, id, p).await
        }
        ["shared_payment", "granted_tokens", id] if get => shared_payment::retrieve(ctx, id).await,
        ["events"] if get => events::list(ctx, p).await,
        ["events", id] if get => ctx.load("event", id, None).await,
        ["webhook_endpoints"] if post => webhook_endpoints::create(ctx, p).await,
        ["webhook_endpoints"] if get => webhook_endpoints::list(ctx, p).await,
        ["webhook_endpoints", id] if get => ctx.load("webhook_endpoint", id, None).await,
        ["webhook_endpoints", id] if post => webhook_endpoints::update(ctx, id, p).await,
        ["webhook_endpoints", id] if delete => webhook_endpoints::delete(ctx, id).await,
        _ => Err(unrecognized(method, path)),
    }
}

/// Runs one delayed job from the jobs table.
pub(crate) async fn run_job(ctx: &mut Ctx<'_>, kind: &str, target: &str) -> Result<(), ApiError> {
    match kind {
        "refund_settle" | "refund_fail" => refunds::run_job(ctx, kind, target).await,
        "clock_advance" => billing::run_advance(ctx, target).await,
        "billing_tick" => billing::run_tick(ctx, target).await,
        "payout_in_transit" | "payout_paid" => balance::run_job(ctx, kind, target).await,
        other => {
            tracing::warn!(kind = other, "unknown sandbox job");
            Ok(())
        }
    }
}

/// The platform's own account object.
pub(crate) fn platform_account(id: &str) -> Value {
    json!({
        "id": id,
        "object": "account",
        "business_profile": {
            "mcc": null, "name": "obol sandbox", "product_description": null,
            "support_address": null, "support_email": null, "support_phone": null,
            "support_url": null, "url": null
        },
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": true,
        "country": "DE",
        "created": 1_700_000_000,
        "default_currency": "eur",
        "details_submitted": true,
        "email": "sandbox@obol.invalid",
        "metadata": {},
        "payouts_enabled": true,
        "settings": {
            "branding": {"icon": null, "logo": null, "primary_color": null, "secondary_color": null},
            "card_payments": {"decline_on": {"avs_failure": false, "cvc_failure": false}, "statement_descriptor_prefix": "OBOL", "statement_descriptor_prefix_kana": null, "statement_descriptor_prefix_kanji": null},
            "dashboard": {"display_name": "obol sandbox", "timezone": "Etc/UTC"},
            "payments": {"statement_descriptor": "OBOL SANDBOX", "statement_descriptor_kana": null, "statement_descriptor_kanji": null, "statement_descriptor_prefix_kana": null, "statement_descriptor_prefix_kanji": null},
            "payouts": {"debit_negative_balances": true, "schedule": {"delay_days": 7, "interval": "daily"}, "statement_descriptor": null}
        },
        "type": "standard"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keys_like_stripe() {
        assert_eq!(mask("sk_live_abcdefgh1234"), "sk_live_********1234");
        assert!(valid_version("2026-10-28.endive"));
        assert!(valid_version("2023-08-16"));
        assert!(!valid_version("yesterday"));
    }
}
