//! ATIF, the Agent Trajectory Interchange Format of the Harbor framework (v1.0 to v1.8):
//! `{schema_version, session_id, agent{name, version, model_name}, steps[], final_metrics,
//! subagent_trajectories[]}`; a step has `source` (user, agent, system), `message`,
//! `tool_calls[]{tool_call_id, function_name, arguments}` and
//! `observation.results[]{source_call_id, content}`. The grade comes from the Harbor
//! trial's `result.json` (`verifier_result.rewards`) in the trial directory, the parent
//! of `agent/trajectory.json`, when it is there.

use serde_json::Value;

use super::{bad, At, SessionBuilder, SessionEvents, ToolResult};
use crate::core::{ActionStatus, Actor, Body, CanonicalJson, Criterion, Digest, Grade, GradeResult, SessionStart};
use crate::error::Result;

/// Schema versions this importer reads.
pub const VERSIONS: [&str; 9] = [
    "ATIF-v1.0",
    "ATIF-v1.1",
    "ATIF-v1.2",
    "ATIF-v1.3",
    "ATIF-v1.4",
    "ATIF-v1.5",
    "ATIF-v1.6",
    "ATIF-v1.7",
    "ATIF-v1.8",
];

fn time_of(at: &At) -> Result<Option<u64>> {
    match at.opt("timestamp") {
        None => Ok(None),
        Some(t) => {
            let s = t.str()?;
            let parsed = chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.timestamp_millis())
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .map(|d| d.and_utc().timestamp_millis())
                })
                .map_err(|e| bad(t.file, &t.ptr(), format!("not a timestamp: {e}")))?;
            Ok(Some(parsed.max(0) as u64))
        }
    }
}

/// Parses a trajectory file; `result` is the trial's result.json, when present.
pub(super) fn parse(root: &At, result: Option<&Value>, memory: Option<(&str, Digest)>) -> Result<Vec<SessionEvents>> {
    let mut out = Vec::new();
    parse_one(root, result, memory, None, &mut out)?;
    Ok(out)
}

fn parse_one(
    root: &At,
    result: Option<&Value>,
    memory: Option<(&str, Digest)>,
    parent: Option<&str>,
    out: &mut Vec<SessionEvents>,
) -> Result<()> {
    let version = root.get("schema_version")?;
    let v = version.str()?;
    if !VERSIONS.contains(&v) {
        return Err(bad(
            root.file,
            &version.ptr(),
            format!("unknown ATIF schema_version {v:?} (this importer reads {} to {})", VERSIONS[0], VERSIONS[8]),
        ));
    }
    let id = root.get("session_id")?.id_text()?;
    let session = match parent {
        Some(p) => format!("{p}/{id}"),
        None => format!("atif/{id}"),
    };
    let mut b = SessionBuilder::new(session.clone());
    let agent_info = root.get("agent")?;
    let agent_name = agent_info.get("name")?.str()?.to_owned();
    let agent = Actor::Agent(agent_name.clone());
    let steps = root.get("steps")?.array()?;
    let first_time = steps.first().map(time_of).transpose()?.flatten();
    let mut t = first_time.unwrap_or(0);
    let task = result.and_then(|r| r.get("task_name")).and_then(Value::as_str).map(str::to_owned);
    b.push(
        Body::SessionStart(SessionStart {
            session: session.clone(),
            agent: agent_name.clone(),
            model: agent_info.opt("model_name").map(|m| m.str().map(str::to_owned)).transpose()?,
            task_id: task.clone(),
            task: None,
            store: memory.map(|(s, _)| s.to_owned()),
            memory_state: memory.map(|(_, h)| h),
            source: Some(format!("atif:{}", root.file)),
            meta: Some(CanonicalJson::from_value(&serde_json::json!({
                "schema_version": v,
                "agent_version": agent_info.value.get("version"),
                "parent_session": parent,
            }))),
        }),
        agent.clone(),
        t,
    );
    for step in &steps {
        t = time_of(step)?.unwrap_or(t);
        let source = step.get("source")?.str()?;
        let actor = match source {
            "agent" => agent.clone(),
            "user" | "system" => Actor::Human(source.to_owned()),
            other => return Err(bad(root.file, &step.get("source")?.ptr(), format!("unknown step source {other:?}"))),
        };
        let role = if source == "agent" { "assistant" } else { source };
        b.message(actor, role, step.value, t);
        if let Some(tc) = step.opt("tool_calls") {
            for c in tc.array()? {
                let args = c.opt("arguments").map(|a| a.value.clone()).unwrap_or(Value::Object(Default::default()));
                b.call(c.get("tool_call_id")?.id_text()?, c.get("function_name")?.str()?.to_owned(), args);
            }
        }
        if let Some(obs) = step.opt("observation") {
            for r in obs.get("results")?.array()? {
                let Some(call_id) = r.opt("source_call_id") else { continue };
                let call_id = call_id.id_text()?;
                let result = ToolResult {
                    actor: agent.clone(),
                    output: r.opt("content").map(|c| c.value),
                    status: ActionStatus::Ok,
                    meta: None,
                    time: t,
                };
                b.result(&call_id, result).ok_or_else(|| {
                    bad(root.file, &r.ptr(), format!("observation for tool call {call_id:?}, which no step made"))
                })?;
            }
        }
    }
    if let Some(rewards) = result.and_then(|r| r.pointer("/verifier_result/rewards")).and_then(Value::as_object) {
        let score = rewards
            .get("reward")
            .and_then(Value::as_f64)
            .or_else(|| {
                let xs: Vec<f64> = rewards.values().filter_map(Value::as_f64).collect();
                (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
            })
            .unwrap_or(0.0)
            .clamp(0.0, 1.0);
        let criteria = rewards
            .iter()
            .filter_map(|(k, v)| {
                v.as_f64().map(|x| Criterion {
                    name: k.clone(),
                    passed: Some(x >= 1.0),
                    score: Some(x.clamp(0.0, 1.0)),
                    note: None,
                })
            })
            .collect();
        let end = result
            .and_then(|r| r.get("finished_at"))
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.timestamp_millis().max(0) as u64)
            .unwrap_or(t);
        b.push(
            Body::Grade(Grade {
                session: session.clone(),
                target: None,
                rubric: task.clone().map(|t| format!("harbor/{t}")).unwrap_or_else(|| "harbor".into()),
                evaluator: "harbor verifier".into(),
                score,
                result: if score >= 1.0 { GradeResult::Satisfied } else { GradeResult::Failed },
                criteria,
                meta: result.and_then(|r| r.get("verifier_result")).map(CanonicalJson::from_value),
            }),
            Actor::Evaluator("harbor-verifier".into()),
            end,
        );
        t = t.max(end);
    }
    b.end(agent, "completed".into(), root.opt("final_metrics").map(|m| m.value.clone()), t);
    if let Some(id) = b.unanswered() {
        return Err(bad(root.file, "/steps", format!("tool call {id:?} has no observation")));
    }
    out.push(b.finish(parent.map(str::to_owned)));
    if let Some(subs) = root.opt("subagent_trajectories") {
        for sub in subs.array()? {
            parse_one(&sub, None, memory, Some(&session), out)?;
        }
    }
    Ok(())
}
