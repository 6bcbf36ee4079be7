//! [`Remote`]: the service over HTTP, the typed client of `dreamlog serve` (reqwest,
//! blocking) that `--remote URL` uses. Events come back in their JSON form and are
//! rebuilt into [`StoredEvent`]s whose ids are recomputed here, so a client never trusts
//! an id it did not hash itself; server errors come back typed where the server sends
//! their details (expected version, nothing to dream), otherwise as `Error::Remote`.

use std::time::Duration;

use serde_json::{json, Value};

use super::{
    AppendRequest, AppendedAnswer, AppendedEvent, AppendedRef, BackupReport, BackupRequest, BatchRequest, BlameAnswer,
    CheckpointCheckRequest, CheckpointVerdict, DiffQuery, DreamList, DreamRequest, DriftQuery, EventList, EventsPage,
    EventsQuery, ForkRequest, Forked, Info, LessonsAnswer, Lookup, LookupAnswer, LookupRequest, MemoryFiles,
    MemoryView, PathQuery, Principals, PrincipalsQuery, PromoteRequest, RedactRequest, Redacted, ReplayRequest,
    RevertRequest, RulesRequest, RulesSwitch, Service, SessionList, SessionsLinkRequest, SessionsLinked, StoreList,
    StreamPage, TagRequest, Tagged, TimelineAnswer, ToolAnswer, ToolContext, ToolReply, VerifyQuery, ViewQuery,
};
use crate::core::memory::MemoryDiff;
use crate::core::{Actor, EventJson};
use crate::dream::{DreamDetail, DreamRun, DreamSummary, Replay};
use crate::error::{DreamError, LogError};
use crate::error::{Error, Result};
use crate::ledger::{DriftReport, LessonRow};
use crate::memory::{BlameLine, Preview};
use crate::sessions::{SessionDetail, SessionSummary, Stats};
use crate::store::{AppendBatch, Appended, StoredEvent, VerifyReport};
use crate::timeline::{TimelinePage, TimelineQuery};

/// A server at a base URL, with an optional bearer token.
pub struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
    /// The largest log length the server has answered with (`X-Dreamlog-Position`), sent
    /// back with every request (`X-Dreamlog-After`): a client moved to another cluster
    /// node still sees its own writes.
    seen: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A name as one URL path segment (percent-encoded).
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn remote_error(status: u16, kind: &str, message: impl Into<String>) -> Error {
    Error::Remote { status, kind: kind.to_owned(), message: message.into() }
}

/// `builder` built, trusting the PEM certificates (or bundle) at `ca` besides the public
/// roots: a server with a private or self-signed certificate.
pub fn http_client(
    mut builder: reqwest::blocking::ClientBuilder,
    ca: Option<&std::path::Path>,
) -> Result<reqwest::blocking::Client> {
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Input {
            path: path.display().to_string(),
            line: 0,
            reason: format!("not a PEM certificate: {e}"),
        })?;
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    builder.build().map_err(|e| remote_error(0, "client", e.to_string()))
}

impl Remote {
    /// What only a service in the server's own process can do.
    fn in_process_only(&self, what: &str) -> Error {
        Error::Log(LogError::Unsupported(format!(
            "{what} is done in the server's own process, not by a client of {}",
            self.base
        )))
    }

    /// A client for `url` (e.g. `http://127.0.0.1:7700`).
    pub fn new(url: &str, token: Option<String>) -> Result<Remote> {
        Remote::with_ca(url, token, None)
    }

    /// A client of the server at `url` that also trusts the PEM certificate(s) in `ca`
    /// (a server with a private or self-signed certificate).
    pub fn with_ca(url: &str, token: Option<String>, ca: Option<&std::path::Path>) -> Result<Remote> {
        let http = http_client(reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)), ca)?;
        Ok(Remote { base: url.trim_end_matches('/').to_owned(), token, http, seen: Default::default() })
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<reqwest::blocking::Response> {
        use std::sync::atomic::Ordering;
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let req = match self.seen.load(Ordering::Relaxed) {
            0 => req,
            n => req.header(super::AFTER_HEADER, n),
        };
        let resp = req.send().map_err(|e| remote_error(0, "connection", format!("{}: {e}", self.base)))?;
        if let Some(n) = resp.headers().get(super::POSITION_HEADER).and_then(|v| v.to_str().ok()?.parse().ok()) {
            self.seen.fetch_max(n, Ordering::Relaxed);
        }
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let text = resp.text().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let err = &v["error"];
        // Errors whose details the server sends typed come back as the local store's.
        match err["type"].as_str() {
            Some("nothing_to_dream") => {
                if let (Some(store), Some(from)) = (err["store"].as_str(), err["from"].as_u64()) {
                    return Err(Error::Dream(DreamError::NothingToDream { store: store.to_owned(), from }));
                }
                if let (Some(store), Some(dream), Some(fork)) =
                    (err["store"].as_str(), err["same_as"].as_str(), err["fork"].as_str())
                {
                    return Err(Error::Dream(DreamError::SameInput {
                        store: store.to_owned(),
                        dream: dream.to_owned(),
                        fork: fork.to_owned(),
                    }));
                }
            }
            Some("wrong_expected_version") => {
                let expected = err["expected"].as_str().and_then(|e| e.parse().ok());
                if let (Some(stream), Some(expected)) = (err["stream"].as_str(), expected) {
                    let current = err["current_version"].as_u64();
                    return Err(Error::Log(LogError::WrongExpectedVersion {
                        stream: stream.to_owned(),
                        expected,
                        current,
                    }));
                }
            }
            _ => {}
        }
        // The memory tool's own refusal keeps its class (`tool:not_found`, …).
        let kind = match err["tool_error"].as_str() {
            Some(t) => format!("tool:{t}"),
            None => err["type"].as_str().unwrap_or("http").to_owned(),
        };
        Err(remote_error(status, &kind, err["message"].as_str().map(str::to_owned).unwrap_or(text)))
    }

    fn json(&self, req: reqwest::blocking::RequestBuilder) -> Result<Value> {
        self.send(req)?.json().map_err(|e| remote_error(0, "response", e.to_string()))
    }

    fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.json(self.http.get(format!("{}{path}", self.base)).query(query))
    }

    fn post(&self, path: &str, body: &Value, headers: &[(&str, String)]) -> Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        self.json(req)
    }

    /// Rebuilds events from their JSON forms, recomputing their ids.
    fn stored(events: Vec<EventJson>) -> Result<Vec<StoredEvent>> {
        Ok(events.into_iter().map(StoredEvent::from_json).collect::<std::result::Result<_, _>>()?)
    }

    fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
        serde_json::from_value(v).map_err(|e| remote_error(0, "response", e.to_string()))
    }

    /// What `POST /v1/events` appended (or found stored already).
    fn appended(v: Value) -> Result<Vec<Appended>> {
        let answer: AppendedAnswer<AppendedEvent> = Remote::typed(v)?;
        Ok(answer
            .appended
            .into_iter()
            .map(|a| Appended { position: a.position, id: a.id, version: a.version, existed: a.existed })
            .collect())
    }

    /// What a memory write appended (always new events).
    fn written(v: Value) -> Result<Vec<Appended>> {
        let answer: AppendedAnswer<AppendedRef> = Remote::typed(v)?;
        Ok(answer
            .appended
            .into_iter()
            .map(|a| Appended { position: a.position, id: a.id, version: a.version, existed: false })
            .collect())
    }

    fn actor_header(actor: &crate::core::Actor) -> Vec<(&'static str, String)> {
        vec![("x-dreamlog-actor", actor.to_string())]
    }
}

/// Counts newlines while copying.
struct LineCounter<'a> {
    inner: &'a mut dyn std::io::Write,
    lines: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl std::io::Write for LineCounter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let lines = buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        if lines > 0 {
            self.lines += lines;
            (self.progress)(self.lines);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn query(pairs: &[(&'static str, Option<String>)]) -> Vec<(&'static str, String)> {
    pairs.iter().filter_map(|(k, v)| v.clone().map(|v| (*k, v))).collect()
}

impl Service for Remote {
    fn follow(&self) -> Result<tokio::sync::watch::Receiver<u64>> {
        Err(self.in_process_only("following the log (the server waits on its own log)"))
    }

    fn tail(
        &self,
        _from: u64,
        _budget: std::sync::Arc<crate::store::TailBudget>,
    ) -> Result<crate::store::Subscription> {
        Err(self.in_process_only("a tail (over HTTP it is GET /v1/tail)"))
    }

    fn gauges(&self) -> Result<super::Gauges> {
        Err(self.in_process_only("the store's gauges (over HTTP they are GET /metrics)"))
    }

    fn reindex(&self, _progress: Box<dyn FnMut(u64) + Send>) -> Result<crate::store::ReindexReport> {
        Err(self.in_process_only("a reindex (it works on a database folder: run it on the server's machine)"))
    }

    fn close(&self) -> Result<()> {
        Ok(())
    }

    fn target(&self) -> String {
        self.base.clone()
    }

    fn info(&self) -> Result<Info> {
        Remote::typed(self.get("/v1/info", &[])?)
    }

    fn append(&self, req: &AppendRequest) -> Result<Vec<AppendedEvent>> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        Ok(Remote::typed::<AppendedAnswer<AppendedEvent>>(self.post("/v1/events", &body, &[])?)?.appended)
    }

    fn append_batch(&self, batch: AppendBatch) -> Result<Vec<Appended>> {
        // Drafts in their JSON form, with the times and parents the caller fixed, so the
        // server computes the same ids (and an identical re-import is recognised).
        let events: Vec<Value> = batch
            .events
            .iter()
            .map(|d| {
                let mut v = json!({"stream": d.stream, "kind": d.body.kind().name(), "actor": d.actor,
                                   "causes": d.causes, "body": d.body.to_json()});
                if let Some(t) = d.time {
                    v["time"] = json!(t);
                }
                if let Some(p) = &d.parents {
                    v["parents"] = json!(p);
                }
                if let Some(r) = &d.redacted {
                    v["redacted"] = json!(r);
                }
                v
            })
            .collect();
        let mut body = json!({ "events": events });
        for (stream, e) in &batch.expectations {
            body["expect"][stream.as_str()] = json!(e.to_arg());
        }
        Remote::appended(self.post("/v1/events", &body, &[])?)
    }

    fn events(&self, q: &EventsQuery) -> Result<Vec<StoredEvent>> {
        let page = [("from", q.from.to_string()), ("limit", q.limit.unwrap_or(super::PAGE).to_string())];
        let path = match (&q.stream, q.kind) {
            (Some(stream), _) => format!("/v1/streams/{stream}"),
            (None, Some(kind)) => format!("/v1/kinds/{}", kind.name()),
            (None, None) => "/v1/events".to_owned(),
        };
        let events = match &q.stream {
            Some(_) => Remote::typed::<StreamPage>(self.get(&path, &page)?)?.events,
            None => Remote::typed::<EventsPage>(self.get(&path, &page)?)?.events,
        };
        Remote::stored(events)
    }

    fn event(&self, id: &str) -> Result<StoredEvent> {
        Ok(StoredEvent::from_json(Remote::typed(self.get(&format!("/v1/events/{id}"), &[])?)?)?)
    }

    fn timeline(&self, q: &TimelineQuery) -> Result<TimelinePage> {
        let q = query(&[
            ("before", q.before.map(|v| v.to_string())),
            ("limit", q.limit.map(|v| v.to_string())),
            ("kind", q.kind.map(|k| k.name().to_owned())),
            ("stream", q.stream.clone()),
            ("session", q.session.clone()),
            ("actor", q.actor.clone()),
            ("since", q.since.map(|v| v.to_string())),
            ("until", q.until.map(|v| v.to_string())),
        ]);
        let page: TimelineAnswer = Remote::typed(self.get("/v1/timeline", &q)?)?;
        Ok(TimelinePage { events: Remote::stored(page.events)?, next_before: page.next_before, scanned: page.scanned })
    }

    fn cited_by(&self, id: &str, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let page = [("from", from.to_string()), ("limit", limit.to_string())];
        Remote::stored(Remote::typed::<EventsPage>(self.get(&format!("/v1/events/{id}/cited_by"), &page)?)?.events)
    }

    fn lookup(&self, req: &LookupRequest) -> Result<Lookup> {
        let v = self.post("/v1/lookup", &json!({ "ids": req.ids, "streams": req.streams }), &[])?;
        let LookupAnswer { heads, positions } = Remote::typed(v)?;
        if positions.len() != req.ids.len() || heads.len() != req.streams.len() {
            let (p, h) = (positions.len(), heads.len());
            let why = format!("lookup answered {p} of {} ids and {h} of {} streams", req.ids.len(), req.streams.len());
            return Err(remote_error(0, "response", why));
        }
        Ok((positions, heads.into_iter().map(|h| h.map(|h| (h.version, h.id))).collect()))
    }

    fn verify(&self, q: &VerifyQuery, _progress: &mut dyn FnMut(u64)) -> Result<VerifyReport> {
        let path = if q.deep { "/v1/verify?deep=true" } else { "/v1/verify" };
        Remote::typed(self.post(path, &json!({}), &[])?)
    }

    fn checkpoint(&self, actor: &Actor) -> Result<crate::core::checkpoint::Checkpoint> {
        Remote::typed(self.post("/v1/checkpoints", &json!({}), &Remote::actor_header(actor))?)
    }

    fn verify_checkpoint(&self, req: &CheckpointCheckRequest) -> Result<CheckpointVerdict> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        Remote::typed(self.post("/v1/checkpoints/verify", &body, &[])?)
    }

    fn backup(&self, req: &BackupRequest) -> Result<BackupReport> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        Remote::typed(self.post("/v1/backup", &body, &[])?)
    }

    fn memory_tool(&self, store: &str, input: &Value, context: &ToolContext) -> Result<ToolAnswer> {
        let mut headers = Vec::new();
        if let Some(a) = &context.actor {
            headers.push(("x-dreamlog-actor", a.to_string()));
        }
        if let Some(s) = &context.session {
            headers.push(("x-dreamlog-session", s.clone()));
        }
        if let Some(p) = &context.precondition {
            headers.push(("x-dreamlog-precondition", p.to_hex()));
        }
        if !context.causes.is_empty() {
            headers.push(("x-dreamlog-causes", context.causes.join(",")));
        }
        let v = self.post(&format!("/v1/memory/{}/tool", path_segment(store)), input, &headers)?;
        let reply: ToolReply = Remote::typed(v)?;
        let recorded = reply.position.zip(reply.id);
        let error = reply.is_error.then(|| reply.error_type.unwrap_or_else(|| "invalid".to_owned()));
        Ok(ToolAnswer { text: reply.content, error, recorded })
    }

    fn memory_files(&self, store: &str, q: &PathQuery) -> Result<MemoryFiles> {
        let q = query(&[("at", q.at.clone())]);
        Remote::typed(self.get(&format!("/v1/memory/{}/files", path_segment(store)), &q)?)
    }

    fn principals(&self, q: &PrincipalsQuery) -> Result<Principals> {
        let q = query(&[("name", q.name.clone()), ("limit", q.limit.map(|l| l.to_string()))]);
        Remote::typed(self.get("/v1/principals", &q)?)
    }

    fn memory_stores(&self) -> Result<Vec<String>> {
        Ok(Remote::typed::<StoreList>(self.get("/v1/memory", &[])?)?.stores)
    }

    fn memory_view(&self, store: &str, q: &ViewQuery) -> Result<MemoryView> {
        let q = query(&[("path", q.path.clone()), ("at", q.at.clone()), ("range", q.range.clone())]);
        match self.get(&format!("/v1/memory/{}/view", path_segment(store)), &q) {
            // The tool refused (a bad or missing path): the view's own form, as embedded.
            Err(Error::Remote { kind, message, .. }) if kind.starts_with("tool:") => {
                Ok(MemoryView::Refused { kind: kind["tool:".len()..].to_owned(), message })
            }
            other => Remote::typed(other?),
        }
    }

    fn memory_history(&self, store: &str, q: &PathQuery) -> Result<Vec<StoredEvent>> {
        let q = query(&[("path", q.path.clone()), ("at", q.at.clone())]);
        Remote::stored(
            Remote::typed::<EventList>(self.get(&format!("/v1/memory/{}/history", path_segment(store)), &q)?)?.events,
        )
    }

    fn memory_diff(&self, store: &str, q: &DiffQuery) -> Result<MemoryDiff> {
        let q =
            query(&[("other", q.other.clone()), ("from", q.from.clone()), ("to", q.to.clone()), ("at", q.at.clone())]);
        Remote::typed(self.get(&format!("/v1/memory/{}/diff", path_segment(store)), &q)?)
    }

    fn memory_blame(&self, store: &str, q: &PathQuery) -> Result<Vec<BlameLine>> {
        let q = query(&[("path", q.path.clone()), ("at", q.at.clone())]);
        Ok(Remote::typed::<BlameAnswer>(self.get(&format!("/v1/memory/{}/blame", path_segment(store)), &q)?)?.lines)
    }

    fn memory_lessons(&self, store: &str, q: &PathQuery) -> Result<Vec<LessonRow>> {
        let q = query(&[("at", q.at.clone())]);
        Ok(Remote::typed::<LessonsAnswer>(self.get(&format!("/v1/memory/{}/lessons", path_segment(store)), &q)?)?
            .lessons)
    }

    fn memory_revert(&self, store: &str, req: &RevertRequest, actor: &Actor) -> Result<Vec<Appended>> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        let path = format!("/v1/memory/{}/revert", path_segment(store));
        Remote::written(self.post(&path, &body, &Remote::actor_header(actor))?)
    }

    fn memory_revert_dry_run(&self, store: &str, req: &RevertRequest, actor: &Actor) -> Result<Preview> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        let path = format!("/v1/memory/{}/revert?dry_run=true", path_segment(store));
        Remote::typed(self.post(&path, &body, &Remote::actor_header(actor))?)
    }

    fn memory_fork(&self, store: &str, req: &ForkRequest, actor: &Actor) -> Result<Forked> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        let v = self.post(&format!("/v1/memory/{}/fork", path_segment(store)), &body, &Remote::actor_header(actor))?;
        let a = Remote::written(v)?.into_iter().next().ok_or_else(|| remote_error(0, "response", "no fork event"))?;
        let position = match self.event(&a.id.to_hex())?.event.body {
            crate::core::Body::StoreFork(f) => f.position,
            _ => return Err(remote_error(0, "response", "the fork event is not a store.fork")),
        };
        Ok(Forked { appended: a, position })
    }

    fn memory_promote(&self, store: &str, req: &PromoteRequest, actor: &Actor) -> Result<Vec<Appended>> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        let path = format!("/v1/memory/{}/promote", path_segment(store));
        Remote::written(self.post(&path, &body, &Remote::actor_header(actor))?)
    }

    fn memory_promote_dry_run(&self, store: &str, req: &PromoteRequest, actor: &Actor) -> Result<Preview> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        let path = format!("/v1/memory/{}/promote?dry_run=true", path_segment(store));
        Remote::typed(self.post(&path, &body, &Remote::actor_header(actor))?)
    }

    fn memory_batch(&self, store: &str, req: &BatchRequest, actor: &Actor) -> Result<Vec<Appended>> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        let path = format!("/v1/memory/{}/batch", path_segment(store));
        Remote::written(self.post(&path, &body, &Remote::actor_header(actor))?)
    }

    fn memory_set_rules(&self, store: &str, req: &RulesRequest, actor: &Actor) -> Result<RulesSwitch> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        let path = format!("/v1/memory/{}/rules", path_segment(store));
        Remote::typed(self.post(&path, &body, &Remote::actor_header(actor))?)
    }

    fn redact(&self, req: &RedactRequest, actor: &Actor) -> Result<Redacted> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        Remote::typed(self.post("/v1/redact", &body, &Remote::actor_header(actor))?)
    }

    fn tag(&self, req: &TagRequest, actor: &Actor) -> Result<Tagged> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        Remote::typed(self.post("/v1/tags", &body, &Remote::actor_header(actor))?)
    }

    fn sessions_link(&self, req: &SessionsLinkRequest, actor: &Actor) -> Result<SessionsLinked> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        Remote::typed(self.post("/v1/sessions/link", &body, &Remote::actor_header(actor))?)
    }

    fn sessions(&self) -> Result<Vec<SessionSummary>> {
        Ok(Remote::typed::<SessionList<SessionSummary>>(self.get("/v1/sessions", &[])?)?.sessions)
    }

    fn sessions_page(&self, q: &crate::sessions::SessionsQuery) -> Result<crate::sessions::SessionsPage> {
        let q = query(&[
            ("offset", Some(q.offset.to_string())),
            ("limit", Some(q.limit.unwrap_or(50).to_string())),
            ("q", q.q.clone()),
        ]);
        Remote::typed(self.get("/v1/sessions", &q)?)
    }

    fn session_stats(&self) -> Result<Stats> {
        Remote::typed(self.get("/v1/sessions/stats", &[])?)
    }

    fn session(&self, id: &str) -> Result<SessionDetail> {
        Remote::typed(self.get(&format!("/v1/session/{id}"), &[])?)
    }

    fn drift(&self, store: &str, q: &DriftQuery) -> Result<DriftReport> {
        let q = query(&[
            ("resamples", q.resamples.map(|n| n.to_string())),
            ("min_sessions", q.min_sessions.map(|n| n.to_string())),
        ]);
        Remote::typed(self.get(&format!("/v1/drift/{}", path_segment(store)), &q)?)
    }

    fn dreams(&self) -> Result<Vec<DreamSummary>> {
        Ok(Remote::typed::<DreamList>(self.get("/v1/dreams", &[])?)?.dreams)
    }

    fn dream(&self, id: &str) -> Result<DreamDetail> {
        Remote::typed(self.get(&format!("/v1/dreams/{id}"), &[])?)
    }

    fn dream_run(&self, req: &DreamRequest) -> Result<DreamRun> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        Remote::typed(self.post("/v1/dreams", &body, &[])?)
    }

    fn dream_replay(&self, id: &str, req: &ReplayRequest) -> Result<Replay> {
        let body = serde_json::to_value(req).map_err(|e| remote_error(0, "request", e.to_string()))?;
        Remote::typed(self.post(&format!("/v1/dreams/{id}/replay"), &body, &[])?)
    }

    fn export(&self, from: u64, out: &mut dyn std::io::Write, progress: &mut dyn FnMut(u64)) -> Result<u64> {
        let mut resp = self.send(self.http.get(format!("{}/v1/export", self.base)).query(&[("from", from)]))?;
        let mut counter = LineCounter { inner: out, lines: 0, progress };
        resp.copy_to(&mut counter).map_err(|e| remote_error(0, "response", e.to_string()))?;
        Ok(counter.lines)
    }
}
