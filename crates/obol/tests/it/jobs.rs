//! The job queue: storage on both backends (claim, guarded writes, lease
//! expiry, dead and requeue, dedupe).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use obol::storage::jobs::NewJobRow;
use obol::storage::{now, Store};

use crate::helpers::{Backend, TestDb};
use crate::on_both_backends;

on_both_backends!(
    enqueuing_the_same_logical_job_twice_makes_one_job,
    a_claim_takes_due_jobs_once_and_guards_every_later_write,
    an_expired_lease_passes_the_job_to_another_worker_then_dies,
    a_dead_job_is_requeued_once_with_a_fresh_schedule,
    jobs_list_by_status_newest_first_with_a_cursor,
    concurrent_claimants_never_take_one_job_twice,
);

fn job<'a>(key: Option<&'a str>, run_at: DateTime<Utc>, max_attempts: i32) -> NewJobRow<'a> {
    NewJobRow {
        kind: "release_authorization",
        payload: r#"{"payment_id":"pay_x","reason":"test"}"#,
        account_id: "default",
        dedupe_key: key,
        max_attempts,
        run_at,
        now: now(),
    }
}

async fn store(backend: Backend) -> (TestDb, Store) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    (db, store)
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

async fn enqueuing_the_same_logical_job_twice_makes_one_job(backend: Backend) {
    let (_db, store) = store(backend).await;
    let mut h = store.acquire().await.unwrap();
    let first = h
        .conn()
        .insert_job(&job(Some("k:pay_1"), now(), 3))
        .await
        .unwrap()
        .unwrap();
    assert!(first.id.starts_with("job_"));
    assert_eq!((first.status.as_str(), first.attempts), ("queued", 0));
    assert!(h
        .conn()
        .insert_job(&job(Some("k:pay_1"), now(), 3))
        .await
        .unwrap()
        .is_none());
    // Jobs without a key never collide.
    assert!(h
        .conn()
        .insert_job(&job(None, now(), 3))
        .await
        .unwrap()
        .is_some());
    assert!(h
        .conn()
        .insert_job(&job(None, now(), 3))
        .await
        .unwrap()
        .is_some());
    drop(h);

    // Many processes racing to queue the same work make one job.
    let racers = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut h = store.acquire().await.unwrap();
            h.conn()
                .insert_job(&job(Some("k:pay_2"), now(), 3))
                .await
                .unwrap()
                .is_some()
        })
    });
    let made: Vec<bool> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(made.iter().filter(|m| **m).count(), 1, "{made:?}");

    // Once the job has finished, the same work may be queued again.
    let mut tx = store.begin().await.unwrap();
    let claimed = tx
        .conn()
        .claim_due_jobs("w1", now(), now() + secs(60), 10)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claimed.len(), 4);
    let mut h = store.acquire().await.unwrap();
    assert!(h.conn().finish_job(&first.id, "w1", now()).await.unwrap());
    assert_eq!(h.conn().count_unfinished_jobs("k:pay_1").await.unwrap(), 0);
    assert!(h
        .conn()
        .insert_job(&job(Some("k:pay_1"), now(), 3))
        .await
        .unwrap()
        .is_some());
}

async fn a_claim_takes_due_jobs_once_and_guards_every_later_write(backend: Backend) {
    let (_db, store) = store(backend).await;
    let t0 = now();
    let mut h = store.acquire().await.unwrap();
    let due = h
        .conn()
        .insert_job(&job(None, t0, 3))
        .await
        .unwrap()
        .unwrap();
    let later = h
        .conn()
        .insert_job(&job(None, t0 + secs(3600), 3))
        .await
        .unwrap()
        .unwrap();
    drop(h);
    let claim = |worker: &'static str, at: DateTime<Utc>| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let c = tx
                .conn()
                .claim_due_jobs(worker, at, at + secs(60), 10)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            c
        }
    };
    let a = claim("worker-a", t0).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].id, due.id);
    assert_eq!(
        (
            a[0].status.as_str(),
            a[0].attempts,
            a[0].locked_by.as_deref()
        ),
        ("running", 1, Some("worker-a"))
    );
    assert!(claim("worker-b", t0).await.is_empty(), "claimed once");

    let mut h = store.acquire().await.unwrap();
    let mut c = h.conn();
    // Another worker's writes, or writes to a job not running, change nothing.
    assert!(!c.finish_job(&due.id, "worker-b", now()).await.unwrap());
    assert!(!c
        .mark_job_dead(&due.id, "worker-b", "x", now())
        .await
        .unwrap());
    assert!(!c.finish_job(&later.id, "worker-a", now()).await.unwrap());
    assert!(c
        .retry_job_later(&due.id, "worker-a", t0 + secs(5), "Stripe down", now())
        .await
        .unwrap());
    assert!(
        !c.finish_job(&due.id, "worker-a", now()).await.unwrap(),
        "queued now"
    );
    let row = c.get_job(&due.id).await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.last_error.as_deref()),
        ("queued", Some("Stripe down"))
    );
    drop(h);
    assert!(
        claim("worker-b", t0 + secs(1)).await.is_empty(),
        "not due yet"
    );
    let b = claim("worker-b", t0 + secs(6)).await;
    assert_eq!((b.len(), b[0].attempts), (1, 2));
    let mut h = store.acquire().await.unwrap();
    assert!(h
        .conn()
        .finish_job(&due.id, "worker-b", now())
        .await
        .unwrap());
    let row = h.conn().get_job(&due.id).await.unwrap().unwrap();
    assert_eq!(row.status, "succeeded");
    assert!(row.finished_at.is_some() && row.locked_until.is_none());
}

async fn an_expired_lease_passes_the_job_to_another_worker_then_dies(backend: Backend) {
    let (_db, store) = store(backend).await;
    let t0 = now();
    let mut h = store.acquire().await.unwrap();
    let j = h
        .conn()
        .insert_job(&job(None, t0, 2))
        .await
        .unwrap()
        .unwrap();
    drop(h);
    let claim = |worker: &'static str, at: DateTime<Utc>| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let c = tx
                .conn()
                .claim_due_jobs(worker, at, at + secs(60), 10)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            c
        }
    };
    assert_eq!(claim("worker-a", t0).await.len(), 1);
    let mut h = store.acquire().await.unwrap();
    let run_a = h
        .conn()
        .insert_job_run(&j.id, 1, "worker-a", t0)
        .await
        .unwrap();
    drop(h);
    // Within the lease nobody else takes it; after it, the next claimant does.
    assert!(claim("worker-b", t0 + secs(59)).await.is_empty());
    let b = claim("worker-b", t0 + secs(61)).await;
    assert_eq!((b.len(), b[0].attempts), (1, 2));
    let mut h = store.acquire().await.unwrap();
    let mut c = h.conn();
    c.insert_job_run(&j.id, 2, "worker-b", t0 + secs(61))
        .await
        .unwrap();
    // Worker a comes back: its lease is gone, its write is refused.
    assert!(!c.finish_job(&j.id, "worker-a", now()).await.unwrap());
    c.finish_job_run(&run_a, "lease_lost", None, now())
        .await
        .unwrap();
    let runs = c.list_job_runs(&j.id).await.unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| (r.worker.as_str(), r.outcome.as_str()))
            .collect::<Vec<_>>(),
        [("worker-a", "lease_expired"), ("worker-b", "running")],
        "the vanished worker's run was closed by the next claim"
    );
    drop(h);
    // Worker b vanishes too, on the last attempt: the job is dead, not run a third time.
    assert!(claim("worker-c", t0 + secs(200)).await.is_empty());
    let mut h = store.acquire().await.unwrap();
    let row = h.conn().get_job(&j.id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("dead", 2));
    assert!(row.last_error.unwrap().contains("lease expired"));
}

async fn a_dead_job_is_requeued_once_with_a_fresh_schedule(backend: Backend) {
    let (_db, store) = store(backend).await;
    let mut h = store.acquire().await.unwrap();
    let j = h
        .conn()
        .insert_job(&job(Some("k:pay_dead"), now(), 1))
        .await
        .unwrap()
        .unwrap();
    assert!(
        h.conn()
            .requeue_dead_job(&j.id, now())
            .await
            .unwrap()
            .is_none(),
        "queued, not dead"
    );
    drop(h);
    let mut tx = store.begin().await.unwrap();
    tx.conn()
        .claim_due_jobs("w", now(), now() + secs(60), 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut h = store.acquire().await.unwrap();
    let mut c = h.conn();
    assert!(c
        .mark_job_dead(&j.id, "w", "Stripe refused", now())
        .await
        .unwrap());
    assert_eq!(c.count_unfinished_jobs("k:pay_dead").await.unwrap(), 1);
    let again = c.requeue_dead_job(&j.id, now()).await.unwrap().unwrap();
    assert_eq!((again.status.as_str(), again.attempts), ("queued", 0));
    assert!(again.finished_at.is_none());
    assert!(
        c.requeue_dead_job(&j.id, now()).await.unwrap().is_none(),
        "only once"
    );

    // A dead job whose work was queued again meanwhile cannot be requeued
    // beside it: the unique key refuses.
    let mut tx = store.begin().await.unwrap();
    tx.conn()
        .claim_due_jobs("w", now(), now() + secs(60), 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(c.mark_job_dead(&j.id, "w", "again", now()).await.unwrap());
    c.insert_job(&job(Some("k:pay_dead"), now(), 1))
        .await
        .unwrap()
        .unwrap();
    let err = c.requeue_dead_job(&j.id, now()).await.unwrap_err();
    assert!(matches!(err, obol::error::Error::Database(_)), "{err:?}");
}

async fn jobs_list_by_status_newest_first_with_a_cursor(backend: Backend) {
    let (_db, store) = store(backend).await;
    let mut h = store.acquire().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            h.conn()
                .insert_job(&job(None, now() + secs(3600), 3))
                .await
                .unwrap()
                .unwrap()
                .id,
        );
    }
    let due = h
        .conn()
        .insert_job(&job(None, now(), 3))
        .await
        .unwrap()
        .unwrap();
    drop(h);
    let mut tx = store.begin().await.unwrap();
    tx.conn()
        .claim_due_jobs("w", now(), now() + secs(60), 10)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut h = store.acquire().await.unwrap();
    let running = h.conn().list_jobs(Some("running"), None, 10).await.unwrap();
    assert_eq!(running.iter().map(|j| &j.id).collect::<Vec<_>>(), [&due.id]);
    let first = h.conn().list_jobs(Some("queued"), None, 3).await.unwrap();
    let last = first.last().unwrap();
    let rest = h
        .conn()
        .list_jobs(Some("queued"), Some((last.created_at, last.id.clone())), 10)
        .await
        .unwrap();
    let seen: Vec<String> = first.iter().chain(&rest).map(|j| j.id.clone()).collect();
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    assert!(h
        .conn()
        .list_jobs(Some("dead"), None, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn concurrent_claimants_never_take_one_job_twice(backend: Backend) {
    let (_db, store) = store(backend).await;
    const JOBS: usize = 120;
    let mut h = store.acquire().await.unwrap();
    for _ in 0..JOBS {
        h.conn().insert_job(&job(None, now(), 3)).await.unwrap();
    }
    drop(h);
    let claimants = (0..4).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut mine = Vec::new();
            loop {
                let mut tx = store.begin().await.unwrap();
                let got = tx
                    .conn()
                    .claim_due_jobs(&worker, now(), now() + secs(60), 7)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        })
    });
    let all: Vec<Vec<String>> = futures::future::join_all(claimants)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let flat: Vec<&String> = all.iter().flatten().collect();
    let unique: HashSet<&String> = flat.iter().copied().collect();
    assert_eq!(
        (flat.len(), unique.len()),
        (JOBS, JOBS),
        "each job claimed exactly once"
    );
}
