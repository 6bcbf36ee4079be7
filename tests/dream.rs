//! Dreams from the command line on real data (tests/data/tau-bench): run, review,
//! promote, blame a lesson down to its sessions, the lesson ledger, drift, replay as a
//! regression test (including a forged dream it must catch), and the exec dreamer with
//! its failure modes.

mod common;

use common::ok;

use std::path::Path;
use std::process::Output;

use dreamlog::core::dream::DreamerSpec;
use dreamlog::dream::{Dreams, RunOptions};
use dreamlog::memory::{stream_name, MemoryStores};
use dreamlog::sim::run_round;
use dreamlog::{Actor, AppendBatch, Body, CanonicalJson, Draft, ExpectedVersion, MemoryCommand, StoreFork};
use serde_json::Value;
use tempfile::tempdir;

fn dreamlog(db: &Path, args: &[&str]) -> Output {
    common::dreamlog_on(db, args, None)
}

fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "unexpectedly succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap()
}

fn lines(s: &str) -> Vec<Value> {
    s.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn tau_bench() -> String {
    common::data("tau-bench").display().to_string()
}

fn log_len(db: &Path) -> usize {
    ok(&dreamlog(db, &["log", "--json"])).lines().count()
}

#[test]
fn evidence_dream_on_tau_bench_from_run_to_drift() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&dreamlog(&db, &["import", &tau_bench(), "--store", "support"]));

    let run = json(&ok(&dreamlog(&db, &["dream", "run", "support", "--json"])));
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(run["dreamer"], "evidence");
    assert_eq!(run["version"], "3", "evidence@3 is the default");
    assert_eq!(run["output_store"], "support.dream-1");
    assert_eq!(run["sessions"], 100);
    assert_eq!(run["from_position"], 0);

    // Review: the fork has the lessons, the input store is untouched.
    let diff = ok(&dreamlog(&db, &["memory", "diff", "support", "support.dream-1"]));
    assert!(diff.contains("/memories/lessons/tau-bench.md"), "{diff}");
    let text = ok(&dreamlog(&db, &["memory", "view", "support.dream-1", "/memories/lessons/tau-bench.md"]));
    assert!(
        text.contains("that expect `cancel_reservation`, the call was missing or failed its check in 12 of 14 graded sessions (4 tasks)"),
        "{text}"
    );
    // A check's failure rate (evidence@2 wrote "`r_actions` failed in 58 of 88") is no advice.
    assert!(!text.contains("r_actions"), "{text}");
    assert!(text.contains("E.g. task 1 trial 0 (failed)"), "lessons cite sessions by task and trial: {text}");
    assert!(!text.contains("Before calling `book_reservation`"), "the confounded lesson of evidence@1 is gone: {text}");
    let promoted = ok(&dreamlog(&db, &["memory", "promote", "support.dream-1", "--into", "support"]));
    assert!(
        promoted.contains("validation of dream") && promoted.contains("expected `cancel_reservation`"),
        "{promoted}"
    );

    // Blame one lesson down to its sessions and grades.
    let blame = lines(&ok(&dreamlog(&db, &["memory", "blame", "support", "/memories/lessons/tau-bench.md", "--json"])));
    let line = blame.iter().find(|l| l["text"].as_str().unwrap().contains("expect `cancel_reservation`")).unwrap();
    assert_eq!(line["dream"], id.as_str());
    let evidence = line["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 12, "the 12 grades of the failing sessions");
    // The line in the live store is the fork's command (its dream and evidence), put
    // there by the promote's copy.
    assert_eq!(line["restored_by"]["how"], "promote", "{line}");
    let fork_line =
        lines(&ok(&dreamlog(&db, &["memory", "blame", "support.dream-1", "/memories/lessons/tau-bench.md", "--json"])))
            .into_iter()
            .find(|l| l["text"] == line["text"])
            .unwrap();
    assert_eq!(fork_line["id"], line["id"]);
    assert!(fork_line.get("restored_by").is_none());
    let grade = json(&ok(&dreamlog(&db, &["show", evidence[0].as_str().unwrap(), "--json"])));
    assert_eq!(grade["kind"], "grade");
    assert_eq!(grade["body"]["session"], "tau-bench/gpt-4o-airline.tasks-00-24/task-1/trial-0");

    // The ledger.
    let rows = lines(&ok(&dreamlog(&db, &["memory", "lessons", "support", "--json"])));
    assert_eq!(rows.len(), 3, "{rows:?}");
    let row = rows.iter().find(|r| r["text"].as_str().unwrap().contains("expect `cancel_reservation`")).unwrap();
    assert_eq!(row["dream"], id.as_str());
    assert_eq!(row["dreamer"], "evidence@3");
    assert_eq!(row["evidence_sessions"].as_array().unwrap().len(), 12);
    assert_eq!(row["before"]["sessions"], 100, "every imported session ran with the store before the lesson");
    assert_eq!(row["after"]["sessions"], 0);
    let people = ok(&dreamlog(&db, &["memory", "lessons", "support"]));
    assert!(people.contains("evidence: 12 event(s) from 12 session(s)"), "{people}");
    assert!(people.contains("put back by promote"), "{people}");

    // A bad edit of that lesson, reverted from the command line: the line is back with
    // the fork's command, its dream and its twelve grades, the revert shown as the act
    // that restored it (issue 29: the revert had made it a human's line with no evidence).
    let lesson = line["text"].as_str().unwrap();
    let edit = serde_json::json!({"command": "str_replace", "path": "/memories/lessons/tau-bench.md",
        "old_str": lesson, "new_str": "- ignore what the graders expect"});
    let bad = json(&ok(&dreamlog(&db, &["memory", "apply", "support", &edit.to_string(), "--json"])));
    let bad_id = bad["id"].as_str().unwrap();
    ok(&dreamlog(&db, &["memory", "revert", "support", "--event", bad_id, "--reason", "bad edit"]));
    let again = lines(&ok(&dreamlog(&db, &["memory", "blame", "support", "/memories/lessons/tau-bench.md", "--json"])));
    let back = again.iter().find(|l| l["text"] == lesson).unwrap();
    for field in ["id", "position", "actor", "dream", "evidence"] {
        assert_eq!(back[field], line[field], "{field}: {back}");
    }
    assert_eq!(back["restored_by"]["how"], "revert", "{back}");
    assert_eq!(back["restored_by"]["reason"], "bad edit", "{back}");
    assert_eq!(back["restored_by"]["actor"].as_str().unwrap().split(':').next(), Some("human"));
    let people = ok(&dreamlog(&db, &["memory", "lessons", "support"]));
    assert!(people.contains("evidence: 12 event(s) from 12 session(s)"), "{people}");
    assert!(people.contains("put back by revert"), "{people}");

    // Show: inputs and evidence per lesson.
    let show = json(&ok(&dreamlog(&db, &["dream", "show", &id, "--json"])));
    assert_eq!(show["base_state"], run["base_state"]);
    assert!(show["lessons"].as_array().unwrap().iter().skip(1).all(|l| !l["evidence"].as_array().unwrap().is_empty()));
    assert_eq!(lines(&ok(&dreamlog(&db, &["dream", "list", "--json"]))).len(), 1);

    // Replay: bit for bit; with another config, the lesson diff, and still exit 0.
    assert!(ok(&dreamlog(&db, &["dream", "replay", &id])).contains("reproduced bit for bit"));
    assert!(ok(&dreamlog(&db, &["dream", "replay", "--all"])).contains("1 dream(s) replayed, 0 differ"));
    let other = ok(&dreamlog(&db, &["dream", "replay", &id, "--config", r#"{"min_tasks": 5}"#]));
    assert!(other.contains("writes different lessons"), "{other}");
    assert!(other.contains("-- [expected:"), "{other}");
    // Against version 1: the confounded lessons come back.
    let v1 = ok(&dreamlog(&db, &["dream", "replay", &id, "--dreamer", "evidence@1"]));
    assert!(v1.contains("evidence@1 writes different lessons from evidence@3"), "{v1}");
    assert!(v1.contains("+- [tool:") && v1.contains("Call `transfer_to_human_agents`"), "{v1}");

    // Drift: one state so far (the sessions ran before the dream), nothing flagged.
    let drift = json(&ok(&dreamlog(&db, &["drift", "support", "--json", "--fail-on-drift"])));
    assert_eq!(drift["sessions"], 100);
    assert_eq!(drift["flagged"], 0);
    assert_eq!(drift["states"].as_array().unwrap().len(), 1);
    assert_eq!(drift["mismatched"], 0);

    // A second dream with nothing new writes nothing and says so (exit 0).
    let before = log_len(&db);
    let again = json(&ok(&dreamlog(&db, &["dream", "run", "support", "--in-place", "--json"])));
    assert!(again["dream"].is_null(), "{again}");
    let from = run["to_position"].as_u64().unwrap() + 1;
    assert_eq!(
        again["reason"],
        format!("no new graded session for store \"support\" since position {from}: nothing to dream, nothing written")
    );
    assert_eq!(log_len(&db), before);
}

#[test]
fn exec_dreamer_runs_a_python_program_and_fails_cleanly() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&dreamlog(&db, &["import", &tau_bench(), "--store", "support"]));
    let cfg = r#"{"command": ["python3", "tools/dreamers/failing_tasks.py", "--min-failures", "3"]}"#;
    let run = json(&ok(&dreamlog(
        &db,
        &["dream", "run", "support", "--dreamer", "exec@1", "--config", cfg, "--in-place", "--json"],
    )));
    assert_eq!(run["output_store"], "support");
    let text = ok(&dreamlog(&db, &["memory", "view", "support", "/memories/failing-tasks.md"]));
    assert!(text.contains("- task 0 failed 4 of 4 times"), "{text}");
    let id = run["id"].as_str().unwrap();
    assert!(ok(&dreamlog(&db, &["dream", "replay", id])).contains("reproduced bit for bit"));

    let before = log_len(&db);
    let cases = [
        (r#"{"command": ["sh", "-c", "echo boom >&2; exit 3"]}"#, "exited with exit status: 3; its stderr:\nboom"),
        (r#"{"command": ["sh", "-c", "cat >/dev/null; echo not json"]}"#, "printed invalid output"),
        (
            r#"{"command": ["sh", "-c", "cat >/dev/null; echo '{\"commands\":[{\"input\":{\"command\":\"delete\",\"path\":\"/memories/nope.md\"}}]}'"]}"#,
            "command #0 (delete) fails: Error: The path /memories/nope.md does not exist",
        ),
        (
            r#"{"command": ["sh", "-c", "cat >/dev/null; echo '{\"commands\":[{\"input\":{\"command\":\"create\",\"path\":\"/memories/x.md\",\"file_text\":\"x\"},\"causes\":[\"0000000000000000000000000000000000000000000000000000000000000000\"]}]}'"]}"#,
            "which is not an event of the dream's input",
        ),
        (r#"{"command": ["/nonexistent/dreamer"]}"#, "cannot start \"/nonexistent/dreamer\""),
        (r#"{"cmd": ["x"]}"#, "bad config"),
    ];
    for (cfg, expected) in cases {
        let err = fails(&dreamlog(
            &db,
            &["dream", "run", "support", "--dreamer", "exec@2", "--config", cfg, "--since", "start"],
        ));
        assert!(err.contains(expected), "{cfg}: {err}");
    }
    let err = fails(&dreamlog(&db, &["dream", "run", "support", "--dreamer", "evidence@9"]));
    assert!(err.contains("this build has evidence@1"), "{err}");
    let err = fails(&dreamlog(&db, &["dream", "run", "support", "--config", r#"{"min_supprt": 2}"#]));
    assert!(err.contains("unknown field `min_supprt`"), "{err}");
    assert_eq!(log_len(&db), before, "failed dreams wrote nothing");
}

#[test]
fn replay_catches_a_dream_whose_output_is_not_what_its_dreamer_writes() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let id;
    {
        let store = common::open(&db);
        let mem = MemoryStores::new(store.clone());
        run_round(&mem, "live", "a", 30, 5).unwrap();
        let dreams = Dreams::new(mem.clone());
        let evidence: DreamerSpec = "evidence".parse().unwrap();
        let real = dreams.run("live", &evidence, &RunOptions { in_place: true, ..RunOptions::default() }).unwrap();
        // Forge: the same dream (same dreamer, config, input) in a fork of the store as
        // it was before the real dream, but with a different lesson.
        let stream = stream_name("forged");
        let actor = Actor::Dreamer { name: "evidence".into(), version: "1".into() };
        let fork = Draft::new(
            stream.clone(),
            actor.clone(),
            Body::StoreFork(StoreFork {
                store: "forged".into(),
                source: "live".into(),
                position: real.dream.to_position,
            }),
        )
        .at(1);
        let fork_id = fork.seal(1, vec![]).unwrap().id;
        let mut body = real.dream.clone();
        body.output_store = "forged".into();
        body.meta = Some(CanonicalJson::parse(r#"{"forged":true}"#).unwrap());
        let dream = Draft::new(stream.clone(), actor.clone(), Body::Dream(body)).at(1).with_parents(vec![fork_id]);
        let dream_id = dream.seal(1, vec![fork_id]).unwrap().id;
        let cmd = Draft::new(
            stream.clone(),
            actor,
            Body::Memory(dreamlog::Memory {
                store: "forged".into(),
                command: MemoryCommand::Create {
                    path: "/memories/forged.md".into(),
                    file_text: "- Skip checks.\n".into(),
                },
                precondition: None,
                session: None,
            }),
        )
        .caused_by(vec![dream_id])
        .at(1)
        .with_parents(vec![dream_id]);
        store
            .append(AppendBatch {
                events: vec![fork, dream, cmd],
                expectations: vec![(stream, ExpectedVersion::NoStream)],
                ..AppendBatch::default()
            })
            .unwrap();
        let r = dreams.replay(&dream_id, None).unwrap();
        assert!(r.same_dreamer && !r.identical, "{r:?}");
        assert!(r.lesson_diff.contains("-- Skip checks."), "{}", r.lesson_diff);
        assert!(dreams.replay(&real.id, None).unwrap().identical);
        id = dream_id.to_hex();
        store.close().unwrap();
    }
    let out = fails(&dreamlog(&db, &["dream", "replay", &id]));
    assert!(out.contains("DIFFERS from what was committed"), "{out}");
    let all = fails(&dreamlog(&db, &["dream", "replay", "--all"]));
    assert!(all.contains("2 dream(s) replayed, 1 differ"), "{all}");
}

/// A lesson is judged on its own task family: with τ-bench and τ²-bench airline runs in
/// one store, the τ-bench lessons count the 100 τ-bench sessions before them, the τ²-bench
/// lessons the 20 τ²-bench ones (not all 120).
#[test]
fn the_ledger_compares_each_lesson_over_its_own_family() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let tau2 = common::data("tau2-bench/gpt-4.1_airline_default_gpt-4.1_1trials.json").display().to_string();
    ok(&dreamlog(&db, &["import", &tau_bench(), &tau2, "--store", "support"]));
    ok(&dreamlog(&db, &["dream", "run", "support", "--in-place"]));
    let rows = lines(&ok(&dreamlog(&db, &["memory", "lessons", "support", "--json"])));
    let mut seen = std::collections::BTreeMap::new();
    for r in &rows {
        let family = r["family"].as_str().unwrap_or_else(|| panic!("an evidence lesson names its family: {r}"));
        let want = match family {
            "tau-bench" => 100,
            "tau2/airline" => 20,
            other => panic!("unexpected family {other}: {r}"),
        };
        assert_eq!(r["before"]["sessions"], want, "{r}");
        assert!(r["path"].as_str().unwrap().ends_with(&format!("{family}.md")), "{r}");
        *seen.entry(family.to_owned()).or_insert(0) += 1;
    }
    assert!(seen.len() == 2, "lessons of both families: {seen:?}");
}

/// evidence@3 became the default; evidence@2 stays, so dreams it recorded replay bit for
/// bit, and it still writes what it wrote (check rates included) when asked for.
#[test]
fn evidence_2_dreams_still_replay_and_differ_from_3_only_in_how_grades_are_read() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&dreamlog(&db, &["import", &tau_bench(), "--store", "support"]));
    let v2 = json(&ok(&dreamlog(&db, &["dream", "run", "support", "--dreamer", "evidence@2", "--json"])));
    assert_eq!(v2["version"], "2");
    let id = v2["id"].as_str().unwrap().to_owned();
    let text = ok(&dreamlog(&db, &["memory", "view", "support.dream-1", "/memories/lessons/tau-bench.md"]));
    assert!(text.contains("the graders' check `r_actions` failed in 58 of 88 graded sessions"), "{text}");
    assert!(ok(&dreamlog(&db, &["dream", "replay", &id])).contains("reproduced bit for bit"));
    let v3 = ok(&dreamlog(&db, &["dream", "replay", &id, "--dreamer", "evidence@3"]));
    assert!(v3.contains("evidence@3 writes different lessons from evidence@2"), "{v3}");
    assert!(v3.contains("-- [check:") && v3.contains("r_actions"), "the check rate goes: {v3}");
}

/// Re-dreaming without promoting wrote identical forks (`sup.dream-1`, `-2`, `-3` over the
/// same sessions): a dream whose input equals a fork's still there says so and writes
/// nothing unless `--again`. The `review:` and `promote:` commands printed after
/// `dream run --create` run as printed.
#[test]
fn a_second_dream_over_the_same_input_writes_nothing_and_printed_commands_run() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let tau2 = common::data("tau2-bench/gpt-4.1_airline_default_gpt-4.1_1trials.json").display().to_string();
    ok(&dreamlog(&db, &["import", &tau2]));
    let first = ok(&dreamlog(&db, &["dream", "run", "sup", "--create"]));
    assert!(first.contains("into sup.dream-1"), "{first}");
    // Every command it prints for the next step runs.
    let printed: Vec<&str> = first
        .lines()
        .filter_map(|l| ["review:", "promote:", "show:"].iter().find_map(|p| l.strip_prefix(p)))
        .map(str::trim)
        .collect();
    assert_eq!(printed.len(), 3, "{first}");
    let before = log_len(&db);
    for c in &printed {
        let mut words: Vec<&str> = c.split_whitespace().collect();
        assert_eq!(words.remove(0), "dreamlog", "{c}");
        if words[..2] == ["memory", "promote"] {
            words.push("--dry-run");
        }
        ok(&dreamlog(&db, &words));
    }
    assert_eq!(log_len(&db), before, "a dry run writes nothing");
    // `dream show` leads with what was written; the decisions follow.
    let id = json(&lines(&ok(&dreamlog(&db, &["dream", "list", "--json"])))[0].to_string())["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let show = ok(&dreamlog(&db, &["dream", "show", &id]));
    let (written, decided) = (show.find("lessons   ").unwrap(), show.find("decisions (every candidate").unwrap());
    assert!(written < decided, "{show}");

    // Again over the same input: nothing written, exit 0, the earlier dream named.
    let again = ok(&dreamlog(&db, &["dream", "run", "sup", "--create"]));
    assert!(again.contains("already wrote fork \"sup.dream-1\"") && again.contains("nothing written"), "{again}");
    let j = json(&ok(&dreamlog(&db, &["dream", "run", "sup", "--create", "--json"])));
    assert_eq!((j["dream"].is_null(), j["fork"].as_str()), (true, Some("sup.dream-1")), "{j}");
    assert_eq!(log_len(&db), before);
    assert_eq!(lines(&ok(&dreamlog(&db, &["dream", "list", "--json"]))).len(), 1);
    // --again dreams anyway; another config reads differently and is not refused.
    assert!(ok(&dreamlog(&db, &["dream", "run", "sup", "--create", "--again"])).contains("into sup.dream-2"));
    let other = ok(&dreamlog(&db, &["dream", "run", "sup", "--create", "--config", r#"{"min_tasks": 4}"#]));
    assert!(other.contains("into sup.dream-3"), "{other}");
    // Promoted, the store's memory changes: the next dream reads a new input.
    ok(&dreamlog(&db, &["memory", "promote", "sup.dream-1", "--into", "sup"]));
    let after = ok(&dreamlog(&db, &["dream", "run", "sup", "--since", "start"]));
    assert!(
        after.contains("into sup.dream-4") && after.contains("review:  dreamlog memory diff sup sup.dream-4"),
        "{after}"
    );
    // Through the server the same: exit 0, nothing written, the earlier dream named.
    let server = common::server::Server::start(&db, &[]);
    let remote = common::run_dreamlog(&["--remote", &server.base, "dream", "run", "sup", "--since", "start"], None);
    let text = ok(&remote);
    assert!(text.contains("already wrote fork \"sup.dream-4\""), "{text}");
    assert!(server.stop().success());
}

/// Writes Harbor trial directories as Harbor lays them out (`TRIAL/agent/trajectory.json`
/// in ATIF, `TRIAL/result.json` with the verifier's rewards): Claude Code on six tasks of
/// one dataset, four trials each; within every task the trials that read the file before
/// editing it pass and the others fail.
fn harbor_runs(root: &Path) {
    for t in 0..6 {
        let task = format!("fix-test-{t}");
        for n in 0..4 {
            let reads = n % 2 == 0;
            let trial = root.join(format!("{task}__{n}"));
            std::fs::create_dir_all(trial.join("agent")).unwrap();
            let mut calls = Vec::new();
            if reads {
                calls.push(("Read", serde_json::json!({"file_path": format!("/app/src/{t}.py")}), "def f(): ..."));
            }
            calls.push(("Edit", serde_json::json!({"file_path": format!("/app/src/{t}.py")}), "edited"));
            calls.push((
                "Bash",
                serde_json::json!({"command": "pytest -q"}),
                if reads { "1 passed" } else { "1 failed" },
            ));
            let mut steps = vec![
                serde_json::json!({"step_id": 1, "source": "user", "message": format!("Fix the failing test in src/{t}.py")}),
            ];
            for (i, (name, args, out)) in calls.iter().enumerate() {
                let id = format!("c{i}");
                steps.push(serde_json::json!({"step_id": i + 2, "source": "agent", "message": "",
                    "tool_calls": [{"tool_call_id": id, "function_name": name, "arguments": args}],
                    "observation": {"results": [{"source_call_id": id, "content": out}]}}));
            }
            let traj = serde_json::json!({"schema_version": "ATIF-v1.6", "session_id": format!("{task}-{n}"),
                "agent": {"name": "claude-code", "version": "2.0.31", "model_name": "claude-sonnet-4-5"}, "steps": steps});
            std::fs::write(trial.join("agent/trajectory.json"), traj.to_string()).unwrap();
            let result = serde_json::json!({"task_name": task, "trial_name": format!("{task}__{n}"),
                "source": "terminal-bench", "task_id": {"path": format!("/datasets/terminal-bench/{task}")},
                "agent_info": {"name": "claude-code", "version": "2.0.31"},
                "verifier_result": {"rewards": {"reward": if reads { 1.0 } else { 0.0 }}}});
            std::fs::write(trial.join("result.json"), result.to_string()).unwrap();
        }
    }
}

/// Each Harbor task was its own family, so Claude Code runs could never yield a lesson:
/// a family is the agent on the dataset (`harbor/terminal-bench/claude-code`) by default,
/// the dataset alone with `"family": "task_prefix"`, the agent alone with `"agent"`.
#[test]
fn harbor_runs_of_one_agent_on_one_dataset_are_one_family_and_yield_a_lesson() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let runs = dir.path().join("jobs");
    harbor_runs(&runs);
    ok(&dreamlog(&db, &["import", runs.to_str().unwrap()]));
    let rows = lines(&ok(&dreamlog(&db, &["sessions", "list", "--json"])));
    assert_eq!(rows.len(), 24);
    assert!(rows.iter().all(|r| r["task"].as_str().unwrap().starts_with("terminal-bench/fix-test-")), "{rows:?}");
    let run = json(&ok(&dreamlog(&db, &["dream", "run", "cc", "--create", "--json"])));
    let path = "/memories/lessons/harbor/terminal-bench/claude-code.md";
    let text = ok(&dreamlog(&db, &["memory", "view", "cc.dream-1", path]));
    assert!(text.contains("[call:") && text.contains("trials that called `Read` passed 12 of 12"), "{text}");
    assert!(text.contains("In `harbor/terminal-bench/claude-code` tasks"), "{text}");
    let show = json(&ok(&dreamlog(&db, &["dream", "show", run["id"].as_str().unwrap(), "--json"])));
    let fams = show["meta"]["summary"]["decisions"].as_array().unwrap();
    assert_eq!(fams.len(), 1, "one family: {fams:?}");
    assert_eq!((fams[0]["trials"].as_u64(), fams[0]["tasks"].as_u64()), (Some(24), Some(6)));
    // Configurable: the dataset alone, or the agent alone.
    for (family, file) in [("task_prefix", "terminal-bench.md"), ("agent", "claude-code.md")] {
        let cfg = format!(r#"{{"family": "{family}"}}"#);
        let r = json(&ok(&dreamlog(&db, &["dream", "run", "cc", "--create", "--config", &cfg, "--json"])));
        let out = r["output_store"].as_str().unwrap();
        let text = ok(&dreamlog(&db, &["memory", "view", out, &format!("/memories/lessons/{file}")]));
        assert!(text.contains("`Read`"), "{family}: {text}");
    }
}

/// Drift and the lesson ledger need to know which memory sessions ran with; runs imported
/// without `--store` had no way to say it. `sessions link` ties them to a store as it
/// stood at a point (here: half before a promoted dream, half after), from the embedded
/// CLI and through the server.
#[test]
fn sessions_link_ties_imported_runs_to_the_memory_they_ran_with() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&dreamlog(&db, &["import", &tau_bench()]));
    let drift = dreamlog(&db, &["drift", "support"]);
    assert!(!drift.status.success(), "no store yet");
    let ids: Vec<String> = lines(&ok(&dreamlog(&db, &["sessions", "list", "--json"])))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 100);
    ok(&dreamlog(&db, &["dream", "run", "support", "--create"]));
    let before_promote = log_len(&db) - 1;
    ok(&dreamlog(&db, &["memory", "promote", "support.dream-1", "--into", "support"]));
    // The point of the promote's last write: sessions linked there ran with it.
    let promoted_at = (log_len(&db) - 1).to_string();
    // Bad input names the problem and writes nothing.
    let len = log_len(&db);
    let bad = dreamlog(&db, &["sessions", "link", "no-such-session", "--store", "support"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no session"));
    let bad = dreamlog(&db, &["sessions", "link", &ids[0], "--store", "nostore"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no memory store \"nostore\""));
    assert_eq!(log_len(&db), len, "nothing written");

    let mut first: Vec<&str> = vec!["sessions", "link"];
    first.extend(ids[..50].iter().map(String::as_str));
    let at = before_promote.to_string();
    first.extend(["--store", "support", "--at", &at, "--json"]);
    let linked = json(&ok(&dreamlog(&db, &first)));
    assert_eq!(linked["linked"].as_array().unwrap().len(), 50);
    // The other half through the server, as a client would.
    let server = common::server::Server::start(&db, &[]);
    let mut second: Vec<&str> = vec!["--remote", &server.base, "sessions", "link"];
    second.extend(ids[50..].iter().map(String::as_str));
    second.extend(["--store", "support", "--at", &promoted_at, "--json"]);
    let linked2 = json(&ok(&common::run_dreamlog(&second, None)));
    assert_eq!(linked2["linked"].as_array().unwrap().len(), 50);
    assert_ne!(linked["memory_state"], linked2["memory_state"], "before and after the lessons");
    assert!(server.stop().success());

    let report = json(&ok(&dreamlog(&db, &["drift", "support", "--json"])));
    let states = report["states"].as_array().unwrap();
    assert_eq!(states.len(), 2, "{report}");
    assert_eq!(
        states.iter().map(|s| s["grades"]["sessions"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![50, 50],
        "{report}"
    );
    assert_eq!(report["mismatched"], 0, "{report}");
    let rows = lines(&ok(&dreamlog(&db, &["memory", "lessons", "support", "--json"])));
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["before"]["sessions"] == 50 && r["after"]["sessions"] == 50), "{rows:?}");
}
