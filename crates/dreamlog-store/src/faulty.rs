//! A fault-injecting wrapper around any backend, for tests of the engine's own
//! invariants: a failed write or sync poisons the store and nothing after it is
//! acknowledged; a torn group is never half visible, not while the engine runs and not
//! after a restart; a retried batch is idempotent.
//!
//! It models the device under the backend: a write can fail before anything is written,
//! be applied and then fail its sync, or be torn (only its first events written, the
//! commit marker not moved) and fail. [`FaultyLog::power_loss`] drops everything the
//! wrapper has not reported synced, as a machine that loses its page cache would.
//! (Whether RocksDB itself keeps a synced append through a real power loss is proved at
//! the filesystem, below the process, by the crash harness.)

use std::sync::{Arc, Mutex};

use super::log::{Group, Log};
use super::VerifyReport;
use crate::core::projection::{IndexEntry, Space};
use crate::core::EventId;
use crate::error::LogError;
use crate::error::{Error, Result};

/// What a planned write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The write fails; nothing of it is written.
    FailWrite,
    /// The write is applied, then its sync fails: it may or may not survive a power loss.
    FailSync,
    /// Only the first `n` events of the group are written, without the commit marker,
    /// and the write fails (a crash in the middle of a write).
    Tear(usize),
}

#[derive(Default)]
struct Plan {
    writes: u64,
    faults: Vec<(u64, Fault)>,
    synced_end: u64,
    injected: Vec<(u64, Fault)>,
    fail_scrubs: u64,
}

/// A backend that fails when told to.
pub struct FaultyLog {
    inner: Arc<dyn Log>,
    plan: Mutex<Plan>,
}

impl FaultyLog {
    /// Wraps `inner`; everything it holds now counts as synced.
    pub fn new(inner: Arc<dyn Log>) -> Result<FaultyLog> {
        let synced_end = inner.marker()?.map_or_else(|| inner.stored_end(), Ok)?;
        Ok(FaultyLog { inner, plan: Mutex::new(Plan { synced_end, ..Plan::default() }) })
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the `n`-th write from now (0: the next) fail with `fault`.
    pub fn inject(&self, n: u64, fault: Fault) {
        let mut p = self.plan();
        let at = p.writes + n;
        p.faults.push((at, fault));
    }

    /// Makes the next `n` scrubs fail before they do anything (a crash between a
    /// redaction's write and its scrub, as far as the files are concerned).
    pub fn fail_scrubs(&self, n: u64) {
        self.plan().fail_scrubs = n;
    }

    /// The faults injected so far, with the index of the write each hit.
    pub fn injected(&self) -> Vec<(u64, Fault)> {
        self.plan().injected.clone()
    }

    /// Writes seen so far.
    pub fn writes(&self) -> u64 {
        self.plan().writes
    }

    /// The log's length as last reported synced.
    pub fn synced_end(&self) -> u64 {
        self.plan().synced_end
    }

    /// Loses everything not reported synced (the records, their indexes and the marker
    /// go back to the last synced end), as a power loss would. Close the engine first.
    pub fn power_loss(&self) -> Result<()> {
        let end = self.synced_end();
        if self.inner.stored_end()? > end || self.inner.marker()?.is_some_and(|m| m > end) {
            self.inner.truncate(end)?;
        }
        Ok(())
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Log> {
        &self.inner
    }
}

fn injected(what: &str) -> Error {
    Error::Log(LogError::Storage(format!("injected fault: {what}")))
}

impl Log for FaultyLog {
    fn describe(&self) -> String {
        format!("fault-injecting wrapper over {}", self.inner.describe())
    }
    fn marker(&self) -> Result<Option<u64>> {
        self.inner.marker()
    }
    fn stored_end(&self) -> Result<u64> {
        self.inner.stored_end()
    }
    fn truncate(&self, end: u64) -> Result<()> {
        self.inner.truncate(end)?;
        let mut p = self.plan();
        p.synced_end = p.synced_end.min(end);
        Ok(())
    }
    fn write(&self, group: &Group, sync: bool) -> Result<()> {
        let fault = {
            let mut p = self.plan();
            let n = p.writes;
            p.writes += 1;
            let fault = p.faults.iter().position(|(at, _)| *at == n).map(|i| p.faults.swap_remove(i).1);
            if let Some(f) = fault {
                p.injected.push((n, f));
            }
            fault
        };
        match fault {
            None => {
                self.inner.write(group, sync)?;
                if sync {
                    self.plan().synced_end = group.end;
                }
                Ok(())
            }
            Some(Fault::FailWrite) => Err(injected("the write failed")),
            Some(Fault::FailSync) => {
                self.inner.write(group, false)?;
                Err(injected("the write was applied, but syncing it failed"))
            }
            Some(Fault::Tear(n)) => {
                let kept = group.events.len().min(n);
                let start = group.events.first().map(|s| s.position).unwrap_or(group.end);
                let partial = Group {
                    events: group.events[..kept].to_vec(),
                    index: Vec::new(),
                    // The marker stays where the log was: the group never completed.
                    end: start,
                    rewrites: Vec::new(),
                    clear: Vec::new(),
                };
                self.inner.write(&partial, sync)?;
                Err(injected(&format!("torn after {kept} of {} events", group.events.len())))
            }
        }
    }
    fn record(&self, position: u64) -> Result<Option<Vec<u8>>> {
        self.inner.record(position)
    }
    fn own(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.own(key)
    }
    fn set_own(&self, key: &str, value: &[u8]) -> Result<()> {
        self.inner.set_own(key, value)
    }
    fn receipt_at_or_before(&self, position: u64) -> Result<Option<(u64, Vec<u8>)>> {
        self.inner.receipt_at_or_before(position)
    }
    fn receipts(&self, from: u64, f: &mut dyn FnMut(u64, &[u8]) -> Result<bool>) -> Result<()> {
        self.inner.receipts(from, f)
    }
    fn scan(&self, from: u64, end: u64, f: &mut dyn FnMut(u64, &[u8]) -> Result<bool>) -> Result<()> {
        self.inner.scan(from, end, f)
    }
    fn records(&self, positions: &[u64], f: &mut dyn FnMut(u64, &[u8]) -> Result<()>) -> Result<()> {
        self.inner.records(positions, f)
    }
    fn position_of(&self, id: &EventId) -> Result<Option<u64>> {
        self.inner.position_of(id)
    }
    fn ids_from(&self, start: &[u8], f: &mut dyn FnMut(&[u8], Option<u64>) -> bool) -> Result<()> {
        self.inner.ids_from(start, f)
    }
    fn stream_last(&self, stream: &str) -> Result<Option<(u64, u64)>> {
        self.inner.stream_last(stream)
    }
    fn stream_position(&self, stream: &str, version: u64) -> Result<Option<u64>> {
        self.inner.stream_position(stream, version)
    }
    fn stream_positions(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<u64>> {
        self.inner.stream_positions(stream, from_version, limit)
    }
    fn streams(&self) -> Result<Vec<(String, u64)>> {
        self.inner.streams()
    }
    fn stream_entries(&self) -> Result<u64> {
        self.inner.stream_entries()
    }
    fn index_scan(&self, space: Space, from: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        self.inner.index_scan(space, from, f)
    }
    fn index_last_at_or_before(&self, space: Space, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.inner.index_last_at_or_before(space, key)
    }
    fn index_put(&self, entries: &[IndexEntry]) -> Result<()> {
        self.inner.index_put(entries)
    }
    fn index_delete_range(&self, space: Space, from: &[u8], to: &[u8]) -> Result<()> {
        self.inner.index_delete_range(space, from, to)
    }
    fn index_clear(&self, space: Space) -> Result<()> {
        self.inner.index_clear(space)
    }
    fn projected_to(&self, projector: &str) -> Result<Option<u64>> {
        self.inner.projected_to(projector)
    }
    fn set_projected_to(&self, projector: &str, position: Option<u64>) -> Result<()> {
        self.inner.set_projected_to(projector, position)
    }
    fn record_acknowledged(&self, count: u64) -> Result<()> {
        self.inner.record_acknowledged(count)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn scrub(&self, positions: &[u64]) -> Result<()> {
        {
            let mut p = self.plan();
            if p.fail_scrubs > 0 {
                p.fail_scrubs -= 1;
                return Err(Error::Log(LogError::Storage(format!("injected: the scrub of {positions:?} failed"))));
            }
        }
        self.inner.scrub(positions)
    }
    fn close(&self, count: u64) -> Result<()> {
        self.inner.close(count)
    }
    fn pending_scrubs(&self) -> Result<Vec<u64>> {
        self.inner.pending_scrubs()
    }
    fn verify_storage(
        &self,
        report: &mut VerifyReport,
        redacted: &std::collections::HashMap<u64, crate::core::EventId>,
    ) -> Result<()> {
        self.inner.verify_storage(report, redacted)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
