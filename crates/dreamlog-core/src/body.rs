//! Event bodies: one typed struct per kind. Field order is the encoding order and is
//! fixed for format v1 (docs/reference/FORMAT.md); `Option` fields are omitted from the JSON form
//! when absent.

use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::canonical_json::CanonicalJson;
use super::error::FormatError;
use super::hash::{Digest, EventId};
use super::kind::Kind;
use super::validate::{check_name, check_store_name};
use super::wire;

/// `meta.times` of a `session.start` whose source has no timestamps: event times are
/// step numbers (1, 2, …), not times.
pub const UNTIMED: &str = "steps";

/// `session.start`: a session begins.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionStart {
    /// Session id (also the usual stream name suffix).
    pub session: String,
    /// The agent that runs the session.
    pub agent: String,
    /// The model behind the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Task id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Task text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The memory store the session ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The state hash of that memory store when the session started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_state: Option<Digest>,
    /// Where the session came from (format and file, for imports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<CanonicalJson>,
}

/// Outcome of one tool call.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// tag 0: the call succeeded.
    Ok,
    /// tag 1: the call failed.
    Error,
    /// tag 2: the source does not say.
    Unknown,
}

/// `action`: one tool call and its result.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Session id.
    pub session: String,
    /// Tool name.
    pub name: String,
    /// The call's id in its source (e.g. a `tool_use` id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Tool input.
    pub input: CanonicalJson,
    /// Tool output or observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<CanonicalJson>,
    /// Whether the call succeeded.
    pub status: ActionStatus,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<CanonicalJson>,
}

/// A grade's overall result. JSON form: a string; names other than the four known ones
/// are kept as `Other`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum GradeResult {
    /// tag 0: `satisfied`.
    Satisfied,
    /// tag 1: `needs_revision`.
    NeedsRevision,
    /// tag 2: `failed`.
    Failed,
    /// tag 3: `error` (the evaluator could not grade).
    Error,
    /// tag 4: any other result name.
    Other(String),
}

impl GradeResult {
    /// The result's name.
    pub fn as_str(&self) -> &str {
        match self {
            GradeResult::Satisfied => "satisfied",
            GradeResult::NeedsRevision => "needs_revision",
            GradeResult::Failed => "failed",
            GradeResult::Error => "error",
            GradeResult::Other(s) => s,
        }
    }

    /// Parses a name; known names always map to their own variant.
    pub fn from_name(s: &str) -> GradeResult {
        match s {
            "satisfied" => GradeResult::Satisfied,
            "needs_revision" => GradeResult::NeedsRevision,
            "failed" => GradeResult::Failed,
            "error" => GradeResult::Error,
            other => GradeResult::Other(other.to_owned()),
        }
    }
}

impl Serialize for GradeResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for GradeResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(GradeResult::from_name(&s))
    }
}

/// One criterion of a grade's breakdown.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// Criterion name.
    pub name: String,
    /// Whether it passed, when binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    /// Its score in 0..1, when scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The evaluator's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `grade`: an evaluator's judgement of a session.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grade {
    /// Session id.
    pub session: String,
    /// The graded event, when the grade is of one event rather than the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<EventId>,
    /// The rubric used.
    pub rubric: String,
    /// The evaluator (name of a person, program or model).
    pub evaluator: String,
    /// Score in 0..1.
    pub score: f64,
    /// Overall result.
    pub result: GradeResult,
    /// Per-criterion results, in the evaluator's order.
    #[serde(default)]
    pub criteria: Vec<Criterion>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<CanonicalJson>,
}

/// `session.end`: a session ends.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionEnd {
    /// Session id.
    pub session: String,
    /// How it ended (completed, max_steps, error, …).
    pub status: String,
    /// Free-form metadata: cost, token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<CanonicalJson>,
}

/// A memory tool command (`memory_20250818`) that changes a store. `view` is a read and
/// is never recorded. JSON form: the tool call's input, tagged by `command`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum MemoryCommand {
    /// tag 0: create a file; fails if it exists.
    Create {
        /// File path under /memories.
        path: String,
        /// The whole file.
        file_text: String,
    },
    /// tag 1: replace the one occurrence of `old_str`.
    StrReplace {
        /// File path.
        path: String,
        /// Text that must occur exactly once.
        old_str: String,
        /// Replacement.
        new_str: String,
    },
    /// tag 2: insert text after line `insert_line` (0 = before the first line).
    Insert {
        /// File path.
        path: String,
        /// Line after which to insert.
        insert_line: u64,
        /// Text to insert.
        insert_text: String,
    },
    /// tag 3: delete a file or a directory with everything in it.
    Delete {
        /// Path.
        path: String,
    },
    /// tag 4: rename a file or directory; never overwrites.
    Rename {
        /// Existing path.
        old_path: String,
        /// New path.
        new_path: String,
    },
    /// tag 5: make an empty directory (and those above it). Not a command of the memory
    /// tool: dreamlog writes it where a state it restores or records has an empty
    /// directory (revert, checkout, watch); stores under memory rules 2 only.
    Mkdir {
        /// Directory path.
        path: String,
    },
    /// tag 6: write a whole file, creating it or replacing its text (and making the
    /// directories above it). Not a command of the memory tool: dreamlog writes it for
    /// the Managed-Agents memory API, whose updates give a memory's whole content.
    Write {
        /// File path.
        path: String,
        /// The whole file.
        file_text: String,
    },
}

/// `memory`: one command applied to a memory store.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Store name.
    pub store: String,
    /// The command.
    pub command: MemoryCommand,
    /// Expected content hash of the file before the command, when the writer asked for
    /// a precondition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precondition: Option<Digest>,
    /// The session that issued the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// `dream`: a dreamer ran over a slice of the log.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dream {
    /// Dreamer name.
    pub dreamer: String,
    /// Dreamer version.
    pub version: String,
    /// Dreamer configuration.
    pub config: CanonicalJson,
    /// Input store.
    pub store: String,
    /// State hash of the input store the dreamer read.
    pub base_state: Digest,
    /// First global position of the log range read (inclusive).
    pub from_position: u64,
    /// Last global position of the log range read (inclusive).
    pub to_position: u64,
    /// Store the commands were written to (the input store, or a fork of it).
    pub output_store: String,
    /// State hash of the output store after the commands.
    pub result_state: Digest,
    /// Free-form metadata: counts, timings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<CanonicalJson>,
}

/// `llm.exchange`: one model request and its response, recorded so a replay never calls
/// the model again.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmExchange {
    /// API spoken, e.g. `anthropic.messages` or `openai.chat`.
    pub api: String,
    /// Model name.
    pub model: String,
    /// The request body, canonical.
    pub request: CanonicalJson,
    /// The response body, canonical.
    pub response: CanonicalJson,
    /// Free-form metadata: status, latency, retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<CanonicalJson>,
}

/// What a `revert` rolls back. JSON form: `{"event": ID}`, `{"dream": ID}`,
/// `{"position": N}` or `{"session": ID}`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RevertTarget {
    /// tag 0: one memory event.
    Event(EventId),
    /// tag 1: all output of one dream.
    Dream(EventId),
    /// tag 2: the store's state as of a global position.
    Position(u64),
    /// tag 3: every memory command one session made (`Memory.session`).
    Session(String),
}

/// `revert`: memory changes rolled back by appending inverse commands.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revert {
    /// Store name.
    pub store: String,
    /// What is reverted.
    pub target: RevertTarget,
    /// Why.
    pub reason: String,
}

/// `tag`: a name for a point of the log.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    /// Tag name.
    pub name: String,
    /// The global position it names.
    pub position: u64,
}

/// `store.fork`: a new memory store starts as a copy of another at a point.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFork {
    /// The new store.
    pub store: String,
    /// The store it copies.
    pub source: String,
    /// The global position of the source state it copies.
    pub position: u64,
}

/// `redact`: an event's body is to be removed; its header (and so its id) stays.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redact {
    /// The event whose body goes.
    pub target: EventId,
    /// Why.
    pub reason: String,
}

/// `note`: an extension record.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// Extension type name.
    #[serde(rename = "type")]
    pub note_type: String,
    /// Its content.
    pub json: CanonicalJson,
}

/// `message`: one message of a session's conversation, so a session renders in order.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Session id.
    pub session: String,
    /// `user`, `assistant`, `system`, `tool`…
    pub role: String,
    /// Content in its source form (a string or content blocks).
    pub content: CanonicalJson,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<CanonicalJson>,
}

/// `session.link`: what a session ran with and where it came from, kept beside the
/// session's own events so that their ids depend only on the session's content (an
/// import of the same run from another path, or with the store in another state, is the
/// same session). Written to the stream `session.link/ID`; the ledger and drift read the
/// store and state from here when the `session.start` names none.
#[derive(Clone, PartialEq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionLink {
    /// Session id.
    pub session: String,
    /// The memory store the session ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The state hash of that store the session ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_state: Option<Digest>,
    /// Where the session came from: `FORMAT:PATH` for imports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<CanonicalJson>,
}

/// An event body: one variant per [`Kind`].
#[derive(Clone, PartialEq, Debug)]
pub enum Body {
    /// `session.start`
    SessionStart(SessionStart),
    /// `action`
    Action(Action),
    /// `grade`
    Grade(Grade),
    /// `session.end`
    SessionEnd(SessionEnd),
    /// `memory`
    Memory(Memory),
    /// `dream`
    Dream(Dream),
    /// `llm.exchange`
    LlmExchange(LlmExchange),
    /// `revert`
    Revert(Revert),
    /// `tag`
    Tag(Tag),
    /// `store.fork`
    StoreFork(StoreFork),
    /// `redact`
    Redact(Redact),
    /// `note`
    Note(Note),
    /// `message`
    Message(Message),
    /// `session.link`
    SessionLink(SessionLink),
}

/// Applies `$m!(Variant, value)` to whichever variant `$body` is.
macro_rules! each_body {
    ($body:expr, $v:ident => $e:expr) => {
        match $body {
            Body::SessionStart($v) => $e,
            Body::Action($v) => $e,
            Body::Grade($v) => $e,
            Body::SessionEnd($v) => $e,
            Body::Memory($v) => $e,
            Body::Dream($v) => $e,
            Body::LlmExchange($v) => $e,
            Body::Revert($v) => $e,
            Body::Tag($v) => $e,
            Body::StoreFork($v) => $e,
            Body::Redact($v) => $e,
            Body::Note($v) => $e,
            Body::Message($v) => $e,
            Body::SessionLink($v) => $e,
        }
    };
}

/// Calls `$f::<Type>` with the body type of `$kind`, wrapping the result in its variant.
macro_rules! by_kind {
    ($kind:expr, $f:ident ( $($arg:expr),* )) => {
        match $kind {
            Kind::SessionStart => $f::<SessionStart>($($arg),*).map(Body::SessionStart),
            Kind::Action => $f::<Action>($($arg),*).map(Body::Action),
            Kind::Grade => $f::<Grade>($($arg),*).map(Body::Grade),
            Kind::SessionEnd => $f::<SessionEnd>($($arg),*).map(Body::SessionEnd),
            Kind::Memory => $f::<Memory>($($arg),*).map(Body::Memory),
            Kind::Dream => $f::<Dream>($($arg),*).map(Body::Dream),
            Kind::LlmExchange => $f::<LlmExchange>($($arg),*).map(Body::LlmExchange),
            Kind::Revert => $f::<Revert>($($arg),*).map(Body::Revert),
            Kind::Tag => $f::<Tag>($($arg),*).map(Body::Tag),
            Kind::StoreFork => $f::<StoreFork>($($arg),*).map(Body::StoreFork),
            Kind::Redact => $f::<Redact>($($arg),*).map(Body::Redact),
            Kind::Note => $f::<Note>($($arg),*).map(Body::Note),
            Kind::Message => $f::<Message>($($arg),*).map(Body::Message),
            Kind::SessionLink => $f::<SessionLink>($($arg),*).map(Body::SessionLink),
        }
    };
}

fn decode_as<T: Decode<()>>(bytes: &[u8], kind: Kind) -> Result<T, FormatError> {
    wire::decode_exact(bytes, &format!("{kind} body"))
}

fn from_json_as<T: serde::de::DeserializeOwned>(value: Value, kind: Kind) -> Result<T, FormatError> {
    serde_json::from_value(value)
        .map_err(|e| FormatError::Json { context: format!("body of {kind} event"), reason: e.to_string() })
}

impl Body {
    /// The kind this body belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            Body::SessionStart(_) => Kind::SessionStart,
            Body::Action(_) => Kind::Action,
            Body::Grade(_) => Kind::Grade,
            Body::SessionEnd(_) => Kind::SessionEnd,
            Body::Memory(_) => Kind::Memory,
            Body::Dream(_) => Kind::Dream,
            Body::LlmExchange(_) => Kind::LlmExchange,
            Body::Revert(_) => Kind::Revert,
            Body::Tag(_) => Kind::Tag,
            Body::StoreFork(_) => Kind::StoreFork,
            Body::Redact(_) => Kind::Redact,
            Body::Note(_) => Kind::Note,
            Body::Message(_) => Kind::Message,
            Body::SessionLink(_) => Kind::SessionLink,
        }
    }

    /// The canonical body bytes: the kind's struct in the v1 encoding (no kind tag: the
    /// kind is in the header).
    pub fn encode(&self) -> Vec<u8> {
        each_body!(self, b => wire::encode(b))
    }

    /// Decodes body bytes of `kind`. All bytes must be consumed.
    pub fn decode(kind: Kind, bytes: &[u8]) -> Result<Body, FormatError> {
        by_kind!(kind, decode_as(bytes, kind))
    }

    /// The body's JSON form.
    pub fn to_json(&self) -> Value {
        // Serialising plain structs into a Value cannot fail.
        each_body!(self, b => serde_json::to_value(b).unwrap_or(Value::Null))
    }

    /// Parses the JSON form of a body of `kind`, then validates and normalises it.
    pub fn from_json(kind: Kind, value: Value) -> Result<Body, FormatError> {
        let mut body = by_kind!(kind, from_json_as(value, kind))?;
        body.normalize_and_validate()?;
        Ok(body)
    }

    /// Checks value ranges and names, and normalises what has two encodings of one value
    /// (a score of -0.0 becomes 0.0).
    pub fn normalize_and_validate(&mut self) -> Result<(), FormatError> {
        match self {
            Body::SessionStart(b) => {
                non_empty("body.session", &b.session)?;
                non_empty("body.agent", &b.agent)?;
                if let Some(store) = &b.store {
                    check_store_name("body.store", store)?;
                }
            }
            Body::Action(b) => {
                non_empty("body.session", &b.session)?;
                non_empty("body.name", &b.name)?;
            }
            Body::Grade(b) => {
                non_empty("body.session", &b.session)?;
                unit_score("body.score", &mut b.score)?;
                for (i, c) in b.criteria.iter_mut().enumerate() {
                    non_empty(&format!("body.criteria[{i}].name"), &c.name)?;
                    if let Some(s) = &mut c.score {
                        unit_score(&format!("body.criteria[{i}].score"), s)?;
                    }
                }
            }
            Body::SessionEnd(b) => non_empty("body.session", &b.session)?,
            Body::Memory(b) => check_store_name("body.store", &b.store)?,
            Body::Dream(b) => {
                non_empty("body.dreamer", &b.dreamer)?;
                non_empty("body.version", &b.version)?;
                check_store_name("body.store", &b.store)?;
                check_store_name("body.output_store", &b.output_store)?;
                if b.from_position > b.to_position {
                    return Err(FormatError::field(
                        "body.from_position",
                        format!("{} is after to_position {}", b.from_position, b.to_position),
                    ));
                }
            }
            Body::LlmExchange(b) => non_empty("body.model", &b.model)?,
            Body::Revert(b) => check_store_name("body.store", &b.store)?,
            Body::Tag(b) => check_name("body.name", &b.name)?,
            Body::StoreFork(b) => {
                check_store_name("body.store", &b.store)?;
                check_store_name("body.source", &b.source)?;
            }
            Body::Redact(_) => {}
            Body::Note(b) => {
                non_empty("body.type", &b.note_type)?;
                if b.note_type == super::memory::RULES_NOTE
                    && super::memory::Rules::from_note(&b.json.to_value()).is_none()
                {
                    return Err(FormatError::field(
                        "body.json",
                        format!("a {} note holds exactly {{\"rules\": N}} with N 1 or 2", super::memory::RULES_NOTE),
                    ));
                }
            }
            Body::Message(b) => {
                non_empty("body.session", &b.session)?;
                non_empty("body.role", &b.role)?;
            }
            Body::SessionLink(b) => {
                non_empty("body.session", &b.session)?;
                if let Some(store) = &b.store {
                    check_store_name("body.store", store)?;
                }
            }
        }
        Ok(())
    }

    /// The session this body belongs to, for kinds that have one.
    pub fn session(&self) -> Option<&str> {
        match self {
            Body::SessionStart(b) => Some(&b.session),
            Body::Action(b) => Some(&b.session),
            Body::Grade(b) => Some(&b.session),
            Body::SessionEnd(b) => Some(&b.session),
            Body::Message(b) => Some(&b.session),
            Body::SessionLink(b) => Some(&b.session),
            Body::Memory(b) => b.session.as_deref(),
            _ => None,
        }
    }

    /// A one-line human summary, for `log`.
    pub fn summary(&self) -> String {
        fn clip(s: &str, n: usize) -> String {
            let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            if one_line.chars().count() <= n {
                one_line
            } else {
                let mut t: String = one_line.chars().take(n).collect();
                t.push('…');
                t
            }
        }
        match self {
            Body::SessionStart(b) => format!(
                "session {} agent {}{}",
                b.session,
                b.agent,
                b.task.as_deref().map(|t| format!(" task {:?}", clip(t, 40))).unwrap_or_default()
            ),
            Body::Action(b) => format!("{} {:?} {}", b.name, b.status, clip(b.input.as_str(), 60)),
            Body::Grade(b) => format!("score {} {} ({} criteria)", b.score, b.result.as_str(), b.criteria.len()),
            Body::SessionEnd(b) => format!("session {} {}", b.session, b.status),
            Body::Memory(b) => match &b.command {
                MemoryCommand::Create { path, .. } => format!("{} create {path}", b.store),
                MemoryCommand::StrReplace { path, .. } => format!("{} str_replace {path}", b.store),
                MemoryCommand::Insert { path, insert_line, .. } => {
                    format!("{} insert {path}:{insert_line}", b.store)
                }
                MemoryCommand::Delete { path } => format!("{} delete {path}", b.store),
                MemoryCommand::Mkdir { path } => format!("{} mkdir {path}", b.store),
                MemoryCommand::Write { path, file_text } => {
                    format!("{} write {path} ({} bytes)", b.store, file_text.len())
                }
                MemoryCommand::Rename { old_path, new_path } => {
                    format!("{} rename {old_path} -> {new_path}", b.store)
                }
            },
            Body::Dream(b) => format!("{}@{} {} -> {}", b.dreamer, b.version, b.store, b.output_store),
            Body::LlmExchange(b) => format!("{} {}", b.api, b.model),
            Body::Revert(b) => {
                let what = match &b.target {
                    RevertTarget::Event(id) => format!("event {}", id.short(12)),
                    RevertTarget::Dream(id) => format!("dream {}", id.short(12)),
                    RevertTarget::Position(p) => format!("to position {p}"),
                    RevertTarget::Session(s) => format!("session {}", clip(s, 40)),
                };
                format!("{} revert {what}: {}", b.store, clip(&b.reason, 40))
            }
            Body::Tag(b) => format!("{} = {}", b.name, b.position),
            Body::StoreFork(b) => format!("{} from {}@{}", b.store, b.source, b.position),
            Body::Redact(b) => format!("{}: {}", b.target.short(12), clip(&b.reason, 40)),
            Body::Note(b) => format!("{} {}", b.note_type, clip(b.json.as_str(), 60)),
            Body::Message(b) => format!("{} {}", b.role, clip(b.content.as_str(), 60)),
            Body::SessionLink(b) => format!(
                "session {}{}{}",
                b.session,
                b.store.as_deref().map(|s| format!(" ran with {s}")).unwrap_or_default(),
                b.source.as_deref().map(|s| format!(" from {}", clip(s, 60))).unwrap_or_default()
            ),
        }
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), FormatError> {
    if value.is_empty() {
        return Err(FormatError::field(field, "must not be empty"));
    }
    Ok(())
}

fn unit_score(field: &str, score: &mut f64) -> Result<(), FormatError> {
    if !score.is_finite() || !(0.0..=1.0).contains(score) {
        return Err(FormatError::field(field, format!("{score} is not in 0..1")));
    }
    if *score == 0.0 {
        *score = 0.0; // -0.0 and 0.0 are one score: one encoding.
    }
    Ok(())
}
