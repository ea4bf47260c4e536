//! The dispute state machine: `transition`, the one place a dispute's
//! status changes (Stripe's `charge.dispute.*` events).
//!
//! Like payments, a dispute moves by what Stripe said and when (the
//! event's `created`, unix seconds): an older view changes nothing; within
//! one second (Stripe's resolution) the further-along status wins. `won`
//! and `lost` are final; an inquiry (`warning_*`) may still escalate.

use serde::Serialize;

/// A dispute's status, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    WarningNeedsResponse,
    WarningUnderReview,
    WarningClosed,
    NeedsResponse,
    UnderReview,
    Won,
    Lost,
}

impl DisputeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::WarningNeedsResponse => "warning_needs_response",
            DisputeStatus::WarningUnderReview => "warning_under_review",
            DisputeStatus::WarningClosed => "warning_closed",
            DisputeStatus::NeedsResponse => "needs_response",
            DisputeStatus::UnderReview => "under_review",
            DisputeStatus::Won => "won",
            DisputeStatus::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "warning_needs_response" => DisputeStatus::WarningNeedsResponse,
            "warning_under_review" => DisputeStatus::WarningUnderReview,
            "warning_closed" => DisputeStatus::WarningClosed,
            "needs_response" => DisputeStatus::NeedsResponse,
            "under_review" => DisputeStatus::UnderReview,
            "won" => DisputeStatus::Won,
            "lost" => DisputeStatus::Lost,
            _ => return None,
        })
    }

    /// The merchant still has to act or wait: the payment is flagged
    /// `disputed` and a task is open.
    pub fn is_open(self) -> bool {
        match self {
            DisputeStatus::WarningNeedsResponse
            | DisputeStatus::WarningUnderReview
            | DisputeStatus::NeedsResponse
            | DisputeStatus::UnderReview => true,
            DisputeStatus::WarningClosed | DisputeStatus::Won | DisputeStatus::Lost => false,
        }
    }

    /// No event moves it any more.
    pub fn is_final(self) -> bool {
        match self {
            DisputeStatus::Won | DisputeStatus::Lost => true,
            DisputeStatus::WarningNeedsResponse
            | DisputeStatus::WarningUnderReview
            | DisputeStatus::WarningClosed
            | DisputeStatus::NeedsResponse
            | DisputeStatus::UnderReview => false,
        }
    }

    /// How far along a dispute is; breaks ties within one second.
    fn progress(self) -> u8 {
        match self {
            DisputeStatus::WarningNeedsResponse | DisputeStatus::NeedsResponse => 0,
            DisputeStatus::WarningUnderReview | DisputeStatus::UnderReview => 1,
            DisputeStatus::WarningClosed | DisputeStatus::Won | DisputeStatus::Lost => 2,
        }
    }
}

impl TryFrom<String> for DisputeStatus {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        DisputeStatus::parse(&s).ok_or_else(|| format!("unknown dispute status {s:?}"))
    }
}

/// The part of a dispute the state machine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisputeLedger {
    pub status: DisputeStatus,
    /// Newest Stripe view applied (unix seconds).
    pub observed_at: i64,
}

/// The decision for one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeDecision {
    /// A dispute new to obol: record it and its first timeline entry.
    Create { next: DisputeLedger },
    /// A status change: write `next` and a timeline entry `from → next`.
    Move {
        from: DisputeStatus,
        next: DisputeLedger,
    },
    /// A newer view in the same status (its evidence deadline may have
    /// moved): write `next`, no timeline entry.
    Update { next: DisputeLedger },
    /// Older, duplicate, or after a final status: nothing to write.
    Ignore,
}

/// Applies Stripe's view of a dispute (`status` at `at`) to what obol has
/// (`None`: not seen yet). Pure: the caller writes the outcome guarded by
/// the state it read.
pub fn transition(
    current: Option<DisputeLedger>,
    status: DisputeStatus,
    at: i64,
) -> DisputeDecision {
    let next = DisputeLedger {
        status,
        observed_at: at,
    };
    let Some(current) = current else {
        return DisputeDecision::Create { next };
    };
    let newer = at > current.observed_at
        || (at == current.observed_at && status.progress() > current.status.progress());
    if !newer || current.status.is_final() {
        DisputeDecision::Ignore
    } else if status != current.status {
        DisputeDecision::Move {
            from: current.status,
            next,
        }
    } else {
        DisputeDecision::Update { next }
    }
}

#[cfg(test)]
mod tests;
