//! The OpenTelemetry benchmark (issue: OTLP in and out). Run: `bash tools/bootstrap.sh
//! cargo bench --bench otlp`.
//!
//! 1. Ingestion: OTLP_BENCH_CONNECTIONS connections (default 4) POST OTLP/HTTP protobuf
//!    requests of OTLP_BENCH_BATCH spans (default 512) to `dreamlog serve` (sync fsync)
//!    for OTLP_BENCH_SECONDS (default 10): spans acknowledged per second (each request
//!    durable before its answer), and the latency of a request. The spans are GenAI
//!    traces of 8 spans (an invoke_agent root, two chat spans with messages and usage,
//!    five execute_tool spans with arguments and results).
//! 2. Assembly: how long until the server has assembled every trace it acknowledged into
//!    its session (sessions/s, spans/s), measured from the end of the load.
//! 3. Import: the same traces as an OTLP/JSON Lines file (OTLP_BENCH_FILE_MB, default 64
//!    MB): reading and assembling it in process (MB/s), and `dreamlog import otlp` into a
//!    fresh database (MB/s, end to end: parse, assemble, append every session durably).

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dreamlog::otlp::proto::{
    any_value, AnyValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans,
    ScopeSpans, Span, Status,
};
use prost::Message;

// The server start is shared with the other HTTP benchmarks.
#[allow(dead_code)]
#[path = "shared/load.rs"]
mod load;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }) }
}

fn kvi(key: &str, v: i64) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::IntValue(v)) }) }
}

/// Trace `n`: 8 spans.
fn trace(n: u64) -> Vec<Span> {
    let tid = blake3::hash(format!("trace {n}").as_bytes()).as_bytes()[..16].to_vec();
    let sid = |i: u64| blake3::hash(format!("span {n} {i}").as_bytes()).as_bytes()[..8].to_vec();
    let t0 = 1_764_000_000_000_000_000u64 + n * 1_000_000_000;
    let root = sid(0);
    let span = |i: u64, name: &str, attrs: Vec<KeyValue>| Span {
        trace_id: tid.clone(),
        span_id: sid(i),
        parent_span_id: if i == 0 { Vec::new() } else { root.clone() },
        name: name.into(),
        kind: 1,
        start_time_unix_nano: t0 + i * 1_000_000,
        end_time_unix_nano: t0 + i * 1_000_000 + if i == 0 { 100_000_000 } else { 500_000 },
        attributes: attrs,
        events: Vec::new(),
        status: (i == 6).then(|| Status { message: "timeout".into(), code: 2 }),
    };
    let user = r#"[{"role":"user","parts":[{"type":"text","content":"Refund order 1234 for the customer; check the policy first."}]}]"#;
    let mut spans = vec![span(
        0,
        "invoke_agent support-bot",
        vec![
            kv("gen_ai.operation.name", "invoke_agent"),
            kv("gen_ai.agent.name", "support-bot"),
            kv("gen_ai.conversation.id", &format!("bench-{n}")),
            kv("gen_ai.request.model", "claude-test"),
        ],
    )];
    let calls: Vec<String> = (1..=5)
        .map(|i| format!(r#"{{"type":"tool_call","id":"call_{n}_{i}","name":"tool_{i}","arguments":{{"order":1234,"step":{i}}}}}"#))
        .collect();
    spans.push(span(
        1,
        "chat claude-test",
        vec![
            kv("gen_ai.operation.name", "chat"),
            kv("gen_ai.response.id", &format!("msg_{n}_a")),
            kvi("gen_ai.usage.input_tokens", 812),
            kvi("gen_ai.usage.output_tokens", 96),
            kv("gen_ai.input.messages", user),
            kv(
                "gen_ai.output.messages",
                &format!(
                    r#"[{{"role":"assistant","parts":[{{"type":"text","content":"Checking the policy."}},{}]}}]"#,
                    calls.join(",")
                ),
            ),
        ],
    ));
    for i in 1..=5u64 {
        let mut attrs = vec![
            kv("gen_ai.operation.name", "execute_tool"),
            kv("gen_ai.tool.name", &format!("tool_{i}")),
            kv("gen_ai.tool.call.id", &format!("call_{n}_{i}")),
            kv("gen_ai.tool.call.arguments", &format!(r#"{{"order":1234,"step":{i}}}"#)),
            kv("gen_ai.tool.call.result", r#"{"ok":true,"policy":"refunds within 30 days with a receipt"}"#),
        ];
        if i == 5 {
            attrs.push(kv("error.type", "TimeoutError"));
        }
        spans.push(span(i + 1, &format!("execute_tool tool_{i}"), attrs));
    }
    // The eighth: the closing answer.
    spans.push(span(
        7,
        "chat claude-test",
        vec![
            kv("gen_ai.operation.name", "chat"),
            kv("gen_ai.response.id", &format!("msg_{n}_b")),
            kvi("gen_ai.usage.input_tokens", 1204),
            kvi("gen_ai.usage.output_tokens", 40),
            kv("gen_ai.output.messages", r#"[{"role":"assistant","parts":[{"type":"text","content":"Refunded."}]}]"#),
        ],
    ));
    spans
}

/// One request of `batch` spans starting at trace `first`.
fn request(first: u64, batch: usize) -> ExportTraceServiceRequest {
    let mut spans = Vec::with_capacity(batch);
    let mut n = first;
    while spans.len() < batch {
        spans.extend(trace(n));
        n += 1;
    }
    spans.truncate(batch);
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![kv("service.name", "support-service")] }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "bench".into(), version: "1".into() }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn start_server(db: &std::path::Path) -> (std::process::Child, String) {
    let cfg = db.with_extension("json");
    std::fs::write(&cfg, r#"{"otlp_quiet_ms": 500, "max_concurrent": 256}"#).unwrap();
    load::start_server_with(db, &["--config".as_ref(), cfg.as_os_str()])
}

fn main() {
    let connections = env_or("OTLP_BENCH_CONNECTIONS", 4);
    let batch = env_or("OTLP_BENCH_BATCH", 512) as usize;
    let seconds = env_or("OTLP_BENCH_SECONDS", 10);
    let file_mb = env_or("OTLP_BENCH_FILE_MB", 64);
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = start_server(&dir.path().join("db"));

    // 1. Ingestion. Requests are encoded ahead (the exporter's work is not ours).
    println!("otlp ingestion: {connections} connections, {batch} spans per request, {seconds} s, sync fsync");
    let traces_per_request = (batch as u64).div_ceil(8);
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..connections)
        .map(|c| {
            let (acked, base) = (acked.clone(), base.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut lat = Vec::new();
                let mut n = c * 10_000_000;
                let mut next = request(n, batch).encode_to_vec();
                while Instant::now() < stop {
                    let body = std::mem::take(&mut next);
                    let t = Instant::now();
                    let r = client
                        .post(format!("{base}/v1/traces"))
                        .header("content-type", "application/x-protobuf")
                        .body(body)
                        .send()
                        .expect("request");
                    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
                    lat.push(t.elapsed());
                    acked.fetch_add(batch as u64, Ordering::Relaxed);
                    n += traces_per_request;
                    next = request(n, batch).encode_to_vec();
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let elapsed = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    let spans = acked.load(Ordering::Relaxed);
    println!(
        "  {spans} spans in {:.1} s: {:.0} spans/s acknowledged ({} requests; p50 {:.1} ms, p99 {:.1} ms)",
        elapsed.as_secs_f64(),
        spans as f64 / elapsed.as_secs_f64(),
        lat.len(),
        pct(0.5),
        pct(0.99)
    );

    // 2. Assembly: until every acknowledged trace is a session.
    let traces = spans / 8;
    let client = reqwest::blocking::Client::new();
    let t = Instant::now();
    loop {
        let v: serde_json::Value =
            client.get(format!("{base}/v1/sessions/stats")).send().and_then(|r| r.json()).unwrap_or_default();
        let n = v["sessions"].as_u64().unwrap_or(0);
        if n >= traces || t.elapsed() > Duration::from_secs(600) {
            let all = (elapsed + t.elapsed()).as_secs_f64();
            println!(
                "  assembled {n} of {traces} sessions {:.1} s after the load ended: {:.0} spans/s assembled over load + catch-up",
                t.elapsed().as_secs_f64(),
                (n * 8) as f64 / all
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = server.kill();
    let _ = server.wait();

    // 3. Import of an OTLP/JSON Lines file.
    let file = dir.path().join("traces.otlp.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let mut written = 0u64;
    let mut n = 0;
    while written < file_mb << 20 {
        let json = dreamlog::otlp::trace_request_to_json(&request(n, batch));
        let line = json.to_string();
        written += line.len() as u64 + 1;
        writeln!(w, "{line}").unwrap();
        n += traces_per_request;
    }
    drop(w);
    let mb = written as f64 / (1 << 20) as f64;
    let bytes = std::fs::read(&file).unwrap();
    let t = Instant::now();
    let sessions = dreamlog::import::otlp::parse_file("bench", &bytes).unwrap();
    let parse = t.elapsed().as_secs_f64();
    println!(
        "otlp import of {mb:.0} MB ({} sessions): read and assembled in {parse:.2} s = {:.0} MB/s",
        sessions.len(),
        mb / parse
    );
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_dreamlog"))
        .arg("--db")
        .arg(dir.path().join("import-db"))
        .args(["--sync", "fsync", "import", "otlp"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all = t.elapsed().as_secs_f64();
    println!("  `dreamlog import otlp` end to end (every session appended, fsync): {all:.2} s = {:.0} MB/s", mb / all);
}
