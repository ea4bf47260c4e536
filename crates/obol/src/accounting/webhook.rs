//! The generic target: an `invoice.payment_recorded` event POSTed as JSON,
//! signed per Standard Webhooks like obol's notifications. `webhook-id` is
//! the sync's idempotency key, so a receiver deduplicating on it (as the
//! specification asks) records a retried payment once. Amounts stay in
//! minor units, as in obol's API.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{Accounting, Delivered, InvoicePayment, SyncError};

pub(super) struct Webhook {
    url: url::Url,
    pub(super) secret: SecretString,
}

impl std::fmt::Debug for Webhook {
    /// The URL's origin only: its path or query may hold a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.origin().ascii_serialization())
            .field("secret", &self.secret)
            .finish()
    }
}

/// The event's body.
#[derive(Serialize)]
struct PaymentRecorded<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    idempotency_key: &'a str,
    invoice_id: &'a str,
    number: &'a str,
    amount: i64,
    fee_amount: i64,
    total: i64,
    currency: &'a str,
    stripe_payment_intent_id: &'a str,
    payment_id: &'a str,
    paid_at: DateTime<Utc>,
}

impl Webhook {
    pub(super) fn new(url: &str, secret: SecretString) -> anyhow::Result<Webhook> {
        Ok(Webhook {
            // No URL in the message: it may hold a token.
            url: url::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("accounting.webhook_url is not a URL: {e}"))?,
            secret,
        })
    }

    pub(super) async fn deliver(
        &self,
        acc: &Accounting,
        key: &str,
        p: &InvoicePayment,
    ) -> Result<Delivered, SyncError> {
        let body = serde_json::to_string(&PaymentRecorded {
            kind: "invoice.payment_recorded",
            idempotency_key: key,
            invoice_id: &p.invoice_id,
            number: &p.number,
            amount: p.amount,
            fee_amount: p.fee_amount,
            total: p.total,
            currency: &p.currency,
            stripe_payment_intent_id: &p.stripe_payment_intent_id,
            payment_id: &p.payment_id,
            paid_at: p.paid_at,
        })
        .map_err(|e| SyncError::permanent(format!("encoding the event: {e}")))?;
        // Signed afresh on every attempt: receivers refuse old timestamps.
        let timestamp = Utc::now().timestamp();
        let signature = crate::outbox::sign(self.secret.expose_secret(), key, timestamp, &body)
            .ok_or_else(|| SyncError::permanent("accounting.webhook_secret is not base64"))?;
        acc.send(
            "POST",
            acc.http
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("webhook-id", key)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body),
        )
        .await?;
        Ok(Delivered { external_id: None })
    }
}
