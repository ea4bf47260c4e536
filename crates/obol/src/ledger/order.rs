//! The order state machine: one pure function, `transition`, that every
//! change of an order's status goes through: the operator's PATCH, a
//! pay-first checkout, and the payment writer confirming an order whose
//! payment succeeded.
//!
//! ```text
//! pending ─▶ confirmed ─▶ shipped ─▶ delivered
//!    └──────────┴─▶ cancelled
//! ```
//!
//! An order never moves backwards. `Paid` (its payment succeeded, or the
//! pay-first authorization was verified) confirms a pending order and is a
//! no-op anywhere else, so a duplicated or late payment event changes
//! nothing. Asking for the status an order already has is a no-op too,
//! which makes a retried PATCH safe.
//!
//! Nothing here touches storage; `orders::` writes the move, its timeline
//! entry and its notification in one transaction, guarded by the status
//! it read.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    /// The statuses `checkout.capture_on` may name.
    pub const CAPTURE_POINTS: [OrderStatus; 3] = [
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => OrderStatus::Pending,
            "confirmed" => OrderStatus::Confirmed,
            "shipped" => OrderStatus::Shipped,
            "delivered" => OrderStatus::Delivered,
            "cancelled" => OrderStatus::Cancelled,
            _ => return None,
        })
    }

    /// How far along the fulfilment path an order is; `None` off it.
    pub fn rank(self) -> Option<u8> {
        match self {
            OrderStatus::Pending => Some(0),
            OrderStatus::Confirmed => Some(1),
            OrderStatus::Shipped => Some(2),
            OrderStatus::Delivered => Some(3),
            OrderStatus::Cancelled => None,
        }
    }

    /// Whether an order in this status has reached `point` (for capture).
    pub fn has_reached(self, point: OrderStatus) -> bool {
        match (self.rank(), point.rank()) {
            (Some(a), Some(b)) => a >= b,
            (None, _) | (_, None) => false,
        }
    }

    /// No input can move the order on.
    pub fn is_final(self) -> bool {
        match self {
            OrderStatus::Delivered | OrderStatus::Cancelled => true,
            OrderStatus::Pending | OrderStatus::Confirmed | OrderStatus::Shipped => false,
        }
    }

    /// The host notification sent when an order enters this status.
    pub fn event_type(self) -> Option<&'static str> {
        match self {
            OrderStatus::Pending => None,
            OrderStatus::Confirmed => Some("order.confirmed"),
            OrderStatus::Shipped => Some("order.shipped"),
            OrderStatus::Delivered => Some("order.delivered"),
            OrderStatus::Cancelled => Some("order.cancelled"),
        }
    }

    /// The moves the transition table allows.
    fn can_move_to(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        match self {
            Pending => matches!(to, Confirmed | Cancelled),
            Confirmed => matches!(to, Shipped | Cancelled),
            Shipped => matches!(to, Delivered),
            Delivered | Cancelled => false,
        }
    }
}

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderInput {
    /// Its payment succeeded (order-first) or its pay-first authorization
    /// was verified.
    Paid,
    /// The operator asked for a status.
    Set(OrderStatus),
}

/// A move to write, with its timeline entry `from → to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderMove {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// An input the transition table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllegalMove {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// `Ok(Some(move))` to write, `Ok(None)` when nothing changes (a duplicate,
/// a late payment event, the current status asked again), `Err` for a move
/// the table forbids.
pub fn transition(
    current: OrderStatus,
    input: OrderInput,
) -> Result<Option<OrderMove>, IllegalMove> {
    match input {
        OrderInput::Paid => Ok((current == OrderStatus::Pending).then_some(OrderMove {
            from: current,
            to: OrderStatus::Confirmed,
        })),
        OrderInput::Set(to) if to == current => Ok(None),
        OrderInput::Set(to) if current.can_move_to(to) => Ok(Some(OrderMove { from: current, to })),
        OrderInput::Set(to) => Err(IllegalMove { from: current, to }),
    }
}

impl TryFrom<String> for OrderStatus {
    type Error = String;

    /// For reading the stored column: a value obol never writes is an error.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        OrderStatus::parse(&s).ok_or_else(|| format!("unknown order status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = OrderStatus> {
        prop::sample::select(OrderStatus::ALL.to_vec())
    }

    fn input() -> impl Strategy<Value = OrderInput> {
        prop_oneof![Just(OrderInput::Paid), status().prop_map(OrderInput::Set)]
    }

    /// Applies inputs in order, skipping refused ones, as the writer does.
    fn run(start: OrderStatus, inputs: &[OrderInput]) -> (OrderStatus, Vec<OrderMove>) {
        let mut s = start;
        let mut moves = Vec::new();
        for i in inputs {
            if let Ok(Some(m)) = transition(s, *i) {
                assert_eq!(m.from, s);
                s = m.to;
                moves.push(m);
            }
        }
        (s, moves)
    }

    #[test]
    fn the_table() {
        use OrderStatus::*;
        let legal = [
            (Pending, Confirmed),
            (Confirmed, Shipped),
            (Shipped, Delivered),
            (Pending, Cancelled),
            (Confirmed, Cancelled),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                let got = transition(from, OrderInput::Set(to));
                if from == to {
                    assert_eq!(got, Ok(None));
                } else if legal.contains(&(from, to)) {
                    assert_eq!(got, Ok(Some(OrderMove { from, to })));
                } else {
                    assert_eq!(got, Err(IllegalMove { from, to }), "{from:?} → {to:?}");
                }
            }
        }
    }

    #[test]
    fn a_payment_confirms_only_a_pending_order() {
        for s in OrderStatus::ALL {
            let expected = (s == OrderStatus::Pending).then_some(OrderMove {
                from: s,
                to: OrderStatus::Confirmed,
            });
            assert_eq!(transition(s, OrderInput::Paid), Ok(expected));
        }
    }

    proptest! {
        /// Whatever arrives, in any order: an order never moves backwards,
        /// leaves a final status never, and each move follows the last.
        #[test]
        fn never_backwards(start in status(), inputs in prop::collection::vec(input(), 0..40)) {
            let (_, moves) = run(start, &inputs);
            for m in &moves {
                prop_assert!(!m.from.is_final());
                match (m.from.rank(), m.to.rank()) {
                    (Some(a), Some(b)) => prop_assert!(b > a),
                    (Some(_), None) => prop_assert_eq!(m.to, OrderStatus::Cancelled),
                    (None, _) => prop_assert!(false, "moved out of cancelled"),
                }
            }
        }

        /// Every input delivered twice (a duplicate event, a retried PATCH)
        /// ends where delivering it once does, with the same moves.
        #[test]
        fn duplicates_change_nothing(start in status(), inputs in prop::collection::vec(input(), 0..30)) {
            let doubled: Vec<OrderInput> = inputs.iter().flat_map(|i| [*i, *i]).collect();
            prop_assert_eq!(run(start, &inputs), run(start, &doubled));
        }

        /// Payment events alone, however many and in whatever order they
        /// arrive, confirm a pending order exactly once.
        #[test]
        fn payments_confirm_once(n in 1usize..20) {
            let (end, moves) = run(OrderStatus::Pending, &vec![OrderInput::Paid; n]);
            prop_assert_eq!(end, OrderStatus::Confirmed);
            prop_assert_eq!(moves.len(), 1);
        }

        /// A payment event arriving after the operator's moves never
        /// undoes them, whichever the interleaving.
        #[test]
        fn late_payments_never_undo(start in status(), inputs in prop::collection::vec(input(), 0..30), at in 0usize..30) {
            let (before, _) = run(start, &inputs);
            let mut with_late = inputs.clone();
            with_late.insert(at.min(inputs.len()), OrderInput::Paid);
            let (after, _) = run(start, &with_late);
            if before != OrderStatus::Pending && start != OrderStatus::Pending {
                prop_assert_eq!(before, after);
            }
        }
    }
}
