//! Orders: what a customer or a guest buys. obol computes the total from
//! the line items and shipping; totals sent by clients are not read.
//!
//! Who may create an order: the secret key alone, because the client sends
//! the prices (see `create`). Who may see an order: the secret key, the owning customer's token, or
//! the order's guest token; anyone else gets 404. Status changes go
//! through the order writer (`crate::orders`), so every path writes the
//! timeline and the notification the same way.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::checkout;
use crate::address::{Address, AddressKind};
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::{CustomerId, SecretToken};
use crate::ledger::order::{OrderInput, OrderStatus};
use crate::ledger::PaymentState;
use crate::money::{Currency, Money};
use crate::orders::{self, Applied, OrderCause};
use crate::storage::orders::{LineItemRow, NewLineItem, OrderRow, OrderTimelineRow};
use crate::stripe::{Params, StripeError};
use crate::validate;

pub const GUEST_TOKEN_PREFIX: &str = "obol_gt_";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItemIn {
    pub name: String,
    /// Price of one, in minor units of the order's currency.
    pub unit_amount: i64,
    #[schema(minimum = 1)]
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingIn {
    pub name: String,
    /// Minor units.
    #[schema(minimum = 0)]
    pub amount: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderIn {
    /// The customer the order is for (absent: a guest order).
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    pub email: String,
    /// Required with `line_items`; with `items` it is the products' (and
    /// must be, when sent).
    #[schema(value_type = Option<Currency>)]
    pub currency: Option<String>,
    /// Priced line items (secret key only: the caller sets the prices).
    #[serde(default)]
    pub line_items: Vec<LineItemIn>,
    /// Free-form shipping, with `line_items` (secret key only).
    pub shipping: Option<ShippingIn>,
    /// A cart from the catalog, priced by obol now: the way a customer
    /// token (an agent) orders. Not with `line_items`.
    pub items: Option<Vec<super::catalog::CartItemIn>>,
    /// The catalog shipping method of a cart.
    #[schema(value_type = Option<crate::ids::ShippingMethodId>)]
    pub shipping_method_id: Option<String>,
    /// Known fields only, strings only, an ISO 3166-1 alpha-2 country
    /// (`crate::address`).
    pub shipping_address: Option<Address>,
    /// Like `shipping_address`, but any field but `country` may be left
    /// out; its `email` becomes the intent's `receipt_email`.
    pub billing_address: Option<Address>,
    /// Ignored: obol computes the total. Accepted so that shops sending it
    /// are not refused.
    #[schema(value_type = Option<Object>, deprecated)]
    pub total: Option<Value>,
    /// Pay-first: the `pi_…` authorized before the order. Its amount and
    /// currency must equal the order's total; the order is then confirmed.
    pub payment_reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPatch {
    /// The status to move to.
    #[schema(value_type = OrderStatus)]
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LineItemOut {
    pub name: String,
    /// Minor units.
    pub unit_amount: i64,
    #[schema(minimum = 1)]
    pub quantity: i32,
    /// `unit_amount × quantity`, minor units.
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderTimelineOut {
    pub at: DateTime<Utc>,
    /// Null on the first entry (the order's creation).
    #[schema(value_type = Option<OrderStatus>)]
    pub from: Option<String>,
    #[schema(value_type = OrderStatus)]
    pub to: String,
    pub cause: super::payments::Cause,
}

impl From<OrderTimelineRow> for OrderTimelineOut {
    fn from(r: OrderTimelineRow) -> Self {
        OrderTimelineOut {
            at: r.at,
            from: r.from_status,
            to: r.to_status,
            cause: super::payments::Cause {
                kind: r.cause_kind,
                reference: r.cause_ref,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderOut {
    #[schema(value_type = crate::ids::OrderId)]
    pub id: String,
    /// `ORD-YYYYMMDD-XXXXX`, for people.
    #[schema(pattern = "^ORD-[0-9]{8}-[2-9A-HJ-NP-Z]{5}$")]
    pub number: String,
    pub status: OrderStatus,
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    pub email: String,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub line_items: Vec<LineItemOut>,
    #[schema(value_type = Option<ShippingOut>)]
    pub shipping: Option<Value>,
    /// Sum of the line items.
    pub subtotal: Money,
    /// Subtotal plus shipping: what the customer pays.
    pub total: Money,
    #[schema(value_type = Option<Address>)]
    pub shipping_address: Option<Value>,
    #[schema(value_type = Option<Address>)]
    pub billing_address: Option<Value>,
    /// The pay-first `pi_…` the order was created with.
    pub payment_reference: Option<String>,
    /// The order's payment in obol's ledger, once there is one.
    #[schema(value_type = Option<crate::ids::PaymentId>)]
    pub payment_id: Option<String>,
    /// Present only in the response that creates a guest order: the
    /// guest's one credential for it (shown once, stored hashed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^obol_gt_")]
    pub guest_token: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every status change, oldest first (`GET /v1/orders/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<OrderTimelineOut>>,
}

/// An order's shipping line.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShippingOut {
    pub name: String,
    /// Minor units.
    #[schema(minimum = 0)]
    pub amount: i64,
}

fn money_of(amount: i64, currency: &str) -> Result<Money> {
    let c = Currency::parse(currency)?;
    Ok(Money::balance(amount, c)?)
}

pub(crate) fn order_out(
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
        timeline: None,
    })
}

/// `{prefix}-YYYYMMDD-XXXXX` (`ORD-…`, `INV-…`): the date and five
/// characters from an alphabet without look-alikes (no 0/O, 1/I).
pub(crate) fn human_number(prefix: &str, now: DateTime<Utc>) -> String {
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
    format!("{prefix}-{}-{suffix}", now.format("%Y%m%d"))
}

/// A checked address as the JSON text stored in the order row.
fn address(a: Option<Address>, kind: AddressKind) -> Result<Option<String>> {
    match a {
        None => Ok(None),
        Some(a) => serde_json::to_string(&a.validate(kind)?)
            .map(Some)
            .map_err(Error::internal),
    }
}

/// The order's customer as the secret key names it: any customer, or
/// none (a guest order).
fn order_customer(asked: Option<&str>) -> Result<Option<CustomerId>> {
    asked
        .map(|id| CustomerId::parse(id).map_err(|_| Error::NotFound(Resource::Customer)))
        .transpose()
}

/// Creates an order with the total computed by obol (secret key only).
/// With a `payment_reference` the order is created confirmed, its payment
/// recorded in the same transaction, and captured when `capture_on` is
/// `confirmed`.
///
/// Why the secret key alone: line items carry their own prices, and obol
/// has no catalog to check them against. A customer token that could
/// create orders could price its own (`unit_amount: 5`), pay that and have
/// it confirmed. Until a catalog exists the host's backend prices every
/// order; customers pay the orders it created (`POST /v1/payment-intents`
/// with `order_id`), or authorize first and let the backend create the
/// order of exactly that total.
pub async fn create(ctx: &Ctx, actor: &Actor, body: OrderIn) -> Result<OrderOut> {
    let cart = body.items.is_some() || body.shipping_method_id.is_some();
    if cart && (!body.line_items.is_empty() || body.shipping.is_some()) {
        return Err(Error::InvalidBody(
            "send either a cart (items, shipping_method_id) or priced line_items and shipping"
                .into(),
        ));
    }
    match actor {
        Actor::Secret { .. } => {}
        // A customer token (an agent) orders from the catalog only: obol
        // prices every line, so no caller but the backend sets a price.
        Actor::Customer { .. } if cart => {}
        Actor::Customer { .. } => return Err(Error::SecretKeyRequired),
        Actor::Guest { .. } | Actor::Link { .. } => return Err(Error::Unauthenticated),
    }
    let email = validate::email(&body.email)?;
    let asked_currency = body.currency.as_deref().map(Currency::parse).transpose()?;
    let priced = match &body.items {
        Some(items) => {
            let mut h = ctx.store().acquire().await?;
            Some(
                super::catalog::price_cart(
                    &mut h.conn(),
                    actor,
                    items,
                    body.shipping_method_id.as_deref(),
                    asked_currency,
                )
                .await?,
            )
        }
        None if cart => {
            return Err(Error::rule(
                RuleCode::InvalidLineItems,
                "a cart has 1 to 200 items",
            ))
        }
        None => None,
    };
    let currency = match (&priced, asked_currency) {
        (Some(p), _) => p.currency,
        (None, Some(c)) => c,
        (None, None) => return Err(Error::InvalidBody("currency is required".into())),
    };
    // (product, name, unit amount, quantity) of every line, priced by the
    // catalog for a cart, by the caller for line items.
    let lines: Vec<(Option<&str>, &str, i64, i64)> = match &priced {
        Some(p) => p
            .lines
            .iter()
            .map(|l| {
                (
                    Some(l.product_id.as_str()),
                    l.name.as_str(),
                    l.unit_amount,
                    l.quantity,
                )
            })
            .collect(),
        None => body
            .line_items
            .iter()
            .map(|l| (None, l.name.as_str(), l.unit_amount, l.quantity))
            .collect(),
    };
    if lines.is_empty() || lines.len() > 200 {
        return Err(Error::rule(
            RuleCode::InvalidLineItems,
            "an order has 1 to 200 line items",
        ));
    }
    let mut subtotal = Money::zero(currency);
    let mut items = Vec::with_capacity(lines.len());
    for (product_id, name, unit_amount, quantity) in lines {
        let name = validate::text("line_items.name", name, 255)?;
        let unit = Money::new(unit_amount, currency)?;
        if !(1..=10_000).contains(&quantity) {
            return Err(Error::rule(
                RuleCode::InvalidQuantity,
                "quantity must be between 1 and 10000",
            ));
        }
        let amount = unit_amount
            .checked_mul(quantity)
            .ok_or(crate::money::MoneyError::TooLarge)?;
        subtotal = subtotal.checked_add(Money::balance(amount, currency)?)?;
        items.push(NewLineItem {
            product_id,
            name,
            unit_amount: unit.minor(),
            quantity: i32::try_from(quantity).unwrap_or(i32::MAX),
            amount,
        });
    }
    let shipping_in = match &priced {
        Some(p) => p.shipping.clone(),
        None => body.shipping.as_ref().map(|s| (s.name.clone(), s.amount)),
    };
    let (shipping_name, shipping_amount) = match &shipping_in {
        Some((name, amount)) => {
            if *amount < 0 {
                return Err(Error::rule(
                    RuleCode::AmountNegative,
                    "shipping.amount must not be negative",
                ));
            }
            if *amount > 0 {
                Money::new(*amount, currency)?;
            }
            (
                Some(validate::text("shipping.name", name, 255)?.to_string()),
                *amount,
            )
        }
        None => (None, 0),
    };
    let total = subtotal.checked_add(Money::balance(shipping_amount, currency)?)?;
    // The total must be chargeable: positive, at most 8 digits, a multiple
    // of 10 in three-decimal currencies, and at least Stripe's minimum
    // charge (else every intent for the order would be refused).
    let total = Money::new(total.minor(), currency)?.ensure_minimum_charge()?;

    let customer_id = match actor {
        // A customer orders for itself; another customer's id is unknown.
        Actor::Customer { customer, .. } => match body.customer_id.as_deref() {
            Some(id) if id != customer.as_str() => return Err(Error::NotFound(Resource::Customer)),
            _ => Some(customer.clone()),
        },
        _ => order_customer(body.customer_id.as_deref())?,
    };
    // Pay-first: Stripe must hold an authorization of exactly this total.
    let intent = match &body.payment_reference {
        Some(pi) => Some(verify_reference(ctx, actor, pi, total, customer_id.as_ref()).await?),
        None => None,
    };
    let guest = customer_id
        .is_none()
        .then(|| SecretToken::generate(GUEST_TOKEN_PREFIX));
    let shipping_address = address(body.shipping_address, AddressKind::Shipping)?;
    let billing_address = address(body.billing_address, AddressKind::Billing)?;
    let account = actor.account();

    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    if let Some(id) = &customer_id {
        conn.get_customer(account, id)
            .await?
            .ok_or(Error::NotFound(Resource::Customer))?;
    }
    let now = ctx.now();
    let id = String::from(crate::ids::OrderId::generate());
    let status = if intent.is_some() {
        OrderStatus::Confirmed
    } else {
        OrderStatus::Pending
    };
    let mut row = None;
    for _ in 0..5 {
        let candidate = OrderRow {
            id: id.clone(),
            number: human_number("ORD", now),
            account_id: account.as_str().to_string(),
            customer_id: customer_id.as_ref().map(|c| c.as_str().to_string()),
            guest_token_hash: guest.as_ref().map(|g| g.hash().as_str().to_string()),
            email: email.clone(),
            currency: currency.as_str().to_string(),
            subtotal: subtotal.minor(),
            shipping_name: shipping_name.clone(),
            shipping_amount,
            total: total.minor(),
            status,
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
    conn.insert_line_items(account, &row.id, &items).await?;
    let cause = OrderCause {
        kind: "api",
        reference: Some("POST /v1/orders"),
    };
    orders::record_created(&mut conn, &row, cause, now).await?;
    // The order, its payment (authorized) and the timeline entries commit together.
    let payment = match &intent {
        Some(intent) => {
            let payment =
                checkout::record_intent(&mut conn, account, intent, "POST /v1/orders").await?;
            conn.set_payment_order(&payment.id, &row.id, now).await?;
            Some(payment)
        }
        None => None,
    };
    let stored_items = conn.list_line_items(account, &row.id).await?;
    tx.commit().await?;
    tracing::info!(order = %row.id, number = %row.number, total = row.total, "order created");
    if let Some(p) = &payment {
        if status.has_reached(ctx.settings().capture_on) {
            // The order exists and is confirmed whatever Stripe answers; a
            // failed capture is logged and retried by PATCHing the status again.
            if let Err(e) = checkout::capture(ctx, p).await {
                tracing::error!(order = %row.id, error = %e, "capture on confirmation failed");
            }
        }
    }
    order_out(
        row,
        stored_items,
        payment.map(|p| p.id),
        guest.map(|g| g.expose().to_string()),
    )
}

/// Checks with Stripe that `pi` is authorized (or captured) for exactly
/// `total`; nothing is written if not.
async fn verify_reference(
    ctx: &Ctx,
    actor: &Actor,
    pi: &str,
    total: Money,
    customer: Option<&CustomerId>,
) -> Result<Value> {
    if !pi.starts_with("pi_") || pi.len() > 255 || pi.contains('/') {
        return Err(Error::rule(
            RuleCode::InvalidPaymentReference,
            "payment_reference is a pi_… id",
        ));
    }
    // Unknown and someone else's answer alike (status, code and message),
    // so a caller cannot probe which `pi_…` ids exist or whose they are.
    let unknown = || {
        Error::rule(
            RuleCode::InvalidPaymentReference,
            "payment_reference names no payment intent of this customer",
        )
    };
    let intent: Value = ctx
        .stripe_of(actor.account())
        .await?
        .get(&format!("/v1/payment_intents/{pi}"), &Params::new())
        .await
        .map_err(|e| match e {
            StripeError::Refused { status: 404, .. } => unknown(),
            other => other.into(),
        })?;
    // An intent authorized for one customer cannot pay another's order.
    if let Some(owner) = intent["metadata"]["obol_customer_id"].as_str() {
        if customer.map(CustomerId::as_str) != Some(owner) {
            return Err(unknown());
        }
    }
    let status = intent["status"].as_str().unwrap_or_default();
    if status != "requires_capture" && status != "succeeded" {
        return Err(Error::rule(
            RuleCode::PaymentNotAuthorized,
            format!("the payment intent is {status}, not authorized"),
        ));
    }
    let amount = intent["amount"].as_i64().unwrap_or(-1);
    let currency = intent["currency"].as_str().unwrap_or_default();
    if amount != total.minor() || currency != total.currency().as_str() {
        tracing::warn!(%pi, amount, currency, expected = total.minor(), "pay-first amount mismatch; order refused");
        return Err(Error::rule(
            RuleCode::AmountMismatch,
            format!(
                "the payment is {amount} {currency} but the order totals {} {}",
                total.minor(),
                total.currency().as_str()
            ),
        ));
    }
    Ok(intent)
}

/// Loads an order the actor may see; someone else's answers 404.
pub(crate) async fn load_owned(ctx: &Ctx, actor: &Actor, id: &str) -> Result<OrderRow> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::OrderId::parse(id).map_err(|_| Error::NotFound(Resource::Order))?;
    let id = id.as_str();
    let mut h = ctx.store().acquire().await?;
    let order = h
        .conn()
        .get_order(actor.account(), id)
        .await?
        .ok_or(Error::NotFound(Resource::Order))?;
    if actor.may_access_guarded(
        order.customer_id.as_deref(),
        order.guest_token_hash.as_deref(),
    ) {
        Ok(order)
    } else {
        Err(Error::NotFound(Resource::Order))
    }
}

/// One order with its line items, payment and timeline.
pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<OrderOut> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::OrderId::parse(id).map_err(|_| Error::NotFound(Resource::Order))?;
    let id = id.as_str();
    let order = load_owned(ctx, actor, id).await?;
    let mut h = ctx.store().acquire().await?;
    let account = actor.account();
    let items = h.conn().list_line_items(account, &order.id).await?;
    let payment = h.conn().get_payment_for_order(account, &order.id).await?;
    let timeline = h.conn().list_order_timeline(account, &order.id).await?;
    let mut out = order_out(order, items, payment.map(|p| p.id), None)?;
    out.timeline = Some(timeline.into_iter().map(OrderTimelineOut::from).collect());
    Ok(out)
}

/// Moves an order along the transition table (secret key only); an
/// illegal move is 409 `invalid_order_transition`. Reaching
/// `checkout.capture_on` captures the order's authorization first (once,
/// whatever the concurrency); cancelling releases it. PATCHing the
/// current status again retries a capture that failed.
pub async fn update_status(
    ctx: &Ctx,
    actor: &Actor,
    id: &str,
    patch: OrderPatch,
) -> Result<OrderOut> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = crate::ids::OrderId::parse(id).map_err(|_| Error::NotFound(Resource::Order))?;
    let id = id.as_str();
    actor.require_secret()?;
    let target = OrderStatus::parse(&patch.status).ok_or_else(|| {
        Error::InvalidBody(format!(
            "status is one of {}",
            OrderStatus::ALL.map(OrderStatus::as_str).join(", ")
        ))
    })?;
    let (order, payment) = {
        let order = load_owned(ctx, actor, id).await?;
        let mut h = ctx.store().acquire().await?;
        let payment = h
            .conn()
            .get_payment_for_order(actor.account(), &order.id)
            .await?;
        (order, payment)
    };
    let current = order.status;
    // Refuse an illegal move before Stripe is asked to capture or release.
    if let Err(illegal) = crate::ledger::order::transition(current, OrderInput::Set(target)) {
        return Err(invalid_transition(illegal));
    }
    if let Some(p) = &payment {
        if target == OrderStatus::Cancelled {
            checkout::release(ctx, p, "order_cancelled").await?;
        } else if target.has_reached(ctx.settings().capture_on)
            && p.ledger().state == PaymentState::Authorized
        {
            checkout::capture(ctx, p).await?;
        }
    }
    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    let cause = OrderCause {
        kind: "api",
        reference: Some("PATCH /v1/orders/{id}"),
    };
    let now = ctx.now();
    let order = match orders::apply(
        &mut conn,
        actor.account(),
        &order.id,
        OrderInput::Set(target),
        cause,
        now,
    )
    .await?
    {
        Ok(Applied::Moved(o) | Applied::Unchanged(o)) => o,
        // Moved meanwhile (a concurrent PATCH, the payment's webhook) to a
        // status from which this move is no longer allowed.
        Err(_) => {
            return Err(Error::rule(
                RuleCode::OrderChanged,
                "the order changed meanwhile; read it and try again",
            ))
        }
    };
    let items = conn.list_line_items(actor.account(), &order.id).await?;
    tx.commit().await?;
    order_out(order, items, payment.map(|p| p.id), None)
}

fn invalid_transition(illegal: crate::ledger::order::IllegalMove) -> Error {
    Error::rule(
        RuleCode::InvalidOrderTransition,
        format!(
            "an order cannot go from {} to {}",
            illegal.from.as_str(),
            illegal.to.as_str()
        ),
    )
}

/// A timeline entry that moves nothing (the status stays): something a
/// person looking at the order must see, such as a payment refused for
/// not matching the total.
pub(crate) async fn record_note(
    conn: &mut crate::storage::Conn<'_>,
    order: &OrderRow,
    kind: &str,
    note: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.insert_order_timeline_entry(&crate::storage::orders::NewOrderTimelineEntry {
        account_id: &order.account_id,
        order_id: &order.id,
        from: Some(order.status.as_str()),
        to: order.status.as_str(),
        at: now,
        cause_kind: kind,
        cause_ref: Some(note),
    })
    .await
}

/// A payment link's checkout, in one transaction: the payment is the
/// order's, the order moves pending → confirmed (timeline, notification)
/// and the link is completed. The link must be `completing` (claimed).
pub(crate) async fn confirm_for_link(
    ctx: &Ctx,
    account: &crate::context::AccountId,
    order_id: &str,
    payment_id: &str,
    link_id: &str,
) -> Result<OrderRow> {
    let now = ctx.now();
    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    conn.set_payment_order(payment_id, order_id, now).await?;
    let applied = orders::apply(
        &mut conn,
        account,
        order_id,
        OrderInput::Paid,
        OrderCause {
            kind: "api",
            reference: Some("POST /v1/payment-links/complete"),
        },
        now,
    )
    .await?;
    let order = match applied {
        Ok(Applied::Moved(o) | Applied::Unchanged(o)) => o,
        Err(illegal) => {
            return Err(Error::rule(
                RuleCode::OrderNotPayable,
                format!("the order is {}, not pending", illegal.from.as_str()),
            ))
        }
    };
    if !conn
        .move_payment_link(link_id, "completing", "completed", now)
        .await?
    {
        return Err(Error::internal("a claimed payment link was not completing"));
    }
    tx.commit().await?;
    Ok(order)
}

/// The order's total priced now: catalog lines at their product's current
/// price (`None` when a product is gone or off sale), free-form lines and
/// shipping as stored. What a payment link's completion compares the
/// authorization with.
pub(crate) async fn current_total(
    conn: &mut crate::storage::Conn<'_>,
    order: &OrderRow,
) -> Result<Option<i64>> {
    let account = crate::context::AccountId::from_db(order.account_id.clone());
    let mut total = order.shipping_amount;
    for line in conn.list_line_items(&account, &order.id).await? {
        let amount = match &line.product_id {
            None => line.amount,
            Some(pid) => match conn.get_product(&account, pid).await? {
                Some(p) if p.active && p.currency == order.currency => {
                    match p.unit_amount.checked_mul(i64::from(line.quantity)) {
                        Some(a) => a,
                        None => return Ok(None),
                    }
                }
                _ => return Ok(None),
            },
        };
        total = match total.checked_add(amount) {
            Some(t) => t,
            None => return Ok(None),
        };
    }
    Ok(Some(total))
}
