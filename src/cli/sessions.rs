//! `dreamlog sessions {list, show, stats}`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::{open, output, stdout_line, Cli};
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
}

/// The readable text of a message: a string, the text blocks of a content array, or
/// the `content` / `message` of a whole source message. Tool calls and results are
/// shown from their action events instead.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(m) => m.get("content").or_else(|| m.get("message")).map(text_of).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// Runs a `sessions` subcommand.
pub fn run(cli: &Cli, cmd: &SessionsCmd) -> Result<ExitCode> {
    let store = open(cli, false)?;
    match cmd {
        SessionsCmd::List { agent, task, graded } => {
            print_list(cli, &sessions::list(&store)?, agent.as_deref(), task.as_deref(), *graded)?;
        }
        SessionsCmd::Show { id } => {
            let (id, events) = sessions::events(&store, id)?;
            print_session(cli, &id, &events)?;
        }
        SessionsCmd::Stats => print_stats(cli, &sessions::stats(&sessions::list(&store)?))?,
    }
    store.close()?;
    Ok(ExitCode::SUCCESS)
}

/// `sessions list`' rows (filtered).
pub(crate) fn print_list(
    cli: &Cli,
    rows: &[sessions::SessionSummary],
    agent: Option<&str>,
    task: Option<&str>,
    graded: bool,
) -> Result<()> {
    for r in rows {
        if agent.is_some_and(|a| r.agent.as_deref() != Some(a))
            || task.is_some_and(|t| r.task.as_deref() != Some(t))
            || (graded && r.score.is_none())
        {
            continue;
        }
        if cli.json {
            stdout_line(&serde_json::to_string(r).unwrap_or_default())?;
        } else {
            stdout_line(&format!(
                "{:<56} {:<16} {:<28} {:>4} steps  {:>5}  {:<10} {}",
                r.id,
                r.task.as_deref().unwrap_or("-"),
                r.agent.as_deref().unwrap_or("-"),
                r.steps,
                r.score.map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into()),
                r.result.as_deref().unwrap_or("ungraded"),
                output::time_text(r.time)
            ))?;
        }
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

/// `sessions show`: a session in order, or its events as JSON Lines.
pub(crate) fn print_session(cli: &Cli, id: &str, events: &[crate::store::StoredEvent]) -> Result<()> {
    if cli.json {
        for e in events {
            stdout_line(&e.to_json().to_line())?;
        }
        return Ok(());
    }
    let s = sessions::summarize(id, events);
    stdout_line(&format!(
        "session {id}\n  task {}  agent {}  model {}  started {}",
        s.task.as_deref().unwrap_or("-"),
        s.agent.as_deref().unwrap_or("-"),
        s.model.as_deref().unwrap_or("-"),
        output::time_text(s.time)
    ))?;
    for e in events {
        match &e.event.body {
            Body::SessionStart(b) => {
                if let Some(t) = &b.task {
                    stdout_line(&format!("\n[task] {t}"))?;
                }
            }
            Body::Message(m) => {
                let text = text_of(&m.content.to_value());
                if !text.is_empty() {
                    stdout_line(&format!("\n[{}] {text}", m.role))?;
                }
            }
            Body::Action(a) => {
                let out = a.output.as_ref().map(|o| text_of(&o.to_value())).unwrap_or_default();
                stdout_line(&format!(
                    "  -> {}({}) [{:?}]\n     {}",
                    a.name,
                    a.input,
                    a.status,
                    out.replace('\n', "\n     ")
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
                for c in &g.criteria {
                    let mark = match c.passed {
                        Some(true) => "pass",
                        Some(false) => "FAIL",
                        None => "    ",
                    };
                    stdout_line(&format!(
                        "  {mark} {}{}{}",
                        c.name,
                        c.score.map(|s| format!(" ({s})")).unwrap_or_default(),
                        c.note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
                    ))?;
                }
            }
            Body::SessionEnd(b) => stdout_line(&format!("\n[end] {}", b.status))?,
            _ => {}
        }
    }
    if s.score.is_none() {
        stdout_line("\n(no grade recorded)")?;
    }
    Ok(())
}
