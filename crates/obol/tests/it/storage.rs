//! The storage layer on both backends, through obol's own `Store`.

use obol::context::AccountId;
use obol::ids::{CustomerId, CustomerTokenId, SecretToken};
use obol::storage::customers::NewCustomer;
use obol::storage::{now, Store};

use crate::helpers::{Backend, TestDb};
use crate::on_both_backends;

on_both_backends!(
    migrations_apply_once_and_are_idempotent,
    customer_round_trips_exactly,
    external_id_is_unique_per_account,
    concurrent_inserts_of_one_external_id_leave_one_row,
    dropped_transaction_writes_nothing,
    customer_tokens_expire_and_revoke,
    several_instances_migrate_one_database_at_once,
    another_accounts_rows_are_invisible,
    concurrent_inbox_claims_take_at_most_their_batch_and_never_the_same_event,
    a_worker_whose_claim_expired_cannot_overwrite_the_events_outcome,
    processes_on_one_database_share_the_stripe_budget,
);

/// PostgreSQL test databases do not outlive their test, with or without
/// an obol process on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_test_databases_are_dropped_when_the_test_ends() {
    use sqlx::Connection;
    let exists = |name: String| async move {
        let mut conn = sqlx::PgConnection::connect(&crate::helpers::postgres_admin_url())
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        n == 1
    };
    let name_of = |url: &str| url.rsplit_once('/').unwrap().1.to_string();

    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let name = name_of(&db.url);
    assert!(exists(name.clone()).await);
    drop(db);
    drop(store);
    assert!(!exists(name).await, "the database outlived its TestDb");

    let obol = crate::helpers::Obol::start(Backend::Postgres).await;
    let name = name_of(&obol.db.url);
    let pid = obol.pid();
    assert!(exists(name.clone()).await);
    drop(obol);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "obol still runs"
    );
    assert!(!exists(name).await, "the database outlived its obol");
}

fn new_customer<'a>(
    id: &'a CustomerId,
    account: &'a str,
    external: Option<&'a str>,
) -> NewCustomer<'a> {
    NewCustomer {
        id,
        account_id: account,
        external_id: external,
        email: Some("ana@example.com"),
        name: Some("Ana"),
        now: now(),
    }
}

async fn migrations_apply_once_and_are_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = Store::connect(&db.config("")).await.unwrap();
    assert!(store.migrate().await.unwrap() >= 1);
    assert_eq!(store.migrate().await.unwrap(), 0);
}

async fn customer_round_trips_exactly(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = CustomerId::generate();
    let mut h = store.acquire().await.unwrap();
    let inserted = h
        .conn()
        .insert_customer(&new_customer(&id, "default", Some("member-42")))
        .await
        .unwrap()
        .unwrap();
    let platform = AccountId::platform();
    let read = h
        .conn()
        .get_customer(&platform, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inserted, read);
    // Another account's reads never see it.
    let other = AccountId::from_db("acct_other".into());
    assert!(h.conn().get_customer(&other, &id).await.unwrap().is_none());
    assert_eq!(read.external_id.as_deref(), Some("member-42"));
    assert_eq!(read.stripe_customer_id, None);
    assert!(h
        .conn()
        .get_customer(&platform, &CustomerId::generate())
        .await
        .unwrap()
        .is_none());
}

async fn external_id_is_unique_per_account(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut h = store.acquire().await.unwrap();
    let mut c = h.conn();
    let first = CustomerId::generate();
    assert!(c
        .insert_customer(&new_customer(&first, "default", Some("m-1")))
        .await
        .unwrap()
        .is_some());
    let second = CustomerId::generate();
    assert!(c
        .insert_customer(&new_customer(&second, "default", Some("m-1")))
        .await
        .unwrap()
        .is_none());
    // Another account may use the same external id.
    assert!(c
        .insert_customer(&new_customer(&second, "acct_other", Some("m-1")))
        .await
        .unwrap()
        .is_some());
    // Customers without an external id never collide.
    for _ in 0..2 {
        assert!(c
            .insert_customer(&new_customer(&CustomerId::generate(), "default", None))
            .await
            .unwrap()
            .is_some());
    }
    let found = c
        .get_customer_by_external_id("default", "m-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, first.as_str());
}

async fn concurrent_inserts_of_one_external_id_leave_one_row(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = CustomerId::generate();
            let mut tx = store.begin().await.unwrap();
            let row = tx
                .conn()
                .insert_customer(&new_customer(&id, "default", Some("race")))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            row.is_some()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn dropped_transaction_writes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = CustomerId::generate();
    {
        let mut tx = store.begin().await.unwrap();
        tx.conn()
            .insert_customer(&new_customer(&id, "default", Some("gone")))
            .await
            .unwrap();
        // dropped without commit
    }
    let mut h = store.acquire().await.unwrap();
    assert!(h
        .conn()
        .get_customer(&AccountId::platform(), &id)
        .await
        .unwrap()
        .is_none());
}

async fn customer_tokens_expire_and_revoke(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut h = store.acquire().await.unwrap();
    let mut c = h.conn();
    let customer = CustomerId::generate();
    c.insert_customer(&new_customer(&customer, "default", None))
        .await
        .unwrap()
        .unwrap();
    let t = now();
    let live = SecretToken::generate("obol_ct_");
    let live_id = CustomerTokenId::generate();
    let platform = AccountId::platform();
    c.insert_customer_token(
        &platform,
        &live_id,
        &customer,
        &live.hash(),
        t + chrono::Duration::seconds(60),
        t,
    )
    .await
    .unwrap();
    let expired = SecretToken::generate("obol_ct_");
    c.insert_customer_token(
        &platform,
        &CustomerTokenId::generate(),
        &customer,
        &expired.hash(),
        t - chrono::Duration::seconds(1),
        t,
    )
    .await
    .unwrap();
    let found = c
        .find_live_customer_token(&live.hash(), now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.customer_id, customer.as_str());
    assert_eq!(found.account_id, "default");
    assert!(c
        .find_live_customer_token(&expired.hash(), now())
        .await
        .unwrap()
        .is_none());
    let revoked = c
        .revoke_customer_token(&platform, &live_id, now())
        .await
        .unwrap()
        .unwrap();
    let first_revocation = revoked.revoked_at.unwrap();
    // Another account cannot revoke it.
    assert!(c
        .revoke_customer_token(&AccountId::from_db("acct_other".into()), &live_id, now())
        .await
        .unwrap()
        .is_none());
    assert!(c
        .find_live_customer_token(&live.hash(), now())
        .await
        .unwrap()
        .is_none());
    let again = c
        .revoke_customer_token(&platform, &live_id, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(first_revocation));
    assert!(c
        .revoke_customer_token(&platform, &CustomerTokenId::generate(), now())
        .await
        .unwrap()
        .is_none());
}

async fn several_instances_migrate_one_database_at_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let config = db.config("");
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let store = Store::connect(&config).await.unwrap();
        tasks.push(tokio::spawn(
            async move { store.migrate().await.map(|_| ()) },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let store = db.store().await;
    assert_eq!(store.migrate().await.unwrap(), 0);
}

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |dir: &str| {
        let mut v: Vec<String> =
            std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        v.sort();
        v
    };
    assert_eq!(names("sqlite"), names("postgres"));
}

/// Every (table, column) the migrations define, with its nullability, as
/// the database itself reports them after migrating.
async fn schema_of(db: &TestDb, backend: Backend) -> Vec<(String, String, bool)> {
    use sqlx::Connection;
    db.store().await.close().await;
    let mut columns: Vec<(String, String, bool)> = match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT table_name::text, column_name::text, is_nullable::text \
                 FROM information_schema.columns WHERE table_schema = 'public'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .map(|(t, c, n)| (t, c, n == "YES"))
            .collect()
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let mut all = Vec::new();
            for t in tables {
                let cols: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
                    "SELECT name, \"notnull\", pk FROM pragma_table_info('{t}')"
                ))
                .fetch_all(&mut conn)
                .await
                .unwrap();
                for (c, notnull, pk) in cols {
                    // SQLite lets a TEXT primary key be NULL unless it says
                    // NOT NULL; PostgreSQL's primary keys never are.
                    all.push((t.clone(), c, notnull == 0 && pk == 0));
                }
            }
            all
        }
    };
    columns.retain(|(t, _, _)| t != "_sqlx_migrations");
    columns.sort();
    columns
}

/// The two migration folders must define the same tables and columns (and
/// nullability), not only hold the same file names: a column added to one
/// backend only would pass every test run on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_define_the_same_tables_and_columns() {
    let sqlite = schema_of(&TestDb::new(Backend::Sqlite).await, Backend::Sqlite).await;
    let postgres = schema_of(&TestDb::new(Backend::Postgres).await, Backend::Postgres).await;
    assert!(sqlite.len() > 50, "only {} columns found", sqlite.len());
    let only = |a: &[(String, String, bool)], b: &[(String, String, bool)]| -> Vec<String> {
        a.iter()
            .filter(|x| !b.contains(x))
            .map(|(t, c, n)| format!("{t}.{c}{}", if *n { " (nullable)" } else { "" }))
            .collect()
    };
    assert!(
        sqlite == postgres,
        "only in SQLite: {:?}\nonly in PostgreSQL: {:?}",
        only(&sqlite, &postgres),
        only(&postgres, &sqlite)
    );
}

/// Rows of one Stripe account are invisible to every read made for
/// another: payments, their timeline, refunds, disputes and their
/// timeline, tasks and notification
/// endpoints. Children (timeline entries, refunds, disputes) inherit the
/// account of the payment they belong to.
async fn another_accounts_rows_are_invisible(backend: Backend) {
    use obol::ledger::{Ledger, PaymentState};
    use obol::storage::disputes::{NewDispute, NewTask};
    use obol::storage::payments::{NewPayment, NewTimelineEntry, PaymentFilter};
    use obol::storage::refunds::NewRefund;

    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mine = AccountId::from_db("acct_mine".into());
    let theirs = AccountId::platform();
    let mut tx = store.begin().await.unwrap();
    let mut c = tx.conn();
    let t = now();
    let ledger = Ledger {
        state: PaymentState::Completed,
        amount_refunded: 0,
        amount_captured: 1000,
        observed_at: 1,
    };
    c.insert_payment(&NewPayment {
        id: "pay_t",
        account_id: mine.as_str(),
        customer_id: None,
        order_id: None,
        stripe_payment_intent_id: "pi_t",
        amount: 1000,
        currency: "eur",
        ledger,
        now: t,
    })
    .await
    .unwrap()
    .unwrap();
    c.insert_timeline_entry(&NewTimelineEntry {
        payment_id: "pay_t",
        from: None,
        to: PaymentState::Completed,
        at: t,
        cause_kind: "api",
        cause_ref: None,
    })
    .await
    .unwrap();
    let refund = c
        .insert_refund(&NewRefund {
            id: "rf_t",
            payment_id: "pay_t",
            stripe_refund_id: Some("re_t"),
            amount: 100,
            currency: "eur",
            reason: None,
            status: obol::ledger::refund::RefundStatus::Succeeded,
            observed_at: 1,
            now: t,
        })
        .await
        .unwrap();
    assert_eq!(
        refund.account_id, "acct_mine",
        "a refund takes its payment's account"
    );
    let dispute = c
        .insert_dispute(&NewDispute {
            id: "dsp_t",
            stripe_dispute_id: "dp_t",
            payment_id: "pay_t",
            amount: 1000,
            currency: "eur",
            reason: "fraudulent",
            status: obol::ledger::dispute::DisputeStatus::NeedsResponse,
            evidence_due_by: None,
            observed_at: 1,
            now: t,
        })
        .await
        .unwrap();
    c.insert_dispute_timeline_entry(
        &dispute.id,
        None,
        obol::ledger::dispute::DisputeStatus::NeedsResponse,
        t,
        "webhook",
        None,
    )
    .await
    .unwrap();
    c.open_task(&NewTask {
        account_id: mine.as_str(),
        kind: "respond_to_dispute",
        title: "Respond",
        subject_type: "dispute",
        subject_id: &dispute.id,
        payment_id: Some("pay_t"),
        customer_id: None,
        due_at: None,
        now: t,
    })
    .await
    .unwrap();
    c.insert_endpoint(&obol::storage::notifications::NewEndpoint {
        account: &mine,
        id: "ep_t",
        url: "https://example.com/h",
        event_types: &["*".to_string()],
        secret: "whsec_x",
        description: None,
        now: t,
    })
    .await
    .unwrap();

    for (account, seen) in [(&mine, true), (&theirs, false)] {
        let n = usize::from(seen);
        assert_eq!(
            c.get_payment(account, "pay_t").await.unwrap().is_some(),
            seen
        );
        assert_eq!(
            c.get_payment_by_intent(account.as_str(), "pi_t")
                .await
                .unwrap()
                .is_some(),
            seen
        );
        let all = PaymentFilter {
            limit: 10,
            ..PaymentFilter::default()
        };
        assert_eq!(c.list_payments(account, &all).await.unwrap().len(), n);
        assert_eq!(c.list_timeline(account, "pay_t").await.unwrap().len(), n);
        assert_eq!(c.get_refund(account, "rf_t").await.unwrap().is_some(), seen);
        assert_eq!(
            c.get_refund_by_stripe_id(account, "re_t")
                .await
                .unwrap()
                .is_some(),
            seen
        );
        assert_eq!(c.list_refunds(account, "pay_t").await.unwrap().len(), n);
        assert_eq!(
            c.get_dispute(account, "dsp_t").await.unwrap().is_some(),
            seen
        );
        assert_eq!(
            c.get_dispute_by_stripe_id(account, "dp_t")
                .await
                .unwrap()
                .is_some(),
            seen
        );
        assert_eq!(
            c.list_dispute_timeline(account, "dsp_t")
                .await
                .unwrap()
                .len(),
            n
        );
        assert_eq!(
            c.list_disputes(account, None, None, 10)
                .await
                .unwrap()
                .len(),
            n
        );
        assert_eq!(
            c.list_tasks(account, None, None, 10).await.unwrap().len(),
            n
        );
        assert_eq!(
            c.get_endpoint(account, "ep_t").await.unwrap().is_some(),
            seen
        );
        assert_eq!(c.list_endpoints(account).await.unwrap().len(), n);
    }
    // A notification for one account reaches only that account's endpoints.
    assert!(c
        .enqueue_notification(&theirs, "payment.completed", "{}", t)
        .await
        .unwrap()
        .is_none());
    assert!(c
        .enqueue_notification(&mine, "payment.completed", "{}", t)
        .await
        .unwrap()
        .is_some());
    // Another account can neither delete the endpoint nor see its deliveries.
    assert!(!c.delete_endpoint(&theirs, "ep_t", t).await.unwrap());
    assert_eq!(
        c.list_deliveries(&theirs, "ep_t", None, 10)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        c.list_deliveries(&mine, "ep_t", None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    tx.commit().await.unwrap();
}

/// A worker whose claim expired (it stalled past the lock) and whose event
/// another worker then claimed and applied must not overwrite the outcome
/// when it finally finishes, nor mark it failed.
async fn a_worker_whose_claim_expired_cannot_overwrite_the_events_outcome(backend: Backend) {
    use obol::storage::webhook_events::NewWebhookEvent;
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let t0 = now();
    let mut h = store.acquire().await.unwrap();
    let mut conn = h.conn();
    assert!(conn
        .insert_webhook_event(&NewWebhookEvent {
            stripe_event_id: "evt_claims",
            account_id: "default",
            event_type: "payment_intent.succeeded",
            stripe_created: 1,
            livemode: false,
            payload: "{}",
            source: "webhook",
            ignored: None,
            now: t0,
        })
        .await
        .unwrap());
    let lock = chrono::Duration::seconds(15);
    let first = conn
        .claim_due_webhook_events(t0, t0 + lock, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // Not claimable while the first claim holds; claimable once it lapsed.
    assert!(conn
        .claim_due_webhook_events(t0 + chrono::Duration::seconds(1), t0 + lock, 10)
        .await
        .unwrap()
        .is_empty());
    let later = t0 + chrono::Duration::seconds(16);
    let second = conn
        .claim_due_webhook_events(later, later + lock, 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert!(conn
        .finish_webhook_event(
            &second[0],
            obol::ledger::inbox_event::InboxStatus::Applied,
            None,
            later
        )
        .await
        .unwrap());
    // The stalled first worker comes back: its outcome is refused.
    assert!(!conn
        .fail_webhook_event(&first[0], "stalled", later)
        .await
        .unwrap());
    assert!(!conn
        .finish_webhook_event(
            &first[0],
            obol::ledger::inbox_event::InboxStatus::Ignored,
            Some("late"),
            later
        )
        .await
        .unwrap());
    let row = conn
        .get_webhook_event(None, &first[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status.as_str(), row.reason.as_deref()),
        ("applied", None)
    );
}

/// Workers claiming inbox events side by side each get at most their
/// batch, and no event twice: on PostgreSQL an `IN (SELECT … LIMIT … SKIP
/// LOCKED)` claim could take far more rows than its limit.
async fn concurrent_inbox_claims_take_at_most_their_batch_and_never_the_same_event(
    backend: Backend,
) {
    use obol::storage::webhook_events::NewWebhookEvent;
    const EVENTS: usize = 200;
    const BATCH: i64 = 8;
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    {
        let mut h = store.acquire().await.unwrap();
        for i in 0..EVENTS {
            let id = format!("evt_claim_{i}");
            h.conn()
                .insert_webhook_event(&NewWebhookEvent {
                    stripe_event_id: &id,
                    account_id: "default",
                    event_type: "payment_intent.succeeded",
                    stripe_created: i64::try_from(i).unwrap(),
                    livemode: false,
                    payload: "{}",
                    source: "webhook",
                    ignored: None,
                    now: now(),
                })
                .await
                .unwrap();
        }
    }
    let mut workers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            let mut largest = 0;
            loop {
                let t = now();
                let mut tx = store.begin().await.unwrap();
                let rows = tx
                    .conn()
                    .claim_due_webhook_events(t, t + chrono::Duration::seconds(60), BATCH)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                if rows.is_empty() {
                    break;
                }
                largest = largest.max(rows.len());
                claimed.extend(rows.into_iter().map(|r| r.id));
            }
            (claimed, largest)
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        let (claimed, largest) = w.await.unwrap();
        assert!(largest <= BATCH as usize, "one claim took {largest} events");
        all.extend(claimed);
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        (total, all.len()),
        (EVENTS, EVENTS),
        "claimed twice or lost"
    );
}

/// Two processes on one database share the Stripe budget: the one that
/// joins holds its calls until the other has made room, together they
/// stay within it, and when one stops the other takes it all back.
async fn processes_on_one_database_share_the_stripe_budget(backend: Backend) {
    use obol::stripe::budget::{join, HEARTBEAT, JOIN_HOLD};
    use obol::stripe::RateLimit;
    use tokio_util::sync::CancellationToken;

    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = RateLimit::per_second(100);
    let stop_a = CancellationToken::new();
    let task_a = join(store.clone(), a.clone(), stop_a.clone())
        .await
        .unwrap();
    assert_eq!(a.instances(), 1);
    let started = std::time::Instant::now();
    a.wait().await;
    assert!(
        started.elapsed() < JOIN_HOLD,
        "alone, the first call is not held"
    );

    let b = RateLimit::per_second(100);
    let stop_b = CancellationToken::new();
    let task_b = join(store.clone(), b.clone(), stop_b.clone())
        .await
        .unwrap();
    assert_eq!(b.instances(), 2);
    assert!(b.share_per_second() <= 50.0, "{}", b.share_per_second());
    let joined = std::time::Instant::now();
    b.wait().await;
    assert!(
        joined.elapsed() >= JOIN_HOLD - std::time::Duration::from_millis(50),
        "the joiner sent before the others had made room ({:?})",
        joined.elapsed()
    );
    // By the end of the hold, A has seen B and made room: together they
    // stay within the budget.
    assert_eq!(a.instances(), 2);
    let together = a.share_per_second() + b.share_per_second();
    assert!(
        together <= 100.0 + 1e-9,
        "{together} requests a second together"
    );

    stop_b.cancel();
    task_b.await.unwrap();
    // A sees B gone at its next heartbeat, and raises its pace once the
    // higher share has held for JOIN_HOLD.
    tokio::time::sleep(HEARTBEAT * 2 + JOIN_HOLD).await;
    assert_eq!(a.instances(), 1, "A takes the whole budget back");
    assert_eq!(a.share_per_second(), 100.0);
    stop_a.cancel();
    task_a.await.unwrap();
    let mut h = store.acquire().await.unwrap();
    assert_eq!(
        h.conn()
            .count_live_instances(now() - chrono::Duration::hours(1))
            .await
            .unwrap(),
        0,
        "a stopped process leaves no row"
    );
}
