//! Rolling back hosted memory from dreamlog: `memory revert` and `memory promote` of a store
//! `sync anthropic` mirrors are written to the hosted store (the SDK-typed stand-in,
//! tests/python/hosted_standin.py, which checks each write against the SDK's parameter
//! types) with `content_sha256` preconditions; a change made upstream meanwhile refuses
//! the rest with an exact report; the mirror records what the calls wrote once, citing the
//! push's intent, so blame keeps a restored line's first origin and names the push.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::hosted::{hosted, learning, sync, StandIn, KEY};
use common::{dreamlog_on, ok, root};
use serde_json::{json, Value};

const LIVE: &str = "memstore_02learn";
const BAD: &str = "sesn_02bravo";

fn sha(text: &str) -> String {
    dreamlog::core::managed::sha256_hex(text)
}

/// The learning fixture, with more of one session's bad edits, interleaved with a user's:
/// sesn_02bravo rewrites the refund rule, makes /fares.md and adds to /greeting.md (made by
/// a user after its first edit).
fn world() -> Value {
    let mut w = learning();
    let by = json!({"type": "session_actor", "session_id": BAD});
    let versions = w["versions"].as_array_mut().expect("versions");
    versions.push(json!({"id": "memver_16", "memory_store_id": LIVE, "memory_id": "mem_11refunds",
        "operation": "modified", "path": "/refunds.md",
        "content": "Refunds at any time, no questions asked.\nBasic economy fares are refundable.\n",
        "created_at": "2026-11-05T09:00:00Z", "created_by": by}));
    versions.push(json!({"id": "memver_17", "memory_store_id": LIVE, "memory_id": "mem_17fares",
        "operation": "created", "path": "/fares.md", "content": "Every fare is refundable on request.\n",
        "created_at": "2026-11-05T09:00:10Z", "created_by": by}));
    versions.push(json!({"id": "memver_18", "memory_store_id": LIVE, "memory_id": "mem_15greeting",
        "operation": "modified", "path": "/greeting.md",
        "content": "Greet the caller by name.\nOffer a voucher before anything else.\n",
        "created_at": "2026-11-05T09:00:20Z", "created_by": by}));
    w
}

/// The writes the stand-in received, in order.
fn writes(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("requests.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a request"))
        .filter(|r| r.get("method").is_some())
        .collect()
}

/// The hosted store's memories now (path → content), from the stand-in's scenario file.
fn hosted_files(dir: &Path) -> BTreeMap<String, String> {
    let sc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("scenario.json")).expect("scenario")).expect("JSON");
    let mut versions: Vec<&Value> =
        sc["versions"].as_array().expect("versions").iter().filter(|v| v["memory_store_id"] == LIVE).collect();
    versions.sort_by_key(|v| v["created_at"].as_str().map(str::to_owned));
    let mut by_memory: BTreeMap<String, (String, String)> = BTreeMap::new();
    for v in versions {
        let m = v["memory_id"].as_str().expect("memory").to_owned();
        if v["operation"] == "deleted" {
            by_memory.remove(&m);
        } else {
            by_memory.insert(m, (v["path"].as_str().unwrap().to_owned(), v["content"].as_str().unwrap().to_owned()));
        }
    }
    by_memory.into_values().map(|(p, c)| (format!("/memories{p}"), c)).collect()
}

fn mirrored_files(db: &Path, store: &str) -> BTreeMap<String, String> {
    common::hosted::files(db, store)
}

fn log_len(db: &Path) -> usize {
    ok(&dreamlog_on(db, &["log", "--json"], None)).lines().count()
}

fn report_of(out: &std::process::Output) -> Value {
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    check_schema(&report);
    report
}

/// Checks a push report against schemas/push-report.schema.json.
fn check_schema(report: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/push-report.schema.json")).expect("the report's schema"),
    )
    .expect("JSON");
    let v = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&schema).expect("schema compiles");
    let errors: Vec<String> = v.iter_errors(report).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// `memory blame --json` of a file of the live store: one line a line.
fn blame_of(db: &Path, path: &str) -> Vec<Value> {
    ok(&dreamlog_on(db, &["--json", "memory", "blame", LIVE, path], None))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a blame line"))
        .collect()
}

fn statuses(report: &Value) -> Vec<(String, String, String)> {
    report["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| {
            (
                c["op"].as_str().unwrap().to_owned(),
                c["path"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The refund rule before sesn_02bravo (which added its second line, then rewrote its first).
const REFUNDS_BEFORE: &str = "Refunds within 30 days of purchase.\n";
const GREETING_BEFORE: &str = "Greet the caller by name.\n";

#[test]
fn a_hosted_sessions_edits_are_reverted_on_the_hosted_store_with_their_origin_in_blame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    // A 429 or a 503 every fourth answer: the writes are retried only on those.
    let standin = StandIn::start(&world(), dir.path(), 4);
    ok(&sync(&db, &standin.url, &["--json"]));
    let refunds_now = "Refunds at any time, no questions asked.\nBasic economy fares are refundable.\n";
    assert_eq!(mirrored_files(&db, LIVE)["/memories/refunds.md"], refunds_now);

    // A local revert of a mirrored store is refused: it would never reach the agents.
    let before = log_len(&db);
    let local = dreamlog_on(&db, &["memory", "revert", LIVE, "--session", BAD, "--reason", "x"], None);
    assert!(!local.status.success());
    assert!(String::from_utf8_lossy(&local.stderr).contains("ANTHROPIC_API_KEY"), "{local:?}");
    assert_eq!(log_len(&db), before);

    // --dry-run lists the calls, sends and writes nothing.
    let args = ["--json", "memory", "revert", LIVE, "--session", BAD, "--reason", "a bad refund rule"];
    let dry = report_of(&hosted(&db, &standin.url, &[&args[..], &["--dry-run"]].concat()));
    let planned = vec![
        ("delete".to_owned(), "/fares.md".to_owned(), "planned".to_owned()),
        ("update".to_owned(), "/greeting.md".to_owned(), "planned".to_owned()),
        ("update".to_owned(), "/refunds.md".to_owned(), "planned".to_owned()),
    ];
    assert_eq!(statuses(&dry), planned, "{dry}");
    assert!(writes(dir.path()).is_empty());
    assert_eq!(log_len(&db), before);
    let text =
        ok(&hosted(&db, &standin.url, &["memory", "revert", LIVE, "--session", BAD, "--reason", "r", "--dry-run"]));
    assert!(text.contains(&format!("DELETE /v1/memory_stores/{LIVE}/memories/mem_17fares")), "{text}");

    // The push: three calls with the preconditions of the state it reverts from.
    let out = hosted(&db, &standin.url, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = report_of(&out);
    let written: Vec<_> = planned.iter().map(|(o, p, _)| (o.clone(), p.clone(), "written".to_owned())).collect();
    assert_eq!(statuses(&report), written, "{report}");
    assert_eq!(report["complete"], true);
    let w: Vec<Value> = writes(dir.path()).into_iter().filter(|r| r["status"] == 200).collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert_eq!(
        (w[0]["method"].as_str(), w[0]["path"].as_str()),
        (Some("DELETE"), Some(&*format!("/v1/memory_stores/{LIVE}/memories/mem_17fares")))
    );
    assert_eq!(w[0]["query"]["expected_content_sha256"], sha("Every fare is refundable on request.\n"));
    assert_eq!(w[1]["path"], format!("/v1/memory_stores/{LIVE}/memories/mem_15greeting"));
    assert_eq!(
        w[1]["body"],
        json!({"content": GREETING_BEFORE, "precondition": {"type": "content_sha256",
               "content_sha256": sha("Greet the caller by name.\nOffer a voucher before anything else.\n")}})
    );
    assert_eq!(w[2]["body"]["content"], REFUNDS_BEFORE);
    assert_eq!(w[2]["body"]["precondition"]["content_sha256"], sha(refunds_now));
    assert!(w.iter().all(|r| r["beta"] == "agent-memory-2026-07-22"));

    // The hosted store and its mirror agree; the versions were mirrored once, each citing
    // the intent.
    let expected: BTreeMap<String, String> = [
        ("/memories/greeting.md".to_owned(), GREETING_BEFORE.to_owned()),
        ("/memories/refunds.md".to_owned(), REFUNDS_BEFORE.to_owned()),
    ]
    .into();
    assert_eq!(hosted_files(dir.path()), expected);
    assert_eq!(mirrored_files(&db, LIVE), expected);
    assert_eq!(report["mirror"]["linked"], 3, "{report}");
    let intent = report["intent"].as_str().expect("an intent").to_owned();
    let log: Vec<Value> =
        ok(&dreamlog_on(&db, &["log", "--json"], None)).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let note = log.iter().find(|e| e["id"] == intent.as_str()).expect("the intent in the log");
    assert_eq!((note["kind"].as_str(), note["actor"].as_str()), (Some("note"), Some("human:ops-alice")));
    assert_eq!(note["body"]["type"], "anthropic.push");
    assert_eq!(note["body"]["json"]["target"], json!({"session": BAD}));
    assert_eq!(note["causes"].as_array().map(Vec::len), Some(4), "it names the session's four commands");
    let citing: Vec<&Value> = log.iter().filter(|e| e["causes"] == json!([intent])).collect();
    assert_eq!(citing.len(), 3, "one command per pushed version: {citing:?}");
    assert!(citing.iter().all(|e| e["actor"] == "system:apikey_standin" && e["kind"] == "memory"));
    assert!(
        log.iter().position(|e| e["id"] == intent.as_str()) < log.iter().position(|e| e["causes"] == json!([intent]))
    );
    // A second sync adds nothing.
    let n = log_len(&db);
    ok(&sync(&db, &standin.url, &[]));
    assert_eq!(log_len(&db), n);

    // Blame: the restored line keeps its first origin (sesn_01alpha's version) and names
    // the push that put it back; the line the revert left alone keeps its own.
    let blame = blame_of(&db, "/memories/refunds.md");
    let first = &blame[0];
    assert_eq!(first["text"], "Refunds within 30 days of purchase.");
    assert_eq!(first["actor"], "agent:sesn_01alpha", "{first}");
    let by = &first["restored_by"];
    assert_eq!(
        (by["how"].as_str(), by["id"].as_str(), by["reason"].as_str()),
        (Some("revert"), Some(&*intent), Some("a bad refund rule"))
    );
    assert_eq!(by["actor"], "human:ops-alice");
    assert_eq!(blame.len(), 1);
    // A line the revert left alone keeps its own origin, unmarked.
    let greeting = blame_of(&db, "/memories/greeting.md");
    assert_eq!((greeting.len(), greeting[0]["actor"].as_str()), (1, Some("human:user_01alice")));
    assert!(greeting[0]["restored_by"].is_null());

    // Nothing of the session is left to revert.
    let again = report_of(&hosted(&db, &standin.url, &args));
    assert_eq!((again["calls"].as_array().map(Vec::len), &again["complete"]), (Some(0), &json!(true)), "{again}");
}

#[test]
fn a_change_made_upstream_meanwhile_stops_the_push_and_a_second_push_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let w = world();
    let standin = StandIn::start(&w, dir.path(), 0);
    ok(&sync(&db, &standin.url, &[]));
    let args = ["--json", "memory", "revert", LIVE, "--session", BAD, "--reason", "bad"];

    // 1. Changed upstream before the push, not mirrored: refused whole, nothing sent or written.
    let user = json!({"type": "user_actor", "user_id": "user_01alice"});
    let mut changed = w.clone();
    changed["versions"].as_array_mut().unwrap().push(json!({"id": "memver_19", "memory_store_id": LIVE,
        "memory_id": "mem_15greeting", "operation": "modified", "path": "/greeting.md",
        "content": "Be brief.\nGreet the caller by name.\nOffer a voucher before anything else.\n",
        "created_at": "2026-11-06T10:00:00Z", "created_by": user}));
    std::fs::write(dir.path().join("scenario.json"), changed.to_string()).unwrap();
    let before = log_len(&db);
    let out = hosted(&db, &standin.url, &args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing sent") && err.contains("/greeting.md") && err.contains("sync anthropic"), "{err}");
    assert!(writes(dir.path()).is_empty());
    assert_eq!(log_len(&db), before);

    // 2. That change mirrored, then a change upstream between two of the push's calls:
    // the fares are deleted, the greeting written as a merge (the user's line kept), then
    // someone puts the refund rule back by hand: the push's update of it is refused by its
    // precondition and the rest is not sent; the report says so.
    ok(&sync(&db, &standin.url, &[]));
    changed["races"] = json!([{"after_writes": 2, "version": {"id": "memver_20", "memory_store_id": LIVE,
        "memory_id": "mem_11refunds", "operation": "modified", "path": "/refunds.md",
        "content": REFUNDS_BEFORE, "created_by": user}}]);
    std::fs::write(dir.path().join("scenario.json"), changed.to_string()).unwrap();
    let out = hosted(&db, &standin.url, &args);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report = report_of(&out);
    assert_eq!(
        statuses(&report),
        [
            ("delete".to_owned(), "/fares.md".to_owned(), "written".to_owned()),
            ("update".to_owned(), "/greeting.md".to_owned(), "written".to_owned()),
            ("update".to_owned(), "/refunds.md".to_owned(), "refused".to_owned()),
        ]
    );
    assert_eq!(report["complete"], false);
    assert!(report["calls"][2]["error"].as_str().unwrap().contains("409"), "{report}");
    let sent: Vec<Value> = writes(dir.path());
    assert_eq!(sent.len(), 3, "nothing after the refusal: {sent:?}");
    assert_eq!(sent[1]["body"]["content"], "Be brief.\nGreet the caller by name.\n");
    // The mirror holds the hosted store as it is: the two writes (linked) and the user's.
    assert_eq!(report["mirror"]["linked"], 2, "{report}");
    assert_eq!(mirrored_files(&db, LIVE), hosted_files(dir.path()));

    // 3. The same command again finds nothing left to do (the greeting merged already, the
    // refund rule put back by hand): no call, complete; the user's line stays.
    let report = report_of(&hosted(&db, &standin.url, &args));
    assert_eq!((report["calls"].as_array().map(Vec::len), &report["complete"]), (Some(0), &json!(true)), "{report}");
    let expected: BTreeMap<String, String> = [
        ("/memories/greeting.md".to_owned(), "Be brief.\nGreet the caller by name.\n".to_owned()),
        ("/memories/refunds.md".to_owned(), REFUNDS_BEFORE.to_owned()),
    ]
    .into();
    assert_eq!(hosted_files(dir.path()), expected);
    assert_eq!(mirrored_files(&db, LIVE), expected);
    assert_eq!(writes(dir.path()).len(), 3);
}

#[test]
fn a_hosted_dreams_new_store_is_promoted_onto_the_live_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let standin = StandIn::start(&learning(), dir.path(), 0);
    ok(&sync(&db, &standin.url, &[]));
    let dreamed = "memstore_03dreamed";
    let target = mirrored_files(&db, dreamed);
    assert_ne!(mirrored_files(&db, LIVE), target);
    let dry =
        report_of(&hosted(&db, &standin.url, &["--json", "memory", "promote", dreamed, "--into", LIVE, "--dry-run"]));
    assert!(!dry["calls"].as_array().unwrap().is_empty());
    assert!(writes(dir.path()).is_empty());
    // Through the server (the web view's button): the local promote route refuses a
    // mirrored store and names the push route, which writes to the hosted store with the
    // server's key.
    let server = common::server::Server::start_env(
        &db,
        &[],
        &[("ANTHROPIC_BASE_URL", standin.url.as_str()), ("ANTHROPIC_API_KEY", KEY)],
    );
    let c = common::server::client();
    let (status, err) =
        common::server::post(&c, &server.url(&format!("/v1/memory/{dreamed}/promote")), None, &json!({"into": LIVE}));
    assert_eq!(status, 409, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains(&format!("/v1/memory/{LIVE}/push")), "{err}");
    let (status, report) = common::server::post(
        &c,
        &server.url(&format!("/v1/memory/{LIVE}/push")),
        None,
        &json!({"promote": {"fork": dreamed}}),
    );
    assert_eq!(status, 200, "{report}");
    check_schema(&report);
    server.stop();
    assert_eq!(report["complete"], true, "{report}");
    assert!(report["calls"].as_array().unwrap().iter().all(|c| c["status"] == "written"));
    assert_eq!(hosted_files(dir.path()), target);
    assert_eq!(mirrored_files(&db, LIVE), target);
    // Blame of the promoted lesson names the hosted dream's session and the promote.
    let blame = blame_of(&db, "/memories/refunds.md");
    let lesson = blame.iter().find(|l| l["text"] == "Basic economy fares are not refundable.").expect("the lesson");
    assert_eq!(lesson["actor"], "agent:sesn_09dream", "{lesson}");
    assert_eq!(lesson["restored_by"]["how"], "promote");
    assert_eq!(lesson["restored_by"]["id"], report["intent"]);
    // Promoted already: the same promote again has nothing to send.
    let n = writes(dir.path()).len();
    let again = report_of(&hosted(&db, &standin.url, &["--json", "memory", "promote", dreamed, "--into", LIVE]));
    assert_eq!((again["calls"].as_array().map(Vec::len), &again["complete"]), (Some(0), &json!(true)), "{again}");
    assert_eq!(writes(dir.path()).len(), n);
}
