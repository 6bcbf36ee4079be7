//! The JSON envelopes of the HTTP API's answers (`schemas/api/`): the server writes
//! them, [`Remote`](super::Remote) reads them — one type each, so the two cannot drift
//! apart. The server writes them through `serde_json::Value`, whose objects print their
//! keys sorted (nested ones included), as these answers always did.

use serde::{Deserialize, Serialize};

use crate::core::{EventId, EventJson};
use crate::dream::DreamSummary;
use crate::ledger::LessonRow;
use crate::memory::BlameLine;

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The server's version.
    pub version: String,
}

/// What a write appended: `POST /v1/events` (items [`AppendedEvent`](super::AppendedEvent)),
/// the memory writes (items [`AppendedRef`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedAnswer<T> {
    /// The events, in order.
    pub appended: Vec<T>,
}

/// One event a memory write appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedRef {
    /// Event id.
    pub id: EventId,
    /// Global position.
    pub position: u64,
    /// Version in its stream.
    pub version: u64,
}

/// A page of events by position: `GET /v1/events`, `/v1/kinds/{kind}`,
/// `/v1/events/{id}/cited_by`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventsPage {
    /// The events.
    pub events: Vec<EventJson>,
    /// The position to ask from for the next page; none when this page is the last.
    pub next: Option<u64>,
}

/// A page of one stream: `GET /v1/streams/{name}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamPage {
    /// The events.
    pub events: Vec<EventJson>,
    /// The version to ask from for the next page; none when this page is the last.
    pub next_version: Option<u64>,
}

/// Events without paging: `GET /v1/memory/{store}/history`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventList {
    /// The events.
    pub events: Vec<EventJson>,
}

/// `GET /v1/timeline`: one page, newest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TimelineAnswer {
    /// The events.
    pub events: Vec<EventJson>,
    /// The position to ask before for the next page; none when this page is the last.
    pub next_before: Option<u64>,
    /// Events read to fill the page.
    pub scanned: u64,
}

/// `POST /v1/lookup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupAnswer {
    /// Each asked stream's last event, in the order asked; none for a stream with none.
    pub heads: Vec<Option<Head>>,
    /// Each asked id's position, in the order asked; none for an id not stored.
    pub positions: Vec<Option<u64>>,
}

/// A stream's last event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Its id.
    pub id: EventId,
    /// Its version.
    pub version: u64,
}

/// `POST /v1/memory/{store}/tool`: what the memory tool answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolReply {
    /// The tool's text, exactly as the model sees it.
    pub content: String,
    /// The class of the refusal, when the tool refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The memory event a change was recorded as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    /// The tool refused.
    pub is_error: bool,
    /// The position of that event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
}

/// `GET /v1/sessions`: every session's summary, or (asked with `limit`, `offset` or `q`)
/// one page and the total.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionList<T> {
    /// The sessions.
    pub sessions: Vec<T>,
    /// How many sessions match (pages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// `GET /v1/dreams`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DreamList {
    /// Every dream, in log order.
    pub dreams: Vec<DreamSummary>,
}

/// `GET /v1/memory`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreList {
    /// Every memory store's name, sorted.
    pub stores: Vec<String>,
}

/// `GET /v1/memory/{store}/blame`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlameAnswer {
    /// The file's lines, each with its origin.
    pub lines: Vec<BlameLine>,
}

/// `GET /v1/memory/{store}/lessons`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LessonsAnswer {
    /// The store's lessons with their evidence and grades.
    pub lessons: Vec<LessonRow>,
}
