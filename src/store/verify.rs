//! `verify`: recompute every id and body hash, check every stream chain and every index
//! entry. Finds any flipped byte in a stored header, body or index.

use std::collections::{HashMap, HashSet};

use super::layout::{self, CF_IDS, CF_KINDS, CF_PATHS, CF_STREAMS};
use super::Store;
use crate::core::{Body, EventId, Header, Kind, SealedEvent};
use crate::error::Result;

/// One problem found by `verify`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifyProblem {
    /// Global position of the bad event (when the problem belongs to one).
    pub position: Option<u64>,
    /// The event's id as the index records it (when known).
    pub id: Option<String>,
    /// What is wrong.
    pub problem: String,
}

/// What `verify` checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    /// Events checked.
    pub events: u64,
    /// Streams whose chains were checked.
    pub streams: u64,
    /// Bytes of headers and bodies hashed.
    pub bytes: u64,
    /// Index entries checked (ids, streams, kinds).
    pub index_entries: u64,
    /// With `--deep`: what the storage and projection passes read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep: Option<DeepReport>,
    /// Everything wrong, in log order.
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What `verify --deep` read beyond the events and their indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeepReport {
    /// Table files whose blocks were read (data, index, filter, properties).
    pub table_files: u64,
    /// Bytes of those files.
    pub table_bytes: u64,
    /// Entries read, every column family, every key.
    pub entries: u64,
    /// Projection snapshots compared with a full replay.
    pub snapshots: u64,
}

struct Chain {
    next_version: u64,
    head: EventId,
}

impl Store {
    /// RocksDB's `DB::VerifyChecksum`: reads every block of every live table file and
    /// checks it against its checksum.
    fn verify_table_checksums(&self) -> std::result::Result<(), String> {
        use rocksdb::AsRawPtr;
        let mut err: *mut std::os::raw::c_char = std::ptr::null_mut();
        // SAFETY: the database outlives the call (`self` holds it); `err` is either left
        // null or set to a malloc'd C string, which is copied and freed here.
        unsafe {
            librocksdb_sys::rocksdb_verify_checksum(self.inner.db.as_raw_ptr(), &mut err);
            if err.is_null() {
                return Ok(());
            }
            let message = std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned();
            librocksdb_sys::rocksdb_free(err as *mut std::ffi::c_void);
            Err(message)
        }
    }

    /// The storage half of `verify --deep`: reads every entry of every column family with
    /// checksums verified and the block cache bypassed (so every data and index block of
    /// every live table file is read from disk), and looks up each table file's first key
    /// (so its filter block is read too; properties and footers are read when a file is
    /// opened). Any block that fails its checksum is a problem naming the file.
    pub fn verify_storage(&self, report: &mut VerifyReport) -> Result<()> {
        let mut deep = report.deep.take().unwrap_or_default();
        let fresh = || {
            let mut r = rocksdb::ReadOptions::default();
            r.set_verify_checksums(true);
            r.fill_cache(false);
            r
        };
        for cf in layout::ALL_CFS {
            let mut it = self.inner.db.raw_iterator_cf_opt(self.cf(cf), fresh());
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
        // Every block of every live table file, against its checksum: data, index, filter
        // (a filter that fails to load is otherwise ignored by reads), properties, meta.
        if let Err(e) = self.verify_table_checksums() {
            report.problems.push(VerifyProblem { position: None, id: None, problem: format!("table files: {e}") });
        }
        let files = self.inner.db.live_files()?;
        for f in files {
            deep.table_files += 1;
            deep.table_bytes += f.size as u64;
            let Some(key) = &f.start_key else { continue };
            let Some(cf) = layout::ALL_CFS.iter().find(|c| **c == f.column_family_name) else { continue };
            if let Err(e) = self.inner.db.get_cf_opt(self.cf(cf), key, &fresh()) {
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

    /// Checks the whole store. `progress` is called with the number of events checked so
    /// far (every few thousand).
    pub fn verify(&self, mut progress: impl FnMut(u64)) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let mut chains: HashMap<String, Chain> = HashMap::new();
        let mut bad: HashSet<u64> = HashSet::new();
        let mut header_bad: HashSet<u64> = HashSet::new();
        let mut expected_pos = 0u64;
        let mut kinds_seen: Vec<(Kind, u64)> = Vec::new();
        let mut path_entries_expected = 0u64;
        let paths_cf = self.cf(CF_PATHS);
        let ids_cf = self.cf(CF_IDS);
        let streams_cf = self.cf(CF_STREAMS);
        let problems = &mut report.problems;
        let mut events = 0u64;
        let mut bytes = 0u64;
        self.scan_raw(0, |pos, raw| {
            let mut complain = |problem: String| {
                problems.push(VerifyProblem { position: Some(pos), id: None, problem });
            };
            if pos != expected_pos {
                complain(format!("gap in the log: expected position {expected_pos}"));
            }
            expected_pos = pos + 1;
            events += 1;
            if events.is_multiple_of(8192) {
                progress(events);
            }
            let Some(parts) = layout::split_record(raw) else {
                complain("record layout is invalid".into());
                bad.insert(pos);
                header_bad.insert(pos);
                return Ok(true);
            };
            bytes += (parts.header.len() + parts.body.len()) as u64;
            let id = EventId::of(parts.header);
            let redacted = parts.flags & layout::FLAG_REDACTED != 0;
            let mut findings = if redacted {
                match Header::decode(parts.header) {
                    Ok(h) if h.encode() == parts.header => Vec::new(),
                    Ok(_) => vec!["header bytes are not canonical".to_owned()],
                    Err(e) => vec![e.to_string()],
                }
            } else {
                SealedEvent::audit(parts.header, parts.body)
            };
            if parts.id != id {
                findings.push(format!("record stores id {}, but its header hashes to {id}", parts.id));
            }
            let header_ok = match self.db().get_pinned_cf(ids_cf, layout::id_key(&id))? {
                Some(v) if layout::be_u64(&v) == Some(pos) => true,
                Some(v) => {
                    findings.push(format!("id index maps {id} to position {:?}", layout::be_u64(&v)));
                    false
                }
                None => {
                    findings.push(format!("header hashes to {id}, which the id index does not hold"));
                    false
                }
            };
            if !header_ok {
                header_bad.insert(pos);
            }
            // A header that does not hash to its indexed id cannot be trusted to name its
            // stream: it is reported above and left out of the chains, and the next event
            // of its stream is checked against the index instead.
            if let (true, Ok(header)) = (header_ok, Header::decode(parts.header)) {
                kinds_seen.push((header.kind, pos));
                if header.kind == Kind::Memory && !redacted {
                    if let Ok(body) = Body::decode(header.kind, parts.body) {
                        if let Some((store, paths)) = layout::memory_paths(&body) {
                            for path in paths {
                                path_entries_expected += 1;
                                if self.db().get_pinned_cf(paths_cf, layout::path_key(store, path, pos))?.is_none() {
                                    findings.push(format!("path index has no entry for {store}:{path}"));
                                }
                            }
                        }
                    }
                }
                let (mut want_version, want_parents) = match chains.get(&header.stream) {
                    Some(c) => (c.next_version, vec![c.head]),
                    None => (0, Vec::new()),
                };
                let mut link_known = true;
                if parts.version > want_version {
                    // Skipped versions are explained only by corrupt records at the
                    // positions the index gives for them (stops at the first that is not).
                    let mut skipped_bad = true;
                    for v in want_version..parts.version {
                        let at = self.db().get_pinned_cf(streams_cf, layout::stream_key(&header.stream, v))?;
                        if !at.and_then(|p| layout::be_u64(&p)).is_some_and(|p| bad.contains(&p)) {
                            skipped_bad = false;
                            break;
                        }
                    }
                    if skipped_bad {
                        want_version = parts.version;
                        link_known = false;
                    }
                }
                if parts.version != want_version {
                    findings
                        .push(format!("record says stream version {}, the chain is at {want_version}", parts.version));
                }
                if link_known && header.parents != want_parents {
                    findings.push(format!(
                        "parents {:?} do not link to the stream head {:?}",
                        header.parents.iter().map(|p| p.short(16)).collect::<Vec<_>>(),
                        want_parents.iter().map(|p| p.short(16)).collect::<Vec<_>>()
                    ));
                }
                match self.db().get_pinned_cf(streams_cf, layout::stream_key(&header.stream, want_version))? {
                    Some(v) if layout::be_u64(&v) == Some(pos) => {}
                    other => findings.push(format!(
                        "stream index entry {:?}@{want_version} points at {:?}",
                        header.stream,
                        other.and_then(|v| layout::be_u64(&v))
                    )),
                }
                chains.insert(header.stream, Chain { next_version: want_version + 1, head: id });
            }
            if !findings.is_empty() {
                bad.insert(pos);
            }
            for f in findings {
                complain(f);
            }
            Ok(true)
        })?;
        report.events = events;
        report.bytes = bytes;
        report.streams = chains.len() as u64;

        // The id index: exactly one entry per event (each event's entry was checked
        // above); name the bad events by the id the index holds for them.
        let mut id_entries = 0u64;
        let mut index_ids: HashMap<u64, String> = HashMap::new();
        for item in self.iterate_cf(CF_IDS) {
            let (k, v) = item?;
            id_entries += 1;
            let pos = layout::be_u64(&v);
            match pos {
                Some(p) if bad.contains(&p) => {
                    index_ids.insert(p, hex::encode(&k));
                }
                Some(p) if p < events => {}
                _ => report.problems.push(VerifyProblem {
                    position: pos,
                    id: Some(hex::encode(&k)),
                    problem: "id index entry points past the end of the log".into(),
                }),
            }
        }
        if id_entries != events {
            report.problems.push(VerifyProblem {
                position: None,
                id: None,
                problem: format!("id index holds {id_entries} entries for {events} events"),
            });
        }
        for p in report.problems.iter_mut() {
            if let (Some(pos), None) = (p.position, &p.id) {
                p.id = index_ids.get(&pos).cloned();
            }
        }

        // Stream and kind indexes: entry counts match (each event's entries were
        // checked above, so equal counts mean no stray entries).
        let stream_entries = self.iterate_cf(CF_STREAMS).count() as u64;
        if stream_entries != events {
            report.problems.push(VerifyProblem {
                position: None,
                id: None,
                problem: format!("stream index holds {stream_entries} entries for {events} events"),
            });
        }
        // Kind index: every entry names an event of that kind (events whose header is
        // corrupt cannot be checked and are reported already), one entry per event.
        let mut kind_entries = 0u64;
        let mut kind_matched = 0u64;
        let kind_set: HashSet<(u8, u64)> = kinds_seen.iter().map(|(k, p)| (k.tag(), *p)).collect();
        for item in self.iterate_cf(CF_KINDS) {
            let (k, _) = item?;
            kind_entries += 1;
            let pos = layout::be_u64(k.get(1..).unwrap_or(&[]));
            if pos.is_some_and(|p| header_bad.contains(&p)) {
                continue;
            }
            if k.len() == 9 && pos.is_some_and(|p| kind_set.contains(&(k[0], p))) {
                kind_matched += 1;
            } else {
                report.problems.push(VerifyProblem {
                    position: pos,
                    id: None,
                    problem: format!("kind index entry {} matches no event of that kind", hex::encode(&k)),
                });
            }
        }
        if kind_matched != kind_set.len() as u64 {
            report.problems.push(VerifyProblem {
                position: None,
                id: None,
                problem: format!("kind index has entries for {kind_matched} of {} events", kind_set.len()),
            });
        }
        let path_entries = self.iterate_cf(CF_PATHS).count() as u64;
        if path_entries != path_entries_expected {
            report.problems.push(VerifyProblem {
                position: None,
                id: None,
                problem: format!("path index holds {path_entries} entries for {path_entries_expected} memory paths"),
            });
        }
        report.index_entries = id_entries + stream_entries + kind_entries + path_entries;
        progress(events);
        Ok(report)
    }
}
