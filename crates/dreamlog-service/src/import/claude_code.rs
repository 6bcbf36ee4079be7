//! Claude Code session transcripts (`~/.claude/projects/<slug>/<session>.jsonl`): one
//! JSON object per line with `type`, `uuid`, `parentUuid`, `sessionId`, `timestamp`,
//! `isSidechain` and `message` in Anthropic Messages form (text, `tool_use` and
//! `tool_result` blocks). Sub-agent transcripts (`agent-*.jsonl`) become child sessions
//! of the session named by their `sessionId`, linked by the child's `causes`.

use serde_json::Value;

use super::{bad, At, SessionBuilder, SessionEvents, ToolResult};
use crate::core::{ActionStatus, Actor, Body, CanonicalJson, SessionStart};
use crate::error::{Error, Result};

fn time_of(at: &At) -> Result<Option<u64>> {
    match at.opt("timestamp") {
        None => Ok(None),
        Some(t) => chrono::DateTime::parse_from_rfc3339(t.str()?)
            .map(|d| Some(d.timestamp_millis().max(0) as u64))
            .map_err(|e| bad(t.file, &t.ptr(), format!("not an RFC 3339 timestamp: {e}"))),
    }
}

/// A transcript line: its 1-based number and its JSON.
type Line = (usize, Value);

/// Parses one transcript file (JSON Lines). Sidechain files name their parent session by
/// `sessionId`; their session id is `SESSION/agent-AGENT`.
pub(super) fn parse(file: &str, bytes: &[u8]) -> Result<Vec<SessionEvents>> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Input {
        path: file.to_owned(),
        line: 0,
        reason: format!("not UTF-8: {e}"),
    })?;
    let name = std::path::Path::new(file).file_name().and_then(|n| n.to_str()).unwrap_or(file);
    let stem = name.strip_suffix(".jsonl").unwrap_or(name);
    let mut lines: Vec<Line> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| Error::Input {
            path: file.to_owned(),
            line: i + 1,
            reason: format!("not valid JSON: {e}"),
        })?;
        lines.push((i + 1, v));
    }
    let first = lines.iter().find_map(|(_, v)| v.get("sessionId").and_then(Value::as_str)).unwrap_or(stem).to_owned();
    let agent_file = stem.starts_with("agent-");
    let main = if agent_file { format!("claude-code/{first}/{stem}") } else { format!("claude-code/{first}") };
    // Older transcripts keep sub-agent (sidechain) lines in the session's own file: they
    // become a child session of it, as agent-*.jsonl files do.
    let (side, own): (Vec<Line>, Vec<Line>) = lines
        .into_iter()
        .partition(|(_, v)| !agent_file && v.get("isSidechain").and_then(Value::as_bool) == Some(true));
    let parent = agent_file.then(|| format!("claude-code/{first}"));
    let mut out = vec![session_from(file, own, main.clone(), parent)?];
    if !side.is_empty() {
        out.push(session_from(file, side, format!("{main}/sidechain"), Some(main))?);
    }
    Ok(out)
}

/// One session from its transcript lines.
fn session_from(file: &str, lines: Vec<Line>, session: String, parent: Option<String>) -> Result<SessionEvents> {
    let sidechain = parent.is_some();
    let mut b = SessionBuilder::new(session.clone(), format!("claude-code:{file}"));
    let agent = Actor::Agent("claude-code".into());
    let model = lines.iter().find_map(|(_, v)| v.pointer("/message/model").and_then(Value::as_str)).map(str::to_owned);
    let mut t = 0u64;
    // The end's time is the last message's: lines after it (notices, cost records) come
    // and go with the version of Claude Code and how far it got writing them, and a
    // session recorded live must end as its finished transcript does.
    let mut last = 0u64;
    let mut first_time = None;
    for (line_no, v) in &lines {
        let at = At { file, pointer: format!(":{line_no}"), value: v };
        let kind = at.get("type")?.str()?;
        t = time_of(&at)?.unwrap_or(t);
        if !matches!(kind, "user" | "assistant") {
            continue; // summaries, system notices, file snapshots: not conversation
        }
        last = t;
        first_time.get_or_insert(t);
        let msg = at.get("message")?;
        let role = msg.get("role")?.str()?;
        let actor = if role == "assistant" { agent.clone() } else { Actor::Human("user".into()) };
        b.message(actor, role, msg.value, t);
        let Some(Value::Array(blocks)) = msg.value.get("content") else { continue };
        for (bi, block_value) in blocks.iter().enumerate() {
            let block = At { file, pointer: format!(":{line_no}/message/content/{bi}"), value: block_value };
            match block_value.get("type").and_then(Value::as_str) {
                Some("tool_use") => {
                    let input = block_value.get("input").cloned().unwrap_or(Value::Null);
                    b.call(block.get("id")?.str()?.to_owned(), block.get("name")?.str()?.to_owned(), input);
                }
                Some("tool_result") => {
                    let id = block.get("tool_use_id")?.str()?;
                    let failed = block_value.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                    let r = ToolResult {
                        actor: agent.clone(),
                        output: block_value.get("content"),
                        status: if failed { ActionStatus::Error } else { ActionStatus::Ok },
                        meta: None,
                        time: t,
                    };
                    b.result(id, r).ok_or_else(|| {
                        bad(file, &block.ptr(), format!("tool_result for {id:?}, which no tool_use made"))
                    })?;
                }
                _ => {}
            }
        }
    }
    // The start carries the model and first time, known only after the lines are read.
    b.prepend(
        Body::SessionStart(SessionStart {
            session: session.clone(),
            agent: "claude-code".into(),
            model,
            task_id: None,
            task: None,
            store: None,
            memory_state: None,
            source: None,
            meta: Some(CanonicalJson::from_value(
                &serde_json::json!({"sidechain": sidechain, "parent_session": parent}),
            )),
        }),
        agent.clone(),
        first_time.unwrap_or(0),
    );
    // Tool calls cut off by the end of a transcript stay unanswered.
    b.end(agent, "ended".into(), None, last);
    Ok(b.finish(parent))
}
