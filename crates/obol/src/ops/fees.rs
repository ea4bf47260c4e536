//! Fee settings: the rate an account's invoices pass on to their payers
//! (`PUT /v1/fee-settings`, the integration level), falling back to the
//! configured `fees.default.*`. Secret key only.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Result, RuleCode};
use crate::invoices::FeeRate;
use crate::money::{Currency, FeeSchedule, MAX_AMOUNT};
use crate::storage::Conn;

/// Where an invoice's fee rate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeeSource {
    /// Set for this account with `PUT /v1/fee-settings`.
    Integration,
    /// `fees.default.*` of obol's configuration.
    Default,
}

impl FeeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FeeSource::Integration => "integration",
            FeeSource::Default => "default",
        }
    }

    pub fn parse(s: &str) -> FeeSource {
        if s == "integration" {
            FeeSource::Integration
        } else {
            FeeSource::Default
        }
    }
}

/// Body of `PUT /v1/fee-settings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeSettingsIn {
    /// The percentage part in basis points (150 = 1.5 %), 0–5000.
    #[schema(minimum = 0, maximum = 5000, example = 150)]
    pub percent_bps: i64,
    /// The fixed part per currency, in minor units (`{"usd": 10}` is 10
    /// cents, `{"jpy": 10}` ten yen); a currency not listed has none.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"usd": 10}))]
    pub fixed: BTreeMap<String, i64>,
}

/// The rate an account's invoices use now.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeeSettingsOut {
    pub percent_bps: u32,
    /// Lowercase currency → minor units.
    #[schema(value_type = Object, example = json!({"usd": 10}))]
    pub fixed: BTreeMap<String, i64>,
    /// `integration`: set for this account; `default`: obol's configuration.
    pub source: FeeSource,
    /// When the account's own rate was last set; null for the default.
    pub updated_at: Option<DateTime<Utc>>,
}

/// The rate in effect for `account`, and where it came from.
pub async fn effective(
    ctx: &Ctx,
    conn: &mut Conn<'_>,
    account: &AccountId,
) -> Result<(FeeRate, FeeSource, Option<DateTime<Utc>>)> {
    match conn.get_fee_settings(account).await? {
        Some(row) => {
            let fixed: BTreeMap<String, i64> = serde_json::from_str(&row.fixed)
                .map_err(|e| Error::internal(format!("stored fee settings unreadable: {e}")))?;
            let rate = FeeRate {
                percent_bps: u32::try_from(row.percent_bps).unwrap_or(0),
                fixed,
            };
            Ok((rate, FeeSource::Integration, Some(row.updated_at)))
        }
        None => Ok((ctx.settings().fee_default.clone(), FeeSource::Default, None)),
    }
}

pub async fn get(ctx: &Ctx, actor: &Actor) -> Result<FeeSettingsOut> {
    actor.require_secret()?;
    let mut h = ctx.store().acquire().await?;
    let (rate, source, updated_at) = effective(ctx, &mut h.conn(), actor.account()).await?;
    Ok(FeeSettingsOut {
        percent_bps: rate.percent_bps,
        fixed: rate.fixed,
        source,
        updated_at,
    })
}

pub async fn put(ctx: &Ctx, actor: &Actor, body: FeeSettingsIn) -> Result<FeeSettingsOut> {
    actor.require_secret()?;
    let bps = u32::try_from(body.percent_bps)
        .ok()
        .filter(|b| *b <= FeeSchedule::MAX_GROSS_UP_BPS)
        .ok_or_else(|| {
            Error::rule(
                RuleCode::InvalidFeeSettings,
                format!(
                    "percent_bps must be between 0 and 5000 (50 %), got {}",
                    body.percent_bps
                ),
            )
        })?;
    let mut fixed = BTreeMap::new();
    for (code, amount) in &body.fixed {
        let currency = Currency::parse(code)
            .map_err(|e| Error::rule(RuleCode::InvalidFeeSettings, format!("fixed.{code}: {e}")))?;
        if !(0..=MAX_AMOUNT).contains(amount) {
            return Err(Error::rule(
                RuleCode::InvalidFeeSettings,
                format!("fixed.{code} must be between 0 and 99999999 minor units, got {amount}"),
            ));
        }
        fixed.insert(currency.as_str().to_string(), *amount);
    }
    let json = serde_json::to_string(&fixed).map_err(Error::internal)?;
    let mut h = ctx.store().acquire().await?;
    let row = h
        .conn()
        .upsert_fee_settings(
            actor.account(),
            i32::try_from(bps).unwrap_or(0),
            &json,
            ctx.now(),
        )
        .await?;
    tracing::info!(account = %actor.account(), percent_bps = bps, "fee settings set");
    Ok(FeeSettingsOut {
        percent_bps: bps,
        fixed,
        source: FeeSource::Integration,
        updated_at: Some(row.updated_at),
    })
}

/// Drops the account's own rate: its invoices use the default again
/// (those already processed keep the fee they were issued with).
pub async fn delete(ctx: &Ctx, actor: &Actor) -> Result<FeeSettingsOut> {
    actor.require_secret()?;
    {
        let mut h = ctx.store().acquire().await?;
        h.conn().delete_fee_settings(actor.account()).await?;
    }
    get(ctx, actor).await
}
