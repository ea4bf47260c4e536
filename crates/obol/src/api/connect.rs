//! Stripe Connect's OAuth flow (rules in `ops::connect`): the connect
//! link and the disconnect under `/v1/organizations/{id}/…` (secret key),
//! and the two browser routes `/connect/stripe/authorize/{token}` (the
//! link, redirecting to Stripe) and `/connect/stripe/callback` (Stripe's
//! redirect back, redirecting to the host's return URL). The browser
//! routes answer redirects or an HTML page, and are rate limited per
//! client address like the other token routes.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{PublicCaller, SecretKey};
use super::json::{Json, Query};
use super::AppState;
use crate::error::{Error, Result};
use crate::ops::connect::{self, CallbackQuery, ConnectLinkIn, ConnectLinkOut};
use crate::ops::organizations::OrganizationOut;
use crate::pages::{self, StripeJs};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_connect_link))
        .routes(routes!(disconnect_organization))
        .routes(routes!(connect_authorize))
        .routes(routes!(connect_callback))
}

/// A one-time link that connects the organisation's Stripe account.
///
/// Send the admin's browser to `url` (within 10 minutes, once): obol
/// redirects it to Stripe's consent page (OAuth, `scope=read_write`) and,
/// after it, back to `return_url` with `obol_connect=active|denied|error`,
/// `organization` and (for `error`) `obol_error` in the query. The
/// platform's secret key, or the key acting for that same organisation
/// (`Obol-Organization`); any other organisation is 404. An organisation
/// connected already: 409 `organization_already_connected`. Without a
/// Connect client id (real Stripe keys, no `stripe.connect.client_id`):
/// 409 `connect_not_configured`.
#[utoipa::path(post, path = "/v1/organizations/{id}/connect-links", tag = "organizations",
    security(("secret_key" = [])),
    params(("id" = crate::ids::OrganizationId, Path, description = "The organisation.")),
    request_body = ConnectLinkIn,
    responses((status = 201, description = "The link.", body = ConnectLinkOut)),
    extensions(("x-error-codes" = json!([
        "organization_not_found", "invalid_url", "connect_not_configured",
        "encryption_key_required", "organization_already_connected"
    ]))),
)]
async fn create_connect_link(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(body): Json<ConnectLinkIn>,
) -> Result<(StatusCode, Json<ConnectLinkOut>)> {
    let out = connect::create_link(state.ctx(), &actor, &id, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Disconnects the organisation's Stripe account.
///
/// Deauthorizes obol at Stripe (`/oauth/deauthorize`) and marks the
/// organisation `disconnected`: its tokens are dropped, its objects stay
/// readable, and Stripe calls for it answer 409
/// `organization_not_connected`. A second call answers the disconnected
/// organisation; one never connected is 409 `organization_not_connected`.
#[utoipa::path(post, path = "/v1/organizations/{id}/disconnect", tag = "organizations",
    security(("secret_key" = [])),
    params(("id" = crate::ids::OrganizationId, Path, description = "The organisation.")),
    responses((status = 200, description = "The organisation, disconnected.", body = OrganizationOut)),
    extensions(("x-error-codes" = json!([
        "organization_not_found", "organization_not_connected", "connect_not_configured",
        "stripe_error"
    ]))),
)]
async fn disconnect_organization(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<OrganizationOut>> {
    Ok(Json(connect::disconnect(state.ctx(), &actor, &id).await?))
}

/// A connect link (HTML, for the organisation's admin): redirects to
/// Stripe's OAuth consent page.
///
/// The link works once: opening it uses it up and starts one connection
/// attempt. Unknown links answer 404; expired and used ones 410; an
/// organisation connected meanwhile 409; each with a page saying so.
#[utoipa::path(get, path = "/connect/stripe/authorize/{token}", tag = "organizations",
    security(()),
    params(("token" = String, Path, description = "The connect link's token.")),
    responses(
        (status = 303, description = "To Stripe's consent page.",
            headers(("location" = String, description = "Stripe's OAuth authorize URL."))),
        (status = 404, description = "Unknown link.", content_type = "text/html", body = String),
        (status = 409, description = "Connected already, or Connect not configured.", content_type = "text/html", body = String),
        (status = 410, description = "Expired or used link.", content_type = "text/html", body = String),
        (status = 429, description = "Too many requests from this address.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!([]))),
)]
async fn connect_authorize(
    State(state): State<AppState>,
    caller: Result<PublicCaller, Error>,
    Path(token): Path<String>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    let result = connect::start(state.ctx(), &token).await;
    caller.saw(&state, &result);
    match result {
        Ok(url) => redirect(&url),
        Err(e) => page(&e),
    }
}

/// Where Stripe sends the admin's browser back (HTML): redirects to the
/// host's return URL with the outcome.
///
/// `code` and `state` (consent given) or `error` and `state` (declined:
/// `obol_connect=denied`). The state works once. A forged state answers
/// 400, a used or expired one 410, each with a page saying nothing was
/// changed. After the state was accepted every outcome is a redirect:
/// `obol_connect=active` (the organisation is connected), `denied`, or
/// `error` with `obol_error` (`stripe_account_in_use`: that Stripe
/// account belongs to another organisation; `stripe_error`: Stripe
/// refused or could not be reached).
#[utoipa::path(get, path = "/connect/stripe/callback", tag = "organizations",
    security(()),
    params(CallbackQuery),
    responses(
        (status = 303, description = "To the host's return URL, with the outcome.",
            headers(("location" = String, description = "The return URL with obol_connect, organization and obol_error."))),
        (status = 400, description = "Forged or malformed state.", content_type = "text/html", body = String),
        (status = 410, description = "Used or expired state.", content_type = "text/html", body = String),
        (status = 429, description = "Too many requests from this address.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!([]))),
)]
async fn connect_callback(
    State(state): State<AppState>,
    caller: Result<PublicCaller, Error>,
    query: Result<Query<CallbackQuery>, Error>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    // A query obol cannot read carries no state it could trust.
    let Query(q) = query.unwrap_or(Query(CallbackQuery::default()));
    let result = connect::callback(state.ctx(), q).await;
    caller.saw(&state, &result);
    match result {
        Ok(url) => redirect(&url),
        Err(e) => page(&e),
    }
}

/// A 303 to `url`, uncached, sending no referrer (the link's token is in
/// this request's URL).
fn redirect(url: &str) -> Response {
    let Ok(location) = HeaderValue::from_str(url) else {
        return page(&Error::internal(
            "a redirect URL that is not a header value",
        ));
    };
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, location);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn page(e: &Error) -> Response {
    if matches!(e, Error::Database(_) | Error::Internal(_)) {
        e.log();
    }
    let (status, markup) = pages::connect::unavailable(e);
    let mut r = pages::respond(status, markup, &StripeJs::None);
    if let Error::RateLimited {
        retry_after_seconds,
    } = e
    {
        if let Ok(v) = retry_after_seconds.to_string().parse() {
            r.headers_mut().insert("retry-after", v);
        }
    }
    r
}
