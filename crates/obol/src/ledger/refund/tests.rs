use proptest::prelude::*;

use super::*;

fn recorded() -> RefundLedger {
    RefundLedger {
        status: RefundStatus::PendingSubmission,
        observed_at: 0,
    }
}

fn seen(status: RefundStatus, at: i64) -> RefundEvent {
    RefundEvent::Observed { status, at }
}

fn apply_all(mut r: RefundLedger, events: &[RefundEvent]) -> RefundLedger {
    for e in events {
        if let RefundDecision::Move { next } = transition(r, *e) {
            r = next;
        }
    }
    r
}

#[test]
fn every_status_round_trips() {
    use RefundStatus::*;
    for s in [
        PendingSubmission,
        Pending,
        RequiresAction,
        Succeeded,
        Failed,
        Canceled,
    ] {
        assert_eq!(RefundStatus::parse(s.as_str()), Some(s));
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            serde_json::json!(s.as_str())
        );
    }
    assert_eq!(RefundStatus::parse_stripe("pending_submission"), None);
    assert_eq!(RefundStatus::parse("exploded"), None);
}

#[test]
fn a_refusal_fails_only_an_unsubmitted_refund() {
    let failed = apply_all(recorded(), &[RefundEvent::Refused]);
    assert_eq!(failed.status, RefundStatus::Failed);
    let submitted = apply_all(recorded(), &[seen(RefundStatus::Pending, 10)]);
    assert_eq!(
        transition(submitted, RefundEvent::Refused),
        RefundDecision::Ignore
    );
}

#[test]
fn stripes_first_view_replaces_the_record_whatever_its_time() {
    let r = apply_all(recorded(), &[seen(RefundStatus::Succeeded, 0)]);
    assert_eq!(r.status, RefundStatus::Succeeded);
}

#[test]
fn a_succeeded_refund_can_still_fail() {
    let r = apply_all(
        recorded(),
        &[
            seen(RefundStatus::Succeeded, 10),
            seen(RefundStatus::Failed, 20),
        ],
    );
    assert_eq!(r.status, RefundStatus::Failed);
}

/// Refund histories Stripe produces, with non-decreasing times.
fn history() -> impl Strategy<Value = Vec<RefundEvent>> {
    use RefundStatus::*;
    let paths = prop_oneof![
        Just(vec![Succeeded]),
        Just(vec![Pending, Succeeded]),
        Just(vec![Pending, Failed]),
        Just(vec![Pending, Canceled]),
        Just(vec![Succeeded, Failed]),
        Just(vec![Pending, Succeeded, Failed]),
        Just(vec![RequiresAction, Pending, Succeeded]),
    ];
    (paths, prop::collection::vec(0i64..3, 4)).prop_map(|(path, gaps)| {
        let mut at = 1_700_000_000;
        path.into_iter()
            .zip(gaps)
            .map(|(status, gap)| {
                at += gap;
                seen(status, at)
            })
            .collect()
    })
}

proptest! {
    /// Stripe's answer and its events, in any order and duplicated, end
    /// at Stripe's last status.
    #[test]
    fn any_arrival_order_ends_in_stripes_last_status(
        events in history(),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        refused_late in any::<bool>(),
    ) {
        let RefundEvent::Observed { status: truth, .. } = *events.last().unwrap() else {
            unreachable!()
        };
        let mut arrivals = events.clone();
        for (i, idx) in order.iter().enumerate() {
            let j = idx.index(arrivals.len());
            if i % 3 == 2 {
                arrivals.push(arrivals[j]);
            } else {
                let k = i % arrivals.len();
                arrivals.swap(j, k);
            }
        }
        // A refusal replayed after Stripe's first view (the answer to a
        // retried request) never undoes Stripe.
        if refused_late {
            arrivals.insert(1, RefundEvent::Refused);
        }
        let r = apply_all(recorded(), &arrivals);
        prop_assert_eq!(r.status, truth, "arrivals {:?}", arrivals);
    }
}
