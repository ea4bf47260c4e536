//! Stripe Connect's OAuth flow: how an organisation connects its own
//! Stripe account (a Standard account) to this obol, and disconnects it.
//!
//! 1. `create_link` (`POST /v1/organizations/{id}/connect-links`, the
//!    platform's secret key or the key acting for that organisation): a
//!    link token (32 random bytes, stored hashed) valid for
//!    `LINK_TTL_SECONDS`, and the host's `return_url`.
//! 2. `start` (`GET /connect/stripe/authorize/{token}`, the admin's
//!    browser): uses the link up (one visit) and mints the OAuth `state`,
//!    `<link id>.<32 random bytes>`, its secret half stored hashed, valid
//!    for `STATE_TTL_SECONDS` (the admin may have to sign up at Stripe
//!    first); answers Stripe's authorize URL to redirect to.
//! 3. `callback` (`GET /connect/stripe/callback`, Stripe's redirect):
//!    finds the link by the state's id, compares the secret's hash in
//!    constant time, uses the state up (once), exchanges the code at
//!    `/oauth/token`, seals the tokens (`crate::secrets`), reads the
//!    account's name, marks the organisation `active` and answers the
//!    host's `return_url` with the outcome in its query:
//!    `obol_connect=active|denied|error`, `organization=org_…` and, for
//!    `error`, `obol_error=<code>`. A forged, replayed or expired state
//!    (and an unknown, used or expired link) is an error here, which the
//!    page renders; nothing changes.
//! 4. `disconnect`: deauthorizes at `/oauth/deauthorize` and marks the
//!    organisation `disconnected`; a second call answers it as it is.
//!
//! After the exchange obol acts for the account with the platform's own
//! secret key and `Stripe-Account` (`Ctx::stripe_of`), as Stripe
//! recommends for Standard accounts; the access and refresh tokens are
//! kept (encrypted) for what needs them, never shown or logged.

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::organizations::{OrganizationOut, StripeStatus};
use crate::context::{Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::{OrganizationId, SecretToken, TokenHash};
use crate::storage::connect_links::{ConnectLinkRow, NewConnectLink};
use crate::storage::organizations::{ConnectedAccount, OrganizationRow, SecretColumn};
use crate::stripe::{OAuthError, Params};

/// How long a connect link can be visited: 10 minutes.
pub const LINK_TTL_SECONDS: i64 = 600;
/// How long Stripe's consent may take once the link was visited (the
/// admin may sign up or sign in at Stripe first): an hour.
pub const STATE_TTL_SECONDS: i64 = 3600;
/// The longest `return_url` taken.
const RETURN_URL_MAX: usize = 2048;

/// Body of `POST /v1/organizations/{id}/connect-links`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectLinkIn {
    /// Where the admin's browser comes back to once the flow ends, with
    /// `obol_connect=active|denied|error`, `organization` and, for
    /// `error`, `obol_error` added to its query. An absolute http(s) URL
    /// (https in live mode), without user or password.
    pub return_url: String,
}

/// A one-time connect link.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectLinkOut {
    /// Send the admin's browser here: `{public_url}/connect/stripe/authorize/{token}`.
    /// Only in this answer (the token is stored hashed); it works once.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// The query Stripe redirects back with: `code` and `state`, or `error`
/// (`access_denied` when the admin declined) and `state`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code, exchanged once for the account's tokens.
    pub code: Option<String>,
    /// The state obol sent to Stripe.
    pub state: Option<String>,
    /// The scope granted.
    pub scope: Option<String>,
    /// Stripe's OAuth error (`access_denied`, …).
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// How the flow ended, as the host's return URL is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Active,
    Denied,
    Error(RuleCode),
    /// Stripe could not be asked, or answered no (502 `stripe_error`).
    StripeError,
    /// obol failed (the log has the detail).
    Internal,
}

impl Outcome {
    fn recorded(self) -> String {
        match self {
            Outcome::Active => "active".into(),
            Outcome::Denied => "denied".into(),
            Outcome::Error(code) => format!("error:{}", code.as_str()),
            Outcome::StripeError => "error:stripe_error".into(),
            Outcome::Internal => "error:internal_error".into(),
        }
    }
}

/// The organisation `id` for the platform's secret key, or the secret key
/// acting for that same organisation; anyone else's: 404.
async fn own_organization(ctx: &Ctx, actor: &Actor, id: &str) -> Result<OrganizationRow> {
    actor.require_secret()?;
    let id = OrganizationId::parse(id).map_err(|_| Error::NotFound(Resource::Organization))?;
    let account = actor.account();
    if !account.is_platform() && account.as_str() != id.as_str() {
        return Err(Error::NotFound(Resource::Organization));
    }
    let mut handle = ctx.store().acquire().await?;
    handle
        .conn()
        .get_organization(&id)
        .await?
        .ok_or(Error::NotFound(Resource::Organization))
}

fn status_of(row: &OrganizationRow) -> Result<StripeStatus> {
    StripeStatus::parse(&row.stripe_status).ok_or_else(|| {
        Error::internal(format!(
            "organisation {} has status {:?}",
            row.id, row.stripe_status
        ))
    })
}

fn client_id(ctx: &Ctx) -> Result<&str> {
    ctx.settings().connect_client_id.as_deref().ok_or_else(|| {
        Error::rule(
            RuleCode::ConnectNotConfigured,
            "Stripe Connect is not configured: set stripe.connect.client_id (OBOL_STRIPE__CONNECT__CLIENT_ID, the ca_… id in Stripe's Dashboard under Settings, Connect) and restart",
        )
    })
}

/// The host's return URL, checked: absolute http(s) with a host, no
/// credentials, no fragment-only tricks, https in live mode. No
/// allow-list: the URL comes from the secret key's holder, who decides
/// where its own admins land, and it is stored with the link, so nobody
/// holding only a link or a state can change it.
fn return_url(ctx: &Ctx, raw: &str) -> Result<url::Url> {
    let invalid = |why: &str| Error::rule(RuleCode::InvalidUrl, format!("return_url {why}"));
    let raw = raw.trim();
    if raw.len() > RETURN_URL_MAX {
        return Err(invalid("is longer than 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| invalid("is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("must be an http:// or https:// URL"));
    }
    if ctx.settings().require_https_return && url.scheme() != "https" {
        return Err(invalid("must be https in live mode"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry a user name or password"));
    }
    Ok(url)
}

/// A connect link for organisation `id`.
pub async fn create_link(
    ctx: &Ctx,
    actor: &Actor,
    id: &str,
    body: ConnectLinkIn,
) -> Result<ConnectLinkOut> {
    let org = own_organization(ctx, actor, id).await?;
    let return_url = return_url(ctx, &body.return_url)?;
    client_id(ctx)?;
    if ctx.secrets().is_none() {
        return Err(Error::rule(
            RuleCode::EncryptionKeyRequired,
            "a connected account's Stripe tokens are stored encrypted: set secrets.encryption_key (OBOL_SECRETS__ENCRYPTION_KEY, 32 random bytes in base64) and restart",
        ));
    }
    if status_of(&org)? == StripeStatus::Active {
        return Err(already_connected());
    }
    let now = ctx.now();
    let expires_at = now + Duration::seconds(LINK_TTL_SECONDS);
    let token = SecretToken::generate("");
    let link_id = ulid::Ulid::new().to_string().to_ascii_lowercase();
    {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .insert_connect_link(&NewConnectLink {
                id: &link_id,
                organization_id: &org.id,
                return_url: return_url.as_str(),
                link_hash: token.hash().as_str(),
                link_expires_at: expires_at,
                now,
            })
            .await?;
    }
    tracing::info!(organization_id = %org.id, %expires_at, "connect link created");
    Ok(ConnectLinkOut {
        url: format!(
            "{}/connect/stripe/authorize/{}",
            ctx.settings().public_base,
            token.expose()
        ),
        expires_at,
    })
}

fn already_connected() -> Error {
    Error::rule(
        RuleCode::OrganizationAlreadyConnected,
        "this organisation's Stripe account is connected already; disconnect it first to connect another",
    )
}

fn well_formed_secret(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /connect/stripe/authorize/{token}`: uses the link up and answers
/// Stripe's authorize URL (with a fresh state) to send the browser to.
/// Unknown: 404; expired: 410 `connect_link_expired`; visited already:
/// 410 `connect_link_used`; organisation connected meanwhile: 409.
pub async fn start(ctx: &Ctx, token: &str) -> Result<String> {
    if !well_formed_secret(token) {
        return Err(Error::NotFound(Resource::ConnectLink));
    }
    let client_id = client_id(ctx)?.to_string();
    let now = ctx.now();
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let link = conn
        .get_connect_link_by_token(TokenHash::of(token).as_str())
        .await?
        .ok_or(Error::NotFound(Resource::ConnectLink))?;
    let used = || {
        Error::rule(
            RuleCode::ConnectLinkUsed,
            "this connect link was opened already; ask for a new one",
        )
    };
    if link.link_used_at.is_some() {
        return Err(used());
    }
    if link.link_expires_at <= now {
        return Err(Error::rule(
            RuleCode::ConnectLinkExpired,
            "this connect link has expired; ask for a new one",
        ));
    }
    let org = conn
        .get_organization(&OrganizationId::from_db(link.organization_id.clone()))
        .await?
        .ok_or(Error::NotFound(Resource::ConnectLink))?;
    if status_of(&org)? == StripeStatus::Active {
        return Err(already_connected());
    }
    let secret = SecretToken::generate("");
    let state_expires_at = now + Duration::seconds(STATE_TTL_SECONDS);
    conn.use_connect_link(&link.id, secret.hash().as_str(), state_expires_at, now)
        .await?
        .ok_or_else(used)?;
    drop(h);
    let state = format!("{}.{}", link.id, secret.expose());
    let redirect_uri = format!("{}/connect/stripe/callback", ctx.settings().public_base);
    let mut url = url::Url::parse(&format!("{}/oauth/authorize", ctx.settings().connect_base))
        .map_err(Error::internal)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("scope", "read_write")
        .append_pair("state", &state)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("stripe_user[business_name]", &org.name);
    tracing::info!(organization_id = %org.id, "connect link opened: sending the browser to Stripe");
    Ok(url.into())
}

/// The link a callback's `state` names, its state checked (constant-time
/// hash comparison) and used up. Forged or malformed: 400
/// `connect_state_invalid`; used: 410 `connect_state_used`; expired: 410
/// `connect_state_expired`.
async fn use_state(ctx: &Ctx, state: Option<&str>) -> Result<ConnectLinkRow> {
    let invalid = || {
        Error::rule(
            RuleCode::ConnectStateInvalid,
            "this page was not reached from a connect link of this obol (its state is unknown); nothing was changed",
        )
    };
    let (id, secret) = state.and_then(|s| s.split_once('.')).ok_or_else(invalid)?;
    if id.len() != 26
        || !id.bytes().all(|b| b.is_ascii_alphanumeric())
        || !well_formed_secret(secret)
    {
        return Err(invalid());
    }
    let now = ctx.now();
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let link = conn.get_connect_link(id).await?.ok_or_else(invalid)?;
    let stored = link.state_hash.clone().ok_or_else(invalid)?;
    if !TokenHash::of(secret).ct_eq(&TokenHash::from_db(stored)) {
        return Err(invalid());
    }
    let used = || {
        Error::rule(
            RuleCode::ConnectStateUsed,
            "this connection attempt has ended already; nothing was changed",
        )
    };
    if link.state_used_at.is_some() {
        return Err(used());
    }
    if link.state_expires_at.is_none_or(|at| at <= now) {
        return Err(Error::rule(
            RuleCode::ConnectStateExpired,
            "this connection attempt took too long and has expired; ask for a new connect link",
        ));
    }
    if !conn.use_connect_state(&link.id, now).await? {
        return Err(used());
    }
    Ok(link)
}

/// `return_url` with the outcome added to its query.
fn back_to(link: &ConnectLinkRow, outcome: Outcome) -> Result<String> {
    let mut url = url::Url::parse(&link.return_url).map_err(Error::internal)?;
    {
        let mut q = url.query_pairs_mut();
        match outcome {
            Outcome::Active => q.append_pair("obol_connect", "active"),
            Outcome::Denied => q.append_pair("obol_connect", "denied"),
            Outcome::Error(_) | Outcome::StripeError | Outcome::Internal => {
                q.append_pair("obol_connect", "error")
            }
        };
        q.append_pair("organization", &link.organization_id);
        match outcome {
            Outcome::Error(code) => {
                q.append_pair("obol_error", code.as_str());
            }
            Outcome::StripeError => {
                q.append_pair("obol_error", "stripe_error");
            }
            Outcome::Internal => {
                q.append_pair("obol_error", "internal_error");
            }
            Outcome::Active | Outcome::Denied => {}
        }
    }
    Ok(url.into())
}

/// What Stripe's `/oauth/token` answers.
#[derive(Deserialize)]
struct TokenAnswer {
    stripe_user_id: String,
    access_token: String,
    refresh_token: Option<String>,
    #[serde(default)]
    livemode: bool,
}

/// `GET /connect/stripe/callback`: the state checked and used up, then
/// the URL to send the browser back to (the host's, with the outcome).
pub async fn callback(ctx: &Ctx, q: CallbackQuery) -> Result<String> {
    let link = use_state(ctx, q.state.as_deref()).await?;
    let outcome = finish(ctx, &link, &q).await;
    {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .set_connect_link_outcome(&link.id, &outcome.recorded())
            .await?;
    }
    back_to(&link, outcome)
}

/// The connection itself, once the state was good: any failure is an
/// outcome for the host, and leaves the organisation as it was.
async fn finish(ctx: &Ctx, link: &ConnectLinkRow, q: &CallbackQuery) -> Outcome {
    let org_id = OrganizationId::from_db(link.organization_id.clone());
    if let Some(error) = q.error.as_deref() {
        tracing::info!(organization_id = %org_id, %error, "the Stripe account was not connected: Stripe redirected with an error");
        return if error == "access_denied" {
            Outcome::Denied
        } else {
            Outcome::StripeError
        };
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        tracing::warn!(organization_id = %org_id, "Stripe redirected without a code or an error");
        return Outcome::StripeError;
    };
    match connect(ctx, &org_id, code).await {
        Ok(()) => Outcome::Active,
        Err(ConnectFailure::Rule(code)) => Outcome::Error(code),
        Err(ConnectFailure::Stripe) => Outcome::StripeError,
        Err(ConnectFailure::Internal(e)) => {
            e.log();
            Outcome::Internal
        }
    }
}

enum ConnectFailure {
    Rule(RuleCode),
    Stripe,
    Internal(Error),
}

impl From<Error> for ConnectFailure {
    fn from(e: Error) -> Self {
        ConnectFailure::Internal(e)
    }
}

async fn connect(
    ctx: &Ctx,
    org_id: &OrganizationId,
    code: &str,
) -> std::result::Result<(), ConnectFailure> {
    let secrets = ctx
        .secrets()
        .ok_or(ConnectFailure::Rule(RuleCode::EncryptionKeyRequired))?;
    let settings = ctx.settings();
    let answer = ctx
        .stripe_info()
        .client()
        .oauth_post(
            &settings.connect_base,
            "/oauth/token",
            &Params::new()
                .set("grant_type", "authorization_code")
                .set("code", code),
        )
        .await;
    let answer: TokenAnswer = match answer.map(serde_json::from_value) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            tracing::warn!(organization_id = %org_id, error = %e, "Stripe's OAuth token answer could not be read");
            return Err(ConnectFailure::Stripe);
        }
        Err(e) => {
            // The error code only: a description may quote the code.
            tracing::warn!(organization_id = %org_id, error = %e, "Stripe refused the authorization code");
            return Err(ConnectFailure::Stripe);
        }
    };
    let acct = answer.stripe_user_id.as_str();
    let last4: String = acct
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    {
        let mut h = ctx.store().acquire().await?;
        let mut conn = h.conn();
        if let Some(holder) = conn.get_organization_by_stripe_account(acct).await? {
            if holder.id != org_id.as_str() {
                tracing::warn!(organization_id = %org_id, holder = %holder.id, account_last4 = %last4, "refused: that Stripe account is connected to another organisation");
                return Err(ConnectFailure::Rule(RuleCode::StripeAccountInUse));
            }
        }
        let org = conn
            .get_organization(org_id)
            .await?
            .ok_or(Error::NotFound(Resource::Organization))?;
        if status_of(&org)? == StripeStatus::Active
            && org.stripe_account_id.as_deref() != Some(acct)
        {
            return Err(ConnectFailure::Rule(RuleCode::OrganizationAlreadyConnected));
        }
    }
    // The name as the account shows it; a failure here does not undo
    // the connection (the name is cosmetic).
    let account_name = match ctx
        .connected(acct)
        .get::<Value>("/v1/account", &Params::new())
        .await
    {
        Ok(a) => crate::stripe::account_name(&a),
        Err(e) => {
            tracing::warn!(organization_id = %org_id, error = %e, "could not read the connected account's name");
            None
        }
    };
    let seal = |column: SecretColumn, value: String| {
        secrets
            .encrypt(&SecretString::from(value), &column.context(org_id.as_str()))
            .map_err(|e| ConnectFailure::Internal(Error::internal(e)))
    };
    let access = seal(SecretColumn::StripeAccessToken, answer.access_token)?;
    let refresh = answer
        .refresh_token
        .map(|r| seal(SecretColumn::StripeRefreshToken, r))
        .transpose()?;
    let first = {
        let mut h = ctx.store().acquire().await?;
        let mut conn = h.conn();
        let before = conn.get_organization(org_id).await?;
        let row = conn
            .connect_organization(
                org_id,
                &ConnectedAccount {
                    account_id: acct,
                    account_name: account_name.as_deref(),
                    livemode: answer.livemode,
                    access_token_enc: &access,
                    refresh_token_enc: refresh.as_deref(),
                },
                ctx.now(),
            )
            .await?;
        if row.is_none() {
            tracing::warn!(organization_id = %org_id, account_last4 = %last4, "refused: that Stripe account is connected to another organisation");
            return Err(ConnectFailure::Rule(RuleCode::StripeAccountInUse));
        }
        before.is_some_and(|b| b.connected_at.is_none())
    };
    tracing::info!(organization_id = %org_id, account_last4 = %last4, livemode = answer.livemode, "Stripe account connected");
    if first {
        // Connect webhook registration (connect-events); a failure is
        // logged and retried by the next connection or `obol stripe
        // register-webhook`, never undoing this one.
        if let Err(e) = super::connect_webhooks::ensure_registered(ctx).await {
            tracing::warn!(error = %e, "could not register the Connect webhook endpoint");
        }
    }
    Ok(())
}

/// `POST /v1/organizations/{id}/disconnect`: deauthorizes obol's access
/// at Stripe and marks the organisation `disconnected` (its tokens
/// dropped; its objects stay readable). Already disconnected: answered
/// as it is. Never connected: 409 `organization_not_connected`. An
/// account Stripe says is no longer connected (deauthorized from the
/// account's side) is disconnected here too.
pub async fn disconnect(ctx: &Ctx, actor: &Actor, id: &str) -> Result<OrganizationOut> {
    let org = own_organization(ctx, actor, id).await?;
    match status_of(&org)? {
        StripeStatus::Disconnected => return org.try_into(),
        StripeStatus::Pending => {
            return Err(Error::rule(
                RuleCode::OrganizationNotConnected,
                "this organisation has no Stripe account connected",
            ))
        }
        StripeStatus::Active => {}
    }
    let acct = org.stripe_account_id.clone().ok_or_else(|| {
        Error::internal(format!(
            "organisation {} is active without an account",
            org.id
        ))
    })?;
    let client_id = client_id(ctx)?;
    let answer = ctx
        .stripe_info()
        .client()
        .oauth_post(
            &ctx.settings().connect_base,
            "/oauth/deauthorize",
            &Params::new()
                .set("client_id", client_id)
                .set("stripe_user_id", &acct),
        )
        .await;
    match answer {
        Ok(_) => {}
        // Stripe's answer for an account this application is no longer
        // connected to: what a disconnect wants.
        Err(OAuthError::Refused { error, .. }) if error == "invalid_client" => {
            tracing::info!(organization_id = %org.id, "Stripe says the account was disconnected already");
        }
        Err(e) => return Err(crate::stripe::StripeError::from(e).into()),
    }
    let id = OrganizationId::from_db(org.id.clone());
    let now = ctx.now();
    // The status change, the canceled charge runs and the host's
    // `organization.disconnected` commit together, as when the
    // deauthorization arrives as a webhook first.
    let mut tx = ctx.store().begin().await?;
    let row = {
        let mut conn = tx.conn();
        match conn.disconnect_organization(&id, now).await? {
            Some(row) => {
                let done = crate::organizations::after_disconnected(&mut conn, &row, now).await?;
                tracing::info!(organization_id = %row.id, charge_runs_canceled = done.charge_runs_canceled.len(), "Stripe account disconnected");
                row
            }
            // Disconnected meanwhile (a deauthorization event, another call).
            None => conn
                .get_organization(&id)
                .await?
                .ok_or(Error::NotFound(Resource::Organization))?,
        }
    };
    tx.commit().await?;
    row.try_into()
}
