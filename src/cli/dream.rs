//! `dreamlog dream …`, `dreamlog drift` and `dreamlog memory lessons`: thin wrappers
//! over [`crate::dream::Dreams`] and [`crate::ledger`].

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::output::time_text;
use super::{stdout_json, stdout_line, Cli};
use crate::core::dream::DreamerSpec;
use crate::core::stats::GradeStats;
use crate::core::EventId;
use crate::dream::Replay;
use crate::error::DreamError;
use crate::error::{Error, Result};
use crate::ledger;

/// `dream` subcommands.
#[derive(Subcommand, Debug)]
pub enum DreamCmd {
    /// Run a dreamer over the graded sessions since the last dream; by default into a new
    /// fork of STORE (review with `memory diff`, then `memory promote`).
    Run(RunArgs),
    /// List dreams in log order.
    List {
        /// Only dreams reading or writing this store.
        #[arg(long)]
        store: Option<String>,
    },
    /// A dream's inputs, the lessons it wrote and the evidence of each.
    Show {
        /// Dream event id or unique prefix.
        id: String,
    },
    /// Run a dream's dreamer again over its recorded input (offline) and compare.
    Replay(ReplayArgs),
}

/// Arguments of `dream run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The input memory store.
    pub store: String,
    /// NAME[@VERSION]: evidence, llm or exec.
    #[arg(long, default_value = "evidence")]
    pub dreamer: DreamerSpec,
    /// Read only the log after this point (position, id, tag, RFC 3339 time); `start`
    /// reads it all. Default: after the last dream of this dreamer in the store.
    #[arg(long)]
    pub since: Option<String>,
    /// Dreamer configuration: a JSON file, or inline JSON.
    #[arg(long)]
    pub config: Option<String>,
    /// Name of the output store (default STORE.dream-N).
    #[arg(long, conflicts_with = "in_place")]
    pub into: Option<String>,
    /// Write straight into STORE instead of a fork.
    #[arg(long)]
    pub in_place: bool,
    /// Dream over a store that has no event yet (refused otherwise, as a likely typo).
    #[arg(long)]
    pub create: bool,
    /// Read only this session (repeat for more): the dream reads these graded sessions
    /// of its range and no others; a replay reads the same.
    #[arg(long = "session", value_name = "ID")]
    pub sessions: Vec<String>,
    /// Validate each lesson out of sample over K folds of the tasks (evidence@2; its
    /// default is 5, 0 turns it off).
    #[arg(long, value_name = "K")]
    pub validate: Option<u32>,
    /// Dream even when an earlier dream of the same dreamer and config read exactly this
    /// input into a fork that is still there (refused by default: it would write that
    /// fork again).
    #[arg(long)]
    pub again: bool,
}

/// Arguments of `dream replay`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
pub struct ReplayArgs {
    /// Dream event id or unique prefix.
    pub id: Option<String>,
    /// Replay every dream in the store (for CI).
    #[arg(long, conflicts_with_all = ["dreamer", "config"])]
    pub all: bool,
    /// Replay with another dreamer version: prints the lesson diff between versions.
    #[arg(long)]
    pub dreamer: Option<DreamerSpec>,
    /// Replay with another configuration (file or inline JSON).
    #[arg(long)]
    pub config: Option<String>,
}

/// Arguments of `drift`.
#[derive(Args, Debug)]
pub struct DriftArgs {
    /// Memory store.
    pub store: String,
    /// Exit non-zero when any change is flagged (for CI).
    #[arg(long)]
    pub fail_on_drift: bool,
    /// Bootstrap resamples (1 to 100,000).
    #[arg(long, default_value_t = 2000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub resamples: usize,
    /// Graded sessions each side needs before a change can be flagged.
    #[arg(long, default_value_t = 3)]
    pub min_sessions: u64,
}

/// Parses `--config`: inline JSON or a file of JSON.
pub fn read_config(arg: Option<&str>) -> Result<Value> {
    let Some(arg) = arg else { return Ok(Value::Null) };
    let (what, text) = if arg.trim_start().starts_with('{') {
        ("--config".to_owned(), arg.to_owned())
    } else {
        let text = std::fs::read_to_string(Path::new(arg)).map_err(|source| Error::Io { path: arg.into(), source })?;
        (arg.to_owned(), text)
    };
    serde_json::from_str(&text).map_err(|e| Error::Input { path: what, line: e.line(), reason: e.to_string() })
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.0}%", v * 100.0)).unwrap_or_else(|| "-".into())
}

fn mean(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

fn grades_text(g: &GradeStats) -> String {
    format!("{} sessions, mean {}, pass {}", g.sessions, mean(g.mean_score), pct(g.pass_rate))
}

/// `dream run`'s answer; no new graded session is not a failure (exit 0, nothing written).
pub(crate) fn print_run_result(cli: &Cli, result: Result<crate::dream::DreamRun>) -> Result<ExitCode> {
    match result {
        Ok(r) => print_run(cli, &r)?,
        Err(e @ crate::error::Error::Dream(DreamError::SameInput { .. })) => {
            let crate::error::Error::Dream(DreamError::SameInput { dream, fork, .. }) = &e else { unreachable!() };
            if cli.json {
                stdout_line(
                    &serde_json::json!({"dream": null, "reason": e.to_string(), "same_as": dream, "fork": fork})
                        .to_string(),
                )?;
            } else {
                stdout_line(&e.to_string())?;
            }
        }
        Err(e @ crate::error::Error::Dream(DreamError::NothingToDream { .. })) => {
            if cli.json {
                stdout_line(&serde_json::json!({"dream": null, "reason": e.to_string()}).to_string())?;
            } else {
                stdout_line(&e.to_string())?;
            }
        }
        Err(e) => return Err(e),
    }
    Ok(ExitCode::SUCCESS)
}

/// `dream run`'s answer.
pub(crate) fn print_run(cli: &Cli, r: &crate::dream::DreamRun) -> Result<()> {
    if cli.json {
        return stdout_json(r);
    }
    let x = &r.dream;
    stdout_line(&format!(
        "dream {} ({}@{}): {} graded session(s) at positions {}..={} → {} command(s) into {}{}",
        r.id,
        x.dreamer,
        x.version,
        r.sessions,
        x.from_position,
        x.to_position,
        r.commands,
        x.output_store,
        if r.exchanges > 0 { format!(" ({} model exchange(s) recorded)", r.exchanges) } else { String::new() }
    ))?;
    stdout_line(&format!("memory state {} → {}", x.base_state.short(16), x.result_state.short(16)))?;
    let summary = crate::dream::DreamSummary { id: r.id, position: r.position, time: 0, dream: x.clone() };
    let report = validation_report(&summary);
    if !report.is_empty() {
        stdout_line(&report)?;
    }
    let created = x.meta.as_ref().and_then(|m| m.to_value().get("input_store_created").cloned()) == Some(json!(true));
    if x.output_store != x.store && created {
        // The input store has no event to diff against: the fork is all there is.
        stdout_line(&format!("review:  dreamlog memory view {} /memories", x.output_store))?;
        stdout_line(&format!("promote: dreamlog memory promote {} --into {}", x.output_store, x.store))?;
    } else if x.output_store != x.store {
        stdout_line(&format!("review:  dreamlog memory diff {} {}", x.store, x.output_store))?;
        stdout_line(&format!("promote: dreamlog memory promote {} --into {}", x.output_store, x.store))?;
    }
    stdout_line(&format!("show:    dreamlog dream show {}", r.id.short(16)))
}

pub(crate) fn print_replay(cli: &Cli, r: &Replay) -> Result<()> {
    if cli.json {
        return stdout_line(&serde_json::to_string(r).unwrap_or_default());
    }
    let verdict = match (r.same_dreamer, r.identical) {
        (true, true) => format!("reproduced bit for bit ({} command(s))", r.committed),
        (true, false) => "DIFFERS from what was committed".to_owned(),
        (false, true) => format!("{} leads to the same memory as {}", r.replayed, r.recorded),
        (false, false) => format!("{} writes different lessons from {}", r.replayed, r.recorded),
    };
    stdout_line(&format!("dream {} ({} replayed as {}): {verdict}", r.id.short(16), r.recorded, r.replayed))?;
    // The lesson diff reads best; when the memory is the same but the commands (or
    // their causes) differ, show the command diff instead.
    if !r.lesson_diff.is_empty() {
        stdout_line(r.lesson_diff.trim_end())?;
    } else if r.same_dreamer && !r.identical {
        if let Some(diff) = &r.command_diff {
            stdout_line(diff.trim_end())?;
        }
    }
    Ok(())
}

/// `drift`'s report; exit 1 with `fail_on_drift` when a change is flagged.
pub(crate) fn print_drift(cli: &Cli, report: &ledger::DriftReport, fail_on_drift: bool) -> Result<ExitCode> {
    if cli.json {
        stdout_line(&serde_json::to_string(report).unwrap_or_default())?;
    } else {
        stdout_line(&format!(
            "drift of memory store {}: {} graded session(s) over {} memory state(s){}",
            report.store,
            report.sessions,
            report.states.len(),
            if report.mismatched > 0 {
                format!(" ({} recorded a state hash the store never had at their start)", report.mismatched)
            } else {
                String::new()
            }
        ))?;
        stdout_line("\nstate              first session  grades")?;
        for s in &report.states {
            stdout_line(&format!("{}   {:>13}  {}", s.state.short(16), s.first_session, grades_text(&s.grades)))?;
        }
        for c in &report.changes {
            let what = if c.dreams.is_empty() {
                format!("{} memory event(s)", c.events.len())
            } else {
                format!(
                    "dream {} ({} event(s))",
                    c.dreams.iter().map(|d| d.short(16)).collect::<Vec<_>>().join(", "),
                    c.events.len()
                )
            };
            stdout_line(&format!(
                "\n{} at position {}: {}",
                if c.flagged { "DRIFT" } else { "change" },
                c.position,
                what
            ))?;
            stdout_line(&format!("  before: {}", grades_text(&c.before)))?;
            stdout_line(&format!("  after:  {}", grades_text(&c.after)))?;
            if let (Some(dl), Some((lo, hi))) = (c.delta, c.interval) {
                stdout_line(&format!("  mean score {dl:+.2}, 95% interval [{lo:+.2}, {hi:+.2}]"))?;
            }
            for f in &c.families {
                let interval = match (f.delta, f.interval) {
                    (Some(dl), Some((lo, hi))) => format!(", mean score {dl:+.2} [{lo:+.2}, {hi:+.2}]"),
                    _ => String::new(),
                };
                stdout_line(&format!(
                    "  {}family {}: {} → {}{interval}",
                    if f.flagged { "DRIFT in " } else { "" },
                    f.family,
                    grades_text(&f.before),
                    grades_text(&f.after)
                ))?;
            }
            if c.flagged {
                for u in &c.undo {
                    stdout_line(&format!("  undo: {u}"))?;
                }
            }
        }
        stdout_line(&format!("\n{} change(s) flagged", report.flagged))?;
    }
    Ok(if fail_on_drift && report.flagged > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

pub(crate) fn print_lessons(cli: &Cli, store_name: &str, rows: &[ledger::LessonRow]) -> Result<ExitCode> {
    for r in rows {
        if cli.json {
            stdout_line(&serde_json::to_string(r).unwrap_or_default())?;
        } else {
            stdout_line(&format!("{}:{}  {}", r.path, r.line, r.text))?;
            stdout_line(&format!(
                "    written by {} at {}{}",
                r.id.short(12),
                r.position,
                match (&r.dream, &r.dreamer) {
                    (Some(d), Some(n)) => format!(", dream {} ({n})", d.short(12)),
                    _ => String::new(),
                }
            ))?;
            if !r.evidence.is_empty() {
                let shown: Vec<&str> = r.evidence_sessions.iter().take(3).map(String::as_str).collect();
                stdout_line(&format!(
                    "    evidence: {} event(s) from {} session(s): {}{}",
                    r.evidence.len(),
                    r.evidence_sessions.len(),
                    shown.join(", "),
                    if r.evidence_sessions.len() > 3 { ", …" } else { "" }
                ))?;
            }
            if let Some(by) = &r.restored_by {
                stdout_line(&format!(
                    "    put back by {} {} ({}, #{}); written first by {} (#{})",
                    by.how,
                    by.id.short(12),
                    by.actor,
                    by.position,
                    r.id.short(12),
                    r.position
                ))?;
            }
            let of = r.family.as_deref().map(|f| format!(" (family {f})")).unwrap_or_default();
            stdout_line(&format!("    before{of}: {}", grades_text(&r.before)))?;
            stdout_line(&format!("    after{of}:  {}", grades_text(&r.after)))?;
        }
    }
    if !cli.json && rows.is_empty() {
        stdout_line(&format!("no lessons in memory store {store_name}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `dream list`'s lines.
pub(crate) fn print_list(cli: &Cli, dreams: &[crate::dream::DreamSummary]) -> Result<()> {
    for s in dreams {
        if cli.json {
            stdout_line(&serde_json::to_string(s).unwrap_or_default())?;
        } else {
            stdout_line(&format!(
                "{}  {}  {}@{}  {} → {}  positions {}..={}",
                s.id.short(16),
                time_text(s.time),
                s.dream.dreamer,
                s.dream.version,
                s.dream.store,
                s.dream.output_store,
                s.dream.from_position,
                s.dream.to_position
            ))?;
        }
    }
    Ok(())
}

/// `dream show`.
pub(crate) fn print_show(cli: &Cli, detail: &crate::dream::DreamDetail) -> Result<()> {
    if cli.json {
        stdout_line(&serde_json::to_string(detail).unwrap_or_default())?;
    } else {
        let x = &detail.summary.dream;
        let mut s = String::new();
        s.push_str(&format!("dream     {}\n", detail.summary.id));
        s.push_str(&format!("dreamer   {}@{}\n", x.dreamer, x.version));
        if !crate::dream::replayable(x) {
            s.push_str("replay    not replayable: recorded from where it ran (a hosted dream)\n");
        }
        s.push_str(&format!("config    {}\n", x.config));
        s.push_str(&format!("input     store {} at state {}\n", x.store, x.base_state));
        s.push_str(&format!("range     positions {}..={}\n", x.from_position, x.to_position));
        s.push_str(&format!("output    store {} at state {}\n", x.output_store, x.result_state));
        let decisions = x.meta.as_ref().and_then(|m| decisions_of(&m.to_value()));
        if let Some(m) = &x.meta {
            let mut m = m.to_value();
            if let Some(summary) = m.get_mut("summary").and_then(|v| v.as_object_mut()) {
                summary.remove("decisions");
            }
            s.push_str(&format!("meta      {m}\n"));
        }
        s.push_str(&format!("exchanges {}\n", detail.exchanges.len()));
        s.push_str(&format!("lessons   {} command(s)\n", detail.lessons.len()));
        for l in &detail.lessons {
            let text = match &l.input {
                crate::core::MemoryCommand::Create { path, .. } => format!("create {path}"),
                crate::core::MemoryCommand::Insert { path, insert_text, .. } => {
                    format!("insert into {path}: {}", insert_text.trim_end())
                }
                crate::core::MemoryCommand::StrReplace { path, new_str, .. } => {
                    format!("str_replace in {path}: {}", new_str.trim_end())
                }
                crate::core::MemoryCommand::Delete { path } => format!("delete {path}"),
                crate::core::MemoryCommand::Mkdir { path } => format!("mkdir {path}"),
                crate::core::MemoryCommand::Write { path, file_text } => {
                    format!("write {path} ({} lines)", file_text.lines().count())
                }
                crate::core::MemoryCommand::Rename { old_path, new_path } => {
                    format!("rename {old_path} → {new_path}")
                }
            };
            s.push_str(&format!("\n  {} {}\n", l.id.short(12), text));
            for e in l.evidence.iter().take(5) {
                s.push_str(&format!(
                    "      ← {} {} {}{}\n",
                    e.id.short(12),
                    e.kind,
                    e.session.as_deref().unwrap_or(""),
                    match (&e.result, e.score) {
                        (Some(r), Some(sc)) => format!(" ({r}, score {sc})"),
                        _ => String::new(),
                    }
                ));
            }
            if l.evidence.len() > 5 {
                s.push_str(&format!("      ← … {} more (dreamlog dream show --json)\n", l.evidence.len() - 5));
            }
        }
        // What it wrote comes first; every decision behind it (written or not) after.
        if let Some(families) = &decisions {
            s.push_str("\ndecisions (every candidate lesson, written or not, and why)\n");
            s.push_str(&decisions_text(families));
        }
        stdout_line(s.trim_end())?;
    }
    Ok(())
}

/// The decisions an evidence@2 dream recorded, per family.
fn decisions_of(meta: &Value) -> Option<Vec<crate::core::dream::evidence2::FamilyDecisions>> {
    serde_json::from_value(meta.pointer("/summary/decisions")?.clone()).ok()
}

fn validation_text(v: &crate::core::dream::lessons::Validation) -> String {
    let lift = match &v.lift {
        Some(l) => format!(
            "lift {:+.2} [{:+.2}, {:+.2}] over {} held-out task(s), {} of {} session(s) followed it",
            l.estimate, l.interval.0, l.interval.1, v.tasks, v.followed, v.sessions
        ),
        None if v.verdict == "not_observable" => "its advice is not a behaviour one can observe".into(),
        None if v.learned_in == 0 => "never learned without its own tasks".into(),
        None => "no held-out task has sessions that followed it and sessions that did not".into(),
    };
    let flag = match v.verdict.as_str() {
        "negative" => "NEGATIVE",
        "inconclusive" => "includes zero",
        "positive" => "positive",
        _ => "not validated",
    };
    format!("{flag}: {lift} (learned in {} of the {} folds that held tasks out)", v.learned_in, v.held_out_folds)
}

/// Each lesson a dream writes with its out-of-sample validation (evidence@2; empty for
/// other dreamers).
pub(crate) fn validation_report(d: &crate::dream::DreamSummary) -> String {
    let Some(families) = d.dream.meta.as_ref().and_then(|m| decisions_of(&m.to_value())) else { return String::new() };
    let mut s = format!("validation of dream {} (by task, out of sample):\n", d.id.short(16));
    let mut any = false;
    for f in &families {
        for c in f.candidates.iter().filter(|c| c.decision == crate::core::dream::lessons::Decision::Write) {
            any = true;
            let v = c.validation.as_ref().map(validation_text).unwrap_or_else(|| "not validated (--validate K)".into());
            s.push_str(&format!("  {} {} `{}` [{}]: {v}\n", f.family, c.advice.tag(), c.subject, c.key));
        }
    }
    if any {
        s.trim_end().to_owned()
    } else {
        String::new()
    }
}

/// Every candidate lesson with its decision, strata, test and validation.
fn decisions_text(families: &[crate::core::dream::evidence2::FamilyDecisions]) -> String {
    use crate::core::dream::lessons::Decision;
    let mut s = String::new();
    for f in families {
        s.push_str(&format!(
            "\nfamily {} ({} graded session(s), {} task(s)) → {}\n",
            f.family, f.trials, f.tasks, f.path
        ));
        for c in &f.candidates {
            let what = match &c.decision {
                Decision::Write => "WRITE".to_owned(),
                Decision::Skip(why) => format!("skip ({why})"),
            };
            s.push_str(&format!(
                "  {} `{}` [{}]: {} task(s), {} of {} session(s) — {what}\n",
                c.advice.tag(),
                crate::core::dream::evidence::clip(&c.subject, 80),
                c.key,
                c.tasks_total,
                c.sessions,
                c.of
            ));
            if let (Some(t), Some(((n1, y1), (n0, y0)))) = (&c.test, c.passes) {
                s.push_str(&format!(
                    "      within tasks: with it {y1}/{n1} passed, without {y0}/{n0}; {} test: observed {} vs {:.2} expected, p = {:.4}, q = {:.4}\n",
                    t.method, t.observed, t.expected, t.p, t.q
                ));
                for r in c.strata.iter().take(10) {
                    s.push_str(&format!(
                        "        task {}: with {}/{}, without {}/{}\n",
                        r.task, r.with.1, r.with.0, r.without.1, r.without.0
                    ));
                }
                if c.tasks_total > 10 {
                    s.push_str(&format!("        … {} more task(s) (--json)\n", c.tasks_total - 10));
                }
            }
            if c.decision == Decision::Write {
                let sources: Vec<String> = c
                    .sources
                    .iter()
                    .map(|(dim, m)| {
                        format!("{dim} {}", m.iter().map(|(v, n)| format!("{v} ({n})")).collect::<Vec<_>>().join(", "))
                    })
                    .collect();
                s.push_str(&format!("      sources: {}\n", sources.join("; ")));
                let tasks: Vec<&str> = c.tasks.iter().take(12).map(String::as_str).collect();
                s.push_str(&format!(
                    "      tasks: {}{}\n",
                    tasks.join(", "),
                    if c.tasks_total > 12 { ", …" } else { "" }
                ));
                if let Some(v) = &c.validation {
                    s.push_str(&format!("      validation: {}\n", validation_text(v)));
                }
            }
        }
    }
    s
}

/// `dream replay --all`: every dream, one result each; exit 1 when any differs or fails.
pub(crate) fn replay_all(
    cli: &Cli,
    all: &[crate::dream::DreamSummary],
    replay: impl Fn(&EventId) -> Result<Replay>,
) -> Result<ExitCode> {
    let bar = super::progress_bar(Some(all.len() as u64), "replaying dreams");
    let mut failed = 0;
    let mut recorded_only = 0;
    for s in all {
        if !crate::dream::replayable(&s.dream) {
            // Recorded from where it ran: nothing to replay, nothing failed.
            recorded_only += 1;
            bar.suspend(|| {
                if cli.json {
                    stdout_line(&json!({"id": s.id, "replayable": false}).to_string())
                } else {
                    let dreamer = format!("{}@{}", s.dream.dreamer, s.dream.version);
                    stdout_line(&format!("dream {} ({dreamer}): not replayable (a hosted dream)", s.id.short(16)))
                }
            })?;
            bar.inc(1);
            continue;
        }
        match replay(&s.id) {
            Ok(r) => {
                if !r.identical {
                    failed += 1;
                }
                bar.suspend(|| print_replay(cli, &r))?;
            }
            Err(e) => {
                failed += 1;
                bar.suspend(|| {
                    if cli.json {
                        stdout_line(&json!({"id": s.id, "identical": false, "error": e.to_string()}).to_string())
                    } else {
                        stdout_line(&format!("dream {}: {e}", s.id.short(16)))
                    }
                })?;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !cli.json {
        let replayed = all.len() - recorded_only;
        let hosted =
            if recorded_only > 0 { format!(" ({recorded_only} hosted, not replayable)") } else { String::new() };
        stdout_line(&format!("{replayed} dream(s) replayed, {failed} differ{hosted}"))?;
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
