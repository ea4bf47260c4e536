//! The payout state machine: `transition`, the one place a mirrored
//! payout's view changes (Stripe's `payout.*` events and reconciliation's
//! retrievals).
//!
//! The ordering rule. Stripe's payout statuses only move forward:
//! `pending → in_transit → paid`, `pending → canceled`, and `in_transit`
//! or even `paid → failed` (a bank may return a paid payout days later).
//! So, unlike the payment ledger (where time decides and progress breaks
//! ties within a second), progress decides first: a view of a lower rank
//! never replaces a higher one, however new its event; a view of the same
//! rank replaces the recorded one only when it is at least as new (`at`,
//! unix seconds; reconciliation observes as of now), which carries
//! same-status changes such as a moved `arrival_date` or
//! `reconciliation_status`. `failed` and `canceled` are final. Duplicates
//! and reordering therefore end at Stripe's latest state.

use serde::Serialize;

/// A payout's status, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    Pending,
    InTransit,
    Paid,
    Failed,
    Canceled,
}

impl PayoutStatus {
    pub const ALL: [PayoutStatus; 5] = [
        PayoutStatus::Pending,
        PayoutStatus::InTransit,
        PayoutStatus::Paid,
        PayoutStatus::Failed,
        PayoutStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Pending => "pending",
            PayoutStatus::InTransit => "in_transit",
            PayoutStatus::Paid => "paid",
            PayoutStatus::Failed => "failed",
            PayoutStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        PayoutStatus::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// How far along a payout is (the ordering rule's first key).
    pub fn rank(self) -> u8 {
        match self {
            PayoutStatus::Pending => 0,
            PayoutStatus::InTransit => 1,
            PayoutStatus::Paid => 2,
            PayoutStatus::Failed | PayoutStatus::Canceled => 3,
        }
    }

    /// No view of Stripe's moves it again.
    pub fn is_final(self) -> bool {
        match self {
            PayoutStatus::Failed | PayoutStatus::Canceled => true,
            PayoutStatus::Pending | PayoutStatus::InTransit | PayoutStatus::Paid => false,
        }
    }
}

impl TryFrom<String> for PayoutStatus {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        PayoutStatus::parse(&s).ok_or_else(|| format!("unknown payout status {s:?}"))
    }
}

/// The part of a mirrored payout the state machine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayoutLedger {
    pub status: PayoutStatus,
    pub observed_at: i64,
}

/// What to do with a view of Stripe's payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutDecision {
    /// First sight: insert it.
    Create { next: PayoutLedger },
    /// Replace the recorded view; `entered` is the status entered, when it
    /// changed (what host notifications are sent for).
    Update {
        next: PayoutLedger,
        entered: Option<PayoutStatus>,
    },
    /// Older or less far along than what is recorded: nothing changes.
    Ignore,
}

/// Decides what a view (`status` as of `at`) does to `current`.
pub fn transition(current: Option<PayoutLedger>, status: PayoutStatus, at: i64) -> PayoutDecision {
    let next = PayoutLedger {
        status,
        observed_at: at,
    };
    let Some(cur) = current else {
        return PayoutDecision::Create { next };
    };
    if cur.status.is_final() {
        return PayoutDecision::Ignore;
    }
    match status.rank().cmp(&cur.status.rank()) {
        std::cmp::Ordering::Less => PayoutDecision::Ignore,
        std::cmp::Ordering::Greater => PayoutDecision::Update {
            next: PayoutLedger {
                status,
                observed_at: at.max(cur.observed_at),
            },
            entered: Some(status),
        },
        std::cmp::Ordering::Equal if at >= cur.observed_at => PayoutDecision::Update {
            next,
            entered: None,
        },
        std::cmp::Ordering::Equal => PayoutDecision::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn apply(views: &[(PayoutStatus, i64)]) -> (Option<PayoutLedger>, Vec<PayoutStatus>) {
        let mut cur = None;
        let mut entered = Vec::new();
        for &(s, at) in views {
            match transition(cur, s, at) {
                PayoutDecision::Create { next } => {
                    entered.push(next.status);
                    cur = Some(next);
                }
                PayoutDecision::Update { next, entered: e } => {
                    entered.extend(e);
                    cur = Some(next);
                }
                PayoutDecision::Ignore => {}
            }
        }
        (cur, entered)
    }

    #[test]
    fn a_late_in_transit_does_not_undo_paid() {
        use PayoutStatus::*;
        let (cur, entered) = apply(&[(Pending, 10), (Paid, 30), (InTransit, 20), (Paid, 30)]);
        assert_eq!(cur.unwrap().status, Paid);
        assert_eq!(entered, vec![Pending, Paid]);
    }

    #[test]
    fn a_paid_payout_may_still_fail_and_then_stays_failed() {
        use PayoutStatus::*;
        let (cur, _) = apply(&[(Paid, 30), (Failed, 40), (Paid, 50)]);
        assert_eq!(cur.unwrap().status, Failed);
    }

    fn status() -> impl Strategy<Value = PayoutStatus> {
        prop::sample::select(PayoutStatus::ALL.to_vec())
    }

    proptest! {
        /// Stripe's history of one payout (statuses forward, times rising),
        /// delivered in any order with duplicates, ends at its last state,
        /// and each status is entered at most once.
        #[test]
        fn any_order_with_duplicates_ends_at_the_last_state(
            path in prop::sample::select(vec![
                vec![PayoutStatus::Pending, PayoutStatus::InTransit, PayoutStatus::Paid],
                vec![PayoutStatus::Pending, PayoutStatus::InTransit, PayoutStatus::Failed],
                vec![PayoutStatus::Pending, PayoutStatus::InTransit, PayoutStatus::Paid, PayoutStatus::Failed],
                vec![PayoutStatus::Pending, PayoutStatus::Canceled],
            ]),
            order in prop::collection::vec(0usize..100, 1..12),
        ) {
            let history: Vec<(PayoutStatus, i64)> =
                path.iter().enumerate().map(|(n, s)| (*s, 100 + n as i64)).collect();
            // Every view at least once, then the arbitrary extra ones.
            let mut views = history.clone();
            views.extend(order.iter().map(|n| history[n % history.len()]));
            let k = order.len() % views.len();
            views.rotate_left(k);
            let (cur, entered) = apply(&views);
            prop_assert_eq!(cur.map(|c| c.status), path.last().copied());
            let mut seen = entered.clone();
            seen.dedup();
            prop_assert_eq!(seen.len(), entered.len());
        }

        #[test]
        fn never_moves_back_in_rank(a in status(), b in status(), t1 in 0i64..10, t2 in 0i64..10) {
            let (cur, _) = apply(&[(a, t1), (b, t2)]);
            prop_assert!(cur.unwrap().status.rank() >= a.rank());
        }
    }
}
