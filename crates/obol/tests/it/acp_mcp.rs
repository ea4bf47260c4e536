//! The ACP MCP binding (`docs/mcp-binding.md` of the spec) on obol's MCP
//! server, driven by the official Python `mcp` SDK: the five
//! checkout-session tools with `{meta, id, payload}`, answers that are
//! ACP CheckoutSessions, and ACP errors as JSON-RPC errors `-32000` with
//! the ACP error in `data`.

use serde_json::{json, Value};

use crate::acp::{address, assert_acp, grant, intents_of, payment, shop, start};
use crate::helpers::Backend;
use crate::mcp::{call, session, Transport};
use crate::on_both_backends;

on_both_backends!(an_agent_checks_out_over_the_acp_mcp_binding);

fn meta(key: Option<&str>) -> Value {
    match key {
        Some(k) => json!({"api_version": "2026-04-17", "idempotency_key": k}),
        None => json!({"api_version": "2026-04-17"}),
    }
}

fn structured(r: &Value) -> &Value {
    assert_eq!(r["is_error"], false, "{r}");
    &r["structured"]
}

fn rpc_error(r: &Value) -> &Value {
    assert_eq!(r["code"], -32000, "{r}");
    assert_acp("Error", &r["data"]);
    &r["data"]
}

async fn an_agent_checks_out_over_the_acp_mcp_binding(backend: Backend) {
    let obol = start(backend, None).await;
    let shop = shop(&obol).await;
    let key = obol.api_key.clone();
    let create = json!({"currency": "usd", "line_items": [{"id": shop.boots}, {"id": shop.socks}],
        "buyer": {"email": "alice@example.com"},
        "fulfillment_details": {"name": "Alice Example", "address": address()},
        "capabilities": {}});
    let first = session(
        &obol,
        &Transport::Http,
        &key,
        json!([
            {"op": "list_tools"},
            call("create_checkout_session", json!({"meta": meta(Some("mcp-create-1")), "payload": create})),
            call("create_checkout_session", json!({"meta": meta(Some("mcp-create-1")), "payload": create})),
            call("create_checkout_session", json!({"meta": {}, "payload": create})),
            call("get_checkout_session", json!({"meta": meta(None), "id": "acs_nope"})),
        ]),
    )
    .await;
    let tools: Vec<&str> = first[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in [
        "create_checkout_session",
        "get_checkout_session",
        "update_checkout_session",
        "complete_checkout_session",
        "cancel_checkout_session",
    ] {
        assert!(tools.contains(&t), "{t} in {tools:?}");
    }
    let created = structured(&first[1]);
    assert_acp("CheckoutSession", created);
    assert_eq!(created["status"], "not_ready_for_payment");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(structured(&first[2])["id"], id, "the same key replays");
    assert_eq!(rpc_error(&first[3])["code"], "missing_api_version");
    assert_eq!(rpc_error(&first[4])["code"], "session_not_found");

    let token = grant(&obol, "pm_card_visa", 6700, None).await;
    let second = session(
        &obol,
        &Transport::Http,
        &key,
        json!([
            call("update_checkout_session", json!({"meta": meta(Some("mcp-u1")), "id": id,
                "payload": {"selected_fulfillment_options": [{"type": "shipping", "option_id": shop.standard, "item_ids": []}]}})),
            call("get_checkout_session", json!({"meta": meta(None), "id": id})),
            call("complete_checkout_session", json!({"meta": meta(Some("mcp-c1")), "id": id, "payload": payment(&token)})),
            call("cancel_checkout_session", json!({"meta": meta(Some("mcp-x1")), "id": id})),
        ]),
    )
    .await;
    let ready = structured(&second[0]);
    assert_acp("CheckoutSession", ready);
    assert_eq!(ready["status"], "ready_for_payment");
    assert_eq!(structured(&second[1])["status"], "ready_for_payment");
    let done = structured(&second[2]);
    assert_acp("CheckoutSessionWithOrder", done);
    assert_eq!(done["status"], "completed");
    assert_eq!(rpc_error(&second[3])["code"], "session_not_cancelable");
    assert_eq!(intents_of(&obol, &id).await.len(), 1);

    // A customer token is not offered the ACP tools.
    let customer = obol.create_customer("mcp-acp").await;
    let ct = obol
        .customer_token(customer["id"].as_str().unwrap(), 900)
        .await;
    let third = session(&obol, &Transport::Http, &ct, json!([{"op": "list_tools"}])).await;
    let listed = third[0]["tools"].to_string();
    assert!(!listed.contains("checkout_session"), "{listed}");
}
