//! The cluster (tools/cluster.sh): three NATS servers (JetStream R3, every write synced)
//! and three dreamlog nodes, each a projection of the log of record, all on loopback and
//! driven over HTTP as users drive them.
//!
//! One cluster, the guarantees in turn: (a) appends through all three nodes at once are
//! readable on every node at the same positions, `verify` is clean everywhere and memory
//! state hashes agree; (d) two nodes racing a write with the same expected version: exactly
//! one wins, the other gets the conflict naming the current version (also for the memory
//! tool); (e) a dream run on one node shows on another and replays there bit for bit;
//! read-your-writes across nodes (`X-Dreamlog-After`); (c) a node SIGKILLed mid-load and
//! restarted catches up and matches the others; (b) a NATS server SIGKILLed under write
//! load loses no acknowledged event, writes go on, and it rejoins; a fresh node rebuilds
//! from the log of record. Bounded in time: about a minute.

mod common;

use common::cluster::Cluster;

use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("client")
}

fn post(c: &reqwest::blocking::Client, url: &str, body: &Value) -> (u16, Value) {
    match c.post(url).json(body).send() {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({"error": {"message": e.to_string()}})),
    }
}

fn get(c: &reqwest::blocking::Client, url: &str) -> Value {
    let r = c.get(url).send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().expect("JSON")
}

fn count(c: &reqwest::blocking::Client, node: &str) -> u64 {
    get(c, &format!("{node}/v1/info"))["events"].as_u64().expect("events")
}

/// Waits until a node holds `n` events.
fn wait_count(c: &reqwest::blocking::Client, node: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = c.get(format!("{node}/v1/info")).send().ok().and_then(|r| r.json::<Value>().ok());
        if have.as_ref().and_then(|v| v["events"].as_u64()).is_some_and(|have| have >= n) {
            return;
        }
        assert!(Instant::now() < deadline, "{node} did not reach {n} events within 60 s (has {have:?})");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every event id of a node, in position order (each page checked to be gapless).
fn ids(c: &reqwest::blocking::Client, node: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let page = get(c, &format!("{node}/v1/events?from={}&limit=10000", out.len()));
        let events = page["events"].as_array().expect("events");
        if events.is_empty() {
            return out;
        }
        for e in events {
            assert_eq!(e["position"].as_u64(), Some(out.len() as u64), "{node}: positions are gapless");
            out.push(e["id"].as_str().expect("id").to_owned());
        }
    }
}

fn note(stream: &str, i: usize, k: usize) -> Value {
    json!({"stream": stream, "kind": "note", "actor": "agent:load", "body": {"type": "load", "json": {"i": i, "k": k}}})
}

/// What a load run got acknowledged: (position, id), and the errors it was answered.
#[derive(Default)]
struct Acked {
    events: Vec<(u64, String)>,
    errors: Vec<String>,
    /// When each acknowledgement came.
    times: Vec<Instant>,
}

/// `threads` writers, writer `t` on `nodes[t % len]`, batches of 100 on its own stream
/// (and every fifth batch on one shared stream), until `stop`.
fn load(nodes: Vec<String>, threads: usize, tag: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Acked> {
    load_counting(nodes, threads, tag, stop, Arc::default())
}

/// [`load`], counting acknowledged batches in `acks` as they come.
fn load_counting(
    nodes: Vec<String>,
    threads: usize,
    tag: &str,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Acked> {
    let tag = tag.to_owned();
    std::thread::spawn(move || {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let node = nodes[t % nodes.len()].clone();
                let (stop, tag, acks) = (stop.clone(), tag.clone(), acks.clone());
                std::thread::spawn(move || {
                    let c = client();
                    let mut acked = Acked::default();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let stream = if i % 5 == 4 { format!("{tag}/shared") } else { format!("{tag}/{t}") };
                        let events: Vec<Value> = (0..100).map(|k| note(&stream, t * 1_000_000 + i, k)).collect();
                        let (status, v) = post(&c, &format!("{node}/v1/events"), &json!({ "events": events }));
                        if status == 200 {
                            for a in v["appended"].as_array().expect("appended") {
                                acked.events.push((
                                    a["position"].as_u64().expect("position"),
                                    a["id"].as_str().expect("id").to_owned(),
                                ));
                            }
                            acked.times.push(Instant::now());
                            acks.fetch_add(1, Ordering::Relaxed);
                        } else {
                            acked.errors.push(format!("{node}: {status} {v}"));
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        i += 1;
                    }
                    acked
                })
            })
            .collect();
        let mut all = Acked::default();
        for w in workers {
            let a = w.join().expect("writer");
            all.events.extend(a.events);
            all.errors.extend(a.errors);
            all.times.extend(a.times);
        }
        all
    })
}

fn no_errors(acked: &Acked, when: &str) {
    assert!(acked.errors.is_empty(), "appends refused {when}: {:?}", &acked.errors[..acked.errors.len().min(3)]);
}

/// Every node holds the same events at the same positions, every acknowledged one among
/// them where it was acknowledged; `verify` is clean on each.
fn converged(c: &reqwest::blocking::Client, nodes: &[String], acked: &[(u64, String)]) {
    let end = acked.iter().map(|(p, _)| p + 1).max().unwrap_or(0);
    for n in nodes {
        wait_count(c, n, end);
    }
    let target = nodes.iter().map(|n| count(c, n)).max().expect("nodes");
    for n in nodes {
        wait_count(c, n, target);
    }
    let logs: Vec<Vec<String>> = nodes.iter().map(|n| ids(c, n)).collect();
    for (n, log) in nodes.iter().zip(&logs) {
        assert_eq!(log.len(), logs[0].len(), "{n} holds as many events as {}", nodes[0]);
        assert!(log == &logs[0], "{n} holds the same events in the same order as {}", nodes[0]);
    }
    for (p, id) in acked {
        assert_eq!(logs[0].get(*p as usize), Some(id), "acknowledged event {id} is at its position {p} on every node");
    }
    let unique: std::collections::HashSet<&String> = logs[0].iter().collect();
    assert_eq!(unique.len(), logs[0].len(), "no event is stored twice");
    for n in nodes {
        let (status, v) = post(c, &format!("{n}/v1/verify"), &json!({}));
        assert_eq!(status, 200, "{n} verify: {v}");
        assert_eq!(v["problems"], json!([]), "{n} verifies clean: {v}");
        assert_eq!(v["events"].as_u64(), Some(logs[0].len() as u64));
    }
}

fn state_hash(c: &reqwest::blocking::Client, node: &str, store: &str) -> String {
    get(c, &format!("{node}/v1/memory/{store}/view?path=/memories"))["state_hash"]
        .as_str()
        .expect("state_hash")
        .to_owned()
}

fn tool(c: &reqwest::blocking::Client, node: &str, store: &str, input: Value) -> (u16, Value) {
    post(c, &format!("{node}/v1/memory/{store}/tool"), &input)
}

fn dreamlog_remote(node: &str, args: &[&str]) -> Output {
    let mut all = vec!["--remote", node];
    all.extend_from_slice(args);
    common::run_dreamlog(&all, None)
}

#[test]
fn a_cluster_of_three_nodes_on_jetstream() {
    let cluster = Cluster::up();
    let c = client();
    let nodes = cluster.nodes();
    for n in &nodes {
        let info = get(&c, &format!("{n}/v1/info"));
        assert!(info["log_of_record"].as_str().unwrap_or("").contains("JetStream stream DREAMLOG_default"), "{info}");
        assert_eq!(info["max_batch"], 1000, "a batch is capped at JetStream's atomic limit");
    }

    // (a) Appends through all three nodes at once, some on one shared stream.
    let stop = Arc::new(AtomicBool::new(false));
    let run = load(nodes.clone(), 6, "a", stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let a = run.join().expect("load");
    no_errors(&a, "through three nodes");
    assert!(a.events.len() >= 3000, "the load got {} events acknowledged", a.events.len());
    converged(&c, &nodes, &a.events);

    // Memory on all three nodes; read-your-writes when a client moves between nodes.
    let (s, v) =
        tool(&c, &nodes[0], "notes", json!({"command": "create", "path": "/memories/a.md", "file_text": "one\ntwo\n"}));
    assert_eq!(s, 200, "{v}");
    let written = dreamlog_remote(&nodes[1], &["memory", "view", "notes", "/memories/a.md"]);
    assert!(common::ok(&written).contains("one"), "node 2 shows node 1's write");
    // Its receipt was stamped by node 1 and travelled in the JetStream batch: every node
    // says who wrote it, and when node 1 received it, alike.
    let id = v["id"].as_str().expect("the command's id");
    let end = count(&c, &nodes[0]);
    for n in &nodes {
        wait_count(&c, n, end);
    }
    let on: Vec<Value> = nodes.iter().map(|n| get(&c, &format!("{n}/v1/events/{id}"))["received"].clone()).collect();
    assert_eq!(on[0]["principal"], "anonymous", "a server without tokens: {on:?}");
    assert!(on.iter().all(|r| r == &on[0] && r["at"].is_u64()), "the same receipt on every node: {on:?}");
    let (s, v) = tool(
        &c,
        &nodes[1],
        "notes",
        json!({"command": "str_replace", "path": "/memories/a.md", "old_str": "two", "new_str": "2"}),
    );
    assert_eq!(s, 200, "{v}");
    // A request that must see a log of at least N events waits for the node to hold them.
    let seen = count(&c, &nodes[1]);
    let r = c
        .get(format!("{}/v1/memory/notes/view?path=/memories/a.md", nodes[2]))
        .header("X-Dreamlog-After", seen.to_string())
        .send()
        .expect("view");
    let at: u64 = r.headers()["x-dreamlog-position"].to_str().expect("header").parse().expect("number");
    assert!(at >= seen, "the answer says it holds {at} ≥ {seen} events");
    let body: Value = r.json().expect("JSON");
    assert!(body["text"].as_str().unwrap_or("").contains("2"), "node 3 shows node 2's write: {body}");
    let bad = c.get(format!("{}/v1/info", nodes[2])).header("X-Dreamlog-After", "soon").send().expect("info");
    assert_eq!(bad.status().as_u16(), 400, "a malformed X-Dreamlog-After is refused");

    // (d) Two nodes race an append with the same expected version: exactly one wins.
    for round in 0..10u64 {
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [nodes[0].clone(), nodes[1].clone()]
            .into_iter()
            .enumerate()
            .map(|(i, node)| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let c = client();
                    let expect = if round == 0 { json!("no-stream") } else { json!(round - 1) };
                    let body = json!({"events": [note("race", i, round as usize)], "expect": {"race": expect}});
                    barrier.wait();
                    post(&c, &format!("{node}/v1/events"), &body)
                })
            })
            .collect();
        let answers: Vec<(u16, Value)> = racers.into_iter().map(|r| r.join().expect("racer")).collect();
        let won = answers.iter().filter(|(s, _)| *s == 200).count();
        assert_eq!(won, 1, "round {round}: exactly one of the racers wins: {answers:?}");
        let (status, lost) = answers.iter().find(|(s, _)| *s != 200).expect("a loser");
        assert_eq!(*status, 409, "round {round}: the loser gets the conflict: {lost}");
        assert_eq!(lost["error"]["type"], "wrong_expected_version", "{lost}");
        assert_eq!(lost["error"]["current_version"], round, "the conflict names the current version: {lost}");
    }
    // The memory tool: two nodes replace the same text at once; one wins, the other is
    // told the text is no longer there.
    let (s, v) =
        tool(&c, &nodes[0], "race", json!({"command": "create", "path": "/memories/r.md", "file_text": "x\n"}));
    assert_eq!(s, 200, "{v}");
    wait_count(&c, &nodes[1], count(&c, &nodes[0]));
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = [(nodes[0].clone(), "A"), (nodes[1].clone(), "B")]
        .into_iter()
        .map(|(node, to)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let c = client();
                barrier.wait();
                tool(
                    &c,
                    &node,
                    "race",
                    json!({"command": "str_replace", "path": "/memories/r.md", "old_str": "x", "new_str": to}),
                )
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = racers.into_iter().map(|r| r.join().expect("racer")).collect();
    // The tool answers a refused command as a tool result (`is_error`), as the SDK expects.
    let won = answers.iter().filter(|(s, v)| *s == 200 && v["is_error"] == false).count();
    assert_eq!(won, 1, "one str_replace wins: {answers:?}");
    let lost = answers.iter().find(|(s, v)| *s != 200 || v["is_error"] == true).expect("a loser");
    assert!(lost.1.to_string().contains("did not appear verbatim") || lost.0 == 409, "the other is told why: {lost:?}");
    let view = get(&c, &format!("{}/v1/memory/race/view?path=/memories/r.md", nodes[2]));
    let text = view["text"].as_str().unwrap_or("");
    assert!(text.contains('A') != text.contains('B'), "the file holds exactly one of the two edits: {text}");

    // (e) A dream run on node 1 is visible on node 3 and replays bit for bit on node 2.
    let tau = common::data("tau-bench").display().to_string();
    common::ok(&dreamlog_remote(&nodes[0], &["import", &tau, "--store", "support"]));
    let run: Value =
        serde_json::from_str(common::ok(&dreamlog_remote(&nodes[0], &["dream", "run", "support", "--json"])).trim())
            .expect("dream JSON");
    let id = run["id"].as_str().expect("dream id").to_owned();
    assert!(run["commands"].as_u64().unwrap_or(0) > 0, "the dream wrote lessons: {run}");
    let replay = common::ok(&dreamlog_remote(&nodes[1], &["dream", "replay", "--all"]));
    assert!(replay.contains("reproduced bit for bit") && replay.contains("0 differ"), "{replay}");
    let listed = common::ok(&dreamlog_remote(&nodes[2], &["dream", "list"]));
    assert!(listed.contains(&id[..16]), "node 3 lists the dream: {listed}");
    let hashes: Vec<String> = nodes.iter().map(|n| state_hash(&c, n, "support.dream-1")).collect();
    assert!(hashes.iter().all(|h| h == &hashes[0]), "the dream's store has one state on every node: {hashes:?}");

    // (c) A node SIGKILLed under load, restarted: it catches up and matches the others.
    let stop = Arc::new(AtomicBool::new(false));
    // Writers on all three: node 2's lose their connections (what was acknowledged before
    // must stay), the others' are never refused.
    let run = load(nodes.clone(), 6, "c", stop.clone());
    std::thread::sleep(Duration::from_millis(1000));
    cluster.member("kill", "node2");
    std::thread::sleep(Duration::from_millis(1500));
    cluster.member("start", "node2");
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    let cload = run.join().expect("load");
    let others: Vec<&String> = cload.errors.iter().filter(|e| !e.starts_with(&nodes[1])).collect();
    assert!(others.is_empty(), "appends refused on the nodes that stayed up: {:?}", &others[..others.len().min(3)]);
    converged(&c, &nodes, &cload.events);

    // (b) A NATS server SIGKILLed under load on all three nodes: nothing acknowledged is
    // lost, writes go on while it is down (after JetStream's Raft elects a new stream
    // leader if it led: its election timeout is 4 to 9 s), and it rejoins.
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let run = load_counting(nodes.clone(), 6, "b", stop.clone(), acks.clone());
    std::thread::sleep(Duration::from_millis(1000));
    cluster.member("kill", "nats2");
    let killed = Instant::now();
    // In-flight batches may still land; then writes must go on with nats2 down.
    std::thread::sleep(Duration::from_millis(500));
    let before = acks.load(Ordering::Relaxed);
    while acks.load(Ordering::Relaxed) < before + 20 {
        assert!(
            killed.elapsed() < Duration::from_secs(25),
            "writes did not go on within 25 s of a NATS server's death"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("writes went on {:.1} s after a NATS server was killed", killed.elapsed().as_secs_f64());
    cluster.member("start", "nats2");
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let b = run.join().expect("load");
    no_errors(&b, "while a NATS server was down");
    let health = cluster.nats_health(2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.get(&health).send().map(|r| !r.status().is_success()).unwrap_or(true) {
        assert!(Instant::now() < deadline, "nats2 did not rejoin (its /healthz) within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut all = a.events;
    all.extend(cload.events);
    all.extend(b.events);
    converged(&c, &nodes, &all);
    let hashes: Vec<String> = nodes.iter().map(|n| state_hash(&c, n, "notes")).collect();
    assert!(hashes.iter().all(|h| h == &hashes[0]), "memory states agree: {hashes:?}");

    // A fresh node rebuilds everything from the log of record.
    cluster.member("add", "node4");
    let node4 = cluster.node(4);
    let mut with_new = nodes.clone();
    with_new.push(node4.clone());
    converged(&c, &with_new, &[]);
    assert_eq!(state_hash(&c, &node4, "notes"), hashes[0], "the new node's memory state agrees");
    let replay = common::ok(&dreamlog_remote(&node4, &["dream", "replay", "--all"]));
    assert!(replay.contains("0 differ"), "{replay}");

    // An embedded store moves into the cluster by export and import (ids kept), and is
    // refused as a node's database: it is not a projection of the log of record.
    let old = cluster.path().join("embedded");
    let embedded = |args: &[&str]| common::dreamlog_on(&old, args, None);
    common::ok(&embedded(&[
        "memory",
        "apply",
        "moved",
        r#"{"command":"create","path":"/memories/m.md","file_text":"kept\n"}"#,
    ]));
    let swe = common::data("swe-agent").display().to_string();
    common::ok(&embedded(&["import", &swe]));
    let export = common::ok(&embedded(&["export"]));
    let imported = common::run_dreamlog(&["--remote", &nodes[0], "import", "-"], Some(&export));
    common::ok(&imported);
    let moved_hash = common::ok(&embedded(&["memory", "view", "moved", "/memories", "--json"]));
    let moved_hash: Value = serde_json::from_str(moved_hash.trim()).expect("view JSON");
    wait_count(&c, &nodes[2], count(&c, &nodes[0]));
    assert_eq!(
        state_hash(&c, &nodes[2], "moved"),
        moved_hash["state_hash"].as_str().expect("hash"),
        "the moved store's state"
    );
    for line in export.lines() {
        let id = serde_json::from_str::<Value>(line).expect("export line")["id"].as_str().expect("id").to_owned();
        let (status, v) = post(&c, &format!("{}/v1/lookup", nodes[1]), &json!({"ids": [id]}));
        assert!(status == 200 && v["positions"][0].is_u64(), "exported event {id} is in the cluster: {v}");
    }
    let refused = common::run_dreamlog(
        &[
            "--db",
            old.to_str().expect("path"),
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--log-of-record",
            &cluster.env["NATS_URLS"],
        ],
        None,
    );
    let err = common::fails(&refused);
    assert!(err.contains("not a projection of that log"), "an embedded database is refused as a node's: {err}");

    // The node's own database verifies offline too (stopped, opened by the CLI).
    cluster.member("kill", "node4");
    let db: PathBuf = cluster.path().join("node4");
    let out = common::dreamlog_on(&db, &["verify"], None);
    let report = common::ok(&out);
    assert!(report.contains("all ids, body hashes, chains and indexes verify"), "offline verify: {report}");
}
