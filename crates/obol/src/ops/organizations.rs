//! Organisations: the businesses one obol serves, each with its own
//! objects and (once connected through Stripe Connect) its own Stripe
//! account.
//!
//! An organisation's id is the `AccountId` of everything it owns, so the
//! tenancy every query already applies keeps organisations apart. The
//! platform (`AccountId::platform()`, no `Obol-Organization` header) is
//! not an organisation and has no row.
//!
//! Organisation routes are the platform's: `POST` needs the secret key
//! without a header; with `Obol-Organization` set, `GET` answers only
//! that organisation and the list holds only it.
//!
//! Connecting and disconnecting its Stripe account (the OAuth flow that
//! fills the `stripe_*` columns) is `ops::connect`. `stripe_account` is
//! where a Stripe call for an organisation learns whether it may be made.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pagination::{self, Cursor, Page};
use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::OrganizationId;
use crate::storage::organizations::OrganizationRow;
use crate::validate;

/// What follows a disconnection, in its transaction: running charge runs
/// canceled, the host told (`organization.disconnected`). The disconnect
/// call runs it after `disconnect_organization` answers the row, exactly
/// as the inbox does for `account.application.deauthorized`.
pub use crate::organizations::{after_disconnected, Disconnected};

/// Body of `POST /v1/organizations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationIn {
    /// What the organisation is called (shown to its admins; 1–255 characters).
    pub name: String,
    /// The host application's own id for it; unique among organisations.
    pub external_id: Option<String>,
}

/// The state of an organisation's Stripe connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StripeStatus {
    /// Never connected: obol makes no Stripe call for it.
    Pending,
    /// Connected: Stripe calls for it go to its account.
    Active,
    /// The account was disconnected (deauthorized); its objects stay readable.
    Disconnected,
}

impl StripeStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(StripeStatus::Pending),
            "active" => Some(StripeStatus::Active),
            "disconnected" => Some(StripeStatus::Disconnected),
            _ => None,
        }
    }
}

/// An organisation's Stripe account, as much as it is safe to show:
/// never the full account id, never a token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrganizationStripeOut {
    pub status: StripeStatus,
    /// The last four characters of the connected `acct_…` id.
    pub account_id_last4: Option<String>,
    /// The account's business name, as Stripe reports it.
    pub account_name: Option<String>,
    /// Whether the connection is in live mode.
    pub livemode: Option<bool>,
    pub connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrganizationOut {
    #[schema(value_type = crate::ids::OrganizationId)]
    pub id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub stripe: OrganizationStripeOut,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<OrganizationRow> for OrganizationOut {
    type Error = Error;

    fn try_from(r: OrganizationRow) -> Result<Self> {
        let status = StripeStatus::parse(&r.stripe_status).ok_or_else(|| {
            Error::internal(format!(
                "organisation {} has status {:?}",
                r.id, r.stripe_status
            ))
        })?;
        let last4 = r.stripe_account_id.as_deref().map(|a| {
            let tail: Vec<char> = a.chars().rev().take(4).collect();
            tail.into_iter().rev().collect()
        });
        Ok(OrganizationOut {
            id: r.id,
            name: r.name,
            external_id: r.external_id,
            stripe: OrganizationStripeOut {
                status,
                account_id_last4: last4,
                account_name: r.account_name,
                livemode: r.livemode,
                connected_at: r.connected_at,
                disconnected_at: r.disconnected_at,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// `GET /v1/organizations` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The platform's secret key, or refused: organisations are created by
/// the platform, not by one of them.
fn platform_secret(actor: &Actor) -> Result<()> {
    actor.require_secret()?;
    if !actor.account().is_platform() {
        return Err(Error::rule(
            RuleCode::OrganizationHeaderNotAllowed,
            "organisations are created by the platform: send this request without Obol-Organization",
        ));
    }
    Ok(())
}

/// Creates an organisation (the platform's secret key). A taken
/// `external_id` is `organization_exists` with `existing_id`. Refused
/// with `encryption_key_required` when obol has no key to keep its
/// Stripe tokens with (real Stripe keys and no `secrets.encryption_key`).
pub async fn create(ctx: &Ctx, actor: &Actor, body: OrganizationIn) -> Result<OrganizationOut> {
    platform_secret(actor)?;
    let name = validate::text("name", &body.name, 255)?;
    let external_id = body
        .external_id
        .as_deref()
        .map(|s| validate::text("external_id", s, 255))
        .transpose()?;
    if ctx.secrets().is_none() {
        return Err(Error::rule(
            RuleCode::EncryptionKeyRequired,
            "an organisation's Stripe tokens are stored encrypted: set secrets.encryption_key (OBOL_SECRETS__ENCRYPTION_KEY, 32 random bytes in base64) and restart",
        ));
    }
    let id = OrganizationId::generate();
    let mut handle = ctx.store().acquire().await?;
    let mut conn = handle.conn();
    match conn
        .insert_organization(&id, name, external_id, ctx.now())
        .await?
    {
        Some(row) => {
            tracing::info!(organization_id = %row.id, "organisation created");
            row.try_into()
        }
        None => {
            let external_id = external_id.unwrap_or_default();
            let existing = conn
                .get_organization_by_external_id(external_id)
                .await?
                .ok_or_else(|| {
                    Error::internal("unique violation without a matching organisation")
                })?;
            Err(Error::OrganizationExists {
                external_id: external_id.to_string(),
                existing_id: existing.id,
            })
        }
    }
}

/// One organisation: for the platform's secret key, or the secret key
/// acting for that same organisation.
pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<OrganizationOut> {
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
        .ok_or(Error::NotFound(Resource::Organization))?
        .try_into()
}

/// Newest first: every organisation for the platform; only itself for
/// the secret key acting for one.
pub async fn list(ctx: &Ctx, actor: &Actor, q: ListQuery) -> Result<Page<OrganizationOut>> {
    actor.require_secret()?;
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let account = actor.account();
    if !account.is_platform() {
        let own = get(ctx, actor, account.as_str()).await?;
        let rows = if before.is_some() { vec![] } else { vec![own] };
        return Ok(Page::from_rows(rows, limit, |o| Cursor {
            at: o.created_at,
            id: o.id.clone(),
        }));
    }
    let mut handle = ctx.store().acquire().await?;
    let rows = handle
        .conn()
        .list_organizations(&before.map(|c| (c.at, c.id)), limit + 1)
        .await?;
    Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    })
    .try_map(OrganizationOut::try_from)
}

/// The account a request acts on when it names `header` in
/// `Obol-Organization`: that organisation's, whatever its Stripe state
/// (a disconnected organisation's objects stay readable). Unknown or
/// malformed: `organization_not_found`, never the platform.
pub async fn resolve(ctx: &Ctx, header: &str) -> Result<AccountId> {
    let id = OrganizationId::parse(header.trim())
        .map_err(|_| Error::NotFound(Resource::Organization))?;
    let mut handle = ctx.store().acquire().await?;
    let row = handle
        .conn()
        .get_organization(&id)
        .await?
        .ok_or(Error::NotFound(Resource::Organization))?;
    Ok(AccountId::from_db(row.id))
}

/// The connected Stripe account (`acct_…`) a Stripe call for `account`
/// must name, or why none may be made: an organisation that is not
/// `active` answers `organization_not_connected`, so nothing is ever
/// charged on the platform's account for it. The platform: `None`.
pub async fn stripe_account(ctx: &Ctx, account: &AccountId) -> Result<Option<String>> {
    if account.is_platform() {
        return Ok(None);
    }
    let not_connected = |why: &str| {
        Error::rule(
            RuleCode::OrganizationNotConnected,
            format!("this organisation {why}; connect its Stripe account before anything is charged for it"),
        )
    };
    let id = OrganizationId::parse(account.as_str()).map_err(|_| {
        Error::internal(format!(
            "account {account} is neither the platform nor an organisation"
        ))
    })?;
    let row = {
        let mut handle = ctx.store().acquire().await?;
        handle
            .conn()
            .get_organization(&id)
            .await?
            .ok_or(Error::NotFound(Resource::Organization))?
    };
    match (
        StripeStatus::parse(&row.stripe_status),
        row.stripe_account_id,
    ) {
        (Some(StripeStatus::Active), Some(acct)) => Ok(Some(acct)),
        (Some(StripeStatus::Active), None) => Err(Error::internal(format!(
            "organisation {} is active without a Stripe account",
            row.id
        ))),
        (Some(StripeStatus::Pending), _) => {
            Err(not_connected("has no Stripe account connected yet"))
        }
        (Some(StripeStatus::Disconnected), _) => {
            Err(not_connected("had its Stripe account disconnected"))
        }
        (None, _) => Err(Error::internal(format!(
            "organisation {} has status {:?}",
            row.id, row.stripe_status
        ))),
    }
}
