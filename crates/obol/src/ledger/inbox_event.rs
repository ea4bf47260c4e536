//! The state machine of one Stripe event in obol's inbox.
//!
//! ```text
//! (stored) ─▶ received | ignored        (ignored: an unreadable payload)
//! received ─▶ applied | ignored        (the worker's outcome)
//!     │  ▲
//!     ▼  │ (retried on schedule)
//!   failed ─▶ applied | ignored
//! any ─────▶ received                  (the operator replays it)
//! ```
//!
//! A worker's outcome lands only on an event still waiting (`received` or
//! `failed`): an event another worker finished meanwhile (its claim had
//! expired) or that was replayed keeps its state. The writer stores the
//! move guarded by the status it read.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboxStatus {
    Received,
    Applied,
    Ignored,
    Failed,
}

/// The status a stored event starts in: `ignored` when its payload can
/// never be applied (so no worker claims it and nothing retries it),
/// else `received`.
pub fn initial(unreadable: bool) -> InboxStatus {
    if unreadable {
        InboxStatus::Ignored
    } else {
        InboxStatus::Received
    }
}

impl InboxStatus {
    pub const ALL: [InboxStatus; 4] = [
        InboxStatus::Received,
        InboxStatus::Applied,
        InboxStatus::Ignored,
        InboxStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InboxStatus::Received => "received",
            InboxStatus::Applied => "applied",
            InboxStatus::Ignored => "ignored",
            InboxStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => InboxStatus::Received,
            "applied" => InboxStatus::Applied,
            "ignored" => InboxStatus::Ignored,
            "failed" => InboxStatus::Failed,
            _ => return None,
        })
    }

    /// Waiting for a worker.
    pub fn is_waiting(self) -> bool {
        match self {
            InboxStatus::Received | InboxStatus::Failed => true,
            InboxStatus::Applied | InboxStatus::Ignored => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxInput {
    Applied,
    Ignored,
    /// Application failed; it is retried later.
    Failed,
    Replayed,
}

/// The status to write, or `None` when nothing changes.
pub fn transition(current: InboxStatus, input: InboxInput) -> Option<InboxStatus> {
    use InboxStatus::*;
    match (current, input) {
        (_, InboxInput::Replayed) => Some(Received),
        (Received | Failed, InboxInput::Applied) => Some(Applied),
        (Received | Failed, InboxInput::Ignored) => Some(Ignored),
        (Received | Failed, InboxInput::Failed) => Some(Failed),
        (Applied | Ignored, InboxInput::Applied | InboxInput::Ignored | InboxInput::Failed) => None,
    }
}

impl TryFrom<String> for InboxStatus {
    type Error = String;

    /// For reading the stored column: a value obol never writes is an error.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        InboxStatus::parse(&s).ok_or_else(|| format!("unknown inbox status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input() -> impl Strategy<Value = InboxInput> {
        prop::sample::select(vec![
            InboxInput::Applied,
            InboxInput::Ignored,
            InboxInput::Failed,
            InboxInput::Replayed,
        ])
    }

    fn run(inputs: &[InboxInput]) -> InboxStatus {
        inputs
            .iter()
            .fold(InboxStatus::Received, |s, i| transition(s, *i).unwrap_or(s))
    }

    #[test]
    fn every_status_round_trips() {
        for s in InboxStatus::ALL {
            assert_eq!(InboxStatus::parse(s.as_str()), Some(s));
        }
    }

    proptest! {
        /// Without a replay, an event is applied or ignored at most once
        /// and stays so: a second worker's late outcome changes nothing.
        #[test]
        fn an_outcome_sticks(inputs in prop::collection::vec(input(), 0..30)) {
            let mut s = InboxStatus::Received;
            let mut finals = 0;
            for i in inputs.iter().filter(|i| **i != InboxInput::Replayed) {
                if let Some(n) = transition(s, *i) {
                    if !n.is_waiting() {
                        finals += 1;
                    }
                    s = n;
                }
            }
            prop_assert!(finals <= 1);
        }

        #[test]
        fn duplicates_change_nothing(inputs in prop::collection::vec(input(), 0..30)) {
            let doubled: Vec<_> = inputs.iter().flat_map(|i| [*i, *i]).collect();
            prop_assert_eq!(run(&inputs), run(&doubled));
        }
    }
}
