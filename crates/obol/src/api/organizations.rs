//! `/v1/organizations`: the businesses this obol serves, one Stripe
//! account each (rules in `ops::organizations`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::pagination::Page;
use super::AppState;
use crate::error::Result;
use crate::ops::organizations::{self, ListQuery, OrganizationIn, OrganizationOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_organization, list_organizations))
        .routes(routes!(get_organization))
}

/// Creates an organisation.
///
/// The platform's secret key, without `Obol-Organization`. Its id is what
/// later requests name in `Obol-Organization`; its Stripe account is
/// `pending` until connected, and until then obol makes no Stripe call
/// for it. A taken `external_id` answers 409 `organization_exists` with
/// `existing_id`.
#[utoipa::path(post, path = "/v1/organizations", tag = "organizations",
    security(("secret_key" = [])),
    request_body = OrganizationIn,
    responses((status = 201, description = "Created.", body = OrganizationOut)),
    extensions(("x-error-codes" = json!([
        "field_empty", "field_too_long", "field_invalid", "organization_exists",
        "organization_header_not_allowed", "encryption_key_required"
    ]))),
)]
async fn create_organization(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<OrganizationIn>,
) -> Result<(StatusCode, Json<OrganizationOut>)> {
    let out = organizations::create(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Organisations, newest first.
///
/// With `Obol-Organization`, only that organisation.
#[utoipa::path(get, path = "/v1/organizations", tag = "organizations",
    security(("secret_key" = [])),
    params(ListQuery),
    responses((status = 200, description = "A page of organisations.", body = crate::openapi::pages::OrganizationPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_organizations(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<OrganizationOut>>> {
    Ok(Json(organizations::list(state.ctx(), &actor, q).await?))
}

/// An organisation and the state of its Stripe account.
///
/// With `Obol-Organization`, only that organisation; any other is 404.
#[utoipa::path(get, path = "/v1/organizations/{id}", tag = "organizations",
    security(("secret_key" = [])),
    params(("id" = crate::ids::OrganizationId, Path, description = "The organisation.")),
    responses((status = 200, description = "The organisation.", body = OrganizationOut)),
    extensions(("x-error-codes" = json!(["organization_not_found"]))),
)]
async fn get_organization(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<OrganizationOut>> {
    Ok(Json(organizations::get(state.ctx(), &actor, &id).await?))
}
