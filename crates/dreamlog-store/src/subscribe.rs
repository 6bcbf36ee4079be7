//! Subscriptions: catch up from a position, then follow the log live.
//!
//! The writer publishes the number of committed events only after their WriteBatch is
//! written, so everything below that count is readable; a subscription reads positions
//! in order below it and waits when it reaches it. Positions are gapless, so this yields
//! every event exactly once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{Store, StoredEvent};
use crate::error::LogError;
use crate::error::{Error, Result};

/// How many events a subscription reads from the log at a time, at most.
const CHUNK: usize = 128;

/// Most bytes a subscription holds read ahead of what it has handed out (its events as
/// stored: headers and bodies): a subscriber that reads slowly, or not at all, holds at
/// most this much and one event, however large the events. A server's tails together hold
/// at most `max_subscribers` times this.
pub const BUFFER_BYTES: u64 = 256 << 10;

/// Bytes that subscriptions sharing it (a server's tails, all tenants) may hold read
/// ahead together. When a subscription would go past it, the tails that have held events
/// longest without handing one out (their clients read slowly, or not at all) are dropped
/// — their buffers freed at once, their next read an error naming the position to resume
/// from — until it fits; a subscription that still does not fit reads one event at a time.
pub struct TailBudget {
    limit: u64,
    held: AtomicU64,
    tails: Mutex<Vec<Weak<Held>>>,
    /// Events the subscriptions sharing it handed out, all together.
    sent: AtomicU64,
    /// Subscriptions it dropped.
    dropped: AtomicU64,
}

/// A subscription's read-ahead, shared with its budget (which may drop it).
#[derive(Default)]
struct Held {
    buffer: Mutex<VecDeque<StoredEvent>>,
    bytes: AtomicU64,
    /// Milliseconds (on the budget's clock) when it last handed out an event, or first
    /// held one since.
    since: AtomicU64,
    /// Set when the budget dropped it: the first position it had not handed out.
    dropped: Mutex<Option<u64>>,
}

/// Milliseconds since the process's first call (a monotonic clock for idleness).
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
}

/// How long a tail must have held events without handing one out before the budget may
/// drop it for another.
const IDLE_BEFORE_DROP_MS: u64 = 1000;

impl TailBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<TailBudget> {
        Arc::new(TailBudget {
            limit,
            held: AtomicU64::new(0),
            tails: Mutex::new(Vec::new()),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Events handed out so far, all subscriptions together.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Subscriptions dropped so far to stay within the limit.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Bytes held read ahead now, all subscriptions together.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn register(&self, held: &Arc<Held>) {
        let mut tails = self.tails.lock().unwrap_or_else(|e| e.into_inner());
        tails.retain(|t| t.strong_count() > 0);
        tails.push(Arc::downgrade(held));
    }

    /// Makes room for `want` more bytes for `me`: drops idle tails, oldest first, until
    /// it fits; whether it fits.
    fn make_room(&self, me: &Arc<Held>, want: u64) -> bool {
        if self.held() + want <= self.limit {
            return true;
        }
        let now = now_ms();
        // Each tail's idle time read once (they change while we sort), oldest first.
        let mut idle: Vec<(u64, Arc<Held>)> = {
            let tails = self.tails.lock().unwrap_or_else(|e| e.into_inner());
            tails
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|t| !Arc::ptr_eq(t, me) && t.bytes.load(Ordering::SeqCst) > 0)
                .map(|t| (t.since.load(Ordering::SeqCst), t))
                .filter(|(since, _)| now.saturating_sub(*since) >= IDLE_BEFORE_DROP_MS)
                .collect()
        };
        idle.sort_by_key(|(since, _)| *since);
        for (_, t) in idle {
            if self.held() + want <= self.limit {
                break;
            }
            let mut buffer = t.buffer.lock().unwrap_or_else(|e| e.into_inner());
            // Its client may have taken an event since: then it is not idle.
            if now_ms().saturating_sub(t.since.load(Ordering::SeqCst)) < IDLE_BEFORE_DROP_MS {
                continue;
            }
            let mut dropped = t.dropped.lock().unwrap_or_else(|e| e.into_inner());
            if dropped.is_none() {
                if let Some(first) = buffer.front() {
                    *dropped = Some(first.position);
                    buffer.clear();
                    let freed = t.bytes.swap(0, Ordering::SeqCst);
                    self.held.fetch_sub(freed, Ordering::SeqCst);
                    self.dropped.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        self.held() + want <= self.limit
    }
}

/// A live cursor over the global log.
pub struct Subscription {
    store: Store,
    next: u64,
    held: Arc<Held>,
    budget: Option<Arc<TailBudget>>,
    /// Events to read next time (fewer after a chunk went past [`BUFFER_BYTES`]).
    chunk: usize,
    watch: tokio::sync::watch::Receiver<u64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.held.fetch_sub(self.held.bytes.swap(0, Ordering::SeqCst), Ordering::SeqCst);
        }
    }
}

/// What an event weighs in a subscription's buffer.
fn weight(e: &StoredEvent) -> u64 {
    e.event.header.body_len + e.event.header.stream.len() as u64 + 256
}

impl Subscription {
    pub(crate) fn new(store: Store, from: u64, budget: Option<Arc<TailBudget>>) -> Subscription {
        let watch = store.committed().watch.subscribe();
        let held = Arc::new(Held::default());
        if let Some(b) = &budget {
            b.register(&held);
        }
        Subscription { store, next: from, held, budget, chunk: CHUNK, watch }
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, VecDeque<StoredEvent>> {
        self.held.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The position of the next event this subscription yields.
    pub fn position(&self) -> u64 {
        self.buffer().front().map(|e| e.position).unwrap_or(self.next)
    }

    /// The next chunk to read below `committed`: (from, how many), if any.
    fn wanted(&self, committed: u64) -> Option<(u64, usize)> {
        (self.next < committed).then(|| (self.next, ((committed - self.next) as usize).min(self.chunk)))
    }

    /// Takes a chunk read, as much of it as fits the byte budgets (its own, and the
    /// shared one's room; at least one event when it holds none; the rest is read again
    /// when wanted); whether it held anything.
    fn take(&mut self, mut events: Vec<StoredEvent>) -> bool {
        let mut buffer = self.held.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let mut bytes: u64 = self.held.bytes.load(Ordering::SeqCst);
        let fits = events
            .iter()
            .position(|e| {
                bytes += weight(e);
                bytes > BUFFER_BYTES
            })
            .unwrap_or(events.len());
        let mut keep = if buffer.is_empty() { fits.max(1) } else { fits };
        if let Some(budget) = &self.budget {
            let want: u64 = events.iter().take(keep).map(weight).sum();
            drop(buffer);
            if !budget.make_room(&self.held, want) {
                // No room: one event at a time, and only when it holds none.
                keep = usize::from(self.held.bytes.load(Ordering::SeqCst) == 0).min(events.len());
            }
            buffer = self.held.buffer.lock().unwrap_or_else(|e| e.into_inner());
        }
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
        let added: u64 = events.iter().map(weight).sum();
        if buffer.is_empty() && got {
            self.held.since.store(now_ms(), Ordering::SeqCst);
        }
        self.held.bytes.fetch_add(added, Ordering::SeqCst);
        if let Some(b) = &self.budget {
            b.held.fetch_add(added, Ordering::SeqCst);
        }
        buffer.extend(events);
        got
    }

    /// The next buffered event; an error once the budget dropped this subscription.
    fn pop(&mut self) -> Result<Option<StoredEvent>> {
        // The byte counts change only under the buffer's lock (as a drop's do): an event
        // taken while the budget drops this tail is counted once.
        let mut buffer = self.held.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(position) = *self.held.dropped.lock().unwrap_or_else(|e| e.into_inner()) {
            return Err(Error::TailDropped { position, limit: self.budget.as_ref().map_or(0, |b| b.limit()) });
        }
        let e = buffer.pop_front();
        if let Some(e) = &e {
            let w = weight(e);
            self.held.bytes.fetch_sub(w, Ordering::SeqCst);
            if let Some(b) = &self.budget {
                b.held.fetch_sub(w, Ordering::SeqCst);
                b.sent.fetch_add(1, Ordering::SeqCst);
            }
            self.held.since.store(now_ms(), Ordering::SeqCst);
        }
        Ok(e)
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
            if let Some(e) = self.pop()? {
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
            if let Some(e) = self.pop()? {
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
