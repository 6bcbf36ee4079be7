//! `GET /metrics` read by the official Prometheus Python client's parser: the families,
//! their types, and values that match what the server did (appends of a known size, a
//! refused append, a live tail open, the log's length).

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::server::{client, post, Server};
use serde_json::{json, Value};
use tempfile::tempdir;

fn scrape(server: &Server) -> Value {
    let out = Command::new("python3")
        .arg(common::root().join("tools/python/metrics_check.py"))
        .arg(&server.base)
        .output()
        .expect("python3 (tools/bootstrap.sh installs prometheus-client)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// sample name → value, for the samples of `family` (labels ignored but `le`).
fn samples(m: &Value, family: &str) -> HashMap<String, f64> {
    let f = &m["families"][family];
    assert!(!f.is_null(), "no family {family}: {m}");
    f["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let le = s[1]["le"].as_str().map(|le| format!("{{le={le}}}")).unwrap_or_default();
            (format!("{}{le}", s[0].as_str().unwrap()), s[2].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn the_prometheus_client_parses_the_metrics_and_they_count_what_happened() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let c = client();
    for i in 0..7 {
        let events: Vec<Value> = (0..3)
            .map(|k| json!({"kind": "note", "actor": "system:t", "body": {"type": "t", "json": {"i": i, "k": k}}}))
            .collect();
        assert_eq!(post(&c, &server.url("/v1/events"), None, &json!({"stream": "s", "events": events})).0, 200);
    }
    // Refused: the stream exists, so "no-stream" fails (nothing written).
    let refused = json!({"stream": "s", "expect": {"s": "no-stream"},
        "events": [{"kind": "note", "actor": "system:t", "body": {"type": "t", "json": {}}}]});
    assert_eq!(post(&c, &server.url("/v1/events"), None, &refused).0, 409);
    // A live tail, read through all 21 events and kept open.
    let mut tail = std::io::BufReader::new(c.get(server.url("/v1/tail?from=0")).send().unwrap());
    let mut read = 0;
    while read < 21 {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut tail, &mut line).unwrap() > 0, "the tail ended");
        read += usize::from(line.starts_with("data:"));
    }

    let m = scrape(&server);
    assert!(m["content_type"].as_str().unwrap().starts_with("text/plain; version=0.0.4"), "{m}");
    let types: HashMap<&str, &str> =
        m["families"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), v["type"].as_str().unwrap())).collect();
    assert_eq!(types["dreamlog_append_latency_seconds"], "histogram");
    assert_eq!(types["dreamlog_append_batches"], "counter", "the parser names counters without _total");
    assert_eq!(types["dreamlog_events"], "gauge");
    assert_eq!(samples(&m, "dreamlog_events")["dreamlog_events"], 21.0);
    assert_eq!(samples(&m, "dreamlog_append_batches")["dreamlog_append_batches_total"], 7.0);
    assert_eq!(samples(&m, "dreamlog_append_events")["dreamlog_append_events_total"], 21.0);
    assert_eq!(samples(&m, "dreamlog_append_failures")["dreamlog_append_failures_total"], 1.0);
    assert_eq!(samples(&m, "dreamlog_append_waiting")["dreamlog_append_waiting"], 0.0);
    let h = samples(&m, "dreamlog_append_latency_seconds");
    assert_eq!(h["dreamlog_append_latency_seconds_count"], 7.0);
    assert_eq!(h["dreamlog_append_latency_seconds_bucket{le=+Inf}"], 7.0);
    assert!(h["dreamlog_append_latency_seconds_sum"] > 0.0);
    assert!(
        h["dreamlog_append_latency_seconds_bucket{le=0.0005}"] <= h["dreamlog_append_latency_seconds_bucket{le=2.5}"]
    );
    assert_eq!(samples(&m, "dreamlog_poisoned")["dreamlog_poisoned"], 0.0);
    assert!(samples(&m, "dreamlog_disk_bytes")["dreamlog_disk_bytes"] > 0.0);
    assert_eq!(samples(&m, "dreamlog_subscribers")["dreamlog_subscribers"], 1.0);
    assert_eq!(samples(&m, "dreamlog_tail_events_sent")["dreamlog_tail_events_sent_total"], 21.0);
    assert_eq!(samples(&m, "dreamlog_tail_bytes_held")["dreamlog_tail_bytes_held"], 0.0, "all handed out");
    assert_eq!(samples(&m, "dreamlog_tail_bytes_limit")["dreamlog_tail_bytes_limit"], (64u64 << 20) as f64);
    assert_eq!(samples(&m, "dreamlog_tails_dropped")["dreamlog_tails_dropped_total"], 0.0);
    drop(tail);
    assert!(server.stop().success());
}
