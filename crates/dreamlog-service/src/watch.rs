//! Guarding a folder of memory files (Claude Code's memory folder, any agent's notes):
//! `dreamlog watch DIR --store S` records every change any program makes to the folder as
//! memory commands — creates, whole-text replacements, deletes, renames (a moved
//! directory is its files' renames) — and changes that arrive together (a burst within a
//! quiet interval: one consolidation run rewriting many files) as one atomic batch, so an
//! automatic rewrite can be diffed, blamed and reverted as a unit. `checkout` writes a
//! state of the store back to the folder, refusing to overwrite changes it has not
//! recorded. Both work over any [`Service`] (embedded or `--remote`).
//!
//! The folder maps to `/memories`: `DIR/a/b.md` is `/memories/a/b.md`. Hidden entries
//! (a name starting with `.`), backups (`~`), symbolic links, files that are not UTF-8 or
//! larger than the memory tool allows, and names the tool refuses are not memory: they
//! are skipped and reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::core::memory::{check_new_path, sync_commands, MemoryState, Rules, MAX_FILE_BYTES, ROOT};
use crate::core::{Actor, Digest};
use crate::error::{Error, MemoryError, Result};
use crate::service::{BatchRequest, PathQuery, Service};

/// A folder read as a memory state, and what was not memory in it.
#[derive(Clone, Debug, Default)]
pub struct Folder {
    /// The memory files.
    pub state: MemoryState,
    /// Entries skipped: relative path and why.
    pub skipped: Vec<(String, String)>,
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

/// Reads every memory file and directory below `dir` (a missing folder is empty) as a
/// state under `rules` (under rules 1 directories without files do not count).
pub fn read_folder(dir: &Path, rules: Rules) -> Result<Folder> {
    let mut out = Folder::default();
    if !dir.exists() {
        return Ok(out);
    }
    let mut files: Vec<(String, String)> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    // Memory paths are the file names in Unicode NFC (macOS keeps names decomposed, and
    // a client must send NFC): two names equal in NFC are one path, the second skipped.
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(&path)
            .map_err(|e| io_err(&path, e))?
            .collect::<std::io::Result<_>>()
            .map_err(|e| io_err(&path, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name: String = {
                use unicode_normalization::UnicodeNormalization;
                e.file_name().to_string_lossy().nfc().collect()
            };
            let rel_path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if name.starts_with('.') || name.ends_with('~') {
                continue;
            }
            let meta = std::fs::symlink_metadata(e.path()).map_err(|err| io_err(&e.path(), err))?;
            if meta.file_type().is_symlink() {
                out.skipped.push((rel_path, "a symbolic link".into()));
            } else if meta.is_dir() {
                let memory_path = format!("{ROOT}/{rel_path}");
                if let Err(why) = admit(&memory_path, &mut seen) {
                    out.skipped.push((rel_path, why));
                    continue;
                }
                dirs.push(memory_path);
                stack.push((e.path(), rel_path));
            } else if meta.len() > MAX_FILE_BYTES as u64 {
                out.skipped.push((rel_path, format!("larger than {MAX_FILE_BYTES} bytes")));
            } else {
                let memory_path = format!("{ROOT}/{rel_path}");
                if let Err(why) = admit(&memory_path, &mut seen) {
                    out.skipped.push((rel_path, why));
                    continue;
                }
                match std::fs::read(e.path()) {
                    // Removed between listing and reading: the next burst sees it gone.
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_err(&e.path(), err)),
                    Ok(bytes) => match String::from_utf8(bytes) {
                        Ok(text) => files.push((memory_path, text)),
                        Err(_) => out.skipped.push((rel_path, "not UTF-8 text".into())),
                    },
                }
            }
        }
    }
    out.state = MemoryState::from_tree(rules, files, dirs);
    Ok(out)
}

/// Whether a file's memory path may be recorded: a path a new command may name, not
/// taken by another file whose name is the same in NFC.
fn admit(memory_path: &str, seen: &mut std::collections::HashSet<String>) -> std::result::Result<(), String> {
    check_new_path(memory_path).map_err(|e| e.message)?;
    if !seen.insert(memory_path.to_owned()) {
        return Err(format!("{memory_path} is also another file's name in Unicode NFC: that file is recorded"));
    }
    Ok(())
}

/// Options of `dreamlog watch`.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// The memory store the folder is recorded into.
    pub store: String,
    /// Who changes are recorded as.
    pub actor: Actor,
    /// The session they are recorded with.
    pub session: Option<String>,
    /// A burst ends after this long without a change.
    pub quiet: Duration,
    /// …or after this long in all (a folder that never stops changing is still recorded).
    pub max_burst: Duration,
}

/// One recorded batch.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recorded {
    /// The store.
    pub store: String,
    /// Commands appended (one event each).
    pub commands: usize,
    /// First and last position.
    pub positions: (u64, u64),
    /// Each command, in words (`create /memories/a.md`).
    pub changes: Vec<String>,
    /// The store's state hash after it.
    pub state_hash: Digest,
}

fn describe(c: &crate::core::MemoryCommand) -> String {
    use crate::core::MemoryCommand::*;
    match c {
        Create { path, .. } => format!("create {path}"),
        StrReplace { path, .. } => format!("edit {path}"),
        Insert { path, .. } => format!("insert into {path}"),
        Delete { path } => format!("delete {path}"),
        Mkdir { path } => format!("mkdir {path}"),
        Write { path, .. } => format!("write {path}"),
        Rename { old_path, new_path } => format!("rename {old_path} → {new_path}"),
    }
}

/// The store's current files as a state, and its hash.
fn store_state(svc: &dyn Service, store: &str) -> Result<(MemoryState, Digest)> {
    let f = svc.memory_files(store, &PathQuery::default())?;
    Ok((f.state(), f.state_hash))
}

/// Records the folder's difference from `last` as one batch (if any), expecting the store
/// to be in `last`; on a conflict (someone else changed the store) re-reads the store
/// once and records against it.
fn record(
    svc: &dyn Service,
    dir: &Path,
    opts: &WatchOptions,
    last: &mut (MemoryState, Digest),
) -> Result<Option<Recorded>> {
    for attempt in 0..2 {
        let folder = read_folder(dir, last.0.rules())?;
        let commands = sync_commands(&last.0, &folder.state);
        if commands.is_empty() {
            return Ok(None);
        }
        let changes = commands.iter().map(describe).collect();
        let req = BatchRequest { commands, expected_state: Some(last.1), session: opts.session.clone() };
        match svc.memory_batch(&opts.store, &req, &opts.actor) {
            Ok(appended) => {
                let hash = folder.state.state_hash();
                *last = (folder.state, hash);
                let (first, end) = match (appended.first(), appended.last()) {
                    (Some(a), Some(b)) => (a.position, b.position),
                    _ => (0, 0),
                };
                return Ok(Some(Recorded {
                    store: opts.store.clone(),
                    commands: appended.len(),
                    positions: (first, end),
                    changes,
                    state_hash: hash,
                }));
            }
            Err(e) if attempt == 0 && e.class() == crate::error::ErrorClass::Conflict => {
                *last = store_state(svc, &opts.store)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Watches `dir` until `stop` is set: first records any difference between the folder
/// and the store (changes made while nothing watched), then each burst of changes as one
/// batch, and a last one when stopping. `on_batch` hears of each.
pub fn watch(
    svc: &dyn Service,
    dir: &Path,
    opts: &WatchOptions,
    stop: &AtomicBool,
    on_batch: &mut dyn FnMut(&Recorded) -> Result<()>,
) -> Result<()> {
    use notify::Watcher;
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(tx)
        .map_err(|e| Error::Io { path: dir.display().to_string(), source: std::io::Error::other(e.to_string()) })?;
    watcher
        .watch(dir, notify::RecursiveMode::Recursive)
        .map_err(|e| Error::Io { path: dir.display().to_string(), source: std::io::Error::other(e.to_string()) })?;
    let mut last = store_state(svc, &opts.store)?;
    if let Some(r) = record(svc, dir, opts, &mut last)? {
        on_batch(&r)?;
    }
    while !stop.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(_) => {}
        }
        // A burst: wait for a quiet interval (or the longest burst).
        let started = Instant::now();
        while started.elapsed() < opts.max_burst && !stop.load(Ordering::SeqCst) {
            match rx.recv_timeout(opts.quiet) {
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        if let Some(r) = record(svc, dir, opts, &mut last)? {
            on_batch(&r)?;
        }
    }
    if let Some(r) = record(svc, dir, opts, &mut last)? {
        on_batch(&r)?;
    }
    Ok(())
}

/// What `checkout` did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Checkout {
    /// The store and the point written.
    pub store: String,
    /// The state covers the log before this position.
    pub until: u64,
    /// Its state hash.
    pub state_hash: Option<Digest>,
    /// Files written (new or changed).
    pub written: Vec<String>,
    /// Files removed.
    pub removed: Vec<String>,
    /// Files already as they should be.
    pub unchanged: usize,
}

fn disk_path(dir: &Path, memory_path: &str) -> PathBuf {
    let rel = memory_path.strip_prefix(ROOT).unwrap_or(memory_path).trim_start_matches('/');
    rel.split('/').fold(dir.to_path_buf(), |p, seg| p.join(seg))
}

/// Every state hash the store has had (its history folded; a fork from its fork point).
fn recorded_hashes(svc: &dyn Service, store: &str) -> Result<std::collections::HashSet<Digest>> {
    let mut out = std::collections::HashSet::new();
    let mut state = MemoryState::new();
    out.insert(state.state_hash());
    for e in svc.memory_history(store, &PathQuery::default())? {
        match &e.event.body {
            crate::core::Body::Memory(m) => {
                state.replay(&m.command);
            }
            crate::core::Body::StoreFork(_) => {
                let at = Some(e.position.to_string());
                state = svc.memory_files(store, &PathQuery { path: None, at })?.state();
            }
            body => match Rules::switched_by(body) {
                Some(rules) => state.set_rules(rules),
                None => continue,
            },
        }
        out.insert(state.state_hash());
    }
    Ok(out)
}

/// Writes the store as of `at` (default head) into `dir`. The folder must hold a state
/// the store has recorded (or be empty): changes the store has not recorded are not
/// overwritten unless `force`.
pub fn checkout(svc: &dyn Service, store: &str, dir: &Path, at: Option<&str>, force: bool) -> Result<Checkout> {
    let target = svc.memory_files(store, &PathQuery { path: None, at: at.map(str::to_owned) })?;
    let (head, _) = store_state(svc, store)?;
    let folder = read_folder(dir, head.rules())?;
    let folder_empty = folder.state.files().is_empty() && folder.state.dirs().is_empty();
    if !force && !folder_empty && !recorded_hashes(svc, store)?.contains(&folder.state.state_hash()) {
        {
            let mut paths: Vec<String> = head.files().keys().chain(folder.state.files().keys()).cloned().collect();
            paths.sort();
            paths.dedup();
            paths.retain(|p| head.file(p) != folder.state.file(p));
            return Err(Error::Memory(MemoryError::FolderChanged { dir: dir.display().to_string(), paths }));
        }
    }
    let mut out = Checkout {
        store: store.to_owned(),
        until: target.until,
        state_hash: Some(target.state_hash),
        ..Checkout::default()
    };
    let wanted: BTreeMap<&String, &String> = target.files.iter().collect();
    for p in folder.state.files().keys() {
        if !wanted.contains_key(p) {
            let path = disk_path(dir, p);
            std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            // Directories the removal emptied go too (never the folder itself).
            let mut parent = path.parent().map(Path::to_path_buf);
            while let Some(d) = parent {
                if d == dir || std::fs::remove_dir(&d).is_err() {
                    break;
                }
                parent = d.parent().map(Path::to_path_buf);
            }
            out.removed.push(p.clone());
        }
    }
    for (p, text) in wanted {
        if folder.state.file(p).is_some_and(|f| f.text.as_ref() == text.as_str()) {
            out.unchanged += 1;
            continue;
        }
        let path = disk_path(dir, p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        // Whole or not at all: a temporary file beside it, then a rename.
        let tmp = path.with_file_name(format!(".dreamlog-checkout-{}", std::process::id()));
        std::fs::write(&tmp, text.as_bytes()).map_err(|e| io_err(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        out.written.push(p.clone());
    }
    // Directories: those of the state are made (empty ones too, under rules 2); those
    // of the folder the state has not are removed once empty (deepest first).
    for d in &target.dirs {
        let path = disk_path(dir, d);
        std::fs::create_dir_all(&path).map_err(|e| io_err(&path, e))?;
    }
    let keep: std::collections::BTreeSet<String> = target.state().dirs();
    for d in folder.state.dirs().iter().rev() {
        if !keep.contains(d) {
            let path = disk_path(dir, d);
            if std::fs::remove_dir(&path).is_ok() {
                out.removed.push(format!("{d}/"));
            }
        }
    }
    Ok(out)
}
