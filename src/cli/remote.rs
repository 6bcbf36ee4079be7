//! `--remote URL`: the same subcommands against `dreamlog serve`, printed by the same
//! printers as the embedded mode, so the output is the same.
//!
//! Available so far: `append`, `log`, `show`, `verify`, `memory view`, `memory apply`,
//! `memory history`. The other subcommands answer with an error naming the HTTP route
//! to use instead.

use std::io::Read;
use std::process::ExitCode;

use serde_json::Value;

use super::memory::{print_history_line, print_tool_outcome, print_view, MemoryCmd};
use super::{parse_events, print_appended_events, print_event, print_show, print_verify, read_input, Cli, Command};
use crate::error::{Error, Result};
use crate::remote::Remote;

fn unavailable(what: &str, route: &str) -> Error {
    Error::Input {
        path: "--remote".into(),
        line: 0,
        reason: format!(
            "`{what}` is not available with --remote yet; use the HTTP API ({route}) or run it on the server's machine"
        ),
    }
}

/// Runs one subcommand against a server.
pub fn run(cli: &Cli, remote: &Remote) -> Result<ExitCode> {
    match &cli.command {
        Command::Append(args) => {
            let (path, reader) = read_input(args.file.as_ref())?;
            let text: Vec<String> = std::io::BufRead::lines(reader)
                .collect::<std::io::Result<_>>()
                .map_err(|source| Error::Io { path: path.clone(), source })?;
            // Checked here first, with the embedded mode's messages; sent as given.
            let joined = text.join("\n");
            let batch =
                parse_events(&path, Box::new(std::io::Cursor::new(joined.into_bytes())), args.stream.as_deref())?;
            if batch.events.is_empty() {
                return Err(Error::Input { path, line: 0, reason: "no events to append".into() });
            }
            let events: Vec<Value> = text
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
                .collect();
            let expect = match (&args.stream, args.expect) {
                (Some(s), Some(e)) => Some((s.as_str(), expect_text(e))),
                _ => None,
            };
            let appended = remote.append(events, args.stream.as_deref(), expect)?;
            print_appended_events(cli, &appended)?;
        }
        Command::Log(args) => {
            let limit = args.limit.unwrap_or(usize::MAX);
            let mut printed = 0usize;
            let mut from = args.from;
            while printed < limit {
                let page = (limit - printed).min(1000);
                let chunk = match (&args.stream, args.kind) {
                    (Some(stream), _) => remote.read_stream(stream, from, page)?,
                    (None, Some(kind)) => remote.read_kind(kind, from, page)?,
                    (None, None) => remote.read_range(from, page)?,
                };
                let Some(last) = chunk.last() else { break };
                from = if args.stream.is_some() { last.version + 1 } else { last.position + 1 };
                for e in chunk.iter().filter(|e| args.kind.is_none_or(|k| e.event.header.kind == k)) {
                    if printed >= limit {
                        break;
                    }
                    print_event(cli, e)?;
                    printed += 1;
                }
            }
        }
        Command::Show { id } => print_show(cli, &remote.get_event(id)?)?,
        Command::Verify => return print_verify(cli, &remote.verify()?),
        Command::Memory(cmd) => return memory(cli, remote, cmd),
        Command::Init => return Err(unavailable("init", "a server creates its database when it starts")),
        Command::Export(_) => return Err(unavailable("export", "GET /v1/export")),
        Command::Import(_) => return Err(unavailable("import", "POST /v1/events per session")),
        Command::Sessions(_) => {
            return Err(unavailable("sessions", "GET /v1/sessions, /v1/sessions/stats, /v1/session/ID"))
        }
        Command::Dream(_) => {
            return Err(unavailable("dream", "POST /v1/dreams, GET /v1/dreams/ID, POST /v1/dreams/ID/replay"))
        }
        Command::Drift(_) => return Err(unavailable("drift", "GET /v1/drift/STORE")),
        Command::Tag { .. } => return Err(unavailable("tag", "POST /v1/tags")),
        Command::Demo => return Err(unavailable("demo", "none")),
        Command::Serve { .. } => return Err(unavailable("serve", "none")),
    }
    Ok(ExitCode::SUCCESS)
}

fn expect_text(e: crate::store::ExpectedVersion) -> String {
    use crate::store::ExpectedVersion::*;
    match e {
        Any => "any".into(),
        NoStream => "no-stream".into(),
        StreamExists => "exists".into(),
        Exact(n) => n.to_string(),
    }
}

fn memory(cli: &Cli, remote: &Remote, cmd: &MemoryCmd) -> Result<ExitCode> {
    match cmd {
        MemoryCmd::View { store, path, at, range } => {
            let v = remote.memory_view(store, path, at, range.as_deref())?;
            print_view(cli, &v)
        }
        MemoryCmd::Apply { store, input, actor, session, precondition } => {
            if precondition.is_some() {
                return Err(unavailable("memory apply --precondition", "none yet"));
            }
            let text = match input {
                Some(t) => t.clone(),
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s).map_err(|source| Error::Io { path: "-".into(), source })?;
                    s
                }
            };
            let value: Value = serde_json::from_str(&text).map_err(|e| crate::core::FormatError::Json {
                context: "memory tool input".into(),
                reason: e.to_string(),
            })?;
            // The same default actor as the embedded mode.
            let actor = actor.clone().unwrap_or_else(super::memory::default_actor);
            let answer = remote.memory_tool(store, &value, Some(actor.to_string()), session.clone())?;
            print_tool_outcome(
                cli,
                match answer.error {
                    None => Ok((answer.text, answer.recorded)),
                    Some(kind) => Err((kind, answer.text)),
                },
            )
        }
        MemoryCmd::History { store, path } => {
            for e in remote.history(store, path.as_deref())? {
                print_history_line(cli, &e)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Diff { .. } => Err(unavailable("memory diff", "GET /v1/memory/STORE/diff")),
        MemoryCmd::Blame { .. } => Err(unavailable("memory blame", "GET /v1/memory/STORE/blame")),
        MemoryCmd::Revert(_) => Err(unavailable("memory revert", "POST /v1/memory/STORE/revert")),
        MemoryCmd::Fork { .. } => Err(unavailable("memory fork", "POST /v1/memory/STORE/fork")),
        MemoryCmd::Promote { .. } => Err(unavailable("memory promote", "POST /v1/memory/FORK/promote")),
        MemoryCmd::Lessons { .. } => Err(unavailable("memory lessons", "GET /v1/memory/STORE/lessons")),
    }
}
