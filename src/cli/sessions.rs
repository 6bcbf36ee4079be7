//! `dreamlog sessions {list, show, stats}`.

use clap::Subcommand;
use serde_json::Value;

use super::{output, stdout_json, stdout_line, Cli};
use crate::core::Body;
use crate::error::Result;
use crate::sessions;

/// `sessions` subcommands.
#[derive(Subcommand, Debug)]
pub enum SessionsCmd {
    /// One row per session: id, task, agent, steps, score (empty when ungraded), result, time.
    List {
        /// Only sessions of this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Only sessions of this task id.
        #[arg(long)]
        task: Option<String>,
        /// Only graded sessions.
        #[arg(long)]
        graded: bool,
    },
    /// A session in order: messages, tool calls with results, the grade breakdown.
    Show {
        /// Session id or a unique prefix of it.
        id: String,
    },
    /// Counts and pass rates, by task and by agent.
    Stats,
    /// Tie sessions to the memory they ran with: the store as it stood at a point (for
    /// sessions imported without `--store`, or run after a dream). Drift and the lesson
    /// ledger read each session's latest link.
    Link {
        /// Session ids (or unique prefixes).
        #[arg(required = true, num_args = 1..)]
        sessions: Vec<String>,
        /// The memory store they ran with.
        #[arg(long)]
        store: String,
        /// The point whose state of the store they ran with: position, id or prefix, time,
        /// tag, or head.
        #[arg(long, default_value = "head", allow_hyphen_values = true)]
        at: String,
        /// Who records it (ROLE:NAME).
        #[arg(long)]
        actor: Option<crate::core::Actor>,
    },
}

/// The readable text of a message: a string, the text blocks of a content array (text
/// in `text`, or in `content` as OpenTelemetry's GenAI message parts have it), or the
/// `content` / `message` / `parts` of a whole source message. Tool calls and results are
/// shown from their action events instead.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").or_else(|| b.get("content")).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(m) => {
            m.get("content").or_else(|| m.get("message")).or_else(|| m.get("parts")).map(text_of).unwrap_or_default()
        }
        other => other.to_string(),
    }
}

/// `sessions list`' rows (filtered).
pub(crate) fn print_list(
    cli: &Cli,
    rows: &[sessions::SessionSummary],
    agent: Option<&str>,
    task: Option<&str>,
    graded: bool,
) -> Result<()> {
    let shown: Vec<&sessions::SessionSummary> = rows
        .iter()
        .filter(|r| {
            !(agent.is_some_and(|a| r.agent.as_deref() != Some(a))
                || task.is_some_and(|t| r.task.as_deref() != Some(t))
                || (graded && r.score.is_none()))
        })
        .collect();
    if cli.json {
        for r in shown {
            stdout_line(&serde_json::to_string(r).unwrap_or_default())?;
        }
        return Ok(());
    }
    // Columns as wide as their longest cell (long ids and task names stay aligned).
    let cells: Vec<[String; 7]> = shown
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.task.clone().unwrap_or_else(|| "-".into()),
                r.agent.clone().unwrap_or_else(|| "-".into()),
                r.steps.to_string(),
                r.score.map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into()),
                r.result.clone().unwrap_or_else(|| "ungraded".into()),
                r.time.map(output::time_text).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["SESSION", "TASK", "AGENT", "STEPS", "SCORE", "RESULT", "STARTED"];
    let mut width = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String]| {
        let mut out = String::new();
        for (i, (c, w)) in row.iter().zip(width).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            // Numbers right-aligned, text left-aligned; no padding after the last column.
            match i {
                3 | 4 => out.push_str(&format!("{}{c}", " ".repeat(pad))),
                6 => out.push_str(c),
                _ => out.push_str(&format!("{c}{}", " ".repeat(pad))),
            }
            if i < 6 {
                out.push_str("  ");
            }
        }
        out
    };
    stdout_line(&line(&header.map(String::from)))?;
    for row in &cells {
        stdout_line(&line(row))?;
    }
    Ok(())
}

/// `sessions stats`.
pub(crate) fn print_stats(cli: &Cli, st: &sessions::Stats) -> Result<()> {
    if cli.json {
        stdout_line(&serde_json::to_string(st).unwrap_or_default())?;
    } else {
        let rate = |p: u64, g: u64| {
            if g == 0 {
                "-".to_owned()
            } else {
                format!("{:.1} %", 100.0 * p as f64 / g as f64)
            }
        };
        stdout_line(&format!(
            "{} sessions, {} graded, {} passed ({}), {} tool calls",
            st.sessions,
            st.graded,
            st.passed,
            rate(st.passed, st.graded),
            st.steps
        ))?;
        for (title, groups) in [("agent", &st.by_agent), ("task", &st.by_task)] {
            stdout_line(&format!("\nby {title}:"))?;
            for (k, g) in groups.iter() {
                stdout_line(&format!(
                    "  {k:<40} {:>4} sessions  {:>4} graded  pass rate {:>7}  mean {}",
                    g.sessions,
                    g.graded,
                    rate(g.passed, g.graded),
                    g.mean_score.map(|m| format!("{m:.2}")).unwrap_or_else(|| "-".into())
                ))?;
            }
        }
    }
    Ok(())
}

/// The text of a tool's output: a string as it is, text blocks as their text, anything
/// else as compact JSON (an object is never an empty line).
fn output_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(blocks)
            if !blocks.is_empty() && blocks.iter().all(|b| b.get("type").and_then(Value::as_str) == Some("text")) =>
        {
            text_of(v)
        }
        other => other.to_string(),
    }
}

/// Whether a source message makes tool calls (OpenAI `tool_calls`, Anthropic `tool_use`
/// blocks).
fn makes_calls(content: &Value) -> bool {
    let blocks = |v: &Value| {
        v.as_array().is_some_and(|b| b.iter().any(|x| x.get("type").and_then(Value::as_str) == Some("tool_use")))
    };
    content.get("tool_calls").and_then(Value::as_array).is_some_and(|c| !c.is_empty())
        || blocks(content)
        || content.get("content").is_some_and(blocks)
        || content.pointer("/message/content").is_some_and(blocks)
}

/// Long JSON in a message or a tool's output (a source's metadata blob) folded to its
/// first line's worth; `--json` keeps it whole.
fn folded(text: &str) -> String {
    const KEEP: usize = 160;
    let t = text.trim_start();
    let json_like = (t.starts_with('{') || t.starts_with('[')) && serde_json::from_str::<Value>(t).is_ok();
    if !json_like || text.len() <= 4 * KEEP {
        return text.to_owned();
    }
    let cut = (0..=KEEP).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}… ({} bytes of JSON folded; --json shows it)", &text[..cut], text.len())
}

/// What the graders expected, for a failed check: τ²-bench's expected call with its
/// arguments (`action:NAME`, from the grade's `action_checks`), τ-bench's expected
/// actions (`r_actions`, from its `actions`).
fn expected_beside(criterion: &str, meta: &Value) -> Vec<String> {
    let call = |name: &str, args: Option<&Value>, by: Option<&str>| {
        let args = args.map(|a| a.to_string()).unwrap_or_else(|| "{}".into());
        let by = by.filter(|b| *b != "assistant").map(|b| format!(" (by the {b})")).unwrap_or_default();
        format!("{name}({args}){by}")
    };
    if let Some(name) = criterion.strip_prefix("action:") {
        return meta
            .get("action_checks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| {
                c.pointer("/action/name").and_then(Value::as_str) == Some(name)
                    && c.get("action_match").and_then(Value::as_bool) == Some(false)
            })
            .map(|c| call(name, c.pointer("/action/arguments"), c.pointer("/action/requestor").and_then(Value::as_str)))
            .collect();
    }
    if criterion == "r_actions" {
        let all: Vec<String> = meta
            .get("actions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| Some(call(a.get("name")?.as_str()?, a.get("kwargs"), None)))
            .collect();
        if !all.is_empty() {
            return vec![format!("actions: {}", all.join("; "))];
        }
    }
    Vec::new()
}

/// `sessions show`: a session in order, or (`--json`) one object: summary, link, memory
/// commands and events.
pub(crate) fn print_session(cli: &Cli, d: &sessions::SessionDetail) -> Result<()> {
    if cli.json {
        return stdout_json(d);
    }
    let (id, events) = (&d.session, &d.events);
    let s = sessions::summarize_linked(id, events, d.link.as_ref());
    stdout_line(&format!(
        "session {id}\n  task {}  agent {}  model {}  started {}",
        s.task.as_deref().unwrap_or("-"),
        s.agent.as_deref().unwrap_or("-"),
        s.model.as_deref().unwrap_or("-"),
        s.time.map(output::time_text).unwrap_or_else(|| "- (the source has no timestamps)".into())
    ))?;
    let mut usage = Vec::new();
    if let Some(ms) = s.duration_ms {
        usage.push(format!("duration {:.1} s", ms as f64 / 1000.0));
    }
    let tokens = |i: Option<u64>, o: Option<u64>| {
        format!("{} in, {} out", i.map_or("-".into(), |n| n.to_string()), o.map_or("-".into(), |n| n.to_string()))
    };
    if let Some(c) = s.cost_usd {
        usage.push(format!("agent cost ${c:.4}"));
    }
    if s.input_tokens.is_some() || s.output_tokens.is_some() {
        usage.push(format!("agent tokens {}", tokens(s.input_tokens, s.output_tokens)));
    }
    // A simulated user's model calls (τ-bench, τ²-bench) are not the agent's.
    if let Some(c) = s.user_cost_usd {
        usage.push(format!("user simulator cost ${c:.4}"));
    }
    if s.user_input_tokens.is_some() || s.user_output_tokens.is_some() {
        usage.push(format!("user simulator tokens {}", tokens(s.user_input_tokens, s.user_output_tokens)));
    }
    if !usage.is_empty() {
        stdout_line(&format!("  {}", usage.join("  ")))?;
    }
    if let Some(l) = &d.link {
        if let Some(store) = &l.store {
            stdout_line(&format!(
                "  ran with memory store {store}{}",
                l.memory_state.map(|h| format!(" (state {})", h.short(16))).unwrap_or_default()
            ))?;
        }
        if let Some(src) = &l.source {
            stdout_line(&format!("  imported from {src}"))?;
        }
    } else if let Some(store) = &s.store {
        stdout_line(&format!("  ran with memory store {store}"))?;
    }
    let last_end =
        events.iter().rev().find(|e| e.event.header.kind == crate::core::Kind::SessionEnd).map(|e| e.position);
    for e in events {
        match &e.event.body {
            Body::SessionStart(b) => {
                if let Some(t) = &b.task {
                    stdout_line(&format!("\n[task] {t}"))?;
                }
            }
            // A tool's result is shown with its call, from the action event.
            Body::Message(m) if m.role == "tool" => {}
            Body::Message(m) => {
                let content = m.content.to_value();
                let text = folded(&text_of(&content));
                if !text.is_empty() {
                    stdout_line(&format!("\n[{}] {text}", m.role))?;
                } else if makes_calls(&content) {
                    // A turn of tool calls only: its calls follow under it, not under the
                    // turn before.
                    stdout_line(&format!("\n[{}] (tool calls)", m.role))?;
                }
            }
            Body::Action(a) => {
                let out = a.output.as_ref().map(|o| output_text(&o.to_value())).unwrap_or_default();
                // A call the agent did not make (τ²-bench's simulated user acts on its
                // own device) says whose it was.
                let by = match &e.event.header.actor {
                    crate::core::Actor::Agent(_) => String::new(),
                    other => format!("({other}) "),
                };
                stdout_line(&format!(
                    "  -> {by}{}({}) [{:?}]\n     {}",
                    a.name,
                    a.input,
                    a.status,
                    folded(&out).replace('\n', "\n     ")
                ))?;
            }
            Body::Grade(g) => {
                stdout_line(&format!(
                    "\n[grade] {} by {} ({}): score {} {}",
                    g.rubric,
                    g.evaluator,
                    e.event.header.actor,
                    g.score,
                    g.result.as_str()
                ))?;
                let basis = crate::core::dream::reward_basis(g);
                let meta = g.meta.as_ref().map(|m| m.to_value()).unwrap_or(Value::Null);
                for c in &g.criteria {
                    let mark = match c.passed {
                        Some(true) => "pass",
                        Some(false) => "FAIL",
                        None => "    ",
                    };
                    // A check the score does not rest on (τ²-bench's reward_basis) is shown
                    // as such: its failure is not the session's.
                    let outside = match (&basis, crate::core::dream::reward_kind(&c.name)) {
                        (Some(b), Some(kind)) if !b.contains(kind) => format!(
                            "  (outside the reward basis {}: not counted)",
                            b.iter().cloned().collect::<Vec<_>>().join("+")
                        ),
                        _ => String::new(),
                    };
                    stdout_line(&format!(
                        "  {mark} {}{}{}{outside}",
                        c.name,
                        c.score.map(|s| format!(" ({s})")).unwrap_or_default(),
                        c.note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
                    ))?;
                    if c.passed == Some(false) {
                        for x in expected_beside(&c.name, &meta) {
                            stdout_line(&format!("         expected {x}"))?;
                        }
                    }
                }
            }
            // A transcript that grew has more than one end: the latest holds.
            Body::SessionEnd(b) if last_end == Some(e.position) => stdout_line(&format!("\n[end] {}", b.status))?,
            _ => {}
        }
    }
    if s.score.is_none() {
        stdout_line("\n(no grade recorded)")?;
    }
    if !d.memory.is_empty() {
        stdout_line(&format!("\nmemory commands ({}):", d.memory.len()))?;
        for m in &d.memory {
            let cmd = m.command.get("command").and_then(Value::as_str).unwrap_or("?");
            let path =
                m.command.get("path").or_else(|| m.command.get("old_path")).and_then(Value::as_str).unwrap_or("");
            stdout_line(&format!(
                "  {} {} {cmd} {path}: {}  ({})",
                m.position,
                m.store,
                m.result.replace('\n', " "),
                m.id.short(12)
            ))?;
        }
    }
    Ok(())
}
