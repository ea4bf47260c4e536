//! Disputes from the sandbox's dispute test card to obol's flag, records
//! and tasks.

use serde_json::Value;

use crate::helpers::{Backend, Obol};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    a_dispute_flags_the_payment_and_opens_a_task_until_it_closes,
    an_unknown_dispute_status_filter_is_400,
);

async fn a_dispute_flags_the_payment_and_opens_a_task_until_it_closes(backend: Backend) {
    let obol = Obol::start(backend).await;
    let base = sandbox(&obol).await;
    let pi = stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "3000"),
            ("currency", "eur"),
            ("payment_method", "pm_card_createDispute"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    assert_eq!(pi["status"], "succeeded", "{pi}");
    let list = eventually(&obol, "/v1/payments", |b| {
        b["data"]
            .as_array()
            .is_some_and(|d| d.first().is_some_and(|p| p["disputed"] == true))
    })
    .await;
    let payment = &list["data"][0];
    assert_eq!(
        payment["status"], "completed",
        "a dispute is a flag, not a state"
    );

    let (status, disputes) = obol.get("/v1/disputes").await;
    assert_eq!(status, 200);
    let dispute = &disputes["data"][0];
    assert_eq!(dispute["payment_id"], payment["id"]);
    assert_eq!(dispute["amount"], 3000);
    assert_eq!(dispute["reason"], "fraudulent");
    assert!(dispute["stripe_dispute_id"]
        .as_str()
        .unwrap()
        .starts_with("dp_"));
    let (_, tasks) = obol.get("/v1/tasks?status=open").await;
    let task = &tasks["data"][0];
    assert_eq!(task["title"], "Respond to dispute");
    assert_eq!(task["subject_id"], dispute["id"]);

    let dp = dispute["stripe_dispute_id"].as_str().unwrap();
    let closed = stripe_post(&base, &format!("/v1/disputes/{dp}/close"), &[]).await;
    assert_eq!(closed["status"], "lost", "{closed}");
    let id = dispute["id"].as_str().unwrap();
    let done = eventually(&obol, &format!("/v1/disputes/{id}"), |b| {
        b["status"] == "lost"
    })
    .await;
    let steps: Vec<(Value, Value)> = done["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from"].clone(), e["to"].clone()))
        .collect();
    assert_eq!(steps.last().unwrap().1, "lost", "{steps:?}");
    let pid = payment["id"].as_str().unwrap();
    eventually(&obol, &format!("/v1/payments/{pid}"), |b| {
        b["disputed"] == false
    })
    .await;
    let (_, open) = obol.get("/v1/tasks?status=open").await;
    assert_eq!(open["data"].as_array().unwrap().len(), 0, "{open}");
    let (_, done_tasks) = obol.get("/v1/tasks?status=done").await;
    assert_eq!(done_tasks["data"][0]["id"], task["id"]);
    let (status, _) = obol.get("/v1/disputes/dsp_nope").await;
    assert_eq!(status, 404);
}

/// The status filter is parsed at the edge: a typo is the caller's
/// mistake, not an empty list.
async fn an_unknown_dispute_status_filter_is_400(backend: Backend) {
    let obol = Obol::start(backend).await;
    let (status, body) = obol.get("/v1/disputes?status=needs_reponse").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
    let (status, body) = obol.get("/v1/disputes?status=needs_response").await;
    assert_eq!(
        (status, &body["data"]),
        (200, &serde_json::json!([])),
        "{body}"
    );
}
