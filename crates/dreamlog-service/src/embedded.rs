//! The embedded database — RocksDB, the backend crate `dreamlog-rocks` — as every layer
//! above the engine opens it. The one place that knows whether this build has it: built
//! without the `rocks` feature (the fuzz targets), opening answers an error naming why.

use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::store::replica::LogOfRecord;
use crate::store::{Options, Store};

#[cfg(feature = "rocks")]
pub use dreamlog_rocks::{recover, wal, RecoveryReport, RocksLog, SharedCache};

/// Built without RocksDB: memory budgets have nothing to share.
#[cfg(not(feature = "rocks"))]
#[derive(Clone, Debug)]
pub struct SharedCache;

#[cfg(not(feature = "rocks"))]
impl SharedCache {
    /// Nothing to share without RocksDB.
    pub fn new(_cache_bytes: usize, _write_buffer_bytes: usize) -> SharedCache {
        SharedCache
    }
}

#[cfg(not(feature = "rocks"))]
fn absent(path: &Path) -> crate::error::Error {
    crate::error::Error::Log(crate::error::LogError::Open {
        path: path.display().to_string(),
        reason: "this build of dreamlog has no RocksDB backend (built without the `rocks` feature)".into(),
    })
}

/// Opens (or, with `create_if_missing`, creates) the database at `path`.
pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Store> {
    open_with(path, opts, None)
}

/// [`open`] with memory budgets shared with the other stores of this process.
pub fn open_with(path: impl AsRef<Path>, opts: Options, shared: Option<&SharedCache>) -> Result<Store> {
    #[cfg(feature = "rocks")]
    return dreamlog_rocks::open_with(path, opts, shared);
    #[cfg(not(feature = "rocks"))]
    {
        let _ = (opts, shared);
        Err(absent(path.as_ref()))
    }
}

/// Opens the database at `path` as a projection of a replicated log of record.
pub fn open_replicated(
    path: impl AsRef<Path>,
    opts: Options,
    shared: Option<&SharedCache>,
    replica: Arc<dyn LogOfRecord>,
) -> Result<Store> {
    #[cfg(feature = "rocks")]
    return dreamlog_rocks::open_replicated(path, opts, shared, replica);
    #[cfg(not(feature = "rocks"))]
    {
        let _ = (opts, shared, replica);
        Err(absent(path.as_ref()))
    }
}

/// The count of acknowledged events a database folder (or a backup of one) recorded,
/// with when: `None` when it keeps none.
pub fn read_acked(dir: &Path) -> Option<(u64, u64)> {
    #[cfg(feature = "rocks")]
    return dreamlog_rocks::wal::read_acked(dir);
    #[cfg(not(feature = "rocks"))]
    {
        let _ = dir;
        None
    }
}
