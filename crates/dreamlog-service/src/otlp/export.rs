//! Sessions out as OTLP/JSON (`dreamlog export otlp`): one traces request per session
//! and, when it is graded, one logs request with its grades as `gen_ai.evaluation.result`
//! events; JSON Lines, as the collector's file exporter writes and its `otlpjsonfile`
//! receiver reads.
//!
//! A session is one trace: an `invoke_agent` root span for its start, an `execute_tool`
//! span per action, a `chat` span per assistant message (with usage), span events for
//! the other messages and ends. Every event also rides along whole in `dreamlog.event`
//! (with `dreamlog.seq`, its place in the session), so importing the file gives back the
//! same events with the same ids; tools that know only the conventions read the rest.

use std::io::Write;

use serde_json::{json, Value};

use crate::core::{ActionStatus, Body, EventId};
use crate::error::{Error, Result};
use crate::import::otlp::{EVENT_ATTR, SEQ_ATTR};
use crate::service::Service;
use crate::store::StoredEvent;

/// Which sessions to export.
#[derive(Clone, Debug, Default)]
pub struct ExportSelection {
    /// These sessions (ids or unique prefixes); every session when empty.
    pub sessions: Vec<String>,
    /// Only this agent's.
    pub agent: Option<String>,
    /// Only sessions that started at or after this time (ms since the epoch).
    pub since: Option<u64>,
    /// Only sessions that started before this time (ms since the epoch).
    pub until: Option<u64>,
}

/// Writes the selected sessions; returns how many.
pub fn export_sessions(
    svc: &dyn Service,
    sel: &ExportSelection,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    let ids: Vec<String> = if sel.sessions.is_empty() {
        svc.sessions()?
            .into_iter()
            .filter(|s| sel.agent.as_ref().is_none_or(|a| s.agent.as_ref() == Some(a)))
            .filter(|s| sel.since.is_none_or(|t| s.time.is_some_and(|x| x >= t)))
            .filter(|s| sel.until.is_none_or(|t| s.time.is_some_and(|x| x < t)))
            .map(|s| s.id)
            .collect()
    } else {
        sel.sessions.clone()
    };
    let io = |source| Error::Io { path: "otlp export".into(), source };
    let mut n = 0;
    for id in ids {
        let detail = svc.session(&id)?;
        if sel.agent.is_some() && !sel.sessions.is_empty() {
            let agent = detail.events.iter().find_map(|e| match &e.event.body {
                Body::SessionStart(s) => Some(s.agent.clone()),
                _ => None,
            });
            if agent != sel.agent {
                continue;
            }
        }
        // A sub-agent's start cites its parent session's start: name that session.
        let parent = match detail.events.first() {
            Some(start) => {
                let mut parent = None;
                for c in &start.event.header.causes {
                    if let Ok(e) = svc.event(&c.to_string()) {
                        parent =
                            e.event.header.stream.strip_prefix(crate::core::streams::SESSION_PREFIX).map(str::to_owned);
                    }
                }
                parent
            }
            None => None,
        };
        let (traces, logs) = session_requests(&detail.session, &detail.events, parent.as_deref());
        serde_json::to_writer(&mut *out, &traces).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
        if let Some(logs) = logs {
            serde_json::to_writer(&mut *out, &logs).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)?;
        }
        n += 1;
        progress(n);
    }
    Ok(n)
}

fn attr(key: &str, v: &Value) -> Value {
    let value = match v {
        Value::String(s) => json!({"stringValue": s}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": key, "value": value})
}

fn ns(ms: u64) -> String {
    (u128::from(ms) * 1_000_000).to_string()
}

/// 2·`len` hex digits derived from `seed`.
fn derived_id(seed: &str, len: usize) -> String {
    hex::encode(&blake3::hash(seed.as_bytes()).as_bytes()[..len])
}

/// The trace id of a session: the one it was received with, else derived from its id.
fn trace_id_of(session: &str, events: &[StoredEvent]) -> String {
    events
        .iter()
        .find_map(|e| match &e.event.body {
            Body::SessionStart(s) => s
                .meta
                .as_ref()
                .and_then(|m| m.to_value().pointer("/otel/trace_id").and_then(Value::as_str).map(str::to_owned)),
            _ => None,
        })
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| derived_id(&format!("dreamlog session {session}"), 16))
}

/// The event whole, as `dreamlog.event` holds it.
fn own(e: &StoredEvent, cause: Option<usize>) -> Value {
    let mut v = json!({
        "kind": e.event.header.kind.name(),
        "actor": e.event.header.actor,
        "time": e.event.header.time,
        "body": e.event.body.to_json(),
    });
    if let Some(c) = cause {
        v["cause"] = json!(c);
    }
    Value::String(v.to_string())
}

/// A message's content as GenAI messages (`{role, parts}`): as it is when it has that
/// form, else one text part holding it.
fn as_genai(role: &str, content: &Value) -> Value {
    if content.get("parts").is_some() {
        return json!([content]);
    }
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Null => return json!([]),
        other => other.to_string(),
    };
    json!([{"role": role, "parts": [{"type": "text", "content": text}]}])
}

/// One session's traces request, and its logs request when it has grades.
pub fn session_requests(session: &str, events: &[StoredEvent], parent: Option<&str>) -> (Value, Option<Value>) {
    let trace = trace_id_of(session, events);
    let root = derived_id(&format!("{trace} root"), 8);
    let index: std::collections::HashMap<EventId, usize> =
        events.iter().enumerate().map(|(i, e)| (e.id(), i)).collect();
    let mut spans = Vec::new();
    let mut root_events = Vec::new();
    let mut records = Vec::new();
    let mut root_attrs =
        vec![attr("gen_ai.operation.name", &json!("invoke_agent")), attr("gen_ai.conversation.id", &json!(session))];
    let (mut start_ms, mut end_ms, mut status, mut agent) = (None, 0u64, 0, "unknown".to_owned());
    for (seq, e) in events.iter().enumerate() {
        let time = e.event.header.time;
        end_ms = end_ms.max(time);
        let cause = e.event.header.causes.iter().find_map(|c| index.get(c).copied()).filter(|c| *c < seq);
        let mut attrs = vec![attr(EVENT_ATTR, &own(e, cause)), attr(SEQ_ATTR, &json!(seq))];
        let span_id = derived_id(&format!("{trace} {}", e.id()), 8);
        match &e.event.body {
            Body::SessionStart(s) if start_ms.is_none() => {
                start_ms = Some(time);
                agent = s.agent.clone();
                root_attrs.push(attr("gen_ai.agent.name", &json!(s.agent)));
                if let Some(m) = &s.model {
                    root_attrs.push(attr("gen_ai.request.model", &json!(m)));
                }
                if let Some(t) = &s.task_id {
                    root_attrs.push(attr("dreamlog.task.id", &json!(t)));
                }
                if let Some(p) = parent {
                    root_attrs.push(attr("dreamlog.parent_session", &json!(p)));
                }
                root_attrs.extend(attrs);
            }
            Body::Action(a) => {
                attrs.push(attr("gen_ai.operation.name", &json!("execute_tool")));
                attrs.push(attr("gen_ai.tool.name", &json!(a.name)));
                if let Some(id) = &a.call_id {
                    attrs.push(attr("gen_ai.tool.call.id", &json!(id)));
                }
                attrs.push(attr("gen_ai.tool.call.arguments", &json!(a.input.as_str())));
                if let Some(o) = &a.output {
                    attrs.push(attr("gen_ai.tool.call.result", &json!(o.as_str())));
                }
                let failed = a.status == ActionStatus::Error;
                if failed {
                    attrs.push(attr("error.type", &json!("tool_error")));
                }
                spans.push(child(&trace, &span_id, &root, &format!("execute_tool {}", a.name), time, attrs, failed));
            }
            Body::Message(m) if m.role == "assistant" => {
                let meta = m.meta.as_ref().map(|x| x.to_value()).unwrap_or(Value::Null);
                attrs.push(attr("gen_ai.operation.name", &json!("chat")));
                let model = meta.get("model").and_then(Value::as_str);
                if let Some(model) = model {
                    attrs.push(attr("gen_ai.response.model", &json!(model)));
                }
                attrs.push(attr(
                    "gen_ai.output.messages",
                    &json!(as_genai("assistant", &m.content.to_value()).to_string()),
                ));
                let content = m.content.to_value();
                for (k, key) in
                    [("input_tokens", "gen_ai.usage.input_tokens"), ("output_tokens", "gen_ai.usage.output_tokens")]
                {
                    let at = format!("/usage/{k}");
                    if let Some(v) = meta.pointer(&at).or_else(|| content.pointer(&at)).filter(|v| v.is_number()) {
                        attrs.push(attr(key, v));
                    }
                }
                let name = model.map(|m| format!("chat {m}")).unwrap_or_else(|| "chat".into());
                spans.push(child(&trace, &span_id, &root, &name, time, attrs, false));
            }
            Body::Message(m) => {
                attrs.push(attr("gen_ai.input.messages", &json!(as_genai(&m.role, &m.content.to_value()).to_string())));
                root_events.push(json!({"timeUnixNano": ns(time), "name": format!("gen_ai.{}.message", m.role), "attributes": attrs}));
            }
            Body::Grade(g) => {
                attrs.push(attr("gen_ai.evaluation.name", &json!(g.rubric)));
                attrs.push(attr("gen_ai.evaluation.score.value", &json!(g.score)));
                attrs.push(attr("gen_ai.evaluation.score.label", &json!(g.result.as_str())));
                if let Some(x) = g.meta.as_ref().and_then(|m| m.to_value().get("explanation").cloned()) {
                    attrs.push(attr("gen_ai.evaluation.explanation", &x));
                }
                records.push(json!({
                    "timeUnixNano": ns(time),
                    "eventName": "gen_ai.evaluation.result",
                    "traceId": trace,
                    "spanId": root,
                    "attributes": attrs,
                }));
            }
            Body::SessionEnd(s) => {
                status = if s.status == "error" || s.status == "failed" { 2 } else { 0 };
                root_events
                    .push(json!({"timeUnixNano": ns(time), "name": "dreamlog.session.end", "attributes": attrs}));
            }
            _ => root_events.push(json!({"timeUnixNano": ns(time), "name": "dreamlog.event", "attributes": attrs})),
        }
    }
    let start = start_ms.unwrap_or(0);
    let mut root_span = json!({
        "traceId": trace,
        "spanId": root,
        "name": format!("invoke_agent {agent}"),
        "kind": 1,
        "startTimeUnixNano": ns(start),
        "endTimeUnixNano": ns(end_ms.max(start)),
        "attributes": root_attrs,
        "events": root_events,
    });
    if status == 2 {
        root_span["status"] = json!({"code": 2});
    }
    spans.insert(0, root_span);
    let resource = json!({"attributes": [attr("service.name", &json!(agent))]});
    let scope = json!({"name": "dreamlog", "version": env!("CARGO_PKG_VERSION")});
    let schema = format!("https://opentelemetry.io/schemas/{}", super::SEMCONV_VERSION);
    let traces = json!({"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans, "schemaUrl": schema}]}]});
    let logs = (!records.is_empty()).then(|| {
        json!({"resourceLogs": [{"resource": resource, "scopeLogs": [{"scope": scope, "logRecords": records, "schemaUrl": schema}]}]})
    });
    (traces, logs)
}

fn child(trace: &str, span: &str, root: &str, name: &str, time: u64, attrs: Vec<Value>, failed: bool) -> Value {
    let mut s = json!({
        "traceId": trace,
        "spanId": span,
        "parentSpanId": root,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": ns(time),
        "endTimeUnixNano": ns(time),
        "attributes": attrs,
    });
    if failed {
        s["status"] = json!({"code": 2});
    }
    s
}
