//! The server's one router: dreamlog's API, the Managed-Agents API and the web view,
//! behind the middleware every request passes (read-your-writes across nodes, the
//! concurrency and time limits, JSON errors for what axum refuses itself, the access log).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

use crate::http::{auth, ApiError};
use crate::service::{AFTER_HEADER, POSITION_HEADER};
use crate::{AppState, Role};

/// The router: every route under `/v1`.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    let permits = Arc::new(tokio::sync::Semaphore::new(state.config.max_concurrent.max(1)));
    let timeout = Duration::from_secs(state.config.request_timeout_secs.max(1));
    crate::api::routes()
        .merge(crate::anthropic::routes())
        .merge(crate::ui::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), consistency))
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let permits = permits.clone();
            async move {
                let Ok(_permit) = permits.try_acquire_owned() else {
                    return ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "overloaded",
                        "too many concurrent requests; retry",
                    )
                    .into_response();
                };
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(r) => r,
                    Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long")
                        .into_response(),
                }
            }
        }))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn(access_log))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Read-your-writes across nodes. Every answer carries `X-Dreamlog-Position`: the
/// tenant's log length once the request was done (it includes the request's own writes).
/// A request with `X-Dreamlog-After: N` waits until this node holds N events — a cluster
/// node that has not yet applied what another node acknowledged — within the request
/// timeout (then 503, nothing done). `Remote` sends back the largest position it saw.
async fn consistency(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let tenant = auth(&state, req.headers(), Role::Read).ok();
    let after = req.headers().get(AFTER_HEADER).map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()));
    if let (Some(t), Some(after)) = (&tenant, after) {
        let Some(after) = after else {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("{AFTER_HEADER}: expected a count of events (a non-negative integer)"),
            )
            .into_response();
        };
        let mut seen = match t.svc.follow() {
            Ok(seen) => seen,
            Err(e) => return ApiError::from(e).into_response(),
        };
        // Answers at once when the log already holds `after` events.
        if seen.wait_for(|c| *c >= after).await.is_err() {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store closed").into_response();
        }
    }
    let mut resp = next.run(req).await;
    if let Some(seen) = tenant.and_then(|t| t.svc.follow().ok()) {
        resp.headers_mut().insert(POSITION_HEADER, axum::http::HeaderValue::from(*seen.borrow()));
    }
    resp
}

/// One log line per request: method, path, status and time taken. Successes at debug,
/// client errors at info, server errors at warn (the default level shows the errors).
async fn access_log(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    match status {
        500.. => tracing::warn!("{method} {path} {status} {ms:.1} ms"),
        400..=499 => tracing::info!("{method} {path} {status} {ms:.1} ms"),
        _ => tracing::debug!("{method} {path} {status} {ms:.1} ms"),
    }
    resp
}

/// Every error answer is JSON `{error: {type, message}}`, also those axum writes itself
/// (an unknown route, a wrong method, a query that does not parse, a body over the limit).
async fn json_errors(req: Request, next: Next) -> Response {
    let anthropic = req.uri().path().starts_with("/anthropic/");
    let resp = next.run(req).await;
    let status = resp.status();
    // JSON, or an OTLP answer to a protobuf request (a google.rpc.Status).
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("application/x-protobuf"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let kind = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        s if s.is_client_error() => "invalid_request",
        _ => "internal",
    };
    let text = axum::body::to_bytes(resp.into_body(), 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = match (text.is_empty(), status) {
        (false, _) => text,
        (true, StatusCode::NOT_FOUND) => "no such route".to_owned(),
        (true, StatusCode::METHOD_NOT_ALLOWED) => "the route does not take this method".to_owned(),
        (true, s) => s.canonical_reason().unwrap_or("error").to_owned(),
    };
    if anthropic {
        // The Managed-Agents API's own envelope, also for what axum refuses itself.
        let body = super::anthropic::envelope(super::anthropic::type_for_status(status), &message);
        return (status, Json(body)).into_response();
    }
    ApiError::new(status, kind, message).into_response()
}
