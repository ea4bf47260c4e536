//! The state machine of one notification's delivery to one endpoint.
//!
//! ```text
//! pending ─▶ succeeded
//!    │ └───▶ failed      (after the last attempt of the retry schedule)
//!    └─────▶ canceled    (the endpoint was deleted)
//! any ─────▶ pending     (the operator replays it)
//! ```
//!
//! An attempt's result only lands on a delivery still `pending`: a
//! delivery cancelled (its endpoint deleted) or replayed while an attempt
//! was in flight keeps what happened meanwhile, and a duplicated result
//! changes nothing. The writer stores the move guarded by the status it
//! read (`WHERE status = $old`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
    Canceled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
        DeliveryStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "succeeded" => DeliveryStatus::Succeeded,
            "failed" => DeliveryStatus::Failed,
            "canceled" => DeliveryStatus::Canceled,
            _ => return None,
        })
    }
}

/// What happened to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryInput {
    /// The receiver answered 2xx.
    Accepted,
    /// The attempt failed; `retries_left` more attempts follow in the schedule.
    Refused { retries_left: bool },
    /// Its endpoint was deleted.
    EndpointDeleted,
    /// The operator asked for it again.
    Replayed,
}

/// The status to write, or `None` when nothing changes.
pub fn transition(current: DeliveryStatus, input: DeliveryInput) -> Option<DeliveryStatus> {
    use DeliveryStatus::*;
    let next = match (current, input) {
        (Pending, DeliveryInput::Accepted) => Succeeded,
        // Still pending: the writer stores the attempt and its next time.
        (Pending, DeliveryInput::Refused { retries_left: true }) => Pending,
        (
            Pending,
            DeliveryInput::Refused {
                retries_left: false,
            },
        ) => Failed,
        (Pending, DeliveryInput::EndpointDeleted) => Canceled,
        (_, DeliveryInput::Replayed) => Pending,
        // A result arriving for a delivery that is no longer pending (it
        // was cancelled or finished meanwhile) changes nothing.
        (
            Succeeded | Failed | Canceled,
            DeliveryInput::Accepted
            | DeliveryInput::Refused { .. }
            | DeliveryInput::EndpointDeleted,
        ) => return None,
    };
    Some(next)
}

impl TryFrom<String> for DeliveryStatus {
    type Error = String;

    /// For reading the stored column: a value obol never writes is an error.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DeliveryStatus::parse(&s).ok_or_else(|| format!("unknown delivery status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input() -> impl Strategy<Value = DeliveryInput> {
        prop_oneof![
            Just(DeliveryInput::Accepted),
            any::<bool>().prop_map(|r| DeliveryInput::Refused { retries_left: r }),
            Just(DeliveryInput::EndpointDeleted),
            Just(DeliveryInput::Replayed),
        ]
    }

    fn run(inputs: &[DeliveryInput]) -> DeliveryStatus {
        inputs.iter().fold(DeliveryStatus::Pending, |s, i| {
            transition(s, *i).unwrap_or(s)
        })
    }

    /// The bug this machine fixes: an attempt that finishes after its
    /// endpoint was deleted leaves the delivery cancelled.
    #[test]
    fn a_late_result_never_undoes_a_cancellation() {
        for late in [
            DeliveryInput::Accepted,
            DeliveryInput::Refused { retries_left: true },
            DeliveryInput::Refused {
                retries_left: false,
            },
        ] {
            assert_eq!(transition(DeliveryStatus::Canceled, late), None);
        }
    }

    #[test]
    fn every_status_round_trips() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
    }

    proptest! {
        /// Without a replay, the first final status reached is the last:
        /// succeeded, failed and canceled never change.
        #[test]
        fn final_statuses_stick(inputs in prop::collection::vec(input(), 0..30)) {
            let mut s = DeliveryStatus::Pending;
            let mut first_final = None;
            for i in inputs.iter().filter(|i| **i != DeliveryInput::Replayed) {
                s = transition(s, *i).unwrap_or(s);
                if s != DeliveryStatus::Pending && first_final.is_none() {
                    first_final = Some(s);
                }
            }
            if let Some(f) = first_final {
                prop_assert_eq!(s, f);
            }
        }

        /// Every input delivered twice in a row ends where once does.
        #[test]
        fn duplicates_change_nothing(inputs in prop::collection::vec(input(), 0..30)) {
            let doubled: Vec<_> = inputs.iter().flat_map(|i| [*i, *i]).collect();
            prop_assert_eq!(run(&inputs), run(&doubled));
        }

        /// A replay always brings the delivery back to pending.
        #[test]
        fn a_replay_restarts(inputs in prop::collection::vec(input(), 0..30)) {
            let mut with_replay = inputs.clone();
            with_replay.push(DeliveryInput::Replayed);
            prop_assert_eq!(run(&with_replay), DeliveryStatus::Pending);
        }
    }
}
