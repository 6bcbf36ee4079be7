//! Spans and log records of one trace → one session (OpenTelemetry GenAI semantic
//! conventions 1.44, OpenInference, and dreamlog's own export). Pure: the same telemetry
//! gives the same events, so a session is a projection of the raw batches it came from.
//!
//! What becomes what (docs/guide/importing.md has the table, field by field):
//! - the trace is the session; its id is the root's `gen_ai.conversation.id` (or
//!   OpenInference `session.id`), else the trace id;
//! - the root span (`invoke_agent`, an OpenInference `AGENT`, or any span without a
//!   parent) starts and ends it;
//! - chat spans (`gen_ai.operation.name` chat / text_completion / generate_content, an
//!   OpenInference `LLM`) give the conversation's new messages and the model's answer,
//!   with usage; the tool calls an answer makes wait for their results;
//! - `execute_tool` spans (and OpenInference `TOOL`) are actions, answering the call
//!   with their `gen_ai.tool.call.id`; a tool result that only appears in the next chat
//!   request answers its call there;
//! - `gen_ai.evaluation.result` events (log records or span events) and OpenInference
//!   `EVALUATOR` spans are grades;
//! - spans carrying `dreamlog.event` (what `dreamlog export otlp` writes) are that event,
//!   exactly.
//!
//! Absent content stays absent: a chat span without captured messages gives an
//! assistant message whose content is `null`, never text made up from other fields.
//!
//! Late spans: a session already stored is replayed in the order its events name their
//! spans (`meta.otel.span_id`), and what is new is appended after it, so spans that
//! arrive after their trace was assembled grow the session and never rewrite it.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Value};

use super::model::{LogRecord, Span, Telemetry};
use crate::core::{Action, ActionStatus, Actor, Body, CanonicalJson, Grade, GradeResult, Kind};
use crate::import::{SessionBuilder, SessionEvents, ToolResult};

/// The GenAI semantic conventions version this mapping follows.
pub const SEMCONV_VERSION: &str = "1.44.0";

/// The attribute `dreamlog export otlp` writes each event into, exactly.
pub const EVENT_ATTR: &str = "dreamlog.event";
/// The attribute holding an event's index in its session (its order on import).
pub const SEQ_ATTR: &str = "dreamlog.seq";

/// One trace's spans (each span id once: the first copy read wins) and log records.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Trace id (32 hex digits).
    pub trace_id: String,
    /// Spans.
    pub spans: Vec<Span>,
    /// Log records naming this trace.
    pub logs: Vec<LogRecord>,
}

/// Telemetry grouped by trace (in trace id order). Log records without a trace id
/// belong to no session and are counted in the second value.
pub fn by_trace(t: Telemetry) -> (Vec<Trace>, u64) {
    let mut traces: BTreeMap<String, Trace> = BTreeMap::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for s in t.spans {
        if seen.insert((s.trace_id.clone(), s.span_id.clone())) {
            let tr = traces.entry(s.trace_id.clone()).or_default();
            tr.trace_id = s.trace_id.clone();
            tr.spans.push(s);
        }
    }
    let mut loose = 0;
    for l in t.logs {
        match l.trace_id.clone() {
            Some(id) => {
                let tr = traces.entry(id.clone()).or_default();
                tr.trace_id = id;
                tr.logs.push(l);
            }
            None => loose += 1,
        }
    }
    (traces.into_values().collect(), loose)
}

/// What a span or record is to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Agent,
    Chat,
    Tool,
    Evaluator,
    Other,
}

fn role_of(s: &Span) -> Role {
    if s.attrs.contains_key(EVENT_ATTR) {
        return Role::Other; // handled before roles are asked
    }
    let op = s.str("gen_ai.operation.name").unwrap_or_default();
    let oi = s.str("openinference.span.kind").unwrap_or_default();
    match (op, oi) {
        ("invoke_agent" | "create_agent" | "invoke_workflow", _) | (_, "AGENT") => Role::Agent,
        ("chat" | "text_completion" | "generate_content", _) | (_, "LLM") => Role::Chat,
        ("execute_tool", _) | (_, "TOOL") => Role::Tool,
        (_, "EVALUATOR") => Role::Evaluator,
        _ => Role::Other,
    }
}

/// Whether a trace holds anything a session is made of (GenAI, OpenInference or
/// dreamlog spans, or evaluation results); traces of plain HTTP spans are not sessions.
pub fn is_session(t: &Trace) -> bool {
    t.spans.iter().any(|s| s.attrs.contains_key(EVENT_ATTR) || role_of(s) != Role::Other)
        || t.logs.iter().any(is_evaluation)
}

fn is_evaluation(l: &LogRecord) -> bool {
    l.event_name == "gen_ai.evaluation.result" || l.attrs.contains_key(EVENT_ATTR)
}

/// The key an event's `meta.otel` names its source by: a span's id, or a log record's
/// `log:` digest (records have no id of their own).
fn log_key(l: &LogRecord) -> String {
    let text = format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        l.time_ns,
        l.event_name,
        serde_json::to_string(&l.attrs).unwrap_or_default(),
        l.span_id.as_deref().unwrap_or_default()
    );
    format!("log:{}", &blake3::hash(text.as_bytes()).to_hex()[..16])
}

/// The span id or log key of a stored event (its `meta.otel.span_id`).
pub fn source_key(body: &Body) -> Option<String> {
    let meta = match body {
        Body::SessionStart(b) => b.meta.as_ref(),
        Body::SessionEnd(b) => b.meta.as_ref(),
        Body::Action(b) => b.meta.as_ref(),
        Body::Message(b) => b.meta.as_ref(),
        Body::Grade(b) => b.meta.as_ref(),
        _ => None,
    }?;
    meta.to_value().pointer("/otel/span_id").and_then(Value::as_str).map(str::to_owned)
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

/// The session id of a trace: `gen_ai.conversation.id` (or OpenInference `session.id`)
/// of its root or agent span, else the trace id.
pub fn session_id(t: &Trace) -> String {
    let (root, agent) = anchors(t);
    [agent, root]
        .into_iter()
        .flatten()
        .find_map(|s| s.str("gen_ai.conversation.id").or_else(|| s.str("session.id")).filter(|v| !v.trim().is_empty()))
        .map(str::to_owned)
        .unwrap_or_else(|| t.trace_id.clone())
}

/// The root span (no parent) and the outermost agent span of a trace.
fn anchors(t: &Trace) -> (Option<&Span>, Option<&Span>) {
    let root = t.spans.iter().filter(|s| s.parent.is_none()).min_by_key(|s| (s.start_ns, s.span_id.as_str()));
    let agent = t.spans.iter().filter(|s| role_of(s) == Role::Agent).min_by_key(|s| (s.start_ns, s.span_id.as_str()));
    (root, agent)
}

/// One thing that becomes events, with its order key.
enum Item<'a> {
    Span(&'a Span),
    /// A span event or log record that is an evaluation result (or a dreamlog event).
    Record {
        key: String,
        time_ns: u64,
        attrs: &'a super::model::Attributes,
        span: Option<&'a str>,
        evaluator: String,
    },
}

impl Item<'_> {
    fn key(&self) -> String {
        match self {
            Item::Span(s) => s.span_id.clone(),
            Item::Record { key, .. } => key.clone(),
        }
    }
    fn time(&self) -> u64 {
        match self {
            Item::Span(s) => s.start_ns,
            Item::Record { time_ns, .. } => *time_ns,
        }
    }
    fn seq(&self) -> Option<i64> {
        match self {
            Item::Span(s) => s.attrs.get(SEQ_ATTR),
            Item::Record { attrs, .. } => attrs.get(SEQ_ATTR),
        }
        .and_then(Value::as_i64)
    }
}

/// What a stored version of a session fixes: its id, its start, and the source keys of
/// its events in order (see [`assemble`]).
#[derive(Clone, Debug)]
pub struct Prior {
    /// The session id.
    pub session: String,
    /// The `session.start`: body, actor, time.
    pub start: (Body, Actor, u64),
    /// Source keys (`meta.otel.span_id`) of its events, in order.
    pub keys: Vec<String>,
}

impl Prior {
    /// From a stored session's events (body, actor, time), in order; `None` when it has
    /// no start.
    pub fn of<'a>(session: &str, events: impl IntoIterator<Item = (&'a Body, &'a Actor, u64)>) -> Option<Prior> {
        let mut start = None;
        let mut keys = Vec::new();
        for (body, actor, time) in events {
            if start.is_none() && body.kind() == Kind::SessionStart {
                start = Some((body.clone(), actor.clone(), time));
                continue;
            }
            if let Some(k) = source_key(body) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        Some(Prior { session: session.to_owned(), start: start?, keys })
    }
}

/// Builds a trace's session (`None` when the trace holds nothing of one). With `prior` (a stored version of it) the session keeps
/// its id and start, and the spans its events name are replayed first, in their stored
/// order, so the stored events come out the same and anything new is appended after
/// them. `source` goes into the session's `session.link`.
pub fn assemble(t: &Trace, prior: Option<&Prior>, source: &str) -> Option<SessionEvents> {
    let (root, agent) = anchors(t);
    if !is_session(t) {
        return None;
    }
    let session = match prior {
        Some(p) => p.session.clone(),
        None => session_id(t),
    };
    let mut b = SessionBuilder::new(session.clone(), source.to_owned());
    let known: &[String] = prior.map(|p| p.keys.as_slice()).unwrap_or_default();
    let known_at: HashMap<&str, usize> = known.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();

    // The start: a stored version's as it is; dreamlog's own (an exported session); else
    // made from the agent (or root) span.
    let head = agent.or(root);
    let agent_name = match prior {
        Some(p) => match &p.start.0 {
            Body::SessionStart(s) => s.agent.clone(),
            _ => "unknown".to_owned(),
        },
        None => head
            .and_then(|h| h.str("gen_ai.agent.name").or_else(|| h.str("agent.name")))
            .or_else(|| t.spans.iter().find_map(|s| s.origin.service()))
            .or_else(|| t.logs.iter().find_map(|l| l.origin.service()))
            .unwrap_or("unknown")
            .to_owned(),
    };
    let agent_actor = Actor::Agent(agent_name.clone());

    // Items: every span but the head, span events and log records that are evaluation
    // results; the known ones in their stored order, then the new ones.
    let mut items: Vec<Item> = Vec::new();
    // Two instrumentations recording one call (the SDK's own span and an
    // instrumentation's: the same response id, overlapping in time): keep the one with
    // the most content.
    let by_id: HashMap<&str, &Span> = t.spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let chats: Vec<&Span> = t.spans.iter().filter(|s| role_of(s) == Role::Chat).collect();
    let duplicate = |s: &Span| {
        let Some(id) = s.str("gen_ai.response.id") else { return false };
        chats.iter().any(|o| {
            o.span_id != s.span_id
                && o.str("gen_ai.response.id") == Some(id)
                && o.start_ns <= s.end_ns
                && s.start_ns <= o.end_ns
                && (content_score(o), o.span_id.as_str()) > (content_score(s), s.span_id.as_str())
        })
    };
    for s in &t.spans {
        // The head span is the start and the end (its span events may still be records).
        if head.is_none_or(|h| h.span_id != s.span_id) {
            let skip = role_of(s) == Role::Chat
                && (s.parent.as_deref().and_then(|p| by_id.get(p)).is_some_and(|p| role_of(p) == Role::Chat)
                    || duplicate(s));
            if !skip {
                items.push(Item::Span(s));
            }
        }
        for (i, e) in s.events.iter().enumerate() {
            if e.name == "gen_ai.evaluation.result" || e.attrs.contains_key(EVENT_ATTR) {
                items.push(Item::Record {
                    key: format!("{}#{i}", s.span_id),
                    time_ns: e.time_ns,
                    attrs: &e.attrs,
                    span: Some(&s.span_id),
                    evaluator: s.origin.service().unwrap_or(&s.origin.scope).to_owned(),
                });
            }
        }
    }
    for l in t.logs.iter().filter(|l| is_evaluation(l)) {
        items.push(Item::Record {
            key: log_key(l),
            time_ns: l.time_ns,
            attrs: &l.attrs,
            span: l.span_id.as_deref(),
            evaluator: l.origin.service().unwrap_or(&l.origin.scope).to_owned(),
        });
    }
    items.sort_by(|a, b| {
        let ka = known_at.get(a.key().as_str()).copied();
        let kb = known_at.get(b.key().as_str()).copied();
        match (ka, kb) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => {
                (a.seq().unwrap_or(i64::MAX), a.time(), a.key()).cmp(&(b.seq().unwrap_or(i64::MAX), b.time(), b.key()))
            }
        }
    });

    let own_start = head.filter(|h| h.attrs.contains_key(EVENT_ATTR));
    match (prior, own_start) {
        (Some(p), _) => b.push(p.start.0.clone(), p.start.1.clone(), p.start.2),
        (None, Some(h)) => {
            if let Some((body, actor, time, _)) = own_event(&h.attrs[EVENT_ATTR]) {
                b.push(body, actor, time);
            }
        }
        (None, None) => {
            let start_span = head;
            let model = start_span
                .and_then(|h| h.str("gen_ai.request.model"))
                .or_else(|| t.spans.iter().filter(|s| role_of(s) == Role::Chat).find_map(model_of))
                .map(str::to_owned);
            let mut otel = json!({"trace_id": t.trace_id, "semconv": SEMCONV_VERSION});
            if let Some(h) = start_span {
                otel["span_id"] = json!(h.span_id);
                otel["name"] = json!(h.name);
            }
            if let Some(c) = head.and_then(|h| h.str("gen_ai.conversation.id")) {
                otel["conversation_id"] = json!(c);
            }
            if let Some(svc) = t.spans.iter().find_map(|s| s.origin.service()) {
                otel["service"] = json!(svc);
            }
            let time = start_span.map(|h| h.start_ns).or_else(|| items.iter().map(Item::time).min()).unwrap_or(0);
            let task = start_span.and_then(|h| h.str("dreamlog.task.id")).map(str::to_owned);
            let task_text = start_span.and_then(|h| h.str("dreamlog.task")).map(str::to_owned);
            let body = Body::SessionStart(crate::core::SessionStart {
                session: session.clone(),
                agent: agent_name.clone(),
                model,
                task_id: task,
                task: task_text,
                store: None,
                memory_state: None,
                source: None,
                meta: Some(CanonicalJson::from_value(&json!({ "otel": otel }))),
            });
            b.push(body, agent_actor.clone(), ms(time));
        }
    }
    // A stored end stays where it was (grades that came later follow it); a new one closes.
    // A new end comes before the grades given after the head span ended.
    let end_at = head.map(|h| match known_at.get(h.span_id.as_str()) {
        Some(&k) => items.iter().take_while(|i| known_at.get(i.key().as_str()).is_some_and(|&x| x < k)).count(),
        None => items
            .iter()
            .position(|i| {
                matches!(i, Item::Record { .. })
                    && !known_at.contains_key(i.key().as_str())
                    && i.seq().is_none()
                    && i.time() > h.end_ns
            })
            .unwrap_or(items.len()),
    });
    let end_event = |b: &mut SessionBuilder| {
        let Some(h) = head.filter(|h| !h.attrs.contains_key(EVENT_ATTR)) else { return };
        let status = match h.status {
            2 => "error",
            1 => "ok",
            _ => "completed",
        };
        let mut otel = json!({"span_id": h.span_id});
        if !h.status_message.is_empty() {
            otel["status_message"] = json!(h.status_message);
        }
        b.end(agent_actor.clone(), status.to_owned(), Some(json!({ "otel": otel })), ms(h.end_ns));
    };
    let mut conv =
        Conversation { agent: agent_actor.clone(), seen: Vec::new(), system_seen: false, answered: HashSet::new() };
    for (i, item) in items.iter().enumerate() {
        if end_at == Some(i) {
            end_event(&mut b);
        }
        match item {
            Item::Span(s) if s.attrs.contains_key(EVENT_ATTR) => own(&mut b, &s.attrs),
            Item::Record { attrs, .. } if attrs.contains_key(EVENT_ATTR) => own(&mut b, attrs),
            Item::Span(s) => match role_of(s) {
                Role::Chat => conv.chat(&mut b, s),
                Role::Tool => tool(&mut b, s, &agent_actor, &mut conv.answered),
                Role::Evaluator => {
                    let target = s.parent.clone().unwrap_or_default();
                    grade(&mut b, &s.attrs, "evaluation.", s.start_ns, &target, &s.span_id, &evaluator_of(s));
                }
                // Nested agents (sub-agents of the same trace) and other spans add nothing.
                Role::Agent | Role::Other => {}
            },
            Item::Record { key, time_ns, attrs, span, evaluator } => {
                grade(&mut b, attrs, "gen_ai.evaluation.", *time_ns, span.unwrap_or_default(), key, evaluator);
            }
        }
    }

    // The end: where it was stored (what arrived later follows it; rebuilding a stored
    // session gives it back exactly), else after what came before it.
    if end_at.is_none_or(|at| at >= items.len()) {
        end_event(&mut b);
    }
    // A sub-agent's session names its parent session (dreamlog's export writes it).
    let parent = head.and_then(|h| h.str("dreamlog.parent_session")).map(str::to_owned);
    Some(b.finish(parent))
}

/// How much of a call's content a chat span holds (two instrumentations of one call).
fn content_score(s: &Span) -> usize {
    s.attrs
        .keys()
        .filter(|k| k.starts_with("gen_ai.input") || k.starts_with("gen_ai.output") || k.starts_with("llm."))
        .count()
}

fn model_of(s: &Span) -> Option<&str> {
    s.str("gen_ai.response.model")
        .or_else(|| s.str("gen_ai.request.model"))
        .or_else(|| s.str("llm.model_name"))
        .or_else(|| s.str("llm.request.model_name"))
}

fn evaluator_of(s: &Span) -> String {
    s.origin.service().unwrap_or(&s.origin.scope).to_owned()
}

/// A `dreamlog.event` attribute: the event's body, actor and time.
fn own_event(v: &Value) -> Option<(Body, Actor, u64, Option<i64>)> {
    let v: Value = match v {
        Value::String(s) => serde_json::from_str(s).ok()?,
        other => other.clone(),
    };
    let kind: Kind = serde_json::from_value(v.get("kind")?.clone()).ok()?;
    let actor: Actor = serde_json::from_value(v.get("actor")?.clone()).ok()?;
    let time = v.get("time").and_then(Value::as_u64).unwrap_or(0);
    let body = Body::from_json(kind, v.get("body")?.clone()).ok()?;
    Some((body, actor, time, v.get("cause").and_then(Value::as_i64)))
}

/// Pushes a `dreamlog.event` (one that does not read is left out).
fn own(b: &mut SessionBuilder, attrs: &super::model::Attributes) {
    if let Some((body, actor, time, cause)) = own_event(&attrs[EVENT_ATTR]) {
        b.push_citing(body, actor, time, cause.and_then(|c| usize::try_from(c).ok()));
    }
}

/// A JSON text attribute read as JSON (arguments and results are JSON strings), else kept.
fn json_attr(v: Option<&Value>) -> Option<Value> {
    match v? {
        Value::String(s) => Some(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))),
        other => Some(other.clone()),
    }
}

fn tool(b: &mut SessionBuilder, s: &Span, actor: &Actor, answered: &mut HashSet<String>) {
    let name = s.str("gen_ai.tool.name").or_else(|| s.str("tool.name")).unwrap_or(&s.name).to_owned();
    let call_id = s.str("gen_ai.tool.call.id").or_else(|| s.str("tool_call.id")).map(str::to_owned);
    let input = json_attr(s.attrs.get("gen_ai.tool.call.arguments"))
        .or_else(|| json_attr(s.attrs.get("tool.parameters")))
        .or_else(|| json_attr(s.attrs.get("input.value")))
        .unwrap_or(Value::Null);
    let output = json_attr(s.attrs.get("gen_ai.tool.call.result")).or_else(|| json_attr(s.attrs.get("output.value")));
    let failed = s.status == 2 || s.attrs.contains_key("error.type");
    let status = if failed { ActionStatus::Error } else { ActionStatus::Ok };
    let mut meta = json!({"otel": {"span_id": s.span_id}});
    if failed {
        let why = s.str("error.type").map(str::to_owned).unwrap_or_else(|| s.status_message.clone());
        meta["error"] = json!(why);
    }
    let time = ms(s.start_ns);
    if let Some(id) = call_id.as_deref().filter(|id| b.is_pending(id)) {
        answered.insert(id.to_owned());
        let r = ToolResult { actor: actor.clone(), output: output.as_ref(), status, meta: Some(meta), time };
        b.result(id, r);
        return;
    }
    let action = Action {
        session: b.session.clone(),
        name,
        call_id,
        input: CanonicalJson::from_value(&input),
        output: output.as_ref().map(CanonicalJson::from_value),
        status,
        meta: Some(CanonicalJson::from_value(&meta)),
    };
    b.action(action, actor.clone(), time, false);
}

fn label_result(label: &str) -> Option<(GradeResult, f64)> {
    match label.to_ascii_lowercase().as_str() {
        "pass" | "passed" | "correct" | "true" | "yes" | "satisfied" | "success" => Some((GradeResult::Satisfied, 1.0)),
        "fail" | "failed" | "incorrect" | "false" | "no" | "failure" => Some((GradeResult::Failed, 0.0)),
        _ => None,
    }
}

/// A grade from evaluation attributes (`prefix` `gen_ai.evaluation.` or OpenInference's
/// `evaluation.`). A score outside 0..1 without a pass/fail label is not a grade
/// dreamlog can compare; it is kept as an action-free note in nothing and skipped.
fn grade(
    b: &mut SessionBuilder,
    attrs: &super::model::Attributes,
    prefix: &str,
    time_ns: u64,
    target_span: &str,
    key: &str,
    evaluator: &str,
) {
    let get = |k: &str| attrs.get(&format!("{prefix}{k}"));
    let name = get("name").and_then(Value::as_str).unwrap_or("evaluation").to_owned();
    let raw = get("score.value").or_else(|| get("score")).and_then(|v| match v {
        Value::String(s) => s.parse::<f64>().ok(),
        v => v.as_f64(),
    });
    let label = get("score.label").or_else(|| get("label")).and_then(Value::as_str);
    let from_label = label.and_then(label_result);
    let score = match (raw, &from_label) {
        (Some(x), _) if (0.0..=1.0).contains(&x) => x,
        (_, Some((_, x))) => *x,
        _ => return,
    };
    let result = match (&from_label, label) {
        (Some((r, _)), _) => r.clone(),
        (None, Some(l)) => GradeResult::from_name(l),
        (None, None) if score >= 1.0 => GradeResult::Satisfied,
        (None, None) if score <= 0.0 => GradeResult::Failed,
        (None, None) => GradeResult::Other("scored".into()),
    };
    let mut meta = json!({"otel": {"span_id": key, "evaluated_span_id": target_span}});
    if let Some(e) = get("explanation").and_then(Value::as_str) {
        meta["explanation"] = json!(e);
    }
    if let Some(l) = label {
        meta["label"] = json!(l);
    }
    if let Some(x) = raw.filter(|x| !(0.0..=1.0).contains(x)) {
        meta["score_value"] = json!(x);
    }
    if let Some(r) = attrs.get("gen_ai.response.id").and_then(Value::as_str) {
        meta["response_id"] = json!(r);
    }
    let evaluator = if evaluator.is_empty() { "otel" } else { evaluator };
    let body = Body::Grade(Grade {
        session: b.session.clone(),
        target: None,
        rubric: name,
        evaluator: evaluator.to_owned(),
        score,
        result,
        criteria: Vec::new(),
        meta: Some(CanonicalJson::from_value(&meta)),
    });
    b.push(body, Actor::Evaluator(evaluator.to_owned()), ms(time_ns));
}

/// The conversation seen so far, to tell a chat request's new messages from its history.
struct Conversation {
    /// Who answers (the session's agent).
    agent: Actor,
    seen: Vec<Value>,
    system_seen: bool,
    /// Calls answered already.
    answered: HashSet<String>,
}

impl Conversation {
    fn chat(&mut self, b: &mut SessionBuilder, s: &Span) {
        let agent = &self.agent.clone();
        let time = ms(s.start_ns);
        let end = ms(s.end_ns.max(s.start_ns));
        if !self.system_seen {
            if let Some(sys) = json_attr(s.attrs.get("gen_ai.system_instructions")) {
                self.system_seen = true;
                let content = json!({"role": "system", "parts": sys});
                b.message_with(Actor::Human("system".into()), "system", &content, time, otel_meta(s));
            }
        }
        let inputs = input_messages(s);
        let outputs = output_messages(s);
        if let Some(inputs) = inputs {
            let new: Vec<Value> = if inputs.len() >= self.seen.len() && inputs[..self.seen.len()] == self.seen[..] {
                inputs[self.seen.len()..].to_vec()
            } else {
                inputs.iter().filter(|m| !self.seen.contains(m)).cloned().collect()
            };
            for m in &new {
                self.input(b, m, s, time);
            }
            self.seen = inputs;
        }
        // The answer: content as captured (or null), with the model and usage.
        let mut meta = otel_meta(s);
        if let Some(m) = model_of(s) {
            meta["model"] = json!(m);
        }
        let usage = usage_of(s);
        if !usage.as_object().is_some_and(|u| u.is_empty()) {
            meta["usage"] = usage;
        }
        for k in ["gen_ai.response.id", "gen_ai.provider.name", "gen_ai.response.finish_reasons"] {
            if let Some(v) = s.attrs.get(k) {
                meta[k.trim_start_matches("gen_ai.").replace('.', "_")] = v.clone();
            }
        }
        if s.status == 2 {
            meta["error"] = json!(s.str("error.type").unwrap_or(&s.status_message));
        }
        match outputs {
            Some(outputs) if !outputs.is_empty() => {
                for (i, m) in outputs.iter().enumerate() {
                    let mut meta = meta.clone();
                    if i > 0 {
                        meta.as_object_mut().map(|o| o.remove("usage"));
                    }
                    b.message_with(agent.clone(), "assistant", m, end, meta);
                    for p in parts(m) {
                        if p.get("type").and_then(Value::as_str) == Some("tool_call") {
                            if let (Some(id), Some(name)) =
                                (p.get("id").and_then(Value::as_str), p.get("name").and_then(Value::as_str))
                            {
                                let args = p
                                    .get("arguments")
                                    .cloned()
                                    .map(|a| json_attr(Some(&a)).unwrap_or(a))
                                    .unwrap_or(Value::Null);
                                b.call(id.to_owned(), name.to_owned(), args);
                            }
                        }
                    }
                    let mut plain = m.clone();
                    plain.as_object_mut().map(|o| o.remove("finish_reason"));
                    self.seen.push(plain);
                }
            }
            _ => b.message_with(agent.clone(), "assistant", &Value::Null, end, meta),
        }
    }

    /// A new message of a request: tool results answer their calls; what else it says
    /// is a message.
    fn input(&mut self, b: &mut SessionBuilder, m: &Value, s: &Span, time: u64) {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let mut rest = Vec::new();
        for p in parts(m) {
            let is_response = p.get("type").and_then(Value::as_str) == Some("tool_call_response");
            match (is_response, p.get("id").and_then(Value::as_str)) {
                (true, Some(id)) if b.is_pending(id) => {
                    let out = p.get("response").cloned().unwrap_or(Value::Null);
                    self.answered.insert(id.to_owned());
                    let r = ToolResult {
                        actor: self.agent.clone(),
                        output: Some(&out),
                        status: ActionStatus::Ok,
                        meta: Some(otel_meta(s)),
                        time,
                    };
                    b.result(id, r);
                }
                // Answered already (by its execute_tool span).
                (true, Some(id)) if self.answered.contains(id) => {}
                _ => rest.push(p.clone()),
            }
        }
        if rest.is_empty() && !parts(m).is_empty() {
            return;
        }
        let mut content = m.clone();
        if rest.len() != parts(m).len() {
            content["parts"] = Value::Array(rest);
        }
        let actor = match role {
            "assistant" => self.agent.clone(),
            other => Actor::Human(other.to_owned()),
        };
        b.message_with(actor, role, &content, time, otel_meta(s));
    }
}

fn otel_meta(s: &Span) -> Value {
    json!({"otel": {"span_id": s.span_id}})
}

fn parts(m: &Value) -> Vec<Value> {
    m.get("parts").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn usage_of(s: &Span) -> Value {
    let mut u = serde_json::Map::new();
    for (k, out) in [
        ("gen_ai.usage.input_tokens", "input_tokens"),
        ("gen_ai.usage.output_tokens", "output_tokens"),
        ("gen_ai.usage.cache_read.input_tokens", "cache_read_input_tokens"),
        ("gen_ai.usage.cache_creation.input_tokens", "cache_creation_input_tokens"),
        ("llm.token_count.prompt", "input_tokens"),
        ("llm.token_count.completion", "output_tokens"),
    ] {
        if let Some(v) = s.attrs.get(k).filter(|v| v.is_number()) {
            u.entry(out).or_insert(v.clone());
        }
    }
    Value::Object(u)
}

/// A chat span's request messages in the conventions' form (`{role, parts}`):
/// `gen_ai.input.messages`, OpenInference `llm.input_messages.*`, or the older
/// `gen_ai.prompt.*`.
fn input_messages(s: &Span) -> Option<Vec<Value>> {
    if let Some(Value::Array(ms)) = json_attr(s.attrs.get("gen_ai.input.messages")) {
        return Some(ms);
    }
    flattened(s, "llm.input_messages.").or_else(|| legacy(s, "gen_ai.prompt."))
}

fn output_messages(s: &Span) -> Option<Vec<Value>> {
    if let Some(Value::Array(ms)) = json_attr(s.attrs.get("gen_ai.output.messages")) {
        return Some(ms);
    }
    flattened(s, "llm.output_messages.").or_else(|| legacy(s, "gen_ai.completion."))
}

/// Attributes `PREFIX{i}.REST` grouped by `i`, in order.
fn indexed<'a>(s: &'a Span, prefix: &str) -> BTreeMap<usize, Vec<(&'a str, &'a Value)>> {
    let mut out: BTreeMap<usize, Vec<(&str, &Value)>> = BTreeMap::new();
    for (k, v) in s.attrs.range(prefix.to_owned()..) {
        let Some(rest) = k.strip_prefix(prefix) else { break };
        let Some((i, field)) = rest.split_once('.') else { continue };
        if let Ok(i) = i.parse::<usize>() {
            out.entry(i).or_default().push((field, v));
        }
    }
    out
}

/// OpenInference's flattened messages → `{role, parts}`.
fn flattened(s: &Span, prefix: &str) -> Option<Vec<Value>> {
    let groups = indexed(s, prefix);
    if groups.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for fields in groups.values() {
        let get = |k: &str| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| *v);
        let role = get("message.role").and_then(Value::as_str).unwrap_or("user");
        let mut parts = Vec::new();
        if let Some(c) = get("message.content").and_then(Value::as_str) {
            parts.push(json!({"type": "text", "content": c}));
        }
        let mut texts: BTreeMap<usize, String> = BTreeMap::new();
        let mut calls: BTreeMap<usize, serde_json::Map<String, Value>> = BTreeMap::new();
        for (f, v) in fields {
            if let Some(rest) = f.strip_prefix("message.contents.") {
                if let Some((j, k)) = rest.split_once('.') {
                    if k == "message_content.text" {
                        if let (Ok(j), Some(t)) = (j.parse(), v.as_str()) {
                            texts.insert(j, t.to_owned());
                        }
                    }
                }
            } else if let Some(rest) = f.strip_prefix("message.tool_calls.") {
                if let Some((j, k)) = rest.split_once('.') {
                    if let Ok(j) = j.parse() {
                        let call = calls.entry(j).or_default();
                        match k {
                            "tool_call.id" => {
                                call.insert("id".into(), (*v).clone());
                            }
                            "tool_call.function.name" => {
                                call.insert("name".into(), (*v).clone());
                            }
                            "tool_call.function.arguments" => {
                                call.insert("arguments".into(), json_attr(Some(v)).unwrap_or(Value::Null));
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        parts.extend(texts.into_values().map(|t| json!({"type": "text", "content": t})));
        for (_, mut c) in calls {
            c.insert("type".into(), json!("tool_call"));
            parts.push(Value::Object(c));
        }
        if let Some(id) = get("message.tool_call_id").and_then(Value::as_str) {
            // A tool's answer: its content is the response.
            let response = parts.first().and_then(|p| p.get("content")).cloned().unwrap_or(Value::Null);
            parts = vec![json!({"type": "tool_call_response", "id": id, "response": response})];
        }
        out.push(json!({"role": role, "parts": parts}));
    }
    Some(out)
}

/// The older OpenLLMetry attributes `gen_ai.prompt.{i}.role/content` → `{role, parts}`.
fn legacy(s: &Span, prefix: &str) -> Option<Vec<Value>> {
    let groups = indexed(s, prefix);
    if groups.is_empty() {
        return None;
    }
    Some(
        groups
            .values()
            .map(|fields| {
                let get = |k: &str| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| *v);
                let role = get("role").and_then(Value::as_str).unwrap_or("user");
                let parts: Vec<Value> = get("content")
                    .map(|c| vec![json!({"type": "text", "content": json_attr(Some(c)).unwrap_or(Value::Null)})])
                    .unwrap_or_default();
                json!({"role": role, "parts": parts})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, name: &str, start: u64, attrs: Value) -> Span {
        Span {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: id.into(),
            parent: parent.map(str::to_owned),
            name: name.into(),
            start_ns: start * 1_000_000,
            end_ns: (start + 5) * 1_000_000,
            attrs: attrs.as_object().expect("an object").clone().into_iter().collect(),
            events: Vec::new(),
            status: 0,
            status_message: String::new(),
            origin: Default::default(),
        }
    }

    fn kinds(s: &SessionEvents) -> Vec<&'static str> {
        s.events.iter().map(|d| d.body.kind().name()).collect()
    }

    #[test]
    fn a_late_tool_span_grows_the_session_after_what_was_stored() {
        let root = span(
            "00000000000000a1",
            None,
            "invoke_agent bot",
            1,
            json!({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bot"}),
        );
        let t1 = span(
            "00000000000000b1",
            Some("00000000000000a1"),
            "execute_tool x",
            10,
            json!({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "x", "gen_ai.tool.call.arguments": "{\"a\":1}"}),
        );
        let t0 = span(
            "00000000000000b0",
            Some("00000000000000a1"),
            "execute_tool y",
            5,
            json!({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "y"}),
        );
        let first = Trace { trace_id: root.trace_id.clone(), spans: vec![root.clone(), t1.clone()], logs: vec![] };
        let a = assemble(&first, None, "otlp:test").expect("a session");
        assert_eq!(kinds(&a), ["session.start", "action", "session.end"]);
        let prior =
            Prior::of(&a.session, a.events.iter().map(|d| (&d.body, &d.actor, d.time.unwrap_or(0)))).expect("a start");
        // y started earlier but arrived later: it comes after what was stored.
        let later = Trace { trace_id: root.trace_id.clone(), spans: vec![t0, root, t1], logs: vec![] };
        let b = assemble(&later, Some(&prior), "otlp:test").expect("a session");
        // A late span comes after the stored end: what was stored is never rewritten.
        assert_eq!(kinds(&b), ["session.start", "action", "session.end", "action"]);
        for (x, y) in a.events.iter().zip(&b.events).take(3) {
            assert_eq!(x.body, y.body);
        }
        let Body::Action(y) = &b.events[3].body else { panic!("an action") };
        assert_eq!(y.name, "y");
        assert_eq!(y.input.to_value(), Value::Null, "no arguments recorded: none invented");
    }
}
