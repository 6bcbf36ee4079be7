//! The storage engine ([`Store`]) over a backend for the log of record ([`Log`]: in
//! memory or a fault-injecting wrapper here; RocksDB in `dreamlog-rocks`; a cluster's
//! replicated log of record, [`replica::LogOfRecord`], on NATS JetStream in
//! `dreamlog-jetstream`).
//!
//! Architecture invariant, kept by the compiler: this crate names no backend's client.
//! The engine owns the append rules (one writer thread: expected versions, idempotency, chaining,
//! group commit, poisoning), the projectors' catch-up and rebuild, and subscriptions; a
//! backend only stores and reads.
//!
//! This crate is the layer above `dreamlog-core` (re-exported as [`core`]) and below
//! everything else; [`error`] holds the errors every layer shares.

#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

pub use dreamlog_core as core;
pub mod error;
mod faulty;
// The record and key layout a backend stores (RocksDB's; the in-memory log keeps its own
// maps but the same records).
pub mod layout;
mod log;
pub mod metrics;
pub mod principal;
mod ramlog;
pub mod replica;
mod subscribe;
mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

pub use crate::core::ExpectedVersion;
pub use faulty::{Fault, FaultyLog};
pub use layout::{
    ALL_CFS, CF_CITES, CF_IDS, CF_KINDS, CF_LEDGER, CF_LOG, CF_MARKS, CF_META, CF_PATHS, CF_SESSIONS, CF_SNAPSHOTS,
    CF_STREAMS,
};
pub use log::{Group, Log, Staged, WalDamage, WalEvent};
pub use ramlog::RamLog;
pub use subscribe::{Subscription, TailBudget};
pub use verify::{VerifyProblem, VerifyReport};
pub use writer::{now_ms, AppendBatch, Appended};

use crate::core::projection::{self, be_u64, IndexEntry, Projected, Space, PROJECTORS};
use crate::core::{Event, EventId, Kind};
use crate::error::LogError;
use crate::error::{Error, Result};

/// The backend's own key naming the projectors a database keeps in step with its writes
/// (comma-separated), written once they are all caught up.
const PROJECTORS_KEPT: &str = "projectors";

/// The projectors every database kept before it recorded which (format 1 up to the
/// `ledger` and `marks` projectors).
const PROJECTORS_BEFORE_THE_RECORD: [&str; 4] = ["kinds", "paths", "sessions", "cites"];

/// When an append is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// After the batch is in the WAL (survives a process crash, not a power loss).
    None,
    /// After the WAL is synced to disk (survives a power loss). The default.
    #[default]
    Fsync,
}

impl FromStr for SyncMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(SyncMode::None),
            "fsync" => Ok(SyncMode::Fsync),
            _ => Err(format!("unknown sync mode {s:?}: expected none or fsync")),
        }
    }
}

/// Store settings. Memory budgets are explicit.
#[derive(Clone, Debug)]
pub struct Options {
    /// Durability of acknowledged appends.
    pub sync: SyncMode,
    /// Create the database when it does not exist.
    pub create_if_missing: bool,
    /// Shared block cache, bytes.
    pub block_cache_bytes: usize,
    /// Memtable size per column family, bytes.
    pub write_buffer_bytes: usize,
    /// Largest body accepted, bytes.
    pub max_body_bytes: u64,
    /// How far ahead of this store's clock a new event may be stamped, ms (past times are
    /// always accepted: imports keep the times their runs had).
    pub max_clock_skew_ms: u64,
    /// Most events in one append batch.
    pub max_batch_events: usize,
    /// Most events the writer commits in one group (one WriteBatch, one sync).
    pub max_group_events: usize,
    /// Open a database whose WAL is damaged at its last good point, dropping what follows
    /// (only `dreamlog recover` does this, after keeping the files aside and reporting).
    pub drop_damaged_wal_tail: bool,
}

impl Options {
    /// These settings for a node whose log of record is `replica`: a batch capped at the
    /// log of record's atomic limit, a body at its message size; the local backend is
    /// not synced (the log of record is what survives).
    pub fn for_log_of_record(mut self, replica: &dyn replica::LogOfRecord) -> Options {
        self.max_batch_events = self.max_batch_events.min(replica.max_batch());
        self.max_group_events = self.max_group_events.min(replica.max_batch());
        // Room for the header (up to 4,096 causes) and the message's own headers.
        self.max_body_bytes = self.max_body_bytes.min(replica.max_payload().saturating_sub(256 << 10));
        self.sync = SyncMode::None;
        self
    }
}

/// How far ahead of the clock a new event may be stamped by default: 5 minutes.
pub const DEFAULT_CLOCK_SKEW_MS: u64 = 300_000;

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: SyncMode::Fsync,
            create_if_missing: true,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
            max_body_bytes: 16 << 20,
            max_clock_skew_ms: DEFAULT_CLOCK_SKEW_MS,
            max_batch_events: 100_000,
            max_group_events: 20_000,
            drop_damaged_wal_tail: false,
        }
    }
}

/// An event as stored: its global position, stream version and content.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Global position.
    pub position: u64,
    /// Version within its stream.
    pub version: u64,
    /// Whether the body has been redacted.
    pub redacted: bool,
    /// The event.
    pub event: Event,
    /// Who wrote it, from its batch's receipt: filled where it is shown (`show`,
    /// history, exports, blame, the timeline), `None` elsewhere and for events written
    /// without one.
    pub received: Option<crate::core::receipt::Received>,
}

impl StoredEvent {
    /// The event id.
    pub fn id(&self) -> EventId {
        self.event.id
    }

    /// The JSON form with position, id and version.
    pub fn to_json(&self) -> crate::core::EventJson {
        let mut j = crate::core::EventJson::from_event(&self.event, self.position, self.version);
        j.redacted = self.redacted.then(|| crate::core::event::Redaction::of(&self.event.header));
        j.received = self.received.clone();
        j
    }

    /// Rebuilds an event from its JSON form, recomputing its id (a form whose id does
    /// not match its content is refused); a form without a position or version reads
    /// as 0.
    pub fn from_json(j: crate::core::EventJson) -> std::result::Result<StoredEvent, crate::core::FormatError> {
        let version = j.version.unwrap_or(0);
        let received = j.received.clone();
        let (position, sealed) = j.into_sealed()?;
        let redacted = sealed.redacted;
        Ok(StoredEvent { position: position.unwrap_or(0), version, redacted, event: sealed.into_event(), received })
    }
}

/// The JSON form ([`StoredEvent::to_json`]).
impl serde::Serialize for StoredEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// From the JSON form, the id recomputed ([`StoredEvent::from_json`]).
impl<'de> serde::Deserialize<'de> for StoredEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        StoredEvent::from_json(crate::core::EventJson::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Counts published by the writer: readers wait on these to follow the log live.
pub(crate) struct Committed {
    /// Number of committed events (= next global position).
    pub count: Mutex<u64>,
    /// Signalled after every commit.
    pub changed: Condvar,
    /// The same count for async waiters.
    pub watch: tokio::sync::watch::Sender<u64>,
}

pub(crate) struct Inner {
    pub log: Arc<dyn Log>,
    pub opts: Options,
    pub committed: Arc<Committed>,
    pub poisoned: Arc<Mutex<Option<String>>>,
    pub writer: Mutex<Option<writer::WriterHandle>>,
    pub writer_thread: Mutex<Option<JoinHandle<()>>>,
    pub closed: Arc<AtomicBool>,
    /// Held while `ACKED` is written: the recorder thread and close write it through one
    /// temporary file, and a count the recorder read before close must not land after
    /// close's final one.
    pub acked: Arc<Mutex<()>>,
    /// Append counters (`GET /metrics`).
    pub metrics: metrics::AppendMetrics,
    /// What opening found and set right (a torn group dropped, projectors caught up).
    pub opened: OpenReport,
    /// Redactions so far in this process. A snapshot is stored only if none happened
    /// since the fold that made it began (its state may hold removed text); a redaction
    /// writes and counts under this lock.
    pub redactions: Mutex<u64>,
    /// The replicated log of record and its follower, when this store is a projection.
    pub replica: Option<Arc<dyn replica::LogOfRecord>>,
    pub follower: Mutex<Option<Box<dyn replica::Follower>>>,
}

/// The redactions a fold began after ([`Store::snapshot_epoch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotEpoch(u64);

/// What the engine found and set right when it opened a log.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OpenReport {
    /// Records past the commit marker (a group a crash tore) that were dropped: never
    /// acknowledged, since a group is acknowledged only after its write returned.
    pub torn_records: u64,
    /// Projectors that were behind the log, with the position each caught up from.
    pub caught_up: Vec<(String, u64)>,
    /// Redacted records whose scrub a crash interrupted, finished by this open (their old
    /// bytes are now in no file).
    pub scrubs_finished: Vec<u64>,
    /// Why finishing those scrubs failed (they stay pending: `verify --deep` names them).
    pub scrub_failed: Option<String>,
}

/// What `reindex` rebuilt.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReindexReport {
    /// Events read.
    pub events: u64,
    /// Entries written, per space.
    pub entries: Vec<(String, u64)>,
    /// Snapshots dropped (rebuilt on demand).
    pub snapshots_dropped: u64,
}

/// A dreamlog event store: the engine over one backend, one writer thread, any number of
/// readers. Cloning is cheap and shares the store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Events read per chunk when projectors catch up or rebuild.
const PROJECT_CHUNK: u64 = 4096;

/// Runs every projector over `[from, to)` of the log, writing their entries in chunks
/// (then the checkpoints); `progress` gets the events done. Returns entries per space.
fn project_range(log: &dyn Log, from: u64, to: u64, mut progress: impl FnMut(u64)) -> Result<Vec<u64>> {
    let mut per_space = vec![0u64; Space::ALL.len()];
    let mut at = from;
    while at < to {
        let end = (at + PROJECT_CHUNK).min(to);
        let mut entries: Vec<IndexEntry> = Vec::new();
        log.scan(at, end, &mut |pos, raw| {
            let e = decode_record(pos, raw)?;
            let body = Some(&e.event.body);
            projection::project(
                &Projected { position: pos, version: e.version, header: &e.event.header, body },
                &mut entries,
            );
            Ok(true)
        })?;
        for x in &entries {
            per_space[Space::ALL.iter().position(|s| *s == x.space).unwrap_or(0)] += 1;
        }
        log.index_put(&entries)?;
        at = end;
        progress(at - from);
    }
    // Caught up: from here on each projector moves with the commit marker.
    if log.marker()?.is_none() {
        log.truncate(to)?; // a log from before markers: record it (drops nothing)
    }
    for p in PROJECTORS {
        log.set_projected_to(p.name, None)?;
    }
    Ok(per_space)
}

impl Store {
    /// A store held in memory (nothing survives the process).
    pub fn in_memory(opts: Options) -> Result<Store> {
        Store::with_log(Arc::new(RamLog::new()), opts)
    }

    /// Opens the engine over any backend: drops a torn group past the commit marker,
    /// brings every projector up to the end of the log, then starts the writer.
    pub fn with_log(log: Arc<dyn Log>, opts: Options) -> Result<Store> {
        Store::open_engine(log, opts, None)
    }

    /// Opens the engine over a local backend as a projection of a replicated log of
    /// record (a cluster node): appends go to `replica` as atomic batches, and everything
    /// it holds — whoever wrote it — is applied here in its order, from where this
    /// backend stopped (a new node starts from the first event). `opts` are taken through
    /// [`Options::for_log_of_record`] (a backend opened for it should be opened with them).
    pub fn with_log_of_record(
        log: Arc<dyn Log>,
        opts: Options,
        replica: Arc<dyn replica::LogOfRecord>,
    ) -> Result<Store> {
        let opts = opts.for_log_of_record(replica.as_ref());
        Store::open_engine(log, opts, Some(replica))
    }

    /// The log of record this store is a projection of, if it is one.
    pub fn log_of_record(&self) -> Option<&Arc<dyn replica::LogOfRecord>> {
        self.inner.replica.as_ref()
    }

    /// The committed count as it changes (async waiters: a server holding a request
    /// until this node has applied a position).
    pub fn watch_len(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.committed.watch.subscribe()
    }

    fn open_engine(log: Arc<dyn Log>, opts: Options, replica: Option<Arc<dyn replica::LogOfRecord>>) -> Result<Store> {
        let open_err = |reason: String| Error::Log(LogError::Open { path: log.describe(), reason });
        let stored = log.stored_end()?;
        let count = log.marker()?.unwrap_or(stored);
        let mut opened = OpenReport::default();
        if count > stored {
            return Err(open_err(format!(
                "its commit marker says the log holds {count} events, but only positions below {stored} are stored: acknowledged events are missing"
            )));
        }
        if stored > count {
            // Records past the marker belong to a group whose write never completed (the
            // marker moves in the same atomic write as the records).
            tracing::warn!(
                "{}: dropping {} records of an incomplete write past position {count}",
                log.describe(),
                stored - count
            );
            log.truncate(count)?;
            opened.torn_records = stored - count;
        }
        // The projectors this database keeps in step with every write (`own/projectors`):
        // one it does not name is new to it — its progress is not the commit marker's
        // but nothing, and it is built from the log now. A database from before the record
        // kept the four projectors of its time.
        let kept: Vec<String> = match log.own(PROJECTORS_KEPT)? {
            Some(names) => String::from_utf8_lossy(&names).split(',').map(str::to_owned).collect(),
            None => PROJECTORS_BEFORE_THE_RECORD.iter().map(|n| (*n).to_owned()).collect(),
        };
        let behind = PROJECTORS
            .iter()
            .map(|p| if kept.iter().any(|k| k == p.name) { log.projected_to(p.name) } else { Ok(None) })
            .collect::<Result<Vec<_>>>()?;
        if behind.iter().any(|c| *c != Some(count)) {
            // A projector that never recorded a checkpoint starts from a clean space.
            for (p, c) in PROJECTORS.iter().zip(&behind) {
                if c.is_none() {
                    log.index_clear(p.space)?;
                }
                if c.unwrap_or(0) < count {
                    opened.caught_up.push((p.name.to_owned(), c.unwrap_or(0)));
                }
            }
            let from = behind.iter().map(|c| c.unwrap_or(0)).min().unwrap_or(0).min(count);
            project_range(log.as_ref(), from, count, |_| {})?;
        }
        let names = PROJECTORS.iter().map(|p| p.name).collect::<Vec<_>>().join(",");
        if kept.join(",") != names {
            // Every projector is up to the log now: from here on each write keeps them.
            log.set_own(PROJECTORS_KEPT, names.as_bytes())?;
        }
        // A crash between a redaction's write and the end of its scrub: finish it now.
        let pending = log.pending_scrubs()?;
        if !pending.is_empty() {
            match log.scrub(&pending) {
                Ok(()) => opened.scrubs_finished = pending,
                Err(e) => {
                    tracing::warn!("{}: the scrub of redacted records {pending:?} did not finish: {e}", log.describe());
                    opened.scrub_failed = Some(format!("records {pending:?}: {e}"));
                }
            }
        }
        if let Some(r) = &replica {
            // A node's database must be a projection of this very log: no longer than it,
            // and holding its event where it ends.
            let end = r.end()?;
            if count > end {
                return Err(open_err(format!(
                    "it holds {count} events but the log of record ({}) holds {end}: it is not a projection of that log (an embedded database, or one of a stream that was recreated); start the node on an empty --db (to move an embedded store into a cluster: `dreamlog --db OLD export | dreamlog --remote NODE import -`)",
                    r.describe()
                )));
            }
            if count > 0 {
                let raw = log.record(count - 1)?.ok_or(Error::Log(LogError::NoSuchPosition(count - 1)))?;
                let local = layout::split_record(&raw).map(|p| p.id);
                let theirs = r.id_at(count - 1)?;
                if local.is_none() || local != theirs {
                    return Err(open_err(format!(
                        "its event at position {} is {}, the log of record's ({}) is {}: it is not a projection of that log; start the node on an empty --db",
                        count - 1,
                        local.map(|i| i.to_hex()).unwrap_or_else(|| "unreadable".into()),
                        r.describe(),
                        theirs.map(|i| i.to_hex()).unwrap_or_else(|| "missing".into())
                    )));
                }
            }
        }
        let (watch, _) = tokio::sync::watch::channel(count);
        let committed = Arc::new(Committed { count: Mutex::new(count), changed: Condvar::new(), watch });
        let poisoned = Arc::new(Mutex::new(None));
        let (handle, thread) =
            writer::spawn(log.clone(), opts.clone(), count, committed.clone(), poisoned.clone(), replica.clone())?;
        let follower = match &replica {
            Some(r) => Some(r.follow(count, handle.sink(), committed.watch.subscribe())?),
            None => None,
        };
        let (closed, acked) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(())));
        if opts.sync == SyncMode::Fsync {
            spawn_acked_recorder(Arc::downgrade(&log), committed.clone(), closed.clone(), acked.clone());
        }
        Ok(Store {
            inner: Arc::new(Inner {
                log,
                opts,
                committed,
                poisoned,
                writer: Mutex::new(Some(handle)),
                writer_thread: Mutex::new(Some(thread)),
                closed,
                acked,
                metrics: Default::default(),
                opened,
                redactions: Mutex::new(0),
                replica,
                follower: Mutex::new(follower),
            }),
        })
    }

    /// The backend.
    pub fn log(&self) -> &Arc<dyn Log> {
        &self.inner.log
    }

    /// What opening found and set right.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.opened
    }

    /// The incomplete final WAL record this open dropped (a crash mid-write: never an
    /// acknowledged batch under `fsync`), with where a copy of the WAL was kept (RocksDB).
    pub fn torn_tail(&self) -> Option<&(WalDamage, PathBuf)> {
        self.inner.log.torn_tail()
    }

    /// Why the check for a cut or removed write-ahead log cannot be made now (`ACKED`
    /// damaged, or removed from a database that keeps one).
    pub fn acked_problem(&self) -> Option<String> {
        self.inner.log.acked_problem()
    }

    /// The database directory (a backend on disk: RocksDB).
    pub fn path(&self) -> Option<&Path> {
        self.inner.log.path()
    }

    /// The settings the store was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// Appends a batch atomically (all events or none) and waits until it is durable per
    /// the sync mode. Events already in the log (same id) are not written again: their
    /// existing position is returned with `existed = true`.
    pub fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>> {
        let started = self.inner.metrics.start();
        let r = self.submit(batch).and_then(|rx| rx.blocking_recv().map_err(|_| Error::Log(LogError::Closed))?);
        self.inner.metrics.finish(started, r.as_ref().ok().map(Vec::len));
        r
    }

    /// Redacts the event at `position`: appends `drafts` (its `redact` event and stand-in
    /// note) and, in the same atomic write, replaces its record by its header with
    /// `stand_in` in the body's place, and empties the snapshots (which may hold the
    /// text); then scrubs the old bytes from the backend's files. The caller checks the
    /// event may be redacted and builds the stand-in (`core::redact`).
    pub fn redact(
        &self,
        position: u64,
        stand_in: &crate::core::Body,
        drafts: Vec<crate::core::Draft>,
    ) -> Result<Vec<Appended>> {
        self.redact_all(&[(position, stand_in.clone())], drafts)
    }

    /// [`Store::redact`] of several events in one atomic write (a session's or an
    /// actor's: one recorded act), then one scrub of them all. The write also records a
    /// pending scrub per record (backend meta), removed when the scrub is done: a crash
    /// in between leaves it, and the next open finishes the scrub.
    pub fn redact_all(
        &self,
        targets: &[(u64, crate::core::Body)],
        drafts: Vec<crate::core::Draft>,
    ) -> Result<Vec<Appended>> {
        let mut rewrites = Vec::with_capacity(targets.len());
        for (position, stand_in) in targets {
            let position = *position;
            let raw = self.inner.log.record(position)?.ok_or(Error::Log(LogError::NoSuchPosition(position)))?;
            let parts = layout::split_record(&raw)
                .ok_or_else(|| Error::Log(LogError::Corrupt { position, reason: "record layout is invalid".into() }))?;
            let header = crate::core::Header::decode(parts.header)
                .map_err(|e| Error::Log(LogError::Corrupt { position, reason: e.to_string() }))?;
            if stand_in.kind() != header.kind {
                return Err(Error::WrongEvent {
                    id: parts.id.to_hex(),
                    what: format!("a {} event", stand_in.kind().name()),
                });
            }
            rewrites
                .push((position, layout::encode_redacted(parts.version, &parts.id, parts.header, &stand_in.encode())));
        }
        let positions: Vec<u64> = rewrites.iter().map(|(p, _)| *p).collect();
        let mut batch = AppendBatch::new();
        batch.events = drafts;
        batch.rewrites = rewrites;
        batch.clear = vec![Space::Snapshots];
        let appended = {
            // Folds that began before this write cannot store their snapshots after it.
            let mut n = self.inner.redactions.lock().unwrap_or_else(|e| e.into_inner());
            let appended = self.append(batch)?;
            *n += 1;
            appended
        };
        self.inner.log.scrub(&positions)?;
        Ok(appended)
    }

    /// Runs the scrub of redacted records again (`redact` of an event redacted before):
    /// their old bytes leave the backend's files, whatever interrupted the first scrub.
    pub fn scrub(&self, positions: &[u64]) -> Result<()> {
        self.inner.log.scrub(positions)
    }

    /// Marks the database as tenant `name`'s (a server's tenants under `DB/tenants/NAME`),
    /// or checks the mark it has: a database marked for another tenant is refused, naming
    /// both (a backup of one tenant copied where another is configured is never served
    /// to the other's tokens). The mark travels with backups.
    pub fn claim_tenant(&self, name: &str) -> Result<()> {
        match self.inner.log.own("tenant")? {
            None => self.inner.log.set_own("tenant", name.as_bytes()),
            Some(mark) if mark == name.as_bytes() => Ok(()),
            Some(mark) => Err(Error::InvalidInput(format!(
                "{} holds tenant {:?}'s log, not tenant {name:?}'s: it is not served as {name:?} (move it back, or move its events with export | import into a new folder)",
                self.inner.log.describe(),
                String::from_utf8_lossy(&mark)
            ))),
        }
    }

    /// Who wrote the event at `position`: the receipt of its batch, if it has one.
    pub fn received(&self, position: u64) -> Result<Option<crate::core::receipt::Received>> {
        if position >= self.len() {
            return Ok(None);
        }
        let Some((first, bytes)) = self.inner.log.receipt_at_or_before(position)? else { return Ok(None) };
        let r = decode_receipt(first, &bytes)?;
        Ok((first.saturating_add(r.count) > position).then(|| r.received(first)))
    }

    /// Fills in who wrote each event (one receipt read per batch).
    pub fn with_received(&self, events: &mut [StoredEvent]) -> Result<()> {
        let mut last: Option<crate::core::receipt::Received> = None;
        for e in events.iter_mut() {
            if let Some(r) = last.as_ref().filter(|r| e.position >= r.batch && e.position < r.batch + r.events) {
                e.received = Some(r.clone());
                continue;
            }
            e.received = self.received(e.position)?;
            if e.received.is_some() {
                last = e.received.clone();
            }
        }
        Ok(())
    }

    /// Who wrote each event of an in-order read, a receipt lookup per batch rather than
    /// per event (exports).
    pub fn received_cursor(&self) -> ReceivedCursor<'_> {
        ReceivedCursor { store: self, current: None, next: None }
    }

    /// Every receipt at `from` or later, in position order (its batch's first position
    /// and the receipt), until `f` returns false.
    pub fn receipts(&self, from: u64, mut f: impl FnMut(u64, crate::core::receipt::Receipt) -> bool) -> Result<()> {
        let end = self.len();
        self.inner.log.receipts(from, &mut |p, bytes| {
            if p >= end {
                return Ok(false);
            }
            Ok(f(p, decode_receipt(p, bytes)?))
        })
    }

    /// The async form of [`Store::append`], for servers.
    pub async fn append_async(&self, batch: AppendBatch) -> Result<Vec<Appended>> {
        let started = self.inner.metrics.start();
        let r = match self.submit(batch) {
            Ok(rx) => rx.await.map_err(|_| Error::Log(LogError::Closed)).and_then(|r| r),
            Err(e) => Err(e),
        };
        self.inner.metrics.finish(started, r.as_ref().ok().map(Vec::len));
        r
    }

    /// The append counters since the store opened.
    pub fn append_stats(&self) -> metrics::AppendStats {
        self.inner.metrics.snapshot()
    }

    /// Bytes of the store's files on disk (0 for a store without a folder).
    pub fn disk_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        self.path().map_or(0, walk)
    }

    fn poison_reason(&self) -> Option<String> {
        self.inner.poisoned.lock().map(|p| p.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Why the store refuses writes, when it does (a write or sync failed).
    pub fn poisoned(&self) -> Option<String> {
        self.poison_reason()
    }

    fn submit(&self, batch: AppendBatch) -> Result<tokio::sync::oneshot::Receiver<Result<Vec<Appended>>>> {
        if let Some(reason) = self.poison_reason() {
            return Err(Error::Log(LogError::Poisoned(reason)));
        }
        if batch.events.len() > self.inner.opts.max_batch_events {
            return Err(Error::Log(LogError::BatchTooLarge {
                len: batch.events.len(),
                limit: self.inner.opts.max_batch_events,
            }));
        }
        let mut batch = batch;
        if batch.principal.is_none() {
            batch.principal = principal::current();
        }
        let guard = self.inner.writer.lock().map_err(|_| Error::Log(LogError::Closed))?;
        let handle = guard.as_ref().ok_or(Error::Log(LogError::Closed))?;
        handle.submit(batch)
    }

    /// Number of committed events; also the next global position.
    pub fn len(&self) -> u64 {
        *self.inner.committed.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn committed(&self) -> &Arc<Committed> {
        &self.inner.committed
    }

    /// A position readers may see: below the committed count (records past it belong to
    /// a write that failed, and are dropped when the store reopens).
    fn visible(&self, position: u64) -> bool {
        position < self.len()
    }

    /// The event at a global position.
    pub fn get_at(&self, position: u64) -> Result<StoredEvent> {
        if !self.visible(position) {
            return Err(Error::Log(LogError::NoSuchPosition(position)));
        }
        let raw = self.inner.log.record(position)?.ok_or(Error::Log(LogError::NoSuchPosition(position)))?;
        decode_record(position, &raw)
    }

    /// The position of an event id, if stored.
    pub fn position_of(&self, id: &EventId) -> Result<Option<u64>> {
        Ok(self.inner.log.position_of(id)?.filter(|p| self.visible(*p)))
    }

    /// The event with this id.
    pub fn get(&self, id: &EventId) -> Result<StoredEvent> {
        let pos = self.position_of(id)?.ok_or_else(|| Error::NotFound(format!("no event with id {}", id.to_hex())))?;
        self.get_at(pos)
    }

    /// Resolves a full id or a unique hex prefix of one. An ambiguous prefix is an error
    /// listing (up to 8 of) the candidates.
    pub fn resolve_id(&self, hex_prefix: &str) -> Result<EventId> {
        let p = hex_prefix.trim().to_ascii_lowercase();
        if p.is_empty() || p.len() > 64 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::BadIdPrefix(hex_prefix.to_owned()));
        }
        // Whole bytes of the prefix select the key range; an odd last nibble filters.
        let even = &p[..p.len() & !1];
        let start = hex::decode(even).map_err(|_| Error::BadIdPrefix(hex_prefix.to_owned()))?;
        let nibble = (p.len() % 2 == 1).then(|| u8::from_str_radix(&p[p.len() - 1..], 16).unwrap_or(0));
        let mut seek = start.clone();
        if let Some(n) = nibble {
            seek.push(n << 4);
        }
        let mut found = Vec::new();
        let mut more = false;
        let end = self.len();
        self.inner.log.ids_from(&seek, &mut |key, pos| {
            if !key.starts_with(&start) {
                return false;
            }
            if let Some(n) = nibble {
                if key.get(start.len()).map(|b| b >> 4) != Some(n) {
                    return false;
                }
            }
            if pos.is_none_or(|p| p >= end) {
                return true;
            }
            if found.len() == 8 {
                more = true;
                return false;
            }
            if let Ok(id) = <[u8; 32]>::try_from(key) {
                found.push(EventId(id));
            }
            true
        })?;
        match found.len() {
            0 => Err(Error::NotFound(format!("no event with id {hex_prefix}"))),
            1 => Ok(found[0]),
            _ => Err(Error::AmbiguousPrefix { prefix: hex_prefix.to_owned(), candidates: found, more }),
        }
    }

    /// Up to `limit` events from global position `from`, in order.
    pub fn read_range(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::with_capacity(limit.min(4096));
        self.scan(from, |e| {
            out.push(e);
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Calls `f` for each event from position `from` on, in order, until it returns
    /// false or the committed end is reached.
    pub fn scan(&self, from: u64, mut f: impl FnMut(StoredEvent) -> bool) -> Result<()> {
        self.scan_raw(from, |pos, raw| Ok(f(decode_record(pos, raw)?)))
    }

    /// Like [`Store::scan`] but hands over the raw record bytes (for verify and export).
    pub(crate) fn scan_raw(&self, from: u64, mut f: impl FnMut(u64, &[u8]) -> Result<bool>) -> Result<()> {
        self.inner.log.scan(from, self.len(), &mut f)
    }

    /// The last version of a stream, `None` when it does not exist.
    pub fn stream_version(&self, stream: &str) -> Result<Option<u64>> {
        Ok(self.stream_last(stream)?.map(|(v, _)| v))
    }

    /// A stream's head: its current version and last event's id.
    pub fn stream_head(&self, stream: &str) -> Result<Option<(u64, EventId)>> {
        match self.stream_last(stream)? {
            Some((version, pos)) => Ok(Some((version, self.get_at(pos)?.id()))),
            None => Ok(None),
        }
    }

    /// The last visible (version, position) of a stream.
    pub(crate) fn stream_last(&self, stream: &str) -> Result<Option<(u64, u64)>> {
        match self.inner.log.stream_last(stream)? {
            Some((_, pos)) if !self.visible(pos) => {
                // Only after a failed write: step back to the last committed version.
                let all = self.inner.log.stream_positions(stream, 0, usize::MAX)?;
                Ok(all.iter().enumerate().rev().find(|(_, p)| self.visible(**p)).map(|(v, p)| (v as u64, *p)))
            }
            other => Ok(other),
        }
    }

    /// Up to `limit` events of a stream from version `from_version`, in order.
    pub fn read_stream(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let mut positions = self.inner.log.stream_positions(stream, from_version, limit)?;
        positions.retain(|p| self.visible(*p));
        self.get_many(&positions)
    }

    /// Up to `limit` events of a kind from global position `from`, in order.
    pub fn read_kind(&self, kind: Kind, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let end = self.len();
        let mut positions = Vec::new();
        self.inner.log.index_scan(Space::Kinds, &projection::kind_key(kind, from), &mut |k, _| {
            if k.len() != 9 || k[0] != kind.tag() || positions.len() >= limit {
                return false;
            }
            match be_u64(&k[1..]) {
                Some(p) if p < end => {
                    positions.push(p);
                    true
                }
                _ => false,
            }
        })?;
        self.get_many(&positions)
    }

    /// Positions of a kind's events before `before`, newest first, at most `limit`.
    pub fn kind_positions_before(&self, kind: Kind, before: u64, limit: usize) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        let mut at = before.min(self.len());
        while at > 0 && out.len() < limit {
            let Some((k, _)) =
                self.inner.log.index_last_at_or_before(Space::Kinds, &projection::kind_key(kind, at - 1))?
            else {
                break;
            };
            match (k.len() == 9 && k[0] == kind.tag()).then(|| be_u64(&k[1..])).flatten() {
                Some(p) if p < at => {
                    out.push(p);
                    at = p;
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Calls `f` for each event of a kind from global position `from` on, in order,
    /// until it returns false or the kind's events end (read in chunks from the index).
    pub fn scan_kind(&self, kind: Kind, from: u64, mut f: impl FnMut(StoredEvent) -> bool) -> Result<()> {
        let mut from = from;
        loop {
            let chunk = self.read_kind(kind, from, 4096)?;
            let Some(last) = chunk.last() else { return Ok(()) };
            from = last.position + 1;
            for e in chunk {
                if !f(e) {
                    return Ok(());
                }
            }
        }
    }

    /// Names of all streams with their last versions, in byte order.
    pub fn streams(&self) -> Result<Vec<(String, u64)>> {
        let all = self.inner.log.streams()?;
        if self.poison_reason().is_none() {
            return Ok(all);
        }
        // After a failed write, streams may end in records that are not visible.
        let mut out = Vec::with_capacity(all.len());
        for (name, _) in all {
            if let Some((v, _)) = self.stream_last(&name)? {
                out.push((name, v));
            }
        }
        Ok(out)
    }

    /// Session ids with the position of their first event, in byte order of the ids,
    /// from the session index.
    pub fn session_starts(&self) -> Result<Vec<(String, u64)>> {
        let end = self.len();
        let mut out = Vec::new();
        self.inner.log.index_scan(Space::Sessions, &[], &mut |k, v| {
            if let Some(p) = be_u64(v).filter(|p| *p < end) {
                out.push((String::from_utf8_lossy(k).into_owned(), p));
            }
            true
        })?;
        Ok(out)
    }

    /// Session ids (the `session/ID` streams), in byte order, from the session index.
    pub fn session_ids(&self) -> Result<Vec<String>> {
        let end = self.len();
        let mut out = Vec::new();
        self.inner.log.index_scan(Space::Sessions, &[], &mut |k, v| {
            if be_u64(v).is_some_and(|p| p < end) {
                out.push(String::from_utf8_lossy(k).into_owned());
            }
            true
        })?;
        Ok(out)
    }

    /// Events at ascending `positions`, in order.
    fn get_many(&self, positions: &[u64]) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::with_capacity(positions.len());
        self.inner.log.records(positions, &mut |pos, raw| {
            out.push(decode_record(pos, raw)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Positions of the `memory` events of `store` that name exactly `path`, in order.
    pub fn memory_path_positions(&self, store: &str, path: &str) -> Result<Vec<u64>> {
        let prefix = projection::path_prefix(store, path);
        let end = self.len();
        let mut out = Vec::new();
        self.inner.log.index_scan(Space::Paths, &prefix, &mut |k, _| {
            if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                return false;
            }
            if let Some(p) = be_u64(&k[prefix.len()..]).filter(|p| *p < end) {
                out.push(p);
            }
            true
        })?;
        Ok(out)
    }

    /// Positions of the events that name `id` among their causes, in log order, from
    /// position `from`, at most `limit`.
    pub fn cited_by(&self, id: &EventId, from: u64, limit: usize) -> Result<Vec<u64>> {
        let end = self.len();
        let mut out = Vec::new();
        self.inner.log.index_scan(Space::Cites, &projection::cite_key(id, from), &mut |k, _| {
            if k.len() != 40 || k[..32] != id.0[..] || out.len() >= limit {
                return false;
            }
            match be_u64(&k[32..]) {
                Some(p) if p < end => {
                    out.push(p);
                    true
                }
                _ => false,
            }
        })?;
        Ok(out)
    }

    /// The ledger's entries under `tag` (`projection::LEDGER_RUNS`, `LEDGER_GRADES`) at
    /// positions `from..until` (and below the log's end), in log order, until `f` returns
    /// false: the facts drift and lessons compare grades by, without decoding the events.
    pub fn ledger(
        &self,
        tag: u8,
        from: u64,
        until: u64,
        mut f: impl FnMut(u64, projection::LedgerEntry) -> bool,
    ) -> Result<()> {
        let end = self.len().min(until);
        let mut bad = None;
        self.inner.log.index_scan(Space::Ledger, &projection::ledger_key(tag, from), &mut |k, v| {
            let Some(position) = (k.len() == 9 && k[0] == tag).then(|| be_u64(&k[1..])).flatten() else {
                return false;
            };
            if position >= end {
                return false;
            }
            match projection::LedgerEntry::decode(v) {
                Ok(entry) => f(position, entry),
                Err(e) => {
                    bad = Some(Error::Log(LogError::Corrupt { position, reason: format!("ledger index: {e}") }));
                    false
                }
            }
        })?;
        bad.map_or(Ok(()), Err)
    }

    /// The entries of a derived space whose keys start with `prefix` and end in a
    /// position below the log's end (an entry of a torn write is skipped), in key order:
    /// `f(position, the key between the prefix and the position, value)` until it
    /// returns false.
    pub fn index_prefix(
        &self,
        space: Space,
        prefix: &[u8],
        mut f: impl FnMut(u64, &[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let end = self.len();
        self.inner.log.index_scan(space, prefix, &mut |k, v| {
            let Some(rest) = k.strip_prefix(prefix) else { return false };
            let Some(cut) = rest.len().checked_sub(8) else { return true };
            match be_u64(&rest[cut..]) {
                Some(position) if position < end => f(position, &rest[..cut], v),
                _ => true,
            }
        })
    }

    /// The memory stores sessions recorded running with (a `session.start` or
    /// `session.link` naming them), sorted: one seek per store in the ledger index.
    pub fn session_stores(&self) -> Result<Vec<String>> {
        let end = self.len();
        let mut out: Vec<String> = Vec::new();
        let mut from = vec![projection::LEDGER_STORES];
        loop {
            let mut next: Option<(String, bool)> = None;
            self.inner.log.index_scan(Space::Ledger, &from, &mut |k, _| {
                let Some(rest) = k.strip_prefix(&[projection::LEDGER_STORES]) else { return false };
                let Some(zero) = rest.len().checked_sub(9).filter(|&z| rest[z] == 0) else { return false };
                let (name, position) = (&rest[..zero], be_u64(&rest[zero + 1..]).unwrap_or(u64::MAX));
                match &mut next {
                    None => next = Some((String::from_utf8_lossy(name).into_owned(), position < end)),
                    Some((n, seen)) if n.as_bytes() == name => *seen |= position < end,
                    Some(_) => return false,
                }
                // Entries of one store past the log's end (a torn write) are few: read on
                // only until one inside it.
                !next.as_ref().is_some_and(|(_, seen)| *seen)
            })?;
            let Some((name, seen)) = next else { return Ok(out) };
            from = projection::ledger_store_prefix(&name);
            *from.last_mut().expect("prefix ends in 0x00") = 1; // past every key of `name`
            if seen {
                out.push(name);
            }
        }
    }

    /// Whether a session recorded running with memory store `name`.
    pub fn has_sessions_with(&self, name: &str) -> Result<bool> {
        let mut found = false;
        self.index_prefix(Space::Ledger, &projection::ledger_store_prefix(name), |_, middle, _| {
            found = middle.is_empty();
            !found
        })?;
        Ok(found)
    }

    /// Events at the given ascending positions.
    pub fn get_positions(&self, positions: &[u64]) -> Result<Vec<StoredEvent>> {
        self.get_many(positions)
    }

    /// Stores a projection snapshot taken at `position` (derived data, written outside
    /// the log).
    pub fn put_snapshot(&self, projection: &str, position: u64, bytes: &[u8], since: SnapshotEpoch) -> Result<()> {
        let n = self.inner.redactions.lock().unwrap_or_else(|e| e.into_inner());
        if *n != since.0 {
            // A redaction happened while the state was folded: it may hold removed text.
            return Ok(());
        }
        let key = projection::snapshot_key(projection, position);
        self.inner.log.index_put(&[IndexEntry { space: Space::Snapshots, key, value: bytes.to_vec() }])
    }

    /// Taken before a fold reads the log: a snapshot of its state may be stored only if no
    /// redaction happened since ([`Store::put_snapshot`]).
    pub fn snapshot_epoch(&self) -> SnapshotEpoch {
        SnapshotEpoch(*self.inner.redactions.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The latest snapshot of `projection` taken at or before `position`.
    pub fn snapshot_at_or_before(&self, projection: &str, position: u64) -> Result<Option<(u64, Vec<u8>)>> {
        let prefix = projection::snapshot_key(projection, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let found = self
            .inner
            .log
            .index_last_at_or_before(Space::Snapshots, &projection::snapshot_key(projection, position))?;
        Ok(found.and_then(|(k, v)| {
            (k.starts_with(prefix) && k.len() == prefix.len() + 8).then(|| (be_u64(&k[prefix.len()..]).unwrap_or(0), v))
        }))
    }

    /// Every snapshot: (projection, position, bytes).
    pub fn snapshots(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.inner.log.index_scan(Space::Snapshots, &[], &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }

    /// Deletes every snapshot of `projection` (they are rebuilt on demand).
    pub fn drop_snapshots(&self, projection: &str) -> Result<()> {
        let from = projection::snapshot_key(projection, 0);
        let to = projection::snapshot_key(projection, u64::MAX);
        self.inner.log.index_delete_range(Space::Snapshots, &from, &to)
    }

    /// Rebuilds every derived index from the log (`dreamlog reindex`): clears the
    /// projectors' spaces and the snapshots, then runs every projector from position 0.
    /// Runs on the writer thread, so no append interleaves. `progress` gets events done.
    pub fn reindex(&self, progress: impl FnMut(u64) + Send + 'static) -> Result<ReindexReport> {
        let report = Arc::new(Mutex::new(ReindexReport::default()));
        let out = report.clone();
        let work: writer::Exclusive = Box::new(move |log: &dyn Log, end: u64| {
            let mut dropped = 0u64;
            log.index_scan(Space::Snapshots, &[], &mut |_, _| {
                dropped += 1;
                true
            })?;
            for space in Space::ALL {
                log.index_clear(space)?;
            }
            for p in PROJECTORS {
                log.set_projected_to(p.name, Some(0))?;
            }
            let per_space = project_range(log, 0, end, progress)?;
            let mut r = out.lock().unwrap_or_else(|e| e.into_inner());
            r.events = end;
            r.snapshots_dropped = dropped;
            r.entries = PROJECTORS
                .iter()
                .map(|p| {
                    let i = Space::ALL.iter().position(|s| *s == p.space).unwrap_or(0);
                    (p.space.name().to_owned(), per_space[i])
                })
                .collect();
            Ok(())
        });
        let rx = {
            let guard = self.inner.writer.lock().map_err(|_| Error::Log(LogError::Closed))?;
            guard.as_ref().ok_or(Error::Log(LogError::Closed))?.exclusive(work)?
        };
        rx.blocking_recv().map_err(|_| Error::Log(LogError::Closed))??;
        let r = report.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(r)
    }

    /// A subscription that yields every event from position `from`, then follows the
    /// log live: no gaps, no duplicates.
    pub fn subscribe(&self, from: u64) -> Subscription {
        Subscription::new(self.clone(), from, None)
    }

    /// [`Store::subscribe`] within a byte budget shared with other subscriptions (a
    /// server's tails): past it, the tails idle longest are dropped (`Error::TailDropped`
    /// naming where to resume).
    pub fn subscribe_within(&self, from: u64, budget: std::sync::Arc<TailBudget>) -> Subscription {
        Subscription::new(self.clone(), from, Some(budget))
    }

    /// Makes what was written durable and compact (RocksDB: memtables to table files, so
    /// the WAL is no longer needed for it).
    pub fn flush(&self) -> Result<()> {
        self.inner.log.flush()
    }

    /// Every stream's last event among the first `position` events: name → (version, id)
    /// (what a signed checkpoint commits to). Reads the log up to `position`.
    pub fn stream_heads_at(&self, position: u64) -> Result<crate::core::checkpoint::StreamHeads> {
        let mut heads = crate::core::checkpoint::StreamHeads::new();
        self.scan(0, |e| {
            if e.position >= position {
                return false;
            }
            let id = e.id();
            match heads.get_mut(&e.event.header.stream) {
                Some(h) => *h = (e.version, id),
                None => {
                    heads.insert(e.event.header.stream.clone(), (e.version, id));
                }
            }
            true
        })?;
        Ok(heads)
    }

    /// Writes a consistent copy of the store into `dir` (which must not exist) while
    /// appends go on; returns how many events were acknowledged before it began (the copy
    /// holds at least those, and possibly later ones, whole groups only).
    pub fn backup(&self, dir: &Path) -> Result<u64> {
        if dir.exists() {
            return Err(Error::Format(crate::core::FormatError::field(
                "dir",
                format!("{} exists: a backup goes into a new folder; nothing was written", dir.display()),
            )));
        }
        let acknowledged = self.len();
        self.inner.log.backup(dir, acknowledged)?;
        Ok(acknowledged)
    }

    /// Stops the writer, waiting for in-flight appends, and closes the backend.
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // The follower holds a sender of the writer's queue: it stops first.
        if let Ok(mut f) = self.inner.follower.lock() {
            f.take();
        }
        if let Ok(mut w) = self.inner.writer.lock() {
            w.take(); // dropping the handle ends the writer after its queue drains
        }
        if let Some(t) = self.inner.writer_thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        self.inner.log.close(self.len())?;
        if self.inner.opts.sync == SyncMode::Fsync && self.poison_reason().is_none() {
            let _writing = self.inner.acked.lock().unwrap_or_else(|p| p.into_inner());
            self.inner.log.record_acknowledged(self.len())?;
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst); // ends the acknowledged-count recorder
        if let Ok(mut f) = self.follower.lock() {
            f.take();
        }
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        if let Some(t) = self.writer_thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// Under fsync every published count is durable: a thread beside the writer (off its
/// path) records it in `ACKED` at most every half second while it changes, until close.
/// `closed` is read again under `acked` (which close holds while it writes the final
/// count), so nothing the recorder writes lands after close's.
fn spawn_acked_recorder(
    log: std::sync::Weak<dyn Log>,
    committed: Arc<Committed>,
    closed: Arc<AtomicBool>,
    acked: Arc<Mutex<()>>,
) {
    let run = move || {
        let mut recorded = committed.count.lock().map(|c| *c).unwrap_or(0);
        while !closed.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let now = committed.count.lock().map(|c| *c).unwrap_or(recorded);
            if now != recorded && !closed.load(Ordering::SeqCst) {
                // Held weakly: a closed store's backend is not kept open by this thread.
                let Some(log) = log.upgrade() else { return };
                let _writing = acked.lock().unwrap_or_else(|p| p.into_inner());
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                match log.record_acknowledged(now) {
                    Ok(()) => recorded = now,
                    Err(e) => tracing::warn!("cannot record the acknowledged count of {}: {e}", log.describe()),
                }
            }
        }
    };
    if let Err(e) = std::thread::Builder::new().name("dreamlog-acked".into()).spawn(run) {
        tracing::warn!("cannot start the acknowledged-count recorder: {e}");
    }
}

/// See [`Store::received_cursor`].
pub struct ReceivedCursor<'a> {
    store: &'a Store,
    current: Option<crate::core::receipt::Received>,
    /// Where the next receipt after the last lookup starts (`u64::MAX`: none).
    next: Option<u64>,
}

impl ReceivedCursor<'_> {
    /// Who wrote the event at `position` (positions asked in increasing order).
    pub fn at(&mut self, position: u64) -> Result<Option<crate::core::receipt::Received>> {
        if let Some(r) = self.current.as_ref().filter(|r| position >= r.batch && position < r.batch + r.events) {
            return Ok(Some(r.clone()));
        }
        if self.next.is_some_and(|n| position < n) {
            return Ok(None);
        }
        self.current = self.store.received(position)?;
        let mut next = u64::MAX;
        self.store.inner.log.receipts(position.saturating_add(1), &mut |p, _| {
            next = p;
            Ok(false)
        })?;
        self.next = Some(next);
        Ok(self.current.clone())
    }
}

fn decode_receipt(position: u64, bytes: &[u8]) -> Result<crate::core::receipt::Receipt> {
    crate::core::receipt::Receipt::decode(bytes)
        .map_err(|e| Error::Log(LogError::Corrupt { position, reason: format!("the batch's receipt: {e}") }))
}

/// Decodes a log record into a stored event (fast path: no hash checks).
pub fn decode_record(position: u64, raw: &[u8]) -> Result<StoredEvent> {
    let parts = layout::split_record(raw)
        .ok_or_else(|| Error::Log(LogError::Corrupt { position, reason: "record layout is invalid".into() }))?;
    let redacted = parts.flags & layout::FLAG_REDACTED != 0;
    let event = Event::decode_with_id(parts.id, parts.header, parts.body)
        .map_err(|e| Error::Log(LogError::Corrupt { position, reason: e.to_string() }))?;
    Ok(StoredEvent { position, version: parts.version, redacted, event, received: None })
}
