//! The web view's first paint on a big log: a database of `UI_BENCH_EVENTS` events
//! (default 1,000,000: the demo's dreams, drift and memory, then graded sessions of five
//! events each), `dreamlog serve` over it, and Debian's Chromium (headless, Playwright:
//! tools/ui_paint.py) loading each page cold `UI_BENCH_RUNS` times (default 15). Reports
//! the browser's first contentful paint and the time until the page's data is on screen
//! (the `dreamlog:shown` mark), median and p95, per page. Target: < 500 ms at 1,000,000.
//!
//!     bash tools/bootstrap.sh cargo bench --bench ui

#[path = "shared/session.rs"]
mod sessions;

#[path = "shared/load.rs"]
#[allow(dead_code)]
mod load;

use std::process::Command;
use std::time::Instant;

use dreamlog::store::{AppendBatch, Options, SyncMode};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let target = env_or("UI_BENCH_EVENTS", 1_000_000);
    let runs = env_or("UI_BENCH_RUNS", 15);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");

    // The demo first: real dreams, drift and a memory store with history and tags.
    let out = Command::new(env!("CARGO_BIN_EXE_dreamlog")).arg("--db").arg(&db).arg("demo").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started = Instant::now();
    {
        let store = dreamlog::open(&db, Options { sync: SyncMode::None, ..Options::default() }).unwrap();
        let mut i = 0u64;
        let t0 = 1_700_000_000_000u64;
        while store.len() < target {
            let mut batch = AppendBatch::new();
            for _ in 0..2000 {
                for d in sessions::session(i, t0 + i * 10, "sim") {
                    batch = batch.push(d);
                }
                i += 1;
            }
            store.append(batch).unwrap();
        }
        store.flush().unwrap();
        println!(
            "ui first paint: {} events in the log (built in {:.0} s)",
            store.len(),
            started.elapsed().as_secs_f64()
        );
        store.close().unwrap();
    }
    let (mut server, base) = load::start_server_with(&db, &[]);
    let pages = [
        "#/timeline",
        "#/timeline?kind=dream",
        "#/timeline?actor=human:",
        "#/sessions",
        "#/session/bench/0000001",
        "#/memory/sim",
        "#/blame/sim?path=/memories/lessons/sim/refunds.md",
        "#/dreams",
        "#/drift/sim",
    ];
    let out = Command::new("python3")
        .arg("tools/ui_paint.py")
        .arg(&base)
        .arg(runs.to_string())
        .args(pages)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("python3 with playwright (tools/bootstrap.sh)");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = server.kill();
}
