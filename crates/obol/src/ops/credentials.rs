//! Turning a presented credential into the `Actor` it stands for, for any
//! front end: the HTTP API's `Authorization: Bearer`, the MCP server's
//! `OBOL_MCP_TOKEN` or Bearer header; and the organisation it acts for
//! (`Obol-Organization`, `OBOL_MCP_ORGANIZATION`: `in_organization`).
//! Throttling failed attempts is the front end's business (it knows the
//! client's address); the checks are here, once.

use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Result};
use crate::ids::TokenHash;

pub use super::customer_tokens::CUSTOMER_TOKEN_PREFIX;

pub const API_KEY_PREFIX: &str = "obol_sk_";

/// The secret key acting on the platform account, if `token` is one of
/// the keys whose hashes are `accepted`. Every key is compared, without
/// stopping at a match and in constant time, so the time taken tells
/// neither which key matched nor how much of one.
pub fn secret_key(accepted: &[TokenHash], token: &str) -> Option<Actor> {
    if !token.starts_with(API_KEY_PREFIX) {
        return None;
    }
    let presented = TokenHash::of(token);
    let mut matched = false;
    for key in accepted {
        matched |= key.ct_eq(&presented);
    }
    matched.then(|| Actor::Secret {
        account: AccountId::platform(),
    })
}

/// A secret key (`obol_sk_…`, checked against `accepted`) or a live
/// customer token (`obol_ct_…`, looked up). A wrong secret key is
/// `invalid_api_key`; an unknown, expired or revoked customer token
/// `invalid_customer_token`.
pub async fn authenticate(ctx: &Ctx, accepted: &[TokenHash], token: &str) -> Result<Actor> {
    if token.starts_with(CUSTOMER_TOKEN_PREFIX) {
        return super::customer_tokens::authenticate(ctx, token).await;
    }
    secret_key(accepted, token).ok_or(Error::InvalidApiKey)
}

/// `actor` acting for the organisation `named` (an `org_…` id, as the
/// `Obol-Organization` header or `OBOL_MCP_ORGANIZATION` give it). The
/// secret key moves to it; a customer token never moves: naming any
/// other account than its own (the platform's included) is 404
/// `organization_not_found`, without looking the name up; a guest token's
/// order is looked up in it; a link carries its own. An unknown or
/// malformed organisation is 404, never the platform.
pub async fn in_organization(ctx: &Ctx, actor: Actor, named: &str) -> Result<Actor> {
    let not_found = || Error::NotFound(crate::error::Resource::Organization);
    match actor {
        Actor::Secret { .. } => Ok(Actor::Secret {
            account: super::organizations::resolve(ctx, named).await?,
        }),
        Actor::Customer { account, customer } => {
            if named.trim() == account.as_str() {
                Ok(Actor::Customer { account, customer })
            } else {
                Err(not_found())
            }
        }
        Actor::Guest { token, .. } => Ok(Actor::Guest {
            account: super::organizations::resolve(ctx, named).await?,
            token,
        }),
        link @ Actor::Link { .. } => Ok(link),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_accepted_secret_key_passes() {
        let accepted = [
            TokenHash::of("obol_sk_one_0123456789abcdef0123456789"),
            TokenHash::of("obol_sk_two_0123456789abcdef0123456789"),
        ];
        assert!(
            secret_key(&accepted, "obol_sk_two_0123456789abcdef0123456789")
                .is_some_and(|a| a.is_secret())
        );
        assert!(secret_key(&accepted, "obol_sk_three_0123456789abcdef01234567").is_none());
        assert!(secret_key(&accepted, "obol_ct_one_0123456789abcdef0123456789").is_none());
        assert!(secret_key(&[], "obol_sk_one_0123456789abcdef0123456789").is_none());
    }
}
