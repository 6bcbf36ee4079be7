//! The Managed-Agents memory API under `/anthropic/v1/…`: memory stores, memories and
//! memory versions in the shapes the official `anthropic` SDK sends and expects (its
//! `client.beta.memory_stores`, `.memories`, `.memory_versions`), with its error envelope
//! `{type: "error", error: {type, message}}`. A surface over the service crate's
//! `managed/`: every call is dreamlog events underneath (docs/guide/claude.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AppState, Role};
use crate::core::managed::{list_memories, sha256_hex, ListItem, Live, StoreRecord, Version};
use crate::core::Actor;
use crate::error::{Error, ManagedError};
use crate::http::{actor_of, auth, ApiError};
use crate::managed::{DreamPlan, DreamRecord, DreamSpec, DreamStep, Managed, StoreView};

/// An error in the API's envelope.
pub struct AnthropicError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl AnthropicError {
    fn invalid(message: impl Into<String>) -> AnthropicError {
        AnthropicError { status: StatusCode::BAD_REQUEST, kind: "invalid_request_error", message: message.into() }
    }
}

/// The API's error type for an HTTP status.
pub fn type_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// The API's error body.
pub fn envelope(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!("{} ({}): {}", self.status.as_u16(), self.kind, self.message);
        }
        (self.status, Json(envelope(self.kind, &self.message))).into_response()
    }
}

impl From<Error> for AnthropicError {
    fn from(e: Error) -> AnthropicError {
        let status = StatusCode::from_u16(e.class().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = match &e {
            Error::Managed(m) => m.api_type(),
            _ => type_for_status(status),
        };
        AnthropicError { status, kind, message: e.to_string() }
    }
}

impl From<ApiError> for AnthropicError {
    fn from(e: ApiError) -> AnthropicError {
        let (status, message) = e.parts();
        AnthropicError { status, kind: type_for_status(status), message }
    }
}

type Answer<T> = Result<T, AnthropicError>;

/// Runs `f` over the caller's tenant off the async threads, as `actor`.
async fn run<T: Send + 'static>(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    need: Role,
    f: impl FnOnce(&Managed) -> crate::error::Result<T> + Send + 'static,
) -> Answer<T> {
    let tenant = auth(state, headers, need)?;
    let actor: Actor = actor_of(headers, &tenant)?;
    let principal = tenant.principal.clone().unwrap_or_else(|| super::server_principal("anthropic"));
    tokio::task::spawn_blocking(move || {
        crate::store::principal::as_principal(principal, || f(&Managed::new(tenant.svc.as_ref(), actor)))
    })
    .await
    .map_err(|e| AnthropicError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        kind: "api_error",
        message: e.to_string(),
    })?
    .map_err(AnthropicError::from)
}

/// The routes, to be merged into the server's router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/anthropic/v1/memory_stores", post(create_store).get(list_stores))
        .route("/anthropic/v1/memory_stores/{memory_store_id}", get(get_store).post(update_store).delete(delete_store))
        .route("/anthropic/v1/memory_stores/{memory_store_id}/archive", post(archive_store))
        .route("/anthropic/v1/memory_stores/{memory_store_id}/memories", post(create_memory).get(list_memories_route))
        .route(
            "/anthropic/v1/memory_stores/{memory_store_id}/memories/{memory_id}",
            get(get_memory).post(update_memory).delete(delete_memory),
        )
        .route("/anthropic/v1/memory_stores/{memory_store_id}/memory_versions", get(list_versions))
        .route("/anthropic/v1/memory_stores/{memory_store_id}/memory_versions/{memory_version_id}", get(get_version))
        .route(
            "/anthropic/v1/memory_stores/{memory_store_id}/memory_versions/{memory_version_id}/redact",
            post(redact_version),
        )
        .route("/anthropic/v1/dreams", post(create_dream).get(list_dreams))
        .route("/anthropic/v1/dreams/{dream_id}", get(get_dream))
        .route("/anthropic/v1/dreams/{dream_id}/cancel", post(cancel_dream))
        .route("/anthropic/v1/dreams/{dream_id}/archive", post(archive_dream))
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_time(field: &str, s: &str) -> Answer<u64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis().max(0) as u64)
        .map_err(|e| AnthropicError::invalid(format!("{field}: {s:?} is not an RFC 3339 time ({e})")))
}

fn store_json(r: &StoreRecord) -> Value {
    json!({
        "type": "memory_store",
        "id": r.id,
        "name": r.fields.name,
        "description": r.fields.description,
        "metadata": r.fields.metadata,
        "created_at": rfc3339(r.created_at),
        "updated_at": rfc3339(r.updated_at),
        "archived_at": r.archived_at.map(rfc3339),
    })
}

fn memory_json(store: &str, m: &Live, full: bool) -> Value {
    json!({
        "type": "memory",
        "id": m.id,
        "memory_store_id": store,
        "path": m.path,
        "content": if full { Some(&*m.content) } else { None },
        "content_sha256": sha256_hex(&m.content),
        "content_size_bytes": m.content.len(),
        "memory_version_id": m.version_id,
        "created_at": rfc3339(m.created_at),
        "updated_at": rfc3339(m.updated_at),
    })
}

/// Who made a change, in the API's actor forms: a session's agent, a person, or the
/// token's tenant (an API key).
fn actor_json(actor: &Actor, session: Option<&str>) -> Value {
    match (actor, session) {
        (_, Some(s)) => json!({"type": "session_actor", "session_id": s}),
        (Actor::Human(n), None) if !n.starts_with("tenant:") => json!({"type": "user_actor", "user_id": n}),
        (a, None) => json!({"type": "api_actor", "api_key_id": a.to_string()}),
    }
}

fn version_json(store: &str, v: &Version, full: bool) -> Value {
    let hidden = v.redacted;
    let content = v.content.as_deref().filter(|_| !hidden);
    json!({
        "type": "memory_version",
        "id": v.id,
        "memory_id": v.memory_id,
        "memory_store_id": store,
        "operation": v.operation.name(),
        "path": if hidden { None } else { Some(&v.path) },
        "content": if full { content } else { None },
        "content_sha256": content.map(sha256_hex),
        "content_size_bytes": content.map(str::len),
        "created_at": rfc3339(v.time),
        "created_by": actor_json(&v.actor, v.session.as_deref()),
        "redacted_at": v.redaction.as_ref().map(|(t, _)| rfc3339(*t)),
        "redacted_by": v.redaction.as_ref().map(|(_, a)| actor_json(a, None)),
        // dreamlog's own: the event behind the version (`dreamlog show ID`, `memory blame`).
        "dreamlog_event_id": v.event.to_hex(),
        "dreamlog_position": v.position,
    })
}

fn page(data: Vec<Value>, next: Option<String>) -> Json<Value> {
    Json(json!({"data": data, "next_page": next}))
}

/// A page's size: 1 to 100 (20 by default), at most 20 with `view=full`.
fn page_limit(limit: Option<i64>, full: bool) -> Answer<usize> {
    let n = limit.unwrap_or(20);
    if !(1..=100).contains(&n) {
        return Err(AnthropicError::invalid(format!("limit: {n} is not between 1 and 100")));
    }
    Ok(if full { (n as usize).min(20) } else { n as usize })
}

/// Page tokens are opaque to clients: the hex of the last item's sort key.
fn token(key: &str) -> String {
    hex::encode(key.as_bytes())
}

fn untoken(page: Option<&str>) -> Answer<Option<String>> {
    page.map(|p| {
        hex::decode(p)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| AnthropicError::invalid(format!("page: {p:?} is not a page token this server gave")))
    })
    .transpose()
}

/// Takes up to `limit` items after the token from items in order, with the next token.
fn paged<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    after: Option<String>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    let start = match after {
        Some(a) => items.iter().position(|i| key(i) == a).map(|i| i + 1).unwrap_or(items.len()),
        None => 0,
    };
    let total = items.len();
    let taken: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next = (start + taken.len() < total).then(|| taken.last().map(|t| token(&key(t)))).flatten();
    (taken, next)
}

fn view_full(view: Option<&str>, default_full: bool) -> Answer<bool> {
    match view {
        None => Ok(default_full),
        Some("full") => Ok(true),
        Some("basic") => Ok(false),
        Some(v) => Err(AnthropicError::invalid(format!("view: {v:?} is neither basic nor full"))),
    }
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Answer<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        AnthropicError::invalid(if at == "." { e.inner().to_string() } else { format!("{at}: {}", e.inner()) })
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateStore {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

async fn create_store(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Answer<Json<Value>> {
    let req: CreateStore = body(&bytes)?;
    let r = run(&state, &headers, Role::Write, move |m| {
        m.create_store(&req.name, req.description.as_deref().unwrap_or(""), req.metadata.unwrap_or_default())
    })
    .await?;
    Ok(Json(store_json(&r)))
}

#[derive(Deserialize)]
struct ListStores {
    #[serde(rename = "created_at[gte]")]
    gte: Option<String>,
    #[serde(rename = "created_at[lte]")]
    lte: Option<String>,
    include_archived: Option<bool>,
    limit: Option<i64>,
    page: Option<String>,
}

async fn list_stores(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ListStores>,
) -> Answer<Json<Value>> {
    let limit = page_limit(q.limit, false)?;
    let gte = q.gte.as_deref().map(|s| parse_time("created_at[gte]", s)).transpose()?;
    let lte = q.lte.as_deref().map(|s| parse_time("created_at[lte]", s)).transpose()?;
    let after = untoken(q.page.as_deref())?;
    let mut stores = run(&state, &headers, Role::Read, |m| m.stores()).await?;
    stores.retain(|s| {
        (q.include_archived == Some(true) || s.archived_at.is_none())
            && gte.is_none_or(|t| s.created_at >= t)
            && lte.is_none_or(|t| s.created_at <= t)
    });
    // Newest first.
    stores.reverse();
    let (taken, next) = paged(stores, |s| s.id.clone(), after, limit);
    Ok(page(taken.iter().map(store_json).collect(), next))
}

async fn get_store(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
) -> Answer<Json<Value>> {
    let r = run(&state, &headers, Role::Read, move |m| m.store(&store)).await?;
    Ok(Json(store_json(&r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateStore {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, Option<String>>>,
}

async fn update_store(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    bytes: axum::body::Bytes,
) -> Answer<Json<Value>> {
    let req: UpdateStore = body(&bytes)?;
    let r = run(&state, &headers, Role::Write, move |m| {
        m.update_store(&store, req.name.as_deref(), req.description.as_deref(), req.metadata)
    })
    .await?;
    Ok(Json(store_json(&r)))
}

async fn archive_store(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
) -> Answer<Json<Value>> {
    let r = run(&state, &headers, Role::Write, move |m| m.archive_store(&store)).await?;
    Ok(Json(store_json(&r)))
}

async fn delete_store(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
) -> Answer<Json<Value>> {
    let id = store.clone();
    run(&state, &headers, Role::Write, move |m| m.delete_store(&store)).await?;
    Ok(Json(json!({"type": "memory_store_deleted", "id": id})))
}

#[derive(Deserialize)]
struct ViewQuery {
    view: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMemory {
    content: Option<String>,
    path: String,
}

async fn create_memory(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<ViewQuery>,
    bytes: axum::body::Bytes,
) -> Answer<Json<Value>> {
    let full = view_full(q.view.as_deref(), false)?;
    let req: CreateMemory = body(&bytes)?;
    let id = store.clone();
    let live = run(&state, &headers, Role::Write, move |m| {
        m.create_memory(&store, &req.path, req.content.as_deref().unwrap_or(""))
    })
    .await?;
    Ok(Json(memory_json(&id, &live, full)))
}

async fn get_memory(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((store, memory)): Path<(String, String)>,
    Query(q): Query<ViewQuery>,
) -> Answer<Json<Value>> {
    let full = view_full(q.view.as_deref(), true)?;
    let id = store.clone();
    let live = run(&state, &headers, Role::Read, move |m| m.memory(&store, &memory)).await?;
    Ok(Json(memory_json(&id, &live, full)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Precondition {
    #[serde(rename = "type")]
    kind: String,
    content_sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMemory {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    precondition: Option<Precondition>,
}

async fn update_memory(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((store, memory)): Path<(String, String)>,
    Query(q): Query<ViewQuery>,
    bytes: axum::body::Bytes,
) -> Answer<Json<Value>> {
    let full = view_full(q.view.as_deref(), false)?;
    let req: UpdateMemory = body(&bytes)?;
    let expected = match &req.precondition {
        None => None,
        Some(p) if p.kind == "content_sha256" => Some(p.content_sha256.clone().ok_or_else(|| {
            AnthropicError::invalid("precondition.content_sha256: required with type content_sha256")
        })?),
        Some(p) => {
            return Err(AnthropicError::invalid(format!(
                "precondition.type: {:?} is not supported (only content_sha256)",
                p.kind
            )))
        }
    };
    let id = store.clone();
    let live = run(&state, &headers, Role::Write, move |m| {
        m.update_memory(&store, &memory, req.content.as_deref(), req.path.as_deref(), expected.as_deref())
    })
    .await?;
    Ok(Json(memory_json(&id, &live, full)))
}

#[derive(Deserialize)]
struct DeleteQuery {
    expected_content_sha256: Option<String>,
}

async fn delete_memory(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((store, memory)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Answer<Json<Value>> {
    let id = memory.clone();
    run(&state, &headers, Role::Write, move |m| m.delete_memory(&store, &memory, q.expected_content_sha256.as_deref()))
        .await?;
    Ok(Json(json!({"type": "memory_deleted", "id": id})))
}

#[derive(Deserialize)]
struct ListMemories {
    depth: Option<i64>,
    limit: Option<i64>,
    page: Option<String>,
    path_prefix: Option<String>,
    view: Option<String>,
}

async fn list_memories_route(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<ListMemories>,
) -> Answer<Json<Value>> {
    let full = view_full(q.view.as_deref(), false)?;
    let limit = page_limit(q.limit, full)?;
    let depth = match q.depth.unwrap_or(0) {
        d @ 0..=20 => d as usize,
        d => return Err(AnthropicError::invalid(format!("depth: {d} is not between 0 and 20"))),
    };
    let prefix = q.path_prefix.unwrap_or_else(|| "/".to_owned());
    if !prefix.starts_with('/') || !prefix.ends_with('/') {
        return Err(AnthropicError::invalid(format!("path_prefix: {prefix:?} must start and end with '/'")));
    }
    let after = untoken(q.page.as_deref())?;
    let id = store.clone();
    let view: StoreView = run(&state, &headers, Role::Read, move |m| m.view(&store)).await?;
    let items = list_memories(&view.lineage, &prefix, depth);
    let (taken, next) = paged(items, |i| i.path().to_owned(), after, limit);
    let data = taken
        .iter()
        .map(|i| match i {
            ListItem::Memory(m) => memory_json(&id, m, full),
            ListItem::Prefix(p) => json!({"type": "memory_prefix", "path": p}),
        })
        .collect();
    Ok(page(data, next))
}

#[derive(Deserialize)]
struct ListVersions {
    api_key_id: Option<String>,
    #[serde(rename = "created_at[gte]")]
    gte: Option<String>,
    #[serde(rename = "created_at[lte]")]
    lte: Option<String>,
    limit: Option<i64>,
    memory_id: Option<String>,
    operation: Option<String>,
    page: Option<String>,
    service_account_id: Option<String>,
    session_id: Option<String>,
    view: Option<String>,
}

async fn list_versions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<ListVersions>,
) -> Answer<Json<Value>> {
    let full = view_full(q.view.as_deref(), false)?;
    let limit = page_limit(q.limit, full)?;
    let gte = q.gte.as_deref().map(|s| parse_time("created_at[gte]", s)).transpose()?;
    let lte = q.lte.as_deref().map(|s| parse_time("created_at[lte]", s)).transpose()?;
    if let Some(op) = q.operation.as_deref().filter(|o| !matches!(*o, "created" | "modified" | "deleted")) {
        return Err(AnthropicError::invalid(format!("operation: {op:?} is not created, modified or deleted")));
    }
    let after = untoken(q.page.as_deref())?;
    let id = store.clone();
    let view: StoreView = run(&state, &headers, Role::Read, move |m| m.view(&store)).await?;
    let mut versions: Vec<&Version> = view
        .lineage
        .versions
        .iter()
        .filter(|v| {
            q.memory_id.as_deref().is_none_or(|m| v.memory_id == m)
                && q.operation.as_deref().is_none_or(|o| v.operation.name() == o)
                && q.session_id.as_deref().is_none_or(|s| v.session.as_deref() == Some(s))
                && q.api_key_id.as_deref().is_none_or(|k| actor_json(&v.actor, v.session.as_deref())["api_key_id"] == k)
                // dreamlog has no service accounts: that filter matches nothing.
                && q.service_account_id.is_none()
                && gte.is_none_or(|t| v.time >= t)
                && lte.is_none_or(|t| v.time <= t)
        })
        .collect();
    // Newest first.
    versions.reverse();
    let (taken, next) = paged(versions, |v| v.id.clone(), after, limit);
    Ok(page(taken.iter().map(|v| version_json(&id, v, full)).collect(), next))
}

async fn get_version(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((store, version)): Path<(String, String)>,
    Query(q): Query<ViewQuery>,
) -> Answer<Json<Value>> {
    let full = view_full(q.view.as_deref(), true)?;
    let id = store.clone();
    let vid = version.clone();
    let view: StoreView = run(&state, &headers, Role::Read, move |m| m.view(&store)).await?;
    let v = view
        .lineage
        .version(&vid)
        .ok_or_else(|| AnthropicError::from(Error::Managed(ManagedError::NoVersion { store: id.clone(), id: vid })))?;
    Ok(Json(version_json(&id, v, full)))
}

fn dream_json(r: &DreamRecord) -> Value {
    let output = if r.spec.update_existing {
        json!({"type": "update_existing", "memory_store_id": r.spec.store})
    } else {
        json!({"type": "create_new"})
    };
    json!({
        "type": "dream",
        "id": r.id,
        "status": r.status,
        "inputs": [
            {"type": "memory_store", "memory_store_id": r.spec.store},
            {"type": "sessions", "session_ids": r.spec.sessions},
        ],
        "model": {"id": r.spec.model, "speed": r.spec.speed},
        "instructions": r.spec.instructions,
        "output_behavior": output,
        "outputs": r.output_store.iter().map(|s| json!({"type": "memory_store", "memory_store_id": s})).collect::<Vec<_>>(),
        "created_at": rfc3339(r.created_at),
        "ended_at": r.ended_at.map(rfc3339),
        "archived_at": r.archived_at.map(rfc3339),
        "error": r.error.as_ref().map(|(code, message)| json!({"type": code, "message": message})),
        "session_id": Value::Null,
        "usage": {
            "input_tokens": r.usage.input_tokens,
            "output_tokens": r.usage.output_tokens,
            "cache_creation_input_tokens": r.usage.cache_creation_input_tokens,
            "cache_read_input_tokens": r.usage.cache_read_input_tokens,
        },
        // dreamlog's own: what ran, and the dream event (`dreamlog dream show ID`).
        "dreamlog_dreamer": r.dreamer,
        "dreamlog_dream_id": r.dream_event,
    })
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum DreamInputBody {
    MemoryStore { memory_store_id: String },
    Sessions { session_ids: Vec<String> },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ModelBody {
    Id(String),
    Config { id: String, speed: Option<String> },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum OutputBody {
    CreateNew,
    UpdateExisting { memory_store_id: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDream {
    inputs: Vec<DreamInputBody>,
    model: ModelBody,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    output_behavior: Option<OutputBody>,
}

/// Checks a create request into a dream spec.
fn dream_spec(req: CreateDream) -> Answer<DreamSpec> {
    let (mut store, mut sessions) = (None, None);
    for i in req.inputs {
        match i {
            DreamInputBody::MemoryStore { memory_store_id } if store.is_none() => store = Some(memory_store_id),
            DreamInputBody::Sessions { session_ids } if sessions.is_none() => sessions = Some(session_ids),
            _ => return Err(AnthropicError::invalid("inputs: exactly one memory_store entry and one sessions entry")),
        }
    }
    let (Some(store), Some(mut sessions)) = (store, sessions) else {
        return Err(AnthropicError::invalid("inputs: exactly one memory_store entry and one sessions entry"));
    };
    if sessions.is_empty() || sessions.len() > 100 {
        return Err(AnthropicError::invalid(format!(
            "inputs.session_ids: {} given; a dream reads 1 to 100 sessions",
            sessions.len()
        )));
    }
    sessions.sort();
    if let Some(w) = sessions.windows(2).find(|w| w[0] == w[1]) {
        return Err(AnthropicError::invalid(format!("inputs.session_ids: {:?} is listed twice", w[0])));
    }
    let (model, speed) = match req.model {
        ModelBody::Id(id) => (id, "standard".to_owned()),
        ModelBody::Config { id, speed } => (id, speed.unwrap_or_else(|| "standard".into())),
    };
    if model.is_empty() {
        return Err(AnthropicError::invalid("model: empty"));
    }
    if speed != "standard" {
        return Err(AnthropicError::invalid(format!("model.speed: {speed:?}; only standard is supported")));
    }
    if let Some(i) = &req.instructions {
        let n = i.chars().count();
        if !(1..=4096).contains(&n) {
            return Err(AnthropicError::invalid(format!("instructions: {n} characters; 1 to 4,096 allowed")));
        }
    }
    let update_existing = match req.output_behavior {
        None | Some(OutputBody::CreateNew) => false,
        Some(OutputBody::UpdateExisting { memory_store_id }) if memory_store_id == store => true,
        Some(OutputBody::UpdateExisting { memory_store_id }) => {
            return Err(AnthropicError::invalid(format!(
                "output_behavior.memory_store_id: {memory_store_id:?} is not the input memory store {store:?}"
            )))
        }
    };
    Ok(DreamSpec { store, sessions, model, speed, instructions: req.instructions, update_existing })
}

/// The dreamer the server's config names for API dreams, with the request's model and
/// instructions where the profile lets a request set them (an `llm` profile listing
/// `model` and `instructions` as tunable).
fn dream_plan(state: &AppState, spec: &DreamSpec) -> DreamPlan {
    match &state.config.anthropic_dreamer {
        Some(profile) => {
            let takes =
                |key: &str| state.config.dreamers.get(profile).is_some_and(|p| p.tunable.iter().any(|t| t == key));
            let mut config = serde_json::Map::new();
            if takes("model") {
                config.insert("model".into(), json!(spec.model));
            }
            if let (true, Some(i)) = (takes("instructions"), &spec.instructions) {
                config.insert("instructions".into(), json!(i));
            }
            DreamPlan {
                dreamer: Some(profile.clone()),
                config: if config.is_empty() { Value::Null } else { Value::Object(config) },
            }
        }
        None => DreamPlan::default(),
    }
}

async fn create_dream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Answer<Json<Value>> {
    let spec = dream_spec(body(&bytes)?)?;
    let plan = dream_plan(&state, &spec);
    let label = plan.dreamer.clone().unwrap_or_else(|| crate::core::dream::evidence::NAME.to_owned());
    let tenant = auth(&state, &headers, Role::Write)?;
    let actor: Actor = actor_of(&headers, &tenant)?;
    let record = run(&state, &headers, Role::Write, move |m| m.create_dream(spec, &label)).await?;
    // The job runs on a thread of its own, registered with the tenant's jobs (its cancel
    // flag) while it runs, and writes as the caller who started it.
    let principal = tenant.principal.clone().unwrap_or_else(|| super::server_principal("anthropic"));
    tenant.jobs.start(actor, &record.id, plan, principal)?;
    Ok(Json(dream_json(&record)))
}

async fn get_dream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(dream): Path<String>,
) -> Answer<Json<Value>> {
    let r = run(&state, &headers, Role::Read, move |m| m.dream(&dream)).await?;
    Ok(Json(dream_json(&r)))
}

/// `GET /dreams`'s query (its `statuses[]` repeats).
struct ListDreams {
    gt: Option<String>,
    lt: Option<String>,
    include_archived: Option<bool>,
    limit: Option<i64>,
    page: Option<String>,
    statuses: Vec<String>,
}

async fn list_dreams(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: axum::extract::RawQuery,
) -> Answer<Json<Value>> {
    // Repeated keys (`statuses[]=a&statuses[]=b`): parsed as pairs.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.0.as_deref().unwrap_or(""))
        .map_err(|e| AnthropicError::invalid(format!("query: {e}")))?;
    let mut q =
        ListDreams { gt: None, lt: None, include_archived: None, limit: None, page: None, statuses: Vec::new() };
    for (k, v) in pairs {
        match k.as_str() {
            "created_at[gt]" => q.gt = Some(v),
            "created_at[lt]" => q.lt = Some(v),
            "include_archived" => q.include_archived = Some(v == "true"),
            "limit" => {
                q.limit = Some(v.parse().map_err(|_| AnthropicError::invalid(format!("limit: {v:?} is not a number")))?)
            }
            "page" => q.page = Some(v),
            "statuses[]" | "statuses" => q.statuses.push(v),
            _ => {}
        }
    }
    for s in &q.statuses {
        if !matches!(s.as_str(), "pending" | "running" | "completed" | "failed" | "canceled") {
            return Err(AnthropicError::invalid(format!("statuses: {s:?} is not a dream status")));
        }
    }
    let limit = page_limit(q.limit, false)?;
    let gt = q.gt.as_deref().map(|s| parse_time("created_at[gt]", s)).transpose()?;
    let lt = q.lt.as_deref().map(|s| parse_time("created_at[lt]", s)).transpose()?;
    let after = untoken(q.page.as_deref())?;
    let mut dreams = run(&state, &headers, Role::Read, |m| m.dreams()).await?;
    dreams.retain(|d| {
        (q.include_archived == Some(true) || d.archived_at.is_none())
            && (q.statuses.is_empty() || q.statuses.iter().any(|s| s == d.status))
            && gt.is_none_or(|t| d.created_at > t)
            && lt.is_none_or(|t| d.created_at < t)
    });
    // Newest first.
    dreams.reverse();
    let (taken, next) = paged(dreams, |d| d.id.clone(), after, limit);
    Ok(page(taken.iter().map(dream_json).collect(), next))
}

async fn cancel_dream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(dream): Path<String>,
) -> Answer<Json<Value>> {
    let tenant = auth(&state, &headers, Role::Write)?;
    // The job records how it ended. Give it a moment: a dream that got to its write
    // first completes (as the API says), one still dreaming is canceled.
    let (jobs, id) = (tenant.jobs.clone(), dream.clone());
    tokio::task::spawn_blocking(move || jobs.cancel(&id, std::time::Duration::from_secs(2))).await.map_err(|e| {
        Error::Log(crate::error::LogError::Storage(format!("the cancel of dream {dream} panicked: {e}")))
    })?;
    let r = run(&state, &headers, Role::Write, move |m| {
        let r = m.dream(&dream)?;
        match r.status {
            "canceled" => Ok(r),
            "completed" | "failed" => Err(Error::Managed(ManagedError::State(format!(
                "dream {} is {}: only a pending or running dream can be canceled",
                r.id, r.status
            )))),
            // Still dreaming (or never started): canceled now; the job, when its dreamer
            // returns, sees the flag and writes nothing (a final status never changes).
            _ => {
                m.record_dream(&r.id, &DreamStep::Canceled)?;
                m.dream(&r.id)
            }
        }
    })
    .await?;
    Ok(Json(dream_json(&r)))
}

async fn archive_dream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(dream): Path<String>,
) -> Answer<Json<Value>> {
    let r = run(&state, &headers, Role::Write, move |m| {
        let r = m.dream(&dream)?;
        if !r.finished() {
            return Err(Error::Managed(ManagedError::State(format!(
                "dream {} is {}: cancel it before archiving",
                r.id, r.status
            ))));
        }
        if r.archived_at.is_none() {
            m.record_dream(&r.id, &DreamStep::Archived)?;
        }
        m.dream(&r.id)
    })
    .await?;
    Ok(Json(dream_json(&r)))
}

async fn redact_version(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((store, version)): Path<(String, String)>,
) -> Answer<Json<Value>> {
    let id = store.clone();
    // Redaction destroys text: admin only, as `POST /v1/redact`.
    let v = run(&state, &headers, Role::Admin, move |m| m.redact_version(&store, &version)).await?;
    Ok(Json(version_json(&id, &v, true)))
}
