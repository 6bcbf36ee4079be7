//! The log of record behind a narrow interface.
//!
//! A [`Log`] is a backend: it stores records (the event bytes at gapless positions), the
//! two indexes that belong to the log itself (event id → position, stream and version →
//! position) and the derived key spaces the projectors fill. It knows nothing of the
//! append rules: expected versions, idempotency, chaining, causes and group commit live
//! once, in the writer above every backend (`store/writer.rs`), and the engine
//! ([`super::Store`]) is the same over every backend.
//!
//! Backends: `dreamlog_rocks::RocksLog` (the embedded default, its own crate),
//! [`super::RamLog`] (in memory: tests, and a second backend the property tests compare
//! with RocksDB), and
//! [`super::FaultyLog`] (wraps another to fail writes and syncs, tear groups and lose what
//! was not synced: tests of the engine's invariants).

use std::path::{Path, PathBuf};

use crate::core::projection::{IndexEntry, Space};
use crate::core::{EventId, SealedEvent};
use crate::error::Result;

/// One acknowledged event found in a write-ahead log: its position and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WalEvent {
    /// Global position.
    pub position: u64,
    /// Event id.
    pub id: EventId,
}

/// Where a backend's write-ahead log is damaged and what its framing says about it
/// (RocksDB's: `dreamlog_rocks::wal`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WalDamage {
    /// The WAL file.
    pub file: PathBuf,
    /// Byte offset of the first bad record.
    pub offset: u64,
    /// What is wrong there.
    pub reason: String,
    /// Whether it is only an incomplete final record (a torn write): tolerated.
    pub torn_tail: bool,
    /// The last event position intact before the damage, if any.
    pub last_good: Option<u64>,
    /// Events of the damaged record itself, read best effort (its checksum failed, so
    /// these are what it seems to hold).
    pub in_damaged: Vec<WalEvent>,
    /// Events in intact records after the damage (what RocksDB would drop).
    pub after: Vec<WalEvent>,
}

impl WalDamage {
    /// The refusal a damaged WAL earns at open.
    pub fn error(&self, db: &Path) -> crate::error::Error {
        let mut after = match (self.after.first(), self.after.last()) {
            (Some(a), Some(b)) => format!(
                "{} intact event(s) follow it (positions {}..={}) that opening would drop",
                self.after.len(),
                a.position,
                b.position
            ),
            _ if self.torn_tail => "nothing intact follows it".to_owned(),
            _ => "intact records follow it".to_owned(),
        };
        if let (Some(a), Some(b)) = (self.in_damaged.first(), self.in_damaged.last()) {
            after = format!("the damaged record seems to hold positions {}..={}; {after}", a.position, b.position);
        }
        crate::error::Error::Log(crate::error::LogError::WalDamaged {
            db: db.display().to_string(),
            detail: format!(
                "the write-ahead log {} is damaged at byte {} ({}); the log is intact up to {} and {after}",
                self.file.display(),
                self.offset,
                self.reason,
                self.last_good.map_or("no event".into(), |p| format!("position {p}")),
            ),
        })
    }
}

/// One event of a group, with the position and version the writer gave it.
#[derive(Clone, Debug)]
pub struct Staged {
    /// Global position.
    pub position: u64,
    /// Version in its stream.
    pub version: u64,
    /// The event.
    pub event: SealedEvent,
    /// The receipt of the batch this event starts (`core::receipt::Receipt` bytes), stored
    /// under its position: on the first event of each batch that has one.
    pub receipt: Option<Vec<u8>>,
}

/// What the writer commits at once: records, their derived entries, the new end.
#[derive(Clone, Debug)]
pub struct Group {
    /// The events, at consecutive positions.
    pub events: Vec<Staged>,
    /// The projectors' entries for those events.
    pub index: Vec<IndexEntry>,
    /// The log's length once the group is in: the commit marker (the projectors'
    /// checkpoints follow it: their entries are in the same write).
    pub end: u64,
    /// Records below the marker replaced in the same write: redactions only (the one
    /// change a record ever sees: its body goes, its header stays).
    pub rewrites: Vec<(u64, Vec<u8>)>,
    /// Derived spaces emptied in the same write.
    pub clear: Vec<Space>,
}
// A replicated backend makes a write conditional on the stream heads the writer checked
// it against: each stream's first event in the group names it (its version − 1, or no
// stream when the version is 0), so the group carries nothing more.

/// A backend for the log of record.
///
/// Contract: [`Log::write`] is atomic (after any crash, all of a group or none of it is
/// read back, and the marker moves with it); reads see every completed write; positions
/// below the marker are never changed but by a group's `rewrites` (redaction). A backend may hold records past the marker (a
/// torn group left by a crash); the engine drops them with [`Log::truncate`] at open.
pub trait Log: Send + Sync + 'static {
    /// What and where the backend is (for messages).
    fn describe(&self) -> String;

    /// The log's length as recorded by the last complete group; `None` for a log written
    /// before markers were kept (then every stored record counts).
    fn marker(&self) -> Result<Option<u64>>;
    /// One past the last stored record (0 when empty).
    fn stored_end(&self) -> Result<u64>;
    /// Removes the records at `end` and after, with their id and stream index entries and
    /// derived entries, and sets the marker to `end`.
    fn truncate(&self, end: u64) -> Result<()>;
    /// Writes a group atomically; with `sync`, durable before it returns.
    fn write(&self, group: &Group, sync: bool) -> Result<()>;

    /// The receipt (`core::receipt::Receipt` bytes) stored at the greatest position at or
    /// before `position`, with that position: the receipt of the batch holding the event
    /// at `position`, if that batch has one (the caller checks its count reaches it).
    fn receipt_at_or_before(&self, position: u64) -> Result<Option<(u64, Vec<u8>)>>;
    /// Every receipt at `from` or after, in position order, until `f` returns false.
    fn receipts(&self, from: u64, f: &mut dyn FnMut(u64, &[u8]) -> Result<bool>) -> Result<()>;

    /// A value of the store's own (`meta` key `own/KEY`: the tenant a server's database
    /// belongs to), copied with a backup.
    fn own(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets such a value (durably).
    fn set_own(&self, key: &str, value: &[u8]) -> Result<()>;

    /// The raw record at a position.
    fn record(&self, position: u64) -> Result<Option<Vec<u8>>>;
    /// Calls `f` with each record from `from` up to (not including) `end`, in order, until
    /// it returns false.
    fn scan(&self, from: u64, end: u64, f: &mut dyn FnMut(u64, &[u8]) -> Result<bool>) -> Result<()>;
    /// Calls `f` with the records at ascending `positions`; a missing one is an error.
    fn records(&self, positions: &[u64], f: &mut dyn FnMut(u64, &[u8]) -> Result<()>) -> Result<()>;

    /// Where an event id is.
    fn position_of(&self, id: &EventId) -> Result<Option<u64>>;
    /// Calls `f` with (id bytes, position) of each id-index entry from `start` in byte
    /// order, until it returns false.
    fn ids_from(&self, start: &[u8], f: &mut dyn FnMut(&[u8], Option<u64>) -> bool) -> Result<()>;

    /// A stream's last (version, position).
    fn stream_last(&self, stream: &str) -> Result<Option<(u64, u64)>>;
    /// The position of one version of a stream.
    fn stream_position(&self, stream: &str, version: u64) -> Result<Option<u64>>;
    /// Positions of up to `limit` versions of a stream from `from_version`, in order.
    fn stream_positions(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<u64>>;
    /// Every stream with its last version, in byte order of names.
    fn streams(&self) -> Result<Vec<(String, u64)>>;
    /// Number of stream-index entries (one per event in a sound log).
    fn stream_entries(&self) -> Result<u64>;

    /// Calls `f` with each entry of a derived space from key `from` in byte order, until
    /// it returns false.
    fn index_scan(&self, space: Space, from: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;
    /// The last entry of a space whose key is at or before `key`.
    fn index_last_at_or_before(&self, space: Space, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>>;
    /// Writes entries outside a group (snapshots, rebuilds).
    fn index_put(&self, entries: &[IndexEntry]) -> Result<()>;
    /// Deletes every entry of a space whose key is in `[from, to)`.
    fn index_delete_range(&self, space: Space, from: &[u8], to: &[u8]) -> Result<()>;
    /// Deletes every entry of a space.
    fn index_clear(&self, space: Space) -> Result<()>;
    /// How far a projector got: its own record while it is behind (a rebuild or a
    /// catch-up in progress), otherwise the commit marker (a group's projector entries are
    /// written with its records, so in step with the log); `None`: never recorded.
    fn projected_to(&self, projector: &str) -> Result<Option<u64>>;
    /// Records how far a projector got (`None`: it is in step with the marker again).
    fn set_projected_to(&self, projector: &str, position: Option<u64>) -> Result<()>;

    /// Records the count of acknowledged events (a backend that keeps it checks it at
    /// open; see `dreamlog_rocks::wal`).
    fn record_acknowledged(&self, _count: u64) -> Result<()> {
        Ok(())
    }
    /// After a redaction: makes the replaced records' old bytes leave the backend's files
    /// (RocksDB: flush, then compact the affected ranges down to the last level, so the
    /// WAL and tables holding them are deleted). In memory: nothing to do.
    fn scrub(&self, _positions: &[u64]) -> Result<()> {
        Ok(())
    }
    /// Makes everything written so far durable and compact (RocksDB: memtables to tables).
    fn flush(&self) -> Result<()> {
        Ok(())
    }
    /// Writes a consistent copy of the whole log into the new folder `dir` while writes go
    /// on (RocksDB: a checkpoint — tables hard-linked where the file system allows,
    /// copied otherwise), holding at least the first `acknowledged` events. A backend
    /// without storage of its own refuses.
    fn backup(&self, dir: &std::path::Path, _acknowledged: u64) -> Result<()> {
        Err(crate::error::Error::Log(crate::error::LogError::Storage(format!(
            "{} cannot be backed up (it has no storage of its own): {} was not written",
            self.describe(),
            dir.display()
        ))))
    }
    /// Called once when the engine closes, after the writer stopped.
    fn close(&self, _count: u64) -> Result<()> {
        Ok(())
    }
    /// Positions of redacted records whose scrub has not finished (a crash came between
    /// the redaction's write and the end of its scrub), in order.
    fn pending_scrubs(&self) -> Result<Vec<u64>> {
        Ok(Vec::new())
    }
    /// The backend's own storage checks for `verify --deep` (RocksDB: every block of every
    /// table file against its checksum; no copy of a `redacted` record — position → id —
    /// as it was before its redaction); problems are pushed to `report`.
    fn verify_storage(
        &self,
        _report: &mut super::VerifyReport,
        _redacted: &std::collections::HashMap<u64, EventId>,
    ) -> Result<()> {
        Ok(())
    }
    /// The incomplete final write-ahead-log record the open dropped (a crash mid-write:
    /// never an acknowledged batch under `fsync`), with where a copy was kept.
    fn torn_tail(&self) -> Option<&(WalDamage, PathBuf)> {
        None
    }
    /// Why the check for a cut or removed write-ahead log cannot be made now.
    fn acked_problem(&self) -> Option<String> {
        None
    }
    /// The backend's folder, if it keeps one.
    fn path(&self) -> Option<&Path> {
        None
    }
    /// The backend as `Any` (to reach a backend's own operations).
    fn as_any(&self) -> &dyn std::any::Any;
}
