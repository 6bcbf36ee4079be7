//! Append counters for `GET /metrics`: batches, events, failures, appends waiting for the
//! writer, and a latency histogram. Atomics only: nothing on the append path waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Upper bounds, in seconds, of the append latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The counters of one store.
#[derive(Debug, Default)]
pub struct AppendMetrics {
    batches: AtomicU64,
    events: AtomicU64,
    failed: AtomicU64,
    waiting: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    sum_us: AtomicU64,
}

/// The counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct AppendStats {
    /// Batches acknowledged.
    pub batches: u64,
    /// Events they held.
    pub events: u64,
    /// Appends refused or failed (expectations, limits, storage).
    pub failed: u64,
    /// Appends submitted and not answered yet (the writer's queue, in effect).
    pub waiting: u64,
    /// Cumulative histogram: (upper bound in seconds, appends at most that slow).
    pub latency_buckets: Vec<(f64, u64)>,
    /// Total time of every append, seconds.
    pub latency_sum_seconds: f64,
}

/// One append in flight; [`AppendMetrics::finish`] records it.
pub struct Started(Instant);

impl AppendMetrics {
    /// An append was submitted.
    pub fn start(&self) -> Started {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Started(Instant::now())
    }

    /// It was answered: with the number of events acknowledged, or `None` when it failed.
    pub fn finish(&self, started: Started, events: Option<usize>) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let elapsed = started.0.elapsed();
        match events {
            Some(n) => {
                self.batches.fetch_add(1, Ordering::Relaxed);
                self.events.fetch_add(n as u64, Ordering::Relaxed);
                let secs = elapsed.as_secs_f64();
                if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
                    self.buckets[i].fetch_add(1, Ordering::Relaxed);
                }
                self.sum_us.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
            }
            None => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> AppendStats {
        let mut cumulative = 0;
        let latency_buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(b, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (*b, cumulative)
            })
            .collect();
        AppendStats {
            batches: self.batches.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            latency_buckets,
            latency_sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}
