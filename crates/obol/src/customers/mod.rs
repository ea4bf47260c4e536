//! The customer mirror: what one Stripe observation of a customer (its
//! `customer.created`, `customer.updated` or `customer.deleted` event)
//! does to obol's customer, inside the caller's transaction, with the host
//! notification of the change.
//!
//! Which obol customer a Stripe customer is, never two:
//! 1. the one holding that `cus_…` already;
//! 2. else the one named by the object's `metadata[obol_customer_id]`
//!    (obol creates its own Stripe customers with it, and Stripe's
//!    `customer.created` may arrive before obol stored the `cus_…`): it is
//!    linked, not adopted;
//! 3. else a new obol customer with `source = stripe` (adopted). The
//!    unique index on `(account_id, stripe_customer_id)` makes a concurrent
//!    adoption of the same customer lose and read the winner.
//!
//! The ordering rule (event time, unix seconds, as for saved cards):
//! the e-mail and name are replaced only by an observation at least as new
//! as the one recorded (within one second the later arrival wins), except
//! that a `customer.created` never replaces an observation of its own
//! second (nothing about a customer precedes its creation). Deleted is
//! final: Stripe never brings a deleted customer back, so nothing after a
//! deletion changes the customer, and the deletion detaches its cards.
//! Ledger history (payments, refunds) keeps naming the customer.

use serde_json::Value;

use crate::context::AccountId;
use crate::error::{Error, Result};
use crate::ids::CustomerId;
use crate::outbox;
use crate::payments::{Outcome, Unreadable};
use crate::storage::customers::{AdoptedCustomer, CustomerRow, MirroredCustomer};
use crate::storage::{self, Conn};

/// Which customer event carried the observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerEvent {
    Created,
    Updated,
    Deleted,
}

impl CustomerEvent {
    pub fn parse(event_type: &str) -> Option<Self> {
        Some(match event_type {
            "customer.created" => Self::Created,
            "customer.updated" => Self::Updated,
            "customer.deleted" => Self::Deleted,
            _ => return None,
        })
    }
}

/// A Stripe customer object, as far as the mirror reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSeen {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// `metadata[obol_customer_id]`: a customer obol created.
    pub obol_customer_id: Option<String>,
}

/// The longest e-mail or name kept from Stripe (Stripe allows 512).
const MAX_TEXT: usize = 512;

fn text_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(MAX_TEXT).collect())
}

/// Reads a customer object (an event's).
pub fn read_customer(object: &Value) -> std::result::Result<CustomerSeen, Unreadable> {
    let id = object
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| s.starts_with("cus_"))
        .ok_or_else(|| Unreadable("unexpected customer object: no cus_ id".into()))?;
    Ok(CustomerSeen {
        id: id.to_string(),
        email: text_of(object.get("email")),
        name: text_of(object.get("name")),
        obol_customer_id: text_of(object.pointer("/metadata/obol_customer_id")),
    })
}

/// Whether an observation at `at` replaces what was recorded at
/// `recorded` (0: nothing yet).
pub fn applies(recorded: i64, deleted: bool, event: CustomerEvent, at: i64) -> bool {
    if deleted {
        return false;
    }
    match event {
        CustomerEvent::Deleted => true,
        CustomerEvent::Created => recorded == 0 || at > recorded,
        CustomerEvent::Updated => at >= recorded,
    }
}

/// What `observe` did, for the caller (the default card of a
/// `customer.updated` is applied after it, to the same customer).
pub struct Observed {
    pub customer: CustomerRow,
    pub outcome: Outcome,
}

/// Applies one Stripe observation of a customer at `at` (the event's
/// time), from the Stripe event `stripe_event_id`. The customer's row is
/// held for the transaction on return.
pub async fn observe(
    conn: &mut Conn<'_>,
    account: &AccountId,
    seen: &CustomerSeen,
    event: CustomerEvent,
    at: i64,
    stripe_event_id: &str,
) -> Result<Observed> {
    let now = storage::now();
    let deleted = event == CustomerEvent::Deleted;
    let existing = match conn.get_customer_by_stripe_id(account, &seen.id).await? {
        Some(c) => Some(c),
        None => link_own(conn, account, seen, now).await?,
    };
    let read = match existing {
        Some(c) => c,
        None => {
            let id = CustomerId::generate();
            let adopted = conn
                .adopt_stripe_customer(&AdoptedCustomer {
                    id: &id,
                    account_id: account.as_str(),
                    stripe_customer_id: &seen.id,
                    email: seen.email.as_deref(),
                    name: seen.name.as_deref(),
                    observed: at,
                    deleted,
                    now,
                })
                .await?;
            match adopted {
                Some(row) => {
                    conn.lock_customer(&row.id).await?;
                    tracing::info!(customer_id = %row.id, stripe_customer = %seen.id, "Stripe customer adopted");
                    let kind = if deleted {
                        "customer.deleted"
                    } else {
                        "customer.created"
                    };
                    outbox::notify_customer(conn, kind, &row, stripe_event_id).await?;
                    return Ok(Observed {
                        customer: row,
                        outcome: Outcome::Applied,
                    });
                }
                // Adopted meanwhile by a concurrent writer: apply to it.
                None => conn
                    .get_customer_by_stripe_id(account, &seen.id)
                    .await?
                    .ok_or_else(|| Error::internal("the adopted customer vanished; retrying"))?,
            }
        }
    };
    conn.lock_customer(&read.id).await?;
    let read = conn
        .get_customer(account, &CustomerId::from_db(read.id.clone()))
        .await?
        .ok_or_else(|| Error::internal("the customer vanished; retrying"))?;
    if !applies(
        read.stripe_observed,
        read.stripe_deleted_at.is_some(),
        event,
        at,
    ) {
        let why = if read.stripe_deleted_at.is_some() {
            "the Stripe customer was deleted already"
        } else {
            "older than the customer's recorded Stripe state"
        };
        return Ok(Observed {
            customer: read,
            outcome: Outcome::Ignored(why.into()),
        });
    }
    let written = conn
        .write_customer_mirror(
            &read,
            &MirroredCustomer {
                email: seen.email.as_deref(),
                name: seen.name.as_deref(),
                observed: at.max(read.stripe_observed),
                deleted,
                now,
            },
        )
        .await?;
    if !written {
        return Err(Error::internal(
            "the customer changed concurrently; retrying",
        ));
    }
    let row = conn
        .get_customer(account, &CustomerId::from_db(read.id.clone()))
        .await?
        .ok_or_else(|| Error::internal("the customer vanished; retrying"))?;
    if deleted {
        let detached = conn
            .detach_payment_methods_of_stripe_customer(account, &seen.id, now)
            .await?;
        tracing::info!(customer_id = %row.id, stripe_customer = %seen.id, cards_detached = detached, "Stripe customer deleted");
        outbox::notify_customer(conn, "customer.deleted", &row, stripe_event_id).await?;
    } else if row.email != read.email || row.name != read.name {
        outbox::notify_customer(conn, "customer.updated", &row, stripe_event_id).await?;
    }
    Ok(Observed {
        customer: row,
        outcome: Outcome::Applied,
    })
}

/// An obol-created customer named by the object's metadata, linked to
/// the Stripe customer if obol had not stored it yet; `None` when the
/// metadata names none of this account's customers, or one linked to
/// another Stripe customer (then the object is not obol's own).
async fn link_own(
    conn: &mut Conn<'_>,
    account: &AccountId,
    seen: &CustomerSeen,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<CustomerRow>> {
    let Some(own) = seen
        .obol_customer_id
        .as_deref()
        .and_then(|id| CustomerId::parse(id).ok())
    else {
        return Ok(None);
    };
    let Some(row) = conn.get_customer(account, &own).await? else {
        return Ok(None);
    };
    match row.stripe_customer_id.as_deref() {
        Some(cus) if cus == seen.id => Ok(Some(row)),
        Some(_) => Ok(None),
        None => {
            conn.lock_customer(&row.id).await?;
            conn.set_stripe_customer_id(account, &own, &seen.id, now)
                .await?;
            let row = conn.get_customer(account, &own).await?;
            Ok(row.filter(|r| r.stripe_customer_id.as_deref() == Some(seen.id.as_str())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ordering_rule() {
        use CustomerEvent::*;
        // Nothing recorded: anything applies.
        for e in [Created, Updated, Deleted] {
            assert!(applies(0, false, e, 100));
        }
        // A newer observation applies, an older one does not.
        assert!(applies(100, false, Updated, 101));
        assert!(!applies(100, false, Updated, 99));
        assert!(!applies(100, false, Created, 99));
        // Within one second: an update wins, a creation never does.
        assert!(applies(100, false, Updated, 100));
        assert!(!applies(100, false, Created, 100));
        // Deleted is final, and a deletion applies whenever it arrives.
        assert!(applies(100, false, Deleted, 50));
        for e in [Created, Updated, Deleted] {
            assert!(!applies(100, true, e, 200));
        }
    }

    #[test]
    fn reads_a_customer() {
        let seen = read_customer(&serde_json::json!({
            "id": "cus_1", "object": "customer", "email": " ana@example.com ", "name": "",
            "metadata": {"obol_customer_id": "cus_01abc"}
        }))
        .unwrap();
        assert_eq!(seen.email.as_deref(), Some("ana@example.com"));
        assert_eq!(seen.name, None);
        assert_eq!(seen.obol_customer_id.as_deref(), Some("cus_01abc"));
        assert!(read_customer(&serde_json::json!({"id": 5})).is_err());
    }
}
