//! `dreamlog sync anthropic` against a stand-in of the hosted Managed Agents API built from
//! the official SDK's types (tests/python/hosted_standin.py, read back by the SDK client with
//! strict validation): hosted memory stores and versions mirrored exactly once — pages,
//! 429 and 503 answers, renames, deletes, a version redacted before the first sync,
//! versions past the retention period, a version whose content does not match its hash —
//! then blame names the hosted session, a second sync adds nothing, and a sync killed at
//! random points and resumed ends with every version mirrored once.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{dreamlog_on, ok, root};
use serde_json::{json, Value};

const KEY: &str = "sk-ant-standin-key";

/// The stand-in, serving a scenario; killed when dropped.
struct StandIn {
    child: Child,
    url: String,
}

impl StandIn {
    fn start(scenario: &Value, dir: &Path, fail_every: u32) -> StandIn {
        StandIn::start_with(scenario, dir, fail_every, 0)
    }

    fn start_with(scenario: &Value, dir: &Path, fail_every: u32, delay_ms: u32) -> StandIn {
        let file = dir.join("scenario.json");
        std::fs::write(&file, scenario.to_string()).expect("scenario");
        let mut child = Command::new("python3")
            .arg("tests/python/hosted_standin.py")
            .args(["--scenario", file.to_str().expect("utf-8"), "--key", KEY])
            .args(["--log", dir.join("requests.jsonl").to_str().expect("utf-8")])
            .args(["--fail-every", &fail_every.to_string(), "--delay-ms", &delay_ms.to_string()])
            .current_dir(root())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with the anthropic SDK (tools/bootstrap.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the stand-in's first line");
        let url = line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("stand-in said {line:?}")).to_owned();
        StandIn { child, url }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sync(db: &Path, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dreamlog"))
        .args(["--db", db.to_str().expect("utf-8"), "sync", "anthropic"])
        .args(args)
        .env("DREAMLOG_SYNC", "none")
        .env("ANTHROPIC_BASE_URL", url)
        .env("ANTHROPIC_API_KEY", KEY)
        .output()
        .expect("run dreamlog")
}

fn time(minute: u32) -> String {
    format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + minute / 1440, (minute / 60) % 24, minute % 60)
}

/// A store with three memories over 48 versions (three pages at view=full): sessions,
/// an API key and a user write; renames; a delete; a version redacted before any sync;
/// the first two versions past the retention period; one version whose content does not
/// hash to its `content_sha256`. Returns the scenario and the files it must end with.
fn scenario() -> (Value, BTreeMap<String, String>, &'static str) {
    let store = "memstore_01support";
    let mut versions = Vec::new();
    let mut files: BTreeMap<String, (String, String)> = BTreeMap::new(); // memory → (path, content)
    let mut bad = "";
    for i in 0..48u32 {
        let memory = format!("mem_{}", i % 3);
        let id = format!("memver_{i:03}");
        let by = match i % 4 {
            0 | 1 => json!({"type": "session_actor", "session_id": format!("sesn_{}", i % 5)}),
            2 => json!({"type": "api_actor", "api_key_id": "apikey_01ops"}),
            _ => json!({"type": "user_actor", "user_id": "user_01alice"}),
        };
        let before = files.get(&memory).cloned();
        let path = match (&before, i % 7 == 6) {
            (Some((p, _)), false) => p.clone(),
            (_, true) => format!("/notes/m{}-v{i}.md", i % 3),
            (None, false) => format!("/m{}.md", i % 3),
        };
        let content = format!("{}lesson {i} for {memory}\n", before.as_ref().map_or("", |(_, c)| c.as_str()));
        let mut v = json!({"id": id, "memory_store_id": store, "memory_id": memory, "path": path,
                           "created_at": time(i), "created_by": by});
        if i == 40 {
            // A delete (mem_1), then it is created again later.
            v["operation"] = json!("deleted");
            files.remove(&memory);
        } else {
            v["operation"] = json!(if before.is_none() { "created" } else { "modified" });
            v["content"] = json!(content);
            if i == 20 {
                v["redacted_at"] = json!(time(100));
                v["redacted_by"] = json!({"type": "user_actor", "user_id": "user_01alice"});
                // Nothing of it is known: the memory goes on from its next version's content.
            } else if i == 33 {
                v["content_sha256"] = json!("0".repeat(64));
                bad = "memver_033";
            } else {
                files.insert(memory, (path, content));
            }
        }
        versions.push(v);
    }
    // Memories whose only version is past the retention period (more than a batch of the
    // killed syncs holds): mirrored as they are now, all in one batch.
    for k in 0..10 {
        versions.push(json!({"id": format!("memver_old{k}"), "memory_store_id": store, "memory_id": format!("mem_old{k}"),
                             "operation": "created", "path": format!("/old/{k}.md"), "content": format!("old lesson {k}\n"),
                             "created_at": time(0), "created_by": {"type": "user_actor", "user_id": "user_01alice"}}));
        files.insert(format!("mem_old{k}"), (format!("/old/{k}.md"), format!("old lesson {k}\n")));
    }
    // A memory created, then deleted by a version redacted before any sync: it is gone.
    versions.push(json!({"id": "memver_d1", "memory_store_id": store, "memory_id": "mem_gone", "operation": "created",
                         "path": "/gone.md", "content": "a secret\n", "created_at": time(50),
                         "created_by": {"type": "session_actor", "session_id": "sesn_9"}}));
    versions.push(json!({"id": "memver_d2", "memory_store_id": store, "memory_id": "mem_gone", "operation": "deleted",
                         "path": "/gone.md", "created_at": time(51), "redacted_at": time(52),
                         "redacted_by": {"type": "user_actor", "user_id": "user_01alice"}}));
    let stores = json!([
        {"id": store, "name": "Support", "description": "What support learned.", "metadata": {"team": "support"},
         "created_at": time(0)},
        {"id": "memstore_02empty", "name": "Empty", "created_at": time(1)},
        {"id": "memstore_03local", "name": "Named like a local store", "created_at": time(1)},
    ]);
    let expected = files.into_values().map(|(p, c)| (format!("/memories{p}"), c)).collect();
    (json!({"stores": stores, "versions": versions, "expired_before": time(2)}), expected, bad)
}

fn log_len(db: &Path) -> usize {
    ok(&dreamlog_on(db, &["log", "--json"], None)).lines().count()
}

/// The store's files now, read back with `memory view`.
fn files(db: &Path, store: &str) -> BTreeMap<String, String> {
    let root: Value =
        serde_json::from_str(&ok(&dreamlog_on(db, &["--json", "memory", "view", store, "/memories"], None)))
            .expect("a view");
    let mut out = BTreeMap::new();
    for f in root["files"].as_array().expect("files") {
        let path = f.as_str().expect("a path");
        let v: Value = serde_json::from_str(&ok(&dreamlog_on(db, &["--json", "memory", "view", store, path], None)))
            .expect("a view");
        // The view (rules 2) is a header line, then the file's lines numbered, the text
        // after a final newline included: the text after each tab, joined again.
        let shown = v["text"].as_str().expect("text");
        let numbered: Vec<&str> = shown.split('\n').skip(1).map(|l| l.split_once('\t').expect("numbered").1).collect();
        let text = numbered.join("\n");
        out.insert(path.to_owned(), text);
    }
    out
}

#[test]
fn the_stand_in_speaks_the_sdk_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (scenario, _, _) = scenario();
    let standin = StandIn::start(&scenario, dir.path(), 4);
    let out = Command::new("python3")
        .args(["tests/python/hosted_standin.py", "--check", &standin.url, "--key", KEY])
        .current_dir(root())
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    // 51 versions, three past the retention period.
    assert_eq!(summary["stores"]["memstore_01support"]["versions"].as_array().map(Vec::len), Some(48), "{summary}");
    assert_eq!(summary["stores"]["memstore_02empty"]["name"], "Empty");
}

#[test]
fn hosted_memory_is_mirrored_once_and_blame_names_the_hosted_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let (scenario, expected, bad) = scenario();
    let standin = StandIn::start(&scenario, dir.path(), 5);

    // A dreamlog store of a hosted store's name that the mirror did not make.
    let create = json!({"command": "create", "path": "/memories/mine.md", "file_text": "local\n"}).to_string();
    ok(&dreamlog_on(&db, &["memory", "apply", "memstore_03local", "--json", &create], None));

    // The version with a damaged hash is named and left out, the store the mirror did not
    // make is refused; the rest is mirrored.
    let out = sync(&db, &standin.url, &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unmapped object fails the run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/sync-report.schema.json")).expect("the report's schema"),
    )
    .expect("JSON");
    let v = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&schema).expect("schema compiles");
    let errors: Vec<String> = v.iter_errors(&report).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(report["unmapped"].as_array().map(Vec::len), Some(2), "{report}");
    assert_eq!(report["unmapped"][0]["object"], bad);
    assert!(report["unmapped"][0]["reason"].as_str().unwrap_or_default().contains("content_sha256"), "{report}");
    assert_eq!(report["unmapped"][1]["object"], "memstore_03local");
    assert!(report["unmapped"][1]["reason"].as_str().unwrap_or_default().contains("not made by `sync anthropic`"));
    let mine = ok(&dreamlog_on(&db, &["memory", "history", "memstore_03local"], None));
    assert_eq!(mine.lines().count(), 2, "the local store is left alone (its rules and its file): {mine}");
    let support = &report["stores"][0];
    assert_eq!((support["store"].as_str(), support["listed"].as_u64()), (Some("memstore_01support"), Some(48)));
    assert_eq!(
        (support["mirrored"].as_u64(), support["redacted"].as_u64(), support["baseline"].as_u64()),
        (Some(45), Some(2), Some(10)),
        "{report}"
    );
    assert!(report["retried"].as_u64().unwrap_or(0) > 0, "the stand-in answered 429 and 503: {report}");

    // Every request named the memory beta and asked full versions 20 at a time.
    let requests = std::fs::read_to_string(dir.path().join("requests.jsonl")).expect("request log");
    for r in requests.lines().map(|l| serde_json::from_str::<Value>(l).expect("JSON")) {
        assert_eq!(r["beta"], "agent-memory-2026-07-22", "{r}");
        if r["path"].as_str().is_some_and(|p| p.ends_with("/memory_versions")) {
            assert_eq!((r["query"]["view"].as_str(), r["query"]["limit"].as_str()), (Some("full"), Some("20")), "{r}");
        }
    }

    // The files are the hosted ones; the store's fields came along.
    assert_eq!(files(&db, "memstore_01support"), expected);
    let empty: Value = serde_json::from_str(&ok(&dreamlog_on(
        &db,
        &["--json", "memory", "view", "memstore_02empty", "/memories"],
        None,
    )))
    .expect("a view");
    assert_eq!(empty["files"], json!([]), "a store without versions is mirrored too: {empty}");

    // Blame names the hosted session that wrote a line (and the version's time).
    let mut by_session = 0;
    for (path, text) in &expected {
        let blame = ok(&dreamlog_on(&db, &["--json", "memory", "blame", "memstore_01support", path], None));
        let lines: Vec<Value> = blame.lines().map(|l| serde_json::from_str(l).expect("a blame line")).collect();
        assert_eq!(lines.len(), text.lines().count(), "{blame}");
        for l in &lines {
            // Each line names the version's author; a session's lines name the session.
            let (actor, session) = (l["actor"].as_str().unwrap_or_default(), l["session"].as_str());
            match session {
                Some(s) => {
                    assert_eq!(actor, format!("agent:{s}"), "{l}");
                    by_session += 1;
                }
                None => assert!(
                    ["human:user_01alice", "system:apikey_01ops", "system:anthropic-baseline"].contains(&actor),
                    "{l}"
                ),
            }
        }
    }
    assert!(by_session > 0, "no line blamed on a hosted session");

    // A second sync adds nothing.
    let before = log_len(&db);
    let again = sync(&db, &standin.url, &["--json"]);
    let report: Value = serde_json::from_slice(&again.stdout).expect("a JSON report");
    assert_eq!(report["stores"][0]["mirrored"], 0, "{report}");
    assert_eq!(report["stores"][0]["events"], 0, "{report}");
    assert_eq!(log_len(&db), before, "a second sync appended events");
}

#[test]
fn a_sync_killed_anywhere_resumes_with_nothing_lost_or_doubled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (scenario, expected, _) = scenario();
    // More stores, so that kills land between their batches too.
    let mut scenario = scenario;
    for k in 0..6 {
        let id = format!("memstore_1{k}copy");
        scenario["stores"]
            .as_array_mut()
            .expect("stores")
            .push(json!({"id": id, "name": format!("Copy {k}"), "created_at": time(0)}));
        let copies: Vec<Value> = scenario["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .filter(|v| v["memory_store_id"] == "memstore_01support")
            .map(|v| {
                let mut c = v.clone();
                c["memory_store_id"] = json!(id);
                c["id"] = json!(format!("{}_{k}", v["id"].as_str().unwrap_or_default()));
                c
            })
            .collect();
        scenario["versions"].as_array_mut().expect("versions").extend(copies);
    }
    // The hosted API's latency (15 ms an answer) spreads a sync over time; fsync'd batches
    // take their time too: kills land while versions are listed, between stores, and
    // between the batches of one store.
    let standin = StandIn::start_with(&scenario, dir.path(), 0, 15);
    // A sync never killed: the reference, and how long a whole sync takes with the killed
    // runs' settings (the shorter of two).
    let whole_sync = |db: &Path| {
        let started = std::time::Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_dreamlog"))
            .args(["--db", db.to_str().expect("utf-8"), "sync", "anthropic", "--batch", "7"])
            .env("DREAMLOG_SYNC", "fsync")
            .env("ANTHROPIC_BASE_URL", &standin.url)
            .env("ANTHROPIC_API_KEY", KEY)
            .stdout(Stdio::null())
            .status()
            .expect("run dreamlog");
        assert_eq!(status.code(), Some(1), "the damaged version is reported");
        started.elapsed().as_millis() as u64
    };
    let clean = dir.path().join("clean");
    let whole = whole_sync(&clean).min(whole_sync(&dir.path().join("clean2")));
    let db = dir.path().join("db");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut kills = 0;
    let mut runs = 0;
    let mut lengths = Vec::new();
    loop {
        runs += 1;
        assert!(runs < 400, "the sync never finished between kills");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dreamlog"))
            // Small batches: kills land between the batches of one store too.
            .args(["--db", db.to_str().expect("utf-8"), "sync", "anthropic", "--json", "--batch", "7"])
            .env("DREAMLOG_SYNC", "fsync")
            .env("ANTHROPIC_BASE_URL", &standin.url)
            .env("ANTHROPIC_API_KEY", KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if kills < 20 {
            // Within the first quarter of a whole sync's time: each run gets part of the way
            // (a store or two), so many runs are cut while there is work left.
            std::thread::sleep(std::time::Duration::from_millis(seed % (whole / 4).max(10)));
            if child.try_wait().expect("try_wait").is_none() {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaped");
                kills += 1;
                if db.exists() {
                    lengths.push(log_len(&db));
                }
                continue;
            }
        }
        let status = child.wait().expect("wait");
        if kills >= 20 {
            assert_eq!(status.code(), Some(1), "the damaged version is still reported");
            break;
        }
    }
    // Every store ends as a clean sync leaves it; every version is named once.
    for k in 0..6 {
        assert_eq!(files(&db, &format!("memstore_1{k}copy")), expected, "copy {k}");
    }
    assert_eq!(files(&db, "memstore_01support"), expected);
    let end = log_len(&db);
    let mid = lengths.iter().filter(|&&n| n > 0 && n < end).count();
    eprintln!("{kills} kills; the log's length after each: {lengths:?} of {end}");
    assert!(mid >= 1, "no kill left the log part-written ({kills} kills): {lengths:?} of {end}");
    let mut named: BTreeMap<String, usize> = BTreeMap::new();
    let mut commands = 0;
    for line in ok(&dreamlog_on(&db, &["log", "--json"], None)).lines() {
        let e: Value = serde_json::from_str(line).expect("JSON");
        if e["kind"] == "memory" {
            commands += 1;
        }
        if e["body"]["type"] == "anthropic.sync" {
            for v in e["body"]["json"]["versions"].as_array().expect("versions") {
                let key = format!("{} {}", e["stream"].as_str().unwrap_or_default(), v["id"].as_str().expect("id"));
                *named.entry(key).or_default() += 1;
            }
        }
    }
    // Every retained version but the damaged one (reported each time, never written).
    assert_eq!(named.len(), 7 * (47 + 10), "every retained version mapped named, and the baseline");
    assert!(
        named.values().all(|&n| n == 1),
        "a version named twice: {:?}",
        named.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    // And its commands written once: the same count as a sync that was never killed.
    let clean_commands = ok(&dreamlog_on(&clean, &["log", "--json"], None))
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).map(|e| e["kind"] == "memory").unwrap_or(false))
        .count();
    assert_eq!(commands, clean_commands, "after {kills} kills");
}
