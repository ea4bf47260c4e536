//! Pages obol renders itself for customers: the payment page of a payment
//! link, the invoice page, the card-update page and the 3-D Secure action
//! page. Server-rendered HTML (maud escapes every value), a
//! stylesheet and scripts served by obol, no front-end build step.
//!
//! Every page goes through [`respond`]: a Content-Security-Policy that
//! allows exactly what Stripe.js needs with real keys (js.stripe.com,
//! api.stripe.com, Stripe's frames) and only obol and the sandbox in
//! sandbox mode; `no-store` (pages behind a capability token must not be
//! cached); `no-referrer` (the token is in the URL); no framing.

pub mod card_update;
pub mod connect;
pub mod invoice;
pub mod pay;
pub mod payment_action;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::config::StripeMode;

/// Which Stripe.js a page loads, and so what its CSP allows.
#[derive(Debug, Clone)]
pub enum StripeJs {
    /// js.stripe.com, talking to api.stripe.com.
    Stripe,
    /// obol's offline stand-in, talking to the sandbox at this origin.
    Sandbox { api_base: String },
    /// No payment on this page.
    None,
}

impl StripeJs {
    pub fn for_mode(mode: StripeMode, api_base: &str) -> StripeJs {
        match mode {
            StripeMode::Sandbox => StripeJs::Sandbox {
                api_base: api_base.trim_end_matches('/').to_string(),
            },
            StripeMode::Test | StripeMode::Live => StripeJs::Stripe,
        }
    }

    /// The script tag's source.
    pub fn script(&self) -> Option<&'static str> {
        match self {
            StripeJs::Stripe => Some("https://js.stripe.com/v3/"),
            StripeJs::Sandbox { .. } => Some(SANDBOX_STRIPE_JS),
            StripeJs::None => None,
        }
    }

    fn csp(&self) -> String {
        let base = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
        match self {
            StripeJs::Stripe => format!(
                "{base}; script-src 'self' https://js.stripe.com; \
                 frame-src https://js.stripe.com https://hooks.stripe.com; \
                 connect-src 'self' https://api.stripe.com"
            ),
            StripeJs::Sandbox { api_base } => {
                format!("{base}; script-src 'self'; connect-src 'self' {api_base}")
            }
            StripeJs::None => format!("{base}; script-src 'self'; connect-src 'self'"),
        }
    }
}

/// Where obol serves its stand-in for Stripe.js.
pub const SANDBOX_STRIPE_JS: &str = "/assets/stripe-sandbox.js";

/// A whole page: obol's layout around `body`, with the page's scripts.
pub fn layout(title: &str, body: Markup, scripts: &[&str]) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                link rel="icon" href="data:,";
                title { (title) }
                link rel="stylesheet" href="/assets/pages.css";
            }
            body {
                main class="obol-page" { (body) }
                @for src in scripts {
                    script src=(src) {}
                }
            }
        }
    }
}

/// A page of one message (an unknown, expired or used link, …).
pub fn message(title: &str, text: &str, state: &str) -> Markup {
    layout(
        title,
        html! {
            section class="obol-card" data-state=(state) {
                h1 { (title) }
                p { (text) }
            }
        },
        &[],
    )
}

/// The response for a page, with its security headers.
pub fn respond(status: StatusCode, page: Markup, stripe: &StripeJs) -> Response {
    let mut response = (status, page.into_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&stripe.csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A static asset compiled into obol.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

pub const PAGES_CSS: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("assets/pages.css"),
};
pub const PAY_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/pay.js"),
};
pub const CARD_MESSAGES_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/card-messages.js"),
};
pub const INVOICE_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/invoice.js"),
};
pub const CARD_UPDATE_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/card-update.js"),
};
pub const PAYMENT_ACTION_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/payment-action.js"),
};
pub const STRIPE_SANDBOX_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/stripe-sandbox.js"),
};

pub const OBOL_CHECKOUT_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/obol-checkout.js"),
};

impl IntoResponse for &'static Asset {
    fn into_response(self) -> Response {
        let mut response = self.body.into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        // Assets change only with obol's version; an hour is plenty.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With real keys the page may load and talk to Stripe and nothing
    /// else; in sandbox mode only obol and the sandbox.
    #[test]
    fn each_stripe_mode_gets_exactly_what_its_stripe_js_needs() {
        let real = StripeJs::for_mode(StripeMode::Live, "https://api.stripe.com").csp();
        for needed in [
            "script-src 'self' https://js.stripe.com",
            "frame-src https://js.stripe.com https://hooks.stripe.com",
            "connect-src 'self' https://api.stripe.com",
            "default-src 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(real.contains(needed), "{needed}: {real}");
        }
        let sandbox = StripeJs::for_mode(StripeMode::Sandbox, "http://127.0.0.1:4111/").csp();
        assert!(
            sandbox.contains("connect-src 'self' http://127.0.0.1:4111"),
            "{sandbox}"
        );
        assert!(!sandbox.contains("stripe.com"), "{sandbox}");
        assert_eq!(
            StripeJs::for_mode(StripeMode::Test, "x").script(),
            Some("https://js.stripe.com/v3/")
        );
        assert_eq!(
            StripeJs::for_mode(StripeMode::Sandbox, "x").script(),
            Some(SANDBOX_STRIPE_JS)
        );
    }
}
