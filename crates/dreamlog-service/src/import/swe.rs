//! SWE-agent `.traj` files: free-text actions and observations, no grade (none is
//! recorded: an ungraded session stays ungraded).

use serde_json::Value;

use super::{At, SessionBuilder, SessionEvents};
use crate::core::{Action, ActionStatus, Actor, Body, CanonicalJson, SessionStart};
use crate::error::Result;

pub(super) fn parse(root: &At) -> Result<Vec<SessionEvents>> {
    let name = std::path::Path::new(root.file).file_name().and_then(|n| n.to_str()).unwrap_or(root.file);
    let instance = name.strip_suffix(".traj").unwrap_or(name).to_owned();
    let session = format!("swe-agent/{instance}");
    let mut b = SessionBuilder::new(session.clone(), format!("swe-agent:{}", root.file));
    let agent = Actor::Agent("swe-agent".into());
    let info = root.get("info")?;
    let mut t = 0u64;
    let mut next_time = || {
        t += 1;
        t
    };
    // The task text is the first user message of the history, when there is one.
    let task = root
        .opt("history")
        .and_then(|h| h.value.as_array().cloned())
        .and_then(|h| h.into_iter().find(|m| m.get("role").and_then(Value::as_str) == Some("user")))
        .and_then(|m| m.get("content").and_then(Value::as_str).map(str::to_owned));
    b.push(
        Body::SessionStart(SessionStart {
            session: session.clone(),
            agent: "swe-agent".into(),
            model: None,
            task_id: Some(instance.clone()),
            task,
            store: None,
            memory_state: None,
            source: None,
            meta: Some(CanonicalJson::from_value(
                &serde_json::json!({"environment": root.opt("environment").map(|e| e.value), "times": super::UNTIMED}),
            )),
        }),
        agent.clone(),
        next_time(),
    );
    for step in root.get("trajectory")?.array()? {
        let time = next_time();
        let thought = step.opt("thought");
        if let Some(thought) = &thought {
            b.message(agent.clone(), "assistant", thought.value, time);
        }
        let action = step.get("action")?.str()?;
        let command = action.split_whitespace().next().unwrap_or("").to_owned();
        let act = Action {
            session: session.clone(),
            name: if command.is_empty() { "shell".into() } else { command },
            call_id: None,
            input: CanonicalJson::from_value(&Value::String(action.to_owned())),
            output: step.opt("observation").map(|o| CanonicalJson::from_value(o.value)),
            status: ActionStatus::Unknown,
            meta: step.opt("response").map(|r| CanonicalJson::from_value(&serde_json::json!({"response": r.value}))),
        };
        b.action(act, agent.clone(), time, thought.is_some());
    }
    let status = info.opt("exit_status").and_then(|s| s.value.as_str().map(str::to_owned));
    let stats = serde_json::json!({
        "model_stats": info.value.get("model_stats"),
        "submission": info.value.get("submission"),
    });
    b.end(agent, status.unwrap_or_else(|| "unknown".into()), Some(stats), next_time());
    Ok(vec![b.finish(None)])
}
