//! The invoice writer: what a PaymentIntent made for an invoice does to
//! it, inside the caller's transaction (the inbox applying an event, an
//! API call observing an intent, reconciliation), so the payment, the
//! invoice and its timeline commit together or not at all.
//!
//! - Succeeded: the payment and the fee line it carried are added to the
//!   invoice once (the attempt moves to `succeeded`, guarded), the invoice
//!   moves per `ledger::invoice::transition`, `invoice.paid` is queued and
//!   so is the accounting fan-out job. Money for a void or already paid
//!   invoice is recorded on its timeline and counted nowhere.
//! - Canceled: the attempt is void; the invoice stays payable.
//! - A declined card: a timeline note; the intent can still be confirmed.
//!
//! The fee rate type lives here too, since `Settings` carries the default.

use std::collections::BTreeMap;

use crate::context::AccountId;
use crate::error::{Error, Result};
use crate::ledger::invoice::{self, InvoiceInput, InvoiceStatus};
use crate::ledger::IntentStatus;
use crate::money::{Currency, FeeSchedule};
use crate::payments::{Cause, IntentSeen};
use crate::storage::invoices::{AttemptRow, InvoiceRow, NewInvoiceEntry};
use crate::storage::{self, Conn};

/// A fee rate: basis points plus a fixed part per currency (minor units;
/// a currency not listed has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeRate {
    pub percent_bps: u32,
    /// Lowercase currency → minor units.
    pub fixed: BTreeMap<String, i64>,
}

impl FeeRate {
    pub fn fixed_for(&self, currency: Currency) -> i64 {
        self.fixed.get(currency.as_str()).copied().unwrap_or(0)
    }

    pub fn schedule_for(&self, currency: Currency) -> FeeSchedule {
        FeeSchedule::new(self.percent_bps, self.fixed_for(currency))
    }
}

/// An attempt's status.
pub const OPEN: &str = "open";
pub const SUCCEEDED: &str = "succeeded";
pub const VOID: &str = "void";

/// Whether the invoice an intent names exists in the cause's account; an
/// event for one that does not is ignored with this reason.
pub async fn unknown(
    conn: &mut Conn<'_>,
    account: &str,
    invoice_id: &str,
) -> Result<Option<String>> {
    let account = AccountId::from_db(account.to_string());
    Ok(match conn.get_invoice(&account, invoice_id).await? {
        Some(_) => None,
        None => Some(format!(
            "the payment intent names invoice {invoice_id}, which obol does not know"
        )),
    })
}

/// Applies one observation of an invoice's intent (`applied`: the
/// payment writer moved or updated the payment for it).
pub async fn observe_intent(
    conn: &mut Conn<'_>,
    cause: &Cause<'_>,
    invoice_id: &str,
    pi: &IntentSeen,
    applied: bool,
) -> Result<()> {
    let account = AccountId::from_db(cause.account_id.to_string());
    conn.lock_invoice(invoice_id).await?;
    let Some(invoice) = conn.get_invoice(&account, invoice_id).await? else {
        return Ok(());
    };
    let attempt = conn.get_attempt_by_intent(cause.account_id, &pi.id).await?;
    let now = storage::now();
    match pi.status {
        IntentStatus::Succeeded => succeeded(conn, cause, &invoice, attempt, pi).await,
        IntentStatus::Canceled => {
            if let Some(a) = attempt.filter(|a| a.status == OPEN) {
                let reason = pi
                    .cancellation_reason
                    .clone()
                    .unwrap_or_else(|| "canceled".into());
                if conn
                    .move_invoice_attempt(&a.id, OPEN, VOID, Some(&reason), now)
                    .await?
                {
                    let note = format!(
                        "payment intent {} was canceled ({reason}); the invoice can be paid again",
                        pi.id
                    );
                    note_on(conn, cause, &invoice, &note).await?;
                }
            }
            Ok(())
        }
        IntentStatus::RequiresPaymentMethod if pi.failed_attempt && applied => {
            let note = format!(
                "a payment on {} was declined; the customer can try again",
                pi.id
            );
            note_on(conn, cause, &invoice, &note).await
        }
        _ => Ok(()),
    }
}

async fn succeeded(
    conn: &mut Conn<'_>,
    cause: &Cause<'_>,
    invoice: &InvoiceRow,
    attempt: Option<AttemptRow>,
    pi: &IntentSeen,
) -> Result<()> {
    let now = storage::now();
    let amount = if pi.amount_received > 0 {
        pi.amount_received
    } else {
        pi.money.minor()
    };
    // Count each intent once: its attempt moves to succeeded exactly once.
    let fee = match &attempt {
        Some(a) if a.status == SUCCEEDED => return Ok(()),
        Some(a) => {
            if !conn
                .move_invoice_attempt(&a.id, &a.status, SUCCEEDED, None, now)
                .await?
            {
                return Err(Error::internal(
                    "an invoice attempt changed concurrently; retrying",
                ));
            }
            a.fee_amount
        }
        // An intent obol did not make names this invoice (made in Stripe's
        // dashboard, say): recorded, with no fee line of its own.
        None => {
            let row = AttemptRow {
                id: crate::ids::InvoiceAttemptId::generate().into(),
                account_id: invoice.account_id.clone(),
                invoice_id: invoice.id.clone(),
                stripe_payment_intent_id: pi.id.clone(),
                amount,
                fee_amount: 0,
                status: SUCCEEDED.into(),
                void_reason: None,
                created_at: now,
                updated_at: now,
            };
            if conn.insert_invoice_attempt(&row).await?.is_none() {
                return Err(Error::internal(
                    "an invoice attempt was recorded concurrently; retrying",
                ));
            }
            0
        }
    };
    let payment_id = conn
        .get_payment_by_intent(cause.account_id, &pi.id)
        .await?
        .map(|p| p.id);
    if pi.money.currency().as_str() != invoice.currency {
        let note = format!(
            "payment intent {} succeeded in {}, not the invoice's {}: not counted; refund it",
            pi.id,
            pi.money.currency(),
            invoice.currency
        );
        tracing::warn!(invoice = %invoice.id, intent = %pi.id, "{note}");
        return note_on(conn, cause, invoice, &note).await;
    }
    let balance = invoice.total - invoice.amount_paid;
    let input = InvoiceInput::Paid {
        covers_balance: amount >= balance,
    };
    let to = match invoice::transition(invoice.status, input) {
        Ok(to) => to,
        Err(refused) => {
            let note = format!(
                "payment intent {} succeeded for {amount} while the invoice is {}: not counted; refund it if it is not owed",
                pi.id,
                refused.from.as_str()
            );
            tracing::warn!(invoice = %invoice.id, intent = %pi.id, "{note}");
            return note_on(conn, cause, invoice, &note).await;
        }
    };
    if !conn
        .add_invoice_payment(
            &invoice.id,
            invoice.status,
            invoice.amount_paid,
            to,
            amount,
            fee,
            now,
        )
        .await?
    {
        return Err(Error::internal(
            "the invoice changed concurrently; retrying",
        ));
    }
    let mut note = format!("paid {amount} by payment intent {}", pi.id);
    if fee > 0 {
        note.push_str(&format!(" (fee line {fee})"));
    }
    if amount > balance {
        note.push_str(&format!("; {} more than the balance", amount - balance));
    }
    conn.insert_invoice_entry(&NewInvoiceEntry {
        invoice,
        from: Some(invoice.status),
        to,
        note: Some(&note),
        at: now,
        cause_kind: cause.kind,
        cause_ref: cause.reference,
    })
    .await?;
    let after = conn
        .get_invoice(&invoice.account(), &invoice.id)
        .await?
        .ok_or_else(|| Error::internal("the invoice vanished"))?;
    if to == InvoiceStatus::Paid {
        crate::outbox::notify_invoice(conn, "invoice.paid", &after, payment_id.as_deref(), now)
            .await?;
    }
    if let Some(payment_id) = payment_id {
        crate::jobs::accounting::enqueue_fanout(conn, &after, &payment_id, now).await?;
    }
    tracing::info!(invoice = %invoice.id, intent = %pi.id, amount, status = to.as_str(), "invoice payment recorded");
    Ok(())
}

/// A timeline entry that changes nothing but says what happened.
pub async fn note_on(
    conn: &mut Conn<'_>,
    cause: &Cause<'_>,
    invoice: &InvoiceRow,
    note: &str,
) -> Result<()> {
    conn.insert_invoice_entry(&NewInvoiceEntry {
        invoice,
        from: Some(invoice.status),
        to: invoice.status,
        note: Some(note),
        at: storage::now(),
        cause_kind: cause.kind,
        cause_ref: cause.reference,
    })
    .await
}
