//! One typed service for every surface.
//!
//! [`Service`] is every operation dreamlog offers, with typed requests and answers: the
//! request types are the ones the HTTP server deserialises and the CLI builds, the
//! answers the ones both print or send. Two implementations: [`Local`] (in process, over
//! a [`Store`](crate::store::Store)) and [`Remote`] (the HTTP client of `dreamlog
//! serve`). The CLI dispatches once over `&dyn Service` (embedded or `--remote`), the
//! server's handlers call [`Local`], and the demo and the importers take any `Service`.
//!
//! Adding an operation: a request type here (if it takes more than a name), a method on
//! [`Service`], its body in `local.rs` and its request in `remote.rs`; then a route in
//! `server/api.rs` and a command in `cli/`.

mod answers;
mod ingest;
mod local;
mod remote;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use answers::{
    AppendedAnswer, AppendedRef, BlameAnswer, DreamList, EventList, EventsPage, Head, Health, LessonsAnswer,
    LookupAnswer, SessionList, StoreList, StreamPage, TimelineAnswer, ToolReply,
};
pub use ingest::{import_export, import_sessions};
pub use local::{DreamerPolicy, Local};
pub use remote::{http_client, Remote};

/// The header a request names the log length it must see with (read-your-writes across
/// a cluster's nodes): part of the HTTP contract the server and [`Remote`] share.
pub const AFTER_HEADER: &str = "x-dreamlog-after";
/// The header an answer names the tenant's log length with (its writes included).
pub const POSITION_HEADER: &str = "x-dreamlog-position";

use crate::core::memory::MemoryDiff;
use crate::core::{Actor, Digest, EventId, Kind};
use crate::dream::{DreamDetail, DreamRun, DreamSummary, Replay};
use crate::error::{Error, Result};
use crate::ledger::{DriftReport, LessonRow};
use crate::memory::{BlameLine, Preview};
use crate::sessions::{SessionDetail, SessionSummary, Stats};
pub use crate::sessions::{SessionsPage, SessionsQuery};
use crate::store::{AppendBatch, Appended, StoredEvent, Subscription, TailBudget, VerifyReport};
pub use crate::timeline::{TimelinePage, TimelineQuery};

/// Every operation, embedded or over HTTP.
pub trait Service: Send + Sync {
    /// Where the operations go (a database folder or a server URL), for messages.
    fn target(&self) -> String;
    /// The log's size and limits.
    fn info(&self) -> Result<Info>;
    /// Appends events given in their JSON form, atomically (`POST /v1/events`).
    fn append(&self, req: &AppendRequest) -> Result<Vec<AppendedEvent>>;
    /// Appends drafts atomically, with their expectations (imports, the demo).
    fn append_batch(&self, batch: AppendBatch) -> Result<Vec<Appended>>;
    /// A page of events: the log from a position, a stream from a version, or one kind.
    fn events(&self, q: &EventsQuery) -> Result<Vec<StoredEvent>>;
    /// One event by id or unique id prefix.
    fn event(&self, id: &str) -> Result<StoredEvent>;
    /// The log newest first, filtered, a page at a time (the web view's timeline).
    fn timeline(&self, q: &TimelineQuery) -> Result<TimelinePage>;
    /// The events that name an event (id or unique prefix) among their causes, in log
    /// order, from position `from`, at most `limit`.
    fn cited_by(&self, id: &str, from: u64, limit: usize) -> Result<Vec<StoredEvent>>;
    /// Positions of full ids and heads of streams, in bulk (what an import checks first).
    fn lookup(&self, req: &LookupRequest) -> Result<Lookup>;
    /// Verifies the log, its indexes and (deep) storage and snapshots.
    fn verify(&self, q: &VerifyQuery, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport>;
    /// Writes a consistent copy of the database into a new folder (on the machine that
    /// holds the database) while writes go on, then opens the copy and verifies it.
    fn backup(&self, req: &BackupRequest) -> Result<BackupReport>;
    /// Signs the log's head with the service's Ed25519 key and records the checkpoint in
    /// the log (a `note` of type `dreamlog.checkpoint` on stream `checkpoints`).
    fn checkpoint(&self, actor: &Actor) -> Result<crate::core::checkpoint::Checkpoint>;
    /// Whether the log still extends a checkpoint taken earlier (signature checked, with
    /// `key` the trusted public key when given).
    fn verify_checkpoint(&self, req: &CheckpointCheckRequest) -> Result<CheckpointVerdict>;
    /// One memory tool call, its `input` verbatim.
    fn memory_tool(&self, store: &str, input: &Value, context: &ToolContext) -> Result<ToolAnswer>;
    /// The names of every memory store, sorted.
    fn memory_stores(&self) -> Result<Vec<String>>;
    /// A file or directory of a store as of a point.
    fn memory_view(&self, store: &str, q: &ViewQuery) -> Result<MemoryView>;
    /// Every file of a store with its text, as of a point (an unknown store has none).
    fn memory_files(&self, store: &str, q: &PathQuery) -> Result<MemoryFiles>;
    /// Every change of a store, or of one path.
    fn memory_history(&self, store: &str, q: &PathQuery) -> Result<Vec<StoredEvent>>;
    /// Two points of a store, or two stores at one point.
    fn memory_diff(&self, store: &str, q: &DiffQuery) -> Result<MemoryDiff>;
    /// Each line of a file with the event, dream, evidence and session behind it.
    fn memory_blame(&self, store: &str, q: &PathQuery) -> Result<Vec<BlameLine>>;
    /// Each lesson with its dream, evidence, and grades before and after it.
    fn memory_lessons(&self, store: &str, q: &PathQuery) -> Result<Vec<LessonRow>>;
    /// Undoes an event, a dream, or everything after a point, by appending.
    fn memory_revert(&self, store: &str, req: &RevertRequest, actor: &Actor) -> Result<Vec<Appended>>;
    /// What `memory_revert` would append and the diff it would make; nothing written.
    fn memory_revert_dry_run(&self, store: &str, req: &RevertRequest, actor: &Actor) -> Result<Preview>;
    /// Starts a new store as a copy of `store` at a point.
    fn memory_fork(&self, store: &str, req: &ForkRequest, actor: &Actor) -> Result<Forked>;
    /// Applies a fork's changes to another store.
    fn memory_promote(&self, store: &str, req: &PromoteRequest, actor: &Actor) -> Result<Vec<Appended>>;
    /// What `memory_promote` would append and the diff it would make; nothing written.
    fn memory_promote_dry_run(&self, store: &str, req: &PromoteRequest, actor: &Actor) -> Result<Preview>;
    /// Applies several memory commands as one atomic batch (all or none), optionally only
    /// if the store is in an expected state (`dreamlog watch` records a burst this way).
    fn memory_batch(&self, store: &str, req: &BatchRequest, actor: &Actor) -> Result<Vec<Appended>>;
    /// Switches a store to newer memory rules from here on (nothing when it follows
    /// them already; rules never move back).
    fn memory_set_rules(&self, store: &str, req: &RulesRequest, actor: &Actor) -> Result<RulesSwitch>;
    /// Names a point.
    fn tag(&self, req: &TagRequest, actor: &Actor) -> Result<Tagged>;
    /// Redacts an event's body (admin): a `redact` event and its stand-in on stream
    /// `redactions`, the body replaced in storage, the old bytes scrubbed.
    fn redact(&self, req: &RedactRequest, actor: &Actor) -> Result<Redacted>;
    /// Ties sessions to the memory they ran with: a `session.link` for each, naming the
    /// store and its state at a point (sessions imported without `--store`, run with a
    /// store's memory as it stood after a dream). The latest link of a session is the one
    /// drift and the lesson ledger read.
    fn sessions_link(&self, req: &SessionsLinkRequest, actor: &Actor) -> Result<SessionsLinked>;
    /// Every session's summary.
    fn sessions(&self) -> Result<Vec<SessionSummary>>;
    /// A page of sessions, newest first, optionally only ids containing a text.
    fn sessions_page(&self, q: &SessionsQuery) -> Result<SessionsPage>;
    /// Statistics over every session.
    fn session_stats(&self) -> Result<Stats>;
    /// One session in full (by id or unique prefix).
    fn session(&self, id: &str) -> Result<SessionDetail>;
    /// Grades per memory state of a store, with flagged changes.
    fn drift(&self, store: &str, q: &DriftQuery) -> Result<DriftReport>;
    /// Every dream.
    fn dreams(&self) -> Result<Vec<DreamSummary>>;
    /// One dream's input, exchanges and output.
    fn dream(&self, id: &str) -> Result<DreamDetail>;
    /// Runs a dreamer and commits what it writes.
    fn dream_run(&self, req: &DreamRequest) -> Result<DreamRun>;
    /// Rebuilds a dream's input and reruns it (or another dreamer), comparing.
    fn dream_replay(&self, id: &str, req: &ReplayRequest) -> Result<Replay>;
    /// The log as JSON Lines from a position; returns the number of events written.
    fn export(&self, from: u64, out: &mut dyn std::io::Write, progress: &mut dyn FnMut(u64)) -> Result<u64>;
    /// Every principal that wrote to the log (from the batches' receipts), with what it
    /// wrote; with `name`, that principal's batches too (admin).
    fn principals(&self, q: &PrincipalsQuery) -> Result<Principals>;

    // What a server runs beside the requests: following the log as it grows, its gauges,
    // closing. In process only — over HTTP the server does this itself (`GET /v1/tail`,
    // `/metrics`), and `Remote` answers `LogError::Unsupported`.

    /// The log's committed length as it changes: what a read-your-writes wait and the
    /// workers that follow the log (OTLP assembly) wait on.
    fn follow(&self) -> Result<tokio::sync::watch::Receiver<u64>>;
    /// The log's events from `from` on, catch-up then live, reading ahead within
    /// `budget` (a server's tails share one and drop the idlest past it).
    fn tail(&self, from: u64, budget: std::sync::Arc<TailBudget>) -> Result<Subscription>;
    /// The store's gauges: its events, appends and their latencies, a refused write,
    /// bytes on disk (`/metrics`).
    fn gauges(&self) -> Result<Gauges>;
    /// Rebuilds every derived index from the log (`dreamlog reindex`, on the database's
    /// own machine); `progress` gets the events done.
    fn reindex(&self, progress: Box<dyn FnMut(u64) + Send>) -> Result<crate::store::ReindexReport>;
    /// Closes the store after the last request (in process: its writer stops and the
    /// backend is flushed); over HTTP, nothing to do.
    fn close(&self) -> Result<()>;

    /// Every event of a stream, in order (paged; none when it does not exist).
    fn stream_events(&self, stream: &str) -> Result<Vec<StoredEvent>> {
        let mut out: Vec<StoredEvent> = Vec::new();
        loop {
            let q =
                EventsQuery { from: out.len() as u64, limit: Some(PAGE), stream: Some(stream.to_owned()), kind: None };
            let page = match self.events(&q) {
                Ok(page) => page,
                // No such stream: nothing to read.
                Err(crate::error::Error::NotFound(_)) | Err(crate::error::Error::Remote { status: 404, .. })
                    if out.is_empty() =>
                {
                    return Ok(out)
                }
                Err(e) => return Err(e),
            };
            let done = page.len() < PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }
}

/// Events per page when a caller reads a whole stream.
pub const PAGE: usize = 1000;

/// Positions of ids and heads (last version and event id) of streams, in the order asked.
pub type Lookup = (Vec<Option<u64>>, Vec<Option<(u64, EventId)>>);

/// `GET /v1/info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The tenant (server) or database folder.
    #[serde(default)]
    pub tenant: String,
    /// Events in the log.
    pub events: u64,
    /// Largest batch one append takes.
    pub max_batch: usize,
    /// The replicated log of record this node is a projection of (a cluster node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_of_record: Option<String>,
    /// The server's mirror of hosted Managed Agents into this tenant (its config's
    /// `sync.anthropic`): runs, cursors, lag, the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Value>,
}

/// `POST /v1/events`: events in their JSON form.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    /// The events (schemas/event.schema.json; ids and positions are ignored).
    pub events: Vec<Value>,
    /// Stream for events that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Expected versions: stream → `any` | `no-stream` | `exists` | N.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub expect: BTreeMap<String, Value>,
}

/// Where one event of an append landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedEvent {
    /// Global position.
    pub position: u64,
    /// Event id.
    pub id: EventId,
    /// Its stream.
    pub stream: String,
    /// Version in the stream.
    pub version: u64,
    /// True when the identical event was already stored.
    #[serde(default)]
    pub existed: bool,
}

/// A page of events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsQuery {
    /// First position (log, kind) or version (stream).
    #[serde(default)]
    pub from: u64,
    /// Most events (the server caps pages at 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Read this stream from version `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Read events of this kind from position `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
}

/// `POST /v1/lookup`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// Full event ids.
    #[serde(default)]
    pub ids: Vec<EventId>,
    /// Stream names.
    #[serde(default)]
    pub streams: Vec<String>,
}

/// `POST /v1/verify`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyQuery {
    /// Also every block of every table file and every snapshot against a replay.
    pub deep: bool,
}

/// `POST /v1/backup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// The new folder (must not exist), on the machine that holds the database.
    pub dir: String,
    /// Also read every block of every table file of the copy and check its snapshots.
    #[serde(default)]
    pub deep: bool,
}

/// A store's gauges ([`Service::gauges`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gauges {
    /// Events in the log.
    pub events: u64,
    /// Appends since the store opened: counts and the latency histogram.
    pub append: crate::store::metrics::AppendStats,
    /// Why the store refuses writes, after a write that failed to become durable.
    pub poisoned: Option<String>,
    /// Bytes of the store's files on disk (0 in memory).
    pub disk_bytes: u64,
}

/// A backup (or a restore) and the verification of what it wrote.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupReport {
    /// The folder written.
    pub dir: String,
    /// Events acknowledged before the backup began: the copy holds at least these.
    pub acknowledged: u64,
    /// Events in the copy (whole groups; appends that landed while it was taken may be in).
    pub events: u64,
    /// `verify` of the copy, opened as a database of its own.
    pub verify: VerifyReport,
}

/// Opens the database in `dir`, counts and verifies it, and closes it.
pub fn check_copy(dir: &std::path::Path, deep: bool) -> Result<(u64, VerifyReport)> {
    let copy = crate::embedded::open(dir, crate::store::Options::default())?;
    let events = copy.len();
    let report =
        if deep { crate::memory::MemoryStores::new(copy.clone()).verify_deep(|_| ())? } else { copy.verify(|_| ())? };
    copy.close()?;
    Ok((events, report))
}

/// Restores the backup in `backup` into `target` (a new or empty folder): copies every
/// file, then opens and verifies the result (deep).
pub fn restore(backup: &std::path::Path, target: &std::path::Path) -> Result<BackupReport> {
    let io = |p: &std::path::Path| {
        let p = p.display().to_string();
        move |source| Error::Io { path: p.clone(), source }
    };
    if !backup.join("CURRENT").exists() {
        return Err(Error::Format(crate::core::FormatError::field(
            "backup",
            format!("{} is not a dreamlog backup (no CURRENT file); nothing was written", backup.display()),
        )));
    }
    if target.exists() && std::fs::read_dir(target).map_err(io(target))?.next().is_some() {
        return Err(Error::Format(crate::core::FormatError::field(
            "--db",
            format!("{} holds files: a restore goes into a new or empty folder; nothing was written", target.display()),
        )));
    }
    std::fs::create_dir_all(target).map_err(io(target))?;
    let acknowledged = crate::embedded::read_acked(backup).map_or(0, |(n, _)| n);
    for entry in std::fs::read_dir(backup).map_err(io(backup))? {
        let entry = entry.map_err(io(backup))?;
        if entry.file_type().map_err(io(&entry.path()))?.is_file() {
            let to = target.join(entry.file_name());
            std::fs::copy(entry.path(), &to).map_err(io(&to))?;
        }
    }
    std::fs::File::open(target).and_then(|d| d.sync_all()).map_err(io(target))?;
    let (events, verify) = check_copy(target, true)?;
    Ok(BackupReport { dir: target.display().to_string(), acknowledged, events, verify })
}

/// `POST /v1/checkpoints/verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointCheckRequest {
    /// The checkpoint, as `checkpoint` returned it (kept elsewhere since).
    pub checkpoint: crate::core::checkpoint::Checkpoint,
    /// The public key (hex) the checkpoint must be signed with; without it the key in
    /// the checkpoint is taken at its word (only the signature is checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Whether a log extends a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointVerdict {
    /// The checkpoint's position.
    pub position: u64,
    /// Events in the log now.
    pub events: u64,
    /// The signature verified (with the trusted key, when one was given).
    pub signature_ok: bool,
    /// Whether the key was given by the caller (trusted) or only read from the checkpoint.
    pub key_trusted: bool,
    /// True when the signature holds and the log extends the checkpoint.
    pub extends: bool,
    /// What does not hold, in words.
    pub problems: Vec<String>,
}

/// Who issues a memory tool call, and what it rests on.
#[derive(Clone, Debug, Default)]
pub struct ToolContext {
    /// Who issues it (the surface's default when absent).
    pub actor: Option<Actor>,
    /// The session it belongs to.
    pub session: Option<String>,
    /// Expected BLAKE3 of the file's content (a conflict if it differs).
    pub precondition: Option<Digest>,
    /// Evidence: event ids or unique prefixes.
    pub causes: Vec<String>,
}

/// A memory tool call's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolAnswer {
    /// The tool's text, as a `tool_result` carries it.
    pub text: String,
    /// The tool's error class when it refused (`not_found`, `invalid`, …).
    pub error: Option<String>,
    /// Where the recorded command landed: position and id.
    pub recorded: Option<(u64, EventId)>,
}

/// `GET /v1/memory/{store}/view`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ViewQuery {
    /// Path (default `/memories`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Point (default head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// `START:END` lines of a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
}

pub use crate::memory::MemoryView;

/// A path and a point (history, blame, lessons).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PathQuery {
    /// The path (required by blame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Point (default head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// `GET /v1/memory/{store}/diff`: two points of one store, or two stores at one point.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DiffQuery {
    /// The second store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    /// From point (one store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// To point (one store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Point of both stores (two stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// `POST /v1/memory/{store}/revert`: exactly one of `event`, `dream`, `session`, `to`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevertRequest {
    /// One memory event (id or prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Everything a dream wrote (id or prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dream: Option<String>,
    /// Every memory command one session made (its id, as the commands name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The store as of this point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Why (recorded).
    pub reason: String,
    /// Restore conflicting files whole instead of refusing.
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/memory/{store}/fork`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForkRequest {
    /// The new store.
    pub new: String,
    /// Point (default head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// A fork: its event and the position it copied the store at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forked {
    /// The `store.fork` event.
    pub appended: Appended,
    /// The store was copied as of this position.
    pub position: u64,
}

/// `POST /v1/memory/{store}/promote`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The store to change.
    pub into: String,
    /// Promote lessons whose validated lift is negative too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// `GET /v1/memory/{store}/files`: a store's files with their texts, as of a point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryFiles {
    /// The store.
    pub store: String,
    /// The state covers the log before this position.
    pub until: u64,
    /// The state hash.
    pub state_hash: Digest,
    /// Path → text.
    pub files: std::collections::BTreeMap<String, String>,
    /// The store's memory rules at that point (1 or 2).
    #[serde(default = "rules_1")]
    pub rules: u64,
    /// Rules 2: every directory below `/memories`, in path order (empty ones included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<String>,
    /// The store's version at that point (its last event's); absent when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

fn rules_1() -> u64 {
    1
}

impl MemoryFiles {
    /// The files and directories as a state under their rules; a store with no events
    /// yet is empty under the rules its first write will record.
    pub fn state(&self) -> crate::core::memory::MemoryState {
        if self.version.is_none() {
            return crate::core::memory::MemoryState::new().with_rules(crate::core::memory::CURRENT_RULES);
        }
        let rules = crate::core::memory::Rules::from_number(self.rules).unwrap_or_default();
        crate::core::memory::MemoryState::from_tree(
            rules,
            self.files.iter().map(|(p, t)| (p.clone(), t.clone())),
            self.dirs.iter().cloned(),
        )
    }
}

/// `POST /v1/memory/{store}/rules`: the memory rules a store follows from now on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesRequest {
    /// 2: the Anthropic SDK reference backend's semantics, directories as state.
    pub rules: u64,
}

/// `POST /v1/redact`: one event, every event of one session, or every event of one
/// actor (a deletion request), as one recorded act.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactRequest {
    /// The event (id or unique prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Every event of this session (id or unique prefix): its stream's and the memory
    /// commands it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Every event this actor (`ROLE:NAME`) wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Why (recorded in each `redact` event).
    pub reason: String,
}

impl RedactRequest {
    /// A request to redact one event.
    pub fn event(event: impl Into<String>, reason: impl Into<String>) -> RedactRequest {
        RedactRequest { event: Some(event.into()), session: None, actor: None, reason: reason.into() }
    }
}

/// One event a redaction removed the body of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactedEvent {
    /// The event.
    pub target: EventId,
    /// Its position.
    pub position: u64,
    /// The stand-in now in the body's place (its JSON form).
    pub stand_in: Value,
}

/// An event of a session or actor a redaction left as it is, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactKept {
    /// The event.
    pub id: EventId,
    /// Its position.
    pub position: u64,
    /// Why it stays (it holds no text dreamlog redacts, or it is structure).
    pub reason: String,
}

/// What a redaction did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redacted {
    /// The redacted event (of a session or actor: the first).
    pub target: EventId,
    /// Its position.
    pub position: u64,
    /// The `redact` event that records it.
    pub event: EventId,
    /// Its position.
    pub event_position: u64,
    /// The stand-in now in the body's place (its JSON form).
    pub stand_in: Value,
    /// A session's or actor's redaction: every event this act redacted, in log order
    /// (all in one atomic write; the first is `target`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<RedactedEvent>,
    /// Events asked for that were redacted before: not recorded again; their scrub ran
    /// again, so their removed bytes are in no file (a scrub a crash interrupted under a
    /// release that did not finish it at open).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub already: Vec<RedactedEvent>,
    /// Events of the session or actor left as they are, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<RedactKept>,
}

/// What a rules switch did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesSwitch {
    /// The store.
    pub store: String,
    /// The rules it follows now.
    pub rules: u64,
    /// The `memory.rules` note appended, or `None` when the store followed them already.
    pub event: Option<EventId>,
    /// Its position.
    pub position: Option<u64>,
}

/// `POST /v1/memory/{store}/batch`: memory tool inputs (no `view`) applied atomically.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The commands, each a memory tool input (`create`, `str_replace`, `insert`,
    /// `delete`, `rename`), applied in order.
    pub commands: Vec<crate::core::MemoryCommand>,
    /// The store's expected state hash before them: a conflict (nothing written) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_state: Option<Digest>,
    /// The session the changes belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// `POST /v1/tags`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// Tag name.
    pub name: String,
    /// Point (default head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// A tag: the position it names and the tag event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tagged {
    /// The last position the tag covers.
    pub position: u64,
    /// The tag event's id.
    pub id: EventId,
    /// The tag event's position.
    pub event_position: u64,
}

/// `GET /v1/drift/{store}`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct DriftQuery {
    /// Bootstrap resamples (1..=100,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resamples: Option<usize>,
    /// Fewest sessions a memory state needs to be judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sessions: Option<u64>,
}

/// `POST /v1/dreams`: which dreamer over which store, and where its output goes. The
/// dreamer is a name (`evidence`, or a profile of the server's config); `config` sets
/// what the dreamer lets a request tune.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DreamRequest {
    /// The store dreamed over.
    pub store: String,
    /// Dreamer (`NAME[@VERSION]`; default `evidence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dreamer: Option<String>,
    /// Dreamer config.
    #[serde(default)]
    pub config: Value,
    /// `start`, a point, or absent (after the last dream folded into the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The fork to write into (default: a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// Write into the store itself.
    #[serde(default)]
    pub in_place: bool,
    /// Dream over a store that has no event yet.
    #[serde(default)]
    pub create: bool,
    /// Read only these sessions of the range (ids; none: every graded session).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<String>,
    /// Dream even when an earlier dream read the same input into a fork still there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub again: bool,
}

/// `POST /v1/sessions/link`: sessions (ids or unique prefixes) that ran with `store` as
/// it stood at `at` (a point; default head).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsLinkRequest {
    /// Session ids or unique prefixes.
    pub sessions: Vec<String>,
    /// The memory store they ran with.
    pub store: String,
    /// The point whose state of the store they ran with (default `head`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// What `sessions link` wrote.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionsLinked {
    /// The store.
    pub store: String,
    /// The point's position (inclusive): the store's state there.
    pub position: u64,
    /// That state's hash.
    pub memory_state: crate::core::Digest,
    /// Each session with its new link event.
    pub linked: Vec<LinkedSession>,
}

/// One session `sessions link` tied to a memory state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinkedSession {
    /// Session id.
    pub session: String,
    /// The `session.link` event.
    pub id: EventId,
    /// Its position.
    pub position: u64,
}

/// `POST /v1/dreams/{id}/replay`: another dreamer or config (absent: as recorded).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayRequest {
    /// Another dreamer (`NAME[@VERSION]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dreamer: Option<String>,
    /// Another config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

/// `GET /v1/principals`'s query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalsQuery {
    /// List this principal's batches (newest first).
    #[serde(default)]
    pub name: Option<String>,
    /// Most batches listed (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Who wrote to the log (schemas/api/principals.schema.json).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Principals {
    /// Every principal with a receipt, by name.
    pub principals: Vec<PrincipalSummary>,
    /// Events written without a receipt (before receipts, or by a library caller that
    /// names no principal).
    pub unreceipted_events: u64,
    /// With `name`: that principal's batches, newest first (at most `limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<Vec<crate::core::receipt::Received>>,
}

/// What one principal wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrincipalSummary {
    /// Its name.
    pub name: String,
    /// How it was authenticated (every role it wrote with, comma-separated).
    pub roles: String,
    /// Batches it wrote.
    pub batches: u64,
    /// Events in them.
    pub events: u64,
    /// Its first batch: position and receipt time (ms).
    pub first_position: u64,
    /// Its first batch's receipt time.
    pub first_at: u64,
    /// Its last batch's first position.
    pub last_position: u64,
    /// Its last batch's receipt time.
    pub last_at: u64,
}
