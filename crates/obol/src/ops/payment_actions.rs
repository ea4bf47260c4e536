//! 3-D Secure action links: a member whose charge-run item ended
//! `requires_action` (the bank asks them to authenticate, even off
//! session) confirms that charge on obol's hosted page,
//! `/pay/actions/{token}`.
//!
//! - `mint`: the link of one item, in the transaction that queues its
//!   e-mail (`jobs::charge_run_notice`), so a link exists exactly when its
//!   e-mail does. A token of 32 random bytes, stored hashed, one per item,
//!   valid for a week and only while the item is `requires_action`.
//! - `get_public`: what the page shows. While the item waits, Stripe is
//!   asked for its PaymentIntent, so the page sees `succeeded` as soon as
//!   the member authenticated, without waiting for the webhook.
//! - `confirm`: confirms the item's own PaymentIntent on session, with a
//!   `return_url` back to the page, and answers the bank's page to open.
//!   Never a second intent: the charge run made the only one. Each
//!   confirmation sent has an idempotency key derived from the item and
//!   the link's count of confirmations, so concurrent clicks send one.
//!   An item already paid is refused (409 `payment_action_completed`)
//!   before Stripe is called.
//!
//! Public calls are charged to the link's own Stripe budget, one unit per
//! request. The item
//! moves to `succeeded` through the payment writer (the webhook, or this
//! module's reading of the intent), with its `charge_run_item.succeeded`
//! notification.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::checkout;
use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::{SecretToken, TokenHash};
use crate::ledger::charge_run::Outcome;
use crate::money::{Currency, Money};
use crate::payments::id_of;
use crate::storage::charge_runs::{ChargeRunRow, ItemRow};
use crate::storage::payment_actions::{NewPaymentActionLink, PaymentActionLinkRow};
use crate::storage::Conn;
use crate::stripe::{IdempotencyKey, Params, StripeApi, StripeError};

/// How long an e-mailed action link works: a week.
pub const LINK_TTL_SECONDS: i64 = 7 * 86_400;

/// Where the page lives, for a token.
pub fn page_url(ctx: &Ctx, token: &str) -> String {
    format!("{}/pay/actions/{token}", ctx.settings().public_base)
}

/// A link just minted: the url (only here; the token is stored hashed).
#[derive(Debug)]
pub struct Minted {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// Mints the link of `item` (a `requires_action` item with its
/// PaymentIntent) in the caller's transaction; `None` when the item has
/// one already (its e-mail was queued with it) or nothing to confirm.
pub async fn mint(
    ctx: &Ctx,
    conn: &mut Conn<'_>,
    item: &ItemRow,
    now: DateTime<Utc>,
) -> Result<Option<Minted>> {
    let Some(pi) = item.payment_intent_id.as_deref() else {
        return Ok(None);
    };
    if item.outcome != Outcome::RequiresAction {
        return Ok(None);
    }
    let token = SecretToken::generate("");
    let expires_at = now + Duration::seconds(LINK_TTL_SECONDS);
    let account = AccountId::from_db(item.account_id.clone());
    let inserted = conn
        .insert_payment_action_link(&NewPaymentActionLink {
            token_hash: token.hash().as_str(),
            account: &account,
            charge_run_item_id: &item.id,
            customer_id: &item.customer_id,
            payment_intent_id: pi,
            expires_at,
            now,
        })
        .await?;
    Ok(inserted.then(|| Minted {
        url: page_url(ctx, token.expose()),
        expires_at,
    }))
}

/// Where the payment stands, as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// The member has to confirm it (with their bank).
    RequiresAction,
    /// Confirmed; Stripe is still deciding.
    Processing,
    /// Paid. Nothing more is charged.
    Succeeded,
}

/// What the action page shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicPaymentActionOut {
    /// The business charging (`email.business_name`, as in the e-mail).
    pub business_name: String,
    /// Minor units of `currency`.
    pub amount: i64,
    #[schema(value_type = crate::money::Currency)]
    pub currency: String,
    /// `amount` as the page prints it: "50.00 EUR".
    pub amount_display: String,
    /// What the charge is for (the run's description, else its name).
    pub description: String,
    pub status: ActionStatus,
    pub expires_at: DateTime<Utc>,
}

/// The answer of `POST /v1/public/payment-actions/{token}/confirm`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentActionConfirmOut {
    pub status: ActionStatus,
    /// The bank's 3-D Secure page to open while `requires_action`; it
    /// returns to the action page.
    pub redirect_url: Option<String>,
}

/// What a token opens.
struct Opened {
    link: PaymentActionLinkRow,
    item: ItemRow,
    run: ChargeRunRow,
    actor: Actor,
}

/// The link a token opens: unknown, malformed or not matching its item
/// 404 (without saying which), expired 410.
async fn open(ctx: &Ctx, token: &str) -> Result<Opened> {
    let well_formed = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(Error::NotFound(Resource::PaymentAction));
    }
    let hash = TokenHash::of(token);
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let link = conn
        .get_payment_action_link(hash.as_str())
        .await?
        .ok_or(Error::NotFound(Resource::PaymentAction))?;
    // The stored hash was found by the hash of what was sent; compare
    // them again in constant time, like every other token obol checks.
    if !TokenHash::from_db(link.token_hash.clone()).ct_eq(&hash) {
        return Err(Error::NotFound(Resource::PaymentAction));
    }
    if link.expires_at <= ctx.now() {
        return Err(Error::rule(
            RuleCode::PaymentActionExpired,
            "this payment link has expired; nothing was charged through it",
        ));
    }
    let account = link.account();
    let item = conn
        .get_charge_run_item(&account, &link.charge_run_item_id)
        .await?
        .filter(|i| i.payment_intent_id.as_deref() == Some(link.payment_intent_id.as_str()))
        .ok_or(Error::NotFound(Resource::PaymentAction))?;
    let run = conn
        .get_charge_run(Some(&account), &item.run_id)
        .await?
        .ok_or(Error::NotFound(Resource::PaymentAction))?;
    let actor = Actor::Link {
        account,
        token: hash,
    };
    Ok(Opened {
        link,
        item,
        run,
        actor,
    })
}

fn closed() -> Error {
    Error::rule(
        RuleCode::PaymentActionClosed,
        "this payment can no longer be confirmed; nothing was charged through this link",
    )
}

fn completed() -> Error {
    Error::rule(
        RuleCode::PaymentActionCompleted,
        "this payment was made already; nothing more is charged",
    )
}

/// The item's PaymentIntent from Stripe; it must be the item's own (its
/// metadata names the item).
async fn intent_of(stripe: &dyn StripeApi, o: &Opened) -> Result<Value> {
    let intent: Value = stripe
        .get(
            &format!("/v1/payment_intents/{}", o.link.payment_intent_id),
            &Params::new(),
        )
        .await?;
    if intent["metadata"]["obol_charge_run_item_id"].as_str() != Some(o.item.id.as_str()) {
        return Err(Error::internal(format!(
            "payment intent {} is not the one of charge run item {}",
            o.link.payment_intent_id, o.item.id
        )));
    }
    Ok(intent)
}

/// Records what Stripe said about the intent (the payment writer moves
/// the item on when it succeeded); a failure here is the webhook's to
/// repair.
async fn observe(ctx: &Ctx, account: &AccountId, intent: &Value) {
    if let Err(e) = checkout::observe(ctx, account, intent, "payment action page").await {
        tracing::warn!(error = %e, "recording a payment action's intent failed; the webhook records it");
    }
}

/// Where the payment stands: the item's outcome, else its intent at Stripe.
async fn status_of(ctx: &Ctx, o: &Opened) -> Result<ActionStatus> {
    match o.item.outcome {
        Outcome::Succeeded => return Ok(ActionStatus::Succeeded),
        Outcome::RequiresAction => {}
        _ => return Err(closed()),
    }
    let intent = intent_of(&*ctx.stripe_for(&o.actor).await?, o).await?;
    match intent["status"].as_str() {
        Some("succeeded") => {
            observe(ctx, &o.link.account(), &intent).await;
            Ok(ActionStatus::Succeeded)
        }
        Some("processing") => Ok(ActionStatus::Processing),
        Some("canceled") => Err(closed()),
        _ => Ok(ActionStatus::RequiresAction),
    }
}

fn money(amount: i64, currency: &str) -> String {
    Currency::parse(currency)
        .ok()
        .and_then(|c| Money::balance(amount, c).ok())
        .map(|m| m.to_string())
        .unwrap_or_else(|| format!("{amount} {}", currency.to_ascii_uppercase()))
}

/// `GET /v1/public/payment-actions/{token}` and the page.
pub async fn get_public(ctx: &Ctx, token: &str) -> Result<PublicPaymentActionOut> {
    let o = open(ctx, token).await?;
    let status = status_of(ctx, &o).await?;
    Ok(PublicPaymentActionOut {
        business_name: ctx.settings().email_business_name.clone(),
        amount: o.item.amount,
        amount_display: money(o.item.amount, &o.run.currency),
        currency: o.run.currency.clone(),
        description: o
            .run
            .description
            .clone()
            .unwrap_or_else(|| o.run.name.clone()),
        status,
        expires_at: o.link.expires_at,
    })
}

/// The bank's page of an intent waiting for 3-D Secure with a return to
/// this link's page.
fn redirect_of(intent: &Value) -> Option<String> {
    let next = &intent["next_action"];
    (next["type"] == "redirect_to_url")
        .then(|| next["redirect_to_url"]["url"].as_str().map(str::to_string))
        .flatten()
}

/// `POST /v1/public/payment-actions/{token}/confirm`.
pub async fn confirm(ctx: &Ctx, token: &str) -> Result<PaymentActionConfirmOut> {
    let o = open(ctx, token).await?;
    match o.item.outcome {
        Outcome::Succeeded => return Err(completed()),
        Outcome::RequiresAction => {}
        _ => return Err(closed()),
    }
    let account = o.link.account();
    // One request of the link's Stripe budget, however many calls it takes.
    let stripe = ctx.stripe_for(&o.actor).await?;
    let intent = intent_of(&*stripe, &o).await?;
    match intent["status"].as_str() {
        Some("succeeded") => {
            observe(ctx, &account, &intent).await;
            return Err(completed());
        }
        Some("processing") => {
            return Ok(PaymentActionConfirmOut {
                status: ActionStatus::Processing,
                redirect_url: None,
            })
        }
        Some("canceled") => return Err(closed()),
        Some("requires_action") => {
            // Confirmed already (another click, another tab): the same
            // bank page again, nothing sent.
            if let Some(url) = redirect_of(&intent) {
                return Ok(PaymentActionConfirmOut {
                    status: ActionStatus::RequiresAction,
                    redirect_url: Some(url),
                });
            }
        }
        _ => {}
    }
    // The card the charge run tried (Stripe keeps it on a failed
    // attempt's error when it leaves the intent without one).
    let card = id_of(intent.get("payment_method"))
        .or_else(|| id_of(intent["last_payment_error"].get("payment_method")))
        .ok_or_else(closed)?;
    let attempt = o.link.confirm_attempts.to_string();
    let params = Params::new()
        .set("payment_method", &card)
        .set("return_url", page_url(ctx, token));
    let answer = stripe
        .post::<Value>(
            &format!("/v1/payment_intents/{}/confirm", o.link.payment_intent_id),
            &params,
            &IdempotencyKey::for_op("charge-run-item-action", &[&o.item.id, &attempt]),
        )
        .await;
    // A confirmation Stripe answered is counted, so the next one (after a
    // failed authentication) is a new request; one it may not have seen
    // is sent again with the same key.
    if !matches!(answer, Err(StripeError::Unavailable { .. })) {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .count_payment_action_confirm(&o.link.token_hash, o.link.confirm_attempts)
            .await?;
    }
    let intent = answer?;
    observe(ctx, &account, &intent).await;
    tracing::info!(item = %o.item.id, intent = %o.link.payment_intent_id, status = ?intent["status"].as_str(), "payment action confirmed on session");
    let status = match intent["status"].as_str() {
        Some("succeeded") => ActionStatus::Succeeded,
        Some("processing") => ActionStatus::Processing,
        _ => ActionStatus::RequiresAction,
    };
    Ok(PaymentActionConfirmOut {
        status,
        redirect_url: redirect_of(&intent),
    })
}
