//! Subscriptions: catch up from a position, then follow the log live.
//!
//! The writer publishes the number of committed events only after their WriteBatch is
//! written, so everything below that count is readable; a subscription reads positions
//! in order below it and waits when it reaches it. Positions are gapless, so this yields
//! every event exactly once.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Store, StoredEvent};
use crate::error::LogError;
use crate::error::Result;

/// How many events a subscription reads from the log at a time, at most.
const CHUNK: usize = 128;

/// Most bytes a subscription holds read ahead of what it has handed out (its events as
/// stored: headers and bodies): a subscriber that reads slowly, or not at all, holds at
/// most this much and one event, however large the events. A server's tails together hold
/// at most `max_subscribers` times this.
pub const BUFFER_BYTES: u64 = 256 << 10;

/// A live cursor over the global log.
pub struct Subscription {
    store: Store,
    next: u64,
    buffer: VecDeque<StoredEvent>,
    /// Events to read next time (fewer after a chunk went past [`BUFFER_BYTES`]).
    chunk: usize,
    watch: tokio::sync::watch::Receiver<u64>,
}

/// What an event weighs in a subscription's buffer.
fn weight(e: &StoredEvent) -> u64 {
    e.event.header.body_len + e.event.header.stream.len() as u64 + 256
}

impl Subscription {
    pub(crate) fn new(store: Store, from: u64) -> Subscription {
        let watch = store.committed().watch.subscribe();
        Subscription { store, next: from, buffer: VecDeque::new(), chunk: CHUNK, watch }
    }

    /// The position of the next event this subscription yields.
    pub fn position(&self) -> u64 {
        self.buffer.front().map(|e| e.position).unwrap_or(self.next)
    }

    /// The next chunk to read below `committed`: (from, how many), if any.
    fn wanted(&self, committed: u64) -> Option<(u64, usize)> {
        (self.next < committed).then(|| (self.next, ((committed - self.next) as usize).min(self.chunk)))
    }

    /// Takes a chunk read, as much of it as fits the byte budget (at least one event; the
    /// rest is read again when wanted); whether it held anything.
    fn take(&mut self, mut events: Vec<StoredEvent>) -> bool {
        let mut bytes: u64 = self.buffer.iter().map(weight).sum();
        let fits = events
            .iter()
            .position(|e| {
                bytes += weight(e);
                bytes > BUFFER_BYTES
            })
            .unwrap_or(events.len());
        let keep = if self.buffer.is_empty() { fits.max(1) } else { fits };
        if keep < events.len() {
            events.truncate(keep);
            self.chunk = keep.max(1);
        } else {
            self.chunk = (self.chunk * 2).min(CHUNK);
        }
        if let Some(last) = events.last() {
            self.next = last.position + 1;
        }
        let got = !events.is_empty();
        self.buffer.extend(events);
        got
    }

    fn fill(&mut self, committed: u64) -> Result<bool> {
        match self.wanted(committed) {
            Some((from, want)) => {
                let events = self.store.read_range(from, want)?;
                Ok(self.take(events))
            }
            None => Ok(false),
        }
    }

    /// The next event, waiting for it if the subscription has caught up. The log is
    /// read on tokio's blocking pool, never on the async executor.
    pub async fn next(&mut self) -> Result<StoredEvent> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return Ok(e);
            }
            let committed = *self.watch.borrow_and_update();
            if let Some((from, want)) = self.wanted(committed) {
                let store = self.store.clone();
                let events = tokio::task::spawn_blocking(move || store.read_range(from, want))
                    .await
                    .map_err(|_| crate::error::Error::Log(LogError::Closed))??;
                if self.take(events) {
                    continue;
                }
            }
            if self.watch.changed().await.is_err() {
                return Err(crate::error::Error::Log(LogError::Closed));
            }
        }
    }

    /// The next event, waiting up to `timeout` for it; `None` on timeout.
    pub fn next_blocking(&mut self, timeout: Duration) -> Result<Option<StoredEvent>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return Ok(Some(e));
            }
            let committed = self.store.len();
            if self.fill(committed)? {
                continue;
            }
            let c = self.store.committed().clone();
            let guard = c.count.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if *guard <= self.next {
                let _ = c.changed.wait_timeout(guard, deadline - now);
            }
        }
    }
}
