//! `--remote URL`: the same subcommands against `dreamlog serve`, printed by the same
//! printers as the embedded mode, so the output is the same.
//!
//! Available: `append`, `log`, `show`, `verify`, `tag`, `sessions list/show/stats`,
//! `memory view/apply/history/diff/blame/revert/fork/promote/lessons`, `dream
//! run/list/show/replay`, `drift`, `export`, `init` (reports the server's log) and
//! `import` of agent-run formats (parsed here, one batch per session to the server; a
//! dreamlog export is imported on the server's machine). `demo` answers with an error;
//! `serve` has no remote meaning.

use std::process::ExitCode;

use serde_json::Value;

use super::memory::{
    default_actor, fork_what, print_appended, print_blame, print_diff, print_history_line, print_tag,
    print_tool_outcome, print_view, revert_what, MemoryCmd,
};
use super::sessions::{print_list, print_session, print_stats, SessionsCmd};
use super::{
    parse_events, print_appended_events, print_event, print_show, print_verify, read_input, stdout_line, Cli, Command,
};
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
                (Some(s), Some(e)) => Some((s.as_str(), e.to_arg())),
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
        Command::Verify { deep } => return print_verify(cli, &remote.verify(*deep)?),
        Command::Memory(cmd) => return memory(cli, remote, cmd),
        Command::Init => {
            let n = remote.len()?;
            if cli.json {
                stdout_line(&serde_json::json!({"db": remote_url(cli), "events": n}).to_string())?;
            } else {
                stdout_line(&format!("dreamlog database at {} ({n} events)", remote_url(cli)))?;
            }
        }
        Command::Export(args) => match &args.out {
            Some(p) => {
                let f =
                    std::fs::File::create(p).map_err(|source| Error::Io { path: p.display().to_string(), source })?;
                let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                let n = remote.export(args.from, &mut w)?;
                std::io::Write::flush(&mut w).map_err(|source| Error::Io { path: p.display().to_string(), source })?;
                eprintln!("exported {n} events");
            }
            None => {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                remote.export(args.from, &mut w)?;
                std::io::Write::flush(&mut w).map_err(|source| Error::Io { path: "stdout".into(), source })?;
            }
        },
        Command::Import(args) => return super::import::run_remote(cli, args, remote),
        Command::Sessions(SessionsCmd::List { agent, task, graded }) => {
            print_list(cli, &remote.sessions()?, agent.as_deref(), task.as_deref(), *graded)?
        }
        Command::Sessions(SessionsCmd::Show { id }) => print_session(cli, &remote.session(id)?)?,
        Command::Sessions(SessionsCmd::Stats) => print_stats(cli, &remote.session_stats()?)?,
        Command::Dream(cmd) => return dream(cli, remote, cmd),
        Command::Drift(args) => {
            let report = remote.drift(&args.store, args.resamples, args.min_sessions)?;
            return super::dream::print_drift(cli, &report, args.fail_on_drift);
        }
        Command::Tag { name, at, actor } => {
            let (point, id, position) = remote.tag(name, at, &actor.clone().unwrap_or_else(default_actor))?;
            print_tag(cli, name, point, &id, position)?
        }
        Command::Demo => super::demo::run_remote(remote, cli.remote.as_deref().unwrap_or_default())?,
        Command::Serve { .. } => return Err(unavailable("serve", "none")),
        Command::Recover { .. } => return Err(unavailable("recover", "none")),
        Command::Reindex => return Err(unavailable("reindex", "none")),
    }
    Ok(ExitCode::SUCCESS)
}

fn remote_url(cli: &Cli) -> String {
    cli.remote.clone().unwrap_or_default()
}

fn memory(cli: &Cli, remote: &Remote, cmd: &MemoryCmd) -> Result<ExitCode> {
    match cmd {
        MemoryCmd::View { store, path, at, range } => {
            let v = remote.memory_view(store, path, at, range.as_deref())?;
            print_view(cli, &v)
        }
        MemoryCmd::Apply { store, input, actor, session, precondition, causes } => {
            let text = super::memory::tool_input_text(input.as_deref())?;
            let value: Value = serde_json::from_str(&text).map_err(|e| crate::core::FormatError::Json {
                context: "memory tool input".into(),
                reason: e.to_string(),
            })?;
            // The same default actor as the embedded mode.
            let context = crate::remote::ToolContext {
                actor: Some(actor.clone().unwrap_or_else(super::memory::default_actor)),
                session: session.clone(),
                precondition: *precondition,
                causes: causes.clone(),
            };
            let answer = remote.memory_tool(store, &value, &context)?;
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
        MemoryCmd::Diff { store, other, from, to, at, stat } => {
            let d = remote.diff(
                store,
                other.as_deref(),
                from.as_deref().unwrap_or("head"),
                to.as_deref().unwrap_or("head"),
                at,
            )?;
            print_diff(cli, &d, *stat)?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Blame { store, path, at } => {
            print_blame(cli, &remote.blame(store, path, at)?)?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Revert(args) => {
            let target = match (&args.event, &args.dream, &args.to) {
                (Some(e), _, _) => ("event", e.as_str()),
                (_, Some(d), _) => ("dream", d.as_str()),
                (_, _, to) => ("to", to.as_deref().unwrap_or("head")),
            };
            let appended = remote.revert(&args.store, target, &args.reason, args.force, &default_actor())?;
            print_appended(cli, revert_what(args.force), &appended)?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Fork { source, new, at } => {
            let (a, point) = remote.fork(source, new, at, &default_actor())?;
            print_appended(cli, &fork_what(source, point, new), &[a])?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Promote { fork, into } => {
            let appended = remote.promote(fork, into, &default_actor())?;
            print_appended(cli, &format!("promoted {fork} into {into}"), &appended)?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Lessons { store, at } => super::dream::print_lessons(cli, store, &remote.lessons(store, at)?),
    }
}

fn dream(cli: &Cli, remote: &Remote, cmd: &super::dream::DreamCmd) -> Result<ExitCode> {
    use super::dream::{print_list, print_replay, print_run_result, print_show, read_config, replay_all, DreamCmd};
    match cmd {
        DreamCmd::Run(args) => {
            let mut spec = args.dreamer.clone();
            spec.config = read_config(args.config.as_deref())?;
            let r = remote.dream_run(
                &args.store,
                &spec,
                args.since.as_deref(),
                args.into.as_deref(),
                args.in_place,
                args.create,
            );
            print_run_result(cli, r)
        }
        DreamCmd::List { store } => {
            let all: Vec<_> = remote
                .dreams()?
                .into_iter()
                .filter(|d| store.as_deref().is_none_or(|s| s == d.dream.store || s == d.dream.output_store))
                .collect();
            print_list(cli, &all)?;
            Ok(ExitCode::SUCCESS)
        }
        DreamCmd::Show { id } => {
            print_show(cli, &remote.dream(id)?)?;
            Ok(ExitCode::SUCCESS)
        }
        DreamCmd::Replay(args) => {
            if args.all {
                return replay_all(cli, &remote.dreams()?, |id| remote.dream_replay(&id.to_hex(), None, None));
            }
            let config = match &args.config {
                Some(c) => Some(read_config(Some(c))?),
                None => None,
            };
            let r = remote.dream_replay(
                args.id.as_deref().unwrap_or_default(),
                args.dreamer.as_ref().map(|d| d.to_string()),
                config,
            )?;
            print_replay(cli, &r)?;
            Ok(if r.same_dreamer && !r.identical { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}
