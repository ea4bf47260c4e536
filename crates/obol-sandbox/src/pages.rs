//! Sandbox-only routes: the 3-D Secure challenge page
//! (`/_sandbox/3ds/{pi_or_seti}`), runtime chaos settings, stats and the
//! rate limit's counts (`/_sandbox/rate`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{error_response, json_response, payment_intents, setup_intents};
use crate::chaos::{ChaosConfig, ChaosState};
use crate::ctx::{render, s, App, Ctx, DEFAULT_API_VERSION};
use crate::error::ApiError;
use crate::{form, store};

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}button{{font-size:1rem;padding:.5rem 1rem;margin:.5rem}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Loads a pending intent whose challenge token matches.
async fn pending(ctx: &mut Ctx<'_>, id: &str, token: Option<&str>) -> Result<Value, Response> {
    let found = ctx.find(id).await.map_err(|e| error_response(&e))?;
    let Some(v) =
        found.filter(|v| matches!(s(v, "object").as_str(), "payment_intent" | "setup_intent"))
    else {
        return Err(page(
            StatusCode::NOT_FOUND,
            "Unknown authentication",
            "<p>No such payment or setup intent.</p>",
        ));
    };
    if s(&v, "status") != "requires_action"
        || token.is_none()
        || v.get("_3ds_token").and_then(Value::as_str) != token
    {
        return Err(page(
            StatusCode::BAD_REQUEST,
            "Authentication not pending",
            "<p>This authentication is no longer pending.</p>",
        ));
    }
    Ok(v)
}

pub async fn three_ds_page(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let mut ctx = match Ctx::begin(&app, None, None, DEFAULT_API_VERSION.into()).await {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let v = match pending(&mut ctx, &id, q.token.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let what = if s(&v, "object") == "payment_intent" {
        format!(
            "<p>Payment of <strong>{}</strong>.</p>",
            escape(&payment_intents::format_amount(
                v["amount"].as_i64().unwrap_or_default(),
                &s(&v, "currency")
            ))
        )
    } else {
        "<p>Saving a card for later payments.</p>".to_string()
    };
    let token = escape(q.token.as_deref().unwrap_or_default());
    let id = escape(&id);
    let body = format!(
        "<p>obol sandbox: 3-D Secure test challenge for <code>{id}</code>.</p>{what}\
         <form method=\"post\" action=\"/_sandbox/3ds/{id}\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <input type=\"hidden\" name=\"action\" value=\"complete\"><button id=\"complete\" type=\"submit\">Complete authentication</button></form>\
         <form method=\"post\" action=\"/_sandbox/3ds/{id}\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <input type=\"hidden\" name=\"action\" value=\"fail\"><button id=\"fail\" type=\"submit\">Fail authentication</button></form>"
    );
    page(StatusCode::OK, "3D Secure authentication", &body)
}

pub async fn three_ds_submit(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = match form::parse(&body) {
        Ok(f) => f,
        Err(e) => return page(StatusCode::BAD_REQUEST, "Bad request", &escape(&e)),
    };
    let field = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_string);
    let success = match field("action").as_deref() {
        Some("complete") => true,
        Some("fail") => false,
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "<p>action must be complete or fail.</p>",
            )
        }
    };
    let _guard = app.write_lock.lock().await;
    let mut ctx = match Ctx::begin_write(&app, None, None, DEFAULT_API_VERSION.into()).await {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let v = match pending(&mut ctx, &id, field("token").as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let return_url = v
        .get("_return_url")
        .and_then(Value::as_str)
        .map(str::to_string);
    let result = if s(&v, "object") == "payment_intent" {
        payment_intents::authenticate(&mut ctx, v, success).await
    } else {
        setup_intents::authenticate(&mut ctx, v, success).await
    };
    let v = match result {
        Ok(v) => v,
        Err(e) => return error_response(&e),
    };
    match ctx.commit().await {
        Ok(n) if n > 0 => app.notify.notify_one(),
        Ok(_) => {}
        Err(e) => return error_response(&e),
    }
    let status = s(&v, "status");
    let ok = matches!(
        status.as_str(),
        "succeeded" | "requires_capture" | "requires_confirmation" | "processing"
    );
    match return_url {
        Some(url) => {
            let kind = s(&v, "object");
            let sep = if url.contains('?') { '&' } else { '?' };
            let location = format!(
                "{url}{sep}{kind}={}&{kind}_client_secret={}&redirect_status={}",
                s(&v, "id"),
                s(&v, "client_secret"),
                if ok { "succeeded" } else { "failed" }
            );
            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
        }
        None => page(
            StatusCode::OK,
            if ok {
                "Authentication complete"
            } else {
                "Authentication failed"
            },
            &format!(
                "<p id=\"result\" data-status=\"{}\">You may close this window.</p>",
                escape(&status)
            ),
        ),
    }
}

pub async fn get_chaos(State(app): State<Arc<App>>) -> Response {
    match app.chaos.lock() {
        Ok(c) => json_response(StatusCode::OK, json!(c.config).to_string()),
        Err(_) => error_response(&ApiError::internal("chaos lock poisoned")),
    }
}

/// Replaces the chaos settings (JSON body, missing fields = 0) and reseeds.
pub async fn set_chaos(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let config: ChaosConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error_response(&ApiError::invalid(format!("Invalid chaos settings: {e}")))
        }
    };
    if let Err(e) = config.validate() {
        return error_response(&ApiError::invalid(e));
    }
    match app.chaos.lock() {
        Ok(mut c) => {
            *c = ChaosState::new(config.clone());
            json_response(StatusCode::OK, json!(config).to_string())
        }
        Err(_) => error_response(&ApiError::internal("chaos lock poisoned")),
    }
}

pub async fn stats(State(app): State<Arc<App>>) -> Response {
    let counts = match store::counts(&app.pool).await {
        Ok(c) => c,
        Err(e) => return error_response(&ApiError::from(e)),
    };
    let requests: BTreeMap<String, u64> = match app.requests_by_status.lock() {
        Ok(m) => m.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        Err(_) => BTreeMap::new(),
    };
    let objects: BTreeMap<String, i64> = counts.objects.into_iter().collect();
    let mut deliveries = json!({"attempted": 0, "succeeded": 0, "failed": 0, "dropped": 0, "pending": 0, "canceled": 0});
    let mut attempted = 0;
    for (status, n, attempts) in counts.deliveries {
        attempted += attempts;
        deliveries[status] = json!(n);
    }
    deliveries["attempted"] = json!(attempted);
    let body = render(&json!({"requests": requests, "objects": objects, "deliveries": deliveries}));
    json_response(StatusCode::OK, body.to_string())
}

/// What `/v1/*` received since start or the last reset, against the limit.
pub async fn rate(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, app.rate.report().to_string())
}

pub async fn reset_rate(State(app): State<Arc<App>>) -> Response {
    app.rate.reset();
    json_response(StatusCode::OK, app.rate.report().to_string())
}
