//! A customer's saved cards, from obol's copy (`payment_methods`, kept by
//! Stripe's events through `crate::saved_cards`). When the copy has none
//! (or a card whose details have not arrived) but the customer has a
//! Stripe customer, obol reads the cards and the default from Stripe once
//! and records what it saw, so a customer whose events were lost still
//! sees their card.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Resource, Result};
use crate::ids::CustomerId;
use crate::ledger::payment_method::{CardSeen, DefaultSource};
use crate::payments::id_of;
use crate::saved_cards;
use crate::storage::customers::CustomerRow;
use crate::storage::payment_methods::PaymentMethodRow;
use crate::stripe::{Params, StripeApi};

/// A saved card.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardOut {
    /// Stripe's `pm_…`.
    pub id: String,
    /// Stripe's brand: `visa`, `mastercard`, `amex`, …
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
    /// The customer's default card, which obol charges.
    pub default: bool,
}

impl CardOut {
    /// `Visa •••• 4242, expires 12/2030`, as pages show a card.
    pub fn label(&self) -> String {
        format!(
            "{} •••• {}, expires {:02}/{}",
            brand_name(&self.brand),
            self.last4,
            self.exp_month,
            self.exp_year
        )
    }
}

/// A brand as people write it.
pub fn brand_name(brand: &str) -> String {
    match brand {
        "visa" => "Visa".into(),
        "mastercard" => "Mastercard".into(),
        "amex" => "American Express".into(),
        "discover" => "Discover".into(),
        "jcb" => "JCB".into(),
        "unionpay" => "UnionPay".into(),
        "diners" => "Diners Club".into(),
        "cartes_bancaires" => "Cartes Bancaires".into(),
        other => {
            let mut c = other.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect(),
                None => "Card".into(),
            }
        }
    }
}

/// `GET /v1/customers/{id}/payment-methods`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentMethodList {
    /// The customer's attached cards, the default first.
    pub data: Vec<CardOut>,
}

/// A row as a card, once its details are known.
pub(crate) fn card_of(r: &PaymentMethodRow) -> Option<CardOut> {
    let d = r.details()?;
    Some(CardOut {
        id: r.stripe_payment_method_id.clone(),
        brand: d.brand,
        last4: d.last4,
        exp_month: d.exp_month,
        exp_year: d.exp_year,
        default: r.is_default && !r.detached,
    })
}

/// The saved cards of a customer, for the secret key or that customer's
/// own token (anyone else's customer: `customer_not_found`).
pub async fn list(ctx: &Ctx, actor: &Actor, customer_id: &str) -> Result<PaymentMethodList> {
    let id = CustomerId::parse(customer_id).map_err(|_| Error::NotFound(Resource::Customer))?;
    if !actor.may_access_customer_object(Some(&id)) {
        return Err(Error::NotFound(Resource::Customer));
    }
    let customer = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_customer(actor.account(), &id)
            .await?
            .ok_or(Error::NotFound(Resource::Customer))?
    };
    Ok(PaymentMethodList {
        data: cards_of(ctx, actor, &customer).await?,
    })
}

/// The customer's cards from obol's copy, read from Stripe first when the
/// copy is empty or incomplete; Stripe is asked on `actor`'s budget.
pub(crate) async fn cards_of(
    ctx: &Ctx,
    actor: &Actor,
    customer: &CustomerRow,
) -> Result<Vec<CardOut>> {
    let account = customer.account();
    let read = |ctx: &Ctx| {
        let account = account.clone();
        let id = customer.id.clone();
        let ctx = ctx.clone();
        async move {
            let mut h = ctx.store().acquire().await?;
            h.conn().list_payment_methods(&account, &id).await
        }
    };
    let mut rows = read(ctx).await?;
    if let Some(cus) = &customer.stripe_customer_id {
        if rows.is_empty() || rows.iter().any(|r| r.details().is_none()) {
            refresh(ctx, &*ctx.stripe_for(actor).await?, &account, customer, cus).await?;
            rows = read(ctx).await?;
        }
    }
    Ok(rows.iter().filter_map(card_of).collect())
}

/// Reads the customer's cards and default from Stripe and records them as
/// seen now. A card obol knew from before the list (a minute's margin for
/// clock skew) that Stripe no longer lists was detached.
async fn refresh(
    ctx: &Ctx,
    stripe: &dyn StripeApi,
    account: &AccountId,
    customer: &CustomerRow,
    stripe_customer: &str,
) -> Result<()> {
    let before_list = ctx.now().timestamp() - 60;
    let list: Value = stripe
        .get(
            &format!("/v1/customers/{stripe_customer}/payment_methods"),
            &Params::new().set("type", "card").set("limit", 100),
        )
        .await?;
    let them: Value = stripe
        .get(&format!("/v1/customers/{stripe_customer}"), &Params::new())
        .await?;
    let default = id_of(them["invoice_settings"].get("default_payment_method"));
    let mut seen = Vec::new();
    for object in list["data"].as_array().into_iter().flatten() {
        let pm = saved_cards::read_payment_method(object).map_err(|why| {
            Error::internal(format!("Stripe listed a card obol cannot read: {why}"))
        })?;
        if let Some(card) = pm.card {
            seen.push((pm.id, card));
        }
    }
    let at = ctx.now().timestamp();
    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    conn.lock_customer(&customer.id).await?;
    for row in conn
        .list_payment_methods_of_stripe_customer(account, stripe_customer)
        .await?
    {
        let known_before = row.stripe_updated.max(row.default_observed) < before_list;
        let listed = seen
            .iter()
            .any(|(id, _)| *id == row.stripe_payment_method_id);
        if !row.detached && known_before && !listed {
            let gone = CardSeen::Detached {
                stripe_customer: stripe_customer.to_string(),
            };
            saved_cards::observe_card(
                &mut conn,
                account,
                customer,
                &row.stripe_payment_method_id,
                &gone,
                at,
            )
            .await?;
        }
    }
    for (id, details) in seen {
        let attached = CardSeen::Attached {
            stripe_customer: stripe_customer.to_string(),
            details,
        };
        saved_cards::observe_card(&mut conn, account, customer, &id, &attached, at).await?;
    }
    saved_cards::observe_default(
        &mut conn,
        account,
        customer,
        stripe_customer,
        default.as_deref(),
        at,
        DefaultSource::Obol,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(customer_id = %customer.id, "saved cards read from Stripe");
    Ok(())
}
