//! `/v1/customer-tokens`: short-lived bearer tokens the host backend mints
//! so a customer's browser, app or agent can act for that customer only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{SecretKey, CUSTOMER_TOKEN_PREFIX};
use super::json::Json;
use super::{no_store, AppState};
use crate::error::{Error, Resource, Result};
use crate::ids::{CustomerId, CustomerTokenId, SecretToken};
use crate::storage;
use crate::storage::customer_tokens::CustomerTokenRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customer-tokens", post(create_customer_token))
        .route("/v1/customer-tokens/{id}", delete(revoke_customer_token))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerTokenIn {
    pub customer_id: String,
    /// Lifetime in seconds; default 900, at most `customer_tokens.max_ttl_seconds`.
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct CustomerTokenOut {
    pub id: String,
    pub customer_id: String,
    /// Present only in the response that creates the token.
    #[serde(skip_serializing_if = "Option::is_none")]
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

async fn create_customer_token(
    State(state): State<AppState>,
    _: SecretKey,
    Json(body): Json<CustomerTokenIn>,
) -> Result<(
    StatusCode,
    [(axum::http::HeaderName, axum::http::HeaderValue); 1],
    Json<CustomerTokenOut>,
)> {
    let (default_ttl, max_ttl) = state.token_ttls();
    let ttl = body.ttl_seconds.unwrap_or(default_ttl);
    if ttl == 0 || ttl > max_ttl {
        return Err(Error::rule(
            "ttl_out_of_range",
            format!("ttl_seconds must be between 1 and {max_ttl}"),
        ));
    }
    let customer_id =
        CustomerId::parse(&body.customer_id).map_err(|_| Error::NotFound(Resource::Customer))?;
    let now = storage::now();
    let ttl = i64::try_from(ttl).map_err(Error::internal)?;
    let expires_at = now + Duration::seconds(ttl);

    let token = SecretToken::generate(CUSTOMER_TOKEN_PREFIX);
    let id = CustomerTokenId::generate();
    let mut tx = state.store().begin().await?;
    let mut conn = tx.conn();
    conn.get_customer(&customer_id)
        .await?
        .ok_or(Error::NotFound(Resource::Customer))?;
    let row = conn
        .insert_customer_token(&id, &customer_id, &token.hash(), expires_at, now)
        .await?;
    tx.commit().await?;
    tracing::info!(token_id = %id, customer_id = %customer_id, "customer token issued");
    Ok((
        StatusCode::CREATED,
        [no_store()],
        Json(CustomerTokenOut::from_row(
            row,
            Some(token.expose().to_string()),
        )),
    ))
}

/// Revokes a token at once; later requests with it answer 401.
async fn revoke_customer_token(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
) -> Result<Json<CustomerTokenOut>> {
    let id = CustomerTokenId::parse(&id).map_err(|_| Error::NotFound(Resource::CustomerToken))?;
    let mut handle = state.store().acquire().await?;
    let row = handle
        .conn()
        .revoke_customer_token(&id, storage::now())
        .await?
        .ok_or(Error::NotFound(Resource::CustomerToken))?;
    tracing::info!(token_id = %id, "customer token revoked");
    Ok(Json(CustomerTokenOut::from_row(row, None)))
}
