//! The Stripe webhook inbox: verify, store, acknowledge; then apply.
//!
//! `receive` runs inside `POST /webhooks/stripe`: the signature is checked
//! on the raw body, the event is written (unique on Stripe's id), and only
//! after the commit does Stripe get its 2xx. Application happens later, in
//! `worker`, from the stored rows, so a crash between the two loses
//! nothing and a redelivery is acknowledged without being applied again.

pub mod apply;
pub mod worker;

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::storage::webhook_events::NewWebhookEvent;
use crate::storage::{self, Store};
use crate::stripe::signature::{self, SignatureError};

/// The fields of a Stripe event the inbox indexes; the rest stays in the
/// stored payload.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
    /// Set on events of connected accounts (Stripe Connect).
    pub account: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// False when the event was already in the inbox (a redelivery).
    pub stored: bool,
}

/// Verifies and stores one delivery. Nothing is stored unless the
/// signature holds.
pub async fn receive(
    store: &Store,
    secrets: &[SecretString],
    payload: &[u8],
    signature_header: Option<&str>,
) -> Result<Receipt> {
    let now = chrono::Utc::now().timestamp();
    signature::verify(
        payload,
        signature_header,
        secrets,
        now,
        signature::DEFAULT_TOLERANCE_SECONDS,
    )
    .map_err(|e| match e {
        SignatureError::Missing
        | SignatureError::Malformed
        | SignatureError::Expired
        | SignatureError::Mismatch => Error::InvalidSignature(e),
    })?;
    let envelope: Envelope = serde_json::from_slice(payload)
        .map_err(|e| Error::InvalidBody(format!("not a Stripe event: {e}")))?;
    let text = std::str::from_utf8(payload)
        .map_err(|_| Error::InvalidBody("the event is not UTF-8".into()))?;
    store_event(store, &envelope, text, "webhook").await
}

/// Stores an event obtained from Stripe (delivered or fetched).
pub async fn store_event(
    store: &Store,
    envelope: &Envelope,
    payload: &str,
    source: &str,
) -> Result<Receipt> {
    let mut handle = store.acquire().await?;
    let stored = handle
        .conn()
        .insert_webhook_event(&NewWebhookEvent {
            stripe_event_id: &envelope.id,
            account_id: envelope
                .account
                .as_deref()
                .unwrap_or(crate::context::AccountId::PLATFORM),
            event_type: &envelope.event_type,
            stripe_created: envelope.created,
            livemode: envelope.livemode,
            payload,
            source,
            now: storage::now(),
        })
        .await?;
    Ok(Receipt { stored })
}
