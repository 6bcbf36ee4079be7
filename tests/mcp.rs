//! dreamlog's MCP server driven by the official MCP Python SDK (`mcp`, pinned) as the
//! client — `dreamlog mcp` over stdio and `dreamlog serve`'s `/v1/mcp` over streamable
//! HTTP: the initialize handshake, the tool list, the memory tool with dreamlog's
//! texts (a refusal as `isError`), changes recorded with the server's actor and session,
//! and the read-only audit tools answering from the same store.

mod common;

use std::process::Command;

use common::server::Server;
use serde_json::Value;
use tempfile::tempdir;

/// What the check script saw, the same over either transport.
fn check(r: &Value) {
    assert_eq!(r["protocol_version"], "2025-11-25");
    assert_eq!(r["server"], "dreamlog");
    let tools = r["tools"].as_object().unwrap();
    assert_eq!(tools.len(), 7, "{tools:?}");
    assert_eq!(tools["memory"]["read_only"], false);
    for t in ["memory_history", "memory_blame", "memory_diff", "memory_lessons", "drift", "memory_view_at"] {
        assert_eq!(tools[t]["read_only"], true, "{t}");
    }
    let calls = r["calls"].as_array().unwrap();
    let text = |i: usize| calls[i]["text"].as_str().unwrap().to_owned();
    let err = |i: usize| calls[i]["is_error"].as_bool().unwrap();
    assert!(text(0).starts_with("Here're the files and directories") && !err(0), "{}", text(0));
    assert_eq!((text(1).as_str(), err(1)), ("File created successfully at: /memories/notes.md", false));
    assert!(text(2).starts_with("The memory file has been edited.") && !err(2), "{}", text(2));
    assert!(err(3) && text(3).contains("/memories/missing.md does not exist"), "{}", text(3));
    // History: two changes, recorded as the MCP client's agent with its session.
    let history: Vec<Value> = serde_json::from_str(&text(4)).unwrap();
    assert_eq!(history[0]["body"]["type"], "memory.rules", "a new store records its rules first");
    let history: Vec<&Value> = history.iter().filter(|e| e["kind"] == "memory").collect();
    assert_eq!(history.len(), 2);
    for e in &history {
        assert_eq!((e["actor"].as_str(), e["body"]["session"].as_str()), (Some("agent:claude-code"), Some("mcp-1")));
    }
    let blame: Vec<Value> = serde_json::from_str(&text(5)).unwrap();
    assert_eq!(blame.len(), 1);
    assert_eq!(blame[0]["text"], "- refunds need an identity check first");
    assert_eq!(blame[0]["id"], history[1]["id"], "the line was last written by the str_replace");
    let diff: Value = serde_json::from_str(&text(6)).unwrap();
    assert_eq!(
        diff["changed"].as_array().map(Vec::len).unwrap_or(0) + diff["added"].as_array().map(Vec::len).unwrap_or(0),
        1,
        "{diff}"
    );
    assert!(text(7).contains("identity check") && !text(7).contains("first"), "as of the create: {}", text(7));
    assert!(!err(8) && !err(9), "lessons and drift answer: {} / {}", text(8), text(9));
    assert!(err(10) && text(10).contains("path is required"), "{}", text(10));
}

fn run_check(args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(common::root().join("tools/python/mcp_check.py"))
        .args(args)
        .output()
        .expect("python3 (tools/bootstrap.sh installs mcp)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_official_mcp_client_uses_the_memory_and_audit_tools_over_stdio() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    check(&run_check(&[env!("CARGO_BIN_EXE_dreamlog"), db.to_str().unwrap(), "notes"]));
    // The same store, read by the CLI after the MCP server exited.
    let out = common::dreamlog_on(&db, &["memory", "view", "notes", "/memories/notes.md"], None);
    assert!(common::ok(&out).contains("identity check first"));
}

#[test]
fn the_official_mcp_client_uses_the_server_over_streamable_http() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    check(&run_check(&["--http", &server.base, "notes"]));
    let (_, view) = common::server::get(
        &common::server::client(),
        &server.url("/v1/memory/notes/view?path=/memories/notes.md"),
        None,
    );
    assert!(view["text"].as_str().unwrap().contains("identity check first"), "{view}");
    assert!(server.stop().success());
}
