//! `/v1/orders`: what a customer or a guest buys. obol computes the total
//! itself from the line items and shipping; totals sent by clients are
//! not read.
//!
//! Who may see an order: the secret key, the owning customer's token, or
//! the order's guest token (`X-Guest-Token`, or `?guest_token=`); anyone
//! else gets 404, and no credential at all 401.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{Caller, SecretKey};
use super::json::Json;
use super::AppState;
use crate::error::{Error, Resource, Result};
use crate::ids::{CustomerId, SecretToken, TokenHash};
use crate::money::{Currency, Money};
use crate::storage::orders::{LineItemRow, NewLineItem, OrderRow};
use crate::{storage, validate};

pub const GUEST_TOKEN_PREFIX: &str = "obol_gt_";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders", post(create_order))
        .route("/v1/orders/{id}", get(get_order).patch(update_order))
}

/// Order statuses and the moves between them.
pub const STATUSES: [&str; 5] = ["pending", "confirmed", "shipped", "delivered", "cancelled"];

/// The transition table: pending → confirmed → shipped → delivered, and
/// cancelled from pending or confirmed.
pub fn can_transition(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("pending", "confirmed")
            | ("confirmed", "shipped")
            | ("shipped", "delivered")
            | ("pending", "cancelled")
            | ("confirmed", "cancelled")
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineItemIn {
    pub name: String,
    /// Minor units.
    pub unit_amount: i64,
    pub quantity: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingIn {
    pub name: String,
    pub amount: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderIn {
    /// With the secret key: the customer the order is for (absent: a guest
    /// order). With a customer token: omitted or that customer.
    pub customer_id: Option<String>,
    pub email: String,
    pub currency: String,
    pub line_items: Vec<LineItemIn>,
    pub shipping: Option<ShippingIn>,
    pub shipping_address: Option<Value>,
    pub billing_address: Option<Value>,
    /// Ignored: obol computes the total. Accepted so that shops sending it
    /// are not refused.
    pub total: Option<Value>,
    /// Pay-first: the `pi_…` authorized before the order. Its amount and
    /// currency must equal the order's total; the order is then confirmed.
    pub payment_reference: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LineItemOut {
    pub name: String,
    pub unit_amount: i64,
    pub quantity: i32,
    pub amount: i64,
}

#[derive(Debug, Serialize)]
pub struct OrderOut {
    pub id: String,
    pub number: String,
    pub status: String,
    pub customer_id: Option<String>,
    pub email: String,
    pub currency: String,
    pub line_items: Vec<LineItemOut>,
    pub shipping: Option<Value>,
    pub subtotal: Money,
    pub total: Money,
    pub shipping_address: Option<Value>,
    pub billing_address: Option<Value>,
    pub payment_reference: Option<String>,
    pub payment_id: Option<String>,
    /// Present only in the response that creates a guest order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_token: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn money_of(amount: i64, currency: &str) -> Result<Money> {
    let c = Currency::parse(currency)?;
    Ok(Money::balance(amount, c)?)
}

fn order_out(
    o: OrderRow,
    items: Vec<LineItemRow>,
    payment_id: Option<String>,
    guest_token: Option<String>,
) -> Result<OrderOut> {
    Ok(OrderOut {
        payment_id,
        subtotal: money_of(o.subtotal, &o.currency)?,
        total: money_of(o.total, &o.currency)?,
        shipping: o
            .shipping_name
            .as_ref()
            .map(|n| serde_json::json!({"name": n, "amount": o.shipping_amount})),
        line_items: items
            .into_iter()
            .map(|i| LineItemOut {
                name: i.name,
                unit_amount: i.unit_amount,
                quantity: i.quantity,
                amount: i.amount,
            })
            .collect(),
        shipping_address: o
            .shipping_address
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok()),
        billing_address: o
            .billing_address
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok()),
        id: o.id,
        number: o.number,
        status: o.status,
        customer_id: o.customer_id,
        email: o.email,
        currency: o.currency,
        payment_reference: o.payment_reference,
        guest_token,
        created_at: o.created_at,
        updated_at: o.updated_at,
    })
}

/// `ORD-YYYYMMDD-XXXXX`: the date and five characters from an alphabet
/// without look-alikes (no 0/O, 1/I).
fn order_number(now: DateTime<Utc>) -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| {
            ALPHABET
                .get(rng.random_range(0..ALPHABET.len()))
                .copied()
                .unwrap_or(b'X') as char
        })
        .collect();
    format!("ORD-{}-{suffix}", now.format("%Y%m%d"))
}

fn address(field: &str, v: Option<Value>) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => {
            let text = v.to_string();
            if text.len() > 4096 {
                return Err(Error::rule(
                    "field_too_long",
                    format!("{field} is too large"),
                ));
            }
            Ok(Some(text))
        }
        Some(_) => Err(Error::InvalidBody(format!("{field} must be an object"))),
    }
}

/// Creates an order with the total computed by obol.
async fn create_order(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<OrderIn>,
) -> Result<(StatusCode, Json<OrderOut>)> {
    let currency = Currency::parse(&body.currency)?;
    let email = validate::email(&body.email)?;
    if body.line_items.is_empty() || body.line_items.len() > 200 {
        return Err(Error::rule(
            "invalid_line_items",
            "an order has 1 to 200 line items",
        ));
    }
    let mut subtotal = Money::zero(currency);
    let mut items = Vec::with_capacity(body.line_items.len());
    for item in &body.line_items {
        let name = validate::text("line_items.name", &item.name, 255)?;
        let unit = Money::new(item.unit_amount, currency)?;
        if !(1..=10_000).contains(&item.quantity) {
            return Err(Error::rule(
                "invalid_quantity",
                "quantity must be between 1 and 10000",
            ));
        }
        let amount = item
            .unit_amount
            .checked_mul(item.quantity)
            .ok_or(crate::money::MoneyError::TooLarge)?;
        subtotal = subtotal.checked_add(Money::balance(amount, currency)?)?;
        items.push(NewLineItem {
            name,
            unit_amount: unit.minor(),
            quantity: i32::try_from(item.quantity).unwrap_or(i32::MAX),
            amount,
        });
    }
    let (shipping_name, shipping_amount) = match &body.shipping {
        Some(s) => {
            if s.amount < 0 {
                return Err(Error::rule(
                    "amount_negative",
                    "shipping.amount must not be negative",
                ));
            }
            if s.amount > 0 {
                Money::new(s.amount, currency)?;
            }
            (
                Some(validate::text("shipping.name", &s.name, 255)?.to_string()),
                s.amount,
            )
        }
        None => (None, 0),
    };
    let total = subtotal.checked_add(Money::balance(shipping_amount, currency)?)?;
    // The total must be chargeable: positive, at most 8 digits, and a
    // multiple of 10 in three-decimal currencies.
    let total = Money::new(total.minor(), currency)?;

    let customer_id = match (&caller, &body.customer_id) {
        (Caller::Secret, None) => None,
        (Caller::Secret, Some(id)) => {
            Some(CustomerId::parse(id).map_err(|_| Error::NotFound(Resource::Customer))?)
        }
        (Caller::Customer(me), None) => Some(me.clone()),
        (Caller::Customer(me), Some(id)) if id == me.as_str() => Some(me.clone()),
        (Caller::Customer(_), Some(_)) => return Err(Error::NotFound(Resource::Customer)),
    };
    // Pay-first: Stripe must hold an authorization of exactly this total.
    let intent = match &body.payment_reference {
        Some(pi) => Some(verify_reference(&state, pi, total, customer_id.as_ref()).await?),
        None => None,
    };
    let guest = customer_id
        .is_none()
        .then(|| SecretToken::generate(GUEST_TOKEN_PREFIX));
    let shipping_address = address("shipping_address", body.shipping_address)?;
    let billing_address = address("billing_address", body.billing_address)?;

    let mut tx = state.store().begin().await?;
    let mut conn = tx.conn();
    if let Some(id) = &customer_id {
        conn.get_customer(id)
            .await?
            .ok_or(Error::NotFound(Resource::Customer))?;
    }
    let now = storage::now();
    let id = crate::ids::new_id("ord_");
    let mut row = None;
    for _ in 0..5 {
        let candidate = OrderRow {
            id: id.clone(),
            number: order_number(now),
            account_id: super::customers::DEFAULT_ACCOUNT.to_string(),
            customer_id: customer_id.as_ref().map(|c| c.as_str().to_string()),
            guest_token_hash: guest.as_ref().map(|g| g.hash().as_str().to_string()),
            email: email.clone(),
            currency: currency.as_str().to_string(),
            subtotal: subtotal.minor(),
            shipping_name: shipping_name.clone(),
            shipping_amount,
            total: total.minor(),
            status: if intent.is_some() {
                "confirmed"
            } else {
                "pending"
            }
            .to_string(),
            shipping_address: shipping_address.clone(),
            billing_address: billing_address.clone(),
            payment_reference: body.payment_reference.clone(),
            created_at: now,
            updated_at: now,
        };
        if let Some(r) = conn.insert_order(&candidate).await? {
            row = Some(r);
            break;
        }
    }
    let row = row.ok_or_else(|| Error::internal("could not draw a free order number"))?;
    conn.insert_line_items(&row.id, &items).await?;
    // The order, its payment (authorized) and the timeline entry commit together.
    let payment = match &intent {
        Some(intent) => {
            let cause = crate::payments::Cause {
                kind: "api",
                reference: Some("POST /v1/orders"),
                account_id: super::customers::DEFAULT_ACCOUNT,
            };
            crate::payments::observe_intent(
                &mut conn,
                &cause,
                intent,
                chrono::Utc::now().timestamp(),
            )
            .await?;
            let pi = intent["id"].as_str().unwrap_or_default();
            let payment = conn
                .get_payment_by_intent(super::customers::DEFAULT_ACCOUNT, pi)
                .await?
                .ok_or_else(|| Error::internal("the verified intent has no payment"))?;
            conn.set_payment_order(&payment.id, &row.id, now).await?;
            Some(payment)
        }
        None => None,
    };
    let stored_items = conn.list_line_items(&row.id).await?;
    tx.commit().await?;
    tracing::info!(order = %row.id, number = %row.number, total = row.total, "order created");
    if let Some(p) = &payment {
        if state.capture_on() == "confirmed" {
            // The order exists and is confirmed whatever Stripe answers; a
            // failed capture is logged and retried by PATCHing the status again.
            if let Err(e) =
                crate::ops::checkout::capture(state.store(), state.stripe().client(), p).await
            {
                tracing::error!(order = %row.id, error = %e, "capture on confirmation failed");
            }
        }
    }
    let out = order_out(
        row,
        stored_items,
        payment.map(|p| p.id),
        guest.map(|g| g.expose().to_string()),
    )?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Checks with Stripe that `pi` is authorized (or captured) for exactly
/// `total`; nothing is written if not.
async fn verify_reference(
    state: &AppState,
    pi: &str,
    total: Money,
    customer: Option<&CustomerId>,
) -> Result<Value> {
    if !pi.starts_with("pi_") || pi.len() > 255 || pi.contains('/') {
        return Err(Error::rule(
            "invalid_payment_reference",
            "payment_reference is a pi_… id",
        ));
    }
    let intent: Value = state
        .stripe()
        .client()
        .get(
            &format!("/v1/payment_intents/{pi}"),
            &crate::stripe::Params::new(),
        )
        .await
        .map_err(|e| match e {
            crate::stripe::StripeError::Refused { status: 404, .. } => Error::rule(
                "invalid_payment_reference",
                "Stripe knows no such payment intent",
            ),
            other => Error::Stripe(other.to_string()),
        })?;
    // An intent authorized for one customer cannot pay another's order.
    if let Some(owner) = intent["metadata"]["obol_customer_id"].as_str() {
        if customer.map(CustomerId::as_str) != Some(owner) {
            return Err(Error::rule(
                "payment_reference_mismatch",
                "the payment intent was authorized for another customer",
            ));
        }
    }
    let status = intent["status"].as_str().unwrap_or_default();
    if status != "requires_capture" && status != "succeeded" {
        return Err(Error::rule(
            "payment_not_authorized",
            format!("the payment intent is {status}, not authorized"),
        ));
    }
    let amount = intent["amount"].as_i64().unwrap_or(-1);
    let currency = intent["currency"].as_str().unwrap_or_default();
    if amount != total.minor() || currency != total.currency().as_str() {
        tracing::warn!(%pi, amount, currency, expected = total.minor(), "pay-first amount mismatch; order refused");
        return Err(Error::rule(
            "amount_mismatch",
            format!(
                "the payment is {amount} {currency} but the order totals {} {}",
                total.minor(),
                total.currency().as_str()
            ),
        ));
    }
    Ok(intent)
}

/// The caller of an order route: a credential, a guest token, or both.
pub struct OrderCaller {
    pub caller: Option<Caller>,
    pub guest_token: Option<String>,
}

impl FromRequestParts<AppState> for OrderCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let access = MaybeOrderCaller::from_request_parts(parts, state).await?.0;
        if access.caller.is_none() && access.guest_token.is_none() {
            return Err(Error::Unauthenticated);
        }
        Ok(access)
    }
}

/// Like `OrderCaller`, but with neither credential nor guest token in the
/// headers it still extracts (the guest token may be in the body).
pub struct MaybeOrderCaller(pub OrderCaller);

impl FromRequestParts<AppState> for MaybeOrderCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let guest_token = parts
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
            });
        let has_auth = parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION);
        let caller = if has_auth {
            Some(Caller::from_request_parts(parts, state).await?)
        } else {
            None
        };
        Ok(MaybeOrderCaller(OrderCaller {
            caller,
            guest_token,
        }))
    }
}

impl OrderCaller {
    /// Whether this caller may see `order`; compared in constant time.
    pub fn owns(&self, order: &OrderRow) -> bool {
        let by_credential = match &self.caller {
            Some(c) => c.may_access(order.customer_id.clone().map(CustomerId::from_db).as_ref()),
            None => false,
        };
        let by_guest = match (&self.guest_token, &order.guest_token_hash) {
            (Some(t), Some(h)) => TokenHash::of(t).ct_eq(&TokenHash::from_db(h.clone())),
            _ => false,
        };
        by_credential || by_guest
    }
}

/// Loads an order the caller may see; someone else's answers 404.
pub async fn load_owned(state: &AppState, caller: &OrderCaller, id: &str) -> Result<OrderRow> {
    let mut h = state.store().acquire().await?;
    let order = h
        .conn()
        .get_order(id)
        .await?
        .ok_or(Error::NotFound(Resource::Order))?;
    if caller.owns(&order) {
        Ok(order)
    } else {
        Err(Error::NotFound(Resource::Order))
    }
}

async fn get_order(
    State(state): State<AppState>,
    caller: OrderCaller,
    Path(id): Path<String>,
) -> Result<Json<OrderOut>> {
    let order = load_owned(&state, &caller, &id).await?;
    let mut h = state.store().acquire().await?;
    let items = h.conn().list_line_items(&order.id).await?;
    let payment = h.conn().get_payment_for_order(&order.id).await?;
    Ok(Json(order_out(order, items, payment.map(|p| p.id), None)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderPatch {
    pub status: String,
}

fn rank(status: &str) -> u8 {
    match status {
        "confirmed" => 1,
        "shipped" => 2,
        "delivered" => 3,
        _ => 0,
    }
}

/// Moves an order along the transition table (secret key only); an
/// illegal move answers 409 `invalid_order_transition`. Reaching
/// `checkout.capture_on` captures the order's authorization first (once,
/// whatever the concurrency); cancelling releases it. PATCHing the
/// current status again retries a capture that failed.
async fn update_order(
    State(state): State<AppState>,
    _: SecretKey,
    Path(id): Path<String>,
    Json(patch): Json<OrderPatch>,
) -> Result<Json<OrderOut>> {
    if !STATUSES.contains(&patch.status.as_str()) {
        return Err(Error::InvalidBody(format!(
            "status is one of {}",
            STATUSES.join(", ")
        )));
    }
    let (order, payment) = {
        let mut h = state.store().acquire().await?;
        let order = h
            .conn()
            .get_order(&id)
            .await?
            .ok_or(Error::NotFound(Resource::Order))?;
        let payment = h.conn().get_payment_for_order(&order.id).await?;
        (order, payment)
    };
    if order.status != patch.status && !can_transition(&order.status, &patch.status) {
        return Err(Error::rule_conflict(
            "invalid_order_transition",
            format!(
                "an order cannot go from {} to {}",
                order.status, patch.status
            ),
        ));
    }
    if let Some(p) = &payment {
        let stripe = state.stripe().client();
        if patch.status == "cancelled" {
            crate::ops::checkout::release(state.store(), stripe, p, "order_cancelled").await?;
        } else if rank(&patch.status) >= rank(state.capture_on())
            && p.ledger().state == crate::ledger::PaymentState::Authorized
        {
            crate::ops::checkout::capture(state.store(), stripe, p).await?;
        }
    }
    let mut tx = state.store().begin().await?;
    let mut conn = tx.conn();
    if order.status != patch.status
        && !conn
            .update_order_status(&order.id, &order.status, &patch.status, storage::now())
            .await?
    {
        let now_status = conn
            .get_order(&id)
            .await?
            .map(|o| o.status)
            .unwrap_or_default();
        if now_status != patch.status {
            return Err(Error::rule_conflict(
                "order_changed",
                "the order changed meanwhile; read it and try again",
            ));
        }
    }
    let order = conn
        .get_order(&id)
        .await?
        .ok_or(Error::NotFound(Resource::Order))?;
    let items = conn.list_line_items(&id).await?;
    tx.commit().await?;
    Ok(Json(order_out(order, items, payment.map(|p| p.id), None)?))
}
