use proptest::prelude::*;

use super::*;

fn obs(status: IntentStatus, at: i64) -> Observation {
    Observation {
        status,
        failed_attempt: false,
        amount_received: if status == IntentStatus::Succeeded {
            1000
        } else {
            0
        },
        amount_refunded: 0,
        at,
    }
}

fn start() -> Ledger {
    Ledger {
        state: PaymentState::Pending,
        amount_refunded: 0,
        amount_captured: 0,
        observed_at: 0,
    }
}

fn apply_all(mut ledger: Ledger, observations: &[Observation]) -> Ledger {
    for o in observations {
        match transition(ledger, o) {
            Decision::Move { next, .. } | Decision::Update { next } => ledger = next,
            Decision::Ignore => {}
        }
    }
    ledger
}

#[test]
fn a_late_older_event_changes_nothing() {
    let done = apply_all(start(), &[obs(IntentStatus::Succeeded, 20)]);
    assert_eq!(done.state, PaymentState::Completed);
    assert_eq!(
        transition(done, &obs(IntentStatus::RequiresAction, 10)),
        Decision::Ignore
    );
    let mut failed = obs(IntentStatus::RequiresPaymentMethod, 15);
    failed.failed_attempt = true;
    assert_eq!(transition(done, &failed), Decision::Ignore);
}

#[test]
fn a_failed_attempt_can_be_followed_by_success() {
    let mut failed = obs(IntentStatus::RequiresPaymentMethod, 10);
    failed.failed_attempt = true;
    let l = apply_all(start(), &[failed]);
    assert_eq!(l.state, PaymentState::Failed);
    let l = apply_all(l, &[obs(IntentStatus::Succeeded, 11)]);
    assert_eq!(l.state, PaymentState::Completed);
}

#[test]
fn refunds_follow_the_refunded_amount() {
    let mut partial = obs(IntentStatus::Succeeded, 30);
    partial.amount_refunded = 400;
    let mut full = obs(IntentStatus::Succeeded, 31);
    full.amount_refunded = 1000;
    let l = apply_all(start(), &[obs(IntentStatus::Succeeded, 20), partial]);
    assert_eq!(
        (l.state, l.amount_refunded),
        (PaymentState::PartiallyRefunded, 400)
    );
    // The full refund's event arrives first, the partial one late: still refunded.
    let l2 = apply_all(start(), &[obs(IntentStatus::Succeeded, 20), full, partial]);
    assert_eq!(
        (l2.state, l2.amount_refunded),
        (PaymentState::Refunded, 1000)
    );
}

#[test]
fn duplicates_are_ignored() {
    let o = obs(IntentStatus::RequiresCapture, 5);
    let l = apply_all(start(), &[o]);
    assert_eq!(l.state, PaymentState::Authorized);
    assert_eq!(transition(l, &o), Decision::Ignore);
}

/// Stripe histories a PaymentIntent can really have, with non-decreasing
/// timestamps and optional refunds at the end.
fn history() -> impl Strategy<Value = Vec<Observation>> {
    use IntentStatus::*;
    let paths = prop_oneof![
        Just(vec![RequiresPaymentMethod, Succeeded]),
        Just(vec![RequiresPaymentMethod, RequiresAction, Succeeded]),
        Just(vec![RequiresPaymentMethod, RequiresCapture, Succeeded]),
        Just(vec![RequiresPaymentMethod, RequiresCapture, Canceled]),
        Just(vec![
            RequiresPaymentMethod,
            RequiresAction,
            RequiresCapture,
            Canceled
        ]),
        Just(vec![RequiresPaymentMethod, Canceled]),
        Just(vec![
            RequiresPaymentMethod,
            RequiresAction,
            RequiresPaymentMethod
        ]),
        Just(vec![
            RequiresPaymentMethod,
            RequiresPaymentMethod,
            Succeeded
        ]),
    ];
    (
        paths,
        prop::collection::vec(1i64..3, 8),
        prop::collection::vec(1i64..600, 0..3),
    )
        .prop_map(|(path, gaps, refunds)| {
            let mut at = 1_700_000_000;
            let mut out = Vec::new();
            for (i, status) in path.into_iter().enumerate() {
                at += gaps.get(i).copied().unwrap_or(1);
                let mut o = obs(status, at);
                // A return to requires_payment_method after the first step is a failed attempt.
                o.failed_attempt = i > 0 && status == RequiresPaymentMethod;
                out.push(o);
            }
            if out.last().map(|o| o.status) == Some(Succeeded) {
                let mut total = 0;
                for r in refunds {
                    at += 1;
                    total = (total + r).min(1000);
                    let mut o = obs(Succeeded, at);
                    o.amount_refunded = total;
                    out.push(o);
                }
            }
            out
        })
}

proptest! {
    /// Whatever order the events arrive in, and however often, the ledger
    /// ends where Stripe's object ended.
    #[test]
    fn any_arrival_order_ends_in_stripes_final_state(
        events in history(),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let truth = events.last().unwrap().implied_state();
        let mut arrivals = events.clone();
        // Shuffle by swaps and add duplicates.
        for (i, idx) in order.iter().enumerate() {
            let j = idx.index(arrivals.len());
            if i % 3 == 2 {
                arrivals.push(arrivals[j]);
            } else {
                let k = i % arrivals.len();
                arrivals.swap(j, k);
            }
        }
        let l = apply_all(start(), &arrivals);
        prop_assert_eq!(l.state, truth, "arrivals {:?}", arrivals);
    }

    /// Some deliveries lost: reconciliation observes the object as it is
    /// now and the ledger converges.
    #[test]
    fn reconciliation_converges_after_lost_events(
        events in history(),
        keep in prop::collection::vec(any::<bool>(), 12),
    ) {
        let last = *events.last().unwrap();
        let delivered: Vec<Observation> = events
            .iter()
            .zip(keep.iter().cycle())
            .filter(|(_, k)| **k)
            .map(|(e, _)| *e)
            .collect();
        let l = apply_all(start(), &delivered);
        let reconciled = apply_all(l, &[Observation { at: last.at + 60, ..last }]);
        prop_assert_eq!(reconciled.state, last.implied_state());
    }

    /// A state never moves backwards along the payment's progress, except
    /// a failed attempt followed by a new one.
    #[test]
    fn captured_money_is_never_uncaptured(events in history()) {
        let mut l = start();
        for o in &events {
            let before = l.state;
            if let Decision::Move { next, .. } | Decision::Update { next } = transition(l, o) {
                l = next;
            }
            if before.is_captured() {
                prop_assert!(l.state.is_captured());
            }
        }
    }
}
