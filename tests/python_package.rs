//! The Python package (`python/`) against a real `dreamlog serve`: typed (mypy strict),
//! and its `DreamlogMemoryTool` driven by the official Anthropic SDK's tool runner, with
//! the Messages API played by a loopback stand-in speaking its wire format (the one
//! external service here). The model's memory tool calls reach the server verbatim, the
//! model gets dreamlog's exact texts (a refusal with `is_error`), and every change is
//! recorded with its session and agent.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use common::model_api::{message, serve, Script};
use common::server::{client, get, Server};
use serde_json::{json, Value};
use tempfile::tempdir;

#[test]
fn the_package_type_checks_strictly() {
    let out = Command::new("mypy")
        .args(["--config-file", "python/pyproject.toml", "python/src"])
        .current_dir(common::root())
        .output()
        .expect("mypy (tools/bootstrap.sh installs it)");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_sdk_tool_runner_uses_dreamlog_as_its_memory() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let tool_use = |id: &str, input: Value| json!([{"type": "tool_use", "id": id, "name": "memory", "input": input}]);
    let script = Arc::new(Mutex::new(Script::default()));
    {
        let mut s = script.lock().unwrap();
        s.replies.push_back(message(tool_use("toolu_1", json!({"command": "view", "path": "/memories"})), "tool_use"));
        s.replies.push_back(message(
            tool_use(
                "toolu_2",
                json!({"command": "create", "path": "/memories/refunds.md", "file_text": "- Verify identity first.\n"}),
            ),
            "tool_use",
        ));
        s.replies.push_back(message(
            tool_use(
                "toolu_3",
                json!({"command": "str_replace", "path": "/memories/nope.md", "old_str": "a", "new_str": "b"}),
            ),
            "tool_use",
        ));
        s.replies.push_back(message(json!([{"type": "text", "text": "Noted."}]), "end_turn"));
    }
    let api = serve(script.clone());
    let out = Command::new("python3")
        .args(["tools/python/sdk_agent.py", "--url", &server.base, "--store", "support", "--session", "ticket-42"])
        .args(["--agent", "support-bot", "--api-base", &format!("http://{api}"), "Remember: verify identity."])
        .env("ANTHROPIC_API_KEY", "test-key")
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((r["text"].as_str(), r["turns"].as_u64()), (Some("Noted."), Some(4)), "{r}");

    // What the model was sent back: dreamlog's texts, verbatim; the refusal as an error.
    let received = &script.lock().unwrap().received;
    assert_eq!(received.len(), 4);
    assert_eq!(received[0].1["tools"][0], json!({"type": "memory_20250818", "name": "memory"}));
    let result = |i: usize| received[i].1["messages"].as_array().unwrap().last().unwrap()["content"][0].clone();
    let view = result(1);
    assert_eq!(view["tool_use_id"], "toolu_1");
    assert!(view["content"].as_str().unwrap().starts_with("Here're the files and directories"), "{view}");
    assert_eq!(result(2)["content"], "File created successfully at: /memories/refunds.md");
    let refused = result(3);
    assert_eq!(refused["is_error"], true, "{refused}");
    assert!(refused["content"].as_str().unwrap().contains("/memories/nope.md does not exist"), "{refused}");

    // The server recorded the change with its session and agent.
    let c = client();
    let (_, history) = get(&c, &server.url("/v1/memory/support/history"), None);
    let events: Vec<&Value> = history["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "memory").collect();
    assert_eq!(events.len(), 1, "only the create changed the store: {history}");
    assert_eq!(events[0]["actor"], "agent:support-bot");
    assert_eq!(events[0]["body"]["session"], "ticket-42");
    assert_eq!(r["last_event"]["id"], Value::Null, "the last call (refused) wrote nothing");
    let (_, view) = get(&c, &server.url("/v1/memory/support/view?path=/memories/refunds.md"), None);
    assert!(view["text"].as_str().unwrap().contains("Verify identity first."), "{view}");
    assert!(server.stop().success());
}

/// Issue 30.5, from the Python client: a tail the server drops for its byte budget raises
/// `DreamlogError` of type `slow_subscriber` after every event before the position it
/// names, and a tail from that position goes on without a gap.
#[test]
fn the_python_tail_says_where_to_resume_when_the_server_drops_it() {
    let dir = tempdir().unwrap();
    let cfg = dir.path().join("server.json");
    std::fs::write(&cfg, json!({"max_tail_bytes": 512 << 10}).to_string()).unwrap();
    let server = Server::start(&dir.path().join("db"), &["--config", cfg.to_str().unwrap()]);
    let c = client();
    // 64 MB: more than the sockets take (a client that has read grows its receive
    // buffer up to 32 MiB here), so the slow tail's read-ahead fills in the server.
    let big = "z".repeat(80 << 10);
    for batch in 0..16 {
        let events: Vec<Value> = (0..50)
            .map(|i| json!({"kind": "note", "actor": "agent:a", "body": {"type": "big", "json": {"i": batch * 50 + i, "text": big}}}))
            .collect();
        let r = c.post(server.url("/v1/events")).json(&json!({"stream": "big", "events": events})).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let script = r#"
import sys, time, urllib.request
from dreamlog import Client, DreamlogError
url = sys.argv[1]
c = Client(url)
tail = c.tail(0)
seen = [next(tail).position]
deadline = time.time() + 60
time.sleep(3)                        # this client reads nothing for a while
others = [urllib.request.urlopen(url + "/v1/tail?from=0") for _ in range(4)]
time.sleep(1.5)
try:
    for ev in tail:
        seen.append(ev.position)
        if time.time() > deadline or ev.position == 799:
            sys.exit(f"read {len(seen)} events and no error")
    sys.exit("the tail ended without an error")
except DreamlogError as e:
    assert e.type == "slow_subscriber", e
    at = e.body["position"]
    assert seen == list(range(at)), (seen[:5], len(seen), at)
    again = c.tail(at)
    assert [next(again).position for _ in range(3)] == [at, at + 1, at + 2]
    print(at)
"#;
    let out = Command::new("python3").args(["-c", script, &server.base]).current_dir(common::root()).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let at: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(at > 0 && at < 800, "dropped at {at}");
}
