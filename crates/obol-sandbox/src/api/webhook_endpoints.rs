//! `/v1/webhook_endpoints`. The signing secret is kept as `_secret` and
//! shown only in the create response, as Stripe does. `connect=true` makes
//! a Connect endpoint (`_connect`, `application` set to the platform's
//! Connect application): it receives connected accounts' events only.

use serde_json::{json, Value};

use crate::ctx::{render, Ctx};
use crate::error::ApiError;
use crate::form::{apply_metadata, Params};
use crate::ids;

const MAX_ENDPOINTS: i64 = 16;

fn check_url(url: &str) -> Result<(), ApiError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > 8
        && !url.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Invalid URL: {url}. URLs must begin with http:// or https://"
        ))
        .param("url")
        .code("url_invalid"))
    }
}

fn check_events(events: &[String]) -> Result<(), ApiError> {
    if events.is_empty() {
        return Err(ApiError::missing_param("enabled_events"));
    }
    for e in events {
        let ok = e == "*"
            || (e.contains('.')
                && e.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_' || c == '*'));
        if !ok {
            return Err(ApiError::invalid(format!(
                "Invalid enabled_events: {e} is not a valid event type"
            ))
            .param("enabled_events"));
        }
    }
    Ok(())
}

pub async fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "url",
        "enabled_events",
        "description",
        "metadata",
        "api_version",
        "connect",
    ])?;
    let url = p.required("url")?;
    check_url(url)?;
    let events = p
        .list("enabled_events")?
        .ok_or_else(|| ApiError::missing_param("enabled_events"))?;
    check_events(&events)?;
    let connect = p.bool("connect")?.unwrap_or(false);
    if connect && ctx.account.is_some() {
        return Err(ApiError::invalid(
            "Connect webhook endpoints belong to the platform: create them without Stripe-Account.",
        )
        .param("connect"));
    }
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM objects WHERE kind = 'webhook_endpoint' AND deleted = 0 AND account IS ?",
    )
    .bind(ctx.account.clone())
    .fetch_one(&mut *ctx.tx)
    .await?;
    let application = if connect {
        Some(application_id(ctx).await?)
    } else {
        None
    };
    if count >= MAX_ENDPOINTS {
        return Err(ApiError::invalid(format!(
            "You have reached the maximum of {MAX_ENDPOINTS} test webhook endpoints."
        )));
    }
    let secret = format!("whsec_{}", ids::random(32));
    let mut we = json!({
        "id": ids::new_id("we"),
        "object": "webhook_endpoint",
        "api_version": p.nonempty("api_version")?,
        "application": application,
        "created": ctx.now,
        "description": p.nonempty("description")?,
        "enabled_events": events,
        "livemode": false,
        "metadata": {},
        "status": "enabled",
        "url": url,
        "_secret": secret,
        "_connect": connect,
    });
    apply_metadata(&mut we["metadata"], p)?;
    ctx.put(&we).await?;
    ctx.endpoints_changed();
    let mut out = render(&we);
    out["secret"] = json!(secret);
    Ok(out)
}

pub async fn update(ctx: &mut Ctx<'_>, id: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "url",
        "enabled_events",
        "description",
        "metadata",
        "disabled",
    ])?;
    let mut we = ctx.load("webhook_endpoint", id, None).await?;
    let before = we.clone();
    if let Some(url) = p.nonempty("url")? {
        check_url(url)?;
        we["url"] = json!(url);
    }
    if let Some(events) = p.list("enabled_events")? {
        check_events(&events)?;
        we["enabled_events"] = json!(events);
    }
    if let Some(d) = p.str("description")? {
        we["description"] = if d.is_empty() { Value::Null } else { json!(d) };
    }
    if let Some(disabled) = p.bool("disabled")? {
        we["status"] = json!(if disabled { "disabled" } else { "enabled" });
    }
    apply_metadata(&mut we["metadata"], p)?;
    if we != before {
        ctx.put(&we).await?;
        ctx.endpoints_changed();
    }
    Ok(we)
}

pub async fn delete(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let we = ctx.load("webhook_endpoint", id, None).await?;
    let stub =
        json!({"id": id, "object": "webhook_endpoint", "deleted": true, "created": we["created"]});
    ctx.put(&stub).await?;
    ctx.endpoints_changed();
    sqlx::query(
        "UPDATE deliveries SET status = 'canceled' WHERE endpoint_id = ? AND status = 'pending'",
    )
    .bind(id)
    .execute(&mut *ctx.tx)
    .await?;
    Ok(json!({"id": id, "object": "webhook_endpoint", "deleted": true}))
}

pub async fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["limit", "starting_after", "ending_before"])?;
    ctx.list("webhook_endpoint", Vec::new(), p, "/v1/webhook_endpoints")
        .await
}

/// The platform's Connect application id (`ca_…`), stable for one database.
async fn application_id(ctx: &mut Ctx<'_>) -> Result<String, ApiError> {
    sqlx::query("INSERT OR IGNORE INTO meta (k, v) VALUES ('connect_application', ?)")
        .bind(ids::new_id("ca"))
        .execute(&mut *ctx.tx)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT v FROM meta WHERE k = 'connect_application'")
            .fetch_one(&mut *ctx.tx)
            .await?,
    )
}
