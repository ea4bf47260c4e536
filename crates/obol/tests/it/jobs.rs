//! The job queue and its runner: storage on both backends (claim, guarded
//! writes, lease expiry, dead and requeue, dedupe), and end to end through
//! `obol serve` (a release Stripe could not take becomes a job, dead jobs
//! and operator retries over the API, two processes on one database).

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use obol::storage::jobs::NewJobRow;
use obol::storage::{now, Store};
use serde_json::{json, Value};

use crate::helpers::{random_api_key, Backend, Obol, TestDb};
use crate::inbox::sandbox;
use crate::on_both_backends;

on_both_backends!(
    enqueuing_the_same_logical_job_twice_makes_one_job,
    a_claim_takes_due_jobs_once_and_guards_every_later_write,
    an_expired_lease_passes_the_job_to_another_worker_then_dies,
    a_dead_job_is_requeued_once_with_a_fresh_schedule,
    jobs_list_by_status_newest_first_with_a_cursor,
    concurrent_claimants_never_take_one_job_twice,
    a_release_while_stripe_is_down_becomes_a_job_that_completes_later,
    a_job_that_keeps_failing_ends_dead_and_an_operator_retry_completes_it,
    a_refund_stripe_could_not_take_is_resubmitted_by_its_job,
    jobs_api_refuses_unknown_ids_live_jobs_and_bad_statuses,
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

fn platform() -> obol::context::AccountId {
    obol::context::AccountId::platform()
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
    let row = c.get_job(&platform(), &due.id).await.unwrap().unwrap();
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
    let row = h
        .conn()
        .get_job(&platform(), &due.id)
        .await
        .unwrap()
        .unwrap();
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
    // Worker b vanishes too, on the last attempt: the job is dead, not run
    // a third time, and b's run is closed.
    assert!(claim("worker-c", t0 + secs(200)).await.is_empty());
    let mut h = store.acquire().await.unwrap();
    let row = h.conn().get_job(&platform(), &j.id).await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("running", 2),
        "not claimable, not yet buried"
    );
    let buried = h.conn().bury_expired_jobs(t0 + secs(200)).await.unwrap();
    assert_eq!(buried.len(), 1);
    assert_eq!((buried[0].status.as_str(), buried[0].attempts), ("dead", 2));
    assert!(buried[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("lease expired"));
    let runs = h.conn().list_job_runs(&j.id).await.unwrap();
    assert_eq!(
        runs.last().map(|r| r.outcome.as_str()),
        Some("lease_expired")
    );
    assert!(h
        .conn()
        .bury_expired_jobs(t0 + secs(300))
        .await
        .unwrap()
        .is_empty());
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
            .requeue_dead_job(&platform(), &j.id, now())
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
    let again = c
        .requeue_dead_job(&platform(), &j.id, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.status.as_str(), again.attempts), ("queued", 0));
    assert!(again.finished_at.is_none());
    assert!(
        c.requeue_dead_job(&platform(), &j.id, now())
            .await
            .unwrap()
            .is_none(),
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
    let err = c
        .requeue_dead_job(&platform(), &j.id, now())
        .await
        .unwrap_err();
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
    let running = h
        .conn()
        .list_jobs(&platform(), Some("running"), None, 10)
        .await
        .unwrap();
    assert_eq!(running.iter().map(|j| &j.id).collect::<Vec<_>>(), [&due.id]);
    let first = h
        .conn()
        .list_jobs(&platform(), Some("queued"), None, 3)
        .await
        .unwrap();
    let last = first.last().unwrap();
    let rest = h
        .conn()
        .list_jobs(
            &platform(),
            Some("queued"),
            Some((last.created_at, last.id.clone())),
            10,
        )
        .await
        .unwrap();
    let seen: Vec<String> = first.iter().chain(&rest).map(|j| j.id.clone()).collect();
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    assert!(h
        .conn()
        .list_jobs(&platform(), Some("dead"), None, 10)
        .await
        .unwrap()
        .is_empty());
    // Another Stripe account's operator sees none of them.
    let other = obol::context::AccountId::from_db("acct_other".into());
    assert!(h
        .conn()
        .list_jobs(&other, None, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(h.conn().get_job(&other, &due.id).await.unwrap().is_none());
    assert!(h
        .conn()
        .requeue_dead_job(&other, &due.id, now())
        .await
        .unwrap()
        .is_none());
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

pub async fn chaos(obol: &Obol, api_5xx: f64) {
    let base = sandbox(obol).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/_sandbox/chaos"))
        .json(&json!({"seed": 1, "api_5xx": api_5xx}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// Polls `GET path` until `done` holds, for at most `secs` seconds.
pub async fn wait_for(obol: &Obol, path: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, body) = obol.get(path).await;
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on {path}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Releases `pi` while the sandbox refuses every request; returns the
/// release job's id.
pub async fn release_while_stripe_is_down(obol: &Obol, pi: &str) -> (String, String) {
    chaos(obol, 1.0).await;
    let (status, body) = obol
        .post(
            &format!("/v1/payment-intents/{pi}/release"),
            json!({"reason": "address_rejected"}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancel_pending")),
        "{body}"
    );
    let payment_id = body["payment_id"].as_str().unwrap().to_string();
    let (status, page) = obol.get("/v1/jobs?limit=100").await;
    assert_eq!(status, 200, "{page}");
    let job = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| {
            j["kind"] == "release_authorization"
                && j["payload"]["payment_id"] == payment_id.as_str()
        })
        .unwrap_or_else(|| panic!("no release job in {page}"))
        .clone();
    assert_eq!(job["payload"]["reason"], "address_rejected");
    assert_eq!(job["account_id"], "default");
    assert_eq!(job["max_attempts"], 11);
    (job["id"].as_str().unwrap().to_string(), payment_id)
}

async fn a_release_while_stripe_is_down_becomes_a_job_that_completes_later(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_STRIPE__MAX_ATTEMPTS", "1")
        .env("OBOL_RECONCILE__INTERVAL_SECONDS", "0")
        .env("OBOL_JOBS__RETRY_UNIT_MS", "20")
        .start()
        .await;
    let pi = crate::checkout::authorize(&obol, 3000).await;
    let (job_id, payment_id) = release_while_stripe_is_down(&obol, &pi).await;
    // Stripe is still down: the job's attempts fail and are retried.
    let failing = wait_for(&obol, &format!("/v1/jobs/{job_id}"), 20, |j| {
        j["runs"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["outcome"] == "retry"))
    })
    .await;
    assert_ne!(failing["status"], "succeeded", "{failing}");
    assert!(failing["last_error"].as_str().is_some(), "{failing}");

    chaos(&obol, 0.0).await;
    let done = wait_for(&obol, &format!("/v1/jobs/{job_id}"), 30, |j| {
        j["status"] == "succeeded"
    })
    .await;
    let runs = done["runs"].as_array().unwrap();
    assert_eq!(
        runs.len() as u64,
        done["attempts"].as_u64().unwrap(),
        "{done}"
    );
    assert_eq!(runs.last().unwrap()["outcome"], "succeeded", "{done}");
    assert!(
        runs[..runs.len() - 1]
            .iter()
            .all(|r| r["outcome"] == "retry" && r["error"].is_string()),
        "{done}"
    );
    assert!(runs.iter().all(|r| r["finished_at"].is_string()));
    assert!(
        done["finished_at"].is_string() && done["locked_until"].is_null(),
        "{done}"
    );
    assert_eq!(
        crate::checkout::intent(&obol, &pi).await["status"],
        "canceled"
    );
    let (_, payment) = obol.get(&format!("/v1/payments/{payment_id}")).await;
    assert_eq!(payment["status"], "canceled", "{payment}");
    // Nothing is left for a reconciliation pass.
    let (_, report) = obol.post("/v1/reconciliations", json!({})).await;
    assert_eq!(report["releases_retried"], 0, "{report}");
    let (_, succeeded) = obol.get("/v1/jobs?status=succeeded").await;
    assert_eq!(
        succeeded["data"].as_array().unwrap().len(),
        1,
        "{succeeded}"
    );
}

async fn a_job_that_keeps_failing_ends_dead_and_an_operator_retry_completes_it(backend: Backend) {
    // Retry unit 0: the whole schedule runs at once.
    let obol = Obol::builder(backend)
        .env("OBOL_STRIPE__MAX_ATTEMPTS", "1")
        .env("OBOL_RECONCILE__INTERVAL_SECONDS", "0")
        .env("OBOL_JOBS__RETRY_UNIT_MS", "0")
        .start()
        .await;
    let pi = crate::checkout::authorize(&obol, 3000).await;
    let (job_id, _) = release_while_stripe_is_down(&obol, &pi).await;
    let dead = wait_for(&obol, "/v1/jobs?status=dead", 30, |p| {
        p["data"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let listed = &dead["data"][0];
    assert_eq!(listed["id"], job_id.as_str());
    assert_eq!(
        (listed["attempts"].as_u64(), listed["status"].as_str()),
        (Some(11), Some("dead"))
    );
    assert!(listed["runs"].is_null(), "lists carry no runs");
    let (_, job) = obol.get(&format!("/v1/jobs/{job_id}")).await;
    let runs = job["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 11, "{job}");
    assert_eq!(runs.last().unwrap()["outcome"], "dead");
    assert_eq!(
        runs.iter()
            .map(|r| r["attempt"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (1..=11).collect::<Vec<_>>()
    );

    chaos(&obol, 0.0).await;
    let (status, retried) = obol
        .post(&format!("/v1/jobs/{job_id}/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(
        (retried["status"].as_str(), retried["attempts"].as_u64()),
        (Some("queued"), Some(0))
    );
    let done = wait_for(&obol, &format!("/v1/jobs/{job_id}"), 30, |j| {
        j["status"] == "succeeded"
    })
    .await;
    assert_eq!(
        done["runs"].as_array().unwrap().len(),
        12,
        "the history stays: {done}"
    );
    assert_eq!(
        crate::checkout::intent(&obol, &pi).await["status"],
        "canceled"
    );
    let (status, again) = obol
        .post(&format!("/v1/jobs/{job_id}/retry"), json!({}))
        .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("job_not_dead")),
        "{again}"
    );
    let (_, dead) = obol.get("/v1/jobs?status=dead").await;
    assert_eq!(dead["data"], json!([]));
}

async fn a_refund_stripe_could_not_take_is_resubmitted_by_its_job(backend: Backend) {
    let obol = Obol::builder(backend)
        .env("OBOL_STRIPE__MAX_ATTEMPTS", "1")
        .env("OBOL_RECONCILE__INTERVAL_SECONDS", "0")
        .env("OBOL_JOBS__RETRY_UNIT_MS", "20")
        .start()
        .await;
    let payment = crate::refunds::completed_payment(&obol, "4000").await;
    chaos(&obol, 1.0).await;
    let (status, refund) = obol
        .post(
            &format!("/v1/payments/{payment}/refunds"),
            json!({"amount": 1500}),
        )
        .await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (201, Some("pending_submission")),
        "{refund}"
    );
    let refund_id = refund["id"].as_str().unwrap();
    let (_, page) = obol.get("/v1/jobs").await;
    let job = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "resubmit_refund")
        .unwrap_or_else(|| panic!("no resubmit job in {page}"))
        .clone();
    assert_eq!(job["payload"], json!({"refund_id": refund_id}));
    assert_eq!(job["max_attempts"], 9);
    chaos(&obol, 0.0).await;
    let job_id = job["id"].as_str().unwrap();
    wait_for(&obol, &format!("/v1/jobs/{job_id}"), 30, |j| {
        j["status"] == "succeeded"
    })
    .await;
    let p = wait_for(&obol, &format!("/v1/payments/{payment}"), 20, |p| {
        p["amount_refunded"] == 1500
    })
    .await;
    assert_eq!(p["status"], "partially_refunded", "{p}");
    let (_, refunds) = obol.get(&format!("/v1/payments/{payment}/refunds")).await;
    let listed = refunds["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "refunded once: {refunds}");
    assert!(listed[0]["stripe_refund_id"]
        .as_str()
        .unwrap()
        .starts_with("re_"));
}

async fn jobs_api_refuses_unknown_ids_live_jobs_and_bad_statuses(backend: Backend) {
    let obol = Obol::start(backend).await;
    let code = |r: &(u16, Value)| (r.0, r.1["error"]["code"].as_str().map(String::from));
    let not_found = Some("job_not_found".to_string());
    assert_eq!(
        code(&obol.get("/v1/jobs/job_nope").await),
        (404, not_found.clone())
    );
    assert_eq!(
        code(&obol.post("/v1/jobs/job_nope/retry", json!({})).await),
        (404, not_found)
    );
    assert_eq!(
        code(&obol.get("/v1/jobs?status=failed").await),
        (400, Some("invalid_query".to_string()))
    );
    assert_eq!(
        code(&obol.get("/v1/jobs?limit=0").await),
        (400, Some("invalid_query".to_string()))
    );
    // The recurring passes (reconciliation, the invoice sweep, the ACP
    // idempotency-key sweep) are queued at start, once each.
    let (status, queued) = obol.get("/v1/jobs?status=queued").await;
    assert_eq!(status, 200, "{queued}");
    let data = queued["data"].as_array().unwrap();
    let mut kinds: Vec<&str> = data.iter().map(|j| j["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        ["acp_idempotency_sweep", "invoice_sweep", "reconcile"],
        "{queued}"
    );
    assert_eq!(queued["has_more"], false);
    let reconcile = data.iter().find(|j| j["kind"] == "reconcile").unwrap();
    let id = reconcile["id"].as_str().unwrap();
    assert_eq!(
        code(&obol.post(&format!("/v1/jobs/{id}/retry"), json!({})).await),
        (409, Some("job_not_dead".to_string()))
    );
    let customer = obol.create_customer("jobs-api").await;
    let token = obol
        .customer_token(customer["id"].as_str().unwrap(), 600)
        .await;
    let (status, body) = obol.get_as("/v1/jobs", &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("secret_key_required"))
    );
    let (status, _) = obol
        .http
        .get(obol.url("/v1/jobs"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);
}

type Run = (String, String, DateTime<Utc>, Option<DateTime<Utc>>, String);

/// Two `obol serve` on one fresh PostgreSQL database, both talking to one
/// shared sandbox (as two instances share one Stripe account).
async fn two_processes(extra: &[(&str, &str)]) -> (Obol, Obol, String) {
    let sandbox = obol_sandbox::Sandbox::bind(
        "127.0.0.1:0".parse().unwrap(),
        obol_sandbox::SandboxConfig::default(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", sandbox.local_addr());
    tokio::spawn(sandbox.run_until(std::future::pending()));
    let key = random_api_key();
    let builder = || {
        let mut b = Obol::builder(Backend::Postgres)
            .env("OBOL_API_KEYS", &key)
            .env("OBOL_STRIPE__SECRET_KEY", "sk_test_obol_jobs")
            .env("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_test_obol_jobs")
            .env("OBOL_STRIPE__API_BASE", &base)
            .env("OBOL_STRIPE__RATE_LIMIT_PER_SECOND", "1000")
            .env("OBOL_JOBS__POLL_INTERVAL_MS", "50")
            .env("OBOL_LOG", "warn");
        for (k, v) in extra {
            b = b.env(k, v);
        }
        b
    };
    let a = builder().start().await;
    let b = builder().with_db(a.db.share()).start().await;
    (a, b, base)
}

/// `n` real payments, their intents created through both processes.
async fn create_payments(a: &Obol, b: &Obol, n: usize) -> Vec<String> {
    futures::stream::iter(0..n)
        .map(|i| {
            let obol = if i % 2 == 0 { a } else { b };
            async move {
                let (status, body) = obol
                    .post(
                        "/v1/payment-intents",
                        json!({"amount": 1000 + i, "currency": "eur"}),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
                body["payment_id"].as_str().unwrap().to_string()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Queues a release job per payment in one transaction, as a burst.
async fn enqueue_releases(db: &TestDb, payment_ids: &[String]) {
    let store = db.store().await;
    let mut tx = store.begin().await.unwrap();
    for id in payment_ids {
        let payment = tx
            .conn()
            .get_payment(&platform(), id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            obol::jobs::release::enqueue(&mut tx.conn(), &payment, "two_process_test")
                .await
                .unwrap()
        );
    }
    tx.commit().await.unwrap();
    store.close().await;
}

async fn wait_until_released(pg: &sqlx::PgPool, n: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'release_authorization' AND status = 'succeeded'",
        )
        .fetch_one(pg)
        .await
        .unwrap();
        if done as usize == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {n} jobs succeeded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every run of every release job, checked: each job succeeded exactly
/// once and no two runs of one job overlap in time. Returns the runs by job.
async fn checked_runs(pg: &sqlx::PgPool, n: usize) -> (Vec<Run>, HashMap<String, Vec<Run>>) {
    let runs: Vec<Run> = sqlx::query_as(
        "SELECT r.job_id, r.worker, r.started_at, r.finished_at, r.outcome FROM job_runs r \
         JOIN jobs j ON j.id = r.job_id WHERE j.kind = 'release_authorization' ORDER BY r.started_at, r.id",
    )
    .fetch_all(pg)
    .await
    .unwrap();
    let mut by_job: HashMap<String, Vec<Run>> = HashMap::new();
    for r in &runs {
        by_job.entry(r.0.clone()).or_default().push(r.clone());
    }
    assert_eq!(by_job.len(), n);
    for (job, runs) in &by_job {
        let succeeded = runs.iter().filter(|r| r.4 == "succeeded").count();
        assert_eq!(
            succeeded, 1,
            "job {job} succeeded {succeeded} times: {runs:?}"
        );
        for pair in runs.windows(2) {
            let end = pair[0].3.expect("an earlier run is finished");
            assert!(end <= pair[1].2, "runs of {job} overlap: {pair:?}");
        }
    }
    (runs, by_job)
}

fn pid_of(worker: &str) -> String {
    worker.split('-').next().unwrap().to_string()
}

async fn count_canceled(pg: &sqlx::PgPool, payment_ids: &[String]) -> usize {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments WHERE id = ANY($1) AND status = 'canceled'",
    )
    .bind(payment_ids)
    .fetch_one(pg)
    .await
    .unwrap();
    n as usize
}

/// The issue's two-process test: two `obol serve` on one PostgreSQL
/// database and one Stripe (a shared sandbox), 300 real release jobs for
/// 300 real payments queued at once. From `job_runs`: every job ran to
/// success exactly once, no two runs of one job overlap, both processes
/// ran some; the payments are all canceled; one reconcile job is pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_database_run_every_job_exactly_once() {
    const JOBS: usize = 300;
    let (a, b, _) = two_processes(&[]).await;
    let created = Instant::now();
    let payment_ids = create_payments(&a, &b, JOBS).await;
    let creating = created.elapsed();

    enqueue_releases(&a.db, &payment_ids).await;
    let queued_at = now();
    let started = Instant::now();
    let pg = sqlx::PgPool::connect(&a.db.url).await.unwrap();
    wait_until_released(&pg, JOBS, 120).await;
    let waited = started.elapsed();

    let (runs, _) = checked_runs(&pg, JOBS).await;
    let mut per_process: HashMap<String, usize> = HashMap::new();
    for r in runs.iter().filter(|r| r.4 == "succeeded") {
        *per_process.entry(pid_of(&r.1)).or_default() += 1;
    }
    let ran_a = per_process.get(&a.pid().to_string()).copied().unwrap_or(0);
    let ran_b = per_process.get(&b.pid().to_string()).copied().unwrap_or(0);
    let workers: HashSet<&str> = runs.iter().map(|r| r.1.as_str()).collect();
    let last_finish = runs.iter().filter_map(|r| r.3).max().unwrap();
    eprintln!(
        "two-process jobs: {JOBS} release jobs, {} runs ({} not succeeded), process A ran {ran_a}, \
         process B ran {ran_b}, {} workers; queued to last finish {} ms (observed {} ms); \
         creating {JOBS} payments took {} ms",
        runs.len(),
        runs.iter().filter(|r| r.4 != "succeeded").count(),
        workers.len(),
        (last_finish - queued_at).num_milliseconds(),
        waited.as_millis(),
        creating.as_millis(),
    );
    assert_eq!(ran_a + ran_b, JOBS, "{per_process:?}");
    assert!(
        ran_a > 0 && ran_b > 0,
        "both processes ran jobs: {per_process:?}"
    );

    // The work happened: every payment is canceled in obol's ledger.
    assert_eq!(count_canceled(&pg, &payment_ids).await, JOBS);
    // Both processes scheduled the recurring pass; one is pending.
    let reconcile: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'reconcile' AND status IN ('queued', 'running')",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(reconcile, 1);
}

/// A process killed (SIGKILL) while it holds jobs: once their leases
/// expire the other process takes them over and completes them; the
/// killed worker's runs are closed as `lease_expired`, each job still
/// succeeds exactly once, and no two runs of one job overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_job_loses_its_jobs_to_the_other_after_the_lease() {
    const JOBS: usize = 40;
    const LEASE_SECONDS: i64 = 3;
    let (a, b, base) = two_processes(&[("OBOL_JOBS__LEASE_SECONDS", "3")]).await;
    let payment_ids = create_payments(&a, &b, JOBS).await;
    // Every Stripe call now takes 400 ms (before the sandbox acts on it),
    // so A is caught holding jobs mid-call.
    let r = reqwest::Client::new()
        .post(format!("{base}/_sandbox/chaos"))
        .json(&json!({"latency_ms": 400}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let pg = sqlx::PgPool::connect(&a.db.url).await.unwrap();
    enqueue_releases(&a.db, &payment_ids).await;
    let a_workers = format!("{}-%", a.pid());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // An open run: A is inside a handler, not just past its claim.
        let held: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM job_runs WHERE worker LIKE $1 AND finished_at IS NULL",
        )
        .bind(&a_workers)
        .fetch_one(&pg)
        .await
        .unwrap();
        if held > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "process A never ran a job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::process::Command::new("kill")
        .args(["-9", &a.pid().to_string()])
        .status()
        .unwrap();
    let killed_at = Instant::now();
    // What A held when it died (its unfinished runs).
    let orphaned: Vec<String> = sqlx::query_scalar(
        "SELECT job_id FROM job_runs WHERE worker LIKE $1 AND finished_at IS NULL",
    )
    .bind(&a_workers)
    .fetch_all(&pg)
    .await
    .unwrap();
    assert!(!orphaned.is_empty());

    wait_until_released(&pg, JOBS, 60).await;
    let recovered = killed_at.elapsed();
    let (runs, by_job) = checked_runs(&pg, JOBS).await;
    let b_pid = b.pid().to_string();
    for job in &orphaned {
        let runs = &by_job[job];
        let lost = runs
            .iter()
            .find(|r| pid_of(&r.1) == a.pid().to_string() && r.4 == "lease_expired")
            .unwrap_or_else(|| panic!("A's run of {job} was not closed: {runs:?}"));
        let done = runs.iter().find(|r| r.4 == "succeeded").unwrap();
        assert_eq!(pid_of(&done.1), b_pid, "{runs:?}");
        assert!(
            done.2 - lost.2 >= chrono::Duration::milliseconds(LEASE_SECONDS * 1000 - 100),
            "taken over only after the lease: {runs:?}"
        );
    }
    assert_eq!(count_canceled(&pg, &payment_ids).await, JOBS);
    let mut outcomes: HashMap<(String, &str), usize> = HashMap::new();
    for r in &runs {
        let process = if pid_of(&r.1) == b_pid { "B" } else { "A" };
        *outcomes.entry((r.4.clone(), process)).or_default() += 1;
    }
    let mut outcomes: Vec<_> = outcomes.into_iter().collect();
    outcomes.sort();
    eprintln!(
        "killed-worker jobs: {JOBS} release jobs, A held {} when killed, {} runs in all \
         (outcome, process: count) {outcomes:?}, all done {} ms after the kill (lease {LEASE_SECONDS} s)",
        orphaned.len(),
        runs.len(),
        recovered.as_millis()
    );
}
