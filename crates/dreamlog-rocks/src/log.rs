//! The RocksDB backend ([`RocksLog`]): the only module that names `rocksdb`.
//!
//! One column family per key space (docs/reference/FORMAT.md §7): the log (position → record), the
//! id index, the stream index, the meta keys (format marker, commit marker, projector
//! checkpoints) and one per derived space. A group is one WriteBatch, so it is atomic.
//! Before RocksDB opens a database, dreamlog reads its WAL itself (`wal.rs`): a torn
//! final record is tolerated (a copy kept aside), damage refuses the open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode,
    Options as RocksOptions, ReadOptions, WriteBatch, WriteBufferManager, WriteOptions, DB,
};

use dreamlog_store::core::projection::{self, be_u64, IndexEntry, Projected, Space};
use dreamlog_store::core::EventId;
use dreamlog_store::error::LogError;
use dreamlog_store::error::{Error, Result};
use dreamlog_store::layout::{self, CF_IDS, CF_LOG, CF_META, CF_STREAMS};
use dreamlog_store::{Group, Log, Options, VerifyProblem, VerifyReport, WalDamage};

use crate::wal;

/// One block cache and one write-buffer budget for several stores in one process (a
/// server's tenants), so that N stores cost one memory budget rather than N.
#[derive(Clone)]
pub struct SharedCache {
    cache: Cache,
    write_buffers: WriteBufferManager,
    cache_bytes: usize,
    write_buffer_bytes: usize,
}

impl SharedCache {
    /// A budget of `cache_bytes` of block cache and `write_buffer_bytes` of memtables in
    /// all (past it, the largest memtables are flushed).
    pub fn new(cache_bytes: usize, write_buffer_bytes: usize) -> SharedCache {
        SharedCache {
            cache: Cache::new_lru_cache(cache_bytes),
            write_buffers: WriteBufferManager::new_write_buffer_manager(write_buffer_bytes, false),
            cache_bytes,
            write_buffer_bytes,
        }
    }
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory")
            .field("cache_bytes", &self.cache_bytes)
            .field("write_buffer_bytes", &self.write_buffer_bytes)
            .finish()
    }
}

/// The meta key of the commit marker.
const META_END_KEY: &[u8] = b"end";

fn checkpoint_key(projector: &str) -> Vec<u8> {
    [b"checkpoint/".as_slice(), projector.as_bytes()].concat()
}

/// Memtables at least this large (all column families) are flushed when the database
/// closes.
const FLUSH_AT_CLOSE_BYTES: u64 = 16 << 20;

/// The embedded backend: a RocksDB database in a folder.
pub struct RocksLog {
    db: DB,
    path: PathBuf,
    /// A torn final WAL record dropped at open, and where the WAL's copy was kept.
    torn_tail: Option<(wal::WalDamage, PathBuf)>,
    /// Whether the database is marked as keeping `ACKED` (so its absence is a loss).
    keeps_acked: bool,
}

/// Meta key (`own/…`) marking a database that keeps an `ACKED` file.
const KEEPS_ACKED: &str = "keeps-acked";

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

impl RocksLog {
    /// Opens (or, with `create_if_missing`, creates) the database at `path`, after
    /// checking its WAL and its acknowledged count.
    /// `shared`: memory budgets shared with other stores of this process (its block cache
    /// replaces `block_cache_bytes`, its write-buffer budget bounds the memtables of all).
    pub fn open(path: impl AsRef<Path>, opts: &Options, shared: Option<&SharedCache>) -> Result<RocksLog> {
        let path = path.as_ref().to_path_buf();
        let open_err = |reason: String| Error::Log(LogError::Open { path: path.display().to_string(), reason });
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
        // An earlier open found the MANIFEST short of table files: RocksDB has rewritten
        // it since, so only this note remembers — every open refuses until it is dealt with.
        if let Ok(note) = std::fs::read_to_string(path.join(HELD_FILE)) {
            return Err(open_err(format!(
                "{} (found by an earlier open; {} holds this note — remove it only once the log is whole again)",
                note.trim_end(),
                path.join(HELD_FILE).display()
            )));
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
                    let aside = path.join("damaged").join(dreamlog_store::now_ms().to_string());
                    wal::keep_aside(&scan, &aside)?;
                    torn_tail = Some((d.clone(), aside));
                }
            }
        }
        let cache = match shared {
            Some(s) => s.cache.clone(),
            None => Cache::new_lru_cache(opts.block_cache_bytes),
        };
        let mut db_opts = RocksOptions::default();
        if let Some(s) = shared {
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
        let cfs = layout::ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, cf_options(name, &cache, opts)));
        // RocksDB deletes, at open, every table file its MANIFEST does not list: crash
        // leftovers, but also the newest tables of a MANIFEST that lost its tail. Hard links
        // taken first keep whatever it removes (see OpenGuard).
        let guard = OpenGuard::take(&path);
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
        let meta = db.cf_handle(CF_META).ok_or_else(|| open_err("meta column family missing".into()))?;
        match db.get_cf(meta, layout::META_FORMAT_KEY).stored()? {
            Some(v) if v == layout::META_FORMAT_VALUE => {}
            Some(v) => {
                return Err(open_err(format!(
                    "store format {:?} is not one this build reads ({:?})",
                    String::from_utf8_lossy(&v),
                    String::from_utf8_lossy(layout::META_FORMAT_VALUE)
                )))
            }
            None => db.put_cf(meta, layout::META_FORMAT_KEY, layout::META_FORMAT_VALUE).stored()?,
        }
        let mut log = RocksLog { db, path: path.clone(), torn_tail, keeps_acked: false };
        log.keeps_acked = log.own(KEEPS_ACKED)?.is_some();
        let count = log.stored_end()?;
        if let Some(guard) = guard {
            let removed = guard.removed(&path);
            if removed.is_empty() {
                guard.discard();
            } else {
                // Rare: only after a crash mid-flush or -compaction, or damage. The removed
                // files are kept; the log must still be whole without them.
                let kept = path.join("damaged").join(format!("{}-removed-at-open", dreamlog_store::now_ms()));
                guard.keep(&kept)?;
                if let Some((from, to)) = log.first_gap(count)? {
                    drop(log);
                    let note = format!(
                        "the MANIFEST does not list {} table file(s) that RocksDB found in the folder ({}), and without them positions {from}..{to} of the log's {count} are missing — the MANIFEST lost records (cut or damaged). Nothing was deleted: the files are kept in {}; RocksDB's repair (`ldb repair`) over the folder with them moved back rebuilds a MANIFEST that lists them",
                        removed.len(),
                        removed.join(", "),
                        kept.display()
                    );
                    let held = path.join(HELD_FILE);
                    std::fs::write(&held, format!("{note}\n"))
                        .map_err(|source| Error::Io { path: held.display().to_string(), source })?;
                    return Err(open_err(note));
                }
            }
        }
        // Under fsync, every acknowledged event is durable: fewer events than were recorded
        // as acknowledged means some were lost below us (a WAL truncated or removed).
        if let wal::Acked::Count { count: acked, at } = wal::acked(&log.path) {
            if acked > count && !opts.drop_damaged_wal_tail {
                drop(log);
                return Err(open_err(format!(
                    "the log holds {count} events, but {acked} were acknowledged under --sync fsync (recorded at {at} ms since the epoch): positions {count}..{} are missing — a write-ahead log was truncated or removed. Nothing was appended; `dreamlog recover` reports the missing positions and accepts the log as it is",
                    acked - 1
                )));
            }
        }
        // A database written under fsync keeps ACKED from its first open on: written here
        // (the log as opened) before the mark, so a marked database without one lost it.
        if opts.sync == dreamlog_store::SyncMode::Fsync && !log.keeps_acked {
            wal::write_acked(&log.path, count)
                .map_err(|source| Error::Io { path: log.path.join(wal::ACKED_FILE).display().to_string(), source })?;
            log.set_own(KEEPS_ACKED, b"1")?;
            log.keeps_acked = true;
        }
        Ok(log)
    }

    /// Why the check for a cut or removed write-ahead log cannot be made now: `ACKED`
    /// damaged, or removed from a database that keeps one.
    fn acked_check(&self) -> Option<String> {
        let file = self.path.join(wal::ACKED_FILE);
        let why = match wal::acked(&self.path) {
            wal::Acked::Damaged(why) => format!("{} is damaged ({why})", file.display()),
            wal::Acked::Missing if self.keeps_acked => {
                format!("{} was removed from a database that keeps one", file.display())
            }
            _ => return None,
        };
        Some(format!(
            "{why}: whether acknowledged events were lost to a cut or removed write-ahead log cannot be checked (a close under --sync fsync, or `dreamlog recover`, writes it again)"
        ))
    }

    /// `verify --deep`'s check that redaction left no old bytes: for each redacted
    /// record, no pending scrub, no copy of its old record in a write-ahead log, its new
    /// record not still only in memory (then the old one is in a file), and at most one
    /// table file spanning its key (a finished scrub compacts every file that spans it
    /// into one, on the last level).
    fn verify_scrubbed(&self, report: &mut VerifyReport, redacted: &HashMap<u64, EventId>) -> Result<()> {
        let mut why: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
        for p in self.pending_scrubs()? {
            why.entry(p).or_default().push("its scrub did not finish".into());
        }
        for (file, positions) in wal::unredacted_copies(&self.path, redacted)? {
            for p in positions {
                why.entry(p).or_default().push(format!(
                    "write-ahead log file {} holds its record as it was before the redaction",
                    file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned())
                ));
            }
        }
        let mut positions: Vec<u64> = redacted.keys().copied().collect();
        positions.sort_unstable();
        for (p, reason) in self.unscrubbed(&positions)? {
            why.entry(p).or_default().push(reason);
        }
        for (p, reasons) in why {
            let id = redacted.get(&p);
            report.problems.push(VerifyProblem {
                position: Some(p),
                id: id.map(EventId::to_hex),
                problem: format!(
                    "redacted, but its removed bytes may still be on disk: {} (`dreamlog redact {}` finishes the scrub)",
                    reasons.join("; "),
                    id.map_or_else(|| format!("@{p}"), |i| i.to_hex())
                ),
            });
        }
        Ok(())
    }

    /// Redacted records (at `positions`) an older version of which may still be in a
    /// table file: the new record is still in the memtable while a table file spans its
    /// key (it held the key before the redaction: records are written in position order),
    /// or more than one table file spans it (a finished scrub compacts them into one).
    fn unscrubbed(&self, positions: &[u64]) -> Result<Vec<(u64, String)>> {
        let mut in_memory = ReadOptions::default();
        in_memory.set_read_tier(rocksdb::ReadTier::Memtable);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_LOG), in_memory);
        let files: Vec<_> =
            self.db.live_files().stored()?.into_iter().filter(|f| f.column_family_name == CF_LOG).collect();
        let mut out = Vec::new();
        for p in positions {
            let key = layout::pos_key(*p);
            let spanning: Vec<String> = files
                .iter()
                .filter(|f| {
                    f.start_key.as_deref().is_some_and(|s| s <= key.as_slice())
                        && f.end_key.as_deref().is_some_and(|e| e >= key.as_slice())
                })
                .map(|f| format!("{} (level {})", f.name.trim_start_matches('/'), f.level))
                .collect();
            it.seek(key);
            if it.key() == Some(key.as_slice()) && !spanning.is_empty() {
                out.push((
                    *p,
                    format!(
                        "its redacted record is still only in memory while table file {} holds its key from before",
                        spanning.join(", ")
                    ),
                ));
            } else if spanning.len() > 1 {
                out.push((
                    *p,
                    format!(
                        "table files {} all span its key: an older one may still hold the record it replaced",
                        spanning.join(", ")
                    ),
                ));
            }
        }
        it.status().stored()?;
        Ok(out)
    }

    /// The first run of missing positions below `count` (a full key scan of the log: only
    /// run when RocksDB removed table files at open).
    fn first_gap(&self, count: u64) -> Result<Option<(u64, u64)>> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_LOG));
        it.seek_to_first();
        let mut expected = 0u64;
        while it.valid() && expected < count {
            let Some(pos) = it.key().and_then(be_u64) else { break };
            if pos != expected {
                return Ok(Some((expected, pos.min(count) - 1)));
            }
            expected += 1;
            it.next();
        }
        it.status().stored()?;
        Ok((expected < count).then(|| (expected, count - 1)))
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        // Every column family is created on open.
        self.db.cf_handle(name).expect("column family created on open")
    }

    fn space(&self, space: Space) -> &ColumnFamily {
        self.cf(space.name())
    }

    /// RocksDB's `DB::VerifyChecksum`: reads every block of every live table file and
    /// checks it against its checksum.
    fn verify_table_checksums(&self) -> std::result::Result<(), String> {
        use rocksdb::AsRawPtr;
        let mut err: *mut std::os::raw::c_char = std::ptr::null_mut();
        // SAFETY: the database outlives the call (`self` holds it); `err` is either left
        // null or set to a malloc'd C string, which is copied and freed here.
        unsafe {
            librocksdb_sys::rocksdb_verify_checksum(self.db.as_raw_ptr(), &mut err);
            if err.is_null() {
                return Ok(());
            }
            let message = std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned();
            librocksdb_sys::rocksdb_free(err as *mut std::ffi::c_void);
            Err(message)
        }
    }
}

impl Log for RocksLog {
    fn torn_tail(&self) -> Option<&(WalDamage, PathBuf)> {
        self.torn_tail.as_ref()
    }

    fn acked_problem(&self) -> Option<String> {
        self.acked_check()
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn describe(&self) -> String {
        format!("RocksDB database at {}", self.path.display())
    }

    fn marker(&self) -> Result<Option<u64>> {
        Ok(self.db.get_pinned_cf(self.cf(CF_META), META_END_KEY).stored()?.and_then(|v| be_u64(&v)))
    }

    fn stored_end(&self) -> Result<u64> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_LOG));
        it.seek_to_last();
        let end = match it.key() {
            Some(k) => {
                be_u64(k)
                    .ok_or_else(|| Error::Log(LogError::Corrupt { position: 0, reason: "bad key in log".into() }))?
                    + 1
            }
            None => 0,
        };
        it.status().stored()?;
        Ok(end)
    }

    fn truncate(&self, end: u64) -> Result<()> {
        let mut wb = WriteBatch::default();
        let mut dropped = Vec::new();
        self.scan(end, u64::MAX, &mut |pos, raw| {
            dropped.push((pos, raw.to_vec()));
            Ok(true)
        })?;
        for (pos, raw) in &dropped {
            wb.delete_cf(self.cf(CF_LOG), layout::pos_key(*pos));
            if let Some(parts) = layout::split_record(raw) {
                wb.delete_cf(self.cf(CF_IDS), layout::id_key(&parts.id));
                if let Ok(e) = dreamlog_store::decode_record(*pos, raw) {
                    wb.delete_cf(self.cf(CF_STREAMS), layout::stream_key(&e.event.header.stream, e.version));
                    let mut entries = Vec::new();
                    let body = (!e.redacted).then_some(&e.event.body);
                    projection::project(
                        &Projected { position: *pos, version: e.version, header: &e.event.header, body },
                        &mut entries,
                    );
                    for x in entries {
                        wb.delete_cf(self.space(x.space), &x.key);
                    }
                }
            }
        }
        // Receipts of dropped batches go with them (a receipt key's position is its
        // batch's first event).
        wb.delete_range_cf(self.cf(CF_META), layout::receipt_key(end), layout::receipt_key(u64::MAX));
        wb.delete_cf(self.cf(CF_META), layout::receipt_key(u64::MAX));
        wb.put_cf(self.cf(CF_META), META_END_KEY, end.to_be_bytes());
        for p in projection::PROJECTORS {
            let own =
                self.db.get_pinned_cf(self.cf(CF_META), checkpoint_key(p.name)).stored()?.and_then(|v| be_u64(&v));
            if own.is_some_and(|c| c > end) {
                wb.put_cf(self.cf(CF_META), checkpoint_key(p.name), end.to_be_bytes());
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo).stored()?;
        Ok(())
    }

    fn write(&self, group: &Group, sync: bool) -> Result<()> {
        let mut wb = WriteBatch::default();
        let (log, ids, streams) = (self.cf(CF_LOG), self.cf(CF_IDS), self.cf(CF_STREAMS));
        for s in &group.events {
            let e = &s.event;
            let pos = layout::pos_key(s.position);
            wb.put_cf(log, pos, layout::encode_staged(s));
            wb.put_cf(ids, layout::id_key(&e.id), layout::id_value(s.position));
            wb.put_cf(streams, layout::stream_key(&e.header.stream, s.version), pos);
            if let Some(r) = &s.receipt {
                wb.put_cf(self.cf(CF_META), layout::receipt_key(s.position), r);
            }
        }
        for (position, record) in &group.rewrites {
            wb.put_cf(log, layout::pos_key(*position), record);
            // Until the old bytes have left the files (`scrub`): finished at the next
            // open if a crash comes first.
            wb.put_cf(self.cf(CF_META), layout::scrub_key(*position), []);
        }
        for space in &group.clear {
            // Keys of derived spaces are names and positions: no key starts with 0xFF.
            wb.delete_range_cf(self.space(*space), [].as_slice(), [0xFFu8; 1].as_slice());
        }
        // One handle per space for the whole group (a lookup by name each costs a lock).
        let spaces: Vec<(Space, &ColumnFamily)> = Space::ALL.iter().map(|s| (*s, self.space(*s))).collect();
        for x in &group.index {
            let cf =
                spaces.iter().find(|(s, _)| *s == x.space).map(|(_, cf)| *cf).unwrap_or_else(|| self.space(x.space));
            wb.put_cf(cf, &x.key, &x.value);
        }
        wb.put_cf(self.cf(CF_META), META_END_KEY, group.end.to_be_bytes());
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        wo.set_memtable_insert_hint_per_batch(true);
        self.db.write_opt(wb, &wo).stored()?;
        Ok(())
    }

    fn record(&self, position: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_pinned_cf(self.cf(CF_LOG), layout::pos_key(position)).stored()?.map(|v| v.to_vec()))
    }

    fn own(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_META), [b"own/".as_slice(), key.as_bytes()].concat())
            .stored()?
            .map(|v| v.to_vec()))
    }

    fn set_own(&self, key: &str, value: &[u8]) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.put_cf_opt(self.cf(CF_META), [b"own/".as_slice(), key.as_bytes()].concat(), value, &wo).stored()?;
        Ok(())
    }

    fn receipt_at_or_before(&self, position: u64) -> Result<Option<(u64, Vec<u8>)>> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_META));
        it.seek_for_prev(layout::receipt_key(position));
        let found = match (it.key(), it.value()) {
            (Some(k), Some(v)) => layout::receipt_position(k).map(|p| (p, v.to_vec())),
            _ => None,
        };
        it.status().stored()?;
        Ok(found)
    }

    fn receipts(&self, from: u64, f: &mut dyn FnMut(u64, &[u8]) -> Result<bool>) -> Result<()> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(layout::receipt_key(u64::MAX));
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_META), ro);
        it.seek(layout::receipt_key(from));
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let Some(p) = layout::receipt_position(k) else { break };
            if !f(p, v)? {
                return Ok(());
            }
            it.next();
        }
        it.status().stored()?;
        Ok(())
    }

    fn scan(&self, from: u64, end: u64, f: &mut dyn FnMut(u64, &[u8]) -> Result<bool>) -> Result<()> {
        let mut ro = ReadOptions::default();
        ro.set_readahead_size(2 << 20);
        // A scan reads each block once: do not churn the block cache with it.
        ro.fill_cache(false);
        if end != u64::MAX {
            ro.set_iterate_upper_bound(layout::pos_key(end).to_vec());
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_LOG), ro);
        it.seek(layout::pos_key(from));
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let pos = be_u64(k)
                .ok_or_else(|| Error::Log(LogError::Corrupt { position: from, reason: "bad log key".into() }))?;
            if !f(pos, v)? {
                return Ok(());
            }
            it.next();
        }
        it.status().stored()?;
        Ok(())
    }

    /// One iterator: a step to the next key when positions are adjacent (dense streams
    /// read at scan speed), a seek otherwise.
    fn records(&self, positions: &[u64], f: &mut dyn FnMut(u64, &[u8]) -> Result<()>) -> Result<()> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_LOG));
        let mut at: Option<u64> = None;
        for &pos in positions {
            match at {
                Some(a) if a + 1 == pos => it.next(),
                _ => it.seek(layout::pos_key(pos)),
            }
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                it.status().stored()?;
                return Err(Error::Log(LogError::Corrupt {
                    position: pos,
                    reason: "index points at a missing record".into(),
                }));
            };
            if be_u64(k) != Some(pos) {
                return Err(Error::Log(LogError::Corrupt {
                    position: pos,
                    reason: "index points at a missing record".into(),
                }));
            }
            f(pos, v)?;
            at = Some(pos);
        }
        Ok(())
    }

    fn position_of(&self, id: &EventId) -> Result<Option<u64>> {
        let v = self.db.get_pinned_cf(self.cf(CF_IDS), layout::id_key(id)).stored()?;
        Ok(v.and_then(|v| be_u64(&v)))
    }

    fn ids_from(&self, start: &[u8], f: &mut dyn FnMut(&[u8], Option<u64>) -> bool) -> Result<()> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_IDS));
        it.seek(start);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !f(k, be_u64(v)) {
                break;
            }
            it.next();
        }
        it.status().stored()?;
        Ok(())
    }

    fn stream_last(&self, stream: &str) -> Result<Option<(u64, u64)>> {
        let prefix = layout::stream_prefix(stream);
        let mut it = self.db.raw_iterator_cf(self.cf(CF_STREAMS));
        it.seek_for_prev(layout::stream_key(stream, u64::MAX));
        if let (Some(k), Some(v)) = (it.key(), it.value()) {
            if k.starts_with(&prefix) && k.len() == prefix.len() + 8 {
                let version = be_u64(&k[prefix.len()..]).unwrap_or(0);
                let pos = be_u64(v).unwrap_or(0);
                return Ok(Some((version, pos)));
            }
        }
        it.status().stored()?;
        Ok(None)
    }

    fn stream_position(&self, stream: &str, version: u64) -> Result<Option<u64>> {
        let v = self.db.get_pinned_cf(self.cf(CF_STREAMS), layout::stream_key(stream, version)).stored()?;
        Ok(v.map(|p| be_u64(&p).unwrap_or(u64::MAX)))
    }

    fn stream_positions(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<u64>> {
        let prefix = layout::stream_prefix(stream);
        let mut it = self.db.raw_iterator_cf(self.cf(CF_STREAMS));
        it.seek(layout::stream_key(stream, from_version));
        let mut positions = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 || positions.len() >= limit {
                break;
            }
            positions.push(be_u64(v).unwrap_or(u64::MAX));
            it.next();
        }
        it.status().stored()?;
        Ok(positions)
    }

    fn streams(&self) -> Result<Vec<(String, u64)>> {
        let mut out: Vec<(String, u64)> = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(CF_STREAMS));
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
        it.status().stored()?;
        Ok(out)
    }

    fn stream_entries(&self) -> Result<u64> {
        let mut n = 0;
        let mut it = self.db.raw_iterator_cf(self.cf(CF_STREAMS));
        it.seek_to_first();
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status().stored()?;
        Ok(n)
    }

    fn index_scan(&self, space: Space, from: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let mut it = self.db.raw_iterator_cf(self.space(space));
        it.seek(from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !f(k, v) {
                break;
            }
            it.next();
        }
        it.status().stored()?;
        Ok(())
    }

    fn index_last_at_or_before(&self, space: Space, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut it = self.db.raw_iterator_cf(self.space(space));
        it.seek_for_prev(key);
        let found = match (it.key(), it.value()) {
            (Some(k), Some(v)) => Some((k.to_vec(), v.to_vec())),
            _ => None,
        };
        it.status().stored()?;
        Ok(found)
    }

    fn index_put(&self, entries: &[IndexEntry]) -> Result<()> {
        let mut wb = WriteBatch::default();
        for x in entries {
            wb.put_cf(self.space(x.space), &x.key, &x.value);
        }
        self.db.write(wb).stored()?;
        Ok(())
    }

    fn index_delete_range(&self, space: Space, from: &[u8], to: &[u8]) -> Result<()> {
        self.db.delete_range_cf(self.space(space), from, to).stored()?;
        Ok(())
    }

    fn index_clear(&self, space: Space) -> Result<()> {
        let mut wb = WriteBatch::default();
        for kv in self.db.iterator_cf(self.space(space), IteratorMode::From(&[], Direction::Forward)) {
            let (k, _) = kv.stored()?;
            wb.delete_cf(self.space(space), k);
        }
        self.db.write(wb).stored()?;
        Ok(())
    }

    fn projected_to(&self, projector: &str) -> Result<Option<u64>> {
        match self.db.get_pinned_cf(self.cf(CF_META), checkpoint_key(projector)).stored()?.and_then(|v| be_u64(&v)) {
            Some(c) => Ok(Some(c)),
            None => self.marker(),
        }
    }

    fn set_projected_to(&self, projector: &str, position: Option<u64>) -> Result<()> {
        match position {
            Some(p) => self.db.put_cf(self.cf(CF_META), checkpoint_key(projector), p.to_be_bytes()).stored()?,
            None => self.db.delete_cf(self.cf(CF_META), checkpoint_key(projector)).stored()?,
        }
        Ok(())
    }

    fn record_acknowledged(&self, count: u64) -> Result<()> {
        wal::write_acked(&self.path, count)
            .map_err(|source| Error::Io { path: self.path.join(wal::ACKED_FILE).display().to_string(), source })
    }

    fn flush(&self) -> Result<()> {
        for cf in layout::ALL_CFS {
            self.db.flush_cf(self.cf(cf)).stored()?;
        }
        Ok(())
    }

    fn scrub(&self, positions: &[u64]) -> Result<()> {
        // Memtables to tables: the WAL files that held the old bytes become obsolete and
        // are deleted. Then every table holding an old version of a replaced record (or a
        // snapshot) is rewritten by a compaction down to the last level, which keeps only
        // the newest version of each key.
        self.db.flush_wal(true).stored()?;
        self.flush()?;
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        opts.set_exclusive_manual_compaction(true);
        for p in positions {
            let (from, to) = (layout::pos_key(*p), layout::pos_key(p.saturating_add(1)));
            self.db.compact_range_cf_opt(self.cf(CF_LOG), Some(from.as_slice()), Some(to.as_slice()), &opts);
        }
        self.db.compact_range_cf_opt(self.space(Space::Snapshots), None::<&[u8]>, None::<&[u8]>, &opts);
        // A compaction's failure is not returned by the rocksdb crate: look at the result,
        // and keep the pending records (the next open, or `redact` again, tries again).
        let left = self.unscrubbed(positions)?;
        if !left.is_empty() {
            return Err(Error::Log(LogError::Storage(format!(
                "the scrub after a redaction did not finish: {}",
                left.iter().map(|(p, why)| format!("position {p}: {why}")).collect::<Vec<_>>().join("; ")
            ))));
        }
        // Done: the pending records go (durably, so a finished scrub is never redone
        // for nothing, and an unfinished one never forgotten).
        let mut wb = WriteBatch::default();
        for p in positions {
            wb.delete_cf(self.cf(CF_META), layout::scrub_key(*p));
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo).stored()?;
        Ok(())
    }

    fn pending_scrubs(&self) -> Result<Vec<u64>> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(layout::scrub_key(u64::MAX));
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_META), ro);
        it.seek(layout::SCRUB_PREFIX);
        let mut out = Vec::new();
        while let Some(k) = it.key() {
            let Some(p) = layout::scrub_position(k) else { break };
            out.push(p);
            it.next();
        }
        it.status().stored()?;
        // The upper bound is exclusive: the greatest position has a key of its own.
        if self.db.get_pinned_cf(self.cf(CF_META), layout::scrub_key(u64::MAX)).stored()?.is_some() {
            out.push(u64::MAX);
        }
        Ok(out)
    }

    fn close(&self, _count: u64) -> Result<()> {
        self.db.flush_wal(true).stored()?;
        // Large memtables are flushed now, so the next open does not rebuild them from the
        // WAL (seconds after a large import or sync); small ones stay in the WAL (a flush
        // for every short command would pile up small tables).
        // Best effort: everything is durable in the synced WAL already, so a flush that
        // fails (a full disk) fails nothing the command did; the next open replays it.
        let mut pending = 0u64;
        for cf in layout::ALL_CFS {
            let size = self.db.property_int_value_cf(self.cf(cf), rocksdb::properties::CUR_SIZE_ALL_MEM_TABLES);
            pending += size.ok().flatten().unwrap_or(0);
        }
        if pending >= FLUSH_AT_CLOSE_BYTES {
            let _ = self.flush();
        }
        Ok(())
    }

    fn backup(&self, dir: &Path, acknowledged: u64) -> Result<()> {
        rocksdb::checkpoint::Checkpoint::new(&self.db).stored()?.create_checkpoint(dir).stored()?;
        // The copy holds every event acknowledged before it began: opening it checks so.
        if wal::read_acked(&self.path).is_some() {
            wal::write_acked(dir, acknowledged)
                .map_err(|source| Error::Io { path: dir.join(wal::ACKED_FILE).display().to_string(), source })?;
        }
        Ok(())
    }

    /// Reads every entry of every column family with checksums verified and the block
    /// cache bypassed (so every data and index block of every live table file is read
    /// from disk), runs `VerifyChecksum`, and looks up each table file's first key (so its
    /// filter block is read too). Any block that fails is a problem naming the file.
    fn verify_storage(&self, report: &mut VerifyReport, redacted: &HashMap<u64, EventId>) -> Result<()> {
        self.verify_scrubbed(report, redacted)?;
        let mut deep = report.deep.take().unwrap_or_default();
        let fresh = || {
            let mut r = ReadOptions::default();
            r.set_verify_checksums(true);
            r.fill_cache(false);
            r
        };
        for cf in layout::ALL_CFS {
            let mut it = self.db.raw_iterator_cf_opt(self.cf(cf), fresh());
            it.seek_to_first();
            while it.valid() {
                deep.entries += 1;
                it.next();
            }
            if let Err(e) = it.status() {
                report.problems.push(VerifyProblem {
                    position: None,
                    id: None,
                    problem: format!("column family {cf}: {}", e.into_string()),
                });
            }
        }
        if let Err(e) = self.verify_table_checksums() {
            report.problems.push(VerifyProblem { position: None, id: None, problem: format!("table files: {e}") });
        }
        for f in self.db.live_files().stored()? {
            deep.table_files += 1;
            deep.table_bytes += f.size as u64;
            let Some(key) = &f.start_key else { continue };
            let Some(cf) = layout::ALL_CFS.iter().find(|c| **c == f.column_family_name) else { continue };
            if let Err(e) = self.db.get_cf_opt(self.cf(cf), key, &fresh()) {
                report.problems.push(VerifyProblem {
                    position: None,
                    id: None,
                    problem: format!("table file {} (column family {cf}): {}", f.name, e.into_string()),
                });
            }
        }
        report.deep = Some(deep);
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The files of a RocksDB database in `dir` (tables, WALs, MANIFEST, OPTIONS…), summarised
/// by kind; empty when there are none.
/// Written when an open finds the log short of table files RocksDB removed (OpenGuard):
/// every later open refuses with its text.
const HELD_FILE: &str = "DAMAGED";

/// Hard links to every table file, taken before RocksDB opens the folder, so that nothing
/// its open removes is lost: a file it removed is kept (`DB/damaged/*-removed-at-open/`),
/// and the rest of the links are dropped. Where hard links are not supported the open
/// goes on without a guard. A guard left by an open that crashed is settled by the next.
struct OpenGuard {
    dir: PathBuf,
    linked: Vec<String>,
}

impl OpenGuard {
    const PREFIX: &'static str = ".open-guard-";

    fn take(db: &Path) -> Option<OpenGuard> {
        let damaged = db.join("damaged");
        // Settle guards of opens that did not finish: links whose file is still in the
        // folder go; anything else is kept as removed at open.
        for stale in std::fs::read_dir(&damaged).into_iter().flatten().flatten() {
            let name = stale.file_name().to_string_lossy().into_owned();
            if name.starts_with(Self::PREFIX) {
                let g = OpenGuard { dir: stale.path(), linked: Vec::new() };
                if g.removed(db).is_empty() {
                    g.discard();
                } else {
                    let _ =
                        std::fs::rename(&g.dir, damaged.join(format!("{}-removed-at-open", dreamlog_store::now_ms())));
                }
            }
        }
        let tables: Vec<String> = std::fs::read_dir(db)
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sst"))
            .collect();
        if tables.is_empty() {
            return None;
        }
        let dir = damaged.join(format!("{}{}", Self::PREFIX, std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let mut guard = OpenGuard { dir, linked: Vec::new() };
        for t in tables {
            match std::fs::hard_link(db.join(&t), guard.dir.join(&t)) {
                Ok(()) => guard.linked.push(t),
                // Already gone (a concurrent compaction cannot run: nothing has the database open).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => {
                    guard.discard();
                    return None;
                }
            }
        }
        Some(guard)
    }

    /// Guarded files no longer in the database folder.
    fn removed(&self, db: &Path) -> Vec<String> {
        let names: Vec<String> = if self.linked.is_empty() {
            std::fs::read_dir(&self.dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        } else {
            self.linked.clone()
        };
        let mut gone: Vec<String> = names.into_iter().filter(|n| !db.join(n).exists()).collect();
        gone.sort();
        gone
    }

    /// Keeps the removed files in `to` (the links to files still in use go).
    fn keep(self, to: &Path) -> Result<()> {
        let db = self.dir.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if db.join(e.file_name()).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        std::fs::rename(&self.dir, to).map_err(|source| Error::Io { path: to.display().to_string(), source })
    }

    fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(damaged) = self.dir.parent() {
            let _ = std::fs::remove_dir(damaged); // only when empty
        }
    }
}

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

/// RocksDB's errors become `LogError::Storage` here, the only crate that knows RocksDB.
pub(crate) fn storage(e: rocksdb::Error) -> Error {
    Error::Log(LogError::Storage(e.into_string()))
}

/// `?` for RocksDB's results: `.stored()?`.
pub(crate) trait Stored<T> {
    /// The result with RocksDB's error as the engine's.
    fn stored(self) -> Result<T>;
}

impl<T> Stored<T> for std::result::Result<T, rocksdb::Error> {
    fn stored(self) -> Result<T> {
        self.map_err(storage)
    }
}
