//! The card-update page: `/pay/cards/{token}`. The business asking, the
//! member's current card, the payment element in setup mode (nothing is
//! charged), and a clear state once the new card is saved; expired and
//! unknown links get a page saying so.

use maud::{html, Markup};

use super::{layout, message, StripeJs};
use crate::error::Error;
use crate::ops::card_updates::PublicCardUpdateOut;

/// What the page renders: the public view and which Stripe.js to load.
pub struct CardUpdatePage {
    pub view: PublicCardUpdateOut,
    pub stripe: StripeJs,
}

pub fn page(page: &CardUpdatePage, token: &str) -> Markup {
    let v = &page.view;
    let api_base = match &page.stripe {
        StripeJs::Sandbox { api_base } => api_base.as_str(),
        _ => "",
    };
    let mut scripts: Vec<&str> = page.stripe.script().into_iter().collect();
    scripts.push("/assets/card-messages.js");
    scripts.push("/assets/card-update.js");
    let business = v.business_name.as_deref().unwrap_or("The business");
    layout(
        "Update your card",
        html! {
            section class="obol-card" id="obol-card-update" data-state="loading"
                data-token=(token) data-api-base=(api_base) {
                @if let Some(name) = &v.business_name {
                    p class="obol-invoice-meta" { strong id="obol-business" { (name) } }
                }
                h1 { "Update your card" }
                @match &v.default_card {
                    Some(card) => p id="obol-current" data-last4=(card.last4) {
                        "Card on file: " strong id="obol-current-card" { (card.label()) }
                    },
                    None => p id="obol-current" { "No card is saved yet." },
                }
                p class="obol-note" {
                    (business) " will charge the card you save here for your future payments. Nothing is charged now."
                }
                form id="obol-card-form" novalidate {
                    div id="obol-payment-element" {}
                    button id="obol-save-button" type="submit" disabled { "Save card" }
                }
                p id="obol-message" role="alert" aria-live="polite" {}
            }
            section class="obol-card" id="obol-card-saved" hidden data-state="saved" {
                h1 { "Card saved" }
                p id="obol-saved-text" {}
                p { span class="obol-paid-badge" { "Saved" } }
            }
        },
        &scripts,
    )
}

/// The page for a token that opens nothing, by the use case's error.
pub fn unavailable(e: &Error) -> (axum::http::StatusCode, Markup) {
    let (title, text, state) = match e.code() {
        "card_update_link_expired" => (
            "This card-update link has expired",
            "Your card on file was not changed. Ask the business for a new link.",
            "expired",
        ),
        "card_update_link_not_found" => (
            "Card-update link not found",
            "Check that the whole link was copied, or ask the business for a new one.",
            "unknown",
        ),
        "rate_limited" => (
            "Too many attempts",
            "Please wait a minute and try again.",
            "rate_limited",
        ),
        _ => (
            "This page cannot be shown right now",
            "Your card on file was not changed. Please try again in a moment.",
            "error",
        ),
    };
    (e.status(), message(title, text, state))
}
