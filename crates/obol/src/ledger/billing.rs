//! The billing mirror's ordering rule: whether an observation of a Stripe
//! subscription or invoice is newer than the mirror's row.
//!
//! Stripe's events arrive duplicated, reordered or not at all, and every
//! event of one test-clock advance carries the same `created` second, so
//! `created` alone cannot order them. Each object gets a key from what
//! only grows in Stripe's own life of it, compared first, with the event's
//! `created` after it (like the payment ledger, which orders by state
//! progress and then time):
//!
//! - subscription: (final, `current_period_start`, `created`, status
//!   rank, `cancel_at_period_end`). `canceled` and `incomplete_expired`
//!   are final: nothing moves a subscription out of them. A period only
//!   moves forward. Within one period and one second, the status rank
//!   (incomplete < trialing < active < past_due < unpaid < paused) breaks
//!   the tie the way a renewal runs (the new period, then its failure);
//!   a `cancel_at_period_end` set in the same second as the state it
//!   changes comes after it.
//! - invoice: (status rank, `attempt_count`, `created`): draft < open <
//!   uncollectible < paid = void (final). Attempts only grow.
//!
//! An event applies when its key is strictly greater than the row's: a
//! duplicate (equal key) changes nothing and notifies no one. An
//! observation obol retrieved itself (its API's answer, reconciliation's
//! read) is Stripe's state at that moment, newer than every event already
//! sent: it applies unless it is behind the row in what only grows, and
//! the row keeps the larger `observed_at`.

/// A subscription's status, as Stripe names it.
pub fn subscription_status_known(s: &str) -> bool {
    subscription_rank(s).is_some()
}

fn subscription_rank(s: &str) -> Option<u8> {
    Some(match s {
        "incomplete" => 0,
        "trialing" => 1,
        "active" => 2,
        "past_due" => 3,
        "unpaid" => 4,
        "paused" => 5,
        "incomplete_expired" => 6,
        "canceled" => 7,
        _ => return None,
    })
}

/// Nothing moves a subscription out of these.
pub fn subscription_final(s: &str) -> bool {
    matches!(s, "canceled" | "incomplete_expired")
}

/// What the rule compares of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionKey<'a> {
    pub status: &'a str,
    pub current_period_start: i64,
    pub cancel_at_period_end: bool,
    /// The event's `created` (or when obol retrieved it).
    pub at: i64,
}

impl SubscriptionKey<'_> {
    fn tuple(&self) -> (bool, i64, i64, u8, bool) {
        (
            subscription_final(self.status),
            self.current_period_start,
            self.at,
            subscription_rank(self.status).unwrap_or(0),
            self.cancel_at_period_end,
        )
    }
}

/// Whether `seen` (an event) replaces the row's `held` state.
pub fn subscription_event_applies(held: &SubscriptionKey<'_>, seen: &SubscriptionKey<'_>) -> bool {
    if subscription_final(held.status) {
        return false;
    }
    seen.tuple() > held.tuple()
}

/// Whether a retrieved `seen` replaces `held`: unless it is behind in
/// what only grows (a final state, the period).
pub fn subscription_read_applies(held: &SubscriptionKey<'_>, seen: &SubscriptionKey<'_>) -> bool {
    if subscription_final(held.status) {
        return false;
    }
    (subscription_final(seen.status), seen.current_period_start)
        >= (false, held.current_period_start)
}

fn invoice_rank(s: &str) -> Option<u8> {
    Some(match s {
        "draft" => 0,
        "open" => 1,
        "uncollectible" => 2,
        "paid" | "void" => 3,
        _ => return None,
    })
}

/// An invoice's status, as Stripe names it.
pub fn invoice_status_known(s: &str) -> bool {
    invoice_rank(s).is_some()
}

pub fn invoice_final(s: &str) -> bool {
    matches!(s, "paid" | "void")
}

/// What the rule compares of an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvoiceKey<'a> {
    pub status: &'a str,
    pub attempt_count: i64,
    pub at: i64,
}

impl InvoiceKey<'_> {
    fn tuple(&self) -> (u8, i64, i64) {
        (
            invoice_rank(self.status).unwrap_or(0),
            self.attempt_count,
            self.at,
        )
    }
}

/// Whether `seen` (an event) replaces `held`.
pub fn invoice_event_applies(held: &InvoiceKey<'_>, seen: &InvoiceKey<'_>) -> bool {
    if invoice_final(held.status) {
        return false;
    }
    seen.tuple() > held.tuple()
}

/// Whether a retrieved `seen` replaces `held`: unless behind in status or
/// attempts.
pub fn invoice_read_applies(held: &InvoiceKey<'_>, seen: &InvoiceKey<'_>) -> bool {
    if invoice_final(held.status) {
        return false;
    }
    (seen.tuple().0, seen.tuple().1) >= (held.tuple().0, held.tuple().1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sub(status: &str, period: i64, cancel: bool, at: i64) -> SubscriptionKey<'_> {
        SubscriptionKey {
            status,
            current_period_start: period,
            cancel_at_period_end: cancel,
            at,
        }
    }

    /// Applies `events` in order from nothing; returns the index held.
    fn fold_sub(events: &[SubscriptionKey<'_>]) -> usize {
        let mut held = 0;
        for (i, e) in events.iter().enumerate().skip(1) {
            if subscription_event_applies(&events[held], e) {
                held = i;
            }
        }
        held
    }

    #[test]
    fn a_renewal_that_fails_in_one_second_ends_past_due() {
        // created, paid (active), renewed (new period), failed (past_due):
        // the last three in one test-clock second.
        let stream = [
            sub("incomplete", 100, false, 100),
            sub("active", 100, false, 100),
            sub("active", 200, false, 200),
            sub("past_due", 200, false, 200),
        ];
        assert_eq!(fold_sub(&stream), 3);
        let reversed: Vec<_> = stream.iter().rev().copied().collect();
        assert_eq!(reversed[fold_sub(&reversed)], stream[3]);
    }

    #[test]
    fn canceled_is_final_and_a_cancel_flag_comes_after_its_state() {
        let a = sub("active", 100, false, 100);
        let flagged = sub("active", 100, true, 100);
        let canceled = sub("canceled", 100, true, 100);
        assert!(subscription_event_applies(&a, &flagged));
        assert!(!subscription_event_applies(&flagged, &a));
        assert!(subscription_event_applies(&flagged, &canceled));
        assert!(!subscription_event_applies(
            &canceled,
            &sub("active", 900, false, 900)
        ));
        assert!(!subscription_read_applies(&canceled, &a));
        // A read is behind only in the period or finality.
        assert!(subscription_read_applies(
            &flagged,
            &sub("active", 100, false, 1)
        ));
        assert!(!subscription_read_applies(
            &sub("active", 200, false, 1),
            &a
        ));
    }

    #[test]
    fn invoices_move_forward_only() {
        let draft = InvoiceKey {
            status: "draft",
            attempt_count: 0,
            at: 5,
        };
        let open = InvoiceKey {
            status: "open",
            attempt_count: 0,
            at: 5,
        };
        let failed = InvoiceKey {
            status: "open",
            attempt_count: 1,
            at: 5,
        };
        let paid = InvoiceKey {
            status: "paid",
            attempt_count: 2,
            at: 9,
        };
        assert!(invoice_event_applies(&draft, &open));
        assert!(invoice_event_applies(&open, &failed));
        assert!(!invoice_event_applies(&failed, &open));
        assert!(!invoice_event_applies(&failed, &failed));
        assert!(invoice_event_applies(&failed, &paid));
        assert!(!invoice_event_applies(
            &paid,
            &InvoiceKey {
                status: "void",
                attempt_count: 9,
                at: 99
            }
        ));
        assert!(invoice_read_applies(
            &open,
            &InvoiceKey {
                status: "open",
                attempt_count: 0,
                at: 0
            }
        ));
        assert!(!invoice_read_applies(&failed, &open));
    }

    fn status() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "incomplete",
            "trialing",
            "active",
            "past_due",
            "unpaid",
            "paused",
            "incomplete_expired",
            "canceled",
        ])
    }

    proptest! {
        /// Whatever order a set of distinct observations arrives in, the
        /// mirror ends on the same one: the greatest (or the first final
        /// one's greatest, as nothing leaves a final state).
        #[test]
        fn any_arrival_order_ends_on_the_same_subscription(
            keys in prop::collection::vec((status(), 0i64..4, any::<bool>(), 0i64..4), 1..8),
            seed in any::<u64>(),
        ) {
            let mut keys = keys;
            keys.sort();
            keys.dedup();
            let obs: Vec<SubscriptionKey<'_>> =
                keys.iter().map(|(s, p, c, a)| sub(s, *p, *c, *a)).collect();
            let mut shuffled = obs.clone();
            let mut r = seed;
            for i in (1..shuffled.len()).rev() {
                r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (r >> 33) as usize % (i + 1));
            }
            // Start from a synthetic "nothing" below every key.
            let start = sub("incomplete", -1, false, -1);
            let mut a = start;
            for k in &obs { if subscription_event_applies(&a, k) { a = *k; } }
            let mut b = start;
            for k in &shuffled { if subscription_event_applies(&b, k) { b = *k; } }
            // Non-final observations: both end on the maximum. With finals,
            // both end final.
            prop_assert_eq!(subscription_final(a.status), subscription_final(b.status));
            if !obs.iter().any(|k| subscription_final(k.status)) {
                prop_assert_eq!(a, b);
            }
            // Duplicates never apply.
            prop_assert!(!subscription_event_applies(&b, &b));
        }
    }
}
