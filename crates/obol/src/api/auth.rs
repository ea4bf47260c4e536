//! Who is calling: the extractors every handler uses to authenticate and to
//! check ownership.
//!
//! - `Caller`: the host backend (secret API key) or one customer (customer
//!   token). Handlers that serve customers ask `caller.may_access(owner)` and
//!   answer 404, never 403, for someone else's object.
//! - `SecretKey`: endpoints only the host backend may call.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use crate::error::Error;
use crate::ids::{CustomerId, TokenHash};
use crate::storage;

pub const API_KEY_PREFIX: &str = "obol_sk_";
pub const CUSTOMER_TOKEN_PREFIX: &str = "obol_ct_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The host application's backend: may touch everything.
    Secret,
    /// A customer's browser, app or agent: only that customer's objects.
    Customer(CustomerId),
}

impl Caller {
    /// Whether this caller may see an object owned by `owner`.
    pub fn may_access(&self, owner: Option<&CustomerId>) -> bool {
        match self {
            Caller::Secret => true,
            Caller::Customer(me) => owner == Some(me),
        }
    }
}

/// Only the secret API key passes.
pub struct SecretKey;

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

impl FromRequestParts<AppState> for Caller {
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

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, Error> {
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
            Ok(Caller::Secret)
        } else {
            Err(Error::InvalidApiKey)
        };
    }
    if token.starts_with(CUSTOMER_TOKEN_PREFIX) {
        let hash = TokenHash::of(token);
        let mut handle = state.store().acquire().await?;
        let row = handle
            .conn()
            .find_live_customer_token(&hash, storage::now())
            .await?
            .ok_or(Error::InvalidCustomerToken)?;
        return Ok(Caller::Customer(CustomerId::from_db(row.customer_id)));
    }
    Err(Error::InvalidApiKey)
}

impl FromRequestParts<AppState> for SecretKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Secret => Ok(SecretKey),
            Caller::Customer(_) => Err(Error::SecretKeyRequired),
        }
    }
}
