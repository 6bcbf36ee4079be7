//! `dreamlog serve`, run as a process on 127.0.0.1 and spoken to over real HTTP:
//! appends and reads, errors with their status codes, the memory tool endpoint, the live
//! tail (resumed with Last-Event-ID, no gaps, no duplicates, with concurrent writers),
//! tenants and tokens, and a SIGTERM that loses no acknowledged append.

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::tempdir;

use common::server::{client, get, note, post, read_sse, Server};

#[test]
fn append_read_errors_memory_tool_tail_and_sigterm() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let server = Server::start(&db, &[]);
    let c = client();
    assert_eq!(get(&c, &server.url("/v1/health"), None).1["status"], "ok");

    // Append: a batch with an expectation, idempotent re-append, conflicts.
    let batch = json!({"stream": "notes", "events": [note(0), note(1)], "expect": {"notes": "no-stream"}});
    let (status, body) = post(&c, &server.url("/v1/events"), None, &batch);
    assert_eq!(status, 200, "{body}");
    let appended = body["appended"].as_array().unwrap();
    assert_eq!((appended[0]["position"].as_u64(), appended[1]["version"].as_u64()), (Some(0), Some(1)));
    // Other events expecting no stream: a conflict (the same events again, stamped in the
    // same millisecond, would be an idempotent retry, so the conflict uses others).
    let other = json!({"stream": "notes", "events": [note(7), note(8)], "expect": {"notes": "no-stream"}});
    let (status, body) = post(&c, &server.url("/v1/events"), None, &other);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["type"], "wrong_expected_version");
    assert_eq!(body["error"]["current_version"], 1);
    let (status, body) =
        post(&c, &server.url("/v1/events"), None, &json!({"stream": "notes", "events": [{"kind": "note"}]}));
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("event #0:"), "{body}");
    let (status, _) = post(&c, &server.url("/v1/events"), None, &json!({"events": []}));
    assert_eq!(status, 400);

    // Reads.
    let (_, page) = get(&c, &server.url("/v1/events?from=0&limit=10"), None);
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let id = page["events"][1]["id"].as_str().unwrap().to_owned();
    let (status, e) = get(&c, &server.url(&format!("/v1/events/{}", &id[..12])), None);
    assert_eq!((status, e["body"]["json"]["n"].as_u64()), (200, Some(1)));
    assert_eq!(get(&c, &server.url(&format!("/v1/events/{}", "ab".repeat(32))), None).0, 404);
    assert_eq!(get(&c, &server.url("/v1/streams/notes"), None).1["events"].as_array().unwrap().len(), 2);
    assert_eq!(get(&c, &server.url("/v1/streams/nope"), None).0, 404);
    assert_eq!(get(&c, &server.url("/v1/kinds/note"), None).1["events"].as_array().unwrap().len(), 2);
    assert_eq!(get(&c, &server.url("/v1/kinds/bogus"), None).0, 400);

    // The memory tool endpoint answers exactly as the tool does.
    let tool = server.url("/v1/memory/support/tool");
    let create = json!({"command": "create", "path": "/memories/a.md", "file_text": "hello\n"});
    let resp = c
        .post(&tool)
        .header("X-Dreamlog-Actor", "agent:bot")
        .header("X-Dreamlog-Session", "s1")
        .json(&create)
        .send()
        .unwrap();
    let r: Value = resp.json().unwrap();
    assert_eq!(r["content"], "File created successfully at: /memories/a.md");
    assert_eq!(r["is_error"], false);
    let (_, again) = post(&c, &tool, None, &create);
    assert_eq!(again["content"], "File /memories/a.md already exists");
    assert_eq!(again["is_error"], true);
    let (_, view) = post(&c, &tool, None, &json!({"command": "view", "path": "/memories/a.md"}));
    assert_eq!(view["content"], "Here's the content of /memories/a.md with line numbers:\n     1\thello\n     2\t");
    let (_, bad) = post(&c, &tool, None, &json!({"command": "explode"}));
    assert_eq!(bad["is_error"], true);
    let (_, ev) = get(&c, &server.url(&format!("/v1/events/{}", r["id"].as_str().unwrap())), None);
    assert_eq!((ev["actor"].as_str(), ev["body"]["session"].as_str()), (Some("agent:bot"), Some("s1")));

    // The tail: catch-up, then live; resumed after a disconnect with Last-Event-ID.
    let resp = c.get(server.url("/v1/tail?from=0")).send().unwrap();
    let first = read_sse(resp, 3);
    assert_eq!(first.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![0, 1, 2]);
    post(&c, &server.url("/v1/events"), None, &json!({"stream": "notes", "events": [note(2), note(3)]}));
    // (2 and 3 are the memory store's rules note and its create.)
    let resp = c.get(server.url("/v1/tail")).header("Last-Event-ID", "3").send().unwrap();
    let rest = read_sse(resp, 2);
    assert_eq!(rest.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(rest[1].1["body"]["json"]["n"], 3);
    let resp = c.get(server.url("/v1/tail?from=0&stream=memory/support")).send().unwrap();
    assert_eq!(read_sse(resp, 1)[0].0, 2, "a stream's tail skips other streams");

    // SIGTERM while a tail is open: the server ends the tail, finishes and exits 0.
    let _open_tail = c.get(server.url("/v1/tail?from=0")).send().unwrap();
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let store = common::open(&db);
    assert_eq!(store.len(), 6, "every acknowledged append is there");
    assert!(store.verify(|_| ()).unwrap().is_clean());
}

#[test]
fn tenants_are_isolated_and_tokens_checked() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let hash = |t: &str| dreamlog::hash_token(t);
    let config = json!({"tokens": [
        {"tenant": "acme", "role": "write", "token_blake3": hash("acme-write")},
        {"tenant": "acme", "role": "read", "token_blake3": hash("acme-read")},
        {"tenant": "globex", "role": "admin", "token_blake3": hash("globex-admin")},
    ], "max_batch": 3, "block_cache_bytes": 8388608, "write_buffer_bytes": 4194304});
    let cfg_path = dir.path().join("server.json");
    std::fs::write(&cfg_path, config.to_string()).unwrap();
    let server = Server::start(&db, &["--config", cfg_path.to_str().unwrap()]);
    let c = client();
    assert_eq!(get(&c, &server.url("/v1/health"), None).0, 200, "health needs no token");

    let batch = json!({"stream": "secret", "events": [note(1)]});
    assert_eq!(post(&c, &server.url("/v1/events"), None, &batch).0, 401);
    assert_eq!(post(&c, &server.url("/v1/events"), Some("wrong"), &batch).0, 401);
    let (status, body) = post(&c, &server.url("/v1/events"), Some("acme-read"), &batch);
    assert_eq!((status, body["error"]["type"].as_str()), (403, Some("forbidden")));
    assert_eq!(post(&c, &server.url("/v1/events"), Some("acme-write"), &batch).0, 200);
    assert_eq!(get(&c, &server.url("/v1/streams/secret"), Some("acme-read")).0, 200);
    // Another tenant does not see it at all.
    assert_eq!(get(&c, &server.url("/v1/streams/secret"), Some("globex-admin")).0, 404);
    assert_eq!(get(&c, &server.url("/v1/events"), Some("globex-admin")).1["events"].as_array().unwrap().len(), 0);
    let tool = server.url("/v1/memory/shared/tool");
    post(&c, &tool, Some("acme-write"), &json!({"command": "create", "path": "/memories/x.md", "file_text": "acme\n"}));
    let (_, v) = post(&c, &tool, Some("globex-admin"), &json!({"command": "view", "path": "/memories/x.md"}));
    assert_eq!(v["is_error"], true, "{v}");
    // The exec dreamer runs programs on the server: no request may name one, not even an
    // admin's (programs come only from the server's config).
    let exec = json!({"store": "shared", "dreamer": "exec@1", "config": {"command": ["true"]}});
    for token in ["acme-write", "globex-admin"] {
        let (status, body) = post(&c, &server.url("/v1/dreams"), Some(token), &exec);
        assert_eq!((status, body["error"]["type"].as_str()), (403, Some("forbidden")), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("runs a program on the server"), "{body}");
    }
    // Limits: batch size.
    let big = json!({"stream": "s", "events": [note(1), note(2), note(3), note(4)]});
    let (status, body) = post(&c, &server.url("/v1/events"), Some("acme-write"), &big);
    assert_eq!((status, body["error"]["type"].as_str()), (413, Some("too_large")));
    assert!(server.stop().success());

    // Without tokens, a non-loopback address is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_dreamlog"))
        .arg("--db")
        .arg(dir.path().join("other"))
        .args(["serve", "--addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));
}

#[test]
fn four_writers_four_tailers_one_reconnecting_see_the_log_exactly() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let server = Server::start(&db, &[]);
    const PER_WRITER: u64 = 50;
    const TOTAL: usize = 4 * PER_WRITER as usize * 2;
    let base = server.base.clone();
    let tailers: Vec<_> = (0..4)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let c = client();
                if i == 0 {
                    // Reconnects after 37 events, resuming from the last id it saw.
                    let mut got = read_sse(c.get(format!("{base}/v1/tail?from=0")).send().unwrap(), 37);
                    let last = got.last().unwrap().0.to_string();
                    let resp = c.get(format!("{base}/v1/tail")).header("Last-Event-ID", last).send().unwrap();
                    got.extend(read_sse(resp, TOTAL - 37));
                    got
                } else {
                    read_sse(c.get(format!("{base}/v1/tail?from=0")).send().unwrap(), TOTAL)
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let base = base.clone();
            std::thread::spawn(move || {
                let c = client();
                for i in 0..PER_WRITER {
                    let batch =
                        json!({"stream": format!("w{w}"), "events": [note(w * 1000 + i), note(w * 1000 + i + 500)]});
                    assert_eq!(post(&c, &format!("{base}/v1/events"), None, &batch).0, 200);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let c = client();
    let mut log = Vec::new();
    let mut from = 0;
    loop {
        let (_, page) = get(&c, &server.url(&format!("/v1/events?from={from}&limit=1000")), None);
        let events = page["events"].as_array().unwrap().clone();
        if events.is_empty() {
            break;
        }
        from = events.last().unwrap()["position"].as_u64().unwrap() + 1;
        log.extend(events.into_iter().map(|e| e["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(log.len(), TOTAL);
    for t in tailers {
        let seen = t.join().unwrap();
        let positions: Vec<u64> = seen.iter().map(|(p, _)| *p).collect();
        assert_eq!(positions, (0..TOTAL as u64).collect::<Vec<_>>(), "no gaps, no duplicates");
        let ids: Vec<String> = seen.iter().map(|(_, e)| e["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids, log, "the same events in the log's order");
    }
    assert!(server.stop().success());
}

#[test]
fn the_python_client_records_a_session_uses_memory_and_follows_the_log() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let server = Server::start(&db, &[]);
    let out = Command::new("python3")
        .args(["tools/python/example_agent.py", "--url", &server.base])
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["stream_version"], 5, "start, 3 actions, grade, end: {r}");
    assert_eq!(r["memory_first_view_error"], true);
    assert_eq!(r["memory_write"], "File created successfully at: /memories/refunds.md");
    let kinds: Vec<&str> = r["tail"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["session.start", "action", "action", "action", "note", "memory", "grade", "session.end"]);
    assert_eq!(r["conflict"], json!({"status": 409, "type": "wrong_expected_version"}));
    let c = client();
    let (_, view) = get(&c, &server.url("/v1/memory/support/view?path=/memories/refunds.md"), None);
    assert!(view["text"].as_str().unwrap().contains("Verify the customer's identity"), "{view}");
    let (_, history) = get(&c, &server.url("/v1/memory/support/history"), None);
    assert_eq!(history["events"][0]["body"]["type"], "memory.rules");
    let m = &history["events"][1];
    assert_eq!((m["actor"].as_str(), m["body"]["session"].as_str()), (Some("agent:py-agent"), Some("py-agent-1")));
    let (_, sessions) = get(&c, &server.url("/v1/sessions"), None);
    assert_eq!(sessions["sessions"][0]["score"], 1.0);
    assert!(server.stop().success());
}

#[test]
fn memory_dream_and_drift_operations_over_http() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let store = common::open(&db);
        let mem = dreamlog::memory::MemoryStores::new(store.clone());
        dreamlog::sim::run_round(&mem, "live", "a", 30, 1).unwrap();
        store.close().unwrap();
    }
    let server = Server::start(&db, &[]);
    let c = client();
    let (status, run) = post(&c, &server.url("/v1/dreams"), None, &json!({"store": "live"}));
    assert_eq!(status, 200, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(run["output_store"], "live.dream-1");
    let (_, show) = get(&c, &server.url(&format!("/v1/dreams/{}", &id[..16])), None);
    assert!(show["lessons"].as_array().unwrap().len() >= 2);
    let (_, replay) = post(&c, &server.url(&format!("/v1/dreams/{id}/replay")), None, &json!({}));
    assert_eq!((replay["identical"].as_bool(), replay["same_dreamer"].as_bool()), (Some(true), Some(true)));
    let (_, diff) = get(&c, &server.url("/v1/memory/live/diff?other=live.dream-1"), None);
    assert_eq!(diff["added"], json!(["/memories/lessons/sim/refunds.md"]));
    let (status, _) = post(&c, &server.url("/v1/memory/live.dream-1/promote"), None, &json!({"into": "live"}));
    assert_eq!(status, 200);
    let (_, blame) = get(&c, &server.url("/v1/memory/live/blame?path=/memories/lessons/sim/refunds.md"), None);
    assert!(blame["lines"].as_array().unwrap().iter().any(|l| l["dream"] == id.as_str()));
    let (_, lessons) = get(&c, &server.url("/v1/memory/live/lessons"), None);
    assert!(lessons["lessons"].as_array().unwrap().len() >= 2);
    let (status, tag) = post(&c, &server.url("/v1/tags"), None, &json!({"name": "v1"}));
    assert_eq!(status, 200, "{tag}");
    assert_eq!(post(&c, &server.url("/v1/tags"), None, &json!({"name": "v1"})).0, 409);
    let (status, _) = post(&c, &server.url("/v1/memory/live/fork"), None, &json!({"new": "trial", "at": "v1"}));
    assert_eq!(status, 200);
    assert_eq!(post(&c, &server.url("/v1/memory/live/fork"), None, &json!({"new": "trial"})).0, 409);
    let (status, reverted) =
        post(&c, &server.url("/v1/memory/live/revert"), None, &json!({"dream": id, "reason": "test"}));
    assert_eq!(status, 200, "{reverted}");
    let (_, view) = get(&c, &server.url("/v1/memory/live/view?path=/memories"), None);
    assert!(!view["text"].as_str().unwrap().contains("/memories/lessons"), "{view}");
    let (_, view) = get(&c, &server.url("/v1/memory/live/view?path=/memories&at=v1"), None);
    assert!(view["text"].as_str().unwrap().contains("/memories/lessons/sim"), "as of the tag: {view}");
    let (status, bad) = post(&c, &server.url("/v1/memory/live/revert"), None, &json!({"reason": "nothing named"}));
    assert_eq!((status, bad["error"]["type"].as_str()), (400, Some("invalid_request")));
    let (_, drift) = get(&c, &server.url("/v1/drift/live"), None);
    assert_eq!(drift["sessions"], 30);
    let (_, stats) = get(&c, &server.url("/v1/sessions/stats"), None);
    assert_eq!(stats["sessions"], 30, "{stats}");
    let (_, session) = get(&c, &server.url("/v1/session/sim/a/0"), None);
    assert_eq!(session["events"][0]["kind"], "session.start");
    let export = c.get(server.url("/v1/export")).send().unwrap().text().unwrap();
    let (_, verify) = post(&c, &server.url("/v1/verify"), None, &json!({}));
    assert_eq!(export.lines().count() as u64, verify["events"].as_u64().unwrap(), "{verify}");
    assert!(server.stop().success());
}

fn cli_run(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let out = common::run_dreamlog(args, stdin);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An output without who wrote and when each store received it (`received` lines and
/// fields): those differ by design between the embedded store (the OS user) and a server
/// (its principal).
fn unreceipted(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with("received  "))
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(mut o)) => {
                o.remove("received");
                Value::Object(o).to_string()
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The CLI on an embedded database (`e`) and on a server of its own (`r`).
struct BothWays {
    dir: tempfile::TempDir,
    server: Server,
}

impl BothWays {
    fn new() -> BothWays {
        let dir = tempdir().unwrap();
        let server = Server::start(&dir.path().join("served"), &[]);
        BothWays { dir, server }
    }

    fn e(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let db = self.dir.path().join("embedded");
        let mut a = vec!["--db", db.to_str().unwrap()];
        a.extend_from_slice(args);
        cli_run(&a, stdin)
    }

    fn r(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut a = vec!["--remote", self.server.base.as_str()];
        a.extend_from_slice(args);
        cli_run(&a, stdin)
    }
}

#[test]
fn the_cli_prints_the_same_embedded_and_remote() {
    let dir = tempdir().unwrap();
    let embedded = dir.path().join("embedded");
    let served = dir.path().join("served");
    let events = r#"{"kind":"note","actor":"human:ada","time":1764111000000,"body":{"type":"hello","json":{"n":1}}}
{"kind":"note","actor":"human:ada","time":1764111000001,"body":{"type":"hello","json":{"n":2}}}
"#;
    let create = r#"{"command":"create","path":"/memories/a.md","file_text":"one\ntwo\n"}"#;
    let replace = r#"{"command":"str_replace","path":"/memories/a.md","old_str":"two","new_str":"2"}"#;
    let server = Server::start(&served, &[]);
    let e = |args: &[&str], stdin: Option<&str>| {
        let mut a = vec!["--db", embedded.to_str().unwrap()];
        a.extend_from_slice(args);
        cli_run(&a, stdin)
    };
    let r = |args: &[&str], stdin: Option<&str>| {
        let mut a = vec!["--remote", server.base.as_str()];
        a.extend_from_slice(args);
        cli_run(&a, stdin)
    };
    // The same writes, both ways: the same output and exit code.
    let writes: Vec<(Vec<&str>, Option<&str>)> = vec![
        (vec!["append", "--stream", "notes", "--expect", "no-stream"], Some(events)),
        (vec!["append", "--stream", "notes", "--expect", "no-stream"], Some(events)),
        (vec!["append", "--stream", "notes"], Some("{\"kind\":\"note\"}\n")),
        (vec!["memory", "apply", "s", create], None),
        (vec!["memory", "apply", "s", create], None),
        (vec!["memory", "apply", "s", "--actor", "agent:bot", "--session", "s1"], Some(replace)),
        (vec!["memory", "apply", "s", "--json", r#"{"command":"delete","path":"/memories/nope.md"}"#], None),
    ];
    for (args, stdin) in &writes {
        let (a, b) = (e(args, *stdin), r(args, *stdin));
        assert_eq!((a.0, &a.1), (b.0, &b.1), "{args:?}\nembedded stderr: {}\nremote stderr: {}", a.2, b.2);
        assert_eq!(a.2.is_empty(), b.2.is_empty(), "{args:?}: {} / {}", a.2, b.2);
    }
    // Reads: the server's database now holds the same log as the embedded one except
    // the memory commands' stamped times, so compare reads that do not print times or ids
    // of those, plus every read of the notes stream.
    let reads: Vec<Vec<&str>> = vec![
        vec!["log", "--stream", "notes"],
        vec!["log", "--stream", "notes", "--json"],
        vec!["log", "--kind", "note", "--limit", "1"],
        vec!["log", "--from", "1", "--limit", "1", "--json"],
        vec!["memory", "view", "s"],
        vec!["memory", "view", "s", "/memories/a.md", "--range", "2:2"],
        vec!["memory", "view", "s", "/memories/nope.md"],
        vec!["memory", "view", "s", "/memories/a.md", "--json", "--at", "2"],
        vec!["verify"],
    ];
    let (_, log, _) = e(&["log", "--stream", "notes", "--json"], None);
    let id = serde_json::from_str::<Value>(log.lines().next().unwrap()).unwrap()["id"].as_str().unwrap().to_owned();
    let show = vec!["show", &id[..10]];
    let show_json = vec!["show", &id[..10], "--json"];
    // Who wrote differs by design (the OS user embedded, the server's principal remote),
    // and when each store received its batch: the same output without them.
    for args in reads.iter().chain([&show, &show_json]) {
        let (a, b) = (e(args, None), r(args, None));
        assert_eq!(
            (a.0, unreceipted(&a.1)),
            (b.0, unreceipted(&b.1)),
            "{args:?}\nembedded stderr: {}\nremote stderr: {}",
            a.2,
            b.2
        );
        if args.contains(&"--json") && args[0] == "show" {
            assert_eq!(serde_json::from_str::<Value>(&a.1).unwrap()["received"]["role"], "local");
            assert_eq!(serde_json::from_str::<Value>(&b.1).unwrap()["received"]["principal"], "anonymous");
        }
    }
    // History prints the commands' stamped times and ids: the same lines without them.
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| {
                // …and who wrote it (`  by PRINCIPAL` at the end).
                let l = l.rsplit_once("  by ").map_or(l, |(kept, _)| kept);
                let fields: Vec<&str> = l.split("  ").filter(|p| !p.is_empty()).collect();
                format!("{}|{}", fields[0], fields[3..].join("|"))
            })
            .collect()
    };
    let (a, b) = (e(&["memory", "history", "s"], None), r(&["memory", "history", "s"], None));
    assert_eq!(a.1.lines().count(), 3, "the rules note and two commands: {}", a.1);
    assert_eq!(strip(&a.1), strip(&b.1));
    // A command citing its evidence, and one whose precondition fails: the same both ways.
    let insert = r#"{"command":"insert","path":"/memories/a.md","insert_line":0,"insert_text":"zero"}"#;
    let stale = "0".repeat(64);
    let unknown = "f".repeat(64);
    for args in [
        vec!["memory", "apply", "s", "--cause", &id[..10], insert],
        vec!["memory", "apply", "s", "--precondition", &stale, insert],
        vec!["memory", "apply", "s", "--cause", &unknown, insert],
    ] {
        let (a, b) = (e(&args, None), r(&args, None));
        assert_eq!((a.0, &a.1), (b.0, &b.1), "{args:?}\nembedded stderr: {}\nremote stderr: {}", a.2, b.2);
    }
    let blame_json =
        |out: (i32, String, String)| -> Value { serde_json::from_str(out.1.lines().next().unwrap()).unwrap() };
    let (a, b) = (
        blame_json(e(&["memory", "blame", "s", "/memories/a.md", "--json"], None)),
        blame_json(r(&["memory", "blame", "s", "/memories/a.md", "--json"], None)),
    );
    assert_eq!(a["text"], "zero");
    assert_eq!(a["evidence"], json!([id]), "{a}");
    assert_eq!(b["evidence"], a["evidence"]);
    // A graded session that ran with store s, appended both ways with fixed times.
    let session = r#"{"kind":"session.start","actor":"agent:bot","time":1764111000100,"body":{"session":"s9","agent":"bot","task_id":"t/1","store":"s"}}
{"kind":"action","actor":"agent:bot","time":1764111000101,"body":{"session":"s9","name":"lookup","input":{"q":1},"output":"ok","status":"ok"}}
{"kind":"grade","actor":"evaluator:judge","time":1764111000102,"body":{"session":"s9","rubric":"r","evaluator":"judge","score":1,"result":"satisfied","criteria":[{"name":"c","passed":true}]}}
{"kind":"session.end","actor":"agent:bot","time":1764111000103,"body":{"session":"s9","status":"completed"}}
"#;
    let (a, b) = (
        e(&["append", "--stream", "session/s9"], Some(session)),
        r(&["append", "--stream", "session/s9"], Some(session)),
    );
    assert_eq!(a.1, b.1);
    for args in [
        vec!["sessions", "list"],
        vec!["sessions", "list", "--json", "--graded"],
        vec!["sessions", "stats"],
        vec!["sessions", "stats", "--json"],
        vec!["sessions", "show", "s9"],
        vec!["sessions", "show", "s9", "--json"],
        vec!["memory", "diff", "s", "--from", "2", "--to", "head"],
        vec!["memory", "diff", "s", "--from", "2", "--json"],
        vec!["drift", "s"],
        vec!["drift", "s", "--json"],
        vec!["drift", "s", "--resamples", "500", "--min-sessions", "1", "--json"],
    ] {
        let (a, b) = (e(&args, None), r(&args, None));
        assert_eq!((a.0, &a.1), (b.0, &b.1), "{args:?}\nembedded stderr: {}\nremote stderr: {}", a.2, b.2);
    }
    // Outputs that print the stamped ids and times of memory events: the same once those
    // are set aside.
    // A dream's meta records its wall-clock duration: set that aside too.
    let untimed = |l: &str| -> String {
        match l.find("\"elapsed_ms\":") {
            Some(i) => {
                let start = i + "\"elapsed_ms\":".len();
                let digits = l[start..].bytes().take_while(u8::is_ascii_digit).count();
                format!("{}_{}", &l[..start], &l[start + digits..])
            }
            None => l.to_owned(),
        }
    };
    let without_ids = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| {
                // Who wrote a line differs by design (`by os:USER` / `by anonymous`).
                let l = l.rsplit_once("  by ").map_or(l, |(kept, _)| kept);
                untimed(l)
                    .split_whitespace()
                    .filter(|w| {
                        let id = w.len() >= 12 && w.bytes().all(|b| b.is_ascii_hexdigit());
                        // An RFC 3339 time (YYYY-MM-DDThh:…), at any hour of the day.
                        let b = w.as_bytes();
                        let time = b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T';
                        !(id || time)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    for args in [
        vec!["memory", "blame", "s", "/memories/a.md"],
        vec!["memory", "lessons", "s"],
        vec!["tag", "v1", "--at", "1", "--actor", "human:t"],
        vec!["memory", "fork", "s", "s2", "--at", "v1"],
        vec!["memory", "apply", "s2", r#"{"command":"create","path":"/memories/b.md","file_text":"b\n"}"#],
        vec!["memory", "promote", "s2", "--into", "s"],
        vec!["memory", "revert", "s", "--to", "v1", "--reason", "back"],
        vec!["memory", "view", "s"],
    ] {
        let (a, b) = (e(&args, None), r(&args, None));
        assert_eq!(a.0, b.0, "{args:?}: {} / {}", a.2, b.2);
        assert_eq!(without_ids(&a.1), without_ids(&b.1), "{args:?}\n{}\n{}", a.1, b.1);
    }
    // Dreams: the same up to the dreams' own stamped ids.
    for args in [
        vec!["dream", "run", "s", "--in-place"],
        // Nothing new: the same message (store, position) both ways, exit 0.
        vec!["dream", "run", "s", "--in-place"],
        vec!["dream", "run", "s", "--in-place", "--json"],
        vec!["dream", "list"],
        vec!["dream", "list", "--store", "nope"],
        vec!["dream", "replay", "--all"],
    ] {
        let (a, b) = (e(&args, None), r(&args, None));
        assert_eq!(a.0, b.0, "{args:?}: {} / {}", a.2, b.2);
        assert_eq!(without_ids(&a.1), without_ids(&b.1), "{args:?}\n{}\n{}", a.1, b.1);
    }
    let first_dream = |out: (i32, String, String)| -> String {
        serde_json::from_str::<Value>(out.1.lines().next().unwrap()).unwrap()["id"].as_str().unwrap().to_owned()
    };
    let (ea, rb) =
        (first_dream(e(&["dream", "list", "--json"], None)), first_dream(r(&["dream", "list", "--json"], None)));
    let (a, b) = (e(&["dream", "show", &ea], None), r(&["dream", "show", &rb], None));
    assert_eq!(without_ids(&a.1), without_ids(&b.1));
    let (a, b) = (
        e(&["dream", "replay", &ea, "--config", r#"{"min_tasks": 1}"#], None),
        r(&["dream", "replay", &rb, "--config", r#"{"min_tasks": 1}"#], None),
    );
    assert_eq!((a.0, without_ids(&a.1)), (b.0, without_ids(&b.1)));
    // Export: the notes and the session (fixed times) export identically.
    let (a, b) = (e(&["export"], None), r(&["export"], None));
    assert_eq!(a.1.lines().count(), b.1.lines().count());
    let same_lines = |x: &str, y: &str, needle: &str| {
        let f = |t: &str| t.lines().filter(|l| l.contains(needle)).map(unreceipted).collect::<Vec<_>>();
        assert_eq!(f(x), f(y), "{needle}");
    };
    same_lines(&a.1, &b.1, "\"stream\":\"notes\"");
    same_lines(&a.1, &b.1, "\"stream\":\"session/s9\"");
    let (a, b) = (e(&["init", "--json"], None), r(&["init", "--json"], None));
    let events = |o: &str| serde_json::from_str::<Value>(o).unwrap()["events"].clone();
    assert_eq!(events(&a.1), events(&b.1));
    assert!(server.stop().success());
}

/// Imports of real agent runs and of a dreamlog export: the same reports both ways; an
/// export is checked whole first (a broken chain writes nothing) and lands byte for byte.
#[test]
fn imports_of_runs_and_exports_report_the_same_embedded_and_remote() {
    let both = BothWays::new();
    let (dir, e, r) = (both.dir.path(), |a: &[&str], i| both.e(a, i), |a: &[&str], i| both.r(a, i));
    let events = r#"{"kind":"note","actor":"human:ada","time":1764111000000,"body":{"type":"hello","json":{"n":1}}}
{"kind":"note","actor":"human:ada","time":1764111000001,"body":{"type":"hello","json":{"n":2}}}
"#;
    let create = r#"{"command":"create","path":"/memories/a.md","file_text":"one\ntwo\n"}"#;
    for args in [vec!["append", "--stream", "notes"], vec!["memory", "apply", "s", create]] {
        let (a, b) = (e(&args, Some(events)), r(&args, Some(events)));
        assert_eq!((a.0, b.0), (0, 0), "{args:?}: {} / {}", a.2, b.2);
    }
    // Import of real agent runs: parsed by the client, one batch per session; the same
    // report both ways, the second time as "already present".
    let data = common::data("tau-bench").display().to_string();
    for _ in 0..2 {
        let args = ["import", data.as_str(), "--store", "s"];
        let (a, b) = (e(&args, None), r(&args, None));
        assert_eq!((a.0, &a.1, &a.2), (b.0, &b.1, &b.2), "{args:?}");
    }
    assert!(e(&["sessions", "stats"], None).1.contains("100 sessions")); // τ-bench's 100 runs
    for args in [
        vec!["sessions", "stats"],
        vec!["sessions", "list", "--graded"],
        vec!["dream", "run", "s", "--into", "t", "--json"],
    ] {
        let (a, b) = (e(&args, None), r(&args, None));
        let strip_json_ids = |o: &str| o.replace(|c: char| c.is_ascii_hexdigit(), "");
        assert_eq!((a.0, strip_json_ids(&a.1)), (b.0, strip_json_ids(&b.1)), "{args:?}");
    }
    // A dreamlog export, imported both ways into empty databases: checked whole first
    // (a broken chain writes nothing), then the same report and an identical log.
    let export = dir.join("export.jsonl");
    let (code, text, _) = e(&["export"], None);
    assert_eq!(code, 0);
    assert!(text.lines().count() > 2000, "an export bigger than a lookup chunk and an append batch");
    std::fs::write(&export, &text).unwrap();
    let broken = dir.join("broken.jsonl");
    let mut lines: Vec<&str> = text.lines().collect();
    let gap = lines.iter().rposition(|l| l.contains("\"stream\":\"notes\"")).unwrap();
    lines.remove(gap - 1); // the notes stream now skips an event
    std::fs::write(&broken, lines.join("\n") + "\n").unwrap();
    let (copy_e, copy_r) = (dir.join("copy-embedded"), dir.join("copy-served"));
    let copy_server = Server::start(&copy_r, &[]);
    let ce = |args: &[&str]| {
        let mut a = vec!["--db", copy_e.to_str().unwrap()];
        a.extend_from_slice(args);
        cli_run(&a, None)
    };
    let cr = |args: &[&str]| {
        let mut a = vec!["--remote", copy_server.base.as_str()];
        a.extend_from_slice(args);
        cli_run(&a, None)
    };
    let (a, b) =
        (ce(&["import", "dreamlog", broken.to_str().unwrap()]), cr(&["import", "dreamlog", broken.to_str().unwrap()]));
    assert_ne!(a.0, 0);
    assert_eq!((a.0, &a.2), (b.0, &b.2));
    assert!(a.2.contains("does not link to the head of stream \"notes\""), "{}", a.2);
    assert_eq!(cr(&["log", "--json"]).1, "", "a broken export writes nothing");
    for round in 0..2 {
        let args = ["import", "dreamlog", export.to_str().unwrap(), "--json"];
        let (a, b) = (ce(&args), cr(&args));
        assert_eq!((a.0, &a.1), (b.0, &b.1), "{}", a.2);
        let report: Value = serde_json::from_str(a.1.trim()).unwrap();
        let n = text.lines().count() as u64;
        assert_eq!(report["events"], n);
        assert_eq!(report["appended"], if round == 0 { n } else { 0 });
        assert_eq!(report["existing"], if round == 0 { 0 } else { n });
        assert_eq!(report["same_positions"], true);
    }
    // The server's log is the source's, byte for byte — the events; the receipts are its
    // own (the import was one batch of the server's principal).
    assert_eq!(unreceipted(&cr(&["export"]).1), unreceipted(&text), "the server's log is the source's, byte for byte");
    assert!(cr(&["export"]).1.lines().all(|l| l.contains(r#""received":{"principal":"anonymous""#)));
    assert_eq!(cr(&["verify"]).0, 0);
    assert!(copy_server.stop().success());
    assert!(both.server.stop().success());
}

/// `dreamlog demo`, both ways on fresh databases: the same story up to stamped ids.
#[test]
fn the_demo_tells_the_same_story_embedded_and_remote() {
    let dir = tempdir().unwrap();
    let demo_db = dir.path().join("demo-embedded");
    // The demo's bad lesson is an exec dreamer: a server runs it only as its config says.
    let demo_config = common::root().join("tools/demo-server.json");
    let demo_server = Server::start(&dir.path().join("demo-served"), &["--config", demo_config.to_str().unwrap()]);
    let (a, b) = (
        cli_run(&["--db", demo_db.to_str().unwrap(), "demo"], None),
        cli_run(&["--remote", demo_server.base.as_str(), "demo"], None),
    );
    assert_eq!((a.0, b.0), (0, 0), "{}\n{}", a.2, b.2);
    // Set aside: stamped ids (any run of 12+ hex digits), the bootstrap interval (seeded
    // by a stamped id), the bytes verify hashed (a dream records its wall-clock duration)
    // and where the story ran.
    let story = |o: &str| -> Vec<String> {
        o.lines()
            .filter(|l| !l.starts_with("database:") && !l.starts_with("server:"))
            .map(|l| {
                let l = match (l.find("interval ["), l.rfind(']')) {
                    (Some(a), Some(b)) if b > a => format!("{}{}", &l[..a], &l[b + 1..]),
                    _ => l.to_owned(),
                };
                let l = match (l.find(" streams ("), l.find(" bytes hashed")) {
                    (Some(a), Some(b)) if b > a => format!("{}{}", &l[..a + 10], &l[b..]),
                    _ => l,
                };
                let mut out = String::new();
                let mut run = String::new();
                for c in l.chars().chain(std::iter::once(' ')) {
                    if c.is_ascii_hexdigit() {
                        run.push(c);
                        continue;
                    }
                    out.push_str(if run.len() >= 12 { "#" } else { &run });
                    run.clear();
                    out.push(c);
                }
                out
            })
            .collect()
    };
    assert_eq!(story(&a.1), story(&b.1));
    assert!(b.1.contains("DRIFT") && b.1.contains("reproduced bit for bit"), "{}", b.1);
    assert!(b.1.contains(&format!("server: {}", demo_server.base)));
    assert!(demo_server.stop().success());
}

#[test]
fn the_server_logs_requests_and_its_shutdown() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &["--log", "debug"]);
    let c = client();
    assert_eq!(get(&c, &server.url("/v1/health"), None).0, 200);
    assert_eq!(get(&c, &server.url("/v1/streams/nope"), None).0, 404);
    let (status, log) = server.stop_with_log();
    assert!(status.success());
    let text = log.join("\n");
    assert!(log.iter().any(|l| l.contains("DEBUG") && l.contains("GET /v1/health 200")), "{text}");
    assert!(log.iter().any(|l| l.contains("INFO") && l.contains("GET /v1/streams/nope 404")), "{text}");
    assert!(text.contains("shutting down") && text.contains("databases flushed and closed"), "{text}");

    // At the default level, successes are not logged; refused requests are.
    let server = Server::start(&dir.path().join("db"), &[]);
    get(&c, &server.url("/v1/health"), None);
    get(&c, &server.url("/v1/nope"), None);
    let (_, log) = server.stop_with_log();
    assert!(!log.iter().any(|l| l.contains("/v1/health")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("GET /v1/nope 404")), "{log:?}");
}

/// A write token (or an admin's) cannot make the server call a model endpoint of its
/// choosing with the server's key variables: dreamers that reach the network or run
/// programs come only from the server's config, and a request sets only their tunables.
#[test]
fn a_request_cannot_send_the_servers_secrets_anywhere() {
    let dir = tempdir().unwrap();
    // The attacker's endpoint: it must never see a connection.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let evil = format!("http://{}", trap.local_addr().unwrap());
    let hash = |t: &str| dreamlog::hash_token(t);
    let config = json!({
        "tokens": [{"tenant": "t", "role": "write", "token_blake3": hash("w")},
                   {"tenant": "t", "role": "admin", "token_blake3": hash("a")}],
        "dreamers": {
            "lessons": {"dreamer": "llm@1", "tunable": ["max_sessions"],
                        "config": {"base_url": "http://127.0.0.1:9", "api_key_env": "DREAMLOG_TEST_MODEL_KEY", "model": "m"}},
            "careful": {"dreamer": "evidence", "tunable": ["min_tasks"], "config": {"min_tasks": 3}}
        }
    });
    let cfg_path = dir.path().join("server.json");
    std::fs::write(&cfg_path, config.to_string()).unwrap();
    let server = Server::start(&dir.path().join("db"), &["--config", cfg_path.to_str().unwrap()]);
    let c = client();
    let session = json!({"stream": "session/s1", "events": [
        {"kind": "session.start", "actor": "agent:a", "body": {"session": "s1", "agent": "a", "store": "live"}},
        {"kind": "grade", "actor": "evaluator:e", "body": {"session": "s1", "rubric": "r", "evaluator": "e", "score": 1, "result": "satisfied"}}]});
    assert_eq!(post(&c, &server.url("/v1/events"), Some("w"), &session).0, 200);
    let attempts = [
        json!({"store": "live", "dreamer": "llm", "config": {"base_url": evil, "api_key_env": "HOME"}}),
        json!({"store": "live", "dreamer": "llm@1", "config": {"base_url": evil}}),
        json!({"store": "live", "dreamer": "lessons", "config": {"base_url": evil}}),
        json!({"store": "live", "dreamer": "lessons", "config": {"api_key_env": "HOME"}}),
        json!({"store": "live", "dreamer": "careful", "config": {"min_tasks": 1, "api_key_env": "HOME"}}),
    ];
    for token in ["w", "a"] {
        for body in &attempts {
            let (status, answer) = post(&c, &server.url("/v1/dreams"), Some(token), body);
            assert_eq!((status, answer["error"]["type"].as_str()), (403, Some("forbidden")), "{body}: {answer}");
        }
    }
    let (_, answer) = post(&c, &server.url("/v1/dreams"), Some("w"), &attempts[2]);
    assert!(answer["error"]["message"].as_str().unwrap().contains("a request may set only: max_sessions"), "{answer}");
    // A configured dreamer with a tunable the profile allows runs (evidence: no network).
    let ok_run = json!({"store": "live", "dreamer": "careful", "config": {"min_tasks": 1}});
    let (status, answer) = post(&c, &server.url("/v1/dreams"), Some("w"), &ok_run);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["config"]["min_tasks"], 1, "the profile's config with the tunable laid over: {answer}");
    // Replays with another dreamer or config go through the same rules.
    let id = answer["id"].as_str().unwrap();
    let replay = server.url(&format!("/v1/dreams/{id}/replay"));
    let (status, _) = post(&c, &replay, Some("a"), &json!({"dreamer": "llm", "config": {"base_url": evil}}));
    assert_eq!(status, 403);
    let (status, answer) = post(&c, &replay, Some("w"), &json!({"config": {"min_tasks": 2}}));
    assert_eq!(status, 200, "{answer}");
    // Every request above has been answered, so a connection any of them made to the
    // attacker's endpoint is already in its accept queue: nothing to wait for.
    match trap.accept() {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
        Ok((_, from)) => panic!("the attacker's endpoint was called (from {from})"),
    }
    assert!(server.stop().success());
}

/// Findings under attack, over HTTP: each refused with a clear status, nothing written.
#[test]
fn hostile_requests_are_refused() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let c = client();
    let tool = server.url("/v1/memory/live/tool");
    post(&c, &tool, None, &json!({"command": "create", "path": "/memories/a.md", "file_text": "a\n"}));
    // Last-Event-ID u64::MAX has no next position: refused, not a replay from 0.
    let resp = c.get(server.url("/v1/tail")).header("Last-Event-ID", u64::MAX.to_string()).send().unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // A view of a bad path is an error status, with the tool's class.
    let (status, body) = get(&c, &server.url("/v1/memory/live/view?path=/etc/passwd"), None);
    assert_eq!((status, body["error"]["tool_error"].as_str()), (400, Some("invalid")), "{body}");
    let (status, _) = get(&c, &server.url("/v1/memory/live/view?path=/memories/none.md"), None);
    assert_eq!(status, 404);
    // Store names that climb out, decoded once or not, are refused.
    for name in ["..", "%2e%2e", "%252e%252e", "..%2fx", "x%2f"] {
        let (status, body) = post(
            &c,
            &server.url(&format!("/v1/memory/{name}/tool")),
            None,
            &json!({"command": "create", "path": "/memories/b.md", "file_text": "b\n"}),
        );
        assert!(status == 400 || status == 404, "{name}: {status} {body}");
        let (status, _) = get(&c, &server.url(&format!("/v1/memory/{name}/view")), None);
        assert!(status == 400 || status == 404, "{name}: {status}");
        let view = json!({"command": "view", "path": "/memories"});
        let (status, body) = post(&c, &server.url(&format!("/v1/memory/{name}/tool")), None, &view);
        assert!(status == 400 || status == 404, "{name}: {status} {body}");
    }
    let (_, events) = get(&c, &server.url("/v1/events"), None);
    assert_eq!(
        events["events"].as_array().unwrap().len(),
        2,
        "nothing but the store's rules note and its first command was written"
    );
    assert!(server.stop().success());
}

/// Connections that hold the server without finishing a request, or stop reading what
/// it sends, are closed; live tails are capped.
#[test]
fn idle_slow_and_unread_connections_are_closed_and_tails_capped() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let dir = tempdir().unwrap();
    let cfg = dir.path().join("server.json");
    let limits = json!({"header_read_timeout_secs": 1, "write_stall_timeout_secs": 1, "max_subscribers": 2});
    std::fs::write(&cfg, limits.to_string()).unwrap();
    let server = Server::start(&dir.path().join("db"), &["--config", cfg.to_str().unwrap()]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    // Read until the server closes (Ok(0) or a reset); false if it is still open at `within`.
    let closed_within = |s: &mut TcpStream, within: std::time::Duration| -> bool {
        s.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
        let end = std::time::Instant::now() + within;
        let mut buf = [0u8; 65536];
        while std::time::Instant::now() < end {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    };
    // An idle connection (no request at all).
    let mut idle = TcpStream::connect(&addr).unwrap();
    assert!(closed_within(&mut idle, std::time::Duration::from_secs(5)), "an idle connection stayed open");
    // Slowloris: a request head that never ends.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n").unwrap();
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(400));
        let _ = slow.write_all(b"X-Slow: 1\r\n");
    }
    assert!(closed_within(&mut slow, std::time::Duration::from_secs(4)), "a slow request head held the connection");

    // A tail nobody reads: the server stops holding its output and closes it.
    let c = client();
    let body = "x".repeat(2000);
    for b in 0..20 {
        let events: Vec<Value> = (0..300)
            .map(|i| json!({"kind": "note", "actor": "system:t", "body": {"type": "t", "json": {"i": b * 300 + i, "pad": body}}}))
            .collect();
        assert_eq!(post(&c, &server.url("/v1/events"), None, &json!({"stream": "big", "events": events})).0, 200);
    }
    let sent = || common::server::metric(&server, None, "dreamlog_tail_events_sent_total");
    let sent_before = sent();
    let mut unread = TcpStream::connect(&addr).unwrap();
    unread.write_all(b"GET /v1/tail?from=0 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Unread, its writes stall; past write_stall_timeout_secs the server closes it. The
    // server's own count of live tails says when (reading it here would unstall it).
    let subscribers = || common::server::metric(&server, None, "dreamlog_subscribers");
    let opened = std::time::Instant::now();
    // (It opens at once; should it close between two samples, the socket check below
    // still holds.)
    while subscribers() == 0.0 && opened.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    while subscribers() > 0.0 {
        assert!(opened.elapsed() < std::time::Duration::from_secs(30), "an unread tail stayed open");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(closed_within(&mut unread, std::time::Duration::from_secs(10)), "the unread tail's socket stayed open");
    // It was a tail the server served (until its writes stalled), not a refused request
    // closed for idling.
    assert!(sent() > sent_before, "the tail was never served");

    // At most max_subscribers live tails.
    let a = c.get(server.url("/v1/tail?from=0&stream=none")).send().unwrap();
    let b = c.get(server.url("/v1/tail?from=0&stream=none")).send().unwrap();
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let (status, body) = get(&c, &server.url("/v1/tail?from=0&stream=none"), None);
    assert_eq!((status, body["error"]["type"].as_str()), (503, Some("overloaded")), "{body}");
    drop((a, b));
    assert!(server.stop().success());
}

#[test]
fn tokens_rotate_on_sighup_without_a_restart() {
    let dir = tempdir().unwrap();
    let cfg = dir.path().join("server.json");
    let config = |tokens: Value| json!({ "tokens": tokens }).to_string();
    let token = |tenant: &str, secret: &str| json!({"tenant": tenant, "role": "admin", "token_blake3": dreamlog::hash_token(secret)});
    std::fs::write(&cfg, config(json!([token("t", "old-secret")]))).unwrap();
    let server = Server::start(&dir.path().join("db"), &["--config", cfg.to_str().unwrap()]);
    let c = client();
    let note =
        json!({"stream": "s", "events": [{"kind": "note", "actor": "system:t", "body": {"type": "t", "json": {}}}]});
    assert_eq!(post(&c, &server.url("/v1/events"), Some("old-secret"), &note).0, 200);

    // Rotate: the new token replaces the old one, the tenant's data is the same.
    std::fs::write(&cfg, config(json!([token("t", "new-secret")]))).unwrap();
    server.signal("HUP");
    let started = std::time::Instant::now();
    while get(&c, &server.url("/v1/info"), Some("old-secret")).0 != 401 {
        assert!(started.elapsed() < Duration::from_secs(10), "the old token still works");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, events) = get(&c, &server.url("/v1/events"), Some("new-secret"));
    assert_eq!((status, events["events"].as_array().map(Vec::len)), (200, Some(1)));

    // A reload that needs a restart (a new tenant) is refused; the tokens stay.
    std::fs::write(&cfg, config(json!([token("t", "new-secret"), token("other", "x")]))).unwrap();
    server.signal("HUP");
    // The server counts each reload's outcome once it is in force.
    let reloads = |result: &str| {
        common::server::metric(
            &server,
            Some("new-secret"),
            &format!("dreamlog_config_reloads_total{{result=\"{result}\"}}"),
        )
    };
    let refused = std::time::Instant::now();
    while reloads("refused") < 1.0 {
        assert!(refused.elapsed() < Duration::from_secs(10), "the second reload was never refused");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(reloads("applied"), 1.0, "the rotation was the one reload applied");
    assert_eq!(get(&c, &server.url("/v1/info"), Some("new-secret")).0, 200);
    assert_eq!(get(&c, &server.url("/v1/info"), Some("x")).0, 401);
    let (status, log) = server.stop_with_log();
    assert!(status.success());
    let log = log.join("\n");
    assert!(log.contains("reloaded the config's tokens (1 now)"), "{log}");
    assert!(log.contains("tokens not reloaded") && log.contains("needs a restart"), "{log}");
}
