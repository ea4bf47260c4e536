//! The refund state machine: `transition`, the one place a refund's status
//! changes — Stripe's answer to obol's request, Stripe's refund events,
//! and Stripe refusing the request outright.
//!
//! A refund is recorded (`pending_submission`) before Stripe is asked, so
//! any view of Stripe's replaces that one. After it, like payments, a
//! refund moves by what Stripe said and when (`at`, unix seconds): an older
//! view changes nothing; within one second (Stripe's resolution) the
//! further-along status wins. Stripe may still fail a refund it reported
//! succeeded (`refund.failed`), so `succeeded` is not final.

use serde::Serialize;

/// A refund's status: obol's `pending_submission`, then Stripe's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Recorded, Stripe not reached yet (resubmitted with the same key).
    PendingSubmission,
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::PendingSubmission => "pending_submission",
            RefundStatus::Pending => "pending",
            RefundStatus::RequiresAction => "requires_action",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::Canceled => "canceled",
        }
    }

    /// Any stored status.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending_submission" => Some(RefundStatus::PendingSubmission),
            other => Self::parse_stripe(other),
        }
    }

    /// A status as Stripe names it (`pending_submission` is obol's own).
    pub fn parse_stripe(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => RefundStatus::Pending,
            "requires_action" => RefundStatus::RequiresAction,
            "succeeded" => RefundStatus::Succeeded,
            "failed" => RefundStatus::Failed,
            "canceled" => RefundStatus::Canceled,
            _ => return None,
        })
    }

    /// How far along a refund is; breaks ties within one second.
    fn progress(self) -> u8 {
        match self {
            RefundStatus::PendingSubmission => 0,
            RefundStatus::Pending | RefundStatus::RequiresAction => 1,
            RefundStatus::Succeeded => 2,
            RefundStatus::Failed | RefundStatus::Canceled => 3,
        }
    }
}

impl TryFrom<String> for RefundStatus {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        RefundStatus::parse(&s).ok_or_else(|| format!("unknown refund status {s:?}"))
    }
}

/// The part of a refund the state machine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundLedger {
    pub status: RefundStatus,
    /// Newest Stripe view applied (unix seconds); 0 before any.
    pub observed_at: i64,
}

/// Something that happened to a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundEvent {
    /// Stripe showed the refund with `status` at `at` (its answer to the
    /// request, or a refund event).
    Observed { status: RefundStatus, at: i64 },
    /// Stripe refused the request (a 4xx): it will never happen.
    Refused,
}

/// The decision for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundDecision {
    /// Write `next`, guarded by the state read.
    Move { next: RefundLedger },
    /// Older, duplicate or impossible: nothing to write.
    Ignore,
}

/// Applies one event to a refund. Pure: the caller writes `next` guarded
/// by the `current` it read.
pub fn transition(current: RefundLedger, event: RefundEvent) -> RefundDecision {
    let next = match event {
        RefundEvent::Refused => match current.status {
            RefundStatus::PendingSubmission => Some(RefundLedger {
                status: RefundStatus::Failed,
                observed_at: current.observed_at,
            }),
            // Stripe already has the refund: a refusal now is a replayed
            // answer to a retry, not news.
            RefundStatus::Pending
            | RefundStatus::RequiresAction
            | RefundStatus::Succeeded
            | RefundStatus::Failed
            | RefundStatus::Canceled => None,
        },
        RefundEvent::Observed { status, at } => {
            let newer = match current.status {
                // Any view of Stripe's replaces "not submitted yet".
                RefundStatus::PendingSubmission => true,
                RefundStatus::Pending
                | RefundStatus::RequiresAction
                | RefundStatus::Succeeded
                | RefundStatus::Failed
                | RefundStatus::Canceled => {
                    at > current.observed_at
                        || (at == current.observed_at
                            && status.progress() > current.status.progress())
                }
            };
            // Stripe never reports obol's own pre-submission status.
            let from_stripe = status != RefundStatus::PendingSubmission;
            (newer && from_stripe).then_some(RefundLedger {
                status,
                observed_at: at,
            })
        }
    };
    match next {
        Some(next) if next != current => RefundDecision::Move { next },
        Some(_) | None => RefundDecision::Ignore,
    }
}

#[cfg(test)]
mod tests;
