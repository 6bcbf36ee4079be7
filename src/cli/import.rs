//! `dreamlog import [FORMAT] FILE...`: exports and other agents' run formats.

use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{open, progress_bar, stdout_line, Cli, ImportArgs};
use crate::error::{Error, Result};
use crate::exchange;
use crate::import::{self, Format};
use crate::memory::Memory;

/// Files named on the command line, with directories expanded (sorted, recursively);
/// the flag says whether the file was found in a directory (rather than named).
fn expand(paths: &[String]) -> Result<Vec<(String, bool)>> {
    fn walk(dir: &Path, out: &mut Vec<(String, bool)>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| Error::Io { path: dir.display().to_string(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "jsonl" | "traj")) {
                out.push((p.display().to_string(), true));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        let path = Path::new(p);
        if path.is_dir() {
            walk(path, &mut out)?;
        } else {
            out.push((p.clone(), false));
        }
    }
    // Sub-agent transcripts after the sessions they belong to, so they can cite them.
    out.sort_by_key(|(f, _)| {
        Path::new(f).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("agent-"))
    });
    Ok(out)
}

pub(super) fn run(cli: &Cli, args: &ImportArgs) -> Result<ExitCode> {
    let store = open(cli, true)?;
    let memory = match &args.store {
        Some(name) => Some((name.clone(), Memory::new(store.clone()).state(name)?.0.state_hash())),
        None => None,
    };
    let code = run_into(cli, args, &store, memory)?;
    store.close()?;
    Ok(code)
}

/// `import` against a server: sessions go through `POST /v1/events`, one batch each.
pub(super) fn run_remote(cli: &Cli, args: &ImportArgs, remote: &crate::remote::Remote) -> Result<ExitCode> {
    let memory = match &args.store {
        Some(name) => {
            let v = remote.memory_view(name, crate::core::memory::ROOT, "head", None)?;
            let hash: crate::core::Digest = v["state_hash"].as_str().unwrap_or_default().parse()?;
            Some((name.clone(), hash))
        }
        None => None,
    };
    run_into(cli, args, remote, memory)
}

/// Where an import writes: the local store or a server.
fn run_into<S: import::SessionSink + exchange::ExportSink>(
    cli: &Cli,
    args: &ImportArgs,
    sink: &S,
    memory: Option<(String, crate::core::Digest)>,
) -> Result<ExitCode> {
    let (format, rest) = match args.args[0].as_str() {
        "auto" => (None, &args.args[1..]),
        name => match Format::from_name(name) {
            Some(f) => (Some(f), &args.args[1..]),
            None => (None, &args.args[..]),
        },
    };
    let files = expand(rest)?;
    if files.is_empty() {
        return Err(Error::Input { path: args.args.join(" "), line: 0, reason: "no files to import".into() });
    }
    // Standard input (exports only) is read here; files are read and parsed on a
    // background thread, one ahead of the appends.
    let named: Vec<String> = files.iter().filter(|(f, _)| f != "-").map(|(f, _)| f.clone()).collect();
    let parsed = import::parse_in_background(named, format, memory.clone());
    for (file, found_in_dir) in &files {
        let result = if file == "-" {
            let mut buf = Vec::new();
            io::Read::read_to_end(&mut io::stdin(), &mut buf)
                .map_err(|source| Error::Io { path: "-".into(), source })?;
            Ok(match format.or_else(|| import::detect(&buf)) {
                Some(Format::Dreamlog) | None => import::Parsed::Export(buf),
                Some(_) => {
                    return Err(Error::Input {
                        path: "-".into(),
                        line: 0,
                        reason: "standard input takes dreamlog exports only".into(),
                    })
                }
            })
        } else {
            let (name, result) = parsed.recv().map_err(|_| Error::Closed)?;
            debug_assert_eq!(&name, file);
            result
        };
        let bar = progress_bar(None, &format!("importing {file}"));
        match result? {
            import::Parsed::Unknown if *found_in_dir => {
                // e.g. a Harbor result.json, read with its trajectory
                eprintln!("{file}: skipped (not a format dreamlog imports)");
            }
            import::Parsed::Unknown => {
                return Err(Error::Input {
                    path: file.clone(),
                    line: 0,
                    reason:
                        "cannot tell the format (name it: dreamlog, tau-bench, tau2, swe-agent, atif or claude-code)"
                            .into(),
                });
            }
            import::Parsed::Export(bytes) => {
                let bytes = std::sync::Arc::new(bytes);
                let report = exchange::import(
                    sink,
                    file,
                    || Ok(Box::new(io::Cursor::new(bytes.as_ref().clone())) as Box<dyn BufRead>),
                    |n| bar.set_position(n),
                )?;
                bar.finish_and_clear();
                if cli.json {
                    let mut v = serde_json::to_value(&report).unwrap_or_default();
                    v["file"] = serde_json::Value::String(file.clone());
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
            }
            import::Parsed::Sessions(chosen, sessions) => {
                if format.is_none() && !cli.json {
                    eprintln!("{file}: detected {}", chosen.name());
                }
                let counts = import::write(sink, sessions, |n| bar.set_position(n))?;
                bar.finish_and_clear();
                if cli.json {
                    let mut v = serde_json::to_value(&counts).unwrap_or_default();
                    v["file"] = serde_json::Value::String(file.clone());
                    v["format"] = serde_json::Value::String(chosen.name().into());
                    stdout_line(&v.to_string())?;
                } else {
                    stdout_line(&format!(
                        "{file} ({}): {} sessions imported, {} already present; {} messages, {} tool calls, {} grades{}",
                        chosen.name(),
                        counts.sessions,
                        counts.already_present,
                        counts.messages,
                        counts.actions,
                        counts.grades,
                        if counts.skipped.is_empty() { String::new() } else { format!("; skipped: {}", counts.skipped.join("; ")) }
                    ))?;
                }
            }
        }
    }
    drop(parsed);
    Ok(ExitCode::SUCCESS)
}
