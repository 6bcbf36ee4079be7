//! The domain and the service: what dreamlog does with its log, over the storage layer.
//!
//! Layers inside this crate (ARCHITECTURE.md; `tools/layers.py` keeps them): the domain
//! ([`memory`], [`sessions`], [`ledger`], [`timeline`], [`dream`], [`import`],
//! [`exchange`], [`sim`], [`keys`]) reads and folds the log; [`service`] is every
//! operation with typed requests, in process ([`service::Local`]) or over HTTP
//! ([`service::Remote`]); the adapters over the service ([`managed`], [`otlp`],
//! [`watch`], [`hooks`]) translate other vocabularies into its operations; [`embedded`] is the one
//! place that opens the embedded database (RocksDB). Nothing here serves HTTP
//! or parses a command line: those surfaces are `dreamlog-server` and the `dreamlog`
//! binary.

#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

pub use dreamlog_core as core;
pub use dreamlog_store as store;
pub use dreamlog_store::error;

pub mod dream;
pub mod embedded;
pub mod exchange;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod import;
pub mod keys;
pub mod ledger;
pub mod managed;
pub mod memory;
pub mod otlp;
pub mod service;
pub mod sessions;
pub mod sim;
pub mod timeline;
pub mod watch;
