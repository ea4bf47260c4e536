//! The 3-D Secure action page of a charge-run item: `/pay/actions/{token}`.
//! The business, the amount, what it is for and one button: obol confirms
//! the payment with Stripe and the page follows the bank's page and back;
//! then it says paid. Expired and unknown links get a page saying so.

use maud::{html, Markup};

use super::{layout, message};
use crate::error::Error;
use crate::ops::payment_actions::{ActionStatus, PublicPaymentActionOut};

pub fn page(v: &PublicPaymentActionOut, token: &str) -> Markup {
    let state = match v.status {
        ActionStatus::RequiresAction => "ready",
        ActionStatus::Processing => "processing",
        ActionStatus::Succeeded => "paid",
    };
    let paid = v.status == ActionStatus::Succeeded;
    layout(
        "Confirm your payment",
        html! {
            section class="obol-card" id="obol-payment-action" data-state=(state)
                data-token=(token) hidden[paid] {
                p class="obol-invoice-meta" { strong id="obol-business" { (v.business_name) } }
                h1 { "Confirm your payment" }
                p class="obol-amount" { span { "Amount" } strong id="obol-amount" { (v.amount_display) } }
                p id="obol-description" { "For " (v.description) }
                p class="obol-note" {
                    "Your bank asks you to confirm this payment. You will go to your bank's page and come back here."
                }
                @if v.status == ActionStatus::Processing {
                    p class="obol-note" id="obol-processing" {
                        "Your payment is being processed. There is no need to confirm it again."
                    }
                }
                button id="obol-confirm-button" type="button"
                    disabled[v.status != ActionStatus::RequiresAction] {
                    "Confirm payment of " (v.amount_display)
                }
                p id="obol-message" role="alert" aria-live="polite" {}
            }
            section class="obol-card" id="obol-action-paid" hidden[!paid] data-state="paid" {
                p class="obol-invoice-meta" { strong { (v.business_name) } }
                h1 { "Thank you, your payment went through" }
                p id="obol-paid-text" { (v.amount_display) " for " (v.description) " is paid. Nothing more is due." }
                p { span class="obol-paid-badge" { "Paid" } }
            }
        },
        &["/assets/payment-action.js"],
    )
}

/// The page for a token that opens nothing, by the use case's error.
pub fn unavailable(e: &Error) -> (axum::http::StatusCode, Markup) {
    let (title, text, state) = match e.code() {
        "payment_action_expired" => (
            "This payment link has expired",
            "Nothing was charged through it. Ask the business for a new link.",
            "expired",
        ),
        "payment_action_closed" => (
            "This payment can no longer be made",
            "Nothing was charged through this link. Contact the business if you think this is wrong.",
            "closed",
        ),
        "payment_action_not_found" => (
            "Payment link not found",
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
            "Nothing was charged. Please try again in a moment.",
            "error",
        ),
    };
    (e.status(), message(title, text, state))
}
