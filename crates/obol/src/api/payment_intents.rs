//! `/v1/payment-intents`: pay-first authorizations and their release.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{Caller, SecretKey};
use super::json::Json;
use super::AppState;
use crate::error::{Error, Resource, Result};
use crate::ids::CustomerId;
use crate::money::{Currency, Money};
use crate::ops::checkout::{self, Released};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/payment-intents", post(create_payment_intent))
        .route(
            "/v1/payment-intents/{id}/release",
            post(release_payment_intent),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentIntentIn {
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    pub customer_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PaymentIntentOut {
    pub id: String,
    pub client_secret: Option<String>,
    pub publishable_key: String,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub payment_id: String,
}

/// Authorizes before the order exists: a manual-capture intent with
/// automatic payment methods and `metadata[obol_mode]=pre_order`. An
/// `Idempotency-Key` header makes a retried call return the same intent.
async fn create_payment_intent(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<PaymentIntentIn>,
) -> Result<(StatusCode, Json<PaymentIntentOut>)> {
    let currency = Currency::parse(&body.currency)?;
    let amount = Money::new(body.amount, currency)?;
    let customer = match (&caller, &body.customer_id) {
        (Caller::Secret, None) => None,
        (Caller::Secret, Some(id)) => {
            let id = CustomerId::parse(id).map_err(|_| Error::NotFound(Resource::Customer))?;
            let mut h = state.store().acquire().await?;
            h.conn()
                .get_customer(&id)
                .await?
                .ok_or(Error::NotFound(Resource::Customer))?;
            Some(id)
        }
        (Caller::Customer(me), None) => Some(me.clone()),
        (Caller::Customer(me), Some(id)) if id == me.as_str() => Some(me.clone()),
        (Caller::Customer(_), Some(_)) => return Err(Error::NotFound(Resource::Customer)),
    };
    let request_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| {
            format!(
                "{}:{k}",
                customer.as_ref().map(|c| c.as_str()).unwrap_or("-")
            )
        })
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    let (intent, payment) = checkout::create_pay_first_intent(
        state.store(),
        state.stripe().client(),
        amount,
        customer.as_ref().map(|c| c.as_str()),
        &request_key,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(PaymentIntentOut {
            id: payment.stripe_payment_intent_id.clone(),
            client_secret: intent["client_secret"].as_str().map(str::to_string),
            publishable_key: state.stripe().publishable_key.clone(),
            amount: amount.minor(),
            currency: currency.as_str().to_string(),
            status: intent["status"].as_str().unwrap_or_default().to_string(),
            payment_id: payment.id,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseIn {
    /// Why checkout failed (insufficient_stock, address_rejected, …); logged.
    pub reason: String,
}

/// Checkout failed after authorization: cancel it (never a refund). With
/// Stripe unreachable the release is queued and retried, and the answer
/// says `cancel_pending` at once.
async fn release_payment_intent(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
    Json(body): Json<ReleaseIn>,
) -> Result<Json<Value>> {
    let reason = crate::validate::text("reason", &body.reason, 255)?;
    let payment = {
        let mut h = state.store().acquire().await?;
        h.conn()
            .get_payment_by_intent(super::customers::DEFAULT_ACCOUNT, &id)
            .await?
            .ok_or(Error::NotFound(Resource::Payment))?
    };
    let released =
        checkout::release(state.store(), state.stripe().client(), &payment, reason).await?;
    let status = match released {
        Released::Canceled => "canceled",
        Released::CancelPending => "cancel_pending",
    };
    Ok(Json(
        json!({"id": id, "status": status, "payment_id": payment.id}),
    ))
}
