//! A typed client for `dreamlog serve` (reqwest, blocking): what `--remote URL` uses.
//! Events come back in their JSON form and are rebuilt into [`StoredEvent`]s whose ids
//! are recomputed here, so a client never trusts an id it did not hash itself.

use std::time::Duration;

use serde_json::{json, Value};

use crate::core::{EventId, EventJson, Kind};
use crate::error::{Error, Result};
use crate::store::{Appended, StoredEvent, VerifyReport};

/// A memory tool call's answer from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolAnswer {
    /// The tool's text.
    pub text: String,
    /// The tool's error class when it refused (`not_found`, `invalid`, …).
    pub error: Option<String>,
    /// Where the recorded command landed: position and id.
    pub recorded: Option<(u64, EventId)>,
}

/// Who issues a memory tool call through the server, and what it rests on.
#[derive(Clone, Debug, Default)]
pub struct ToolContext {
    /// Who issues it (the server's default when absent).
    pub actor: Option<crate::core::Actor>,
    /// The session it belongs to.
    pub session: Option<String>,
    /// Expected BLAKE3 of the file's content (a conflict if it differs).
    pub precondition: Option<crate::core::Digest>,
    /// Evidence: event ids or unique prefixes, resolved by the server.
    pub causes: Vec<String>,
}

/// A server at a base URL, with an optional bearer token.
pub struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
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

impl Remote {
    /// A client for `url` (e.g. `http://127.0.0.1:7700`).
    pub fn new(url: &str, token: Option<String>) -> Result<Remote> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| remote_error(0, "client", e.to_string()))?;
        Ok(Remote { base: url.trim_end_matches('/').to_owned(), token, http })
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<reqwest::blocking::Response> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().map_err(|e| remote_error(0, "connection", format!("{}: {e}", self.base)))?;
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
                    return Err(Error::NothingToDream { store: store.to_owned(), from });
                }
            }
            Some("wrong_expected_version") => {
                let expected = err["expected"].as_str().and_then(|e| e.parse().ok());
                if let (Some(stream), Some(expected)) = (err["stream"].as_str(), expected) {
                    let current = err["current_version"].as_u64();
                    return Err(Error::WrongExpectedVersion { stream: stream.to_owned(), expected, current });
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

    /// Rebuilds an event from its JSON form, recomputing its id.
    pub fn event_from_json(v: Value) -> Result<StoredEvent> {
        let j: EventJson = serde_json::from_value(v).map_err(|e| remote_error(0, "response", e.to_string()))?;
        let version = j.version.unwrap_or(0);
        let (position, sealed) = j.into_sealed()?;
        Ok(StoredEvent { position: position.unwrap_or(0), version, redacted: false, event: sealed.into_event() })
    }

    fn events(v: &Value) -> Result<Vec<StoredEvent>> {
        v["events"].as_array().cloned().unwrap_or_default().into_iter().map(Remote::event_from_json).collect()
    }

    /// Appends JSON events atomically; returns where each landed and its stream.
    pub fn append(
        &self,
        events: Vec<Value>,
        stream: Option<&str>,
        expect: Option<(&str, String)>,
    ) -> Result<Vec<(Appended, String)>> {
        let mut body = json!({ "events": events });
        if let Some(s) = stream {
            body["stream"] = json!(s);
        }
        if let Some((s, e)) = expect {
            body["expect"] = json!({ s: e });
        }
        let v = self.post("/v1/events", &body, &[])?;
        let streams = v["appended"].as_array().cloned().unwrap_or_default();
        let streams = streams.iter().map(|a| a["stream"].as_str().unwrap_or_default().to_owned());
        Ok(Remote::appended(&v)?.into_iter().zip(streams).collect())
    }

    /// Events in log order from `from`.
    pub fn read_range(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        Remote::events(&self.get("/v1/events", &[("from", from.to_string()), ("limit", limit.to_string())])?)
    }

    /// A stream's events from a version.
    pub fn read_stream(&self, stream: &str, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        match self.get(&format!("/v1/streams/{stream}"), &[("from", from.to_string()), ("limit", limit.to_string())]) {
            Err(Error::Remote { status: 404, .. }) => Ok(Vec::new()),
            other => Remote::events(&other?),
        }
    }

    /// Events of one kind from `from`.
    pub fn read_kind(&self, kind: Kind, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        Remote::events(
            &self.get(
                &format!("/v1/kinds/{}", kind.name()),
                &[("from", from.to_string()), ("limit", limit.to_string())],
            )?,
        )
    }

    /// One event by id or unique prefix.
    pub fn get_event(&self, id: &str) -> Result<StoredEvent> {
        Remote::event_from_json(self.get(&format!("/v1/events/{id}"), &[])?)
    }

    /// Verifies the server's database.
    pub fn verify(&self, deep: bool) -> Result<VerifyReport> {
        let path = if deep { "/v1/verify?deep=true" } else { "/v1/verify" };
        serde_json::from_value(self.post(path, &json!({}), &[])?)
            .map_err(|e| remote_error(0, "response", e.to_string()))
    }

    /// A memory tool call through the tool endpoint: the tool's text, its error class
    /// (`None` on success), and where the recorded command landed.
    pub fn memory_tool(&self, store: &str, input: &Value, context: &ToolContext) -> Result<ToolAnswer> {
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
        let v = self.post(&format!("/v1/memory/{store}/tool"), input, &headers)?;
        let at = match (v["position"].as_u64(), v["id"].as_str()) {
            (Some(p), Some(id)) => Some((p, id.parse()?)),
            _ => None,
        };
        let error =
            v["is_error"].as_bool().unwrap_or(true).then(|| v["error_type"].as_str().unwrap_or("invalid").to_owned());
        Ok(ToolAnswer { text: v["content"].as_str().unwrap_or_default().to_owned(), error, recorded: at })
    }

    /// The view JSON of `GET /v1/memory/{store}/view`.
    pub fn memory_view(&self, store: &str, path: &str, at: &str, range: Option<&str>) -> Result<Value> {
        let mut q = vec![("path", path.to_owned()), ("at", at.to_owned())];
        if let Some(r) = range {
            q.push(("range", r.to_owned()));
        }
        match self.get(&format!("/v1/memory/{}/view", path_segment(store)), &q) {
            // The tool refused (a bad or missing path): the view's own form, as embedded.
            Err(Error::Remote { kind, message, .. }) if kind.starts_with("tool:") => {
                Ok(json!({"ok": false, "error": {"type": &kind["tool:".len()..], "message": message}}))
            }
            other => other,
        }
    }

    /// Every change of a store or path.
    pub fn history(&self, store: &str, path: Option<&str>) -> Result<Vec<StoredEvent>> {
        let q: Vec<(&str, String)> = path.map(|p| vec![("path", p.to_owned())]).unwrap_or_default();
        Remote::events(&self.get(&format!("/v1/memory/{store}/history"), &q)?)
    }

    fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
        serde_json::from_value(v).map_err(|e| remote_error(0, "response", e.to_string()))
    }

    fn appended(v: &Value) -> Result<Vec<Appended>> {
        v["appended"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                Ok(Appended {
                    position: a["position"].as_u64().unwrap_or(0),
                    id: a["id"].as_str().unwrap_or_default().parse()?,
                    version: a["version"].as_u64().unwrap_or(0),
                    existed: a["existed"].as_bool().unwrap_or(false),
                })
            })
            .collect()
    }

    fn actor_header(actor: &crate::core::Actor) -> Vec<(&'static str, String)> {
        vec![("x-dreamlog-actor", actor.to_string())]
    }

    /// Diff of two points of a store (`other == None`) or of two stores at one point.
    pub fn diff(
        &self,
        store: &str,
        other: Option<&str>,
        from: &str,
        to: &str,
        at: &str,
    ) -> Result<crate::core::memory::MemoryDiff> {
        let q: Vec<(&str, String)> = match other {
            Some(o) => vec![("other", o.to_owned()), ("at", at.to_owned())],
            None => vec![("from", from.to_owned()), ("to", to.to_owned())],
        };
        Remote::typed(self.get(&format!("/v1/memory/{store}/diff"), &q)?)
    }

    /// Blame of a memory file as of a point.
    pub fn blame(&self, store: &str, path: &str, at: &str) -> Result<Vec<crate::memory::BlameLine>> {
        let v = self.get(&format!("/v1/memory/{store}/blame"), &[("path", path.to_owned()), ("at", at.to_owned())])?;
        Remote::typed(v["lines"].clone())
    }

    /// The lesson ledger of a store.
    pub fn lessons(&self, store: &str, at: &str) -> Result<Vec<crate::ledger::LessonRow>> {
        let v = self.get(&format!("/v1/memory/{store}/lessons"), &[("at", at.to_owned())])?;
        Remote::typed(v["lessons"].clone())
    }

    /// Reverts one event, one dream, or to a point.
    pub fn revert(
        &self,
        store: &str,
        target: (&str, &str),
        reason: &str,
        force: bool,
        actor: &crate::core::Actor,
    ) -> Result<Vec<Appended>> {
        let mut body = json!({"reason": reason, "force": force});
        body[target.0] = json!(target.1);
        Remote::appended(&self.post(&format!("/v1/memory/{store}/revert"), &body, &Remote::actor_header(actor))?)
    }

    /// Forks a store at a point; returns the fork event and the forked position.
    pub fn fork(&self, store: &str, new: &str, at: &str, actor: &crate::core::Actor) -> Result<(Appended, u64)> {
        let v = self.post(
            &format!("/v1/memory/{store}/fork"),
            &json!({"new": new, "at": at}),
            &Remote::actor_header(actor),
        )?;
        let a = Remote::appended(&v)?.into_iter().next().ok_or_else(|| remote_error(0, "response", "no fork event"))?;
        let point = match self.get_event(&a.id.to_hex())?.event.body {
            crate::core::Body::StoreFork(f) => f.position,
            _ => return Err(remote_error(0, "response", "the fork event is not a store.fork")),
        };
        Ok((a, point))
    }

    /// Promotes a fork's changes into `into`.
    pub fn promote(&self, fork: &str, into: &str, actor: &crate::core::Actor) -> Result<Vec<Appended>> {
        Remote::appended(&self.post(
            &format!("/v1/memory/{fork}/promote"),
            &json!({"into": into}),
            &Remote::actor_header(actor),
        )?)
    }

    /// Tags a point; returns the tagged position, the tag event's id and position.
    pub fn tag(&self, name: &str, at: &str, actor: &crate::core::Actor) -> Result<(u64, EventId, u64)> {
        let v = self.post("/v1/tags", &json!({"name": name, "at": at}), &Remote::actor_header(actor))?;
        Ok((
            v["position"].as_u64().unwrap_or(0),
            v["id"].as_str().unwrap_or_default().parse()?,
            v["event_position"].as_u64().unwrap_or(0),
        ))
    }

    /// Session summaries.
    pub fn sessions(&self) -> Result<Vec<crate::sessions::SessionSummary>> {
        Remote::typed(self.get("/v1/sessions", &[])?["sessions"].clone())
    }

    /// Session statistics.
    pub fn session_stats(&self) -> Result<crate::sessions::Stats> {
        Remote::typed(self.get("/v1/sessions/stats", &[])?)
    }

    /// A session in full.
    pub fn session(&self, id: &str) -> Result<crate::sessions::SessionDetail> {
        let v = self.get(&format!("/v1/session/{id}"), &[])?;
        let link = match v["link"].clone() {
            Value::Null => None,
            l => match crate::core::Body::from_json(Kind::SessionLink, l)? {
                crate::core::Body::SessionLink(l) => Some(l),
                _ => None,
            },
        };
        Ok(crate::sessions::SessionDetail {
            session: v["session"].as_str().unwrap_or(id).to_owned(),
            events: Remote::events(&v)?,
            link,
            memory: Remote::typed(v["memory"].clone())?,
        })
    }

    /// The drift report of a store.
    pub fn drift(&self, store: &str, resamples: usize, min_sessions: u64) -> Result<crate::ledger::DriftReport> {
        let q = [("resamples", resamples.to_string()), ("min_sessions", min_sessions.to_string())];
        Remote::typed(self.get(&format!("/v1/drift/{store}"), &q)?)
    }

    /// Every dream.
    pub fn dreams(&self) -> Result<Vec<crate::dream::DreamSummary>> {
        Remote::typed(self.get("/v1/dreams", &[])?["dreams"].clone())
    }

    /// One dream's inputs, exchanges and lessons.
    pub fn dream(&self, id: &str) -> Result<crate::dream::DreamDetail> {
        Remote::typed(self.get(&format!("/v1/dreams/{id}"), &[])?)
    }

    /// Runs a dreamer on the server.
    pub fn dream_run(
        &self,
        store: &str,
        spec: &crate::core::dream::DreamerSpec,
        since: Option<&str>,
        into: Option<&str>,
        in_place: bool,
        create: bool,
    ) -> Result<crate::dream::DreamRun> {
        let body = json!({"store": store, "dreamer": spec.to_string(), "config": spec.config,
                          "since": since, "into": into, "in_place": in_place, "create": create});
        crate::dream::DreamRun::from_json(self.post("/v1/dreams", &body, &[])?)
            .map_err(|e| remote_error(0, "response", e.to_string()))
    }

    /// Replays a dream on the server (optionally with another dreamer or config).
    pub fn dream_replay(
        &self,
        id: &str,
        dreamer: Option<String>,
        config: Option<Value>,
    ) -> Result<crate::dream::Replay> {
        let mut body = json!({});
        if let Some(d) = dreamer {
            body["dreamer"] = json!(d);
        }
        if let Some(c) = config {
            body["config"] = c;
        }
        Remote::typed(self.post(&format!("/v1/dreams/{id}/replay"), &body, &[])?)
    }

    /// The number of events in the (tenant's) log.
    pub fn len(&self) -> Result<u64> {
        Ok(self.get("/v1/info", &[])?["events"].as_u64().unwrap_or(0))
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The export (JSON Lines) from a position, written to `out`; returns the event count.
    pub fn export(&self, from: u64, out: &mut dyn std::io::Write) -> Result<u64> {
        let mut resp = self.send(self.http.get(format!("{}/v1/export", self.base)).query(&[("from", from)]))?;
        let mut counter = LineCounter { inner: out, lines: 0 };
        resp.copy_to(&mut counter).map_err(|e| remote_error(0, "response", e.to_string()))?;
        Ok(counter.lines)
    }
}

/// Counts newlines while copying.
struct LineCounter<'a> {
    inner: &'a mut dyn std::io::Write,
    lines: u64,
}

impl std::io::Write for LineCounter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl crate::import::SessionSink for Remote {
    fn first_event(&self, stream: &str) -> Result<Option<EventId>> {
        Ok(self.read_stream(stream, 0, 1)?.first().map(|e| e.id()))
    }

    fn stream_events(&self, stream: &str) -> Result<Vec<StoredEvent>> {
        let mut out: Vec<StoredEvent> = Vec::new();
        loop {
            let page = self.read_stream(stream, out.len() as u64, 1000)?;
            let done = page.len() < 1000;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    fn append_session(&self, batch: crate::store::AppendBatch) -> Result<Vec<Appended>> {
        self.append_drafts(batch)
    }
}

impl crate::exchange::ExportSink for Remote {
    fn log_len(&self) -> Result<u64> {
        self.len()
    }

    fn lookup(&self, ids: &[EventId], streams: &[String]) -> Result<crate::exchange::Lookup> {
        let v = self.post("/v1/lookup", &json!({ "ids": ids, "streams": streams }), &[])?;
        let positions = v["positions"].as_array().cloned().unwrap_or_default();
        let heads = v["heads"].as_array().cloned().unwrap_or_default();
        if positions.len() != ids.len() || heads.len() != streams.len() {
            let (p, h) = (positions.len(), heads.len());
            let why = format!("lookup answered {p} of {} ids and {h} of {} streams", ids.len(), streams.len());
            return Err(remote_error(0, "response", why));
        }
        let heads = heads
            .iter()
            .map(|h| match h["id"].as_str() {
                Some(id) => Ok(Some(id.parse()?)),
                None => Ok(None),
            })
            .collect::<Result<_>>()?;
        Ok((positions.iter().map(Value::as_u64).collect(), heads))
    }

    fn append_batch(&self, batch: crate::store::AppendBatch) -> Result<Vec<Appended>> {
        self.append_drafts(batch)
    }

    fn max_batch(&self) -> usize {
        self.get("/v1/info", &[]).ok().and_then(|v| v["max_batch"].as_u64()).map_or(1000, |n| n as usize)
    }
}

impl Remote {
    /// Appends drafts as one atomic batch, with their expectations.
    pub fn append_drafts(&self, batch: crate::store::AppendBatch) -> Result<Vec<Appended>> {
        // Drafts in their JSON form, with the times and parents the importer fixed, so the
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
                v
            })
            .collect();
        let mut body = json!({ "events": events });
        for (stream, e) in &batch.expectations {
            body["expect"][stream.as_str()] = json!(e.to_arg());
        }
        Remote::appended(&self.post("/v1/events", &body, &[])?)
    }
}
