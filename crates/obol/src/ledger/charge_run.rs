//! The charge-run state machines, pure: a run's status and an item's
//! outcome, and what may move them.
//!
//! ```text
//! run:   draft ──start──▶ running ──every item decided──▶ completed
//!          └──────cancel─────┴──▶ canceled   (items not yet sent: canceled)
//!
//! item:  pending ──claimed──▶ processing ──Stripe answered──▶ succeeded | requires_action
//!           │                    │                               | failed | no_payment_method
//!           └──run canceled──────┴─(not yet sent)─▶ canceled
//!        requires_action | failed ──the member paid after all──▶ succeeded
//! ```
//!
//! `requires_action` is pending, never failed: the member can still
//! complete the charge, and only a success moves it on. A decided item
//! never moves back, so a late or repeated observation changes nothing;
//! a success observed for an item still `pending` or `processing` (its
//! API answer was lost in a crash, the webhook came) is taken.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Draft,
    Running,
    Completed,
    Canceled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Draft,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Draft => "draft",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        RunStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl TryFrom<String> for RunStatus {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        RunStatus::parse(&s).ok_or_else(|| format!("unknown charge run status {s:?}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not sent to Stripe yet.
    Pending,
    /// Claimed by a worker; its charge may be on its way to Stripe.
    Processing,
    Succeeded,
    /// The bank asks the member to authenticate: pending, not failed.
    RequiresAction,
    /// Declined (see `decline_code`).
    Failed,
    /// The member has no saved card.
    NoPaymentMethod,
    /// The run was canceled before this item was sent.
    Canceled,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Pending,
        Outcome::Processing,
        Outcome::Succeeded,
        Outcome::RequiresAction,
        Outcome::Failed,
        Outcome::NoPaymentMethod,
        Outcome::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Processing => "processing",
            Outcome::Succeeded => "succeeded",
            Outcome::RequiresAction => "requires_action",
            Outcome::Failed => "failed",
            Outcome::NoPaymentMethod => "no_payment_method",
            Outcome::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Outcome::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the run has its answer for this item (a `requires_action`
    /// item is decided for the run, though the member may still pay).
    pub fn is_decided(self) -> bool {
        !matches!(self, Outcome::Pending | Outcome::Processing)
    }

    /// The host notification for an item reaching this outcome.
    pub fn event(self) -> Option<&'static str> {
        Some(match self {
            Outcome::Pending | Outcome::Processing => return None,
            Outcome::Succeeded => "charge_run_item.succeeded",
            Outcome::RequiresAction => "charge_run_item.requires_action",
            Outcome::Failed => "charge_run_item.failed",
            Outcome::NoPaymentMethod => "charge_run_item.no_payment_method",
            Outcome::Canceled => "charge_run_item.canceled",
        })
    }
}

impl TryFrom<String> for Outcome {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Outcome::parse(&s).ok_or_else(|| format!("unknown charge run item outcome {s:?}"))
    }
}

/// Whether an item may move from `from` to `to`.
pub fn item_may_move(from: Outcome, to: Outcome) -> bool {
    use Outcome as O;
    match (from, to) {
        (O::Pending, O::Processing | O::Canceled | O::NoPaymentMethod) => true,
        // A worker's lease expired: another claims it again.
        (O::Processing, O::Processing) => true,
        (O::Processing, O::Succeeded | O::RequiresAction | O::Failed | O::NoPaymentMethod) => true,
        // The charge was not sent (the run was canceled while it was claimed).
        (O::Processing, O::Canceled) => true,
        // A success Stripe reports for an item whose answer was lost.
        (O::Pending, O::Succeeded) => true,
        (O::RequiresAction | O::Failed, O::Succeeded) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decided_items_never_move_back() {
        for from in Outcome::ALL.into_iter().filter(|o| o.is_decided()) {
            for to in Outcome::ALL {
                if item_may_move(from, to) {
                    // Only money that arrived moves a decided item: the
                    // member completed 3-D Secure, or paid a declined
                    // charge with another card.
                    assert_eq!(to, Outcome::Succeeded, "{from:?}");
                    assert!(matches!(from, Outcome::RequiresAction | Outcome::Failed));
                }
            }
        }
        assert!(!item_may_move(Outcome::RequiresAction, Outcome::Failed));
        assert!(item_may_move(Outcome::Pending, Outcome::Processing));
        assert!(item_may_move(Outcome::Processing, Outcome::Failed));
    }

    #[test]
    fn every_decided_outcome_is_notified() {
        for o in Outcome::ALL {
            assert_eq!(o.event().is_some(), o.is_decided(), "{o:?}");
        }
    }
}
