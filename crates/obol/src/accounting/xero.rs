//! Xero: a payment becomes an authorised sales invoice (`PUT Invoices`)
//! and a payment against it (`PUT Payments`), each under its own
//! `Idempotency-Key` derived from the sync's key, so a retry after either
//! call replays Xero's first answer instead of creating a second invoice.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{
    base_url, bounded_key, currency, decimal, endpoint, paid_date, required, Accounting, Delivered,
    InvoicePayment, SyncError,
};
use crate::config::XeroSettings;

/// Xero takes idempotency keys of up to 128 characters.
const MAX_KEY: usize = 128;

#[derive(Debug)]
pub(super) struct Xero {
    base_url: url::Url,
    pub(super) access_token: SecretString,
    tenant_id: String,
    account_code: String,
    sales_account_code: String,
}

#[derive(Serialize)]
struct InvoicesIn<'a> {
    #[serde(rename = "Invoices")]
    invoices: [InvoiceIn<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InvoiceIn<'a> {
    #[serde(rename = "Type")]
    kind: &'static str,
    contact: ContactIn<'a>,
    invoice_number: &'a str,
    reference: &'a str,
    date: &'a str,
    due_date: &'a str,
    currency_code: String,
    line_amount_types: &'static str,
    status: &'static str,
    line_items: Vec<LineItemIn<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContactIn<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_address: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LineItemIn<'a> {
    description: &'a str,
    quantity: i64,
    unit_amount: Box<RawValue>,
    account_code: &'a str,
}

#[derive(Serialize)]
struct PaymentsIn<'a> {
    #[serde(rename = "Payments")]
    payments: [PaymentIn<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PaymentIn<'a> {
    invoice: InvoiceRef<'a>,
    account: AccountRef<'a>,
    date: String,
    amount: Box<RawValue>,
    reference: &'a str,
}

#[derive(Serialize)]
struct InvoiceRef<'a> {
    #[serde(rename = "InvoiceID")]
    invoice_id: &'a str,
}

#[derive(Serialize)]
struct AccountRef<'a> {
    #[serde(rename = "Code")]
    code: &'a str,
}

#[derive(Deserialize)]
struct InvoicesOut {
    #[serde(rename = "Invoices")]
    invoices: Vec<InvoiceOut>,
}

#[derive(Deserialize)]
struct InvoiceOut {
    #[serde(rename = "InvoiceID")]
    invoice_id: String,
}

#[derive(Deserialize)]
struct PaymentsOut {
    #[serde(rename = "Payments")]
    payments: Vec<PaymentOut>,
}

#[derive(Deserialize)]
struct PaymentOut {
    #[serde(rename = "PaymentID")]
    payment_id: String,
}

impl Xero {
    pub(super) fn from_settings(s: &XeroSettings) -> anyhow::Result<Xero> {
        Ok(Xero {
            base_url: base_url("accounting.xero.base_url", &s.base_url)?,
            access_token: required("accounting.xero.access_token", &s.access_token)?,
            tenant_id: required("accounting.xero.tenant_id", &s.tenant_id)?,
            account_code: required("accounting.xero.account_code", &s.account_code)?,
            sales_account_code: s.sales_account_code.clone(),
        })
    }

    pub(super) async fn deliver(
        &self,
        acc: &Accounting,
        key: &str,
        p: &InvoicePayment,
    ) -> Result<Delivered, SyncError> {
        let currency = currency(p)?;
        let line_items = p
            .lines
            .iter()
            .map(|l| {
                Ok(LineItemIn {
                    description: &l.description,
                    quantity: l.quantity,
                    unit_amount: decimal(l.unit_amount, currency)?,
                    account_code: &self.sales_account_code,
                })
            })
            .collect::<Result<Vec<_>, SyncError>>()?;
        let invoice = InvoicesIn {
            invoices: [InvoiceIn {
                kind: "ACCREC",
                contact: ContactIn {
                    name: p
                        .customer_name
                        .as_deref()
                        .or(p.customer_email.as_deref())
                        .unwrap_or("Customer"),
                    email_address: p.customer_email.as_deref(),
                },
                invoice_number: &p.number,
                reference: &p.invoice_id,
                date: &p.issue_date,
                due_date: &p.due_date,
                currency_code: currency.iso_code(),
                // The lines are what the customer paid; obol does not split tax.
                line_amount_types: "NoTax",
                status: "AUTHORISED",
                line_items,
            }],
        };
        // Xero rounds unit amounts to 2 places unless asked for 4; the
        // three-decimal currencies need the third.
        let mut url = endpoint(&self.base_url, &["api.xro", "2.0", "Invoices"])?;
        url.query_pairs_mut().append_pair("unitdp", "4");
        let what = "PUT Invoices";
        let body = acc
            .send(
                what,
                self.request(acc, url, &format!("{key}-invoice"))
                    .json(&invoice),
            )
            .await?;
        // Without the invoice's id there is nothing to pay; a retry with the
        // same key replays this same answer, so it is not retryable.
        let invoice_id = acc
            .answered_id(what, &body, |a: InvoicesOut| {
                a.invoices.into_iter().next().map(|i| i.invoice_id)
            })
            .ok_or_else(|| SyncError::permanent(format!("{what}: the answer has no InvoiceID")))?;

        let payment = PaymentsIn {
            payments: [PaymentIn {
                invoice: InvoiceRef {
                    invoice_id: &invoice_id,
                },
                account: AccountRef {
                    code: &self.account_code,
                },
                date: paid_date(p),
                amount: decimal(p.amount, currency)?,
                reference: &p.stripe_payment_intent_id,
            }],
        };
        let url = endpoint(&self.base_url, &["api.xro", "2.0", "Payments"])?;
        let what = "PUT Payments";
        let body = acc
            .send(
                what,
                self.request(acc, url, &format!("{key}-payment"))
                    .json(&payment),
            )
            .await?;
        Ok(Delivered {
            external_id: acc.answered_id(what, &body, |a: PaymentsOut| {
                a.payments.into_iter().next().map(|p| p.payment_id)
            }),
        })
    }

    fn request(&self, acc: &Accounting, url: url::Url, key: &str) -> reqwest::RequestBuilder {
        acc.http
            .put(url)
            .bearer_auth(self.access_token.expose_secret())
            .header("xero-tenant-id", &self.tenant_id)
            .header(reqwest::header::ACCEPT, "application/json")
            .header("Idempotency-Key", bounded_key(key, MAX_KEY))
    }
}
