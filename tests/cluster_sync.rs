//! The server's mirror of hosted Managed Agents on a cluster (tools/cluster.sh, every node
//! configured with `sync.anthropic`): one node runs it — the one holding the lease — and
//! when that node dies another takes over once the lease ends; the mirror reads the same
//! on every node. Against the SDK-typed stand-in of the hosted API.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::hosted::{learning, StandIn, KEY};
use serde_json::{json, Value};

fn sync_state(c: &reqwest::blocking::Client, node: &str) -> Option<Value> {
    let r = c.get(format!("{node}/v1/info")).send().ok()?;
    r.json::<Value>().ok().map(|v| v["sync"].clone())
}

fn runs(s: &Option<Value>) -> u64 {
    s.as_ref().and_then(|s| s["runs"].as_u64()).unwrap_or(0)
}

#[test]
fn one_node_runs_the_mirror_and_another_takes_over_when_it_dies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standin = StandIn::start(&learning(), dir.path(), 0);
    let cfg = dir.path().join("server.json");
    std::fs::write(&cfg, json!({"sync": {"anthropic": {"every_secs": 1, "sessions": false}}}).to_string()).unwrap();
    let cluster = Cluster::up_with(&[
        ("DREAMLOG_CLUSTER_CONFIG", cfg.to_str().expect("utf-8")),
        ("ANTHROPIC_BASE_URL", standin.url.as_str()),
        ("ANTHROPIC_API_KEY", KEY),
    ]);
    let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let nodes = cluster.nodes();

    // A few intervals: one node runs every time, the others skip.
    let start = Instant::now();
    let states = loop {
        let states: Vec<Option<Value>> = nodes.iter().map(|n| sync_state(&c, n)).collect();
        let skipped = states.iter().filter(|s| s.as_ref().is_some_and(|s| s["skipped"].as_u64() > Some(1))).count();
        if states.iter().any(|s| runs(s) >= 3) && skipped == 2 {
            break states;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{states:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let running: Vec<usize> = (0..3).filter(|&i| runs(&states[i]) > 0).collect();
    assert_eq!(running.len(), 1, "exactly one node runs the mirror: {states:?}");
    let holder = running[0];
    let s = states[holder].as_ref().unwrap();
    assert_eq!((s["failures"].as_u64(), s["lease"]["node"].is_string()), (Some(0), true), "{s}");
    // The mirror, written through the holder, reads the same on every node.
    let files = |node: &str| -> Value {
        c.get(format!("{node}/v1/memory/memstore_02learn/files")).send().unwrap().json::<Value>().unwrap()["files"]
            .clone()
    };
    let other = (holder + 1) % 3;
    assert!(files(&nodes[other])["/memories/refunds.md"].is_string(), "{}", files(&nodes[other]));
    assert_eq!(files(&nodes[holder]), files(&nodes[other]));

    // The holder dies: once its lease ends (three intervals) another node runs the mirror.
    cluster.member("kill", &format!("node{}", holder + 1));
    let start = Instant::now();
    loop {
        let taken = (0..3).filter(|&i| i != holder).find(|&i| runs(&sync_state(&c, &nodes[i])) > 0);
        if let Some(i) = taken {
            let s = sync_state(&c, &nodes[i]).unwrap();
            assert_eq!(s["failures"], 0, "{s}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no node took the mirror over");
        std::thread::sleep(Duration::from_millis(100));
    }
}
