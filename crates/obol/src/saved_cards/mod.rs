//! The saved-card writer: what an observation of a card, or of which card
//! is a customer's default, does to obol's copy, inside the caller's
//! transaction. The inbox (Stripe's `payment_method.*`, `customer.updated`
//! and `setup_intent.succeeded` events) and `ops` (the card-update page
//! setting the default at Stripe, a refresh read from Stripe's API) both
//! write through here; the rules are `ledger::payment_method`'s.
//!
//! Callers hold the customer's row (`Conn::lock_customer`) first, so two
//! observations of one customer's cards never interleave.

use serde::Deserialize;
use serde_json::Value;

use crate::context::AccountId;
use crate::error::Result;
use crate::ledger::payment_method::{self, CardDecision, CardDetails, CardSeen, DefaultSource};
use crate::payments::{id_of, Outcome, Unreadable};
use crate::storage::customers::CustomerRow;
use crate::storage::{self, Conn};

/// A Stripe PaymentMethod, as far as obol reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethodSeen {
    pub id: String,
    /// Stripe's customer it is attached to (`None` once detached).
    pub customer: Option<String>,
    /// `None` for a payment method that is not a card.
    pub card: Option<CardDetails>,
}

#[derive(Deserialize)]
struct PaymentMethodObject {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    customer: Option<Value>,
    card: Option<CardObject>,
}

#[derive(Deserialize)]
struct CardObject {
    brand: String,
    last4: String,
    exp_month: i64,
    exp_year: i64,
}

/// Reads a PaymentMethod object (an event's, or an API answer).
pub fn read_payment_method(object: &Value) -> std::result::Result<PaymentMethodSeen, Unreadable> {
    let pm: PaymentMethodObject = crate::payments::parse(object, "payment_method")?;
    let card = match (pm.kind.as_str(), pm.card) {
        ("card", Some(c)) => {
            if !(1..=12).contains(&c.exp_month) || !(2000..=2200).contains(&c.exp_year) {
                return Err(Unreadable(format!(
                    "the card's expiry {}/{} is not a date",
                    c.exp_month, c.exp_year
                )));
            }
            Some(CardDetails {
                brand: c.brand,
                last4: c.last4.chars().take(4).collect(),
                exp_month: c.exp_month,
                exp_year: c.exp_year,
            })
        }
        ("card", None) => return Err(Unreadable("a card payment method without its card".into())),
        _ => None,
    };
    Ok(PaymentMethodSeen {
        id: pm.id,
        customer: id_of(pm.customer.as_ref()),
        card,
    })
}

/// Applies what was seen of one card of `customer` (obol's) at `at`.
pub async fn observe_card(
    conn: &mut Conn<'_>,
    account: &AccountId,
    customer: &CustomerRow,
    stripe_payment_method_id: &str,
    seen: &CardSeen,
    at: i64,
) -> Result<Outcome> {
    let current = conn
        .get_payment_method(account, stripe_payment_method_id)
        .await?
        .map(|r| r.view());
    match payment_method::observe_card(current.as_ref(), seen, at) {
        CardDecision::Ignore => Ok(Outcome::Ignored(
            "not newer than what obol has of the card".into(),
        )),
        CardDecision::Write(next) => {
            conn.write_payment_method(
                account,
                Some(&customer.id),
                stripe_payment_method_id,
                &next,
                storage::now(),
            )
            .await?;
            Ok(Outcome::Applied)
        }
    }
}

/// Applies an observation of which card is the customer's default
/// (`None`: none) at `at`. A card named before anything else of it was
/// seen gets a row, its details to follow.
pub async fn observe_default(
    conn: &mut Conn<'_>,
    account: &AccountId,
    customer: &CustomerRow,
    stripe_customer_id: &str,
    default: Option<&str>,
    at: i64,
    source: DefaultSource,
) -> Result<Outcome> {
    let recorded = conn
        .get_default_observed(account, stripe_customer_id)
        .await?;
    if !payment_method::default_applies(recorded, at, source) {
        return Ok(Outcome::Ignored(
            "older than the customer's default obol recorded".into(),
        ));
    }
    if let Some(pm) = default {
        let named = CardSeen::Named {
            stripe_customer: stripe_customer_id.to_string(),
        };
        observe_card(conn, account, customer, pm, &named, at).await?;
    }
    conn.set_default_payment_method(account, stripe_customer_id, default, at, storage::now())
        .await?;
    Ok(Outcome::Applied)
}
