//! Projectors: the derived indexes as pure functions of the log.
//!
//! Everything a store keeps beyond the log of record (the kind index, the memory path
//! index, the session index, the citation index, the ledger, memory snapshots) is derived: a projector turns one event
//! at its position into index entries, so every index can be rebuilt from the log
//! (`dreamlog reindex`), checked against a rebuild (`verify`), and fed from a log held
//! elsewhere. Key encodings live here too (docs/reference/FORMAT.md §7): integers are big-endian
//! so byte order is numeric order.

use bincode::{Decode, Encode};

use super::{Body, Digest, GradeResult, Header, Kind, MemoryCommand};

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
    /// The lesson ledger's facts, compact: `0x01` `position` → a [`LedgerEntry`] of each
    /// `session.start` and of each `session.link` naming a store (which store and state a
    /// session ran with); `0x02` `position` → one of each grade. Drift and lessons read
    /// these instead of decoding every session's events. And `0x03` `store` 0x00
    /// `position` → empty for each start and link naming a store: the stores sessions
    /// ran with, without a scan.
    Ledger,
    /// Names looked up by requests, each a seek instead of a scan of its kind: `0x01`
    /// `tag name` 0x00 `position` → the position the tag names (u64 BE), for each tag;
    /// `0x02` `store` 0x00 `position` → the rules number (u64 BE), for each `memory.rules`
    /// note on a store's stream; `0x03` `store` 0x00 `position` → empty, for each dream
    /// reading or writing the store (its input and its output store).
    Marks,
}

impl Space {
    /// Every space, in a fixed order.
    pub const ALL: [Space; 7] =
        [Space::Kinds, Space::Paths, Space::Sessions, Space::Snapshots, Space::Cites, Space::Ledger, Space::Marks];

    /// The space's name (also its RocksDB column family).
    pub fn name(self) -> &'static str {
        match self {
            Space::Kinds => "kinds",
            Space::Paths => "paths",
            Space::Sessions => "sessions",
            Space::Snapshots => "snapshots",
            Space::Cites => "cites",
            Space::Ledger => "ledger",
            Space::Marks => "marks",
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
pub const PROJECTORS: [Projector; 6] = [
    Projector { name: "kinds", space: Space::Kinds, entries: kinds },
    Projector { name: "paths", space: Space::Paths, entries: paths },
    Projector { name: "sessions", space: Space::Sessions, entries: sessions },
    Projector { name: "cites", space: Space::Cites, entries: cites },
    Projector { name: "ledger", space: Space::Ledger, entries: ledger },
    Projector { name: "marks", space: Space::Marks, entries: marks },
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

fn ledger(e: &Projected<'_>, out: &mut Entries) {
    let Some(body) = e.body else { return };
    if let Some((tag, entry)) = LedgerEntry::of(body) {
        let store = match &entry {
            LedgerEntry::Start { store, .. } => store.as_deref(),
            LedgerEntry::Link { store, .. } => Some(store.as_str()),
            LedgerEntry::Grade { .. } => None,
        };
        if let Some(store) = store {
            out.push((ledger_store_key(store, e.position), Vec::new()));
        }
        out.push((ledger_key(tag, e.position).to_vec(), super::wire::encode(&entry)));
    }
}

fn marks(e: &Projected<'_>, out: &mut Entries) {
    match e.body {
        Some(Body::Tag(t)) => out.push((mark_key(MARK_TAG, &t.name, e.position), t.position.to_be_bytes().to_vec())),
        Some(body) if e.header.kind == Kind::Note => {
            if let (Some(rules), Some(store)) =
                (super::memory::Rules::switched_by(body), e.header.stream.strip_prefix(super::streams::MEMORY_PREFIX))
            {
                out.push((mark_key(MARK_RULES, store, e.position), rules.number().to_be_bytes().to_vec()));
            }
        }
        Some(Body::Dream(d)) => {
            out.push((mark_key(MARK_DREAM, &d.store, e.position), Vec::new()));
            if d.output_store != d.store {
                out.push((mark_key(MARK_DREAM, &d.output_store, e.position), Vec::new()));
            }
        }
        _ => {}
    }
}

/// Marks key tag of tags (by name).
pub const MARK_TAG: u8 = 1;
/// Marks key tag of memory-rules switches (by store).
pub const MARK_RULES: u8 = 2;
/// Marks key tag of dreams (by the stores they read and write).
pub const MARK_DREAM: u8 = 3;

/// A marks key: the tag, a name, 0x00, the position.
pub fn mark_key(tag: u8, name: &str, position: u64) -> Vec<u8> {
    let mut k = mark_prefix(tag, name);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// The prefix of every marks key of one name under `tag`.
pub fn mark_prefix(tag: u8, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 10);
    k.push(tag);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

/// Ledger key tag of the sessions' records of the store they ran with.
pub const LEDGER_RUNS: u8 = 1;
/// Ledger key tag of grades.
pub const LEDGER_GRADES: u8 = 2;

/// Ledger key tag of the stores sessions ran with.
pub const LEDGER_STORES: u8 = 3;

/// The ledger's key of a session's record naming `store`: `LEDGER_STORES`, the store,
/// 0x00, the position.
pub fn ledger_store_key(store: &str, position: u64) -> Vec<u8> {
    let mut k = ledger_store_prefix(store);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// The prefix of every ledger key of records naming `store`.
pub fn ledger_store_prefix(store: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(store.len() + 10);
    k.push(LEDGER_STORES);
    k.extend_from_slice(store.as_bytes());
    k.push(0);
    k
}

/// Ledger key: a tag (`LEDGER_RUNS`, `LEDGER_GRADES`), then the position.
pub fn ledger_key(tag: u8, position: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..].copy_from_slice(&position.to_be_bytes());
    k
}

/// What the ledger keeps of one event: the fields drift and lessons compare grades by.
/// None of them is free text a redaction removes (session starts, links and grades are
/// structure: `redact` refuses them), so the ledger never holds what a redaction took.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub enum LedgerEntry {
    /// A `session.start`.
    Start {
        /// Session id.
        session: String,
        /// The memory store it ran with.
        store: Option<String>,
        /// The store's state hash it recorded.
        memory_state: Option<Digest>,
        /// Its task id.
        task_id: Option<String>,
        /// Its agent.
        agent: String,
    },
    /// A `session.link` naming a store.
    Link {
        /// Session id.
        session: String,
        /// The store.
        store: String,
        /// The state it names.
        memory_state: Option<Digest>,
        /// `meta.at`: the position the session ran at, when linked afterwards.
        at: Option<u64>,
    },
    /// A grade.
    Grade {
        /// Session id.
        session: String,
        /// Score.
        score: f64,
        /// Its result was `satisfied`.
        passed: bool,
        /// Rubric.
        rubric: String,
    },
}

impl LedgerEntry {
    /// The entry of `body` and its key tag, for the kinds the ledger keeps.
    pub fn of(body: &Body) -> Option<(u8, LedgerEntry)> {
        match body {
            Body::SessionStart(s) => Some((
                LEDGER_RUNS,
                LedgerEntry::Start {
                    session: s.session.clone(),
                    store: s.store.clone(),
                    memory_state: s.memory_state,
                    task_id: s.task_id.clone(),
                    agent: s.agent.clone(),
                },
            )),
            Body::SessionLink(l) => {
                let store = l.store.clone()?;
                let at = l.meta.as_ref().and_then(|m| m.to_value().get("at").and_then(|a| a.as_u64()));
                Some((
                    LEDGER_RUNS,
                    LedgerEntry::Link { session: l.session.clone(), store, memory_state: l.memory_state, at },
                ))
            }
            Body::Grade(g) => Some((
                LEDGER_GRADES,
                LedgerEntry::Grade {
                    session: g.session.clone(),
                    score: g.score,
                    passed: g.result == GradeResult::Satisfied,
                    rubric: g.rubric.clone(),
                },
            )),
            _ => None,
        }
    }

    /// Decodes a ledger value.
    pub fn decode(bytes: &[u8]) -> Result<LedgerEntry, super::error::FormatError> {
        super::wire::decode_exact(bytes, "ledger entry")
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
    fn ledger_entries_are_the_bytes_format_md_gives() {
        // FORMAT.md §7: variant index, then the fields in order (§1 encodings).
        let start = LedgerEntry::Start {
            session: "s1".into(),
            store: Some("m".into()),
            memory_state: None,
            task_id: None,
            agent: "a".into(),
        };
        let bytes = crate::wire::encode(&start);
        assert_eq!(bytes, [0, 2, b's', b'1', 1, 1, b'm', 0, 0, 1, b'a']);
        assert_eq!(LedgerEntry::decode(&bytes).expect("decodes"), start);
        let link = LedgerEntry::Link { session: "s".into(), store: "m".into(), memory_state: None, at: Some(300) };
        assert_eq!(crate::wire::encode(&link), [1, 1, b's', 1, b'm', 0, 1, 0xFB, 0x2C, 0x01]);
        let grade = LedgerEntry::Grade { session: "s".into(), score: 0.5, passed: true, rubric: "r".into() };
        let mut want = vec![2, 1, b's'];
        want.extend_from_slice(&0.5f64.to_le_bytes());
        want.extend_from_slice(&[1, 1, b'r']);
        assert_eq!(crate::wire::encode(&grade), want);
        assert!(LedgerEntry::decode(&want[..want.len() - 1]).is_err(), "a cut entry is an error");
        // Keys: tag then position; a store's records after its name.
        assert_eq!(ledger_key(LEDGER_GRADES, 258), [2, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(ledger_store_key("m", 1), [3, b'm', 0, 0, 0, 0, 0, 0, 0, 0, 1]);
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
