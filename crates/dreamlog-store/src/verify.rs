//! `verify`: recompute every id and body hash, check every stream chain and every index
//! entry. Finds any flipped byte in a stored header, body or index.

use std::collections::{HashMap, HashSet};

use super::layout;
use super::Store;
use crate::core::projection::{self, be_u64, Projected, Space, PROJECTORS};
use crate::core::{Body, EventId, Header, SealedEvent};
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
    /// Events whose body was redacted: their headers verified, their stand-ins checked
    /// against the redaction that recorded them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redacted: u64,
    /// Receipts checked: each covers events of the log, none overlaps another, and its
    /// ids digest names exactly the events at its positions.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub receipts: u64,
    /// With `--deep`: what the storage and projection passes read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep: Option<DeepReport>,
    /// Everything wrong, in log order.
    pub problems: Vec<VerifyProblem>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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

/// Problems of one kind named one by one before they are only counted.
const REPORT_EACH: u64 = 20;

struct Chain {
    next_version: u64,
    head: EventId,
}

/// The receipts checked along the log scan: the next receipt is read when the scan
/// reaches it (one seek per receipt), the open one hashes the ids it covers.
struct ReceiptCheck {
    log: std::sync::Arc<dyn super::Log>,
    next: Option<(u64, Vec<u8>)>,
    open: Option<(u64, u64, crate::core::Digest, blake3::Hasher)>,
    checked: u64,
}

impl ReceiptCheck {
    fn start(log: std::sync::Arc<dyn super::Log>) -> Result<ReceiptCheck> {
        let mut c = ReceiptCheck { log, next: None, open: None, checked: 0 };
        c.fetch(0)?;
        Ok(c)
    }

    fn fetch(&mut self, from: u64) -> Result<()> {
        let mut found = None;
        self.log.receipts(from, &mut |p, bytes| {
            found = Some((p, bytes.to_vec()));
            Ok(false)
        })?;
        self.next = found;
        Ok(())
    }

    fn see(&mut self, pos: u64, id: &EventId, complain: &mut impl FnMut(String)) -> Result<()> {
        if let Some((p, bytes)) = self.next.take_if(|(p, _)| *p <= pos) {
            if p < pos {
                complain(format!("a receipt is stored at position {p}, where no event is"));
            } else {
                if let Some((first, left, ..)) = self.open.take() {
                    complain(format!(
                        "the receipt of the batch at {first} still covers {left} event(s) where another receipt starts"
                    ));
                }
                self.checked += 1;
                match crate::core::receipt::Receipt::decode(&bytes) {
                    Ok(r) if r.count == 0 => complain("its batch's receipt covers no event".into()),
                    Ok(r) => self.open = Some((p, r.count, r.ids, blake3::Hasher::new())),
                    Err(e) => complain(format!("its batch's receipt does not decode: {e}")),
                }
            }
            self.fetch(pos + 1)?;
        }
        if let Some((first, left, want, hasher)) = &mut self.open {
            hasher.update(&id.0);
            *left -= 1;
            if *left == 0 {
                if crate::core::Digest(*hasher.finalize().as_bytes()) != *want {
                    complain(format!(
                        "the receipt of the batch at {first} names other events than the log holds at its positions"
                    ));
                }
                self.open = None;
            }
        }
        Ok(())
    }

    fn finish(self, problems: &mut Vec<VerifyProblem>) -> u64 {
        if let Some((first, left, ..)) = self.open {
            problems.push(VerifyProblem {
                position: Some(first),
                id: None,
                problem: format!("its batch's receipt covers {left} event(s) past the end of the log"),
            });
        }
        if let Some((p, _)) = self.next {
            problems.push(VerifyProblem {
                position: Some(p),
                id: None,
                problem: "a receipt is stored past the end of the log".into(),
            });
        }
        self.checked
    }
}

impl Store {
    /// The storage half of `verify --deep`, the backend's own checks (RocksDB: every
    /// entry of every column family read with checksums verified and the cache bypassed,
    /// `VerifyChecksum` over every block of every table file, each file's filter read),
    /// and that no redacted record's old bytes are still on disk (a scrub that did not
    /// finish: its pending record, a write-ahead log holding the old record, the record
    /// still in memory, or table files of which more than one spans its key).
    pub fn verify_storage(&self, report: &mut VerifyReport) -> Result<()> {
        let mut redacted = HashMap::new();
        for e in self.read_stream(crate::core::redact::STREAM, 0, usize::MAX)? {
            if let Body::Redact(r) = &e.event.body {
                if let Some(p) = self.log().position_of(&r.target)? {
                    redacted.insert(p, r.target);
                }
            }
        }
        self.log().verify_storage(report, &redacted)
    }

    /// Checks the whole store. `progress` is called with the number of events checked so
    /// far (every few thousand).
    pub fn verify(&self, mut progress: impl FnMut(u64)) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        // Every redaction: the target, where it was recorded, and its stand-in's bytes.
        let mut redactions: HashMap<EventId, (u64, Option<Vec<u8>>)> = HashMap::new();
        for e in self.read_stream(crate::core::redact::STREAM, 0, usize::MAX)? {
            match &e.event.body {
                Body::Redact(r) => {
                    redactions.entry(r.target).or_insert((e.position, None));
                }
                Body::Note(n) if n.note_type == crate::core::redact::STAND_IN_NOTE => {
                    if let Some((target, bytes)) = crate::core::redact::recorded_stand_in(&n.json.to_value()) {
                        redactions.entry(target).or_insert((e.position, None)).1 = Some(bytes);
                    }
                }
                _ => {}
            }
        }
        let mut redacted_count = 0u64;
        let mut chains: HashMap<String, Chain> = HashMap::new();
        let mut bad: HashSet<u64> = HashSet::new();
        let mut header_bad: HashSet<u64> = HashSet::new();
        let mut expected_pos = 0u64;
        // The projectors' entries rebuilt from the log, each looked up where it is stored
        // (memory stays flat however long the log): how many each space should hold, and
        // how many of those are missing.
        let mut expected_entries: HashMap<Space, u64> = HashMap::new();
        let mut missing_entries: HashMap<Space, u64> = HashMap::new();
        let log = self.log().clone();
        let problems = &mut report.problems;
        let mut events = 0u64;
        let mut bytes = 0u64;
        let mut receipts = ReceiptCheck::start(log.clone())?;
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
            receipts.see(pos, &id, &mut complain)?;
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
            match (redacted, redactions.get(&id)) {
                (true, Some((at, Some(recorded)))) if *at > pos && recorded.as_slice() == parts.body => {
                    redacted_count += 1;
                    if let Ok(h) = Header::decode(parts.header) {
                        if let Err(e) = Body::decode(h.kind, parts.body) {
                            findings.push(format!("redacted: its stand-in does not decode: {e}"));
                        }
                    }
                }
                (true, Some((_, Some(_)))) => {
                    findings.push("redacted: its stand-in is not the one its redaction recorded".into())
                }
                (true, _) => findings.push("redacted, but no redaction of it is recorded".into()),
                (false, Some((at, _))) => findings
                    .push(format!("the redaction at position {at} names this event, but its body is still stored")),
                (false, None) => {}
            }
            let header_ok = match log.position_of(&id)? {
                Some(p) if p == pos => true,
                Some(p) => {
                    findings.push(format!("id index maps {id} to position {p}"));
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
                // A redacted event projects through its stand-in (which keeps its paths,
                // session and kind), as it did when it was written.
                let body = Body::decode(header.kind, parts.body).ok();
                let mut entries = Vec::new();
                projection::project(
                    &Projected { position: pos, version: parts.version, header: &header, body: body.as_ref() },
                    &mut entries,
                );
                for x in entries {
                    *expected_entries.entry(x.space).or_default() += 1;
                    match log.index_last_at_or_before(x.space, &x.key)? {
                        Some((k, v)) if k == x.key && v == x.value => {}
                        Some((k, _)) if k == x.key => findings.push(format!(
                            "{} index entry {} holds a value its rebuild does not",
                            x.space.name(),
                            hex::encode(&x.key)
                        )),
                        _ => {
                            let n = missing_entries.entry(x.space).or_default();
                            *n += 1;
                            if *n <= REPORT_EACH {
                                findings.push(format!(
                                    "{} index has no entry {} (a rebuild makes it)",
                                    x.space.name(),
                                    hex::encode(&x.key)
                                ));
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
                        let at = log.stream_position(&header.stream, v)?;
                        if !at.is_some_and(|p| bad.contains(&p)) {
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
                match log.stream_position(&header.stream, want_version)? {
                    Some(p) if p == pos => {}
                    other => findings
                        .push(format!("stream index entry {:?}@{want_version} points at {other:?}", header.stream)),
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
        report.redacted = redacted_count;
        report.receipts = receipts.finish(&mut report.problems);
        // Damage to what guards against a cut WAL is damage: said here as at open.
        if let Some(why) = self.acked_problem() {
            report.problems.push(VerifyProblem { position: None, id: None, problem: why });
        }
        report.streams = chains.len() as u64;

        // The id index: exactly one entry per event (each event's entry was checked
        // above); name the bad events by the id the index holds for them.
        let mut id_entries = 0u64;
        let mut index_ids: HashMap<u64, String> = HashMap::new();
        let mut id_problems = Vec::new();
        log.ids_from(&[], &mut |k, pos| {
            id_entries += 1;
            match pos {
                Some(p) if bad.contains(&p) => {
                    index_ids.insert(p, hex::encode(k));
                }
                Some(p) if p < events => {}
                _ => id_problems.push(VerifyProblem {
                    position: pos,
                    id: Some(hex::encode(k)),
                    problem: "id index entry points past the end of the log".into(),
                }),
            }
            true
        })?;
        report.problems.extend(id_problems);
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
        let stream_entries = log.stream_entries()?;
        if stream_entries != events {
            report.problems.push(VerifyProblem {
                position: None,
                id: None,
                problem: format!("stream index holds {stream_entries} entries for {events} events"),
            });
        }
        // Every projector's space against its rebuild from the log: every entry a rebuild
        // makes was looked up above; equal counts then mean no stray entries. Only when
        // there are strays are the stored entries read one by one to name them (each
        // against a rebuild of the event its key or value names).
        let mut derived_entries = 0u64;
        for p in PROJECTORS {
            let mut stored = 0u64;
            log.index_scan(p.space, &[], &mut |_, _| {
                stored += 1;
                true
            })?;
            derived_entries += stored;
            let expected = expected_entries.get(&p.space).copied().unwrap_or(0);
            let missing = missing_entries.get(&p.space).copied().unwrap_or(0);
            if missing > REPORT_EACH {
                report.problems.push(VerifyProblem {
                    position: None,
                    id: None,
                    problem: format!("{} index is missing {missing} entries a rebuild from the log makes", p.name),
                });
            }
            if stored > expected - missing {
                let mut strays = 0u64;
                let mut named = Vec::new();
                let mut failed = None;
                log.index_scan(p.space, &[], &mut |k, v| {
                    let position = match p.space {
                        Space::Sessions => be_u64(v),
                        _ => k.len().checked_sub(8).and_then(|i| be_u64(&k[i..])),
                    };
                    if position.is_some_and(|p| header_bad.contains(&p)) {
                        return true;
                    }
                    let made = match position.filter(|p| *p < events) {
                        Some(pos) => match self.get_at(pos) {
                            Ok(e) => {
                                let mut entries = Vec::new();
                                let body = Some(&e.event.body);
                                let seen =
                                    Projected { position: pos, version: e.version, header: &e.event.header, body };
                                projection::project(&seen, &mut entries);
                                entries.iter().any(|x| x.space == p.space && x.key == k && x.value == v)
                            }
                            Err(err) => {
                                failed = Some(err);
                                return false;
                            }
                        },
                        None => false,
                    };
                    if !made {
                        strays += 1;
                        if named.len() < REPORT_EACH as usize {
                            named.push((position, hex::encode(k)));
                        }
                    }
                    true
                })?;
                if let Some(e) = failed {
                    return Err(e);
                }
                for (position, key) in named {
                    report.problems.push(VerifyProblem {
                        position,
                        id: None,
                        problem: format!("{} index entry {key} matches no event (a rebuild does not make it)", p.name),
                    });
                }
                if strays > REPORT_EACH {
                    report.problems.push(VerifyProblem {
                        position: None,
                        id: None,
                        problem: format!("{} index holds {strays} entries no event makes", p.name),
                    });
                }
            }
            match log.projected_to(p.name)? {
                Some(c) if c == self.len() => {}
                other => report.problems.push(VerifyProblem {
                    position: None,
                    id: None,
                    problem: format!(
                        "projector {} records it got to {other:?}, but the log holds {}",
                        p.name,
                        self.len()
                    ),
                }),
            }
        }
        report.index_entries = id_entries + stream_entries + derived_entries;
        progress(events);
        Ok(report)
    }
}
