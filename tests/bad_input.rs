//! The bad-input suite (the proofs issue, part 3): one table of hostile and broken
//! requests across HTTP and the CLI — malformed, truncated, invalid UTF-8, oversized,
//! deeply nested, every traversal spelling, bidirectional and confusable characters,
//! unknown and ambiguous ids, stale versions and hashes, wrong and other-tenant tokens,
//! and every role against every route it may not use. Each case asserts its status and
//! the words of its error, and that the log did not change (compared by export).

mod common;

use common::server::{client, Server};
use serde_json::{json, Value};

/// What one case sends.
enum Send {
    Json(Value),
    Raw(Vec<u8>),
    Nothing,
}

struct Http {
    name: String,
    method: &'static str,
    path: String,
    token: Option<&'static str>,
    send: Send,
    status: u16,
    /// Words the answer must contain (the error's message or type).
    says: &'static str,
}

fn http(
    name: impl Into<String>,
    method: &'static str,
    path: impl Into<String>,
    token: Option<&'static str>,
    send: Send,
    status: u16,
    says: &'static str,
) -> Http {
    Http { name: name.into(), method, path: path.into(), token, send, status, says }
}

const ADMIN: Option<&str> = Some("acme-admin");
const WRITE: Option<&str> = Some("acme-write");
const READ: Option<&str> = Some("acme-read");

fn note(n: u64) -> Value {
    json!({"kind": "note", "actor": "agent:test", "body": {"type": "n", "json": {"n": n}}})
}

fn events(v: Value) -> Send {
    Send::Json(json!({"stream": "s", "events": [v]}))
}

/// Every route, with a request that would change or read something if allowed.
fn routes() -> Vec<(&'static str, &'static str, Send)> {
    let tool = json!({"command": "create", "path": "/memories/x.md", "file_text": "x\n"});
    vec![
        ("POST", "/v1/events", events(note(99))),
        ("GET", "/v1/events", Send::Nothing),
        ("GET", "/v1/info", Send::Nothing),
        ("POST", "/v1/lookup", Send::Json(json!({"streams": ["s"]}))),
        ("GET", "/v1/streams/s", Send::Nothing),
        ("GET", "/v1/kinds/note", Send::Nothing),
        ("GET", "/v1/tail", Send::Nothing),
        ("POST", "/v1/memory/m/tool", Send::Json(tool.clone())),
        ("GET", "/v1/memory/m/view", Send::Nothing),
        ("GET", "/v1/memory/m/history", Send::Nothing),
        ("GET", "/v1/memory/m/diff?from=start&to=head", Send::Nothing),
        ("GET", "/v1/memory/m/blame?path=/memories/a.md", Send::Nothing),
        ("GET", "/v1/memory/m/lessons", Send::Nothing),
        ("GET", "/v1/memory/m/files", Send::Nothing),
        ("POST", "/v1/memory/m/revert", Send::Json(json!({"to": "start"}))),
        ("POST", "/v1/memory/m/fork", Send::Json(json!({"into": "m2"}))),
        ("POST", "/v1/memory/m/promote", Send::Json(json!({"from": "m2"}))),
        ("POST", "/v1/memory/m/batch", Send::Json(json!({"commands": [tool]}))),
        ("POST", "/v1/memory/m/rules", Send::Json(json!({"rules": 2}))),
        ("POST", "/v1/tags", Send::Json(json!({"name": "t1"}))),
        ("GET", "/v1/sessions", Send::Nothing),
        ("GET", "/v1/sessions/stats", Send::Nothing),
        ("GET", "/v1/session/x", Send::Nothing),
        ("GET", "/v1/dreams", Send::Nothing),
        ("POST", "/v1/dreams", Send::Json(json!({"store": "m"}))),
        ("GET", "/v1/dreams/abc", Send::Nothing),
        ("POST", "/v1/dreams/abc/replay", Send::Json(json!({}))),
        ("GET", "/v1/drift/m", Send::Nothing),
        ("POST", "/v1/verify", Send::Json(json!({}))),
        ("POST", "/v1/backup", Send::Json(json!({"dir": "/tmp/never-written"}))),
        ("GET", "/metrics", Send::Nothing),
        ("POST", "/v1/checkpoints", Send::Json(json!({}))),
        ("POST", "/v1/checkpoints/verify", Send::Json(json!({"checkpoint": {}}))),
        ("GET", "/v1/export", Send::Nothing),
        ("POST", "/v1/mcp", Send::Json(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))),
    ]
}

fn writes(method: &str, path: &str) -> bool {
    method == "POST" && !matches!(path, "/v1/lookup" | "/v1/checkpoints/verify" | "/v1/mcp" | "/v1/verify")
}

/// `/metrics` is not among them: it renders the token's own tenant, for any role.
fn admin_only(path: &str) -> bool {
    matches!(path, "/v1/verify" | "/v1/backup" | "/v1/checkpoints" | "/v1/export")
}

fn cases() -> Vec<Http> {
    let mut v = Vec::new();
    // Wrong and missing tokens on every route.
    for (method, path, _) in routes() {
        let send = || routes().into_iter().find(|r| r.0 == method && r.1 == path).map(|r| r.2).unwrap_or(Send::Nothing);
        v.push(http(format!("no token: {method} {path}"), method, path, None, send(), 401, "unauthorized"));
        v.push(http(
            format!("wrong token: {method} {path}"),
            method,
            path,
            Some("acme-admi"),
            send(),
            401,
            "unauthorized",
        ));
        v.push(http(
            format!("a token of no one: {method} {path}"),
            method,
            path,
            Some("x".repeat(64).leak()),
            send(),
            401,
            "unauthorized",
        ));
        // Every role against every route it may not use.
        if writes(method, path) || admin_only(path) {
            v.push(http(format!("read role: {method} {path}"), method, path, READ, send(), 403, "forbidden"));
        }
        if admin_only(path) {
            v.push(http(format!("write role: {method} {path}"), method, path, WRITE, send(), 403, "forbidden"));
        }
    }
    // Another tenant's token sees nothing of this one.
    for path in ["/v1/streams/s", "/v1/session/acme-session", "/v1/memory/m/blame?path=/memories/a.md"] {
        v.push(http(format!("other tenant: GET {path}"), "GET", path, Some("globex-admin"), Send::Nothing, 404, "not"));
    }
    // Malformed bodies.
    let raw = |name: &str, bytes: &[u8], says: &'static str| {
        http(format!("events body: {name}"), "POST", "/v1/events", WRITE, Send::Raw(bytes.to_vec()), 400, says)
    };
    v.push(raw("empty", b"", "request body: EOF"));
    v.push(raw("not JSON", b"hello", "request body: expected value"));
    v.push(raw("truncated", br#"{"stream": "s", "events": [{"kind": "note""#, "request body: EOF while parsing"));
    v.push(raw("invalid UTF-8", b"{\"stream\": \"s\xff\xfe\", \"events\": []}", "invalid unicode"));
    v.push(raw(
        "a lone surrogate",
        br#"{"stream": "s", "events": [{"kind": "note", "actor": "agent:a", "body": {"type": "\ud800", "json": 1}}]}"#,
        "",
    ));
    v.push(raw("trailing garbage", br#"{"stream": "s", "events": []} x"#, "trailing characters"));
    v.push(raw("an array", b"[]", ""));
    v.push(raw("null", b"null", ""));
    v.push(raw("deeply nested", format!("{{\"stream\":\"s\",\"events\":[{{\"kind\":\"note\",\"actor\":\"agent:a\",\"body\":{{\"type\":\"t\",\"json\":{}1{}}}}}]}}", "[".repeat(5000), "]".repeat(5000)).as_bytes(), ""));
    // Over the test config's 1 MiB limit by 64 KiB: small enough to sit in loopback's socket
    // buffers, so the client has sent it all before the 413 comes (no connection-reset race).
    v.push(http("events body: oversized", "POST", "/v1/events", WRITE, Send::Raw(format!("{{\"stream\":\"s\",\"events\":[{{\"kind\":\"note\",\"actor\":\"agent:a\",\"body\":{{\"type\":\"t\",\"json\":\"{}\"}}}}]}}", "x".repeat((1 << 20) + (64 << 10))).into_bytes()), 413, "too_large"));
    v.push(raw("unknown field", br#"{"stream": "s", "events": [], "sneaky": 1}"#, "sneaky"));
    v.push(raw("events not a list", br#"{"stream": "s", "events": {}}"#, "expected a sequence"));
    v.push(raw("no events", br#"{"stream": "s", "events": []}"#, "no events"));
    let bad_event = |name: &str, e: Value, says: &'static str| {
        http(format!("event: {name}"), "POST", "/v1/events", WRITE, events(e), 400, says)
    };
    v.push(bad_event("unknown kind", json!({"kind": "nope", "actor": "agent:a", "body": {}}), "nope"));
    // What only the store can say is refused, never silently dropped.
    let with = |k: &str, v: Value| {
        let mut e = note(1);
        e[k] = v;
        e
    };
    // Issue 30.6: a raw memory event's paths take the memory tool's care.
    v.push(bad_event(
        "a memory command to a path with a zero-width space",
        json!({"kind": "memory", "actor": "agent:a", "stream": "memory/m",
               "body": {"store": "m", "command": {"command": "create", "path": "/memories/zw\u{200b}.md", "file_text": "x"}}}),
        "invisible",
    ));
    v.push(bad_event("a position", with("position", json!(7)), "position: the store assigns it"));
    v.push(bad_event("a version", with("version", json!(0)), "version: the store assigns it"));
    v.push(bad_event("an id without its time", with("id", json!("ab".repeat(32))), "id: an id can only be checked"));
    let mut wrong_id = with("id", json!("ab".repeat(32)));
    wrong_id["time"] = json!(1_000);
    wrong_id["parents"] = json!([]);
    v.push(bad_event("a wrong id", wrong_id, "is not this event's id"));
    let receipt = json!({"principal": "root", "role": "admin", "at": 0, "batch": 0, "events": 1});
    v.push(bad_event("a receipt", with("received", receipt), "received: who wrote an event"));
    v.push(bad_event("a time in 2100", with("time", json!(4_102_444_800_000u64)), "ahead of this store's clock"));
    for path in ["/v1/events?limit=0", "/v1/timeline?limit=0", "/v1/sessions?limit=0"] {
        v.push(http(format!("limit=0: {path}"), "GET", path, READ, Send::Nothing, 400, "limit=0 asks for nothing"));
    }
    v.push(http(
        "tail past the end",
        "GET",
        "/v1/tail?from=999999",
        READ,
        Send::Nothing,
        400,
        "past the end of the log",
    ));
    v.push(bad_event("no kind", json!({"actor": "agent:a", "body": {}}), "kind"));
    v.push(bad_event("no actor", json!({"kind": "note", "body": {"type": "t", "json": 1}}), "actor"));
    v.push(bad_event(
        "actor without a kind",
        json!({"kind": "note", "actor": "ada", "body": {"type": "t", "json": 1}}),
        "actor",
    ));
    v.push(bad_event(
        "unknown actor kind",
        json!({"kind": "note", "actor": "robot:a", "body": {"type": "t", "json": 1}}),
        "actor",
    ));
    v.push(bad_event(
        "body of another kind",
        json!({"kind": "grade", "actor": "agent:a", "body": {"type": "t", "json": 1}}),
        "",
    ));
    v.push(bad_event(
        "time as text",
        json!({"kind": "note", "actor": "agent:a", "time": "noon", "body": {"type": "t", "json": 1}}),
        "time: invalid type",
    ));
    v.push(bad_event(
        "negative time",
        json!({"kind": "note", "actor": "agent:a", "time": -1, "body": {"type": "t", "json": 1}}),
        "time: invalid value",
    ));
    v.push(http(
        "event: unknown parent",
        "POST",
        "/v1/events",
        WRITE,
        events(
            json!({"kind": "note", "actor": "agent:a", "parents": ["00".repeat(32)], "body": {"type": "t", "json": 1}}),
        ),
        409,
        "is not the head of stream",
    ));
    v.push(bad_event(
        "a parent that is no id",
        json!({"kind": "note", "actor": "agent:a", "parents": ["zz"], "body": {"type": "t", "json": 1}}),
        "",
    ));
    v.push(bad_event(
        "unknown cause",
        json!({"kind": "note", "actor": "agent:a", "causes": ["ff".repeat(32)], "body": {"type": "t", "json": 1}}),
        "which is not an event of the log",
    ));
    for (what, name) in stream_names() {
        v.push(http(
            format!("stream name: {what}"),
            "POST",
            "/v1/events",
            WRITE,
            Send::Json(json!({"stream": name, "events": [note(1)]})),
            400,
            "stream",
        ));
    }
    // Stale and impossible expected versions.
    for (what, expect) in [
        ("stale version", json!(0)),
        ("version ahead", json!(1000)),
        ("no-stream on an existing stream", json!("no-stream")),
        ("a word", json!("soon")),
        ("negative", json!(-1)),
    ] {
        let status = if what == "a word" || what == "negative" { 400 } else { 409 };
        v.push(http(
            format!("expect: {what}"),
            "POST",
            "/v1/events",
            WRITE,
            Send::Json(json!({"stream": "s", "events": [note(7)], "expect": {"s": expect}})),
            status,
            "",
        ));
    }
    // Unknown, malformed and ambiguous ids.
    for (what, id, status) in
        [("unknown", "ab".repeat(32), 404), ("not hex", "xyz".to_string(), 400), ("too long", "a".repeat(65), 400)]
    {
        v.push(http(format!("event id: {what}"), "GET", format!("/v1/events/{id}"), READ, Send::Nothing, status, ""));
    }
    v.push(http(
        "dream id: unknown",
        "GET",
        format!("/v1/dreams/{}", "cd".repeat(32)),
        READ,
        Send::Nothing,
        404,
        "no event with id",
    ));
    // Memory paths: every traversal spelling, bidirectional and confusable characters.
    for (what, path) in memory_paths() {
        v.push(http(
            format!("memory path: {what}"),
            "POST",
            "/v1/memory/m/tool",
            WRITE,
            Send::Json(json!({"command": "create", "path": path, "file_text": "x"})),
            200,
            "\"is_error\":true",
        ));
    }
    // Stale hashes and impossible memory commands.
    v.push(http("batch: stale state hash", "POST", "/v1/memory/m/batch", WRITE, Send::Json(json!({"commands": [{"command": "create", "path": "/memories/b.md", "file_text": "b"}], "expected_state": "00".repeat(32)})), 409, "conflict"));
    v.push(http(
        "batch: a hash that is no hash",
        "POST",
        "/v1/memory/m/batch",
        WRITE,
        Send::Json(json!({"commands": [], "expected_state": "xyz"})),
        400,
        "",
    ));
    v.push(http(
        "batch: a view in a batch",
        "POST",
        "/v1/memory/m/batch",
        WRITE,
        Send::Json(json!({"commands": [{"command": "view", "path": "/memories"}]})),
        400,
        "",
    ));
    v.push(http(
        "tool: unknown command",
        "POST",
        "/v1/memory/m/tool",
        WRITE,
        Send::Json(json!({"command": "format_disk"})),
        200,
        "\"is_error\":true",
    ));
    v.push(http(
        "tool: replace text that is not there",
        "POST",
        "/v1/memory/m/tool",
        WRITE,
        Send::Json(json!({"command": "str_replace", "path": "/memories/a.md", "old_str": "absent", "new_str": "x"})),
        200,
        "\"is_error\":true",
    ));
    v.push(http(
        "tool: insert past the end",
        "POST",
        "/v1/memory/m/tool",
        WRITE,
        Send::Json(json!({"command": "insert", "path": "/memories/a.md", "insert_line": 999, "insert_text": "x"})),
        200,
        "\"is_error\":true",
    ));
    v.push(http(
        "tool: delete what is not there",
        "POST",
        "/v1/memory/m/tool",
        WRITE,
        Send::Json(json!({"command": "delete", "path": "/memories/none.md"})),
        200,
        "\"is_error\":true",
    ));
    v.push(http(
        "tool: rename onto itself's parent",
        "POST",
        "/v1/memory/m/tool",
        WRITE,
        Send::Json(json!({"command": "rename", "old_path": "/memories/a.md", "new_path": "/memories"})),
        200,
        "\"is_error\":true",
    ));
    v.push(http(
        "tool: mkdir (dreamlog's own)",
        "POST",
        "/v1/memory/m/tool",
        WRITE,
        Send::Json(json!({"command": "mkdir", "path": "/memories/d"})),
        200,
        "\"is_error\":true",
    ));
    v.push(http(
        "rules: backwards",
        "POST",
        "/v1/memory/m/rules",
        WRITE,
        Send::Json(json!({"rules": 1})),
        400,
        "rules only move forward",
    ));
    v.push(http("rules: unknown", "POST", "/v1/memory/m/rules", WRITE, Send::Json(json!({"rules": 9})), 400, ""));
    // Store names and points.
    let long = "m".repeat(2000);
    for (what, store) in [
        ("encoded dot-dot segment", "a%2F%2e%2e%2Fb"),
        ("empty segment", "a%2F%2Fb"),
        ("trailing slash", "a%2F"),
        ("space", "a%20b"),
        ("NUL", "a%00b"),
        ("bidi override", "m%E2%80%AE"),
        ("zero-width space", "m%E2%80%8B"),
        ("too long", long.as_str()),
    ] {
        v.push(http(
            format!("store name: {what}"),
            "POST",
            format!("/v1/memory/{store}/tool"),
            WRITE,
            Send::Json(json!({"command": "create", "path": "/memories/q.md", "file_text": "q"})),
            400,
            "",
        ));
    }
    // A `..` the client's URL normalisation resolves never reaches a store.
    v.push(http(
        "store name: encoded dot-dot (normalised away)",
        "POST",
        "/v1/memory/%2e%2e/tool",
        WRITE,
        Send::Json(json!({"command": "view", "path": "/memories"})),
        404,
        "no such route",
    ));
    v.push(http(
        "store name: dot-dot (normalised away)",
        "POST",
        "/v1/memory/../tool",
        WRITE,
        Send::Json(json!({"command": "view", "path": "/memories"})),
        404,
        "no such route",
    ));
    for (what, q) in [
        ("unknown tag", "from=no-such-tag"),
        ("position past the end", "from=@999999"),
        ("bad time", "from=yesterday-ish"),
    ] {
        v.push(http(
            format!("diff point: {what}"),
            "GET",
            format!("/v1/memory/m/diff?{q}&to=head"),
            READ,
            Send::Nothing,
            400,
            "",
        ));
    }
    v.push(http("tag: an existing name", "POST", "/v1/tags", WRITE, Send::Json(json!({"name": "v1"})), 409, ""));
    v.push(http(
        "tag: a bidi override",
        "POST",
        "/v1/tags",
        WRITE,
        Send::Json(json!({"name": "v\u{202e}1"})),
        400,
        "bidirectional",
    ));
    v.push(http(
        "tag: a zero-width space",
        "POST",
        "/v1/tags",
        WRITE,
        Send::Json(json!({"name": "v\u{200b}1"})),
        400,
        "invisible",
    ));
    v.push(http("tag: empty", "POST", "/v1/tags", WRITE, Send::Json(json!({"name": ""})), 400, "empty"));
    v.push(http(
        "dream: unknown dreamer",
        "POST",
        "/v1/dreams",
        WRITE,
        Send::Json(json!({"store": "m", "dreamer": "nope"})),
        403,
        "is not one this server's config defines",
    ));
    v.push(http(
        "dream: exec named by a request",
        "POST",
        "/v1/dreams",
        ADMIN,
        Send::Json(json!({"store": "m", "dreamer": "exec@1", "config": {"command": ["true"]}})),
        403,
        "",
    ));
    v.push(http(
        "backup: into an existing folder",
        "POST",
        "/v1/backup",
        ADMIN,
        Send::Json(json!({"dir": "/"})),
        400,
        "",
    ));
    v.push(http("unknown route", "GET", "/v1/nothing-here", ADMIN, Send::Nothing, 404, ""));
    v.push(http("wrong method", "DELETE", "/v1/events", ADMIN, Send::Nothing, 405, ""));
    v
}

/// Stream names that must be refused: traversal, control, bidirectional, confusable.
fn stream_names() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("NUL", "a\u{0}b".into()),
        ("newline", "a\nb".into()),
        ("escape", "a\u{1b}[31mb".into()),
        ("right-to-left override", "a\u{202e}b".into()),
        ("left-to-right isolate", "a\u{2066}b".into()),
        ("zero-width space", "a\u{200b}b".into()),
        ("byte order mark", "\u{feff}a".into()),
        ("too long", "s".repeat(2000)),
        // Issue 30.6: each segment takes the care a store name's does.
        ("parent", "..".into()),
        ("parent in the middle", "a/../b".into()),
        ("double slash", "a//b".into()),
        ("leading slash", "/a".into()),
        ("trailing slash", "a/".into()),
        ("percent-encoded parent", "%2e%2e".into()),
        ("twice percent-encoded parent", "a/%252e%252e".into()),
        ("backslash", "a\\..\\b".into()),
        ("fullwidth dots", "a/\u{FF0E}\u{FF0E}/b".into()),
        ("leading space", " a".into()),
        ("line separator", "a\u{2028}b".into()),
    ]
}

/// Memory paths that must be refused, each a way out of /memories or a way to look like
/// another path.
fn memory_paths() -> Vec<(&'static str, String)> {
    vec![
        ("parent", "/memories/../etc/passwd".into()),
        ("parent at the end", "/memories/..".into()),
        ("parent in the middle", "/memories/a/../../b".into()),
        ("dot segment", "/memories/./a.md".into()),
        ("double slash", "/memories//a.md".into()),
        ("backslash parent", "/memories/..\\evil".into()),
        ("percent-encoded parent", "/memories/%2e%2e/x".into()),
        ("outside the root", "/etc/passwd".into()),
        ("relative", "memories/a.md".into()),
        ("the root's sibling", "/memoriesX/a.md".into()),
        ("NUL", "/memories/a\u{0}.md".into()),
        ("newline", "/memories/a\n.md".into()),
        ("right-to-left override", "/memories/a\u{202e}dm.exe".into()),
        ("confusable root (Greek omicron)", "/mem\u{03bf}ries/a.md".into()),
        ("confusable root (Cyrillic e)", "/m\u{0435}mories/a.md".into()),
        ("trailing slash on a file", "/memories/a.md/".into()),
        ("empty", String::new()),
        ("very long", format!("/memories/{}", "a/".repeat(3000))),
        // Issue 30.6: no path that displays as another, in NFC only.
        ("zero-width space", "/memories/zw\u{200b}.md".into()),
        ("NFD-decomposed", "/memories/cafe\u{301}.md".into()),
        ("fullwidth dots", "/memories/\u{FF0E}\u{FF0E}/x.md".into()),
        ("two-dot leader", "/memories/a/\u{2025}/x.md".into()),
    ]
}

fn send(c: &reqwest::blocking::Client, server: &Server, case: &Http) -> (u16, String) {
    let url = server.url(&case.path);
    let mut r = match case.method {
        "GET" => c.get(&url),
        "POST" => c.post(&url),
        other => c.request(other.parse().unwrap(), &url),
    };
    if let Some(t) = case.token {
        r = r.bearer_auth(t);
    }
    r = match &case.send {
        Send::Json(v) => r.json(v),
        Send::Raw(b) => r.header("content-type", "application/json").body(b.clone()),
        Send::Nothing => r,
    };
    match r.send() {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // A tail that is let in streams forever: only refusals are read.
            let text =
                if case.path == "/v1/tail" && status == 200 { String::new() } else { resp.text().unwrap_or_default() };
            (status, text)
        }
        Err(e) => (0, e.to_string()),
    }
}

fn export(c: &reqwest::blocking::Client, server: &Server) -> String {
    let resp = c.get(server.url("/v1/export")).bearer_auth("acme-admin").send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().unwrap()
}

#[test]
fn every_bad_request_is_refused_by_name_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let hash = |t: &str| dreamlog::hash_token(t);
    let config = json!({"tokens": [
        {"tenant": "acme", "role": "admin", "token_blake3": hash("acme-admin")},
        {"tenant": "acme", "role": "write", "token_blake3": hash("acme-write")},
        {"tenant": "acme", "role": "read", "token_blake3": hash("acme-read")},
        {"tenant": "globex", "role": "admin", "token_blake3": hash("globex-admin")},
    ], "max_body_bytes": 1 << 20});
    let cfg = dir.path().join("server.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let server = Server::start(&db, &["--config", cfg.to_str().unwrap()]);
    let c = client();
    // The tenant's log: 40 notes (so a one-digit id prefix is ambiguous), a memory store
    // on rules 2 with a file, a tag.
    for n in 0..40 {
        let (s, b) =
            common::server::post(&c, &server.url("/v1/events"), WRITE, &json!({"stream": "s", "events": [note(n)]}));
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = common::server::post(
        &c,
        &server.url("/v1/memory/m/tool"),
        WRITE,
        &json!({"command": "create", "path": "/memories/a.md", "file_text": "hello\n"}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(common::server::post(&c, &server.url("/v1/tags"), WRITE, &json!({"name": "v1"})).0, 200);
    let mut before = export(&c, &server);

    let cases = cases();
    assert!(cases.len() >= 150, "the suite has {} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let (status, text) = send(&c, &server, case);
        let says = text.contains(case.says) || text.to_lowercase().contains(&case.says.to_lowercase());
        let error_shaped = status == 200
            || text.is_empty()
            || serde_json::from_str::<Value>(&text).map(|v| v.get("error").is_some()).unwrap_or(false);
        if status != case.status || !says || !error_shaped {
            wrong.push(format!(
                "{}: {} {} → {status} (expected {} saying {:?}): {}",
                case.name,
                case.method,
                case.path.chars().take(80).collect::<String>(),
                case.status,
                case.says,
                text.chars().take(300).collect::<String>()
            ));
        }
        let now = export(&c, &server);
        if now != before {
            wrong.push(format!("{}: the log changed", case.name));
            before = now;
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

/// The same kinds of input through the CLI: each exits non-zero, names the problem, and
/// leaves the log as it was.
#[test]
fn every_bad_command_is_refused_by_name_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let run = |args: &[&str], stdin: Option<&str>| common::dreamlog_on(&db, args, stdin);
    for n in 0..40 {
        let out = run(&["append", "--stream", "s"], Some(&note(n).to_string()));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let before = common::ok(&run(&["export"], None));
    let note7 = note(7).to_string();
    let unknown = "ab".repeat(32);
    // A first digit that two or more of the 40 ids share (one must: 40 ids, 16 digits).
    let mut firsts = std::collections::HashMap::<char, usize>::new();
    for e in common::json_lines(&before) {
        *firsts.entry(e["id"].as_str().unwrap().chars().next().unwrap()).or_default() += 1;
    }
    let shared = firsts.iter().find(|(_, n)| **n >= 2).map(|(c, _)| c.to_string()).unwrap();
    let cases: Vec<(&str, Vec<&str>, Option<&str>, &str)> = vec![
        ("append: not JSON", vec!["append", "--stream", "s"], Some("hello"), "-:1: event: expected value"),
        (
            "append: truncated",
            vec!["append", "--stream", "s"],
            Some(r#"{"kind": "note""#),
            "-:1: event: EOF while parsing",
        ),
        (
            "append: unknown kind",
            vec!["append", "--stream", "s"],
            Some(r#"{"kind":"nope","actor":"agent:a","body":{}}"#),
            "nope",
        ),
        (
            "append: bad actor",
            vec!["append", "--stream", "s"],
            Some(r#"{"kind":"note","actor":"ada","body":{"type":"t","json":1}}"#),
            "actor",
        ),
        ("append: stale expected version", vec!["append", "--stream", "s", "--expect", "0"], Some(&note7), "expected"),
        ("append: stream with a bidi override", vec!["append", "--stream", "a\u{202e}b"], Some(&note7), "stream"),
        ("append: empty stream", vec!["append", "--stream", ""], Some(&note7), "stream"),
        ("show: unknown id", vec!["show", &unknown], None, "no event with id"),
        ("show: not hex", vec!["show", "xyz"], None, "xyz"),
        ("show: ambiguous prefix", vec!["show", &shared], None, "ambiguous"),
        ("append: stream with a zero-width space", vec!["append", "--stream", "a\u{200b}b"], Some(&note7), "invisible"),
        ("memory view: traversal", vec!["memory", "view", "m", "/memories/../etc"], None, ""),
        ("memory diff: unknown tag", vec!["memory", "diff", "m", "--from", "no-such-tag"], None, "no-such-tag"),
        ("memory rules: unknown", vec!["memory", "rules", "m", "--set", "9"], None, "9"),
        ("tag: empty name", vec!["tag", ""], None, ""),
        (
            "dream: a store that does not exist",
            vec!["dream", "run", "m", "--dreamer", "nope"],
            None,
            "no memory store \"m\"",
        ),
        ("verify: checkpoint file missing", vec!["verify", "--checkpoint", "/nonexistent/cp.json"], None, "cp.json"),
        ("sessions show: unknown", vec!["sessions", "show", "nope"], None, "no session \"nope\""),
        ("import: a file that is not there", vec!["import", "atif", "/nonexistent/t.json"], None, "t.json"),
        ("restore: no backup there", vec!["restore", "/nonexistent/backup"], None, "backup"),
        ("unknown command", vec!["frobnicate"], None, "frobnicate"),
        ("unknown flag", vec!["export", "--everything"], None, "--everything"),
    ];
    let mut wrong = Vec::new();
    for (name, args, stdin, says) in &cases {
        let out = run(args, *stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !err.to_lowercase().contains(&says.to_lowercase()) || err.trim().is_empty() {
            wrong.push(format!(
                "{name}: exit {:?}, stderr: {}",
                out.status.code(),
                err.chars().take(300).collect::<String>()
            ));
        }
        if common::ok(&run(&["export"], None)) != before {
            wrong.push(format!("{name}: the log changed"));
            break;
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}
