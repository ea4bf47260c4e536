//! Accounting targets (placeholder until the adapters land): the API the
//! sync job calls.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Xero,
    Quickbooks,
    Webhook,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Xero, Target::Quickbooks, Target::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Xero => "xero",
            Target::Quickbooks => "quickbooks",
            Target::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvoicePayment {
    pub invoice_id: String,
    pub number: String,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub currency: String,
    pub issue_date: String,
    pub due_date: String,
    pub lines: Vec<Line>,
    pub total: i64,
    pub amount: i64,
    pub fee_amount: i64,
    pub stripe_payment_intent_id: String,
    pub payment_id: String,
    pub paid_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    pub description: String,
    pub unit_amount: i64,
    pub quantity: i64,
    pub amount: i64,
}

#[derive(Debug, Default)]
pub struct Accounting {}

impl Accounting {
    pub fn from_config(_config: &crate::config::Config) -> anyhow::Result<Accounting> {
        Ok(Accounting {})
    }

    pub fn targets(&self) -> Vec<Target> {
        Vec::new()
    }

    pub async fn deliver(
        &self,
        target: Target,
        _idempotency_key: &str,
        _p: &InvoicePayment,
    ) -> Result<Delivered, SyncError> {
        Err(SyncError {
            retryable: false,
            message: format!("{} is not configured", target.as_str()),
        })
    }
}

pub struct Delivered {
    pub external_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SyncError {
    pub retryable: bool,
    pub message: String,
}
