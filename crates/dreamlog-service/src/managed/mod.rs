//! The Managed-Agents memory API over any [`Service`]: memory stores, memories and
//! memory versions as dreamlog events (the model is `core/managed.rs`; the HTTP surface
//! `server/anthropic.rs`).
//!
//! Every write is a dreamlog event on the store's stream `memory/memstore_…`: store
//! fields are notes, memory writes are `memory` commands (`write`, `rename`, `delete`)
//! appended with the store's expected state, so `memory blame`, `diff`, `revert`,
//! `drift` and replay see every call. Nothing here adds a rule the service does not
//! check; it reads the store's stream, folds it and writes commands.

use std::collections::BTreeMap;

use serde_json::json;

use crate::core::managed::{
    check_api_path, memory_path, sha256_hex, Lineage, Live, StoreFields, StoreRecord, StreamEvent, MAX_CONTENT_BYTES,
    STORE_NOTE, STORE_PREFIX,
};
use crate::core::memory::{MemoryState, Rules, RULES_NOTE};
use crate::core::{Actor, Body, CanonicalJson, Draft, ExpectedVersion, Kind, MemoryCommand, Note};
use crate::error::{Error, ManagedError, MemoryError, Result};
use crate::service::{BatchRequest, EventsQuery, PathQuery, Service, PAGE};
use crate::store::AppendBatch;

pub mod dreams;
pub mod hosted;
mod jobs;
pub mod mirror;
pub mod push;
pub mod sessions;
pub use jobs::DreamJobs;

/// Most key-value pairs in a store's metadata.
pub const MAX_METADATA: usize = 16;

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Managed(ManagedError::Invalid { field: field.to_owned(), reason: reason.into() })
}

/// A fresh store id: `memstore_` and 26 random base-32 characters.
pub fn new_store_id() -> Result<String> {
    Ok(format!("{STORE_PREFIX}{}", random_base32()?))
}

/// 26 random lower-case base-32 characters (130 bits).
pub fn random_base32() -> Result<String> {
    let mut bytes = [0u8; 17];
    getrandom::fill(&mut bytes).map_err(|e| Error::Log(crate::error::LogError::Storage(format!("random: {e}"))))?;
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut out = String::with_capacity(26);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 && out.len() < 26 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    Ok(out)
}

fn check_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > 255 {
        return Err(invalid("name", format!("{n} characters; a name has 1 to 255")));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(invalid("name", format!("contains the control character U+{:04X}", c as u32)));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<()> {
    let n = d.chars().count();
    if n > 1024 {
        return Err(invalid("description", format!("{n} characters, over the limit of 1,024")));
    }
    Ok(())
}

fn check_metadata(m: &BTreeMap<String, String>) -> Result<()> {
    if m.len() > MAX_METADATA {
        return Err(invalid("metadata", format!("{} pairs, over the limit of {MAX_METADATA}", m.len())));
    }
    for (k, v) in m {
        let n = k.chars().count();
        if n == 0 || n > 64 {
            return Err(invalid("metadata", format!("key {k:?} has {n} characters; keys have 1 to 64")));
        }
        if v.chars().count() > 512 {
            return Err(invalid("metadata", format!("the value of {k:?} is over 512 characters")));
        }
    }
    Ok(())
}

/// Checks an API path and returns the dreamlog path it maps to.
pub fn checked_path(field: &str, path: &str) -> Result<String> {
    check_api_path(path).map_err(|r| invalid(field, format!("{path:?}: {r}")))?;
    let mapped = memory_path(path);
    crate::core::memory::check_path(&mapped).map_err(|e| {
        invalid(field, format!("{path:?} is a valid API path that dreamlog cannot hold as {mapped:?}: {}", e.message))
    })?;
    Ok(mapped)
}

fn check_content(content: &str) -> Result<()> {
    if content.len() > MAX_CONTENT_BYTES {
        return Err(invalid(
            "content",
            format!("{} bytes, over the limit of {MAX_CONTENT_BYTES} (100 kB)", content.len()),
        ));
    }
    Ok(())
}

/// A store's id checked as one: `memstore_` and a dreamlog store name.
fn check_store_id(id: &str) -> Result<()> {
    if !id.starts_with(STORE_PREFIX) || crate::core::validate::check_store_name("memory_store_id", id).is_err() {
        return Err(Error::Managed(ManagedError::NoStore(id.to_owned())));
    }
    Ok(())
}

/// The Managed-Agents memory API's operations over a service, written as `actor`.
pub struct Managed<'a> {
    svc: &'a dyn Service,
    actor: Actor,
}

/// A store's memories and versions, with the state hash the fold reached (a write
/// expects it) and the store's record.
pub struct StoreView {
    /// The store.
    pub store: StoreRecord,
    /// Its memories and versions.
    pub lineage: Lineage,
}

impl<'a> Managed<'a> {
    /// Operations over `svc`, recorded as written by `actor`.
    pub fn new(svc: &'a dyn Service, actor: Actor) -> Managed<'a> {
        Managed { svc, actor }
    }

    fn note(&self, store: &str, fields: &StoreFields) -> Draft {
        let json = CanonicalJson::from_value(&json!(fields));
        Draft::new(
            crate::memory::stream_name(store),
            self.actor.clone(),
            Body::Note(Note { note_type: STORE_NOTE.to_owned(), json }),
        )
    }

    /// Creates a store: its rules (2) and its fields, one atomic batch on a new stream.
    pub fn create_store(
        &self,
        name: &str,
        description: &str,
        metadata: BTreeMap<String, String>,
    ) -> Result<StoreRecord> {
        check_name(name)?;
        check_description(description)?;
        check_metadata(&metadata)?;
        let id = new_store_id()?;
        let stream = crate::memory::stream_name(&id);
        let rules = Draft::new(
            stream.clone(),
            self.actor.clone(),
            Body::Note(Note { note_type: RULES_NOTE.to_owned(), json: CanonicalJson::from_value(&Rules::V2.note()) }),
        );
        let fields =
            StoreFields { op: "created".into(), name: name.to_owned(), description: description.to_owned(), metadata };
        let mut batch = AppendBatch::one(rules);
        batch.events.push(self.note(&id, &fields));
        self.svc.append_batch(batch.expect(stream, ExpectedVersion::NoStream))?;
        self.store(&id)
    }

    /// Every store the API made, in creation order (deleted ones left out).
    pub fn stores(&self) -> Result<Vec<StoreRecord>> {
        let mut records: BTreeMap<String, StoreRecord> = BTreeMap::new();
        self.each_note(&mut |e| {
            let Body::Note(n) = &e.event.body else { return };
            if n.note_type != STORE_NOTE {
                return;
            }
            let Some(id) = e.event.header.stream.strip_prefix("memory/") else { return };
            let Ok(fields) = serde_json::from_value::<StoreFields>(n.json.to_value()) else { return };
            let prior = records.remove(id);
            records.insert(id.to_owned(), StoreRecord::fold(prior, id, e.event.header.time, fields));
        })?;
        let mut out: Vec<StoreRecord> = records.into_values().filter(|r| !r.deleted).collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Every note of the log, in order (through the kind index, a page at a time).
    fn each_note(&self, f: &mut dyn FnMut(&crate::store::StoredEvent)) -> Result<()> {
        let mut from = 0;
        loop {
            let page =
                self.svc.events(&EventsQuery { from, limit: Some(PAGE), stream: None, kind: Some(Kind::Note) })?;
            let Some(last) = page.last() else { return Ok(()) };
            from = last.position + 1;
            page.iter().for_each(&mut *f);
            if page.len() < PAGE {
                return Ok(());
            }
        }
    }

    /// A store and its memories, read from its stream.
    pub fn view(&self, id: &str) -> Result<StoreView> {
        check_store_id(id)?;
        let events = self.svc.stream_events(&crate::memory::stream_name(id))?;
        let mut record: Option<StoreRecord> = None;
        for e in &events {
            if let Body::Note(n) = &e.event.body {
                if n.note_type == STORE_NOTE {
                    if let Ok(fields) = serde_json::from_value::<StoreFields>(n.json.to_value()) {
                        record = Some(StoreRecord::fold(record.take(), id, e.event.header.time, fields));
                    }
                }
            }
        }
        let store = record.filter(|r| !r.deleted).ok_or_else(|| Error::Managed(ManagedError::NoStore(id.into())))?;
        // A store forked from another starts from that store's state at the fork.
        let initial = match events.first().map(|e| &e.event.body) {
            Some(Body::StoreFork(f)) => {
                let q = PathQuery { path: None, at: Some(f.position.to_string()) };
                let files = self.svc.memory_files(&f.source, &q)?;
                let rules = Rules::from_number(files.rules).unwrap_or(Rules::V1);
                Some(MemoryState::from_tree(rules, files.files, files.dirs))
            }
            _ => None,
        };
        let lineage = Lineage::fold(
            initial,
            events.iter().map(|e| StreamEvent {
                position: e.position,
                id: e.event.id,
                time: e.event.header.time,
                actor: &e.event.header.actor,
                body: &e.event.body,
                redacted: e.redacted,
            }),
        );
        let mut lineage = lineage;
        if lineage.versions.iter().any(|v| v.redacted) {
            // When and by whom: the `redact` events.
            let mut by: std::collections::HashMap<crate::core::EventId, (u64, Actor)> = Default::default();
            for e in self.svc.stream_events(crate::core::redact::STREAM)? {
                if let Body::Redact(r) = &e.event.body {
                    by.entry(r.target).or_insert((e.event.header.time, e.event.header.actor.clone()));
                }
            }
            for v in lineage.versions.iter_mut().filter(|v| v.redacted) {
                v.redaction = by.get(&v.event).cloned();
            }
        }
        Ok(StoreView { store, lineage })
    }

    /// Redacts a memory version (`memory_versions.redact`): its event's body goes, its
    /// header stays (`Service::redact`). The memory's current version cannot be redacted
    /// (update or delete the memory first); an event without text cannot be.
    pub fn redact_version(&self, id: &str, version_id: &str) -> Result<crate::core::managed::Version> {
        let v = self.view(id)?;
        let version = v.lineage.version(version_id).cloned().ok_or_else(|| {
            Error::Managed(ManagedError::NoVersion { store: id.to_owned(), id: version_id.to_owned() })
        })?;
        if !version.redacted {
            if let Some(live) = v.lineage.live.values().find(|m| m.version_id == version.id) {
                return Err(Error::Managed(ManagedError::State(format!(
                    "{version_id} is the current content of memory {}: update or delete the memory first",
                    live.id
                ))));
            }
            let req = crate::service::RedactRequest::event(
                version.event.to_hex(),
                format!("memory version {version_id} redacted through the Managed-Agents API"),
            );
            self.svc.redact(&req, &self.actor)?;
        }
        let after = self.view(id)?;
        after
            .lineage
            .version(version_id)
            .cloned()
            .ok_or_else(|| Error::Managed(ManagedError::NoVersion { store: id.to_owned(), id: version_id.to_owned() }))
    }

    /// A store's record.
    pub fn store(&self, id: &str) -> Result<StoreRecord> {
        Ok(self.view(id)?.store)
    }

    /// Changes a store's name, description and metadata (`null` values remove keys).
    pub fn update_store(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        metadata: Option<BTreeMap<String, Option<String>>>,
    ) -> Result<StoreRecord> {
        let current = self.store(id)?;
        if current.archived_at.is_some() {
            return Err(Error::Managed(ManagedError::State(format!(
                "memory store {id} is archived: it cannot change"
            ))));
        }
        let mut fields = current.fields.clone();
        if let Some(n) = name {
            check_name(n)?;
            fields.name = n.to_owned();
        }
        if let Some(d) = description {
            check_description(d)?;
            fields.description = d.to_owned();
        }
        for (k, v) in metadata.unwrap_or_default() {
            match v {
                Some(v) => fields.metadata.insert(k, v),
                None => fields.metadata.remove(&k),
            };
        }
        check_metadata(&fields.metadata)?;
        if fields == current.fields {
            return Ok(current);
        }
        fields.op = "updated".into();
        self.append_note(id, &fields)?;
        self.store(id)
    }

    fn append_note(&self, id: &str, fields: &StoreFields) -> Result<()> {
        self.svc.append_batch(AppendBatch::one(self.note(id, fields)))?;
        Ok(())
    }

    /// Archives a store (once; archiving again changes nothing).
    pub fn archive_store(&self, id: &str) -> Result<StoreRecord> {
        let current = self.store(id)?;
        if current.archived_at.is_some() {
            return Ok(current);
        }
        self.append_note(id, &StoreFields { op: "archived".into(), ..current.fields })?;
        self.store(id)
    }

    /// Deletes a store from the API's view: a note; the log keeps every event.
    pub fn delete_store(&self, id: &str) -> Result<()> {
        let current = self.store(id)?;
        self.append_note(id, &StoreFields { op: "deleted".into(), ..current.fields })
    }

    fn writable(&self, id: &str) -> Result<StoreView> {
        let v = self.view(id)?;
        if v.store.archived_at.is_some() {
            return Err(Error::Managed(ManagedError::State(format!(
                "memory store {id} is archived: its memories cannot be created or changed"
            ))));
        }
        Ok(v)
    }

    /// Writes `commands` expecting the state `v` was read at; `None` when another writer
    /// got there first (the caller reads again and re-checks).
    fn commit(&self, id: &str, v: &StoreView, commands: Vec<MemoryCommand>) -> Result<Option<()>> {
        let req = BatchRequest { commands, expected_state: Some(v.lineage.state.state_hash()), session: None };
        match self.svc.memory_batch(id, &req, &self.actor) {
            Ok(_) => Ok(Some(())),
            // No command here carries a precondition: a conflict is the expected state's.
            Err(e) if e.class() == crate::error::ErrorClass::Conflict => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a memory at `path` with `content`.
    pub fn create_memory(&self, id: &str, path: &str, content: &str) -> Result<Live> {
        let mapped = checked_path("path", path)?;
        check_content(content)?;
        for _ in 0..16 {
            let v = self.writable(id)?;
            self.path_free(&v, &mapped, path, None)?;
            let cmd = MemoryCommand::Write { path: mapped.clone(), file_text: content.to_owned() };
            if self.commit(id, &v, vec![cmd])?.is_some() {
                return self.live_at(id, &mapped);
            }
        }
        Err(contended(id))
    }

    /// Refuses a path another memory holds, or one with a memory above or below it.
    fn path_free(&self, v: &StoreView, mapped: &str, path: &str, except: Option<&str>) -> Result<()> {
        let conflict = |reason: String| Err(Error::Managed(ManagedError::PathConflict { path: path.into(), reason }));
        for (p, m) in &v.lineage.live {
            if Some(m.id.as_str()) == except {
                continue;
            }
            if p == mapped {
                return conflict(format!("memory {} is at this path", m.id));
            }
            if crate::core::blame::covers(mapped, p) {
                return conflict(format!("memory {} is below it ({})", m.id, m.path));
            }
            if crate::core::blame::covers(p, mapped) {
                return conflict(format!("memory {} is a file above it ({})", m.id, m.path));
            }
        }
        if v.lineage.state.is_dir(mapped) && !v.lineage.state.files().contains_key(mapped) && except.is_none() {
            return conflict("a directory of the store is at this path".into());
        }
        Ok(())
    }

    fn live_at(&self, id: &str, mapped: &str) -> Result<Live> {
        let v = self.view(id)?;
        v.lineage.live.get(mapped).cloned().ok_or_else(|| contended(id))
    }

    /// A memory now.
    pub fn memory(&self, id: &str, memory_id: &str) -> Result<Live> {
        let v = self.view(id)?;
        v.lineage.memory(memory_id).cloned().ok_or_else(|| no_memory(id, memory_id))
    }

    /// Changes a memory's content and/or path; with `expected_sha256`, only if its
    /// content still has that hash.
    pub fn update_memory(
        &self,
        id: &str,
        memory_id: &str,
        content: Option<&str>,
        path: Option<&str>,
        expected_sha256: Option<&str>,
    ) -> Result<Live> {
        let mapped = path.map(|p| checked_path("path", p)).transpose()?;
        if let Some(c) = content {
            check_content(c)?;
        }
        if let Some(e) = expected_sha256 {
            check_sha("precondition.content_sha256", e)?;
        }
        for _ in 0..16 {
            let v = self.writable(id)?;
            let m = v.lineage.memory(memory_id).cloned().ok_or_else(|| no_memory(id, memory_id))?;
            check_precondition(&m, expected_sha256)?;
            let here = memory_path(&m.path);
            let mut commands = Vec::new();
            let mut target = here.clone();
            if let Some(to) = mapped.as_ref().filter(|to| **to != here) {
                self.path_free(&v, to, path.unwrap_or_default(), Some(&m.id))?;
                commands.push(MemoryCommand::Rename { old_path: here.clone(), new_path: to.clone() });
                target = to.clone();
            }
            if let Some(c) = content.filter(|c| *c != &*m.content) {
                commands.push(MemoryCommand::Write { path: target.clone(), file_text: c.to_owned() });
            }
            if commands.is_empty() {
                return Ok(m);
            }
            if self.commit(id, &v, commands)?.is_some() {
                return self.live_at(id, &target);
            }
        }
        Err(contended(id))
    }

    /// Deletes a memory; with `expected_sha256`, only if its content has that hash.
    pub fn delete_memory(&self, id: &str, memory_id: &str, expected_sha256: Option<&str>) -> Result<()> {
        if let Some(e) = expected_sha256 {
            check_sha("expected_content_sha256", e)?;
        }
        for _ in 0..16 {
            let v = self.view(id)?;
            let m = v.lineage.memory(memory_id).cloned().ok_or_else(|| no_memory(id, memory_id))?;
            check_precondition(&m, expected_sha256)?;
            if self.commit(id, &v, vec![MemoryCommand::Delete { path: memory_path(&m.path) }])?.is_some() {
                return Ok(());
            }
        }
        Err(contended(id))
    }
}

fn check_sha(field: &str, s: &str) -> Result<()> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(invalid(field, format!("{s:?} is not 64 lowercase hexadecimal characters")));
    }
    Ok(())
}

fn check_precondition(m: &Live, expected: Option<&str>) -> Result<()> {
    let Some(expected) = expected else { return Ok(()) };
    let actual = sha256_hex(&m.content);
    if actual != expected {
        return Err(Error::Managed(ManagedError::PreconditionFailed {
            id: m.id.clone(),
            expected: expected.to_owned(),
            actual,
        }));
    }
    Ok(())
}

fn no_memory(store: &str, id: &str) -> Error {
    Error::Managed(ManagedError::NoMemory { store: store.into(), id: id.into() })
}

fn contended(id: &str) -> Error {
    Error::Log(crate::error::LogError::Storage(format!(
        "memory store {id}: too many concurrent writers, gave up after 16 attempts"
    )))
}

/// The note type that records a Managed-Agents dream's life (on stream
/// `anthropic.dream/drm_…`).
pub const DREAM_NOTE: &str = "anthropic.dream";
/// The stream of a dream's notes.
pub fn dream_stream(id: &str) -> String {
    format!("anthropic.dream/{id}")
}

/// A dream request as the API takes it, checked.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DreamSpec {
    /// The input store.
    pub store: String,
    /// dreamlog session ids, sorted, 1 to 100.
    pub sessions: Vec<String>,
    /// The model id.
    pub model: String,
    /// The model's speed (`standard`).
    pub speed: String,
    /// Guidance for the dreamer.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Write into the input store instead of a new one.
    #[serde(default)]
    pub update_existing: bool,
}

/// One step of a dream's life as its notes record it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DreamStep {
    /// Accepted (`pending`).
    Created {
        /// What was asked.
        spec: DreamSpec,
        /// The dreamer that runs it (`NAME@VERSION` or a profile).
        dreamer: String,
    },
    /// Started; writes (when it completes) into `output_store`.
    Running {
        /// The output store.
        output_store: String,
    },
    /// Finished: its commands are in the log.
    Completed {
        /// The dreamlog dream event.
        dream_event: String,
        /// Token counts of the model calls it recorded.
        usage: Usage,
    },
    /// Stopped with an error; nothing written.
    Failed {
        /// A code (`no_graded_sessions`, `dreamer_error`, `interrupted`, …).
        code: String,
        /// Why.
        message: String,
    },
    /// Canceled; nothing written.
    Canceled,
    /// Hidden from the default list.
    Archived,
}

/// A dream's token counts.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Input tokens not read from or written to a cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the cache.
    pub cache_read_input_tokens: u64,
}

/// A dream as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DreamRecord {
    /// `drm_…`.
    pub id: String,
    /// What was asked.
    pub spec: DreamSpec,
    /// The dreamer that runs it.
    pub dreamer: String,
    /// `pending`, `running`, `completed`, `failed`, `canceled`.
    pub status: &'static str,
    /// When (ms).
    pub created_at: u64,
    /// When it reached a final status (ms).
    pub ended_at: Option<u64>,
    /// When it was archived (ms).
    pub archived_at: Option<u64>,
    /// The output store, once known.
    pub output_store: Option<String>,
    /// Why it failed.
    pub error: Option<(String, String)>,
    /// Token counts.
    pub usage: Usage,
    /// The dreamlog dream event, once completed.
    pub dream_event: Option<String>,
    /// The global position of its `running` note.
    pub running_at: Option<u64>,
}

impl DreamRecord {
    /// Whether the dream has a final status.
    pub fn finished(&self) -> bool {
        matches!(self.status, "completed" | "failed" | "canceled")
    }

    fn fold(
        record: Option<DreamRecord>,
        id: &str,
        (time, position): (u64, u64),
        step: DreamStep,
    ) -> Option<DreamRecord> {
        if let DreamStep::Created { spec, dreamer } = step {
            return Some(DreamRecord {
                id: id.to_owned(),
                spec,
                dreamer,
                status: "pending",
                created_at: time,
                ended_at: None,
                archived_at: None,
                output_store: None,
                error: None,
                usage: Usage::default(),
                dream_event: None,
                running_at: None,
            });
        }
        let mut r = record?;
        // A final status never changes again.
        let open = !r.finished();
        match step {
            DreamStep::Created { .. } => {}
            DreamStep::Running { output_store } if open => {
                r.status = "running";
                r.output_store = Some(output_store);
                r.running_at = Some(position);
            }
            DreamStep::Completed { dream_event, usage } if open => {
                (r.status, r.ended_at, r.dream_event, r.usage) = ("completed", Some(time), Some(dream_event), usage);
            }
            DreamStep::Failed { code, message } if open => {
                (r.status, r.ended_at, r.error) = ("failed", Some(time), Some((code, message)));
            }
            DreamStep::Canceled if open => (r.status, r.ended_at) = ("canceled", Some(time)),
            DreamStep::Archived => {
                r.archived_at.get_or_insert(time);
            }
            _ => {}
        }
        Some(r)
    }
}

/// The Managed-Agents dreams over a service: their records are notes; running one is
/// the server's (`server/anthropic.rs`), over [`crate::service::Local::dream_run_with`].
impl Managed<'_> {
    fn dream_note(&self, id: &str, step: &DreamStep) -> Draft {
        Draft::new(
            dream_stream(id),
            self.actor.clone(),
            Body::Note(Note { note_type: DREAM_NOTE.to_owned(), json: CanonicalJson::from_value(&json!(step)) }),
        )
    }

    /// Records a step of dream `id`'s life.
    pub fn record_dream(&self, id: &str, step: &DreamStep) -> Result<()> {
        self.svc.append_batch(AppendBatch::one(self.dream_note(id, step)))?;
        Ok(())
    }

    /// Checks a dream request and records it (`pending`); the caller starts it.
    pub fn create_dream(&self, spec: DreamSpec, dreamer: &str) -> Result<DreamRecord> {
        let store = self.store(&spec.store)?;
        if store.archived_at.is_some() {
            return Err(Error::Managed(ManagedError::State(format!(
                "memory store {} is archived: a dream cannot read it",
                spec.store
            ))));
        }
        for s in &spec.sessions {
            match self.svc.session(s) {
                Ok(_) => {}
                Err(e) if e.class() == crate::error::ErrorClass::NotFound => {
                    return Err(invalid("inputs.session_ids", format!("no session {s:?} in this log")))
                }
                Err(e) => return Err(e),
            }
        }
        let id = format!("drm_{}", random_base32()?);
        let step = DreamStep::Created { spec, dreamer: dreamer.to_owned() };
        self.svc.append_batch(
            AppendBatch::one(self.dream_note(&id, &step)).expect(dream_stream(&id), ExpectedVersion::NoStream),
        )?;
        self.dream(&id)
    }

    /// A dream's record.
    pub fn dream(&self, id: &str) -> Result<DreamRecord> {
        if crate::core::validate::check_name("dream_id", &dream_stream(id)).is_err() {
            return Err(Error::Managed(ManagedError::NoDream(id.to_owned())));
        }
        let mut record = None;
        for e in self.svc.stream_events(&dream_stream(id))? {
            if let Some(step) = dream_step(&e.event.body) {
                record = DreamRecord::fold(record, id, (e.event.header.time, e.position), step);
            }
        }
        record.ok_or_else(|| Error::Managed(ManagedError::NoDream(id.to_owned())))
    }

    /// Every dream, oldest first.
    pub fn dreams(&self) -> Result<Vec<DreamRecord>> {
        let mut records: BTreeMap<String, DreamRecord> = BTreeMap::new();
        self.each_note(&mut |e| {
            let Some(id) = e.event.header.stream.strip_prefix("anthropic.dream/") else { return };
            let Some(step) = dream_step(&e.event.body) else { return };
            let prior = records.remove(id);
            if let Some(r) = DreamRecord::fold(prior, id, (e.event.header.time, e.position), step) {
                records.insert(id.to_owned(), r);
            }
        })?;
        let mut out: Vec<DreamRecord> = records.into_values().collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }
}

fn dream_step(body: &Body) -> Option<DreamStep> {
    match body {
        Body::Note(n) if n.note_type == DREAM_NOTE => serde_json::from_value(n.json.to_value()).ok(),
        _ => None,
    }
}

/// How the server runs an API dream: which dreamer, with what config.
#[derive(Clone, Debug, Default)]
pub struct DreamPlan {
    /// A dreamer profile of the server's config, or `None` for the built-in `evidence`.
    pub dreamer: Option<String>,
    /// The config the request may set (the model, for a profile that lets it).
    pub config: serde_json::Value,
}

/// Runs dream `id` to its end (the server's job, on a blocking thread): records
/// `running` with its output store, runs the dreamer over the dream's sessions, and
/// records `completed` (the commands, the output store's fields and the dream event
/// were written as one batch), `failed` or `canceled` (nothing written).
pub fn execute_dream(
    local: &crate::service::Local,
    actor: Actor,
    id: &str,
    plan: &DreamPlan,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<DreamRecord> {
    let m = Managed::new(local, actor);
    let r = m.dream(id)?;
    if r.finished() {
        return Ok(r);
    }
    if cancel.load(std::sync::atomic::Ordering::SeqCst) {
        m.record_dream(id, &DreamStep::Canceled)?;
        return m.dream(id);
    }
    let spec = &r.spec;
    let output_store = if spec.update_existing { spec.store.clone() } else { new_store_id()? };
    m.record_dream(id, &DreamStep::Running { output_store: output_store.clone() })?;
    let mut notes = Vec::new();
    if !spec.update_existing {
        let input = m.store(&spec.store)?;
        let suffix = format!(" (dream {id})");
        let keep = 255usize.saturating_sub(suffix.chars().count());
        let name: String = input.fields.name.chars().take(keep).collect::<String>() + &suffix;
        let fields = StoreFields { op: "created".into(), name, ..input.fields };
        notes.push(Note { note_type: STORE_NOTE.to_owned(), json: CanonicalJson::from_value(&json!(fields)) });
    }
    let req = crate::service::DreamRequest {
        store: spec.store.clone(),
        dreamer: plan.dreamer.clone(),
        config: plan.config.clone(),
        since: Some("start".into()),
        into: (!spec.update_existing).then(|| output_store.clone()),
        in_place: spec.update_existing,
        create: false,
        sessions: spec.sessions.clone(),
        again: false,
    };
    let step = match local.dream_run_with(&req, notes, Some(cancel)) {
        Ok(run) => DreamStep::Completed { dream_event: run.id.to_hex(), usage: usage_of(local, &run.id)? },
        Err(Error::Dream(crate::error::DreamError::Canceled { .. })) => DreamStep::Canceled,
        Err(Error::Dream(crate::error::DreamError::NothingToDream { .. })) => DreamStep::Failed {
            code: "no_graded_sessions".into(),
            message: format!(
                "none of the {} sessions has a grade: a dream learns from graded sessions; nothing written",
                spec.sessions.len()
            ),
        },
        Err(e) => DreamStep::Failed {
            code: match &e {
                Error::Dream(crate::error::DreamError::Llm { .. }) => "model_error".into(),
                Error::Dream(_) => "dreamer_error".into(),
                Error::Memory(MemoryError::StoreExists(_)) => "conflict".into(),
                _ => "internal_error".into(),
            },
            message: e.to_string(),
        },
    };
    m.record_dream(id, &step)?;
    m.dream(id)
}

/// The token counts of the model calls a dream recorded.
fn usage_of(svc: &dyn Service, dream: &crate::core::EventId) -> Result<Usage> {
    let mut u = Usage::default();
    let e = svc.event(&dream.to_hex())?;
    for c in &e.event.header.causes {
        let Body::LlmExchange(x) = svc.event(&c.to_hex())?.event.body else { continue };
        let r = x.response.to_value();
        let n = |k: &str| r["usage"][k].as_u64().unwrap_or(0);
        u.input_tokens += n("input_tokens").max(n("prompt_tokens"));
        u.output_tokens += n("output_tokens").max(n("completion_tokens"));
        u.cache_creation_input_tokens += n("cache_creation_input_tokens");
        u.cache_read_input_tokens += n("cache_read_input_tokens");
    }
    Ok(u)
}

/// Ends every dream a stopped server left `pending` or `running`: `completed` when its
/// batch was written before the stop (a dream into its output store after its
/// `running` note), else `failed` (`interrupted`: nothing was written).
pub fn interrupted_dreams(svc: &dyn Service, actor: Actor) -> Result<usize> {
    let m = Managed::new(svc, actor);
    let mut n = 0;
    let unfinished: Vec<DreamRecord> = m.dreams()?.into_iter().filter(|r| !r.finished()).collect();
    if unfinished.is_empty() {
        return Ok(0);
    }
    let written = svc.dreams()?;
    for r in unfinished {
        let done = written.iter().find(|d| {
            Some(&d.dream.output_store) == r.output_store.as_ref() && r.running_at.is_some_and(|p| d.position > p)
        });
        let step = match done {
            Some(d) => DreamStep::Completed { dream_event: d.id.to_hex(), usage: usage_of(svc, &d.id)? },
            None => DreamStep::Failed {
                code: "interrupted".into(),
                message: "the server stopped while the dream ran; nothing was written".into(),
            },
        };
        m.record_dream(&r.id, &step)?;
        n += 1;
    }
    Ok(n)
}
