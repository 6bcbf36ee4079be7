//! The on-disk layout: column families, key encodings and the log record. Integer keys
//! are big-endian so that RocksDB's byte order is numeric order. docs/reference/FORMAT.md
//! ("Storage layout") documents the same bytes.

pub use crate::core::projection::be_u64;
use crate::core::EventId;

/// Global position → record. Sequential keys: the cheap write.
pub const CF_LOG: &str = "log";
/// Event id → position (8 bytes BE). The one random-key write per event.
pub const CF_IDS: &str = "ids";
/// `stream` 0x00 `version` (8 bytes BE) → position (8 bytes BE).
pub const CF_STREAMS: &str = "streams";
/// `kind tag` (1 byte) `position` (8 bytes BE) → empty.
pub const CF_KINDS: &str = "kinds";
/// Store metadata: format marker, commit marker (`end`), how far each projector got
/// (`checkpoint/NAME`: `Log::projected_to`), each 8 bytes BE.
pub const CF_META: &str = "meta";
/// Memory path index: `store` 0x00 `path` 0x00 `position` (8 bytes BE) → empty, for
/// every path a `memory` event names (both paths of a rename).
pub const CF_PATHS: &str = "paths";
/// Projection snapshots: `projection` 0x00 `position` (8 bytes BE) → snapshot bytes.
/// Derived data: deleting them loses nothing but speed.
pub const CF_SNAPSHOTS: &str = "snapshots";

/// Session index: session id → position of its stream's first event (8 bytes BE).
pub const CF_SESSIONS: &str = "sessions";

/// Citation index: `cause id` (32 bytes) `position` (8 bytes BE) → empty.
pub const CF_CITES: &str = "cites";
/// Column family of the ledger's compact facts (sessions' stores, grades).
pub const CF_LEDGER: &str = "ledger";
/// Column family of names requests look up (tags, rules switches, dreams by store).
pub const CF_MARKS: &str = "marks";

/// Every column family, in creation order. The derived spaces' families are named by
/// `Space::name` (kinds, paths, snapshots, sessions, cites, ledger, marks).
pub const ALL_CFS: [&str; 11] =
    [CF_LOG, CF_IDS, CF_STREAMS, CF_KINDS, CF_META, CF_PATHS, CF_SNAPSHOTS, CF_SESSIONS, CF_CITES, CF_LEDGER, CF_MARKS];

/// Meta key holding the store's format marker.
pub const META_FORMAT_KEY: &[u8] = b"format";
/// The store format marker written by this build.
pub const META_FORMAT_VALUE: &[u8] = b"dreamlog-store/1";

/// Meta keys of receipts: this prefix, then the batch's first position (8 bytes BE).
/// In `meta`, not a column family of their own, so a build that predates receipts opens
/// a database holding them (and ignores them).
pub const RECEIPT_PREFIX: &[u8] = b"receipt/";

/// The meta key of the receipt of the batch starting at `position`.
pub fn receipt_key(position: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(RECEIPT_PREFIX.len() + 8);
    k.extend_from_slice(RECEIPT_PREFIX);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// The position of a receipt key (`None`: not a receipt key).
pub fn receipt_position(key: &[u8]) -> Option<u64> {
    let p = key.strip_prefix(RECEIPT_PREFIX)?;
    Some(u64::from_be_bytes(p.try_into().ok()?))
}

/// Meta keys of scrubs pending: this prefix, then a redacted record's position (8 bytes
/// BE). Written in the redaction's own atomic write, deleted once the old bytes left the
/// files (flush, then compaction to the last level); a crash in between leaves the key,
/// and the next open finishes the scrub.
pub const SCRUB_PREFIX: &[u8] = b"scrub/";

/// The meta key of the pending scrub of the record at `position`.
pub fn scrub_key(position: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(SCRUB_PREFIX.len() + 8);
    k.extend_from_slice(SCRUB_PREFIX);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// The position of a pending-scrub key (`None`: not one).
pub fn scrub_position(key: &[u8]) -> Option<u64> {
    let p = key.strip_prefix(SCRUB_PREFIX)?;
    Some(u64::from_be_bytes(p.try_into().ok()?))
}

/// Record flag: the body has been redacted (the record holds no body bytes).
pub const FLAG_REDACTED: u8 = 0x01;

/// Log key of a position.
pub fn pos_key(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

/// Stream index key: the stream name, a 0x00 separator (names hold no control
/// characters), the version.
pub fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 9);
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// The prefix shared by every index key of one stream.
pub fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 1);
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k
}

/// Splits a stream index key into stream name and version.
pub fn split_stream_key(key: &[u8]) -> Option<(&str, u64)> {
    if key.len() < 9 {
        return None;
    }
    let (name, rest) = key.split_at(key.len() - 9);
    if rest[0] != 0 {
        return None;
    }
    Some((std::str::from_utf8(name).ok()?, be_u64(&rest[1..])?))
}

/// Bytes of a record before the header: flags, version, id, header length.
pub const RECORD_PREFIX: usize = 1 + 8 + 32 + 4;

/// The log record: `flags` (1 byte), stream version (8 bytes BE), event id (32 bytes,
/// so reads need not hash), header length (4 bytes BE), header bytes, body bytes (when
/// redacted: the stand-in's, which the header's hash does not cover).
pub fn encode_record(version: u64, id: &EventId, header: &[u8], body: &[u8]) -> Vec<u8> {
    encode_record_with(0, version, id, header, body)
}

/// The record of an event the writer staged (redacted when it carries a redaction over).
pub fn encode_staged(s: &super::Staged) -> Vec<u8> {
    let e = &s.event;
    if e.redacted {
        encode_redacted(s.version, &e.id, &e.header_bytes, &e.body_bytes)
    } else {
        encode_record(s.version, &e.id, &e.header_bytes, &e.body_bytes)
    }
}

/// A redacted record: the flag set, the header kept, the stand-in in the body's place.
pub fn encode_redacted(version: u64, id: &EventId, header: &[u8], stand_in: &[u8]) -> Vec<u8> {
    encode_record_with(FLAG_REDACTED, version, id, header, stand_in)
}

fn encode_record_with(flags: u8, version: u64, id: &EventId, header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD_PREFIX + header.len() + body.len());
    r.push(flags);
    r.extend_from_slice(&version.to_be_bytes());
    r.extend_from_slice(&id.0);
    r.extend_from_slice(&(header.len() as u32).to_be_bytes());
    r.extend_from_slice(header);
    r.extend_from_slice(body);
    r
}

/// A log record split into its parts (borrowed).
pub struct RecordParts<'a> {
    /// Flags byte.
    pub flags: u8,
    /// Stream version.
    pub version: u64,
    /// The id stored with the record (recomputed and compared by `verify`).
    pub id: EventId,
    /// Header bytes.
    pub header: &'a [u8],
    /// Body bytes: when redacted, the stand-in's (docs/reference/FORMAT.md §7).
    pub body: &'a [u8],
}

/// Splits a log record; `None` when it is too short or has unknown flags.
pub fn split_record(r: &[u8]) -> Option<RecordParts<'_>> {
    if r.len() < RECORD_PREFIX {
        return None;
    }
    let flags = r[0];
    if flags & !FLAG_REDACTED != 0 {
        return None;
    }
    let version = be_u64(&r[1..9])?;
    let id = EventId(r[9..41].try_into().ok()?);
    let hlen = u32::from_be_bytes(r[41..45].try_into().ok()?) as usize;
    let header = r.get(RECORD_PREFIX..RECORD_PREFIX + hlen)?;
    let body = &r[RECORD_PREFIX + hlen..];
    Some(RecordParts { flags, version, id, header, body })
}

/// The id index value for a position.
pub fn id_value(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

/// Converts an id to its index key.
pub fn id_key(id: &EventId) -> &[u8] {
    &id.0
}
