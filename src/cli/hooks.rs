//! `dreamlog hook` (the command Claude Code runs for its hooks) and `dreamlog hooks
//! install` (which puts it into Claude Code's settings).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use super::{stdout_line, Cli};
use crate::error::Result;
use crate::hooks::Spool;

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

/// Whether a command line is a hook call (`dreamlog … hook`, not `--flush`).
pub fn is_hook_call(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    args.iter().any(|a| a == "hook") && !args.iter().any(|a| a == "--flush")
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
    // Spooled first — the payload and what the transcripts gained — and delivered from
    // the spool: a hook that dies at any point loses nothing.
    let mut warn = |m: String| eprintln!("dreamlog hook: {m}");
    let mine = spool.take(&payload, now_ms(), &mut warn)?;
    let Some(url) = &cli.remote else {
        // Embedded: RocksDB admits one process at a time, and Claude Code runs hooks
        // side by side: the hook only spools. At the session's end a flush runs on its
        // own, after the hook returned.
        if event == "SessionEnd" {
            flush_in_background(cli, spool.dir());
        }
        return Ok(());
    };
    let http = crate::hooks::client(Duration::from_millis(args.timeout_ms.max(1)), cli.ca_cert.as_deref())?;
    let token = cli.token.as_deref();
    // One hook at a time delivers what earlier hooks left (oldest first, within a time
    // budget); the others deliver their own.
    let drainer = spool.try_drain_lock();
    let queue = match &drainer {
        Some(_) => spool.pending()?,
        None => spool.read(&mine),
    };
    let budget = Instant::now() + Duration::from_millis(args.timeout_ms.max(1) * 4);
    for (path, d) in queue {
        if Instant::now() > budget && !mine.contains(&path) {
            continue; // the next hook goes on with it
        }
        match crate::hooks::deliver(&http, url, token, &d) {
            Ok(_) => spool.done(&path)?,
            // Refused for good (malformed, too large): set aside, never in the way.
            Err(crate::error::Error::Remote { status: status @ (400 | 413 | 422), message, .. }) => {
                let to = spool.reject(&path, &format!("{status}: {message}"))?;
                eprintln!(
                    "dreamlog hook: the server refused a delivery ({status}: {message}); kept in {}",
                    to.display()
                );
            }
            Err(e) => {
                eprintln!("dreamlog hook: spooled in {} ({e})", spool.dir().display());
                break;
            }
        }
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

/// `dreamlog hooks`.
#[derive(clap::Subcommand, Debug)]
pub enum HooksCmd {
    /// Put `dreamlog hook` into Claude Code's settings for every hook event it records
    /// (idempotent; every other hook and setting kept; the diff shown), delivering to
    /// --remote or into the embedded --db (an absolute path is written). The token is
    /// not written: the hook reads DREAMLOG_TOKEN from Claude Code's environment.
    Install {
        /// `.claude/settings.json` of the project (the default).
        #[arg(long, conflicts_with_all = ["user", "local"])]
        project: bool,
        /// `~/.claude/settings.json`: every project of this user.
        #[arg(long, conflicts_with = "local")]
        user: bool,
        /// `.claude/settings.local.json` of the project (not checked in).
        #[arg(long)]
        local: bool,
        /// The project folder (default: the current one).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Remove exactly the entries `hooks install` wrote instead.
        #[arg(long)]
        uninstall: bool,
        /// Show the diff, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// What `hooks install` did.
#[derive(serde::Serialize)]
struct Installed {
    file: String,
    command: String,
    changed: bool,
    written: bool,
    diff: String,
}

/// `dreamlog hooks install`: needs neither a database nor a server.
pub fn run_hooks(cli: &Cli, cmd: &HooksCmd) -> Result<ExitCode> {
    let HooksCmd::Install { user, local, dir, uninstall, dry_run, .. } = cmd;
    let file = if *user {
        let home = std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
            crate::error::Error::InvalidInput("--user: HOME is not set, so ~/.claude is nowhere".into())
        })?;
        home.join(".claude/settings.json")
    } else if *local {
        dir.join(".claude/settings.local.json")
    } else {
        dir.join(".claude/settings.json")
    };
    let io = |source| crate::error::Error::Io { path: file.display().to_string(), source };
    let old = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let settings: Value = if old.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&old).map_err(|e| crate::error::Error::Input {
            path: file.display().to_string(),
            line: e.line(),
            reason: format!("not JSON (nothing was changed): {e}"),
        })?
    };
    let command = hook_command(cli)?;
    let new = crate::hooks::install_settings(&settings, &command, *uninstall).map_err(|e| match e {
        crate::error::Error::Input { reason, .. } => {
            crate::error::Error::Input { path: file.display().to_string(), line: 0, reason }
        }
        e => e,
    })?;
    let changed = new != settings && !(settings.is_null() && new == serde_json::json!({}));
    let text = crate::hooks::settings_text(&new);
    let diff = if changed { crate::hooks::diff(&file.display().to_string(), &old, &text) } else { String::new() };
    let written = changed && !dry_run;
    if written {
        // Through a symbolic link to where the settings really are, keeping their mode.
        let target = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let tmp = target.with_extension("json.dreamlog-tmp");
        std::fs::write(&tmp, &text).map_err(io)?;
        if let Ok(meta) = std::fs::metadata(&target) {
            std::fs::set_permissions(&tmp, meta.permissions()).map_err(io)?;
        }
        std::fs::rename(&tmp, &target).map_err(io)?;
    }
    let out = Installed { file: file.display().to_string(), command, changed, written, diff };
    if cli.json {
        stdout_line(&serde_json::to_string(&out).unwrap_or_default())?;
    } else if !out.changed {
        stdout_line(&format!("{}: nothing to change", out.file))?;
    } else {
        print!("{}", out.diff);
        let what = match (*uninstall, written) {
            (true, true) => "removed dreamlog's hooks from",
            (false, true) => "installed dreamlog's hooks into",
            (_, false) => "would change (--dry-run: nothing written)",
        };
        stdout_line(&format!("{what} {}", out.file))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The command the hooks run: this binary (absolute), its target, `hook`.
fn hook_command(cli: &Cli) -> Result<String> {
    let me =
        std::env::current_exe().map_err(|source| crate::error::Error::Io { path: "this program".into(), source })?;
    // Quoted for the shell Claude Code runs the command with when anything in it could
    // mean something to that shell.
    let quote = |s: String| {
        if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:@%+=,".contains(c)) {
            s
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let me = quote(me.display().to_string());
    Ok(match &cli.remote {
        Some(url) => format!("{me} --remote {} hook", quote(url.clone())),
        None => {
            let db = std::path::absolute(&cli.db).unwrap_or_else(|_| cli.db.clone());
            format!("{me} --db {} hook", quote(db.display().to_string()))
        }
    })
}
