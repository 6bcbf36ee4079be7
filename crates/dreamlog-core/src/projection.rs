//! Projectors: the derived indexes as pure functions of the log.
//!
//! Everything a store keeps beyond the log of record (the kind index, the memory path
//! index, the session index, memory snapshots) is derived: a projector turns one event
//! at its position into index entries, so every index can be rebuilt from the log
//! (`dreamlog reindex`), checked against a rebuild (`verify`), and fed from a log held
//! elsewhere. Key encodings live here too (docs/reference/FORMAT.md §7): integers are big-endian
//! so byte order is numeric order.

use super::{Body, Header, Kind, MemoryCommand};

/// A key space of derived data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// `kind tag` (1 byte) `position` (8 bytes BE) → empty.
    Kinds,
    /// `store` 0x00 `path` 0x00 `position` (8 bytes BE) → empty, for every path a
    /// `memory` event names (both paths of a rename).
    Paths,
    /// `session id` → position of the session stream's first event (8 bytes BE).
    Sessions,
    /// `projection` 0x00 `position` (8 bytes BE) → snapshot bytes. Written on demand by
    /// the memory projection (not by a projector): deleting them loses only speed.
    Snapshots,
    /// `cause id` (32 bytes) `position` (8 bytes BE) → empty, for every cause an event
    /// names: the events citing an event, in log order.
    Cites,
}

impl Space {
    /// Every space, in a fixed order.
    pub const ALL: [Space; 5] = [Space::Kinds, Space::Paths, Space::Sessions, Space::Snapshots, Space::Cites];

    /// The space's name (also its RocksDB column family).
    pub fn name(self) -> &'static str {
        match self {
            Space::Kinds => "kinds",
            Space::Paths => "paths",
            Space::Sessions => "sessions",
            Space::Snapshots => "snapshots",
            Space::Cites => "cites",
        }
    }
}

/// One derived entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexEntry {
    /// Its space.
    pub space: Space,
    /// Its key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
}

/// What a projector sees of one event. `body` is `None` when the record's body was
/// redacted (its header still counts).
#[derive(Clone, Copy, Debug)]
pub struct Projected<'a> {
    /// Global position.
    pub position: u64,
    /// Version in its stream.
    pub version: u64,
    /// The header.
    pub header: &'a Header,
    /// The body, unless redacted.
    pub body: Option<&'a Body>,
}

/// Key and value pairs a projector emits.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A projector: a name (its checkpoint's key), the space it fills, and its rule.
#[derive(Clone, Copy)]
pub struct Projector {
    /// Name, recorded with how far the projector got.
    pub name: &'static str,
    /// The space it writes.
    pub space: Space,
    /// The entries one event contributes (keys and values).
    pub entries: fn(&Projected<'_>, &mut Entries),
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector").field("name", &self.name).field("space", &self.space).finish()
    }
}

/// Every projector, in the order they run.
pub const PROJECTORS: [Projector; 4] = [
    Projector { name: "kinds", space: Space::Kinds, entries: kinds },
    Projector { name: "paths", space: Space::Paths, entries: paths },
    Projector { name: "sessions", space: Space::Sessions, entries: sessions },
    Projector { name: "cites", space: Space::Cites, entries: cites },
];

/// All entries of one event, every projector.
pub fn project(event: &Projected<'_>, out: &mut Vec<IndexEntry>) {
    let mut kv = Vec::new();
    for p in PROJECTORS {
        (p.entries)(event, &mut kv);
        out.extend(kv.drain(..).map(|(key, value)| IndexEntry { space: p.space, key, value }));
    }
}

fn kinds(e: &Projected<'_>, out: &mut Entries) {
    out.push((kind_key(e.header.kind, e.position).to_vec(), Vec::new()));
}

fn paths(e: &Projected<'_>, out: &mut Entries) {
    if let Some((store, paths)) = e.body.and_then(memory_paths) {
        for path in paths {
            out.push((path_key(store, path, e.position), Vec::new()));
        }
    }
}

fn sessions(e: &Projected<'_>, out: &mut Entries) {
    if e.version == 0 {
        if let Some(id) = e.header.stream.strip_prefix(SESSION_STREAM_PREFIX) {
            out.push((id.as_bytes().to_vec(), e.position.to_be_bytes().to_vec()));
        }
    }
}

fn cites(e: &Projected<'_>, out: &mut Entries) {
    for cause in &e.header.causes {
        out.push((cite_key(cause, e.position).to_vec(), Vec::new()));
    }
}

/// Citation index key: the cited event's id, then the citing event's position.
pub fn cite_key(cause: &super::EventId, position: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&cause.0);
    k[32..].copy_from_slice(&position.to_be_bytes());
    k
}

/// Streams of sessions are named `session/ID`.
pub const SESSION_STREAM_PREFIX: &str = super::streams::SESSION_PREFIX;

/// The paths a memory event touches (for the path index).
pub fn memory_paths(body: &Body) -> Option<(&str, Vec<&str>)> {
    let Body::Memory(m) = body else { return None };
    let paths = match &m.command {
        MemoryCommand::Create { path, .. }
        | MemoryCommand::StrReplace { path, .. }
        | MemoryCommand::Insert { path, .. }
        | MemoryCommand::Delete { path }
        | MemoryCommand::Mkdir { path }
        | MemoryCommand::Write { path, .. } => vec![path.as_str()],
        MemoryCommand::Rename { old_path, new_path } => vec![old_path.as_str(), new_path.as_str()],
    };
    Some((m.store.as_str(), paths))
}

/// Decodes an 8-byte big-endian integer.
pub fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Kind index key.
pub fn kind_key(kind: Kind, position: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = kind.tag();
    k[1..].copy_from_slice(&position.to_be_bytes());
    k
}

/// Path index key: store, 0x00, path, 0x00, position.
pub fn path_key(store: &str, path: &str, position: u64) -> Vec<u8> {
    let mut k = path_prefix(store, path);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// The prefix of every path index key of one (store, path).
pub fn path_prefix(store: &str, path: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(store.len() + path.len() + 10);
    k.extend_from_slice(store.as_bytes());
    k.push(0);
    k.extend_from_slice(path.as_bytes());
    k.push(0);
    k
}

/// Snapshot key: projection name, 0x00, position.
pub fn snapshot_key(projection: &str, position: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(projection.len() + 9);
    k.extend_from_slice(projection.as_bytes());
    k.push(0);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, CanonicalJson, Draft, Memory, Note};

    fn sealed(stream: &str, body: Body) -> crate::SealedEvent {
        Draft::new(stream, Actor::Human("t".into()), body).into_sealed(1, Vec::new()).expect("valid draft")
    }

    #[test]
    fn a_rename_indexes_both_paths_and_a_session_start_its_id() {
        let rename = sealed(
            "memory/m",
            Body::Memory(Memory {
                store: "m".into(),
                command: MemoryCommand::Rename { old_path: "/memories/a".into(), new_path: "/memories/b".into() },
                precondition: None,
                session: None,
            }),
        );
        let mut out = Vec::new();
        project(&Projected { position: 7, version: 3, header: &rename.header, body: Some(&rename.body) }, &mut out);
        let spaces: Vec<Space> = out.iter().map(|e| e.space).collect();
        assert_eq!(spaces, vec![Space::Kinds, Space::Paths, Space::Paths]);
        assert_eq!(out[1].key, path_key("m", "/memories/a", 7));
        assert_eq!(out[2].key, path_key("m", "/memories/b", 7));

        let note = sealed("session/s-1", Body::Note(Note { note_type: "x".into(), json: CanonicalJson::null() }));
        let mut out = Vec::new();
        project(&Projected { position: 9, version: 0, header: &note.header, body: None }, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1],
            IndexEntry { space: Space::Sessions, key: b"s-1".to_vec(), value: 9u64.to_be_bytes().to_vec() }
        );
        let mut later = Vec::new();
        project(&Projected { position: 10, version: 1, header: &note.header, body: None }, &mut later);
        assert_eq!(later.len(), 1, "only a session stream's first event names the session");
    }
}
