//! Inspect AI logs (`.eval`: a zip with `header.json` and `samples/ID_epoch_N.json`;
//! deflate or zstd members). Each sample (at each epoch) is a session: its messages, the
//! tool calls its assistant messages make answered by the `tool` messages, each
//! scorer's score a grade, and how it ended (error or completed, with the models' usage).
//!
//! - session `inspect/EVAL_ID/SAMPLE_ID/EPOCH`; agent: the eval's solver (or the plan's
//!   solvers), task id `TASK/SAMPLE_ID`, task text the sample's input, model the eval's;
//! - times: messages carry none, so every event has the sample's start time, the end its
//!   completion time;
//! - scores: `C`/`I`/`P`/`N` (Inspect's CORRECT, INCORRECT, PARTIAL, NOANSWER) are 1, 0,
//!   0.5, 0; booleans 1 or 0; numbers in 0..1 as they are; other values are not grades
//!   dreamlog can compare and are kept in the session end's metadata instead;
//! - `attachment://` references are replaced by the attachment they name.

use std::io::Read;

use serde_json::{json, Value};

use super::{bad, At, SessionBuilder, SessionEvents, ToolResult};
use crate::core::{ActionStatus, Actor, Body, CanonicalJson, Grade, GradeResult, SessionStart};
use crate::error::{Error, Result};

/// Whether bytes are a zip (an `.eval` log).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

fn member(file: &str, zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, name: &str) -> Result<Option<Value>> {
    let mut m = match zip.by_name(name) {
        Ok(m) => m,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(bad(file, &format!("/{name}"), format!("cannot read the member: {e}"))),
    };
    let mut text = Vec::new();
    m.read_to_end(&mut text).map_err(|e| bad(file, &format!("/{name}"), format!("cannot inflate the member: {e}")))?;
    serde_json::from_slice(&text).map(Some).map_err(|e| Error::Input {
        path: format!("{file}!{name}"),
        line: e.line(),
        reason: format!("not valid JSON: {e}"),
    })
}

fn ms(file: &str, pointer: &str, v: Option<&Value>) -> Result<Option<u64>> {
    let Some(s) = v.and_then(Value::as_str) else { return Ok(None) };
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.timestamp_millis().max(0) as u64))
        .map_err(|e| bad(file, pointer, format!("not an RFC 3339 time ({s:?}): {e}")))
}

/// Parses a whole `.eval` file.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Vec<SessionEvents>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| Error::Input {
        path: file.to_owned(),
        line: 0,
        reason: format!("not a readable .eval zip: {e}"),
    })?;
    // header.json is written when the eval ends; a log still running has its start.
    let header = match member(file, &mut zip, "header.json")? {
        Some(h) => h,
        None => member(file, &mut zip, "_journal/start.json")?
            .ok_or_else(|| bad(file, "/header.json", "an Inspect log has header.json (or _journal/start.json)"))?,
    };
    let eval = At::root(file, &header).get("eval")?;
    let eval_id = eval.get("eval_id")?.str()?.to_owned();
    let task = eval.get("task")?.str()?.to_owned();
    let model = eval.opt("model").and_then(|m| m.value.as_str().map(str::to_owned));
    let agent = eval
        .opt("solver")
        .and_then(|s| s.value.as_str().map(str::to_owned))
        .or_else(|| {
            let steps = header.pointer("/plan/steps")?.as_array()?;
            let names: Vec<&str> = steps.iter().filter_map(|s| s.get("solver").and_then(Value::as_str)).collect();
            (!names.is_empty()).then(|| names.join("+"))
        })
        .unwrap_or_else(|| "inspect".to_owned());
    let mut names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok())
        .filter(|n| n.starts_with("samples/") && n.ends_with(".json"))
        .map(|n| n.into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Some(sample) = member(file, &mut zip, &name)? else { continue };
        let source = format!("inspect:{file}[{name}]");
        out.push(sample_session(&format!("{file}!{name}"), &sample, &eval_id, &task, &agent, model.clone(), source)?);
    }
    Ok(out)
}

/// Replaces `attachment://HASH` strings by the attachment's text.
fn resolve(v: &Value, attachments: &serde_json::Map<String, Value>) -> Value {
    match v {
        Value::String(s) => match s.strip_prefix("attachment://").and_then(|h| attachments.get(h)) {
            Some(a) => a.clone(),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| resolve(x, attachments)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), resolve(x, attachments))).collect()),
        other => other.clone(),
    }
}

/// A score's value as a grade's score, when it is one.
fn score_of(v: &Value) -> Option<(f64, GradeResult)> {
    let x = match v {
        Value::String(s) => match s.as_str() {
            "C" => 1.0,
            "I" => 0.0,
            "P" => 0.5,
            "N" => 0.0,
            other => other.parse::<f64>().ok()?,
        },
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    if !(0.0..=1.0).contains(&x) {
        return None;
    }
    let result = match v.as_str() {
        Some("P") => GradeResult::Other("partial".into()),
        Some("N") => GradeResult::Other("no_answer".into()),
        _ if x >= 1.0 => GradeResult::Satisfied,
        _ if x <= 0.0 => GradeResult::Failed,
        _ => GradeResult::Other("partial".into()),
    };
    Some((x, result))
}

fn sample_session(
    file: &str,
    raw: &Value,
    eval_id: &str,
    task: &str,
    agent: &str,
    model: Option<String>,
    source: String,
) -> Result<SessionEvents> {
    let empty = serde_json::Map::new();
    let attachments = raw.get("attachments").and_then(Value::as_object).unwrap_or(&empty);
    let sample = resolve(raw, attachments);
    let root = At::root(file, &sample);
    let id = root.get("id")?.id_text()?;
    let epoch = root.opt("epoch").map(|e| e.id_text()).transpose()?.unwrap_or_else(|| "1".into());
    let session = format!("inspect/{eval_id}/{id}/{epoch}");
    let start = ms(file, "/started_at", sample.get("started_at"))?.unwrap_or(0);
    let end = ms(file, "/completed_at", sample.get("completed_at"))?.unwrap_or(start);
    let agent_actor = Actor::Agent(agent.to_owned());
    let mut b = SessionBuilder::new(session.clone(), source);
    let input = sample.get("input").cloned().unwrap_or(Value::Null);
    let task_text = match &input {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let mut meta = json!({"inspect": {"eval_id": eval_id, "task": task, "sample_id": id, "epoch": epoch}});
    for k in ["target", "metadata", "uuid"] {
        if let Some(v) = sample.get(k).filter(|v| !v.is_null()) {
            meta["inspect"][k] = v.clone();
        }
    }
    b.push(
        Body::SessionStart(SessionStart {
            session: session.clone(),
            agent: agent.to_owned(),
            model,
            task_id: Some(format!("{task}/{id}")),
            task: task_text,
            store: None,
            memory_state: None,
            source: None,
            meta: Some(CanonicalJson::from_value(&meta)),
        }),
        agent_actor.clone(),
        start,
    );
    for m in root.get("messages")?.array()? {
        let role = m.get("role")?.str()?;
        match role {
            "tool" => {
                let call = m.opt("tool_call_id").map(|c| c.str().map(str::to_owned)).transpose()?;
                let failed = m.opt("error").is_some();
                let out = m.value.get("content").cloned().unwrap_or(Value::Null);
                let mut extra = json!({});
                if let Some(e) = m.value.get("error").filter(|e| !e.is_null()) {
                    extra["error"] = e.clone();
                }
                let r = ToolResult {
                    actor: agent_actor.clone(),
                    output: Some(&out),
                    status: if failed { ActionStatus::Error } else { ActionStatus::Ok },
                    meta: extra.as_object().is_some_and(|o| !o.is_empty()).then_some(extra),
                    time: start,
                };
                match call.as_deref().filter(|c| b.is_pending(c)) {
                    Some(c) => {
                        b.result(c, r);
                    }
                    None => {
                        return Err(bad(
                            file,
                            &m.ptr(),
                            format!("a tool message answers call {call:?}, which no assistant message made"),
                        ))
                    }
                }
            }
            _ => {
                let actor = if role == "assistant" { agent_actor.clone() } else { Actor::Human(role.to_owned()) };
                b.message(actor, role, m.value, start);
                if let Some(calls) = m.opt("tool_calls") {
                    for c in calls.array()? {
                        let cid = c.get("id")?.str()?.to_owned();
                        let name = c.get("function")?.str()?.to_owned();
                        let args = c.value.get("arguments").cloned().unwrap_or(Value::Null);
                        b.call(cid, name, args);
                    }
                }
            }
        }
    }
    // Scores: a grade per scorer whose value is one.
    let mut kept = serde_json::Map::new();
    if let Some(scores) = sample.get("scores").and_then(Value::as_object) {
        for (scorer, s) in scores {
            let value = s.get("value").cloned().unwrap_or(Value::Null);
            match score_of(&value) {
                Some((score, result)) => {
                    let mut gmeta = json!({"value": value});
                    for k in ["answer", "explanation", "metadata"] {
                        if let Some(v) = s.get(k).filter(|v| !v.is_null()) {
                            gmeta[k] = v.clone();
                        }
                    }
                    let body = Body::Grade(Grade {
                        session: session.clone(),
                        target: None,
                        rubric: scorer.clone(),
                        evaluator: scorer.clone(),
                        score,
                        result,
                        criteria: Vec::new(),
                        meta: Some(CanonicalJson::from_value(&gmeta)),
                    });
                    b.push(body, Actor::Evaluator(scorer.clone()), end);
                }
                None => {
                    kept.insert(scorer.clone(), s.clone());
                }
            }
        }
    }
    // A call the sample ended before answering (a limit, an error) stays in its
    // message; nothing is invented for it.
    let error = sample.get("error").filter(|e| !e.is_null());
    let mut end_meta = json!({});
    let (mut i, mut o, mut any) = (0.0, 0.0, false);
    if let Some(usage) = sample.get("model_usage").and_then(Value::as_object) {
        for u in usage.values() {
            i += u.get("input_tokens").and_then(Value::as_f64).unwrap_or(0.0);
            o += u.get("output_tokens").and_then(Value::as_f64).unwrap_or(0.0);
            any = true;
        }
        end_meta["model_usage"] = Value::Object(usage.clone());
    }
    if any {
        end_meta["total_prompt_tokens"] = json!(i);
        end_meta["total_completion_tokens"] = json!(o);
    }
    for k in ["total_time", "working_time", "limit"] {
        if let Some(v) = sample.get(k).filter(|v| !v.is_null()) {
            end_meta[k] = v.clone();
        }
    }
    if let Some(e) = error {
        end_meta["error"] = e.get("message").cloned().unwrap_or_else(|| e.clone());
    }
    if !kept.is_empty() {
        end_meta["scores_not_graded"] = Value::Object(kept);
    }
    let status = if error.is_some() { "error" } else { "completed" };
    b.end(agent_actor, status.to_owned(), Some(end_meta), end);
    Ok(b.finish(None))
}
