//! ATIF, the Agent Trajectory Interchange Format of the Harbor framework (v1.0 to v1.8):
//! `{schema_version, session_id, trajectory_id?, agent{name, version, model_name},
//! steps[], final_metrics, subagent_trajectories[]}`; a step has `source` (user, agent,
//! system), `message`, `tool_calls[]{tool_call_id, function_name, arguments}`,
//! `observation.results[]{source_call_id, content, subagent_trajectory_ref[], extra}` and
//! `extra`.
//!
//! As Harbor writes it:
//! - the grade is in the trial's `result.json` (`verifier_result.rewards`), in the trial
//!   directory, the parent of `agent/trajectory.json`;
//! - a tool call whose output was empty has no observation: it imports as an action with
//!   no output;
//! - a failed call is marked `extra.tool_result_is_error` (on the observation result, or
//!   on the step when the step holds one call), or records a non-zero exit code in
//!   `extra.tool_result_metadata.tool_use_result.exitCode`: it imports as an error action;
//! - a Claude Code run's sub-agent steps sit in the main list marked `extra.is_sidechain`:
//!   they become a child session (one per `extra.agent_id`, else one `sidechain`) citing
//!   the parent's start, as do embedded `subagent_trajectories` and trajectories named by
//!   `subagent_trajectory_ref` (`trajectory_id` or `session_id` of an embedded one, or a
//!   `trajectory_path` relative to the trajectory's folder).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{bad, At, SessionBuilder, SessionEvents, ToolResult};
use crate::core::{ActionStatus, Actor, Body, CanonicalJson, Criterion, Grade, GradeResult, SessionStart};
use crate::error::{Error, Result};

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

/// The Harbor trial's `result.json` beside `agent/trajectory.json`, when there is one.
fn trial_result(file: &str) -> Result<Option<Value>> {
    let Some(path) = Path::new(file).parent().and_then(|p| p.parent()).map(|p| p.join("result.json")) else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    let name = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|source| Error::Io { path: name.clone(), source })?;
    super::parse_json(&name, &bytes).map(Some)
}

/// The dataset a Harbor trial's task came from: `source` (the dataset's name), else the
/// repository of a git task (`task_id.git_url`), else the folder holding a local task
/// (`task_id.path`'s parent).
fn dataset_of(result: &Value) -> Option<String> {
    let clean = |s: &str| -> Option<String> {
        let s = s.trim().trim_end_matches('/');
        let s = s.strip_suffix(".git").unwrap_or(s);
        let last = s.rsplit(['/', ':']).next().unwrap_or(s);
        (!last.is_empty() && last != "." && last != "..").then(|| last.to_owned())
    };
    if let Some(src) = result.get("source").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
        return Some(src.trim().to_owned());
    }
    let id = result.get("task_id")?;
    if let Some(url) = id.get("git_url").and_then(Value::as_str) {
        return clean(url);
    }
    let path = id.get("path").and_then(Value::as_str)?;
    Path::new(path).parent().and_then(|p| p.to_str()).and_then(clean)
}

/// The rubric of a Harbor grade: `harbor/DATASET/AGENT` (`harbor/AGENT` when the trial
/// does not say its dataset).
fn harbor_rubric(dataset: Option<&str>, agent: &str) -> String {
    match dataset {
        Some(d) => format!("harbor/{d}/{agent}"),
        None => format!("harbor/{agent}"),
    }
}

/// The trajectory files a trajectory names by `subagent_trajectory_ref[].trajectory_path`
/// (resolved against its folder), so that a directory import reads them as sub-agents
/// of it and not a second time on their own.
pub fn referenced_paths(file: &str, bytes: &[u8]) -> Vec<std::path::PathBuf> {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else { return Vec::new() };
    let dir = Path::new(file).parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    collect_refs(&v, &mut |r| {
        if let Some(p) = r.get("trajectory_path").and_then(Value::as_str) {
            out.push(dir.join(p));
        }
    });
    out
}

fn collect_refs(traj: &Value, f: &mut dyn FnMut(&Value)) {
    for step in traj.get("steps").and_then(Value::as_array).into_iter().flatten() {
        for r in step.pointer("/observation/results").and_then(Value::as_array).into_iter().flatten() {
            for sub in r.get("subagent_trajectory_ref").and_then(Value::as_array).into_iter().flatten() {
                f(sub);
            }
        }
    }
    for sub in traj.get("subagent_trajectories").and_then(Value::as_array).into_iter().flatten() {
        collect_refs(sub, f);
    }
}

/// Parses a trajectory file (with the trial's result.json, when present).
pub(super) fn parse(root: &At) -> Result<Vec<SessionEvents>> {
    let result = trial_result(root.file)?;
    let mut out = Vec::new();
    parse_one(root, result.as_ref(), None, &mut out, 0)?;
    Ok(out)
}

/// Whether an observation result (or, for a step holding one call, its step) says the
/// call failed.
fn failed(result_extra: Option<&Value>, step_extra: Option<&Value>) -> bool {
    let says = |x: &Value| {
        x.get("tool_result_is_error").and_then(Value::as_bool) == Some(true)
            || x.pointer("/tool_result_metadata/is_error").and_then(Value::as_bool) == Some(true)
            || ["/tool_result_metadata/tool_use_result/exitCode", "/tool_result_metadata/tool_use_result/exit_code"]
                .iter()
                .any(|p| x.pointer(p).and_then(Value::as_i64).is_some_and(|c| c != 0))
    };
    result_extra.is_some_and(says) || step_extra.is_some_and(says)
}

/// Whether a step is a sub-agent's (`extra.is_sidechain`), and which sub-agent's when it
/// says (`extra.agent_id`): `Some(None)` for a sidechain step with no id.
fn sidechain_of(step: &Value) -> Option<Option<String>> {
    let extra = step.get("extra")?;
    if extra.get("is_sidechain").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let agent = extra.get("agent_id").or_else(|| extra.get("agentId")).and_then(Value::as_str);
    Some(agent.map(|a| format!("agent-{a}")))
}

/// The model of a run of steps: the one most of its agent steps name (`model_name`), the
/// first of those named most; `None` when no step names one.
fn model_of(steps: &[At]) -> Option<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for step in steps.iter().filter(|s| s.value.get("source").and_then(Value::as_str) == Some("agent")) {
        let Some(m) = step.value.get("model_name").and_then(Value::as_str).filter(|m| !m.is_empty()) else {
            continue;
        };
        match counts.iter_mut().find(|(name, _)| name == m) {
            Some((_, n)) => *n += 1,
            None => counts.push((m.to_owned(), 1)),
        }
    }
    let most = counts.iter().map(|(_, n)| *n).max()?;
    counts.into_iter().find(|(_, n)| *n == most).map(|(m, _)| m)
}

/// One trajectory (and, recursively, its sub-agents) as sessions; `parent` is the parent
/// session's id.
fn parse_one(
    root: &At,
    result: Option<&Value>,
    parent: Option<&str>,
    out: &mut Vec<SessionEvents>,
    depth: usize,
) -> Result<()> {
    if depth > 16 {
        return Err(bad(root.file, &root.ptr(), "sub-agent trajectories nested more than 16 deep (a cycle?)"));
    }
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
    let agent_info = root.get("agent")?;
    let agent_name = agent_info.get("name")?.str()?.to_owned();
    let declared = agent_info.opt("model_name").map(|m| m.str().map(str::to_owned)).transpose()?;
    let steps = root.get("steps")?.array()?;
    // Sub-agent steps that sit in the main list (Claude Code's sidechains) go to child
    // sessions, one per sub-agent: by `agent_id` when the steps carry one, else one per
    // run of sidechain steps, each begun by the sub-agent's prompt (a sidechain step from
    // the user) — Harbor's converter keeps no id, and lists every sidechain first.
    let mut own = Vec::new();
    let mut sides: BTreeMap<String, Vec<At>> = BTreeMap::new();
    let mut anonymous: Vec<Vec<At>> = Vec::new();
    for step in steps {
        match sidechain_of(step.value) {
            Some(Some(name)) => sides.entry(name).or_default().push(step),
            Some(None) => {
                let prompt = step.value.get("source").and_then(Value::as_str) == Some("user");
                match anonymous.last_mut() {
                    Some(run) if !prompt => run.push(step),
                    _ => anonymous.push(vec![step]),
                }
            }
            None => own.push(step),
        }
    }
    if anonymous.len() == 1 {
        sides.insert("sidechain".into(), anonymous.remove(0));
    }
    for (i, run) in anonymous.into_iter().enumerate() {
        sides.insert(format!("sidechain-{}", i + 1), run);
    }
    // The session's model is the one its own steps ran on: Harbor names the trajectory's
    // model after the first message, which is a sub-agent's when sidechains come first.
    let model = model_of(&own).or(declared);
    let task_name = result.and_then(|r| r.get("task_name")).and_then(Value::as_str);
    let dataset = result.and_then(dataset_of);
    // The task within its dataset (`terminal-bench/fix-tests`), so families by task
    // prefix are datasets.
    let task = task_name.map(|t| match &dataset {
        Some(d) => format!("{d}/{t}"),
        None => t.to_owned(),
    });
    let meta = serde_json::json!({
        "schema_version": v,
        "agent_version": agent_info.value.get("version"),
        "trajectory_id": root.value.get("trajectory_id"),
        "trial_name": result.and_then(|r| r.get("trial_name")),
    });
    let mut b = SessionBuilder::new(session.clone(), format!("atif:{}{}", root.file, root.pointer));
    let agent = Actor::Agent(agent_name.clone());
    let start_time = own.first().map(time_of).transpose()?.flatten().unwrap_or(0);
    let start = |session: &str, meta: &Value, model: Option<String>| {
        Body::SessionStart(SessionStart {
            session: session.to_owned(),
            agent: agent_name.clone(),
            model,
            task_id: task.clone(),
            task: None,
            store: None,
            memory_state: None,
            source: None,
            meta: Some(CanonicalJson::from_value(meta)),
        })
    };
    b.push(start(&session, &meta, model.clone()), agent.clone(), start_time);
    let mut refs: Vec<(At, String)> = Vec::new();
    let mut t = steps_into(&mut b, &own, &agent, root.file, &mut refs)?;
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
                // One rubric per dataset and agent: Harbor's verifier grades a dataset's
                // tasks, and each agent brings its own tools, so lessons of one agent's
                // runs on one dataset are one family (each task its own family could
                // never hold a lesson, which needs several tasks).
                rubric: harbor_rubric(dataset.as_deref(), &agent_name),
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
    b.end(agent.clone(), "completed".into(), root.opt("final_metrics").map(|m| m.value.clone()), t);
    out.push(b.finish(parent.map(str::to_owned)));

    for (name, side_steps) in sides {
        let child = format!("{session}/{name}");
        let mut sb = SessionBuilder::new(child.clone(), format!("atif:{}{}#{name}", root.file, root.pointer));
        let first = side_steps.first().map(time_of).transpose()?.flatten().unwrap_or(start_time);
        sb.push(
            start(
                &child,
                &serde_json::json!({"sidechain": true, "parent_session": session}),
                model_of(&side_steps).or_else(|| model.clone()),
            ),
            agent.clone(),
            first,
        );
        let st = steps_into(&mut sb, &side_steps, &agent, root.file, &mut refs)?;
        sb.end(agent.clone(), "completed".into(), None, st);
        out.push(sb.finish(Some(session.clone())));
    }

    // Sub-agent trajectories: embedded ones, and those the steps refer to.
    let embedded = root.opt("subagent_trajectories").map(|s| s.array()).transpose()?.unwrap_or_default();
    let mut done: Vec<String> = Vec::new();
    for sub in &embedded {
        parse_one(sub, None, Some(&session), out, depth + 1)?;
        for key in ["trajectory_id", "session_id"] {
            if let Some(k) = sub.opt(key).and_then(|k| k.id_text().ok()) {
                done.push(k);
            }
        }
    }
    for (r, _call) in refs {
        let names: Vec<String> = ["trajectory_id", "session_id"]
            .iter()
            .filter_map(|k| r.value.get(*k).and_then(Value::as_str).map(str::to_owned))
            .collect();
        if names.iter().any(|n| done.contains(n)) {
            continue;
        }
        let Some(path) = r.opt("trajectory_path") else {
            if names.is_empty() {
                return Err(bad(
                    root.file,
                    &r.ptr(),
                    "a subagent_trajectory_ref names no trajectory_id, session_id or trajectory_path",
                ));
            }
            // Named but neither embedded nor given a path: the sub-agent's run was not
            // recorded here; the reference stays in the step's message.
            continue;
        };
        let rel = path.str()?;
        let full = Path::new(root.file).parent().unwrap_or(Path::new(".")).join(rel);
        let name = full.display().to_string();
        let bytes = std::fs::read(&full).map_err(|e| {
            bad(root.file, &path.ptr(), format!("the sub-agent trajectory {rel:?} cannot be read ({name}: {e})"))
        })?;
        let value = super::parse_json(&name, &bytes)?;
        parse_one(&At::root(&name, &value), None, Some(&session), out, depth + 1)?;
        done.extend(names);
    }
    Ok(())
}

/// Adds steps' messages and actions to `b`; returns the last time seen. Sub-agent
/// references found in observations are added to `refs` with the call they answer.
fn steps_into<'a>(
    b: &mut SessionBuilder,
    steps: &[At<'a>],
    agent: &Actor,
    file: &str,
    refs: &mut Vec<(At<'a>, String)>,
) -> Result<u64> {
    let mut t = 0;
    for step in steps {
        t = time_of(step)?.unwrap_or(t);
        let source = step.get("source")?.str()?;
        let actor = match source {
            "agent" => agent.clone(),
            "user" | "system" => Actor::Human(source.to_owned()),
            other => return Err(bad(file, &step.get("source")?.ptr(), format!("unknown step source {other:?}"))),
        };
        let role = if source == "agent" { "assistant" } else { source };
        b.message(actor, role, step.value, t);
        let step_extra = step.value.get("extra");
        let mut made = Vec::new();
        if let Some(tc) = step.opt("tool_calls") {
            for c in tc.array()? {
                let args = c.opt("arguments").map(|a| a.value.clone()).unwrap_or(Value::Object(Default::default()));
                let id = c.get("tool_call_id")?.id_text()?;
                b.call(id.clone(), c.get("function_name")?.str()?.to_owned(), args);
                made.push(id);
            }
        }
        // A step that holds one call may mark its result on the step itself.
        let one_call = made.len() == 1;
        if let Some(obs) = step.opt("observation") {
            for r in obs.get("results")?.array()? {
                if let Some(subs) = r.opt("subagent_trajectory_ref") {
                    let call = r.value.get("source_call_id").and_then(Value::as_str).unwrap_or_default().to_owned();
                    for s in subs.array()? {
                        refs.push((s, call.clone()));
                    }
                }
                let Some(call_id) = r.opt("source_call_id") else { continue };
                let call_id = call_id.id_text()?;
                let extra = r.value.get("extra");
                let is_error = failed(extra, if one_call { step_extra } else { None });
                let result = ToolResult {
                    actor: agent.clone(),
                    output: r.opt("content").map(|c| c.value),
                    status: if is_error { ActionStatus::Error } else { ActionStatus::Ok },
                    meta: extra.cloned(),
                    time: t,
                };
                b.result(&call_id, result).ok_or_else(|| {
                    bad(file, &r.ptr(), format!("observation for tool call {call_id:?}, which no step made"))
                })?;
            }
        }
        // Calls of this step with no observation: their output was empty.
        for id in made {
            if b.is_pending(&id) {
                let is_error = failed(None, if one_call { step_extra } else { None });
                let status = if is_error { ActionStatus::Error } else { ActionStatus::Ok };
                b.result(&id, ToolResult { actor: agent.clone(), output: None, status, meta: None, time: t });
            }
        }
    }
    Ok(t)
}
