//! Event kinds and actors: the small closed vocabularies of the header.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::FormatError;
use super::validate::check_name;

/// The kind of an event. Encoded as its tag (variant index); kinds are only ever added
/// at the end, so no existing encoding changes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
pub enum Kind {
    /// tag 0: a session starts.
    SessionStart,
    /// tag 1: one tool call of an agent.
    Action,
    /// tag 2: an evaluator's grade of a session (or one event of it).
    Grade,
    /// tag 3: a session ends.
    SessionEnd,
    /// tag 4: one memory tool command applied to a memory store.
    Memory,
    /// tag 5: a dreamer ran.
    Dream,
    /// tag 6: one recorded model request and response.
    LlmExchange,
    /// tag 7: memory changes were rolled back.
    Revert,
    /// tag 8: a name for a point in the log.
    Tag,
    /// tag 9: a memory store was forked from another.
    StoreFork,
    /// tag 10: an event's body is to be redacted.
    Redact,
    /// tag 11: an extension record.
    Note,
    /// tag 12: a message of a session's conversation (user, assistant, system).
    Message,
    /// tag 13: links a session to the memory store (and state) it ran with and to the
    /// source it was imported from, beside the events that identify the session.
    SessionLink,
}

impl Kind {
    /// Every kind, in tag order.
    pub const ALL: [Kind; 14] = [
        Kind::SessionStart,
        Kind::Action,
        Kind::Grade,
        Kind::SessionEnd,
        Kind::Memory,
        Kind::Dream,
        Kind::LlmExchange,
        Kind::Revert,
        Kind::Tag,
        Kind::StoreFork,
        Kind::Redact,
        Kind::Note,
        Kind::Message,
        Kind::SessionLink,
    ];

    /// The kind's name in the JSON form, e.g. `session.start`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::SessionStart => "session.start",
            Kind::Action => "action",
            Kind::Grade => "grade",
            Kind::SessionEnd => "session.end",
            Kind::Memory => "memory",
            Kind::Dream => "dream",
            Kind::LlmExchange => "llm.exchange",
            Kind::Revert => "revert",
            Kind::Tag => "tag",
            Kind::StoreFork => "store.fork",
            Kind::Redact => "redact",
            Kind::Note => "note",
            Kind::Message => "message",
            Kind::SessionLink => "session.link",
        }
    }

    /// The kind's tag, its variant index in the encoding.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The kind with the given tag.
    pub fn from_tag(tag: u8) -> Option<Kind> {
        Kind::ALL.get(tag as usize).copied()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Kind, FormatError> {
        Kind::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| FormatError::UnknownKind(s.to_owned()))
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who wrote an event. JSON form: `agent:NAME`, `evaluator:NAME`,
/// `dreamer:NAME@VERSION`, `human:NAME`, `system:NAME`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
pub enum Actor {
    /// tag 0: an agent (harness, model).
    Agent(String),
    /// tag 1: an evaluator that grades sessions.
    Evaluator(String),
    /// tag 2: a dreamer at a version.
    Dreamer {
        /// The dreamer's name.
        name: String,
        /// The dreamer's version.
        version: String,
    },
    /// tag 3: a person.
    Human(String),
    /// tag 4: dreamlog itself or another system component.
    System(String),
}

impl Actor {
    /// Checks the names' lengths and characters.
    pub fn validate(&self) -> Result<(), FormatError> {
        match self {
            Actor::Agent(n) | Actor::Evaluator(n) | Actor::Human(n) | Actor::System(n) => check_name("actor", n),
            Actor::Dreamer { name, version } => {
                check_name("actor", name)?;
                check_name("actor version", version)?;
                if name.contains('@') {
                    return Err(FormatError::field("actor", "a dreamer name cannot contain '@'"));
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Agent(n) => write!(f, "agent:{n}"),
            Actor::Evaluator(n) => write!(f, "evaluator:{n}"),
            Actor::Dreamer { name, version } => write!(f, "dreamer:{name}@{version}"),
            Actor::Human(n) => write!(f, "human:{n}"),
            Actor::System(n) => write!(f, "system:{n}"),
        }
    }
}

impl FromStr for Actor {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Actor, FormatError> {
        let bad = |reason: &str| FormatError::field("actor", format!("{s:?}: {reason}"));
        let (role, name) = s.split_once(':').ok_or_else(|| bad("expected ROLE:NAME, e.g. agent:support-bot"))?;
        let actor = match role {
            "agent" => Actor::Agent(name.to_owned()),
            "evaluator" => Actor::Evaluator(name.to_owned()),
            "human" => Actor::Human(name.to_owned()),
            "system" => Actor::System(name.to_owned()),
            "dreamer" => {
                let (n, v) = name.split_once('@').ok_or_else(|| bad("a dreamer is dreamer:NAME@VERSION"))?;
                Actor::Dreamer { name: n.to_owned(), version: v.to_owned() }
            }
            _ => return Err(bad("role must be agent, evaluator, dreamer, human or system")),
        };
        actor.validate()?;
        Ok(actor)
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
