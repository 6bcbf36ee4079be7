//! Import throughput on the real runs in tests/data (issue: importers).
//! Run: `cargo bench --bench import`. Each round imports every file into a fresh store
//! (sync none: import speed, not disk-sync speed) and reports MB/s of source JSON.

use std::time::Instant;

use dreamlog::import;
use dreamlog::{Options, SyncMode};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files = Vec::new();
    for dir in ["tau-bench", "tau2-bench", "swe-agent"] {
        for e in std::fs::read_dir(root.join(dir)).expect("tests/data") {
            let p = e.expect("entry").path();
            if matches!(p.extension().and_then(|x| x.to_str()), Some("json" | "traj")) {
                files.push((p.display().to_string(), std::fs::read(&p).expect("read")));
            }
        }
    }
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    let paths: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let mut parse_only = Vec::new();
    let mut full = Vec::new();
    let mut pipelined = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for (name, b) in &files {
            let f = import::detect(b).expect("format");
            std::hint::black_box(import::parse(f, name, b).expect("parse"));
        }
        parse_only.push(t.elapsed().as_secs_f64());
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dreamlog::open(dir.path(), Options { sync: SyncMode::None, ..Options::default() }).expect("open");
        let t = Instant::now();
        for (name, b) in &files {
            let f = import::detect(b).expect("format");
            dreamlog::service::import_sessions(
                &dreamlog::service::Local::over(&store),
                import::parse(f, name, b).expect("parse"),
                None,
                |_| {},
            )
            .expect("write");
        }
        full.push(t.elapsed().as_secs_f64());
        store.close().expect("close");
        // As `dreamlog import` runs: files read and parsed on a second thread, one
        // ahead of the appends.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dreamlog::open(dir.path(), Options { sync: SyncMode::None, ..Options::default() }).expect("open");
        let t = Instant::now();
        for (_, parsed) in import::parse_in_background(paths.clone(), None) {
            if let import::Parsed::Sessions(_, sessions) = parsed.expect("parse") {
                dreamlog::service::import_sessions(&dreamlog::service::Local::over(&store), sessions, None, |_| {})
                    .expect("write");
            }
        }
        pipelined.push(t.elapsed().as_secs_f64());
        store.close().expect("close");
    }
    pipelined.sort_by(f64::total_cmp);
    parse_only.sort_by(f64::total_cmp);
    full.sort_by(f64::total_cmp);
    let mb = bytes as f64 / 1e6;
    println!("source: {} files, {mb:.1} MB", files.len());
    println!("parse to events: median {:.1} MB/s", mb / parse_only[3]);
    println!("parse + append (sync none), one thread: median {:.1} MB/s", mb / full[3]);
    println!("parse + append (sync none), pipelined as `dreamlog import` runs: median {:.1} MB/s", mb / pipelined[3]);
}
