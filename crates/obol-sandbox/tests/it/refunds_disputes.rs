use crate::helpers::*;

#[tokio::test]
async fn partial_refunds_up_to_the_amount_then_errors() {
    let sb = spawn().await;
    let pi = sb.pay("1000", "pm_card_visa", &[]).await.ok();
    let pi_id = pi["id"].as_str().unwrap();
    let ch_id = pi["latest_charge"].as_str().unwrap();
    let r1 = sb
        .post(
            "/v1/refunds",
            &[("payment_intent", pi_id), ("amount", "300")],
        )
        .await
        .ok();
    assert!(r1["id"].as_str().unwrap().starts_with("re_"));
    assert_eq!(
        (
            r1["status"].as_str(),
            r1["amount"].as_i64(),
            r1["charge"].as_str()
        ),
        (Some("succeeded"), Some(300), Some(ch_id))
    );
    sb.post(
        "/v1/refunds",
        &[
            ("charge", ch_id),
            ("amount", "500"),
            ("reason", "requested_by_customer"),
        ],
    )
    .await
    .ok();
    let ch = sb.get(&format!("/v1/charges/{ch_id}")).await.ok();
    assert_eq!(
        (ch["amount_refunded"].as_i64(), ch["refunded"].as_bool()),
        (Some(800), Some(false))
    );

    let over = sb
        .post(
            "/v1/refunds",
            &[("payment_intent", pi_id), ("amount", "300")],
        )
        .await;
    assert_eq!(over.status, 400);
    assert_eq!(over.err()["param"], "amount");
    assert_eq!(
        over.err()["message"],
        "Refund amount (€3.00) is greater than unrefunded amount on charge (€2.00)"
    );

    let rest = sb
        .post("/v1/refunds", &[("payment_intent", pi_id)])
        .await
        .ok();
    assert_eq!(rest["amount"], 200);
    let ch = sb.get(&format!("/v1/charges/{ch_id}")).await.ok();
    assert_eq!(ch["refunded"], true);
    let again = sb.post("/v1/refunds", &[("payment_intent", pi_id)]).await;
    assert_eq!(again.err()["code"], "charge_already_refunded");

    let list = sb
        .get(&format!("/v1/refunds?payment_intent={pi_id}"))
        .await
        .ok();
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    assert_eq!(sb.events_of("charge.refunded").await.len(), 3);
    assert_eq!(sb.events_of("refund.created").await.len(), 3);

    // Uncaptured: only a full refund (which releases the hold).
    let held = sb
        .pay("1000", "pm_card_visa", &[("capture_method", "manual")])
        .await
        .ok();
    let r = sb
        .post(
            "/v1/refunds",
            &[
                ("payment_intent", held["id"].as_str().unwrap()),
                ("amount", "10"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    let unpaid = sb
        .post(
            "/v1/payment_intents",
            &[("amount", "1000"), ("currency", "eur")],
        )
        .await
        .ok();
    assert_eq!(
        sb.post(
            "/v1/refunds",
            &[("payment_intent", unpaid["id"].as_str().unwrap())]
        )
        .await
        .status,
        400
    );
    sb.stop().await;
}

#[tokio::test]
async fn pending_refund_card_settles_later_with_updates() {
    let sb = spawn().await;
    let pi = sb.pay("1000", "pm_card_pendingRefund", &[]).await.ok();
    let re = sb
        .post(
            "/v1/refunds",
            &[("payment_intent", pi["id"].as_str().unwrap())],
        )
        .await
        .ok();
    assert_eq!(re["status"], "pending");
    let id = re["id"].as_str().unwrap().to_string();
    eventually("refund to settle", || async {
        let r = sb.get(&format!("/v1/refunds/{id}")).await.ok();
        (r["status"] == "succeeded").then_some(())
    })
    .await;
    let ev = sb.events_of("charge.refund.updated").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["data"]["previous_attributes"]["status"], "pending");
    assert_eq!(sb.events_of("refund.updated").await.len(), 1);

    let pi = sb.pay("1000", "pm_card_refundFail", &[]).await.ok();
    let re = sb
        .post(
            "/v1/refunds",
            &[("payment_intent", pi["id"].as_str().unwrap())],
        )
        .await
        .ok();
    assert_eq!(re["status"], "succeeded");
    let id = re["id"].as_str().unwrap().to_string();
    eventually("refund to fail", || async {
        let r = sb.get(&format!("/v1/refunds/{id}")).await.ok();
        (r["status"] == "failed").then_some(())
    })
    .await;
    assert_eq!(sb.events_of("refund.failed").await.len(), 1);
    sb.stop().await;
}

#[tokio::test]
async fn dispute_cards_open_disputes_that_can_be_updated_and_closed() {
    let sb = spawn().await;
    let pi = sb.pay("4200", "pm_card_createDispute", &[]).await.ok();
    let disputes = sb
        .get(&format!(
            "/v1/disputes?payment_intent={}",
            pi["id"].as_str().unwrap()
        ))
        .await
        .ok();
    let dp = &disputes["data"][0];
    assert!(dp["id"].as_str().unwrap().starts_with("dp_"));
    assert_eq!(
        (
            dp["status"].as_str(),
            dp["reason"].as_str(),
            dp["amount"].as_i64()
        ),
        (Some("needs_response"), Some("fraudulent"), Some(4200))
    );
    let ch = sb
        .get(&format!(
            "/v1/charges/{}",
            pi["latest_charge"].as_str().unwrap()
        ))
        .await
        .ok();
    assert_eq!(ch["disputed"], true);
    let dp_id = dp["id"].as_str().unwrap();

    let up = sb
        .post(
            &format!("/v1/disputes/{dp_id}"),
            &[("evidence[customer_name]", "Jo"), ("submit", "false")],
        )
        .await
        .ok();
    assert_eq!(up["evidence"]["customer_name"], "Jo");
    assert_eq!(up["status"], "needs_response");
    let ev = sb.events_of("charge.dispute.updated").await;
    assert_eq!(
        ev[0]["data"]["previous_attributes"]["evidence"]["customer_name"],
        serde_json::Value::Null
    );

    let closed = sb
        .post(&format!("/v1/disputes/{dp_id}/close"), &[])
        .await
        .ok();
    assert_eq!(closed["status"], "lost");
    assert_eq!(
        sb.post(&format!("/v1/disputes/{dp_id}/close"), &[])
            .await
            .status,
        400
    );
    assert_eq!(sb.events_of("charge.dispute.created").await.len(), 1);
    assert_eq!(sb.events_of("charge.dispute.closed").await.len(), 1);

    // Winning evidence wins; manual capture opens the dispute on capture.
    let pi = sb
        .pay(
            "4200",
            "pm_card_createDisputeProductNotReceived",
            &[("capture_method", "manual")],
        )
        .await
        .ok();
    assert_eq!(
        sb.get("/v1/disputes").await.ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    sb.post(
        &format!("/v1/payment_intents/{}/capture", pi["id"].as_str().unwrap()),
        &[],
    )
    .await
    .ok();
    let dp = sb.get("/v1/disputes").await.ok()["data"][0].clone();
    assert_eq!(dp["reason"], "product_not_received");
    let won = sb
        .post(
            &format!("/v1/disputes/{}", dp["id"].as_str().unwrap()),
            &[("evidence[uncategorized_text]", "winning_evidence")],
        )
        .await
        .ok();
    assert_eq!(won["status"], "won");
    sb.stop().await;
}
