//! Who is calling: extractors that turn a request's credentials into the
//! `Actor` a use case acts for. Ownership is checked in `ops/`, never here.
//!
//! - `Actor`: the host backend (secret API key) or one customer (customer
//!   token); no credential is 401.
//! - `SecretKey`: endpoints only the host backend may call.
//! - `OrderActor`: a credential, or the guest token of one order
//!   (`X-Guest-Token` or `?guest_token=`); a credential wins when both come.
//! - `MaybeActor`: like `OrderActor`, but none at all is not yet an error
//!   (the guest token may come in the body).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use crate::context::{AccountId, Actor};
use crate::error::Error;
use crate::ids::TokenHash;
use crate::ops;

pub const API_KEY_PREFIX: &str = "obol_sk_";
pub use crate::ops::customer_tokens::CUSTOMER_TOKEN_PREFIX;

/// Only the secret API key passes.
pub struct SecretKey(pub Actor);

/// A credential or an order's guest token.
pub struct OrderActor(pub Actor);

/// A credential, a guest token, or neither.
pub struct MaybeActor(pub Option<Actor>);

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

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(retry) = ip.and_then(|ip| state.auth_throttle().blocked(ip)) {
            return Err(Error::RateLimited {
                retry_after_seconds: retry.as_secs().max(1),
            });
        }
        let result = authenticate(parts, state).await;
        if let (Err(Error::InvalidApiKey | Error::InvalidCustomerToken), Some(ip)) = (&result, ip) {
            state.auth_throttle().record_failure(ip);
        }
        result
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Actor, Error> {
    let token = bearer(parts)?;
    if token.starts_with(API_KEY_PREFIX) {
        let presented = TokenHash::of(token);
        // Compare against every key, without stopping at a match, so the
        // time taken does not tell which key (or how much of one) matched.
        let mut matched = false;
        for key in state.api_key_hashes() {
            matched |= key.ct_eq(&presented);
        }
        return if matched {
            Ok(Actor::Secret {
                account: AccountId::platform(),
            })
        } else {
            Err(Error::InvalidApiKey)
        };
    }
    if token.starts_with(CUSTOMER_TOKEN_PREFIX) {
        return ops::customer_tokens::authenticate(state.ctx(), token).await;
    }
    Err(Error::InvalidApiKey)
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
fn guest_token(parts: &Parts) -> Option<String> {
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

/// The guest of the one order whose token this is.
pub fn guest(token: &str) -> Actor {
    Actor::Guest {
        account: AccountId::platform(),
        token: TokenHash::of(token),
    }
}

impl FromRequestParts<AppState> for MaybeActor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if parts.headers.contains_key(AUTHORIZATION) {
            return Ok(MaybeActor(Some(
                Actor::from_request_parts(parts, state).await?,
            )));
        }
        Ok(MaybeActor(guest_token(parts).as_deref().map(guest)))
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
