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
        charge: None,
        at,
    }
}

/// A charge of 1000 with `captured` of it captured and `refunded` given
/// back since, as Stripe reports it: the released rest counts as refunded.
fn charge(captured: Option<i64>, refunded: i64) -> ChargeAmounts {
    match captured {
        Some(c) => ChargeAmounts {
            amount: 1000,
            amount_captured: c,
            amount_refunded: (1000 - c) + refunded,
            captured: true,
        },
        // Uncaptured: a cancellation releases (Stripe: refunds) it all.
        None => ChargeAmounts {
            amount: 1000,
            amount_captured: 0,
            amount_refunded: refunded,
            captured: false,
        },
    }
}

fn with_charge(mut o: Observation, c: ChargeAmounts) -> Observation {
    o.amount_received = c.captured_amount();
    o.charge = Some(c);
    o
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
    let partial = with_charge(obs(IntentStatus::Succeeded, 30), charge(Some(1000), 400));
    let full = with_charge(obs(IntentStatus::Succeeded, 31), charge(Some(1000), 1000));
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
                    out.push(with_charge(obs(Succeeded, at), charge(Some(1000), total)));
                }
            }
            out
        })
}

#[test]
fn a_partial_captures_released_rest_is_not_a_refund() {
    // Captured 600 of 1000: Stripe's charge says 400 refunded.
    let captured = with_charge(obs(IntentStatus::Succeeded, 20), charge(Some(600), 0));
    let l = apply_all(start(), &[obs(IntentStatus::RequiresCapture, 10), captured]);
    assert_eq!(
        (l.state, l.amount_captured, l.amount_refunded),
        (PaymentState::Completed, 600, 0)
    );
    // 100 given back: the charge says 500.
    let refund = with_charge(obs(IntentStatus::Succeeded, 30), charge(Some(600), 100));
    let l = apply_all(l, &[refund]);
    assert_eq!(
        (l.state, l.amount_refunded),
        (PaymentState::PartiallyRefunded, 100)
    );
    // All of the captured 600 given back: the charge says 1000.
    let all = with_charge(obs(IntentStatus::Succeeded, 40), charge(Some(600), 600));
    let l = apply_all(l, &[all]);
    assert_eq!((l.state, l.amount_refunded), (PaymentState::Refunded, 600));
}

#[test]
fn a_cancelled_authorization_refunds_nothing() {
    let mut canceled = obs(IntentStatus::Canceled, 20);
    canceled.charge = Some(charge(None, 1000));
    let l = apply_all(start(), &[obs(IntentStatus::RequiresCapture, 10), canceled]);
    assert_eq!(
        (l.state, l.amount_captured, l.amount_refunded),
        (PaymentState::Canceled, 0, 0)
    );
}

#[test]
fn a_refund_never_goes_below_zero() {
    // A charge whose refunded amount is below what it released (a refund
    // that failed after a partial capture, or an inconsistent read).
    let odd = ChargeAmounts {
        amount: 1000,
        amount_captured: 600,
        amount_refunded: 100,
        captured: true,
    };
    assert_eq!(odd.refunded_after_capture(), 0);
    let l = apply_all(
        start(),
        &[with_charge(obs(IntentStatus::Succeeded, 5), odd)],
    );
    assert_eq!((l.state, l.amount_refunded), (PaymentState::Completed, 0));
}

/// How an authorization ends, with everything Stripe can say about it on
/// the way: intent events (no charge), charge events and reconciliation
/// reads (with the charge). Returns the observations and the truth:
/// (final state, captured, refunded after capture).
fn money_history() -> impl Strategy<Value = (Vec<Observation>, (PaymentState, i64, i64))> {
    use IntentStatus::*;
    (
        0u8..3,
        1i64..1000,
        prop::collection::vec(1i64..400, 0..4),
        prop::collection::vec(0i64..3, 12),
    )
        .prop_map(|(kind, partial, refunds, gaps)| {
            let mut gaps = gaps.into_iter().cycle();
            let mut at = 1_700_000_000;
            let mut tick = |min: i64| {
                at += gaps.next().unwrap_or(1).max(min);
                at
            };
            let mut out = vec![obs(RequiresPaymentMethod, tick(1))];
            let auth = tick(1);
            out.push(obs(RequiresCapture, auth));
            out.push(with_charge(obs(RequiresCapture, auth), charge(None, 0)));
            // 0: captured in full, 1: captured in part, 2: cancelled.
            let captured = match kind {
                0 => Some(1000),
                1 => Some(partial),
                _ => None,
            };
            let Some(c) = captured else {
                let t = tick(1);
                out.push(obs(Canceled, t));
                let mut released = obs(Canceled, t);
                released.charge = Some(charge(None, 1000));
                out.push(released);
                // Reconciliation: the intent now, with its charge.
                let mut now = obs(Canceled, t + 60);
                now.charge = Some(charge(None, 1000));
                out.push(now);
                return (out, (PaymentState::Canceled, 0, 0));
            };
            let t = tick(1);
            let mut succeeded = obs(Succeeded, t);
            succeeded.amount_received = c;
            out.push(succeeded);
            out.push(with_charge(obs(Succeeded, t), charge(Some(c), 0)));
            let mut total = 0;
            for r in refunds {
                total = (total + r).min(c);
                out.push(with_charge(obs(Succeeded, tick(0)), charge(Some(c), total)));
            }
            out.push(with_charge(obs(Succeeded, at + 60), charge(Some(c), total)));
            let state = if total == 0 {
                PaymentState::Completed
            } else if total >= c {
                PaymentState::Refunded
            } else {
                PaymentState::PartiallyRefunded
            };
            (out, (state, c, total))
        })
}

proptest! {
    /// Partial captures and cancelled authorizations: whatever order the
    /// intent, charge, capture, cancel and refund observations arrive in,
    /// duplicates included, and whichever of them are lost before the
    /// reconciliation read, the payment ends with Stripe's state, the
    /// captured amount, and only the money given back after capture as
    /// refunded.
    #[test]
    fn captures_and_cancellations_end_right_in_any_order(
        (events, truth) in money_history(),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        keep in prop::collection::vec(any::<bool>(), 16),
    ) {
        let mut arrivals: Vec<Observation> = events
            .iter()
            .zip(keep.iter().cycle())
            .filter(|(_, k)| **k)
            .map(|(e, _)| *e)
            .collect();
        if arrivals.is_empty() {
            arrivals.push(*events.last().unwrap());
        }
        for (i, idx) in order.iter().enumerate() {
            let j = idx.index(arrivals.len());
            if i % 3 == 2 {
                arrivals.push(arrivals[j]);
            } else {
                let k = i % arrivals.len();
                arrivals.swap(j, k);
            }
        }
        // Every delivery in any order, then reconciliation's read.
        let all = apply_all(start(), &arrivals);
        let l = apply_all(all, &[*events.last().unwrap()]);
        prop_assert_eq!(
            (l.state, l.amount_captured, l.amount_refunded),
            truth,
            "arrivals {:?}",
            arrivals
        );
        // Without reconciliation, when nothing was lost, the same.
        let mut every = events.clone();
        every.reverse();
        let l = apply_all(start(), &every);
        prop_assert_eq!((l.state, l.amount_captured, l.amount_refunded), truth);
    }

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
