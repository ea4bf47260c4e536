//! The pages of Stripe Connect's OAuth flow (`/connect/stripe/*`) for
//! when it cannot go on: an unknown, used or expired connect link, a
//! forged, replayed or expired OAuth state. Each says that nothing was
//! changed and what to do; the flow's good ends are redirects (to Stripe,
//! then to the host's return URL), not pages.

use maud::Markup;

use super::message;
use crate::error::Error;

/// The page for a step that cannot go on, by the use case's error.
pub fn unavailable(e: &Error) -> (axum::http::StatusCode, Markup) {
    let (title, text, state) = match e.code() {
        "connect_link_not_found" => (
            "Connect link not found",
            "Check that the whole link was copied, or ask for a new one. Nothing was changed.",
            "unknown",
        ),
        "connect_link_expired" => (
            "This connect link has expired",
            "Connect links work for 10 minutes. Ask for a new one. Nothing was changed.",
            "expired",
        ),
        "connect_link_used" => (
            "This connect link was used already",
            "A connect link works once. Ask for a new one. Nothing was changed.",
            "used",
        ),
        "organization_already_connected" => (
            "A Stripe account is connected already",
            "Disconnect it first to connect another. Nothing was changed.",
            "connected",
        ),
        "connect_state_invalid" => (
            "This connection request is not valid",
            "This page was not reached from a connect link of this service. Nothing was changed.",
            "invalid",
        ),
        "connect_state_used" => (
            "This connection attempt has ended already",
            "Each attempt can finish once. Ask for a new connect link to try again. Nothing was changed.",
            "used",
        ),
        "connect_state_expired" => (
            "This connection attempt has expired",
            "It took too long. Ask for a new connect link. Nothing was changed.",
            "expired",
        ),
        "connect_not_configured" => (
            "Stripe Connect is not set up here",
            "The operator has not configured a Stripe Connect client id. Nothing was changed.",
            "not_configured",
        ),
        "rate_limited" => (
            "Too many attempts",
            "Please wait a minute and try again.",
            "rate_limited",
        ),
        _ => (
            "This page cannot be shown right now",
            "Nothing was changed. Please try again in a moment.",
            "error",
        ),
    };
    (e.status(), message(title, text, state))
}
