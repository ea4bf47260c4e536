//! The payment page of a payment link: `/pay/{token}`.

use maud::{html, Markup};

use super::{layout, message, StripeJs};
use crate::error::Error;
use crate::money::{Currency, Money};
use crate::ops::payment_links::PageView;

/// Which Stripe.js the page of `view` loads.
pub fn stripe_js(view: &PageView) -> StripeJs {
    StripeJs::for_mode(view.stripe_mode, &view.stripe_api_base)
}

/// The page for a link that can be paid.
pub fn page(view: &PageView, token: &str) -> Markup {
    let link = &view.link;
    let stripe = stripe_js(view);
    let amount = Currency::parse(&link.currency)
        .ok()
        .and_then(|c| Money::balance(link.amount, c).ok())
        .map(|m| format!("{} {}", m.format_decimal(), m.currency().iso_code()))
        .unwrap_or_default();
    let api_base = match &stripe {
        StripeJs::Sandbox { api_base } => api_base.as_str(),
        _ => "",
    };
    let mut scripts: Vec<&str> = stripe.script().into_iter().collect();
    scripts.push("/assets/card-messages.js");
    scripts.push("/assets/pay.js");
    layout(
        "Pay your order",
        html! {
            section class="obol-card" id="obol-pay" data-state="ready"
                data-token=(token)
                data-publishable-key=(link.publishable_key)
                data-client-secret=(link.client_secret.as_deref().unwrap_or_default())
                data-api-base=(api_base) {
                h1 { "Pay your order" }
                p class="obol-amount" { span { "Amount" } strong id="obol-amount" { (amount) } }
                p class="obol-email" { "Receipt to " (link.email) }
                form id="obol-pay-form" novalidate {
                    div id="obol-payment-element" {}
                    button id="obol-pay-button" type="submit" { "Pay " (amount) }
                }
                p id="obol-message" role="alert" aria-live="polite" {}
            }
            section class="obol-card" id="obol-paid" hidden data-state="paid" {
                h1 { "Thank you, your payment went through" }
                p { "Your order " strong id="obol-order-number" {} " is confirmed. A receipt goes to " (link.email) "." }
            }
        },
        &scripts,
    )
}

/// The page for a link that cannot be paid, by the use case's error.
pub fn unavailable(e: &Error) -> (axum::http::StatusCode, Markup) {
    let (title, text, state) = match e.code() {
        "payment_link_expired" => (
            "This payment link has expired",
            "Nothing was charged. Ask the shop for a new link.",
            "expired",
        ),
        "payment_link_used" => (
            "This payment link was already used",
            "The order was paid, or the link was closed. Nothing more will be charged.",
            "used",
        ),
        "payment_link_not_found" => (
            "Payment link not found",
            "Check that the whole link was copied, or ask the shop for a new one.",
            "unknown",
        ),
        "rate_limited" => (
            "Too many attempts",
            "Please wait a minute and try again.",
            "rate_limited",
        ),
        _ => (
            "This page cannot be shown right now",
            "Nothing was charged. Please try again in a moment.",
            "error",
        ),
    };
    (e.status(), message(title, text, state))
}
