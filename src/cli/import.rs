//! `dreamlog import [FORMAT] FILE...`: exports and other agents' run formats.

use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{progress_bar, stdout_line, Cli, ImportArgs};
use crate::error::{Error, Result};
use crate::error::{LogError, MemoryError};
use crate::import::{self, Format};
use crate::service::{MemoryView, Service, ViewQuery};

/// A file to import: its path, whether it was found in a directory (rather than named),
/// and why it is set aside instead (read as part of another file's run).
struct Input {
    path: String,
    in_dir: bool,
}

/// A file not imported on its own, and why (it is part of another file's run).
type SetAside = (String, String);

/// Files named on the command line, with directories expanded (sorted, recursively), and
/// the files set aside with the reason: a Harbor trial directory (`result.json` beside
/// `agent/trajectory.json`) is one run, so the Claude Code transcripts under its
/// `agent/` folder are the same run and are not imported again; trajectory files another
/// trajectory names by `subagent_trajectory_ref` are read as its sub-agents.
fn expand(paths: &[String]) -> Result<(Vec<Input>, Vec<SetAside>)> {
    fn walk(dir: &Path, out: &mut Vec<Input>, aside: &mut Vec<SetAside>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| Error::Io { path: dir.display().to_string(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        let trial = dir.join("result.json").is_file() && dir.join("agent/trajectory.json").is_file();
        for p in entries {
            if p.is_dir() {
                let before = out.len();
                walk(&p, out, aside)?;
                if trial && p.file_name().is_some_and(|n| n == "agent") {
                    let (keep, same_run): (Vec<Input>, Vec<Input>) =
                        out.drain(before..).partition(|i| !i.path.ends_with(".jsonl"));
                    out.extend(keep);
                    for i in same_run {
                        let why = format!(
                            "the Harbor trial's Claude Code transcript, the same run as {}",
                            dir.join("agent/trajectory.json").display()
                        );
                        aside.push((i.path, why));
                    }
                }
            } else if trial && p.file_name().is_some_and(|n| n == "result.json") {
                // read with the trial's trajectory
            } else if let Some(agent) = claude_code_agent_meta(&p) {
                let why =
                    format!("Claude Code's description of sub-agent {agent} (its transcript is agent-{agent}.jsonl)");
                aside.push((p.display().to_string(), why));
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "jsonl" | "traj" | "eval")) {
                out.push(Input { path: p.display().to_string(), in_dir: true });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    let mut aside = Vec::new();
    for p in paths {
        let path = Path::new(p);
        if path.is_dir() {
            walk(path, &mut out, &mut aside)?;
        } else {
            out.push(Input { path: p.clone(), in_dir: false });
        }
    }
    // Trajectories that another trajectory of this import names as its sub-agents.
    let mut referenced = std::collections::HashSet::new();
    for i in out.iter().filter(|i| i.path.ends_with(".json") && i.path.contains("trajectory")) {
        if let Ok(bytes) = std::fs::read(&i.path) {
            for r in import::referenced_paths(&i.path, &bytes) {
                referenced.insert((r.canonicalize().unwrap_or(r), i.path.clone()));
            }
        }
    }
    if !referenced.is_empty() {
        out.retain(|i| {
            let me = Path::new(&i.path).canonicalize().unwrap_or_else(|_| PathBuf::from(&i.path));
            match referenced.iter().find(|(r, _)| *r == me) {
                Some((_, by)) => {
                    aside.push((i.path.clone(), format!("a sub-agent trajectory of {by}, imported with it")));
                    false
                }
                None => true,
            }
        });
    }
    // Sub-agent transcripts after the sessions they belong to, so they can cite them.
    out.sort_by_key(|i| {
        Path::new(&i.path).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("agent-"))
    });
    Ok((out, aside))
}

/// The sub-agent a Claude Code `subagents/agent-ID.meta.json` describes (its type and
/// task, beside the transcript `agent-ID.jsonl`): not a run of its own.
fn claude_code_agent_meta(p: &Path) -> Option<&str> {
    let name = p.file_name()?.to_str()?;
    let in_subagents = p.parent().and_then(|d| d.file_name()).is_some_and(|d| d == "subagents");
    name.strip_prefix("agent-")?.strip_suffix(".meta.json").filter(|_| in_subagents)
}

/// `import`, into the embedded database or a server (one batch per session, or per
/// checked chunk of an export).
pub(super) fn run(cli: &Cli, args: &ImportArgs, svc: &dyn Service) -> Result<ExitCode> {
    let memory = match &args.store {
        Some(name) => {
            let q = ViewQuery { path: Some(crate::core::memory::ROOT.to_owned()), at: None, range: None };
            let hash = match svc.memory_view(name, &q) {
                Ok(MemoryView::Shown { state_hash, .. }) => state_hash,
                // A store with no event yet: the sessions ran with it empty.
                Ok(MemoryView::Refused { .. }) | Err(Error::Memory(MemoryError::NoSuchStore { .. })) => {
                    crate::core::memory::MemoryState::new().state_hash()
                }
                Err(Error::Remote { status: 404, .. }) => crate::core::memory::MemoryState::new().state_hash(),
                Err(e) => return Err(e),
            };
            Some((name.clone(), hash))
        }
        None => None,
    };
    run_into(cli, args, svc, memory)
}

/// `import claude-code --follow`: a pass whenever a transcript grew, until a signal.
fn follow(cli: &Cli, args: &ImportArgs, paths: &[String], sink: &dyn Service) -> Result<ExitCode> {
    if paths.is_empty() {
        return Err(Error::InvalidInput("--follow: name the transcript files or folders to follow".into()));
    }
    for p in paths {
        if !Path::new(p).exists() {
            return Err(Error::NotFound(format!("{p}: no such file or folder to follow")));
        }
    }
    let stop = super::stop_on_signal();
    let mut follower = crate::hooks::Follower::new(paths.iter().map(PathBuf::from).collect());
    if !cli.json {
        eprintln!("following {} (SIGINT or SIGTERM stops)", paths.join(", "));
    }
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if let Some(pass) = follower.pass(sink)? {
            if cli.json {
                stdout_line(&serde_json::to_string(&pass).unwrap_or_default())?;
            } else if pass.counts != Default::default() || !pass.waiting.is_empty() {
                stdout_line(&format!(
                    "{}: {} new session(s), {} grown, {} messages, {} tool calls{}",
                    pass.grew.join(", "),
                    pass.counts.sessions,
                    pass.counts.grown,
                    pass.counts.messages,
                    pass.counts.actions,
                    if pass.waiting.is_empty() {
                        String::new()
                    } else {
                        format!("; waiting: {}", pass.waiting.join(", "))
                    }
                ))?;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(args.poll_ms.max(10)));
    }
    Ok(ExitCode::SUCCESS)
}

/// What happened to one file.
enum Outcome {
    Imported,
    Present,
    Failed(String),
}

/// Where an import writes: the local store or a server.
fn run_into(
    cli: &Cli,
    args: &ImportArgs,
    sink: &dyn Service,
    memory: Option<(String, crate::core::Digest)>,
) -> Result<ExitCode> {
    let (format, rest) = match args.args[0].as_str() {
        "auto" => (None, &args.args[1..]),
        name => match Format::from_name(name) {
            Some(f) => (Some(f), &args.args[1..]),
            None => (None, &args.args[..]),
        },
    };
    if args.follow {
        if format != Some(Format::ClaudeCode) {
            return Err(Error::InvalidInput(
                "--follow reads Claude Code transcripts as they grow: give the format, `import claude-code --follow FILE|DIR`"
                    .into(),
            ));
        }
        return follow(cli, args, rest, sink);
    }
    let (files, aside) = expand(rest)?;
    if files.is_empty() {
        return Err(Error::Input { path: args.args.join(" "), line: 0, reason: "no files to import".into() });
    }
    for (file, why) in &aside {
        if !cli.json {
            eprintln!("{file}: not imported on its own: {why}");
        }
    }
    // Standard input (exports only) is read here; files are read and parsed on a
    // background thread, one ahead of the appends.
    let named: Vec<String> = files.iter().filter(|i| i.path != "-").map(|i| i.path.clone()).collect();
    let parsed = import::parse_in_background(named, format);
    let mem = memory.as_ref().map(|(n, h)| (n.as_str(), *h));
    let mut outcomes: Vec<(String, Outcome)> = Vec::new();
    for input in &files {
        let file = &input.path;
        let result = if file == "-" {
            let mut buf = Vec::new();
            io::Read::read_to_end(&mut io::stdin(), &mut buf)
                .map_err(|source| Error::Io { path: "-".into(), source })?;
            match format.or_else(|| import::detect(&buf)) {
                Some(Format::Dreamlog) | None => Ok(import::Parsed::Export(buf)),
                Some(_) => Err(Error::Input {
                    path: "-".into(),
                    line: 0,
                    reason: "standard input takes dreamlog exports only".into(),
                }),
            }
        } else {
            let (name, result) = parsed.recv().map_err(|_| Error::Log(LogError::Closed))?;
            debug_assert_eq!(&name, file);
            result
        };
        let outcome = match result.and_then(|p| import_one(cli, sink, file, format, p, mem)) {
            Ok(o) => o,
            Err(e) if args.fail_fast => return Err(e),
            Err(e)
                if input.in_dir
                    && matches!(&e, Error::Input { reason, line: 0, .. } if reason.starts_with("cannot tell the format")) =>
            {
                // e.g. a config.json beside the runs: not a failure of the import
                if !cli.json {
                    eprintln!("{file}: skipped (not a format dreamlog imports)");
                }
                continue;
            }
            Err(e) => {
                if cli.json {
                    stdout_line(&serde_json::json!({"file": file, "error": e.to_string()}).to_string())?;
                } else {
                    eprintln!("{file}: failed, nothing of it written: {e}");
                }
                Outcome::Failed(e.to_string())
            }
        };
        outcomes.push((file.clone(), outcome));
    }
    drop(parsed);
    let failed = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Failed(_))).count();
    if files.len() > 1 || failed > 0 {
        let names = |want: fn(&Outcome) -> bool| -> Vec<String> {
            outcomes.iter().filter(|(_, o)| want(o)).map(|(f, _)| f.clone()).collect()
        };
        let imported = names(|o| matches!(o, Outcome::Imported));
        let present = names(|o| matches!(o, Outcome::Present));
        let failures: Vec<serde_json::Value> = outcomes
            .iter()
            .filter_map(|(f, o)| match o {
                Outcome::Failed(e) => Some(serde_json::json!({"file": f, "error": e})),
                _ => None,
            })
            .collect();
        if cli.json {
            let set_aside: Vec<serde_json::Value> =
                aside.iter().map(|(f, why)| serde_json::json!({"file": f, "reason": why})).collect();
            stdout_line(
                &serde_json::json!({"summary": {"imported": imported, "already_present": present,
                    "failed": failures, "set_aside": set_aside}})
                .to_string(),
            )?;
        } else {
            stdout_line(&format!(
                "{} files: {} imported, {} already present, {} failed{}",
                outcomes.len(),
                imported.len(),
                present.len(),
                failed,
                if failed > 0 {
                    format!(
                        " ({})",
                        outcomes
                            .iter()
                            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
                            .map(|(f, _)| f.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    String::new()
                }
            ))?;
        }
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Imports one parsed file; prints its line.
fn import_one(
    cli: &Cli,
    sink: &dyn Service,
    file: &str,
    format: Option<Format>,
    parsed: import::Parsed,
    memory: Option<(&str, crate::core::Digest)>,
) -> Result<Outcome> {
    let bar = progress_bar(None, &format!("importing {file}"));
    match parsed {
        import::Parsed::Export(bytes) => {
            let bytes = std::sync::Arc::new(bytes);
            let report = crate::service::import_export(
                sink,
                file,
                || Ok(Box::new(io::Cursor::new(bytes.as_ref().clone())) as Box<dyn BufRead>),
                |n| bar.set_position(n),
            )?;
            bar.finish_and_clear();
            if cli.json {
                let mut v = serde_json::to_value(&report).unwrap_or_default();
                v["file"] = serde_json::Value::String(file.to_owned());
                stdout_line(&v.to_string())?;
            } else {
                stdout_line(&format!(
                    "{file}: {} events checked, {} appended, {} already present{}",
                    report.events,
                    report.appended,
                    report.existing,
                    if report.same_positions { ", same positions as the source" } else { "" }
                ))?;
            }
            Ok(if report.appended == 0 { Outcome::Present } else { Outcome::Imported })
        }
        import::Parsed::Sessions(chosen, sessions) => {
            if format.is_none() && !cli.json {
                eprintln!("{file}: detected {}", chosen.name());
            }
            let counts = crate::service::import_sessions(sink, sessions, memory, |n| bar.set_position(n))?;
            bar.finish_and_clear();
            if cli.json {
                let mut v = serde_json::to_value(&counts).unwrap_or_default();
                v["file"] = serde_json::Value::String(file.to_owned());
                v["format"] = serde_json::Value::String(chosen.name().into());
                stdout_line(&v.to_string())?;
            } else {
                stdout_line(&format!(
                    "{file} ({}): {} sessions imported, {} grown, {} already present; {} messages, {} tool calls, {} grades",
                    chosen.name(),
                    counts.sessions,
                    counts.grown,
                    counts.already_present,
                    counts.messages,
                    counts.actions,
                    counts.grades,
                ))?;
            }
            Ok(if counts.sessions + counts.grown == 0 { Outcome::Present } else { Outcome::Imported })
        }
    }
}
