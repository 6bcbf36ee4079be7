//! The `/v1` routes: thin handlers over the library, JSON in and out.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::core::{Actor, EventJson, Kind};
use crate::http::{actor_of, auth, blocking, header_text, sorted, ApiError, ApiResult};
use crate::service::{
    AppendRequest, AppendedAnswer, AppendedRef, BackupRequest, BatchRequest, BlameAnswer, CheckpointCheckRequest,
    DiffQuery, DreamList, DreamRequest, DriftQuery, EventList, EventsPage, EventsQuery, ForkRequest, Head, Health,
    Info, LessonsAnswer, LookupAnswer, LookupRequest, MemoryView, PathQuery, PromoteRequest, ReplayRequest,
    RevertRequest, RulesRequest, SessionList, StoreList, StreamPage, TagRequest, Tagged, TimelineAnswer, ToolContext,
    ToolReply, VerifyQuery, ViewQuery,
};
use crate::{AppState, Role, Tenant};

/// dreamlog's own routes (`/v1`, `/metrics`).
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/mcp", post(mcp_post))
        .route("/v1/info", get(info))
        .route("/v1/events", post(append).get(read_range))
        .route("/v1/events/{id}", get(get_event))
        .route("/v1/events/{id}/cited_by", get(cited_by))
        .route("/v1/timeline", get(timeline))
        .route("/v1/lookup", post(lookup))
        .route("/v1/streams/{*name}", get(read_stream))
        .route("/v1/kinds/{kind}", get(read_kind))
        .route("/v1/tail", get(tail))
        .route("/v1/principals", get(principals))
        .route("/v1/memory", get(memory_stores))
        .route("/v1/memory/{store}/tool", post(memory_tool))
        .route("/v1/memory/{store}/view", get(memory_view))
        .route("/v1/memory/{store}/history", get(memory_history))
        .route("/v1/memory/{store}/diff", get(memory_diff))
        .route("/v1/memory/{store}/blame", get(memory_blame))
        .route("/v1/memory/{store}/lessons", get(memory_lessons))
        .route("/v1/memory/{store}/revert", post(memory_revert))
        .route("/v1/memory/{store}/push", post(memory_push))
        .route("/v1/sync/anthropic", post(sync_anthropic))
        .route("/v1/memory/{store}/fork", post(memory_fork))
        .route("/v1/memory/{store}/promote", post(memory_promote))
        .route("/v1/memory/{store}/batch", post(memory_batch))
        .route("/v1/memory/{store}/rules", post(memory_rules))
        .route("/v1/memory/{store}/files", get(memory_files))
        .route("/v1/tags", post(tag))
        .route("/v1/redact", post(redact))
        .route("/v1/sessions", get(sessions))
        .route("/v1/sessions/link", post(sessions_link))
        .route("/v1/sessions/stats", get(session_stats))
        .route("/v1/session/{*id}", get(session_events))
        .route("/v1/dreams", get(dreams).post(dream_run))
        .route("/v1/dreams/{id}", get(dream_show))
        .route("/v1/dreams/{id}/replay", post(dream_replay))
        .route("/v1/drift/{store}", get(drift))
        .route("/v1/verify", post(verify))
        .route("/v1/backup", post(backup))
        .route("/metrics", get(metrics))
        .route("/v1/checkpoints", post(checkpoint))
        .route("/v1/checkpoints/verify", post(verify_checkpoint))
        .route("/v1/export", get(export))
        .route("/v1/traces", post(otlp_traces))
        .route("/v1/logs", post(otlp_logs))
        .route("/v1/hooks/claude-code", post(claude_code_hook))
}

/// `POST /v1/hooks/claude-code` (write): what one Claude Code hook delivered
/// (`dreamlog hook`): its payload and the transcript lines since the hook before, kept
/// as a raw note; the session assembled from every delivery of it so far.
async fn claude_code_hook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let d: crate::hooks::Delivery = json_body(&body)?;
    let principal = tenant.principal.clone();
    let recorded = blocking(tenant.principal.clone(), move || {
        let svc = tenant.svc.clone();
        crate::hooks::keep_then(&*tenant.svc, &d, move |id| {
            // After the answer: the hook never waits for the assembly.
            tokio::task::spawn_blocking(move || {
                let run = || crate::hooks::assemble_coalesced(&*svc, &id);
                let done = match principal {
                    Some(p) => crate::store::principal::as_principal(p, run),
                    None => run(),
                };
                if let Some(Err(e)) = done {
                    tracing::warn!("Claude Code session {id} not assembled (its deliveries are kept): {e}");
                }
            });
        })
    })
    .await?;
    sorted(&recorded)
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

async fn info(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Json<Info>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let mut info = tenant.svc.info()?;
    if let Some(job) = state.sync.as_ref().filter(|j| j.tenant == tenant.name) {
        info.sync = serde_json::to_value(job.state()).ok();
    }
    Ok(Json(info))
}

/// `POST /v1/sync/anthropic` (admin): a run of the server's mirror now (after one under
/// way ends); its report. 404 when the config has no `sync.anthropic`, or it mirrors into
/// another tenant.
async fn sync_anthropic(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Admin)?;
    let Some(job) = state.sync.clone().filter(|j| j.tenant == tenant.name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "the server mirrors nothing into tenant {:?} (its config has no sync.anthropic for it)",
                tenant.name
            ),
        ));
    };
    let report = blocking(tenant.principal.clone(), move || {
        job.run_once(&*tenant.svc)?.ok_or_else(|| {
            crate::error::Error::Managed(crate::error::ManagedError::State(
                "another node of the cluster holds the mirror's lease: it runs the mirror".into(),
            ))
        })
    })
    .await?;
    sorted(&report)
}

/// `POST /v1/events`: an atomic batch.
async fn append(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let req: AppendRequest = json_body(&body)?;
    let appended = blocking(tenant.principal.clone(), move || tenant.svc.append(&req)).await?;
    sorted(&AppendedAnswer { appended })
}

#[derive(Deserialize)]
struct RangeQuery {
    #[serde(default)]
    from: u64,
    #[serde(default)]
    limit: Option<usize>,
}

const MAX_PAGE: usize = 10_000;

/// A page's `limit`: absent, the default; 0 asks for nothing and is refused (never
/// answered with the default page); above `max`, `max`.
fn page_limit(limit: Option<usize>, default: usize, max: usize) -> ApiResult<usize> {
    match limit {
        None => Ok(default.min(max)),
        Some(0) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("limit=0 asks for nothing: give 1 to {max} (or leave it out for {default})"),
        )),
        Some(n) => Ok(n.min(max)),
    }
}

/// One page of `GET /v1/events`, `/v1/kinds/{kind}` or `/v1/streams/{name}`.
async fn events_page(tenant: Tenant, q: EventsQuery) -> ApiResult<Response> {
    let limit = page_limit(q.limit, 1000, MAX_PAGE)?;
    let by_stream = q.stream.is_some();
    let q = EventsQuery { limit: Some(limit), ..q };
    let events = blocking(tenant.principal.clone(), move || tenant.svc.events(&q)).await?;
    let more = events.len() >= limit;
    let list: Vec<EventJson> = events.iter().map(|e| e.to_json()).collect();
    Ok(if by_stream {
        let next = events.last().map(|e| e.version + 1);
        sorted(&StreamPage { events: list, next_version: if more { next } else { None } })?.into_response()
    } else {
        let next = events.last().map(|e| e.position + 1);
        sorted(&EventsPage { events: list, next: if more { next } else { None } })?.into_response()
    })
}

async fn read_range(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    events_page(tenant, EventsQuery { from: q.from, limit: q.limit, ..EventsQuery::default() }).await
}

async fn get_event(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<EventJson>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    blocking(tenant.principal.clone(), move || Ok(Json(tenant.svc.event(&id)?.to_json()))).await
}

/// `GET /v1/events/{id}/cited_by`: the events citing one, in log order, a page at a time.
async fn cited_by(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let limit = page_limit(q.limit, 1000, MAX_PAGE)?;
    let events = blocking(tenant.principal.clone(), move || tenant.svc.cited_by(&id, q.from, limit)).await?;
    let next = (events.len() >= limit).then(|| events.last().map(|e| e.position + 1)).flatten();
    let list: Vec<EventJson> = events.iter().map(|e| e.to_json()).collect();
    sorted(&EventsPage { events: list, next })
}

/// `GET /v1/timeline`: the log newest first, filtered, a page at a time.
async fn timeline(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<crate::service::TimelineQuery>,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    page_limit(q.limit, 50, usize::MAX)?;
    let page = blocking(tenant.principal.clone(), move || tenant.svc.timeline(&q)).await?;
    let events: Vec<EventJson> = page.events.iter().map(|e| e.to_json()).collect();
    sorted(&TimelineAnswer { events, next_before: page.next_before, scanned: page.scanned })
}

/// `POST /v1/lookup`: positions of full ids and heads of streams, in bulk (what an
/// import checks before it writes anything).
async fn lookup(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<LookupAnswer>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let req: LookupRequest = json_body(&body)?;
    if req.ids.len() + req.streams.len() > MAX_PAGE {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{} ids and streams are over the limit of {MAX_PAGE}", req.ids.len() + req.streams.len()),
        ));
    }
    let (positions, heads) = blocking(tenant.principal.clone(), move || tenant.svc.lookup(&req)).await?;
    let heads = heads.into_iter().map(|h| h.map(|(version, id)| Head { id, version })).collect();
    Ok(Json(LookupAnswer { heads, positions }))
}

async fn read_stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    events_page(tenant, EventsQuery { from: q.from, limit: q.limit, stream: Some(name), kind: None }).await
}

async fn read_kind(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let kind: Kind = kind.parse().map_err(|e: crate::core::FormatError| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
    })?;
    events_page(tenant, EventsQuery { from: q.from, limit: q.limit, stream: None, kind: Some(kind) }).await
}

#[derive(Deserialize)]
struct TailQuery {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    stream: Option<String>,
}

/// `GET /v1/tail`: Server-Sent Events from a global position (or after `Last-Event-ID`),
/// catch-up then live; each event's SSE id is its global position.
async fn tail(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<TailQuery>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            // The next position after the last one seen; the largest u64 has none.
            v.trim().parse::<u64>().ok().and_then(|p| p.checked_add(1)).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("Last-Event-ID {v:?} is not a position this log can have"),
                )
            })
        })
        .transpose()?;
    let from = resume.or(q.from).unwrap_or(0);
    // A tail starts at most at the end (it then waits for the next event); past it there
    // is nothing it could ever be sent in order.
    let len = *tenant.svc.follow()?.borrow();
    if from > len {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "a tail from position {from} starts past the end of the log (it holds {len} events): start at {len} or before"
            ),
        ));
    }
    let slot = state.tail_slot().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!(
                "{} live tails are open, the most this server allows (max_subscribers)",
                state.config.max_subscribers
            ),
        )
    })?;
    let sub = tenant.svc.tail(from, state.tail_budget.clone())?;
    let stop = state.stopping();
    let filter = q.stream;
    let stream = futures_util::stream::unfold(
        (sub, stop, filter, slot, false),
        |(mut sub, mut stop, filter, slot, done)| async move {
            loop {
                if done || *stop.borrow() {
                    return None;
                }
                let e = tokio::select! {
                    e = sub.next() => e,
                    _ = stop.changed() => return None,
                };
                let e = match e {
                    Ok(e) => e,
                    // Dropped by the shared byte budget: say where to resume, then end.
                    Err(err @ crate::error::Error::TailDropped { position, .. }) => {
                        let data = json!({"type": "error", "error": {
                            "type": "slow_subscriber", "message": err.to_string(), "position": position}});
                        let ev = SseEvent::default().event("error").data(data.to_string());
                        return Some((Ok::<_, Infallible>(ev), (sub, stop, filter, slot, true)));
                    }
                    Err(_) => return None,
                };
                if filter.as_deref().is_some_and(|s| s != e.event.header.stream) {
                    continue;
                }
                let ev = SseEvent::default()
                    .id(e.position.to_string())
                    .event(e.event.header.kind.name())
                    .data(e.to_json().to_line());
                return Some((Ok::<_, Infallible>(ev), (sub, stop, filter, slot, false)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

/// `POST /v1/memory/{store}/tool`: a memory tool call's `input`, verbatim; the answer is
/// the tool's text as a `tool_result` would carry it. Headers `X-Dreamlog-Actor` (ROLE:NAME)
/// and `X-Dreamlog-Session` record who issued it; `X-Dreamlog-Causes` (ids or prefixes,
/// comma-separated) its evidence; `X-Dreamlog-Precondition` the file's expected BLAKE3.
async fn memory_tool(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<ToolReply>> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let input: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("tool input: {e}")))?;
    let actor = match header_text(&headers, "x-dreamlog-actor") {
        Some(a) => Some(a.parse::<Actor>().map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("X-Dreamlog-Actor: {e}"))
        })?),
        None => None,
    };
    let precondition = match header_text(&headers, "x-dreamlog-precondition") {
        Some(h) => Some(h.parse::<crate::core::Digest>().map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("X-Dreamlog-Precondition: {e}"))
        })?),
        None => None,
    };
    let causes = header_text(&headers, "x-dreamlog-causes").unwrap_or_default();
    let context = ToolContext {
        actor,
        session: header_text(&headers, "x-dreamlog-session"),
        precondition,
        causes: causes.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect(),
    };
    let a = blocking(tenant.principal.clone(), move || tenant.svc.memory_tool(&store, &input, &context)).await?;
    Ok(Json(ToolReply {
        content: a.text,
        is_error: a.error.is_some(),
        error_type: a.error,
        position: a.recorded.map(|(p, _)| p),
        id: a.recorded.map(|(_, id)| id),
    }))
}

async fn memory_view(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<ViewQuery>,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    match blocking(tenant.principal.clone(), move || tenant.svc.memory_view(&store, &q)).await? {
        // The tool refused (a bad path, a missing file): an error status, with the tool's
        // class and text.
        MemoryView::Refused { kind, message } => {
            let (status, api_kind) = if kind == "not_found" {
                (StatusCode::NOT_FOUND, "not_found")
            } else {
                (StatusCode::BAD_REQUEST, "invalid_request")
            };
            let mut e = ApiError::new(status, api_kind, message);
            e.details = json!({"tool_error": kind});
            Err(e)
        }
        shown => sorted(&shown),
    }
}

/// `GET /v1/sessions`: every session's summary; with `limit`, `offset` or `q`, one page
/// newest first (only its sessions read) and the total.
async fn sessions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<crate::service::SessionsQuery>,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    page_limit(q.limit, 50, usize::MAX)?;
    if q == crate::service::SessionsQuery::default() {
        let sessions = blocking(tenant.principal.clone(), move || tenant.svc.sessions()).await?;
        return sorted(&SessionList { sessions, total: None });
    }
    let page = blocking(tenant.principal.clone(), move || tenant.svc.sessions_page(&q)).await?;
    sorted(&SessionList { sessions: page.sessions, total: Some(page.total as u64) })
}

async fn dreams(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let dreams = blocking(tenant.principal.clone(), move || tenant.svc.dreams()).await?;
    sorted(&DreamList { dreams })
}

async fn drift(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<DriftQuery>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let report = blocking(tenant.principal.clone(), move || tenant.svc.drift(&store, &q)).await?;
    Ok(sorted(&report)?.into_response())
}

async fn verify(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<VerifyQuery>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Admin)?;
    let report = blocking(tenant.principal.clone(), move || tenant.svc.verify(&q, &mut |_| ())).await?;
    Ok(sorted(&report)?.into_response())
}

/// `GET /metrics`: the caller's tenant in the Prometheus text format (read role).
async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<axum::response::Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let server = crate::metrics::ServerGauges {
        subscribers: state.subscriber_count(),
        dream_jobs: state.dream_jobs_running(&tenant.name),
        reloads: state.reload_counts(),
        sync: state.sync.as_ref().filter(|j| j.tenant == tenant.name).map(|j| j.state()),
    };
    let tails = state.tail_budget.clone();
    let text = blocking(tenant.principal.clone(), move || {
        Ok(crate::metrics::render(&tenant.name, &tenant.svc.gauges()?, &server, &tails))
    })
    .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

/// `POST /v1/backup {dir, deep?}`: a consistent copy on the server's machine (admin).
async fn backup(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Admin)?;
    let mut req: BackupRequest = json_body(&body)?;
    // Only below the configured backup root, never in a database folder.
    req.dir = state.backup_dir(&req.dir).map_err(ApiError::from)?.display().to_string();
    let report = blocking(tenant.principal.clone(), move || tenant.svc.backup(&req)).await?;
    Ok(sorted(&report)?.into_response())
}

/// `POST /v1/checkpoints`: sign the log's head with the server's key and record it (admin).
async fn checkpoint(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Admin)?;
    let actor = actor_of(&headers, &tenant)?;
    let cp = blocking(tenant.principal.clone(), move || tenant.svc.checkpoint(&actor)).await?;
    Ok(sorted(&cp)?.into_response())
}

/// `POST /v1/checkpoints/verify {checkpoint, key?}`: does the log extend it (read)?
async fn verify_checkpoint(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let req: CheckpointCheckRequest = json_body(&body)?;
    let verdict = blocking(tenant.principal.clone(), move || tenant.svc.verify_checkpoint(&req)).await?;
    Ok(sorted(&verdict)?.into_response())
}

fn appended_json(a: &[crate::store::Appended]) -> AppendedAnswer<AppendedRef> {
    AppendedAnswer {
        appended: a.iter().map(|a| AppendedRef { id: a.id, position: a.position, version: a.version }).collect(),
    }
}

/// `GET /v1/memory`: every memory store's name.
async fn memory_stores(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Json<StoreList>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let stores = blocking(tenant.principal.clone(), move || tenant.svc.memory_stores()).await?;
    Ok(Json(StoreList { stores }))
}

async fn memory_history(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let events = blocking(tenant.principal.clone(), move || tenant.svc.memory_history(&store, &q)).await?;
    sorted(&EventList { events: events.iter().map(|e| e.to_json()).collect() })
}

async fn memory_files(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let f = blocking(tenant.principal.clone(), move || tenant.svc.memory_files(&store, &q)).await?;
    Ok(sorted(&f)?.into_response())
}

async fn memory_diff(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let d = blocking(tenant.principal.clone(), move || tenant.svc.memory_diff(&store, &q)).await?;
    Ok(sorted(&d)?.into_response())
}

async fn memory_blame(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    if q.path.is_none() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "path is required"));
    }
    let lines = blocking(tenant.principal.clone(), move || tenant.svc.memory_blame(&store, &q)).await?;
    sorted(&BlameAnswer { lines })
}

async fn memory_lessons(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let lessons = blocking(tenant.principal.clone(), move || tenant.svc.memory_lessons(&store, &q)).await?;
    sorted(&LessonsAnswer { lessons })
}

async fn memory_rules(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let req: RulesRequest = json_body(&body)?;
    let actor = actor_of(&headers, &tenant)?;
    let r = blocking(tenant.principal.clone(), move || tenant.svc.memory_set_rules(&store, &req, &actor)).await?;
    Ok(sorted(&r)?.into_response())
}

async fn memory_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<AppendedAnswer<AppendedRef>>> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let req: BatchRequest = json_body(&body)?;
    let actor = actor_of(&headers, &tenant)?;
    let a = blocking(tenant.principal.clone(), move || tenant.svc.memory_batch(&store, &req, &actor)).await?;
    Ok(Json(appended_json(&a)))
}

/// `?store=` and `?session=` of the MCP endpoint.
#[derive(Debug, Default, serde::Deserialize)]
struct McpQuery {
    store: Option<String>,
    session: Option<String>,
}

/// `POST /v1/mcp`: the Model Context Protocol over streamable HTTP. Each POST carries a
/// JSON-RPC message or batch; requests are answered with JSON, notifications with 202.
/// The memory tool needs a write token; the audit tools a read token. There is no
/// server-initiated stream and no session: `GET` and `DELETE` answer 405, as the
/// transport allows.
async fn mcp_post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<McpQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return Ok((StatusCode::BAD_REQUEST, Json(crate::mcp::parse_error(&e))).into_response()),
    };
    let tenant = auth(&state, &headers, if crate::mcp::writes(&msg) { Role::Write } else { Role::Read })?;
    let opts = crate::mcp::McpOptions {
        store: q.store.unwrap_or_else(|| "memories".into()),
        actor: actor_of(&headers, &tenant)?,
        session: q.session,
    };
    let answer =
        blocking(tenant.principal.clone(), move || Ok(crate::mcp::answer(tenant.svc.as_ref(), &opts, &msg))).await?;
    Ok(match answer {
        Some(a) => Json(a).into_response(),
        None => StatusCode::ACCEPTED.into_response(),
    })
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("request body: {e}")))
}

/// `?dry_run=true` on revert and promote: the events and diff the write would make.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRunQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn memory_revert(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<DryRunQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let req: RevertRequest = json_body(&body)?;
    let actor = actor_of(&headers, &tenant)?;
    if q.dry_run {
        let p =
            blocking(tenant.principal.clone(), move || tenant.svc.memory_revert_dry_run(&store, &req, &actor)).await?;
        return Ok(sorted(&p)?.into_response());
    }
    let out = blocking(tenant.principal.clone(), move || tenant.svc.memory_revert(&store, &req, &actor)).await?;
    Ok(Json(appended_json(&out)).into_response())
}

/// A revert or a promote of a store `sync anthropic` mirrors, pushed to the hosted store
/// with the server's `ANTHROPIC_API_KEY` (`managed::push`); the report answers, the
/// calls' outcomes in it (200 also when a precondition stopped the rest).
async fn memory_push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let req: crate::managed::push::PushRequest = json_body(&body)?;
    let actor = actor_of(&headers, &tenant)?;
    let report = blocking(tenant.principal.clone(), move || {
        let hosted = crate::managed::hosted::Hosted::from_env(None)?;
        crate::managed::push::push(&*tenant.svc, &hosted, &store, &req, &actor)
    })
    .await?;
    sorted(&report)
}

async fn memory_fork(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<AppendedAnswer<AppendedRef>>> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let req: ForkRequest = json_body(&body)?;
    let actor = actor_of(&headers, &tenant)?;
    let f = blocking(tenant.principal.clone(), move || tenant.svc.memory_fork(&store, &req, &actor)).await?;
    Ok(Json(appended_json(&[f.appended])))
}

async fn memory_promote(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<DryRunQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let req: PromoteRequest = json_body(&body)?;
    let actor = actor_of(&headers, &tenant)?;
    if q.dry_run {
        let p =
            blocking(tenant.principal.clone(), move || tenant.svc.memory_promote_dry_run(&store, &req, &actor)).await?;
        return Ok(sorted(&p)?.into_response());
    }
    let a = blocking(tenant.principal.clone(), move || tenant.svc.memory_promote(&store, &req, &actor)).await?;
    Ok(Json(appended_json(&a)).into_response())
}

async fn tag(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Tagged>> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let req: TagRequest = json_body(&body)?;
    let actor = actor_of(&headers, &tenant)?;
    Ok(Json(blocking(tenant.principal.clone(), move || tenant.svc.tag(&req, &actor)).await?))
}

/// `POST /v1/sessions/link` (write): sessions tied to the memory state they ran with.
async fn sessions_link(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<crate::service::SessionsLinked>> {
    let tenant = auth(&state, &headers, Role::Write)?;
    let req: crate::service::SessionsLinkRequest = json_body(&body)?;
    let actor = actor_of(&headers, &tenant)?;
    Ok(Json(blocking(tenant.principal.clone(), move || tenant.svc.sessions_link(&req, &actor)).await?))
}

/// `POST /v1/redact` (admin): an event's body removed, its header kept.
async fn redact(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<crate::service::Redacted>> {
    let tenant = auth(&state, &headers, Role::Admin)?;
    let req: crate::service::RedactRequest = json_body(&body)?;
    let actor = actor_of(&headers, &tenant)?;
    Ok(Json(blocking(tenant.principal.clone(), move || tenant.svc.redact(&req, &actor)).await?))
}

/// `GET /v1/principals` (admin): who wrote to the log, from the batches' receipts.
async fn principals(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<crate::service::PrincipalsQuery>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Admin)?;
    page_limit(q.limit, 100, usize::MAX)?;
    let p = blocking(tenant.principal.clone(), move || tenant.svc.principals(&q)).await?;
    Ok(sorted(&p)?.into_response())
}

async fn session_stats(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let stats = blocking(tenant.principal.clone(), move || tenant.svc.session_stats()).await?;
    Ok(sorted(&stats)?.into_response())
}

async fn session_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let detail = blocking(tenant.principal.clone(), move || tenant.svc.session(&id)).await?;
    sorted(&detail)
}

/// `POST /v1/dreams`: the dreamer runs as the server's config allows (the tenant's
/// service holds the policy: endpoints, key variables and programs come only from it).
async fn dream_run(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let req: DreamRequest = json_body(&body)?;
    let tenant = auth(&state, &headers, Role::Write)?;
    let r = blocking(tenant.principal.clone(), move || tenant.svc.dream_run(&req)).await?;
    sorted(&r)
}

async fn dream_show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Read)?;
    let d = blocking(tenant.principal.clone(), move || tenant.svc.dream(&id)).await?;
    Ok(sorted(&d)?.into_response())
}

/// `POST /v1/dreams/{id}/replay`: as recorded (a model's answers from the recorded
/// exchanges, offline), or another dreamer or config through the server's config.
async fn dream_replay(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let req: ReplayRequest = if body.is_empty() { ReplayRequest::default() } else { json_body(&body)? };
    let tenant = auth(&state, &headers, Role::Write)?;
    let r = blocking(tenant.principal.clone(), move || tenant.svc.dream_replay(&id, &req)).await?;
    Ok(sorted(&r)?.into_response())
}

async fn export(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Response> {
    let tenant = auth(&state, &headers, Role::Admin)?;
    let bytes = blocking(tenant.principal.clone(), move || {
        let mut out = Vec::new();
        tenant.svc.export(q.from, &mut out, &mut |_| ())?;
        Ok(out)
    })
    .await?;
    Ok(([("content-type", "application/x-ndjson")], bytes).into_response())
}

/// `POST /v1/traces`: OTLP/HTTP spans.
async fn otlp_traces(State(state): State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    otlp(state, headers, body, crate::otlp::Signal::Traces).await
}

/// `POST /v1/logs`: OTLP/HTTP log records (evaluation results).
async fn otlp_logs(State(state): State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    otlp(state, headers, body, crate::otlp::Signal::Logs).await
}

/// An OTLP/HTTP export: checked, recorded whole as a raw note (durable before the
/// answer), answered in the request's encoding. Sessions are assembled from the raw
/// notes in the background. Errors are a `google.rpc.Status` (protobuf or JSON): 400 for
/// a request that does not read (nothing written; exporters do not retry it), 401/403,
/// 415 for an encoding other than gzip, 503 when the store cannot take it (retried).
async fn otlp(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
    signal: crate::otlp::Signal,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let content_type = header("content-type");
    let proto = content_type.starts_with("application/x-protobuf") || content_type.starts_with("application/protobuf");
    let answer = |status: StatusCode, message: String| otlp_status(proto, status, message);
    let tenant = match auth(&state, &headers, Role::Write) {
        Ok(t) => t,
        Err(e) => {
            let (status, message) = e.parts();
            return answer(status, message);
        }
    };
    let gzip = match header("content-encoding").trim().to_ascii_lowercase().as_str() {
        "" | "identity" => false,
        "gzip" => true,
        other => {
            return answer(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {other} is not taken: send gzip or nothing"),
            )
        }
    };
    let done = blocking(tenant.principal.clone(), move || {
        let note = crate::otlp::decode_request(signal, &content_type, gzip, &body)?;
        crate::otlp::record(tenant.svc.as_ref(), &note)
    })
    .await;
    match done {
        Ok(_) if proto => {
            // An ExportTraceServiceResponse / ExportLogsServiceResponse with nothing
            // rejected: the empty message.
            (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")], Vec::<u8>::new())
                .into_response()
        }
        Ok(_) => (StatusCode::OK, Json(json!({}))).into_response(),
        Err(e) => {
            let (status, message) = e.parts();
            answer(status, message)
        }
    }
}

/// An OTLP error answer: `google.rpc.Status` {code, message}, protobuf or JSON.
fn otlp_status(proto: bool, status: StatusCode, message: String) -> Response {
    // gRPC codes: INVALID_ARGUMENT 3, PERMISSION_DENIED 7, RESOURCE_EXHAUSTED 8,
    // INTERNAL 13, UNAVAILABLE 14, UNAUTHENTICATED 16.
    let code = match status.as_u16() {
        401 => 16,
        403 => 7,
        413 => 8,
        429 | 503 => 14,
        400..=499 => 3,
        _ => 13,
    };
    if status.is_server_error() {
        tracing::error!("OTLP export: {} {message}", status.as_u16());
    }
    if proto {
        let body = prost::Message::encode_to_vec(&crate::otlp::RpcStatus { code, message });
        return (status, [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")], body).into_response();
    }
    (status, Json(json!({"code": code, "message": message}))).into_response()
}
