//! The web view at `/ui`: a page, a script and a style sheet embedded in the binary (no
//! build step, no CDN: it works offline), reading the same `/v1` routes every client
//! reads. A token is presented once (`POST /ui/session`) and exchanged for a same-origin
//! session cookie (HttpOnly, SameSite=Strict, short-lived; Secure under TLS), so the
//! live timeline's event stream authenticates without a token in any URL. Every answer
//! here carries a Content-Security-Policy that allows scripts only from this origin (no
//! inline script, no eval) and no framing.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::http::{session_cookie, COOKIE};
use crate::{AppState, AuthError};

/// The policy every `/ui` answer carries: scripts, styles and requests only from this
/// origin; images also as `data:` (none are inlined today); no plugins, frames or forms.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");
const ICON_SVG: &str = include_str!("ui/icon.svg");

/// The routes of the web view.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/ui/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/ui/icon.svg", get(|| async { asset("image/svg+xml", ICON_SVG) }))
        .route("/ui/session", get(whoami).post(sign_in).delete(sign_out))
}

/// The security headers of every `/ui` answer.
fn guarded(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    guarded(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn unauthorized(message: &str) -> Response {
    let body = json!({"error": {"type": "unauthorized", "message": message}});
    guarded((StatusCode::UNAUTHORIZED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    /// The bearer token (omitted on a server without tokens).
    #[serde(default)]
    token: Option<String>,
}

/// `POST /ui/session`: a token exchanged for the session cookie.
async fn sign_in(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let req: SignIn = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let body = json!({"error": {"type": "invalid_request", "message": format!("request body: {e}")}});
            return guarded((StatusCode::BAD_REQUEST, Json(body)).into_response());
        }
    };
    let token = req.token.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let (cookie, tenant, role) = match state.open_ui_session(token) {
        Ok(s) => s,
        Err(AuthError::Missing) => return unauthorized("a token is needed to sign in"),
        Err(_) => return unauthorized("unknown token"),
    };
    let secure = if state.config.tls.is_some() { "; Secure" } else { "" };
    let set = format!(
        "{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        state.config.ui_session_secs.max(1)
    );
    let mut r = Json(json!({
        "tenant": tenant,
        "role": role,
        "auth_required": state.auth_required(),
        "expires_in": state.config.ui_session_secs.max(1),
    }))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&set) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    guarded(r)
}

/// `GET /ui/session`: who the request signs in as — its bearer token, else its cookie
/// (401 without either; on a server without tokens everyone is admin).
async fn whoami(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let found = match (crate::http::bearer(&headers), session_cookie(&headers)) {
        (Some(token), _) => state.authenticate(Some(token)),
        (None, Some(c)) => state.ui_session(&c),
        (None, None) if !state.auth_required() => state.authenticate(None),
        (None, None) => Err(AuthError::Missing),
    };
    match found {
        Ok((tenant, role)) => guarded(
            Json(json!({"tenant": tenant.name, "role": role, "auth_required": state.auth_required()})).into_response(),
        ),
        Err(_) => unauthorized("not signed in"),
    }
}

/// `DELETE /ui/session`: signs out (the cookie is cleared and forgotten by the server).
async fn sign_out(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let cookie = session_cookie(&headers);
    if let Some(c) = &cookie {
        state.end_ui_session(c);
    }
    let mut r = Json(json!({ "signed_out": cookie.is_some() })).into_response();
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    guarded(r)
}
