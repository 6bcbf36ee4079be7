//! Memory store benchmarks (issue: memory stores). Run: `cargo bench --bench memory`.
//!
//! - as-of view of one file at random points of a log of 1,000,000 memory events over
//!   1,000 files, with snapshots (every 1,000 events of the store) and without;
//! - full fold of the 1,000,000 memory events;
//! - blame of a file with 1,000 revisions.
//!
//! Set DREAMLOG_BENCH_EVENTS to use a smaller log (default 1,000,000).

use std::time::{Duration, Instant};

use dreamlog::memory::{stream_name, MemoryStores};
use dreamlog::{Actor, AppendBatch, Body, Draft, MemoryCommand, Options, Store, SyncMode};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FILES: u64 = 1000;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn memory_draft(store: &str, command: MemoryCommand) -> Draft {
    let body = Body::Memory(dreamlog::Memory { store: store.into(), command, precondition: None, session: None });
    Draft::new(stream_name(store), Actor::Agent("bench".into()), body)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.9).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    );
}

fn build_log(store: &Store, events: u64) {
    let started = Instant::now();
    let mut revs = vec![0u64; FILES as usize];
    let mut batch = AppendBatch::new();
    for i in 0..events {
        let f = i % FILES;
        let path = format!("/memories/area{}/file{f}.md", f % 10);
        let cmd = if i < FILES {
            let mut text = format!("# file {f}\nrev 0\n");
            for l in 0..8 {
                text.push_str(&format!("- lesson {l} of file {f}: keep the customer informed\n"));
            }
            MemoryCommand::Create { path, file_text: text }
        } else {
            let r = revs[f as usize];
            revs[f as usize] += 1;
            MemoryCommand::StrReplace { path, old_str: format!("rev {r}\n"), new_str: format!("rev {}\n", r + 1) }
        };
        batch.events.push(memory_draft("bench", cmd));
        if batch.events.len() == 10_000 {
            store.append(std::mem::take(&mut batch)).expect("append");
        }
    }
    if !batch.events.is_empty() {
        store.append(batch).expect("append");
    }
    println!("built {events} memory events in {:.1} s", started.elapsed().as_secs_f64());
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run us too: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let events: u64 = std::env::var("DREAMLOG_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dreamlog::open(dir.path(), Options { sync: SyncMode::None, ..Options::default() }).expect("open");
    build_log(&store, events);

    // Full fold, no snapshots.
    let plain = MemoryStores::new(store.clone()).with_snapshot_every(0);
    let t = Instant::now();
    let (state, _) = plain.state("bench").expect("fold");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "full fold: {events} events in {secs:.2} s = {:.0} events/s ({} files)",
        events as f64 / secs,
        state.files().len()
    );

    // Snapshots are written by the first fold that passes each multiple of 1,000.
    let snap = MemoryStores::new(store.clone());
    let t = Instant::now();
    snap.state("bench").expect("fold with snapshot writes");
    println!("first fold writing snapshots: {:.2} s", t.elapsed().as_secs_f64());

    let mut seed = 0x9e3779b97f4a7c15u64;
    let len = store.len();
    let mut with = Vec::new();
    for _ in 0..300 {
        let until = 1 + xorshift(&mut seed) % len;
        let f = xorshift(&mut seed) % FILES;
        let path = format!("/memories/area{}/file{f}.md", f % 10);
        let t = Instant::now();
        let (s, _) = snap.state_until("bench", until).expect("state");
        let _ = s.view(&path, None);
        with.push(t.elapsed());
    }
    report("as-of view, one file, random point, with snapshots", with);
    let mut without = Vec::new();
    for _ in 0..15 {
        let until = 1 + xorshift(&mut seed) % len;
        let t = Instant::now();
        let (s, _) = plain.state_until("bench", until).expect("state");
        let _ = s.view("/memories/area0/file0.md", None);
        without.push(t.elapsed());
    }
    report("as-of view, one file, random point, without snapshots", without);

    // Blame of a file with 1,000 revisions: inserts and replacements at varying lines.
    let mem = MemoryStores::new(store.clone());
    let mut text_lines: Vec<String> = (0..20).map(|i| format!("line {i} original")).collect();
    let doc = "/memories/doc.md";
    let mut batch = AppendBatch::new();
    batch.events.push(memory_draft(
        "blame",
        MemoryCommand::Create { path: doc.into(), file_text: text_lines.join("\n") + "\n" },
    ));
    for rev in 1..1000u64 {
        let at = (xorshift(&mut seed) % text_lines.len() as u64) as usize;
        if rev % 3 == 0 {
            let new = format!("line {at} revised in {rev}");
            let old = std::mem::replace(&mut text_lines[at], new.clone());
            // Whole lines are unique (they carry their revision), so the match is unique.
            batch.events.push(memory_draft(
                "blame",
                MemoryCommand::StrReplace {
                    path: doc.into(),
                    old_str: format!("{old}\n"),
                    new_str: format!("{new}\n"),
                },
            ));
        } else {
            let new = format!("inserted in {rev}");
            text_lines.insert(at, new.clone());
            batch.events.push(memory_draft(
                "blame",
                MemoryCommand::Insert { path: doc.into(), insert_line: at as u64, insert_text: new },
            ));
        }
    }
    store.append(batch).expect("append blame history");
    let end = store.len();
    let lines = mem.blame("blame", doc, end).expect("blame").len();
    assert_eq!(lines, text_lines.len(), "blame covers every line");
    let mut samples = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        mem.blame("blame", doc, end).expect("blame");
        samples.push(t.elapsed());
    }
    report(&format!("blame, 1,000 revisions, {lines} lines"), samples);
    store.close().expect("close");
}
