//! `/v1/payment-intents`: pay-first authorizations and their release.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{Caller, SecretKey};
use super::json::Json;
use super::orders::{MaybeOrderCaller, OrderCaller};
use super::AppState;
use crate::error::{Error, Resource, Result};
use crate::ids::CustomerId;
use crate::money::{Currency, Money};
use crate::ops::checkout::{self, Released};
use crate::stripe::{IdempotencyKey, Params};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/payment-intents", post(create_payment_intent))
        .route(
            "/v1/payment-intents/{id}/release",
            post(release_payment_intent),
        )
        .route(
            "/v1/payment-intents/{id}/status",
            axum::routing::get(intent_status),
        )
}

/// Either `{amount, currency, customer_id?}` (pay first) or
/// `{order_id, guest_token?}` (pay an existing order).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentIntentIn {
    /// Minor units.
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub customer_id: Option<String>,
    pub order_id: Option<String>,
    pub guest_token: Option<String>,
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
    MaybeOrderCaller(access): MaybeOrderCaller,
    headers: HeaderMap,
    Json(body): Json<PaymentIntentIn>,
) -> Result<(StatusCode, Json<PaymentIntentOut>)> {
    if let Some(order_id) = &body.order_id {
        if body.amount.is_some() || body.currency.is_some() || body.customer_id.is_some() {
            return Err(Error::InvalidBody(
                "send either order_id (an existing order) or amount and currency (pay first)"
                    .into(),
            ));
        }
        let access = OrderCaller {
            caller: access.caller,
            guest_token: body.guest_token.clone().or(access.guest_token),
        };
        if access.caller.is_none() && access.guest_token.is_none() {
            return Err(Error::Unauthenticated);
        }
        return pay_order(&state, &access, order_id).await;
    }
    let caller = access.caller.ok_or(Error::Unauthenticated)?;
    let (Some(amount), Some(currency)) = (body.amount, &body.currency) else {
        return Err(Error::InvalidBody(
            "amount and currency are required (or order_id)".into(),
        ));
    };
    let currency = Currency::parse(currency)?;
    let amount = Money::new(amount, currency)?;
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

/// Pays an existing pending order: one open intent per order (a second
/// call returns it), metadata naming the order, `receipt_email` from the
/// billing address. The webhook confirms the order on success.
async fn pay_order(
    state: &AppState,
    access: &OrderCaller,
    order_id: &str,
) -> Result<(StatusCode, Json<PaymentIntentOut>)> {
    let order = super::orders::load_owned(state, access, order_id).await?;
    if order.status != "pending" {
        return Err(Error::rule_conflict(
            "order_not_payable",
            format!("the order is {}, not pending", order.status),
        ));
    }
    let currency = Currency::parse(&order.currency)?;
    let amount = Money::new(order.total, currency)?;
    let stripe = state.stripe().client();
    let existing = {
        let mut h = state.store().acquire().await?;
        h.conn().list_payments_for_order(&order.id).await?
    };
    for p in &existing {
        if matches!(p.status.as_str(), "pending" | "requires_action" | "failed") {
            let intent: Value = stripe
                .get(
                    &format!("/v1/payment_intents/{}", p.stripe_payment_intent_id),
                    &Params::new(),
                )
                .await
                .map_err(|e| Error::Stripe(e.to_string()))?;
            if !matches!(intent["status"].as_str(), Some("canceled" | "succeeded")) {
                return Ok((
                    StatusCode::OK,
                    Json(intent_out(state, &intent, amount, p.id.clone())),
                ));
            }
        }
        if p.status == "authorized" || p.ledger().state.is_captured() {
            return Err(Error::rule_conflict(
                "order_already_paid",
                "the order has a payment already",
            ));
        }
    }
    let receipt_email = order
        .billing_address
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .and_then(|a| a["email"].as_str().map(str::to_string));
    let params = Params::new()
        .set("amount", amount.to_stripe_amount())
        .set("currency", currency.as_str())
        .set("automatic_payment_methods[enabled]", "true")
        .set("description", format!("Order {}", order.number))
        .set("metadata[obol_order_id]", &order.id)
        .set("metadata[obol_order_number]", &order.number)
        .set_opt("metadata[obol_customer_id]", order.customer_id.as_deref())
        .set_opt("receipt_email", receipt_email.as_deref());
    // One key per order and attempt: a retry replays; after a canceled
    // attempt a new intent is made.
    let attempt = existing.len().to_string();
    let intent: Value = stripe
        .post(
            "/v1/payment_intents",
            &params,
            &IdempotencyKey::for_op("order-intent", &[&order.id, &attempt]),
        )
        .await
        .map_err(|e| Error::Stripe(e.to_string()))?;
    let payment = checkout::observe(state.store(), &intent, "POST /v1/payment-intents").await?;
    Ok((
        StatusCode::CREATED,
        Json(intent_out(state, &intent, amount, payment.id)),
    ))
}

fn intent_out(
    state: &AppState,
    intent: &Value,
    amount: Money,
    payment_id: String,
) -> PaymentIntentOut {
    PaymentIntentOut {
        id: intent["id"].as_str().unwrap_or_default().to_string(),
        client_secret: intent["client_secret"].as_str().map(str::to_string),
        publishable_key: state.stripe().publishable_key.clone(),
        amount: amount.minor(),
        currency: amount.currency().as_str().to_string(),
        status: intent["status"].as_str().unwrap_or_default().to_string(),
        payment_id,
    }
}

#[derive(Debug, Serialize)]
pub struct IntentStatusOut {
    pub id: String,
    /// Stripe's status of the intent, read now.
    pub stripe_status: String,
    /// The ledger's state of the payment.
    pub payment_status: String,
    pub payment_id: String,
    pub order_id: Option<String>,
}

/// The intent's Stripe status and the local payment state, for the secret
/// key, the paying customer, or the order's guest; 404 for anyone else.
async fn intent_status(
    State(state): State<AppState>,
    access: OrderCaller,
    Path(id): Path<String>,
) -> Result<Json<IntentStatusOut>> {
    let payment = {
        let mut h = state.store().acquire().await?;
        h.conn()
            .get_payment_by_intent(super::customers::DEFAULT_ACCOUNT, &id)
            .await?
            .ok_or(Error::NotFound(Resource::Payment))?
    };
    let by_order = match &payment.order_id {
        Some(order_id) => super::orders::load_owned(&state, &access, order_id)
            .await
            .is_ok(),
        None => false,
    };
    let by_customer = access.caller.as_ref().is_some_and(|c| {
        c.may_access(
            payment
                .customer_id
                .clone()
                .map(CustomerId::from_db)
                .as_ref(),
        )
    });
    if !by_order && !by_customer {
        return Err(Error::NotFound(Resource::Payment));
    }
    let intent: Value = state
        .stripe()
        .client()
        .get(&format!("/v1/payment_intents/{id}"), &Params::new())
        .await
        .map_err(|e| Error::Stripe(e.to_string()))?;
    Ok(Json(IntentStatusOut {
        id,
        stripe_status: intent["status"].as_str().unwrap_or_default().to_string(),
        payment_status: payment.status,
        payment_id: payment.id,
        order_id: payment.order_id,
    }))
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
