//! The log newest first, filtered, one page at a time (`GET /v1/timeline`, the web
//! view's timeline). A page never reads the whole log: a kind filter walks the kind
//! index backwards, a stream or session filter the stream index, and filters without an
//! index (actor, time) examine at most [`SCAN_LIMIT`] events per page and say where to
//! go on (`next_before`), so a rare match costs several short requests, never one long.

use serde::{Deserialize, Serialize};

use crate::core::projection::SESSION_STREAM_PREFIX;
use crate::core::Kind;
use crate::error::{Error, Result};
use crate::store::{Store, StoredEvent};

/// Events one page examines at most without an index.
pub const SCAN_LIMIT: u64 = 20_000;
/// Events a page holds at most.
pub const MAX_LIMIT: usize = 1000;

/// `GET /v1/timeline`: which events, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    /// Events before this position (default: the end of the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// Most events (default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// Only this stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Only this session's stream (`session/ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Only this actor (`ROLE:NAME`), or every actor of a role (`ROLE:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only events at or after this time (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Only events before this time (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
}

/// One page of the timeline.
#[derive(Clone, Debug)]
pub struct TimelinePage {
    /// The matching events, newest first.
    pub events: Vec<StoredEvent>,
    /// Where the next (older) page starts: `before` for the next request; `None` when
    /// the log holds nothing older to examine.
    pub next_before: Option<u64>,
    /// Events examined for this page.
    pub scanned: u64,
}

impl TimelinePage {
    /// Examines events newest first until the page is full; the position of the last
    /// one examined (where the next page starts).
    fn fill(&mut self, q: &TimelineQuery, events: impl Iterator<Item = StoredEvent>, limit: usize) -> Option<u64> {
        let mut last = None;
        for e in events {
            self.scanned += 1;
            last = Some(e.position);
            if q.matches(&e) {
                self.events.push(e);
                if self.events.len() >= limit {
                    break;
                }
            }
        }
        last
    }
}

impl TimelineQuery {
    fn stream(&self) -> Result<Option<String>> {
        match (&self.stream, &self.session) {
            (Some(_), Some(_)) => Err(Error::Input {
                path: "timeline".into(),
                line: 0,
                reason: "give stream or session, not both".into(),
            }),
            (Some(s), None) => Ok(Some(s.clone())),
            (None, Some(id)) => Ok(Some(format!("{SESSION_STREAM_PREFIX}{id}"))),
            (None, None) => Ok(None),
        }
    }

    /// Whether an event passes the filters an index did not apply.
    fn matches(&self, e: &StoredEvent) -> bool {
        let h = &e.event.header;
        if self.kind.is_some_and(|k| k != h.kind) {
            return false;
        }
        if self.since.is_some_and(|t| h.time < t) || self.until.is_some_and(|t| h.time >= t) {
            return false;
        }
        match self.actor.as_deref() {
            None => true,
            Some(a) => {
                let text = h.actor.to_string();
                text == a || (a.ends_with(':') && text.starts_with(a))
            }
        }
    }
}

/// One page of the log newest first, as `q` asks.
pub fn page(store: &Store, q: &TimelineQuery) -> Result<TimelinePage> {
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let end = store.len();
    let before = q.before.unwrap_or(end).min(end);
    if let Some(stream) = q.stream()? {
        return by_stream(store, q, &stream, before, limit);
    }
    if let Some(kind) = q.kind {
        return by_kind(store, q, kind, before, limit);
    }
    let mut page = TimelinePage { events: Vec::new(), next_before: None, scanned: 0 };
    let mut at = before;
    while at > 0 && page.events.len() < limit && page.scanned < SCAN_LIMIT {
        let from = at.saturating_sub(512);
        let chunk = store.read_range(from, (at - from) as usize)?;
        at = page.fill(q, chunk.into_iter().rev(), limit).unwrap_or(from);
    }
    page.next_before = (at > 0).then_some(at);
    Ok(page)
}

/// A kind's events newest first, from the kind index.
fn by_kind(store: &Store, q: &TimelineQuery, kind: Kind, before: u64, limit: usize) -> Result<TimelinePage> {
    let mut page = TimelinePage { events: Vec::new(), next_before: None, scanned: 0 };
    let mut at = before;
    while page.events.len() < limit && page.scanned < SCAN_LIMIT {
        let positions = store.kind_positions_before(kind, at, 256)?;
        let Some(&oldest) = positions.last() else {
            at = 0;
            break;
        };
        let chunk = store.get_positions(&positions.iter().rev().copied().collect::<Vec<_>>())?;
        at = page.fill(q, chunk.into_iter().rev(), limit).unwrap_or(oldest);
        if at == oldest && positions.len() < 256 {
            at = 0;
            break;
        }
    }
    page.next_before = (at > 0).then_some(at);
    Ok(page)
}

/// A stream's events newest first, from the stream index.
fn by_stream(store: &Store, q: &TimelineQuery, stream: &str, before: u64, limit: usize) -> Result<TimelinePage> {
    let Some(head) = store.stream_version(stream)? else {
        return Err(Error::NotFound(format!("no stream {stream:?}")));
    };
    let mut page = TimelinePage { events: Vec::new(), next_before: None, scanned: 0 };
    // Versions above the cursor's position are skipped, a chunk at a time.
    let mut next = head + 1;
    let mut at = before;
    let mut exhausted = false;
    'chunks: loop {
        if next == 0 {
            exhausted = true;
            break;
        }
        if page.scanned >= SCAN_LIMIT {
            break;
        }
        let from = next.saturating_sub(256);
        let chunk = store.read_stream(stream, from, (next - from) as usize)?;
        next = from;
        for e in chunk.into_iter().rev() {
            if e.position >= before {
                continue;
            }
            page.scanned += 1;
            at = e.position;
            if q.matches(&e) {
                let first = e.version == 0;
                page.events.push(e);
                if page.events.len() >= limit {
                    exhausted = first;
                    break 'chunks;
                }
            }
        }
    }
    page.next_before = (!exhausted && at > 0).then_some(at);
    Ok(page)
}
