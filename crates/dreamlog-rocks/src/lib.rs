//! dreamlog's embedded backend: the log of record and its indexes in RocksDB
//! ([`RocksLog`], a `dreamlog_store::Log`), dreamlog's own reading of RocksDB's
//! write-ahead log before RocksDB opens it ([`wal`]), and `dreamlog recover`
//! ([`recover()`]).
//!
//! Architecture invariant, kept by the compiler: this is the only crate that names
//! `rocksdb`; the engine above it (`dreamlog-store`) is the same over every backend.
//! The on-disk layout is docs/reference/FORMAT.md §7–§9.

#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

mod log;
mod recover;
pub mod wal;

use std::path::Path;
use std::sync::Arc;

use dreamlog_store::error::Result;
use dreamlog_store::replica::LogOfRecord;
use dreamlog_store::{Options, Store};

pub use log::{RocksLog, SharedCache};
pub use recover::{recover, RecoveryReport, UNIDENTIFIED_LISTED};

/// Opens (or, with `create_if_missing`, creates) the database at `path` and the engine
/// over it.
pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Store> {
    open_with(path, opts, None)
}

/// [`open`] with memory budgets shared with other stores of this process (a server's
/// tenants): N stores cost one budget rather than N.
pub fn open_with(path: impl AsRef<Path>, opts: Options, shared: Option<&SharedCache>) -> Result<Store> {
    let log = RocksLog::open(path, &opts, shared)?;
    Store::with_log(Arc::new(log), opts)
}

/// Opens the database at `path` as a projection of a replicated log of record (a
/// cluster node; `Store::with_log_of_record`): the local database is not synced, the log
/// of record is what survives.
pub fn open_replicated(
    path: impl AsRef<Path>,
    opts: Options,
    shared: Option<&SharedCache>,
    replica: Arc<dyn LogOfRecord>,
) -> Result<Store> {
    let opts = opts.for_log_of_record(replica.as_ref());
    let log = RocksLog::open(path, &opts, shared)?;
    Store::with_log_of_record(Arc::new(log), opts, replica)
}
