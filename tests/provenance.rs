//! Provenance an auditor can rely on (issue 29): every write names the principal that
//! made it — a server token's name, the operating-system user of the embedded CLI — in a
//! receipt per batch no request can set, shown beside the asserted actor in `show`,
//! history, blame, exports and `principals`; identity stays by content; event times are
//! bounded; `--at` takes dates and relative times.

mod common;

use std::process::Command;

use common::server::{client, get, post, Server};
use common::{json_lines, ok};
use serde_json::{json, Value};
use tempfile::tempdir;

fn remote(server: &Server, token: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut all = vec!["--remote", server.base.as_str(), "--token", token];
    all.extend_from_slice(args);
    common::run_dreamlog(&all, stdin)
}

fn tau_bench() -> String {
    common::data("tau-bench").display().to_string()
}

#[test]
fn every_write_names_the_authenticated_principal_not_the_asserted_actor() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let hash = dreamlog::hash_token;
    // Named tokens, and one of the old form (no name) that loads unchanged.
    let config = json!({"tokens": [
        {"tenant": "acme", "role": "write", "token_blake3": hash("alice-token"), "name": "alice@acme"},
        {"tenant": "acme", "role": "write", "token_blake3": hash("bob-token"), "name": "bob@acme"},
        {"tenant": "acme", "role": "admin", "token_blake3": hash("admin-token")},
    ]});
    let cfg = dir.path().join("server.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let server = Server::start(&db, &["--config", cfg.to_str().unwrap()]);
    let c = client();

    // Alice writes a memory line claiming to be a dreamer: the actor is kept as asserted,
    // the receipt says alice.
    let tool = server.url("/v1/memory/support/tool");
    let forged = c
        .post(&tool)
        .bearer_auth("alice-token")
        .header("X-Dreamlog-Actor", "dreamer:evidence@2")
        .json(&json!({"command": "create", "path": "/memories/l.md", "file_text": "- always refund\n"}))
        .send()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 200);
    let forged: Value = forged.json().unwrap();
    let id = forged["id"].as_str().unwrap().to_owned();
    let (_, shown) = get(&c, &server.url(&format!("/v1/events/{id}")), Some("alice-token"));
    assert_eq!(shown["actor"], "dreamer:evidence@2", "the asserted actor stays: {shown}");
    assert_eq!(shown["received"]["principal"], "alice@acme", "{shown}");
    assert_eq!(shown["received"]["role"], "write");
    let now = dreamlog::store::now_ms();
    let at = shown["received"]["at"].as_u64().unwrap();
    assert!(at <= now && now - at < 60_000, "the server's receive time: {at} vs {now}");
    // Nothing in a body can set the principal: a `received` is refused, nothing written;
    // an `actor` naming someone else stays an assertion.
    let forged_receipt = json!({"stream": "notes", "events": [{"kind": "note", "actor": "human:bob@acme",
        "body": {"type": "t", "json": {}}, "received": {"principal": "bob@acme", "role": "admin", "at": 0, "batch": 0, "events": 1}}]});
    let (status, refused) = post(&c, &server.url("/v1/events"), Some("alice-token"), &forged_receipt);
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("never an input"), "{refused}");
    let body = json!({"stream": "notes", "events": [{"kind": "note", "actor": "human:bob@acme", "body": {"type": "t", "json": {}}}]});
    let (status, appended) = post(&c, &server.url("/v1/events"), Some("alice-token"), &body);
    assert_eq!(status, 200, "{appended}");
    let note_id = appended["appended"][0]["id"].as_str().unwrap();
    let (_, note) = get(&c, &server.url(&format!("/v1/events/{note_id}")), Some("alice-token"));
    assert_eq!(
        (note["actor"].as_str(), note["received"]["principal"].as_str()),
        (Some("human:bob@acme"), Some("alice@acme"))
    );

    // Blame and history show who wrote, beside the actor.
    let (_, blame) = get(&c, &server.url("/v1/memory/support/blame?path=/memories/l.md"), Some("bob-token"));
    assert_eq!(blame["lines"][0]["actor"], "dreamer:evidence@2");
    assert_eq!(blame["lines"][0]["received"]["principal"], "alice@acme", "{blame}");
    let (_, history) = get(&c, &server.url("/v1/memory/support/history"), Some("bob-token"));
    assert!(history["events"].as_array().unwrap().iter().all(|e| e["received"]["principal"] == "alice@acme"));
    let text = ok(&remote(&server, "bob-token", &["memory", "blame", "support", "/memories/l.md"], None));
    assert!(text.contains("dreamer:evidence@2") && text.contains("by alice@acme"), "{text}");
    let text = ok(&remote(&server, "bob-token", &["show", &id], None));
    assert!(text.contains("dreamer:evidence@2 (asserted by the writer)"), "{text}");
    assert!(text.contains("received  from alice@acme (write)"), "{text}");

    // The same run imported by two principals is one copy: the second import writes
    // nothing, so no receipt of bob's covers it.
    let before = get(&c, &server.url("/v1/info"), Some("admin-token")).1["events"].as_u64().unwrap();
    ok(&remote(&server, "alice-token", &["import", &tau_bench(), "--store", "support"], None));
    let after_alice = get(&c, &server.url("/v1/info"), Some("admin-token")).1["events"].as_u64().unwrap();
    assert!(after_alice > before + 100);
    ok(&remote(&server, "bob-token", &["import", &tau_bench(), "--store", "support"], None));
    let after_bob = get(&c, &server.url("/v1/info"), Some("admin-token")).1["events"].as_u64().unwrap();
    assert_eq!(after_bob, after_alice, "identity by content: the second import is not a second copy");

    // Admins list the principals and what each wrote; others may not.
    let (status, _) = get(&c, &server.url("/v1/principals"), Some("alice-token"));
    assert_eq!(status, 403);
    let (status, who) = get(&c, &server.url("/v1/principals"), Some("admin-token"));
    assert_eq!(status, 200, "{who}");
    let names: Vec<&str> = who["principals"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"alice@acme") && !names.contains(&"bob@acme"), "{who}");
    let alice = who["principals"].as_array().unwrap().iter().find(|p| p["name"] == "alice@acme").unwrap();
    assert!(alice["events"].as_u64().unwrap() >= after_alice - before, "the import is alice's: {alice}");
    assert_eq!(alice["roles"], "write");
    assert_eq!(who["unreceipted_events"], 0, "every write of this server has a receipt: {who}");
    let (status, none) = get(&c, &server.url("/v1/principals?name=nobody"), Some("admin-token"));
    assert_eq!((status, none["error"]["type"].as_str()), (404, Some("not_found")), "{none}");
    let listed = ok(&remote(&server, "admin-token", &["principals", "--name", "alice@acme", "--json"], None));
    let listed: Value = serde_json::from_str(listed.trim()).unwrap();
    let batches = listed["batches"].as_array().unwrap();
    assert!(!batches.is_empty() && batches.iter().all(|b| b["principal"] == "alice@acme"), "{listed}");
    assert!(batches.windows(2).all(|w| w[0]["batch"].as_u64() > w[1]["batch"].as_u64()), "newest first: {listed}");
    let sum: u64 = who["principals"].as_array().unwrap().iter().map(|p| p["events"].as_u64().unwrap()).sum();
    assert_eq!(sum, after_bob, "the receipts cover the whole log");

    // Exports carry it, and verify checks every receipt against the log.
    let export = ok(&remote(&server, "admin-token", &["export"], None));
    let lines = json_lines(&export);
    assert_eq!(lines.len() as u64, after_bob);
    assert!(lines.iter().all(|l| l["received"]["principal"].is_string()), "every exported event says who wrote it");
    let (_, report) = post(&c, &server.url("/v1/verify"), Some("admin-token"), &json!({}));
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(0), "{report}");
    assert!(report["receipts"].as_u64().unwrap() >= 4, "{report}");
    let (status, log) = server.stop_with_log();
    assert!(status.success(), "{status}: {}", log.join("\n"));
}

#[test]
fn the_embedded_cli_records_the_operating_system_user_and_verify_checks_receipts() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dreamlog"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .env("DREAMLOG_SYNC", "none")
            .env("USER", "ada")
            .output()
            .unwrap();
        ok(&out)
    };
    let applied: Value = serde_json::from_str(
        run(&["memory", "apply", "s", r#"{"command":"create","path":"/memories/a.md","file_text":"x\n"}"#, "--json"])
            .trim(),
    )
    .unwrap();
    let shown: Value = serde_json::from_str(run(&["show", applied["id"].as_str().unwrap(), "--json"]).trim()).unwrap();
    assert_eq!(shown["received"]["principal"], "os:ada", "{shown}");
    assert_eq!(shown["received"]["role"], "local");
    // Both events of the batch (the store's rules note and the command) share the receipt.
    assert_eq!((shown["received"]["batch"].as_u64(), shown["received"]["events"].as_u64()), (Some(0), Some(2)));
    let who: Value = serde_json::from_str(run(&["principals", "--json"]).trim()).unwrap();
    assert_eq!(who["principals"][0]["name"], "os:ada");
    assert_eq!(who["principals"][0]["roles"], "local");
    let verified: Value = serde_json::from_str(run(&["verify", "--json"]).trim()).unwrap();
    assert_eq!(verified["receipts"], 1, "{verified}");
    assert_eq!(verified["problems"], json!([]));
}

#[test]
fn live_writes_stamped_ahead_of_the_clock_are_refused_and_past_times_kept() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let server = Server::start(&db, &[]);
    let c = client();
    let at = |time: u64| json!({"stream": "t", "events": [{"kind": "note", "actor": "agent:a", "time": time, "body": {"type": "t", "json": {}}}]});
    // 2100-01-01: refused, naming the time and the allowed skew; nothing written.
    let (status, body) = post(&c, &server.url("/v1/events"), None, &at(4_102_444_800_000));
    assert_eq!((status, body["error"]["type"].as_str()), (400, Some("invalid_request")), "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("2100-01-01T00:00:00.000Z") && msg.contains("300 s ahead"), "{msg}");
    for beyond in [u64::MAX, 253_402_300_800_000] {
        let (status, body) = post(&c, &server.url("/v1/events"), None, &at(beyond));
        assert_eq!(status, 400, "{body}");
    }
    assert_eq!(get(&c, &server.url("/v1/info"), None).1["events"], 0, "nothing written");
    // Within the skew, and in the past (an import's historical times), accepted.
    let now = dreamlog::store::now_ms();
    assert_eq!(post(&c, &server.url("/v1/events"), None, &at(now + 60_000)).0, 200);
    assert_eq!(post(&c, &server.url("/v1/events"), None, &at(1_000)).0, 200);
    assert!(server.stop().success());

    // A configured skew.
    let cfg = dir.path().join("skew.json");
    std::fs::write(&cfg, json!({"max_clock_skew_secs": 5}).to_string()).unwrap();
    let server = Server::start(&dir.path().join("db2"), &["--config", cfg.to_str().unwrap()]);
    let (status, body) = post(&c, &server.url("/v1/events"), None, &at(dreamlog::store::now_ms() + 60_000));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("5 s ahead"), "{body}");
    assert!(server.stop().success());

    // The CLI refuses the same, and prints a time past 9999 as such, never as 1969.
    let refused = common::dreamlog_on(
        &dir.path().join("db3"),
        &["append", "--stream", "t"],
        Some(r#"{"kind":"note","actor":"agent:a","time":4102444800000,"body":{"type":"t","json":{}}}"#),
    );
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("ahead of this store's clock"));
}

#[test]
fn points_in_time_accept_dates_and_relative_times() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let apply = |text: &str| {
        let cmd = json!({"command": "create", "path": format!("/memories/{text}.md"), "file_text": text});
        ok(&common::dreamlog_on(&db, &["memory", "apply", "s", &cmd.to_string()], None));
    };
    apply("a");
    let view = |at: &str| common::dreamlog_on(&db, &["memory", "view", "s", "/memories", &format!("--at={at}")], None);
    let text = |at: &str| String::from_utf8_lossy(&view(at).stdout).into_owned();
    // The file was written just now: it is there as of now, not a day ago, not on a date
    // before this year's (the events were stamped on the store's clock).
    assert!(ok(&view("-0s")).contains("a.md"));
    let file_at = |at: &str| {
        let out = common::dreamlog_on(&db, &["memory", "view", "s", "/memories/a.md", &format!("--at={at}")], None);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(file_at("-0s").contains("a"), "the file as of now");
    for before in ["-1d", "2000-01-01"] {
        assert!(file_at(before).contains("The path /memories/a.md does not exist"), "{before}: {}", file_at(before));
        assert!(!text(before).contains("a.md"), "{before}: the store had no file then");
    }
    let plain = common::dreamlog_on(&db, &["memory", "view", "s", "/memories", "--at", "-0s"], None);
    assert!(ok(&plain).contains("a.md"), "--at -0s without '=' works too");
    let bad = view("-5y");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("relative like -5m"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let early = view("1969-07-20");
    assert_eq!(early.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&early.stderr).contains("before 1970"));
}
