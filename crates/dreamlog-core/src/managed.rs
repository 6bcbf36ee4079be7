//! The Managed-Agents memory API's model, pure: how its memory stores, memories and
//! memory versions are read off dreamlog's log.
//!
//! - A memory store `memstore_…` *is* the dreamlog memory store of that name (stream
//!   `memory/memstore_…`). Its API fields (name, description, metadata, archived,
//!   deleted) are `note`s of type [`STORE_NOTE`] on that stream; the last one holds.
//! - A memory at API path `/a/b.md` is the file `/memories/a/b.md` of that store.
//! - A memory version is one `memory` event that changed a memory (an event that changes
//!   several — a directory's rename or delete, a fork — gives one version per memory).
//!   Ids are the event's: `memver_<event id>` (`_<n>` for the n-th other memory of the
//!   same event), and a memory's id is its first version's (`mem_<event id>[_<n>]`), kept
//!   across renames.
//!
//! [`Lineage::fold`] replays a store's events into its memories and versions; the I/O
//! around it is in the service crate's `managed/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::blame::covers;
use super::body::{Body, MemoryCommand};
use super::hash::EventId;
use super::kind::Actor;
use super::memory::{MemoryState, Rules, ROOT};

/// The note type that records a store's API fields.
pub const STORE_NOTE: &str = "anthropic.memory_store";
/// Prefix of memory store ids (and of the dreamlog stores that back them).
pub const STORE_PREFIX: &str = "memstore_";
/// Who writes a mirror of hosted Managed Agents (`dreamlog sync anthropic`): its notes, and
/// the first event of every store it mirrors (what tells a mirror from a local store).
pub fn sync_actor() -> crate::Actor {
    crate::Actor::System("anthropic-sync".into())
}
/// At most this many bytes of content per memory (the API's limit).
pub const MAX_CONTENT_BYTES: usize = 102_400;
/// At most this many segments in an API path.
pub const MAX_SEGMENTS: usize = 20;
/// At most this many bytes in an API path.
pub const MAX_PATH_BYTES: usize = 1024;

/// A store's API fields as its notes record them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreFields {
    /// What this note did: `created`, `updated`, `archived`, `deleted`.
    pub op: String,
    /// Name (1–255 characters).
    pub name: String,
    /// Description (may be empty).
    #[serde(default)]
    pub description: String,
    /// Key-value pairs for the caller's own use.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A store as the API shows it: its last fields and when they changed.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreRecord {
    /// The store id (`memstore_…`), also its dreamlog name.
    pub id: String,
    /// The last fields recorded.
    pub fields: StoreFields,
    /// When the first note was written (ms).
    pub created_at: u64,
    /// When the fields last changed (ms).
    pub updated_at: u64,
    /// When it was archived (ms).
    pub archived_at: Option<u64>,
    /// Whether it was deleted (hidden from the API; the log keeps it).
    pub deleted: bool,
}

impl StoreRecord {
    /// Folds one store note (in log order) into the record.
    pub fn fold(record: Option<StoreRecord>, id: &str, time: u64, fields: StoreFields) -> StoreRecord {
        let mut r = record.unwrap_or(StoreRecord {
            id: id.to_owned(),
            fields: fields.clone(),
            created_at: time,
            updated_at: time,
            archived_at: None,
            deleted: false,
        });
        match fields.op.as_str() {
            "archived" => {
                r.archived_at.get_or_insert(time);
                r.updated_at = time;
            }
            "deleted" => r.deleted = true,
            _ => r.updated_at = time,
        }
        r.fields = StoreFields { op: fields.op.clone(), ..fields };
        r
    }
}

/// Why an API path is refused.
pub fn check_api_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("a path starts with '/'".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("{} bytes, over the limit of {MAX_PATH_BYTES}", path.len()));
    }
    if let Some(c) = super::validate::hidden_char(path) {
        return Err(format!("contains U+{:04X}, a control or format character", c as u32));
    }
    if !unicode_normalization::is_nfc(path) {
        return Err("not in Unicode Normalization Form C".into());
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    if segments.len() > MAX_SEGMENTS {
        return Err(format!("{} segments, over the limit of {MAX_SEGMENTS}", segments.len()));
    }
    for s in &segments {
        match *s {
            "" => return Err("empty segment".into()),
            "." | ".." => return Err("'.' and '..' segments are not allowed".into()),
            _ => {}
        }
    }
    Ok(())
}

/// The dreamlog memory path of a (checked) API path: `/a/b.md` → `/memories/a/b.md`.
pub fn memory_path(api_path: &str) -> String {
    format!("{ROOT}{api_path}")
}

/// The API path of a dreamlog memory path, when it is below `/memories`.
pub fn api_path(memory_path: &str) -> Option<&str> {
    memory_path.strip_prefix(ROOT).filter(|p| p.starts_with('/'))
}

/// Lowercase hex SHA-256 of a memory's UTF-8 content (the API's `content_sha256`).
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The kind of change a version records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// The memory began.
    Created,
    /// Its content or path changed.
    Modified,
    /// It was deleted.
    Deleted,
}

impl Operation {
    /// The API's name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Created => "created",
            Operation::Modified => "modified",
            Operation::Deleted => "deleted",
        }
    }
}

/// One memory version: one event's change to one memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    /// `memver_…`.
    pub id: String,
    /// `mem_…`.
    pub memory_id: String,
    /// The event.
    pub event: EventId,
    /// Its global position.
    pub position: u64,
    /// Its time (ms).
    pub time: u64,
    /// What changed.
    pub operation: Operation,
    /// The memory's API path after the change (before it, for a delete).
    pub path: String,
    /// The content after the change (`None` for a delete).
    pub content: Option<Arc<str>>,
    /// Who wrote it.
    pub actor: Actor,
    /// The session it belongs to.
    pub session: Option<String>,
    /// Whether the event's body was redacted.
    pub redacted: bool,
    /// When and by whom it was redacted (ms, actor).
    pub redaction: Option<(u64, Actor)>,
}

/// A memory that exists now.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    /// `mem_…`.
    pub id: String,
    /// Its API path.
    pub path: String,
    /// Its content.
    pub content: Arc<str>,
    /// When it was created (ms).
    pub created_at: u64,
    /// When it last changed (ms).
    pub updated_at: u64,
    /// Its current version.
    pub version_id: String,
}

/// One event of a store's stream, as the fold reads it.
pub struct StreamEvent<'a> {
    /// Global position.
    pub position: u64,
    /// Id.
    pub id: EventId,
    /// Time (ms).
    pub time: u64,
    /// Author.
    pub actor: &'a Actor,
    /// Body.
    pub body: &'a Body,
    /// Whether the body was redacted.
    pub redacted: bool,
}

/// A store's memories and versions.
#[derive(Clone, Debug, Default)]
pub struct Lineage {
    /// Memories now, by dreamlog path.
    pub live: BTreeMap<String, Live>,
    /// Every version, oldest first.
    pub versions: Vec<Version>,
    /// The memory state the fold reached.
    pub state: MemoryState,
}

fn ids(event: &EventId, n: usize) -> (String, String) {
    let suffix = if n == 0 { String::new() } else { format!("_{n}") };
    (format!("mem_{}{suffix}", event.to_hex()), format!("memver_{}{suffix}", event.to_hex()))
}

impl Lineage {
    /// Folds a store's events, oldest first, from `initial` (a fork's source state; its
    /// files become memories created by the `store.fork` event).
    pub fn fold<'a>(initial: Option<MemoryState>, events: impl IntoIterator<Item = StreamEvent<'a>>) -> Lineage {
        let mut l = Lineage { state: initial.unwrap_or_default(), ..Lineage::default() };
        for e in events {
            match e.body {
                Body::StoreFork(_) => {
                    let files: Vec<(String, Arc<str>)> =
                        l.state.files().iter().map(|(p, f)| (p.clone(), f.text.clone())).collect();
                    for (n, (p, text)) in files.into_iter().enumerate() {
                        l.begin(&e, n, &p, text);
                    }
                }
                Body::Note(_) => {
                    if let Some(rules) = Rules::switched_by(e.body) {
                        l.state.set_rules(rules);
                    }
                }
                Body::Memory(m) => l.command(&e, &m.command),
                _ => {}
            }
        }
        l
    }

    fn begin(&mut self, e: &StreamEvent, n: usize, path: &str, text: Arc<str>) {
        let Some(api) = api_path(path) else { return };
        let (mem, ver) = ids(&e.id, n);
        self.live.insert(
            path.to_owned(),
            Live {
                id: mem.clone(),
                path: api.to_owned(),
                content: text.clone(),
                created_at: e.time,
                updated_at: e.time,
                version_id: ver.clone(),
            },
        );
        self.push(e, ver, mem, Operation::Created, api, Some(text));
    }

    fn push(
        &mut self,
        e: &StreamEvent,
        id: String,
        memory_id: String,
        operation: Operation,
        path: &str,
        content: Option<Arc<str>>,
    ) {
        let session = match e.body {
            Body::Memory(m) => m.session.clone(),
            _ => None,
        };
        self.versions.push(Version {
            id,
            memory_id,
            event: e.id,
            position: e.position,
            time: e.time,
            operation,
            path: path.to_owned(),
            content,
            actor: e.actor.clone(),
            session,
            redacted: e.redacted,
            redaction: None,
        });
    }

    fn command(&mut self, e: &StreamEvent, cmd: &MemoryCommand) {
        if !self.state.replay(cmd) {
            return;
        }
        match cmd {
            MemoryCommand::Create { path, .. }
            | MemoryCommand::Write { path, .. }
            | MemoryCommand::StrReplace { path, .. }
            | MemoryCommand::Insert { path, .. } => {
                let Some(text) = self.state.file(path).map(|f| f.text.clone()) else { return };
                match self.live.get_mut(path) {
                    Some(m) if m.content == text => {}
                    Some(m) => {
                        let (_, ver) = ids(&e.id, 0);
                        m.content = text.clone();
                        m.updated_at = e.time;
                        m.version_id = ver.clone();
                        let (mem, api) = (m.id.clone(), m.path.clone());
                        self.push(e, ver, mem, Operation::Modified, &api, Some(text));
                    }
                    None => self.begin(e, 0, path, text),
                }
            }
            MemoryCommand::Delete { path } => {
                let gone: Vec<String> = self.live.keys().filter(|p| covers(path, p)).cloned().collect();
                for (n, p) in gone.into_iter().enumerate() {
                    let Some(m) = self.live.remove(&p) else { continue };
                    let (_, ver) = ids(&e.id, n);
                    self.push(e, ver, m.id, Operation::Deleted, &m.path, None);
                }
            }
            MemoryCommand::Rename { old_path, new_path } => {
                let moved: Vec<String> = self.live.keys().filter(|p| covers(old_path, p)).cloned().collect();
                for (n, p) in moved.into_iter().enumerate() {
                    let Some(mut m) = self.live.remove(&p) else { continue };
                    let to = format!("{new_path}{}", &p[old_path.len()..]);
                    let Some(api) = api_path(&to).map(str::to_owned) else { continue };
                    let (_, ver) = ids(&e.id, n);
                    m.path = api.clone();
                    m.updated_at = e.time;
                    m.version_id = ver.clone();
                    let (mem, content) = (m.id.clone(), m.content.clone());
                    self.live.insert(to, m);
                    self.push(e, ver, mem, Operation::Modified, &api, Some(content));
                }
            }
            MemoryCommand::Mkdir { .. } => {}
        }
    }

    /// The live memory with this id.
    pub fn memory(&self, id: &str) -> Option<&Live> {
        self.live.values().find(|m| m.id == id)
    }

    /// The version with this id.
    pub fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }
}

/// One item of a memory listing: a memory, or (with a depth) a directory marker.
#[derive(Clone, Debug, PartialEq)]
pub enum ListItem<'a> {
    /// A memory.
    Memory(&'a Live),
    /// A path prefix standing for the memories below it (ends with `/`).
    Prefix(String),
}

impl ListItem<'_> {
    /// The item's path (the sort key and the page token).
    pub fn path(&self) -> &str {
        match self {
            ListItem::Memory(m) => &m.path,
            ListItem::Prefix(p) => p,
        }
    }
}

/// The memories below `prefix` (API form, ends with `/`), in path order; with `depth`
/// N > 0, those deeper than N segments below the prefix roll up into prefix markers.
pub fn list_memories<'a>(lineage: &'a Lineage, prefix: &str, depth: usize) -> Vec<ListItem<'a>> {
    let mut out: Vec<ListItem<'a>> = Vec::new();
    let mut last_prefix: Option<String> = None;
    let mut memories: Vec<&Live> = lineage.live.values().filter(|m| m.path.starts_with(prefix)).collect();
    memories.sort_by(|a, b| a.path.cmp(&b.path));
    for m in memories {
        let rest = &m.path[prefix.len()..];
        let segments: Vec<&str> = rest.split('/').collect();
        if depth == 0 || segments.len() <= depth {
            out.push(ListItem::Memory(m));
            continue;
        }
        let marker = format!("{prefix}{}/", segments[..depth].join("/"));
        if last_prefix.as_deref() != Some(marker.as_str()) {
            out.push(ListItem::Prefix(marker.clone()));
            last_prefix = Some(marker);
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out.dedup_by(|a, b| a.path() == b.path());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Memory;

    fn ev(n: u8) -> EventId {
        EventId([n; 32])
    }

    fn mem(cmd: MemoryCommand) -> Body {
        Body::Memory(Memory { store: "memstore_x".into(), command: cmd, precondition: None, session: None })
    }

    #[test]
    fn ids_survive_renames_and_versions_follow_each_change() {
        let actor = Actor::System("t".into());
        let bodies = [
            mem(MemoryCommand::Write { path: "/memories/a/x.md".into(), file_text: "one".into() }),
            mem(MemoryCommand::Write { path: "/memories/a/x.md".into(), file_text: "two".into() }),
            mem(MemoryCommand::Rename { old_path: "/memories/a".into(), new_path: "/memories/b".into() }),
            mem(MemoryCommand::Write { path: "/memories/b/x.md".into(), file_text: "two".into() }),
            mem(MemoryCommand::Delete { path: "/memories/b/x.md".into() }),
        ];
        let events = bodies.iter().enumerate().map(|(i, b)| StreamEvent {
            position: i as u64,
            id: ev(i as u8 + 1),
            time: 1000 + i as u64,
            actor: &actor,
            body: b,
            redacted: false,
        });
        let l = Lineage::fold(Some(MemoryState::new().with_rules(Rules::V2)), events);
        let ops: Vec<(&str, &str)> = l.versions.iter().map(|v| (v.operation.name(), v.path.as_str())).collect();
        // The same content written again is no new version.
        assert_eq!(
            ops,
            [("created", "/a/x.md"), ("modified", "/a/x.md"), ("modified", "/b/x.md"), ("deleted", "/b/x.md")]
        );
        let first = &l.versions[0].memory_id;
        assert!(l.versions.iter().all(|v| &v.memory_id == first), "one memory throughout");
        assert!(l.live.is_empty());
        assert!(l.version(&l.versions[2].id).is_some_and(|v| v.content.as_deref() == Some("two")));
    }

    #[test]
    fn api_paths_follow_the_apis_rules() {
        assert!(check_api_path("/projects/foo/notes.md").is_ok());
        for bad in ["notes.md", "/a//b", "/a/../b", "/a/\u{200B}b", "/e\u{0301}", "/a\u{2028}"] {
            assert!(check_api_path(bad).is_err(), "{bad:?} must be refused");
        }
        let deep = "/x".repeat(21);
        assert!(check_api_path(&deep).is_err_and(|e| e.contains("segments")));
        assert_eq!(api_path(&memory_path("/a/b.md")), Some("/a/b.md"));
        assert_eq!(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn a_depth_rolls_deeper_memories_into_prefixes() {
        let mut l = Lineage::default();
        for p in ["/n/a.md", "/n/d/b.md", "/n/d/e/c.md", "/m.md"] {
            l.live.insert(
                memory_path(p),
                Live {
                    id: p.into(),
                    path: p.into(),
                    content: Arc::from(""),
                    created_at: 0,
                    updated_at: 0,
                    version_id: String::new(),
                },
            );
        }
        let paths: Vec<String> = list_memories(&l, "/n/", 1).iter().map(|i| i.path().to_owned()).collect();
        assert_eq!(paths, ["/n/a.md", "/n/d/"]);
        let all: Vec<String> = list_memories(&l, "/", 0).iter().map(|i| i.path().to_owned()).collect();
        assert_eq!(all, ["/m.md", "/n/a.md", "/n/d/b.md", "/n/d/e/c.md"]);
    }
}
