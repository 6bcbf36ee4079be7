//! `dreamlog sync`: mirrors of where agents learn elsewhere.

use std::process::ExitCode;

use clap::Subcommand;

use super::{stdout_json, stdout_line, Cli};
use crate::error::Result;
use crate::managed::hosted::Hosted;
use crate::managed::mirror::{sync_memory, SyncOptions, SyncReport};
use crate::service::Service;

/// What `sync` mirrors.
#[derive(Subcommand, Debug)]
pub enum SyncCmd {
    /// Mirror hosted Claude Managed Agents memory stores and their memory versions, then
    /// sessions with their threads and outcome grades, into the log, read-only (the API at
    /// ANTHROPIC_BASE_URL with ANTHROPIC_API_KEY). Exactly once: a second sync, or one
    /// resumed after a kill, adds nothing it added before. Exits 1 when an object could
    /// not be mapped (the report names it; the sync goes on).
    Anthropic {
        /// Only this store (`memstore_…`; repeat for more). Default: every store the key lists.
        #[arg(long = "store", value_name = "ID")]
        stores: Vec<String>,
        /// The workspace (`anthropic-workspace-id`), for keys that reach several.
        #[arg(long)]
        workspace: Option<String>,
        /// Memory versions per atomic batch (each batch with the note naming them): smaller
        /// batches lose less work to a kill, larger ones write faster.
        #[arg(long, default_value_t = crate::managed::mirror::BATCH_VERSIONS, value_name = "N")]
        batch: usize,
        /// Sessions created at or after this time only (RFC 3339); with --store, sessions
        /// that mounted one of those stores only.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Memory stores only: no sessions, no dream records (a hosted dream's new store is
        /// still mirrored as a fork of its input).
        #[arg(long)]
        no_sessions: bool,
        /// Also list every memory version again (100 a page) to find versions redacted
        /// upstream after they were mirrored, and redact what was mirrored of them here.
        #[arg(long)]
        redactions: bool,
    },
}

/// Runs a sync.
pub(crate) fn run(cli: &Cli, svc: &dyn Service, cmd: &SyncCmd) -> Result<ExitCode> {
    let SyncCmd::Anthropic { stores, workspace, batch, since, no_sessions, redactions } = cmd;
    let since = match since {
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .and_then(|d| u64::try_from(d.timestamp_millis()).ok())
                .ok_or_else(|| crate::error::Error::InvalidInput(format!("--since {t:?}: not an RFC 3339 time")))?,
        ),
        None => None,
    };
    let hosted = Hosted::from_env(workspace.clone())?;
    let bar = super::progress_bar(None, "sync anthropic");
    let progress = |store: &str, done: usize, total: usize| {
        bar.set_message(format!("sync anthropic: {store}: {done}/{total} versions"));
        bar.tick();
    };
    let session_progress = |done: usize, total: usize| {
        bar.set_message(format!("sync anthropic: sessions: {done}/{total}"));
        bar.tick();
    };
    let opts = SyncOptions {
        stores: stores.clone(),
        progress: Some(&progress),
        batch: *batch,
        sessions: !no_sessions,
        since,
        session_progress: Some(&session_progress),
        redactions: *redactions,
    };
    let report = sync_memory(svc, &hosted, &opts);
    bar.finish_and_clear();
    let report = report?;
    if cli.json {
        stdout_json(&report)?;
    } else {
        print(&report)?;
    }
    Ok(if report.unmapped.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print(r: &SyncReport) -> Result<()> {
    for s in &r.stores {
        if let Some(why) = &s.deferred {
            stdout_line(&format!("{}: not mirrored yet: {why}", s.store))?;
            continue;
        }
        let mut what = format!(
            "{}: {} versions listed, {} mirrored, {} already mirrored, {} redacted upstream",
            s.store, s.listed, s.mirrored, s.already, s.redacted
        );
        if let Some(n) = s.redacted_upstream {
            what.push_str(&format!(", {n} redacted here (redacted upstream since they were mirrored)"));
        }
        if s.baseline > 0 {
            what.push_str(&format!(", {} memories as they are now (every version expired)", s.baseline));
        }
        if let Some(source) = s.fork_of.as_deref() {
            what.push_str(&format!(" (store created as a fork of {source}: a hosted dream's output)"));
        } else if s.created {
            what.push_str(" (store created)");
        } else if s.fields_changed {
            what.push_str(" (store fields changed)");
        }
        stdout_line(&what)?;
    }
    if let Some(s) = &r.sessions {
        let mut what = format!(
            "sessions: {} listed, {} unchanged, {} written ({} of them threads), {} grown, {} already mirrored, {} grades",
            s.listed, s.unchanged, s.mirrored, s.threads, s.grown, s.already, s.grades
        );
        if s.waiting > 0 {
            what.push_str(&format!(", {} with nothing to map yet", s.waiting));
        }
        if s.deferred > 0 {
            what.push_str(&format!(", {} created during this sync (the next one mirrors them)", s.deferred));
        }
        stdout_line(&what)?;
    }
    if let Some(d) = &r.dreams {
        let mut what = format!(
            "dreams: {} listed, {} recorded, {} already recorded, {} still running",
            d.listed, d.recorded, d.already, d.running
        );
        if d.stores_not_mirrored > 0 {
            what.push_str(&format!(", {} over stores not mirrored", d.stores_not_mirrored));
        }
        if d.settling > 0 {
            what.push_str(&format!(", {} ended too recently or wait for their sessions", d.settling));
        }
        if let Some(why) = &d.unavailable {
            what = format!("dreams: not listed ({why}): none recorded, no store mirrored as a fork");
        }
        stdout_line(&what)?;
    }
    for u in &r.unmapped {
        stdout_line(&format!("not mirrored: {}: {}", u.object, u.reason))?;
    }
    stdout_line(&format!("{} requests to the API, {} retried", r.requests, r.retried))
}

/// Pushes a revert or a promote of a mirrored hosted store (`memory revert` / `memory
/// promote` of a store `sync anthropic` mirrors) and prints what each call did; exits 1
/// unless every call was written.
pub(crate) fn push(
    cli: &Cli,
    svc: &dyn Service,
    store: &str,
    req: &crate::managed::push::PushRequest,
    workspace: Option<String>,
) -> Result<ExitCode> {
    let hosted = Hosted::from_env(workspace)?;
    let report = crate::managed::push::push(svc, &hosted, store, req, &super::memory::default_actor())?;
    if cli.json {
        stdout_json(&report)?;
    } else {
        let intent = report.intent.map(|id| format!(" (intent {})", id.short(12))).unwrap_or_default();
        let head = if report.dry_run { "would send" } else { "sent" };
        stdout_line(&format!(
            "{} of hosted memory store {store}{intent}: {head} {} call(s)",
            report.op,
            report.calls.len()
        ))?;
        for c in &report.calls {
            stdout_line(&format!("  {:<9} {}", c.status.replace('_', " "), describe(store, &c.call)))?;
            if let Some(e) = &c.error {
                stdout_line(&format!("            {e}"))?;
            }
            if c.call.op == "create" && c.status != "planned" && c.status != "not_sent" {
                stdout_line("            (a memory that comes back is a new memory: a new mem_ id, sent without a precondition)")?;
            }
        }
        if let Some(m) = &report.mirror {
            stdout_line(&format!(
                "mirrored {} version(s), {} of them made by this push ({} event(s))",
                m.mirrored, m.linked, m.events
            ))?;
        }
        if !report.complete && !report.dry_run {
            stdout_line("not every call was written: the store is as the calls above left it; the same command again sends what is still missing")?;
        }
    }
    Ok(if report.complete || report.dry_run { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// One call as the API sees it.
fn describe(store: &str, c: &crate::core::push::PushCall) -> String {
    let base = format!("/v1/memory_stores/{store}/memories");
    let id = c.memory_id.as_deref().unwrap_or_default();
    let pre = c.precondition.as_deref().map(|s| &s[..s.len().min(12)]).unwrap_or_default();
    match c.op.as_str() {
        "create" => format!("POST {base} path={} content={} bytes (new memory)", c.path, c.size.unwrap_or(0)),
        "update" => {
            let mut what = Vec::new();
            if let Some(to) = &c.new_path {
                what.push(format!("path={to}"));
            }
            if let Some(n) = c.size {
                what.push(format!("content={n} bytes"));
            }
            format!("POST {base}/{id} ({}) {} precondition content_sha256={pre}…", c.path, what.join(" "))
        }
        _ => format!("DELETE {base}/{id} ({}) expected_content_sha256={pre}…", c.path),
    }
}
