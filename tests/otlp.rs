//! OpenTelemetry in and out, against the real producers (tools/requirements.txt pins
//! them): the official opentelemetry-sdk with its OTLP/HTTP exporters, the two
//! instrumentations of the official anthropic SDK (talking to the loopback stand-in of
//! the Messages API, the one external service), and inspect-ai writing an .eval log —
//! all into a real `dreamlog serve` or the CLI on real RocksDB.

mod common;

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::model_api::{message, serve, Shared};
use common::server::{client, get, post, Server};
use common::{dreamlog_on, ok};
use serde_json::{json, Value};
use tempfile::tempdir;

/// Runs one part of tests/python/otel_producers.py; its last stdout line is JSON.
fn producer(args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg("tests/python/otel_producers.py")
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("python3 with the OpenTelemetry packages (tools/bootstrap.sh installs them)");
    assert!(
        out.status.success(),
        "{args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON summary")
}

/// A server whose OTLP assembly waits `quiet_ms` after a trace's last span.
fn otlp_server(dir: &std::path::Path, quiet_ms: u64) -> Server {
    let path = dir.join("server.json");
    std::fs::write(&path, json!({"otlp_quiet_ms": quiet_ms, "otlp_open_trace_secs": 3}).to_string()).unwrap();
    Server::start(&dir.join("db"), &["--config", path.to_str().unwrap()])
}

/// The session, once the assembler has written it with at least `min_events` events.
fn session_when(server: &Server, id: &str, min_events: usize) -> Value {
    let c = client();
    let started = Instant::now();
    loop {
        let (status, body) = get(&c, &server.url(&format!("/v1/session/{id}")), None);
        if status == 200 && body["events"].as_array().is_some_and(|e| e.len() >= min_events) {
            return body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "session {id} never assembled: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kinds(session: &Value) -> Vec<String> {
    session["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match e["kind"].as_str().unwrap() {
            "message" => format!("message:{}", e["body"]["role"].as_str().unwrap()),
            "action" => format!("action:{}", e["body"]["name"].as_str().unwrap()),
            k => k.to_owned(),
        })
        .collect()
}

fn events_of<'a>(session: &'a Value, kind: &str) -> Vec<&'a Value> {
    session["events"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn genai_spans_from_the_official_sdk_become_sessions_with_actions_and_grades() {
    let dir = tempdir().unwrap();
    let server = otlp_server(dir.path(), 500);
    let sent = producer(&["--part", "sdk", "--endpoint", &server.base, "--conversation", "conv-weather"]);
    // Two requests for the first trace (split, child spans first), two log records, and
    // a second trace whose root came in a later request than its child.
    let s = session_when(&server, "conv-weather", 9);
    // Grades arrive with the logs; wait for both.
    let s = if events_of(&s, "grade").len() < 2 { session_when(&server, "conv-weather", 10) } else { s };
    assert_eq!(
        kinds(&s),
        [
            "session.start",
            "message:system",
            "message:user",
            "message:assistant",
            "action:get_weather",
            "action:book_table",
            "message:assistant",
            "session.end",
            "grade",
            "grade"
        ],
        "{s:#}"
    );
    let start = &s["events"][0]["body"];
    assert_eq!(start["agent"], "weather-bot");
    assert_eq!(start["model"], "claude-test");
    assert_eq!(start["task_id"], "weather-and-booking");
    assert_eq!(start["meta"]["otel"]["trace_id"], sent["trace"]);
    // The tool call made by the first answer, answered by its execute_tool span.
    let actions = events_of(&s, "action");
    assert_eq!(actions[0]["body"]["input"], json!({"city": "Paris"}));
    assert_eq!(actions[0]["body"]["output"], json!({"temp_c": 21, "sky": "clear"}));
    assert_eq!(actions[0]["body"]["status"], "ok");
    assert_eq!(actions[0]["body"]["call_id"], "call_1");
    let assistant = &s["events"][3];
    assert_eq!(actions[0]["causes"][0], assistant["id"], "the action cites the message that made the call");
    assert_eq!(actions[1]["body"]["status"], "error");
    assert_eq!(actions[1]["body"]["meta"]["error"], "TimeoutError");
    assert!(actions[1]["body"].get("output").is_none_or(Value::is_null), "no result recorded: none invented");
    // Usage beside each answer; the summary sums it.
    assert_eq!(assistant["body"]["meta"]["usage"], json!({"input_tokens": 120, "output_tokens": 30}));
    assert_eq!(s["summary"]["input_tokens"], 320.0);
    assert_eq!(s["summary"]["output_tokens"], 42.0);
    let grades = events_of(&s, "grade");
    let by_name = |n: &str| *grades.iter().find(|g| g["body"]["rubric"] == n).unwrap();
    assert_eq!(by_name("task_success")["body"]["score"], 0.0);
    assert_eq!(by_name("task_success")["body"]["result"], "failed");
    assert_eq!(by_name("task_success")["body"]["meta"]["explanation"], "the table was not booked");
    assert_eq!(by_name("helpfulness")["body"]["score"], 0.8);
    assert_eq!(by_name("helpfulness")["body"]["evaluator"], "weather-service");
    assert_eq!(s["events"][7]["body"]["status"], "completed");

    // As people read it.
    let shown = ok(&common::run_dreamlog(&["--remote", &server.base, "sessions", "show", "conv-weather"], None));
    for line in
        ["[system] You are a weather bot.", "[user] Weather in Paris?", "[assistant] Checking.", "-> book_table"]
    {
        assert!(shown.contains(line), "{line:?} in:\n{shown}");
    }

    // The late-rooted trace: one session, its id the trace id, with its end.
    let late = sent["late_trace"].as_str().unwrap();
    let l = session_when(&server, late, 3);
    assert_eq!(kinds(&l), ["session.start", "action:lookup", "session.end"]);
    assert_eq!(l["events"][0]["body"]["agent"], "late-bot");

    // Listed, dreamable: the evidence dreamer reads these sessions like any other.
    let (status, list) = get(&client(), &server.url("/v1/sessions"), None);
    assert_eq!(status, 200);
    assert!(list.to_string().contains("conv-weather"), "{list}");
    // The raw requests are kept: every acknowledged request is a note on `otlp`.
    let (_, raw) = get(&client(), &server.url("/v1/streams/otlp"), None);
    assert!(raw["events"].as_array().unwrap().len() >= 5, "{raw}");
    assert!(raw["events"].as_array().unwrap().iter().all(|e| e["body"]["type"] == "otlp.request"));
    server.stop();
}

#[test]
fn the_anthropic_instrumentations_wrapping_the_official_sdk_give_sessions() {
    for which in ["openllmetry", "openinference"] {
        let script: Shared = Arc::default();
        {
            let mut s = script.lock().unwrap();
            s.replies.push_back(message(
                json!([{"type": "text", "text": "Let me look."},
                       {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]),
                "tool_use",
            ));
            s.replies.push_back(message(json!([{"type": "text", "text": "It is sunny, 21C."}]), "end_turn"));
        }
        let model = serve(script.clone());
        let dir = tempdir().unwrap();
        let server = otlp_server(dir.path(), 300);
        let conv = format!("conv-{which}");
        let sent = producer(&[
            "--part",
            which,
            "--endpoint",
            &server.base,
            "--model-url",
            &format!("http://{model}"),
            "--conversation",
            &conv,
        ]);
        assert_eq!(sent["final"], "It is sunny, 21C.");
        assert_eq!(script.lock().unwrap().received.len(), 2, "{which}: both calls reached the stand-in");
        let mut s = session_when(&server, &conv, 6);
        if events_of(&s, "grade").is_empty() {
            s = session_when(&server, &conv, 7);
        }
        assert_eq!(
            kinds(&s),
            [
                "session.start",
                "message:user",
                "message:assistant",
                "action:get_weather",
                "message:assistant",
                "session.end",
                "grade"
            ],
            "{which}: {s:#}"
        );
        let action = &events_of(&s, "action")[0]["body"];
        assert_eq!(action["input"], json!({"city": "Paris"}), "{which}");
        assert_eq!(action["call_id"], "toolu_01", "{which}");
        assert!(action["output"].to_string().contains("sunny, 21C"), "{which}: {action}");
        let first = &s["events"][2]["body"];
        assert_eq!(first["meta"]["usage"]["input_tokens"], 100, "{which}: {first}");
        assert_eq!(first["meta"]["usage"]["output_tokens"], 20, "{which}");
        assert!(first["content"].to_string().contains("Let me look."), "{which}: {first}");
        assert_eq!(s["events"][0]["body"]["agent"], format!("{which}-bot"));
        assert_eq!(events_of(&s, "grade")[0]["body"]["result"], "satisfied");
        server.stop();
    }
}

#[test]
fn otlp_json_gzip_and_bad_requests_over_http() {
    let dir = tempdir().unwrap();
    let server = otlp_server(dir.path(), 200);
    let c = client();
    let trace = "5b8efff798038103d269b633813fc60c";
    let req = json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeSpans": [{"scope": {"name": "hand"}, "spans": [
            {"traceId": trace, "spanId": "eee19b7ec3c1b174", "name": "invoke_agent j", "kind": 1,
             "startTimeUnixNano": "1764580000000000000", "endTimeUnixNano": "1764580005000000000",
             "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
                            {"key": "gen_ai.agent.name", "value": {"stringValue": "json-bot"}}]},
            {"traceId": trace, "spanId": "eee19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174", "name": "execute_tool t",
             "startTimeUnixNano": 1764580001000000000u64, "endTimeUnixNano": "1764580002000000000",
             "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                            {"key": "gen_ai.tool.name", "value": {"stringValue": "t"}},
                            {"key": "gen_ai.tool.call.arguments", "value": {"stringValue": "{\"n\": 3}"}},
                            {"key": "retries", "value": {"intValue": "2"}}],
             "status": {"code": 2, "message": "boom"}}]}]}]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(req.to_string().as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let r = c
        .post(server.url("/v1/traces"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let s = session_when(&server, trace, 3);
    assert_eq!(kinds(&s), ["session.start", "action:t", "session.end"]);
    assert_eq!(s["events"][1]["body"]["input"], json!({"n": 3}));
    assert_eq!(s["events"][1]["body"]["status"], "error");
    assert_eq!(s["events"][1]["body"]["meta"]["error"], "boom");

    // Bad input: a clear error, nothing written.
    let (_, info) = get(&c, &server.url("/v1/info"), None);
    let before = info["events"].as_u64().unwrap();
    let bad: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        ("application/x-protobuf", b"\xff\xff\xff".to_vec(), "", 400, "ExportTraceServiceRequest"),
        ("application/json", b"{\"resourceSpans\": [{\"scopeSpans\": [{\"spans\": [{\"traceId\": \"xyz\", \"spanId\": \"eee19b7ec3c1b175\"}]}]}]}".to_vec(), "", 400, "32 hex digits"),
        ("application/json", b"not json".to_vec(), "", 400, "not valid JSON"),
        ("text/plain", b"{}".to_vec(), "", 400, "not OTLP/HTTP"),
        ("application/json", b"{}".to_vec(), "br", 415, "Content-Encoding br"),
        ("application/json", b"\x1f\x8b\x08garbage".to_vec(), "gzip", 400, "gzip"),
    ];
    for (ct, body, enc, status, says) in bad {
        let mut r = c.post(server.url("/v1/traces")).header("content-type", ct).body(body);
        if !enc.is_empty() {
            r = r.header("content-encoding", enc);
        }
        let r = r.send().unwrap();
        assert_eq!(r.status().as_u16(), status, "{ct} {enc}");
        let proto = ct == "application/x-protobuf";
        let bytes = r.bytes().unwrap();
        let message = if proto {
            let st = <dreamlog::otlp::RpcStatus as prost::Message>::decode(&bytes[..]).expect("a google.rpc.Status");
            assert_eq!(st.code, 3);
            st.message
        } else {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            v["message"].as_str().unwrap().to_owned()
        };
        assert!(message.contains(says), "{ct} {enc}: {message}");
    }
    let (_, info) = get(&c, &server.url("/v1/info"), None);
    assert_eq!(info["events"].as_u64().unwrap(), before, "a refused request writes nothing");

    // A trace whose root never comes, and nothing written after it: the follower wakes
    // by itself once the trace has been quiet `otlp_open_trace_secs` (3 s here).
    let orphan = "6c9f0fa4f8e3b2d1c0a9b8c7d6e5f4a3";
    let req = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": orphan, "spanId": "aaa19b7ec3c1b175", "parentSpanId": "aaa19b7ec3c1b174", "name": "execute_tool t",
         "startTimeUnixNano": "1764580001000000000", "endTimeUnixNano": "1764580002000000000",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                        {"key": "gen_ai.tool.name", "value": {"stringValue": "t"}}]}]}]}]});
    assert_eq!(post(&c, &server.url("/v1/traces"), None, &req).0, 200);
    let s = session_when(&server, orphan, 2);
    assert_eq!(kinds(&s), ["session.start", "action:t"], "no end until the root arrives: {s}");
    server.stop();
}

#[test]
fn an_acknowledged_request_survives_a_crash_before_assembly() {
    let dir = tempdir().unwrap();
    // Assembly waits a minute: the server is killed long before it would assemble.
    let server = otlp_server(dir.path(), 60_000);
    let c = client();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let req = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": trace, "spanId": "b7ad6b7169203331", "name": "invoke_agent", "startTimeUnixNano": "1000000000",
         "endTimeUnixNano": "2000000000", "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}}]}]}]}]});
    let r = c
        .post(server.url("/v1/traces"))
        .header("content-type", "application/json")
        .body(req.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(server); // SIGKILL
    let server = otlp_server(dir.path(), 60_000);
    // The restarted server reads the raw notes again and, the server having been down,
    // assembles them at once.
    let s = session_when(&server, trace, 2);
    assert_eq!(kinds(&s), ["session.start", "session.end"]);
    server.stop();
}

#[test]
fn export_otlp_then_import_gives_the_same_sessions() {
    let dir = tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let fixtures = common::root().join("tests/fixtures/atif");
    let tau = common::root().join("tests/fixtures/claude-code");
    ok(&dreamlog_on(&a, &["import", fixtures.to_str().unwrap(), tau.to_str().unwrap()], None));
    let file = dir.path().join("sessions.otlp.jsonl");
    ok(&dreamlog_on(&a, &["export", "otlp", "--out", file.to_str().unwrap()], None));
    // Every line is an OTLP/JSON request as schemas/otlp-request.schema.json writes it down.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("schemas/otlp-request.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&schema).expect("schema compiles");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.lines().count() >= 3);
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        let errs: Vec<String> = v.iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errs.is_empty(), "{line}\n{errs:#?}");
    }
    let out = ok(&dreamlog_on(&b, &["import", "otlp", file.to_str().unwrap(), "--json"], None));
    assert!(out.contains("\"sessions\""), "{out}");
    let list = |db: &std::path::Path| -> Vec<Value> {
        let out = ok(&dreamlog_on(db, &["sessions", "list", "--json"], None));
        common::json_lines(&out)
    };
    let (la, lb) = (list(&a), list(&b));
    assert!(la.len() >= 3, "{la:?}");
    assert_eq!(la.len(), lb.len());
    for s in &la {
        let id = s["id"].as_str().unwrap();
        let (x, y) = (show(&a, id), show(&b, id));
        let ids =
            |v: &Value| -> Vec<Value> { v["events"].as_array().unwrap().iter().map(|e| e["id"].clone()).collect() };
        assert_eq!(ids(&x), ids(&y), "session {id}: the same events, with the same ids");
    }
    // Imported again: already present.
    let again = ok(&dreamlog_on(&b, &["import", "otlp", file.to_str().unwrap(), "--json"], None));
    assert!(again.contains("\"sessions\":0"), "{again}");
    // The graded ones are dreamed over, as in the store they came from.
    let graded = la.iter().filter(|s| !s["score"].is_null()).count();
    assert!(graded >= 1, "{la:?}");
    let dream = |db: &std::path::Path| -> Value {
        serde_json::from_str(&ok(&dreamlog_on(db, &["dream", "run", "s", "--create", "--json"], None))).unwrap()
    };
    let (da, db_) = (dream(&a), dream(&b));
    assert_eq!(db_["sessions"], graded, "{db_}");
    assert_eq!(da["sessions"], db_["sessions"]);
    assert_eq!(da["result_state"], db_["result_state"], "the same lessons from the same sessions");

    // What a tool that knows only the conventions reads: without dreamlog's own
    // attributes, the same tool calls (name, arguments, status) and grades come back.
    let text = std::fs::read_to_string(&file).unwrap();
    let stripped: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            strip(&mut v);
            v.to_string()
        })
        .collect();
    let plain = dir.path().join("plain.jsonl");
    std::fs::write(&plain, stripped.join("\n")).unwrap();
    let c = dir.path().join("c");
    ok(&dreamlog_on(&c, &["import", "otlp", plain.to_str().unwrap()], None));
    for s in &la {
        let id = s["id"].as_str().unwrap();
        let (x, z) = (show(&a, id), show(&c, id));
        let calls = |v: &Value| -> Vec<(Value, Value, Value)> {
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "action")
                .map(|e| (e["body"]["name"].clone(), e["body"]["input"].clone(), e["body"]["status"].clone()))
                .collect()
        };
        let grades = |v: &Value| -> Vec<(Value, Value)> {
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "grade")
                .map(|e| (e["body"]["rubric"].clone(), e["body"]["score"].clone()))
                .collect()
        };
        assert_eq!(calls(&x), calls(&z), "session {id}: the tool calls");
        assert_eq!(grades(&x), grades(&z), "session {id}: the grades");
    }
}

/// `sessions show ID --json` on the database at `db`.
fn show(db: &std::path::Path, id: &str) -> Value {
    serde_json::from_str(&ok(&dreamlog_on(db, &["sessions", "show", id, "--json"], None))).unwrap()
}

/// Removes every `dreamlog.*` attribute.
fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(attrs)) = m.get_mut("attributes") {
                attrs.retain(|a| !a["key"].as_str().unwrap_or_default().starts_with("dreamlog."));
            }
            for x in m.values_mut() {
                strip(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

#[test]
fn an_eval_log_written_by_inspect_ai_imports_as_graded_sessions() {
    let dir = tempdir().unwrap();
    let logs = dir.path().join("logs");
    let sent = producer(&["--part", "inspect", "--out", logs.to_str().unwrap()]);
    assert_eq!(sent["status"], "success");
    let file = sent["file"].as_str().unwrap();
    let db = dir.path().join("db");
    let out = ok(&dreamlog_on(&db, &["import", file, "--store", "math", "--json"], None));
    assert!(out.contains("\"format\":\"inspect\""), "{out}");
    let eval_id = sent["eval_id"].as_str().unwrap();
    let one = show(&db, &format!("inspect/{eval_id}/one/1"));
    assert_eq!(
        kinds(&one),
        [
            "session.start",
            "message:user",
            "message:assistant",
            "action:add",
            "message:assistant",
            "grade",
            "session.end"
        ],
        "{one:#}"
    );
    assert_eq!(one["events"][0]["body"]["task_id"], "addition/one");
    assert_eq!(one["events"][0]["body"]["task"], "What is 1 + 1?");
    assert_eq!(one["events"][3]["body"]["input"], json!({"x": 1, "y": 1}));
    assert_eq!(one["events"][3]["body"]["output"], "2");
    let g = &one["events"][5]["body"];
    assert_eq!(
        (g["rubric"].as_str(), g["score"].as_f64(), g["result"].as_str()),
        (Some("includes"), Some(1.0), Some("satisfied"))
    );
    let two = show(&db, &format!("inspect/{eval_id}/two/1"));
    let g = &events_of(&two, "grade")[0]["body"];
    assert_eq!((g["score"].as_f64(), g["result"].as_str()), (Some(0.0), Some("failed")));
    assert_eq!(g["meta"]["explanation"], "The answer is 6");
    assert_eq!(two["summary"]["input_tokens"], 20.0);
    // Idempotent.
    let again = ok(&dreamlog_on(&db, &["import", file, "--json"], None));
    assert!(again.contains("\"already_present\":2"), "{again}");
    // Dreamed over like any graded sessions.
    let run: Value =
        serde_json::from_str(&ok(&dreamlog_on(&db, &["dream", "run", "math", "--create", "--json"], None))).unwrap();
    assert_eq!(run["sessions"], 2, "{run}");
    assert_eq!(run["dreamer"], "evidence");
}
