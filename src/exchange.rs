//! Export and import of the log as JSON Lines: every event in its JSON form with
//! position, id, version, time and parents, so the receiver can recompute every id.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use crate::core::{EventId, EventJson, SealedEvent};
use crate::error::{Error, Result};
use crate::store::{AppendBatch, Store};

/// Events per append batch during an import.
const IMPORT_BATCH: usize = 2000;

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Lines (events) read.
    pub events: u64,
    /// Events appended.
    pub appended: u64,
    /// Events that were already in the store (same id).
    pub existing: u64,
    /// Whether positions in the file equal the positions the events now have.
    pub same_positions: bool,
}

/// Writes every event from `from` on as JSON Lines; returns the number written.
/// `progress` gets the count every few thousand events.
pub fn export(store: &Store, from: u64, out: &mut dyn Write, mut progress: impl FnMut(u64)) -> Result<u64> {
    let mut n = 0u64;
    let mut failed: Option<std::io::Error> = None;
    let mut receipts = store.received_cursor();
    let mut lookup_failed = None;
    store.scan(from, |e| {
        let mut json = e.to_json();
        match receipts.at(e.position) {
            Ok(r) => json.received = r,
            Err(err) => {
                lookup_failed = Some(err);
                return false;
            }
        }
        let mut line = json.to_line();
        line.push('\n');
        if let Err(err) = out.write_all(line.as_bytes()) {
            failed = Some(err);
            return false;
        }
        n += 1;
        if n.is_multiple_of(4096) {
            progress(n);
        }
        true
    })?;
    if let Some(err) = lookup_failed {
        return Err(err);
    }
    if let Some(source) = failed {
        return Err(Error::Io { path: "export output".into(), source });
    }
    out.flush().map_err(|source| Error::Io { path: "export output".into(), source })?;
    progress(n);
    Ok(n)
}

fn parse_line(path: &str, line_no: usize, line: &str) -> Result<(Option<u64>, SealedEvent)> {
    let input = |reason: String| Error::Input { path: path.to_owned(), line: line_no, reason };
    let json = EventJson::parse(line).map_err(|e| input(e.to_string()))?;
    json.into_sealed().map_err(|e| input(e.to_string()))
}

/// Lines checked per round of lookups.
const CHECK_CHUNK: usize = 1000;

/// Imports an export. First checks the whole input — every id recomputes, every
/// stream chain links to the store's heads or to earlier lines — and writes nothing if
/// anything is wrong; then appends. Events already present are skipped (idempotent).
/// `open` must return a fresh reader over the same input each time (it is read twice).
pub fn import(
    sink: &dyn crate::service::Service,
    path: &str,
    mut open: impl FnMut() -> Result<Box<dyn BufRead>>,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport> {
    let mut heads: HashMap<String, Option<EventId>> = HashMap::new();
    let mut report = ImportReport { same_positions: true, ..Default::default() };
    let info = sink.info()?;
    let start = info.events;
    let mut new_events = 0u64;
    let mut check = |chunk: &mut Vec<(usize, Option<u64>, SealedEvent)>| -> Result<()> {
        let ids: Vec<EventId> = chunk.iter().map(|(_, _, e)| e.id).collect();
        let mut unknown: Vec<String> =
            chunk.iter().map(|(_, _, e)| &e.header.stream).filter(|s| !heads.contains_key(*s)).cloned().collect();
        unknown.sort();
        unknown.dedup();
        let req = crate::service::LookupRequest { ids, streams: unknown };
        let (positions, found) = sink.lookup(&req)?;
        for (stream, head) in req.streams.into_iter().zip(found) {
            heads.insert(stream, head.map(|(_, id)| id));
        }
        for ((line_no, position, e), exists) in chunk.drain(..).zip(positions) {
            report.events += 1;
            let head = heads.get(&e.header.stream).copied().flatten();
            let landed = match exists {
                Some(p) => p,
                None => {
                    let want: Vec<EventId> = head.into_iter().collect();
                    if e.header.parents != want {
                        return Err(Error::Input {
                            path: path.to_owned(),
                            line: line_no,
                            reason: format!(
                                "event {} does not link to the head of stream {:?} ({})",
                                e.id,
                                e.header.stream,
                                head.map(|h| h.to_hex()).unwrap_or_else(|| "empty".into())
                            ),
                        });
                    }
                    heads.insert(e.header.stream.clone(), Some(e.id));
                    new_events += 1;
                    start + new_events - 1
                }
            };
            if position != Some(landed) {
                report.same_positions = false;
            }
        }
        Ok(())
    };
    let mut chunk = Vec::with_capacity(CHECK_CHUNK);
    for_each_line(path, open()?, |line_no, line| {
        let (position, e) = parse_line(path, line_no, line)?;
        chunk.push((line_no, position, e));
        if chunk.len() >= CHECK_CHUNK {
            check(&mut chunk)?;
        }
        Ok(())
    })?;
    check(&mut chunk)?;

    let mut batch = AppendBatch::new();
    let mut done = 0u64;
    let flush = |batch: &mut AppendBatch, report: &mut ImportReport| -> Result<()> {
        if batch.events.is_empty() {
            return Ok(());
        }
        for a in sink.append_batch(std::mem::take(batch))? {
            if a.existed {
                report.existing += 1;
            } else {
                report.appended += 1;
            }
        }
        Ok(())
    };
    let max = info.max_batch.clamp(1, IMPORT_BATCH);
    for_each_line(path, open()?, |line_no, line| {
        let (_, e) = parse_line(path, line_no, line)?;
        let redacted = e.redacted.then(|| crate::core::event::Redaction::of(&e.header));
        let h = e.header;
        let draft = crate::core::Draft {
            stream: h.stream,
            actor: h.actor,
            time: Some(h.time),
            parents: Some(h.parents),
            causes: h.causes,
            body: e.body,
            redacted,
        };
        batch.events.push(draft);
        done += 1;
        if batch.events.len() >= max {
            flush(&mut batch, &mut report)?;
            progress(done);
        }
        Ok(())
    })?;
    flush(&mut batch, &mut report)?;
    progress(done);
    Ok(report)
}

fn for_each_line(path: &str, reader: Box<dyn BufRead>, mut f: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| Error::Io { path: path.to_owned(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        f(i + 1, &line)?;
    }
    Ok(())
}
