//! Who is calling: extractors that turn a request's credentials into the
//! `Actor` a use case acts for. Ownership is checked in `ops/`, never here.
//!
//! - `Actor`: the host backend (secret API key) or one customer (customer
//!   token); no credential is 401. Failures are throttled per (client
//!   address, credential kind), never a valid credential (`throttle`).
//! - `SecretKey`: endpoints only the host backend may call.
//! - `OrderActor`: a credential, or the guest token of one order
//!   (`X-Guest-Token` or `?guest_token=`); a credential wins when both come.
//! - `MaybeActor`: like `OrderActor`, but none at all is not yet an error
//!   (the guest token may come in the body).
//! - `Obol-Organization: org_…`: the organisation a request acts for
//!   (`organization`). With the secret key it chooses the account; a
//!   customer token is bound to its own and answers 404
//!   `organization_not_found` to a header naming any other; a guest
//!   token's order is looked up in the named organisation. An unknown or
//!   malformed organisation is 404, never the platform.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::throttle::CredentialKind;
use super::AppState;
use crate::context::{AccountId, Actor};
use crate::error::Error;
use crate::ids::TokenHash;
use crate::ops;

pub use crate::ops::credentials::{API_KEY_PREFIX, CUSTOMER_TOKEN_PREFIX};

/// Only the secret API key passes.
pub struct SecretKey(pub Actor);

/// A credential or an order's guest token.
pub struct OrderActor(pub Actor);

/// A credential, a guest token, or neither; and the account a guest
/// token that comes later (in the body) acts in.
pub struct MaybeActor(pub Option<Actor>, pub AccountId);

/// The header naming the organisation a request acts for.
pub const ORGANIZATION_HEADER: &str = "obol-organization";

/// The account `Obol-Organization` names: the platform's without the
/// header; an unknown, malformed or unreadable one is
/// `organization_not_found`.
async fn organization(parts: &Parts, state: &AppState) -> Result<AccountId, Error> {
    let Some(value) = parts.headers.get(ORGANIZATION_HEADER) else {
        return Ok(AccountId::platform());
    };
    let value = value
        .to_str()
        .map_err(|_| Error::NotFound(crate::error::Resource::Organization))?;
    ops::organizations::resolve(state.ctx(), value).await
}

/// `actor` acting for the organisation the request names, if any
/// (`ops::credentials::in_organization`: a customer token never moves).
/// A header that is not text names no organisation: 404.
async fn in_organization(parts: &Parts, state: &AppState, actor: Actor) -> Result<Actor, Error> {
    let Some(value) = parts.headers.get(ORGANIZATION_HEADER) else {
        return Ok(actor);
    };
    let named = value.to_str().unwrap_or_default();
    ops::credentials::in_organization(state.ctx(), actor, named).await
}

fn bearer(parts: &Parts) -> Result<&str, Error> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(Error::Unauthenticated)?
        .to_str()
        .map_err(|_| Error::InvalidApiKey)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(Error::Unauthenticated)?
        .trim();
    if token.is_empty() {
        return Err(Error::Unauthenticated);
    }
    Ok(token)
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = Error;

    /// The credential is checked before the throttle is consulted, so a
    /// valid one is never refused for other callers' failures (see
    /// `throttle`); only a failure is answered 429 while its (address,
    /// kind) is over budget.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| state.auth_throttle().client_ip(c.0.ip(), &parts.headers));
        let token = match bearer(parts) {
            Ok(token) => token,
            Err(e @ Error::InvalidApiKey) => {
                return Err(refuse(state, ip, CredentialKind::SecretKey, e))
            }
            Err(e) => return Err(e),
        };
        let actor = if token.starts_with(CUSTOMER_TOKEN_PREFIX) {
            let actor = customer_token(state, ip, token).await?;
            in_organization(parts, state, actor).await?
        } else {
            // Anything else is a secret key, right or wrong: cheap to check
            // (a hash and constant-time comparisons), so checked first.
            match secret_key(state, token) {
                Some(actor) => in_organization(parts, state, actor).await?,
                None => {
                    return Err(refuse(
                        state,
                        ip,
                        CredentialKind::SecretKey,
                        Error::InvalidApiKey,
                    ))
                }
            }
        };
        // The organisation every later line of this request is about.
        tracing::Span::current().record("account_id", actor.account().as_str());
        Ok(actor)
    }
}

/// A failed attempt: 429 while `(ip, kind)` is over budget, else counted
/// and answered with `error`.
pub(crate) fn refuse(
    state: &AppState,
    ip: Option<IpAddr>,
    kind: CredentialKind,
    error: Error,
) -> Error {
    let Some(ip) = ip else {
        return error;
    };
    if let Some(retry) = state.auth_throttle().blocked(ip, kind) {
        return Error::RateLimited {
            retry_after_seconds: retry.as_secs().max(1),
        };
    }
    state.auth_throttle().record_failure(ip, kind);
    error
}

fn secret_key(state: &AppState, token: &str) -> Option<Actor> {
    ops::credentials::secret_key(state.api_key_hashes(), token)
}

/// A customer token is a database lookup: from a throttled address only
/// a token that authenticated recently is looked up; any other answers
/// 429 before the token table is read.
async fn customer_token(state: &AppState, ip: Option<IpAddr>, token: &str) -> Result<Actor, Error> {
    let kind = CredentialKind::CustomerToken;
    let hash = TokenHash::of(token);
    if let Some(retry) = ip.and_then(|ip| state.auth_throttle().blocked(ip, kind)) {
        if !state.auth_throttle().is_known_good(&hash) {
            return Err(Error::RateLimited {
                retry_after_seconds: retry.as_secs().max(1),
            });
        }
    }
    match ops::customer_tokens::authenticate(state.ctx(), token).await {
        Ok(actor) => {
            state.auth_throttle().remember_good(&hash);
            Ok(actor)
        }
        Err(e @ Error::InvalidCustomerToken) => Err(refuse(state, ip, kind, e)),
        Err(e) => Err(e),
    }
}

impl FromRequestParts<AppState> for SecretKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        match Actor::from_request_parts(parts, state).await? {
            actor @ Actor::Secret { .. } => Ok(SecretKey(actor)),
            Actor::Customer { .. } | Actor::Guest { .. } | Actor::Link { .. } => {
                Err(Error::SecretKeyRequired)
            }
        }
    }
}

/// The guest token of a request: `X-Guest-Token`, or `?guest_token=`.
pub(super) fn guest_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get("x-guest-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            parts.uri.query().and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "guest_token")
                    .map(|(_, v)| v.into_owned())
            })
        })
}

/// The guest of the one order whose token this is, in `account` (the
/// organisation the request names, else the platform).
pub fn guest(token: &str, account: AccountId) -> Actor {
    Actor::Guest {
        account,
        token: TokenHash::of(token),
    }
}

/// Guest tokens (`X-Guest-Token`, `?guest_token=`) are checked by the
/// use case, which answers 404 to a wrong one; this layer counts those
/// 404s per (address, guest token) and, while that budget is spent,
/// answers 429 before the use case reads anything, except to a guest
/// token that was answered with success recently. A request that also
/// carries `Authorization` is the credential's, not the guest's.
pub async fn throttle_guest_tokens(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let token = if parts.headers.contains_key(AUTHORIZATION) {
        None
    } else {
        guest_token(&parts)
    };
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| state.auth_throttle().client_ip(c.0.ip(), &parts.headers));
    let req = axum::extract::Request::from_parts(parts, body);
    let (Some(token), Some(ip)) = (token, ip) else {
        return next.run(req).await;
    };
    let kind = CredentialKind::GuestToken;
    let hash = TokenHash::of(&token);
    let throttle = state.auth_throttle();
    if let Some(retry) = throttle.blocked(ip, kind) {
        if !throttle.is_known_good(&hash) {
            return Error::RateLimited {
                retry_after_seconds: retry.as_secs().max(1),
            }
            .into_response();
        }
    }
    let response = next.run(req).await;
    if response.status() == axum::http::StatusCode::NOT_FOUND {
        throttle.record_failure(ip, kind);
    } else if response.status().is_success() {
        throttle.remember_good(&hash);
    }
    response
}

impl FromRequestParts<AppState> for MaybeActor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if parts.headers.contains_key(AUTHORIZATION) {
            let actor = Actor::from_request_parts(parts, state).await?;
            let account = actor.account().clone();
            return Ok(MaybeActor(Some(actor), account));
        }
        let account = organization(parts, state).await?;
        let actor = guest_token(parts)
            .as_deref()
            .map(|t| guest(t, account.clone()));
        Ok(MaybeActor(actor, account))
    }
}

impl FromRequestParts<AppState> for OrderActor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        MaybeActor::from_request_parts(parts, state)
            .await?
            .0
            .map(OrderActor)
            .ok_or(Error::Unauthenticated)
    }
}

/// The caller of a public (capability-token) route: its address, after
/// the per-address budget (`http.public_requests_per_minute`) and the
/// block on addresses guessing link tokens were checked.
pub struct PublicCaller(pub Option<IpAddr>);

impl PublicCaller {
    /// A response of the use case: unknown tokens count against the address.
    /// A forged Connect OAuth state counts the same.
    pub fn saw<T>(&self, state: &AppState, result: &Result<T, Error>) {
        let guessing = matches!(
            result,
            Err(Error::NotFound(_))
                | Err(Error::Rule {
                    code: crate::error::RuleCode::ConnectStateInvalid,
                    ..
                })
        );
        if let (Some(ip), true) = (self.0, guessing) {
            state
                .auth_throttle()
                .record_failure(ip, CredentialKind::LinkToken);
        }
    }
}

impl FromRequestParts<AppState> for PublicCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| state.auth_throttle().client_ip(c.0.ip(), &parts.headers));
        if let Some(ip) = ip {
            let throttle = state.auth_throttle();
            let wait = throttle
                .public_request(ip)
                .err()
                .or_else(|| throttle.blocked(ip, CredentialKind::LinkToken));
            if let Some(wait) = wait {
                return Err(Error::RateLimited {
                    retry_after_seconds: wait.as_secs().max(1),
                });
            }
        }
        Ok(PublicCaller(ip))
    }
}
