//! The payment state machine: one pure function, `transition`, that every
//! change goes through — API calls, webhook events, reconciliation, jobs.
//!
//! Stripe delivers events at least once and in any order, so a payment is
//! not moved by *which* event arrived but by what the Stripe object looked
//! like (`Observation`) and *when* Stripe saw it that way (the event's
//! `created`, or the retrieval time for reconciliation). An observation
//! older than the last one applied changes nothing; within the same second,
//! the more advanced state wins. Reconciliation observes the object as it
//! is now, which is newer than every event, so the ledger converges to
//! Stripe's state whatever was lost or reordered.
//!
//! Refunds are money returned *after* capture. Stripe's charge counts more
//! in `amount_refunded`: the released rest of a partial capture and the
//! whole of a cancelled authorization. `ChargeAmounts::refunded_after_capture`
//! takes that out (`amount_refunded − (amount − amount_captured)` for a
//! captured charge, never below 0; 0 for an uncaptured one), so whichever
//! of the charge, capture, cancel and refund events arrives first, and
//! whether it came by webhook or by reconciliation, the amount is the same.
//!
//! Nothing here touches storage; `storage/` writes the outcome, guarded by
//! the state it read.

use serde::{Deserialize, Serialize};

/// A payment's state in obol's ledger (DESIGN.md "Payment states").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    Pending,
    RequiresAction,
    Authorized,
    Completed,
    PartiallyRefunded,
    Refunded,
    Failed,
    Canceled,
}

impl PaymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Pending => "pending",
            PaymentState::RequiresAction => "requires_action",
            PaymentState::Authorized => "authorized",
            PaymentState::Completed => "completed",
            PaymentState::PartiallyRefunded => "partially_refunded",
            PaymentState::Refunded => "refunded",
            PaymentState::Failed => "failed",
            PaymentState::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => PaymentState::Pending,
            "requires_action" => PaymentState::RequiresAction,
            "authorized" => PaymentState::Authorized,
            "completed" => PaymentState::Completed,
            "partially_refunded" => PaymentState::PartiallyRefunded,
            "refunded" => PaymentState::Refunded,
            "failed" => PaymentState::Failed,
            "canceled" => PaymentState::Canceled,
            _ => return None,
        })
    }

    /// No Stripe event can move the payment on (refund amounts aside).
    pub fn is_final(self) -> bool {
        match self {
            PaymentState::Refunded | PaymentState::Canceled => true,
            PaymentState::Pending
            | PaymentState::RequiresAction
            | PaymentState::Authorized
            | PaymentState::Completed
            | PaymentState::PartiallyRefunded
            | PaymentState::Failed => false,
        }
    }

    /// Money has been captured.
    pub fn is_captured(self) -> bool {
        match self {
            PaymentState::Completed | PaymentState::PartiallyRefunded | PaymentState::Refunded => {
                true
            }
            PaymentState::Pending
            | PaymentState::RequiresAction
            | PaymentState::Authorized
            | PaymentState::Failed
            | PaymentState::Canceled => false,
        }
    }

    /// How far along a payment is; breaks ties between observations made
    /// in the same second (Stripe's `created` has one-second resolution).
    fn progress(self) -> u8 {
        match self {
            PaymentState::Pending => 0,
            PaymentState::RequiresAction => 1,
            PaymentState::Failed => 2,
            PaymentState::Authorized => 3,
            PaymentState::Canceled => 4,
            PaymentState::Completed => 5,
            PaymentState::PartiallyRefunded => 6,
            PaymentState::Refunded => 7,
        }
    }

    /// Moves Stripe can make. Everything else is a late or duplicate
    /// observation and leaves the payment as it is.
    fn can_move_to(self, to: PaymentState) -> bool {
        use PaymentState::*;
        match self {
            Pending => to != Pending,
            RequiresAction => matches!(
                to,
                Pending | Failed | Authorized | Completed | PartiallyRefunded | Refunded | Canceled
            ),
            Failed => matches!(
                to,
                Pending
                    | RequiresAction
                    | Authorized
                    | Completed
                    | PartiallyRefunded
                    | Refunded
                    | Canceled
            ),
            Authorized => matches!(to, Completed | PartiallyRefunded | Refunded | Canceled),
            Completed => matches!(to, PartiallyRefunded | Refunded),
            PartiallyRefunded => matches!(to, Refunded),
            Refunded | Canceled => false,
        }
    }
}

/// A PaymentIntent's status, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Succeeded,
    Canceled,
}

/// The amounts of a charge as Stripe showed them.
///
/// Stripe's `amount_refunded` is not "money given back": it also counts
/// money that was never captured — the released rest of a partial capture,
/// and the whole amount of a cancelled (uncaptured) authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeAmounts {
    pub amount: i64,
    /// Stripe's `amount_captured`; 0 on an uncaptured charge.
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub captured: bool,
}

impl ChargeAmounts {
    /// What was captured (0 for an uncaptured charge). A captured charge
    /// without `amount_captured` (older API versions) was captured in full.
    pub fn captured_amount(&self) -> i64 {
        match (self.captured, self.amount_captured > 0) {
            (false, _) => 0,
            (true, true) => self.amount_captured,
            (true, false) => self.amount,
        }
    }

    /// Money returned after capture: the charge's `amount_refunded` less
    /// what was released without ever being captured, never below 0. An
    /// uncaptured charge has refunded nothing, whatever Stripe reports.
    pub fn refunded_after_capture(&self) -> i64 {
        if !self.captured {
            return 0;
        }
        let released = (self.amount - self.captured_amount()).max(0);
        (self.amount_refunded - released).max(0)
    }
}

/// What a Stripe object said about a payment, and when Stripe said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub status: IntentStatus,
    /// The intent carried `last_payment_error` (an attempt failed).
    pub failed_attempt: bool,
    /// Captured amount (the intent's `amount_received`), minor units.
    pub amount_received: i64,
    /// The charge, when the observation carried it (a charge event, or an
    /// intent retrieved with `latest_charge` expanded); `None` says nothing
    /// about refunds.
    pub charge: Option<ChargeAmounts>,
    /// Unix seconds: the event's `created`, or when the object was retrieved.
    pub at: i64,
}

impl Observation {
    /// Captured amount as far as this observation shows it.
    pub fn amount_captured(&self) -> i64 {
        let by_charge = self.charge.map_or(0, |c| c.captured_amount());
        self.amount_received.max(by_charge).max(0)
    }

    /// Money given back after capture as far as this observation shows it
    /// (0 when it carried no charge).
    pub fn amount_refunded(&self) -> i64 {
        self.charge.map_or(0, |c| c.refunded_after_capture())
    }

    /// The ledger state this observation implies.
    pub fn implied_state(&self) -> PaymentState {
        match self.status {
            IntentStatus::RequiresPaymentMethod if self.failed_attempt => PaymentState::Failed,
            IntentStatus::RequiresPaymentMethod
            | IntentStatus::RequiresConfirmation
            | IntentStatus::Processing => PaymentState::Pending,
            IntentStatus::RequiresAction => PaymentState::RequiresAction,
            IntentStatus::RequiresCapture => PaymentState::Authorized,
            IntentStatus::Canceled => PaymentState::Canceled,
            IntentStatus::Succeeded => {
                let refunded = self.amount_refunded();
                if refunded <= 0 {
                    PaymentState::Completed
                } else if refunded >= self.amount_captured() {
                    PaymentState::Refunded
                } else {
                    PaymentState::PartiallyRefunded
                }
            }
        }
    }
}

/// The part of a payment the state machine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ledger {
    pub state: PaymentState,
    pub amount_refunded: i64,
    /// Captured so far, minor units; 0 until a capture is observed. Stripe
    /// captures once, so the largest amount observed is the captured one.
    pub amount_captured: i64,
    /// Newest observation applied so far (unix seconds); 0 before any.
    pub observed_at: i64,
}

/// The decision for one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A move: write `next` and a timeline entry `from → next.state`.
    Move { from: PaymentState, next: Ledger },
    /// Only bookkeeping changed (newer observation time, refund amount
    /// within the same state): write `next`, no timeline entry.
    Update { next: Ledger },
    /// Stale or duplicate: nothing to write.
    Ignore,
}

/// Applies one observation. Pure: the caller stores the result in the same
/// transaction as the timeline entry, guarded by the state it read.
pub fn transition(current: Ledger, obs: &Observation) -> Decision {
    let target = obs.implied_state();
    let refunded = current.amount_refunded.max(obs.amount_refunded());
    let captured = current.amount_captured.max(obs.amount_captured());
    let newer = obs.at > current.observed_at;
    let same_second = obs.at == current.observed_at;
    let moves = current.state != target
        && current.state.can_move_to(target)
        && (newer || (same_second && target.progress() > current.state.progress()));
    // A refund that is already counted and a refund state that lags the
    // amount (partially → refunded) both follow the amount, which only grows.
    let state = if moves { target } else { current.state };
    let state = match state {
        PaymentState::Completed | PaymentState::PartiallyRefunded
            if refunded > 0 && captured > 0 && refunded >= captured =>
        {
            PaymentState::Refunded
        }
        PaymentState::Completed if refunded > 0 => PaymentState::PartiallyRefunded,
        other => other,
    };
    let next = Ledger {
        state,
        amount_refunded: refunded,
        amount_captured: captured,
        observed_at: current.observed_at.max(obs.at),
    };
    if next.state != current.state {
        Decision::Move {
            from: current.state,
            next,
        }
    } else if next != current {
        Decision::Update { next }
    } else {
        Decision::Ignore
    }
}

impl TryFrom<String> for PaymentState {
    type Error = String;

    /// For reading the stored column: a value obol never writes is an error.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        PaymentState::parse(&s).ok_or_else(|| format!("unknown payment state {s:?}"))
    }
}

#[cfg(test)]
mod tests;
