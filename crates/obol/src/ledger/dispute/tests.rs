use proptest::prelude::*;

use super::*;

fn apply_all(
    mut d: Option<DisputeLedger>,
    events: &[(DisputeStatus, i64)],
) -> Option<DisputeLedger> {
    for (status, at) in events {
        match transition(d, *status, *at) {
            DisputeDecision::Create { next }
            | DisputeDecision::Move { next, .. }
            | DisputeDecision::Update { next } => d = Some(next),
            DisputeDecision::Ignore => {}
        }
    }
    d
}

#[test]
fn every_status_round_trips() {
    use DisputeStatus::*;
    for s in [
        WarningNeedsResponse,
        WarningUnderReview,
        WarningClosed,
        NeedsResponse,
        UnderReview,
        Won,
        Lost,
    ] {
        assert_eq!(DisputeStatus::parse(s.as_str()), Some(s));
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            serde_json::json!(s.as_str())
        );
        assert_eq!(s.is_open(), !matches!(s, WarningClosed | Won | Lost));
    }
    assert_eq!(DisputeStatus::parse("charge_exploded"), None);
}

#[test]
fn a_closed_dispute_stays_closed() {
    let d = apply_all(
        None,
        &[
            (DisputeStatus::NeedsResponse, 10),
            (DisputeStatus::Lost, 20),
        ],
    );
    assert_eq!(
        transition(d, DisputeStatus::UnderReview, 30),
        DisputeDecision::Ignore
    );
}

#[test]
fn a_newer_view_in_the_same_status_is_an_update() {
    let d = apply_all(None, &[(DisputeStatus::NeedsResponse, 10)]);
    assert!(matches!(
        transition(d, DisputeStatus::NeedsResponse, 11),
        DisputeDecision::Update { .. }
    ));
    assert_eq!(
        transition(d, DisputeStatus::NeedsResponse, 10),
        DisputeDecision::Ignore
    );
}

/// Dispute histories Stripe produces, with non-decreasing times.
fn history() -> impl Strategy<Value = Vec<(DisputeStatus, i64)>> {
    use DisputeStatus::*;
    let paths = prop_oneof![
        Just(vec![NeedsResponse, UnderReview, Won]),
        Just(vec![NeedsResponse, UnderReview, Lost]),
        Just(vec![NeedsResponse, Lost]),
        Just(vec![
            WarningNeedsResponse,
            WarningUnderReview,
            WarningClosed
        ]),
        Just(vec![WarningNeedsResponse, WarningClosed]),
        Just(vec![NeedsResponse, NeedsResponse, UnderReview]),
    ];
    (paths, prop::collection::vec(0i64..3, 4)).prop_map(|(path, gaps)| {
        let mut at = 1_700_000_000;
        path.into_iter()
            .zip(gaps)
            .map(|(status, gap)| {
                at += gap;
                (status, at)
            })
            .collect()
    })
}

proptest! {
    /// Whatever order the dispute's events arrive in, duplicated or not,
    /// it ends at Stripe's last status, open exactly when that one is.
    #[test]
    fn any_arrival_order_ends_in_stripes_last_status(
        events in history(),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let (truth, _) = *events.last().unwrap();
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
        let d = apply_all(None, &arrivals).unwrap();
        prop_assert_eq!(d.status, truth, "arrivals {:?}", arrivals);
        prop_assert_eq!(d.status.is_open(), truth.is_open());
    }

    /// A dispute is created once: only the first observation creates.
    #[test]
    fn only_the_first_observation_creates(events in history()) {
        let mut d = None;
        let mut creates = 0;
        for (status, at) in &events {
            let decision = transition(d, *status, *at);
            if let DisputeDecision::Create { .. } = decision {
                creates += 1;
            }
            if let DisputeDecision::Create { next }
            | DisputeDecision::Move { next, .. }
            | DisputeDecision::Update { next } = decision
            {
                d = Some(next);
            }
        }
        prop_assert_eq!(creates, 1);
    }
}
