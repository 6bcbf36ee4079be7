//! The OTLP receiver's two halves: a request decoded and checked into the raw note the
//! server appends before it answers ([`decode_request`]), and the [`Assembler`] that
//! turns those notes into sessions, in the background, as a projection of them.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::time::{Duration, Instant};

use prost::Message as _;
use serde_json::{json, Value};

use crate::core::{Actor, Body, CanonicalJson, Draft, Note};
use crate::error::{Error, Result};
use crate::import::otlp::{
    assemble, by_trace, logs_request_to_json, read_request, session_id, trace_request_to_json,
    ExportLogsServiceRequest, ExportTraceServiceRequest, Prior, Telemetry,
};
use crate::import::SessionEvents;
use crate::service::{EventsQuery, Service};
use crate::store::AppendBatch;

/// The stream the receiver records requests on.
pub const RAW_STREAM: &str = "otlp";
/// The note type of a recorded request: `{signal, request}` (the request in OTLP/JSON).
pub const RAW_NOTE: &str = "otlp.request";

/// Largest request once decompressed (a gzip bomb is refused, not inflated).
const MAX_INFLATED: u64 = 64 << 20;

/// The two OTLP signals dreamlog takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `/v1/traces`.
    Traces,
    /// `/v1/logs`.
    Logs,
}

impl Signal {
    /// The name in a raw note.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }
}

fn refused(reason: impl Into<String>) -> Error {
    Error::InvalidInput(reason.into())
}

/// A request body (gzip when `gzip`) of `content_type` (`application/x-protobuf` or
/// `application/json`) read and checked: the raw note's JSON. Nothing is written here.
pub fn decode_request(signal: Signal, content_type: &str, gzip: bool, body: &[u8]) -> Result<Value> {
    let inflated;
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut out)
            .map_err(|e| refused(format!("the body is not valid gzip: {e}")))?;
        if out.len() as u64 > MAX_INFLATED {
            return Err(refused(format!("the body inflates past {} MiB", MAX_INFLATED >> 20)));
        }
        inflated = out;
        &inflated[..]
    } else {
        body
    };
    let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let request = match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => match signal {
            Signal::Traces => trace_request_to_json(
                &ExportTraceServiceRequest::decode(body)
                    .map_err(|e| refused(format!("not an ExportTraceServiceRequest: {e}")))?,
            ),
            Signal::Logs => logs_request_to_json(
                &ExportLogsServiceRequest::decode(body)
                    .map_err(|e| refused(format!("not an ExportLogsServiceRequest: {e}")))?,
            ),
        },
        "application/json" => {
            let v: Value =
                serde_json::from_slice(body).map_err(|e| refused(format!("the body is not valid JSON: {e}")))?;
            // Only this signal's part: a traces request's other fields are ignored.
            let key = match signal {
                Signal::Traces => "resourceSpans",
                Signal::Logs => "resourceLogs",
            };
            match v
                .get(key)
                .or_else(|| v.get(if signal == Signal::Traces { "resource_spans" } else { "resource_logs" }))
            {
                Some(list) => json!({ key: list }),
                None if v.is_object() => json!({ key: [] }),
                None => return Err(refused("expected an OTLP export request (a JSON object)")),
            }
        }
        "" => return Err(refused("no Content-Type: send application/x-protobuf or application/json")),
        other => {
            return Err(refused(format!(
                "Content-Type {other} is not OTLP/HTTP: send application/x-protobuf or application/json"
            )))
        }
    };
    read_request("request", &request, "").map_err(|e| refused(e.to_string()))?;
    Ok(json!({"signal": signal.name(), "request": request}))
}

/// The event that records a request.
pub fn raw_event(note: &Value) -> Draft {
    Draft::new(
        RAW_STREAM.to_owned(),
        Actor::System("otlp".into()),
        Body::Note(Note { note_type: RAW_NOTE.to_owned(), json: CanonicalJson::from_value(note) }),
    )
}

/// Appends a decoded request; returns once it is durable (the caller may then answer).
/// A request that holds no span and no log record (valid OTLP: exporters send them) is
/// answered without writing anything.
pub fn record(svc: &dyn Service, note: &Value) -> Result<()> {
    if holds_nothing(note) {
        return Ok(());
    }
    svc.append_batch(AppendBatch { events: vec![raw_event(note)], ..AppendBatch::default() })?;
    Ok(())
}

/// Whether a decoded request (`decode_request`'s form) holds no span and no log record.
pub fn holds_nothing(note: &Value) -> bool {
    let request = &note["request"];
    // OTLP/JSON's keys are lowerCamelCase; the protobuf field names are accepted too.
    let list = |v: &Value, camel: &str, snake: &str| -> Vec<Value> {
        v.get(camel).or_else(|| v.get(snake)).and_then(|a| a.as_array()).cloned().unwrap_or_default()
    };
    let items = |outer: (&str, &str), scopes: (&str, &str), inner: (&str, &str)| {
        list(request, outer.0, outer.1)
            .iter()
            .any(|r| list(r, scopes.0, scopes.1).iter().any(|s| !list(s, inner.0, inner.1).is_empty()))
    };
    !items(("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"), ("spans", "spans"))
        && !items(("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs"), ("logRecords", "log_records"))
}

/// A raw note's telemetry.
fn note_telemetry(version: u64, body: &Body) -> Option<Telemetry> {
    let Body::Note(n) = body else { return None };
    if n.note_type != RAW_NOTE {
        return None;
    }
    let v = n.json.to_value();
    read_request(&format!("{RAW_STREAM}@{version}"), v.get("request")?, "/request").ok()
}

/// A trace waiting to be assembled.
struct Pending {
    /// When its last span arrived.
    last: Instant,
    /// Whether its root span is here.
    rooted: bool,
}

/// Sessions as a projection of the raw notes: reads the stream [`RAW_STREAM`] from its
/// start, and assembles each trace once it is quiet (no span for `quiet`) and its root
/// span is here — or, for a trace whose root never comes, once it has been quiet for
/// `open_trace`. A span of a trace assembled already grows its session.
///
/// Restarting reads the raw notes again from the start; a session already stored as
/// assembled is "already present", so nothing is written twice.
pub struct Assembler {
    /// Quiet time before a rooted trace is assembled.
    pub quiet: Duration,
    /// Quiet time before a trace without a root is assembled.
    pub open_trace: Duration,
    /// Raw notes read so far (the next version to read).
    cursor: u64,
    /// Every trace seen: the raw note versions that hold its spans.
    notes_of: HashMap<String, Vec<u64>>,
    pending: HashMap<String, Pending>,
    /// Raw notes below this version were recorded before this assembler started (the
    /// server was down since): they count as long quiet.
    started_at: u64,
}

/// What one pass of the assembler did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Raw notes read.
    pub notes: u64,
    /// Sessions written (new or grown).
    pub written: u64,
    /// Traces still waiting.
    pub waiting: u64,
    /// Traces that could not be assembled, and why.
    pub failed: Vec<(String, String)>,
}

impl Assembler {
    /// An assembler that has read nothing yet, over `svc`'s raw notes as they are now:
    /// the notes already recorded are assembled on the first pass (their senders are long
    /// done), the ones that come later once their traces are quiet.
    pub fn new(svc: &dyn Service, quiet: Duration, open_trace: Duration) -> Result<Assembler> {
        let req = crate::service::LookupRequest { ids: Vec::new(), streams: vec![RAW_STREAM.to_owned()] };
        let (_, heads) = svc.lookup(&req)?;
        let started_at = heads.first().copied().flatten().map_or(0, |(v, _)| v + 1);
        Ok(Assembler { quiet, open_trace, cursor: 0, notes_of: HashMap::new(), pending: HashMap::new(), started_at })
    }

    /// When the next waiting trace turns quiet enough to assemble (`None`: nothing
    /// waits). A follower sleeps until then unless the log grows first.
    pub fn next_due(&self) -> Option<Instant> {
        // As `pass` decides: a rooted trace is ready after `quiet` (or `open_trace`, if
        // that is shorter), any trace after `open_trace`. A time past what an `Instant`
        // holds (a huge setting) is never.
        let wait = |rooted: bool| if rooted { self.quiet.min(self.open_trace) } else { self.open_trace };
        self.pending.values().filter_map(|p| p.last.checked_add(wait(p.rooted))).min()
    }

    /// Reads the new raw notes and assembles the traces that are ready. `now` is the
    /// clock.
    pub fn pass(&mut self, svc: &dyn Service, now: Instant) -> Result<Pass> {
        let mut pass = Pass::default();
        loop {
            let q = EventsQuery {
                from: self.cursor,
                limit: Some(crate::service::PAGE),
                stream: Some(RAW_STREAM.to_owned()),
                kind: None,
            };
            let page = match svc.events(&q) {
                Ok(p) => p,
                Err(Error::NotFound(_)) | Err(Error::Remote { status: 404, .. }) => Vec::new(),
                Err(e) => return Err(e),
            };
            let n = page.len();
            for e in page {
                self.cursor = e.version + 1;
                pass.notes += 1;
                let Some(t) = note_telemetry(e.version, &e.event.body) else { continue };
                let (traces, _) = by_trace(t);
                for tr in traces {
                    let versions = self.notes_of.entry(tr.trace_id.clone()).or_default();
                    if versions.last() != Some(&e.version) {
                        versions.push(e.version);
                    }
                    let rooted = tr.spans.iter().any(|s| s.parent.is_none());
                    let before = e.version < self.started_at;
                    let last = if before { now.checked_sub(self.open_trace).unwrap_or(now) } else { now };
                    let p = self.pending.entry(tr.trace_id).or_insert(Pending { last, rooted: false });
                    p.last = p.last.max(last);
                    p.rooted |= rooted;
                }
            }
            if n < crate::service::PAGE {
                break;
            }
        }
        let mut ready: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                let quiet = now.saturating_duration_since(p.last);
                (p.rooted && quiet >= self.quiet) || quiet >= self.open_trace
            })
            .map(|(id, _)| id.clone())
            .collect();
        // In the order their spans arrived, so a chunk's traces share their raw notes.
        ready.sort_by_cached_key(|t| (self.notes_of.get(t).and_then(|v| v.first().copied()), t.clone()));
        for chunk in ready.chunks(CHUNK) {
            // An error: the store cannot write now; everything waits for the next pass.
            self.assemble_chunk(svc, chunk, &mut pass)?;
        }
        pass.waiting = self.pending.len() as u64;
        Ok(pass)
    }

    /// Assembles a chunk of ready traces: each raw note they need read once, every
    /// session written in one import (one atomic batch per session); when that import
    /// refuses a session, each trace on its own, so one bad trace holds up no other.
    fn assemble_chunk(&mut self, svc: &dyn Service, traces: &[String], pass: &mut Pass) -> Result<()> {
        use crate::error::ErrorClass;
        let wanted: HashSet<&str> = traces.iter().map(String::as_str).collect();
        let mut versions: Vec<u64> =
            traces.iter().flat_map(|t| self.notes_of.get(t).cloned().unwrap_or_default()).collect();
        versions.sort_unstable();
        versions.dedup();
        let mut all = Telemetry::default();
        for v in versions {
            let q = EventsQuery { from: v, limit: Some(1), stream: Some(RAW_STREAM.to_owned()), kind: None };
            for e in svc.events(&q)? {
                if let Some(mut t) = note_telemetry(e.version, &e.event.body) {
                    t.spans.retain(|s| wanted.contains(s.trace_id.as_str()));
                    t.logs.retain(|l| l.trace_id.as_deref().is_some_and(|id| wanted.contains(id)));
                    all.extend(t);
                }
            }
        }
        let (built, _) = by_trace(all);
        let mut sessions = Vec::new();
        // Which of their sessions are stored, asked at once: only those are read.
        let ids: Vec<String> = built.iter().map(session_id).collect();
        let streams = ids.iter().map(|id| crate::core::streams::session(id)).collect();
        let (_, heads) = svc.lookup(&crate::service::LookupRequest { ids: Vec::new(), streams })?;
        for ((trace, sid), head) in built.iter().zip(&ids).zip(heads) {
            let stored = match head {
                Some(_) => svc.stream_events(&crate::core::streams::session(sid))?,
                None => Vec::new(),
            };
            let prior =
                Prior::of(sid, stored.iter().map(|e| (&e.event.body, &e.event.header.actor, e.event.header.time)));
            let source = format!("otlp:{RAW_STREAM}[trace {}]", trace.trace_id);
            if let Some(s) = assemble(trace, prior.as_ref(), &source) {
                sessions.push((trace.trace_id.clone(), s));
            }
        }
        let together: Vec<SessionEvents> = sessions.iter().map(|(_, s)| s.clone()).collect();
        match crate::service::import_sessions(svc, together, None, |_| {}) {
            Ok(c) => pass.written += c.sessions + c.grown,
            Err(e) if matches!(e.class(), ErrorClass::Unavailable | ErrorClass::Internal) => return Err(e),
            Err(_) => {
                for (trace_id, s) in sessions {
                    match crate::service::import_sessions(svc, vec![s], None, |_| {}) {
                        Ok(c) => pass.written += c.sessions + c.grown,
                        Err(e) if matches!(e.class(), ErrorClass::Unavailable | ErrorClass::Internal) => return Err(e),
                        // Someone else wrote to the session meanwhile: again on the next pass.
                        Err(e) if e.class() == ErrorClass::WrongExpectedVersion => continue,
                        Err(e) => pass.failed.push((trace_id.clone(), e.to_string())),
                    }
                    self.pending.remove(&trace_id);
                }
                return Ok(());
            }
        }
        for t in traces {
            self.pending.remove(t);
        }
        Ok(())
    }
}

/// Traces assembled per import.
const CHUNK: usize = 1000;
