//! The Agentic Commerce Protocol's MCP binding (`docs/mcp-binding.md` of
//! the spec): its five checkout-session tools, each `{meta, id?,
//! payload?}` with `meta` carrying what the REST headers carry
//! (`api_version` required, `idempotency_key`, `request_id`). A success
//! answers the CheckoutSession as the tool's structured result; an ACP
//! error is a JSON-RPC error `-32000` with the ACP error object in `data`.
//!
//! Listed for the secret key only (the routers' `secret_key` group): the
//! MCP connection's credential authenticates, as the binding says, and its
//! account is the one the sessions belong to. The rules are `ops::acp`'s,
//! the same as over REST; a call without `meta.idempotency_key` (optional
//! in the binding) is not deduplicated.

use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ErrorCode};
use rmcp::{tool, tool_router, ErrorData};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::tools::Args;
use super::{Caller, ObolMcp};
use crate::context::Actor;
use crate::ops::acp::{self, Meta, Op};

/// The protocol metadata of a call (the REST headers).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AcpMetaIn {
    /// The ACP version, `2026-04-17` (see `/.well-known/acp.json`).
    pub api_version: Option<String>,
    /// Recommended for create and complete: the same key and payload
    /// replay the stored answer.
    pub idempotency_key: Option<String>,
    /// A correlation id.
    pub request_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionIn {
    pub meta: AcpMetaIn,
    /// An ACP CheckoutSessionCreateRequest: `line_items` ([{id: prod_…}]),
    /// `currency`, `buyer`, `fulfillment_details`, `capabilities`.
    pub payload: Value,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetSessionIn {
    pub meta: AcpMetaIn,
    /// The checkout session's id, `acs_…`.
    pub id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPayloadIn {
    pub meta: AcpMetaIn,
    /// The checkout session's id, `acs_…`.
    pub id: String,
    /// The ACP request body (CheckoutSessionUpdateRequest or
    /// CheckoutSessionCompleteRequest).
    pub payload: Value,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelSessionIn {
    pub meta: AcpMetaIn,
    /// The checkout session's id, `acs_…`.
    pub id: String,
    /// An ACP CancelSessionRequest (optional `intent_trace`).
    pub payload: Option<Value>,
}

fn rpc_error(body: Value) -> ErrorData {
    let message = body["message"]
        .as_str()
        .unwrap_or("the ACP call was refused")
        .to_string();
    ErrorData::new(ErrorCode(-32000), message, Some(body))
}

impl ObolMcp {
    /// Every tool: its arguments (or why they do not fit) split by `parts`
    /// into the protocol metadata, the operation and its payload, run by
    /// `ops::acp::call` for the connection's account; a success is the
    /// tool's structured result, an ACP error a JSON-RPC error.
    async fn acp_call<T>(
        &self,
        actor: &Actor,
        args: std::result::Result<T, String>,
        parts: impl FnOnce(T) -> (AcpMetaIn, Op, Option<Value>),
    ) -> Result<CallToolResult, ErrorData> {
        let (meta, op, payload) = args.map(parts).map_err(|m| {
            ErrorData::invalid_params(format!("the arguments do not fit the tool: {m}"), None)
        })?;
        let account = actor.account().clone();
        let credential = format!("mcp:{account}");
        let meta = Meta {
            api_version: meta.api_version,
            // Optional in the binding: without one, a fresh key, so the
            // call is simply not deduplicated.
            idempotency_key: meta
                .idempotency_key
                .or_else(|| Some(format!("mcp-{}", ulid::Ulid::new()))),
            // The MCP connection is authenticated by obol's secret key, not
            // by an agent platform's credential: nothing to verify.
            ..Meta::default()
        };
        let answer = acp::call(self.ctx(), &credential, &account, meta, op, payload).await;
        if answer.status >= 400 {
            Err(rpc_error(answer.body))
        } else {
            Ok(CallToolResult::structured(answer.body))
        }
    }
}

#[tool_router(router = acp_tools, vis = "pub(super)")]
impl ObolMcp {
    #[tool(
        description = "ACP: create a checkout session from catalog products (payload.line_items: [{id: prod_…}], payload.currency). Answers the authoritative CheckoutSession: obol's prices and totals (integer minor units), fulfillment_options, and messages saying what is missing.",
        annotations(
            title = "Create checkout session",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_checkout_session(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<CreateSessionIn>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.acp_call(&actor, args.into_inner(), |a| {
            (a.meta, Op::Create, Some(a.payload))
        })
        .await
    }

    #[tool(
        description = "ACP: the current state of a checkout session (id: acs_…), priced from the catalog now: status, line items, totals in integer minor units, and messages.",
        annotations(
            title = "Get checkout session",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_checkout_session(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<GetSessionIn>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.acp_call(&actor, args.into_inner(), |a| (a.meta, Op::Get(a.id), None))
            .await
    }

    #[tool(
        description = "ACP: update a checkout session's line_items, buyer, fulfillment_details or selected_fulfillment_options (absent keeps a field, null clears it).",
        annotations(
            title = "Update checkout session",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn update_checkout_session(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<SessionPayloadIn>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.acp_call(&actor, args.into_inner(), |a| {
            (a.meta, Op::Update(a.id), Some(a.payload))
        })
        .await
    }

    #[tool(
        description = "ACP: complete a checkout session with a Stripe shared payment token (payload.payment_data: {handler_id: card_tokenized, instrument: {type: card, credential: {type: spt, token: spt_…}}}). Charges once; answers status completed with the order, a payment_declined message, or authentication_required (then complete again with authentication_result).",
        annotations(
            title = "Complete checkout session",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn complete_checkout_session(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<SessionPayloadIn>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.acp_call(&actor, args.into_inner(), |a| {
            (a.meta, Op::Complete(a.id), Some(a.payload))
        })
        .await
    }

    #[tool(
        description = "ACP: cancel a checkout session that is neither completed nor canceled (else the ACP error session_not_cancelable); payload.intent_trace may say why.",
        annotations(
            title = "Cancel checkout session",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn cancel_checkout_session(
        &self,
        Extension(Caller(actor)): Extension<Caller>,
        Parameters(args): Parameters<Args<CancelSessionIn>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.acp_call(&actor, args.into_inner(), |a| {
            (a.meta, Op::Cancel(a.id), a.payload)
        })
        .await
    }
}
