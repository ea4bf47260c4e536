//! obol's MCP server: its use cases as Model Context Protocol tools, for
//! an AI agent acting for the host's backend (secret key) or for one
//! customer (customer token). Built with `rmcp`; served over stdio by
//! `obol mcp` and over streamable HTTP at `/mcp` (`api::mcp`).
//!
//! A tool is a thin adapter, like an HTTP handler: it parses its arguments,
//! calls exactly one `ops::` function with the caller's `Actor` and answers
//! the function's JSON view. Ownership and every other rule stay in `ops/`,
//! so a customer token sees here exactly what it sees over HTTP (someone
//! else's object is "not found"). A refused call is a tool result with
//! `isError: true` and obol's error body, `{"error": {"code", "message"}}`,
//! the codes of the HTTP API (`tools::answer`).
//!
//! The tools are in `tools.rs`, in two routers: `shared_tools` (any
//! credential) and `secret_key_tools` (listed and callable with the
//! secret key only; a customer token calling one gets
//! `secret_key_required`). What must not live here: SQL, Stripe calls,
//! ownership checks, HTTP.

pub mod acp_tools;
pub mod catalog_tools;
pub mod tools;

use std::sync::Arc;

use rmcp::handler::server::tool::{ToolCallContext, ToolRouter};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use secrecy::{ExposeSecret, SecretString};

use crate::context::{Actor, Ctx};
use crate::error::Error;
use crate::ids::TokenHash;
use crate::ops;

/// The actor a tool call acts for, as the tools receive it
/// (`Extension<Caller>`). Over HTTP `api::mcp` puts it in the request's
/// extensions after checking the request's Bearer credential.
#[derive(Clone, Debug)]
pub struct Caller(pub Actor);

/// The routers, built once (schemas and all) and shared by every
/// connection or request.
struct Routers {
    shared: ToolRouter<ObolMcp>,
    secret_key: ToolRouter<ObolMcp>,
}

/// Where a call's actor comes from.
#[derive(Clone)]
enum Credential {
    /// stdio: `OBOL_MCP_TOKEN`, checked again on every call, so a customer
    /// token that expires or is revoked stops working at once, as it
    /// does over HTTP.
    Token {
        token: Arc<SecretString>,
        secret_key_hashes: Arc<[TokenHash]>,
        /// `OBOL_MCP_ORGANIZATION`: the organisation every call acts for,
        /// as `Obol-Organization` makes a request act for it.
        organization: Option<Arc<str>>,
    },
    /// HTTP: each request's own `Caller`, from its Bearer credential.
    PerRequest,
}

/// The MCP server: the context every use case runs with and where each
/// call's actor comes from. Its `Debug` shows no credential.
#[derive(Clone)]
pub struct ObolMcp {
    ctx: Ctx,
    credential: Credential,
    routers: Arc<Routers>,
}

impl std::fmt::Debug for ObolMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match self.credential {
            Credential::Token { .. } => "stdio",
            Credential::PerRequest => "http",
        };
        f.debug_struct("ObolMcp")
            .field("transport", &transport)
            .finish_non_exhaustive()
    }
}

impl ObolMcp {
    fn new(ctx: Ctx, credential: Credential) -> Self {
        ObolMcp {
            ctx,
            credential,
            routers: Arc::new(Routers {
                // More groups of tools join here with `+` (see `tools.rs`).
                shared: Self::shared_tools() + Self::catalog_tools(),
                secret_key: Self::secret_key_tools() + Self::acp_tools(),
            }),
        }
    }

    /// A server whose every call acts for `token` (a secret key among
    /// `secret_key_hashes`, or a customer token), in `organization` when
    /// one is named: stdio, one process, one credential.
    pub fn for_token(
        ctx: Ctx,
        token: SecretString,
        secret_key_hashes: Vec<TokenHash>,
        organization: Option<String>,
    ) -> Self {
        Self::new(
            ctx,
            Credential::Token {
                token: Arc::new(token),
                secret_key_hashes: secret_key_hashes.into(),
                organization: organization.map(Arc::from),
            },
        )
    }

    /// A server that reads each call's actor from the HTTP request it came
    /// in (`Caller` in the request's extensions).
    pub fn for_http(ctx: Ctx) -> Self {
        Self::new(ctx, Credential::PerRequest)
    }

    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The actor of this call's credential.
    pub async fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Actor, Error> {
        match &self.credential {
            Credential::Token {
                token,
                secret_key_hashes,
                organization,
            } => {
                stdio_actor(
                    &self.ctx,
                    secret_key_hashes,
                    token.expose_secret(),
                    organization.as_deref(),
                )
                .await
            }
            Credential::PerRequest => context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Caller>())
                .map(|c| c.0.clone())
                .ok_or(Error::Unauthenticated),
        }
    }

    /// Every tool `actor` may call, by name.
    pub fn tools_for(&self, actor: &Actor) -> Vec<Tool> {
        let mut tools = self.routers.shared.list_all();
        if actor.is_secret() {
            tools.extend(self.routers.secret_key.list_all());
        }
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        tools
    }
}

const INSTRUCTIONS: &str = "obol is the shop's payments hub. Money is always an integer amount in \
    the currency's minor units plus a lowercase ISO 4217 currency (4999 with eur is EUR 49.99). \
    A refused call answers isError with {\"error\": {\"code\", \"message\"}}; branch on the code. \
    An id you may not see answers a *_not_found code, like one that does not exist.";

impl ServerHandler for ObolMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("obol", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let actor = self.caller(&context).await.map_err(|e| {
            e.log();
            ErrorData::invalid_request(e.to_string(), Some(e.body()))
        })?;
        // The list depends on the credential: no cache hint that would let
        // it be shared.
        Ok(ListToolsResult::with_all_items(self.tools_for(&actor)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let actor = match self.caller(&context).await {
            Ok(actor) => actor,
            Err(e) => return Ok(tools::refused(e).into()),
        };
        let secret_key_only = self.routers.secret_key.has_route(&request.name);
        tracing::info!(tool = %request.name, "MCP tool called");
        if secret_key_only && !actor.is_secret() {
            return Ok(tools::refused(Error::SecretKeyRequired).into());
        }
        context.extensions.insert(Caller(actor));
        let call = ToolCallContext::new(self, request, context);
        if secret_key_only {
            self.routers.secret_key.call(call).await
        } else {
            self.routers.shared.call(call).await
        }
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.routers
            .shared
            .get(name)
            .or_else(|| self.routers.secret_key.get(name))
            .cloned()
    }
}

/// The actor of a stdio call: `token`, in `organization` when one is
/// named (the rules of `Obol-Organization`: a customer token only in its
/// own organisation).
async fn stdio_actor(
    ctx: &Ctx,
    secret_key_hashes: &[TokenHash],
    token: &str,
    organization: Option<&str>,
) -> Result<Actor, Error> {
    let actor = ops::credentials::authenticate(ctx, secret_key_hashes, token).await?;
    match organization {
        None => Ok(actor),
        Some(named) => ops::credentials::in_organization(ctx, actor, named).await,
    }
}

/// Serves MCP on stdin/stdout until the client closes it, every call for
/// `token`, in `organization` when one is named. Both are checked first,
/// so a wrong one stops here.
pub async fn serve_stdio(
    ctx: Ctx,
    token: SecretString,
    secret_key_hashes: Vec<TokenHash>,
    organization: Option<String>,
) -> Result<(), StdioError> {
    let actor = stdio_actor(
        &ctx,
        &secret_key_hashes,
        token.expose_secret(),
        organization.as_deref(),
    )
    .await
    .map_err(StdioError::Credential)?;
    tracing::info!(
        caller = if actor.is_secret() {
            "secret key"
        } else {
            "customer token"
        },
        organization = %actor.account(),
        "MCP server on stdio"
    );
    let running = ObolMcp::for_token(ctx, token, secret_key_hashes, organization)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| StdioError::Transport(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| StdioError::Transport(e.to_string()))?;
    Ok(())
}

/// Why `obol mcp` stopped.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    /// The credential (or the organisation named) was refused: its code,
    /// never the token.
    #[error("OBOL_MCP_TOKEN was refused: {}", .0.code())]
    Credential(Error),
    #[error("the MCP connection failed: {0}")]
    Transport(String),
}

/// rmcp's streamable HTTP service for `/mcp`, stateless: every POST is
/// answered on its own (JSON, not an event stream), with no session kept
/// in memory, so any obol instance behind a load balancer can answer any
/// request and each request is authorized by its own credential.
/// rmcp's own Host check is off: `api::mcp` applies obol's allow-list
/// (from `public_url`) before the request gets here, answering in obol's
/// error shape.
pub type HttpService = StreamableHttpService<ObolMcp, NeverSessionManager>;

pub fn http_service(ctx: Ctx, body_limit: usize) -> HttpService {
    let server = ObolMcp::for_http(ctx);
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_max_request_body_bytes(body_limit)
            .disable_allowed_hosts(),
    )
}
