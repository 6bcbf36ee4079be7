//! `dreamlog sync anthropic`, the memory part: hosted memory stores and their memory
//! versions mirrored into the log, read-only.
//!
//! A hosted store `memstore_…` becomes the dreamlog memory store of the same name, as the
//! self-hosted Managed-Agents API keeps its stores (`core::managed`): its fields as
//! `anthropic.memory_store` notes, rules 2. Each retained memory version, oldest first,
//! becomes the command it stands for — `created` a write of its content, `modified` a
//! rename when its path changed and a write when its content did, `deleted` a delete —
//! stamped with the version's time, written by the actor of its `created_by` (a session
//! as `agent:sesn_…`, also named as the command's session; a user as `human:user_…`; an
//! API key or a service account as `system:…`). Content is checked against
//! `content_sha256` first: a version whose content does not hash to it is reported by id
//! and not written.
//!
//! Exactly once: every batch of commands carries, in the same atomic append, an
//! `anthropic.sync` note on the store's stream naming the versions it mirrors, and is
//! appended only if the stream is still where the sync read it. A sync killed anywhere
//! resumes from those notes; a version already named is never written again, so a second
//! sync, or one from another machine over `--remote`, adds nothing.
//!
//! Redacted versions: one redacted before the first sync has no path or content; it is
//! named in the note (so it is not asked for again) and writes nothing; the memory goes on
//! from its next version with content (a write of the whole file).
//!
//! Expired versions: the first mirror of a store also lists its memories as they are now;
//! a memory whose current version is not among the retained ones (every version past the
//! retention period) is written as it is, stamped with its `updated_at`, by
//! `system:anthropic-baseline`, before the versions.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::hosted::{Hosted, MEMORY_BETA};
use crate::core::managed::{check_api_path, memory_path, sha256_hex, StoreFields, STORE_NOTE, STORE_PREFIX};
use crate::core::memory::{Rules, RULES_NOTE};
use crate::core::push::{PUSH_NOTE, PUSH_RESULT_NOTE};
use crate::core::{
    Actor, Body, CanonicalJson, Draft, EventId, ExpectedVersion, Memory, MemoryCommand, Note, StoreFork,
};
use crate::error::{Error, ManagedError, Result};
use crate::service::{EventsQuery, Service, PAGE};
use crate::store::{AppendBatch, StoredEvent};

/// The note type that records what a sync mirrored.
pub const SYNC_NOTE: &str = "anthropic.sync";
/// The note type that names versions redacted upstream after they were mirrored, whose
/// commands a sync redacted here.
pub const REDACTIONS_NOTE: &str = "anthropic.sync.redactions";
/// Versions per atomic batch, unless told.
pub const BATCH_VERSIONS: usize = 200;
/// How far before the newest version mirrored an incremental sync lists again.
const CURSOR_MARGIN_MS: u64 = 10 * 60 * 1000;

pub use crate::core::managed::sync_actor;

/// Told a store's progress: (store, versions done, versions to mirror).
pub type Progress<'a> = &'a dyn Fn(&str, usize, usize);

/// What to mirror.
pub struct SyncOptions<'a> {
    /// These stores only (all the key can list when empty).
    pub stores: Vec<String>,
    /// Told each store's progress.
    pub progress: Option<Progress<'a>>,
    /// Versions per atomic batch (each with its note); 0 is taken as 1.
    pub batch: usize,
    /// Whether to mirror sessions too (after the stores).
    pub sessions: bool,
    /// Sessions created at or after this time (ms) only.
    pub since: Option<u64>,
    /// Told the sessions' progress: (done, listed).
    pub session_progress: Option<&'a dyn Fn(usize, usize)>,
    /// List every version again to find those redacted upstream after they were
    /// mirrored, and redact their commands here.
    pub redactions: bool,
}

/// What the memory part needs to know of hosted dreams to mirror their new stores as forks.
struct Forks {
    /// Store a `create_new` dream wrote → (its input store, the dream's `created_at`, its
    /// `ended_at` once it ended).
    outputs: BTreeMap<String, (String, u64, Option<u64>)>,
    /// The earliest `created_at` of a `create_new` dream still pending or running that
    /// has not named its new store yet: a store created since may be it.
    unnamed_since: Option<u64>,
    /// Dreams created before this (the sync's start less the settling margin) fork from
    /// a settled input.
    settled_before: u64,
    /// Stores this sync mirrored so far without deferring them.
    clean: BTreeSet<String>,
    /// Stores this sync mirrors (all listed, or those asked for).
    this_run: BTreeSet<String>,
}

/// What a sync did (`dreamlog sync anthropic --json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SyncReport {
    /// Per store.
    pub stores: Vec<StoreSync>,
    /// The sessions (when mirrored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<super::sessions::SessionsSync>,
    /// The hosted dreams (when mirrored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dreams: Option<super::dreams::DreamsSync>,
    /// Objects that could not be mapped (the sync went on without them).
    pub unmapped: Vec<UnmappedObject>,
    /// Requests made (retries included).
    pub requests: u64,
    /// Answers retried (429, 5xx, no answer).
    pub retried: u64,
}

/// One store's part of a sync.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StoreSync {
    /// The store (`memstore_…`).
    pub store: String,
    /// Whether this sync created its dreamlog store.
    pub created: bool,
    /// When this sync created it as a fork: the store it forked (a hosted dream's input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_of: Option<String>,
    /// Not mirrored by this sync, and why (a later sync will): a hosted dream's new store
    /// that cannot be forked right yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    /// Whether its fields (name, description, metadata, archived) changed.
    pub fields_changed: bool,
    /// Versions the API listed.
    pub listed: usize,
    /// Versions this sync mirrored.
    pub mirrored: usize,
    /// Versions an earlier sync mirrored already.
    pub already: usize,
    /// Versions redacted upstream before they were mirrored (nothing to write).
    pub redacted: usize,
    /// Of the versions mirrored, those a push from dreamlog made (linked to its intent).
    #[serde(default)]
    pub linked: usize,
    /// The store's cursor after this sync: the newest version time mirrored (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<u64>,
    /// Memories written as they were at the first mirror, their every version past the
    /// retention period.
    pub baseline: usize,
    /// Events appended (commands and notes).
    pub events: usize,
    /// With `--redactions`: versions redacted upstream after they were mirrored whose
    /// commands this sync redacted here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_upstream: Option<usize>,
}

/// An object left out, with why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnmappedObject {
    /// Its id (`memver_…`).
    pub object: String,
    /// Why.
    pub reason: String,
}

/// One version as a sync note names it: enough to rebuild, on resume, exactly what the
/// sync knew after it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Mirrored {
    id: String,
    memory: String,
    /// `created`, `modified`, `deleted` (or `baseline`).
    #[serde(default)]
    op: String,
    /// Its `created_at` (ms).
    #[serde(default)]
    at: u64,
    /// Its dreamlog path after it (a delete: the path it deleted; `None`: redacted with
    /// nothing known, or a delete of nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    /// Its content's SHA-256 after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    /// Commands written for it.
    events: usize,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    redacted: bool,
    /// Older than a version of its memory mirrored before it (it mapped late): named,
    /// nothing written (the newer state stands).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    late: bool,
    /// Made by a call of a push (`anthropic.push` note): the intent's id, and the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intent: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call: Option<usize>,
}

/// A push's intent as the mirror matches versions to it.
struct Intent {
    id: EventId,
    calls: Vec<crate::core::push::PushCall>,
    /// The calls a version was matched to already, and those that wrote nothing.
    linked: BTreeSet<usize>,
    /// The version each written call made, as the push recorded it (version id → call).
    exact: BTreeMap<String, usize>,
}

/// A hosted memory as the mirror holds it: where it is, and its content's hash.
#[derive(Clone, Debug)]
struct Known {
    path: String,
    sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SyncNote {
    versions: Vec<Mirrored>,
    /// The newest `created_at` mirrored so far (ms).
    through: u64,
    /// This note ends the store's baseline (every memory whose versions all expired is
    /// written): later syncs do not list its memories again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    baseline: bool,
    /// A fork's copied files that the hosted store no longer holds (no version named their
    /// memory): deleted with this note.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dropped: Vec<String>,
}

/// What the log says of a mirrored store.
#[derive(Default)]
struct Local {
    /// The stream's last version (`None`: no stream).
    version: Option<u64>,
    fields: Option<StoreFields>,
    archived: bool,
    seen: BTreeSet<String>,
    /// Each hosted memory the mirror holds now.
    memories: BTreeMap<String, Known>,
    /// The newest version time of each memory mirrored (deleted ones included).
    newest: BTreeMap<String, u64>,
    through: Option<u64>,
    /// Whether the store's baseline was written whole.
    baseline_done: bool,
    /// Who wrote the stream's first event.
    first_actor: Option<Actor>,
    /// Pushes to the hosted store recorded on the stream.
    intents: Vec<Intent>,
}

/// Puts a memory where the mirror holds it; another memory the mirror still places there
/// (its move was in a version redacted or not mapped) is dropped: its next version writes
/// it whole where it is then.
fn place(memories: &mut BTreeMap<String, Known>, memory: &str, known: Known) {
    // Only a memory that moves can meet another (paths are kept unique).
    if memories.get(memory).map(|k| &k.path) != Some(&known.path) {
        memories.retain(|m, k| m == memory || k.path != known.path);
    }
    memories.insert(memory.to_owned(), known);
}

/// How the mirror names a file a forked store copied, until a version names its memory.
const COPIED: &str = "copied:";

/// A memory the mirror does not hold yet takes over the copied file at its path (a
/// hosted dream's new store starts as a copy of its input: the copies' memory ids are
/// first seen in their versions).
fn adopt(memories: &mut BTreeMap<String, Known>, memory: &str, path: &str) {
    if memories.contains_key(memory) {
        return;
    }
    if let Some(k) = memories.remove(&format!("{COPIED}{path}")) {
        memories.insert(memory.to_owned(), k);
    }
}

/// Mirrors the hosted memory stores into `svc`'s log.
pub fn sync_memory(svc: &dyn Service, hosted: &Hosted, opts: &SyncOptions) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let began = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(u64::MAX);
    let ids = if opts.stores.is_empty() {
        let mut ids = Vec::new();
        let q = [("include_archived", "true".to_owned()), ("limit", "100".to_owned())];
        hosted.list("/v1/memory_stores", &q, MEMORY_BETA, |s| {
            ids.push(text(&s, "id", "memory store")?);
            Ok(())
        })?;
        ids.reverse(); // oldest first
        ids
    } else {
        for id in &opts.stores {
            check_store_id(id)?;
        }
        opts.stores.clone()
    };
    // Hosted dreams first: a `create_new` dream's new store is mirrored as a fork of its
    // input (the dreams themselves are recorded last, once their stores are in).
    // (A key the dreams' research preview is not open to gets a 4xx: said in the report,
    // and the stores are mirrored without forks.)
    let (dreams, dreams_unavailable) = match super::dreams::list_dreams(hosted) {
        Ok(d) => (d, None),
        Err(Error::Managed(ManagedError::Hosted { status, message, route }))
            if (400..500).contains(&status) && status != 429 =>
        {
            (Vec::new(), Some(format!("{route}: {message}")))
        }
        Err(e) => return Err(e),
    };
    let mut forks = Forks {
        outputs: super::dreams::forks(&dreams),
        unnamed_since: super::dreams::unnamed_outputs_since(&dreams),
        settled_before: began.saturating_sub(super::sessions::SETTLE_MS),
        clean: BTreeSet::new(),
        this_run: ids.iter().cloned().collect(),
    };
    // A dream's input before its new store, whatever order they were listed or asked in.
    let mut ids = ids;
    let mut i = 0;
    let mut moves = 0;
    while i < ids.len() && moves < ids.len() * ids.len() {
        let later_input =
            forks.outputs.get(&ids[i]).and_then(|(input, ..)| ids[i + 1..].iter().position(|x| x == input));
        match later_input {
            Some(j) => {
                let input = ids.remove(i + 1 + j);
                ids.insert(i, input);
                moves += 1;
            }
            None => i += 1,
        }
    }
    for id in ids {
        match sync_store(svc, hosted, &id, opts, &forks, &mut report.unmapped) {
            Ok(store) => {
                if store.deferred.is_none() {
                    forks.clean.insert(store.store.clone());
                }
                report.stores.push(store)
            }
            // A store that cannot be mirrored is reported; the others go on.
            Err(Error::Managed(ManagedError::Unmapped { object, reason })) => {
                report.unmapped.push(UnmappedObject { object, reason })
            }
            Err(Error::Managed(ManagedError::Hosted { status: 404, message, .. })) => {
                report.unmapped.push(UnmappedObject { object: id.clone(), reason: format!("not found: {message}") })
            }
            Err(e) => return Err(e),
        }
    }
    if opts.sessions {
        let mirrored: BTreeSet<String> =
            report.stores.iter().filter(|s| s.deferred.is_none()).map(|s| s.store.clone()).collect();
        let deferred: BTreeSet<String> =
            report.stores.iter().filter(|s| s.deferred.is_some()).map(|s| s.store.clone()).collect();
        let sopts = super::sessions::SessionsOptions {
            stores: &opts.stores,
            since: opts.since,
            began,
            mirrored: &mirrored,
            deferred_stores: &deferred,
            progress: opts.session_progress,
        };
        let (sessions, later) = super::sessions::sync_sessions(svc, hosted, &sopts, &mut report.unmapped)?;
        report.sessions = Some(sessions);
        let settle = began.saturating_sub(super::sessions::SETTLE_MS);
        let mut dreams = super::dreams::record_dreams(svc, &dreams, &mirrored, &later, settle, &mut report.unmapped)?;
        dreams.unavailable = dreams_unavailable;
        report.dreams = Some(dreams);
    } else if let Some(why) = dreams_unavailable {
        report.dreams = Some(super::dreams::DreamsSync { unavailable: Some(why), ..Default::default() });
    }
    report.requests = hosted.requests.load(std::sync::atomic::Ordering::Relaxed);
    report.retried = hosted.retried.load(std::sync::atomic::Ordering::Relaxed);
    Ok(report)
}

fn sync_store(
    svc: &dyn Service,
    hosted: &Hosted,
    id: &str,
    opts: &SyncOptions,
    forks: &Forks,
    unmapped: &mut Vec<UnmappedObject>,
) -> Result<StoreSync> {
    check_store_id(id)?;
    let mut out = StoreSync { store: id.to_owned(), ..StoreSync::default() };
    let stream = crate::memory::stream_name(id);
    let hosted_store = hosted.get(&format!("/v1/memory_stores/{id}"), &[], MEMORY_BETA)?;
    let mut local = read_local(svc, &stream)?;
    if let Some(first) = local.first_actor.as_ref().filter(|a| **a != sync_actor()) {
        return Err(Error::Managed(ManagedError::Unmapped {
            object: id.to_owned(),
            reason: format!(
                "the dreamlog store {id} exists and was not made by `sync anthropic` (its first event is by {first}): \
                 a mirror writes only into stores it made"
            ),
        }));
    }

    // The store and its fields.
    let fields = StoreFields {
        op: String::new(),
        name: text(&hosted_store, "name", id)?,
        description: hosted_store["description"].as_str().unwrap_or_default().to_owned(),
        metadata: serde_json::from_value(hosted_store["metadata"].clone()).unwrap_or_default(),
    };
    let archived = !hosted_store["archived_at"].is_null();
    let mut batch = AppendBatch::default();
    if local.version.is_none() {
        let created = time(&hosted_store, "created_at", id)?;
        // A hosted dream's new store starts as a copy of its input store: a fork of the
        // mirrored input as it was when the dream was created. The first mirror of a store
        // decides for good, so it waits while that cannot be done right: a dream that may
        // still name it, a dream too recent for its input to have settled, an input this
        // sync did not mirror.
        let wait = |why: String| Ok(StoreSync { store: id.to_owned(), deferred: Some(why), ..StoreSync::default() });
        // (A store named by no dream yet, created in the last minutes while a dream has
        // not named its store: the API names it shortly after the dream starts.)
        let recent = created >= forks.settled_before;
        match forks.outputs.get(id) {
            None if recent && forks.unnamed_since.is_some_and(|t| created >= t) => {
                return wait(
                    "a hosted dream still running may have made it: mirrored once the dream names its store".into(),
                );
            }
            None => {}
            Some((_, at, _)) if *at >= forks.settled_before => {
                return wait(
                    "made by a hosted dream created in the last ten minutes: mirrored once its input has settled"
                        .into(),
                );
            }
            Some((source, ..)) if forks.this_run.contains(source) && !forks.clean.contains(source) => {
                return wait(format!(
                    "a hosted dream's new store, forked from {source}, which this sync could not mirror"
                ));
            }
            // Forked from the input as this sync mirrored it, or (an input this sync does
            // not mirror: deleted upstream, or not asked for) as the log holds it; a plain
            // store when the log has none of it.
            Some((source, at, _)) => {
                let point = super::sessions::StoreStates::default().state_at(svc, source, *at)?;
                if let Some((_, Some(position))) = point {
                    let fork = StoreFork { store: id.to_owned(), source: source.clone(), position };
                    batch.events.push(draft(&stream, sync_actor(), Some(*at), Body::StoreFork(fork)));
                    seed_copies(svc, &mut local, source, position)?;
                    out.fork_of = Some(source.clone());
                }
            }
        }
        batch.events.push(draft(
            &stream,
            sync_actor(),
            Some(created),
            Body::Note(Note { note_type: RULES_NOTE.to_owned(), json: CanonicalJson::from_value(&Rules::V2.note()) }),
        ));
        batch.events.push(store_note(&stream, StoreFields { op: "created".into(), ..fields.clone() }, created));
        out.created = true;
    } else if local.fields.as_ref().map(|f| (&f.name, &f.description, &f.metadata))
        != Some((&fields.name, &fields.description, &fields.metadata))
    {
        let updated = time(&hosted_store, "updated_at", id)?;
        batch.events.push(store_note(&stream, StoreFields { op: "updated".into(), ..fields.clone() }, updated));
        out.fields_changed = true;
    }
    if archived && !local.archived {
        let at = time(&hosted_store, "archived_at", id)?;
        batch.events.push(store_note(&stream, StoreFields { op: "archived".into(), ..fields.clone() }, at));
        out.fields_changed = true;
    }
    if !batch.events.is_empty() {
        local.version = Some(append(svc, batch, &stream, local.version, &mut out)?);
    }

    // Until the baseline is written whole, the memories as they are now (listed before the
    // versions: a memory changed in between then has its new version listed too).
    let memories_now = if local.baseline_done {
        Vec::new()
    } else {
        let mut now = Vec::new();
        let q = [("view", "full".to_owned()), ("limit", "20".to_owned())];
        hosted.list(&format!("/v1/memory_stores/{id}/memories"), &q, MEMORY_BETA, |m| {
            if m["type"] == "memory" {
                now.push(m);
            }
            Ok(())
        })?;
        now
    };

    // The versions, oldest first; those mirrored already left out.
    let mut q = vec![("view", "full".to_owned()), ("limit", "20".to_owned())];
    if let Some(t) = local.through {
        // A margin before the newest version mirrored: a version committed late with an
        // earlier time is still listed (those mirrored already are left out by id).
        q.push(("created_at[gte]", crate::core::time::time_text(t.saturating_sub(CURSOR_MARGIN_MS))));
    }
    let mut listed = Vec::new();
    let mut listed_ids = BTreeSet::new();
    hosted.list(&format!("/v1/memory_stores/{id}/memory_versions"), &q, MEMORY_BETA, |v| {
        // A cursor over a list that grows may show an item twice.
        if listed_ids.insert(v["id"].as_str().unwrap_or_default().to_owned()) {
            listed.push(v);
        }
        Ok(())
    })?;
    out.listed = listed.len();
    // The API lists newest first: reversed, then ordered by time (stable within a time).
    listed.reverse();
    if !local.baseline_done {
        // Memories whose current version is neither listed nor mirrored have every version
        // past the retention period: written as they are now, in one batch of their own
        // before the versions (a kill cannot leave part of it behind).
        let expired: Vec<&Value> = memories_now
            .iter()
            .filter(|m| {
                let current = m["memory_version_id"].as_str().unwrap_or_default();
                !listed_ids.contains(current) && !local.seen.contains(current)
            })
            .collect();
        let mut batch = AppendBatch::default();
        let mut note =
            SyncNote { versions: Vec::new(), through: local.through.unwrap_or(0), baseline: true, dropped: Vec::new() };
        for m in expired {
            let mid = m["id"].as_str().unwrap_or_default();
            let bid = format!("baseline:{mid}");
            if local.seen.contains(&bid) {
                continue;
            }
            let as_version = json!({"id": bid, "baseline": true, "memory_id": m["id"], "path": m["path"],
                                    "content": m["content"], "content_sha256": m["content_sha256"]});
            let at = time(m, "updated_at", mid);
            match at
                .map_err(|e| e.to_string())
                .and_then(|t| map_version(id, &stream, t, &bid, &as_version, &mut local).map(|r| (t, r)))
            {
                Ok((_, (record, drafts))) => {
                    out.baseline += 1;
                    batch.events.extend(drafts);
                    note.versions.push(record);
                }
                Err(reason) => {
                    // Listed again by the next sync, and reported until it maps.
                    unmapped.push(UnmappedObject { object: mid.to_owned(), reason });
                    note.baseline = false;
                }
            }
        }
        if note.baseline || !note.versions.is_empty() {
            commit(svc, batch, note, &stream, &mut local, &mut out)?;
        }
    }
    let mut versions = Vec::with_capacity(listed.len());
    // The oldest version that could not be mapped: the cursor stays at it, so every later
    // sync lists it again (and reports it until it maps).
    let mut pending: Option<u64> = None;
    for v in listed {
        let Some(vid) = v["id"].as_str().map(str::to_owned) else {
            unmapped.push(UnmappedObject { object: format!("a version of {id}"), reason: "no id".into() });
            continue;
        };
        if local.seen.contains(&vid) {
            out.already += 1;
            continue;
        }
        match time(&v, "created_at", &vid) {
            Ok(t) => versions.push((t, vid, v)),
            Err(e) => unmapped.push(UnmappedObject { object: vid, reason: e.to_string() }),
        }
    }
    versions.sort_by_key(|(t, _, _)| *t);
    let total = versions.len();
    let mut done = 0;
    for chunk in versions.chunks(opts.batch.max(1)) {
        let mut batch = AppendBatch::default();
        let mut note = SyncNote {
            versions: Vec::new(),
            through: local.through.unwrap_or(0),
            baseline: false,
            dropped: Vec::new(),
        };
        for (t, vid, v) in chunk {
            match map_version(id, &stream, *t, vid, v, &mut local) {
                Ok((record, drafts)) => {
                    if record.redacted {
                        out.redacted += 1;
                    } else {
                        out.mirrored += 1;
                    }
                    out.linked += usize::from(record.intent.is_some());
                    batch.events.extend(drafts);
                    note.versions.push(record);
                }
                Err(reason) => {
                    unmapped.push(UnmappedObject { object: vid.clone(), reason });
                    pending = pending.or(Some(*t));
                }
            }
            note.through = pending.unwrap_or(note.through.max(*t));
        }
        done += chunk.len();
        if note.versions.is_empty() {
            continue;
        }
        commit(svc, batch, note, &stream, &mut local, &mut out)?;
        if let Some(p) = opts.progress {
            p(id, done, total);
        }
    }
    // A fork's copies that no version took over and the hosted store does not hold now:
    // the dream left them out, so they go — once the dream has ended and settled and every
    // version of the store mapped (the memories listed again until then).
    let settled = forks.outputs.get(id).and_then(|(_, _, ended)| *ended).is_some_and(|e| e < forks.settled_before);
    let copies = local.memories.keys().any(|m| m.starts_with(COPIED));
    if copies && settled && pending.is_none() {
        let mut now: BTreeSet<String> = BTreeSet::new();
        let q = [("view", "basic".to_owned()), ("limit", "100".to_owned())];
        hosted.list(&format!("/v1/memory_stores/{id}/memories"), &q, MEMORY_BETA, |m| {
            if let Some(p) = m["path"].as_str().filter(|_| m["type"] == "memory") {
                now.insert(memory_path(p));
            }
            Ok(())
        })?;
        let gone: Vec<String> = local
            .memories
            .iter()
            .filter(|(m, k)| m.starts_with(COPIED) && !now.contains(&k.path))
            .map(|(_, k)| k.path.clone())
            .collect();
        if !gone.is_empty() {
            let mut batch = AppendBatch::default();
            let stamp = local.through.unwrap_or(0).max(time(&hosted_store, "created_at", id)?);
            for path in &gone {
                local.memories.remove(&format!("{COPIED}{path}"));
                let body = Body::Memory(Memory {
                    store: id.to_owned(),
                    command: MemoryCommand::Delete { path: path.clone() },
                    precondition: None,
                    session: None,
                });
                batch.events.push(draft(&stream, sync_actor(), Some(stamp), body));
            }
            let through = local.through.unwrap_or(0);
            let note = SyncNote { versions: Vec::new(), through, baseline: false, dropped: gone };
            commit(svc, batch, note, &stream, &mut local, &mut out)?;
        }
    }
    if opts.redactions {
        out.redacted_upstream = Some(redact_upstream_redactions(svc, hosted, id, &stream)?);
    }
    out.through = local.through;
    Ok(out)
}

/// Redacts here what the mirror wrote for versions redacted upstream since: every version
/// of the store listed again (`view=basic`, 100 a page: the API cannot be asked for
/// redactions since a time), each one redacted upstream whose commands carry its text
/// redacted with `Service::redact` (the fold goes on with the stand-in it records), then an
/// `anthropic.sync.redactions` note naming them. A kill in between redacts again (a
/// redaction of a redacted event only runs its scrub again). Returns the versions redacted.
fn redact_upstream_redactions(svc: &dyn Service, hosted: &Hosted, id: &str, stream: &str) -> Result<usize> {
    let mut redacted: BTreeMap<String, Value> = BTreeMap::new();
    let q = [("view", "basic".to_owned()), ("limit", "100".to_owned())];
    hosted.list(&format!("/v1/memory_stores/{id}/memory_versions"), &q, MEMORY_BETA, |v| {
        if !v["redacted_at"].is_null() {
            redacted.insert(v["id"].as_str().unwrap_or_default().to_owned(), v);
        }
        Ok(())
    })?;
    if redacted.is_empty() {
        return Ok(0);
    }
    // Each mirrored version's commands: the events before its note in the note's batch.
    let events = svc.stream_events(stream)?;
    // Version → (its memory, its content's hash, the events that carry its text).
    let mut written: BTreeMap<String, (String, Option<String>, Vec<crate::core::EventId>)> = BTreeMap::new();
    // Memory → the hashes its later versions wrote, in order (a later version with the
    // same content keeps the text upstream: it is not redacted here).
    let mut hashes: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    for (i, e) in events.iter().enumerate() {
        let Body::Note(n) = &e.event.body else { continue };
        match n.note_type.as_str() {
            SYNC_NOTE => {
                let Ok(note) = serde_json::from_value::<SyncNote>(n.json.to_value()) else { continue };
                let total: usize = note.versions.iter().map(|v| v.events).sum();
                let mut at = i.saturating_sub(total);
                for v in note.versions {
                    // Only the commands that carry text: a delete or a rename has none
                    // (and cannot be redacted).
                    let carrying: Vec<crate::core::EventId> = events
                        .get(at..at + v.events)
                        .unwrap_or_default()
                        .iter()
                        .filter(|e| {
                            matches!(&e.event.body, Body::Memory(m) if matches!(m.command,
                                MemoryCommand::Write { .. } | MemoryCommand::Create { .. }
                                | MemoryCommand::StrReplace { .. } | MemoryCommand::Insert { .. }))
                        })
                        .map(|e| e.id())
                        .collect();
                    at += v.events;
                    // (A record of a version redacted before it was mirrored carries the
                    // hash before it: it holds no text of its own.)
                    if let (Some(sha), false) = (&v.sha256, v.redacted) {
                        hashes.entry(v.memory.clone()).or_default().push((v.id.clone(), sha.clone()));
                    }
                    if !v.redacted {
                        written.insert(v.id, (v.memory, v.sha256, carrying));
                    }
                }
            }
            REDACTIONS_NOTE => {
                if let Some(vs) = n.json.to_value()["versions"].as_array() {
                    done.extend(vs.iter().filter_map(Value::as_str).map(str::to_owned));
                }
            }
            _ => {}
        }
    }
    let mut named = Vec::new();
    for (vid, v) in &redacted {
        let Some((memory, sha, ids)) = written.get(vid).filter(|(_, _, ids)| !ids.is_empty()) else { continue };
        if done.contains(vid) {
            continue;
        }
        // A later version of the memory with the same content still holds the text
        // upstream (a rename, or the same text again): the mirror keeps it too.
        // (Only a later version not redacted upstream itself keeps the text there.)
        let later = hashes.get(memory).map(|hs| {
            hs.iter()
                .skip_while(|(id, _)| id != vid)
                .skip(1)
                .any(|(id, h)| Some(h) == sha.as_ref() && !redacted.contains_key(id))
        });
        if later == Some(true) {
            continue;
        }
        let by = v["redacted_by"].to_string();
        let reason = format!(
            "memory version {vid} of {id} redacted upstream at {} by {by}",
            v["redacted_at"].as_str().unwrap_or("?")
        );
        for event in ids {
            match svc.redact(&crate::service::RedactRequest::event(event.to_hex(), reason.clone()), &sync_actor()) {
                Ok(_) => {}
                // Not one that carries text after all: nothing to take out.
                Err(Error::NotRedactable { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        named.push(vid.clone());
    }
    if named.is_empty() {
        return Ok(0);
    }
    let note =
        Note { note_type: REDACTIONS_NOTE.to_owned(), json: CanonicalJson::from_value(&json!({"versions": named})) };
    let head = svc.stream_events(stream)?.last().map(|e| e.version);
    let expected = head.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
    svc.append_batch(AppendBatch::one(draft(stream, sync_actor(), None, Body::Note(note))).expect(stream, expected))?;
    Ok(named.len())
}

/// Appends a batch of commands with the note naming its versions, if the stream is still
/// where the sync read it, and takes the note into what `local` knows.
fn commit(
    svc: &dyn Service,
    mut batch: AppendBatch,
    note: SyncNote,
    stream: &str,
    local: &mut Local,
    out: &mut StoreSync,
) -> Result<()> {
    let json = serde_json::to_value(&note).map_err(|e| Error::InvalidInput(format!("sync note: {e}")))?;
    // Stamped with the newest version it names, not with now: a point given by time
    // (`--at 2026-11-04`) then finds the commands and their note together.
    let stamp = note.versions.iter().map(|r| r.at).max().or(local.through);
    batch.events.push(draft(
        stream,
        sync_actor(),
        stamp,
        Body::Note(Note { note_type: SYNC_NOTE.to_owned(), json: CanonicalJson::from_value(&json) }),
    ));
    local.version = Some(append(svc, batch, stream, local.version, out)?);
    local.through = Some(note.through);
    local.baseline_done |= note.baseline;
    Ok(())
}

/// One version as commands, with its record for the note; an error names why it cannot be
/// mapped (nothing of it is written). Updates what `local` knows of its memory.
fn map_version(
    store: &str,
    stream: &str,
    time: u64,
    vid: &str,
    v: &Value,
    local: &mut Local,
) -> std::result::Result<(Mirrored, Vec<Draft>), String> {
    let memory = v["memory_id"].as_str().ok_or("no memory_id")?.to_owned();
    let baseline = v["baseline"] == true;
    let operation = if baseline { "baseline" } else { v["operation"].as_str().ok_or("no operation")? };
    if !matches!(operation, "created" | "modified" | "deleted" | "baseline") {
        return Err(format!("operation {operation:?} is not created, modified or deleted"));
    }
    let mut record = Mirrored {
        id: vid.to_owned(),
        memory: memory.clone(),
        op: operation.to_owned(),
        at: time,
        path: None,
        sha256: None,
        events: 0,
        redacted: false,
        late: false,
        intent: None,
        call: None,
    };
    // What it would write, checked before anything else: a version that does not map is
    // reported every time, late or not.
    let redacted = !v["redacted_at"].is_null();
    let checked = if redacted || operation == "deleted" {
        None
    } else {
        let api_path = v["path"].as_str().ok_or("no path (and not redacted)")?;
        check_api_path(api_path).map_err(|reason| format!("path {api_path:?}: {reason}"))?;
        let content = v["content"].as_str().ok_or("no content (the list was not asked with view=full?)")?;
        let sha = sha256_hex(content);
        if v["content_sha256"].as_str() != Some(sha.as_str()) {
            return Err(format!(
                "its content hashes to {sha}, not to its content_sha256 {}",
                v["content_sha256"].as_str().unwrap_or("(none)")
            ));
        }
        Some((memory_path(api_path), content, sha))
    };
    if local.newest.get(&memory).is_some_and(|&newest| newest > time) {
        // It mapped only after a newer version of its memory was mirrored: writing it now
        // would put an older state over the newer one.
        record.late = true;
        return Ok((record, Vec::new()));
    }
    let (actor, session) =
        if baseline { (Actor::System("anthropic-baseline".into()), None) } else { actor_of(&v["created_by"]) };
    // A version a push's call made cites the push's intent (blame then finds what the push
    // put back and where it came from).
    let causes = match (!redacted && !baseline).then(|| pushed_by(&mut local.intents, &memory, operation, v)).flatten()
    {
        Some((intent, call)) => {
            record.intent = Some(intent);
            record.call = Some(call);
            vec![intent]
        }
        None => Vec::new(),
    };
    let command = |command: MemoryCommand| {
        draft(
            stream,
            actor.clone(),
            Some(time),
            Body::Memory(Memory { store: store.to_owned(), command, precondition: None, session: session.clone() }),
        )
        .caused_by(causes.clone())
    };
    let mut drafts = Vec::new();
    if redacted {
        // Redacted before it was mirrored: no path or content is left. A delete still
        // deletes what the mirror holds; any other change is unknown, and the memory goes
        // on from its next version with content.
        record.redacted = true;
        if operation == "deleted" {
            if let Some(k) = local.memories.remove(&memory) {
                drafts.push(command(MemoryCommand::Delete { path: k.path }));
            }
        } else if let Some(k) = local.memories.get(&memory) {
            record.path = Some(k.path.clone());
            record.sha256 = Some(k.sha256.clone());
        }
        record.events = drafts.len();
        local.newest.insert(memory, time);
        return Ok((record, drafts));
    }
    if let Some((path, _, _)) = &checked {
        adopt(&mut local.memories, &memory, path);
    }
    if let Some((path, content, sha)) = checked {
        // Only a memory that moves can meet another (paths are kept unique).
        let moves = local.memories.get(&memory).map(|k| &k.path) != Some(&path);
        let other = if moves {
            local.memories.iter().find(|(m, k)| **m != memory && k.path == path).map(|(m, _)| m.clone())
        } else {
            None
        };
        if let Some(other) = other {
            // The mirror still holds another memory here (its move was in a version redacted
            // or not mapped): that copy goes; its next version writes it where it is then.
            local.memories.remove(&other);
            drafts.push(command(MemoryCommand::Delete { path: path.clone() }));
        }
        let before = local.memories.get(&memory).cloned();
        if let Some(k) = before.as_ref().filter(|k| k.path != path) {
            drafts.push(command(MemoryCommand::Rename { old_path: k.path.clone(), new_path: path.clone() }));
        }
        if before.as_ref().map(|k| &k.sha256) != Some(&sha) {
            drafts.push(command(MemoryCommand::Write { path: path.clone(), file_text: content.to_owned() }));
        }
        place(&mut local.memories, &memory, Known { path: path.clone(), sha256: sha.clone() });
        record.path = Some(path);
        record.sha256 = Some(sha);
    } else {
        // A delete: of the path the mirror holds the memory at. A memory the mirror does
        // not hold (every version of it redacted before it was mirrored, or not mapped)
        // has nothing to delete: the version is named, nothing written.
        if let Some(api_path) = v["path"].as_str().filter(|p| check_api_path(p).is_ok()) {
            adopt(&mut local.memories, &memory, &memory_path(api_path));
        }
        if let Some(k) = local.memories.remove(&memory) {
            record.path = Some(k.path.clone());
            drafts.push(command(MemoryCommand::Delete { path: k.path }));
        }
    }
    record.events = drafts.len();
    local.newest.insert(memory, time);
    Ok((record, drafts))
}

/// The push call that made version `v` of `memory` (`operation`), if one of the intents
/// the mirror has not matched yet names it: the same memory (a create: the same path),
/// the same kind of change, the content it wrote, the path it moved to; never a
/// session's version. Marks the call matched.
fn pushed_by(intents: &mut [Intent], memory: &str, operation: &str, v: &Value) -> Option<(EventId, usize)> {
    if v["created_by"]["type"] == "session_actor" {
        return None;
    }
    let op = match operation {
        "created" => "create",
        "modified" => "update",
        "deleted" => "delete",
        _ => return None,
    };
    // A version the push recorded its call made: that call.
    let vid = v["id"].as_str().unwrap_or_default();
    for intent in intents.iter_mut() {
        if let Some(&k) = intent.exact.get(vid) {
            if intent.linked.insert(k) {
                return Some((intent.id, k));
            }
            return None;
        }
    }
    // Else (the push stopped before it recorded what its calls did), a call still open
    // that this version answers.
    let sha = v["content_sha256"].as_str();
    let path = v["path"].as_str();
    for intent in intents.iter_mut().rev() {
        let found = intent.calls.iter().enumerate().find(|(k, c)| {
            !intent.linked.contains(k)
                && !intent.exact.values().any(|e| e == k)
                && c.op == op
                && match op {
                    "create" => Some(c.path.as_str()) == path && c.content_sha256.as_deref() == sha,
                    "update" => {
                        c.memory_id.as_deref() == Some(memory)
                            && (c.content_sha256.is_none() || c.content_sha256.as_deref() == sha)
                            && (c.new_path.is_none() || c.new_path.as_deref() == path)
                    }
                    _ => c.memory_id.as_deref() == Some(memory),
                }
        });
        if let Some((k, _)) = found {
            intent.linked.insert(k);
            return Some((intent.id, k));
        }
    }
    None
}

/// Who a hosted actor is in dreamlog, and the session it names.
fn actor_of(by: &Value) -> (Actor, Option<String>) {
    let s = |k: &str| by[k].as_str().map(str::to_owned);
    match by["type"].as_str() {
        Some("session_actor") => match s("session_id") {
            Some(id) => (Actor::Agent(id.clone()), Some(id)),
            None => (Actor::System("anthropic".into()), None),
        },
        Some("user_actor") => (Actor::Human(s("user_id").unwrap_or_else(|| "anthropic-user".into())), None),
        Some("api_actor") => (Actor::System(s("api_key_id").unwrap_or_else(|| "anthropic-api-key".into())), None),
        Some("service_account_actor") => {
            (Actor::System(s("service_account_id").unwrap_or_else(|| "anthropic-service-account".into())), None)
        }
        _ => (Actor::System("anthropic".into()), None),
    }
}

fn draft(stream: &str, actor: Actor, time: Option<u64>, body: Body) -> Draft {
    let mut d = Draft::new(stream.to_owned(), actor, body);
    d.time = time;
    d
}

fn store_note(stream: &str, fields: StoreFields, time: u64) -> Draft {
    draft(
        stream,
        sync_actor(),
        Some(time),
        Body::Note(Note { note_type: STORE_NOTE.to_owned(), json: CanonicalJson::from_value(&json!(fields)) }),
    )
}

/// Appends `batch` if the stream is still at `version`; the stream's new last version.
fn append(
    svc: &dyn Service,
    batch: AppendBatch,
    stream: &str,
    version: Option<u64>,
    out: &mut StoreSync,
) -> Result<u64> {
    let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
    let appended = svc.append_batch(batch.expect(stream, expected))?;
    out.events += appended.len();
    appended.last().map(|a| a.version).ok_or_else(|| Error::InvalidInput("an empty batch".into()))
}

/// The store's stream as the sync left it.
fn read_local(svc: &dyn Service, stream: &str) -> Result<Local> {
    let mut local = Local::default();
    let mut from = 0;
    loop {
        let q = EventsQuery { from, limit: Some(PAGE), stream: Some(stream.to_owned()), kind: None };
        let page = match svc.events(&q) {
            Ok(page) => page,
            // Not mirrored yet.
            Err(e) if from == 0 && e.class() == crate::error::ErrorClass::NotFound => return Ok(local),
            Err(e) => return Err(e),
        };
        for e in &page {
            local.version = Some(e.version);
            if let (0, Body::StoreFork(f)) = (e.version, &e.event.body) {
                seed_copies(svc, &mut local, &f.source, f.position)?;
            }
            read_event(&mut local, e);
        }
        match page.last() {
            Some(last) if page.len() == PAGE => from = last.version + 1,
            _ => return Ok(local),
        }
    }
}

/// The files a forked store copied from `source` at `position`, held as copies until a
/// version names their memory.
fn seed_copies(svc: &dyn Service, local: &mut Local, source: &str, position: u64) -> Result<()> {
    let q = crate::service::PathQuery { path: None, at: Some(position.to_string()) };
    for (path, text) in svc.memory_files(source, &q)?.files {
        let known = Known { path: path.clone(), sha256: sha256_hex(&text) };
        local.memories.insert(format!("{COPIED}{path}"), known);
    }
    Ok(())
}

fn read_event(local: &mut Local, e: &StoredEvent) {
    if local.first_actor.is_none() {
        local.first_actor = Some(e.event.header.actor.clone());
    }
    let Body::Note(n) = &e.event.body else { return };
    let value = n.json.to_value();
    match n.note_type.as_str() {
        PUSH_NOTE => {
            if let Ok(intent) = serde_json::from_value::<crate::core::push::PushIntent>(value) {
                local.intents.push(Intent {
                    id: e.id(),
                    calls: intent.calls,
                    linked: BTreeSet::new(),
                    exact: BTreeMap::new(),
                });
            }
        }
        PUSH_RESULT_NOTE => {
            if let Ok(result) = serde_json::from_value::<crate::core::push::PushResult>(value) {
                if let Some(intent) = local.intents.iter_mut().find(|i| i.id == result.intent) {
                    intent.linked.extend(result.closed);
                    intent.exact.extend(result.versions.into_iter().map(|(k, v)| (v, k)));
                }
            }
        }
        STORE_NOTE => {
            if let Ok(f) = serde_json::from_value::<StoreFields>(value) {
                local.archived |= f.op == "archived";
                local.fields = Some(f);
            }
        }
        SYNC_NOTE => {
            if let Ok(note) = serde_json::from_value::<SyncNote>(value) {
                // What map_version knew after each version, rebuilt in the same order.
                for v in note.versions {
                    if !v.late {
                        match (v.op.as_str(), &v.path, &v.sha256) {
                            ("deleted", path, _) => {
                                if let Some(p) = path {
                                    adopt(&mut local.memories, &v.memory, p);
                                }
                                local.memories.remove(&v.memory);
                            }
                            (_, Some(p), Some(s)) => {
                                place(&mut local.memories, &v.memory, Known { path: p.clone(), sha256: s.clone() });
                            }
                            _ => {}
                        }
                        let newest = local.newest.entry(v.memory.clone()).or_insert(0);
                        *newest = (*newest).max(v.at);
                    }
                    if let (Some(id), Some(k)) = (v.intent, v.call) {
                        if let Some(intent) = local.intents.iter_mut().find(|i| i.id == id) {
                            intent.linked.insert(k);
                        }
                    }
                    local.seen.insert(v.id);
                }
                for path in &note.dropped {
                    local.memories.remove(&format!("{COPIED}{path}"));
                }
                local.through = Some(local.through.unwrap_or(0).max(note.through));
                local.baseline_done |= note.baseline;
            }
        }
        _ => {}
    }
}

fn check_store_id(id: &str) -> Result<()> {
    if !id.starts_with(STORE_PREFIX) || id.contains('/') || id.len() > 255 {
        return Err(Error::InvalidInput(format!("{id:?} is not a memory store id (memstore_…)")));
    }
    Ok(())
}

fn text(v: &Value, field: &str, what: &str) -> Result<String> {
    v[field].as_str().map(str::to_owned).ok_or_else(|| {
        Error::Managed(ManagedError::Unmapped { object: what.to_owned(), reason: format!("no {field}") })
    })
}

fn time(v: &Value, field: &str, what: &str) -> Result<u64> {
    super::hosted::api_time(&v[field]).ok_or_else(|| {
        Error::Managed(ManagedError::Unmapped {
            object: what.to_owned(),
            reason: format!("{field}: {} is not an RFC 3339 time", v[field]),
        })
    })
}
