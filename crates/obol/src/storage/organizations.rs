//! Organisations (one connected Stripe account each) and the encryption
//! key obol generates for itself in sandbox mode.
//!
//! The `*_enc` columns hold `crate::secrets` ciphertexts only; nothing
//! here encrypts or decrypts, and no query returns them to `ops/` except
//! the ones that exist to re-encrypt them.

use chrono::{DateTime, Utc};

use super::{is_unique_violation, keyset, on_conn, Conn};
use crate::error::Result;
use crate::ids::OrganizationId;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrganizationRow {
    pub id: String,
    pub name: String,
    pub external_id: Option<String>,
    /// `pending` (never connected), `active`, `disconnected`.
    pub stripe_status: String,
    pub stripe_account_id: Option<String>,
    pub account_name: Option<String>,
    pub livemode: Option<bool>,
    pub connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The encrypted token columns of one organisation, for re-encryption.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrganizationSecretsRow {
    pub id: String,
    pub stripe_access_token_enc: Option<String>,
    pub stripe_refresh_token_enc: Option<String>,
}

/// What the OAuth callback learnt of a connected account, tokens sealed
/// with `crate::secrets` (context `SecretColumn::context`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectedAccount<'a> {
    pub account_id: &'a str,
    pub account_name: Option<&'a str>,
    pub livemode: bool,
    pub access_token_enc: &'a str,
    pub refresh_token_enc: Option<&'a str>,
}

/// A column holding an encrypted value, by name (bound into SQL only
/// from this closed list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretColumn {
    StripeAccessToken,
    StripeRefreshToken,
}

impl SecretColumn {
    pub const ALL: [SecretColumn; 2] = [
        SecretColumn::StripeAccessToken,
        SecretColumn::StripeRefreshToken,
    ];

    pub fn column(self) -> &'static str {
        match self {
            SecretColumn::StripeAccessToken => "stripe_access_token_enc",
            SecretColumn::StripeRefreshToken => "stripe_refresh_token_enc",
        }
    }

    /// The associated data a value of this column is sealed with: its
    /// table, column and row, so it opens nowhere else.
    pub fn context(self, org: &str) -> String {
        format!("organizations.{}:{org}", self.column())
    }
}

const COLUMNS: &str = "id, name, external_id, stripe_status, stripe_account_id, account_name, \
     livemode, connected_at, disconnected_at, created_at, updated_at";

impl Conn<'_> {
    /// Inserts an organisation; `Ok(None)` when `external_id` is taken.
    pub async fn insert_organization(
        &mut self,
        id: &OrganizationId,
        name: &str,
        external_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<OrganizationRow>> {
        let sql = format!(
            "INSERT INTO organizations (id, name, external_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING {COLUMNS}"
        );
        let result = on_conn!(self, |conn| {
            sqlx::query_as::<_, OrganizationRow>(&sql)
                .bind(id.as_str())
                .bind(name)
                .bind(external_id)
                .bind(now)
                .fetch_one(&mut **conn)
                .await
        });
        match result {
            Ok(row) => Ok(Some(row)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_organization(
        &mut self,
        id: &OrganizationId,
    ) -> Result<Option<OrganizationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM organizations WHERE id = $1");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, OrganizationRow>(&sql)
                .bind(id.as_str())
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    pub async fn get_organization_by_external_id(
        &mut self,
        external_id: &str,
    ) -> Result<Option<OrganizationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM organizations WHERE external_id = $1");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, OrganizationRow>(&sql)
                .bind(external_id)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Newest first, `limit` rows created before `before`.
    pub async fn list_organizations(
        &mut self,
        before: &Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<OrganizationRow>> {
        let (at, id) = keyset(before);
        let sql = format!(
            "SELECT {COLUMNS} FROM organizations \
             WHERE ($1 IS NULL OR created_at < $1 OR (created_at = $1 AND id < $2)) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, OrganizationRow>(&sql)
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    pub async fn count_organizations(&mut self) -> Result<i64> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM organizations")
                .fetch_one(&mut **conn)
                .await?
        }))
    }

    /// Organisations holding any encrypted value, after `after` (by id),
    /// `limit` at a time: what `obol secrets rotate` walks.
    pub async fn list_organization_secrets(
        &mut self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OrganizationSecretsRow>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, OrganizationSecretsRow>(
                "SELECT id, stripe_access_token_enc, stripe_refresh_token_enc FROM organizations \
                 WHERE ($1 IS NULL OR id > $1) \
                 AND (stripe_access_token_enc IS NOT NULL OR stripe_refresh_token_enc IS NOT NULL) \
                 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(&mut **conn)
            .await?
        }))
    }

    /// Replaces one encrypted value if it is still `old`: a value written
    /// meanwhile (a reconnect) is newer and stays. `false` then.
    pub async fn replace_organization_secret(
        &mut self,
        id: &str,
        column: SecretColumn,
        old: &str,
        new: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let col = column.column();
        let sql = format!(
            "UPDATE organizations SET {col} = $1, updated_at = $2 WHERE id = $3 AND {col} = $4"
        );
        let done = on_conn!(self, |conn| {
            sqlx::query(&sql)
                .bind(new)
                .bind(now)
                .bind(id)
                .bind(old)
                .execute(&mut **conn)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Stores one encrypted value (the connect step's writer; tests).
    pub async fn set_organization_secret(
        &mut self,
        id: &OrganizationId,
        column: SecretColumn,
        sealed: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let col = column.column();
        let sql = format!("UPDATE organizations SET {col} = $1, updated_at = $2 WHERE id = $3");
        let done = on_conn!(self, |conn| {
            sqlx::query(&sql)
                .bind(sealed)
                .bind(now)
                .bind(id.as_str())
                .execute(&mut **conn)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// The organisation holding connected account `acct` (any status):
    /// how a Connect webhook event is routed by its `account` field.
    pub async fn get_organization_by_stripe_account(
        &mut self,
        acct: &str,
    ) -> Result<Option<OrganizationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM organizations WHERE stripe_account_id = $1");
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, OrganizationRow>(&sql)
                .bind(acct)
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// Every `active` organisation, by id after `after`, `limit` at a
    /// time: what per-organisation sweeps (reconciliation, invoices) walk.
    pub async fn list_active_organizations(
        &mut self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OrganizationRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM organizations \
             WHERE stripe_status = 'active' AND ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, OrganizationRow>(&sql)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut **conn)
                .await?
        }))
    }

    /// Marks an organisation `active` on connected account `c.account_id`
    /// with its (already sealed) tokens. `Ok(None)` when another
    /// organisation holds that account already (unique index), so one
    /// Stripe account never serves two organisations. Reconnecting a
    /// disconnected organisation (to the same or another account) is
    /// allowed and clears `disconnected_at`.
    pub async fn connect_organization(
        &mut self,
        id: &OrganizationId,
        c: &ConnectedAccount<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<OrganizationRow>> {
        let sql = format!(
            "UPDATE organizations SET stripe_status = 'active', stripe_account_id = $1, \
             account_name = $2, livemode = $3, stripe_access_token_enc = $4, \
             stripe_refresh_token_enc = $5, connected_at = $6, disconnected_at = NULL, \
             updated_at = $6 WHERE id = $7 RETURNING {COLUMNS}"
        );
        let result = on_conn!(self, |conn| {
            sqlx::query_as::<_, OrganizationRow>(&sql)
                .bind(c.account_id)
                .bind(c.account_name)
                .bind(c.livemode)
                .bind(c.access_token_enc)
                .bind(c.refresh_token_enc)
                .bind(now)
                .bind(id.as_str())
                .fetch_optional(&mut **conn)
                .await
        });
        match result {
            Ok(row) => Ok(row),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves an `active` organisation to `disconnected` and drops its
    /// tokens (they are dead at Stripe). Guarded: `Ok(None)` when it was
    /// not active, so a deauthorization seen twice (webhook and the
    /// disconnect call, or two deliveries) acts once. The account id
    /// stays, so late events for it still route to this organisation.
    pub async fn disconnect_organization(
        &mut self,
        id: &OrganizationId,
        now: DateTime<Utc>,
    ) -> Result<Option<OrganizationRow>> {
        let sql = format!(
            "UPDATE organizations SET stripe_status = 'disconnected', disconnected_at = $1, \
             stripe_access_token_enc = NULL, stripe_refresh_token_enc = NULL, updated_at = $1 \
             WHERE id = $2 AND stripe_status = 'active' RETURNING {COLUMNS}"
        );
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, OrganizationRow>(&sql)
                .bind(now)
                .bind(id.as_str())
                .fetch_optional(&mut **conn)
                .await?
        }))
    }

    /// The key generated under `id` earlier, if any: `(base64, fingerprint)`.
    pub async fn get_generated_key(&mut self, id: &str) -> Result<Option<(String, String)>> {
        Ok(on_conn!(self, |conn| {
            sqlx::query_as::<_, (String, String)>(
                "SELECT key_base64, fingerprint FROM generated_keys WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&mut **conn)
            .await?
        }))
    }

    /// Stores a generated key unless another process stored one first
    /// (`ON CONFLICT DO NOTHING`); the caller reads back which one won.
    pub async fn insert_generated_key(
        &mut self,
        id: &str,
        key_base64: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_conn!(self, |conn| {
            sqlx::query(
                "INSERT INTO generated_keys (id, key_base64, fingerprint, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(key_base64)
            .bind(fingerprint)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        });
        Ok(())
    }
}
