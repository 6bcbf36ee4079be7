//! `dreamlog sync anthropic` against a stand-in of the hosted Managed Agents API built from
//! the official SDK's types (tests/python/hosted_standin.py, read back by the SDK client with
//! strict validation): hosted memory stores and versions mirrored exactly once — pages,
//! 429 and 503 answers, renames, deletes, a version redacted before the first sync,
//! versions past the retention period, a version whose content does not match its hash —
//! then blame names the hosted session, a second sync adds nothing, and a sync killed at
//! random points and resumed ends with every version mirrored once.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use common::hosted::{files, hosted, learning, sync, StandIn, KEY};
use common::{dreamlog_on, ok, root};
use serde_json::{json, Value};

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

/// Checks a `sync anthropic --json` report against schemas/sync-report.schema.json.
fn assert_matches_schema(report: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/sync-report.schema.json")).expect("the report's schema"),
    )
    .expect("JSON");
    let v = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&schema).expect("schema compiles");
    let errors: Vec<String> = v.iter_errors(report).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

fn log_len(db: &Path) -> usize {
    ok(&dreamlog_on(db, &["log", "--json"], None)).lines().count()
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
    assert_matches_schema(&report);
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

    // Every request named its route's beta and asked full versions 20 at a time.
    let requests = std::fs::read_to_string(dir.path().join("requests.jsonl")).expect("request log");
    for r in requests.lines().map(|l| serde_json::from_str::<Value>(l).expect("JSON")) {
        let path = r["path"].as_str().unwrap_or_default();
        let beta = if path.starts_with("/v1/sessions") {
            "managed-agents-2026-04-01"
        } else if path.starts_with("/v1/dreams") {
            "dreaming-2026-04-21"
        } else {
            "agent-memory-2026-07-22"
        };
        assert_eq!(r["beta"], beta, "{r}");
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
    // Versions redacted before they were mirrored (a delete among them) have nothing here
    // to redact: a redaction check goes through them.
    let checked = sync(&db, &standin.url, &["--json", "--redactions"]);
    assert_eq!(checked.status.code(), Some(1), "{}", String::from_utf8_lossy(&checked.stderr));
    let report: Value = serde_json::from_slice(&checked.stdout).expect("a JSON report");
    assert_eq!(report["stores"][0]["redacted_upstream"], 0, "{report}");
    assert_eq!(log_len(&db), before, "nothing to redact, nothing written");
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
    // Sessions too (each with its events, an outcome and, every fourth, a thread): kills
    // land while they are read and written.
    scenario["sessions"] = json!(generated_sessions(24, "memstore_01support"));
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
    // Every session and thread holds exactly the events of a sync never killed (ids are
    // content hashes chained per stream: equal lists are equal sessions), with one link.
    let sessions_of = |db: &Path| {
        let mut streams: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in ok(&dreamlog_on(db, &["log", "--json"], None)).lines() {
            let e: Value = serde_json::from_str(line).expect("JSON");
            let stream = e["stream"].as_str().unwrap_or_default();
            if stream.starts_with("session/") {
                streams.entry(stream.to_owned()).or_default().push(e["id"].as_str().unwrap_or_default().to_owned());
            } else if stream.starts_with("session.link/") {
                // Its store and state (its `at` is a position of this database's log).
                let link = format!("link {} {}", e["body"]["store"], e["body"]["memory_state"]);
                streams.entry(stream.to_owned()).or_default().push(link);
            }
        }
        streams
    };
    let (killed, never) = (sessions_of(&db), sessions_of(&clean));
    assert_eq!(killed.len(), never.len());
    assert_eq!(never.len(), 2 * (24 + 6), "24 sessions and 6 threads, each with its link");
    assert_eq!(killed, never, "after {kills} kills");
}

/// `n` graded sessions writing to `store`, each with a user message, a tool call and its
/// result, an outcome and its verdict; every fourth with a thread of its own.
fn generated_sessions(n: u32, store: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let id = format!("sesn_g{i:03}");
            let verdict = ["satisfied", "failed", "needs_revision", "max_iterations_reached"][i as usize % 4];
            let mut events = vec![
                json!({"type": "user.message", "content": [{"type": "text", "text": format!("task {}", i % 5)}]}),
                json!({"type": "user.define_outcome", "outcome_id": format!("outc_g{i}"), "description": "Done right",
                       "rubric": {"type": "text", "content": "- right\n"}}),
                json!({"type": "agent.tool_use", "id": format!("sevt_g{i}_call"), "name": "bash", "input": {"command": "ls"}}),
                json!({"type": "agent.tool_result", "tool_use_id": format!("sevt_g{i}_call"),
                       "content": [{"type": "text", "text": "a b"}]}),
                json!({"type": "agent.message", "content": [{"type": "text", "text": format!("answer {i}")}]}),
                json!({"type": "span.outcome_evaluation_end", "outcome_id": format!("outc_g{i}"), "result": verdict,
                       "iteration": 0, "explanation": "checked"}),
            ];
            events.push(json!({"type": "session.status_idle", "stop_reason": {"type": "end_turn"}}));
            let mut s = json!({"id": id, "agent": {"id": "agent_g", "name": "gen", "model": "claude-sonnet-5-5"},
                "created_at": time(60 + i * 7), "memory_store_ids": [store], "events": events,
                "metadata": {"task_id": format!("task-{}", i % 5)}});
            if i % 4 == 0 {
                s["threads"] = json!([{"id": format!("sthr_g{i:03}_helper"), "agent_name": "helper",
                    "created_at": time(60 + i * 7), "events": [
                        {"type": "agent.message", "content": [{"type": "text", "text": "helping"}]}]}]);
            }
            s
        })
        .collect()
}

/// The hosted world of tests/fixtures/hosted/learning.json: a store written by graded
/// sessions (a multi-agent one with `needs_revision` then `satisfied`, a `failed` one with
/// its rubric in a file, a `max_iterations_reached` one, one with two outcomes), a version
/// redacted before any sync.
fn json_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn stream_events(db: &Path, stream: &str) -> Vec<Value> {
    json_lines(&ok(&dreamlog_on(db, &["log", "--json"], None))).into_iter().filter(|e| e["stream"] == stream).collect()
}

#[test]
fn hosted_sessions_are_mirrored_with_their_outcomes_and_blame_names_the_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let mut world = learning();
    // Two items a page and a 429 or 503 every fifth answer: every list takes several pages.
    let standin = StandIn::start_paged(&world, dir.path(), 5, 0, 2);
    // The SDK reads the sessions, events, threads and rubric files back, strictly.
    let check = Command::new("python3")
        .args(["tests/python/hosted_standin.py", "--check", &standin.url, "--key", KEY])
        .current_dir(root())
        .output()
        .expect("python3");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let summary: Value = serde_json::from_slice(&check.stdout).expect("JSON summary");
    let alpha = &summary["sessions"]["sesn_01alpha"];
    assert_eq!((alpha["events"].as_u64(), alpha["threads"]["sthr_01alpha_research"].as_u64()), (Some(14), Some(6)));
    assert_eq!(summary["sessions"]["sesn_04delta"]["outcomes"], json!(["satisfied", "interrupted"]));
    assert!(summary["sessions"]["sesn_02bravo"]["files"]["file_01rubric"].is_string(), "{summary}");

    let out = sync(&db, &standin.url, &["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_matches_schema(&report);
    let s = &report["sessions"];
    assert_eq!(
        (s["listed"].as_u64(), s["mirrored"].as_u64(), s["threads"].as_u64(), s["grades"].as_u64()),
        (Some(4), Some(5), Some(1), Some(6)),
        "four sessions and one thread; six outcome evaluations: {report}"
    );
    assert_eq!(report["unmapped"], json!([]), "{report}");

    // Each session's score is the mean of its terminal verdicts; its result the verdict.
    let sessions: BTreeMap<String, Value> = json_lines(&ok(&dreamlog_on(&db, &["--json", "sessions", "list"], None)))
        .into_iter()
        .map(|s| (s["id"].as_str().expect("id").to_owned(), s))
        .collect();
    let verdict = |id: &str| (sessions[id]["score"].as_f64(), sessions[id]["result"].as_str().map(str::to_owned));
    assert_eq!(verdict("sesn_01alpha"), (Some(1.0), Some("satisfied".into())));
    assert_eq!(verdict("sesn_02bravo"), (Some(0.0), Some("failed".into())));
    assert_eq!(verdict("sesn_03charlie"), (Some(0.0), Some("max_iterations_reached".into())));
    assert_eq!(verdict("sesn_04delta"), (Some(0.5), Some("interrupted".into())), "one of two outcomes satisfied");
    assert_eq!(sessions["sesn_01alpha"]["task"], "refund-flex", "the task key from the session's metadata");
    assert_eq!(sessions["sesn_04delta"]["task"], "Rebook the flight", "else the first outcome's description");
    assert_eq!(sessions["sesn_01alpha"]["input_tokens"], 1200, "the session's usage");
    assert_eq!(sessions["sesn_03charlie"]["status"], "terminated");

    // The first evaluation of alpha's outcome is an intermediate grade, the second passes.
    let alpha = stream_events(&db, "session/sesn_01alpha");
    let grades: Vec<&Value> = alpha.iter().filter(|e| e["kind"] == "grade").collect();
    assert_eq!(grades.len(), 2);
    assert_eq!(
        (grades[0]["body"]["result"].as_str(), grades[0]["body"]["score"].as_f64()),
        (Some("needs_revision"), Some(0.0))
    );
    assert_eq!(grades[1]["body"]["criteria"][0]["passed"], true);
    assert_eq!(grades[1]["body"]["rubric"], "The refund is handled per policy", "the outcome's description");
    assert!(grades[1]["body"]["meta"]["anthropic"]["rubric"]
        .as_str()
        .unwrap_or_default()
        .contains("The 30-day window is quoted."));
    assert_eq!(grades[1]["actor"], "evaluator:anthropic-outcome-grader");
    // The cross-posted call is the thread's, not the primary thread's: one action here.
    let actions: Vec<&Value> = alpha.iter().filter(|e| e["kind"] == "action").collect();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(
        (actions[0]["body"]["name"].as_str(), actions[0]["body"]["status"].as_str()),
        (Some("write"), Some("ok"))
    );
    // The thread is a child session under the session; its MCP call failed.
    let thread = stream_events(&db, "session/sthr_01alpha_research");
    assert_eq!(thread[0]["causes"], json!([alpha[0]["id"]]), "the thread's start cites the session's");
    let mcp = thread.iter().find(|e| e["body"]["name"] == "mcp__fares__lookup").expect("the MCP call");
    assert_eq!(mcp["body"]["status"], "error");
    // A rubric given as a file is read through the Files API.
    let bravo = stream_events(&db, "session/sesn_02bravo");
    let grade = bravo.iter().find(|e| e["kind"] == "grade").expect("bravo's grade");
    assert!(grade["body"]["meta"]["anthropic"]["rubric"]
        .as_str()
        .unwrap_or_default()
        .contains("The answer quotes the 30-day window."));
    let custom = bravo.iter().find(|e| e["kind"] == "action").expect("the custom tool call");
    assert_eq!(custom["body"]["output"], json!([{"type": "text", "text": "fare: BASIC"}]));

    // Blame of a hosted line names the hosted session and its verdict.
    let blame = json_lines(&ok(&dreamlog_on(
        &db,
        &["--json", "memory", "blame", "memstore_02learn", "/memories/refunds.md"],
        None,
    )));
    assert_eq!(blame.len(), 2);
    assert_eq!(
        (blame[0]["session"].as_str(), blame[0]["verdict"]["result"].as_str()),
        (Some("sesn_01alpha"), Some("satisfied"))
    );
    assert_eq!(
        (blame[1]["session"].as_str(), blame[1]["verdict"]["result"].as_str()),
        (Some("sesn_02bravo"), Some("failed"))
    );
    assert_eq!(blame[1]["verdict"]["score"], 0.0);
    let text = ok(&dreamlog_on(&db, &["memory", "blame", "memstore_02learn", "/memories/refunds.md"], None));
    assert!(text.contains("session sesn_02bravo (failed 0.00)"), "{text}");

    // Drift: grades per hosted memory state, each session at the state its store had when
    // it was created (the empty store; the first lesson; the bad second one).
    let drift: Value =
        serde_json::from_str(&ok(&dreamlog_on(&db, &["--json", "drift", "memstore_02learn"], None))).expect("drift");
    assert_eq!(drift["mismatched"], 0, "{drift}");
    let rows: Vec<(u64, f64)> = drift["states"]
        .as_array()
        .expect("states")
        .iter()
        .map(|r| (r["grades"]["sessions"].as_u64().unwrap_or(0), r["grades"]["mean_score"].as_f64().unwrap_or(-1.0)))
        .collect();
    assert_eq!(rows, vec![(1, 1.0), (1, 0.0), (2, 0.25)], "{drift}");

    // The hosted dream: its new store mirrored as a fork of the input as the dream found
    // it; the dream recorded (input and output states, the sessions it read), not
    // replayable; a failed one recorded too; a running one waits.
    assert_eq!(
        (
            report["dreams"]["listed"].as_u64(),
            report["dreams"]["recorded"].as_u64(),
            report["dreams"]["running"].as_u64()
        ),
        (Some(3), Some(2), Some(1)),
        "{report}"
    );
    let dreamed = report["stores"].as_array().expect("stores").iter().find(|s| s["store"] == "memstore_03dreamed");
    assert_eq!(dreamed.map(|s| s["fork_of"].clone()), Some(json!("memstore_02learn")), "{report}");
    // The fork copied /greeting.md too; the dream left it out (no version names it and the
    // hosted store does not hold it): deleted.
    let dreamed_files = files(&db, "memstore_03dreamed");
    assert_eq!(
        dreamed_files.into_iter().collect::<Vec<_>>(),
        vec![(
            "/memories/refunds.md".to_owned(),
            "Refunds within 30 days of purchase.\nBasic economy fares are not refundable.\n".to_owned()
        )]
    );
    let dreams = json_lines(&ok(&dreamlog_on(&db, &["--json", "dream", "list"], None)));
    let nightly = dreams
        .iter()
        .find(|d| d["config"]["id"] == "drm_01nightly")
        .unwrap_or_else(|| panic!("the nightly dream is listed: {dreams:?}"));
    assert_eq!(
        (nightly["dreamer"].as_str(), nightly["version"].as_str()),
        (Some("anthropic-hosted"), Some("claude-opus-5-5"))
    );
    assert_eq!(nightly["output_store"], "memstore_03dreamed");
    let id = nightly["id"].as_str().expect("id").to_owned();
    let shown = ok(&dreamlog_on(&db, &["dream", "show", &id], None));
    assert!(shown.contains("not replayable"), "{shown}");
    let nightly_event = json_lines(&ok(&dreamlog_on(&db, &["log", "--json"], None)))
        .into_iter()
        .find(|e| e["id"] == json!(id))
        .expect("the dream event");
    assert_eq!(nightly_event["causes"].as_array().map(Vec::len), Some(4), "it cites the four sessions it read");
    let replay = dreamlog_on(&db, &["dream", "replay", "--all"], None);
    assert!(
        replay.status.success(),
        "hosted dreams do not fail replay --all: {}",
        String::from_utf8_lossy(&replay.stdout)
    );
    assert!(String::from_utf8_lossy(&replay.stdout).contains("2 hosted, not replayable"));
    let one = dreamlog_on(&db, &["dream", "replay", &id], None);
    assert!(!one.status.success() && String::from_utf8_lossy(&one.stderr).contains("cannot be replayed"));
    // The fork is reviewed and promoted like a local dream's, onto the hosted store (here:
    // the calls promote would send; tests/hosted_push.rs sends them).
    let diff = ok(&dreamlog_on(&db, &["memory", "diff", "memstore_02learn", "memstore_03dreamed"], None));
    assert!(diff.contains("not refundable"), "{diff}");
    let preview = ok(&hosted(
        &db,
        &standin.url,
        &["memory", "promote", "memstore_03dreamed", "--into", "memstore_02learn", "--dry-run"],
    ));
    assert!(preview.contains("memories/mem_11refunds (/refunds.md)"), "{preview}");
    // Blame of the dreamed store: the copied line keeps its origin, the dream's line names
    // the dream's session.
    let blame = json_lines(&ok(&dreamlog_on(
        &db,
        &["--json", "memory", "blame", "memstore_03dreamed", "/memories/refunds.md"],
        None,
    )));
    assert_eq!(
        (blame[0]["session"].as_str(), blame[1]["session"].as_str()),
        (Some("sesn_01alpha"), Some("sesn_09dream"))
    );

    // A second sync reads no session again and adds nothing.
    let before = log_len(&db);
    let again: Value = serde_json::from_slice(&sync(&db, &standin.url, &["--json"]).stdout).expect("a report");
    assert_eq!(again["sessions"]["unchanged"], 4, "{again}");
    assert_eq!(
        (again["dreams"]["already"].as_u64(), again["dreams"]["running"].as_u64()),
        (Some(2), Some(1)),
        "{again}"
    );
    assert_eq!(log_len(&db), before, "a second sync appended events");

    // A version redacted upstream after it was mirrored: `--redactions` finds it and
    // redacts what was mirrored of it here, once.
    let first_write = stream_events(&db, "memory/memstore_02learn")
        .into_iter()
        .find(|e| e["kind"] == "memory" && e["actor"] == "agent:sesn_01alpha")
        .expect("memver_11's write");
    let versions = world["versions"].as_array_mut().expect("versions");
    let v11 = versions.iter_mut().find(|v| v["id"] == "memver_11").expect("memver_11");
    v11["redacted_at"] = json!("2026-11-06T09:00:00Z");
    v11["redacted_by"] = json!({"type": "user_actor", "user_id": "user_01alice"});
    std::fs::write(dir.path().join("scenario.json"), world.to_string()).expect("redact upstream");
    let plain: Value = serde_json::from_slice(&sync(&db, &standin.url, &["--json"]).stdout).expect("a report");
    assert!(plain["stores"][0].get("redacted_upstream").is_none(), "only asked for: {plain}");
    let out = sync(&db, &standin.url, &["--json", "--redactions"]);
    let checked: Value = serde_json::from_slice(&out.stdout).expect("a report");
    let learn =
        checked["stores"].as_array().expect("stores").iter().find(|s| s["store"] == "memstore_02learn").cloned();
    assert_eq!(learn.map(|s| s["redacted_upstream"].clone()), Some(json!(1)), "{checked}");
    assert_matches_schema(&checked);
    let shown = ok(&dreamlog_on(&db, &["--json", "show", first_write["id"].as_str().expect("id")], None));
    assert!(!shown.contains("Refunds within 30 days"), "the mirrored text is gone: {shown}");
    assert!(shown.contains("redacted"), "{shown}");
    let again: Value =
        serde_json::from_slice(&sync(&db, &standin.url, &["--json", "--redactions"]).stdout).expect("a report");
    let learn = again["stores"].as_array().expect("stores").iter().find(|s| s["store"] == "memstore_02learn").cloned();
    assert_eq!(learn.map(|s| s["redacted_upstream"].clone()), Some(json!(0)), "once: {again}");
    // The file as it is now is untouched (the redacted text was an earlier version's).
    assert_eq!(
        files(&db, "memstore_02learn").get("/memories/refunds.md").map(String::as_str),
        Some("Refunds within 30 days of purchase.\nBasic economy fares are refundable.\n")
    );

    // The hosted world grows: delta gets a new turn; echo starts a call not answered yet;
    // foxtrot answers a call no event made (it cannot be mapped).
    let sessions = world["sessions"].as_array_mut().expect("sessions");
    let delta = sessions.iter_mut().find(|s| s["id"] == "sesn_04delta").expect("delta");
    delta["events"].as_array_mut().expect("events").extend([
        json!({"type": "user.message", "content": [{"type": "text", "text": "And the seat?"}]}),
        json!({"type": "agent.message", "content": [{"type": "text", "text": "Refunded too."}]}),
    ]);
    let agent = json!({"id": "agent_01support", "name": "support", "model": "claude-sonnet-5-5"});
    sessions.push(json!({"id": "sesn_05echo", "agent": agent, "created_at": "2026-11-05T09:00:00Z",
        "memory_store_ids": ["memstore_02learn"], "status": "running", "events": [
            {"type": "user.message", "content": [{"type": "text", "text": "Change my seat."}]},
            {"type": "agent.tool_use", "id": "sevt_05echo_seat", "name": "bash", "input": {"command": "seat 12A"}}]}));
    sessions.push(json!({"id": "sesn_06foxtrot", "agent": agent, "created_at": "2026-11-05T10:00:00Z",
        "status": "idle", "events": [
            {"type": "user.message", "content": [{"type": "text", "text": "Hello."}]},
            {"type": "agent.tool_result", "tool_use_id": "sevt_nowhere", "content": []}]}));
    // Golf: a denied call, a call the agent went on without, an answer routed to a thread
    // (the thread's, not golf's own), then a user message not processed yet.
    sessions.push(json!({"id": "sesn_07golf", "agent": agent, "created_at": "2026-11-05T11:00:00Z",
        "status": "idle", "events": [
            {"type": "user.message", "content": [{"type": "text", "text": "Cancel my booking."}]},
            {"type": "agent.tool_use", "id": "sevt_07golf_rm", "name": "bash", "input": {"command": "cancel B1"}},
            {"type": "user.tool_confirmation", "tool_use_id": "sevt_07golf_rm", "result": "deny",
             "deny_message": "not without a reason"},
            {"type": "agent.tool_use", "id": "sevt_07golf_ls", "name": "bash", "input": {"command": "ls"}},
            {"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_07golf_thread_call",
             "session_thread_id": "sthr_07golf_helper", "content": []},
            {"type": "agent.message", "content": [{"type": "text", "text": "Why cancel?"}]},
            {"type": "session.status_idle", "stop_reason": {"type": "end_turn"}},
            {"type": "user.message", "processed_at": null, "content": [{"type": "text", "text": "I moved."}]}]}));
    std::fs::write(dir.path().join("scenario.json"), world.to_string()).expect("grow the world");
    let grown = sync(&db, &standin.url, &["--json"]);
    assert_eq!(grown.status.code(), Some(1), "an unmapped session fails the run");
    let grown: Value = serde_json::from_slice(&grown.stdout).expect("a report");
    assert_eq!(
        (grown["sessions"]["grown"].as_u64(), grown["sessions"]["mirrored"].as_u64()),
        (Some(1), Some(2)),
        "{grown}"
    );
    let golf = stream_events(&db, "session/sesn_07golf");
    let kinds: Vec<&str> = golf.iter().map(|e| e["kind"].as_str().unwrap_or_default()).collect();
    assert_eq!(
        kinds,
        ["session.start", "message", "message", "action", "message", "action", "message"],
        "the unprocessed message and all after it (the end) wait"
    );
    assert_eq!(
        (golf[3]["body"]["status"].as_str(), golf[3]["body"]["output"].as_str()),
        (Some("error"), Some("not without a reason"))
    );
    assert_eq!(golf[5]["body"]["status"], "unknown", "the call the agent went on without");
    assert_eq!(grown["unmapped"][0]["object"], "sesn_06foxtrot", "{grown}");
    assert!(grown["unmapped"][0]["reason"].as_str().unwrap_or_default().contains("sevt_nowhere"), "{grown}");
    let delta = stream_events(&db, "session/sesn_04delta");
    assert_eq!(delta.iter().filter(|e| e["kind"] == "session.end").count(), 2, "the grown session ends again");
    // Echo's call waits for its result: its message is mirrored, the call and the end not.
    let echo = stream_events(&db, "session/sesn_05echo");
    assert_eq!(
        echo.iter().map(|e| e["kind"].as_str().unwrap_or_default()).collect::<Vec<_>>(),
        ["session.start", "message"]
    );
    // The result arrives and the session ends: the rest follows, nothing changed before.
    let sessions = world["sessions"].as_array_mut().expect("sessions");
    let echo_scenario = sessions.iter_mut().find(|s| s["id"] == "sesn_05echo").expect("echo");
    echo_scenario["status"] = json!("idle");
    echo_scenario["events"].as_array_mut().expect("events").push(json!({"type": "agent.tool_result",
        "tool_use_id": "sevt_05echo_seat", "content": [{"type": "text", "text": "seat 12A"}]}));
    std::fs::write(dir.path().join("scenario.json"), world.to_string()).expect("grow the world");
    let last: Value = serde_json::from_slice(&sync(&db, &standin.url, &["--json"]).stdout).expect("a report");
    assert_eq!(last["sessions"]["grown"], 1, "{last}");
    let echo = stream_events(&db, "session/sesn_05echo");
    assert_eq!(
        echo.iter().map(|e| e["kind"].as_str().unwrap_or_default()).collect::<Vec<_>>(),
        ["session.start", "message", "message", "action", "session.end"]
    );

    // --since: sessions created at or after a time only.
    let fresh = dir.path().join("fresh");
    let since: Value =
        serde_json::from_slice(&sync(&fresh, &standin.url, &["--json", "--since", "2026-11-04T00:00:00Z"]).stdout)
            .expect("a report");
    assert_eq!(since["sessions"]["listed"], 5, "charlie, delta, echo, foxtrot, golf: {since}");
}

/// Lessons over mirrored sessions: twelve tasks, six trials each; the trials that checked
/// the policy passed, those that refunded without checking failed. The evidence dreamer,
/// run over the mirror, writes both lessons (within-task contrasts), and `memory lessons`
/// shows them with the hosted sessions and grades behind them.
#[test]
fn the_evidence_dreamer_learns_from_mirrored_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let mut sessions = Vec::new();
    for n in 0..72u32 {
        let (task, failed) = (n / 6, n % 2 == 0);
        let call = if failed { "issue_refund_without_check" } else { "check_policy" };
        sessions.push(json!({
            "id": format!("sesn_l{n:03}"), "agent": {"id": "agent_l", "name": "support"},
            "created_at": format!("2026-11-{:02}T{:02}:00:00Z", 1 + task, 10 + n % 6),
            "memory_store_ids": ["memstore_lessons"], "metadata": {"task_id": format!("refund-{task}")},
            "events": [
                {"type": "user.message", "content": [{"type": "text", "text": format!("refund request {task}")}]},
                {"type": "user.define_outcome", "outcome_id": format!("outc_l{n}"),
                 "description": "Refund handled per policy", "rubric": {"type": "text", "content": "- policy followed\n"}},
                {"type": "agent.tool_use", "id": format!("sevt_l{n}_a"), "name": call, "input": {"task": task}},
                {"type": "agent.tool_result", "tool_use_id": format!("sevt_l{n}_a"), "content": [{"type": "text", "text": "ok"}]},
                {"type": "agent.tool_use", "id": format!("sevt_l{n}_b"), "name": "lookup_fare", "input": {"task": task}},
                {"type": "agent.tool_result", "tool_use_id": format!("sevt_l{n}_b"), "content": [{"type": "text", "text": "fare"}]},
                {"type": "agent.message", "content": [{"type": "text", "text": "done"}]},
                {"type": "span.outcome_evaluation_end", "outcome_id": format!("outc_l{n}"),
                 "result": if failed { "failed" } else { "satisfied" }, "iteration": 0, "explanation": "checked"},
                {"type": "session.status_idle", "stop_reason": {"type": "end_turn"}}]}));
    }
    let world = json!({"stores": [{"id": "memstore_lessons", "name": "Lessons", "created_at": "2026-10-01T00:00:00Z"}],
                       "versions": [], "sessions": sessions});
    let standin = StandIn::start(&world, dir.path(), 0);
    assert!(sync(&db, &standin.url, &[]).status.success());
    ok(&dreamlog_on(&db, &["dream", "run", "memstore_lessons"], None));
    let lessons = ok(&dreamlog_on(&db, &["memory", "lessons", "memstore_lessons.dream-1"], None));
    assert!(lessons.contains("called `check_policy` passed 36 of 36"), "{lessons}");
    assert!(lessons.contains("called `issue_refund_without_check` passed 0 of 36"), "{lessons}");
    assert!(lessons.contains("In `Refund handled per policy` tasks"), "the outcome names the family: {lessons}");
    assert!(lessons.contains("sesn_l000"), "the hosted sessions behind it: {lessons}");
}

/// A hosted dream's new store is mirrored as a fork only when that can be done right: not
/// while a dream that has just started may still name it; forked from its input whatever
/// order the stores come in; a dream stuck unnamed for long blocks nothing; and a key
/// without the dreams' preview still mirrors its stores.
#[test]
fn a_dreams_new_store_waits_until_it_can_be_forked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    let ago = |minutes: u64| dreamlog::core::time::time_text(now - minutes * 60_000);
    let version = |id: &str, store: &str, path: &str, content: &str, at: &str| {
        json!({"id": id, "memory_store_id": store, "memory_id": format!("mem_{id}"), "operation": "created",
               "path": path, "content": content, "created_at": at,
               "created_by": {"type": "user_actor", "user_id": "user_01alice"}})
    };
    let input = |created: &str| json!({"id": "memstore_in", "name": "In", "created_at": created});
    // A dream started three minutes ago has not named its store; a store made since waits.
    let fresh = json!({
        "stores": [input(&ago(60)), {"id": "memstore_new", "name": "New", "created_at": ago(2)}],
        "versions": [version("memver_in1", "memstore_in", "/a.md", "a\n", &ago(50))],
        "dreams": [{"id": "drm_now", "created_at": ago(3), "status": "running",
                    "inputs": [{"type": "memory_store", "memory_store_id": "memstore_in"}]}]});
    let standin = StandIn::start(&fresh, dir.path(), 0);
    let db = dir.path().join("db");
    let report: Value = serde_json::from_slice(&sync(&db, &standin.url, &["--json"]).stdout).expect("a report");
    let new = report["stores"].as_array().expect("stores").iter().find(|s| s["store"] == "memstore_new").cloned();
    assert!(new.as_ref().and_then(|s| s["deferred"].as_str()).is_some_and(|w| w.contains("still running")), "{report}");
    assert_matches_schema(&report);
    assert!(stream_events(&db, "memory/memstore_new").is_empty(), "nothing of it written");
    drop(standin);

    // An old dream that named its store (and one stuck unnamed for days, which holds up
    // nothing): the store is a fork of the input, even asked for before it.
    let mut world = json!({
        "stores": [input("2026-11-01T00:00:00Z"),
                   {"id": "memstore_out", "name": "Out", "created_at": "2026-11-02T00:05:00Z"},
                   {"id": "memstore_later", "name": "Later", "created_at": "2026-11-03T00:00:00Z"}],
        "versions": [version("memver_in1", "memstore_in", "/a.md", "a\n", "2026-11-01T01:00:00Z"),
                     version("memver_out1", "memstore_out", "/a.md", "a, better\n", "2026-11-02T00:06:00Z"),
                     version("memver_l1", "memstore_later", "/l.md", "l\n", "2026-11-03T00:01:00Z")],
        "dreams": [{"id": "drm_done", "created_at": "2026-11-02T00:00:00Z", "ended_at": "2026-11-02T01:00:00Z",
                    "status": "completed", "outputs": ["memstore_out"],
                    "inputs": [{"type": "memory_store", "memory_store_id": "memstore_in"}]},
                   {"id": "drm_stuck", "created_at": "2026-11-02T12:00:00Z", "status": "pending",
                    "inputs": [{"type": "memory_store", "memory_store_id": "memstore_in"}]}]});
    let dir2 = tempfile::tempdir().expect("tempdir");
    let standin = StandIn::start(&world, dir2.path(), 0);
    let db = dir2.path().join("db");
    let asked = ["--json", "--store", "memstore_out", "--store", "memstore_in", "--store", "memstore_later"];
    let report: Value = serde_json::from_slice(&sync(&db, &standin.url, &asked).stdout).expect("a report");
    assert_matches_schema(&report);
    let by_id =
        |r: &Value, id: &str| r["stores"].as_array().expect("stores").iter().find(|s| s["store"] == id).cloned();
    assert_eq!(by_id(&report, "memstore_out").map(|s| s["fork_of"].clone()), Some(json!("memstore_in")), "{report}");
    assert!(by_id(&report, "memstore_later").is_some_and(|s| s["deferred"].is_null()), "{report}");
    assert_eq!(report["dreams"]["recorded"], 1, "{report}");
    assert_eq!(stream_events(&db, "memory/memstore_out")[0]["kind"], "store.fork");
    // Its input not mirrored by the sync and not in the log: a plain store.
    let alone_db = dir2.path().join("alone");
    let alone: Value =
        serde_json::from_slice(&sync(&alone_db, &standin.url, &["--json", "--store", "memstore_out"]).stdout)
            .expect("a report");
    assert!(alone["stores"][0]["fork_of"].is_null() && alone["stores"][0]["deferred"].is_null(), "{alone}");
    assert_eq!(files(&alone_db, "memstore_out").len(), 1);
    // A key without the dreams' preview: its stores are mirrored, the report says why no dream is.
    world["dreams_forbidden"] = json!(true);
    std::fs::write(dir2.path().join("scenario.json"), world.to_string()).expect("no dreams");
    let other = dir2.path().join("other");
    let done = sync(&other, &standin.url, &["--json", "--no-sessions"]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let report: Value = serde_json::from_slice(&done.stdout).expect("a report");
    assert!(report["dreams"]["unavailable"].as_str().is_some_and(|w| w.contains("403")), "{report}");
    assert_matches_schema(&report);
    assert_eq!(files(&other, "memstore_in").len(), 1);
}

/// A version redacted upstream together with the later version that repeated or replaced
/// its content: the text still leaves the mirror (a later version counts as keeping the
/// text only when it is not redacted itself).
#[test]
fn redacted_text_leaves_the_mirror_even_when_its_successor_is_redacted_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let v = |id: &str, op: &str, path: &str, content: &str, at: &str| {
        json!({"id": id, "memory_store_id": "memstore_s", "memory_id": "mem_s", "operation": op, "path": path,
               "content": content, "created_at": at, "created_by": {"type": "user_actor", "user_id": "user_01bob"}})
    };
    let mut world = json!({"stores": [{"id": "memstore_s", "name": "S", "created_at": "2026-11-01T00:00:00Z"}],
                           "versions": [v("memver_s1", "created", "/s.md", "the vault code is 4417\n", "2026-11-01T01:00:00Z")]});
    let standin = StandIn::start(&world, dir.path(), 0);
    assert!(sync(&db, &standin.url, &[]).status.success());
    assert!(ok(&dreamlog_on(&db, &["log", "--json"], None)).contains("4417"));
    // Upstream: moved (same content), then both versions redacted.
    let versions = world["versions"].as_array_mut().expect("versions");
    versions.push(v("memver_s2", "modified", "/moved.md", "the vault code is 4417\n", "2026-11-01T02:00:00Z"));
    for x in versions.iter_mut() {
        x["redacted_at"] = json!("2026-11-01T03:00:00Z");
        x["redacted_by"] = json!({"type": "user_actor", "user_id": "user_01alice"});
    }
    std::fs::write(dir.path().join("scenario.json"), world.to_string()).expect("redact upstream");
    let out = sync(&db, &standin.url, &["--json", "--redactions"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a report");
    assert_eq!(report["stores"][0]["redacted_upstream"], 1, "{report}");
    assert!(!ok(&dreamlog_on(&db, &["log", "--json"], None)).contains("4417"), "the text left the log");
}
