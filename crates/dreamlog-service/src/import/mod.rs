//! Importers: real agent runs from other formats into sessions. Each file is parsed
//! whole and every session is checked against the store before anything is written; a
//! malformed record or a session that changed fails the file with its JSON pointer (or
//! the session and event) and nothing of it is written. Each session is then appended
//! atomically to its stream `session/ID`.
//!
//! A session's events depend only on the run's content: where the file lay and which
//! memory store (in which state) it ran with are recorded beside it, in a
//! `session.link` event of the stream `session.link/ID` written with the session's first
//! batch. So importing the same run again, from anywhere, answers "already present"; a
//! transcript that grew (Claude Code writes append-only JSON Lines) appends its new
//! events as one more batch (its new `session.end` supersedes the earlier one); a
//! session that changed in its middle is refused.
//!
//! Sources without timestamps (τ-bench, SWE-agent) get their step index as the event
//! time, in milliseconds since the epoch, so their ids are stable; their `session.start`
//! says so in `meta.times` ([`UNTIMED`]) and views print no time for them.

mod atif;
mod claude_code;
mod inspect;
pub mod managed_agents;
pub mod otlp;
mod swe;
mod tau;

pub use atif::referenced_paths;

use serde_json::Value;

use crate::core::{Actor, Body, CanonicalJson, Draft, Message};
use crate::error::LogError;
use crate::error::{Error, Result};
use crate::store::{AppendBatch, ExpectedVersion};

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
    /// OTLP/JSON traces and logs (one request, or JSON Lines of them, as the
    /// collector's file exporter writes), under the GenAI semantic conventions.
    Otlp,
    /// Inspect AI `.eval` logs (zip: header.json, samples/).
    Inspect,
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
            Format::Otlp => "otlp",
            Format::Inspect => "inspect",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(s: &str) -> Option<Format> {
        [
            Format::Dreamlog,
            Format::TauBench,
            Format::Tau2,
            Format::SweAgent,
            Format::Atif,
            Format::ClaudeCode,
            Format::Otlp,
            Format::Inspect,
        ]
        .into_iter()
        .find(|f| f.name() == s)
    }
}

/// Picks the format from a file's content.
pub fn detect(bytes: &[u8]) -> Option<Format> {
    if inspect::is_zip(bytes) {
        return Some(Format::Inspect);
    }
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
            if v.as_object().is_some_and(otlp::is_request) {
                return Some(Format::Otlp);
            }
            if v.get("type").and_then(Value::as_str) != Some("summary") {
                break;
            }
        }
        let v: Value = serde_json::from_slice(bytes).ok()?;
        if v.as_object().is_some_and(otlp::is_request) {
            return Some(Format::Otlp);
        }
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

pub use crate::core::body::UNTIMED;

/// The stream of a session's `session.link` events.
pub fn link_stream(session: &str) -> String {
    crate::core::streams::session_link(session)
}

/// One session to append: its stream and its events in order.
#[derive(Clone, Debug)]
pub struct SessionEvents {
    /// Session id.
    pub session: String,
    /// The events (session.start first, session.end last).
    pub events: Vec<Draft>,
    /// The session this one is a sub-agent of: this session's start event cites the
    /// parent's start event in `causes` (when the parent is in this import or the store).
    pub parent: Option<String>,
    /// (event index, index of the event it cites): each action cites the message or
    /// step that made its call.
    pub cites: Vec<(usize, usize)>,
    /// The start event's id when `cites` are already in the events' `causes` (sessions
    /// without a parent are linked while parsing, off the append path).
    pub start_id: Option<crate::core::EventId>,
    /// Where the session came from, `FORMAT:PATH[POINTER]`; recorded in its
    /// `session.link`, never in its events.
    pub source: String,
    /// The memory store it ran with and that store's state then, when the source says
    /// (recorded in its `session.link`; else the import's own, if any).
    pub memory: Option<(String, crate::core::Digest)>,
    /// The position of that store's log it ran at (its state there), when the session was
    /// mirrored after the fact: recorded as the link's `meta.at`, so drift places it
    /// there rather than where it was written.
    pub memory_at: Option<u64>,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportCounts {
    /// Sessions written.
    pub sessions: u64,
    /// Sessions already stored that grew: their new events were appended.
    pub grown: u64,
    /// Sessions that were already in the store as they are in the file (nothing written).
    pub already_present: u64,
    /// Tool calls (action events) in the file.
    pub actions: u64,
    /// Grades in the file.
    pub grades: u64,
    /// Messages in the file.
    pub messages: u64,
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
    /// `FORMAT:PATH[POINTER]` of the source.
    source: String,
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
    /// A session with no events yet, read from `source` (`FORMAT:PATH[POINTER]`).
    pub fn new(session: String, source: String) -> SessionBuilder {
        let stream = session_stream(&session);
        SessionBuilder { session, stream, source, events: Vec::new(), cites: Vec::new(), calls: Default::default() }
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
        self.message_meta(actor, role, content, time, None);
    }

    /// A `message` event with the importer's metadata beside the source message.
    pub fn message_with(&mut self, actor: Actor, role: &str, content: &Value, time: u64, meta: Value) {
        self.message_meta(actor, role, content, time, Some(&meta));
    }

    fn message_meta(&mut self, actor: Actor, role: &str, content: &Value, time: u64, meta: Option<&Value>) {
        let body = Body::Message(Message {
            session: self.session.clone(),
            role: role.to_owned(),
            content: CanonicalJson::from_value(content),
            meta: meta.map(CanonicalJson::from_value),
        });
        self.push(body, actor, time);
    }

    /// Appends an event citing the event at index `cites` of this session (when it is
    /// an earlier one).
    pub fn push_citing(&mut self, body: Body, actor: Actor, time: u64, cites: Option<usize>) {
        if let Some(c) = cites.filter(|c| *c < self.events.len()) {
            self.cites.push((self.events.len(), c));
        }
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

    /// Whether call `id` waits for its result.
    pub fn is_pending(&self, id: &str) -> bool {
        self.calls.contains_key(id)
    }

    /// The first call still waiting for its result, if any.
    pub fn unanswered(&self) -> Option<String> {
        self.calls.iter().min_by_key(|(id, c)| (c.made_by, id.as_str())).map(|(id, _)| id.clone())
    }

    /// The finished session.
    pub fn finish(self, parent: Option<String>) -> SessionEvents {
        SessionEvents {
            session: self.session,
            events: self.events,
            parent,
            cites: self.cites,
            start_id: None,
            source: self.source,
            memory: None,
            memory_at: None,
        }
    }
}

/// A hosted Managed Agents session and its threads, mapped and linked (nothing is
/// written); `None` while it has nothing to map.
pub fn parse_managed_session(h: &managed_agents::HostedSession) -> Result<Option<Vec<SessionEvents>>> {
    let Some(mut sessions) = managed_agents::parse_session(h)? else { return Ok(None) };
    link_all(&mut sessions)?;
    Ok(Some(sessions))
}

/// The stream of a session.
pub fn session_stream(session: &str) -> String {
    crate::core::streams::session(session)
}

/// Parses a whole file (nothing is written).
pub fn parse(format: Format, file: &str, bytes: &[u8]) -> Result<Vec<SessionEvents>> {
    let json = |parse: fn(&At) -> Result<Vec<SessionEvents>>| -> Result<Vec<SessionEvents>> {
        let value = parse_json(file, bytes)?;
        parse(&At::root(file, &value))
    };
    let mut sessions = match format {
        Format::TauBench => json(tau::parse_tau_bench),
        Format::Tau2 => json(tau::parse_tau2),
        Format::SweAgent => json(swe::parse),
        Format::Atif => json(atif::parse),
        Format::ClaudeCode => claude_code::parse(file, bytes),
        Format::Otlp => otlp::parse_file(file, bytes),
        Format::Inspect => inspect::parse(file, bytes),
        Format::Dreamlog => Err(bad(file, "/", "a dreamlog export is imported with `dreamlog import dreamlog`")),
    }?;
    link_all(&mut sessions)?;
    Ok(sessions)
}

/// A whole file as JSON; the error names the line and what is wrong.
pub(crate) fn parse_json(file: &str, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::Input {
        path: file.to_owned(),
        line: e.line(),
        reason: format!("not valid JSON: {e}"),
    })
}

/// Why [`detect`] could not tell a file's format: the JSON error when the file is not
/// valid JSON (a truncated file), else what was looked for.
pub fn undetected_reason(file: &str, bytes: &[u8]) -> Error {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') && serde_json::from_slice::<Value>(bytes).is_err() {
        // JSON Lines whose first lines are not a transcript or an export, or one JSON
        // document that does not parse: say where it breaks.
        let one_doc = parse_json(file, bytes).err();
        let lines_ok = std::str::from_utf8(bytes)
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).all(|l| serde_json::from_str::<Value>(l).is_ok()))
            .unwrap_or(false);
        if let (Some(e), false) = (one_doc, lines_ok) {
            return e;
        }
    }
    Error::Input {
        path: file.to_owned(),
        line: 0,
        reason:
            "cannot tell the format (name it: dreamlog, tau-bench, tau2, swe-agent, atif, claude-code, otlp or inspect)"
                .into(),
    }
}

/// Why a changed session is refused.
const APPEND_ONLY: &str = "a run's record only grows (it is append-only), so this import is refused";

/// What importing one session appends (written by `service::import_sessions`).
pub(crate) enum Plan {
    /// Nothing: the session is stored as it is in the file.
    Present,
    /// A new session (with its `session.link`).
    New(AppendBatch),
    /// A stored session's new events.
    Grow(AppendBatch),
}

/// Whether a stored grade is what an earlier importer wrote of the parsed one: the same
/// but for what importers learned to read since — τ²-bench's environment assertions
/// (`env:…` criteria) and Harbor's rubric by dataset and agent. Re-importing such a run
/// finds it present, as it is.
fn older_grade(stored: &crate::core::Grade, parsed: &crate::core::Grade) -> bool {
    let mut newer = parsed.clone();
    newer.criteria.retain(|c| !c.name.starts_with("env:"));
    if stored.rubric.starts_with("harbor") && newer.rubric.starts_with("harbor") {
        newer.rubric = stored.rubric.clone();
    }
    *stored == newer
}

/// Most events of new sessions appended together in one batch.
pub(crate) const MERGE_EVENTS: usize = 1000;

/// Compares a parsed session with what the store holds of it; returns what to append and
/// the id of the session's start event.
pub(crate) fn plan_session(
    s: SessionEvents,
    stored: Vec<crate::store::StoredEvent>,
    parent_start: Option<crate::core::EventId>,
    memory: Option<(&str, crate::core::Digest)>,
) -> Result<(Plan, crate::core::EventId)> {
    let stream = session_stream(&s.session);
    let mut events = s.events;
    if stored.is_empty() {
        if let (Some(parent), Some(start)) = (parent_start, events.first_mut()) {
            start.causes.push(parent);
        }
        // Citations of a session without a parent were linked while parsing.
        let start = match (s.start_id, parent_start) {
            (Some(id), None) => id,
            _ => link_chain(&mut events, &s.cites, Vec::new(), None)?
                .first()
                .copied()
                .ok_or_else(|| bad(&s.source, "/", "a session with no events"))?,
        };
        let link = Body::SessionLink(crate::core::SessionLink {
            session: s.session.clone(),
            store: memory.map(|(m, _)| m.to_owned()),
            memory_state: memory.map(|(_, h)| h),
            source: Some(s.source),
            meta: s.memory_at.map(|at| CanonicalJson::from_value(&serde_json::json!({"at": at}))),
        });
        let mut link = Draft::new(link_stream(&s.session), Actor::System("import".into()), link);
        link.causes.push(start);
        events.push(link);
        let batch =
            AppendBatch { events, expectations: vec![(stream, ExpectedVersion::NoStream)], ..AppendBatch::default() };
        return Ok((Plan::New(batch), start));
    }
    let start = stored[0].id();
    // The stored session without its ends (a later end supersedes an earlier one) must be
    // the file's session without its end, or the start of it.
    let content: Vec<&crate::store::StoredEvent> =
        stored.iter().filter(|e| e.event.header.kind != crate::core::Kind::SessionEnd).collect();
    let body_end =
        events.len() - usize::from(events.last().is_some_and(|d| d.body.kind() == crate::core::Kind::SessionEnd));
    let same = |e: &crate::store::StoredEvent, d: &Draft| {
        e.event.header.actor == d.actor
            && Some(e.event.header.time) == d.time
            && match (&e.event.body, &d.body) {
                // Imports before `session.link` kept the source and the store in the start:
                // the same run still, once those are set aside.
                (Body::SessionStart(stored), Body::SessionStart(parsed)) => {
                    let mut older = stored.clone();
                    (older.store, older.memory_state, older.source) = (None, None, None);
                    older == *parsed || {
                        // Harbor runs imported before the task took its dataset and the
                        // model its own steps' name.
                        let mut newer = parsed.clone();
                        (older.task_id, older.model, newer.task_id, newer.model) = (None, None, None, None);
                        older == newer
                    }
                }
                (Body::Grade(stored), Body::Grade(parsed)) => stored == parsed || older_grade(stored, parsed),
                (stored, parsed) => stored == parsed,
            }
    };
    let changed = |what: String| Error::Input {
        path: s.source.clone(),
        line: 0,
        reason: format!("session {} changed in its middle: {what}; {APPEND_ONLY}", s.session),
    };
    // The stored events are exactly the file's first ones (an end stays where it was,
    // as OTLP sessions keep it when later grades arrive): what follows them is new.
    if stored.len() <= events.len() && stored.iter().zip(&events).all(|(e, d)| same(e, d)) {
        if stored.len() == events.len() {
            return Ok((Plan::Present, start));
        }
        return grow(events, &s.cites, &stored, stream, start);
    }
    if content.len() > body_end {
        return Err(changed(format!("the store holds {} of its events, the file only {body_end}", content.len())));
    }
    if let Some(i) = (0..content.len()).find(|&i| !same(content[i], &events[i])) {
        return Err(changed(format!(
            "event {i} ({} at position {}) differs from the file's ({})",
            content[i].event.header.kind,
            content[i].position,
            events[i].body.kind()
        )));
    }
    let last = stored.last().filter(|e| e.event.header.kind == crate::core::Kind::SessionEnd);
    let end_same = match (last, events.get(body_end)) {
        // The same end read at another time (Claude Code sessions end at their last
        // message now, at their last line before): not a second end.
        (Some(e), Some(d)) => same(e, d) || (e.event.header.actor == d.actor && e.event.body == d.body),
        (None, None) => true,
        _ => false,
    };
    if content.len() == body_end && end_same {
        return Ok((Plan::Present, start));
    }
    // It grew: the new events chain after the stored head.
    let content: Vec<crate::store::StoredEvent> = content.into_iter().cloned().collect();
    let last = stored.last().cloned();
    grow_after(events, &s.cites, &content, last.as_ref(), stream, start)
}

/// The file's events past the stored ones `known` (in order), appended after the
/// stored head; their citations of stored events name the stored ids.
fn grow(
    events: Vec<Draft>,
    cites: &[(usize, usize)],
    stored: &[crate::store::StoredEvent],
    stream: String,
    start: crate::core::EventId,
) -> Result<(Plan, crate::core::EventId)> {
    grow_after(events, cites, stored, stored.last(), stream, start)
}

fn grow_after(
    mut events: Vec<Draft>,
    cites: &[(usize, usize)],
    known: &[crate::store::StoredEvent],
    head: Option<&crate::store::StoredEvent>,
    stream: String,
    start: crate::core::EventId,
) -> Result<(Plan, crate::core::EventId)> {
    let ids: Vec<crate::core::EventId> = known.iter().map(|e| e.id()).collect();
    let version = head.map_or(0, |e| e.version);
    for d in &mut events[ids.len()..] {
        d.causes.clear();
    }
    let stored_count = ids.len();
    link_chain(&mut events, cites, ids, head.map(|e| e.id()))?;
    let new: Vec<Draft> = events.drain(stored_count..).collect();
    let batch = AppendBatch {
        events: new,
        expectations: vec![(stream, ExpectedVersion::Exact(version))],
        ..AppendBatch::default()
    };
    Ok((Plan::Grow(batch), start))
}

/// A file read and parsed by [`parse_in_background`].
#[derive(Debug)]
pub enum Parsed {
    /// Sessions of an agent-run format.
    Sessions(Format, Vec<SessionEvents>),
    /// A dreamlog export (imported by [`crate::service::import_export`]).
    Export(Vec<u8>),
}

/// Reads and parses files on a background thread, one file ahead of the consumer, so
/// that parsing the next file overlaps appending this one. `format` `None` detects each
/// file's format. Results arrive in the order of `paths`.
pub fn parse_in_background(
    paths: Vec<String>,
    format: Option<Format>,
) -> std::sync::mpsc::Receiver<(String, Result<Parsed>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        for path in paths {
            let parsed =
                std::fs::read(&path).map_err(|source| Error::Io { path: path.clone(), source }).and_then(|bytes| {
                    match format.or_else(|| detect(&bytes)) {
                        None => Err(undetected_reason(&path, &bytes)),
                        Some(Format::Dreamlog) => Ok(Parsed::Export(bytes)),
                        Some(f) => parse(f, &path, &bytes).map(|s| Parsed::Sessions(f, s)),
                    }
                });
            if tx.send((path, parsed)).is_err() {
                return; // the consumer stopped (--fail-fast after a failed file)
            }
        }
    });
    rx
}

/// Links citations of sessions that have no parent session (their ids do not depend on
/// the store), so this work happens where parsing happens (off the append path).
fn link_all(sessions: &mut [SessionEvents]) -> Result<()> {
    let results = in_parallel(sessions.iter_mut().filter(|s| s.parent.is_none()).collect(), |s| {
        s.start_id = link_chain(&mut s.events, &s.cites, Vec::new(), None)?.first().copied();
        Ok(())
    });
    results.into_iter().collect()
}

/// `f` over `items` on every core (the items split in as many runs, in order); the
/// results in the items' order.
pub(crate) fn in_parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len().max(1));
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut runs: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    loop {
        let run: Vec<T> = items.by_ref().take(per).collect();
        if run.is_empty() {
            break;
        }
        runs.push(run);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            runs.into_iter().map(|run| scope.spawn(move || run.into_iter().map(f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

/// Adds each citation to `causes` and returns every event's id. `events[..known.len()]`
/// are stored already with the ids `known`; the rest go into the stream after `head` (a
/// new stream when `None`), so every id is known in advance: each event is chained to
/// the one before it, exactly as the store will chain them.
fn link_chain(
    events: &mut [Draft],
    cites: &[(usize, usize)],
    mut ids: Vec<crate::core::EventId>,
    head: Option<crate::core::EventId>,
) -> Result<Vec<crate::core::EventId>> {
    let by_event: std::collections::HashMap<usize, usize> = cites.iter().copied().collect();
    let mut prev = head;
    for (i, d) in events.iter_mut().enumerate().skip(ids.len()) {
        if let Some(&cited) = by_event.get(&i) {
            if let Some(id) = ids.get(cited) {
                d.causes.push(*id);
            }
        }
        let parents = prev.map(|p| vec![p]).unwrap_or_default();
        let sealed = d
            .seal(d.time.unwrap_or(0), parents)
            .map_err(|source| Error::Log(LogError::InvalidEvent { index: i, source }))?;
        prev = Some(sealed.id);
        ids.push(sealed.id);
    }
    Ok(ids)
}
