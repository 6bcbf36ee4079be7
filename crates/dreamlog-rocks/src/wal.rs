//! dreamlog's own reading of RocksDB's write-ahead log, before RocksDB opens it.
//!
//! RocksDB's default recovery stops at the first bad WAL record and carries on without
//! what follows, then deletes the WAL: one flipped byte could silently drop every later
//! acknowledged append. So before opening, dreamlog reads each WAL file's record framing
//! itself (32 KiB blocks of records `masked crc32c (4) | length (2) | type (1) | payload`,
//! docs/reference/FORMAT.md §9) and the write batches inside, and classifies what it finds:
//!
//! - **clean**: every record checks out;
//! - **torn tail**: the only damage is an incomplete final record (the file ends inside
//!   a record, or in zeros) with nothing intact after it — what a crash or power loss
//!   leaves while a write is in flight. Tolerated: that write was never acknowledged
//!   under `--sync fsync`;
//! - **damaged**: a complete record whose checksum fails, or any damage followed by
//!   intact records (in the same file or a later one). Refused at open, naming the file,
//!   the offset, the last good position and the positions that follow; nothing is
//!   changed or deleted. `dreamlog recover` keeps the damaged files aside, reports what
//!   is lost by position and id, then opens the database at the last good point.
//!
//! Truncating a WAL exactly at a record boundary leaves no trace in its framing; see
//! docs/reference/FORMAT.md §9 for what that means under each sync mode.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dreamlog_store::core::EventId;
use dreamlog_store::error::{Error, Result};
use dreamlog_store::layout;

const BLOCK: usize = 32 * 1024;
const HEADER: usize = 7;
const RECYCLABLE_HEADER: usize = 11;

/// Record types of the WAL framing.
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

pub use dreamlog_store::{WalDamage, WalEvent};

/// What [`scan`] found in a database's WAL files.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WalScan {
    /// WAL files read, in log-number order.
    pub files: Vec<PathBuf>,
    /// Records read.
    pub records: u64,
    /// The first damage, if any.
    pub damage: Option<WalDamage>,
}

impl WalScan {
    /// Whether opening must be refused (damage that is not only a torn final record).
    pub fn refuses_open(&self) -> bool {
        self.damage.as_ref().is_some_and(|d| !d.torn_tail)
    }
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The WAL files of a database directory, by log number.
pub fn wal_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_suffix(".log").and_then(|n| n.parse::<u64>().ok()) {
            files.push((n, e.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// A physical record found in a file.
enum Physical<'a> {
    /// A record whose checksum holds.
    Record { kind: u8, payload: &'a [u8] },
    /// Zeros to the end of the block (padding or preallocation).
    Padding,
    /// The file ends inside a record's header or payload.
    Truncated,
    /// A complete record whose checksum or type is wrong, with its payload when it has
    /// one (read best effort, to name what it held).
    Bad(String, Option<&'a [u8]>),
}

/// Reads the physical record at `at` of `data`; returns it and the next offset.
fn physical(data: &[u8], at: usize) -> (Physical<'_>, usize) {
    let block_end = (at / BLOCK + 1) * BLOCK;
    let left_in_block = block_end - at;
    if left_in_block < HEADER {
        // A block's tail too short for a header is zero-filled.
        return (Physical::Padding, block_end);
    }
    if data.len() < at + HEADER {
        return (Physical::Truncated, data.len());
    }
    let h = &data[at..at + HEADER];
    let (crc, len, kind) = (u32::from_le_bytes([h[0], h[1], h[2], h[3]]), u16::from_le_bytes([h[4], h[5]]), h[6]);
    if crc == 0 && len == 0 && kind == 0 {
        return (Physical::Padding, block_end);
    }
    let header = match kind {
        5..=8 | 11 | 131 => RECYCLABLE_HEADER,
        _ => HEADER,
    };
    let end = at + header + len as usize;
    if end > block_end {
        return (Physical::Bad(format!("a record of {len} bytes runs past its 32 KiB block"), None), block_end);
    }
    if end > data.len() {
        return (Physical::Truncated, data.len());
    }
    // The checksum covers the type, the recyclable header's log number, and the payload.
    let mut covered = Vec::with_capacity(1 + (header - HEADER) + len as usize);
    covered.push(kind);
    covered.extend_from_slice(&data[at + HEADER..end]);
    if masked_crc(&covered) != crc {
        return (Physical::Bad("checksum mismatch".into(), Some(&data[at + header..end])), end);
    }
    (Physical::Record { kind, payload: &data[at + header..end] }, end)
}

/// Calls `f` with (position, record) of each put of a log record in one write batch.
fn batch_records(batch: &[u8], f: &mut dyn FnMut(u64, layout::RecordParts<'_>)) {
    fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*at)?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn slice<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
        let n = varint(b, at)? as usize;
        let s = b.get(*at..*at + n)?;
        *at += n;
        Some(s)
    }
    let mut at = 12; // sequence (8) and count (4)
    while at < batch.len() {
        let tag = batch[at];
        at += 1;
        // Puts (0x1; 0x5 with a column family) are read; deletions, range deletions,
        // merges and log data are stepped over; anything else ends what we read.
        let cf = matches!(tag, 0x4 | 0x5 | 0x6 | 0x8 | 0xE);
        if cf && varint(batch, &mut at).is_none() {
            break;
        }
        let entry = match tag {
            0x1 | 0x5 => slice(batch, &mut at).zip(slice(batch, &mut at)),
            0x0 | 0x3 | 0x4 | 0x7 | 0x8 => slice(batch, &mut at).map(|_| (&[][..], &[][..])),
            0x2 | 0x6 | 0xE | 0xF => slice(batch, &mut at).zip(slice(batch, &mut at)).map(|_| (&[][..], &[][..])),
            _ => None,
        };
        let Some((key, value)) = entry else { break };
        if key.len() == 8 {
            if let (Some(position), Some(parts)) = (layout::be_u64(key), layout::split_record(value)) {
                f(position, parts);
            }
        }
    }
}

/// Events (position, id) of one write batch: its puts of log records.
fn batch_events(batch: &[u8]) -> Vec<WalEvent> {
    let mut out = Vec::new();
    batch_records(batch, &mut |position, parts| out.push(WalEvent { position, id: parts.id }));
    out
}

/// The WAL files in `dir` that still hold a record of one of `redacted` (positions and
/// the ids of redacted events) as it was before its redaction (its body bytes), with the
/// positions each holds. Read from the intact part of each file.
pub fn unredacted_copies(dir: &Path, redacted: &HashMap<u64, EventId>) -> Result<Vec<(PathBuf, Vec<u64>)>> {
    let mut out = Vec::new();
    if redacted.is_empty() {
        return Ok(out);
    }
    for file in wal_files(dir)? {
        let data = std::fs::read(&file).map_err(|source| Error::Io { path: file.display().to_string(), source })?;
        let mut found = Vec::new();
        read_records(&data, 0, &mut |b| {
            batch_records(b, &mut |position, parts| {
                if parts.flags & layout::FLAG_REDACTED == 0 && redacted.get(&position) == Some(&parts.id) {
                    found.push(position);
                }
            })
        });
        if !found.is_empty() {
            found.sort_unstable();
            found.dedup();
            out.push((file, found));
        }
    }
    Ok(out)
}

/// Logical records (reassembled fragments) of the intact part of a block run, from
/// `from`: calls `f` with each write batch; stops at the first damage and returns it as
/// (offset, physical outcome).
fn read_records<'a>(data: &'a [u8], from: usize, f: &mut dyn FnMut(&[u8])) -> Option<(usize, Physical<'a>)> {
    let mut at = from;
    let mut pending: Option<Vec<u8>> = None;
    while at < data.len() {
        let start = at;
        let (p, next) = physical(data, at);
        at = next;
        match p {
            Physical::Padding => {
                // Zeros to the end of the file are preallocation: the clean end.
                if data[start..].iter().all(|b| *b == 0) {
                    return None;
                }
            }
            Physical::Record { kind, payload } => match kind {
                FULL => {
                    pending = None;
                    f(payload);
                }
                FIRST => pending = Some(payload.to_vec()),
                MIDDLE => match &mut pending {
                    Some(p) => p.extend_from_slice(payload),
                    None => return Some((start, Physical::Bad("a middle fragment with no first".into(), None))),
                },
                LAST => match pending.take() {
                    Some(mut p) => {
                        p.extend_from_slice(payload);
                        f(&p);
                    }
                    None => return Some((start, Physical::Bad("a last fragment with no first".into(), None))),
                },
                // Compression, timestamp-size and predecessor-WAL records: metadata.
                _ => {}
            },
            other => return Some((start, other)),
        }
    }
    if pending.is_some() {
        return Some((data.len(), Physical::Truncated));
    }
    None
}

/// Whether any intact write batch starts in `data` from the block after `offset`.
fn intact_after(data: &[u8], offset: usize, events: &mut Vec<WalEvent>) -> bool {
    let mut found = false;
    let mut block = (offset / BLOCK + 1) * BLOCK;
    while block < data.len() {
        // A block may begin inside a record spanning from before: skip its fragments.
        let mut at = block;
        loop {
            let (p, next) = physical(data, at);
            match p {
                Physical::Record { kind: MIDDLE | LAST, .. } => at = next,
                _ => break,
            }
            if at >= data.len() || at / BLOCK != block / BLOCK {
                break;
            }
        }
        let damage = read_records(data, at, &mut |b| {
            found = true;
            events.extend(batch_events(b));
        });
        match damage {
            None => return found,
            Some((o, _)) => block = (o / BLOCK + 1) * BLOCK,
        }
    }
    found
}

/// Reads every WAL file of the database at `dir` (nothing is written).
pub fn scan(dir: &Path) -> Result<WalScan> {
    let files = wal_files(dir)?;
    let mut out = WalScan { files: files.clone(), ..WalScan::default() };
    let mut last_good: Option<u64> = None;
    for (i, file) in files.iter().enumerate() {
        let data = std::fs::read(file).map_err(|source| Error::Io { path: file.display().to_string(), source })?;
        let mut records = 0u64;
        let damage = read_records(&data, 0, &mut |b| {
            records += 1;
            if let Some(e) = batch_events(b).last() {
                last_good = Some(e.position);
            }
        });
        out.records += records;
        let Some((offset, what)) = damage else { continue };
        let mut after = Vec::new();
        let mut intact = intact_after(&data, offset, &mut after);
        for later in &files[i + 1..] {
            let d = std::fs::read(later).map_err(|source| Error::Io { path: later.display().to_string(), source })?;
            let damage = read_records(&d, 0, &mut |b| {
                intact = true;
                after.extend(batch_events(b));
            });
            if let Some((o, _)) = damage {
                intact |= intact_after(&d, o, &mut after);
            }
        }
        let mut in_damaged = Vec::new();
        let (reason, incomplete) = match what {
            Physical::Truncated => ("the file ends inside a record".to_owned(), true),
            Physical::Padding => ("zeros where a record should be".to_owned(), true),
            Physical::Bad(r, payload) => {
                // A whole write batch with a bad checksum: name what it seems to hold.
                if let Some(p) = payload.filter(|p| p.len() >= 12) {
                    in_damaged = batch_events(p);
                }
                (r, false)
            }
            Physical::Record { .. } => ("an unexpected record".to_owned(), false),
        };
        out.damage = Some(WalDamage {
            file: file.clone(),
            offset: offset as u64,
            reason,
            torn_tail: incomplete && !intact,
            last_good,
            in_damaged,
            after,
        });
        break;
    }
    Ok(out)
}

/// Copies the WAL files from the damaged one on into `aside` (created), so nothing
/// RocksDB later deletes is lost; returns the copies.
pub fn keep_aside(scan: &WalScan, aside: &Path) -> Result<Vec<PathBuf>> {
    let Some(d) = &scan.damage else { return Ok(Vec::new()) };
    std::fs::create_dir_all(aside).map_err(|source| Error::Io { path: aside.display().to_string(), source })?;
    let mut out = Vec::new();
    for f in scan.files.iter().skip_while(|f| **f != d.file) {
        let to = aside.join(f.file_name().unwrap_or_default());
        std::fs::copy(f, &to).map_err(|source| Error::Io { path: to.display().to_string(), source })?;
        out.push(to);
    }
    Ok(out)
}

/// The file in which dreamlog records, durably, how many events were acknowledged under
/// `--sync fsync`: `dreamlog-acked v1 COUNT UNIX_MS`. The writer rewrites it at most every
/// half second while appends are acknowledged, and at close. An open that finds fewer
/// events than it names refuses: acknowledged events are missing (a WAL cut at a record
/// boundary leaves no trace in its framing, but it cannot hide from this count).
pub const ACKED_FILE: &str = "ACKED";

/// More events than any log can have been acknowledged (2^48): a count past it is damage.
pub const MAX_ACKED: u64 = 1 << 48;

/// What `ACKED` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acked {
    /// No file (a database never written under `--sync fsync`, or the file was removed).
    Missing,
    /// The count and when it was recorded (ms).
    Count {
        /// Events acknowledged.
        count: u64,
        /// When (ms since the epoch).
        at: u64,
    },
    /// A file that does not read as a count, or names an impossible one: why.
    Damaged(String),
}

/// What the `ACKED` file of `dir` says.
pub fn acked(dir: &Path) -> Acked {
    let text = match std::fs::read(dir.join(ACKED_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Acked::Missing,
        Err(e) => return Acked::Damaged(format!("unreadable: {e}")),
    };
    let shown = String::from_utf8_lossy(&text).chars().take(80).collect::<String>();
    let damaged = |why: &str| Acked::Damaged(format!("{why}: {shown:?}"));
    let Ok(text) = std::str::from_utf8(&text) else { return damaged("not text") };
    let mut words = text.split_whitespace();
    if (words.next(), words.next()) != (Some("dreamlog-acked"), Some("v1")) {
        return damaged("not `dreamlog-acked v1 COUNT MS`");
    }
    let (Some(Ok(count)), Some(Ok(at))) = (words.next().map(str::parse::<u64>), words.next().map(str::parse::<u64>))
    else {
        return damaged("its count or time is not a number");
    };
    if count > MAX_ACKED {
        return damaged(&format!("a count of {count} events, more than any log can hold"));
    }
    Acked::Count { count, at }
}

/// The acknowledged count recorded in `dir`, and when, if it reads as one.
pub fn read_acked(dir: &Path) -> Option<(u64, u64)> {
    match acked(dir) {
        Acked::Count { count, at } => Some((count, at)),
        _ => None,
    }
}

/// Records `count` acknowledged events durably (a new file synced, then renamed over the
/// old one, then the folder synced).
pub fn write_acked(dir: &Path, count: u64) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join("ACKED.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "dreamlog-acked v1 {count} {}", dreamlog_store::now_ms())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(ACKED_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}
