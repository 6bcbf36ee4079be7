//! The `dreamlog` command line: a thin surface over the library. Each subcommand parses
//! its arguments, calls one library function and prints the result for people, or as
//! JSON with `--json` (one object per line for lists).

mod demo;
mod dispatch;
mod dream;
mod hooks;
mod import;
mod memory;
mod output;
mod sessions;
mod sync;

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::core::{EventJson, Kind};
use crate::error::{Error, Result};
use crate::store::{AppendBatch, ExpectedVersion, Options, Store, SyncMode};

/// dreamlog: a content-addressed, replayable event store for AI agents.
#[derive(Parser, Debug)]
#[command(name = "dreamlog", version, about, long_about = None)]
pub struct Cli {
    /// Database directory.
    #[arg(long, global = true, env = "DREAMLOG_DB", default_value = "./dreamlog.db")]
    pub db: PathBuf,
    /// Talk to a `dreamlog serve` at this URL instead of opening --db.
    #[arg(long, global = true, env = "DREAMLOG_REMOTE")]
    pub remote: Option<String>,
    /// A PEM certificate (or bundle) --remote trusts besides the public roots: a server
    /// with a private or self-signed TLS certificate.
    #[arg(long, global = true, env = "DREAMLOG_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Bearer token for --remote.
    #[arg(long, global = true, env = "DREAMLOG_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// When appends are acknowledged: `fsync` (after the WAL is synced) or `none`.
    #[arg(long, global = true, env = "DREAMLOG_SYNC", default_value = "fsync")]
    pub sync: SyncMode,
    /// Print JSON (one object per line for lists) instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// Snapshot each memory store every N of its events (0: never).
    #[arg(long, global = true, env = "DREAMLOG_SNAPSHOT_EVERY", default_value_t = crate::memory::DEFAULT_SNAPSHOT_EVERY)]
    pub snapshot_every: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty database (nothing happens if one exists).
    Init,
    /// Append events given as JSON Lines (from a file or standard input), atomically.
    Append(AppendArgs),
    /// List events in log order.
    Log(LogArgs),
    /// Show one event by id or unique id prefix.
    Show {
        /// Event id or unique hex prefix.
        id: String,
    },
    /// Recompute every id and body hash; check every stream chain and index entry.
    Verify {
        /// Also read every block of every table file (checksums verified, cache bypassed)
        /// and compare every memory snapshot with a full replay.
        #[arg(long)]
        deep: bool,
        /// Instead: prove that the log still extends this signed checkpoint (a JSON file
        /// written by `checkpoint --out`, kept elsewhere) — a rewrite of history fails
        /// even with every hash recomputed.
        #[arg(long, conflicts_with = "deep")]
        checkpoint: Option<std::path::PathBuf>,
        /// The public key (hex) the checkpoint must be signed with (without it, only the
        /// signature is checked, against the key the checkpoint names).
        #[arg(long, requires = "checkpoint")]
        trust: Option<String>,
    },
    /// Make an Ed25519 signing key for checkpoints: writes its secret seed (hex, owner
    /// read/write only) to a new FILE and prints the public key to publish.
    Keygen {
        /// The new key file.
        file: std::path::PathBuf,
    },
    /// Sign the log's head (length, last id, every stream's head) and record the
    /// checkpoint in the log; keep the printed JSON (or --out) somewhere the disk's owner
    /// cannot rewrite. With --remote, the server signs with its configured key (admin).
    Checkpoint {
        /// The key file (from `keygen`); embedded only.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
        /// Also write the checkpoint's JSON to this file.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Write a consistent copy of the database into a new folder while it is in use (with
    /// --remote: the server writes it on its own machine; an admin token), then open the
    /// copy and verify it.
    Backup {
        /// The new folder.
        dir: std::path::PathBuf,
        /// Also read every block of every table file of the copy and check its snapshots.
        #[arg(long)]
        deep: bool,
    },
    /// Restore a backup into the database folder (`--db`, which must be new or empty),
    /// then verify it (deep).
    Restore {
        /// The backup folder (written by `dreamlog backup`).
        backup: std::path::PathBuf,
    },
    /// Open a damaged database explicitly: restore a lost CURRENT from the newest
    /// MANIFEST; keep a damaged write-ahead log aside, report every acknowledged event
    /// that is lost (position and id) before anything is dropped, then open at the last
    /// good point and verify.
    Recover {
        /// Where to write the report first (default: beside the kept-aside files).
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Rebuild every derived index (kinds, memory paths, sessions; snapshots are dropped
    /// and rebuilt on demand) from the log alone, then verify.
    Reindex,
    /// Write the log as JSON Lines that another store can import and re-verify, or
    /// (`export otlp`) sessions as OTLP/JSON traces and logs.
    Export(ExportArgs),
    /// Import agent runs (τ-bench, τ²-bench, SWE-agent, ATIF/Harbor, Claude Code,
    /// OpenTelemetry OTLP/JSON, Inspect AI .eval) or a dreamlog export; each file is checked whole before anything is written; idempotent.
    Import(ImportArgs),
    /// Sessions: list, show, stats.
    #[command(subcommand)]
    Sessions(sessions::SessionsCmd),
    /// Memory stores: view, apply, history, diff, blame, revert, fork, promote, lessons.
    #[command(subcommand)]
    Memory(memory::MemoryCmd),
    /// Dreams: run a dreamer, list, show, replay.
    #[command(subcommand)]
    Dream(dream::DreamCmd),
    /// Grades per memory state and per dream; flags changes after which grades fell.
    Drift(dream::DriftArgs),
    /// Mirror where agents learn elsewhere into the log (hosted Claude Managed Agents).
    #[command(subcommand)]
    Sync(sync::SyncCmd),
    /// Serve the HTTP API (`/v1/…`) until SIGINT or SIGTERM.
    Serve {
        /// Address to listen on (non-loopback only with tokens configured).
        #[arg(long, default_value = "127.0.0.1:7700")]
        addr: std::net::SocketAddr,
        /// Server config (JSON): tokens (tenant, role, token_blake3) and limits.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the token_blake3 of a token for the config, and exit.
        #[arg(long)]
        hash_token: Option<String>,
        /// Run as a node of a cluster: the log of record is NATS JetStream at these servers
        /// (`nats://HOST:PORT[,…]`, one stream per tenant); `--db` holds this node's
        /// projection (indexes, snapshots), rebuilt from the log of record when new.
        #[arg(long, env = "DREAMLOG_LOG_OF_RECORD", value_name = "NATS_URLS")]
        log_of_record: Option<String>,
        /// Replicas of each tenant's JetStream stream when it is created (3 in a cluster).
        #[arg(long, default_value_t = 1, requires = "log_of_record")]
        replicas: usize,
        /// Log level on stderr: off, error, warn, info (errors and refused requests), or
        /// debug (every request).
        #[arg(long, env = "DREAMLOG_LOG", default_value = "info")]
        log: tracing_subscriber::filter::LevelFilter,
    },
    /// Serve the Model Context Protocol over stdio (for Claude Code, Claude Desktop and
    /// other MCP clients): the memory tool over STORE and read-only audit tools (history,
    /// blame, diff, lessons, drift, view as of a point). Works embedded and `--remote`.
    Mcp {
        /// The memory store the tools work on.
        #[arg(long, default_value = "memories")]
        store: String,
        /// Who memory changes are recorded as (ROLE:NAME).
        #[arg(long, default_value = "agent:mcp")]
        actor: crate::core::Actor,
        /// The session memory changes are recorded with.
        #[arg(long)]
        session: Option<String>,
    },
    /// The command Claude Code runs for its hooks (`hooks install` puts it in): reads the
    /// hook's JSON on standard input and what the session's transcripts gained since the
    /// hook before, and delivers both to --remote (spooled when the server is slow or
    /// unreachable; always spooled embedded, delivered at the session's end or by
    /// `--flush`). Always exits 0 so Claude Code is never held up.
    Hook(hooks::HookArgs),
    /// Claude Code's hooks: `hooks install` puts `dreamlog hook` into its settings.
    #[command(subcommand)]
    Hooks(hooks::HooksCmd),
    /// Guard a folder of memory files: record every change any program makes to DIR as
    /// memory commands in STORE, a burst of changes as one atomic batch, until SIGINT or
    /// SIGTERM. Works embedded and `--remote`.
    Watch {
        /// The folder (created if missing); `DIR/a.md` is `/memories/a.md`.
        dir: PathBuf,
        /// The memory store.
        #[arg(long)]
        store: String,
        /// A burst ends after this many milliseconds without a change.
        #[arg(long, default_value_t = 500)]
        quiet_ms: u64,
        /// …or after this many milliseconds in all.
        #[arg(long, default_value_t = 10_000)]
        max_burst_ms: u64,
        /// Who changes are recorded as (ROLE:NAME).
        #[arg(long, default_value = "system:watch")]
        actor: crate::core::Actor,
        /// The session changes are recorded with.
        #[arg(long)]
        session: Option<String>,
    },
    /// Name a point of the log (recorded as an event).
    Tag {
        /// Tag name.
        name: String,
        /// Point: position, id or prefix, time (event time: RFC 3339, a date, or relative such as -5m), existing tag, or head.
        #[arg(long, default_value = "head", allow_hyphen_values = true)]
        at: String,
        /// Who tags (ROLE:NAME).
        #[arg(long)]
        actor: Option<crate::core::Actor>,
    },
    /// Who wrote to the log: every principal with a receipt (a server token's name and
    /// role, `os:USER` for the embedded CLI), its batches and events; with --name, that
    /// principal's batches, newest first. Through a server it needs an admin token.
    Principals {
        /// List this principal's batches.
        #[arg(long)]
        name: Option<String>,
        /// Most batches listed.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Redact an event's body: its text leaves the log and the database's files, its
    /// header (and so every id and chain) stays; a `redact` event records who, why and
    /// the stand-in the memory fold goes on with. `--session` or `--actor` redacts every
    /// event of one session or one actor (a deletion request) as one recorded act, in
    /// one atomic write. An event redacted before has its scrub run again. Through a
    /// server it needs an admin token.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["event", "session", "of_actor"])))]
    Redact {
        /// The event (id or unique prefix).
        event: Option<String>,
        /// Every event of this session (id or unique prefix): its own and the memory
        /// commands it made.
        #[arg(long)]
        session: Option<String>,
        /// Every event this actor (ROLE:NAME) wrote.
        #[arg(long = "actor", id = "of_actor", value_name = "ROLE:NAME")]
        of_actor: Option<crate::core::Actor>,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
        /// Who redacts (ROLE:NAME).
        #[arg(long = "as", value_name = "ROLE:NAME")]
        actor: Option<crate::core::Actor>,
    },
    /// The whole loop on --db, told step by step: import a real τ-bench session, write a
    /// lesson, tag it, add a bad lesson, diff and blame, revert it; then a simulated agent
    /// whose success depends on its memory runs rounds of sessions, an evidence dream
    /// distils lessons, a bad lesson makes drift flag the change, a revert restores the
    /// pass rate, every dream replays bit for bit and `verify` checks the log.
    Demo,
}

/// Arguments of `append`.
#[derive(Args, Debug)]
pub struct AppendArgs {
    /// JSON Lines file of events; `-` or absent reads standard input.
    pub file: Option<PathBuf>,
    /// Stream for events that do not name one.
    #[arg(long)]
    pub stream: Option<String>,
    /// Expected version of `--stream`: any, no-stream, exists or a version number.
    #[arg(long, requires = "stream")]
    pub expect: Option<ExpectedVersion>,
}

/// Arguments of `log`.
#[derive(Args, Debug)]
pub struct LogArgs {
    /// First global position (or, with --stream, first stream version).
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Most events to print.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// Only this kind (e.g. action, grade, memory).
    #[arg(long)]
    pub kind: Option<Kind>,
}

/// Arguments of `export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// `dreamlog` (the log, every event) or `otlp` (sessions as OTLP/JSON Lines: a
    /// traces request per session, and a logs request with its grades as
    /// `gen_ai.evaluation.result` events; `dreamlog import otlp` reads it back).
    #[arg(default_value = "dreamlog", value_parser = ["dreamlog", "otlp"])]
    pub format: String,
    /// Output file; standard output when absent.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// First global position (`dreamlog` format).
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Only this session (id or unique prefix; repeat for more; `otlp` format).
    #[arg(long = "session")]
    pub sessions: Vec<String>,
    /// Only sessions of this agent (`otlp` format).
    #[arg(long)]
    pub agent: Option<String>,
    /// Only sessions that started at or after this time: RFC 3339 or ms since the epoch
    /// (`otlp` format).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<u64>,
    /// Only sessions that started before this time (`otlp` format).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<u64>,
}

/// A time argument: RFC 3339, or milliseconds since the epoch.
fn parse_time(s: &str) -> std::result::Result<u64, String> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis().max(0) as u64)
        .map_err(|e| format!("expected RFC 3339 (2026-12-01T09:00:00Z) or ms since the epoch: {e}"))
}

/// Arguments of `import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// `[FORMAT] FILE|DIR...`: FORMAT is `auto` (the default: detected from each file's
    /// content), `dreamlog` (a dreamlog export), `tau-bench` (τ-bench trajectories),
    /// `tau2` (τ²-bench results), `swe-agent` (.traj), `atif` (Harbor/ATIF v1.0–v1.8
    /// trajectory.json, graded by the trial's result.json), `claude-code` (Claude Code
    /// .jsonl transcripts), `otlp` (OTLP/JSON traces and logs, e.g. the collector's file
    /// exporter output) or `inspect` (Inspect AI .eval logs). A directory imports every
    /// .json, .jsonl, .traj and .eval file below it (a Harbor trial directory as one run);
    /// `-` reads standard input (exports only).
    #[arg(required = true, num_args = 1..)]
    pub args: Vec<String>,
    /// Record the memory store (and its current state hash) the imported sessions ran
    /// with, in their `session.link` (the sessions' own events do not change).
    #[arg(long)]
    pub store: Option<String>,
    /// Stop at the first file that fails (by default every file is tried, each all or
    /// nothing, and the exit status is 1 when any failed).
    #[arg(long)]
    pub fail_fast: bool,
    /// `claude-code` only: keep importing the transcripts as Claude Code writes them (a
    /// session grows as its file grows; a half-written last line waits), until SIGINT or
    /// SIGTERM. Sessions stay open (no end) while followed; importing the finished files
    /// afterwards ends them.
    #[arg(long)]
    pub follow: bool,
    /// How often --follow looks at the files, in milliseconds.
    #[arg(long, default_value_t = 250, requires = "follow")]
    pub poll_ms: u64,
}

/// Runs the CLI and turns errors into one line on stderr and a non-zero exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A hook must not fail Claude Code even when its command line or environment is
        // wrong (exit 2 would block the tool or the prompt): said on stderr, exit 0.
        Err(e) if e.use_stderr() && hooks::is_hook_call(std::env::args()) => {
            eprintln!("dreamlog hook: not run: {e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => e.exit(),
    };
    let json = cli.json;
    match run(cli) {
        Ok(code) => code,
        // A reader that stopped reading (`| head`) is not an error.
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        // One line for people (with `--json`, one JSON object for programs:
        // schemas/cli-error.schema.json); the exit code says what kind of failure it was
        // (`ErrorClass::exit_code`: 2 bad input, 3 not found, 4 conflict, …, 1 otherwise).
        Err(e) => {
            let code = e.class().exit_code().max(1);
            if json {
                let line = serde_json::json!({"error": {
                    "type": e.class().name(), "message": e.to_string(), "exit_code": code}});
                eprintln!("{line}");
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(code)
        }
    }
}

fn open(cli: &Cli, create: bool) -> Result<Store> {
    let store =
        crate::embedded::open(&cli.db, Options { sync: cli.sync, create_if_missing: create, ..Options::default() })?;
    if let Some((d, aside)) = store.torn_tail() {
        eprintln!(
            "note: the write-ahead log {} ended inside a record at byte {} (a crash while a batch was being written; never an acknowledged batch under --sync fsync): that record was dropped, a copy of the log is in {}",
            d.file.display(),
            d.offset,
            aside.display()
        );
    }
    if let Some(why) = store.acked_problem() {
        eprintln!("WARNING: {why}");
    }
    let opened = store.open_report();
    if opened.torn_records > 0 {
        eprintln!(
            "note: {} records of a write that never completed (past the commit marker; never acknowledged) were dropped",
            opened.torn_records
        );
    }
    if !opened.scrubs_finished.is_empty() {
        eprintln!(
            "note: finished scrubbing {} redacted record(s) a crash interrupted (positions {:?}): their removed bytes are in no file now",
            opened.scrubs_finished.len(),
            opened.scrubs_finished
        );
    }
    if let Some(why) = &opened.scrub_failed {
        eprintln!(
            "WARNING: redacted text may still be on disk: the scrub of {why} (`dreamlog verify --deep` names them)"
        );
    }
    if !opened.caught_up.is_empty() && !store.is_empty() {
        let names: Vec<String> = opened.caught_up.iter().map(|(n, from)| format!("{n} from {from}")).collect();
        eprintln!("note: derived indexes caught up with the log ({})", names.join(", "));
    }
    Ok(store)
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
/// A flag set when SIGINT or SIGTERM arrives (for long-running commands that stop
/// cleanly: `watch`). The handlers are in place when this returns.
pub(crate) fn stop_on_signal() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let (ready, registered) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
                else {
                    return;
                };
                let _ = ready.send(());
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ready.send(());
                let _ = tokio::signal::ctrl_c().await;
            }
        });
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let _ = registered.recv();
    stop
}

pub(crate) fn progress_bar(len: Option<u64>, what: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    };
    bar.set_message(what.to_owned());
    bar
}

/// Prints an answer's JSON form on one line, its object keys sorted at every level (as
/// the HTTP API writes it).
fn stdout_json<T: serde::Serialize>(answer: &T) -> Result<()> {
    let v =
        serde_json::to_value(answer).map_err(|e| Error::InvalidInput(format!("the answer has no JSON form: {e}")))?;
    stdout_line(&v.to_string())
}

fn stdout_line(line: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}").map_err(|source| Error::Io { path: "stdout".into(), source })
}

fn read_input(path: Option<&PathBuf>) -> Result<(String, Box<dyn BufRead>)> {
    match path {
        None => Ok(("-".into(), Box::new(BufReader::new(io::stdin())))),
        Some(p) if p.as_os_str() == "-" => Ok(("-".into(), Box::new(BufReader::new(io::stdin())))),
        Some(p) => {
            let f = File::open(p).map_err(|source| Error::Io { path: p.display().to_string(), source })?;
            Ok((p.display().to_string(), Box::new(BufReader::with_capacity(1 << 20, f))))
        }
    }
}

/// Parses JSON Lines of events into one atomic batch.
pub(crate) fn parse_events(path: &str, reader: Box<dyn BufRead>, stream: Option<&str>) -> Result<AppendBatch> {
    let mut batch = AppendBatch::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| Error::Io { path: path.to_owned(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let input = |reason: String| Error::Input { path: path.to_owned(), line: i + 1, reason };
        let draft = EventJson::parse(&line).and_then(|j| j.into_draft(stream)).map_err(|e| input(e.to_string()))?;
        batch.events.push(draft);
    }
    Ok(batch)
}

/// Prints where appended events landed.
pub(crate) fn print_appended_events(cli: &Cli, appended: &[crate::service::AppendedEvent]) -> Result<()> {
    for a in appended {
        let stream = &a.stream;
        if cli.json {
            stdout_line(
                &serde_json::json!({"position": a.position, "id": a.id, "stream": stream,
                    "version": a.version, "existed": a.existed})
                .to_string(),
            )?;
        } else {
            let note = if a.existed { "  (already present)" } else { "" };
            stdout_line(&format!("{}\t{}\t{stream}@{}{note}", a.position, a.id, a.version))?;
        }
    }
    Ok(())
}

/// One event as `log` prints it.
pub(crate) fn print_event(cli: &Cli, e: &crate::store::StoredEvent) -> Result<()> {
    if cli.json {
        stdout_line(&e.to_json().to_line())
    } else {
        stdout_line(&output::log_line(e))
    }
}

/// One event as `show` prints it.
pub(crate) fn print_show(cli: &Cli, e: &crate::store::StoredEvent) -> Result<()> {
    if cli.json {
        stdout_line(&e.to_json().to_line())
    } else {
        stdout_line(&output::show(e))
    }
}

/// A verify report; exit 1 when it found problems.
pub(crate) fn print_verify(cli: &Cli, report: &crate::store::VerifyReport) -> Result<ExitCode> {
    if cli.json {
        stdout_line(&serde_json::to_string(report).unwrap_or_default())?;
    } else {
        stdout_line(&output::verify_report(report))?;
    }
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Prints what a backup or a restore wrote and its verification.
pub(crate) fn print_backup(
    json: bool,
    what: &str,
    from: &std::path::Path,
    r: &crate::service::BackupReport,
) -> Result<()> {
    if json {
        return stdout_line(&serde_json::to_string(r).unwrap_or_default());
    }
    stdout_line(&format!(
        "{what} {} into {}: {} events ({} acknowledged before it began); verify: {}",
        from.display(),
        r.dir,
        r.events,
        r.acknowledged,
        if r.verify.is_clean() { "clean".to_owned() } else { format!("{} problems", r.verify.problems.len()) }
    ))?;
    if !r.verify.is_clean() {
        stdout_line(&output::verify_report(&r.verify))?;
    }
    Ok(())
}

/// Whether a command may create the database when it does not exist.
fn creates(command: &Command) -> bool {
    match command {
        Command::Init
        | Command::Append(_)
        | Command::Import(_)
        | Command::Sync(_)
        | Command::Demo
        | Command::Mcp { .. }
        | Command::Watch { .. }
        | Command::Hook(_) => true,
        Command::Dream(c) => matches!(c, dream::DreamCmd::Run(_)),
        Command::Memory(c) => matches!(
            c,
            memory::MemoryCmd::Apply { .. }
                | memory::MemoryCmd::Revert(_)
                | memory::MemoryCmd::Fork { .. }
                | memory::MemoryCmd::Promote { .. }
                | memory::MemoryCmd::Checkout { .. }
                | memory::MemoryCmd::Rules { set: Some(_), .. }
        ),
        _ => false,
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    // Needs neither a database nor a server.
    if let Command::Keygen { file } = &cli.command {
        let public = crate::keys::keygen(file)?;
        if cli.json {
            stdout_line(&serde_json::json!({"file": file.display().to_string(), "public_key": public}).to_string())?;
        } else {
            stdout_line(&format!(
                "wrote the secret key to {} (keep it off this machine's disk if you can); public key: {public}",
                file.display()
            ))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A hook opens no database and builds no service client: it must be quick and never
    // fail Claude Code.
    if let Command::Hook(args) = &cli.command {
        if !args.flush {
            return Ok(hooks::run_hook(&cli, args));
        }
    }
    if let Command::Hooks(cmd) = &cli.command {
        return hooks::run_hooks(&cli, cmd);
    }
    if let Some(url) = cli.remote.clone() {
        let remote = crate::service::Remote::with_ca(&url, cli.token.clone(), cli.ca_cert.as_deref())?;
        return dispatch::run(&cli, &remote);
    }
    // Commands on a database folder itself; every other one is an operation of the service.
    if let Command::Serve { addr, config, hash_token, log_of_record, replicas, log } = &cli.command {
        {
            if let Some(t) = hash_token {
                stdout_line(&crate::server::hash_token(t))?;
                return Ok(ExitCode::SUCCESS);
            }
            tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(*log).with_target(false).init();
            let config_path = config.as_deref();
            #[cfg_attr(not(feature = "jetstream"), allow(unused_mut))]
            let mut config = match config {
                Some(p) => crate::server::ServerConfig::load(p)?,
                None => crate::server::ServerConfig::default(),
            };
            if let Some(urls) = log_of_record {
                #[cfg(feature = "jetstream")]
                {
                    config.log_of_record = Some(dreamlog_jetstream::JetStreamConfig::parse(urls, *replicas)?);
                }
                #[cfg(not(feature = "jetstream"))]
                {
                    let _ = (urls, replicas);
                    return Err(Error::InvalidInput(
                        "--log-of-record: this build of dreamlog has no JetStream client (built without the `jetstream` feature)".into(),
                    ));
                }
            }
            crate::server::check_bind(addr, &config)?;
            if let Some(tls) = &config.tls {
                tls.acceptor()?;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|source| Error::Io { path: "tokio runtime".into(), source })?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Io { path: addr.to_string(), source })?;
                let state = crate::server::AppState::open(&cli.db, config, cli.sync, cli.snapshot_every)?;
                if let Some(p) = config_path {
                    state.set_config_path(p);
                }
                eprintln!(
                    "dreamlog serving {}{} on {}://{} ({})",
                    cli.db.display(),
                    state.log_of_record().map(|l| format!(" as a projection of {l}")).unwrap_or_default(),
                    if state.config.tls.is_some() { "https" } else { "http" },
                    listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                    if state.auth_required() { "bearer tokens required" } else { "no tokens: loopback only" }
                );
                crate::store::principal::as_principal(crate::server::server_principal("startup"), || {
                    state.end_interrupted_dreams()
                })?;
                crate::server::serve(listener, state, crate::server::shutdown_signal()).await
            })?;
            eprintln!("dreamlog: stopped; every acknowledged append is durable");
            return Ok(ExitCode::SUCCESS);
        }
    }
    // Everything written from here on is written by whoever runs this process on the
    // database's own machine: the operating-system user (recorded in each batch's receipt).
    crate::store::principal::set_default(crate::store::principal::os_user());
    match &cli.command {
        Command::Reindex => {
            use crate::service::Service as _;
            let store = open(&cli, false)?;
            let bar = progress_bar(Some(store.len()), "reindexing");
            let progress = bar.clone();
            let svc = crate::service::Local::new(store, cli.snapshot_every);
            let r = svc.reindex(Box::new(move |n| progress.set_position(n)))?;
            bar.finish_and_clear();
            let verified = svc.verify(&crate::service::VerifyQuery { deep: false }, &mut |_| ())?;
            if cli.json {
                let v = serde_json::json!({"reindex": r, "verified_clean": verified.is_clean(), "problems": verified.problems});
                stdout_line(&v.to_string())?;
            } else {
                let entries: Vec<String> = r.entries.iter().map(|(s, n)| format!("{n} {s}")).collect();
                stdout_line(&format!(
                    "rebuilt from {} events: {} entries; {} snapshots dropped (rebuilt on demand); verify: {}",
                    r.events,
                    entries.join(", "),
                    r.snapshots_dropped,
                    if verified.is_clean() {
                        "clean".to_owned()
                    } else {
                        format!("{} problems", verified.problems.len())
                    }
                ))?;
            }
            return Ok(if verified.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        Command::Restore { backup } => {
            let r = crate::service::restore(backup, &cli.db)?;
            print_backup(cli.json, "restored", backup, &r)?;
            return Ok(if r.verify.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        #[cfg(feature = "rocks")]
        Command::Recover { report } => {
            let r =
                crate::embedded::recover(&cli.db, Options { sync: cli.sync, ..Options::default() }, report.as_deref())?;
            if cli.json {
                stdout_line(&serde_json::to_string(&r).unwrap_or_default())?;
            } else {
                stdout_line(&output::recovery_report(&r))?;
            }
            return Ok(if r.verified_clean { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        _ => {}
    }
    let store = open(&cli, creates(&cli.command))?;
    let mut local =
        crate::service::Local::new(store.clone(), cli.snapshot_every).with_default_actor(memory::default_actor());
    if let Command::Checkpoint { key: Some(file), .. } = &cli.command {
        local = local.with_signing_seed(crate::keys::read_seed(file)?);
    }
    let code = dispatch::run(&cli, &local)?;
    store.close()?;
    Ok(code)
}
