//! The invoice page: `/pay/invoices/{token}`. The business, the number,
//! every line, the fee line, the total and the due date; the payment
//! element while it is payable, and a clear state when it is paid, void
//! or not yet issued.

use maud::{html, Markup};

use super::{layout, message, StripeJs};
use crate::error::Error;
use crate::ledger::invoice::InvoiceStatus;
use crate::money::{Currency, Money};
use crate::ops::invoices::PublicInvoiceOut;

/// What the page renders: the public invoice and which Stripe.js to load.
pub struct InvoicePage {
    pub invoice: PublicInvoiceOut,
    pub stripe: StripeJs,
}

/// `1234` in USD is `12.34 USD`; in JPY `1234 JPY`; in KWD `1.234 KWD`.
fn money(amount: i64, currency: &str) -> String {
    Currency::parse(currency)
        .ok()
        .and_then(|c| Money::balance(amount, c).ok())
        .map(|m| m.to_string())
        .unwrap_or_else(|| amount.to_string())
}

/// Which Stripe.js the page loads: none unless it can be paid.
pub fn stripe_js(page: &InvoicePage) -> &StripeJs {
    if page.invoice.payable {
        &page.stripe
    } else {
        &StripeJs::None
    }
}

pub fn page(page: &InvoicePage, token: &str) -> Markup {
    let inv = &page.invoice;
    let cur = inv.currency.as_str();
    let stripe = stripe_js(page);
    let api_base = match stripe {
        StripeJs::Sandbox { api_base } => api_base.as_str(),
        _ => "",
    };
    let mut scripts: Vec<&str> = stripe.script().into_iter().collect();
    if inv.payable {
        scripts.push("/assets/card-messages.js");
        scripts.push("/assets/invoice.js");
    }
    let title = format!("Invoice {}", inv.number);
    let state = match inv.status {
        InvoiceStatus::Paid => "paid",
        InvoiceStatus::Void => "void",
        InvoiceStatus::Draft => "draft",
        InvoiceStatus::PartiallyPaid => "partially_paid",
        InvoiceStatus::Processed if inv.payable => "payable",
        InvoiceStatus::Processed => "partially_paid",
    };
    layout(
        &title,
        html! {
            section class="obol-card" id="obol-invoice" data-state=(state)
                data-token=(token) data-api-base=(api_base) {
                @if let Some(name) = &inv.business_name {
                    p class="obol-invoice-meta" { strong id="obol-business" { (name) } }
                }
                h1 { "Invoice " span id="obol-invoice-number" { (inv.number) } }
                p class="obol-invoice-meta" {
                    span { "Due " time id="obol-due-date" datetime=(inv.due_date) { (inv.due_date) } }
                    @match inv.status {
                        InvoiceStatus::Paid => span class="obol-paid-badge" id="obol-status" { "Paid" },
                        InvoiceStatus::Void => span id="obol-status" { "Void" },
                        _ => span id="obol-status" { "Amount due " (money(inv.amount_due, cur)) },
                    }
                }
                table class="obol-lines" {
                    thead { tr { th { "Description" } th class="obol-num" { "Qty" } th class="obol-num" { "Amount" } } }
                    tbody {
                        @for l in &inv.line_items {
                            tr class="obol-line" {
                                td { (l.description) }
                                td class="obol-num" { (l.quantity) }
                                td class="obol-num" { (money(l.amount, cur)) }
                            }
                        }
                        @if let Some(fee) = &inv.fee {
                            tr class="obol-line obol-fee-line" id="obol-fee-line" {
                                td {
                                    "Card processing fee"
                                    br;
                                    span class="obol-fee-note" {
                                        (format!("{}.{:02} %", fee.percent_bps / 100, fee.percent_bps % 100))
                                        @if fee.fixed > 0 { " + " (money(fee.fixed, cur)) }
                                        ", so the business receives the invoiced amount"
                                    }
                                }
                                td class="obol-num" { "1" }
                                td class="obol-num" { (money(fee.amount, cur)) }
                            }
                        }
                    }
                    tfoot {
                        tr class="obol-total" {
                            td colspan="2" { "Total" }
                            td class="obol-num" id="obol-total" { (money(inv.total, cur)) }
                        }
                    }
                }
                @if let Some(memo) = &inv.memo { p class="obol-memo" { (memo) } }
                @match state {
                    "payable" => {
                        form id="obol-pay-form" novalidate {
                            div id="obol-payment-element" {}
                            button id="obol-pay-button" type="submit" disabled { "Pay " (money(inv.amount_due, cur)) }
                        }
                        p id="obol-message" role="alert" aria-live="polite" {}
                    }
                    "paid" => p id="obol-paid" { "Thank you, this invoice is paid. Nothing more is due." },
                    "void" => p id="obol-void" { "This invoice was withdrawn by the business: there is nothing to pay." },
                    "draft" => p id="obol-draft" { "This invoice has not been issued yet, so it cannot be paid." },
                    _ => p id="obol-partial" { "Part of this invoice was paid. Contact the business about the rest." },
                }
            }
            section class="obol-card" id="obol-invoice-paid" hidden data-state="paid" {
                h1 { "Thank you, your payment went through" }
                p { "Invoice " (inv.number) " is paid. " span class="obol-paid-badge" { "Paid" } }
            }
        },
        &scripts,
    )
}

/// The page for a token that opens nothing, by the use case's error.
pub fn unavailable(e: &Error) -> (axum::http::StatusCode, Markup) {
    let (title, text, state) = match e.code() {
        "invoice_not_found" => (
            "Invoice not found",
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
