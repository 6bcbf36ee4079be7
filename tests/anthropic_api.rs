//! The Managed-Agents memory API (`/anthropic/v1/…`) driven by the official `anthropic`
//! Python SDK (pinned in tools/requirements.txt) against a real `dreamlog serve`: memory
//! stores, memories (409 preconditions, pagination past a page, renames), memory
//! versions and dreams (create → completed, a canceled dream that wrote nothing). The
//! dreams' model is the loopback stand-in for the Messages API (the one external
//! service); everything of ours is real. Then dreamlog's own audit tools — blame, diff,
//! revert, drift — read what the SDK wrote.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::model_api::{message, serve, Shared};
use common::server::{client, get, post, Server};
use serde_json::{json, Value};
use tempfile::tempdir;

/// Runs one part of tests/python/managed_api.py; its last stdout line is JSON.
fn sdk(server: &Server, part: &str, sessions: &[&str]) -> Value {
    let out = Command::new("python3")
        .args(["tests/python/managed_api.py", "--url", &server.base, "--part", part])
        .args(["--sessions", &sessions.join(",")])
        .current_dir(common::root())
        .output()
        .expect("python3 with the anthropic SDK (tools/bootstrap.sh installs it)");
    assert!(
        out.status.success(),
        "part {part}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON summary")
}

/// Graded sessions a dream can read.
fn graded_sessions(server: &Server, ids: &[&str]) {
    let c = client();
    for (i, s) in ids.iter().enumerate() {
        let batch = json!({"stream": format!("session/{s}"), "events": [
            {"kind": "session.start", "actor": "agent:bot", "body": {"session": s, "agent": "bot", "task": "refund"}},
            {"kind": "action", "actor": "agent:bot", "body": {"session": s, "name": "issue_refund", "input": {}, "output": "ok", "status": "ok"}},
            {"kind": "grade", "actor": "evaluator:e", "body": {"session": s, "rubric": "r", "evaluator": "e",
                "score": if i % 2 == 0 { 1.0 } else { 0.0 }, "result": if i % 2 == 0 { "satisfied" } else { "failed" }}}]});
        let (status, body) = post(&c, &server.url("/v1/events"), None, &batch);
        assert_eq!(status, 200, "{body}");
    }
}

fn llm_server(dir: &std::path::Path, model: std::net::SocketAddr) -> Server {
    std::env::set_var("DREAMLOG_TEST_DREAM_KEY", "sk-dream");
    let config = json!({
        "dreamers": {"claude": {"dreamer": "llm", "tunable": ["model", "instructions"],
            "config": {"base_url": format!("http://{model}"), "api_key_env": "DREAMLOG_TEST_DREAM_KEY",
                       "model": "claude-default", "retry_base_ms": 1, "max_retries": 0}}},
        "anthropic_dreamer": "claude"
    });
    let path = dir.join("server.json");
    std::fs::write(&path, config.to_string()).unwrap();
    Server::start(&dir.join("db"), &["--config", path.to_str().unwrap()])
}

#[test]
fn the_official_sdk_drives_memory_stores_memories_and_versions() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let out = sdk(&server, "memory", &[]);
    let store = out["store"].as_str().unwrap();
    for k in ["path_conflict", "precondition_failed", "bad_prefix", "bad_path"] {
        assert!(out[k].as_str().is_some_and(|m| !m.is_empty()), "{k}: a message naming the problem: {out}");
    }
    assert!(out["precondition_failed"].as_str().unwrap().contains("content_sha256"), "{out}");
    assert!(out["bad_path"].as_str().unwrap().contains("no-slash.md"), "{out}");

    // Every call is dreamlog events: the store is dreamlog store `memstore_…`.
    let c = client();
    let (status, history) = get(&c, &server.url(&format!("/v1/memory/{store}/history")), None);
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        history["events"].as_array().unwrap().len(),
        3 + 33,
        "rules, created and updated notes, then 33 commands"
    );
    // Blame names the event behind the version the SDK saw.
    let (_, versions) = get(
        &c,
        &server.url(&format!(
            "/anthropic/v1/memory_stores/{store}/memory_versions?memory_id={}",
            out["memory_id"].as_str().unwrap()
        )),
        None,
    );
    let newest = &versions["data"][0];
    let (status, blame) =
        get(&c, &server.url(&format!("/v1/memory/{store}/blame?path=/memories/policies/refund.md")), None);
    assert_eq!(status, 200, "{blame}");
    // The line came with the first content update (version 4 of 5, newest first); the
    // whole-text writes since kept it, as blame keeps unchanged lines' origins.
    let introduced = &versions["data"][3];
    assert_eq!(
        (introduced["operation"].as_str(), introduced["path"].as_str()),
        (Some("modified"), Some("/refunds/policy.md"))
    );
    assert_eq!(blame["lines"][0]["text"], "Refund within 30 days.");
    assert_eq!(blame["lines"][0]["id"], introduced["dreamlog_event_id"], "{blame} {introduced}");
    // Diff between two points of the store.
    let first_position = versions["data"].as_array().unwrap().last().unwrap()["dreamlog_position"].as_u64().unwrap();
    let (status, diff) = get(&c, &server.url(&format!("/v1/memory/{store}/diff?from={first_position}&to=head")), None);
    assert_eq!(status, 200, "{diff}");
    // Moved and rewritten since the first version: gone from one path, at another.
    assert!(diff["added"].to_string().contains("/memories/policies/refund.md"), "{diff}");
    assert_eq!(diff["removed"], json!(["/memories/refunds/policy.md"]), "{diff}");
    // Revert the last write: the API sees the content come back, as a new version.
    let (status, reverted) = post(
        &c,
        &server.url(&format!("/v1/memory/{store}/revert")),
        None,
        &json!({"event": newest["dreamlog_event_id"], "reason": "bad lesson"}),
    );
    assert_eq!(status, 200, "{reverted}");
    let memory = out["memory_id"].as_str().unwrap();
    let (_, m) = get(&c, &server.url(&format!("/anthropic/v1/memory_stores/{store}/memories/{memory}")), None);
    assert_eq!(m["content"], "Verify identity first.\nRefund within 30 days.\n", "{m}");
    let (_, after) =
        get(&c, &server.url(&format!("/anthropic/v1/memory_stores/{store}/memory_versions?memory_id={memory}")), None);
    assert_eq!(after["data"][0]["operation"], "modified");
    assert_eq!(after["data"].as_array().unwrap().len(), 6, "the revert is a version too: {after}");
    // Drift reads the store like any other.
    let (status, drift) = get(&c, &server.url(&format!("/v1/drift/{store}")), None);
    assert_eq!(status, 200, "{drift}");
    // A deleted store is hidden from the API; its events stay in the log.
    let deleted = out["deleted_store"].as_str().unwrap();
    let (status, kept) = get(&c, &server.url(&format!("/v1/streams/memory/{deleted}")), None);
    assert_eq!(status, 200);
    assert_eq!(kept["events"].as_array().unwrap().len(), 3, "rules, fields, the delete note: {kept}");
    // Errors in the API's envelope, also for routes it does not have.
    let (status, e) = get(&c, &server.url("/anthropic/v1/nope"), None);
    assert_eq!(
        (status, e["type"].as_str(), e["error"]["type"].as_str()),
        (404, Some("error"), Some("not_found_error"))
    );
    let (status, verify) = post(&c, &server.url("/v1/verify"), None, &json!({"deep": true}));
    assert_eq!(status, 200, "{verify}");
    assert_eq!(verify["problems"], json!([]), "{verify}");
    assert_eq!(verify["redacted"], 1, "the version the SDK redacted: {verify}");
}

#[test]
fn the_official_sdk_runs_a_dream_to_completion_and_cancels_one_that_writes_nothing() {
    let dir = tempdir().unwrap();
    let script: Shared = Arc::default();
    {
        let mut s = script.lock().unwrap();
        s.replies.push_back(message(
            json!([{"type": "tool_use", "id": "toolu_1", "name": "memory", "input": {"command": "create",
                     "path": "/memories/dreamed.md", "file_text": "- Check the refund window first.\n"}}]),
            "tool_use",
        ));
        s.replies.push_back(message(json!([{"type": "text", "text": "Done."}]), "end_turn"));
    }
    let model = serve(script.clone());
    let server = llm_server(dir.path(), model);
    graded_sessions(&server, &["s1", "s2", "s3"]);
    let out = sdk(&server, "dream", &["s1", "s2"]);
    // The model the request named ran the dream; usage is the model's.
    let received = script.lock().unwrap().received.clone();
    assert_eq!(received.len(), 2, "two model turns");
    assert_eq!(received[0].1["model"], "claude-opus-dreamer", "the request's model is used");
    let system = received[0].1["system"].as_str().unwrap();
    assert!(system.ends_with("Instructions for this dream: Keep lessons short."), "{system}");
    let digest = received[0].1["messages"][0]["content"].as_str().unwrap();
    assert!(digest.contains("s1") && digest.contains("s2") && !digest.contains("### session s3"), "{digest}");
    assert_eq!(out["usage"]["input_tokens"], 200);
    assert_eq!(out["usage"]["output_tokens"], 40);
    // The dream is a dreamlog dream: listed, shown, replayed offline to the same bytes.
    let c = client();
    let (_, dreams) = get(&c, &server.url("/v1/dreams"), None);
    let d = dreams["dreams"].as_array().unwrap().iter().find(|d| d["output_store"] == out["output_store"]).cloned();
    let d = d.unwrap_or_else(|| panic!("the dream in /v1/dreams: {dreams}"));
    assert_eq!(d["store"], out["input_store"]);
    assert_eq!(d["config"]["model"], "claude-opus-dreamer", "{d}");
    assert_eq!(d["config"]["instructions"], "Keep lessons short.", "{d}");
    let (status, replay) =
        post(&c, &server.url(&format!("/v1/dreams/{}/replay", d["id"].as_str().unwrap())), None, &json!({}));
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["identical"], true, "{replay}");

    // A slow model: the dream is canceled while it runs and writes nothing.
    script.lock().unwrap().delay_ms = 3000;
    script.lock().unwrap().replies.push_back(message(
        json!([{"type": "tool_use", "id": "toolu_2", "name": "memory", "input": {"command": "create",
                 "path": "/memories/late.md", "file_text": "- too late\n"}}]),
        "tool_use",
    ));
    script.lock().unwrap().replies.push_back(message(json!([{"type": "text", "text": "Done."}]), "end_turn"));
    let out = sdk(&server, "cancel", &["s1", "s3"]);
    let store = out["store"].as_str().unwrap();
    // Wait for the job to end (the server counts the dreams it runs): it must have seen
    // the cancel and written nothing.
    let running = || common::server::metric(&server, None, "dreamlog_dream_jobs_running{tenant=\"default\"}");
    let started = std::time::Instant::now();
    while running() > 0.0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the canceled dream's job never ended");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (_, events) = get(&c, &server.url(&format!("/v1/streams/memory/{store}")), None);
    let kinds: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["note", "note", "memory"], "rules, fields, the one memory the SDK wrote: {events}");
    let (_, dream) = get(&c, &server.url(&format!("/anthropic/v1/dreams/{}", out["dream"].as_str().unwrap())), None);
    assert_eq!(dream["status"], "canceled", "a final status never changes: {dream}");
}

#[test]
fn api_dreams_run_the_evidence_dreamer_by_default_and_survive_a_restart() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let server = Server::start(&db, &[]);
    graded_sessions(&server, &["a1", "a2", "a3", "a4"]);
    let c = client();
    let (status, store) = post(&c, &server.url("/anthropic/v1/memory_stores"), None, &json!({"name": "E"}));
    assert_eq!(status, 200, "{store}");
    let id = store["id"].as_str().unwrap();
    let body = json!({"inputs": [{"type": "memory_store", "memory_store_id": id},
                                 {"type": "sessions", "session_ids": ["a4", "a1", "a2"]}],
                      "model": "any", "output_behavior": {"type": "update_existing", "memory_store_id": id}});
    let (status, d) = post(&c, &server.url("/anthropic/v1/dreams"), None, &body);
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["inputs"][1]["session_ids"], json!(["a1", "a2", "a4"]), "sorted, as the API answers");
    let url = server.url(&format!("/anthropic/v1/dreams/{}", d["id"].as_str().unwrap()));
    let mut done = Value::Null;
    for _ in 0..200 {
        done = get(&c, &url, None).1;
        if done["status"] != "pending" && done["status"] != "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(done["dreamlog_dreamer"], "evidence", "{done}");
    assert_eq!(done["status"], "completed", "three graded sessions: the dream runs: {done}");
    assert_eq!(done["outputs"][0]["memory_store_id"], id, "update_existing writes into the input: {done}");
    assert!(done["dreamlog_dream_id"].is_string(), "{done}");
    assert_eq!(done["usage"]["input_tokens"], 0, "no model ran");
    // A dream that fails (a session with no grade: nothing to learn from) writes nothing.
    let ungraded = json!({"stream": "session/u1", "events": [
        {"kind": "session.start", "actor": "agent:bot", "body": {"session": "u1", "agent": "bot", "task": "refund"}}]});
    assert_eq!(post(&c, &server.url("/v1/events"), None, &ungraded).0, 200);
    let (_, before) = get(&c, &server.url(&format!("/v1/streams/memory/{id}")), None);
    let body = json!({"inputs": [{"type": "memory_store", "memory_store_id": id},
                                 {"type": "sessions", "session_ids": ["u1"]}], "model": "any"});
    let (status, d) = post(&c, &server.url("/anthropic/v1/dreams"), None, &body);
    assert_eq!(status, 200, "{d}");
    let url = server.url(&format!("/anthropic/v1/dreams/{}", d["id"].as_str().unwrap()));
    let mut failed = Value::Null;
    for _ in 0..200 {
        failed = get(&c, &url, None).1;
        if failed["status"] != "pending" && failed["status"] != "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        (failed["status"].as_str(), failed["error"]["type"].as_str()),
        (Some("failed"), Some("no_graded_sessions")),
        "{failed}"
    );
    let (_, after) = get(&c, &server.url(&format!("/v1/streams/memory/{id}")), None);
    assert_eq!(after["events"], before["events"], "a failed dream wrote nothing into the store");
    // Unknown sessions are refused before anything runs.
    let bad = json!({"inputs": [{"type": "memory_store", "memory_store_id": id},
                                {"type": "sessions", "session_ids": ["nope"]}], "model": "m"});
    let (status, e) = post(&c, &server.url("/anthropic/v1/dreams"), None, &bad);
    assert_eq!((status, e["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("nope"), "{e}");
    let _ = server.stop();
    // A dream that was pending when the server stopped ends as `failed`, honestly.
    let out = common::dreamlog_on(
        &db,
        &["append", "--stream", "anthropic.dream/drm_stuck"],
        Some(&json!({"kind": "note", "actor": "system:test", "body": {"type": "anthropic.dream", "json": {"op": "created",
            "dreamer": "evidence", "spec": {"store": id, "sessions": ["a1"], "model": "m", "speed": "standard"}}}}).to_string()),
    );
    assert!(out.status.success(), "{}", common::fails(&out));
    let server = Server::start(&db, &[]);
    let (_, stuck) = get(&c, &server.url("/anthropic/v1/dreams/drm_stuck"), None);
    assert_eq!(
        (stuck["status"].as_str(), stuck["error"]["type"].as_str()),
        (Some("failed"), Some("interrupted")),
        "{stuck}"
    );
}
