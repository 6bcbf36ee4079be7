//! τ-bench (v1 historical trajectories) and τ²-bench (results files).

use std::collections::HashMap;

use serde_json::Value;

use super::{bad, At, SessionBuilder, SessionEvents, ToolResult, UNTIMED};
use crate::core::{ActionStatus, Actor, Body, CanonicalJson, Criterion, Grade, GradeResult, SessionStart};
use crate::error::Result;

fn file_stem(file: &str) -> String {
    let name = std::path::Path::new(file).file_name().and_then(|n| n.to_str()).unwrap_or(file);
    name.strip_suffix(".json").unwrap_or(name).to_owned()
}

fn grade_result(score: f64) -> GradeResult {
    if score >= 1.0 {
        GradeResult::Satisfied
    } else {
        GradeResult::Failed
    }
}

/// Tool arguments arrive as a JSON object or as a JSON string holding one.
fn arguments(at: &At) -> Result<Value> {
    match at.value {
        Value::String(s) => {
            serde_json::from_str(s).map_err(|e| bad(at.file, &at.ptr(), format!("tool arguments are not JSON: {e}")))
        }
        Value::Object(_) => Ok(at.value.clone()),
        Value::Null => Ok(Value::Object(Default::default())),
        _ => Err(bad(at.file, &at.ptr(), "tool arguments must be an object or a JSON string")),
    }
}

/// τ-bench v1: `[{task_id, trial, reward, info{task{instruction,…}, reward_info}, traj[]}]`.
pub(super) fn parse_tau_bench(root: &At) -> Result<Vec<SessionEvents>> {
    let stem = file_stem(root.file);
    let mut out = Vec::new();
    for ep in root.array()? {
        let task_id = ep.get("task_id")?.id_text()?;
        let trial = ep.get("trial")?.id_text()?;
        let reward = ep.get("reward")?.f64()?;
        let info = ep.get("info")?;
        let task = info.get("task")?;
        let session = format!("tau-bench/{stem}/task-{task_id}/trial-{trial}");
        let mut b = SessionBuilder::new(session.clone(), format!("tau-bench:{}{}", root.file, ep.ptr()));
        let agent = Actor::Agent(format!("tau-bench/{stem}"));
        let mut t = 0u64;
        let mut next_time = || {
            t += 1;
            t
        };
        b.push(
            Body::SessionStart(SessionStart {
                session: session.clone(),
                agent: format!("tau-bench/{stem}"),
                model: None,
                task_id: Some(task_id.clone()),
                task: task.opt("instruction").map(|i| i.str().map(str::to_owned)).transpose()?,
                store: None,
                memory_state: None,
                source: None,
                meta: Some(CanonicalJson::from_value(
                    &serde_json::json!({"trial": trial, "user_id": task.value.get("user_id"), "times": UNTIMED}),
                )),
            }),
            agent.clone(),
            next_time(),
        );
        for m in ep.get("traj")?.array()? {
            let role = m.get("role")?.str()?;
            let time = next_time();
            let actor = if role == "assistant" { agent.clone() } else { Actor::Human(role.to_owned()) };
            b.message(actor, role, m.value, time);
            if let Some(tc) = m.opt("tool_calls") {
                for c in tc.array()? {
                    let f = c.get("function")?;
                    b.call(
                        c.get("id")?.str()?.to_owned(),
                        f.get("name")?.str()?.to_owned(),
                        arguments(&f.get("arguments")?)?,
                    );
                }
            }
            if role == "tool" {
                let id = m.get("tool_call_id")?.str()?;
                let output = m.opt("content").map(|c| c.value).unwrap_or(&Value::Null);
                let status = match output {
                    Value::String(s) if s.starts_with("Error") => ActionStatus::Error,
                    _ => ActionStatus::Ok,
                };
                let r = ToolResult { actor: agent.clone(), output: Some(output), status, meta: None, time };
                b.result(id, r).ok_or_else(|| {
                    bad(root.file, &m.ptr(), format!("tool result for call {id:?}, which no assistant message made"))
                })?;
            }
        }
        let mut criteria = Vec::new();
        if let Some(ri) = info.opt("reward_info") {
            if let Some(Value::Object(parts)) = ri.value.get("info") {
                for (name, v) in parts {
                    if let Some(x) = v.as_f64() {
                        criteria.push(Criterion {
                            name: name.clone(),
                            passed: Some(x >= 1.0),
                            score: Some(x.clamp(0.0, 1.0)),
                            note: None,
                        });
                    }
                }
            }
        }
        b.push(
            Body::Grade(Grade {
                session: session.clone(),
                target: None,
                rubric: "tau-bench".into(),
                evaluator: "tau-bench reward".into(),
                score: reward,
                result: grade_result(reward),
                criteria,
                meta: info.opt("reward_info").map(|r| CanonicalJson::from_value(r.value)),
            }),
            Actor::Evaluator("tau-bench".into()),
            next_time(),
        );
        let cost = info.opt("user_cost").map(|c| serde_json::json!({"user_cost": c.value}));
        b.end(agent, "completed".into(), cost, next_time());
        if let Some(id) = b.unanswered() {
            return Err(bad(root.file, &ep.ptr(), format!("tool call {id:?} has no result")));
        }
        out.push(b.finish(None));
    }
    Ok(out)
}

fn parse_time(at: &At) -> Result<u64> {
    let s = at.str()?;
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s).map(|d| d.naive_utc()))
        .map_err(|e| bad(at.file, &at.ptr(), format!("not a timestamp: {e}")))?;
    Ok(naive.and_utc().timestamp_millis().max(0) as u64)
}

/// τ²-bench: `{info, tasks[], simulations[]}`, simulations joined to tasks by id.
pub(super) fn parse_tau2(root: &At) -> Result<Vec<SessionEvents>> {
    let info = root.opt("info");
    let agent_name = info
        .as_ref()
        .and_then(|i| i.value.pointer("/agent_info/implementation"))
        .and_then(Value::as_str)
        .unwrap_or("tau2-agent")
        .to_owned();
    let model =
        info.as_ref().and_then(|i| i.value.pointer("/agent_info/llm")).and_then(Value::as_str).map(str::to_owned);
    let mut tasks: HashMap<String, At> = HashMap::new();
    for t in root.get("tasks")?.array()? {
        tasks.insert(t.get("id")?.id_text()?, t);
    }
    let mut out = Vec::new();
    for sim in root.get("simulations")?.array()? {
        let session = sim.get("id")?.id_text()?;
        let task_id = sim.get("task_id")?.id_text()?;
        let task = tasks.get(&task_id).ok_or_else(|| {
            bad(
                root.file,
                &sim.get("task_id").map(|t| t.ptr()).unwrap_or_default(),
                format!("no task with id {task_id:?}"),
            )
        })?;
        let mut b = SessionBuilder::new(session.clone(), format!("tau2:{}{}", root.file, sim.ptr()));
        let agent = Actor::Agent(agent_name.clone());
        let start = sim.opt("start_time").map(|t| parse_time(&t)).transpose()?.unwrap_or(0);
        let reason = task.value.pointer("/user_scenario/instructions/reason_for_call").and_then(Value::as_str);
        let domain = task.value.pointer("/user_scenario/instructions/domain").and_then(Value::as_str);
        b.push(
            Body::SessionStart(SessionStart {
                session: session.clone(),
                agent: agent_name.clone(),
                model: model.clone(),
                task_id: Some(match domain {
                    Some(d) => format!("{d}/{task_id}"),
                    None => task_id.clone(),
                }),
                task: reason.map(str::to_owned),
                store: None,
                memory_state: None,
                source: None,
                meta: Some(CanonicalJson::from_value(
                    &serde_json::json!({"trial": sim.value.get("trial"), "seed": sim.value.get("seed")}),
                )),
            }),
            agent.clone(),
            start,
        );
        let mut last = start;
        for m in sim.get("messages")?.array()? {
            let role = m.get("role")?.str()?;
            let time = m.opt("timestamp").map(|t| parse_time(&t)).transpose()?.unwrap_or(last);
            last = time;
            let actor = if role == "assistant" { agent.clone() } else { Actor::Human(role.to_owned()) };
            b.message(actor, role, m.value, time);
            if let Some(tc) = m.opt("tool_calls") {
                for c in tc.array()? {
                    b.call(c.get("id")?.id_text()?, c.get("name")?.str()?.to_owned(), arguments(&c.get("arguments")?)?);
                }
            }
            if role == "tool" {
                let id = m.get("id")?.id_text()?;
                let failed = m.value.get("error").and_then(Value::as_bool).unwrap_or(false);
                let by = m.value.get("requestor").and_then(Value::as_str).unwrap_or("assistant");
                let r = ToolResult {
                    actor: if by == "user" { Actor::Human("user".into()) } else { agent.clone() },
                    output: Some(m.value.get("content").unwrap_or(&Value::Null)),
                    status: if failed { ActionStatus::Error } else { ActionStatus::Ok },
                    meta: Some(serde_json::json!({"requestor": by})),
                    time,
                };
                b.result(&id, r).ok_or_else(|| {
                    bad(root.file, &m.ptr(), format!("tool result for call {id:?}, which no message made"))
                })?;
            }
        }
        let ri = sim.get("reward_info")?;
        let reward = ri.get("reward")?.f64()?;
        let mut criteria = Vec::new();
        if let Some(db) = ri.opt("db_check") {
            criteria.push(Criterion {
                name: "db_check".into(),
                passed: db.value.get("db_match").and_then(Value::as_bool),
                score: db.value.get("db_reward").and_then(Value::as_f64).map(|x| x.clamp(0.0, 1.0)),
                note: None,
            });
        }
        // The environment's assertions (telecom's reward rests on them alone in most
        // tasks): one criterion per assertion function and arguments.
        if let Some(checks) = ri.opt("env_assertions") {
            for c in checks.array()? {
                let a = c.value.get("env_assertion").unwrap_or(&Value::Null);
                let func = a.get("func_name").and_then(Value::as_str).unwrap_or("?");
                let args = a.get("arguments").filter(|v| v.as_object().is_some_and(|o| !o.is_empty()));
                criteria.push(Criterion {
                    name: match args {
                        Some(args) => format!("env:{func}({})", CanonicalJson::from_value(args).as_str()),
                        None => format!("env:{func}"),
                    },
                    passed: c.value.get("met").and_then(Value::as_bool),
                    score: c.value.get("reward").and_then(Value::as_f64).map(|x| x.clamp(0.0, 1.0)),
                    note: a.get("message").and_then(Value::as_str).map(str::to_owned),
                });
            }
        }
        if let Some(checks) = ri.opt("action_checks") {
            for c in checks.array()? {
                criteria.push(Criterion {
                    name: format!("action:{}", c.value.pointer("/action/name").and_then(Value::as_str).unwrap_or("?")),
                    passed: c.value.get("action_match").and_then(Value::as_bool),
                    score: c.value.get("action_reward").and_then(Value::as_f64).map(|x| x.clamp(0.0, 1.0)),
                    note: None,
                });
            }
        }
        if let Some(nl) = ri.opt("nl_assertions") {
            for c in nl.array()? {
                criteria.push(Criterion {
                    name: format!("nl:{}", c.value.get("nl_assertion").and_then(Value::as_str).unwrap_or("?")),
                    passed: c.value.get("met").and_then(Value::as_bool),
                    score: None,
                    note: c.value.get("justification").and_then(Value::as_str).map(str::to_owned),
                });
            }
        }
        if let Some(cc) = ri.opt("communicate_checks") {
            for c in cc.array()? {
                criteria.push(Criterion {
                    name: format!("communicate:{}", c.value.get("info").and_then(Value::as_str).unwrap_or("?")),
                    passed: c.value.get("met").and_then(Value::as_bool),
                    score: None,
                    note: c.value.get("justification").and_then(Value::as_str).map(str::to_owned),
                });
            }
        }
        let end = sim.opt("end_time").map(|t| parse_time(&t)).transpose()?.unwrap_or(last);
        b.push(
            Body::Grade(Grade {
                session: session.clone(),
                target: None,
                rubric: format!("tau2/{}", domain.unwrap_or("unknown")),
                evaluator: "tau2 reward_info".into(),
                score: reward.clamp(0.0, 1.0),
                result: grade_result(reward),
                criteria,
                meta: Some(CanonicalJson::from_value(ri.value)),
            }),
            Actor::Evaluator("tau2".into()),
            end,
        );
        let status = sim.opt("termination_reason").and_then(|r| r.value.as_str().map(str::to_owned));
        let costs = serde_json::json!({
            "agent_cost": sim.value.get("agent_cost"),
            "user_cost": sim.value.get("user_cost"),
            "duration": sim.value.get("duration"),
        });
        b.end(agent, status.unwrap_or_else(|| "unknown".into()), Some(costs), end);
        if let Some(id) = b.unanswered() {
            return Err(bad(root.file, &sim.ptr(), format!("tool call {id:?} has no result")));
        }
        out.push(b.finish(None));
    }
    Ok(out)
}
