//! The lesson ledger on a big log: `drift`, `lessons` and the sessions that ran with a
//! store, read from a log of `DREAMLOG_BENCH_SESSIONS` graded sessions (default 200,000,
//! five events each: start, two tool calls, grade, end; 90 % with store `sim`, 10 % with
//! store `other`, over 40 tasks) with a memory change of `sim` every 20,000 sessions (so
//! ten states), written with sync none. Each figure is over `DREAMLOG_BENCH_RUNS` reads
//! (default 7), the database open and warm; `ledger index read` is the floor under
//! them (the ledger index's entries read and decoded, nothing kept).
//!
//!     bash tools/bootstrap.sh cargo bench --bench ledger
//!
//! Lines are `NAME: n=… p50=X ms …`, which `tools/bench_compare.py` reads.

use std::time::{Duration, Instant};

use dreamlog::ledger::{drift, lessons, sessions_with, DriftCache, DriftOptions};
use dreamlog::memory::{stream_name, MemoryStores};
use dreamlog::{Actor, AppendBatch, Body, Draft, MemoryCommand, Options, SyncMode};

#[path = "shared/session.rs"]
mod sessions;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn change(store: &str, n: u64) -> Draft {
    let command = MemoryCommand::Create {
        path: format!("/memories/lessons/change{n}.md"),
        file_text: format!("# change {n}\n- lesson {n}: check the order before refunding\n"),
    };
    let body = Body::Memory(dreamlog::Memory { store: store.into(), command, precondition: None, session: None });
    Draft::new(stream_name(store), Actor::Human("ops".into()), body)
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    println!("{name}: n={} p50={:.3} ms p90={:.3} ms max={:.3} ms", samples.len(), at(0.5), at(0.9), at(1.0));
}

fn time<T>(runs: u64, mut f: impl FnMut() -> T) -> (Vec<Duration>, T) {
    let mut samples = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f());
        samples.push(t.elapsed());
    }
    (samples, last.expect("at least one run"))
}

fn main() {
    let sessions = env_or("DREAMLOG_BENCH_SESSIONS", 200_000);
    let runs = env_or("DREAMLOG_BENCH_RUNS", 7).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        dreamlog::open(dir.path().join("db"), Options { sync: SyncMode::None, ..Options::default() }).expect("open");
    let started = Instant::now();
    let t0 = 1_700_000_000_000u64;
    store.append(AppendBatch::new().push(change("sim", 0)).push(change("other", 0))).expect("create stores");
    let mut batch = AppendBatch::new();
    for i in 0..sessions {
        if i > 0 && i % 20_000 == 0 {
            store.append(std::mem::take(&mut batch)).expect("append");
            store.append(AppendBatch::new().push(change("sim", i / 20_000))).expect("change");
        }
        for d in sessions::session(i, t0 + i * 10, if i % 10 == 9 { "other" } else { "sim" }) {
            batch = batch.push(d);
        }
        if batch.events.len() >= 10_000 {
            store.append(std::mem::take(&mut batch)).expect("append");
        }
    }
    if !batch.events.is_empty() {
        store.append(batch).expect("append");
    }
    store.flush().expect("flush");
    println!("ledger: {sessions} sessions, {} events, built in {:.0} s", store.len(), started.elapsed().as_secs_f64());
    let mem = MemoryStores::new(store.clone());
    // The floor under every ledger read: the index's entries read and decoded, nothing kept.
    let (samples, entries) = time(runs, || {
        let mut n = 0u64;
        for tag in [dreamlog::core::projection::LEDGER_RUNS, dreamlog::core::projection::LEDGER_GRADES] {
            store
                .ledger(tag, 0, u64::MAX, |_, _| {
                    n += 1;
                    true
                })
                .expect("ledger");
        }
        n
    });
    report(&format!("ledger index read ({entries} entries)"), samples);
    let (samples, runs_of) = time(runs, || sessions_with(&store, "sim", store.len()).expect("sessions_with").len());
    report(&format!("ledger sessions_with ({runs_of} sessions of sim)"), samples);
    let (samples, d) = time(runs, || drift(&mem, "sim", DriftOptions::default()).expect("drift"));
    assert_eq!(d.states.len(), 10, "one state per change");
    report(&format!("ledger drift ({} sessions, {} states)", d.sessions, d.states.len()), samples);
    // A server keeps drift's fold between requests: the first request folds the ledger,
    // each later one only what the log gained (here: nothing, then 100 new sessions).
    let kept = DriftCache::default();
    let t = Instant::now();
    kept.drift(&mem, "sim", DriftOptions::default()).expect("drift");
    report("ledger drift kept, first request", vec![t.elapsed()]);
    let (samples, _) = time(runs, || kept.drift(&mem, "sim", DriftOptions::default()).expect("drift"));
    report("ledger drift kept, nothing new", samples);
    let (mut samples, mut graded) = (Vec::new(), 0);
    for round in 0..runs {
        let mut batch = AppendBatch::new();
        for i in sessions + round * 100..sessions + (round + 1) * 100 {
            for d in sessions::session(i, t0 + i * 10, "sim") {
                batch = batch.push(d);
            }
        }
        store.append(batch).expect("append");
        let t = Instant::now();
        graded = kept.drift(&mem, "sim", DriftOptions::default()).expect("drift").sessions;
        samples.push(t.elapsed());
    }
    report(&format!("ledger drift kept, 100 new sessions each ({graded} sessions)"), samples);
    let (samples, l) = time(runs, || lessons(&mem, "sim", store.len()).expect("lessons").len());
    report(&format!("ledger lessons ({l} lines)"), samples);
    store.close().expect("close");
}
