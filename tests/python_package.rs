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
