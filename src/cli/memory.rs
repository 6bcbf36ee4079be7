//! `dreamlog memory …` and `dreamlog tag`: thin wrappers over [`crate::memory::Memory`].

use std::io::Read;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{output, stdout_json, stdout_line, Cli};
use crate::core::{Actor, Digest};
use crate::error::{Error, Result};
use crate::memory::MemoryView;
use crate::store::Appended;

/// `memory` subcommands.
#[derive(Subcommand, Debug)]
pub enum MemoryCmd {
    /// Show a file or directory of a store as the memory tool's `view` does.
    View {
        /// Store name.
        store: String,
        /// Path (default /memories).
        #[arg(default_value = "/memories")]
        path: String,
        /// Point: position, id or prefix, time (event time: RFC 3339, a date, or relative such as -5m), tag, or head.
        #[arg(long, default_value = "head", allow_hyphen_values = true)]
        at: String,
        /// Lines START:END of a file (END -1 = to the end).
        #[arg(long)]
        range: Option<String>,
    },
    /// Run one memory tool call (its `input` JSON, verbatim) and print the tool's result.
    Apply {
        /// Store name.
        store: String,
        /// The call's input JSON; read from standard input when absent.
        input: Option<String>,
        /// Who issues it (ROLE:NAME).
        #[arg(long)]
        actor: Option<Actor>,
        /// Session it belongs to.
        #[arg(long)]
        session: Option<String>,
        /// Expected BLAKE3 content hash of the file (conflict if it differs).
        #[arg(long)]
        precondition: Option<Digest>,
        /// An event the command derives from (id or unique prefix); repeatable. Blame
        /// shows it as the line's evidence.
        #[arg(long = "cause", value_name = "ID")]
        causes: Vec<String>,
    },
    /// Every change of a store or of one path.
    History {
        /// Store name.
        store: String,
        /// Only this path (and deletes/renames of directories above it).
        path: Option<String>,
    },
    /// Differences between two points of a store, or between two stores.
    Diff {
        /// Store (or first store).
        store: String,
        /// Second store, to compare two stores.
        other: Option<String>,
        /// From point (one store).
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        /// To point (one store).
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        /// Point for both stores (two stores).
        #[arg(long, default_value = "head", allow_hyphen_values = true)]
        at: String,
        /// Only counts per file.
        #[arg(long)]
        stat: bool,
    },
    /// Each line of a file with the event (and dream, sessions, grades) behind it.
    Blame {
        /// Store name.
        store: String,
        /// File path.
        path: String,
        /// Point.
        #[arg(long, default_value = "head", allow_hyphen_values = true)]
        at: String,
    },
    /// Undo changes by appending inverse commands (history never shrinks).
    Revert(RevertArgs),
    /// Start a new store as a copy of another at a point.
    Fork {
        /// Source store.
        source: String,
        /// New store.
        new: String,
        /// Point.
        #[arg(long, default_value = "head", allow_hyphen_values = true)]
        at: String,
    },
    /// Apply a fork's changes to the store it was forked from (each copied command keeps
    /// its dream and evidence); when one no longer applies, make the store equal to the fork.
    Promote {
        /// The fork.
        fork: String,
        /// The store to change.
        #[arg(long)]
        into: String,
        /// Promote lessons whose validated lift is negative too (refused otherwise).
        #[arg(long)]
        force: bool,
        /// Show the events that would be appended and the diff they make; write nothing (a
        /// mirrored hosted store: the API calls that would be sent).
        #[arg(long)]
        dry_run: bool,
        /// A mirrored hosted store: the workspace (`anthropic-workspace-id`) of its key.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Each lesson with its origin dream, its evidence, and the grades of sessions that
    /// ran with the store before and after it.
    Lessons {
        /// Store name.
        store: String,
        /// Point.
        #[arg(long, default_value = "head", allow_hyphen_values = true)]
        at: String,
    },
    /// The memory rules a store follows (1: directories implied by files, dreamlog's
    /// texts; 2: the Anthropic SDK reference backend's semantics and texts, directories
    /// as state — what new stores follow), and with --set, switch it from here on.
    Rules {
        /// Store name.
        store: String,
        /// Switch to these rules (only forward: 2). States before the switch keep theirs.
        #[arg(long)]
        set: Option<u64>,
    },
    /// Write a store's state (as of a point) into a folder of memory files. Refuses to
    /// overwrite changes in the folder that the store has not recorded (see `watch`).
    Checkout {
        /// Store name.
        store: String,
        /// The folder (created if missing); `DIR/a.md` is `/memories/a.md`.
        dir: std::path::PathBuf,
        /// Point (default head).
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
        /// Overwrite the folder's unrecorded changes.
        #[arg(long)]
        force: bool,
    },
}

/// Arguments of `memory revert`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["event", "dream", "session", "to"])))]
pub struct RevertArgs {
    /// Store name.
    pub store: String,
    /// Revert one memory event.
    #[arg(long)]
    pub event: Option<String>,
    /// Revert everything a dream wrote.
    #[arg(long)]
    pub dream: Option<String>,
    /// Revert every memory command one session made (a hosted `sesn_…`, a Claude Code
    /// session id).
    #[arg(long)]
    pub session: Option<String>,
    /// Restore the store as of this point.
    #[arg(long)]
    pub to: Option<String>,
    /// Why (recorded in the revert event).
    #[arg(long)]
    pub reason: String,
    /// Restore conflicting files whole instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// Show the events that would be appended and the diff they make; write nothing (a
    /// mirrored hosted store: the API calls that would be sent).
    #[arg(long)]
    pub dry_run: bool,
    /// A mirrored hosted store: the workspace (`anthropic-workspace-id`) of its key.
    #[arg(long)]
    pub workspace: Option<String>,
}

pub(crate) fn default_actor() -> Actor {
    Actor::Human(std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "cli".into()))
}

/// Prints a memory view (`--json`: its JSON form, `ok` with `text` or `error`); exit 1
/// on a tool error.
pub(crate) fn print_view(cli: &Cli, v: &MemoryView) -> Result<ExitCode> {
    if cli.json {
        stdout_json(v)?;
    } else {
        match v {
            MemoryView::Shown { text, .. } => stdout_line(text)?,
            MemoryView::Refused { message, .. } => stdout_line(message)?,
        }
    }
    Ok(if matches!(v, MemoryView::Shown { .. }) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A memory tool call's outcome: the text and where the command was recorded (position,
/// id), or the tool's error class and text.
pub(crate) type ToolOutcome = std::result::Result<(String, Option<(u64, crate::core::EventId)>), (String, String)>;

/// Prints a memory tool call's outcome (exit 1 when the tool refused).
pub(crate) fn print_tool_outcome(cli: &Cli, outcome: ToolOutcome) -> Result<ExitCode> {
    match outcome {
        Ok((t, event)) => {
            if cli.json {
                let mut v = json!({"ok": true, "text": t});
                if let Some((position, id)) = event {
                    v["position"] = position.into();
                    v["id"] = json!(id);
                }
                stdout_line(&v.to_string())?;
            } else {
                stdout_line(&t)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err((kind, message)) => {
            if cli.json {
                stdout_line(&json!({"ok": false, "error": {"type": kind, "message": message}}).to_string())?;
            } else {
                stdout_line(&message)?;
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// One line of `memory history`.
pub(crate) fn print_history_line(cli: &Cli, e: &crate::store::StoredEvent) -> Result<()> {
    if cli.json {
        return stdout_line(&e.to_json().to_line());
    }
    let causes = e.event.header.causes.iter().map(|c| c.short(12)).collect::<Vec<_>>().join(",");
    let session = match &e.event.body {
        crate::core::Body::Memory(m) => m.session.as_deref().map(|s| format!("  session {s}")).unwrap_or_default(),
        _ => String::new(),
    };
    let by = e.received.as_ref().map(|r| format!("  by {}", r.principal)).unwrap_or_default();
    stdout_line(&format!(
        "{:>8}  {}  {}  {:<24} {}{session}{}{by}",
        e.position,
        e.id().short(12),
        output::time_text(e.event.header.time),
        e.event.header.actor.to_string(),
        e.event.body.summary(),
        if causes.is_empty() { String::new() } else { format!("  causes {causes}") }
    ))
}

/// What `memory revert` says it did.
pub(crate) fn revert_what(force: bool) -> &'static str {
    if force {
        "reverted (--force: files that later edits conflicted with were restored whole; the revert event's reason says which)"
    } else {
        "reverted"
    }
}

/// What `memory fork` says it did.
pub(crate) fn fork_what(source: &str, point: u64, new: &str) -> String {
    format!("forked {source} at position {point} into {new}")
}

/// `tag`'s answer.
pub(crate) fn print_tag(cli: &Cli, name: &str, point: u64, id: &crate::core::EventId, at: u64) -> Result<()> {
    if cli.json {
        stdout_line(&json!({"tag": name, "position": point, "id": id, "event_position": at}).to_string())
    } else {
        stdout_line(&format!("tag {name} = position {point} (recorded as event {id} at {at})"))
    }
}

/// `memory diff`'s answer.
pub(crate) fn print_diff(cli: &Cli, d: &crate::core::memory::MemoryDiff, stat: bool) -> Result<()> {
    if cli.json {
        stdout_line(&serde_json::to_string(d).unwrap_or_default())
    } else {
        stdout_line(&output::memory_diff(d, stat))
    }
}

/// A dry run's plan: the events that would be appended, then the diff.
pub(crate) fn print_preview(cli: &Cli, p: &crate::memory::Preview) -> Result<()> {
    if cli.json {
        return stdout_line(&serde_json::to_string(p).unwrap_or_default());
    }
    stdout_line(&format!(
        "dry run: would append {} event(s) to store {} (state {} -> {}); nothing written",
        p.events.len(),
        p.store,
        p.state_before.short(12),
        p.state_after.short(12)
    ))?;
    for e in &p.events {
        stdout_line(&format!("  {}", serde_json::to_string(e).unwrap_or_default()))?;
    }
    stdout_line(&output::memory_diff(&p.diff, false))
}

/// `memory blame`'s lines.
pub(crate) fn print_blame(cli: &Cli, lines: &[crate::memory::BlameLine]) -> Result<()> {
    for l in lines {
        if cli.json {
            stdout_line(&serde_json::to_string(l).unwrap_or_default())?;
        } else {
            let from_dream = l
                .dream
                .map(|d| {
                    format!(
                        "  dream {} evidence {}",
                        d.short(12),
                        l.evidence.iter().map(|e| e.short(12)).collect::<Vec<_>>().join(",")
                    )
                })
                .unwrap_or_default();
            let session = l
                .session
                .as_deref()
                .map(|s| match &l.verdict {
                    Some(v) => format!("  session {s} ({} {:.2})", v.result, v.score),
                    None => format!("  session {s}"),
                })
                .unwrap_or_default();
            let by = l.received.as_ref().map(|r| format!("  by {}", r.principal)).unwrap_or_default();
            let restored = l
                .restored_by
                .as_ref()
                .map(|r| {
                    let how = if r.how == "revert" { "restored" } else { "promoted" };
                    format!("  {how} by {} ({} #{})", r.id.short(12), r.actor, r.position)
                })
                .unwrap_or_default();
            stdout_line(&format!(
                "{} {:>8} {} {:<20} {:>5}| {}{}{session}{by}{restored}",
                l.id.short(12),
                l.position,
                output::time_text(l.time),
                l.actor,
                l.line,
                l.text,
                from_dream
            ))?;
        }
    }
    Ok(())
}

pub(crate) fn print_appended(cli: &Cli, what: &str, appended: &[Appended]) -> Result<()> {
    if cli.json {
        for a in appended {
            stdout_line(&json!({"position": a.position, "id": a.id, "version": a.version}).to_string())?;
        }
    } else {
        stdout_line(&format!("{what}: {} event(s) appended", appended.len()))?;
        for a in appended {
            stdout_line(&format!("  {}\t{}", a.position, a.id))?;
        }
    }
    Ok(())
}

pub(super) fn tool_input_text(input: Option<&str>) -> Result<String> {
    match input {
        Some(t) => Ok(t.to_owned()),
        None => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|source| Error::Io { path: "-".into(), source })?;
            Ok(s)
        }
    }
}
