//! `dreamlog mcp`: a Model Context Protocol server over stdio (newline-delimited JSON-RPC
//! 2.0, the initialize handshake of protocol revisions 2024-11-05 to 2025-11-25), a thin
//! surface over the one service API; `dreamlog serve` offers the same over streamable
//! HTTP at `/v1/mcp` (JSON answers to POSTs, no server-initiated stream). It offers the Claude memory tool over one memory
//! store (every change recorded with the server's actor and session) and read-only audit
//! tools: the store's history, blame, diff, lessons, drift and a view as of any point.

use std::io::{BufRead, Write};

use serde_json::{json, Value};

use crate::core::Actor;
use crate::error::{Error, Result};
use crate::service::{DiffQuery, DriftQuery, MemoryView, PathQuery, Service, ToolContext, ViewQuery};

/// Protocol revisions this server speaks, oldest first (all by the initialize handshake).
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// What the server serves: one store, and who its changes are recorded as.
#[derive(Clone, Debug)]
pub struct McpOptions {
    /// The memory store the tools work on.
    pub store: String,
    /// The actor memory changes are recorded as.
    pub actor: Actor,
    /// The session memory changes are recorded with, if any.
    pub session: Option<String>,
}

const SERVER_NAME: &str = "dreamlog";

fn tool_list() -> Value {
    let read_only =
        json!({"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false});
    let point = json!({"type": "string", "description": "a point of the log: position, event id (or unique prefix), tag, RFC 3339 time, or head"});
    json!([
        {
            "name": "memory",
            "title": "Memory",
            "description": "The Claude memory tool (memory_20250818) over a dreamlog memory store: view, create, str_replace, insert, delete and rename files under /memories. Every change is recorded as an immutable event (who, when, from which session) that can be blamed, diffed and reverted.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "delete", "rename"]},
                    "path": {"type": "string", "description": "a path under /memories"},
                    "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                    "file_text": {"type": "string"},
                    "old_str": {"type": "string"},
                    "new_str": {"type": "string"},
                    "insert_line": {"type": "integer", "minimum": 0},
                    "insert_text": {"type": "string"},
                    "old_path": {"type": "string"},
                    "new_path": {"type": "string"}
                },
                "required": ["command"]
            },
            "annotations": {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": false}
        },
        {
            "name": "memory_view_at",
            "title": "Memory as of a point",
            "description": "The memory tool's view of a file or directory as the store was at a point of the log.",
            "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}, "at": point}, "required": ["at"]},
            "annotations": read_only
        },
        {
            "name": "memory_history",
            "title": "Memory history",
            "description": "Every change of the memory store (or of one path), in log order: position, id, time, actor, session and command.",
            "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}},
            "annotations": read_only
        },
        {
            "name": "memory_blame",
            "title": "Memory blame",
            "description": "Each line of a memory file with the event, time, actor and session that wrote it, and the dream and evidence (grades, sessions) behind it.",
            "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}, "at": point}, "required": ["path"]},
            "annotations": read_only
        },
        {
            "name": "memory_diff",
            "title": "Memory diff",
            "description": "How the memory store changed between two points (default: from the start to head), or how it differs from another store.",
            "inputSchema": {"type": "object", "properties": {"from": point, "to": point, "other": {"type": "string", "description": "another store to compare with"}, "at": point}},
            "annotations": read_only
        },
        {
            "name": "memory_lessons",
            "title": "Lessons",
            "description": "Each lesson line with the dream and evidence behind it and the grades of its task family's sessions before and after it.",
            "inputSchema": {"type": "object", "properties": {"at": point}},
            "annotations": read_only
        },
        {
            "name": "drift",
            "title": "Drift",
            "description": "Grades per memory state of the store, and each change whose sessions graded worse beyond the 95% interval (with the command that undoes it).",
            "inputSchema": {"type": "object", "properties": {}},
            "annotations": read_only
        }
    ])
}

/// A JSON-RPC error.
struct RpcError {
    code: i64,
    message: String,
}

fn rpc_err(code: i64, message: impl Into<String>) -> RpcError {
    RpcError { code, message: message.into() }
}

fn text_result(text: String, is_error: bool) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": is_error})
}

fn str_arg(args: &Value, key: &str) -> Option<String> {
    args.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn pretty(v: impl serde::Serialize) -> String {
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Runs one tool. A tool that refuses, or an error of ours, is a result with `isError`
/// (the model can read it); only an unknown tool is a protocol error.
fn call_tool(svc: &dyn Service, opts: &McpOptions, name: &str, args: &Value) -> std::result::Result<Value, RpcError> {
    let store = opts.store.as_str();
    let answer: Result<String> = match name {
        "memory" => {
            let context = ToolContext {
                actor: Some(opts.actor.clone()),
                session: opts.session.clone(),
                precondition: None,
                causes: Vec::new(),
            };
            return Ok(match svc.memory_tool(store, args, &context) {
                Ok(a) => text_result(a.text, a.error.is_some()),
                Err(e) => text_result(format!("Error: {e}"), true),
            });
        }
        "memory_view_at" => {
            let q = ViewQuery { path: str_arg(args, "path"), at: str_arg(args, "at"), range: None };
            svc.memory_view(store, &q).map(|v| match v {
                MemoryView::Shown { text, .. } => text,
                MemoryView::Refused { message, .. } => message,
            })
        }
        "memory_history" => svc
            .memory_history(store, &PathQuery { path: str_arg(args, "path"), at: None })
            .map(|events| pretty(events.iter().map(|e| e.to_json()).collect::<Vec<_>>())),
        "memory_blame" => match str_arg(args, "path") {
            None => return Ok(text_result("Error: path is required".into(), true)),
            Some(path) => svc.memory_blame(store, &PathQuery { path: Some(path), at: str_arg(args, "at") }).map(pretty),
        },
        "memory_diff" => {
            let q = DiffQuery {
                other: str_arg(args, "other"),
                from: str_arg(args, "from"),
                to: str_arg(args, "to"),
                at: str_arg(args, "at"),
            };
            svc.memory_diff(store, &q).map(pretty)
        }
        "memory_lessons" => svc.memory_lessons(store, &PathQuery { path: None, at: str_arg(args, "at") }).map(pretty),
        "drift" => svc.drift(store, &DriftQuery::default()).map(pretty),
        other => return Err(rpc_err(-32602, format!("unknown tool {other:?}"))),
    };
    Ok(match answer {
        Ok(text) => text_result(text, false),
        Err(e) => text_result(format!("Error: {e}"), true),
    })
}

/// Whether a message (or any message of a batch) calls the memory tool, which changes
/// the store (the HTTP transport checks the caller may write).
pub(crate) fn writes(msg: &Value) -> bool {
    match msg {
        Value::Array(batch) => batch.iter().any(writes),
        m => {
            m.get("method").and_then(Value::as_str) == Some("tools/call")
                && m.pointer("/params/name").and_then(Value::as_str) == Some("memory")
        }
    }
}

/// Answers one message or batch (`None` when it held only notifications).
pub(crate) fn answer(svc: &dyn Service, opts: &McpOptions, msg: &Value) -> Option<Value> {
    match msg {
        Value::Array(batch) => {
            let answers: Vec<Value> = batch.iter().filter_map(|m| handle(svc, opts, m)).collect();
            (!answers.is_empty()).then_some(Value::Array(answers))
        }
        m => handle(svc, opts, m),
    }
}

/// Answers one request (`None` for a notification).
fn handle(svc: &dyn Service, opts: &McpOptions, msg: &Value) -> Option<Value> {
    let id = msg.get("id").cloned();
    let method = msg.get("method").and_then(Value::as_str);
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    let version = msg.get("jsonrpc");
    let result: std::result::Result<Value, RpcError> = match method {
        // JSON-RPC 2.0 only (a message of another version is not ours to guess at).
        _ if version != Some(&json!("2.0")) => Err(rpc_err(
            -32600,
            format!(
                "invalid request: \"jsonrpc\" must be \"2.0\", not {}",
                version.map_or_else(|| "missing".to_owned(), Value::to_string)
            ),
        )),
        None if id.is_some() => Err(rpc_err(-32600, "a request needs a method")),
        None => return None, // a response to nothing we asked: ignore
        Some(m) if id.is_none() => {
            // Notifications (initialized, cancelled, …) need no answer.
            let _ = m;
            return None;
        }
        Some("initialize") => {
            let asked = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("");
            let version = if PROTOCOL_VERSIONS.contains(&asked) { asked } else { PROTOCOL_VERSIONS[3] };
            Ok(json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": {"name": SERVER_NAME, "title": "dreamlog memory", "version": env!("CARGO_PKG_VERSION")},
                "instructions": format!("Memory store {:?} of a dreamlog event store: use the `memory` tool as the Claude memory tool; every change is recorded and can be audited with the read-only tools.", opts.store)
            }))
        }
        Some("ping") => Ok(json!({})),
        Some("tools/list") => Ok(json!({"tools": tool_list()})),
        Some("tools/call") => match params.get("name").and_then(Value::as_str) {
            None => Err(rpc_err(-32602, "tools/call needs params.name")),
            Some(name) => {
                let args = params.get("arguments").cloned().unwrap_or_else(|| json!({}));
                call_tool(svc, opts, name, &args)
            }
        },
        Some(other) => Err(rpc_err(-32601, format!("method not found: {other}"))),
    };
    let id = id.unwrap_or(Value::Null);
    Some(match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}}),
    })
}

/// The JSON-RPC answer to a message that is not JSON.
pub(crate) fn parse_error(e: &serde_json::Error) -> Value {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": format!("parse error: {e}")}})
}

/// Serves MCP over `input`/`output` (stdin/stdout) until the input ends. Each line is one
/// JSON-RPC message (or a batch); each answer is one line.
pub fn serve(svc: &dyn Service, opts: &McpOptions, input: impl BufRead, mut output: impl Write) -> Result<()> {
    let io = |source| Error::Io { path: "mcp stdio".into(), source };
    for line in input.lines() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Err(e) => Some(
                json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": format!("parse error: {e}")}}),
            ),
            Ok(Value::Array(batch)) => {
                let answers: Vec<Value> = batch.iter().filter_map(|m| handle(svc, opts, m)).collect();
                (!answers.is_empty()).then_some(Value::Array(answers))
            }
            Ok(msg) => handle(svc, opts, &msg),
        };
        if let Some(a) = answer {
            writeln!(output, "{a}").map_err(io)?;
            output.flush().map_err(io)?;
        }
    }
    Ok(())
}
