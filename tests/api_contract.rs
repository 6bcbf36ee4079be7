//! The HTTP API keeps the contract `schemas/openapi.json` and `schemas/api/` write down:
//! a real `dreamlog serve` is driven through every route, every request body sent is
//! first checked against the route's request schema, and every answer — successes and
//! errors, including those axum writes itself — against the route's response schema.
//! Each part of the API is its own test over its own server (so one failure does not
//! hide the rest); when all parts have passed, every documented route must have answered
//! 200 in one of them (run alone, a part checks only its own answers).

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;

use common::server::{client, Server};
use serde_json::{json, Value};
use tempfile::{tempdir, TempDir};

/// The OpenAPI document with a registry of every schema file it can refer to.
struct Contract {
    doc: Value,
    registry: jsonschema::Registry<'static>,
    /// `METHOD TEMPLATE` of every route that answered 200.
    answered: BTreeSet<String>,
    http: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Contract {
    fn new(base: &str, token: Option<&str>) -> Contract {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(common::root().join("schemas/openapi.json")).unwrap())
                .unwrap();
        Contract {
            doc,
            registry: common::schema_registry(),
            answered: BTreeSet::new(),
            http: client(),
            base: base.to_owned(),
            token: token.map(str::to_owned),
        }
    }

    /// The documented template a concrete path matches (a last parameter described as
    /// "may contain /" takes the rest of the path).
    fn template(&self, method: &str, path: &str) -> String {
        let path = path.split('?').next().unwrap();
        let concrete: Vec<&str> = path.split('/').collect();
        for (template, ops) in self.doc["paths"].as_object().unwrap() {
            if ops.get(method).is_none() {
                continue;
            }
            let parts: Vec<&str> = template.split('/').collect();
            let rest_param = ops[method]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["in"] == "path" && p["description"].as_str().unwrap_or("").contains("may contain /"));
            let fits = if rest_param { concrete.len() >= parts.len() } else { concrete.len() == parts.len() };
            if fits && parts.iter().zip(&concrete).all(|(t, c)| t.starts_with('{') || t == c) {
                return template.clone();
            }
        }
        panic!("no documented route for {method} {path}")
    }

    fn resolve(&self, schema: &Value) -> Value {
        match schema["$ref"].as_str() {
            Some(r) if r.starts_with("#/") => {
                let pointer = &r[1..];
                self.resolve(self.doc.pointer(pointer).unwrap_or_else(|| panic!("{r} does not resolve")))
            }
            _ => schema.clone(),
        }
    }

    fn check(&self, what: &str, schema: &Value, instance: &Value) {
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .with_registry(&self.registry)
            .build(&self.resolve(schema))
            .unwrap_or_else(|e| panic!("{what}: schema does not compile: {e}"));
        let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{what}: {instance}\n{errors:#?}");
    }

    /// Sends a request; checks the body against the request schema (unless `valid` is
    /// false: a deliberately bad request) and the answer against the response schema.
    fn call_with(&mut self, method: &str, path: &str, body: Option<&Value>, valid: bool) -> (u16, Value) {
        let template = self.template(method, path);
        let op = self.doc["paths"][&template][method].clone();
        if let (Some(b), true) = (body, valid) {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(!schema.is_null(), "{method} {template} documents no request body");
            self.check(&format!("request {method} {template}"), schema, b);
        }
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "get" => self.http.get(&url),
            "post" => self.http.post(&url),
            other => self.http.request(other.to_uppercase().parse().unwrap(), &url),
        };
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path} answered {status} with non-JSON ({e}): {text}"));
        let key = if status == 200 { "200" } else { "default" };
        let schema = &op["responses"][key]["content"]["application/json"]["schema"];
        assert!(!schema.is_null(), "{method} {template}: no {key} JSON response documented");
        self.check(&format!("{status} answer of {method} {path}"), schema, &answer);
        if status == 200 {
            self.answered.insert(format!("{method} {template}"));
        }
        (status, answer)
    }

    fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_with(method, path, body, true)
    }

    fn ok(&mut self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, answer) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer
    }

    /// A line-oriented answer (export, tail): each line's JSON against the documented
    /// line schema.
    fn lines(&mut self, path: &str, content_type: &str, lines: &[Value]) {
        let template = self.template("get", path);
        let schema = self.doc["paths"][&template]["get"]["responses"]["200"]["content"][content_type]["schema"]
            ["x-line-schema"]
            .clone();
        assert!(!schema.is_null(), "{template}: no line schema");
        assert!(!lines.is_empty(), "{path} gave no lines");
        for l in lines {
            self.check(&format!("line of {path}"), &schema, l);
        }
        self.answered.insert(format!("get {template}"));
    }

    /// A request that must fail with `status` and the error type `kind`, its answer as
    /// documented (the body is sent as it is: a deliberately bad request).
    fn error(&mut self, method: &str, path: &str, body: Option<&Value>, status: u16, kind: &str) {
        let (s, answer) = self.call_with(method, path, body, false);
        assert_eq!((s, answer["error"]["type"].as_str()), (status, Some(kind)), "{method} {path}: {answer}");
    }

    /// A request outside the documented routes, with the admin token: status and JSON.
    fn raw(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let r = self.http.request(method, format!("{}{path}", self.base)).bearer_auth("admin-token").send().unwrap();
        (r.status().as_u16(), r.json::<Value>().expect("a JSON error"))
    }

    fn documented(&self) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for (path, ops) in self.doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                all.insert(format!("{method} {path}"));
            }
        }
        all
    }
}

fn graded_session(id: &str, store: &str, passed: bool, time: u64) -> Value {
    let s = format!("session/{id}");
    json!({"events": [
        {"stream": s, "kind": "session.start", "actor": "agent:bot", "time": time,
         "body": {"session": id, "agent": "bot", "task_id": "refunds/1", "store": store}},
        {"stream": s, "kind": "action", "actor": "agent:bot", "time": time + 1,
         "body": {"session": id, "name": "lookup", "input": {"q": 1}, "output": "ok", "status": "ok"}},
        {"stream": s, "kind": "grade", "actor": "evaluator:judge", "time": time + 2,
         "body": {"session": id, "rubric": "refunds", "evaluator": "judge", "score": if passed { 1 } else { 0 },
                  "result": if passed { "satisfied" } else { "failed" },
                  "criteria": [{"name": "verified_identity", "passed": passed}]}},
        {"stream": s, "kind": "session.end", "actor": "agent:bot", "time": time + 3,
         "body": {"session": id, "status": "completed"}},
    ], "expect": {s.clone(): "no-stream"}})
}

/// A running server with the contract's config (an admin and a read token, small limits,
/// a checkpoint key, a backup root) and the log every part starts from: two notes and
/// five graded sessions of the memory store `s` (22 events).
struct Part {
    api: Contract,
    server: Server,
    /// The first note's id, and the batch that wrote it.
    first: String,
    notes: Value,
    _dir: TempDir,
}

fn part() -> Part {
    part_with(tempdir().unwrap(), &[], json!({}))
}

/// A part whose server runs with these environment variables, over `dir` (its `db` may
/// hold events already).
fn part_with(dir: TempDir, env: &[(&str, &str)], extra: Value) -> Part {
    let hash = dreamlog::hash_token;
    let config = json!({"tokens": [
        {"tenant": "t", "role": "admin", "token_blake3": hash("admin-token")},
        {"tenant": "t", "role": "read", "token_blake3": hash("read-token")},
    ], "max_batch": 50, "max_body_bytes": 65536, "checkpoint_key": dir.path().join("key"),
        "backup_root": dir.path().join("backups")});
    common::ok(&common::dreamlog_on(
        &dir.path().join("nodb"),
        &["keygen", dir.path().join("key").to_str().unwrap()],
        None,
    ));
    let mut config = config;
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    let cfg = dir.path().join("server.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let server = Server::start_env(&dir.path().join("db"), &["--config", cfg.to_str().unwrap()], env);
    let mut api = Contract::new(&server.base, Some("admin-token"));

    api.ok("get", "/v1/health", None);
    let notes = json!({"stream": "notes", "events": [
        {"kind": "note", "actor": "agent:a", "body": {"type": "t", "json": {"n": 1}}},
        {"kind": "note", "actor": "agent:a", "body": {"type": "t", "json": {"n": 2}}}],
        "expect": {"notes": "no-stream"}});
    let appended = api.ok("post", "/v1/events", Some(&notes));
    let first = appended["appended"][0]["id"].as_str().unwrap().to_owned();
    for (i, passed) in [false, false, false, false, true].into_iter().enumerate() {
        api.ok(
            "post",
            "/v1/events",
            Some(&graded_session(&format!("r/{i}"), "s", passed, 1_764_111_000_000 + i as u64 * 10)),
        );
    }
    Part { api, server, first, notes, _dir: dir }
}

/// The parts, and the routes each saw answer 200.
const PARTS: usize = 6;
static ANSWERED: Mutex<(usize, BTreeSet<String>)> = Mutex::new((0, BTreeSet::new()));

/// A part passed: its server stops cleanly, and once every part has passed, every
/// documented route answered 200 in one of them.
fn passed(p: Part) {
    assert!(p.server.stop().success());
    // Every test of this file is a part (else the coverage check below would never run).
    let source = std::fs::read_to_string(common::root().join("tests/api_contract.rs")).unwrap();
    assert_eq!(source.matches("\n#[test]\n").count(), PARTS, "PARTS is the number of tests here");
    let mut all = ANSWERED.lock().unwrap_or_else(|e| e.into_inner());
    all.0 += 1;
    all.1.extend(p.api.answered.iter().cloned());
    if all.0 == PARTS {
        let missing: Vec<String> = p.api.documented().difference(&all.1).cloned().collect();
        assert!(missing.is_empty(), "routes never exercised with a 200: {missing:?}");
    }
}

/// Appends and reads, lookups, sessions, OTLP/HTTP, and the line-oriented answers.
#[test]
fn events_sessions_otlp_export_tail_and_metrics() {
    let Part { mut api, server, first, notes, _dir } = part();
    assert_eq!(api.ok("get", "/v1/info", None)["events"], 22);
    api.ok("get", "/v1/events?from=0&limit=5", None);
    api.ok("get", &format!("/v1/events/{}", &first[..12]), None);
    let found =
        api.ok("post", "/v1/lookup", Some(&json!({"ids": [first, "ab".repeat(32)], "streams": ["notes", "nope"]})));
    assert_eq!(found["positions"], json!([0, null]));
    assert_eq!(found["heads"][0]["version"], 1);
    assert_eq!(found["heads"][1], Value::Null);
    api.ok("get", "/v1/streams/session/r/0?from=1&limit=2", None);
    api.ok("get", "/v1/kinds/grade", None);
    api.ok("get", "/v1/sessions", None);
    // OTLP/HTTP in JSON (protobuf and the real SDKs: tests/otlp.rs).
    let span = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331", "name": "invoke_agent", "startTimeUnixNano": "1000000000", "endTimeUnixNano": "2000000000",
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}}]}]}]}]});
    api.ok("post", "/v1/traces", Some(&span));
    let grade = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "3000000000",
        "eventName": "gen_ai.evaluation.result", "traceId": "0af7651916cd43dd8448eb211c80319c",
        "attributes": [{"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": 1.0}}]}]}]}]});
    api.ok("post", "/v1/logs", Some(&grade));
    let (status, _) = api.call_with(
        "post",
        "/v1/traces",
        Some(&json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]})),
        false,
    );
    assert_eq!(status, 400);
    // The raw requests are two notes on `otlp` (the info count below includes them).

    // A Claude Code hook's delivery (the real CLI: tests/claude_code.rs): kept, and the
    // session assembled from its transcript lines; a segment cut mid-line is refused.
    let line = json!({"type": "assistant", "uuid": "a1", "sessionId": "cc-1", "timestamp": "2026-12-07T10:00:00Z",
        "message": {"role": "assistant", "model": "claude-test", "content": [{"type": "text", "text": "hi"}]}});
    let delivery = json!({"v": 1, "at": 1_796_000_000_000u64,
        "payload": {"session_id": "cc-1", "hook_event_name": "SessionEnd", "transcript_path": "/t/cc-1.jsonl"},
        "transcripts": [{"path": "/t/cc-1.jsonl", "offset": 0, "text": format!("{line}\n")}]});
    // At SessionEnd the session is assembled before the answer; at other events after it.
    let recorded = api.ok("post", "/v1/hooks/claude-code", Some(&delivery));
    assert_eq!((recorded["new"].as_bool(), recorded["assembled"]["sessions"].as_u64()), (Some(true), Some(1)));
    assert_eq!(api.ok("post", "/v1/hooks/claude-code", Some(&delivery))["new"], false, "once");
    let line2 = line.to_string().replace("cc-1", "cc-2");
    let later = json!({"v": 1, "at": 1_796_000_000_000u64,
        "payload": {"session_id": "cc-2", "hook_event_name": "Stop", "transcript_path": "/t/cc-2.jsonl"},
        "transcripts": [{"path": "/t/cc-2.jsonl", "offset": 0, "text": format!("{line2}\n")}]});
    let recorded = api.ok("post", "/v1/hooks/claude-code", Some(&later));
    assert_eq!(recorded["assembling"], true, "{recorded}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while api.call_with("get", "/v1/session/claude-code/cc-2", None, false).0 != 200 {
        assert!(std::time::Instant::now() < deadline, "cc-2 never assembled");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut cut = delivery.clone();
    cut["transcripts"][0]["text"] = json!("{\"type\": \"user\"");
    let (status, _) = api.call_with("post", "/v1/hooks/claude-code", Some(&cut), false);
    assert_eq!(status, 400);
    api.ok("get", "/v1/session/claude-code/cc-1", None);

    api.ok("get", "/v1/sessions/stats", None);
    api.ok("get", "/v1/session/r/1", None);

    // Line-oriented answers: the export and the live tail.
    let export = api.http.get(format!("{}/v1/export", api.base)).bearer_auth("admin-token").send().unwrap();
    assert_eq!(export.status(), 200);
    let lines: Vec<Value> = export.text().unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    api.lines("/v1/export", "application/x-ndjson", &lines);
    let tail = api.http.get(format!("{}/v1/tail?from=0", api.base)).bearer_auth("admin-token").send().unwrap();
    let events: Vec<Value> = common::server::read_sse(tail, 3).into_iter().map(|(_, v)| v).collect();
    api.lines("/v1/tail", "text/event-stream", &events);
    // The Prometheus text (parsed by the official client in tests/metrics.rs).
    let metrics = api.http.get(format!("{}/metrics", api.base)).bearer_auth("read-token").send().unwrap();
    assert_eq!(metrics.status(), 200);
    let documented = api.doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"].as_object().unwrap().clone();
    let content_type = metrics.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(documented.keys().any(|k| content_type.starts_with(k.as_str())), "{content_type}");
    assert!(metrics.text().unwrap().contains("dreamlog_events{tenant=\"t\"}"));
    api.answered.insert("get /metrics".into());

    passed(Part { api, server, first, notes, _dir });
}

/// The memory routes, who wrote, memory rules, MCP over HTTP, reverts, the timeline and
/// the web view's session.
#[test]
fn memory_principals_rules_mcp_revert_and_the_web_session() {
    let Part { mut api, server, first, notes, _dir } = part();
    // Memory: the tool endpoint (a refusal is a 200 with is_error), views, history.
    let tool = "/v1/memory/s/tool";
    let created =
        api.ok("post", tool, Some(&json!({"command": "create", "path": "/memories/a.md", "file_text": "one\ntwo\n"})));
    let create_id = created["id"].as_str().unwrap().to_owned();
    api.ok(
        "post",
        tool,
        Some(&json!({"command": "str_replace", "path": "/memories/a.md", "old_str": "two", "new_str": "2"})),
    );
    let refused = api.ok("post", tool, Some(&json!({"command": "delete", "path": "/memories/none.md"})));
    assert_eq!((refused["is_error"].as_bool(), refused["error_type"].as_str()), (Some(true), Some("not_found")));
    api.ok("post", tool, Some(&json!({"command": "view", "path": "/memories"})));
    api.ok("get", "/v1/memory/s/view?path=/memories/a.md&range=1:1", None);
    api.ok("get", "/v1/memory/s/history", None);
    api.ok("get", "/v1/memory/s/diff?from=23&to=head", None);
    api.ok("get", "/v1/memory/s/blame?path=/memories/a.md", None);
    let linked = api.ok("post", "/v1/sessions/link", Some(&json!({"sessions": ["r/1", "r/2"], "store": "s"})));
    assert_eq!(linked["linked"].as_array().map(Vec::len), Some(2));
    let tag = api.ok("post", "/v1/tags", Some(&json!({"name": "v1"})));
    assert!(tag["position"].as_u64().is_some());
    api.ok("post", "/v1/memory/s/fork", Some(&json!({"new": "s2", "at": "v1"})));
    api.ok(
        "post",
        "/v1/memory/s2/tool",
        Some(&json!({"command": "create", "path": "/memories/b.md", "file_text": "b\n"})),
    );
    let preview = api.ok("post", "/v1/memory/s2/promote?dry_run=true", Some(&json!({"into": "s"})));
    assert_eq!(preview["events"].as_array().map(Vec::len), Some(1), "{preview}");
    api.ok("post", "/v1/memory/s2/promote", Some(&json!({"into": "s"})));
    let stores = api.ok("get", "/v1/memory", None);
    assert!(stores["stores"].as_array().unwrap().iter().any(|s| s == "s2"), "{stores}");
    // Who wrote: the admin token's principal, its batches (the receipts of the writes above).
    let who = api.ok("get", "/v1/principals", None);
    assert_eq!(who["unreceipted_events"], 0, "{who}");
    let admin = who["principals"].as_array().unwrap().iter().find(|p| p["roles"] == "admin").expect("the admin token");
    let name = admin["name"].as_str().unwrap().to_owned();
    assert_eq!(name, format!("token:{}", &dreamlog::hash_token("admin-token")[..12]), "a token without a name");
    let mine = api.ok("get", &format!("/v1/principals?name={name}&limit=2"), None);
    assert_eq!(mine["batches"].as_array().map(Vec::len), Some(2), "{mine}");
    let shown = api.ok("get", &format!("/v1/events/{}", &first[..12]), None);
    assert_eq!(shown["received"]["principal"], name.as_str(), "{shown}");
    let batch = api.ok(
        "post",
        "/v1/memory/s/batch",
        Some(&json!({"commands": [
            {"command": "create", "path": "/memories/c.md", "file_text": "c\n"},
            {"command": "rename", "old_path": "/memories/c.md", "new_path": "/memories/d.md"}
        ], "session": "contract"})),
    );
    assert_eq!(batch["appended"].as_array().map(Vec::len), Some(2), "{batch}");
    // Memory rules: a new store follows 2 already; a store written raw (as before rules 2
    // existed) follows 1 until switched, once.
    let same = api.ok("post", "/v1/memory/s/rules", Some(&json!({"rules": 2})));
    assert_eq!((same["rules"].as_u64(), same["event"].is_null()), (Some(2), true), "{same}");
    api.ok(
        "post",
        "/v1/events",
        Some(
            &json!({"stream": "memory/old", "events": [{"kind": "memory", "actor": "human:ops", "body": {"store": "old",
            "command": {"command": "create", "path": "/memories/x/a.md", "file_text": "a\n"}}}]}),
        ),
    );
    assert_eq!(api.ok("get", "/v1/memory/old/files", None)["rules"], 1);
    let switched = api.ok("post", "/v1/memory/old/rules", Some(&json!({"rules": 2})));
    assert!(switched["event"].is_string() && switched["position"].is_u64(), "{switched}");
    let files = api.ok("get", "/v1/memory/old/files", None);
    assert_eq!((files["rules"].as_u64(), &files["dirs"]), (Some(2), &json!(["/memories/x"])), "{files}");
    let mcp = api.ok(
        "post",
        "/v1/mcp?store=s",
        Some(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                     "params": {"name": "memory_view_at", "arguments": {"path": "/memories/d.md", "at": "head"}}})),
    );
    assert_eq!(
        (mcp["id"].as_u64(), mcp["result"]["content"][0]["text"].as_str()),
        (Some(7), Some("Here's the content of /memories/d.md with line numbers:\n     1\tc\n     2\t")),
        "{mcp}"
    );
    let files = api.ok("get", "/v1/memory/s/files", None);
    assert_eq!(files["files"]["/memories/d.md"], "c\n", "{files}");
    api.ok("get", "/v1/memory/s/files?at=0", None);
    let revert = json!({"event": &create_id[..16], "reason": "contract test", "force": true});
    let preview = api.ok("post", "/v1/memory/s/revert?dry_run=true", Some(&revert));
    assert_eq!(preview["events"][0]["kind"], "revert", "{preview}");
    api.ok("post", "/v1/memory/s/revert", Some(&revert));
    let citers = api.ok("get", &format!("/v1/events/{create_id}/cited_by"), None);
    assert!(!citers["events"].as_array().unwrap().is_empty(), "the revert cites the event it undoes: {citers}");
    let sessions = api.ok("get", "/v1/sessions?limit=2&q=R/", None);
    assert_eq!(sessions["sessions"].as_array().map(Vec::len), Some(2), "{sessions}");
    assert!(sessions["total"].as_u64().unwrap() >= 2, "{sessions}");
    let page = api.ok("get", "/v1/timeline?limit=3&kind=memory&actor=human:", None);
    assert_eq!(page["events"].as_array().map(Vec::len), Some(3), "{page}");
    let me = api.ok("post", "/ui/session", Some(&json!({"token": "read-token"})));
    assert_eq!(me["role"], "read", "{me}");
    assert_eq!(api.ok("get", "/ui/session", None)["role"], "admin");
    assert_eq!(api.ok("delete", "/ui/session", None)["signed_out"], false, "a bearer request holds no cookie");

    passed(Part { api, server, first, notes, _dir });
}

/// Dreams (run, list, show, replay), lessons, drift, verify, backup and checkpoints.
#[test]
fn dreams_lessons_drift_verify_backup_and_checkpoints() {
    let Part { mut api, server, first, notes, _dir } = part();
    api.ok(
        "post",
        "/v1/memory/s/tool",
        Some(&json!({"command": "create", "path": "/memories/a.md", "file_text": "a\n"})),
    );
    // Dreams, lessons, drift, verify.
    let dream = api.ok(
        "post",
        "/v1/dreams",
        Some(&json!({"store": "s", "dreamer": "evidence", "config": {"min_tasks": 2}, "in_place": true})),
    );
    let dream_id = dream["id"].as_str().unwrap().to_owned();
    api.ok("get", "/v1/dreams", None);
    api.ok("get", &format!("/v1/dreams/{dream_id}"), None);
    let replay = api.ok("post", &format!("/v1/dreams/{dream_id}/replay"), Some(&json!({})));
    assert_eq!(replay["identical"], true, "{replay}");
    // A line that cites evidence (written raw, as a dreamer of another process would):
    // the ledger lists it. (The promote above copied a human's line, which cites none.)
    let cited = json!({"stream": "memory/s", "events": [{"kind": "memory", "actor": "human:ops", "causes": [first],
        "body": {"store": "s", "command": {"command": "create", "path": "/memories/lessons/contract.md",
        "file_text": "- cite the note\n"}}}]});
    api.ok("post", "/v1/events", Some(&cited));
    let lessons = api.ok("get", "/v1/memory/s/lessons", None);
    assert_eq!(lessons["lessons"].as_array().map(Vec::len), Some(1), "{lessons}");
    api.ok("get", "/v1/drift/s", None);
    api.ok("get", "/v1/drift/s?resamples=500&min_sessions=1", None);
    api.ok("post", "/v1/verify", None);
    let backup = api.ok("post", "/v1/backup", Some(&json!({"dir": "backup"})));
    assert!(backup["verify"]["problems"].as_array().unwrap().is_empty(), "{backup}");
    let checkpoint = api.ok("post", "/v1/checkpoints", None);
    let verdict = api.ok("post", "/v1/checkpoints/verify", Some(&json!({"checkpoint": checkpoint})));
    assert_eq!(verdict["extends"], true, "{verdict}");

    passed(Part { api, server, first, notes, _dir });
}

/// Errors, each with its status and documented envelope (also those axum writes itself),
/// tokens, and redaction.
#[test]
fn errors_tokens_and_redaction() {
    let Part { mut api, server, first, notes, _dir } = part();
    api.ok(
        "post",
        "/v1/memory/s/tool",
        Some(&json!({"command": "create", "path": "/memories/a.md", "file_text": "a\n"})),
    );
    api.ok("post", "/v1/memory/s/fork", Some(&json!({"new": "s2"})));
    // Errors: each with its status, each a JSON error as documented.
    api.error("post", "/v1/events", Some(&json!({"events": "no"})), 400, "invalid_request");
    api.error("post", "/v1/events", Some(&json!({"stream": "x", "events": [{"kind": "note"}]})), 400, "invalid_event");
    api.error("post", "/v1/events", Some(&notes), 409, "wrong_expected_version");
    let big_batch = json!({"stream": "x", "events": vec![json!({"kind": "note", "actor": "agent:a", "body": {"type": "t", "json": {}}}); 51]});
    api.error("post", "/v1/events", Some(&big_batch), 413, "too_large");
    let big_body = json!({"stream": "x", "events": [{"kind": "note", "actor": "agent:a", "body": {"type": "t", "json": {"s": "x".repeat(70_000)}}}]});
    api.error("post", "/v1/events", Some(&big_body), 413, "too_large");
    api.error("get", "/v1/events?from=abc", None, 400, "invalid_request");
    api.error("get", &format!("/v1/events/{}", "cd".repeat(32)), None, 404, "not_found");
    api.error("get", "/v1/streams/nope", None, 404, "not_found");
    api.error("get", "/v1/kinds/bogus", None, 400, "invalid_request");
    api.error("post", "/v1/lookup", Some(&json!({"ids": ["xyz"]})), 400, "invalid_request");
    api.error("post", "/v1/memory/s/fork", Some(&json!({"new": "s2"})), 409, "conflict");
    api.error("get", "/v1/memory/nope/lessons?at=nowhere", None, 400, "invalid_request");
    // A full id no event has (a short prefix could match a real event by chance: 1 in 65,536 per event).
    api.error("get", &format!("/v1/dreams/{}", "0".repeat(64)), None, 404, "not_found");
    api.error("get", "/v1/drift/s?resamples=0", None, 400, "invalid_request");
    // Routes and methods that do not exist answer in the same envelope.
    let error_schema = api.doc["components"]["schemas"]["Error"].clone();
    for (method, path, status, kind) in [
        (reqwest::Method::GET, "/v1/nope", 404, "not_found"),
        (reqwest::Method::DELETE, "/v1/events", 405, "method_not_allowed"),
    ] {
        let (s, answer) = api.raw(method.clone(), path);
        assert_eq!((s, answer["error"]["type"].as_str()), (status, Some(kind)), "{method} {path}: {answer}");
        api.check(&format!("{method} {path}"), &error_schema, &answer);
    }
    // Tokens: none, wrong, too weak.
    let admin = api.token.take();
    api.error("get", "/v1/info", None, 401, "unauthorized");
    api.token = Some("read-token".into());
    api.error("post", "/v1/events", Some(&notes), 403, "forbidden");
    api.ok("get", "/v1/info", None);
    api.token = admin;

    // Redaction (admin): a note's text goes, its header stays.
    let secret = api.ok(
        "post",
        "/v1/events",
        Some(&json!({"stream": "secrets", "events": [
        {"kind": "note", "actor": "agent:a", "body": {"type": "t", "json": {"key": "sk-1"}}}]})),
    );
    let sid = secret["appended"][0]["id"].as_str().unwrap().to_owned();
    let r = api.ok("post", "/v1/redact", Some(&json!({"event": sid, "reason": "leaked key"})));
    assert_eq!(r["stand_in"]["json"], "[redacted]", "{r}");
    // Again: the first redaction named, its scrub run again, nothing recorded.
    let again = api.ok("post", "/v1/redact", Some(&json!({"event": sid, "reason": "again"})));
    assert_eq!((&again["event"], again["already"].as_array().map(Vec::len)), (&r["event"], Some(1)), "{again}");
    api.error(
        "post",
        "/v1/redact",
        Some(&json!({"event": sid, "session": "s", "reason": "two at once"})),
        400,
        "invalid_request",
    );
    passed(Part { api, server, first, notes, _dir });
}

/// The Managed-Agents memory API, in its own shapes and envelope.
#[test]
fn the_managed_agents_api() {
    let Part { mut api, server, first, notes, _dir } = part();
    // The Managed-Agents memory API, in its own shapes and envelope.
    let st = api.ok("post", "/anthropic/v1/memory_stores", Some(&json!({"name": "Contract", "metadata": {"k": "v"}})));
    let sid = st["id"].as_str().unwrap().to_owned();
    let ms = format!("/anthropic/v1/memory_stores/{sid}");
    api.ok("get", &ms, None);
    api.ok("get", "/anthropic/v1/memory_stores?limit=1&include_archived=true", None);
    api.ok("post", &ms, Some(&json!({"description": "d", "metadata": {"k": null}})));
    let m = api.ok("post", &format!("{ms}/memories?view=full"), Some(&json!({"path": "/a/b.md", "content": "x\n"})));
    let mid = m["id"].as_str().unwrap().to_owned();
    api.ok("get", &format!("{ms}/memories/{mid}"), None);
    let sha = m["content_sha256"].as_str().unwrap().to_owned();
    api.ok(
        "post",
        &format!("{ms}/memories/{mid}"),
        Some(&json!({"content": "y\n", "precondition": {"type": "content_sha256", "content_sha256": sha}})),
    );
    let stale = json!({"content": "z", "precondition": {"type": "content_sha256", "content_sha256": sha}});
    api.error("post", &format!("{ms}/memories/{mid}"), Some(&stale), 409, "memory_precondition_failed_error");
    let taken = json!({"path": "/a/b.md", "content": ""});
    api.error("post", &format!("{ms}/memories"), Some(&taken), 409, "memory_path_conflict_error");
    api.ok("get", &format!("{ms}/memories?path_prefix=/a/&depth=1&view=basic"), None);
    let versions = api.ok("get", &format!("{ms}/memory_versions?memory_id={mid}&limit=1"), None);
    assert!(versions["next_page"].is_string(), "{versions}");
    let vid = versions["data"][0]["id"].as_str().unwrap().to_owned();
    api.ok("get", &format!("{ms}/memory_versions/{vid}"), None);
    let old = api.ok("get", &format!("{ms}/memory_versions?memory_id={mid}&operation=created"), None);
    let old = old["data"][0]["id"].as_str().unwrap().to_owned();
    let red = api.ok("post", &format!("{ms}/memory_versions/{old}/redact"), None);
    assert!(red["redacted_at"].is_string() && red["content"].is_null(), "{red}");
    api.ok("delete", &format!("{ms}/memories/{mid}"), None);
    api.error("get", &format!("{ms}/memories/{mid}"), None, 404, "not_found_error");
    api.error("get", &format!("{ms}/memories?limit=0"), None, 400, "invalid_request_error");
    let dream = json!({"inputs": [{"type": "memory_store", "memory_store_id": sid},
                                  {"type": "sessions", "session_ids": ["r/0", "r/4"]}], "model": "m"});
    let d = api.ok("post", "/anthropic/v1/dreams", Some(&dream));
    let did = d["id"].as_str().unwrap().to_owned();
    let mut status = String::new();
    for _ in 0..200 {
        status = api.ok("get", &format!("/anthropic/v1/dreams/{did}"), None)["status"].as_str().unwrap().to_owned();
        if status != "pending" && status != "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(status, "completed", "two graded sessions: the dream runs");
    api.ok("get", "/anthropic/v1/dreams?statuses[]=completed&statuses[]=failed&limit=5", None);
    api.error("post", &format!("/anthropic/v1/dreams/{did}/cancel"), None, 400, "invalid_request_error");
    api.ok("post", &format!("/anthropic/v1/dreams/{did}/archive"), None);
    // Canceling a pending dream nobody runs (recorded by hand) ends it at once.
    let pending = json!({"stream": "anthropic.dream/drm_contract", "events": [{"kind": "note", "actor": "system:t",
        "body": {"type": "anthropic.dream", "json": {"op": "created", "dreamer": "evidence",
                 "spec": {"store": sid, "sessions": ["r/0"], "model": "m", "speed": "standard"}}}}]});
    api.ok("post", "/v1/events", Some(&pending));
    let canceled = api.ok("post", "/anthropic/v1/dreams/drm_contract/cancel", None);
    assert_eq!(canceled["status"], "canceled", "{canceled}");
    api.ok("post", &format!("{ms}/archive"), None);
    api.ok("delete", &ms, None);
    api.error("get", &ms, None, 404, "not_found_error");
    let (s, answer) = api.raw(reqwest::Method::GET, "/anthropic/v1/nope");
    assert_eq!(
        (s, answer["type"].as_str(), answer["error"]["type"].as_str()),
        (404, Some("error"), Some("not_found_error"))
    );
    passed(Part { api, server, first, notes, _dir });
}

/// A push to a hosted store (the SDK-typed stand-in of the hosted API, mirrored first):
/// the calls a revert would send, then sent.
#[test]
fn the_push_to_a_hosted_store() {
    let dir = tempdir().unwrap();
    let standin = common::hosted::StandIn::start(&common::hosted::learning(), dir.path(), 0);
    // (Tenant t's database, mirrored before the server starts.)
    common::ok(&common::hosted::sync(&dir.path().join("db/tenants/t"), &standin.url, &["--no-sessions"]));
    let env = [("ANTHROPIC_BASE_URL", standin.url.as_str()), ("ANTHROPIC_API_KEY", common::hosted::KEY)];
    let sync = json!({"sync": {"anthropic": {"every_secs": 3600, "sessions": false}}});
    let p = part_with(dir, &env, sync);
    let mut api = p.api;
    // The server's mirror runs at start (nothing new: mirrored above); the push after it.
    let start = std::time::Instant::now();
    while api.ok("get", "/v1/info", None)["sync"]["runs"] != 1 {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "the server's mirror never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let revert = json!({"session": "sesn_02bravo", "reason": "contract test"});
    let dry = api.ok("post", "/v1/memory/memstore_02learn/push", Some(&json!({"revert": revert, "dry_run": true})));
    assert_eq!(dry["calls"][0]["status"], "planned", "{dry}");
    let done = api.ok("post", "/v1/memory/memstore_02learn/push", Some(&json!({"revert": revert})));
    assert_eq!(done["complete"], true, "{done}");
    api.error("post", "/v1/memory/memstore_02learn/revert", Some(&revert), 409, "conflict");
    // The server's own mirror, run now: the push's versions are in already.
    let report = api.ok("post", "/v1/sync/anthropic", None);
    assert!(report["stores"].as_array().unwrap().iter().all(|s| s["mirrored"] == 0), "{report}");
    assert_eq!(api.ok("get", "/v1/info", None)["sync"]["failures"], 0);
    passed(Part { api, ..p });
}
