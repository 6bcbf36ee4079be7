//! The cluster benchmark (issue: JetStream). Run: `bash tools/bootstrap.sh cargo bench
//! --bench cluster` (bootstrap puts nats-server on PATH).
//!
//! In one run, on this machine, the same HTTP load (CLUSTER_BENCH_CONNECTIONS
//! connections, default 6, batches of CLUSTER_BENCH_BATCH events, default 100, for
//! CLUSTER_BENCH_SECONDS, default 10; closed loop, or paced at CLUSTER_BENCH_RATE events/s
//! in total) against:
//! 1. the embedded store (`dreamlog serve`, sync fsync);
//! 2. a cluster with JetStream R1 (tools/cluster.sh, 3 NATS servers, 3 nodes, the
//!    connections spread over the nodes, or over the first CLUSTER_BENCH_VIA of them);
//! 3. a cluster with JetStream R3 (every batch on a quorum, synced: sync_interval always);
//!
//! then a fresh node joins the R3 cluster and rebuilds from the log of record: its
//! catch-up speed in events/s. Every acknowledged event is checked to be on every node
//! at its acknowledged position. All processes share this machine's cores.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "shared/load.rs"]
mod load;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn cluster_sh(dir: &Path, replicas: u64, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/cluster.sh"))
        .args(args)
        .env("DREAMLOG_CLUSTER_DIR", dir)
        .env("DREAMLOG_CLUSTER_REPLICAS", replicas.to_string())
        .env("DREAMLOG_BIN", env!("CARGO_BIN_EXE_dreamlog"))
        .output()
        .expect("tools/cluster.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cluster.sh {args:?}: {text}");
    text
}

fn cluster_env(dir: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(dir.join("cluster.env"))
        .expect("cluster.env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn events_on(node: &str) -> u64 {
    reqwest::blocking::get(format!("{node}/v1/info"))
        .ok()
        .and_then(|r| r.json::<serde_json::Value>().ok())
        .and_then(|v| v["events"].as_u64())
        .unwrap_or(0)
}

/// Every acknowledged event is on every node, at its position.
fn check(nodes: &[String], acked: &[(u64, dreamlog::EventId)]) {
    let client = reqwest::blocking::Client::new();
    for node in nodes {
        let end = acked.iter().map(|(p, _)| p + 1).max().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        while events_on(node) < end {
            assert!(Instant::now() < deadline, "{node} did not reach {end} events");
            std::thread::sleep(Duration::from_millis(50));
        }
        let ids: Vec<String> = acked.iter().map(|(_, id)| id.to_hex()).collect();
        for chunk in ids.chunks(1000).zip(acked.chunks(1000)) {
            let v: serde_json::Value = client
                .post(format!("{node}/v1/lookup"))
                .json(&serde_json::json!({ "ids": chunk.0 }))
                .send()
                .expect("lookup")
                .json()
                .expect("json");
            let found = v["positions"].as_array().expect("positions");
            for ((p, id), f) in chunk.1.iter().zip(found) {
                assert_eq!(f.as_u64(), Some(*p), "{node}: event {id} at its acknowledged position");
            }
        }
    }
}

fn main() {
    let connections = env_or("CLUSTER_BENCH_CONNECTIONS", 6) as usize;
    let seconds = env_or("CLUSTER_BENCH_SECONDS", 10).min(120);
    let batch = env_or("CLUSTER_BENCH_BATCH", 100) as usize;
    let rate = env_or("CLUSTER_BENCH_RATE", 0);
    // Through how many of the three nodes the connections write (all three by default).
    let via = env_or("CLUSTER_BENCH_VIA", 3).max(1) as usize;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "{connections} connections × batches of {batch} for {seconds} s, {}; {cores} cores shared by every process",
        if rate > 0 { format!("paced at {rate} events/s") } else { "closed loop".to_owned() }
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut rows: Vec<(String, load::LoadResult)> = Vec::new();

    // 1. Embedded.
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut server, base) = load::start_server(&dir.path().join("db"));
        let r = load::drive(&rt, std::slice::from_ref(&base), connections, batch, seconds, rate);
        check(&[base], &r.acked);
        println!("embedded (fsync):      {}", r.summary());
        rows.push(("embedded, fsync".into(), r));
        let _ = server.kill();
        let _ = server.wait();
    }

    // 2 and 3. Clusters.
    let mut catch_up = None;
    for replicas in [1, 3] {
        let dir = tempfile::Builder::new().prefix("dreamlog-cluster-bench").tempdir().expect("tempdir");
        cluster_sh(dir.path(), replicas, &["up"]);
        let env = cluster_env(dir.path());
        let nodes: Vec<String> = (1..=3).map(|n| env[&format!("NODE{n}")].clone()).collect();
        let through = &nodes[..via.min(3)];
        let r = load::drive(&rt, through, connections, batch, seconds, rate);
        check(&nodes, &r.acked);
        println!("JetStream R{replicas} (writes through {} of 3 nodes): {}", through.len(), r.summary());
        if replicas == 3 {
            let total = events_on(&nodes[0]);
            let started = Instant::now();
            cluster_sh(dir.path(), replicas, &["add", "node4"]);
            let node4 = cluster_env(dir.path())["NODE4"].clone();
            while events_on(&node4) < total {
                assert!(started.elapsed() < Duration::from_secs(300), "node4 did not catch up");
                std::thread::sleep(Duration::from_millis(20));
            }
            let t = started.elapsed();
            println!(
                "a fresh node rebuilt {total} events from the log of record in {:.2} s (process start included): {:.0} events/s",
                t.as_secs_f64(),
                total as f64 / t.as_secs_f64()
            );
            catch_up = Some((total, t));
        }
        cluster_sh(dir.path(), replicas, &["down"]);
        rows.push((format!("JetStream R{replicas}, writes through {} of 3 nodes", via.min(3)), r));
    }

    println!();
    println!("| setup | events/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (name, r) in &rows {
        println!("| {name} | {:.0} | {:.1} | {:.1} |", r.rate(), r.pct(0.5), r.pct(0.99));
    }
    if let Some((total, t)) = catch_up {
        println!("| catch-up of a fresh node (R3) | {:.0} | | | ({total} events)", total as f64 / t.as_secs_f64());
    }
}
