//! The pure core: event model, canonical encoding, ids, JSON forms.
//!
//! Architecture invariant: nothing in here does I/O or knows about RocksDB — kept by
//! this crate's dependencies (no tokio, RocksDB, reqwest or filesystem crate) and by its
//! `clippy.toml` (std's filesystem, network, process, environment and clock APIs refused).

#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

pub mod blame;
pub mod body;
pub mod canonical_json;
pub mod dream;
pub mod error;
pub mod event;
mod expected;
pub mod hash;
pub mod json;
pub mod kind;
pub mod managed;
pub mod memory;
pub mod projection;
pub mod push;
pub mod receipt;
pub mod redact;
pub mod stats;
pub mod streams;
pub mod time;
pub mod validate;
pub use expected::ExpectedVersion;
pub mod checkpoint;
pub mod wire;

pub use body::{
    Action, ActionStatus, Body, Criterion, Dream, Grade, GradeResult, LlmExchange, Memory, MemoryCommand, Message,
    Note, Redact, Revert, RevertTarget, SessionEnd, SessionLink, SessionStart, StoreFork, Tag,
};
pub use canonical_json::CanonicalJson;
pub use error::FormatError;
pub use event::{Draft, Event, Header, SealedEvent, FORMAT_VERSION};
pub use hash::{Digest, EventId};
pub use json::EventJson;
pub use kind::{Actor, Kind};
pub use time::{time_text, MAX_TIME_MS};
