//! Every subcommand that is an operation of the service, dispatched once over
//! `&dyn Service`: the embedded database (`Local`) or a server (`--remote URL`,
//! `Remote`). Both print through the same `print_*` functions, so both modes print alike.

use std::process::ExitCode;

use serde_json::Value;

use super::dream::{print_drift, print_lessons, print_list, print_replay, print_run_result, print_show};
use super::dream::{read_config, replay_all, DreamCmd};
use super::memory::{
    default_actor, fork_what, print_appended, print_blame, print_diff, print_history_line, print_preview, print_tag,
    print_tool_outcome, print_view, revert_what, tool_input_text, MemoryCmd,
};
use super::sessions::{print_list as print_sessions, print_session, print_stats, SessionsCmd};
use super::{
    parse_events, print_appended_events, print_event, print_show as print_event_detail, print_verify, progress_bar,
    read_input, stdout_line, Cli, Command,
};
use crate::error::{Error, Result};
use crate::service::{
    AppendRequest, DiffQuery, DreamRequest, DriftQuery, EventsQuery, ForkRequest, PathQuery, PromoteRequest,
    ReplayRequest, RevertRequest, Service, TagRequest, ToolContext, VerifyQuery, ViewQuery, PAGE,
};

/// Runs one subcommand against the service.
pub fn run(cli: &Cli, svc: &dyn Service) -> Result<ExitCode> {
    match &cli.command {
        Command::Init => {
            let n = svc.info()?.events;
            if cli.json {
                stdout_line(&serde_json::json!({"db": svc.target(), "events": n}).to_string())?;
            } else {
                stdout_line(&format!("dreamlog database at {} ({n} events)", svc.target()))?;
            }
        }
        Command::Append(args) => {
            let (path, reader) = read_input(args.file.as_ref())?;
            let text: Vec<String> = std::io::BufRead::lines(reader)
                .collect::<std::io::Result<_>>()
                .map_err(|source| Error::Io { path: path.clone(), source })?;
            // Checked here first, naming the line; then sent as given.
            let joined = text.join("\n");
            let batch =
                parse_events(&path, Box::new(std::io::Cursor::new(joined.into_bytes())), args.stream.as_deref())?;
            if batch.events.is_empty() {
                return Err(Error::Input { path, line: 0, reason: "no events to append".into() });
            }
            let mut req = AppendRequest {
                events: text
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
                    .collect(),
                stream: args.stream.clone(),
                ..AppendRequest::default()
            };
            if let (Some(s), Some(e)) = (&args.stream, args.expect) {
                req.expect.insert(s.clone(), Value::String(e.to_arg()));
            }
            print_appended_events(cli, &svc.append(&req)?)?;
        }
        Command::Log(args) => {
            let limit = args.limit.unwrap_or(usize::MAX);
            let mut printed = 0usize;
            let mut from = args.from;
            while printed < limit {
                let q = EventsQuery {
                    from,
                    limit: Some((limit - printed).min(PAGE)),
                    stream: args.stream.clone(),
                    kind: if args.stream.is_some() { None } else { args.kind },
                };
                let chunk = match svc.events(&q) {
                    Ok(c) => c,
                    // `log --stream` of a stream that does not exist prints nothing.
                    Err(Error::NotFound(_)) | Err(Error::Remote { status: 404, .. }) if args.stream.is_some() => break,
                    Err(e) => return Err(e),
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
        Command::Show { id } => print_event_detail(cli, &svc.event(id)?)?,
        Command::Backup { dir, deep } => {
            let req = crate::service::BackupRequest { dir: dir.display().to_string(), deep: *deep };
            let r = svc.backup(&req)?;
            super::print_backup(cli.json, "backed up", &cli.db, &r)?;
            return Ok(if r.verify.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        Command::Verify { checkpoint: Some(file), trust, .. } => {
            let text = std::fs::read_to_string(file)
                .map_err(|source| Error::Io { path: file.display().to_string(), source })?;
            let checkpoint = serde_json::from_str(&text).map_err(|e| Error::Input {
                path: file.display().to_string(),
                line: e.line(),
                reason: format!("not a checkpoint (the JSON `dreamlog checkpoint` prints): {e}"),
            })?;
            let v = svc.verify_checkpoint(&crate::service::CheckpointCheckRequest { checkpoint, key: trust.clone() })?;
            if cli.json {
                stdout_line(&serde_json::to_string(&v).unwrap_or_default())?;
            } else if v.extends {
                stdout_line(&format!(
                    "ok: the log ({} events) extends the checkpoint at position {} ({})",
                    v.events,
                    v.position,
                    if v.key_trusted { "signed by the trusted key" } else { "signature valid; pass --trust KEY to pin the signer" }
                ))?;
            } else {
                stdout_line(&format!("the log does NOT extend the checkpoint at position {}:", v.position))?;
                for p in &v.problems {
                    stdout_line(&format!("  {p}"))?;
                }
            }
            return Ok(if v.extends { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        Command::Checkpoint { out, .. } => {
            let cp = svc.checkpoint(&default_actor())?;
            let json = serde_json::to_string_pretty(&cp).unwrap_or_default();
            if let Some(p) = out {
                std::fs::write(p, format!("{json}\n")).map_err(|source| Error::Io { path: p.display().to_string(), source })?;
            }
            if cli.json {
                stdout_line(&serde_json::to_string(&cp).unwrap_or_default())?;
            } else {
                stdout_line(&json)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Verify { deep, .. } => {
            let bar = progress_bar(Some(svc.info()?.events), "verifying");
            let report = svc.verify(&VerifyQuery { deep: *deep }, &mut |n| bar.set_position(n))?;
            bar.finish_and_clear();
            return print_verify(cli, &report);
        }
        Command::Export(args) => {
            let otlp = args.format == "otlp";
            let total = if otlp { None } else { Some(svc.info()?.events.saturating_sub(args.from)) };
            let bar = progress_bar(total, if otlp { "exporting sessions" } else { "exporting" });
            let mut progress = |n| bar.set_position(n);
            let sel = crate::otlp::ExportSelection {
                sessions: args.sessions.clone(),
                agent: args.agent.clone(),
                since: args.since,
                until: args.until,
            };
            let mut write = |w: &mut dyn std::io::Write| -> Result<u64> {
                if otlp {
                    crate::otlp::export_sessions(svc, &sel, w, &mut progress)
                } else {
                    svc.export(args.from, w, &mut progress)
                }
            };
            let n = match &args.out {
                Some(p) => {
                    let io = |source| Error::Io { path: p.display().to_string(), source };
                    let f = std::fs::File::create(p).map_err(io)?;
                    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                    let n = write(&mut w)?;
                    std::io::Write::flush(&mut w).map_err(io)?;
                    n
                }
                None => {
                    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                    let n = write(&mut w)?;
                    std::io::Write::flush(&mut w).map_err(|source| Error::Io { path: "stdout".into(), source })?;
                    n
                }
            };
            bar.finish_and_clear();
            if args.out.is_some() {
                eprintln!("exported {n} {}", if otlp { "sessions" } else { "events" });
            }
        }
        Command::Import(args) => return super::import::run(cli, args, svc),
        Command::Sync(cmd) => return super::sync::run(cli, svc, cmd),
        Command::Sessions(SessionsCmd::List { agent, task, graded }) => {
            print_sessions(cli, &svc.sessions()?, agent.as_deref(), task.as_deref(), *graded)?
        }
        Command::Sessions(SessionsCmd::Show { id }) => print_session(cli, &svc.session(id)?)?,
        Command::Sessions(SessionsCmd::Stats) => print_stats(cli, &svc.session_stats()?)?,
        Command::Sessions(SessionsCmd::Link { sessions, store, at, actor }) => {
            let req = crate::service::SessionsLinkRequest {
                sessions: sessions.clone(),
                store: store.clone(),
                at: Some(at.clone()),
            };
            let r = svc.sessions_link(&req, &actor.clone().unwrap_or_else(default_actor))?;
            if cli.json {
                stdout_line(&serde_json::to_string(&r).unwrap_or_default())?;
            } else {
                stdout_line(&format!(
                    "linked {} session(s) to memory store {} at position {} (state {}); drift and memory lessons read them there",
                    r.linked.len(),
                    r.store,
                    r.position,
                    r.memory_state.short(16)
                ))?;
            }
        }
        Command::Principals { name, limit } => {
            let q = crate::service::PrincipalsQuery { name: name.clone(), limit: Some(*limit) };
            let p = svc.principals(&q)?;
            if cli.json {
                stdout_line(&serde_json::to_string(&p).unwrap_or_default())?;
            } else {
                for s in &p.principals {
                    stdout_line(&format!(
                        "{:<28} {:<14} {:>8} batch(es) {:>10} event(s)  {} .. {}",
                        s.name,
                        s.roles,
                        s.batches,
                        s.events,
                        super::output::time_text(s.first_at),
                        super::output::time_text(s.last_at)
                    ))?;
                }
                if p.unreceipted_events > 0 {
                    stdout_line(&format!(
                        "{} event(s) have no receipt (written before receipts, or by a library caller naming no principal)",
                        p.unreceipted_events
                    ))?;
                }
                for b in p.batches.iter().flatten() {
                    stdout_line(&format!(
                        "  batch at {:>8}: {} event(s), received {} as {}",
                        b.batch,
                        b.events,
                        super::output::time_text(b.at),
                        b.role
                    ))?;
                }
            }
        }
        Command::Memory(cmd) => return memory(cli, svc, cmd),
        Command::Dream(cmd) => return dream(cli, svc, cmd),
        Command::Drift(args) => {
            let q = DriftQuery { resamples: Some(args.resamples), min_sessions: Some(args.min_sessions) };
            return print_drift(cli, &svc.drift(&args.store, &q)?, args.fail_on_drift);
        }
        Command::Tag { name, at, actor } => {
            let req = TagRequest { name: name.clone(), at: Some(at.clone()) };
            let t = svc.tag(&req, &actor.clone().unwrap_or_else(default_actor))?;
            print_tag(cli, name, t.position, &t.id, t.event_position)?
        }
        Command::Redact { event, session, of_actor, reason, actor } => {
            let req = crate::service::RedactRequest {
                event: event.clone(),
                session: session.clone(),
                actor: of_actor.as_ref().map(ToString::to_string),
                reason: reason.clone(),
            };
            let r = svc.redact(&req, &actor.clone().unwrap_or_else(default_actor))?;
            if cli.json {
                super::stdout_line(&serde_json::to_string(&r).unwrap_or_default())?
            } else {
                print_redacted(&r)?
            }
        }
        Command::Demo => super::demo::run(svc, cli.remote.is_some())?,
        Command::Hook(args) => super::hooks::flush(cli, args, svc)?,
        Command::Watch { dir, store, quiet_ms, max_burst_ms, actor, session } => {
            let opts = crate::watch::WatchOptions {
                store: store.clone(),
                actor: actor.clone(),
                session: session.clone(),
                quiet: std::time::Duration::from_millis(*quiet_ms),
                max_burst: std::time::Duration::from_millis(*max_burst_ms),
            };
            for (path, why) in crate::watch::read_folder(dir, crate::core::memory::CURRENT_RULES)?.skipped {
                eprintln!("watch: skipping {path}: {why}");
            }
            let stop = super::stop_on_signal();
            if !cli.json {
                eprintln!("watching {} into memory store {store} (SIGINT or SIGTERM stops)", dir.display());
            }
            crate::watch::watch(svc, dir, &opts, &stop, &mut |r| {
                if cli.json {
                    stdout_line(&serde_json::to_string(r).unwrap_or_default())
                } else {
                    stdout_line(&format!(
                        "recorded {} change(s) at positions {}..={}: {}",
                        r.commands,
                        r.positions.0,
                        r.positions.1,
                        r.changes.join(", ")
                    ))
                }
            })?;
        }
        Command::Mcp { store, actor, session } => {
            let opts = crate::mcp::McpOptions { store: store.clone(), actor: actor.clone(), session: session.clone() };
            crate::mcp::serve(svc, &opts, std::io::stdin().lock(), std::io::stdout().lock())?
        }
        // Handled before a database or a server is opened.
        Command::Hooks(cmd) => return super::hooks::run_hooks(cli, cmd),
        Command::Serve { .. }
        | Command::Recover { .. }
        | Command::Reindex
        | Command::Restore { .. }
        | Command::Keygen { .. } => {
            return Err(Error::Input {
                path: "--remote".into(),
                line: 0,
                reason: "`serve`, `recover`, `reindex` and `restore` work on a database folder; run them on the server's machine"
                    .into(),
            })
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn memory(cli: &Cli, svc: &dyn Service, cmd: &MemoryCmd) -> Result<ExitCode> {
    match cmd {
        MemoryCmd::View { store, path, at, range } => {
            let q = ViewQuery { path: Some(path.clone()), at: Some(at.clone()), range: range.clone() };
            print_view(cli, &svc.memory_view(store, &q)?)
        }
        MemoryCmd::Apply { store, input, actor, session, precondition, causes } => {
            let text = tool_input_text(input.as_deref())?;
            let value: Value = serde_json::from_str(&text).map_err(|e| crate::core::FormatError::Json {
                context: "memory tool input".into(),
                reason: e.to_string(),
            })?;
            let context = ToolContext {
                actor: Some(actor.clone().unwrap_or_else(default_actor)),
                session: session.clone(),
                precondition: *precondition,
                causes: causes.clone(),
            };
            let answer = svc.memory_tool(store, &value, &context)?;
            print_tool_outcome(
                cli,
                match answer.error {
                    None => Ok((answer.text, answer.recorded)),
                    Some(kind) => Err((kind, answer.text)),
                },
            )
        }
        MemoryCmd::History { store, path } => {
            for e in svc.memory_history(store, &PathQuery { path: path.clone(), at: None })? {
                print_history_line(cli, &e)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Diff { store, other, from, to, at, stat } => {
            let q = DiffQuery { other: other.clone(), from: from.clone(), to: to.clone(), at: Some(at.clone()) };
            print_diff(cli, &svc.memory_diff(store, &q)?, *stat)?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Blame { store, path, at } => {
            let q = PathQuery { path: Some(path.clone()), at: Some(at.clone()) };
            print_blame(cli, &svc.memory_blame(store, &q)?)?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Revert(args) => {
            let req = RevertRequest {
                event: args.event.clone(),
                dream: args.dream.clone(),
                session: args.session.clone(),
                to: args.to.clone(),
                reason: args.reason.clone(),
                force: args.force,
            };
            if crate::managed::push::is_mirror(svc, &args.store)? {
                let push =
                    crate::managed::push::PushRequest { revert: Some(req), promote: None, dry_run: args.dry_run };
                return super::sync::push(cli, svc, &args.store, &push, args.workspace.clone());
            }
            if args.dry_run {
                print_preview(cli, &svc.memory_revert_dry_run(&args.store, &req, &default_actor())?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let appended = svc.memory_revert(&args.store, &req, &default_actor())?;
            print_appended(cli, revert_what(args.force), &appended)?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Fork { source, new, at } => {
            let req = ForkRequest { new: new.clone(), at: Some(at.clone()) };
            let f = svc.memory_fork(source, &req, &default_actor())?;
            print_appended(cli, &fork_what(source, f.position, new), &[f.appended])?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Promote { fork, into, force, dry_run, workspace } => {
            // The validation of the fork's dreams first: what is about to be promoted.
            if !cli.json {
                for d in svc.dreams()?.into_iter().filter(|d| d.dream.output_store == *fork) {
                    let text = super::dream::validation_report(&d);
                    if !text.is_empty() {
                        stdout_line(&text)?;
                    }
                }
            }
            if crate::managed::push::is_mirror(svc, into)? {
                let from = crate::managed::push::PromoteFrom { fork: fork.clone(), force: *force };
                let push = crate::managed::push::PushRequest { revert: None, promote: Some(from), dry_run: *dry_run };
                return super::sync::push(cli, svc, into, &push, workspace.clone());
            }
            let req = PromoteRequest { into: into.clone(), force: *force };
            if *dry_run {
                print_preview(cli, &svc.memory_promote_dry_run(fork, &req, &default_actor())?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let appended = svc.memory_promote(fork, &req, &default_actor())?;
            print_appended(cli, &format!("promoted {fork} into {into}"), &appended)?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Rules { store, set } => {
            let (rules, switched) = match set {
                Some(n) => {
                    let r =
                        svc.memory_set_rules(store, &crate::service::RulesRequest { rules: *n }, &default_actor())?;
                    (r.rules, r.event.map(|id| (id, r.position.unwrap_or_default())))
                }
                None => (svc.memory_files(store, &PathQuery::default())?.rules, None),
            };
            if cli.json {
                let v = serde_json::json!({
                    "store": store,
                    "rules": rules,
                    "event": switched.map(|(id, _)| id.to_hex()),
                    "position": switched.map(|(_, p)| p),
                });
                stdout_line(&v.to_string())?;
            } else {
                let what = match rules {
                    1 => "directories implied by files, dreamlog's texts",
                    _ => "the Anthropic SDK reference backend's semantics and texts, directories as state",
                };
                match (set, switched) {
                    (Some(_), Some((id, p))) => stdout_line(&format!(
                        "{store} follows memory rules {rules} ({what}) from position {p} on (event {})",
                        id.short(12)
                    ))?,
                    (Some(_), None) => stdout_line(&format!("{store} already follows memory rules {rules} ({what})"))?,
                    (None, _) => stdout_line(&format!("{store} follows memory rules {rules} ({what})"))?,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Checkout { store, dir, at, force } => {
            let c = crate::watch::checkout(svc, store, dir, at.as_deref(), *force)?;
            if cli.json {
                stdout_line(&serde_json::to_string(&c).unwrap_or_default())?;
            } else {
                stdout_line(&format!(
                    "checked out {store} (log before {}) into {}: {} written, {} removed, {} unchanged",
                    c.until,
                    dir.display(),
                    c.written.len(),
                    c.removed.len(),
                    c.unchanged
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Lessons { store, at } => {
            print_lessons(cli, store, &svc.memory_lessons(store, &PathQuery { path: None, at: Some(at.clone()) })?)
        }
    }
}

fn dream(cli: &Cli, svc: &dyn Service, cmd: &DreamCmd) -> Result<ExitCode> {
    match cmd {
        DreamCmd::Run(args) => {
            let mut config = read_config(args.config.as_deref())?;
            if let Some(k) = args.validate {
                let v2 = args.dreamer.name == crate::core::dream::evidence::NAME
                    && args.dreamer.version.as_deref().is_none_or(|v| {
                        v == crate::core::dream::evidence2::VERSION || v == crate::core::dream::evidence2::VERSION3
                    });
                if !v2 {
                    return Err(Error::Dream(crate::error::DreamError::Dreamer {
                        dreamer: args.dreamer.to_string(),
                        reason: "--validate needs a dreamer whose lessons state their advice: evidence@2 or @3".into(),
                    }));
                }
                if config.is_null() {
                    config = serde_json::json!({});
                }
                config["validate"] = serde_json::json!(k);
            }
            let req = DreamRequest {
                store: args.store.clone(),
                dreamer: Some(args.dreamer.to_string()),
                config,
                since: args.since.clone(),
                into: args.into.clone(),
                in_place: args.in_place,
                create: args.create,
                sessions: args.sessions.clone(),
                again: args.again,
            };
            let bar = progress_bar(None, &format!("dreaming with {}", args.dreamer));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let r = svc.dream_run(&req);
            bar.finish_and_clear();
            print_run_result(cli, r)
        }
        DreamCmd::List { store } => {
            let all: Vec<_> = svc
                .dreams()?
                .into_iter()
                .filter(|d| store.as_deref().is_none_or(|s| s == d.dream.store || s == d.dream.output_store))
                .collect();
            print_list(cli, &all)?;
            Ok(ExitCode::SUCCESS)
        }
        DreamCmd::Show { id } => {
            print_show(cli, &svc.dream(id)?)?;
            Ok(ExitCode::SUCCESS)
        }
        DreamCmd::Replay(args) => {
            if args.all {
                return replay_all(cli, &svc.dreams()?, |id| svc.dream_replay(&id.to_hex(), &ReplayRequest::default()));
            }
            let req = ReplayRequest {
                dreamer: args.dreamer.as_ref().map(|d| d.to_string()),
                config: args.config.as_deref().map(|c| read_config(Some(c))).transpose()?,
            };
            let r = svc.dream_replay(args.id.as_deref().unwrap_or_default(), &req)?;
            print_replay(cli, &r)?;
            // With its own dreamer a difference is a failed regression test; with another
            // version the diff is the answer.
            Ok(if r.same_dreamer && !r.identical { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}

/// A redaction, for people.
fn print_redacted(r: &crate::service::Redacted) -> Result<()> {
    let mut out = Vec::new();
    if r.events.is_empty() && r.already.is_empty() {
        out.push(format!(
            "redacted {} (position {}): its body is gone, its header stays; recorded as event {} at {}",
            r.target, r.position, r.event, r.event_position
        ));
    }
    if !r.events.is_empty() {
        out.push(format!(
            "redacted {} events in one write (positions {}): their bodies are gone, their headers stay; recorded from event {} at {}",
            r.events.len(),
            r.events.iter().map(|e| e.position.to_string()).collect::<Vec<_>>().join(", "),
            r.event,
            r.event_position
        ));
    }
    for a in &r.already {
        out.push(format!(
            "{} (position {}) was redacted before: its scrub ran again, its removed bytes are in no file",
            a.target, a.position
        ));
    }
    if !r.kept.is_empty() {
        out.push(format!("kept {} events that hold no text dreamlog redacts:", r.kept.len()));
        for k in r.kept.iter().take(20) {
            out.push(format!("  {} (position {}): {}", k.id, k.position, k.reason));
        }
        if r.kept.len() > 20 {
            out.push(format!("  … and {} more (--json lists them all)", r.kept.len() - 20));
        }
    }
    super::stdout_line(&out.join("\n"))
}
