//! The invoice state machine: one pure function, `transition`, that every
//! change of an invoice's status goes through (the host's process and
//! void calls, the payment writer recording a payment), and `payable`,
//! the one rule of who may start paying it.
//!
//! ```text
//! draft ──process──▶ processed ──payment (whole balance)──▶ paid
//!   │                 │    ▲  └──payment (part of it)──▶ partially_paid ──rest──▶ paid
//!   │                 │    └── process again: a new link, the old one dies
//!   └──────void───────┴──▶ void
//! ```
//!
//! `processed` is the payable state. A PaymentIntent that fails (a declined
//! card) or is canceled leaves the invoice `processed`: the customer pays
//! again, on the same intent while Stripe can still confirm it, else on a
//! new one. `paid` and `void` are final; money that arrives for a void or
//! already paid invoice is recorded on its timeline (`Refused` here), never
//! lost and never counted twice.
//!
//! Nothing here touches storage; `invoices::` writes each move with its
//! timeline entry in one transaction, guarded by the status it read.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Being written: not payable, no link yet.
    Draft,
    /// Issued: payable through its public link.
    Processed,
    /// Part of the total was paid (a payment for less than the balance).
    PartiallyPaid,
    Paid,
    Void,
}

impl InvoiceStatus {
    pub const ALL: [InvoiceStatus; 5] = [
        InvoiceStatus::Draft,
        InvoiceStatus::Processed,
        InvoiceStatus::PartiallyPaid,
        InvoiceStatus::Paid,
        InvoiceStatus::Void,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Processed => "processed",
            InvoiceStatus::PartiallyPaid => "partially_paid",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        InvoiceStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl TryFrom<String> for InvoiceStatus {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        InvoiceStatus::parse(&s).ok_or_else(|| format!("unknown invoice status {s:?}"))
    }
}

/// What can happen to an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceInput {
    /// The host issues it (again: a fresh link).
    Process,
    /// The host withdraws it.
    Void,
    /// A payment succeeded; `covers_balance`: it paid everything still due.
    Paid { covers_balance: bool },
}

/// A move the machine refuses, with the status it was refused in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub from: InvoiceStatus,
    pub input: InvoiceInput,
}

impl Refused {
    /// For the caller: why, in words.
    pub fn message(&self) -> String {
        let what = match self.input {
            InvoiceInput::Process => "processed",
            InvoiceInput::Void => "voided",
            InvoiceInput::Paid { .. } => "paid",
        };
        format!(
            "the invoice is {}; it cannot be {what}",
            self.from.as_str().replace('_', " ")
        )
    }
}

/// The status after `input`, or the refusal.
pub fn transition(from: InvoiceStatus, input: InvoiceInput) -> Result<InvoiceStatus, Refused> {
    use InvoiceInput as I;
    use InvoiceStatus as S;
    let refused = Refused { from, input };
    match (from, input) {
        (S::Draft | S::Processed, I::Process) => Ok(S::Processed),
        (S::Draft | S::Processed, I::Void) => Ok(S::Void),
        (S::Processed | S::PartiallyPaid, I::Paid { covers_balance }) => Ok(if covers_balance {
            S::Paid
        } else {
            S::PartiallyPaid
        }),
        (S::Draft | S::PartiallyPaid | S::Paid | S::Void, _) => Err(refused),
    }
}

/// Why an invoice cannot be paid online now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPayable {
    Draft,
    Void,
    Paid,
    PartiallyPaid,
}

impl NotPayable {
    pub fn message(self) -> &'static str {
        match self {
            NotPayable::Draft => "this invoice is a draft: it is not payable until it is processed",
            NotPayable::Void => "this invoice was voided: there is nothing to pay",
            NotPayable::Paid => "this invoice is already paid",
            NotPayable::PartiallyPaid => {
                "this invoice is partially paid: the rest cannot be paid online; contact the business"
            }
        }
    }
}

/// Only a processed invoice with its whole balance outstanding is payable.
pub fn payable(status: InvoiceStatus, amount_paid: i64) -> Result<(), NotPayable> {
    match status {
        InvoiceStatus::Processed if amount_paid == 0 => Ok(()),
        InvoiceStatus::Processed | InvoiceStatus::PartiallyPaid => Err(NotPayable::PartiallyPaid),
        InvoiceStatus::Draft => Err(NotPayable::Draft),
        InvoiceStatus::Paid => Err(NotPayable::Paid),
        InvoiceStatus::Void => Err(NotPayable::Void),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InvoiceInput as I;
    use InvoiceStatus as S;

    #[test]
    fn the_table() {
        assert_eq!(transition(S::Draft, I::Process), Ok(S::Processed));
        assert_eq!(transition(S::Processed, I::Process), Ok(S::Processed));
        assert_eq!(transition(S::Draft, I::Void), Ok(S::Void));
        assert_eq!(transition(S::Processed, I::Void), Ok(S::Void));
        let whole = I::Paid {
            covers_balance: true,
        };
        let part = I::Paid {
            covers_balance: false,
        };
        assert_eq!(transition(S::Processed, whole), Ok(S::Paid));
        assert_eq!(transition(S::Processed, part), Ok(S::PartiallyPaid));
        assert_eq!(transition(S::PartiallyPaid, whole), Ok(S::Paid));
        for from in [S::Paid, S::Void] {
            for input in [I::Process, I::Void, whole, part] {
                assert_eq!(transition(from, input), Err(Refused { from, input }));
            }
        }
        assert!(transition(S::Draft, whole).is_err());
        assert!(transition(S::PartiallyPaid, I::Void).is_err());
        assert_eq!(
            transition(S::Paid, I::Void).unwrap_err().message(),
            "the invoice is paid; it cannot be voided"
        );
    }

    #[test]
    fn only_a_processed_unpaid_invoice_is_payable() {
        assert_eq!(payable(S::Processed, 0), Ok(()));
        assert_eq!(payable(S::Processed, 10), Err(NotPayable::PartiallyPaid));
        assert_eq!(payable(S::Draft, 0), Err(NotPayable::Draft));
        assert_eq!(payable(S::Void, 0), Err(NotPayable::Void));
        assert_eq!(payable(S::Paid, 100), Err(NotPayable::Paid));
        assert_eq!(payable(S::PartiallyPaid, 5), Err(NotPayable::PartiallyPaid));
    }

    /// Final states stay final whatever arrives, and nothing returns to
    /// draft.
    #[test]
    fn nothing_leaves_a_final_state_or_returns_to_draft() {
        let inputs = [
            I::Process,
            I::Void,
            I::Paid {
                covers_balance: true,
            },
            I::Paid {
                covers_balance: false,
            },
        ];
        for from in S::ALL {
            for input in inputs {
                if let Ok(to) = transition(from, input) {
                    assert_ne!(to, S::Draft);
                    assert!(!matches!(from, S::Paid | S::Void), "{from:?} {input:?}");
                }
            }
        }
    }
}
