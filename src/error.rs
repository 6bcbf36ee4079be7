//! The library's error type: every failure names the thing and the reason.

use thiserror::Error;

use crate::core::ExpectedVersion;
use crate::core::{EventId, FormatError};

/// Any failure of a dreamlog operation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Input that is not a valid event (field, JSON, encoding).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// One event of a batch is invalid; nothing of the batch was written.
    #[error("event #{index} of the batch: {source}")]
    InvalidEvent {
        /// Index of the event in its batch (0-based).
        index: usize,
        /// Why.
        #[source]
        source: FormatError,
    },
    /// An event of a JSON batch that is not a valid event; nothing was written.
    #[error("event #{index}: {reason}")]
    EventJson {
        /// Index of the event in its batch (0-based).
        index: usize,
        /// Why.
        reason: String,
    },
    /// An expected-version check failed; nothing of the batch was written.
    #[error("stream {stream:?}: expected {expected}, but the stream {}", current_text(*.current))]
    WrongExpectedVersion {
        /// The stream.
        stream: String,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's current version (`None`: no such stream).
        current: Option<u64>,
    },
    /// An event names a parent that is not its stream's head; nothing was written.
    #[error("event #{index} of the batch: parent {given} is not the head of stream {stream:?} ({})",
        .head.map(|(v, id)| format!("head is {id} at version {v}")).unwrap_or_else(|| "the stream is empty".into()))]
    ParentMismatch {
        /// Index of the event in its batch.
        index: usize,
        /// The stream.
        stream: String,
        /// The parent given.
        given: String,
        /// The stream's head: version and id.
        head: Option<(u64, EventId)>,
    },
    /// A body above the configured limit.
    #[error("event #{index} of the batch: body is {len} bytes, over the limit of {limit}")]
    BodyTooLarge {
        /// Index of the event in its batch.
        index: usize,
        /// Body length.
        len: u64,
        /// Configured limit.
        limit: u64,
    },
    /// A batch above the configured limit.
    #[error("batch of {len} events is over the limit of {limit}")]
    BatchTooLarge {
        /// Events in the batch.
        len: usize,
        /// Configured limit.
        limit: usize,
    },
    /// No event has this id (or id prefix).
    #[error("no event with id {0}")]
    NotFound(String),
    /// No event at this position.
    #[error("no event at position {0}")]
    NoSuchPosition(u64),
    /// An id prefix matches several events.
    #[error("id prefix {prefix:?} is ambiguous: it matches {}{}",
        .candidates.iter().map(|c| c.to_hex()).collect::<Vec<_>>().join(", "),
        if *.more { " and more" } else { "" })]
    AmbiguousPrefix {
        /// The prefix given.
        prefix: String,
        /// Some of the ids it matches.
        candidates: Vec<EventId>,
        /// Whether there are more matches than listed.
        more: bool,
    },
    /// Not a hex id prefix.
    #[error("invalid id {0:?}: expected 1 to 64 hex characters")]
    BadIdPrefix(String),
    /// A write failed to become durable earlier; the store refuses writes until reopened.
    #[error("the store refuses writes after a failed write ({0}); reopen it after fixing the cause")]
    Poisoned(String),
    /// The store's writer has shut down.
    #[error("the store is closed")]
    Closed,
    /// A write-ahead log file is damaged before its end: opening would silently drop the
    /// acknowledged events after the damage, so it is refused and nothing is changed.
    #[error(
        "refusing to open {db}: {detail}. Nothing was changed or deleted. `dreamlog recover` keeps the damaged files aside, writes a report of what would be lost (by position and id), then opens the database at the last good point"
    )]
    WalDamaged {
        /// Database directory.
        db: String,
        /// The file, the offset, what is wrong, the last good position and what follows.
        detail: String,
    },
    /// The database could not be opened.
    #[error("cannot open database at {path}: {reason}")]
    Open {
        /// Database directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// A stored record that does not decode.
    #[error("corrupt record at position {position}: {reason}")]
    Corrupt {
        /// Its position.
        position: u64,
        /// Why.
        reason: String,
    },
    /// RocksDB reported an error.
    #[error("storage error: {0}")]
    Storage(String),
    /// A file or stream could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file (or `-` for standard input).
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A memory tool command was refused (the text is the tool's).
    #[error("{0}")]
    Tool(#[from] crate::core::memory::ToolError),
    /// A point (`--at`) that resolves to nothing.
    #[error("cannot resolve {0:?} as a position, event id, RFC 3339 time, tag or `head`")]
    UnknownPoint(String),
    /// A tag name already in use.
    #[error("tag {name:?} already names position {position}")]
    TagExists {
        /// The tag.
        name: String,
        /// Where it points.
        position: u64,
    },
    /// A memory store that already exists (fork target).
    #[error("memory store {0:?} already exists")]
    StoreExists(String),
    /// A dream found no graded session in its range: nothing was written (not a failure).
    #[error("no new graded session for store {store:?} since position {from}: nothing to dream, nothing written")]
    NothingToDream {
        /// The input store.
        store: String,
        /// The first position it read.
        from: u64,
    },
    /// The operation is not allowed to this caller (e.g. a dreamer only the server's
    /// config may define).
    #[error("{0}")]
    Forbidden(String),
    /// An event cites in `causes` an id that is not in the log (nor earlier in its batch):
    /// nothing of the batch was written.
    #[error("event #{index} of the batch cites {id} in causes, which is not an event of the log")]
    UnknownCause {
        /// The event's index in its batch.
        index: usize,
        /// The id it cites.
        id: String,
    },
    /// A memory store with no events (a typo, most often): nothing was written.
    #[error("no memory store {name:?} (known: {known})")]
    NoSuchStore {
        /// The name asked for.
        name: String,
        /// The stores that exist, comma-separated (or "none").
        known: String,
    },
    /// An event that is not what the operation needs.
    #[error("event {id} is not {what}")]
    WrongEvent {
        /// The event.
        id: String,
        /// What it should have been.
        what: String,
    },
    /// A revert that later edits conflict with; nothing was written.
    #[error("revert refused: later edits touched the same files (use --force to restore them whole):{}",
        .conflicts.iter().map(|(p, evs)| format!("\n  {p}: changed since by {}", evs.iter().map(|(pos, id)| format!("{} at {pos}", id.short(12))).collect::<Vec<_>>().join(", "))).collect::<String>())]
    RevertConflict {
        /// Per file, the later events that changed it.
        conflicts: Vec<(String, Vec<(u64, EventId)>)>,
    },
    /// A malformed record in an imported file, located by its JSON pointer.
    #[error("{file} at {pointer}: {reason}")]
    Record {
        /// The file.
        file: String,
        /// JSON pointer of the bad value.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
    /// Bad input at a line of a file.
    #[error("{path}:{line}: {reason}")]
    Input {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A dreamer failed or produced output that cannot be committed; nothing was written.
    #[error("dreamer {dreamer}: {reason}")]
    Dreamer {
        /// `NAME@VERSION`.
        dreamer: String,
        /// What went wrong.
        reason: String,
    },
    /// A model API call failed (after retries, when retryable); nothing was written.
    #[error("model API{}: {message}", .status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Llm {
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// The API's error message.
        message: String,
    },
    /// A server refused a request (`--remote`); the message is the server's own.
    #[error("{message}")]
    Remote {
        /// HTTP status (0: no response).
        status: u16,
        /// The server's error type.
        kind: String,
        /// The server's message.
        message: String,
    },
    /// A replay could not follow the recorded dream.
    #[error("replay of dream {dream} diverged: {reason}")]
    ReplayDiverged {
        /// The dream.
        dream: String,
        /// Where and how.
        reason: String,
    },
}

fn current_text(current: Option<u64>) -> String {
    match current {
        None => "does not exist".to_owned(),
        Some(v) => format!("is at version {v}"),
    }
}

/// Result with the library's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
