//! The `dreamlog` binary, run as a user runs it: real files, real processes, exit codes.

mod common;

use common::{fails, json_lines, ok};

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use tempfile::tempdir;

fn dreamlog(db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    common::dreamlog_on(db, args, stdin)
}

const EVENTS: &str = r#"{"kind":"session.start","actor":"agent:bot","body":{"session":"s1","agent":"bot","task":"book a flight"}}
{"kind":"action","actor":"agent:bot","body":{"session":"s1","name":"search","input":{"to":"SEA","from":"JFK"},"output":"3 flights","status":"ok"}}
{"kind":"grade","actor":"evaluator:judge","body":{"session":"s1","rubric":"r","evaluator":"judge","score":1,"result":"satisfied"}}
"#;

#[test]
fn append_log_show_verify_round_trip() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    assert!(ok(&dreamlog(&db, &["init"], None)).contains("0 events"));
    let out = ok(&dreamlog(&db, &["append", "--stream", "session/s1", "--json"], Some(EVENTS)));
    let appended = json_lines(&out);
    assert_eq!(appended.len(), 3);
    assert_eq!(appended.iter().map(|a| a["position"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(appended[2]["version"], 2);

    let log = json_lines(&ok(&dreamlog(&db, &["log", "--json"], None)));
    assert_eq!(log.len(), 3);
    assert_eq!(log[1]["body"]["input"], serde_json::json!({"from": "JFK", "to": "SEA"}));
    assert_eq!(log[1]["id"], appended[1]["id"]);
    assert_eq!(log[1]["parents"][0], appended[0]["id"]);

    let text = ok(&dreamlog(&db, &["log", "--kind", "grade"], None));
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("grade") && text.contains("satisfied"), "{text}");
    let limited = ok(&dreamlog(&db, &["log", "--from", "1", "--limit", "1", "--json"], None));
    assert_eq!(json_lines(&limited)[0]["position"], 1);
    let by_stream = json_lines(&ok(&dreamlog(&db, &["log", "--stream", "session/s1", "--from", "2", "--json"], None)));
    assert_eq!(by_stream.len(), 1);

    let id = appended[1]["id"].as_str().unwrap();
    let shown = ok(&dreamlog(&db, &["show", &id[..10]], None));
    assert!(shown.contains(id) && shown.contains("\"to\": \"SEA\""), "{shown}");
    let shown: Value = serde_json::from_str(&ok(&dreamlog(&db, &["show", id, "--json"], None))).unwrap();
    assert_eq!(shown, log[1]);

    let v = ok(&dreamlog(&db, &["verify"], None));
    assert!(v.contains("checked 3 events in 1 streams") && v.contains("verify"), "{v}");
    let v: Value = serde_json::from_str(&ok(&dreamlog(&db, &["verify", "--json"], None))).unwrap();
    assert_eq!(v["events"], 3);
    assert_eq!(v["problems"], serde_json::json!([]));
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&dreamlog(&db, &["append", "--stream", "s"], Some(EVENTS)));
    let cases: &[(&str, &str)] = &[
        ("{\"kind\":\"note\",\"actor\":\"human:a\",\"body\":{\"type\":\"t\",\"json\":1}}\n{not json\n", "-:2:"),
        ("{\"kind\":\"nope\",\"actor\":\"human:a\",\"body\":{}}\n", "unknown event kind \"nope\""),
        ("{\"kind\":\"grade\",\"actor\":\"evaluator:e\",\"body\":{\"session\":\"s\",\"rubric\":\"r\",\"evaluator\":\"e\",\"score\":1.5,\"result\":\"failed\"}}\n", "body.score: 1.5 is not in 0..1"),
        ("{\"kind\":\"action\",\"actor\":\"agent:a\",\"body\":{\"session\":\"s\",\"name\":\"t\",\"status\":\"ok\"}}\n", "missing field `input`"),
        ("{\"kind\":\"note\",\"actor\":\"robot:a\",\"body\":{\"type\":\"t\",\"json\":1}}\n", "role must be agent"),
        ("{\"kind\":\"note\",\"actor\":\"human:a\",\"body\":{\"type\":\"t\",\"json\":1},\"extra\":1}\n", "unknown field `extra`"),
        ("{\"kind\":\"note\",\"actor\":\"human:a\",\"causes\":[\"abc\"],\"body\":{\"type\":\"t\",\"json\":1}}\n", "expected 64 hex characters"),
    ];
    for (input, expected) in cases {
        let err = fails(&dreamlog(&db, &["append", "--stream", "s"], Some(input)));
        assert!(err.starts_with("error: ") && err.contains(expected), "input {input:?}: {err}");
    }
    let err = fails(&dreamlog(&db, &["append", "--stream", "s", "--expect", "0"], Some(EVENTS)));
    assert!(err.contains("stream \"s\": expected version 0, but the stream is at version 2"), "{err}");
    let err = fails(&dreamlog(&db, &["append"], Some(EVENTS)));
    assert!(err.contains("stream: missing"), "{err}");
    let err = fails(&dreamlog(&db, &["show", "ffffffffffffffffffff"], None));
    assert!(err.contains("no event with id"), "{err}");
    assert_eq!(json_lines(&ok(&dreamlog(&db, &["log", "--json"], None))).len(), 3, "nothing was written");
    let err = fails(&dreamlog(&dir.path().join("missing"), &["log"], None));
    assert!(err.contains("run `dreamlog init`"), "{err}");
}

#[test]
fn an_export_imported_into_an_empty_store_has_the_same_ids_and_positions_and_verifies() {
    let dir = tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&dreamlog(&a, &["append", "--stream", "one"], Some(EVENTS)));
    ok(&dreamlog(&a, &["append", "--stream", "two"], Some(EVENTS)));
    ok(&dreamlog(&a, &["append", "--stream", "one"], Some(EVENTS)));
    let export = dir.path().join("export.jsonl");
    ok(&dreamlog(&a, &["export", "--out", export.to_str().unwrap()], None));
    let exported = std::fs::read_to_string(&export).unwrap();
    assert_eq!(exported.lines().count(), 9);
    assert_eq!(ok(&dreamlog(&a, &["export"], None)), exported, "stdout and file exports agree");

    let report: Value =
        serde_json::from_str(&ok(&dreamlog(&b, &["import", export.to_str().unwrap(), "--json"], None))).unwrap();
    assert_eq!((report["events"].as_u64(), report["appended"].as_u64()), (Some(9), Some(9)));
    assert_eq!(report["same_positions"], true);
    // Same ids, positions, everything but who wrote them: the receipts are the stores'
    // own (the import wrote one batch of 9; the three appends, three batches).
    let events = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("received");
                v
            })
            .collect()
    };
    let again = ok(&dreamlog(&b, &["export"], None));
    assert_eq!(events(&again), events(&exported), "same ids, positions, everything");
    let batches = |text: &str| {
        let mut b: Vec<u64> = json_lines(text).iter().map(|l| l["received"]["batch"].as_u64().unwrap()).collect();
        b.dedup();
        b
    };
    assert_eq!((batches(&exported), batches(&again)), (vec![0, 3, 6], vec![0]));
    assert!(ok(&dreamlog(&b, &["verify"], None)).contains("checked 9 events"));

    // Idempotent: importing again adds nothing.
    let again = ok(&dreamlog(&b, &["import", "dreamlog", export.to_str().unwrap()], None));
    assert!(again.contains("9 events checked, 0 appended, 9 already present"), "{again}");
    // From standard input too.
    let again = ok(&dreamlog(&b, &["import", "-"], Some(&exported)));
    assert!(again.contains("0 appended"), "{again}");
}

#[test]
fn import_refuses_a_file_whose_ids_do_not_recompute_and_writes_nothing() {
    let dir = tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&dreamlog(&a, &["append", "--stream", "one"], Some(EVENTS)));
    let exported = ok(&dreamlog(&a, &["export"], None));
    // Change the task text of the first event but keep its id: a forgery.
    let tampered = exported.replacen("book a flight", "book two flights", 1);
    assert_ne!(tampered, exported);
    let err = fails(&dreamlog(&b, &["import", "-"], Some(&tampered)));
    assert!(err.contains("-:1:") && err.contains("id mismatch"), "{err}");
    // An event whose chain does not link is refused before anything is written too.
    let lines: Vec<&str> = exported.lines().collect();
    let gap = format!("{}\n{}\n", lines[0], lines[2]);
    let err = fails(&dreamlog(&b, &["import", "-"], Some(&gap)));
    assert!(err.contains("-:2:") && err.contains("does not link"), "{err}");
    let log = dreamlog(&b, &["log", "--json"], None);
    assert!(!log.status.success() || log.stdout.is_empty(), "nothing was written");
}

#[test]
fn demo_records_a_real_session_and_is_idempotent() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let first = ok(&dreamlog(&db, &["demo"], None));
    assert!(first.contains("15 events, 15 new"), "{first}");
    assert!(first.contains("transfer_to_human_agents"), "{first}");
    assert!(first.contains("all ids, body hashes, chains and indexes verify"), "{first}");
    // The memory part: a lesson, a tag, a bad lesson, its diff, its revert.
    assert!(
        first.contains("-- Basic economy is not refundable")
            && first.contains("+- Basic economy can always be refunded."),
        "{first}"
    );
    assert!(first.contains("demo revert event"), "{first}");
    let view_at_end = first.split("$ dreamlog memory view demo /memories/airline.md").nth(1).unwrap();
    assert!(view_at_end.contains("     3\t- Basic economy is not refundable"), "{view_at_end}");
    // The closed loop: the dream helps, the bad lesson hurts, drift flags it, the revert
    // restores the pass rate, and both dreams replay.
    assert!(first.contains("round 2, after the dream: 40 sessions, 40 passed (100%)"), "{first}");
    assert!(first.contains("round 3, after the bad lesson: 40 sessions, 0 passed (0%)"), "{first}");
    assert!(first.contains("DRIFT ") && first.contains("undo: dreamlog memory revert sim --dream "), "{first}");
    assert!(first.contains("round 4, after the revert: 40 sessions, 37 passed (92%)"), "{first}");
    assert_eq!(first.matches("reproduced bit for bit").count(), 2, "{first}");
    // For CI: drift exits 1 while a flagged change is in the store's history.
    let drift = dreamlog(&db, &["drift", "sim", "--fail-on-drift"], None);
    assert_eq!(drift.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&drift.stdout).contains("1 change(s) flagged"));
    ok(&dreamlog(&db, &["drift", "sim"], None));
    let events = json_lines(&ok(&dreamlog(&db, &["log", "--json"], None))).len();
    let second = ok(&dreamlog(&db, &["demo"], None));
    assert!(second.contains("15 events, 0 new, 15 already recorded"), "{second}");
    assert!(second.contains("already recorded in store \"demo\""), "{second}");
    assert!(second.contains("closed loop is already recorded"), "{second}");
    assert_eq!(json_lines(&ok(&dreamlog(&db, &["log", "--json"], None))).len(), events, "a second demo writes nothing");
}

#[test]
fn memory_commands_from_the_cli_print_what_the_tool_returns() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let create = r##"{"command":"create","path":"/memories/airline.md","file_text":"# Airline\n- Ask for the reservation id.\n"}"##;
    assert_eq!(
        ok(&dreamlog(&db, &["memory", "apply", "support", create], None)),
        "File created successfully at: /memories/airline.md\n"
    );
    // The same call again: the tool's error text on stdout, exit 1, nothing written.
    let out = dreamlog(&db, &["memory", "apply", "support", create], None);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "File /memories/airline.md already exists\n");
    ok(&dreamlog(&db, &["tag", "v1"], None));
    let edit =
        r#"{"command":"str_replace","path":"/memories/airline.md","old_str":"Ask for","new_str":"Always ask for"}"#;
    let edited =
        ok(&dreamlog(&db, &["memory", "apply", "support", "--actor", "agent:bot", "--session", "s1"], Some(edit)));
    assert_eq!(
        edited,
        "The memory file has been edited. Here is the snippet showing the change (with line numbers):\n     1\t# Airline\n     2\t- Always ask for the reservation id.\n     3\t\n"
    );
    let view = ok(&dreamlog(
        &db,
        &["memory", "apply", "support", r#"{"command":"view","path":"/memories/airline.md","view_range":[2,2]}"#],
        None,
    ));
    assert_eq!(
        view,
        "Here's the content of /memories/airline.md with line numbers:\n     2\t- Always ask for the reservation id.\n"
    );
    let old = ok(&dreamlog(&db, &["memory", "view", "support", "/memories/airline.md", "--at", "v1"], None));
    assert!(old.contains("     2\t- Ask for the reservation id."), "{old}");
    let json: Value =
        serde_json::from_str(&ok(&dreamlog(&db, &["memory", "view", "support", "--json"], None))).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["state_hash"].as_str().unwrap().len(), 64);

    let history =
        json_lines(&ok(&dreamlog(&db, &["memory", "history", "support", "/memories/airline.md", "--json"], None)));
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["actor"], "agent:bot");
    assert_eq!(history[1]["body"]["session"], "s1");

    let diff = ok(&dreamlog(&db, &["memory", "diff", "support", "--from", "v1", "--to", "head"], None));
    assert!(diff.contains("changed  /memories/airline.md | +1 -1") && diff.contains("+- Always ask for"), "{diff}");
    let stat = ok(&dreamlog(&db, &["memory", "diff", "support", "--from", "v1", "--stat"], None));
    assert!(!stat.contains("+- Always"), "{stat}");

    let blame =
        json_lines(&ok(&dreamlog(&db, &["memory", "blame", "support", "/memories/airline.md", "--json"], None)));
    assert_eq!(blame.len(), 2);
    assert_eq!(blame[0]["id"], history[0]["id"]);
    assert_eq!(blame[1]["id"], history[1]["id"]);

    ok(&dreamlog(&db, &["memory", "fork", "support", "trial"], None));
    ok(&dreamlog(&db, &["memory", "apply", "trial", r#"{"command":"delete","path":"/memories/airline.md"}"#], None));
    let two = ok(&dreamlog(&db, &["memory", "diff", "support", "trial"], None));
    assert!(two.contains("removed  /memories/airline.md"), "{two}");
    let id = history[1]["id"].as_str().unwrap();
    let reverted =
        ok(&dreamlog(&db, &["memory", "revert", "support", "--event", &id[..12], "--reason", "bad edit"], None));
    assert!(reverted.starts_with("reverted: 2 event(s) appended"), "{reverted}");
    let now = ok(&dreamlog(&db, &["memory", "view", "support", "/memories/airline.md"], None));
    assert!(now.contains("- Ask for the reservation id."), "{now}");
    ok(&dreamlog(&db, &["memory", "promote", "trial", "--into", "support"], None));
    let gone = dreamlog(&db, &["memory", "view", "support", "/memories/airline.md"], None);
    assert!(!gone.status.success());
    assert_eq!(
        String::from_utf8_lossy(&gone.stdout),
        "The path /memories/airline.md does not exist. Please provide a valid path.\n"
    );
    let err = fails(&dreamlog(&db, &["memory", "revert", "support", "--to", "v1"], None));
    assert!(err.contains("--reason"), "{err}");
    let err = fails(&dreamlog(&db, &["memory", "view", "support", "--at", "nope"], None));
    assert!(err.contains("cannot resolve \"nope\""), "{err}");
    let err = fails(&dreamlog(&db, &["memory", "apply", "support", "{bad json"], None));
    assert!(err.contains("memory tool input"), "{err}");
    assert!(ok(&dreamlog(&db, &["verify"], None)).contains("verify"));
}

#[test]
fn memory_json_output_matches_its_schemas() {
    fn validator(name: &str) -> jsonschema::Validator {
        let load = |n: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(common::root().join("schemas").join(n)).unwrap()).unwrap()
        };
        let registry = jsonschema::Registry::new()
            .add("https://dreamlog.dev/schemas/event.schema.json", load("event.schema.json"))
            .unwrap()
            .prepare()
            .unwrap();
        jsonschema::options().with_registry(&registry).build(&load(name)).unwrap()
    }
    let check = |schema: &str, value: &Value| {
        let v = validator(schema);
        let errors: Vec<String> = v.iter_errors(value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{schema}: {value}\n{errors:#?}");
    };
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let input = r#"{"command":"create","path":"/memories/a.md","file_text":"one\ntwo\n"}"#;
    check("memory-tool-input.schema.json", &serde_json::from_str(input).unwrap());
    let applied: Value =
        serde_json::from_str(&ok(&dreamlog(&db, &["memory", "apply", "s", input, "--json"], None))).unwrap();
    check("memory-apply-result.schema.json", &applied);
    let refused = dreamlog(&db, &["memory", "apply", "s", input, "--json"], None);
    let refused: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(refused["error"]["type"], "already_exists");
    check("memory-apply-result.schema.json", &refused);
    ok(&dreamlog(
        &db,
        &["memory", "apply", "s", r#"{"command":"str_replace","path":"/memories/a.md","old_str":"two","new_str":"2"}"#],
        None,
    ));
    check(
        "memory-view.schema.json",
        &serde_json::from_str(&ok(&dreamlog(&db, &["memory", "view", "s", "--json"], None))).unwrap(),
    );
    for line in json_lines(&ok(&dreamlog(&db, &["memory", "blame", "s", "/memories/a.md", "--json"], None))) {
        check("blame-line.schema.json", &line);
    }
    let diff: Value =
        serde_json::from_str(&ok(&dreamlog(&db, &["memory", "diff", "s", "--from", "1", "--json"], None))).unwrap();
    assert_eq!(diff["changed"][0]["insertions"], 1);
    check("memory-diff.schema.json", &diff);
    for line in json_lines(&ok(&dreamlog(&db, &["memory", "history", "s", "--json"], None))) {
        check("export-line.schema.json", &line);
    }
}

#[test]
fn import_auto_and_sessions_list_show_stats() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let data = common::data("");
    let out = dreamlog(&db, &["import", "auto", data.to_str().unwrap(), "--json"], None);
    let mut reports = json_lines(&ok(&out));
    let summary = reports.pop().unwrap();
    assert_eq!(reports.len(), 6, "every file of tests/data");
    assert_eq!(summary["summary"]["imported"].as_array().unwrap().len(), 6, "{summary}");
    assert!(reports.iter().any(|r| r["format"] == "tau-bench" && r["sessions"] == 100));
    let mut again = json_lines(&ok(&dreamlog(&db, &["import", data.to_str().unwrap(), "--json"], None)));
    assert_eq!(again.pop().unwrap()["summary"]["already_present"].as_array().unwrap().len(), 6);
    assert!(again.iter().all(|r| r["sessions"] == 0), "re-import adds nothing");

    let rows = json_lines(&ok(&dreamlog(&db, &["sessions", "list", "--json"], None)));
    assert_eq!(rows.len(), 202);
    let summaries = vec![summary];
    for (schema, values) in [
        ("session-summary.schema.json", &rows),
        ("import-sessions-report.schema.json", &reports),
        ("import-summary.schema.json", &summaries),
    ] {
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(common::root().join("schemas").join(schema)).unwrap())
                .unwrap();
        let v = jsonschema::validator_for(&schema).unwrap();
        for value in values.iter() {
            assert!(v.is_valid(value), "{value}");
        }
    }
    assert!(rows.iter().filter(|r| r["agent"] == "swe-agent").all(|r| r["score"].is_null()));
    let graded = json_lines(&ok(&dreamlog(&db, &["sessions", "list", "--graded", "--json"], None)));
    assert_eq!(graded.len(), 200);
    let swe = ok(&dreamlog(&db, &["sessions", "list", "--agent", "swe-agent"], None));
    assert_eq!(swe.lines().count(), 3, "a header and two rows: {swe}");
    assert!(swe.lines().next().unwrap().starts_with("SESSION"), "{swe}");

    let stats: Value = serde_json::from_str(&ok(&dreamlog(&db, &["sessions", "stats", "--json"], None))).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("schemas/session-stats.schema.json")).unwrap(),
    )
    .unwrap();
    assert!(jsonschema::validator_for(&schema).unwrap().is_valid(&stats), "{stats}");
    assert_eq!(
        (stats["sessions"].as_u64(), stats["graded"].as_u64(), stats["passed"].as_u64()),
        (Some(202), Some(200), Some(93))
    );
    let text = ok(&dreamlog(&db, &["sessions", "stats"], None));
    assert!(text.contains("202 sessions, 200 graded, 93 passed (46.5 %)"), "{text}");

    let shown = ok(&dreamlog(&db, &["sessions", "show", "tau-bench/gpt-4o-airline.tasks-00-24/task-12/trial-1"], None));
    assert!(
        shown.contains("-> get_user_details(")
            && shown.contains("[grade] tau-bench")
            && shown.contains("pass r_actions"),
        "{shown}"
    );
    let swe_shown = ok(&dreamlog(&db, &["sessions", "show", "swe-agent/swe-agent__test"], None));
    assert!(swe_shown.contains("(no grade recorded)"), "{swe_shown}");
    let err = fails(&dreamlog(&db, &["sessions", "show", "tau-bench/"], None));
    assert!(err.contains("matches 100 sessions"), "{err}");
    let err = fails(&dreamlog(&db, &["import", "auto", db.join("CURRENT").to_str().unwrap()], None));
    assert!(err.contains("cannot tell the format"), "{err}");
}

/// `reindex` rebuilds every derived index from the log alone and verifies; the memory
/// views and session list read the same afterwards.
#[test]
fn reindex_rebuilds_the_derived_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let data = common::data("tau-bench/gpt-4o-airline.tasks-00-24.json");
    common::ok(&dreamlog(&db, &["import", "tau-bench", data.to_str().unwrap(), "--store", "support"], None));
    let create = r#"{"command":"create","path":"/memories/a.md","file_text":"one\n"}"#;
    common::ok(&dreamlog(&db, &["memory", "apply", "support", create], None));
    let sessions = common::ok(&dreamlog(&db, &["sessions", "list", "--json"], None));
    let history = common::ok(&dreamlog(&db, &["memory", "history", "support", "/memories/a.md", "--json"], None));
    let out = common::ok(&dreamlog(&db, &["--json", "reindex"], None));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["verified_clean"], true, "{v}");
    let events = v["reindex"]["events"].as_u64().unwrap();
    assert!(events > 3000, "{v}");
    let entries: std::collections::BTreeMap<String, u64> = v["reindex"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_owned(), e[1].as_u64().unwrap()))
        .collect();
    assert_eq!(entries["kinds"], events, "one kind entry per event");
    assert_eq!(entries["sessions"], 100, "one entry per τ-bench session");
    assert_eq!(entries["paths"], 1);
    assert_eq!(common::ok(&dreamlog(&db, &["sessions", "list", "--json"], None)), sessions);
    assert_eq!(
        common::ok(&dreamlog(&db, &["memory", "history", "support", "/memories/a.md", "--json"], None)),
        history
    );
    let text = common::ok(&dreamlog(&db, &["reindex"], None));
    assert!(text.starts_with(&format!("rebuilt from {events} events:")) && text.contains("verify: clean"), "{text}");
}

/// One classification of errors gives the exit code (and, on a server, the status): bad
/// input 2, not found 3, a conflict 4, storage 1.
#[test]
fn exit_codes_say_what_kind_of_failure_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let note = r#"{"kind":"note","actor":"human:ada","time":1764111000000,"body":{"type":"t","json":{}}}"#;
    common::ok(&dreamlog(&db, &["append", "--stream", "s"], Some(note)));
    let code = |args: &[&str], stdin: Option<&str>| dreamlog(&db, args, stdin).status.code();
    assert_eq!(code(&["show", "ffffffff"], None), Some(3), "no such event");
    assert_eq!(code(&["show", "xyz"], None), Some(2), "not an id");
    assert_eq!(code(&["memory", "view", "nostore"], None), Some(3), "no such memory store");
    let later = r#"{"kind":"note","actor":"human:ada","time":1764111000001,"body":{"type":"t","json":{}}}"#;
    assert_eq!(code(&["append", "--stream", "s", "--expect", "no-stream"], Some(later)), Some(4), "expected version");
    assert_eq!(code(&["append", "--stream", "s"], Some("{\"kind\":\"nope\"}")), Some(2), "bad event");
    assert_eq!(code(&["memory", "diff", "s", "--from", "no-such-tag"], None), Some(2), "a point that is not one");
}
