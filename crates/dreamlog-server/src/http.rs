//! What every HTTP surface shares: the error answer ([`ApiError`]), who is asking
//! (a bearer token, or the web view's session cookie with its same-origin header), who a
//! request acts as, and library work run off the async threads. The surfaces (`api`,
//! `anthropic`, `ui`) build on this; `routes` puts them together.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::core::Actor;
use crate::error::{DreamError, Error, LogError};
use crate::{AppState, AuthError, Role, Tenant};

/// The session cookie's name.
pub const COOKIE: &str = "dreamlog_session";
/// The header a same-origin script sends with writes on the cookie (a cross-site form
/// cannot set it).
pub const UI_HEADER: &str = "x-dreamlog-ui";

/// An API error: status, type and message (and details).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    pub(crate) details: Value,
}

impl ApiError {
    /// Its status and message (for surfaces with their own envelope).
    pub(crate) fn parts(self) -> (StatusCode, String) {
        (self.status, self.message)
    }

    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, kind, message: message.into(), details: Value::Null }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!("{} ({}): {}", self.status.as_u16(), self.kind, self.message);
        }
        let mut err = json!({"type": self.kind, "message": self.message});
        if let Value::Object(extra) = self.details {
            for (k, v) in extra {
                err[k] = v;
            }
        }
        (self.status, Json(json!({ "error": err }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let message = e.to_string();
        let class = e.class();
        let mut a = ApiError::new(
            StatusCode::from_u16(class.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            class.name(),
            message,
        );
        // Errors whose details a client rebuilds typed.
        match &e {
            Error::Log(LogError::WrongExpectedVersion { stream, current, expected }) => {
                a.details = json!({"stream": stream, "current_version": current, "expected": expected.to_arg()});
            }
            Error::Dream(DreamError::NothingToDream { store, from }) => {
                a.details = json!({"store": store, "from": from});
            }
            Error::Dream(DreamError::SameInput { store, dream, fork }) => {
                a.details = json!({"store": store, "same_as": dream, "fork": fork});
            }
            _ => {}
        }
        a
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The caller's tenant, checked against the role an operation needs: from a bearer token
/// (`Authorization: Bearer …`, or `X-Api-Key` as Anthropic's clients send it), else from
/// the web view's session cookie. A request on a cookie that needs more than reading must
/// also carry `X-Dreamlog-UI: 1`, which only a same-origin script can set.
pub(crate) fn auth(state: &AppState, headers: &HeaderMap, need: Role) -> ApiResult<Tenant> {
    let token = bearer(headers);
    let cookie = session_cookie(headers).filter(|_| token.is_none());
    let found = match cookie.as_deref() {
        Some(c) => state.ui_session(c),
        None => state.authenticate(token),
    };
    // The role first (a cookie whose role is too low is told so), then, on a cookie,
    // the header only a same-origin script can set, for anything beyond reading.
    let on_cookie_without_header = cookie.is_some() && headers.get(UI_HEADER).is_none_or(|v| v.as_bytes() != b"1");
    match found {
        Ok((_, role)) if role >= need && need > Role::Read && on_cookie_without_header => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "a{} on the web view's session cookie needs the {} header",
                if need == Role::Admin { "n admin request" } else { " write" },
                UI_HEADER
            ),
        )),
        Ok((tenant, role)) if role >= need => Ok(tenant),
        Ok((_, role)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token's role is {role:?}; the operation needs {need:?}").to_lowercase(),
        )),
        Err(AuthError::Missing) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing bearer token (Authorization: Bearer …)",
        )),
        Err(AuthError::Unknown) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token")),
        Err(AuthError::Session) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the web view's session ended (expired, signed out, or its token was removed); sign in again",
        )),
    }
}

/// An answer's JSON through `serde_json::Value`, whose objects print their keys sorted:
/// the bytes `/v1` answers have always had, whatever order their types declare fields in
/// (an answer that cannot be serialized is a 500, not a `null`).
pub(crate) fn sorted<T: serde::Serialize>(answer: &T) -> ApiResult<Json<Value>> {
    serde_json::to_value(answer)
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// The request's token: `Authorization: Bearer …`, or `X-Api-Key`.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// The session cookie's value, when the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Runs blocking library work off the async threads, every append in it received from
/// `principal` (the authenticated caller: `Tenant::principal`).
pub(crate) async fn blocking<T: Send + 'static>(
    principal: Option<crate::core::receipt::Principal>,
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || match principal {
        Some(p) => crate::store::principal::as_principal(p, f),
        None => f(),
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(ApiError::from)
}

/// Who a request acts as: `X-Dreamlog-Actor` (ROLE:NAME), else the tenant's human.
pub(crate) fn actor_of(headers: &HeaderMap, tenant: &Tenant) -> ApiResult<Actor> {
    match header_text(headers, "x-dreamlog-actor") {
        Some(a) => a
            .parse::<Actor>()
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("X-Dreamlog-Actor: {e}"))),
        None => Ok(Actor::Human(format!("tenant:{}", tenant.name))),
    }
}

/// A header's text, when present and not empty.
pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned).filter(|s| !s.is_empty())
}
