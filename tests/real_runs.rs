//! Real agent runs as a new user imports and reads them from the command line: Harbor
//! trial directories, directories with a bad file, the same run from another folder,
//! typos that must write nothing, and the smaller things a first look finds.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{fails, json_lines, ok};
use serde_json::Value;
use tempfile::tempdir;

fn dreamlog(db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    common::dreamlog_on(db, args, stdin)
}

fn fixture(rel: &str) -> PathBuf {
    common::root().join("tests/fixtures").join(rel)
}

/// The log as `export` writes it (what must not change when nothing is written).
fn exported(db: &Path) -> String {
    ok(&dreamlog(db, &["export"], None))
}

fn check_schema(name: &str, values: &[Value]) {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(common::root().join("schemas").join(name)).unwrap()).unwrap();
    let registry = common::schema_registry();
    let v = jsonschema::options().with_registry(&registry).build(&schema).unwrap();
    for value in values {
        assert!(v.is_valid(value), "{name}: {value}");
    }
}

#[test]
fn harbor_trial_directories_import_as_one_run_each_and_again_from_elsewhere_as_present() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let harbor = fixture("harbor");
    let out = dreamlog(&db, &["import", "auto", harbor.to_str().unwrap(), "--json"], None);
    let mut lines = json_lines(&ok(&out));
    let summary = lines.pop().unwrap();
    check_schema("import-sessions-report.schema.json", &lines);
    check_schema("import-summary.schema.json", std::slice::from_ref(&summary));
    // Two trials: the Claude Code trial (main + sub-agent) and the Terminus trial (main +
    // two sub-agents); the Claude Code transcript and the separate sub-agent file are
    // the same runs, set aside.
    let counts: Vec<(u64, u64, u64, u64)> = lines
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (n("sessions"), n("messages"), n("actions"), n("grades"))
        })
        .collect();
    assert_eq!(counts, vec![(2, 10, 7, 1), (3, 9, 5, 1)], "{lines:?}");
    let aside = summary["summary"]["set_aside"].as_array().unwrap();
    assert_eq!(aside.len(), 2, "{summary}");
    assert!(aside.iter().any(|a| a["file"].as_str().unwrap().ends_with(".jsonl")
        && a["reason"].as_str().unwrap().contains("the same run as")));
    assert!(aside.iter().any(|a| a["file"].as_str().unwrap().ends_with("trajectory.helper-unicode.json")));
    let rows = json_lines(&ok(&dreamlog(&db, &["sessions", "list", "--json"], None)));
    assert_eq!(rows.len(), 5, "one graded run is not ten sessions");
    assert_eq!(rows.iter().filter(|r| !r["score"].is_null()).count(), 2);

    // The same trials copied elsewhere: everything is already present, nothing written.
    let before = exported(&db);
    let elsewhere = tempdir().unwrap();
    common::copy_tree(&harbor, elsewhere.path());
    let text = ok(&dreamlog(&db, &["import", elsewhere.path().to_str().unwrap()], None));
    assert!(text.contains("2 files: 0 imported, 2 already present, 0 failed"), "{text}");
    assert!(text.contains("0 sessions imported, 0 grown, 2 already present"), "{text}");
    assert_eq!(exported(&db), before);
    let verified = ok(&dreamlog(&db, &["verify"], None));
    assert!(verified.contains("all ids, body hashes, chains and indexes verify"), "{verified}");
    // Named on its own, the transcript is a Claude Code session of its own (a user asked
    // for that file); inside the trial directory it was set aside.
    let transcript =
        harbor.join("claude-code-trial__a1/agent/sessions/projects/-app/0b9d3f4e-1c2a-4e5f-8a7b-6c5d4e3f2a1b.jsonl");
    let one = json_lines(&ok(&dreamlog(&db, &["import", transcript.to_str().unwrap(), "--json"], None)));
    assert_eq!((one[0]["format"].as_str(), one[0]["sessions"].as_u64()), (Some("claude-code"), Some(1)));
}

#[test]
fn a_directory_import_tries_every_file_and_reports_the_bad_ones() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let good = std::fs::read_to_string(common::data("swe-agent/pydicom__pydicom-1458.traj")).unwrap();
    std::fs::write(runs.join("a-good.traj"), &good).unwrap();
    std::fs::write(runs.join("b-truncated.traj"), &good[..good.len() / 2]).unwrap();
    std::fs::copy(common::data("swe-agent/swe-agent__test-repo-i1.traj"), runs.join("c-good.traj")).unwrap();

    let out = dreamlog(&db, &["import", runs.to_str().unwrap()], None);
    let err = fails(&out);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        err.contains("b-truncated.traj: failed, nothing of it written: ") && err.contains("not valid JSON"),
        "{err}"
    );
    assert!(text.contains("3 files: 2 imported, 0 already present, 1 failed"), "{text}");
    assert_eq!(
        json_lines(&ok(&dreamlog(&db, &["sessions", "list", "--json"], None))).len(),
        2,
        "the file after it was tried"
    );
    let out = dreamlog(&db, &["import", runs.to_str().unwrap(), "--json"], None);
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    let failure: Vec<Value> =
        lines.iter().filter(|l| l["error"].is_string() || l["summary"].is_object()).cloned().collect();
    assert_eq!(failure.len(), 2, "{lines:?}");
    check_schema("import-summary.schema.json", &failure);
    assert!(failure[0]["file"].as_str().is_some_and(|f| f.ends_with("b-truncated.traj")));
    assert_eq!(failure[1]["summary"]["failed"][0]["file"], failure[0]["file"]);

    // --fail-fast stops at the first bad file: the file after it is not tried.
    let db2 = dir.path().join("db2");
    let err = fails(&dreamlog(&db2, &["import", runs.to_str().unwrap(), "--fail-fast"], None));
    assert!(err.contains("not valid JSON"), "{err}");
    assert_eq!(json_lines(&ok(&dreamlog(&db2, &["sessions", "list", "--json"], None))).len(), 1);

    // `auto` on a truncated file names the JSON error, not "cannot tell the format".
    let cut = std::fs::read_to_string(fixture("harbor/terminus-trial__b2/agent/trajectory.json")).unwrap();
    let file = dir.path().join("cut.json");
    std::fs::write(&file, &cut[..cut.len() - 300]).unwrap();
    let err = fails(&dreamlog(&db, &["import", "auto", file.to_str().unwrap()], None));
    assert!(err.contains("not valid JSON") && !err.contains("cannot tell the format"), "{err}");
}

#[test]
fn typos_write_nothing_and_an_empty_dream_is_not_written() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&dreamlog(&db, &["import", common::data("tau-bench").to_str().unwrap(), "--store", "support"], None));
    let create = r#"{"command":"create","path":"/memories/notes.md","file_text":"- check the fare class first\n"}"#;
    ok(&dreamlog(&db, &["memory", "apply", "support"], Some(create)));
    let before = exported(&db);
    for args in [
        vec!["memory", "view", "nostore"],
        vec!["memory", "history", "nostore"],
        vec!["memory", "blame", "nostore", "/memories/notes.md"],
        vec!["memory", "lessons", "nostore"],
        vec!["memory", "diff", "support", "nostore"],
        vec!["drift", "nostore"],
        vec!["dream", "run", "nostore"],
    ] {
        let err = fails(&dreamlog(&db, &args, None));
        assert!(err.contains("error: no memory store \"nostore\" (known: support)"), "{args:?}: {err}");
    }
    assert_eq!(exported(&db), before, "a typo wrote nothing");

    // A first dream reads the 100 graded sessions; a second one has nothing new.
    let first = ok(&dreamlog(&db, &["dream", "run", "support", "--in-place"], None));
    assert!(first.contains("100 graded session(s)"), "{first}");
    let after_first = exported(&db);
    let out = dreamlog(&db, &["dream", "run", "support", "--in-place"], None);
    let text = ok(&out);
    assert!(text.contains("nothing to dream, nothing written"), "{text}");
    assert_eq!(exported(&db), after_first);
    // --create dreams over a store with no event yet (here: nothing graded since, so still
    // nothing is written, but the store is not refused as a typo).
    let text = ok(&dreamlog(&db, &["dream", "run", "fresh", "--create", "--since", "start"], None));
    assert!(text.contains("dream ") && text.contains("into fresh.dream-1"), "{text}");
}

#[test]
fn sessions_and_memory_are_linked_both_ways() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let events = r#"{"kind":"session.start","actor":"agent:bot","body":{"session":"s7","agent":"bot","task":"refund"}}
{"kind":"action","actor":"agent:bot","body":{"session":"s7","name":"lookup","input":{"id":7},"output":{"rows":3,"status":"found"},"status":"ok"}}
"#;
    ok(&dreamlog(&db, &["append", "--stream", "session/s7"], Some(events)));
    let create = r#"{"command":"create","path":"/memories/refunds.md","file_text":"- refunds need the booking id\n"}"#;
    ok(&dreamlog(&db, &["memory", "apply", "live", "--actor", "agent:bot", "--session", "s7"], Some(create)));
    let blame = ok(&dreamlog(&db, &["memory", "blame", "live", "/memories/refunds.md"], None));
    assert!(blame.contains("session s7"), "{blame}");
    let blame = json_lines(&ok(&dreamlog(&db, &["memory", "blame", "live", "/memories/refunds.md", "--json"], None)));
    assert_eq!(blame[0]["session"], "s7");
    check_schema("blame-line.schema.json", &blame);
    let history = ok(&dreamlog(&db, &["memory", "history", "live"], None));
    assert!(history.contains("session s7"), "{history}");
    let history = json_lines(&ok(&dreamlog(&db, &["memory", "history", "live", "--json"], None)));
    assert_eq!(history[0]["body"]["type"], "memory.rules", "a new store records its memory rules first");
    assert_eq!(history[1]["body"]["session"], "s7");

    let shown = ok(&dreamlog(&db, &["sessions", "show", "s7"], None));
    assert!(shown.contains("memory commands (1):"), "{shown}");
    assert!(
        shown.contains("live create /memories/refunds.md: File created successfully at: /memories/refunds.md"),
        "{shown}"
    );
    // An output that is a JSON object prints as JSON, not as an empty line.
    assert!(shown.contains(r#"{"rows":3,"status":"found"}"#), "{shown}");
    let detail: Value = serde_json::from_str(&ok(&dreamlog(&db, &["sessions", "show", "s7", "--json"], None))).unwrap();
    check_schema("api/session-events.schema.json", std::slice::from_ref(&detail));
    assert_eq!(detail["memory"][0]["result"], "File created successfully at: /memories/refunds.md");
    assert_eq!(detail["memory"][0]["command"]["command"], "create");
}

#[test]
fn what_a_first_look_found_is_fixed() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    // Help texts name every format and what the demo does.
    let help = ok(&common::run_dreamlog(&["import", "--help"], None));
    for f in ["dreamlog", "tau-bench", "tau2", "swe-agent", "atif", "claude-code", "--fail-fast"] {
        assert!(help.contains(f), "import --help lacks {f}: {help}");
    }
    let top = ok(&common::run_dreamlog(&["--help"], None));
    assert!(top.contains("Import agent runs"), "{top}");
    let demo = ok(&common::run_dreamlog(&["demo", "--help"], None));
    for part in ["τ-bench session", "evidence dream", "drift", "revert", "replays bit for bit", "verify"] {
        assert!(demo.contains(part), "demo --help lacks {part}: {demo}");
    }

    ok(&dreamlog(&db, &["import", common::data("tau-bench").to_str().unwrap()], None));
    ok(&dreamlog(
        &db,
        &["import", common::data("tau2-bench/gpt-4.1_airline_default_gpt-4.1_1trials.json").to_str().unwrap()],
        None,
    ));
    // A τ-bench session has no timestamps: no 1970 dates; each tool result follows its call.
    let shown = ok(&dreamlog(&db, &["sessions", "show", "tau-bench/gpt-4o-airline.tasks-00-24/task-12/trial-1"], None));
    assert!(!shown.contains("1970-"), "{shown}");
    assert!(shown.contains("started - (the source has no timestamps)"), "{shown}");
    assert!(!shown.contains("\n[tool]"), "tool results are shown with their calls: {shown}");
    let list = ok(&dreamlog(&db, &["sessions", "list"], None));
    assert!(!list.contains("1970-"), "{list}");
    let header = list.lines().next().unwrap();
    for column in ["TASK", "AGENT", "RESULT", "STARTED"] {
        let at = header.find(column).unwrap();
        for row in list.lines().skip(1) {
            assert!(row[..at].ends_with("  ") && row.as_bytes()[at] != b' ', "{column} is one column:\n{list}");
        }
    }
    // τ²-bench keeps cost, duration and tokens: the text view shows them.
    let rows = json_lines(&ok(&dreamlog(&db, &["sessions", "list", "--json"], None)));
    let tau2 = rows.iter().find(|r| r["agent"].as_str().is_some_and(|a| !a.starts_with("tau-bench"))).unwrap();
    assert!(tau2["cost_usd"].as_f64().unwrap() > 0.0 && tau2["duration_ms"].as_u64().unwrap() > 0, "{tau2}");
    let shown = ok(&dreamlog(&db, &["sessions", "show", tau2["id"].as_str().unwrap()], None));
    assert!(shown.contains("duration ") && shown.contains("cost $"), "{shown}");

    // A second process on a database another holds: a clear message.
    let held = dreamlog::open(&db, dreamlog::Options::default()).unwrap();
    let err = fails(&dreamlog(&db, &["log", "--limit", "1"], None));
    assert!(
        err.contains("the database is in use by another process (is `dreamlog serve` running? use --remote URL)"),
        "{err}"
    );
    held.close().unwrap();
}

/// τ²-bench runs the agent against a simulated user with its own model: the sessions'
/// cost and tokens are the agent's, the simulator's apart — for every simulation of the
/// telecom file, against the file's own `agent_cost`, `user_cost` and message usage.
#[test]
fn the_agent_and_the_user_simulator_are_counted_apart() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let file = common::data("tau2-bench/gpt-4.1_telecom_default_gpt-4.1_1trials.json");
    ok(&dreamlog(&db, &["import", file.to_str().unwrap()], None));
    let rows: Vec<Value> = json_lines(&ok(&dreamlog(&db, &["--json", "sessions", "list"], None)));
    check_schema("session-summary.schema.json", &rows);
    let data: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let sims = data["simulations"].as_array().unwrap();
    assert_eq!(rows.len(), sims.len());
    let tokens = |sim: &Value, role: &str, key: &str| -> u64 {
        sim["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == role)
            .filter_map(|m| m.pointer(&format!("/usage/{key}")).and_then(Value::as_u64))
            .sum()
    };
    for sim in sims {
        let row = rows.iter().find(|r| r["id"] == sim["id"]).unwrap();
        let close = |a: &Value, b: &Value| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-9;
        assert!(close(&row["cost_usd"], &sim["agent_cost"]), "{row} vs {}", sim["agent_cost"]);
        assert!(close(&row["user_cost_usd"], &sim["user_cost"]), "{row}");
        assert_eq!(row["input_tokens"], tokens(sim, "assistant", "prompt_tokens"), "{row}");
        assert_eq!(row["output_tokens"], tokens(sim, "assistant", "completion_tokens"), "{row}");
        assert_eq!(row["user_input_tokens"], tokens(sim, "user", "prompt_tokens"), "{row}");
        assert_eq!(row["user_output_tokens"], tokens(sim, "user", "completion_tokens"), "{row}");
    }
    let first = sims[0]["id"].as_str().unwrap();
    let text = ok(&dreamlog(&db, &["sessions", "show", first], None));
    assert!(text.contains("agent cost $") && text.contains("user simulator cost $"), "{text}");
}

/// `sessions show` as a reader needs it: tool calls under the turn that made them (a turn
/// of calls only is shown as such), the simulated user's calls marked as the user's, a
/// check outside the reward basis marked as not counted, what the graders expected beside
/// a failed check, and a long JSON blob folded.
#[test]
fn sessions_show_puts_calls_under_their_turn_and_expected_actions_beside_failed_checks() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let telecom = common::data("tau2-bench/gpt-4.1_telecom_default_gpt-4.1_1trials.json");
    let airline = common::data("tau2-bench/gpt-4.1_airline_default_gpt-4.1_1trials.json");
    let tau = common::data("tau-bench/gpt-4o-airline.tasks-00-24.json");
    for f in [&telecom, &airline, &tau] {
        ok(&dreamlog(&db, &["import", f.to_str().unwrap()], None));
    }
    let text = ok(&dreamlog(&db, &["sessions", "show", "04e5f54a"], None));
    assert!(text.contains("[assistant] (tool calls)\n  -> get_customer_by_phone("), "{text}");
    assert!(text.contains("[user] (tool calls)\n  -> (human:user) run_speed_test("), "{text}");
    assert!(text.contains("FAIL db_check (0)  (outside the reward basis ENV_ASSERTION: not counted)"), "{text}");
    // A failed call check of τ²-bench airline: the expected call with its arguments.
    let data: Value = serde_json::from_str(&std::fs::read_to_string(&airline).unwrap()).unwrap();
    let (sim, check) = data["simulations"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| {
            let c = s["reward_info"]["action_checks"].as_array()?.iter().find(|c| c["action_match"] == false)?;
            Some((s["id"].as_str().unwrap().to_owned(), c.clone()))
        })
        .expect("a failed action check");
    let text = ok(&dreamlog(&db, &["sessions", "show", &sim], None));
    let name = check["action"]["name"].as_str().unwrap();
    let want = format!("FAIL action:{name}");
    let at = text.find(&want).unwrap_or_else(|| panic!("{want}: {text}"));
    let next = text[at..].lines().nth(1).unwrap();
    assert!(next.trim_start().starts_with(&format!("expected {name}({}", check["action"]["arguments"])), "{next}");
    // τ-bench: the task's expected actions beside a failed r_actions.
    let text = ok(&dreamlog(&db, &["sessions", "show", "tau-bench/gpt-4o-airline.tasks-00-24/task-1/trial-0"], None));
    assert!(
        text.contains(
            "FAIL r_actions (0)\n         expected actions: cancel_reservation({\"reservation_id\":\"Z7GOZK\"})"
        ),
        "{text}"
    );
    // A metadata blob is folded.
    let blob: Value = serde_json::json!({"meta": (0..200).map(|i| format!("field {i}")).collect::<Vec<_>>()});
    let start =
        serde_json::json!({"kind": "session.start", "actor": "agent:a", "body": {"session": "blob", "agent": "a"}});
    let msg = serde_json::json!({"kind": "message", "actor": "system:s",
        "body": {"session": "blob", "role": "system", "content": blob.to_string()}});
    ok(&dreamlog(&db, &["append", "--stream", "session/blob"], Some(&format!("{start}\n{msg}\n"))));
    let text = ok(&dreamlog(&db, &["sessions", "show", "blob"], None));
    assert!(text.contains("bytes of JSON folded; --json shows it)"), "{text}");
    let whole = ok(&dreamlog(&db, &["--json", "sessions", "show", "blob"], None));
    assert!(whole.contains("field 199"), "--json keeps it whole");
}
