//! Hosted Claude Managed Agents sessions (as the API lists them: the session, its
//! events, its threads and theirs) into sessions. Pure: `managed::sessions` fetches,
//! this maps, `service::ingest` writes.
//!
//! A session becomes a session; each thread but the primary one (whose events are the
//! session's own) a child session under the thread that spawned it. `user.message` and
//! `agent.message` are messages, `agent.thinking` a message of its own, messages between
//! threads messages naming the other thread; `agent.tool_use`, `agent.mcp_tool_use`
//! (named `mcp__SERVER__NAME`) and `agent.custom_tool_use` with the result that answers
//! them (`is_error` an error) are actions; `session.error` a system message. Each
//! `user.define_outcome` is a user message and names the rubric (its text, or the
//! content of its file, fetched through the Files API); each `span.outcome_evaluation_end`
//! is a grade of the outcome's description as its rubric (the rubric's text in `meta`): its `result` the session's verdict so far (`satisfied` once every outcome
//! defined is satisfied; else the verdict of the first outcome, in the order they were
//! defined, that ended otherwise — `failed`, `max_iterations_reached`, `interrupted`; else
//! `needs_revision`), its `score` the mean of the ending verdicts so far (satisfied 1, the
//! others 0; an outcome still being revised is not counted), one criterion per outcome,
//! the evaluation itself in `meta`. So a session's last grade is its score.
//!
//! Events depend only on what the API says of the session, so a second sync, or one from
//! another machine, maps it to the same events; one that grew appends its new events.
//! What could still change is held back: a tool call still awaited (its session running,
//! or idle on `requires_action` naming it) or an event not processed yet, and all after
//! it, wait for the next sync. A call the session went on without, or that it ended
//! with, is recorded unanswered where it was made; a denied one answered by its denial.
//! The task key comes from `metadata.task_id` as first mirrored: set it when the session
//! is created (a later change makes the session unmappable, reported by every sync).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::{bad, At, SessionBuilder, SessionEvents, ToolResult};
use crate::core::{ActionStatus, Actor, Body, CanonicalJson, Criterion, Grade, GradeResult, SessionStart};
use crate::error::Result;

/// The events that answer a tool call.
const RESULTS: [&str; 4] =
    ["agent.tool_result", "agent.mcp_tool_result", "user.custom_tool_result", "user.tool_result"];

/// The call an answer answers, when `v` is an answer.
fn answered_call(v: &Value) -> Option<&str> {
    if !RESULTS.contains(&v.get("type").and_then(Value::as_str).unwrap_or_default()) {
        return None;
    }
    ["tool_use_id", "mcp_tool_use_id", "custom_tool_use_id"].iter().find_map(|k| v.get(*k)).and_then(Value::as_str)
}

/// Who grades outcomes on the hosted platform.
pub const OUTCOME_GRADER: &str = "anthropic-outcome-grader";

/// One hosted session as the API lists it.
pub struct HostedSession<'a> {
    /// The session object (`GET /v1/sessions/{id}`).
    pub session: &'a Value,
    /// Its events, oldest first (the primary thread's).
    pub events: &'a [Value],
    /// Its threads other than the primary one, each with its events, oldest first.
    pub threads: &'a [(Value, Vec<Value>)],
    /// The content of each rubric file (`file_…`) fetched.
    pub files: &'a HashMap<String, String>,
}

/// The session and its threads' child sessions; `None` when it has nothing to map yet
/// (no task: no `task_id` in its metadata, no user message and no outcome).
pub fn parse_session(h: &HostedSession) -> Result<Option<Vec<SessionEvents>>> {
    let at = At::root("anthropic", h.session);
    let id = at.get("id")?.str()?.to_owned();
    let file = format!("anthropic:/v1/sessions/{id}");
    let s = At { file: &file, pointer: String::new(), value: h.session };
    let Some((task_id, task)) = task_of(&s, h.events)? else { return Ok(None) };
    let agent = s.get("agent")?;
    let ended = s.get("status")?.str()? == "terminated";
    let mut out = Vec::new();
    let created = time(&s.get("created_at")?)?;
    let live = matches!(s.get("status")?.str()?, "running" | "rescheduling");
    let primary = Thread { file: &file, session: &id, created, events: h.events, ended, live, primary: true };
    let start = SessionStart {
        session: id.clone(),
        agent: agent.get("name")?.str()?.to_owned(),
        model: agent.opt("model").and_then(|m| m.value.get("id")).and_then(Value::as_str).map(str::to_owned),
        task_id: Some(task_id.clone()),
        task,
        store: None,
        memory_state: None,
        source: None,
        meta: Some(CanonicalJson::from_value(&json!({
            "anthropic": {"agent_id": agent.get("id")?.str()?, "agent_version": agent.value.get("version")}
        }))),
    };
    let end_meta = json!({
        "anthropic": {
            "usage": h.session.get("usage"),
            "stats": h.session.get("stats"),
            "outcome_evaluations": h.session.get("outcome_evaluations"),
        }
    });
    out.push(primary.map(start, s.get("status")?.str()?, time(&s.get("updated_at")?)?, end_meta, h.files, None)?);
    // Threads: a child session each, under the thread that spawned it.
    for (i, (t, events)) in h.threads.iter().enumerate() {
        let tfile = format!("{file}/threads/{i}");
        let th = At { file: &tfile, pointer: String::new(), value: t };
        let tid = th.get("id")?.str()?.to_owned();
        let parent = match th.opt("parent_thread_id").map(|p| p.str()).transpose()? {
            // A thread spawned by another child thread is that thread's child.
            Some(p) if h.threads.iter().any(|(o, _)| o.get("id").and_then(Value::as_str) == Some(p)) => p.to_owned(),
            _ => id.clone(),
        };
        let tagent = th.get("agent")?;
        let status = th.get("status")?.str()?;
        // An advisor has no name and its model is a plain string.
        let tname = tagent
            .value
            .get("name")
            .or_else(|| tagent.value.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("thread")
            .to_owned();
        let tmodel = match tagent.value.get("model") {
            Some(Value::String(m)) => Some(m.clone()),
            Some(m) => m.get("id").and_then(Value::as_str).map(str::to_owned),
            None => None,
        };
        let created = time(&th.get("created_at")?)?;
        let live = matches!(status, "running" | "rescheduling");
        let thread = Thread {
            file: &tfile,
            session: &tid,
            created,
            events,
            ended: ended || status == "terminated",
            live,
            primary: false,
        };
        let start = SessionStart {
            session: tid.clone(),
            agent: tname,
            model: tmodel,
            task_id: Some(task_id.clone()),
            task: None,
            store: None,
            memory_state: None,
            source: None,
            meta: Some(CanonicalJson::from_value(&json!({
                "anthropic": {"session_id": id, "parent_thread_id": th.value.get("parent_thread_id")}
            }))),
        };
        let end_meta = json!({"anthropic": {"usage": t.get("usage"), "stats": t.get("stats")}});
        out.push(thread.map(start, status, time(&th.get("updated_at")?)?, end_meta, h.files, Some(parent))?);
    }
    Ok(Some(out))
}

/// The task key: `task_id` of the metadata, else the first user message's text or the
/// first outcome's description, whichever came first.
fn task_of(s: &At, events: &[Value]) -> Result<Option<(String, Option<String>)>> {
    let first = events.iter().find_map(|e| match e.get("type").and_then(Value::as_str) {
        Some("user.message") => Some(text_of(e.get("content"))),
        Some("user.define_outcome") => e.get("description").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    });
    let key = s.opt("metadata").and_then(|m| m.value.get("task_id")).and_then(Value::as_str).map(str::to_owned);
    Ok(match (key, first) {
        (Some(k), task) => Some((k, task)),
        (None, Some(task)) => Some((normalise(&task), Some(task))),
        (None, None) => None,
    })
}

/// A first prompt as a task key: whitespace collapsed, at most 200 characters.
fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect()
}

/// The text blocks of a content list, joined.
fn text_of(content: Option<&Value>) -> String {
    content
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        })
        .unwrap_or_default()
}

fn time(at: &At) -> Result<u64> {
    let text = at.str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|d| u64::try_from(d.timestamp_millis()).ok())
        .ok_or_else(|| bad(at.file, &at.ptr(), format!("not an RFC 3339 time: {text:?}")))
}

/// One thread's events (the primary thread's are the session's).
struct Thread<'a> {
    file: &'a str,
    session: &'a str,
    /// Its `created_at`: the start's time.
    created: u64,
    events: &'a [Value],
    /// The session ended: a call never answered is recorded so, not waited for.
    ended: bool,
    /// The thread is running (or rescheduling): a call not answered yet is awaited.
    live: bool,
    /// The primary thread (the session's own list, where a thread's calls and their
    /// answers are cross-posted).
    primary: bool,
}

/// An outcome defined in a session, with its latest verdict.
struct Outcome {
    description: String,
    rubric: String,
    verdict: Option<String>,
    explanation: Option<String>,
}

fn terminal(verdict: &str) -> bool {
    verdict != "needs_revision"
}

impl Thread<'_> {
    fn map(
        &self,
        start: SessionStart,
        status: &str,
        updated: u64,
        end_meta: Value,
        files: &HashMap<String, String>,
        parent: Option<String>,
    ) -> Result<SessionEvents> {
        let mut b = SessionBuilder::new(self.session.to_owned(), self.file.to_owned());
        let agent = Actor::Agent(start.agent.clone());
        let user = Actor::Human("user".into());
        let tool = Actor::System("anthropic-tools".into());
        let grader = Actor::Evaluator(OUTCOME_GRADER.into());
        let start_time = self.created;
        let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut held_back = false;
        let mut last = start_time;
        // Calls answered somewhere in the list; calls the last idle status says are
        // awaited (`requires_action`). A call neither answered nor known dead holds back
        // the rest of a session that runs or waits on it.
        let answered: std::collections::HashSet<&str> = self.events.iter().filter_map(answered_call).collect();
        let awaited: std::collections::HashSet<&str> = self
            .events
            .iter()
            .rev()
            .find(|e| e.get("type").and_then(Value::as_str) == Some("session.status_idle"))
            .and_then(|e| e.pointer("/stop_reason/event_ids"))
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Denied calls: answered by their confirmation.
        let denied: HashMap<&str, &Value> = self
            .events
            .iter()
            .filter(|e| {
                e.get("type").and_then(Value::as_str) == Some("user.tool_confirmation")
                    && e.get("result").and_then(Value::as_str) == Some("deny")
            })
            .filter_map(|e| e.get("tool_use_id").and_then(Value::as_str).map(|id| (id, e)))
            .collect();
        for (i, v) in self.events.iter().enumerate() {
            let e = At { file: self.file, pointer: format!("/events/{i}"), value: v };
            let kind = e.get("type")?.str()?;
            // Answers routed to a thread are the thread's, as its cross-posted calls are.
            if self.primary && RESULTS.contains(&kind) && v.get("session_thread_id").is_some_and(|s| s.is_string()) {
                continue;
            }
            let t = match e.opt("processed_at") {
                Some(p) => time(&p)?,
                // Not processed yet: its time is not known, so it and what follows wait
                // (unless the session ended: then it never will be).
                None if !self.ended => {
                    held_back = true;
                    break;
                }
                None => last,
            };
            last = t;
            match kind {
                "user.message" => b.message(user.clone(), "user", e.get("content")?.value, t),
                "agent.message" => b.message(agent.clone(), "assistant", e.get("content")?.value, t),
                "agent.thinking" => b.message(agent.clone(), "assistant", &json!([{"type": "thinking"}]), t),
                "agent.thread_message_sent" => b.message_with(
                    agent.clone(),
                    "assistant",
                    e.get("content")?.value,
                    t,
                    json!({"to_thread": v.get("to_session_thread_id"), "to_agent": v.get("to_agent_name")}),
                ),
                "agent.thread_message_received" => b.message_with(
                    Actor::Agent(v.get("from_agent_name").and_then(Value::as_str).unwrap_or("thread").to_owned()),
                    "user",
                    e.get("content")?.value,
                    t,
                    json!({"from_thread": v.get("from_session_thread_id")}),
                ),
                "session.error" => {
                    b.message(Actor::System("anthropic".into()), "system", &json!([e.get("error")?.value]), t)
                }
                "agent.tool_use" | "agent.mcp_tool_use" | "agent.custom_tool_use" => {
                    // Cross-posted from a thread to ask for permission on the primary one:
                    // the thread records the call.
                    if v.get("session_thread_id").is_some_and(|s| s.is_string()) {
                        continue;
                    }
                    let id = e.get("id")?.str()?;
                    let waits = !answered.contains(id) && !denied.contains_key(id);
                    if waits && !self.ended && (self.live || awaited.contains(id)) {
                        held_back = true;
                        break;
                    }
                    let name = e.get("name")?.str()?;
                    let name = match kind {
                        "agent.mcp_tool_use" => format!("mcp__{}__{name}", e.get("mcp_server_name")?.str()?),
                        _ => name.to_owned(),
                    };
                    let input = e.get("input")?.value.clone();
                    // The call is its own event upstream: a message holding it, which the
                    // action answering it cites.
                    let call = json!([{"type": "tool_use", "id": id, "name": name, "input": input}]);
                    b.message_with(
                        agent.clone(),
                        "assistant",
                        &call,
                        t,
                        json!({"anthropic": {"type": kind, "evaluated_permission": v.get("evaluated_permission")}}),
                    );
                    b.call(id.to_owned(), name, input);
                    if let Some(confirmation) = denied.get(id).filter(|_| !answered.contains(id)) {
                        // Denied: the confirmation is its answer.
                        let r = ToolResult {
                            actor: user.clone(),
                            output: confirmation.get("deny_message").filter(|m| !m.is_null()),
                            status: ActionStatus::Error,
                            meta: Some(json!({"anthropic": {"denied": confirmation.get("id")}})),
                            time: t,
                        };
                        let _ = b.result(id, r);
                    } else if waits {
                        // Never answered and no longer awaited (the session went on without
                        // it, or ended): recorded so, where it was made.
                        let r = ToolResult {
                            actor: tool.clone(),
                            output: None,
                            status: ActionStatus::Unknown,
                            meta: None,
                            time: t,
                        };
                        let _ = b.result(id, r);
                    }
                }
                "agent.tool_result" | "agent.mcp_tool_result" | "user.custom_tool_result" | "user.tool_result" => {
                    let key = match kind {
                        "agent.tool_result" | "user.tool_result" => "tool_use_id",
                        "agent.mcp_tool_result" => "mcp_tool_use_id",
                        _ => "custom_tool_use_id",
                    };
                    let id = e.get(key)?.str()?;
                    let failed = v.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                    let r = ToolResult {
                        actor: if kind.starts_with("user.") { user.clone() } else { tool.clone() },
                        output: v.get("content").filter(|c| !c.is_null()),
                        status: if failed { ActionStatus::Error } else { ActionStatus::Ok },
                        meta: Some(json!({"anthropic": {"result_event": e.get("id")?.str()?}})),
                        time: t,
                    };
                    if b.result(id, r).is_none() {
                        return Err(bad(self.file, &e.ptr(), format!("a result for {id:?}, which no call made")));
                    }
                }
                "user.define_outcome" => {
                    let oid = e.get("outcome_id")?.str()?.to_owned();
                    let rubric = e.get("rubric")?;
                    let rubric_text = match rubric.get("type")?.str()? {
                        "text" => rubric.get("content")?.str()?.to_owned(),
                        "file" => {
                            let fid = rubric.get("file_id")?.str()?;
                            match files.get(fid) {
                                Some(text) => text.clone(),
                                None => {
                                    return Err(bad(
                                        self.file,
                                        &rubric.ptr(),
                                        format!("the rubric file {fid} could not be read"),
                                    ))
                                }
                            }
                        }
                        other => return Err(bad(self.file, &rubric.ptr(), format!("a rubric of type {other:?}"))),
                    };
                    let description = e.get("description")?.str()?.to_owned();
                    let mut content = v.clone();
                    if let Some(o) = content.as_object_mut() {
                        o.remove("id");
                        o.remove("processed_at");
                        o.insert("rubric_text".into(), Value::String(rubric_text.clone()));
                    }
                    b.message(user.clone(), "user", &json!([content]), t);
                    if !outcomes.contains_key(&oid) {
                        order.push(oid.clone());
                    }
                    outcomes
                        .insert(oid, Outcome { description, rubric: rubric_text, verdict: None, explanation: None });
                }
                "span.outcome_evaluation_end" => {
                    let oid = e.get("outcome_id")?.str()?;
                    let result = e.get("result")?.str()?.to_owned();
                    let explanation = e.get("explanation")?.str()?.to_owned();
                    let Some(o) = outcomes.get_mut(oid) else {
                        return Err(bad(self.file, &e.ptr(), format!("an evaluation of outcome {oid}, never defined")));
                    };
                    o.verdict = Some(result.clone());
                    o.explanation = Some(explanation.clone());
                    // The outcome's description names the grade's rubric (lessons group
                    // sessions by it and quote it); the rubric's text goes in `meta`.
                    let rubric = o.description.clone();
                    let rubric_text = o.rubric.clone();
                    let grade = verdict(&order, &outcomes);
                    let body = Body::Grade(Grade {
                        session: self.session.to_owned(),
                        target: None,
                        rubric,
                        evaluator: OUTCOME_GRADER.into(),
                        score: grade.0,
                        result: GradeResult::from_name(&grade.1),
                        criteria: order
                            .iter()
                            .map(|id| {
                                let o = &outcomes[id];
                                let done = o.verdict.as_deref().filter(|v| terminal(v));
                                Criterion {
                                    name: o.description.clone(),
                                    passed: done.map(|v| v == "satisfied"),
                                    score: done.map(|v| if v == "satisfied" { 1.0 } else { 0.0 }),
                                    note: o.explanation.clone(),
                                }
                            })
                            .collect(),
                        meta: Some(CanonicalJson::from_value(&json!({"anthropic": {
                            "outcome_id": oid,
                            "result": result,
                            "iteration": v.get("iteration"),
                            "explanation": explanation,
                            "usage": v.get("usage"),
                            "evaluation": e.get("id")?.str()?,
                            "rubric": rubric_text,
                        }}))),
                    });
                    b.push(body, grader.clone(), t);
                }
                // Status, spans of model requests, usage and the like: the end carries them.
                _ => {}
            }
        }
        // An answer that came before its call (never, upstream) leaves nothing pending:
        // every call was answered, recorded unanswered where it was made, or held back.
        debug_assert!(held_back || b.unanswered().is_none());
        b.prepend(Body::SessionStart(start), agent.clone(), start_time);
        if !held_back {
            b.end(agent, status.to_owned(), Some(end_meta), updated.max(last));
        }
        Ok(b.finish(parent))
    }
}

/// The session's score and result after an evaluation: the mean of the terminal
/// verdicts so far, and `satisfied` when every outcome is, the first other terminal
/// verdict when one is, else `needs_revision`.
fn verdict(order: &[String], outcomes: &BTreeMap<String, Outcome>) -> (f64, String) {
    let done: Vec<&str> =
        order.iter().filter_map(|id| outcomes[id].verdict.as_deref()).filter(|v| terminal(v)).collect();
    let score = if done.is_empty() {
        0.0
    } else {
        done.iter().filter(|v| **v == "satisfied").count() as f64 / done.len() as f64
    };
    let result = match done.iter().find(|v| **v != "satisfied") {
        Some(failed) => (*failed).to_owned(),
        None if done.len() == order.len() => "satisfied".to_owned(),
        None => "needs_revision".to_owned(),
    };
    (score, result)
}
