//! Errors, by area: the log and its storage ([`LogError`]), memory stores
//! ([`MemoryError`]), dreams ([`DreamError`]); [`Error`] wraps them with the errors every
//! area shares (input, lookups, files, a server's refusal). Every failure names the
//! thing and the reason. One classification, [`Error::class`], gives both the HTTP
//! status and error type a server answers with and the CLI's exit code.

use thiserror::Error;

use crate::core::ExpectedVersion;
use crate::core::{EventId, FormatError};

/// The log refused or failed: nothing of the batch was written (or the store cannot be used).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LogError {
    /// One event of a batch is invalid; nothing of the batch was written.
    #[error("event #{index} of the batch: {source}")]
    InvalidEvent {
        /// Index of the event in its batch (0-based).
        index: usize,
        /// Why.
        #[source]
        source: FormatError,
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
    /// An event stamped further ahead of the writer's clock than the configured skew
    /// allows, or past what a time can name (year 9999); nothing of the batch was written.
    #[error(
        "event #{index} of the batch: its time {time} ({}) is more than {} s ahead of this store's clock ({}); \
         stamp it with the current time or leave the time out",
        crate::core::time_text(*time), skew_ms / 1000, crate::core::time_text(*now)
    )]
    TimeAhead {
        /// Index of the event in its batch.
        index: usize,
        /// Its time (ms since the epoch).
        time: u64,
        /// The store's clock when it was refused (ms).
        now: u64,
        /// The skew allowed (ms).
        skew_ms: u64,
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
    /// No event at this position.
    #[error("no event at position {0}")]
    NoSuchPosition(u64),
    /// An event cites in `causes` an id that is not in the log (nor earlier in its batch):
    /// nothing of the batch was written.
    #[error("event #{index} of the batch cites {id} in causes, which is not an event of the log")]
    UnknownCause {
        /// The event's index in its batch.
        index: usize,
        /// The id it cites.
        id: String,
    },
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
    /// The replicated log of record (JetStream) did not take or answer a write or read:
    /// unreachable, no quorum, or timed out. A write refused this way may have been
    /// stored; retrying the same batch is safe (it is answered "already present").
    #[error("log of record {log}: {reason}")]
    Replication {
        /// The log of record (its servers and stream).
        log: String,
        /// What failed.
        reason: String,
    },
    /// An operation this store's backend cannot do (it says which and why).
    #[error("{0}")]
    Unsupported(String),
}

/// A memory store operation was refused: nothing was written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// A memory tool command was refused (the text is the tool's).
    #[error("{0}")]
    Tool(crate::core::memory::ToolError),
    /// A point (`--at`) that resolves to nothing.
    #[error("cannot resolve {0:?} as a position, event id, time (RFC 3339, a date like 2026-12-01, or relative like -5m), tag or `head`")]
    UnknownPoint(String),
    /// A point given as a time that no event time can be (before 1970, after 9999).
    #[error("point {0}")]
    PointOutOfRange(String),
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
    /// A memory store with no events (a typo, most often): nothing was written.
    #[error("no memory store {name:?} (known: {known})")]
    NoSuchStore {
        /// The name asked for.
        name: String,
        /// The stores that exist, comma-separated (or "none").
        known: String,
    },
    /// A revert that later edits conflict with; nothing was written.
    #[error("revert refused: later edits touched the same files (use --force to restore them whole):{}",
        .conflicts.iter().map(|(p, evs)| format!("\n  {p}: changed since by {}", evs.iter().map(|(pos, id)| format!("{} at {pos}", id.short(12))).collect::<Vec<_>>().join(", "))).collect::<String>())]
    RevertConflict {
        /// Per file, the later events that changed it.
        conflicts: Vec<(String, Vec<(u64, EventId)>)>,
    },
    /// A checkout that would overwrite changes to a folder the store has not recorded;
    /// nothing was written.
    #[error("checkout refused: {dir} has changes the memory store has not recorded (run `dreamlog watch` to record them, or use --force):{}",
        .paths.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    FolderChanged {
        /// The folder.
        dir: String,
        /// The memory paths that differ.
        paths: Vec<String>,
    },
    /// A switch of a store's memory rules back to older ones; nothing was written.
    #[error("memory store {store:?} follows memory rules {current}; rules only move forward (asked for {asked})")]
    RulesBackwards {
        /// The store.
        store: String,
        /// Its rules.
        current: u64,
        /// The rules asked for.
        asked: u64,
    },
    /// A promote of lessons that did worse out of sample; nothing was written.
    #[error("promote refused: {} lesson(s) of {fork:?} did worse on held-out tasks (the 95 % interval of their validated lift lies below zero); review them with `dreamlog dream show`, or use --force to promote anyway:{}",
        .lessons.len(), .lessons.iter().map(|l| format!("\n  {l}")).collect::<String>())]
    FailedValidation {
        /// The fork.
        fork: String,
        /// The lessons, each with its validated lift.
        lessons: Vec<String>,
    },
    /// A revert that names nothing the store holds (a session that made no memory command
    /// in it); nothing was written.
    #[error("nothing to revert in memory store {store:?}: {what}")]
    NothingToRevert {
        /// The store.
        store: String,
        /// What was asked for, and why it undoes nothing.
        what: String,
    },
}

/// A dream, a dreamer or a replay failed: nothing was written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DreamError {
    /// A dream found no graded session in its range: nothing was written (not a failure).
    #[error("no new graded session for store {store:?} since position {from}: nothing to dream, nothing written")]
    NothingToDream {
        /// The input store.
        store: String,
        /// The first position it read.
        from: u64,
    },
    /// The same dreamer and config already dreamed over exactly this input (the same
    /// graded sessions and history, the same memory) into a fork that is still there:
    /// nothing was written (not a failure; `--again` dreams anyway).
    #[error("dream {dream} of the same dreamer and config over the same input already wrote fork {fork:?} (promote it, review it, or dream --again): nothing written")]
    SameInput {
        /// The input store.
        store: String,
        /// The earlier dream's id (hex).
        dream: String,
        /// Its fork.
        fork: String,
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
    /// The dream was canceled before it wrote anything; nothing was written.
    #[error("the dream over memory store {store:?} was canceled: nothing written")]
    Canceled {
        /// The input store.
        store: String,
    },
    /// A dream recorded from elsewhere (a hosted dream) has nothing here to replay.
    #[error("dream {dream} ({dreamer}) cannot be replayed: {reason}")]
    NotReplayable {
        /// The dream.
        dream: String,
        /// `NAME@VERSION`.
        dreamer: String,
        /// Why.
        reason: String,
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

/// Any failure of a dreamlog operation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The log or its storage.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A memory store operation.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A dream.
    #[error(transparent)]
    Dream(#[from] DreamError),
    /// The Managed-Agents memory API (memory stores, memories, versions, dreams).
    #[error(transparent)]
    Managed(#[from] ManagedError),
    /// Input that is not a valid event (field, JSON, encoding).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// An event of a JSON batch that is not a valid event; nothing was written.
    #[error("event #{index}: {reason}")]
    EventJson {
        /// Index of the event in its batch (0-based).
        index: usize,
        /// Why.
        reason: String,
    },
    /// No event has this id (or id prefix).
    /// (Its text says what was looked for: "no event with id …", "no stream …".)
    #[error("{0}")]
    NotFound(String),
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
    /// A file or stream could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file (or `-` for standard input).
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The operation is not allowed to this caller (e.g. a dreamer only the server's
    /// config may define).
    #[error("{0}")]
    Forbidden(String),
    /// A setting or argument that cannot be used (it names itself and why).
    #[error("{0}")]
    InvalidInput(String),
    /// A live tail dropped by the server's shared byte budget: it held events its client
    /// did not read while other tails needed room.
    #[error(
        "this tail was dropped: its client left events unread while the server's tails were at their byte budget ({limit} bytes, max_tail_bytes); resume from position {position} (?from={position})"
    )]
    TailDropped {
        /// The first position it had not handed out: where to resume.
        position: u64,
        /// The budget, bytes.
        limit: u64,
    },
    /// An event that cannot be redacted (already redacted, no text, structure).
    #[error("event {id} cannot be redacted: {reason}")]
    NotRedactable {
        /// The event.
        id: String,
        /// Why.
        reason: String,
    },
    /// An event that is not what the operation needs.
    #[error("event {id} is not {what}")]
    WrongEvent {
        /// The event.
        id: String,
        /// What it should have been.
        what: String,
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
}

/// What the Managed-Agents memory API refuses.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManagedError {
    /// No memory store with this id (or it was deleted).
    #[error("no memory store {0:?}")]
    NoStore(String),
    /// No memory with this id in the store.
    #[error("no memory {id:?} in memory store {store:?}")]
    NoMemory {
        /// The store.
        store: String,
        /// The memory id.
        id: String,
    },
    /// No memory version with this id in the store.
    #[error("no memory version {id:?} in memory store {store:?}")]
    NoVersion {
        /// The store.
        store: String,
        /// The version id.
        id: String,
    },
    /// No dream with this id.
    #[error("no dream {0:?}")]
    NoDream(String),
    /// A request field that breaks the API's rules.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// A `content_sha256` precondition that does not hold; nothing was written.
    #[error("memory {id} has content_sha256 {actual}, not the expected {expected}")]
    PreconditionFailed {
        /// The memory.
        id: String,
        /// The hash the request expected.
        expected: String,
        /// The memory's hash.
        actual: String,
    },
    /// Another memory holds the path (or a memory lies above or below it).
    #[error("{path}: {reason}")]
    PathConflict {
        /// The path.
        path: String,
        /// What is there.
        reason: String,
    },
    /// The object is in a state that does not allow the operation (an archived store, a
    /// running dream archived, a finished dream canceled, the current version redacted).
    #[error("{0}")]
    State(String),
    /// The hosted Managed Agents API (`dreamlog sync anthropic`) refused a request or
    /// could not be reached (after its retries, for 429 and 5xx).
    #[error("the hosted API's {route}: {message}")]
    Hosted {
        /// The route asked (`GET /v1/memory_stores/…`).
        route: String,
        /// The HTTP status (0: no answer).
        status: u16,
        /// What it said, or why there was no answer.
        message: String,
    },
    /// An object of the hosted API that does not map to dreamlog (a version whose content
    /// does not hash to its `content_sha256`, …); nothing of it was written.
    #[error("{object}: {reason}")]
    Unmapped {
        /// The object (`memver_…`).
        object: String,
        /// Why.
        reason: String,
    },
    /// A push to a hosted store refused before anything was sent: a memory it changes is
    /// not on the hosted store as the mirror holds it, or cannot be written there.
    #[error("push to hosted memory store {store} refused, nothing sent:{}", .problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    PushRefused {
        /// The hosted store.
        store: String,
        /// Each problem, naming the memory's path.
        problems: Vec<String>,
        /// A conflict (the hosted store, or the store here, changed where the push writes);
        /// else the push itself cannot be written (a size, a path).
        conflict: bool,
    },
    /// A change to a store that mirrors a hosted one, which only the hosted store takes.
    #[error("memory store {store} mirrors a hosted Claude Managed Agents store: a {what} is written to the hosted store (`dreamlog memory {what}` pushes it there with ANTHROPIC_API_KEY set, as does POST /v1/memory/{store}/push), and the mirror records it")]
    Mirrored {
        /// The store.
        store: String,
        /// `revert` or `promote`.
        what: String,
    },
}

impl ManagedError {
    /// The Managed-Agents API's error type.
    pub fn api_type(&self) -> &'static str {
        match self {
            ManagedError::NoStore(_)
            | ManagedError::NoMemory { .. }
            | ManagedError::NoVersion { .. }
            | ManagedError::NoDream(_) => "not_found_error",
            ManagedError::Invalid { .. } | ManagedError::State(_) => "invalid_request_error",
            ManagedError::PreconditionFailed { .. } => "memory_precondition_failed_error",
            ManagedError::PathConflict { .. } => "memory_path_conflict_error",
            ManagedError::Hosted { .. } => "api_error",
            ManagedError::Unmapped { .. } => "invalid_request_error",
            ManagedError::PushRefused { .. } | ManagedError::Mirrored { .. } => "invalid_request_error",
        }
    }
}

fn current_text(current: Option<u64>) -> String {
    match current {
        None => "does not exist".to_owned(),
        Some(v) => format!("is at version {v}"),
    }
}

/// Result with the library's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::core::memory::ToolError> for Error {
    fn from(e: crate::core::memory::ToolError) -> Error {
        Error::Memory(MemoryError::Tool(e))
    }
}

/// What kind of failure an error is: the one classification both surfaces use — the
/// server's HTTP status and error type, the CLI's exit code. A server's refusal read
/// back by a client (`Error::Remote`) classifies as the error the server had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Bad input: a request, a file, an argument (HTTP 400, exit 2).
    InvalidRequest,
    /// An event of a batch is not a valid event (HTTP 400, exit 2).
    InvalidEvent,
    /// No such event, stream, store, session (HTTP 404, exit 3).
    NotFound,
    /// The state changed under the request: a parent that is not the head, a revert
    /// that later edits conflict with, a name in use, a failed precondition (HTTP 409,
    /// exit 4).
    Conflict,
    /// An expected version that does not hold (HTTP 409, exit 4).
    WrongExpectedVersion,
    /// A dream with nothing new to read (HTTP 409; the CLI says so and exits 0).
    NothingToDream,
    /// A body or batch over a limit (HTTP 413, exit 2).
    TooLarge,
    /// Not allowed to this caller (HTTP 403, exit 5).
    Forbidden,
    /// The store refuses writes or is closed (HTTP 503, exit 6).
    Unavailable,
    /// A model API or a replay failed (HTTP 502, exit 7).
    Upstream,
    /// Storage, damage, files, anything else (HTTP 500, exit 1).
    Internal,
}

impl ErrorClass {
    /// The error type a server answers with (`schemas/api/error.schema.json`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::InvalidEvent => "invalid_event",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Conflict => "conflict",
            ErrorClass::WrongExpectedVersion => "wrong_expected_version",
            ErrorClass::NothingToDream => "nothing_to_dream",
            ErrorClass::TooLarge => "too_large",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Upstream => "upstream",
            ErrorClass::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ErrorClass::InvalidRequest | ErrorClass::InvalidEvent => 400,
            ErrorClass::Forbidden => 403,
            ErrorClass::NotFound => 404,
            ErrorClass::Conflict | ErrorClass::WrongExpectedVersion | ErrorClass::NothingToDream => 409,
            ErrorClass::TooLarge => 413,
            ErrorClass::Internal => 500,
            ErrorClass::Upstream => 502,
            ErrorClass::Unavailable => 503,
        }
    }

    /// The CLI's exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::NothingToDream => 0,
            ErrorClass::Internal => 1,
            ErrorClass::InvalidRequest | ErrorClass::InvalidEvent | ErrorClass::TooLarge => 2,
            ErrorClass::NotFound => 3,
            ErrorClass::Conflict | ErrorClass::WrongExpectedVersion => 4,
            ErrorClass::Forbidden => 5,
            ErrorClass::Unavailable => 6,
            ErrorClass::Upstream => 7,
        }
    }

    /// The class a server's error type names.
    pub fn from_name(name: &str) -> Option<ErrorClass> {
        ErrorClass::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Every class.
    pub const ALL: [ErrorClass; 11] = [
        ErrorClass::InvalidRequest,
        ErrorClass::InvalidEvent,
        ErrorClass::NotFound,
        ErrorClass::Conflict,
        ErrorClass::WrongExpectedVersion,
        ErrorClass::NothingToDream,
        ErrorClass::TooLarge,
        ErrorClass::Forbidden,
        ErrorClass::Unavailable,
        ErrorClass::Upstream,
        ErrorClass::Internal,
    ];
}

impl Error {
    /// What kind of failure this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        use crate::core::memory::ToolErrorKind;
        match self {
            Error::Log(e) => match e {
                LogError::WrongExpectedVersion { .. } => ErrorClass::WrongExpectedVersion,
                LogError::ParentMismatch { .. } => ErrorClass::Conflict,
                LogError::BodyTooLarge { .. } | LogError::BatchTooLarge { .. } => ErrorClass::TooLarge,
                LogError::NoSuchPosition(_) => ErrorClass::NotFound,
                LogError::InvalidEvent { .. } | LogError::UnknownCause { .. } | LogError::TimeAhead { .. } => {
                    ErrorClass::InvalidRequest
                }
                LogError::Poisoned(_) | LogError::Closed | LogError::Replication { .. } => ErrorClass::Unavailable,
                LogError::Unsupported(_) => ErrorClass::InvalidRequest,
                LogError::WalDamaged { .. }
                | LogError::Open { .. }
                | LogError::Corrupt { .. }
                | LogError::Storage(_) => ErrorClass::Internal,
            },
            Error::Memory(e) => match e {
                MemoryError::Tool(t) if t.kind == ToolErrorKind::Conflict => ErrorClass::Conflict,
                MemoryError::Tool(t) if t.kind == ToolErrorKind::NotFound => ErrorClass::NotFound,
                MemoryError::Tool(_)
                | MemoryError::UnknownPoint(_)
                | MemoryError::PointOutOfRange(_)
                | MemoryError::RulesBackwards { .. } => ErrorClass::InvalidRequest,
                MemoryError::NoSuchStore { .. } | MemoryError::NothingToRevert { .. } => ErrorClass::NotFound,
                MemoryError::TagExists { .. }
                | MemoryError::StoreExists(_)
                | MemoryError::RevertConflict { .. }
                | MemoryError::FailedValidation { .. }
                | MemoryError::FolderChanged { .. } => ErrorClass::Conflict,
            },
            Error::Dream(e) => match e {
                DreamError::NothingToDream { .. } | DreamError::SameInput { .. } => ErrorClass::NothingToDream,
                DreamError::Dreamer { .. } | DreamError::NotReplayable { .. } => ErrorClass::InvalidRequest,
                DreamError::Canceled { .. } => ErrorClass::Conflict,
                DreamError::Llm { .. } | DreamError::ReplayDiverged { .. } => ErrorClass::Upstream,
            },
            Error::Managed(e) => match e {
                ManagedError::NoStore(_)
                | ManagedError::NoMemory { .. }
                | ManagedError::NoVersion { .. }
                | ManagedError::NoDream(_) => ErrorClass::NotFound,
                ManagedError::Invalid { .. } | ManagedError::State(_) => ErrorClass::InvalidRequest,
                ManagedError::PreconditionFailed { .. } | ManagedError::PathConflict { .. } => ErrorClass::Conflict,
                ManagedError::Hosted { status: 401 | 403, .. } => ErrorClass::Forbidden,
                ManagedError::Hosted { status: 404, .. } => ErrorClass::NotFound,
                ManagedError::Hosted { status: 400..=499, .. } => ErrorClass::InvalidRequest,
                ManagedError::Hosted { .. } => ErrorClass::Upstream,
                ManagedError::Unmapped { .. } => ErrorClass::InvalidRequest,
                ManagedError::PushRefused { conflict: false, .. } => ErrorClass::InvalidRequest,
                ManagedError::PushRefused { .. } | ManagedError::Mirrored { .. } => ErrorClass::Conflict,
            },
            Error::EventJson { .. } => ErrorClass::InvalidEvent,
            Error::NotFound(_) => ErrorClass::NotFound,
            Error::Forbidden(_) => ErrorClass::Forbidden,
            Error::Format(_)
            | Error::AmbiguousPrefix { .. }
            | Error::BadIdPrefix(_)
            | Error::Input { .. }
            | Error::InvalidInput(_)
            | Error::Record { .. }
            | Error::WrongEvent { .. }
            | Error::NotRedactable { .. } => ErrorClass::InvalidRequest,
            Error::Io { .. } => ErrorClass::Internal,
            Error::TailDropped { .. } => ErrorClass::Unavailable,
            Error::Remote { status, kind, .. } => match kind.strip_prefix("tool:") {
                Some("not_found") => ErrorClass::NotFound,
                Some("conflict") => ErrorClass::Conflict,
                Some(_) => ErrorClass::InvalidRequest,
                None => ErrorClass::from_name(kind).unwrap_or(match status {
                    0 => ErrorClass::Unavailable,
                    400 => ErrorClass::InvalidRequest,
                    403 => ErrorClass::Forbidden,
                    404 => ErrorClass::NotFound,
                    409 => ErrorClass::Conflict,
                    413 => ErrorClass::TooLarge,
                    502 => ErrorClass::Upstream,
                    503 => ErrorClass::Unavailable,
                    _ => ErrorClass::Internal,
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_refusal_classifies_as_the_servers_error_did() {
        for class in ErrorClass::ALL {
            assert_eq!(ErrorClass::from_name(class.name()), Some(class));
            let remote = Error::Remote { status: class.status(), kind: class.name().into(), message: String::new() };
            assert_eq!(remote.class(), class);
        }
        let tool = |kind| Error::from(crate::core::memory::ToolError { kind, message: String::new() });
        for (kind, class) in [
            (crate::core::memory::ToolErrorKind::NotFound, ErrorClass::NotFound),
            (crate::core::memory::ToolErrorKind::Conflict, ErrorClass::Conflict),
            (crate::core::memory::ToolErrorKind::Invalid, ErrorClass::InvalidRequest),
        ] {
            assert_eq!(tool(kind).class(), class);
            let remote = Error::Remote { status: 0, kind: format!("tool:{}", kind.name()), message: String::new() };
            assert_eq!(remote.class(), class, "{kind:?}");
        }
        assert_eq!(
            Error::Remote { status: 0, kind: "connection".into(), message: String::new() }.class(),
            ErrorClass::Unavailable
        );
    }
}
