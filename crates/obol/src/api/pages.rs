//! Customer-facing pages and their assets (rendering in `crate::pages`,
//! rules in `ops::payment_links`, `ops::invoices`, `ops::card_updates` and
//! `ops::payment_actions`): `/pay/{token}`, `/pay/invoices/{token}`,
//! `/pay/cards/{token}`, `/pay/actions/{token}`, `/assets/*`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::Markup;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::PublicCaller;
use super::AppState;
use crate::error::Error;
use crate::ops::payment_links;
use crate::pages::{self, card_update, invoice, pay, payment_action, StripeJs};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pay_page))
        .routes(routes!(invoice_page))
        .routes(routes!(card_update_page))
        .routes(routes!(payment_action_page))
        .routes(routes!(invoice_js))
        .routes(routes!(card_update_js))
        .routes(routes!(payment_action_js))
        .routes(routes!(card_messages_js))
        .routes(routes!(pages_css))
        .routes(routes!(pay_js))
        .routes(routes!(stripe_sandbox_js))
        .routes(routes!(obol_checkout_js))
}

/// The hosted payment page of a payment link (HTML, for the customer).
///
/// With real Stripe keys it loads Stripe.js from js.stripe.com; in
/// sandbox mode obol's offline stand-in. Unknown links answer 404, expired
/// and used ones 410, each with a page saying so. Rate limited per client
/// address like the other token routes.
#[utoipa::path(get, path = "/pay/{token}", tag = "payment_links",
    security(()),
    params(("token" = String, Path, description = "The link's token.")),
    responses(
        (status = 200, description = "The payment page.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown link.", content_type = "text/html", body = String),
        (status = 410, description = "Expired or used link.", content_type = "text/html", body = String),
        (status = 429, description = "Too many requests from this address.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!([]))),
)]
async fn pay_page(
    State(state): State<AppState>,
    caller: Result<PublicCaller, Error>,
    Path(token): Path<String>,
) -> Response {
    token_page(
        &state,
        caller,
        pay::unavailable,
        || payment_links::page_view(state.ctx(), &token),
        |view| (pay::page(&view, &token), pay::stripe_js(&view)),
    )
    .await
}

/// The hosted page of an invoice (HTML, for the customer): the business,
/// the number, the lines, the fee line, the total and the due date, the
/// payment element while it is payable, and a clear state when it is
/// paid, void or not yet issued. Unknown tokens answer 404 with a page
/// saying so. Rate limited per client address like the other token routes.
#[utoipa::path(get, path = "/pay/invoices/{token}", tag = "invoices",
    security(()),
    params(("token" = String, Path, description = "The invoice link's token.")),
    responses(
        (status = 200, description = "The invoice page.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown link.", content_type = "text/html", body = String),
        (status = 429, description = "Too many requests from this address.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!([]))),
)]
async fn invoice_page(
    State(state): State<AppState>,
    caller: Result<PublicCaller, Error>,
    Path(token): Path<String>,
) -> Response {
    token_page(
        &state,
        caller,
        invoice::unavailable,
        || crate::ops::invoices::get_public(state.ctx(), &token),
        |public| {
            let view = invoice::InvoicePage {
                invoice: public,
                stripe: stripe_of(&state),
            };
            (
                invoice::page(&view, &token),
                invoice::stripe_js(&view).clone(),
            )
        },
    )
    .await
}

/// The card-update page (HTML, for the member): the business, the card
/// on file, the payment element in setup mode and a clear state once the
/// new card is saved. Unknown links answer 404 and expired ones 410, each
/// with a page saying so. Rate limited per client address like the other
/// token routes.
#[utoipa::path(get, path = "/pay/cards/{token}", tag = "customers",
    security(()),
    params(("token" = String, Path, description = "The card-update link's token.")),
    responses(
        (status = 200, description = "The card-update page.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown link.", content_type = "text/html", body = String),
        (status = 410, description = "Expired link.", content_type = "text/html", body = String),
        (status = 429, description = "Too many requests from this address.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!([]))),
)]
async fn card_update_page(
    State(state): State<AppState>,
    caller: Result<PublicCaller, Error>,
    Path(token): Path<String>,
) -> Response {
    token_page(
        &state,
        caller,
        card_update::unavailable,
        || crate::ops::card_updates::get_public(state.ctx(), &token),
        |view| {
            let page = card_update::CardUpdatePage {
                view,
                stripe: stripe_of(&state),
            };
            (card_update::page(&page, &token), page.stripe.clone())
        },
    )
    .await
}

/// The 3-D Secure action page of a charge-run item (HTML, for the
/// member): the business, the amount, what it is for and a button that
/// confirms the payment with their bank; "paid" once it went through.
/// Unknown links answer 404 and expired ones 410, each with a page saying
/// so. It loads no Stripe.js: obol confirms the PaymentIntent and the page
/// follows the bank's redirect. Rate limited per client address like the
/// other token routes.
#[utoipa::path(get, path = "/pay/actions/{token}", tag = "charge_runs",
    security(()),
    params(("token" = String, Path, description = "The action link's token.")),
    responses(
        (status = 200, description = "The action page.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown link.", content_type = "text/html", body = String),
        (status = 410, description = "Expired link, or a payment that can no longer be made.", content_type = "text/html", body = String),
        (status = 429, description = "Too many requests from this address.", content_type = "text/html", body = String),
    ),
    extensions(("x-error-codes" = json!([]))),
)]
async fn payment_action_page(
    State(state): State<AppState>,
    caller: Result<PublicCaller, Error>,
    Path(token): Path<String>,
) -> Response {
    token_page(
        &state,
        caller,
        payment_action::unavailable,
        || crate::ops::payment_actions::get_public(state.ctx(), &token),
        |view| (payment_action::page(&view, &token), StripeJs::None),
    )
    .await
}

/// Which Stripe.js a page loads with obol's Stripe configuration.
fn stripe_of(state: &AppState) -> StripeJs {
    let info = state.ctx().stripe_info();
    StripeJs::for_mode(info.mode, &info.api_base)
}

/// One token page: refused (rate limited) before its use case runs; the
/// use case's view rendered with the Stripe.js it needs; or the page of
/// the use case's error, with no Stripe.js.
async fn token_page<T, F>(
    state: &AppState,
    caller: Result<PublicCaller, Error>,
    unavailable: fn(&Error) -> (StatusCode, Markup),
    load: impl FnOnce() -> F,
    render: impl FnOnce(T) -> (Markup, StripeJs),
) -> Response
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return refused_page(&e, unavailable(&e)),
    };
    let result = load().await;
    caller.saw(state, &result);
    match result {
        Ok(view) => {
            let (page, stripe) = render(view);
            pages::respond(StatusCode::OK, page, &stripe)
        }
        Err(e) => {
            let (status, page) = unavailable(&e);
            pages::respond(status, page, &StripeJs::None)
        }
    }
}

/// A refusal before the use case ran (rate limited), with `Retry-After`.
fn refused_page(e: &Error, (status, page): (StatusCode, Markup)) -> Response {
    let mut r = pages::respond(status, page, &StripeJs::None);
    if let Error::RateLimited {
        retry_after_seconds,
    } = e
    {
        if let Ok(v) = retry_after_seconds.to_string().parse() {
            r.headers_mut().insert("retry-after", v);
        }
    }
    r
}

/// The invoice page's script.
#[utoipa::path(get, path = "/assets/invoice.js", tag = "invoices", security(()),
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn invoice_js() -> impl IntoResponse {
    &pages::INVOICE_JS
}

/// The card-update page's script.
#[utoipa::path(get, path = "/assets/card-update.js", tag = "customers", security(()),
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn card_update_js() -> impl IntoResponse {
    &pages::CARD_UPDATE_JS
}

/// The 3-D Secure action page's script.
#[utoipa::path(get, path = "/assets/payment-action.js", tag = "charge_runs", security(()),
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn payment_action_js() -> impl IntoResponse {
    &pages::PAYMENT_ACTION_JS
}

/// What the pages tell a customer when a card is refused.
#[utoipa::path(get, path = "/assets/card-messages.js", tag = "payment_links", security(()),
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn card_messages_js() -> impl IntoResponse {
    &pages::CARD_MESSAGES_JS
}

/// The pages' stylesheet.
#[utoipa::path(get, path = "/assets/pages.css", tag = "payment_links", security(()),
    responses((status = 200, description = "CSS.", content_type = "text/css", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn pages_css() -> impl IntoResponse {
    &pages::PAGES_CSS
}

/// The payment page's script.
#[utoipa::path(get, path = "/assets/pay.js", tag = "payment_links", security(()),
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn pay_js() -> impl IntoResponse {
    &pages::PAY_JS
}

/// obol's offline stand-in for Stripe.js (sandbox mode).
#[utoipa::path(get, path = "/assets/stripe-sandbox.js", tag = "payment_links", security(()),
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn stripe_sandbox_js() -> impl IntoResponse {
    &pages::STRIPE_SANDBOX_JS
}

/// `<obol-checkout>`, the checkout component for a host storefront's page
/// (its Subresource Integrity hash is in the README).
#[utoipa::path(get, path = "/assets/obol-checkout.js", tag = "payment_links", security(()),
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)),
    extensions(("x-error-codes" = json!([]))),
)]
async fn obol_checkout_js() -> impl IntoResponse {
    &pages::OBOL_CHECKOUT_JS
}
