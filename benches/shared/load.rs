//! The HTTP append load both load benchmarks drive (`loadtest`, `cluster`): connections
//! spread over one or more servers, each appending batches of `batch` notes to its own
//! stream, closed loop or paced open loop (latency from each request's scheduled start,
//! so a stalled server cannot hide its queueing).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dreamlog::EventId;
use serde_json::{json, Value};

/// What a load run got acknowledged, and how long each request took.
pub struct LoadResult {
    /// (position, id) of every acknowledged event.
    pub acked: Vec<(u64, EventId)>,
    /// Request latencies, sorted.
    pub latencies: Vec<Duration>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl LoadResult {
    /// Acknowledged events per second.
    pub fn rate(&self) -> f64 {
        self.acked.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency percentile, milliseconds.
    pub fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        self.latencies[((self.latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "{} events in {} requests over {:.1} s: {:.0} events/s; request latency p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms",
            self.acked.len(),
            self.latencies.len(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.pct(0.5),
            self.pct(0.99),
            self.pct(0.999)
        )
    }
}

/// Appends for `seconds` over `connections` connections, connection `c` to `bases[c %
/// len]`; paced at `rate` events/s in total when not 0. Panics on a refused append.
pub fn drive(
    rt: &tokio::runtime::Runtime,
    bases: &[String],
    connections: usize,
    batch: usize,
    seconds: u64,
    rate: u64,
) -> LoadResult {
    // Each connection's interval between requests when paced.
    let interval = (rate > 0).then(|| Duration::from_secs_f64((connections * batch) as f64 / rate as f64));
    rt.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build().expect("client");
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..connections {
            let client = client.clone();
            let url = format!("{}/v1/events", bases[c % bases.len()]);
            tasks.push(tokio::spawn(async move {
                let mut acked: Vec<(u64, EventId)> = Vec::new();
                let mut lat = Vec::new();
                let mut n = 0u64;
                // Spread the connections' schedules over one interval.
                let mut next = started + interval.map(|i| i.mul_f64(c as f64 / connections as f64)).unwrap_or_default();
                while Instant::now() < deadline {
                    if interval.is_some() {
                        tokio::time::sleep_until(next.into()).await;
                    }
                    let events: Vec<Value> = (0..batch)
                        .map(|i| {
                            json!({"kind": "note", "actor": "agent:load",
                                   "body": {"type": "load", "json": {"c": c, "n": n, "i": i, "pad": "x".repeat(200)}}})
                        })
                        .collect();
                    n += 1;
                    let t = if interval.is_some() { next } else { Instant::now() };
                    if let Some(i) = interval {
                        next += i;
                    }
                    let resp = client
                        .post(&url)
                        .json(&json!({"stream": format!("load-{c}"), "events": events}))
                        .send()
                        .await
                        .expect("request");
                    let status = resp.status();
                    let body: Value = resp.json().await.expect("json");
                    lat.push(t.elapsed());
                    assert!(status.is_success(), "{url}: {status}: {body}");
                    for a in body["appended"].as_array().expect("appended") {
                        let id: EventId = a["id"].as_str().expect("id").parse().expect("hex id");
                        acked.push((a["position"].as_u64().expect("position"), id));
                    }
                }
                (acked, lat)
            }));
        }
        let mut acked = Vec::new();
        let mut latencies = Vec::new();
        for t in tasks {
            let (a, l) = t.await.expect("task");
            acked.extend(a);
            latencies.extend(l);
        }
        latencies.sort();
        LoadResult { acked, latencies, elapsed: started.elapsed() }
    })
}

/// Starts `dreamlog serve` (sync fsync) on a free loopback port over the database `db`;
/// returns the process and its base URL.
pub fn start_server(db: &Path) -> (Child, String) {
    start_server_with(db, &[])
}

/// [`start_server`] with more arguments of `serve` (`--config FILE`).
pub fn start_server_with(db: &Path, extra: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_dreamlog"))
        .arg("--db")
        .arg(db)
        .args(["--sync", "fsync", "serve", "--addr", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dreamlog serve");
    let mut err = BufReader::new(server.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("server banner");
    let addr = line.split("on http://").nth(1).and_then(|r| r.split_whitespace().next()).expect("address").to_owned();
    std::thread::spawn(move || for _ in err.lines() {});
    (server, format!("http://{addr}"))
}
