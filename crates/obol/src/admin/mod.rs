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

use std::future::Future;
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
pub use crate::ops::admin::ListQuery;
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
        .routes(routes!(orders))
        .routes(routes!(order))
        .routes(routes!(customers))
        .routes(routes!(customer))
        .routes(routes!(disputes))
        .routes(routes!(dispute))
        .routes(routes!(invoices))
        .routes(routes!(invoice))
        .routes(routes!(organizations))
        .routes(routes!(organization))
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

/// Every signed-in page: its frame and its data, read at the same time,
/// then rendered; an error is an error page with its status.
async fn show<T>(
    state: &AppState,
    admin: &Admin,
    load: impl Future<Output = Result<T, Error>>,
    view: impl FnOnce(&views::Frame, T) -> Markup,
) -> Response {
    let (f, data) = tokio::join!(frame(state, admin), load);
    match data {
        Ok(d) => page(StatusCode::OK, view(&f, d)),
        Err(e) => error_page(&e),
    }
}

/// Every form post: the origin and CSRF checks, the action, then on to
/// the page `to` names.
async fn act<T>(
    admin: &Admin,
    headers: &HeaderMap,
    csrf: Option<&str>,
    action: impl Future<Output = Result<T, Error>>,
    to: impl FnOnce(T) -> String,
) -> Response {
    if let Err(e) = post_allowed(admin, headers, csrf) {
        return error_page(&e);
    }
    match action.await {
        Ok(v) => done(&to(v)),
        Err(e) => error_page(&e),
    }
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
    let end = ops::admin::sign_out(state.ctx(), &admin.cookie);
    let mut r = act(&admin, &headers, form.csrf.as_deref(), end, |_| {
        "/admin/login".into()
    })
    .await;
    if r.status() == StatusCode::SEE_OTHER {
        r.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "obol_admin=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0",
            ),
        );
    }
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
    let switch = ops::admin::switch_organization(
        state.ctx(),
        &admin.session,
        &admin.cookie,
        &form.organization,
    );
    act(&admin, &headers, form.csrf.as_deref(), switch, |_| {
        "/admin".into()
    })
    .await
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
    let (ctx, actor) = (state.ctx(), admin.actor());
    let load = async {
        let five = |status: &str| ops::admin::ListQuery {
            status: Some(status.into()),
            ..Default::default()
        };
        let (days, lag, failed, dead) = tokio::join!(
            ops::admin::payments_per_day(ctx, actor, 30),
            ops::admin::webhook_lag(ctx, actor),
            ops::webhook_events::list(ctx, actor, webhook_query(&five("failed"), 5)),
            ops::jobs::list(ctx, actor, job_query(&five("dead"), 5)),
        );
        Ok::<_, Error>((
            days?,
            lag?,
            failed.map(|p| p.data.len()).unwrap_or_default(),
            dead.map(|p| p.data.len()).unwrap_or_default(),
        ))
    };
    show(&state, &admin, load, |f, (days, lag, failed, dead)| {
        views::overview(f, &days, &lag, failed, dead, ctx.now())
    })
    .await
}

fn webhook_query(q: &ListQuery, limit: i64) -> ops::webhook_events::ListWebhookEvents {
    ops::webhook_events::ListWebhookEvents {
        status: q.status(),
        limit: Some(limit),
        cursor: q.cursor(),
    }
}

fn job_query(q: &ListQuery, limit: i64) -> ops::jobs::ListQuery {
    ops::jobs::ListQuery {
        status: q.status(),
        limit: Some(limit),
        cursor: q.cursor(),
    }
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
    let (f, list) = tokio::join!(
        frame(&state, &admin),
        ops::admin::search_payments(state.ctx(), admin.actor(), &q)
    );
    match list {
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
    let (ctx, actor) = (state.ctx(), admin.actor());
    let load = async {
        let p = ops::payments::get(ctx, actor, &id).await?;
        let refunds = ops::payments::list_refunds(ctx, actor, &id)
            .await
            .map(|p| p.data)
            .unwrap_or_default();
        let disputes = ops::disputes::list(
            ctx,
            actor,
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
        Ok::<_, Error>((p, refunds, disputes))
    };
    show(&state, &admin, load, |f, (p, refunds, disputes)| {
        views::payment(f, &p, &refunds, &disputes, n.notice.as_deref())
    })
    .await
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
    let (ctx, actor) = (state.ctx(), admin.actor());
    let create = async {
        let p = ops::payments::get(ctx, actor, &id).await?;
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
        ops::refunds::create(ctx, actor, &id, ops::refunds::RefundIn { amount, reason }).await
    };
    act(&admin, &headers, form.csrf.as_deref(), create, |_| {
        format!("/admin/payments/{id}?notice=refunded")
    })
    .await
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
    Query(q): Query<ListQuery>,
) -> Response {
    let list = ops::webhook_events::list(
        state.ctx(),
        admin.actor(),
        webhook_query(&q, ops::admin::LIST_LIMIT),
    );
    show(&state, &admin, list, |f, list| {
        views::webhook_events(f, &q, &list)
    })
    .await
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
    let (ctx, actor) = (state.ctx(), admin.actor());
    let load = async {
        let event = ops::webhook_events::get(ctx, actor, &id).await?;
        let raw = ops::admin::raw_webhook_event(ctx, actor, &id)
            .await
            .unwrap_or_default();
        Ok::<_, Error>((event, raw))
    };
    show(&state, &admin, load, |f, (event, raw)| {
        views::webhook_event(f, &event, &raw, n.notice.as_deref())
    })
    .await
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
    let replay = ops::webhook_events::replay(state.ctx(), admin.actor(), &id);
    act(&admin, &headers, form.csrf.as_deref(), replay, |_| {
        format!("/admin/webhook-events/{id}?notice=replayed")
    })
    .await
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
async fn jobs(State(state): State<AppState>, admin: Admin, Query(q): Query<ListQuery>) -> Response {
    let list = ops::jobs::list(
        state.ctx(),
        admin.actor(),
        job_query(&q, ops::admin::LIST_LIMIT),
    );
    show(&state, &admin, list, |f, list| views::jobs(f, &q, &list)).await
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
    let retry = ops::jobs::retry(state.ctx(), admin.actor(), &id);
    act(&admin, &headers, form.csrf.as_deref(), retry, |_| {
        "/admin/jobs?notice=retried".into()
    })
    .await
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
    Query(q): Query<ListQuery>,
) -> Response {
    let (ctx, actor) = (state.ctx(), admin.actor());
    let load = async {
        let endpoints = ops::endpoints::list(ctx, actor).await?.data;
        let chosen = q
            .endpoint
            .clone()
            .filter(|e| !e.is_empty())
            .or_else(|| endpoints.first().map(|e| e.id.clone()));
        let deliveries = match &chosen {
            Some(id) => Some(
                ops::endpoints::list_deliveries(
                    ctx,
                    actor,
                    id,
                    ops::endpoints::DeliveryQuery {
                        status: q.status(),
                        limit: Some(ops::admin::LIST_LIMIT),
                    },
                )
                .await?,
            ),
            None => None,
        };
        Ok::<_, Error>((endpoints, chosen, deliveries))
    };
    show(
        &state,
        &admin,
        load,
        |f, (endpoints, chosen, deliveries)| {
            views::notifications(f, &q, &endpoints, chosen.as_deref(), deliveries.as_ref())
        },
    )
    .await
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
    let redrive = ops::endpoints::replay_delivery(state.ctx(), admin.actor(), &id);
    let back = form
        .endpoint
        .filter(|e| e.starts_with("we_") && e.len() < 64);
    act(&admin, &headers, form.csrf.as_deref(), redrive, |d| {
        format!(
            "/admin/notifications?endpoint={}&notice=redriven",
            back.unwrap_or(d.endpoint_id)
        )
    })
    .await
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
    Query(q): Query<ListQuery>,
) -> Response {
    let cursor = q.cursor();
    let list = ops::charge_runs::list(
        state.ctx(),
        admin.actor(),
        cursor.as_deref(),
        Some(ops::admin::LIST_LIMIT),
    );
    show(&state, &admin, list, |f, list| views::charge_runs(f, &list)).await
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
    let run = ops::charge_runs::get(state.ctx(), admin.actor(), &id);
    show(&state, &admin, run, |f, run| views::charge_run(f, &run)).await
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

/// Orders (HTML): newest first, 50 a page; search by order number or
/// the order's or customer's e-mail; filter by status.
#[utoipa::path(get, path = "/admin/orders", tag = "admin", security(("admin_session" = [])),
    params(("q" = Option<String>, Query, description = "`ORD-…` or an e-mail."),
        ("status" = Option<String>, Query, description = "An order status."),
        ("cursor" = Option<String>, Query, description = "The next page's cursor.")),
    responses(
        (status = 200, description = "The orders.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 400, description = "A search or filter that cannot be read.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn orders(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<ListQuery>,
) -> Response {
    let list = ops::admin::search_orders(state.ctx(), admin.actor(), &q);
    show(&state, &admin, list, |f, list| views::orders(f, &q, &list)).await
}

/// One order (HTML): its lines, status history, payments and refunds.
#[utoipa::path(get, path = "/admin/orders/{id}", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`ord_…`")),
    responses(
        (status = 200, description = "The order.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 404, description = "Unknown, or another organisation's.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["order_not_found"]))),
)]
async fn order(State(state): State<AppState>, admin: Admin, Path(id): Path<String>) -> Response {
    let detail = ops::admin::order_detail(state.ctx(), admin.actor(), &id);
    show(&state, &admin, detail, |f, d| views::order(f, &d)).await
}

/// Customers (HTML): newest first, 50 a page; search by e-mail or the
/// start of the name.
#[utoipa::path(get, path = "/admin/customers", tag = "admin", security(("admin_session" = [])),
    params(("q" = Option<String>, Query, description = "An e-mail (exact, any case) or the start of a name."),
        ("cursor" = Option<String>, Query, description = "The next page's cursor.")),
    responses(
        (status = 200, description = "The customers.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 400, description = "A cursor obol did not issue.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn customers(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<ListQuery>,
) -> Response {
    let list = ops::admin::search_customers(state.ctx(), admin.actor(), &q);
    show(&state, &admin, list, |f, list| {
        views::customers(f, &q, &list)
    })
    .await
}

/// One customer (HTML): the Stripe customer, saved cards, payments,
/// subscriptions and scheduled payments.
#[utoipa::path(get, path = "/admin/customers/{id}", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`cus_…` (obol's)")),
    responses(
        (status = 200, description = "The customer.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 404, description = "Unknown, or another organisation's.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["customer_not_found"]))),
)]
async fn customer(State(state): State<AppState>, admin: Admin, Path(id): Path<String>) -> Response {
    let detail = ops::admin::customer_detail(state.ctx(), admin.actor(), &id);
    show(&state, &admin, detail, |f, d| views::customer(f, &d)).await
}

/// Disputes (HTML): newest first with their status and evidence due
/// date, by status; and the open tasks.
#[utoipa::path(get, path = "/admin/disputes", tag = "admin", security(("admin_session" = [])),
    params(("status" = Option<String>, Query, description = "A dispute status."),
        ("cursor" = Option<String>, Query, description = "The next page's cursor.")),
    responses(
        (status = 200, description = "The disputes.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 400, description = "An unknown status.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn disputes(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<ListQuery>,
) -> Response {
    let (ctx, actor) = (state.ctx(), admin.actor());
    let load = async {
        let query = |status, cursor| ops::disputes::ListQuery {
            status,
            limit: Some(ops::admin::LIST_LIMIT),
            cursor,
        };
        let (list, tasks) = tokio::join!(
            ops::disputes::list(ctx, actor, query(q.status(), q.cursor())),
            ops::disputes::list_tasks(ctx, actor, query(Some("open".into()), None)),
        );
        Ok::<_, Error>((list?, tasks?))
    };
    show(&state, &admin, load, |f, (list, tasks)| {
        views::disputes(f, &q, &list, &tasks)
    })
    .await
}

/// One dispute (HTML): its timeline, its tasks, a link to Stripe's
/// dashboard (where evidence is submitted).
#[utoipa::path(get, path = "/admin/disputes/{id}", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`dsp_…`")),
    responses(
        (status = 200, description = "The dispute.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 404, description = "Unknown, or another organisation's.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["dispute_not_found"]))),
)]
async fn dispute(State(state): State<AppState>, admin: Admin, Path(id): Path<String>) -> Response {
    let detail = ops::admin::dispute_detail(state.ctx(), admin.actor(), &id);
    show(&state, &admin, detail, |f, (d, tasks)| {
        views::dispute(f, &d, &tasks)
    })
    .await
}

/// Invoices (HTML): newest first, by status.
#[utoipa::path(get, path = "/admin/invoices", tag = "admin", security(("admin_session" = [])),
    params(("status" = Option<String>, Query, description = "draft, processed, partially_paid, paid or void."),
        ("cursor" = Option<String>, Query, description = "The next page's cursor.")),
    responses(
        (status = 200, description = "The invoices.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 400, description = "An unknown status.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn invoices(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<ListQuery>,
) -> Response {
    let list = ops::invoices::list(
        state.ctx(),
        admin.actor(),
        ops::invoices::ListQuery {
            status: q.status(),
            customer_id: None,
            limit: Some(ops::admin::LIST_LIMIT),
            cursor: q.cursor(),
        },
    );
    show(&state, &admin, list, |f, list| {
        views::invoices(f, &q, &list)
    })
    .await
}

/// One invoice (HTML): its lines, timeline and payment attempts.
#[utoipa::path(get, path = "/admin/invoices/{id}", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`inv_…`")),
    responses(
        (status = 200, description = "The invoice.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 404, description = "Unknown, or another organisation's.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invoice_not_found"]))),
)]
async fn invoice(State(state): State<AppState>, admin: Admin, Path(id): Path<String>) -> Response {
    let inv = ops::invoices::get(state.ctx(), admin.actor(), &id);
    show(&state, &admin, inv, |f, inv| views::invoice(f, &inv)).await
}

/// Organisations (HTML) and their Stripe connection: every one for the
/// platform, only itself for an organisation's session.
#[utoipa::path(get, path = "/admin/organizations", tag = "admin", security(("admin_session" = [])),
    params(("cursor" = Option<String>, Query, description = "The next page's cursor.")),
    responses(
        (status = 200, description = "The organisations.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 400, description = "A cursor obol did not issue.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn organizations(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<ListQuery>,
) -> Response {
    let list = ops::organizations::list(
        state.ctx(),
        admin.actor(),
        ops::organizations::ListQuery {
            limit: Some(ops::admin::LIST_LIMIT),
            cursor: q.cursor(),
        },
    );
    show(&state, &admin, list, |f, list| {
        views::organizations(f, &list)
    })
    .await
}

/// One organisation (HTML): its Stripe connection.
#[utoipa::path(get, path = "/admin/organizations/{id}", tag = "admin", security(("admin_session" = [])),
    params(("id" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, description = "The organisation.", content_type = "text/html", body = String),
        (status = 303, description = "No session: to the sign-in page."),
        (status = 404, description = "Unknown, or not the session's.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!(["organization_not_found"]))),
)]
async fn organization(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Response {
    let org = ops::organizations::get(state.ctx(), admin.actor(), &id);
    show(&state, &admin, org, |f, o| views::organization(f, &o)).await
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
