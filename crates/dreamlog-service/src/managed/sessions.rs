//! `dreamlog sync anthropic`, the session part: hosted sessions, their events and their
//! threads mirrored as sessions (mapped by `import::managed_agents`, written by
//! `service::ingest` as any import is: identity by content, a session whole in one atomic
//! batch, one that grew appended).
//!
//! Each session's `session.link` names the first memory store it mounted and that store's
//! state when the session was created, folded from the mirrored versions up to that time
//! (the memory part runs first; a store not mirrored cleanly this sync is not linked to).
//! A session created within ten minutes of this sync's start (or later) waits for the
//! next one, so versions committed late with an earlier time are in before it is linked.
//!
//! The API has no updated-since filter: every sync lists the sessions again and reads
//! the events of those whose `updated_at` differs from what the last sync recorded (an
//! `anthropic.sync.sessions` note per batch of sessions, on the stream
//! `anthropic.sync/sessions`). A kill between a session and its note costs one more read:
//! the session is then found as it is (nothing written twice).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::hosted::{Hosted, SESSIONS_BETA};
use super::mirror::{sync_actor, UnmappedObject};
use crate::core::memory::{MemoryState, Rules};
use crate::core::{Body, CanonicalJson, Digest, Draft, ExpectedVersion, Note};
use crate::error::{Error, ManagedError, Result};
use crate::import::managed_agents::HostedSession;
use crate::import::SessionEvents;
use crate::service::Service;
use crate::store::AppendBatch;

/// The stream of the session part's notes.
pub const SESSIONS_STREAM: &str = "anthropic.sync/sessions";
/// The note naming the sessions a sync mirrored.
pub const SESSIONS_NOTE: &str = "anthropic.sync.sessions";
/// Sessions per note (and per write of their events).
const SESSIONS_PER_NOTE: usize = 50;
/// Sessions created this close to the sync's start (or later) wait for the next sync.
pub(super) const SETTLE_MS: u64 = 10 * 60 * 1000;

/// What the session part did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SessionsSync {
    /// Sessions the API listed.
    pub listed: usize,
    /// Sessions and threads written for the first time.
    pub mirrored: usize,
    /// Sessions and threads already mirrored that grew: their new events appended.
    pub grown: usize,
    /// Sessions unchanged since the last sync (`updated_at` as recorded): not read.
    pub unchanged: usize,
    /// Sessions and threads read again and found as mirrored.
    pub already: usize,
    /// Sessions with nothing to map yet (no task: no `task_id`, user message or outcome).
    pub waiting: usize,
    /// Sessions created within ten minutes of this sync's start: the next one mirrors them.
    pub deferred: usize,
    /// Threads read (as child sessions) with the sessions written or grown.
    pub threads: usize,
    /// Grades (outcome evaluations) in the sessions read.
    pub grades: u64,
}

/// Which sessions to mirror.
pub struct SessionsOptions<'a> {
    /// Sessions mounting these stores only (all when empty).
    pub stores: &'a [String],
    /// Sessions created at or after this time (ms) only.
    pub since: Option<u64>,
    /// When this sync began (ms): sessions created within ten minutes of it wait.
    pub began: u64,
    /// The stores this sync mirrored cleanly: a session's link names the first of them it
    /// mounted.
    pub mirrored: &'a std::collections::BTreeSet<String>,
    /// Stores this sync left for a later one: a session that mounted one waits with them
    /// (its link is written once, with the session).
    pub deferred_stores: &'a std::collections::BTreeSet<String>,
    /// Told the sessions done and listed.
    pub progress: Option<&'a dyn Fn(usize, usize)>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SessionsNote {
    sessions: Vec<SeenSession>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SeenSession {
    id: String,
    updated_at: String,
}

/// Mirrors the hosted sessions into `svc`'s log; also returns the ids of the sessions left
/// for a later sync (created too recently, or mounting a store left for later).
pub fn sync_sessions(
    svc: &dyn Service,
    hosted: &Hosted,
    opts: &SessionsOptions,
    unmapped: &mut Vec<UnmappedObject>,
) -> Result<(SessionsSync, std::collections::BTreeSet<String>)> {
    let mut out = SessionsSync::default();
    let (mut version, mut seen) = read_seen(svc)?;

    // Every session, oldest first (by store when asked; one session mounting two stores
    // is listed once).
    let mut listed: Vec<Value> = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let filters: Vec<Option<&String>> =
        if opts.stores.is_empty() { vec![None] } else { opts.stores.iter().map(Some).collect() };
    for store in filters {
        let mut q =
            vec![("include_archived", "true".to_owned()), ("limit", "100".to_owned()), ("order", "asc".to_owned())];
        if let Some(s) = store {
            q.push(("memory_store_id", s.clone()));
        }
        if let Some(t) = opts.since {
            q.push(("created_at[gte]", crate::core::time::time_text(t)));
        }
        hosted.list("/v1/sessions", &q, SESSIONS_BETA, |s| {
            if s["type"] == "session" && ids.insert(s["id"].as_str().unwrap_or_default().to_owned()) {
                listed.push(s);
            }
            Ok(())
        })?;
    }
    listed.sort_by_key(|s| (created(s), s["id"].as_str().unwrap_or_default().to_owned()));
    out.listed = listed.len();

    // Those to read: changed since the last sync, created long enough ago, mounting no
    // store left for later.
    let mut to_read: Vec<&Value> = Vec::new();
    let mut later: std::collections::BTreeSet<String> = Default::default();
    for s in &listed {
        let id = s["id"].as_str().unwrap_or_default().to_owned();
        if seen.get(&id).map(String::as_str) == s["updated_at"].as_str() {
            out.unchanged += 1;
            continue;
        }
        match created(s) {
            None => {
                let reason = format!("created_at: {:?} is not an RFC 3339 time", s["created_at"]);
                unmapped.push(UnmappedObject { object: id, reason });
            }
            Some(c) if c >= opts.began.saturating_sub(SETTLE_MS) || mounts(s, opts.deferred_stores) => {
                out.deferred += 1;
                later.insert(id);
            }
            Some(_) => to_read.push(s),
        }
    }

    let mut states = StoreStates::default();
    let mut files: HashMap<String, String> = HashMap::new();
    let mut done = out.unchanged;
    for chunk in to_read.chunks(SESSIONS_PER_NOTE) {
        // Read a chunk's sessions side by side (the API's latency, not our work, is what
        // a sync waits on); map and write them in order.
        let fetched = fetch_all(hosted, chunk);
        let mut pending: Vec<(SeenSession, Vec<SessionEvents>)> = Vec::new();
        for (s, raw) in chunk.iter().zip(fetched) {
            let id = s["id"].as_str().unwrap_or_default().to_owned();
            let updated_at = s["updated_at"].as_str().unwrap_or_default().to_owned();
            let mapped = raw.and_then(|raw| map_session(svc, hosted, s, raw, &mut files, &mut states, opts.mirrored));
            match mapped {
                Ok(Some(sessions)) => pending.push((SeenSession { id, updated_at }, sessions)),
                Ok(None) => out.waiting += 1,
                Err(e) => match unmappable(e) {
                    Ok(reason) => unmapped.push(UnmappedObject { object: id, reason }),
                    Err(e) => return Err(e),
                },
            }
        }
        write(svc, pending, &mut version, &mut seen, &mut out, unmapped)?;
        done += chunk.len();
        if let Some(p) = opts.progress {
            p(done, listed.len());
        }
    }
    Ok((out, later))
}

/// Whether session `s` mounted one of `stores`.
fn mounts(s: &Value, stores: &std::collections::BTreeSet<String>) -> bool {
    s["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["type"] == "memory_store" && r["memory_store_id"].as_str().is_some_and(|m| stores.contains(m)))
}

/// How many sessions are read from the API at once.
const READERS: usize = 4;

/// A session's events and its threads' (but the primary one's), as listed.
struct Raw {
    events: Vec<Value>,
    threads: Vec<(Value, Vec<Value>)>,
}

/// Each session's [`Raw`], read by [`READERS`] threads, in the sessions' order.
fn fetch_all(hosted: &Hosted, sessions: &[&Value]) -> Vec<Result<Raw>> {
    let slots: Vec<std::sync::Mutex<Option<Result<Raw>>>> = sessions.iter().map(|_| Default::default()).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..READERS.min(sessions.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(s) = sessions.get(i) else { break };
                let raw = fetch(hosted, s["id"].as_str().unwrap_or_default());
                *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(raw);
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| Err(Error::InvalidInput("a session was not read".into())))
        })
        .collect()
}

/// One session's events, its threads and theirs.
fn fetch(hosted: &Hosted, id: &str) -> Result<Raw> {
    let all = |path: String| -> Result<Vec<Value>> {
        let mut items = Vec::new();
        hosted.list(&path, &[("limit", "100".to_owned())], SESSIONS_BETA, |e| {
            items.push(e);
            Ok(())
        })?;
        Ok(items)
    };
    let events = all(format!("/v1/sessions/{id}/events"))?;
    let mut listed_threads = Vec::new();
    hosted.list(&format!("/v1/sessions/{id}/threads"), &[], SESSIONS_BETA, |t| {
        listed_threads.push(t);
        Ok(())
    })?;
    listed_threads.sort_by_key(|t| (created(t), t["id"].as_str().unwrap_or_default().to_owned()));
    let mut threads = Vec::new();
    for t in listed_threads {
        // The primary thread's events are the session's own.
        if t["parent_thread_id"].is_null() {
            continue;
        }
        let tid = t["id"].as_str().unwrap_or_default().to_owned();
        let events = all(format!("/v1/sessions/{id}/threads/{tid}/events"))?;
        threads.push((t, events));
    }
    Ok(Raw { events, threads })
}

/// A session read, mapped; its link set.
fn map_session(
    svc: &dyn Service,
    hosted: &Hosted,
    s: &Value,
    raw: Raw,
    files: &mut HashMap<String, String>,
    states: &mut StoreStates,
    mirrored: &std::collections::BTreeSet<String>,
) -> Result<Option<Vec<SessionEvents>>> {
    let Raw { events, threads } = raw;
    // Rubrics given as files, read once a sync.
    for e in events.iter().chain(threads.iter().flat_map(|(_, es)| es)) {
        if e["type"] == "user.define_outcome" && e["rubric"]["type"] == "file" {
            if let Some(fid) = e["rubric"]["file_id"].as_str() {
                if !files.contains_key(fid) {
                    files.insert(fid.to_owned(), hosted.file_text(fid)?);
                }
            }
        }
    }
    let h = HostedSession { session: s, events: &events, threads: &threads, files };
    let Some(mut sessions) = crate::import::parse_managed_session(&h)? else { return Ok(None) };
    // The link: the first memory store mounted that this sync mirrored, as it was when
    // the session was created.
    let store = s["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["type"] == "memory_store")
        .filter_map(|r| r["memory_store_id"].as_str())
        .find(|id| mirrored.contains(*id));
    if let (Some(store), Some(at)) = (store, created(s)) {
        if let Some((state, position)) = states.state_at(svc, store, at)? {
            for child in &mut sessions {
                child.memory = Some((store.to_owned(), state));
                child.memory_at = position;
            }
        }
    }
    Ok(Some(sessions))
}

/// Writes mapped sessions and the note naming them.
fn write(
    svc: &dyn Service,
    pending: Vec<(SeenSession, Vec<SessionEvents>)>,
    version: &mut Option<u64>,
    seen: &mut HashMap<String, String>,
    out: &mut SessionsSync,
    unmapped: &mut Vec<UnmappedObject>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut note = SessionsNote::default();
    // All in one import (its sessions checked first, then appended several to an atomic
    // batch): a session refused (it changed in its middle) fails it before anything is
    // written, and the sessions are then written one by one, that one reported.
    let all: Vec<SessionEvents> = pending.iter().flat_map(|(_, s)| s.iter().cloned()).collect();
    match crate::service::import_sessions(svc, all, None, |_| {}) {
        Ok(counts) => {
            out.threads += pending.iter().map(|(_, s)| s.len().saturating_sub(1)).sum::<usize>();
            out.grades += counts.grades;
            out.mirrored += counts.sessions as usize;
            out.grown += counts.grown as usize;
            out.already += counts.already_present as usize;
            note.sessions.extend(pending.into_iter().map(|(s, _)| s));
            return note_sessions(svc, note, version, seen);
        }
        Err(e) => {
            unmappable(e)?;
        }
    }
    for (s, sessions) in pending {
        out.threads += sessions.len().saturating_sub(1);
        match crate::service::import_sessions(svc, sessions, None, |_| {}) {
            Ok(counts) => {
                out.grades += counts.grades;
                out.mirrored += counts.sessions as usize;
                out.grown += counts.grown as usize;
                out.already += counts.already_present as usize;
                note.sessions.push(s);
            }
            Err(e) => match unmappable(e) {
                Ok(reason) => unmapped.push(UnmappedObject { object: s.id.clone(), reason }),
                Err(e) => return Err(e),
            },
        }
    }
    note_sessions(svc, note, version, seen)
}

/// Appends the note naming sessions written (none: nothing).
fn note_sessions(
    svc: &dyn Service,
    note: SessionsNote,
    version: &mut Option<u64>,
    seen: &mut HashMap<String, String>,
) -> Result<()> {
    if note.sessions.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_value(&note).map_err(|e| Error::InvalidInput(format!("sessions note: {e}")))?;
    let mut d = Draft::new(
        SESSIONS_STREAM.to_owned(),
        sync_actor(),
        Body::Note(Note { note_type: SESSIONS_NOTE.to_owned(), json: CanonicalJson::from_value(&json) }),
    );
    d.time = None;
    let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
    let appended =
        svc.append_batch(AppendBatch { events: vec![d], ..Default::default() }.expect(SESSIONS_STREAM, expected))?;
    *version = appended.last().map(|a| a.version);
    for s in note.sessions {
        seen.insert(s.id, s.updated_at);
    }
    Ok(())
}

/// Why an error leaves one object out (the sync goes on), or the error itself when the
/// whole sync must stop (the log or the API failing).
fn unmappable(e: Error) -> std::result::Result<String, Error> {
    match e {
        Error::Record { pointer, reason, .. } => Ok(format!("{reason} (at {pointer})")),
        Error::Input { reason, .. } => Ok(reason),
        Error::Managed(ManagedError::Unmapped { reason, .. }) => Ok(reason),
        // A session, thread or rubric file the key may not read, or gone meanwhile.
        Error::Managed(ManagedError::Hosted { status, message, route })
            if (400..500).contains(&status) && status != 429 =>
        {
            Ok(format!("{route}: {message}"))
        }
        e => Err(e),
    }
}

/// The sessions an earlier sync recorded, with the `updated_at` it saw.
fn read_seen(svc: &dyn Service) -> Result<(Option<u64>, HashMap<String, String>)> {
    let mut seen = HashMap::new();
    let mut version = None;
    for e in svc.stream_events(SESSIONS_STREAM)? {
        version = Some(e.version);
        if let Body::Note(n) = &e.event.body {
            if n.note_type == SESSIONS_NOTE {
                if let Ok(note) = serde_json::from_value::<SessionsNote>(n.json.to_value()) {
                    seen.extend(note.sessions.into_iter().map(|s| (s.id, s.updated_at)));
                }
            }
        }
    }
    Ok((version, seen))
}

fn created(v: &Value) -> Option<u64> {
    super::hosted::api_time(&v["created_at"])
}

/// Mirrored stores as they were at a time: each store's memory commands (oldest first,
/// as the mirror writes them) folded forward as sessions come in time order.
#[derive(Default)]
pub(super) struct StoreStates {
    stores: BTreeMap<String, Folding>,
}

struct Folding {
    /// (time, position, event) of the store's stream.
    events: Vec<(u64, u64, Body)>,
    next: usize,
    at: u64,
    /// The state before its first event (a fork's copy, else empty).
    start: MemoryState,
    state: MemoryState,
}

impl StoreStates {
    /// The state hash of mirrored store `store` after its events stamped at or before
    /// `at`, and the position of the last of them (none when none is); `None` when the
    /// store is not mirrored.
    pub(super) fn state_at(
        &mut self,
        svc: &dyn Service,
        store: &str,
        at: u64,
    ) -> Result<Option<(Digest, Option<u64>)>> {
        if !self.stores.contains_key(store) {
            let events = svc.stream_events(&crate::memory::stream_name(store))?;
            if events.is_empty() {
                return Ok(None);
            }
            // A fork starts as its source at the fork point.
            let start = match events.first().map(|e| &e.event.body) {
                Some(Body::StoreFork(fork)) => {
                    let q = crate::service::PathQuery { path: None, at: Some(fork.position.to_string()) };
                    let copied = svc.memory_files(&fork.source, &q)?;
                    let rules = Rules::from_number(copied.rules).unwrap_or(Rules::V2);
                    MemoryState::from_tree(rules, copied.files, copied.dirs)
                }
                _ => MemoryState::new(),
            };
            let events = events.into_iter().map(|e| (e.event.header.time, e.position, e.event.body)).collect();
            let folding = Folding { events, next: 0, at: 0, start: start.clone(), state: start };
            self.stores.insert(store.to_owned(), folding);
        }
        let f = self.stores.get_mut(store).expect("inserted above");
        if at < f.at {
            // An earlier time than the last asked: fold again from the start.
            (f.next, f.state) = (0, f.start.clone());
        }
        f.at = at;
        while let Some((t, _, body)) = f.events.get(f.next) {
            // Commands are in time order (the mirror writes versions oldest first); its
            // notes are stamped otherwise and change nothing.
            let changes = matches!(body, Body::Memory(_)) || Rules::switched_by(body).is_some();
            if changes && *t > at {
                break;
            }
            if let Some(rules) = Rules::switched_by(body) {
                f.state.set_rules(rules);
            }
            if let Body::Memory(m) = body {
                f.state.replay(&m.command);
            }
            f.next += 1;
        }
        let position = f.next.checked_sub(1).map(|i| f.events[i].1);
        Ok(Some((f.state.state_hash(), position)))
    }
}
