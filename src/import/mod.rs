//! Importers: real agent runs from other formats into sessions (issue 4). Each file is
//! parsed whole first; a malformed record fails the file with its JSON pointer and
//! nothing is written. Each session is then appended atomically to its stream
//! `session/ID` expecting no stream, so importing the same file again adds nothing
//! (same events, same times, same ids).
//!
//! Sources without timestamps (τ-bench, SWE-agent) get their step index as the event
//! time, in milliseconds since the epoch, so their ids are stable.

mod atif;
mod claude_code;
mod swe;
mod tau;

use serde_json::Value;

use crate::core::{Actor, Body, CanonicalJson, Draft, Message};
use crate::error::{Error, Result};
use crate::store::{AppendBatch, ExpectedVersion, Store};

/// Formats `dreamlog import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A `dreamlog export` (JSON Lines).
    Dreamlog,
    /// τ-bench v1 historical trajectories: an array of {task_id, trial, reward, info, traj}.
    TauBench,
    /// τ²-bench results: {tasks[], simulations[]}.
    Tau2,
    /// SWE-agent `.traj`: {trajectory[], history[], info}.
    SweAgent,
    /// ATIF (Harbor) trajectory, v1.0–v1.8, with the trial's result.json when present.
    Atif,
    /// Claude Code session transcript (JSON Lines); `agent-*.jsonl` are sub-agents.
    ClaudeCode,
}

impl Format {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Dreamlog => "dreamlog",
            Format::TauBench => "tau-bench",
            Format::Tau2 => "tau2",
            Format::SweAgent => "swe-agent",
            Format::Atif => "atif",
            Format::ClaudeCode => "claude-code",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(s: &str) -> Option<Format> {
        [Format::Dreamlog, Format::TauBench, Format::Tau2, Format::SweAgent, Format::Atif, Format::ClaudeCode]
            .into_iter()
            .find(|f| f.name() == s)
    }
}

/// Picks the format from a file's content.
pub fn detect(bytes: &[u8]) -> Option<Format> {
    let head = std::str::from_utf8(&bytes[..bytes.len().min(4096)]).unwrap_or("");
    let first = head.trim_start();
    if first.starts_with('[') {
        return Some(Format::TauBench);
    }
    if first.starts_with('{') {
        // JSON Lines: an export has an id and a kind on every line; a Claude Code
        // transcript has a type on every line and a sessionId on its messages.
        for line in first.lines().take(5) {
            let Ok(v) = serde_json::from_str::<Value>(line) else { break };
            if v.get("kind").is_some() && v.get("id").is_some() {
                return Some(Format::Dreamlog);
            }
            if v.get("sessionId").is_some() && v.get("type").is_some() {
                return Some(Format::ClaudeCode);
            }
            if v.get("type").and_then(Value::as_str) != Some("summary") {
                break;
            }
        }
        let v: Value = serde_json::from_slice(bytes).ok()?;
        if v.get("simulations").is_some() && v.get("tasks").is_some() {
            return Some(Format::Tau2);
        }
        if v.get("trajectory").is_some() && v.get("info").is_some() {
            return Some(Format::SweAgent);
        }
        if v.get("schema_version").and_then(Value::as_str).is_some_and(|s| s.starts_with("ATIF"))
            && v.get("steps").is_some()
        {
            return Some(Format::Atif);
        }
    }
    None
}

/// One session to append: its stream and its events in order.
#[derive(Clone, Debug)]
pub struct SessionEvents {
    /// Session id.
    pub session: String,
    /// The events (session.start first).
    pub events: Vec<Draft>,
    /// The session this one is a sub-agent of: when that session is in the store, this
    /// session's start event cites the parent's start event in `causes`.
    pub parent: Option<String>,
    /// (event index, index of the event it cites): each action cites the message or
    /// step that made its call.
    pub cites: Vec<(usize, usize)>,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    /// Sessions written.
    pub sessions: u64,
    /// Sessions that were already in the store (nothing written).
    pub already_present: u64,
    /// Tool calls (action events) in the file.
    pub actions: u64,
    /// Grades in the file.
    pub grades: u64,
    /// Messages in the file.
    pub messages: u64,
    /// What was skipped, with reasons.
    pub skipped: Vec<String>,
}

/// A malformed record: `file` at JSON `pointer`.
pub(crate) fn bad(file: &str, pointer: &str, reason: impl Into<String>) -> Error {
    Error::Record { file: file.to_owned(), pointer: pointer.to_owned(), reason: reason.into() }
}

/// Field helpers that fail with the JSON pointer of what is missing or mistyped.
pub(crate) struct At<'a> {
    pub file: &'a str,
    pub pointer: String,
    pub value: &'a Value,
}

impl<'a> At<'a> {
    pub fn root(file: &'a str, value: &'a Value) -> At<'a> {
        At { file, pointer: String::new(), value }
    }

    pub fn get(&self, key: &str) -> Result<At<'a>> {
        match self.value.get(key) {
            Some(v) => Ok(At { file: self.file, pointer: format!("{}/{key}", self.pointer), value: v }),
            None => Err(bad(self.file, &self.ptr(), format!("missing field `{key}`"))),
        }
    }

    pub fn opt(&self, key: &str) -> Option<At<'a>> {
        self.value.get(key).filter(|v| !v.is_null()).map(|v| At {
            file: self.file,
            pointer: format!("{}/{key}", self.pointer),
            value: v,
        })
    }

    pub fn ptr(&self) -> String {
        if self.pointer.is_empty() {
            "/".into()
        } else {
            self.pointer.clone()
        }
    }

    pub fn str(&self) -> Result<&'a str> {
        self.value
            .as_str()
            .ok_or_else(|| bad(self.file, &self.ptr(), format!("expected a string, found {}", kind_of(self.value))))
    }

    pub fn f64(&self) -> Result<f64> {
        self.value
            .as_f64()
            .ok_or_else(|| bad(self.file, &self.ptr(), format!("expected a number, found {}", kind_of(self.value))))
    }

    pub fn array(&self) -> Result<Vec<At<'a>>> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| bad(self.file, &self.ptr(), format!("expected an array, found {}", kind_of(self.value))))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| At { file: self.file, pointer: format!("{}/{i}", self.pointer), value: v })
            .collect())
    }

    /// A scalar as text (ids are numbers in some formats, strings in others).
    pub fn id_text(&self) -> Result<String> {
        match self.value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(bad(self.file, &self.ptr(), format!("expected an id, found {}", kind_of(other)))),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Builds one session's events: messages, the tool calls they make, the actions that
/// answer them (each citing the message that made its call), and the closing event.
/// Every importer goes through it, so calls, results and citations work one way.
pub(crate) struct SessionBuilder {
    /// Session id.
    pub session: String,
    /// Its stream.
    pub stream: String,
    events: Vec<Draft>,
    cites: Vec<(usize, usize)>,
    calls: std::collections::HashMap<String, PendingCall>,
}

/// A tool call waiting for its result.
struct PendingCall {
    name: String,
    input: Value,
    /// Index of the event that made the call.
    made_by: usize,
}

/// What a tool result carries besides its call.
pub(crate) struct ToolResult<'a> {
    /// Who ran the tool.
    pub actor: Actor,
    /// The result or observation.
    pub output: Option<&'a Value>,
    /// Whether it failed.
    pub status: crate::core::ActionStatus,
    /// Extra fields of the source.
    pub meta: Option<Value>,
    /// When.
    pub time: u64,
}

impl SessionBuilder {
    /// A session with no events yet.
    pub fn new(session: String) -> SessionBuilder {
        let stream = session_stream(&session);
        SessionBuilder { session, stream, events: Vec::new(), cites: Vec::new(), calls: Default::default() }
    }

    /// Appends an event of this session.
    pub fn push(&mut self, body: Body, actor: Actor, time: u64) {
        self.events.push(Draft::new(self.stream.clone(), actor, body).at(time));
    }

    /// Puts the `session.start` event in front of those pushed so far.
    pub fn prepend(&mut self, body: Body, actor: Actor, time: u64) {
        self.events.insert(0, Draft::new(self.stream.clone(), actor, body).at(time));
        for c in &mut self.cites {
            *c = (c.0 + 1, c.1 + 1);
        }
        for call in self.calls.values_mut() {
            call.made_by += 1;
        }
    }

    /// A `message` event holding the source message as it was.
    pub fn message(&mut self, actor: Actor, role: &str, content: &Value, time: u64) {
        let body = Body::Message(Message {
            session: self.session.clone(),
            role: role.to_owned(),
            content: CanonicalJson::from_value(content),
            meta: None,
        });
        self.push(body, actor, time);
    }

    /// A tool call made by the last event pushed.
    pub fn call(&mut self, id: String, name: String, input: Value) {
        let made_by = self.events.len().saturating_sub(1);
        self.calls.insert(id, PendingCall { name, input, made_by });
    }

    /// The `action` answering call `id`, citing the event that made it; `None` when no
    /// event made that call.
    pub fn result(&mut self, id: &str, r: ToolResult) -> Option<()> {
        let call = self.calls.remove(id)?;
        self.cites.push((self.events.len(), call.made_by));
        let body = Body::Action(crate::core::Action {
            session: self.session.clone(),
            name: call.name,
            call_id: Some(id.to_owned()),
            input: CanonicalJson::from_value(&call.input),
            output: r.output.map(CanonicalJson::from_value),
            status: r.status,
            meta: r.meta.as_ref().map(CanonicalJson::from_value),
        });
        self.push(body, r.actor, r.time);
        Some(())
    }

    /// An `action` that answers no recorded call (free-text actions), citing the last
    /// event pushed when `cite_last` (the message that chose it).
    pub fn action(&mut self, action: crate::core::Action, actor: Actor, time: u64, cite_last: bool) {
        if let (true, Some(last)) = (cite_last, self.events.len().checked_sub(1)) {
            self.cites.push((self.events.len(), last));
        }
        self.push(Body::Action(action), actor, time);
    }

    /// The `session.end` event.
    pub fn end(&mut self, actor: Actor, status: String, meta: Option<Value>, time: u64) {
        let body = Body::SessionEnd(crate::core::SessionEnd {
            session: self.session.clone(),
            status,
            meta: meta.as_ref().map(CanonicalJson::from_value),
        });
        self.push(body, actor, time);
    }

    /// A call that never got its result, if any.
    pub fn unanswered(&self) -> Option<&str> {
        self.calls.keys().next().map(String::as_str)
    }

    /// The finished session.
    pub fn finish(self, parent: Option<String>) -> SessionEvents {
        SessionEvents { session: self.session, events: self.events, parent, cites: self.cites }
    }
}

/// The stream of a session.
pub fn session_stream(session: &str) -> String {
    format!("session/{session}")
}

/// Parses a whole file (nothing is written).
pub fn parse(
    format: Format,
    file: &str,
    bytes: &[u8],
    memory: Option<(&str, crate::core::Digest)>,
) -> Result<Vec<SessionEvents>> {
    if format == Format::ClaudeCode {
        let mut sessions = claude_code::parse(file, bytes, memory)?;
        link_all(&mut sessions)?;
        return Ok(sessions);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::Input {
        path: file.to_owned(),
        line: e.line(),
        reason: format!("not valid JSON: {e}"),
    })?;
    let root = At::root(file, &value);
    let mut sessions = match format {
        Format::TauBench => tau::parse_tau_bench(&root, memory),
        Format::Tau2 => tau::parse_tau2(&root, memory),
        Format::SweAgent => swe::parse(&root, memory),
        Format::Atif => {
            // The Harbor trial directory is the parent of agent/trajectory.json.
            let result_path =
                std::path::Path::new(file).parent().and_then(|p| p.parent()).map(|p| p.join("result.json"));
            let result = match result_path.filter(|p| p.exists()) {
                Some(p) => Some(
                    serde_json::from_slice::<Value>(
                        &std::fs::read(&p).map_err(|source| Error::Io { path: p.display().to_string(), source })?,
                    )
                    .map_err(|e| Error::Input {
                        path: p.display().to_string(),
                        line: e.line(),
                        reason: format!("not valid JSON: {e}"),
                    })?,
                ),
                None => None,
            };
            atif::parse(&root, result.as_ref(), memory)
        }
        Format::ClaudeCode => claude_code::parse(file, bytes, memory),
        Format::Dreamlog => Err(bad(file, "/", "a dreamlog export is imported with `dreamlog import dreamlog`")),
    }?;
    link_all(&mut sessions)?;
    Ok(sessions)
}

/// Appends parsed sessions, each atomically; sessions already present are skipped.
/// Where imported sessions go: a local store, or a server (`--remote`).
pub trait SessionSink {
    /// The id of a stream's first event, if the stream exists.
    fn first_event(&self, stream: &str) -> Result<Option<crate::core::EventId>>;
    /// Appends one session's batch atomically.
    fn append_session(&self, batch: AppendBatch) -> Result<Vec<crate::store::Appended>>;
}

impl SessionSink for Store {
    fn first_event(&self, stream: &str) -> Result<Option<crate::core::EventId>> {
        Ok(self.read_stream(stream, 0, 1)?.first().map(|e| e.id()))
    }
    fn append_session(&self, batch: AppendBatch) -> Result<Vec<crate::store::Appended>> {
        self.append(batch)
    }
}

/// Writes parsed sessions, one atomic batch each expecting no stream: a session already
/// stored (same events) counts as present; a different one with the same id is skipped.
pub fn write(
    store: &dyn SessionSink,
    sessions: Vec<SessionEvents>,
    mut progress: impl FnMut(u64),
) -> Result<ImportCounts> {
    let mut counts = ImportCounts::default();
    for (i, s) in sessions.into_iter().enumerate() {
        for d in &s.events {
            match &d.body {
                Body::Action(_) => counts.actions += 1,
                Body::Grade(_) => counts.grades += 1,
                Body::Message(_) => counts.messages += 1,
                _ => {}
            }
        }
        let stream = session_stream(&s.session);
        let mut events = s.events;
        if let (Some(parent), Some(start)) = (&s.parent, events.first_mut()) {
            if let Some(first) = store.first_event(&session_stream(parent))? {
                start.causes.push(first);
            }
        }
        link_citations(&mut events, &s.cites)?;
        let batch = AppendBatch { events, expectations: vec![(stream, ExpectedVersion::NoStream)] };
        match store.append_session(batch) {
            Ok(a) if a.iter().all(|a| a.existed) => counts.already_present += 1,
            Ok(_) => counts.sessions += 1,
            Err(Error::WrongExpectedVersion { stream, .. }) => {
                counts.skipped.push(format!("{stream}: a different session with this id is already stored"));
            }
            Err(e) => return Err(e),
        }
        progress(i as u64 + 1);
    }
    Ok(counts)
}

/// A file read and parsed by [`parse_in_background`].
#[derive(Debug)]
pub enum Parsed {
    /// Sessions of an agent-run format.
    Sessions(Format, Vec<SessionEvents>),
    /// A dreamlog export (imported by [`crate::exchange::import`]).
    Export(Vec<u8>),
    /// No format could be detected.
    Unknown,
}

/// Reads and parses files on a background thread, one file ahead of the consumer, so
/// that parsing the next file overlaps appending this one. `format` `None` detects each
/// file's format. Results arrive in the order of `paths`.
pub fn parse_in_background(
    paths: Vec<String>,
    format: Option<Format>,
    memory: Option<(String, crate::core::Digest)>,
) -> std::sync::mpsc::Receiver<(String, Result<Parsed>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        for path in paths {
            let parsed =
                std::fs::read(&path).map_err(|source| Error::Io { path: path.clone(), source }).and_then(|bytes| {
                    match format.or_else(|| detect(&bytes)) {
                        None => Ok(Parsed::Unknown),
                        Some(Format::Dreamlog) => Ok(Parsed::Export(bytes)),
                        Some(f) => {
                            let mem = memory.as_ref().map(|(n, h)| (n.as_str(), *h));
                            parse(f, &path, &bytes, mem).map(|s| Parsed::Sessions(f, s))
                        }
                    }
                });
            if tx.send((path, parsed)).is_err() {
                return; // the consumer stopped (an earlier file failed)
            }
        }
    });
    rx
}

/// Links citations of sessions that have no parent session (their ids do not depend on
/// the store), so this work happens where parsing happens (off the append path).
fn link_all(sessions: &mut [SessionEvents]) -> Result<()> {
    for s in sessions.iter_mut().filter(|s| s.parent.is_none()) {
        link_citations(&mut s.events, &s.cites)?;
        s.cites.clear();
    }
    Ok(())
}

/// Adds each citation to `causes`. A session goes into a new stream, so every id is
/// known in advance: each event is chained to the one before it, exactly as the store
/// will chain them.
fn link_citations(events: &mut [Draft], cites: &[(usize, usize)]) -> Result<()> {
    if cites.is_empty() {
        return Ok(());
    }
    let by_event: std::collections::HashMap<usize, usize> = cites.iter().copied().collect();
    let mut ids: Vec<crate::core::EventId> = Vec::with_capacity(events.len());
    for (i, d) in events.iter_mut().enumerate() {
        if let Some(&cited) = by_event.get(&i) {
            if let Some(id) = ids.get(cited) {
                d.causes.push(*id);
            }
        }
        let parents = ids.last().map(|p| vec![*p]).unwrap_or_default();
        let sealed = d.seal(d.time.unwrap_or(0), parents).map_err(|source| Error::InvalidEvent { index: i, source })?;
        ids.push(sealed.id);
    }
    Ok(())
}
