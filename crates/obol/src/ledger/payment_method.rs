//! Saved cards: what one observation of a card (a Stripe event, an answer
//! of Stripe's API) does to obol's copy of it, and which card is a
//! customer's default.
//!
//! The ordering rules, for events that arrive in any order:
//! - A card's details (brand, last4, expiry, its customer) are replaced
//!   only by an observation at least as new (`at`, unix seconds) as the
//!   one recorded; within one second the later arrival wins.
//! - Detached is final: Stripe never attaches a detached payment method
//!   again, so a detach observed at any time leaves the card detached, and
//!   a detached card is never the default.
//! - The default is the customer's, not a card's: a newer observation of
//!   it replaces the recorded one; an event as old as the recorded one
//!   changes nothing, while obol's own write (made after it set the
//!   default at Stripe) wins the tie, so the late events of the card saved
//!   a moment before cannot bring it back.

use serde::Serialize;

/// A card's details, as Stripe reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardDetails {
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
}

/// The part of a card's row the rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardView {
    /// Stripe's customer the card is (or was) attached to.
    pub stripe_customer: String,
    /// `None` until an observation carried them.
    pub details: Option<CardDetails>,
    pub detached: bool,
    /// The newest observation of the details applied.
    pub observed_at: i64,
}

/// What was seen of a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardSeen {
    /// Attached, updated (by the customer or by the card network), or read
    /// from Stripe's API: the card as it is, attached to `stripe_customer`.
    Attached {
        stripe_customer: String,
        details: CardDetails,
    },
    /// Detached from `stripe_customer`.
    Detached { stripe_customer: String },
    /// Named as a default before anything else of it was seen.
    Named { stripe_customer: String },
}

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardDecision {
    Write(CardView),
    Ignore,
}

/// The card after `seen` (observed at `at`).
pub fn observe_card(current: Option<&CardView>, seen: &CardSeen, at: i64) -> CardDecision {
    match (current, seen) {
        (
            None,
            CardSeen::Attached {
                stripe_customer,
                details,
            },
        ) => CardDecision::Write(CardView {
            stripe_customer: stripe_customer.clone(),
            details: Some(details.clone()),
            detached: false,
            observed_at: at,
        }),
        (None, CardSeen::Detached { stripe_customer }) => CardDecision::Write(CardView {
            stripe_customer: stripe_customer.clone(),
            details: None,
            detached: true,
            observed_at: 0,
        }),
        (None, CardSeen::Named { stripe_customer }) => CardDecision::Write(CardView {
            stripe_customer: stripe_customer.clone(),
            details: None,
            detached: false,
            observed_at: 0,
        }),
        (
            Some(c),
            CardSeen::Attached {
                stripe_customer,
                details,
            },
        ) => {
            if at < c.observed_at {
                return CardDecision::Ignore;
            }
            let next = CardView {
                stripe_customer: stripe_customer.clone(),
                details: Some(details.clone()),
                detached: c.detached,
                observed_at: at,
            };
            if &next == c {
                CardDecision::Ignore
            } else {
                CardDecision::Write(next)
            }
        }
        (Some(c), CardSeen::Detached { .. }) => {
            if c.detached {
                CardDecision::Ignore
            } else {
                CardDecision::Write(CardView {
                    detached: true,
                    ..c.clone()
                })
            }
        }
        (Some(_), CardSeen::Named { .. }) => CardDecision::Ignore,
    }
}

/// Who observed a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultSource {
    /// A Stripe event.
    Event,
    /// obol itself: it set the default at Stripe, or read the customer from
    /// Stripe's API.
    Obol,
}

/// Whether an observation of a customer's default (made at `at`) replaces
/// the one recorded at `recorded` (`None`: none recorded yet).
pub fn default_applies(recorded: Option<i64>, at: i64, source: DefaultSource) -> bool {
    match (recorded, source) {
        (None, _) => true,
        (Some(r), DefaultSource::Event) => at > r,
        (Some(r), DefaultSource::Obol) => at >= r,
    }
}

#[cfg(test)]
mod tests;
