//! `dreamlog hook` (the command Claude Code runs for its hooks) and `dreamlog hooks
//! install` (which puts it into Claude Code's settings).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::{stdout_line, Cli};
use crate::error::Result;
use crate::hooks::{Delivery, Spool, DELIVERY_VERSION};

/// `dreamlog hook`.
#[derive(Args, Debug)]
pub struct HookArgs {
    /// Instead of reading a hook's payload: deliver everything earlier hooks spooled (to
    /// --remote, or into the embedded --db), then exit; non-zero if any is left.
    #[arg(long)]
    pub flush: bool,
    /// The spool folder (default: `DB.spool` beside the embedded database, or
    /// `~/.local/state/dreamlog/spool/HASH` per --remote URL).
    #[arg(long, env = "DREAMLOG_SPOOL")]
    pub spool: Option<PathBuf>,
    /// How long a hook waits for the server (connecting included) before it spools.
    #[arg(long, env = "DREAMLOG_HOOK_TIMEOUT_MS", default_value_t = 500)]
    pub timeout_ms: u64,
}

/// The spool `args` name, or the default for the target.
pub fn spool_of(cli: &Cli, args: &HookArgs) -> Spool {
    if let Some(dir) = &args.spool {
        return Spool::new(dir.clone());
    }
    match &cli.remote {
        Some(url) => {
            let state = std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                .unwrap_or_else(std::env::temp_dir);
            let hash = crate::core::Digest::of(url.trim_end_matches('/').as_bytes()).short(16);
            Spool::new(state.join("dreamlog/spool").join(hash))
        }
        None => {
            let db = std::path::absolute(&cli.db).unwrap_or_else(|_| cli.db.clone());
            let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            name.push(".spool");
            Spool::new(db.with_file_name(name))
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One hook call: never fails Claude Code. Whatever goes wrong is said on stderr (which
/// Claude Code shows in its debug output) and the exit code is 0.
pub fn run_hook(cli: &Cli, args: &HookArgs) -> ExitCode {
    if let Err(e) = hook(cli, args) {
        eprintln!("dreamlog hook: {e}");
    }
    ExitCode::SUCCESS
}

fn hook(cli: &Cli, args: &HookArgs) -> Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 << 20)
        .read_to_string(&mut input)
        .map_err(|source| crate::error::Error::Io { path: "standard input".into(), source })?;
    let payload: Value = serde_json::from_str(&input).map_err(|e| crate::error::Error::Input {
        path: "standard input".into(),
        line: 0,
        reason: format!("not a hook payload (JSON): {e}"),
    })?;
    let spool = spool_of(cli, args);
    let event = payload.get("hook_event_name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if event == "SessionEnd" {
        spool.settle(&payload);
    }
    // What the transcripts gained is read (and the offsets moved) even when delivery
    // fails: it is then spooled with the payload, so no line is read twice or lost.
    let transcripts = match spool.read_new(&payload) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("dreamlog hook: the transcript waits for the next hook: {e}");
            Vec::new()
        }
    };
    let d = Delivery { v: DELIVERY_VERSION, at: now_ms(), payload, transcripts };
    crate::hooks::check(&d)?;
    let Some(url) = &cli.remote else {
        // Embedded: RocksDB admits one process at a time, and Claude Code runs hooks
        // side by side: the hook only spools. At the session's end a flush runs on its
        // own, after the hook returned.
        spool.put(&d)?;
        if event == "SessionEnd" {
            flush_in_background(cli, spool.dir());
        }
        return Ok(());
    };
    let http = crate::hooks::client(Duration::from_millis(args.timeout_ms.max(1)), cli.ca_cert.as_deref())?;
    let token = cli.token.as_deref();
    // What waits in the spool goes first, in order; the first failure keeps the rest.
    let mut reachable = true;
    for (path, old) in spool.pending()? {
        if crate::hooks::deliver(&http, url, token, &old).is_err() {
            reachable = false;
            break;
        }
        spool.done(&path)?;
    }
    let delivered = reachable && {
        match crate::hooks::deliver(&http, url, token, &d) {
            Ok(_) => true,
            Err(e) => {
                eprintln!("dreamlog hook: spooled ({e})");
                false
            }
        }
    };
    if !delivered {
        spool.put(&d)?;
    }
    Ok(())
}

/// Starts `dreamlog hook --flush` for `spool` detached (its own process group, no
/// terminal), so the hook returns at once.
fn flush_in_background(cli: &Cli, spool: &Path) {
    let Ok(me) = std::env::current_exe() else { return };
    let mut cmd = std::process::Command::new(me);
    cmd.arg("--db").arg(&cli.db).arg("hook").arg("--flush").arg("--spool").arg(spool);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    if let Err(e) = cmd.spawn() {
        eprintln!("dreamlog hook: the spool waits for `dreamlog hook --flush`: {e}");
    }
}

/// What `hook --flush` did.
#[derive(serde::Serialize)]
struct Flushed {
    delivered: usize,
    sessions: Vec<String>,
    left: usize,
}

/// `dreamlog hook --flush`: every spooled delivery recorded through `svc`, oldest first,
/// each removed once recorded.
pub fn flush(cli: &Cli, args: &HookArgs, svc: &dyn crate::service::Service) -> Result<()> {
    let spool = spool_of(cli, args);
    let pending = spool.pending()?;
    let mut out = Flushed { delivered: 0, sessions: Vec::new(), left: pending.len() };
    // Each kept first (a spooled file goes once its note is durable), then each session
    // assembled once.
    let mut ids: Vec<String> = Vec::new();
    for (path, d) in pending {
        crate::hooks::keep(svc, &d)?;
        spool.done(&path)?;
        out.delivered += 1;
        out.left -= 1;
        let id = crate::hooks::session_id(&d.payload)?.to_owned();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for id in ids {
        crate::hooks::assemble_now(svc, &id)?;
        out.sessions.push(format!("claude-code/{id}"));
    }
    if cli.json {
        stdout_line(&serde_json::to_string(&out).unwrap_or_default())
    } else {
        stdout_line(&format!(
            "delivered {} spooled hook call(s) from {} ({} session(s){})",
            out.delivered,
            spool.dir().display(),
            out.sessions.len(),
            if out.sessions.is_empty() { String::new() } else { format!(": {}", out.sessions.join(", ")) }
        ))
    }
}
