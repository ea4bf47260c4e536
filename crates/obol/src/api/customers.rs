//! `/v1/customers`: obol's record of the host application's customers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{Caller, SecretKey};
use super::json::Json;
use super::AppState;
use crate::error::{Error, Resource, Result};
use crate::ids::CustomerId;
use crate::storage::customers::{CustomerRow, NewCustomer};
use crate::storage::{self};
use crate::validate;

/// The account customers belong to until Stripe Connect brings several.
pub const DEFAULT_ACCOUNT: &str = "default";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customers", post(create_customer))
        .route("/v1/customers/{id}", get(get_customer))
}

/// Body of `POST /v1/customers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerIn {
    /// The host application's own id for this customer; unique per account.
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CustomerOut {
    pub id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Created the first time a payment needs it.
    pub stripe_customer_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<CustomerRow> for CustomerOut {
    fn from(r: CustomerRow) -> Self {
        CustomerOut {
            id: r.id,
            external_id: r.external_id,
            email: r.email,
            name: r.name,
            stripe_customer_id: r.stripe_customer_id,
            created_at: r.created_at,
        }
    }
}

/// Creates a customer. A taken `external_id` answers 409 `customer_exists`
/// with `existing_id`, so a host retrying after a timeout finds its record.
async fn create_customer(
    State(state): State<AppState>,
    _: SecretKey,
    Json(body): Json<CustomerIn>,
) -> Result<(StatusCode, Json<CustomerOut>)> {
    let external_id = body
        .external_id
        .as_deref()
        .map(|s| validate::text("external_id", s, 255))
        .transpose()?;
    let email = body.email.as_deref().map(validate::email).transpose()?;
    let name = body
        .name
        .as_deref()
        .map(|s| validate::text("name", s, 255))
        .transpose()?;

    let id = CustomerId::generate();
    let mut handle = state.store().acquire().await?;
    let mut conn = handle.conn();
    let new = NewCustomer {
        id: &id,
        account_id: DEFAULT_ACCOUNT,
        external_id,
        email: email.as_deref(),
        name,
        now: storage::now(),
    };
    match conn.insert_customer(&new).await? {
        Some(row) => {
            tracing::info!(customer_id = %row.id, "customer created");
            Ok((StatusCode::CREATED, Json(row.into())))
        }
        None => {
            let external_id = external_id.unwrap_or_default();
            let existing = conn
                .get_customer_by_external_id(DEFAULT_ACCOUNT, external_id)
                .await?
                .ok_or_else(|| Error::internal("unique violation without a matching customer"))?;
            Err(Error::CustomerExists {
                external_id: external_id.to_string(),
                existing_id: existing.id,
            })
        }
    }
}

/// A customer, for the secret key or that customer's own token.
async fn get_customer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CustomerOut>> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = CustomerId::parse(&id).map_err(|_| Error::NotFound(Resource::Customer))?;
    if !caller.may_access(Some(&id)) {
        return Err(Error::NotFound(Resource::Customer));
    }
    let mut handle = state.store().acquire().await?;
    let row = handle
        .conn()
        .get_customer(&id)
        .await?
        .ok_or(Error::NotFound(Resource::Customer))?;
    Ok(Json(row.into()))
}
