//! The storage layer: the event log on RocksDB.
//!
//! Architecture invariant: this is the only module that imports `rocksdb`. Everything
//! above it talks to [`Store`]: append a batch with expectations, read, subscribe.

mod layout;
mod recover;
mod subscribe;
mod verify;
pub mod wal;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode,
    Options as RocksOptions, ReadOptions, WriteBufferManager, DB,
};

pub use crate::core::ExpectedVersion;
pub use layout::{ALL_CFS, CF_IDS, CF_KINDS, CF_LOG, CF_META, CF_PATHS, CF_SNAPSHOTS, CF_STREAMS};
pub use recover::{recover, RecoveryReport};
pub use subscribe::Subscription;
pub use verify::{VerifyProblem, VerifyReport};
pub use writer::{AppendBatch, Appended};

use crate::core::{Event, EventId, Kind};
use crate::error::{Error, Result};

/// A raw key and value from a column family.
pub(crate) type KeyValue = (Box<[u8]>, Box<[u8]>);

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
    /// Most events in one append batch.
    pub max_batch_events: usize,
    /// Most events the writer commits in one group (one WriteBatch, one sync).
    pub max_group_events: usize,
    /// Memory budgets shared with other stores of this process; when set, its block
    /// cache replaces `block_cache_bytes` and its write-buffer budget bounds the memtables
    /// of all the stores together.
    pub shared: Option<SharedMemory>,
    /// Open a database whose WAL is damaged at its last good point, dropping what follows
    /// (only `dreamlog recover` does this, after keeping the files aside and reporting).
    pub drop_damaged_wal_tail: bool,
}

/// One block cache and one write-buffer budget for several stores in one process (a
/// server's tenants), so that N stores cost one memory budget rather than N.
#[derive(Clone)]
pub struct SharedMemory {
    cache: Cache,
    write_buffers: WriteBufferManager,
    cache_bytes: usize,
    write_buffer_bytes: usize,
}

impl SharedMemory {
    /// A budget of `cache_bytes` of block cache and `write_buffer_bytes` of memtables in
    /// all (past it, the largest memtables are flushed).
    pub fn new(cache_bytes: usize, write_buffer_bytes: usize) -> SharedMemory {
        SharedMemory {
            cache: Cache::new_lru_cache(cache_bytes),
            write_buffers: WriteBufferManager::new_write_buffer_manager(write_buffer_bytes, false),
            cache_bytes,
            write_buffer_bytes,
        }
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("cache_bytes", &self.cache_bytes)
            .field("write_buffer_bytes", &self.write_buffer_bytes)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: SyncMode::Fsync,
            create_if_missing: true,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
            max_body_bytes: 16 << 20,
            max_batch_events: 100_000,
            max_group_events: 20_000,
            shared: None,
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
}

impl StoredEvent {
    /// The event id.
    pub fn id(&self) -> EventId {
        self.event.id
    }

    /// The JSON form with position, id and version.
    pub fn to_json(&self) -> crate::core::EventJson {
        crate::core::EventJson::from_event(&self.event, self.position, self.version)
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
    pub db: Arc<DB>,
    pub path: PathBuf,
    pub opts: Options,
    pub committed: Arc<Committed>,
    pub poisoned: Arc<Mutex<Option<String>>>,
    pub writer: Mutex<Option<writer::WriterHandle>>,
    pub writer_thread: Mutex<Option<JoinHandle<()>>>,
    pub closed: Arc<AtomicBool>,
    /// A torn final WAL record dropped at open, and where the WAL's copy was kept.
    pub torn_tail: Option<(wal::WalDamage, PathBuf)>,
}

/// A dreamlog event store: one RocksDB database, one writer thread, any number of readers.
/// Cloning is cheap and shares the store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn cf_options(name: &str, cache: &Cache, opts: &Options) -> RocksOptions {
    let mut o = RocksOptions::default();
    o.set_write_buffer_size(opts.write_buffer_bytes);
    o.set_compression_type(DBCompressionType::Lz4);
    let mut bb = BlockBasedOptions::default();
    bb.set_block_cache(cache);
    bb.set_cache_index_and_filter_blocks(true);
    bb.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if name == CF_IDS || name == CF_STREAMS {
        // Point lookups by id and by stream head: bloom filters make misses cheap.
        bb.set_bloom_filter(10.0, false);
    }
    if name == CF_LOG {
        bb.set_block_size(32 << 10);
    }
    o.set_block_based_table_factory(&bb);
    o
}

impl Store {
    /// Opens (or, with `create_if_missing`, creates) the database at `path`.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let open_err = |reason: String| Error::Open { path: path.display().to_string(), reason };
        if !path.join("CURRENT").exists() {
            // Never create a database over another one's files (a lost CURRENT makes RocksDB
            // start afresh and delete the old table files), nor in a folder of other things.
            let found = database_files(&path);
            if !found.is_empty() {
                return Err(open_err(format!(
                    "its CURRENT file is missing, but the folder holds a database's files ({}): refusing to open or create a database over them; nothing was changed. `dreamlog recover` restores CURRENT from the newest MANIFEST",
                    found.join(", ")
                )));
            }
            if !opts.create_if_missing {
                return Err(open_err("no dreamlog database here (run `dreamlog init` to create one)".into()));
            }
            let others = path.read_dir().map(|d| d.flatten().count()).unwrap_or(0);
            if others > 0 {
                return Err(open_err(format!(
                    "the folder is not empty ({others} entries) and holds no database: a database is only created in an empty or absent folder"
                )));
            }
        }
        let mut torn_tail = None;
        if path.join("CURRENT").exists() {
            let scan = wal::scan(&path)?;
            if let Some(d) = &scan.damage {
                if scan.refuses_open() && !opts.drop_damaged_wal_tail {
                    return Err(d.error(&path));
                }
                // A torn final record: RocksDB drops it and later deletes the WAL, so a copy
                // is kept aside first (`recover` keeps its own, with its report), and the
                // store says so (`Store::torn_tail`).
                if !opts.drop_damaged_wal_tail {
                    let aside = path.join("damaged").join(writer::now_ms().to_string());
                    wal::keep_aside(&scan, &aside)?;
                    torn_tail = Some((d.clone(), aside));
                }
            }
        }
        let cache = match &opts.shared {
            Some(s) => s.cache.clone(),
            None => Cache::new_lru_cache(opts.block_cache_bytes),
        };
        let mut db_opts = RocksOptions::default();
        if let Some(s) = &opts.shared {
            db_opts.set_write_buffer_manager(&s.write_buffers);
        }
        db_opts.create_if_missing(opts.create_if_missing);
        // A torn final WAL record is tolerated; any other damage refuses the open (the
        // WAL scan above names it first). `recover` stops at the last good point instead.
        db_opts.set_wal_recovery_mode(if opts.drop_damaged_wal_tail {
            rocksdb::DBRecoveryMode::PointInTime
        } else {
            rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords
        });
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        db_opts.set_keep_log_file_num(4);
        // One writer thread: concurrent memtable inserts buy nothing, and without them
        // each memtable keeps its insert splice, so sequential keys insert in O(1).
        db_opts.set_allow_concurrent_memtable_write(false);
        let cfs = ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, cf_options(name, &cache, &opts)));
        let db = DB::open_cf_descriptors(&db_opts, &path, cfs).map_err(|e| {
            let reason = e.into_string();
            // RocksDB's LOCK file is held: another process has the database open.
            if reason.contains("LOCK")
                && (reason.contains("lock") || reason.contains("Resource temporarily unavailable"))
            {
                open_err(
                    "the database is in use by another process (is `dreamlog serve` running? use --remote URL)".into(),
                )
            } else {
                open_err(reason)
            }
        })?;
        let db = Arc::new(db);
        let meta = db.cf_handle(CF_META).ok_or_else(|| open_err("meta column family missing".into()))?;
        match db.get_cf(meta, layout::META_FORMAT_KEY)? {
            Some(v) if v == layout::META_FORMAT_VALUE => {}
            Some(v) => {
                return Err(open_err(format!(
                    "store format {:?} is not one this build reads ({:?})",
                    String::from_utf8_lossy(&v),
                    String::from_utf8_lossy(layout::META_FORMAT_VALUE)
                )))
            }
            None => db.put_cf(meta, layout::META_FORMAT_KEY, layout::META_FORMAT_VALUE)?,
        }
        let count = {
            let log = db.cf_handle(CF_LOG).ok_or_else(|| open_err("log column family missing".into()))?;
            let mut it = db.raw_iterator_cf(log);
            it.seek_to_last();
            match it.key() {
                Some(k) => layout::be_u64(k).ok_or_else(|| open_err("bad key in log".into()))? + 1,
                None => 0,
            }
        };
        let (watch, _) = tokio::sync::watch::channel(count);
        let committed = Arc::new(Committed { count: Mutex::new(count), changed: Condvar::new(), watch });
        let poisoned = Arc::new(Mutex::new(None));
        // Under fsync, every acknowledged event is durable: fewer events than were recorded
        // as acknowledged means some were lost below us (a WAL truncated or removed).
        if let Some((acked, at)) = wal::read_acked(&path) {
            if acked > count && !opts.drop_damaged_wal_tail {
                drop(db);
                return Err(open_err(format!(
                    "the log holds {count} events, but {acked} were acknowledged under --sync fsync (recorded at {at} ms since the epoch): positions {count}..{} are missing — a write-ahead log was truncated or removed. Nothing was appended; `dreamlog recover` reports the missing positions and accepts the log as it is",
                    acked - 1
                )));
            }
        }
        let (handle, thread) = writer::spawn(db.clone(), opts.clone(), count, committed.clone(), poisoned.clone())?;
        let closed = Arc::new(AtomicBool::new(false));
        if opts.sync == SyncMode::Fsync {
            spawn_acked_recorder(path.clone(), committed.clone(), closed.clone());
        }
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                path,
                opts,
                committed,
                poisoned,
                writer: Mutex::new(Some(handle)),
                writer_thread: Mutex::new(Some(thread)),
                closed,
                torn_tail,
            }),
        })
    }

    /// The incomplete final WAL record this open dropped (a crash mid-write: never an
    /// acknowledged batch under `fsync`), with where a copy of the WAL was kept.
    pub fn torn_tail(&self) -> Option<&(wal::WalDamage, PathBuf)> {
        self.inner.torn_tail.as_ref()
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The settings the store was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// Appends a batch atomically (all events or none) and waits until it is durable per
    /// the sync mode. Events already in the log (same id) are not written again: their
    /// existing position is returned with `existed = true`.
    pub fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>> {
        self.submit(batch)?.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// The async form of [`Store::append`], for servers.
    pub async fn append_async(&self, batch: AppendBatch) -> Result<Vec<Appended>> {
        self.submit(batch)?.await.map_err(|_| Error::Closed)?
    }

    fn submit(&self, batch: AppendBatch) -> Result<tokio::sync::oneshot::Receiver<Result<Vec<Appended>>>> {
        if let Some(reason) = self.inner.poisoned.lock().map_err(|_| Error::Closed)?.clone() {
            return Err(Error::Poisoned(reason));
        }
        if batch.events.len() > self.inner.opts.max_batch_events {
            return Err(Error::BatchTooLarge { len: batch.events.len(), limit: self.inner.opts.max_batch_events });
        }
        let guard = self.inner.writer.lock().map_err(|_| Error::Closed)?;
        let handle = guard.as_ref().ok_or(Error::Closed)?;
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

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        // Every column family is created on open.
        self.inner.db.cf_handle(name).expect("column family created on open")
    }

    pub(crate) fn db(&self) -> &DB {
        &self.inner.db
    }

    pub(crate) fn committed(&self) -> &Arc<Committed> {
        &self.inner.committed
    }

    /// The event at a global position.
    pub fn get_at(&self, position: u64) -> Result<StoredEvent> {
        if position >= self.len() {
            return Err(Error::NoSuchPosition(position));
        }
        let raw = self
            .inner
            .db
            .get_pinned_cf(self.cf(CF_LOG), layout::pos_key(position))?
            .ok_or(Error::NoSuchPosition(position))?;
        decode_record(position, &raw)
    }

    /// The position of an event id, if stored.
    pub fn position_of(&self, id: &EventId) -> Result<Option<u64>> {
        let v = self.inner.db.get_pinned_cf(self.cf(CF_IDS), layout::id_key(id))?;
        Ok(v.and_then(|v| layout::be_u64(&v)))
    }

    /// The event with this id.
    pub fn get(&self, id: &EventId) -> Result<StoredEvent> {
        let pos = self.position_of(id)?.ok_or_else(|| Error::NotFound(id.to_hex()))?;
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
        let mut it = self.inner.db.raw_iterator_cf(self.cf(CF_IDS));
        let mut seek = start.clone();
        if let Some(n) = nibble {
            seek.push(n << 4);
        }
        it.seek(&seek);
        let mut found = Vec::new();
        let mut more = false;
        while let Some(key) = it.key() {
            if !key.starts_with(&start) {
                break;
            }
            if let Some(n) = nibble {
                if key.get(start.len()).map(|b| b >> 4) != Some(n) {
                    break;
                }
            }
            if found.len() == 8 {
                more = true;
                break;
            }
            let mut id = [0u8; 32];
            if key.len() == 32 {
                id.copy_from_slice(key);
                found.push(EventId(id));
            }
            it.next();
        }
        it.status()?;
        match found.len() {
            0 => Err(Error::NotFound(hex_prefix.to_owned())),
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
    /// false or the committed end is reached. Reads a consistent snapshot.
    pub fn scan(&self, from: u64, mut f: impl FnMut(StoredEvent) -> bool) -> Result<()> {
        self.scan_raw(from, |pos, raw| Ok(f(decode_record(pos, raw)?)))
    }

    /// Like [`Store::scan`] but hands over the raw record bytes (for verify and export).
    pub(crate) fn scan_raw(&self, from: u64, mut f: impl FnMut(u64, &[u8]) -> Result<bool>) -> Result<()> {
        let end = self.len();
        let mut ro = ReadOptions::default();
        ro.set_readahead_size(2 << 20);
        // A scan reads each block once: do not churn the block cache with it.
        ro.fill_cache(false);
        ro.set_iterate_upper_bound(layout::pos_key(end).to_vec());
        let mut it = self.inner.db.raw_iterator_cf_opt(self.cf(CF_LOG), ro);
        it.seek(layout::pos_key(from));
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let pos =
                layout::be_u64(k).ok_or_else(|| Error::Corrupt { position: from, reason: "bad log key".into() })?;
            if !f(pos, v)? {
                return Ok(());
            }
            it.next();
        }
        it.status()?;
        Ok(())
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

    /// The last (version, position) of a stream.
    pub(crate) fn stream_last(&self, stream: &str) -> Result<Option<(u64, u64)>> {
        stream_last(&self.inner.db, stream)
    }

    /// Up to `limit` events of a stream from version `from_version`, in order.
    pub fn read_stream(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let prefix = layout::stream_prefix(stream);
        let mut it = self.inner.db.raw_iterator_cf(self.cf(CF_STREAMS));
        it.seek(layout::stream_key(stream, from_version));
        let mut positions = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 || positions.len() >= limit {
                break;
            }
            positions.push(layout::be_u64(v).unwrap_or(u64::MAX));
            it.next();
        }
        it.status()?;
        self.get_many(&positions)
    }

    /// Up to `limit` events of a kind from global position `from`, in order.
    pub fn read_kind(&self, kind: Kind, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let mut it = self.inner.db.raw_iterator_cf(self.cf(CF_KINDS));
        it.seek(layout::kind_key(kind, from));
        let mut positions = Vec::new();
        while let Some(k) = it.key() {
            if k.len() != 9 || k[0] != kind.tag() || positions.len() >= limit {
                break;
            }
            positions.push(layout::be_u64(&k[1..]).unwrap_or(u64::MAX));
            it.next();
        }
        it.status()?;
        self.get_many(&positions)
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

    /// Names of all streams, in byte order (scans the stream index).
    pub fn streams(&self) -> Result<Vec<(String, u64)>> {
        let mut out: Vec<(String, u64)> = Vec::new();
        let mut it = self.inner.db.raw_iterator_cf(self.cf(CF_STREAMS));
        it.seek_to_first();
        while let Some(k) = it.key() {
            let Some((name, version)) = layout::split_stream_key(k).map(|(n, v)| (n.to_owned(), v)) else { break };
            // Jump to the stream's last version, then past it.
            it.seek_for_prev(layout::stream_key(&name, u64::MAX));
            let last = it.key().and_then(layout::split_stream_key).map(|(_, v)| v).unwrap_or(version);
            let mut next = layout::stream_prefix(&name);
            out.push((name, last));
            *next.last_mut().unwrap_or(&mut 0) = 1; // name 0x01 sorts after every name 0x00 …
            it.seek(&next);
        }
        it.status()?;
        Ok(out)
    }

    /// Events at ascending `positions`, read with one iterator: a step to the next key
    /// when positions are adjacent (dense streams read at scan speed), a seek otherwise.
    fn get_many(&self, positions: &[u64]) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::with_capacity(positions.len());
        let mut it = self.inner.db.raw_iterator_cf(self.cf(CF_LOG));
        let mut at: Option<u64> = None;
        for &pos in positions {
            match at {
                Some(a) if a + 1 == pos => it.next(),
                _ => it.seek(layout::pos_key(pos)),
            }
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                it.status()?;
                return Err(Error::Corrupt { position: pos, reason: "index points at a missing record".into() });
            };
            if layout::be_u64(k) != Some(pos) {
                return Err(Error::Corrupt { position: pos, reason: "index points at a missing record".into() });
            }
            out.push(decode_record(pos, v)?);
            at = Some(pos);
        }
        Ok(out)
    }

    /// Positions of the `memory` events of `store` that name exactly `path`, in order.
    pub fn memory_path_positions(&self, store: &str, path: &str) -> Result<Vec<u64>> {
        let prefix = layout::path_prefix(store, path);
        let mut it = self.inner.db.raw_iterator_cf(self.cf(CF_PATHS));
        it.seek(&prefix);
        let mut out = Vec::new();
        while let Some(k) = it.key() {
            if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                break;
            }
            out.push(layout::be_u64(&k[prefix.len()..]).unwrap_or(u64::MAX));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Events at the given positions (in the order given).
    pub fn get_positions(&self, positions: &[u64]) -> Result<Vec<StoredEvent>> {
        self.get_many(positions)
    }

    /// Stores a projection snapshot taken at `position` (derived data, written outside
    /// the log).
    pub fn put_snapshot(&self, projection: &str, position: u64, bytes: &[u8]) -> Result<()> {
        self.inner.db.put_cf(self.cf(CF_SNAPSHOTS), layout::snapshot_key(projection, position), bytes)?;
        Ok(())
    }

    /// The latest snapshot of `projection` taken at or before `position`.
    pub fn snapshot_at_or_before(&self, projection: &str, position: u64) -> Result<Option<(u64, Vec<u8>)>> {
        let prefix = layout::snapshot_key(projection, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let mut it = self.inner.db.raw_iterator_cf(self.cf(CF_SNAPSHOTS));
        it.seek_for_prev(layout::snapshot_key(projection, position));
        if let (Some(k), Some(v)) = (it.key(), it.value()) {
            if k.starts_with(prefix) && k.len() == prefix.len() + 8 {
                return Ok(Some((layout::be_u64(&k[prefix.len()..]).unwrap_or(0), v.to_vec())));
            }
        }
        it.status()?;
        Ok(None)
    }

    /// Deletes every snapshot of `projection` (they are rebuilt on demand).
    pub fn drop_snapshots(&self, projection: &str) -> Result<()> {
        let from = layout::snapshot_key(projection, 0);
        let to = layout::snapshot_key(projection, u64::MAX);
        self.inner.db.delete_range_cf(self.cf(CF_SNAPSHOTS), from, to)?;
        Ok(())
    }

    /// A subscription that yields every event from position `from`, then follows the
    /// log live: no gaps, no duplicates.
    pub fn subscribe(&self, from: u64) -> Subscription {
        Subscription::new(self.clone(), from)
    }

    /// Writes every column family's memtable to table files (the WAL is then no longer
    /// needed for what was flushed).
    pub fn flush(&self) -> Result<()> {
        for cf in ALL_CFS {
            self.inner.db.flush_cf(self.cf(cf))?;
        }
        Ok(())
    }

    /// Stops the writer, waiting for in-flight appends, and flushes the WAL.
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Ok(mut w) = self.inner.writer.lock() {
            w.take(); // dropping the handle ends the writer after its queue drains
        }
        if let Some(t) = self.inner.writer_thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        self.inner.db.flush_wal(true)?;
        if self.inner.opts.sync == SyncMode::Fsync && self.inner.poisoned.lock().map(|p| p.is_none()).unwrap_or(false) {
            wal::write_acked(&self.inner.path, self.len()).map_err(|source| Error::Io {
                path: self.inner.path.join(wal::ACKED_FILE).display().to_string(),
                source,
            })?;
        }
        Ok(())
    }

    pub(crate) fn iterate_cf(&self, cf: &str) -> impl Iterator<Item = Result<KeyValue>> + '_ {
        self.inner
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(&[], Direction::Forward))
            .map(|r| r.map_err(Error::from))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst); // ends the acknowledged-count recorder
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        if let Some(t) = self.writer_thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// The last (version, position) of a stream, from the stream index.
pub(crate) fn stream_last(db: &DB, stream: &str) -> Result<Option<(u64, u64)>> {
    let cf = db.cf_handle(CF_STREAMS).expect("column family created on open");
    let prefix = layout::stream_prefix(stream);
    let mut it = db.raw_iterator_cf(cf);
    it.seek_for_prev(layout::stream_key(stream, u64::MAX));
    if let (Some(k), Some(v)) = (it.key(), it.value()) {
        if k.starts_with(&prefix) && k.len() == prefix.len() + 8 {
            let version = layout::be_u64(&k[prefix.len()..]).unwrap_or(0);
            let pos = layout::be_u64(v).unwrap_or(0);
            return Ok(Some((version, pos)));
        }
    }
    it.status()?;
    Ok(None)
}

/// Under fsync every published count is durable: a thread beside the writer (off its
/// path) records it in `ACKED` at most every half second while it changes, until close.
fn spawn_acked_recorder(dir: PathBuf, committed: Arc<Committed>, closed: Arc<AtomicBool>) {
    let run = move || {
        let mut recorded = committed.count.lock().map(|c| *c).unwrap_or(0);
        while !closed.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let now = committed.count.lock().map(|c| *c).unwrap_or(recorded);
            if now != recorded && !closed.load(Ordering::SeqCst) {
                match wal::write_acked(&dir, now) {
                    Ok(()) => recorded = now,
                    Err(e) => tracing::warn!("cannot record the acknowledged count in {}: {e}", dir.display()),
                }
            }
        }
    };
    if let Err(e) = std::thread::Builder::new().name("dreamlog-acked".into()).spawn(run) {
        tracing::warn!("cannot start the acknowledged-count recorder: {e}");
    }
}

/// The files of a RocksDB database in `dir` (tables, WALs, MANIFEST, OPTIONS…), summarised
/// by kind; empty when there are none.
fn database_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let kind = if name.ends_with(".sst") {
            "table files (.sst)"
        } else if name.ends_with(".log") && name.trim_end_matches(".log").bytes().all(|b| b.is_ascii_digit()) {
            "write-ahead logs (.log)"
        } else if name.starts_with("MANIFEST-") {
            "MANIFEST files"
        } else if name.starts_with("OPTIONS-") {
            "OPTIONS files"
        } else if name == "IDENTITY" {
            "IDENTITY"
        } else {
            continue;
        };
        *counts.entry(kind).or_default() += 1;
    }
    counts.into_iter().map(|(k, n)| format!("{n} {k}")).collect()
}

/// Decodes a log record into a stored event (fast path: no hash checks).
pub(crate) fn decode_record(position: u64, raw: &[u8]) -> Result<StoredEvent> {
    let parts = layout::split_record(raw)
        .ok_or_else(|| Error::Corrupt { position, reason: "record layout is invalid".into() })?;
    let redacted = parts.flags & layout::FLAG_REDACTED != 0;
    let event = Event::decode_with_id(parts.id, parts.header, parts.body)
        .map_err(|e| Error::Corrupt { position, reason: e.to_string() })?;
    Ok(StoredEvent { position, version: parts.version, redacted, event })
}

/// RocksDB's errors become `Error::Storage` here, the only module that knows RocksDB.
impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage(e.into_string())
    }
}
