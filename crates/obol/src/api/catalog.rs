//! `/v1/products` and `/v1/shipping-methods`: the catalog carts are priced
//! from (rules in `ops::catalog`). The secret key manages it; customer
//! tokens read what is active.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SecretKey;
use super::json::{Json, Query};
use super::AppState;
use crate::context::Actor;
use crate::error::Result;
use crate::ops::catalog::{
    self, ListCatalog, ProductIn, ProductOut, ProductPatch, ShippingMethodIn, ShippingMethodOut,
    ShippingMethodPatch,
};
use crate::ops::pagination::Page;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_product, list_products))
        .routes(routes!(get_product, update_product))
        .routes(routes!(create_shipping_method, list_shipping_methods))
        .routes(routes!(get_shipping_method, update_shipping_method))
}

/// Adds a product to the catalog.
#[utoipa::path(post, path = "/v1/products", tag = "catalog",
    security(("secret_key" = [])),
    request_body = ProductIn,
    responses((status = 201, description = "Created.", body = ProductOut)),
    extensions(("x-error-codes" = json!([
        "field_empty", "field_too_long", "field_invalid", "amount_not_positive", "amount_too_large",
        "amount_precision", "amount_negative", "currency_unsupported"
    ]))),
)]
async fn create_product(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<ProductIn>,
) -> Result<(StatusCode, Json<ProductOut>)> {
    let out = catalog::create_product(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The catalog's products, newest first.
///
/// A customer token sees active products only.
#[utoipa::path(get, path = "/v1/products", tag = "catalog",
    security(("secret_key" = []), ("customer_token" = [])),
    params(ListCatalog),
    responses((status = 200, description = "A page of products.", body = crate::openapi::pages::ProductPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_products(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<ListCatalog>,
) -> Result<Json<Page<ProductOut>>> {
    Ok(Json(catalog::list_products(state.ctx(), &actor, q).await?))
}

/// One product (a customer token: active ones only).
#[utoipa::path(get, path = "/v1/products/{id}", tag = "catalog",
    security(("secret_key" = []), ("customer_token" = [])),
    params(("id" = crate::ids::ProductId, Path, description = "The product.")),
    responses((status = 200, description = "The product.", body = ProductOut)),
    extensions(("x-error-codes" = json!(["product_not_found"]))),
)]
async fn get_product(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<ProductOut>> {
    Ok(Json(catalog::get_product(state.ctx(), &actor, &id).await?))
}

/// Changes a product: price, name, stock, or takes it off sale.
///
/// Orders and links made earlier keep the prices they were made with; a
/// link completed after a price change is refused (`amount_mismatch`).
#[utoipa::path(patch, path = "/v1/products/{id}", tag = "catalog",
    security(("secret_key" = [])),
    params(("id" = crate::ids::ProductId, Path, description = "The product.")),
    request_body = ProductPatch,
    responses((status = 200, description = "The product as it is now.", body = ProductOut)),
    extensions(("x-error-codes" = json!([
        "product_not_found", "field_empty", "field_too_long", "field_invalid", "amount_not_positive",
        "amount_too_large", "amount_precision", "amount_negative", "currency_unsupported"
    ]))),
)]
async fn update_product(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(patch): Json<ProductPatch>,
) -> Result<Json<ProductOut>> {
    Ok(Json(
        catalog::update_product(state.ctx(), &actor, &id, patch).await?,
    ))
}

/// Adds a shipping method.
#[utoipa::path(post, path = "/v1/shipping-methods", tag = "catalog",
    security(("secret_key" = [])),
    request_body = ShippingMethodIn,
    responses((status = 201, description = "Created.", body = ShippingMethodOut)),
    extensions(("x-error-codes" = json!([
        "field_empty", "field_too_long", "field_invalid", "amount_too_large", "amount_precision",
        "amount_negative", "amount_not_positive", "currency_unsupported"
    ]))),
)]
async fn create_shipping_method(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Json(body): Json<ShippingMethodIn>,
) -> Result<(StatusCode, Json<ShippingMethodOut>)> {
    let out = catalog::create_shipping_method(state.ctx(), &actor, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The shipping methods, newest first (a customer token: active ones).
#[utoipa::path(get, path = "/v1/shipping-methods", tag = "catalog",
    security(("secret_key" = []), ("customer_token" = [])),
    params(ListCatalog),
    responses((status = 200, description = "A page of shipping methods.", body = crate::openapi::pages::ShippingMethodPage)),
    extensions(("x-error-codes" = json!(["invalid_query"]))),
)]
async fn list_shipping_methods(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<ListCatalog>,
) -> Result<Json<Page<ShippingMethodOut>>> {
    Ok(Json(
        catalog::list_shipping_methods(state.ctx(), &actor, q).await?,
    ))
}

/// One shipping method.
#[utoipa::path(get, path = "/v1/shipping-methods/{id}", tag = "catalog",
    security(("secret_key" = []), ("customer_token" = [])),
    params(("id" = crate::ids::ShippingMethodId, Path, description = "The shipping method.")),
    responses((status = 200, description = "The shipping method.", body = ShippingMethodOut)),
    extensions(("x-error-codes" = json!(["shipping_method_not_found"]))),
)]
async fn get_shipping_method(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<ShippingMethodOut>> {
    Ok(Json(
        catalog::get_shipping_method(state.ctx(), &actor, &id).await?,
    ))
}

/// Changes a shipping method.
#[utoipa::path(patch, path = "/v1/shipping-methods/{id}", tag = "catalog",
    security(("secret_key" = [])),
    params(("id" = crate::ids::ShippingMethodId, Path, description = "The shipping method.")),
    request_body = ShippingMethodPatch,
    responses((status = 200, description = "The shipping method as it is now.", body = ShippingMethodOut)),
    extensions(("x-error-codes" = json!([
        "shipping_method_not_found", "field_empty", "field_too_long", "field_invalid",
        "amount_too_large", "amount_precision", "amount_negative", "amount_not_positive", "currency_unsupported"
    ]))),
)]
async fn update_shipping_method(
    State(state): State<AppState>,
    SecretKey(actor): SecretKey,
    Path(id): Path<String>,
    Json(patch): Json<ShippingMethodPatch>,
) -> Result<Json<ShippingMethodOut>> {
    Ok(Json(
        catalog::update_shipping_method(state.ctx(), &actor, &id, patch).await?,
    ))
}
