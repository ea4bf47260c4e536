//! Stripe Connect: the OAuth endpoints a platform uses to connect Standard
//! accounts (`/oauth/authorize` consent page, `/oauth/token`,
//! `/oauth/deauthorize`), and which account an API request acts for
//! (`Stripe-Account` header, or a connected account's own access token or
//! publishable key).
//!
//! Connected accounts are `account` objects owned by the platform, with
//! private `_client_id` (the application that connected them, absent for
//! accounts made with `POST /v1/accounts`), `_publishable_key` and
//! `_status` (`connected` or `deauthorized`). Codes and tokens live in
//! `oauth_tokens`, keyed by their SHA-256. OAuth answers use OAuth's error
//! shape (`{"error": "invalid_grant", "error_description": "…"}`), not
//! Stripe's error object, as Stripe's connect endpoints do.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::api::{api_key, error_response, json_response, mask};
use crate::ctx::{now_secs, s, App, Ctx, DEFAULT_API_VERSION};
use crate::error::ApiError;
use crate::pages::{escape, page};
use crate::{form, ids, store};

/// Authorization codes are single-use and expire after five minutes.
pub const CODE_TTL_SECS: i64 = 300;

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn deauthorized(acct: &Value) -> bool {
    s(acct, "_status") == "deauthorized"
}

fn no_access(key: &str, acct: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "invalid_request_error",
        format!(
            "The provided key '{}' does not have access to account '{acct}' (or that account does not exist). Application access may have been revoked.",
            mask(key)
        ),
    )
    .code("account_invalid")
}

/// The connected account a `/v1` request acts for: `None` is the platform.
/// A connected account's access token or publishable key acts for that
/// account (a `Stripe-Account` naming another is refused); the platform's
/// keys act for the account named by `Stripe-Account`, which must be
/// connected and not deauthorized. A read-only token may only read.
pub async fn resolve(
    app: &App,
    key: &str,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Option<String>, ApiError> {
    let named = headers
        .get("stripe-account")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let mut conn = app.pool.acquire().await?;
    let token = store::get_token(&mut conn, &hash(key))
        .await?
        .filter(|t| t.kind == "access" || t.kind == "publishable");
    if let Some(t) = token {
        if t.revoked {
            return Err(ApiError::unauthorized(format!(
                "Expired API Key provided: {}. Application access may have been revoked.",
                mask(key)
            ))
            .code("api_key_expired"));
        }
        if named.is_some_and(|n| n != t.account) {
            return Err(no_access(key, named.unwrap_or_default()));
        }
        if t.scope == "read_only" && *method != Method::GET {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                format!(
                    "The provided key '{}' does not have the required permissions for this endpoint on account '{}'. Having the 'read_write' scope would allow this request to continue.",
                    mask(key),
                    t.account
                ),
            ));
        }
        return Ok(Some(t.account));
    }
    let Some(acct) = named else {
        return Ok(None);
    };
    if acct == app.account_id {
        return Ok(None);
    }
    match store::get_object(&mut conn, acct).await? {
        Some((_, v)) if s(&v, "object") == "account" && !deauthorized(&v) => {
            Ok(Some(acct.to_string()))
        }
        _ => Err(no_access(key, acct)),
    }
}

/// A new connected account object, shaped like the platform's own.
pub fn new_account(
    platform: Value,
    id: &str,
    name: &str,
    email: Option<&str>,
    created: i64,
) -> Value {
    let mut a = platform;
    a["id"] = json!(id);
    a["created"] = json!(created);
    a["business_profile"]["name"] = json!(name);
    a["settings"]["dashboard"]["display_name"] = json!(name);
    let descriptor: String = name
        .to_uppercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .take(22)
        .collect();
    a["settings"]["payments"]["statement_descriptor"] = json!(descriptor);
    a["email"] = match email {
        Some(e) => json!(e),
        None => json!(format!("{}@sandbox.invalid", id.to_lowercase())),
    };
    a["_publishable_key"] = json!(format!("pk_test_{}", ids::random(48)));
    a["_account"] = Value::Null;
    a["_status"] = json!("connected");
    a
}

// ---------------------------------------------------------------- authorize

struct AuthorizeRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scope: String,
    prefill_name: Option<String>,
    prefill_email: Option<String>,
}

fn field<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str).filter(|v| !v.is_empty())
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{}", q.finish())
}

fn redirect(status: StatusCode, location: String) -> Response {
    (status, [(header::LOCATION, location)]).into_response()
}

fn error_page(message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Connect authorization error",
        &format!("<p id=\"error\">{}</p>", escape(message)),
    )
}

/// Checks an authorize request. Problems with `client_id` or `redirect_uri`
/// end on an error page (nowhere trusted to redirect to); the others
/// redirect with OAuth's `error`, as Stripe does.
fn check(m: &Map<String, Value>) -> Result<AuthorizeRequest, Box<Response>> {
    let client_id = field(m, "client_id").unwrap_or_default();
    let well_formed = client_id
        .strip_prefix("ca_")
        .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()));
    if !well_formed {
        return Err(Box::new(error_page(&format!(
            "Invalid client_id: '{client_id}'. Pass your platform's client_id (ca_…) from its Connect settings."
        ))));
    }
    let Some(redirect_uri) = field(m, "redirect_uri") else {
        return Err(Box::new(error_page(
            "No redirect_uri given. The obol sandbox has no Connect settings to take a default from: pass redirect_uri.",
        )));
    };
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://"))
        || redirect_uri.contains(char::is_whitespace)
    {
        return Err(Box::new(error_page(&format!(
            "Invalid redirect_uri: '{redirect_uri}'. It must be an http:// or https:// URL."
        ))));
    }
    let state = field(m, "state").map(str::to_string);
    let refuse = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(st) = state.as_deref() {
            pairs.push(("state", st));
        }
        redirect(StatusCode::FOUND, with_query(redirect_uri, &pairs))
    };
    match field(m, "response_type") {
        Some("code") => {}
        Some(other) => {
            return Err(Box::new(refuse(
                "unsupported_response_type",
                &format!("Unsupported response_type: {other}. The only supported value is 'code'."),
            )))
        }
        None => {
            return Err(Box::new(refuse(
                "invalid_request",
                "No response_type provided. The only supported value is 'code'.",
            )))
        }
    }
    let scope = field(m, "scope").unwrap_or("read_only");
    if scope != "read_write" && scope != "read_only" {
        return Err(Box::new(refuse(
            "invalid_scope",
            &format!("Invalid scope: {scope}. Use read_write or read_only."),
        )));
    }
    let user = m.get("stripe_user").and_then(Value::as_object);
    let prefill = |k: &str| user.and_then(|u| field(u, k)).map(str::to_string);
    Ok(AuthorizeRequest {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        state,
        scope: scope.to_string(),
        prefill_name: prefill("business_name"),
        prefill_email: prefill("email"),
    })
}

async fn accounts(app: &App) -> Result<Vec<Value>, ApiError> {
    let rows = sqlx::query_scalar::<_, String>(
        "SELECT data FROM objects WHERE kind = 'account' AND deleted = 0 ORDER BY seq LIMIT 100",
    )
    .fetch_all(&app.pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        out.push(serde_json::from_str(&r)?);
    }
    Ok(out)
}

/// `GET /oauth/authorize`: the consent page.
pub async fn authorize_page(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response {
    let m = match form::parse(q.unwrap_or_default().as_bytes()) {
        Ok(m) => m,
        Err(e) => return error_page(&e),
    };
    let req = match check(&m) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let existing = match accounts(&app).await {
        Ok(a) => a,
        Err(e) => return error_response(&e),
    };
    let default_name = req
        .prefill_name
        .clone()
        .unwrap_or_else(|| format!("Sandbox Winery {:03}", existing.len() + 1));
    let hidden = |k: &str, v: &str| {
        format!(
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
            escape(v)
        )
    };
    let mut fields = String::new();
    fields.push_str(&hidden("response_type", "code"));
    fields.push_str(&hidden("client_id", &req.client_id));
    fields.push_str(&hidden("redirect_uri", &req.redirect_uri));
    fields.push_str(&hidden("scope", &req.scope));
    if let Some(st) = &req.state {
        fields.push_str(&hidden("state", st));
    }
    if let Some(e) = &req.prefill_email {
        fields.push_str(&hidden("email", e));
    }
    let mut choices = String::from(
        "<p><label><input type=\"radio\" name=\"account\" value=\"\" checked> a new account named \
         <input id=\"account_name\" name=\"account_name\" value=\"",
    );
    choices.push_str(&escape(&default_name));
    choices.push_str("\"></label></p>");
    for a in &existing {
        let id = s(a, "id");
        let name = a["business_profile"]["name"].as_str().unwrap_or_default();
        let note = if deauthorized(a) {
            " (disconnected)"
        } else {
            ""
        };
        choices.push_str(&format!(
            "<p><label><input type=\"radio\" name=\"account\" value=\"{}\"> {} <code>{}</code>{note}</label></p>",
            escape(&id),
            escape(name),
            escape(&id)
        ));
    }
    let body = format!(
        "<p>obol sandbox: the application <code>{}</code> asks for <strong>{}</strong> access to a Stripe account.</p>\
         <form method=\"post\" action=\"/oauth/authorize\">{fields}{choices}\
         <button id=\"allow\" type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button id=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        escape(&req.client_id),
        escape(&req.scope)
    );
    page(StatusCode::OK, "Connect your Stripe account", &body)
}

/// `POST /oauth/authorize` (or `/oauth/authorize/decide`): the consent
/// form's answer, `decision=allow|deny`, redirected to `redirect_uri`.
pub async fn authorize_decide(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let m = match form::parse(&body) {
        Ok(m) => m,
        Err(e) => return error_page(&e),
    };
    let req = match check(&m) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let with_state = |mut pairs: Vec<(&'static str, String)>| {
        if let Some(st) = &req.state {
            pairs.push(("state", st.clone()));
        }
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        redirect(StatusCode::SEE_OTHER, with_query(&req.redirect_uri, &refs))
    };
    match field(&m, "decision") {
        Some("allow") => {}
        Some("deny") => {
            return with_state(vec![
                ("error", "access_denied".into()),
                ("error_description", "The user denied your request".into()),
            ])
        }
        _ => return error_page("decision must be allow or deny."),
    }
    let code = format!("ac_{}", ids::random(32));
    match allow(&app, &req, &m, &code).await {
        Ok(()) => with_state(vec![("code", code), ("scope", req.scope.clone())]),
        Err(AllowError::Page(msg)) => error_page(&msg),
        Err(AllowError::Api(e)) => error_response(&e),
    }
}

enum AllowError {
    Page(String),
    Api(ApiError),
}

impl From<ApiError> for AllowError {
    fn from(e: ApiError) -> Self {
        AllowError::Api(e)
    }
}

/// Connects a new or chosen account and records a code for it.
async fn allow(
    app: &App,
    req: &AuthorizeRequest,
    m: &Map<String, Value>,
    code: &str,
) -> Result<(), AllowError> {
    let _guard = app.write_lock.lock().await;
    let mut ctx = Ctx::begin_write(app, None, None, DEFAULT_API_VERSION.into()).await?;
    ctx.act_as(None);
    let acct = match field(m, "account") {
        Some(id) => {
            let mut a = match ctx.find(id).await? {
                Some(a) if s(&a, "object") == "account" => a,
                _ => return Err(AllowError::Page(format!("No such account: '{id}'"))),
            };
            a["_status"] = json!("connected");
            a
        }
        None => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM objects WHERE kind = 'account'")
                .fetch_one(&mut *ctx.tx)
                .await
                .map_err(ApiError::from)?;
            let n = n + 1;
            let name = field(m, "account_name")
                .map(str::to_string)
                .unwrap_or_else(|| format!("Sandbox Winery {n:03}"));
            new_account(
                crate::api::platform_account(&app.account_id),
                &ids::new_id("acct"),
                &name,
                field(m, "email"),
                ctx.now,
            )
        }
    };
    let mut acct = acct;
    acct["_client_id"] = json!(req.client_id);
    ctx.put(&acct).await?;
    let id = s(&acct, "id");
    let pk = s(&acct, "_publishable_key");
    let now = ctx.now;
    let row = |kind: &str, expires: Option<i64>| store::OAuthToken {
        kind: kind.into(),
        account: id.clone(),
        client_id: req.client_id.clone(),
        scope: req.scope.clone(),
        created: now,
        expires,
        used: false,
        revoked: false,
    };
    sqlx::query("DELETE FROM oauth_tokens WHERE token_hash = ?")
        .bind(hash(&pk))
        .execute(&mut *ctx.tx)
        .await
        .map_err(ApiError::from)?;
    store::insert_token(&mut ctx.tx, &hash(&pk), &row("publishable", None))
        .await
        .map_err(ApiError::from)?;
    store::insert_token(
        &mut ctx.tx,
        &hash(code),
        &row("code", Some(now + CODE_TTL_SECS)),
    )
    .await
    .map_err(ApiError::from)?;
    ctx.commit().await?;
    Ok(())
}

// ------------------------------------------------------------ token, deauth

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        json!({"error": error, "error_description": description}).to_string(),
    )
}

/// The platform's secret key: Bearer/Basic auth or `client_secret`.
async fn platform_key(
    app: &App,
    headers: &HeaderMap,
    m: &Map<String, Value>,
) -> Result<String, Response> {
    let key = match field(m, "client_secret") {
        Some(k) => k.to_string(),
        None if headers.contains_key("authorization") => match api_key(headers) {
            Ok(k) => k,
            Err(e) => return Err(error_response(&e)),
        },
        None => {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                "No authentication was provided. Send your secret API key using the Authorization header, or as a client_secret POST parameter.",
            ))
        }
    };
    let connected = match app.pool.acquire().await {
        Ok(mut c) => match store::get_token(&mut c, &hash(&key)).await {
            Ok(t) => t.is_some(),
            Err(e) => return Err(error_response(&ApiError::from(e))),
        },
        Err(e) => return Err(error_response(&ApiError::from(e))),
    };
    if !key.starts_with("sk_test_") || connected {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!(
                "Invalid API key provided: {}. Use your platform's secret key.",
                mask(&key)
            ),
        ));
    }
    Ok(key)
}

/// `POST /oauth/token`: `grant_type=authorization_code` (single-use
/// `code`) or `grant_type=refresh_token` (`refresh_token`, optional lesser
/// `scope`).
pub async fn token(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let m = match form::parse(&body) {
        Ok(m) => m,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    if let Err(resp) = platform_key(&app, &headers, &m).await {
        return resp;
    }
    match token_grant(&app, &m).await {
        Ok(Ok(v)) => json_response(StatusCode::OK, v.to_string()),
        Ok(Err(resp)) => resp,
        Err(e) => error_response(&e),
    }
}

async fn token_grant(
    app: &App,
    m: &Map<String, Value>,
) -> Result<Result<Value, Response>, ApiError> {
    let grant = |d: String| {
        Ok(Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            &d,
        )))
    };
    let _guard = app.write_lock.lock().await;
    let mut ctx = Ctx::begin_write(app, None, None, DEFAULT_API_VERSION.into()).await?;
    let now = now_secs();
    let (row, refresh) = match field(m, "grant_type") {
        Some("authorization_code") => {
            let Some(code) = field(m, "code") else {
                return Ok(Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "No authorization code provided",
                )));
            };
            let found = store::get_token(&mut ctx.tx, &hash(code)).await?;
            let row = match found {
                Some(t) if t.kind == "code" => t,
                _ => return grant(format!("Authorization code does not exist: {code}")),
            };
            if row.used {
                return grant(format!("Authorization code already used: {code}"));
            }
            if row.revoked {
                return grant(format!("Authorization code has been revoked: {code}"));
            }
            if row.expires.is_some_and(|e| e < now) {
                return grant(format!("Authorization code expired: {code}"));
            }
            store::use_token(&mut ctx.tx, &hash(code)).await?;
            (row, None)
        }
        Some("refresh_token") => {
            let Some(rt) = field(m, "refresh_token") else {
                return Ok(Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "No refresh_token provided",
                )));
            };
            let mut row = match store::get_token(&mut ctx.tx, &hash(rt)).await? {
                Some(t) if t.kind == "refresh" && !t.revoked => t,
                _ => return grant(format!("Invalid refresh token: {rt}")),
            };
            match field(m, "scope") {
                None => {}
                Some(sc) if sc == row.scope || sc == "read_only" => row.scope = sc.to_string(),
                Some(sc) => {
                    return Ok(Err(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        &format!(
                            "Invalid scope: {sc}. A refresh token may only ask for its own scope ({}) or a lesser one.",
                            row.scope
                        ),
                    )))
                }
            }
            (row, Some(rt.to_string()))
        }
        Some(other) => {
            return Ok(Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Unsupported grant type: {other}"),
            )))
        }
        None => {
            return Ok(Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "No grant type specified",
            )))
        }
    };
    let acct = match store::get_object(&mut ctx.tx, &row.account).await? {
        Some((_, a)) if !deauthorized(&a) => a,
        _ => {
            return grant(format!(
                "The account {} has been disconnected.",
                row.account
            ))
        }
    };
    let prefix = if row.scope == "read_write" {
        "sk_test_"
    } else {
        "rk_test_"
    };
    let access = format!("{prefix}{}", ids::random(64));
    let token_row = |kind: &str| store::OAuthToken {
        kind: kind.into(),
        account: row.account.clone(),
        client_id: row.client_id.clone(),
        scope: row.scope.clone(),
        created: now,
        expires: None,
        used: false,
        revoked: false,
    };
    store::insert_token(&mut ctx.tx, &hash(&access), &token_row("access")).await?;
    let refresh = match refresh {
        Some(rt) => rt,
        None => {
            let rt = format!("rt_{}", ids::random(48));
            store::insert_token(&mut ctx.tx, &hash(&rt), &token_row("refresh")).await?;
            rt
        }
    };
    ctx.commit().await?;
    Ok(Ok(json!({
        "access_token": access,
        "livemode": false,
        "refresh_token": refresh,
        "scope": row.scope,
        "stripe_publishable_key": s(&acct, "_publishable_key"),
        "stripe_user_id": row.account,
        "token_type": "bearer",
    })))
}

/// `POST /oauth/deauthorize` (`client_id`, `stripe_user_id`): disconnects
/// the account, revokes its tokens and emits
/// `account.application.deauthorized` for it.
pub async fn deauthorize(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let m = match form::parse(&body) {
        Ok(m) => m,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    if let Err(resp) = platform_key(&app, &headers, &m).await {
        return resp;
    }
    let Some(client_id) = field(&m, "client_id") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "No client_id provided",
        );
    };
    let Some(acct_id) = field(&m, "stripe_user_id") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "No stripe_user_id provided",
        );
    };
    match disconnect(&app, client_id, acct_id).await {
        Ok(true) => {
            app.notify.notify_one();
            json_response(
                StatusCode::OK,
                json!({"stripe_user_id": acct_id}).to_string(),
            )
        }
        Ok(false) => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("This application is not connected to stripe account {acct_id}, or that account does not exist."),
        ),
        Err(e) => error_response(&e),
    }
}

async fn disconnect(app: &App, client_id: &str, acct_id: &str) -> Result<bool, ApiError> {
    let _guard = app.write_lock.lock().await;
    let mut ctx = Ctx::begin_write(app, None, None, DEFAULT_API_VERSION.into()).await?;
    ctx.act_as(None);
    let mut acct = match ctx.find(acct_id).await? {
        Some(a)
            if s(&a, "object") == "account"
                && !deauthorized(&a)
                && s(&a, "_client_id") == client_id =>
        {
            a
        }
        _ => return Ok(false),
    };
    acct["_status"] = json!("deauthorized");
    ctx.put(&acct).await?;
    store::revoke_tokens(&mut ctx.tx, acct_id).await?;
    ctx.act_as(Some(acct_id.to_string()));
    let application = json!({"id": client_id, "object": "application", "name": null});
    ctx.emit("account.application.deauthorized", &application, None)
        .await?;
    ctx.commit().await?;
    Ok(true)
}
