//! # dreamlog
//!
//! A content-addressed, replayable event store for AI agents that learn between
//! sessions. Every agent action, grade and memory change is an immutable event whose id
//! is the BLAKE3 hash of its canonical header; events live in RocksDB in a gapless
//! global log, chained per stream.
//!
//! ```no_run
//! use dreamlog::{Actor, AppendBatch, Body, Draft, Note, Options, CanonicalJson};
//!
//! let store = dreamlog::open("./dreamlog.db", Options::default())?;
//! let note = Body::Note(Note { note_type: "hello".into(), json: CanonicalJson::parse(r#"{"a":1}"#)? });
//! let done = store.append(AppendBatch::one(Draft::new("notes", Actor::Human("ada".into()), note)))?;
//! println!("appended at position {} with id {}", done[0].position, done[0].id);
//! # Ok::<(), dreamlog::Error>(())
//! ```
//!
//! Layers (see ARCHITECTURE.md), one crate each, all re-exported here so one crate is
//! named: [`core`] (`dreamlog-core`) is pure (model, encoding, ids, JSON forms,
//! projectors); [`store`] (`dreamlog-store`) is the engine over a backend for the log of
//! record (in RAM here; RocksDB is `dreamlog-rocks`, opened through [`embedded`] —
//! [`open`] —, JetStream is `dreamlog-jetstream`); `dreamlog-service` holds the domain ([`memory`],
//! [`dream`], [`sessions`], [`ledger`], [`import`], [`exchange`]), [`service`] — every
//! operation with typed requests, in process ([`service::Local`]) or over HTTP
//! ([`service::Remote`]) — and the adapters over it ([`managed`], [`otlp`], [`watch`]);
//! `dreamlog-server` is every HTTP surface. The surfaces — this binary's CLI and the
//! server — are private: only their entry points are exported ([`cli_main`], [`serve`],
//! [`ServerConfig`], [`hash_token`]).

#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

mod cli;
pub use dreamlog_core as core;
use dreamlog_server as server;
use dreamlog_server::mcp;
pub use dreamlog_service::embedded::{self, open, open_with, SharedCache};
#[cfg(feature = "rocks")]
pub use dreamlog_service::embedded::{recover, RecoveryReport};
#[doc(hidden)]
pub use dreamlog_service::fuzzing;
pub use dreamlog_service::{
    dream, exchange, hooks, import, keys, ledger, managed, memory, otlp, service, sessions, sim, timeline, watch,
};
pub use dreamlog_store as store;
use dreamlog_store::error;

pub use crate::cli::main as cli_main;
pub use crate::core::{
    Action, ActionStatus, Actor, Body, CanonicalJson, Criterion, Digest, Draft, Dream, Event, EventId, EventJson,
    FormatError, Grade, GradeResult, Header, Kind, LlmExchange, Memory, MemoryCommand, Message, Note, Redact, Revert,
    RevertTarget, SealedEvent, SessionEnd, SessionLink, SessionStart, StoreFork, Tag,
};
pub use crate::error::{DreamError, Error, ErrorClass, LogError, ManagedError, MemoryError, Result};
pub use crate::server::{hash_token, serve, AppState, ServerConfig};
pub use crate::store::{
    AppendBatch, Appended, ExpectedVersion, Options, Store, StoredEvent, Subscription, SyncMode, VerifyReport,
};
