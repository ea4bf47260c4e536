//! Payment links: what an agent hands a customer in a chat. The link's
//! token (32 random bytes, base64url, stored hashed) is the capability to
//! pay one order on obol's hosted page; obol keeps the price.
//!
//! A link is `pending` until its completion claims it (`completing`, one
//! caller among any number of concurrent ones), then `completed`, or
//! `canceled` when the order's total no longer equals what the card
//! authorized. A completion that fails for a reason the customer can fix
//! (the card not yet authorized) puts it back to `pending`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::catalog::CartItemIn;
use super::checkout::{self, Capture};
use super::orders::{self, OrderIn};
use crate::address::Address;
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::{PaymentLinkId, SecretToken, TokenHash};
use crate::ledger::order::OrderStatus;
use crate::money::Currency;
use crate::storage::catalog::PaymentLinkRow;
use crate::stripe::Params;

/// A link's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    Pending,
    Completing,
    Completed,
    Canceled,
}

impl LinkStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Pending => "pending",
            LinkStatus::Completing => "completing",
            LinkStatus::Completed => "completed",
            LinkStatus::Canceled => "canceled",
        }
    }
}

/// Body of `POST /v1/payment-links`: an existing order, or a cart from
/// which obol creates the pending order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentLinkIn {
    /// An existing pending order (then no cart fields).
    #[schema(value_type = Option<crate::ids::OrderId>)]
    pub order_id: Option<String>,
    /// A cart: catalog products and quantities, priced by obol.
    pub items: Option<Vec<CartItemIn>>,
    #[schema(value_type = Option<crate::ids::ShippingMethodId>)]
    pub shipping_method_id: Option<String>,
    pub shipping_address: Option<Address>,
    pub billing_address: Option<Address>,
    /// The customer's e-mail (required with a cart).
    pub email: Option<String>,
    /// The customer the order is for (a customer token: itself).
    #[schema(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
}

/// A new link. `token` is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentLinkOut {
    #[schema(value_type = crate::ids::PaymentLinkId)]
    pub id: String,
    /// The hosted payment page to hand the customer.
    pub payment_url: String,
    /// The link's capability token (43 characters, base64url).
    #[schema(pattern = "^[A-Za-z0-9_-]{43}$")]
    pub token: String,
    /// Stripe's `pi_…` the page confirms.
    pub payment_intent_id: String,
    #[schema(value_type = crate::ids::OrderId)]
    pub order_id: String,
    pub status: LinkStatus,
    pub expires_at: DateTime<Utc>,
}

/// What the payment page needs, and nothing more (no addresses).
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicLinkOut {
    /// What Stripe.js confirms the payment with.
    pub client_secret: Option<String>,
    pub publishable_key: String,
    /// Minor units.
    pub amount: i64,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub email: String,
    pub status: LinkStatus,
    pub expires_at: DateTime<Utc>,
}

/// Body of `POST /v1/payment-links/{token}/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteIn {
    /// The `pi_…` the page confirmed.
    pub payment_intent_id: String,
}

/// A completed link.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletedOut {
    pub status: LinkStatus,
    #[schema(value_type = crate::ids::OrderId)]
    pub order_id: String,
    /// `ORD-…`, to show the customer.
    pub order_number: String,
    pub order_status: OrderStatus,
    #[schema(value_type = crate::ids::PaymentId)]
    pub payment_id: String,
}

pub async fn create(ctx: &Ctx, actor: &Actor, body: PaymentLinkIn) -> Result<PaymentLinkOut> {
    if !matches!(actor, Actor::Secret { .. } | Actor::Customer { .. }) {
        return Err(Error::Unauthenticated);
    }
    let order_id = match &body.order_id {
        Some(id) => {
            if body.items.is_some() || body.shipping_method_id.is_some() {
                return Err(Error::InvalidBody(
                    "send either order_id or a cart (items, shipping_method_id, …)".into(),
                ));
            }
            id.clone()
        }
        None => {
            let Some(items) = body.items else {
                return Err(Error::InvalidBody(
                    "send order_id, or a cart with items".into(),
                ));
            };
            let Some(email) = body.email else {
                return Err(Error::InvalidBody("email is required with a cart".into()));
            };
            let order = orders::create(
                ctx,
                actor,
                OrderIn {
                    customer_id: body.customer_id,
                    email,
                    currency: None,
                    line_items: Vec::new(),
                    shipping: None,
                    items: Some(items),
                    shipping_method_id: body.shipping_method_id,
                    shipping_address: body.shipping_address,
                    billing_address: body.billing_address,
                    total: None,
                    payment_reference: None,
                },
            )
            .await?;
            order.id
        }
    };
    let intent = checkout::pay_order(ctx, actor, &order_id, Capture::ManualForLink)
        .await?
        .intent;
    let token = SecretToken::generate("");
    let now = ctx.now();
    let ttl = i64::try_from(ctx.settings().payment_link_ttl).unwrap_or(1800);
    let row = PaymentLinkRow {
        id: PaymentLinkId::generate().into(),
        account_id: actor.account().as_str().to_string(),
        token_hash: token.hash().as_str().to_string(),
        order_id: order_id.clone(),
        payment_id: intent.payment_id.clone(),
        stripe_payment_intent_id: intent.id.clone(),
        status: LinkStatus::Pending.as_str().to_string(),
        expires_at: now + Duration::seconds(ttl),
        created_at: now,
        updated_at: now,
        completed_at: None,
    };
    let row = {
        let mut h = ctx.store().acquire().await?;
        h.conn().insert_payment_link(&row).await?
    };
    tracing::info!(link = %row.id, order = %order_id, intent = %intent.id, "payment link created");
    Ok(PaymentLinkOut {
        id: row.id,
        payment_url: format!("{}/pay/{}", ctx.settings().public_base, token.expose()),
        token: token.expose().to_string(),
        payment_intent_id: intent.id,
        order_id,
        status: LinkStatus::Pending,
        expires_at: row.expires_at,
    })
}

fn status_of(row: &PaymentLinkRow) -> LinkStatus {
    match row.status.as_str() {
        "completing" => LinkStatus::Completing,
        "completed" => LinkStatus::Completed,
        "canceled" => LinkStatus::Canceled,
        _ => LinkStatus::Pending,
    }
}

/// The link a token opens, if it can still be paid: unknown 404, expired
/// or used 410. A token that is not 43 base64url characters is unknown
/// without a lookup.
async fn open_link(ctx: &Ctx, token: &str) -> Result<PaymentLinkRow> {
    let well_formed = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(Error::NotFound(Resource::PaymentLink));
    }
    let row = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_payment_link_by_token(TokenHash::of(token).as_str())
            .await?
            .ok_or(Error::NotFound(Resource::PaymentLink))?
    };
    match status_of(&row) {
        LinkStatus::Completed | LinkStatus::Canceled => Err(Error::rule(
            RuleCode::PaymentLinkUsed,
            "this payment link was already used",
        )),
        _ if row.expires_at <= ctx.now() => Err(Error::rule(
            RuleCode::PaymentLinkExpired,
            "this payment link has expired; ask for a new one",
        )),
        _ => Ok(row),
    }
}

/// The actor a link's holder acts as: its Stripe calls are budgeted per link.
fn link_actor(row: &PaymentLinkRow) -> Actor {
    Actor::Link {
        account: crate::context::AccountId::from_db(row.account_id.clone()),
        token: TokenHash::from_db(row.token_hash.clone()),
    }
}

/// `GET /v1/payment-links/{token}`: what the page needs to take the card.
pub async fn get_public(ctx: &Ctx, token: &str) -> Result<PublicLinkOut> {
    let row = open_link(ctx, token).await?;
    let actor = link_actor(&row);
    let intent: Value = ctx
        .stripe_for(&actor)
        .await?
        .get(
            &format!("/v1/payment_intents/{}", row.stripe_payment_intent_id),
            &Params::new(),
        )
        .await?;
    let order = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_order(actor.account(), &row.order_id)
            .await?
            .ok_or(Error::NotFound(Resource::PaymentLink))?
    };
    Ok(PublicLinkOut {
        client_secret: intent["client_secret"].as_str().map(str::to_string),
        publishable_key: ctx.stripe_info().publishable_key.clone(),
        amount: intent["amount"].as_i64().unwrap_or(order.total),
        currency: order.currency,
        email: order.email,
        status: status_of(&row),
        expires_at: row.expires_at,
    })
}

/// `POST /v1/payment-links/{token}/complete`: after the page confirmed the
/// intent. Claims the link (exactly one of concurrent calls proceeds),
/// checks with Stripe that the card is authorized for exactly the order's
/// total, confirms the order and captures per `capture_on`.
pub async fn complete(ctx: &Ctx, token: &str, body: CompleteIn) -> Result<CompletedOut> {
    let row = open_link(ctx, token).await?;
    if body.payment_intent_id != row.stripe_payment_intent_id {
        return Err(Error::rule(
            RuleCode::PaymentIntentMismatch,
            "payment_intent_id is not this link's payment",
        ));
    }
    let claimed = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .move_payment_link(&row.id, "pending", "completing", ctx.now())
            .await?
    };
    if !claimed {
        return Err(Error::rule(
            RuleCode::PaymentLinkBusy,
            "this payment link is being completed by another request",
        ));
    }
    match finish(ctx, &row).await {
        Ok(done) => Ok(done),
        Err((back_to, e)) => {
            let mut h = ctx.store().acquire().await?;
            h.conn()
                .move_payment_link(&row.id, "completing", back_to.as_str(), ctx.now())
                .await?;
            Err(e)
        }
    }
}

/// The claimed link's checkout. An error says which status the link goes
/// back to: `pending` (the customer may try again) or `canceled`.
async fn finish(
    ctx: &Ctx,
    row: &PaymentLinkRow,
) -> std::result::Result<CompletedOut, (LinkStatus, Error)> {
    let retry = |e: Error| (LinkStatus::Pending, e);
    let actor = link_actor(row);
    let account = actor.account().clone();
    let intent: Value = ctx
        .stripe_for(&actor)
        .await
        .map_err(retry)?
        .get(
            &format!("/v1/payment_intents/{}", row.stripe_payment_intent_id),
            &Params::new(),
        )
        .await
        .map_err(|e| retry(e.into()))?;
    let stripe_status = intent["status"].as_str().unwrap_or_default();
    if stripe_status != "requires_capture" && stripe_status != "succeeded" {
        return Err(retry(Error::rule(
            RuleCode::PaymentNotAuthorized,
            format!("the payment is {stripe_status}, not authorized yet"),
        )));
    }
    let payment = checkout::observe(ctx, &account, &intent, "POST /v1/payment-links/complete")
        .await
        .map_err(retry)?;
    let order = {
        let mut h = ctx.store().acquire().await.map_err(retry)?;
        h.conn()
            .get_order(&account, &row.order_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| retry(Error::internal("a payment link's order vanished")))?
    };
    let amount = intent["amount"].as_i64().unwrap_or(-1);
    let currency = intent["currency"].as_str().unwrap_or_default();
    // The link reused the order's automatic-capture intent (made earlier by
    // `POST /v1/payment-intents`), it succeeded, and its webhook confirmed
    // the order before this call: paid by this very payment, done.
    let paid_by_this = payment.ledger().state.is_captured()
        && payment.order_id.as_deref() == Some(order.id.as_str())
        && !matches!(order.status, OrderStatus::Pending | OrderStatus::Cancelled);
    if paid_by_this {
        let mut h = ctx.store().acquire().await.map_err(retry)?;
        h.conn()
            .move_payment_link(&row.id, "completing", "completed", ctx.now())
            .await
            .map_err(retry)?;
        return Ok(CompletedOut {
            status: LinkStatus::Completed,
            order_id: order.id,
            order_number: order.number,
            order_status: order.status,
            payment_id: payment.id,
        });
    }
    if order.status != OrderStatus::Pending {
        // Paid another way meanwhile (or cancelled): this authorization
        // must not be charged too.
        if let Err(e) = checkout::release(ctx, &payment, "order_not_payable").await {
            tracing::error!(link = %row.id, error = %e, "releasing a second authorization failed; the release job retries");
        }
        return Err((
            LinkStatus::Canceled,
            Error::rule(
                RuleCode::OrderNotPayable,
                format!("the order is {}, not pending", order.status.as_str()),
            ),
        ));
    }
    // Priced again now: a catalog price changed since the link was made
    // must not be charged at the old price, nor the order confirmed at it.
    let now_total = {
        let mut h = ctx.store().acquire().await.map_err(retry)?;
        orders::current_total(&mut h.conn(), &order)
            .await
            .map_err(retry)?
    };
    if Some(amount) != now_total || amount != order.total || currency != order.currency {
        tracing::warn!(link = %row.id, order = %order.id, amount, expected = order.total, "payment link amount mismatch; authorization released");
        let now_total = now_total.map_or("no longer priceable".to_string(), |t| t.to_string());
        let mismatch = format!(
            "amount_mismatch: authorized {amount} {currency}, the order prices at {now_total} {} now",
            order.currency
        );
        {
            let mut tx = ctx.store().begin().await.map_err(retry)?;
            let mut conn = tx.conn();
            orders::record_note(&mut conn, &order, "api", &mismatch, ctx.now())
                .await
                .map_err(retry)?;
            tx.commit().await.map_err(retry)?;
        }
        if let Err(e) = checkout::release(ctx, &payment, "amount_mismatch").await {
            tracing::error!(link = %row.id, error = %e, "releasing a mismatched authorization failed; the release job retries");
        }
        return Err((
            LinkStatus::Canceled,
            Error::rule(
                RuleCode::AmountMismatch,
                format!(
                    "the card was authorized for {amount} {currency} but the order prices at {now_total} {} now; nothing was charged",
                    order.currency
                ),
            ),
        ));
    }
    let order = orders::confirm_for_link(ctx, &account, &order.id, &payment.id, &row.id)
        .await
        .map_err(retry)?;
    if order.status.has_reached(ctx.settings().capture_on) {
        // The order is confirmed whatever Stripe answers; a failed capture
        // is logged and retried by moving the order on.
        if let Err(e) = checkout::capture(ctx, &payment).await {
            tracing::error!(order = %order.id, error = %e, "capture on link completion failed");
        }
    }
    Ok(CompletedOut {
        status: LinkStatus::Completed,
        order_id: order.id,
        order_number: order.number,
        order_status: order.status,
        payment_id: payment.id,
    })
}

/// What the payment page renders: the public view of the link and which
/// Stripe the browser talks to.
#[derive(Debug)]
pub struct PageView {
    pub link: PublicLinkOut,
    pub stripe_mode: crate::config::StripeMode,
    /// Where the browser's Stripe.js talks to: the sandbox's address in
    /// sandbox mode.
    pub stripe_api_base: String,
}

/// `GET /pay/{token}`: the link for its page.
pub async fn page_view(ctx: &Ctx, token: &str) -> Result<PageView> {
    let link = get_public(ctx, token).await?;
    let info = ctx.stripe_info();
    Ok(PageView {
        link,
        stripe_mode: info.mode,
        stripe_api_base: info.api_base.clone(),
    })
}
