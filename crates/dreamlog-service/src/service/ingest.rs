//! Writing what was read: parsed sessions ([`import_sessions`]) and dreamlog exports
//! ([`import_export`]) go into any [`Service`] — the embedded store or a server — checked
//! whole against what it holds before anything is appended. The readers themselves
//! (`crate::import`, `crate::exchange`) are below the service and write nothing.

use std::collections::HashMap;
use std::io::BufRead;

use super::{EventsQuery, LookupRequest, Service, PAGE};
use crate::core::{Body, EventId, SealedEvent};
use crate::error::{Error, Result};
use crate::exchange::ImportReport;
use crate::import::{plan_session, ImportCounts, Plan, SessionEvents, MERGE_EVENTS};
use crate::store::AppendBatch;

/// Writes parsed sessions: every session is checked against the store first (a file is
/// all or nothing), then each new or grown session is appended as one atomic batch.
/// `memory` is the store (and its state hash) the sessions ran with, recorded in each new
/// session's `session.link` with the session's source.
pub fn import_sessions(
    sink: &dyn Service,
    sessions: Vec<SessionEvents>,
    memory: Option<(&str, crate::core::Digest)>,
    mut progress: impl FnMut(u64),
) -> Result<ImportCounts> {
    let mut counts = ImportCounts::default();
    let mut starts: std::collections::HashMap<String, crate::core::EventId> = Default::default();
    let mut plans = Vec::with_capacity(sessions.len());
    // Which sessions are stored at all, asked in bulk (a page of streams a request): only
    // those are read whole.
    let mut exists: Vec<bool> = Vec::with_capacity(sessions.len());
    for page in sessions.chunks(PAGE) {
        let streams: Vec<String> = page.iter().map(|s| crate::core::streams::session(&s.session)).collect();
        let (_, heads) = sink.lookup(&LookupRequest { ids: Vec::new(), streams })?;
        exists.extend(heads.iter().map(Option::is_some));
    }
    for (s, exists) in sessions.into_iter().zip(exists) {
        for d in &s.events {
            match &d.body {
                Body::Action(_) => counts.actions += 1,
                Body::Grade(_) => counts.grades += 1,
                Body::Message(_) => counts.messages += 1,
                _ => {}
            }
        }
        let parent_start = match &s.parent {
            Some(p) => match starts.get(p) {
                Some(id) => Some(*id),
                None => {
                    let q = EventsQuery {
                        limit: Some(1),
                        stream: Some(crate::core::streams::session(p)),
                        ..Default::default()
                    };
                    match sink.events(&q) {
                        Ok(first) => first.first().map(|e| e.id()),
                        Err(Error::NotFound(_)) | Err(Error::Remote { status: 404, .. }) => None,
                        Err(e) => return Err(e),
                    }
                }
            },
            None => None,
        };
        let stored = if exists { sink.stream_events(&crate::core::streams::session(&s.session))? } else { Vec::new() };
        let session = s.session.clone();
        let own = s.memory.clone();
        let memory = own.as_ref().map(|(store, state)| (store.as_str(), *state)).or(memory);
        let (plan, start) = plan_session(s, stored, parent_start, memory)?;
        starts.insert(session, start);
        plans.push(plan);
    }
    // New sessions go in together, several to an atomic batch (each session whole in
    // one), up to the sink's batch limit; grown sessions and sub-agents (whose start
    // cites a stored event) on their own.
    let limit = sink.info().map(|i| i.max_batch).unwrap_or(1000).clamp(1, MERGE_EVENTS);
    let mut merged = AppendBatch::default();
    let mut sizes: Vec<usize> = Vec::new();
    let flush = |merged: &mut AppendBatch, sizes: &mut Vec<usize>, counts: &mut ImportCounts| -> Result<()> {
        if sizes.is_empty() {
            return Ok(());
        }
        let appended = sink.append_batch(std::mem::take(merged))?;
        let mut at = 0;
        for n in sizes.drain(..) {
            if appended[at..(at + n).min(appended.len())].iter().all(|a| a.existed) {
                counts.already_present += 1;
            } else {
                counts.sessions += 1;
            }
            at += n;
        }
        Ok(())
    };
    for (i, plan) in plans.into_iter().enumerate() {
        match plan {
            Plan::Present => counts.already_present += 1,
            Plan::New(batch)
                if batch.events.len() < limit && batch.events.first().is_some_and(|d| d.causes.is_empty()) =>
            {
                if merged.events.len() + batch.events.len() > limit {
                    flush(&mut merged, &mut sizes, &mut counts)?;
                }
                sizes.push(batch.events.len());
                merged.events.extend(batch.events);
                merged.expectations.extend(batch.expectations);
            }
            Plan::New(batch) => {
                flush(&mut merged, &mut sizes, &mut counts)?;
                match sink.append_batch(batch)? {
                    a if a.iter().all(|a| a.existed) => counts.already_present += 1,
                    _ => counts.sessions += 1,
                }
            }
            Plan::Grow(batch) => {
                flush(&mut merged, &mut sizes, &mut counts)?;
                sink.append_batch(batch)?;
                counts.grown += 1;
            }
        }
        progress(i as u64 + 1);
    }
    flush(&mut merged, &mut sizes, &mut counts)?;
    Ok(counts)
}

/// Lines checked per round of lookups.
const CHECK_CHUNK: usize = 1000;

/// Imports an export. First checks the whole input — every id recomputes, every
/// stream chain links to the store's heads or to earlier lines — and writes nothing if
/// anything is wrong; then appends. Events already present are skipped (idempotent).
/// `open` must return a fresh reader over the same input each time (it is read twice).
pub fn import_export(
    sink: &dyn Service,
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
        let req = LookupRequest { ids, streams: unknown };
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
    crate::exchange::for_each_line(path, open()?, |line_no, line| {
        let (position, e) = crate::exchange::parse_line(path, line_no, line)?;
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
    let max = info.max_batch.clamp(1, crate::exchange::IMPORT_BATCH);
    crate::exchange::for_each_line(path, open()?, |line_no, line| {
        let (_, e) = crate::exchange::parse_line(path, line_no, line)?;
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
