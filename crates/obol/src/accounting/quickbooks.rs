//! QuickBooks Online: a payment becomes a sales receipt (a sale paid on
//! the spot), created once per `requestid`, QuickBooks' idempotency key: a
//! repeated id gets the first answer back.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{
    base_url, bounded_key, currency, decimal, endpoint, paid_date, required, Accounting, Delivered,
    InvoicePayment, SyncError,
};
use crate::config::QuickbooksSettings;

/// QuickBooks takes request ids of up to 50 characters.
const MAX_KEY: usize = 50;
/// The API minor version the request shapes follow.
const MINOR_VERSION: &str = "75";

#[derive(Debug)]
pub(super) struct Quickbooks {
    base_url: url::Url,
    realm_id: String,
    pub(super) access_token: SecretString,
    item_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SalesReceiptIn<'a> {
    doc_number: &'a str,
    txn_date: String,
    currency_ref: Ref,
    private_note: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bill_email: Option<EmailIn<'a>>,
    total_amt: Box<RawValue>,
    line: Vec<LineIn<'a>>,
}

/// QuickBooks' reference to another entity: `{"value": "…"}`.
#[derive(Serialize)]
struct Ref {
    value: String,
}

#[derive(Serialize)]
struct EmailIn<'a> {
    #[serde(rename = "Address")]
    address: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LineIn<'a> {
    detail_type: &'static str,
    amount: Box<RawValue>,
    description: &'a str,
    sales_item_line_detail: SalesItemLineDetail,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SalesItemLineDetail {
    qty: i64,
    unit_price: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item_ref: Option<Ref>,
}

#[derive(Deserialize)]
struct SalesReceiptAnswer {
    #[serde(rename = "SalesReceipt")]
    sales_receipt: SalesReceiptOut,
}

#[derive(Deserialize)]
struct SalesReceiptOut {
    #[serde(rename = "Id")]
    id: String,
}

impl Quickbooks {
    pub(super) fn from_settings(s: &QuickbooksSettings) -> anyhow::Result<Quickbooks> {
        Ok(Quickbooks {
            base_url: base_url("accounting.quickbooks.base_url", &s.base_url)?,
            realm_id: required("accounting.quickbooks.realm_id", &s.realm_id)?,
            access_token: required("accounting.quickbooks.access_token", &s.access_token)?,
            item_id: s.item_id.clone(),
        })
    }

    pub(super) async fn deliver(
        &self,
        acc: &Accounting,
        key: &str,
        p: &InvoicePayment,
    ) -> Result<Delivered, SyncError> {
        let currency = currency(p)?;
        let line = p
            .lines
            .iter()
            .map(|l| {
                Ok(LineIn {
                    detail_type: "SalesItemLineDetail",
                    amount: decimal(l.amount, currency)?,
                    description: &l.description,
                    sales_item_line_detail: SalesItemLineDetail {
                        qty: l.quantity,
                        unit_price: decimal(l.unit_amount, currency)?,
                        item_ref: self.item_id.clone().map(|value| Ref { value }),
                    },
                })
            })
            .collect::<Result<Vec<_>, SyncError>>()?;
        let receipt = SalesReceiptIn {
            doc_number: &p.number,
            txn_date: paid_date(p),
            currency_ref: Ref {
                value: currency.iso_code(),
            },
            private_note: format!(
                "obol invoice {} paid by Stripe {}",
                p.invoice_id, p.stripe_payment_intent_id
            ),
            bill_email: p
                .customer_email
                .as_deref()
                .map(|address| EmailIn { address }),
            // What was received; QuickBooks recomputes it from the lines.
            total_amt: decimal(p.amount, currency)?,
            line,
        };
        let mut url = endpoint(
            &self.base_url,
            &["v3", "company", &self.realm_id, "salesreceipt"],
        )?;
        url.query_pairs_mut()
            .append_pair("requestid", &bounded_key(key, MAX_KEY))
            .append_pair("minorversion", MINOR_VERSION);
        let what = "POST salesreceipt";
        let body = acc
            .send(
                what,
                acc.http
                    .post(url)
                    .bearer_auth(self.access_token.expose_secret())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .json(&receipt),
            )
            .await?;
        Ok(Delivered {
            external_id: acc.answered_id(what, &body, |a: SalesReceiptAnswer| {
                Some(a.sales_receipt.id)
            }),
        })
    }
}
