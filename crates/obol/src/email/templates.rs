//! The member e-mails' words: a subject, a plain-text body and an HTML
//! body per template, rendered once when the e-mail is queued.
//!
//! Every value a caller passes is text: the HTML body is built with maud,
//! which escapes it (a description holding `<script>` arrives as text),
//! and the subject has its control characters replaced, so no value can
//! add a header. Links must be http(s). Amounts are formatted by `Money`
//! (`103.30 USD`, `500 JPY`, `1.234 KWD`), never through a float.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use crate::error::{Error, Result};
use crate::money::{Currency, Money};

/// A member e-mail and what it says. The caller fills it in (the business
/// name is `Settings::email_business_name` unless it has a better one);
/// `enqueue` renders it.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A charge needs the customer to confirm it with their bank
    /// (3-D Secure): a link to the page that does.
    PaymentActionRequired {
        business: String,
        /// Minor units of `currency`.
        amount: i64,
        /// ISO 4217, any case (`usd`).
        currency: String,
        /// What the charge is for ("Wine club, December shipment").
        description: String,
        action_url: String,
        /// When the link stops working.
        expires_at: DateTime<Utc>,
    },
    /// obol needs a (new) card: the last one was declined, or there is
    /// none on file. A link to the card-update page.
    CardUpdateRequested {
        business: String,
        /// Why, as a phrase that follows "because": "your card was
        /// declined", "we have no card on file".
        reason: String,
        /// The charge waiting for the card, minor units and currency, if any.
        amount: Option<(i64, String)>,
        description: String,
        update_url: String,
        expires_at: DateTime<Utc>,
    },
}

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Template {
    /// The template's name, as `emails.template` stores it.
    pub fn name(&self) -> &'static str {
        match self {
            Template::PaymentActionRequired { .. } => "payment_action_required",
            Template::CardUpdateRequested { .. } => "card_update_requested",
        }
    }

    /// The subject and both bodies. Fails for an amount `Money` refuses
    /// (a negative one, an unknown currency) or a link that is not
    /// http(s): the caller's mistake, surfaced before anything is queued.
    pub fn render(&self) -> Result<Rendered> {
        match self {
            Template::PaymentActionRequired {
                business,
                amount,
                currency,
                description,
                action_url,
                expires_at,
            } => {
                let money = money(*amount, currency)?;
                link(action_url)?;
                let expires = when(expires_at);
                let subject = format!("{business}: please confirm your payment of {money}");
                let text = format!(
                    "Hello,\n\n\
                     {business} is charging {money} for {description}, and your bank asks you \
                     to confirm the payment.\n\n\
                     Confirm it here:\n{action_url}\n\n\
                     The link works until {expires}. If you do not confirm it, the payment \
                     is not made.\n\n\
                     {business}\n"
                );
                let html = layout(
                    &subject,
                    business,
                    html! {
                        p { "Hello," }
                        p {
                            (business) " is charging " strong { (money) } " for "
                            (description) ", and your bank asks you to confirm the payment."
                        }
                        p { a href=(action_url) { "Confirm the payment" } }
                        p {
                            "The link works until " (expires)
                            ". If you do not confirm it, the payment is not made."
                        }
                    },
                );
                Ok(Rendered {
                    subject: header_text(&subject),
                    text,
                    html,
                })
            }
            Template::CardUpdateRequested {
                business,
                reason,
                amount,
                description,
                update_url,
                expires_at,
            } => {
                let money = amount
                    .as_ref()
                    .map(|(minor, currency)| money(*minor, currency))
                    .transpose()?;
                link(update_url)?;
                let expires = when(expires_at);
                let subject = format!("{business}: please update your card");
                let what = match &money {
                    Some(m) => format!("{business} could not charge {m} for {description}"),
                    None => format!("{business} needs a card for {description}"),
                };
                let text = format!(
                    "Hello,\n\n\
                     {what}, because {reason}.\n\n\
                     Add or update your card here:\n{update_url}\n\n\
                     The link works until {expires}.\n\n\
                     {business}\n"
                );
                let html = layout(
                    &subject,
                    business,
                    html! {
                        p { "Hello," }
                        p {
                            @match &money {
                                Some(m) => {
                                    (business) " could not charge " strong { (m) } " for " (description)
                                }
                                None => { (business) " needs a card for " (description) }
                            }
                            ", because " (reason) "."
                        }
                        p { a href=(update_url) { "Update your card" } }
                        p { "The link works until " (expires) "." }
                    },
                );
                Ok(Rendered {
                    subject: header_text(&subject),
                    text,
                    html,
                })
            }
        }
    }
}

fn layout(subject: &str, business: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (subject) }
            }
            body style="font-family: -apple-system, 'Segoe UI', Roboto, sans-serif; line-height: 1.5; color: #1a1a1a; max-width: 36rem; margin: 0 auto; padding: 1rem;" {
                (body)
                p style="color: #555;" { (business) }
            }
        }
    }
    .into_string()
}

/// `10330` in `usd` is `103.30 USD`.
fn money(minor: i64, currency: &str) -> Result<String> {
    let currency = Currency::parse(currency)
        .map_err(|e| Error::internal(format!("an e-mail's currency: {e}")))?;
    Money::balance(minor, currency)
        .map(|m| m.to_string())
        .map_err(|e| Error::internal(format!("an e-mail's amount: {e}")))
}

fn link(url: &str) -> Result<()> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(Error::internal("an e-mail's link is not an http(s) URL")),
    }
}

/// `3 December 2026, 14:00 UTC`.
fn when(at: &DateTime<Utc>) -> String {
    at.format("%-d %B %Y, %H:%M UTC").to_string()
}

/// One line of header text: control characters (a newline would start a
/// header of its own) become spaces.
fn header_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expires() -> DateTime<Utc> {
        "2026-12-03T14:00:00Z".parse().unwrap()
    }

    fn action_required(description: &str) -> Template {
        Template::PaymentActionRequired {
            business: "Weingut Ana".into(),
            amount: 10330,
            currency: "usd".into(),
            description: description.into(),
            action_url: "https://pay.example/3ds/abc?x=1&y=2".into(),
            expires_at: expires(),
        }
    }

    #[test]
    fn payment_action_required_names_the_business_the_amount_and_the_link() {
        let r = action_required("Wine club, December").render().unwrap();
        assert_eq!(
            r.subject,
            "Weingut Ana: please confirm your payment of 103.30 USD"
        );
        for body in [&r.text, &r.html] {
            assert!(body.contains("Weingut Ana"), "{body}");
            assert!(body.contains("103.30 USD"), "{body}");
            assert!(body.contains("Wine club, December"), "{body}");
            assert!(body.contains("3 December 2026, 14:00 UTC"), "{body}");
        }
        assert!(r.text.contains("https://pay.example/3ds/abc?x=1&y=2"));
        assert!(r
            .html
            .contains(r#"href="https://pay.example/3ds/abc?x=1&amp;y=2""#));
    }

    #[test]
    fn html_escapes_what_the_caller_passes() {
        let r = action_required("<script>alert(1)</script> & more")
            .render()
            .unwrap();
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(r
            .html
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
        // The plain-text body is text: it carries the words as they are.
        assert!(r.text.contains("<script>alert(1)</script> & more"));
    }

    #[test]
    fn card_update_says_why_with_or_without_an_amount() {
        let t = Template::CardUpdateRequested {
            business: "Weingut Ana".into(),
            reason: "your card was declined".into(),
            amount: Some((500, "jpy".into())),
            description: "the December shipment".into(),
            update_url: "https://pay.example/cards/xyz".into(),
            expires_at: expires(),
        };
        let r = t.render().unwrap();
        assert_eq!(r.subject, "Weingut Ana: please update your card");
        assert!(r.text.contains(
            "Weingut Ana could not charge 500 JPY for the December shipment, because your card was declined."
        ), "{}", r.text);
        assert!(r.html.contains("500 JPY"));
        assert!(r.html.contains(r#"href="https://pay.example/cards/xyz""#));
        assert_eq!(t.name(), "card_update_requested");

        let t = Template::CardUpdateRequested {
            business: "Weingut Ana".into(),
            reason: "we have no card on file".into(),
            amount: None,
            description: "your wine club membership".into(),
            update_url: "https://pay.example/cards/xyz".into(),
            expires_at: expires(),
        };
        let r = t.render().unwrap();
        assert!(r.text.contains(
            "Weingut Ana needs a card for your wine club membership, because we have no card on file."
        ), "{}", r.text);
    }

    #[test]
    fn a_bad_amount_a_bad_link_or_a_newline_in_the_subject_is_handled() {
        let mut t = action_required("x");
        if let Template::PaymentActionRequired { currency, .. } = &mut t {
            *currency = "zzz".into();
        }
        assert!(t.render().is_err());
        let mut t = action_required("x");
        if let Template::PaymentActionRequired { action_url, .. } = &mut t {
            *action_url = "javascript:alert(1)".into();
        }
        assert!(t.render().is_err());
        let mut t = action_required("x");
        if let Template::PaymentActionRequired { business, .. } = &mut t {
            *business = "Ana\r\nBcc: all@example.com".into();
        }
        let r = t.render().unwrap();
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
    }
}
