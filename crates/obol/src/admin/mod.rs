//! The admin dashboard at `/admin`: server-rendered HTML for the people
//! who run obol. Rendered with maud (compile-time templates that escape
//! every value: the "template engine such as askama or minijinja" of the
//! issue), one stylesheet and one small script served by obol, no
//! front-end build step, no CDN.
//!
//! Handlers here parse the request, call the SAME `ops::` functions as the
//! HTTP API with the actor the session acts as, and render (`views`).
//! Nothing here touches storage or Stripe.
//!
//! Security rules:
//! - Session cookie `obol_admin`: `HttpOnly`, `SameSite=Strict`,
//!   `Path=/admin`, `Secure` when `public_url` is https; the session ends
//!   after `admin.session_idle_minutes` idle or `admin.session_max_hours`.
//!   An ended or unknown session is sent to the sign-in page (303).
//! - Every form carries the session's CSRF token in a hidden `csrf`
//!   field, checked in constant time on every POST; a POST whose `Origin`
//!   names another host is refused too. Either refusal is 403
//!   `csrf_token_invalid`.
//! - Failed sign-ins spend the secret-key failure budget of the client
//!   address (`api::throttle`), and while it is spent the password is not
//!   even checked (argon2 costs CPU): 429.
//! - Pages get `crate::pages::respond`'s headers: a CSP with
//!   `script-src 'self'` (no inline script), no framing, `no-store`.

pub mod views;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::Markup;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::throttle::CredentialKind;
use crate::api::AppState;
use crate::error::Error;
use crate::ops;
use crate::ops::admin::{Session, SessionPolicy, COOKIE};
use crate::pages::StripeJs;

/// What the dashboard needs from the configuration.
pub struct AdminConfig {
    pub password_hash: Option<SecretString>,
    pub policy: SessionPolicy,
    /// `Secure` on the cookie: `public_url` is https.
    pub secure_cookie: bool,
}

impl AdminConfig {
    pub fn of(config: &crate::config::Config) -> Self {
        AdminConfig {
            password_hash: config.admin.password_hash.clone(),
            policy: SessionPolicy::of(&config.admin),
            secure_cookie: config
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login_page, login))
        .routes(routes!(logout))
        .routes(routes!(switch_organization))
        .routes(routes!(overview))
        .routes(routes!(payments))
        .routes(routes!(payment))
        .routes(routes!(refund))
        .routes(routes!(webhook_events))
        .routes(routes!(webhook_event))
        .routes(routes!(admin_replay_webhook_event))
        .routes(routes!(jobs))
        .routes(routes!(admin_retry_job))
        .routes(routes!(notifications))
        .routes(routes!(redrive_delivery))
        .routes(routes!(charge_runs))
        .routes(routes!(charge_run))
        .routes(routes!(charge_run_progress))
        .routes(routes!(admin_js))
        .routes(routes!(admin_css))
}

/// A signed-in request: the session and the cookie it came with.
pub struct Admin {
    pub session: Session,
    cookie: String,
}

/// Why a request has no session: sent to the sign-in page.
pub struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        let mut r = Redirect::to("/admin/login?ended=1").into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then(|| v.to_string())
        })
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let cookie = cookie_of(&parts.headers).ok_or_else(|| SignInFirst.into_response())?;
        match ops::admin::session(state.ctx(), &cookie, state.admin().policy).await {
            Ok(session) => Ok(Admin { session, cookie }),
            Err(Error::AdminSessionExpired) => Err(SignInFirst.into_response()),
            Err(e) => Err(error_page(&e)),
        }
    }
}

impl Admin {
    /// Refuses a form without this session's CSRF token.
    fn check(&self, csrf: Option<&str>) -> Result<(), Error> {
        match csrf {
            Some(t) if ops::admin::csrf_matches(&self.cookie, t) => Ok(()),
            _ => Err(Error::CsrfTokenInvalid),
        }
    }

    fn actor(&self) -> &crate::context::Actor {
        &self.session.actor
    }
}

/// A POST whose `Origin` names another host than the one it was sent to.
fn foreign_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Chromium sends `Origin: null` from pages served with
    // `Referrer-Policy: no-referrer` (all of ours): that names no other
    // site, and the CSRF token and SameSite=Strict still guard the form.
    if origin == "null" {
        return false;
    }
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    !origin_host.eq_ignore_ascii_case(host)
}

/// The headers every page carries (`crate::pages::respond`).
pub fn page(status: StatusCode, markup: Markup) -> Response {
    crate::pages::respond(status, markup, &StripeJs::None)
}

/// An error as a page: its status, its code and message.
pub fn error_page(e: &Error) -> Response {
    if e.status().is_server_error() {
        tracing::error!(error = %e, "admin page failed");
    }
    page(e.status(), views::error(e))
}

fn done(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `?notice=` after a POST: one of a few fixed texts, never the caller's.
#[derive(Debug, Deserialize, Default)]
pub struct Notice {
    #[serde(default)]
    pub notice: Option<String>,
}

fn client_ip(
    parts_headers: &HeaderMap,
    peer: Option<SocketAddr>,
    state: &AppState,
) -> Option<IpAddr> {
    peer.map(|p| state.auth_throttle().client_ip(p.ip(), parts_headers))
}

// ---------------------------------------------------------------- sign-in

#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    pub ended: Option<String>,
}

/// The sign-in page (HTML).
#[utoipa::path(get, path = "/admin/login", tag = "admin", security(()),
    responses((status = 200, description = "The sign-in form.", content_type = "text/html", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    let note = q
        .ended
        .is_some()
        .then_some("Your session has ended. Sign in again.");
    page(StatusCode::OK, views::login(note, None))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The admin password or a secret API key (`obol_sk_…`).
    pub password: String,
    /// An `org_…` id to start in; empty: the platform.
    #[serde(default)]
    pub organization: Option<String>,
}

/// Signs in with the admin password or a secret API key (form post);
/// sets the session cookie and goes to the dashboard.
#[utoipa::path(post, path = "/admin/login", tag = "admin", security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`password` (the admin password or an `obol_sk_…` key), `organization` (optional `org_…`)."),
    responses(
        (status = 303, description = "Signed in: to the dashboard, with the session cookie."),
        (status = 401, description = "Wrong password or key.", content_type = "text/html", body = String),
        (status = 403, description = "Posted from another origin.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown organisation.", content_type = "text/html", body = String),
        (status = 429, description = "Too many failed sign-ins from this address.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["admin_sign_in_failed", "csrf_token_invalid", "organization_not_found", "rate_limited"]))),
)]
async fn login(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if foreign_origin(&headers) {
        return page(
            StatusCode::FORBIDDEN,
            views::login(None, Some(&Error::CsrfTokenInvalid)),
        );
    }
    let ip = client_ip(&headers, peer.map(|c| c.0 .0), &state);
    let admin = state.admin();
    let throttle = state.auth_throttle();
    let is_key =
        ops::credentials::secret_key(state.api_key_hashes(), form.password.trim()).is_some();
    if !is_key {
        if let Some(retry) = ip.and_then(|ip| throttle.blocked(ip, CredentialKind::SecretKey)) {
            let e = Error::RateLimited {
                retry_after_seconds: retry.as_secs().max(1),
            };
            return page(e.status(), views::login(None, Some(&e)));
        }
    }
    let result = ops::admin::sign_in(
        state.ctx(),
        admin.password_hash.as_ref(),
        state.api_key_hashes(),
        &form.password,
        form.organization.as_deref(),
        admin.policy,
    )
    .await;
    match result {
        Ok(signed) => {
            let mut cookie = format!(
                "{COOKIE}={}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}",
                signed.cookie.expose(),
                admin.policy.lifetime.num_seconds()
            );
            if admin.secure_cookie {
                cookie.push_str("; Secure");
            }
            let mut r = done("/admin");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            if matches!(e, Error::AdminSignInFailed) {
                if let Some(ip) = ip {
                    throttle.record_failure(ip, CredentialKind::SecretKey);
                }
            }
            page(e.status(), views::login(None, Some(&e)))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: Option<String>,
}

/// Signs out: ends the session and clears the cookie.
#[utoipa::path(post, path = "/admin/logout", tag = "admin", security(("admin_session" = [])),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`csrf`."),
    responses(
        (status = 303, description = "Signed out: to the sign-in page."),
        (status = 403, description = "No or a wrong CSRF token.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["csrf_token_invalid"]))),
)]
async fn logout(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(e) = post_allowed(&admin, &headers, form.csrf.as_deref()) {
        return error_page(&e);
    }
    if let Err(e) = ops::admin::sign_out(state.ctx(), &admin.cookie).await {
        return error_page(&e);
    }
    let mut r = done("/admin/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("obol_admin=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

fn post_allowed(admin: &Admin, headers: &HeaderMap, csrf: Option<&str>) -> Result<(), Error> {
    if foreign_origin(headers) {
        return Err(Error::CsrfTokenInvalid);
    }
    admin.check(csrf)
}

#[derive(Debug, Deserialize)]
pub struct OrganizationForm {
    #[serde(default)]
    pub csrf: Option<String>,
    /// `org_…`, or empty / `default` for the platform.
    #[serde(default)]
    pub organization: String,
}

/// Switches the password admin's session to another organisation (the
/// dashboard's organisation filter). A secret key's session stays where
/// it signed in: 404.
#[utoipa::path(post, path = "/admin/organization", tag = "admin", security(("admin_session" = [])),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`csrf`, `organization`."),
    responses(
        (status = 303, description = "Switched: back to the dashboard."),
        (status = 403, description = "No or a wrong CSRF token.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown organisation, or a key's session.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["csrf_token_invalid", "organization_not_found"]))),
)]
async fn switch_organization(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Form(form): Form<OrganizationForm>,
) -> Response {
    if let Err(e) = post_allowed(&admin, &headers, form.csrf.as_deref()) {
        return error_page(&e);
    }
    match ops::admin::switch_organization(
        state.ctx(),
        &admin.session,
        &admin.cookie,
        &form.organization,
    )
    .await
    {
        Ok(_) => done("/admin"),
        Err(e) => error_page(&e),
    }
}

/// What every page's frame shows: the organisations to switch between.
async fn frame(state: &AppState, admin: &Admin) -> views::Frame {
    let mut organizations = Vec::new();
    if admin.session.may_switch() {
        let platform = crate::context::Actor::platform_secret();
        let mut cursor = None;
        // Organisations are few (each is a business); 5 pages at most.
        for _ in 0..5 {
            let q = ops::organizations::ListQuery {
                limit: Some(100),
                cursor: cursor.take(),
            };
            match ops::organizations::list(state.ctx(), &platform, q).await {
                Ok(page) => {
                    organizations.extend(page.data.into_iter().map(|o| (o.id, o.name)));
                    if page.next_cursor.is_none() {
                        break;
                    }
                    cursor = page.next_cursor;
                }
                Err(_) => break,
            }
        }
    }
    let stripe_account = ops::organizations::stripe_account(state.ctx(), admin.session.account())
        .await
        .ok()
        .flatten();
    views::Frame {
        csrf: admin.session.csrf.clone(),
        account: admin.session.account().as_str().to_string(),
        may_switch: admin.session.may_switch(),
        organizations,
        live: state.ctx().live(),
        stripe_account,
    }
}

// ---------------------------------------------------------------- pages

/// The overview (HTML): payments per day by outcome, and what needs attention.
#[utoipa::path(get, path = "/admin", tag = "admin", security(("admin_session" = [])),
    responses(
        (status = 200, description = "The overview.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
    ),
    extensions(("x-error-codes" = json!([]))),
)]
async fn overview(State(state): State<AppState>, admin: Admin) -> Response {
    let f = frame(&state, &admin).await;
    let days = match ops::admin::payments_per_day(state.ctx(), admin.actor(), 30).await {
        Ok(d) => d,
        Err(e) => return error_page(&e),
    };
    let failed = ops::webhook_events::list(
        state.ctx(),
        admin.actor(),
        ops::webhook_events::ListWebhookEvents {
            status: Some("failed".into()),
            limit: Some(5),
            cursor: None,
        },
    )
    .await;
    let dead = ops::jobs::list(
        state.ctx(),
        admin.actor(),
        ops::jobs::ListQuery {
            status: Some("dead".into()),
            limit: Some(5),
            cursor: None,
        },
    )
    .await;
    page(
        StatusCode::OK,
        views::overview(
            &f,
            &days,
            failed.map(|p| p.data).unwrap_or_default().len(),
            dead.map(|p| p.data).unwrap_or_default().len(),
            state.ctx().now(),
        ),
    )
}

/// Payments (HTML): newest first, 50 a page; search by payment id,
/// PaymentIntent id, customer or order e-mail, order number or amount;
/// filters by status, disputed, currency and date.
#[utoipa::path(get, path = "/admin/payments", tag = "admin", security(("admin_session" = [])),
    params(
        ("q" = Option<String>, Query, description = "`pay_…`, `pi_…`, an e-mail, `ORD-…`, or an amount (`1250` minor units, `12.50` in the currency's unit)."),
        ("status" = Option<String>, Query, description = "A payment state."),
        ("disputed" = Option<String>, Query, description = "`yes` or `no`."),
        ("currency" = Option<String>, Query, description = "An ISO currency."),
        ("from" = Option<String>, Query, description = "`YYYY-MM-DD`, UTC, inclusive."),
        ("to" = Option<String>, Query, description = "`YYYY-MM-DD`, UTC, inclusive."),
        ("cursor" = Option<String>, Query, description = "The next page's cursor."),
    ),
    responses(
        (status = 200, description = "The list.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 400, description = "A filter that cannot be read.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_query", "currency_unsupported"]))),
)]
async fn payments(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<ops::admin::PaymentQuery>,
) -> Response {
    let f = frame(&state, &admin).await;
    match ops::admin::search_payments(state.ctx(), admin.actor(), &q).await {
        Ok(list) => page(StatusCode::OK, views::payments(&f, &q, &list)),
        Err(e) => page(e.status(), views::payments_error(&f, &q, &e)),
    }
}

/// One payment (HTML): its timeline (state changes with their causes,
/// refunds, disputes), its refunds and a refund form.
#[utoipa::path(get, path = "/admin/payments/{id}", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`pay_…`"), ("notice" = Option<String>, Query, description = "What the last action did.")),
    responses(
        (status = 200, description = "The payment.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 404, description = "Unknown, or another organisation's.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["payment_not_found"]))),
)]
async fn payment(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    let f = frame(&state, &admin).await;
    let p = match ops::payments::get(state.ctx(), admin.actor(), &id).await {
        Ok(p) => p,
        Err(e) => return error_page(&e),
    };
    let refunds = ops::payments::list_refunds(state.ctx(), admin.actor(), &id)
        .await
        .map(|p| p.data)
        .unwrap_or_default();
    let disputes = ops::disputes::list(
        state.ctx(),
        admin.actor(),
        ops::disputes::ListQuery {
            status: None,
            limit: Some(100),
            cursor: None,
        },
    )
    .await
    .map(|d| d.data)
    .unwrap_or_default()
    .into_iter()
    .filter(|d| d.payment_id == p.id)
    .collect::<Vec<_>>();
    page(
        StatusCode::OK,
        views::payment(&f, &p, &refunds, &disputes, n.notice.as_deref()),
    )
}

#[derive(Debug, Deserialize)]
pub struct RefundForm {
    #[serde(default)]
    pub csrf: Option<String>,
    /// In the currency's unit (`12.50`); empty: everything left.
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Refunds part or all of a payment (form post; `ops::refunds::create`).
#[utoipa::path(post, path = "/admin/payments/{id}/refunds", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`pay_…`")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`csrf`, `amount` (decimal, empty: all that is left), `reason`."),
    responses(
        (status = 303, description = "Refunded: back to the payment."),
        (status = 403, description = "No or a wrong CSRF token.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown payment.", content_type = "text/html", body = String),
        (status = 422, description = "The refund breaks a rule (more than is left, …).", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["csrf_token_invalid", "payment_not_found", "payment_fully_refunded", "payment_not_refundable", "refund_exceeds_remaining", "invalid_refund_reason"]))),
)]
async fn refund(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RefundForm>,
) -> Response {
    if let Err(e) = post_allowed(&admin, &headers, form.csrf.as_deref()) {
        return error_page(&e);
    }
    let result = async {
        let p = ops::payments::get(state.ctx(), admin.actor(), &id).await?;
        let amount = match form
            .amount
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            None => None,
            Some(a) => {
                let currency = crate::money::Currency::parse(&p.currency)?;
                Some(crate::money::Money::parse_decimal(a, currency)?.minor())
            }
        };
        let reason = form
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        ops::refunds::create(
            state.ctx(),
            admin.actor(),
            &id,
            ops::refunds::RefundIn { amount, reason },
        )
        .await
    }
    .await;
    match result {
        Ok(_) => done(&format!("/admin/payments/{id}?notice=refunded")),
        Err(e) => error_page(&e),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct StatusQuery {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub notice: Option<String>,
}

fn status_filter(s: &Option<String>) -> Option<String> {
    s.as_deref().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The Stripe webhook inbox (HTML): newest first, by status.
#[utoipa::path(get, path = "/admin/webhook-events", tag = "admin", security(("admin_session" = [])),
    params(("status" = Option<String>, Query, description = "received, applied, ignored or failed."),
        ("cursor" = Option<String>, Query, description = "The next page's cursor."),
        ("notice" = Option<String>, Query, description = "What the last action did.")),
    responses(
        (status = 200, description = "The inbox.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 400, description = "An unknown status.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn webhook_events(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<StatusQuery>,
) -> Response {
    let f = frame(&state, &admin).await;
    let list = ops::webhook_events::list(
        state.ctx(),
        admin.actor(),
        ops::webhook_events::ListWebhookEvents {
            status: status_filter(&q.status),
            limit: Some(ops::admin::LIST_LIMIT),
            cursor: status_filter(&q.cursor),
        },
    )
    .await;
    match list {
        Ok(list) => page(StatusCode::OK, views::webhook_events(&f, &q, &list)),
        Err(e) => error_page(&e),
    }
}

/// One inbox event (HTML): the raw event, why it was ignored or failed,
/// and a replay button.
#[utoipa::path(get, path = "/admin/webhook-events/{id}", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "obol's `whe_…` id."), ("notice" = Option<String>, Query, description = "What the last action did.")),
    responses(
        (status = 200, description = "The event.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 404, description = "Unknown event.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["webhook_event_not_found"]))),
)]
async fn webhook_event(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    let f = frame(&state, &admin).await;
    let event = match ops::webhook_events::get(state.ctx(), admin.actor(), &id).await {
        Ok(e) => e,
        Err(e) => return error_page(&e),
    };
    let raw = ops::admin::raw_webhook_event(state.ctx(), admin.actor(), &id)
        .await
        .unwrap_or_default();
    page(
        StatusCode::OK,
        views::webhook_event(&f, &event, &raw, n.notice.as_deref()),
    )
}

/// Replays an inbox event (form post; `ops::webhook_events::replay`).
#[utoipa::path(post, path = "/admin/webhook-events/{id}/replay", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "obol's `whe_…` id.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`csrf`."),
    responses(
        (status = 303, description = "Queued again: back to the event."),
        (status = 403, description = "No or a wrong CSRF token.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown event.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["csrf_token_invalid", "webhook_event_not_found"]))),
)]
async fn admin_replay_webhook_event(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(e) = post_allowed(&admin, &headers, form.csrf.as_deref()) {
        return error_page(&e);
    }
    match ops::webhook_events::replay(state.ctx(), admin.actor(), &id).await {
        Ok(_) => done(&format!("/admin/webhook-events/{id}?notice=replayed")),
        Err(e) => error_page(&e),
    }
}

/// Background jobs (HTML): newest first, by status (dead ones can be retried).
#[utoipa::path(get, path = "/admin/jobs", tag = "admin", security(("admin_session" = [])),
    params(("status" = Option<String>, Query, description = "queued, running, succeeded or dead."),
        ("cursor" = Option<String>, Query, description = "The next page's cursor."),
        ("notice" = Option<String>, Query, description = "What the last action did.")),
    responses(
        (status = 200, description = "The jobs.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 400, description = "An unknown status.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn jobs(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<StatusQuery>,
) -> Response {
    let f = frame(&state, &admin).await;
    let list = ops::jobs::list(
        state.ctx(),
        admin.actor(),
        ops::jobs::ListQuery {
            status: status_filter(&q.status),
            limit: Some(ops::admin::LIST_LIMIT),
            cursor: status_filter(&q.cursor),
        },
    )
    .await;
    match list {
        Ok(list) => page(StatusCode::OK, views::jobs(&f, &q, &list)),
        Err(e) => error_page(&e),
    }
}

/// Retries a dead job (form post; `ops::jobs::retry`).
#[utoipa::path(post, path = "/admin/jobs/{id}/retry", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`job_…`")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`csrf`."),
    responses(
        (status = 303, description = "Queued again: back to the jobs."),
        (status = 403, description = "No or a wrong CSRF token.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown job.", content_type = "text/html", body = String),
        (status = 409, description = "The job is not dead.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["csrf_token_invalid", "job_not_found", "job_not_dead"]))),
)]
async fn admin_retry_job(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(e) = post_allowed(&admin, &headers, form.csrf.as_deref()) {
        return error_page(&e);
    }
    match ops::jobs::retry(state.ctx(), admin.actor(), &id).await {
        Ok(_) => done("/admin/jobs?notice=retried"),
        Err(e) => error_page(&e),
    }
}

/// Host notifications (HTML): the endpoints, and one endpoint's
/// deliveries by status (failed ones can be redriven).
#[utoipa::path(get, path = "/admin/notifications", tag = "admin", security(("admin_session" = [])),
    params(("endpoint" = Option<String>, Query, description = "`we_…`: whose deliveries to show (default: the first)."),
        ("status" = Option<String>, Query, description = "pending, succeeded, failed or canceled."),
        ("notice" = Option<String>, Query, description = "What the last action did.")),
    responses(
        (status = 200, description = "Endpoints and deliveries.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 400, description = "An unknown status.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown endpoint.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_query", "webhook_endpoint_not_found"]))),
)]
async fn notifications(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<StatusQuery>,
) -> Response {
    let f = frame(&state, &admin).await;
    let endpoints = match ops::endpoints::list(state.ctx(), admin.actor()).await {
        Ok(e) => e.data,
        Err(e) => return error_page(&e),
    };
    let chosen = status_filter(&q.endpoint).or_else(|| endpoints.first().map(|e| e.id.clone()));
    let deliveries = match &chosen {
        Some(id) => match ops::endpoints::list_deliveries(
            state.ctx(),
            admin.actor(),
            id,
            ops::endpoints::DeliveryQuery {
                status: status_filter(&q.status),
                limit: Some(ops::admin::LIST_LIMIT),
            },
        )
        .await
        {
            Ok(d) => Some(d),
            Err(e) => return error_page(&e),
        },
        None => None,
    };
    page(
        StatusCode::OK,
        views::notifications(&f, &q, &endpoints, chosen.as_deref(), deliveries.as_ref()),
    )
}

#[derive(Debug, Deserialize)]
pub struct RedriveForm {
    #[serde(default)]
    pub csrf: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// Sends a delivery again now (form post; `ops::endpoints::replay_delivery`).
#[utoipa::path(post, path = "/admin/deliveries/{id}/redrive", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`dlv_…`")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`csrf`, `endpoint`."),
    responses(
        (status = 303, description = "Queued again: back to the deliveries."),
        (status = 403, description = "No or a wrong CSRF token.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown delivery.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["csrf_token_invalid", "webhook_delivery_not_found"]))),
)]
async fn redrive_delivery(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RedriveForm>,
) -> Response {
    if let Err(e) = post_allowed(&admin, &headers, form.csrf.as_deref()) {
        return error_page(&e);
    }
    match ops::endpoints::replay_delivery(state.ctx(), admin.actor(), &id).await {
        Ok(d) => done(&format!(
            "/admin/notifications?endpoint={}&notice=redriven",
            form.endpoint
                .filter(|e| e.starts_with("we_") && e.len() < 64)
                .unwrap_or(d.endpoint_id)
        )),
        Err(e) => error_page(&e),
    }
}

/// Charge runs (HTML): newest first, with their progress.
#[utoipa::path(get, path = "/admin/charge-runs", tag = "admin", security(("admin_session" = [])),
    params(("cursor" = Option<String>, Query, description = "The next page's cursor.")),
    responses(
        (status = 200, description = "The runs.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 400, description = "A cursor obol did not issue.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn charge_runs(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<StatusQuery>,
) -> Response {
    let f = frame(&state, &admin).await;
    match ops::charge_runs::list(
        state.ctx(),
        admin.actor(),
        q.cursor.as_deref(),
        Some(ops::admin::LIST_LIMIT),
    )
    .await
    {
        Ok(list) => page(StatusCode::OK, views::charge_runs(&f, &list)),
        Err(e) => error_page(&e),
    }
}

/// One charge run (HTML): a live progress bar and the outcome counts
/// (the served script polls `progress`).
#[utoipa::path(get, path = "/admin/charge-runs/{id}", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`run_…`")),
    responses(
        (status = 200, description = "The run.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 404, description = "Unknown run.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["charge_run_not_found"]))),
)]
async fn charge_run(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Response {
    let f = frame(&state, &admin).await;
    match ops::charge_runs::get(state.ctx(), admin.actor(), &id).await {
        Ok(run) => page(StatusCode::OK, views::charge_run(&f, &run)),
        Err(e) => error_page(&e),
    }
}

/// A charge run's progress as JSON, for the run page's progress bar
/// (`ops::charge_runs::get`, the same body as `GET /v1/charge-runs/{id}`).
#[utoipa::path(get, path = "/admin/charge-runs/{id}/progress", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`run_…`")),
    responses(
        (status = 200, description = "The run.", body = ops::charge_runs::ChargeRunOut),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 404, description = "Unknown run.", body = crate::error::ErrorBody),
    ),
    extensions(("x-error-codes" = json!(["charge_run_not_found"]))),
)]
async fn charge_run_progress(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Response {
    match ops::charge_runs::get(state.ctx(), admin.actor(), &id).await {
        Ok(run) => Json(run).into_response(),
        Err(e) => e.into_response(),
    }
}

const ADMIN_JS: crate::pages::Asset = crate::pages::Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/admin.js"),
};
const ADMIN_CSS: crate::pages::Asset = crate::pages::Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("assets/admin.css"),
};

/// The dashboard's script: local times, the run page's progress bar.
#[utoipa::path(get, path = "/admin/assets/admin.js", tag = "admin", security(()),
    responses((status = 200, description = "The script.", content_type = "text/javascript", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn admin_js() -> Response {
    (&ADMIN_JS).into_response()
}

/// The dashboard's stylesheet.
#[utoipa::path(get, path = "/admin/assets/admin.css", tag = "admin", security(()),
    responses((status = 200, description = "The stylesheet.", content_type = "text/css", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn admin_css() -> Response {
    (&ADMIN_CSS).into_response()
}
