//! Customer tokens: short-lived bearer tokens the host backend mints so a
//! customer's browser, app or agent acts for that customer only; and the
//! check that turns a presented token into an `Actor`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::{CustomerId, CustomerTokenId, SecretToken, TokenHash};
use crate::storage::customer_tokens::CustomerTokenRow;

pub const CUSTOMER_TOKEN_PREFIX: &str = "obol_ct_";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerTokenIn {
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer_id: String,
    /// Lifetime in seconds; default 900, at most `customer_tokens.max_ttl_seconds`.
    #[schema(minimum = 1)]
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerTokenOut {
    #[schema(value_type = crate::ids::CustomerTokenId)]
    pub id: String,
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer_id: String,
    /// Present only in the response that creates the token: the bearer
    /// credential itself (shown once, stored hashed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^obol_ct_")]
    pub token: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl CustomerTokenOut {
    fn from_row(r: CustomerTokenRow, token: Option<String>) -> Self {
        CustomerTokenOut {
            id: r.id,
            customer_id: r.customer_id,
            token,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            created_at: r.created_at,
        }
    }
}

/// Mints a token for one customer (secret key).
pub async fn create(ctx: &Ctx, actor: &Actor, body: CustomerTokenIn) -> Result<CustomerTokenOut> {
    let Actor::Secret { account } = actor else {
        return Err(Error::SecretKeyRequired);
    };
    let settings = ctx.settings();
    let ttl = body.ttl_seconds.unwrap_or(settings.token_default_ttl);
    if ttl == 0 || ttl > settings.token_max_ttl {
        return Err(Error::rule(
            RuleCode::TtlOutOfRange,
            format!(
                "ttl_seconds must be between 1 and {}",
                settings.token_max_ttl
            ),
        ));
    }
    let customer_id =
        CustomerId::parse(&body.customer_id).map_err(|_| Error::NotFound(Resource::Customer))?;
    let now = ctx.now();
    let ttl = i64::try_from(ttl).map_err(Error::internal)?;
    let expires_at = now + Duration::seconds(ttl);

    let token = SecretToken::generate(CUSTOMER_TOKEN_PREFIX);
    let id = CustomerTokenId::generate();
    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    conn.get_customer(account, &customer_id)
        .await?
        .ok_or(Error::NotFound(Resource::Customer))?;
    let row = conn
        .insert_customer_token(account, &id, &customer_id, &token.hash(), expires_at, now)
        .await?;
    tx.commit().await?;
    tracing::info!(token_id = %id, customer_id = %customer_id, "customer token issued");
    Ok(CustomerTokenOut::from_row(
        row,
        Some(token.expose().to_string()),
    ))
}

/// Revokes a token at once; later requests with it are refused.
pub async fn revoke(ctx: &Ctx, actor: &Actor, id: &str) -> Result<CustomerTokenOut> {
    actor.require_secret()?;
    let id = CustomerTokenId::parse(id).map_err(|_| Error::NotFound(Resource::CustomerToken))?;
    let mut handle = ctx.store().acquire().await?;
    let row = handle
        .conn()
        .revoke_customer_token(actor.account(), &id, ctx.now())
        .await?
        .ok_or(Error::NotFound(Resource::CustomerToken))?;
    tracing::info!(token_id = %id, "customer token revoked");
    Ok(CustomerTokenOut::from_row(row, None))
}

/// The customer a presented token acts for, if it is live.
pub async fn authenticate(ctx: &Ctx, token: &str) -> Result<Actor> {
    let hash = TokenHash::of(token);
    let mut handle = ctx.store().acquire().await?;
    let row = handle
        .conn()
        .find_live_customer_token(&hash, ctx.now())
        .await?
        .ok_or(Error::InvalidCustomerToken)?;
    Ok(Actor::Customer {
        account: AccountId::from_db(row.account_id),
        customer: CustomerId::from_db(row.customer_id),
    })
}
