//! Load test of `dreamlog serve` (issue: server). Run: `cargo bench --bench loadtest`.
//!
//! Starts the real server binary on 127.0.0.1 (loopback only) with `--sync fsync`, then:
//! 1. N concurrent clients (default 64 connections) append batches of B events (default
//!    100) for T seconds (default 10); prints events/s and p50/p99/p999 request latency;
//! 2. opens S idle SSE subscribers (default 1,000) and reports the server's RSS growth;
//! 3. stops the server with SIGTERM, reopens the database and checks that every
//!    acknowledged event is present exactly once, at the position it was acknowledged
//!    with, and that `verify` is clean.
//!
//! Environment: LOADTEST_CONNECTIONS, LOADTEST_SECONDS (at most 120), LOADTEST_BATCH,
//! LOADTEST_SUBSCRIBERS, LOADTEST_RATE (events/s offered in total, paced open-loop:
//! latency counts from each request's scheduled start, so a stalled server cannot hide
//! its queueing; 0 = closed loop, every connection as fast as it can, the default).
//!
//! With a closed loop, latency is concurrency × batch ÷ throughput by Little's law
//! (64 × 100 events in flight); the p99 target is measured at a paced 50,000 events/s.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use dreamlog::{Options, SyncMode};

#[path = "shared/load.rs"]
mod load;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let connections = env_or("LOADTEST_CONNECTIONS", 64) as usize;
    let seconds = env_or("LOADTEST_SECONDS", 10).min(120);
    let batch = env_or("LOADTEST_BATCH", 100) as usize;
    let subscribers = env_or("LOADTEST_SUBSCRIBERS", 1000) as usize;
    let rate = env_or("LOADTEST_RATE", 0);

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let (mut server, base) = load::start_server(&db);
    let pid = server.id();
    println!(
        "server pid {pid} on {base}, sync fsync; {connections} connections × batches of {batch} for {seconds} s, {} (2 cores shared by server and clients)",
        if rate > 0 { format!("paced at {rate} events/s") } else { "closed loop".to_owned() }
    );

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let load = load::drive(&rt, std::slice::from_ref(&base), connections, batch, seconds, rate);
    println!("appended {}", load.summary());
    let acked = load.acked;

    // Idle SSE subscribers: open them, wait until each got its first event, measure RSS.
    let before = rss_kib(pid);
    let held = rt.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
        let mut held = Vec::new();
        let from = acked.len().saturating_sub(1);
        for _ in 0..subscribers {
            let mut resp = client.get(format!("{base}/v1/tail?from={from}")).send().await.expect("tail");
            // The first chunk holds the one event at `from`: the subscription is live.
            let _ = resp.chunk().await.expect("first event");
            held.push(resp);
        }
        held
    });
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    println!(
        "{} idle SSE subscribers: server RSS {:.1} MiB → {:.1} MiB (+{:.1} MiB, {:.1} KiB each)",
        held.len(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
        after.saturating_sub(before) as f64 / held.len().max(1) as f64
    );

    // Stop with SIGTERM (the tails are open), then check every acknowledged event.
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    let status = server.wait().expect("wait");
    drop(held);
    assert!(status.success(), "server exit {status:?}");
    let store = dreamlog::open(&db, Options { sync: SyncMode::None, ..Options::default() }).expect("reopen");
    let mut positions: Vec<u64> = acked.iter().map(|(p, _)| *p).collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), acked.len(), "a position was acknowledged twice");
    assert_eq!(store.len(), acked.len() as u64, "the log holds exactly the acknowledged events");
    let sample = Arc::new(acked);
    for (p, id) in sample.iter() {
        assert_eq!(store.position_of(id).expect("read"), Some(*p), "acknowledged event {id} missing or moved");
    }
    let report = store.verify(|_| ()).expect("verify");
    assert!(report.is_clean(), "verify found problems");
    println!("after SIGTERM: all {} acknowledged events present exactly once; verify clean", sample.len());
}
