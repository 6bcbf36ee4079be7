//! Refusals an adversarial run found missing (issue 30.7), each against the real server
//! or binary: an empty OTLP export writes nothing, MCP speaks JSON-RPC 2.0 only, a
//! cookie's 403 names the role it lacks, a malformed trusted key is bad input (exit 2).

mod common;

use common::server::{client, get, Server};
use serde_json::{json, Value};
use tempfile::tempdir;

fn events(c: &reqwest::blocking::Client, server: &Server, token: Option<&str>) -> u64 {
    get(c, &server.url("/v1/info"), token).1["events"].as_u64().unwrap()
}

#[test]
fn an_empty_otlp_export_is_answered_and_writes_nothing() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let c = client();
    // An empty protobuf message is a valid ExportTraceServiceRequest with no spans; the
    // same in JSON, with empty lists.
    for (path, content_type, body) in [
        ("/v1/traces", "application/x-protobuf", Vec::new()),
        ("/v1/logs", "application/x-protobuf", Vec::new()),
        ("/v1/traces", "application/json", br#"{"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}"#.to_vec()),
        ("/v1/logs", "application/json", br#"{"resourceLogs": []}"#.to_vec()),
    ] {
        let r = c.post(server.url(path)).header("content-type", content_type).body(body).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path} {content_type}");
        assert_eq!(events(&c, &server, None), 0, "{path} {content_type}: nothing to record, nothing written");
    }
    // One span is recorded, as before.
    let span = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331", "name": "chat", "startTimeUnixNano": "1000000000", "endTimeUnixNano": "2000000000"}]}]}]});
    let r = c.post(server.url("/v1/traces")).json(&span).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(events(&c, &server, None) >= 1, "a request with a span is recorded");
}

#[test]
fn mcp_answers_only_json_rpc_2_0() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let c = client();
    let url = server.url("/v1/mcp?store=m");
    let call = |msg: Value| -> Value { c.post(&url).json(&msg).send().unwrap().json().unwrap() };
    let create =
        json!({"name": "memory", "arguments": {"command": "create", "path": "/memories/a.md", "file_text": "x"}});
    for (msg, says) in [
        (json!({"id": 1, "method": "tools/call", "params": create}), "not missing"),
        (json!({"jsonrpc": "1.0", "id": 2, "method": "tools/call", "params": create}), "not \"1.0\""),
        (json!({"jsonrpc": 2, "id": 3, "method": "tools/list"}), "not 2"),
    ] {
        let answer = call(msg.clone());
        assert_eq!(answer["error"]["code"], -32600, "{msg}: {answer}");
        assert_eq!(answer["id"], msg["id"], "{answer}");
        let text = answer["error"]["message"].as_str().unwrap();
        assert!(text.contains("\"jsonrpc\" must be \"2.0\"") && text.contains(says), "{text}");
    }
    assert_eq!(events(&c, &server, None), 0, "no tool ran");
    let ok = call(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}));
    assert!(ok["result"]["tools"].is_array(), "{ok}");
}

#[test]
fn a_cookie_without_the_role_is_told_the_role_and_a_bad_trusted_key_is_bad_input() {
    let dir = tempdir().unwrap();
    let hash = dreamlog::hash_token;
    let cfg = dir.path().join("server.json");
    std::fs::write(
        &cfg,
        json!({"tokens": [{"tenant": "t", "role": "write", "token_blake3": hash("w")},
                          {"tenant": "t", "role": "admin", "token_blake3": hash("a")}]})
        .to_string(),
    )
    .unwrap();
    let server = Server::start(&dir.path().join("db"), &["--config", cfg.to_str().unwrap()]);
    let c = client();
    let cookie = |token: &str| -> String {
        let r = c.post(server.url("/ui/session")).json(&json!({ "token": token })).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
    };
    let export = |pair: &str, ui: bool| -> (u16, Value) {
        let mut rb = c.get(server.url("/v1/export")).header("cookie", pair);
        if ui {
            rb = rb.header("x-dreamlog-ui", "1");
        }
        let r = rb.send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    // A write token's cookie lacks the admin role: that is the reason, header or not.
    let write = cookie("w");
    for ui in [false, true] {
        let (status, body) = export(&write, ui);
        assert_eq!(status, 403, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("role is write; the operation needs admin"),
            "{body}"
        );
    }
    // An admin's cookie is asked for the header only a same-origin script sets.
    let admin = cookie("a");
    let (status, body) = export(&admin, false);
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("an admin request on the web view's session cookie needs the x-dreamlog-ui header"),
        "{body}"
    );
    assert_eq!(export(&admin, true).0, 200);
    assert!(server.stop().success());

    // `verify --trust` with something that is not a key: bad input, exit 2.
    let db = dir.path().join("embedded");
    common::ok(&common::dreamlog_on(&db, &["init"], None));
    let key = dir.path().join("key");
    common::ok(&common::dreamlog_on(&db, &["keygen", key.to_str().unwrap()], None));
    let cp = dir.path().join("cp.json");
    common::ok(&common::dreamlog_on(
        &db,
        &["checkpoint", "--key", key.to_str().unwrap(), "--out", cp.to_str().unwrap()],
        None,
    ));
    let out = common::dreamlog_on(&db, &["verify", "--checkpoint", cp.to_str().unwrap(), "--trust", "zz"], None);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an Ed25519 public key"));
}

/// Appends `n` notes of 64 KiB each to the stream `big`, 50 a batch.
fn append_big(c: &reqwest::blocking::Client, server: &Server, n: u64) {
    let big = "x".repeat(64 << 10);
    for batch in 0..n.div_ceil(50) {
        let events: Vec<Value> = (batch * 50..((batch + 1) * 50).min(n))
            .map(
                |i| json!({"kind": "note", "actor": "agent:a", "body": {"type": "big", "json": {"i": i, "text": big}}}),
            )
            .collect();
        let r = c.post(server.url("/v1/events")).json(&json!({"stream": "big", "events": events})).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}

/// The server's resident memory, KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Issue 30.5: tails whose clients never read hold a bounded number of bytes each (the
/// subscription reads ahead at most `BUFFER_BYTES`, then one event), not whole chunks of
/// large events: 80 of them over 64 KiB events would have held 128 events (8 MiB) each.
#[test]
fn tails_nobody_reads_hold_bounded_memory() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let c = client();
    append_big(&c, &server, 1000);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = rss_kib(server.pid());
    // Tails that are opened and never read.
    let tails: Vec<reqwest::blocking::Response> = (0..80)
        .map(|_| {
            let r = client().get(server.url("/v1/tail?from=0")).send().unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let after = rss_kib(server.pid());
    let per_tail = after.saturating_sub(before) / tails.len() as u64;
    // 256 KiB read ahead, one event, and hyper's own write buffer: well under 2 MiB a tail
    // (unbounded, each held 128 events of 64 KiB: 8 MiB).
    assert!(per_tail < 2048, "{per_tail} KiB held per unread tail ({before} KiB before, {after} KiB after)");
    // And a reader still gets every event, in order.
    drop(tails);
    let r = client().get(server.url("/v1/tail?from=990")).send().unwrap();
    let got = common::server::read_sse(r, 10);
    assert_eq!(got.iter().map(|(p, _)| *p).collect::<Vec<_>>(), (990..1000).collect::<Vec<u64>>());
}

/// Issue 30.5: tails share one byte budget (`max_tail_bytes`). Past it, the tails whose
/// clients left events unread longest are dropped (the order: `tests/store.rs`): a dropped
/// tail's buffer is freed at once, and when its client reads again it gets every event up
/// to a position, then an `error` event naming that position; a tail resumed from there
/// goes on without a gap.
#[test]
fn the_tails_share_a_byte_budget_and_a_dropped_tail_is_told_where_to_resume() {
    use std::io::BufRead;
    let dir = tempdir().unwrap();
    let cfg = dir.path().join("server.json");
    // Room for about two tails' read-ahead (each holds up to 256 KiB: three of these events).
    std::fs::write(&cfg, json!({"max_tail_bytes": 512 << 10}).to_string()).unwrap();
    let server = Server::start(&dir.path().join("db"), &["--config", cfg.to_str().unwrap()]);
    let c = client();
    // 26 MB: more than the sockets' buffers take, so an unread tail holds events itself.
    append_big(&c, &server, 400);
    // A connection that stalls 30 s fails the test rather than hanging it.
    let patient = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap();
    let open = || {
        let r = patient.get(server.url("/v1/tail?from=0")).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r
    };
    let slow = open();
    // Wait, by the server's own count, until the slow tail has stopped being sent events
    // (its sockets are full) for longer than a tail may idle before the budget drops it.
    let sent = || common::server::metric(&server, None, "dreamlog_tail_events_sent_total");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (mut last, mut still) = (sent(), std::time::Instant::now());
    while still.elapsed() < std::time::Duration::from_millis(1500) {
        assert!(std::time::Instant::now() < deadline, "the slow tail never stopped ({last} events sent)");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = sent();
        if now != last {
            (last, still) = (now, std::time::Instant::now());
        }
    }
    assert!(last < 400.0, "the sockets took the whole log ({last} events): make the events bigger");
    // More unread tails want room. The tails idle longest that hold events go first (the
    // order is proven in `tests/store.rs`); which tails hold events when their sockets
    // fill is up to timing, so open more until one is dropped, then find it by its error.
    let mut tails = vec![slow];
    while common::server::metric(&server, None, "dreamlog_tails_dropped_total") < 1.0 {
        assert!(std::time::Instant::now() < deadline, "no tail was dropped with {} open", tails.len());
        if tails.len() < 48 {
            tails.push(open());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Each tail read to the log's end or to its error: the first with an error is checked.
    let mut found = None;
    for (n, tail) in tails.drain(..).enumerate() {
        let (mut seen, mut id, mut event) = (Vec::new(), None, None);
        for line in std::io::BufReader::new(tail).lines() {
            let line = line.unwrap();
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().parse::<u64>().unwrap());
            } else if let Some(v) = line.strip_prefix("event:") {
                event = Some(v.trim().to_owned());
            } else if let Some(d) = line.strip_prefix("data:") {
                if event.as_deref() == Some("error") {
                    found = Some((n, seen, serde_json::from_str::<Value>(d.trim()).unwrap()));
                    break;
                }
                seen.push(id.take().unwrap());
                event = None;
                // Read to the end without being dropped: fail rather than wait on keep-alives.
                if seen.len() == 400 {
                    break;
                }
            }
        }
        if found.is_some() {
            break;
        }
    }
    let (n, seen, dropped) = found.expect("a dropped tail's client reads an error event");
    assert_eq!(dropped["error"]["type"], "slow_subscriber", "tail {n}: {dropped}");
    let at = dropped["error"]["position"].as_u64().unwrap();
    assert!(dropped["error"]["message"].as_str().unwrap().contains(&format!("?from={at}")), "{dropped}");
    assert_eq!(seen, (0..at).collect::<Vec<u64>>(), "every event before the position, in order, no gap");
    assert!(at < 400, "dropped before the end ({at})");
    // Resumed where it said: no gap, no duplicate.
    let r = client().get(server.url(&format!("/v1/tail?from={at}"))).send().unwrap();
    let got = common::server::read_sse(r, 3);
    assert_eq!(got.iter().map(|(p, _)| *p).collect::<Vec<_>>(), (at..at + 3).collect::<Vec<u64>>());
}

/// Issue 30.6: the name rules are for new events. An export holding events written before
/// them (a stream `a//b`) still imports whole — copied history keeps the rules it was
/// written under — while the same stream is refused for a new append.
#[test]
fn an_old_export_imports_whole_while_new_events_take_the_name_rules() {
    use dreamlog::core::{Body, CanonicalJson, Draft, Note};
    let dir = tempdir().unwrap();
    let body = |n: u64| Body::Note(Note { note_type: "t".into(), json: CanonicalJson::from_value(&json!({ "n": n })) });
    let first =
        Draft::new("a//b", dreamlog::Actor::System("old".into()), body(1)).seal(1_700_000_000_000, vec![]).unwrap();
    let second = Draft::new("a//b", dreamlog::Actor::System("old".into()), body(2))
        .seal(1_700_000_000_001, vec![first.id])
        .unwrap();
    let lines: String = [(&first, 0u64), (&second, 1)]
        .iter()
        .map(|(e, i)| dreamlog::EventJson::from_sealed(e, *i, *i).to_line() + "\n")
        .collect();
    let file = dir.path().join("old.jsonl");
    std::fs::write(&file, lines).unwrap();
    let db = dir.path().join("db");
    common::ok(&common::dreamlog_on(&db, &["import", file.to_str().unwrap()], None));
    let v: Value =
        serde_json::from_str(common::ok(&common::dreamlog_on(&db, &["--json", "verify"], None)).trim()).unwrap();
    assert_eq!((v["events"].as_u64(), v["problems"].as_array().map(Vec::len)), (Some(2), Some(0)), "{v}");
    let refused = common::dreamlog_on(
        &db,
        &["append", "--stream", "a//b"],
        Some(r#"{"kind":"note","actor":"agent:a","body":{"type":"t","json":3}}"#),
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("empty segment"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
