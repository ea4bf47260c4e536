use proptest::prelude::*;

use super::*;

fn card(last4: &str, exp_year: i64) -> CardDetails {
    CardDetails {
        brand: "visa".into(),
        last4: last4.into(),
        exp_month: 12,
        exp_year,
    }
}

fn attached(last4: &str, exp_year: i64) -> CardSeen {
    CardSeen::Attached {
        stripe_customer: "cus_a".into(),
        details: card(last4, exp_year),
    }
}

fn detached() -> CardSeen {
    CardSeen::Detached {
        stripe_customer: "cus_a".into(),
    }
}

fn apply_all(events: &[(CardSeen, i64)]) -> Option<CardView> {
    let mut view: Option<CardView> = None;
    for (seen, at) in events {
        if let CardDecision::Write(next) = observe_card(view.as_ref(), seen, *at) {
            view = Some(next);
        }
    }
    view
}

#[test]
fn detached_before_attached_stays_detached_and_learns_the_details() {
    let v = apply_all(&[(detached(), 20), (attached("4242", 2030), 10)]).unwrap();
    assert!(v.detached);
    assert_eq!(v.details, Some(card("4242", 2030)));
}

#[test]
fn a_detach_in_the_same_second_as_the_attach_wins_in_either_order() {
    for events in [
        vec![(attached("4242", 2030), 10), (detached(), 10)],
        vec![(detached(), 10), (attached("4242", 2030), 10)],
    ] {
        assert!(apply_all(&events).unwrap().detached, "{events:?}");
    }
}

#[test]
fn an_older_update_changes_nothing_and_a_newer_one_replaces_the_details() {
    let v = apply_all(&[
        (attached("4242", 2030), 10),
        (attached("1881", 2032), 30),
        (attached("0000", 2029), 20),
    ])
    .unwrap();
    assert_eq!(v.details, Some(card("1881", 2032)));
    assert_eq!(v.observed_at, 30);
}

#[test]
fn a_named_card_is_a_row_whose_details_come_later() {
    let named = CardSeen::Named {
        stripe_customer: "cus_a".into(),
    };
    let v = apply_all(&[(named.clone(), 5), (attached("4242", 2030), 3)]).unwrap();
    assert_eq!(v.details, Some(card("4242", 2030)));
    // Naming a known card changes nothing of it.
    let known = v.clone();
    assert_eq!(observe_card(Some(&known), &named, 99), CardDecision::Ignore);
}

#[test]
fn obol_wins_a_tie_an_event_does_not() {
    assert!(default_applies(None, 10, DefaultSource::Event));
    assert!(default_applies(Some(10), 11, DefaultSource::Event));
    assert!(!default_applies(Some(10), 10, DefaultSource::Event));
    assert!(default_applies(Some(10), 10, DefaultSource::Obol));
    assert!(!default_applies(Some(10), 9, DefaultSource::Obol));
}

proptest! {
    /// Any arrival order of updates (distinct seconds) and detaches: the
    /// newest details, and detached if any detach was seen.
    #[test]
    fn any_arrival_order_gives_the_newest_details_and_a_detach_is_final(
        mut times in proptest::collection::btree_set(1i64..1000, 1..8),
        detaches in proptest::collection::vec(1i64..1000, 0..3),
        order in proptest::collection::vec(any::<u32>(), 16),
    ) {
        let times: Vec<i64> = std::mem::take(&mut times).into_iter().collect();
        let mut events: Vec<(CardSeen, i64)> = times
            .iter()
            .map(|t| (attached(&format!("{:04}", t % 10_000), 2030 + t % 10), *t))
            .collect();
        events.extend(detaches.iter().map(|t| (detached(), *t)));
        // A permutation driven by `order`.
        let mut keyed: Vec<(u32, (CardSeen, i64))> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (order.get(i).copied().unwrap_or(0), e))
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        let shuffled: Vec<(CardSeen, i64)> = keyed.into_iter().map(|(_, e)| e).collect();
        let v = apply_all(&shuffled).unwrap();
        let newest = *times.last().unwrap();
        prop_assert_eq!(v.details, Some(card(&format!("{:04}", newest % 10_000), 2030 + newest % 10)));
        prop_assert_eq!(v.detached, !detaches.is_empty());
    }

    /// Any arrival order of default events (distinct seconds): the newest.
    #[test]
    fn any_arrival_order_of_defaults_gives_the_newest(
        times in proptest::collection::btree_set(1i64..1000, 1..8),
        order in proptest::collection::vec(any::<u32>(), 8),
    ) {
        let times: Vec<i64> = times.into_iter().collect();
        let mut keyed: Vec<(u32, i64)> = times
            .iter()
            .enumerate()
            .map(|(i, t)| (order.get(i).copied().unwrap_or(0), *t))
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        let mut recorded: Option<i64> = None;
        let mut default = None;
        for (_, at) in keyed {
            if default_applies(recorded, at, DefaultSource::Event) {
                recorded = Some(at);
                default = Some(at);
            }
        }
        prop_assert_eq!(default, times.last().copied());
    }
}
