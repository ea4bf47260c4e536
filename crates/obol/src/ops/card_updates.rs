//! Card-update links: a member saves a new card for future payments on a
//! hosted page (`/pay/cards/{token}`), and it becomes their default.
//!
//! - `create_card_update_link` (secret key or the customer's own token)
//!   makes sure the customer has a Stripe customer and mints a link: a
//!   token of 32 random bytes, stored hashed, valid until it expires
//!   (default 7 days); it may save a card any number of times until then.
//! - `setup_intent`: the SetupIntent the page confirms with Stripe.js
//!   (`usage=off_session`, the customer, cards only,
//!   `metadata[obol_customer_id]`). A link keeps one live SetupIntent and
//!   answers it again while Stripe can still confirm it; a new one is keyed
//!   by the one it replaces, so concurrent page loads get the same one.
//! - `complete`: after the page confirmed it, obol reads the SetupIntent
//!   from Stripe (it must have succeeded, for this customer), sets its
//!   card as the customer's default at Stripe
//!   (`invoice_settings[default_payment_method]`) and records it at once;
//!   the events that follow agree (`ledger::payment_method`).
//!
//! Public calls are charged to the link's own Stripe budget.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::customers::ensure_stripe_customer;
use super::payment_methods::{card_of, cards_of, CardOut};
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::{CustomerId, SecretToken, TokenHash};
use crate::ledger::payment_method::{CardSeen, DefaultSource};
use crate::payments::id_of;
use crate::saved_cards;
use crate::storage::customers::CustomerRow;
use crate::storage::payment_methods::CardUpdateLinkRow;
use crate::stripe::{IdempotencyKey, Params};

/// How long a link lives unless the caller says: 7 days.
pub const DEFAULT_TTL_SECONDS: u64 = 7 * 86_400;
/// The shortest and longest lifetimes a caller may ask for (5 min, 30 days).
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 300..=2_592_000;

/// Body of `POST /v1/customers/{id}/card-update-links`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardUpdateLinkIn {
    /// Lifetime in seconds, 300–2592000; default 604800 (7 days).
    pub ttl_seconds: Option<u64>,
}

/// A new card-update link.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardUpdateLinkOut {
    /// The hosted page to send the member: `{public_url}/pay/cards/{token}`.
    /// Only in this answer (the token is stored hashed).
    pub url: String,
    pub expires_at: DateTime<Utc>,
    /// Stripe's `cus_…` the card is saved to.
    pub stripe_customer_id: String,
}

/// What the page confirms with Stripe.js.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardSetupIntentOut {
    /// Stripe's `seti_…`.
    pub id: String,
    pub client_secret: String,
    pub publishable_key: String,
}

/// Body of `POST /v1/public/card-updates/{token}/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardUpdateCompleteIn {
    /// The SetupIntent the page confirmed (`seti_…`).
    pub setup_intent_id: String,
}

/// The card saved, now the member's default.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardUpdateCompleteOut {
    pub payment_method: CardOut,
}

/// What the hosted page shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicCardUpdateOut {
    /// The business asking (`invoices.business_name`, else the Stripe
    /// account's name).
    pub business_name: Option<String>,
    /// The card obol charges now, if any.
    pub default_card: Option<CardOut>,
    pub expires_at: DateTime<Utc>,
}

/// A link for the member `customer_id` to save a card (secret key, or
/// that customer's own token). Creates the customer's Stripe customer if
/// it has none.
pub async fn create_card_update_link(
    ctx: &Ctx,
    actor: &Actor,
    customer_id: &str,
    ttl_seconds: Option<u64>,
) -> Result<CardUpdateLinkOut> {
    let id = CustomerId::parse(customer_id).map_err(|_| Error::NotFound(Resource::Customer))?;
    if !actor.may_access_customer_object(Some(&id)) {
        return Err(Error::NotFound(Resource::Customer));
    }
    let ttl = ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !TTL_RANGE.contains(&ttl) {
        return Err(Error::rule(
            RuleCode::TtlOutOfRange,
            format!(
                "ttl_seconds must be between {} and {}",
                TTL_RANGE.start(),
                TTL_RANGE.end()
            ),
        ));
    }
    let account = actor.account();
    let customer = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_customer(account, &id)
            .await?
            .ok_or(Error::NotFound(Resource::Customer))?
    };
    if customer.stripe_customer_id.is_none() {
        // Charged to a customer token's budget; free for the secret key.
        ctx.stripe_for(actor).await?;
    }
    let stripe_customer_id = ensure_stripe_customer(ctx, account, id.as_str()).await?;
    let now = ctx.now();
    let expires_at = now + Duration::seconds(i64::try_from(ttl).map_err(Error::internal)?);
    let token = SecretToken::generate("");
    {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .insert_card_update_link(token.hash().as_str(), account, id.as_str(), expires_at, now)
            .await?;
    }
    tracing::info!(customer_id = %id, %expires_at, "card-update link created");
    Ok(CardUpdateLinkOut {
        url: format!(
            "{}/pay/cards/{}",
            ctx.settings().public_base,
            token.expose()
        ),
        expires_at,
        stripe_customer_id,
    })
}

/// The link a token opens: unknown or malformed 404 (without saying
/// which), expired 410.
async fn open(ctx: &Ctx, token: &str) -> Result<(CardUpdateLinkRow, CustomerRow, Actor)> {
    let well_formed = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(Error::NotFound(Resource::CardUpdateLink));
    }
    let hash = TokenHash::of(token);
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let link = conn
        .get_card_update_link(hash.as_str())
        .await?
        .ok_or(Error::NotFound(Resource::CardUpdateLink))?;
    if link.expires_at <= ctx.now() {
        return Err(Error::rule(
            RuleCode::CardUpdateLinkExpired,
            "this card-update link has expired; ask for a new one",
        ));
    }
    let account = link.account();
    let customer = conn
        .get_customer(&account, &CustomerId::from_db(link.customer_id.clone()))
        .await?
        .ok_or(Error::NotFound(Resource::CardUpdateLink))?;
    let actor = Actor::Link {
        account,
        token: hash,
    };
    Ok((link, customer, actor))
}

/// The customer's Stripe customer, created on the link's budget if the
/// link predates it.
async fn stripe_customer_of(ctx: &Ctx, actor: &Actor, customer: &CustomerRow) -> Result<String> {
    match &customer.stripe_customer_id {
        Some(c) => Ok(c.clone()),
        None => {
            ctx.stripe_for(actor).await?;
            ensure_stripe_customer(ctx, actor.account(), &customer.id).await
        }
    }
}

/// `GET /pay/cards/{token}`: the business and the member's current card.
pub async fn get_public(ctx: &Ctx, token: &str) -> Result<PublicCardUpdateOut> {
    let (link, customer, actor) = open(ctx, token).await?;
    let cards = cards_of(ctx, &actor, &customer).await?;
    let business_name = match &ctx.settings().business_name {
        Some(n) => Some(n.clone()),
        None => ctx.stripe_info().account().await.and_then(|a| a.name),
    };
    Ok(PublicCardUpdateOut {
        business_name,
        default_card: cards.into_iter().find(|c| c.default),
        expires_at: link.expires_at,
    })
}

/// `POST /v1/public/card-updates/{token}/setup-intent`.
pub async fn setup_intent(ctx: &Ctx, token: &str) -> Result<CardSetupIntentOut> {
    let (link, customer, actor) = open(ctx, token).await?;
    let stripe_customer = stripe_customer_of(ctx, &actor, &customer).await?;
    let stripe = ctx.stripe_for(&actor).await?;
    if let Some(live) = &link.stripe_setup_intent_id {
        let si: Value = stripe
            .get(&format!("/v1/setup_intents/{live}"), &Params::new())
            .await?;
        let confirmable = matches!(
            si["status"].as_str(),
            Some("requires_payment_method" | "requires_confirmation" | "requires_action")
        );
        if confirmable && id_of(si.get("customer")).as_deref() == Some(stripe_customer.as_str()) {
            return intent_out(ctx, &si);
        }
    }
    let params = Params::new()
        .set("customer", &stripe_customer)
        .set("usage", "off_session")
        .set("payment_method_types[]", "card")
        .set("metadata[obol_customer_id]", &customer.id)
        .set("description", "Card saved for future payments");
    let previous = link.stripe_setup_intent_id.as_deref().unwrap_or("");
    let si: Value = stripe
        .post(
            "/v1/setup_intents",
            &params,
            &IdempotencyKey::for_op("card-update-setup-intent", &[&link.token_hash, previous]),
        )
        .await?;
    let id = si["id"]
        .as_str()
        .ok_or_else(|| Error::internal("Stripe answered a SetupIntent without an id"))?;
    let recorded = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .set_card_update_link_setup_intent(
                &link.token_hash,
                link.stripe_setup_intent_id.as_deref(),
                id,
            )
            .await?
    };
    if recorded {
        tracing::info!(customer_id = %customer.id, setup_intent = %id, "card-update SetupIntent created");
    }
    intent_out(ctx, &si)
}

fn intent_out(ctx: &Ctx, si: &Value) -> Result<CardSetupIntentOut> {
    Ok(CardSetupIntentOut {
        id: si["id"].as_str().unwrap_or_default().to_string(),
        client_secret: si["client_secret"]
            .as_str()
            .ok_or_else(|| Error::internal("Stripe answered a SetupIntent without its secret"))?
            .to_string(),
        publishable_key: ctx.stripe_info().publishable_key.clone(),
    })
}

/// `POST /v1/public/card-updates/{token}/complete`: the confirmed
/// SetupIntent's card becomes the member's default, at Stripe and here.
pub async fn complete(
    ctx: &Ctx,
    token: &str,
    body: CardUpdateCompleteIn,
) -> Result<CardUpdateCompleteOut> {
    let (link, customer, actor) = open(ctx, token).await?;
    let si_id = body.setup_intent_id.trim();
    let well_formed = si_id.starts_with("seti_")
        && si_id.len() <= 255
        && si_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !well_formed {
        return Err(Error::rule(
            RuleCode::FieldInvalid,
            "setup_intent_id is not a SetupIntent id (seti_…)",
        ));
    }
    let mismatch = || {
        Error::rule(
            RuleCode::SetupIntentMismatch,
            "this SetupIntent was not made for this card update",
        )
    };
    let stripe_customer = customer.stripe_customer_id.clone().ok_or_else(mismatch)?;
    let stripe = ctx.stripe_for(&actor).await?;
    let si: Value = stripe
        .get(
            &format!("/v1/setup_intents/{si_id}"),
            &Params::new().set("expand[]", "payment_method"),
        )
        .await?;
    if id_of(si.get("customer")).as_deref() != Some(stripe_customer.as_str()) {
        return Err(mismatch());
    }
    let status = si["status"].as_str().unwrap_or_default();
    if status != "succeeded" {
        return Err(Error::rule(
            RuleCode::SetupIntentNotSucceeded,
            format!("the card is not saved yet: the SetupIntent is {status}"),
        ));
    }
    let pm_object = match si.get("payment_method") {
        Some(o @ Value::Object(_)) => o.clone(),
        other => {
            let pm = id_of(other)
                .ok_or_else(|| Error::internal("a succeeded SetupIntent without a card"))?;
            stripe
                .get(&format!("/v1/payment_methods/{pm}"), &Params::new())
                .await?
        }
    };
    let pm = saved_cards::read_payment_method(&pm_object).map_err(|why| {
        Error::internal(format!("Stripe answered a card obol cannot read: {why}"))
    })?;
    let details = pm.card.ok_or_else(|| {
        Error::internal("the SetupIntent saved a payment method that is not a card")
    })?;
    let _: Value = stripe
        .post(
            &format!("/v1/customers/{stripe_customer}"),
            &Params::new().set("invoice_settings[default_payment_method]", &pm.id),
            &IdempotencyKey::for_op("card-update-default", &[si_id]),
        )
        .await?;
    let account = customer.account();
    let now = ctx.now();
    let at = now.timestamp();
    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    conn.lock_customer(&customer.id).await?;
    let attached = CardSeen::Attached {
        stripe_customer: stripe_customer.clone(),
        details,
    };
    saved_cards::observe_card(&mut conn, &account, &customer, &pm.id, &attached, at).await?;
    saved_cards::observe_default(
        &mut conn,
        &account,
        &customer,
        &stripe_customer,
        Some(&pm.id),
        at,
        DefaultSource::Obol,
    )
    .await?;
    conn.mark_card_update_link_used(&link.token_hash, now)
        .await?;
    let row = conn
        .get_payment_method(&account, &pm.id)
        .await?
        .ok_or_else(|| Error::internal("the saved card vanished"))?;
    tx.commit().await?;
    tracing::info!(customer_id = %customer.id, payment_method = %pm.id, "card saved as the default");
    let payment_method =
        card_of(&row).ok_or_else(|| Error::internal("the saved card has no details"))?;
    Ok(CardUpdateCompleteOut { payment_method })
}
