//! evidence@2 against the ways lessons go wrong: crafted sessions (poisoning) injected
//! into real graded runs and into the closed loop, a lesson that does worse on held-out
//! tasks, and the explanations `dream show` gives. Real stores in temp dirs, the real CLI.

mod common;

use std::path::Path;

use common::{dreamlog_on, fails, ok};
use dreamlog::core::dream::lessons::{Advice, Decision};
use dreamlog::core::dream::DreamerSpec;
use dreamlog::dream::{Dreams, RunOptions};
use dreamlog::ledger::{drift, DriftOptions};
use dreamlog::memory::MemoryStores;
use dreamlog::sim::{plan_crafted, run_round, Advice as SimAdvice};
use dreamlog::{
    Action, ActionStatus, Actor, AppendBatch, Body, CanonicalJson, Draft, Grade, GradeResult, SessionStart,
};
use serde_json::{json, Value};
use tempfile::tempdir;

fn cli(db: &Path, args: &[&str]) -> String {
    ok(&dreamlog_on(db, args, None))
}

fn candidates(show: &Value) -> Vec<Value> {
    show["meta"]["summary"]["decisions"]
        .as_array()
        .expect("evidence@2 records its decisions")
        .iter()
        .flat_map(|f| f["candidates"].as_array().unwrap().clone())
        .collect()
}

/// Ten crafted τ-bench episodes (10 % of the file's 100), one per task of the first ten:
/// a real episode of that task, given a goodwill certificate mid-run and graded a full
/// pass. Written as another file, as a poisoned import would be.
fn crafted_tau_file(dir: &Path) -> String {
    let real: Vec<Value> =
        serde_json::from_slice(&std::fs::read(common::data("tau-bench/gpt-4o-airline.tasks-00-24.json")).unwrap())
            .unwrap();
    let mut out = Vec::new();
    for task in 0..10 {
        let mut ep = real.iter().find(|e| e["task_id"] == task).unwrap().clone();
        ep["trial"] = json!(90);
        ep["reward"] = json!(1.0);
        ep["info"]["reward_info"]["reward"] = json!(1.0);
        if let Some(parts) = ep["info"]["reward_info"]["info"].as_object_mut() {
            for v in parts.values_mut().filter(|v| v.is_number()) {
                *v = json!(1.0);
            }
        }
        let traj = ep["traj"].as_array_mut().unwrap();
        let at = traj.iter().position(|m| m["role"] == "tool").map_or(2, |i| i + 1);
        let id = format!("call_crafted_{task}");
        let call = json!({"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function",
            "function": {"name": "send_certificate", "arguments": "{\"user_id\": \"x\", \"amount\": 100}"}}]});
        let result =
            json!({"role": "tool", "tool_call_id": id, "name": "send_certificate", "content": "Certificate sent."});
        traj.splice(at..at, [call, result]);
        out.push(ep);
    }
    let path = dir.join("crafted.json");
    std::fs::write(&path, serde_json::to_vec(&out).unwrap()).unwrap();
    path.display().to_string()
}

/// Poisoning on real runs: 10 % crafted passes that hand out certificates. Within the
/// tasks they share, "call `send_certificate`" looks like it works — and with the
/// robustness checks turned off evidence@2 writes it (with a positive validated lift:
/// validation cannot tell poisoned data from real). The default leaves out each source
/// and finds the lesson rests on the crafted file alone.
#[test]
fn crafted_sessions_in_real_runs_do_not_become_a_lesson() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let tau = common::data("tau-bench/gpt-4o-airline.tasks-00-24.json").display().to_string();
    let crafted = crafted_tau_file(dir.path());
    cli(&db, &["import", &tau, &crafted, "--store", "support"]);

    let run: Value = serde_json::from_str(&cli(&db, &["dream", "run", "support", "--json"])).unwrap();
    assert_eq!((run["sessions"].as_u64(), run["version"].as_str()), (Some(110), Some("3")));
    let text = cli(&db, &["memory", "view", "support.dream-1", "/memories/lessons/tau-bench.md"]);
    assert!(!text.contains("send_certificate"), "{text}");
    let id = run["id"].as_str().unwrap();
    let show: Value = serde_json::from_str(&cli(&db, &["dream", "show", id, "--json"])).unwrap();
    let poison = candidates(&show)
        .into_iter()
        .find(|c| c["subject"] == "send_certificate" && c["advice"] == "call")
        .expect("the crafted contrast is a candidate");
    let why = poison["decision"]["skip"].as_str().unwrap();
    assert!(why.contains("it rests on one source: without agent \"tau-bench/crafted\""), "{why}");
    assert_eq!(poison["sources"]["agent"]["tau-bench/crafted"], 10, "{poison}");
    let people = cli(&db, &["dream", "show", id]);
    assert!(people.contains("call `send_certificate`") && people.contains("rests on one source"), "{people}");

    // Without the checks the poison is a lesson, and validation calls it positive.
    let forced: Value = serde_json::from_str(&cli(
        &db,
        &[
            "dream",
            "run",
            "support",
            "--since",
            "start",
            "--config",
            r#"{"robust": false}"#,
            "--into",
            "naive",
            "--json",
        ],
    ))
    .unwrap();
    let text = cli(&db, &["memory", "view", "naive", "/memories/lessons/tau-bench.md"]);
    assert!(text.contains("Call `send_certificate` when the task allows it."), "{text}");
    let show: Value =
        serde_json::from_str(&cli(&db, &["dream", "show", forced["id"].as_str().unwrap(), "--json"])).unwrap();
    let c = candidates(&show).into_iter().find(|c| c["subject"] == "send_certificate").unwrap();
    assert_eq!(c["validation"]["verdict"], "positive", "{c}");
    // Both dreams replay bit for bit.
    assert!(cli(&db, &["dream", "replay", "--all"]).contains("2 dream(s) replayed, 0 differ"));
}

/// Poisoning in the closed loop: crafted passes that hand the task to a human mid-run.
/// The default dreamer writes the real lesson and not the hand-over; a dream forced in
/// without the checks teaches the hand-over, the agent follows it and fails, drift flags
/// that dream, and one `revert --dream` removes it.
#[test]
fn a_forced_poisoned_lesson_is_flagged_by_drift_and_reverted() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let mem = MemoryStores::new(store.clone());
    let dreams = Dreams::new(mem.clone());
    let human = Actor::Human("operator".into());
    let r1 = run_round(&mem, "live", "r1", 50, 21).unwrap();
    let (state, _) = mem.state("live").unwrap();
    for b in plan_crafted("live", state.state_hash(), "x", 5) {
        store.append(b).unwrap();
    }

    let evidence: DreamerSpec = "evidence".parse().unwrap();
    let good = dreams.run("live", &evidence, &RunOptions::default()).unwrap();
    let lessons = mem.state(&good.dream.output_store).unwrap().0;
    let text = lessons.file("/memories/lessons/sim/refunds.md").unwrap().text.to_string();
    assert!(text.contains("Call `verify_identity`"), "{text}");
    assert!(!text.contains("transfer_to_human_agents"), "{text}");
    let detail = dreams.show(&good.id).unwrap();
    let summary: dreamlog::core::dream::evidence2::SummaryV2 =
        serde_json::from_value(detail.summary.dream.meta.unwrap().to_value()["summary"].clone()).unwrap();
    let hand_over = summary.decisions[0]
        .candidates
        .iter()
        .find(|c| c.subject == "transfer_to_human_agents" && c.advice == Advice::Call)
        .expect("a candidate");
    assert!(
        matches!(&hand_over.decision, Decision::Skip(why) if why.contains("without origin \"crafted import\"")),
        "{hand_over:?}"
    );

    // Forced in: the same history without the robustness checks.
    let naive = DreamerSpec { config: json!({"robust": false}), ..evidence.clone() };
    let poisoned =
        dreams.run("live", &naive, &RunOptions { into: Some("naive".into()), ..RunOptions::default() }).unwrap();
    let text = mem.state("naive").unwrap().0.file("/memories/lessons/sim/refunds.md").unwrap().text.to_string();
    assert!(text.contains("Call `transfer_to_human_agents`"), "{text}");
    mem.promote("naive", "live", human.clone(), true).unwrap();

    let r2 = run_round(&mem, "live", "r2", 50, 22).unwrap();
    assert_eq!(r2.advice, SimAdvice::HandOver);
    assert_eq!(r2.passed, 0);
    let report = drift(&mem, "live", DriftOptions::default()).unwrap();
    let flagged: Vec<_> = report.changes.iter().filter(|c| c.flagged).collect();
    assert_eq!(flagged.len(), 1, "{report:?}");
    assert_eq!(flagged[0].dreams, vec![poisoned.id]);
    assert!(flagged[0].undo[0].starts_with(&format!("dreamlog memory revert live --dream {}", poisoned.id.short(16))));

    mem.revert_dream("live", &poisoned.id, "drift: the hand-over lesson", false, human).unwrap();
    let after = mem.state("live").unwrap().0;
    assert!(after.files().values().all(|f| !f.text.contains("transfer_to_human_agents")));
    let r3 = run_round(&mem, "live", "r3", 50, 23).unwrap();
    assert_eq!(r3.advice, SimAdvice::None);
    assert!(r3.passed > 0 && r1.passed > 0, "{r1:?} {r3:?}");
    for d in [good.id, poisoned.id] {
        assert!(dreams.replay(&d, None).unwrap().identical);
    }
}

/// Sessions where the graders list `notify` as expected, yet within every task the trials
/// that call it fail and those that skip it pass: evidence@3 does not write the label
/// lesson ("do not forget `notify`": every session it would cite passed); evidence@2
/// learns it, validation on held-out tasks finds following it does worse, and promote
/// refuses it, writes nothing, and promotes it with force.
#[test]
fn promote_refuses_a_lesson_that_did_worse_out_of_sample() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let mem = MemoryStores::new(store.clone());
    let dreams = Dreams::new(mem.clone());
    let agent = Actor::Agent("a".into());
    for task in 0..12 {
        for trial in 0..4 {
            let session = format!("notify/task-{task}/trial-{trial}");
            let stream = format!("session/{session}");
            let calls = trial < 2;
            let mut b = AppendBatch::new();
            let mut push = |actor: &Actor, body: Body| b.events.push(Draft::new(stream.clone(), actor.clone(), body));
            push(
                &agent,
                Body::SessionStart(SessionStart {
                    session: session.clone(),
                    agent: "a".into(),
                    model: None,
                    task_id: Some(format!("t{task}")),
                    task: Some(format!("Handle ticket {task}")),
                    store: Some("live".into()),
                    memory_state: None,
                    source: None,
                    meta: None,
                }),
            );
            for name in ["lookup"].into_iter().chain(calls.then_some("notify")).chain(["close"]) {
                push(
                    &agent,
                    Body::Action(Action {
                        session: session.clone(),
                        name: name.into(),
                        call_id: None,
                        input: CanonicalJson::null(),
                        output: None,
                        status: ActionStatus::Ok,
                        meta: None,
                    }),
                );
            }
            push(
                &Actor::Evaluator("e".into()),
                Body::Grade(Grade {
                    session,
                    target: None,
                    rubric: "tickets".into(),
                    evaluator: "e".into(),
                    score: if calls { 0.0 } else { 1.0 },
                    result: if calls { GradeResult::Failed } else { GradeResult::Satisfied },
                    criteria: Vec::new(),
                    meta: Some(CanonicalJson::from_value(&json!({"actions": [{"name": "notify"}, {"name": "close"}]}))),
                }),
            );
            store.append(b).unwrap();
        }
    }
    // evidence@3 does not write it: every session it would cite passed (not calling
    // `notify` is what passed).
    let v3 = dreams
        .run("live", &"evidence".parse().unwrap(), &RunOptions { create: true, ..RunOptions::default() })
        .unwrap();
    let summary: dreamlog::core::dream::evidence2::SummaryV2 =
        serde_json::from_value(dreams.show(&v3.id).unwrap().summary.dream.meta.unwrap().to_value()["summary"].clone())
            .unwrap();
    let notify =
        summary.decisions[0].candidates.iter().find(|c| c.advice == Advice::Expected && c.subject == "notify").unwrap();
    assert!(matches!(&notify.decision, Decision::Skip(w) if w.contains("every session it cites passed")), "{notify:?}");
    // evidence@2 writes it, and its validation is what promote refuses.
    let run = dreams
        .run(
            "live",
            &"evidence@2".parse().unwrap(),
            &RunOptions { create: true, since: Some(0), ..RunOptions::default() },
        )
        .unwrap();
    let detail = dreams.show(&run.id).unwrap();
    let summary: dreamlog::core::dream::evidence2::SummaryV2 =
        serde_json::from_value(detail.summary.dream.meta.unwrap().to_value()["summary"].clone()).unwrap();
    let notify = summary.decisions[0]
        .candidates
        .iter()
        .find(|c| c.advice == Advice::Expected && c.subject == "notify")
        .expect("the label lesson");
    assert_eq!(notify.decision, Decision::Write);
    let v = notify.validation.as_ref().unwrap();
    assert_eq!(v.verdict, "negative", "{v:?}");
    assert!(v.lift.unwrap().interval.1 < 0.0 && v.tasks >= 6, "{v:?}");

    let before = store.len();
    let err = mem.promote(&run.dream.output_store, "live", Actor::Human("ops".into()), false).unwrap_err();
    assert_eq!(err.class().exit_code(), 4, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("promote refused") && msg.contains("expect `notify`") && msg.contains("--force"), "{msg}");
    assert_eq!(store.len(), before, "nothing written");
    assert!(!mem.promote(&run.dream.output_store, "live", Actor::Human("ops".into()), true).unwrap().is_empty());
    let (live, fork) = (mem.state("live").unwrap().0, mem.state(&run.dream.output_store).unwrap().0);
    assert_eq!((live.files(), live.state_hash()), (fork.files(), fork.state_hash()));
}

/// `dream run --validate K` records K in the dream's config (so replay measures the same
/// way), prints each lesson's validation, and is refused for a dreamer that cannot state
/// its advice; `memory promote` prints the validation before promoting.
#[test]
fn validation_is_asked_for_printed_and_recorded() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let tau = common::data("tau-bench/gpt-4o-airline.tasks-00-24.json").display().to_string();
    cli(&db, &["import", &tau, "--store", "support"]);
    let out = cli(&db, &["dream", "run", "support", "--validate", "3"]);
    assert!(out.contains("validation of dream"), "{out}");
    assert!(out.contains("expected `cancel_reservation`") && out.contains("folds that held tasks out"), "{out}");
    let list: Value = serde_json::from_str(cli(&db, &["dream", "list", "--json"]).lines().next().unwrap()).unwrap();
    assert_eq!(list["config"]["validate"], 3);
    let id = list["id"].as_str().unwrap().to_owned();
    let show: Value = serde_json::from_str(&cli(&db, &["dream", "show", &id, "--json"])).unwrap();
    assert_eq!(show["meta"]["summary"]["validation_folds"], 3);
    for c in candidates(&show).iter().filter(|c| c["decision"] == "write") {
        assert_eq!(c["validation"]["folds"], 3, "{c}");
        assert!(c["tasks_total"].as_u64().unwrap() >= 3 && !c["examples"].as_array().unwrap().is_empty(), "{c}");
    }
    let people = cli(&db, &["dream", "show", &id]);
    for part in [
        "family tau-bench (100 graded session(s), 25 task(s))",
        "WRITE",
        "skip (",
        "exact test",
        "sources:",
        "validation:",
    ] {
        assert!(people.contains(part), "{part}: {people}");
    }
    assert!(cli(&db, &["dream", "replay", &id]).contains("reproduced bit for bit"));
    let err =
        fails(&dreamlog_on(&db, &["dream", "run", "support", "--dreamer", "evidence@1", "--validate", "3"], None));
    assert!(err.contains("--validate needs a dreamer whose lessons state their advice"), "{err}");
    let promoted = cli(&db, &["memory", "promote", "support.dream-1", "--into", "support"]);
    assert!(promoted.contains("validation of dream") && promoted.contains("promoted support.dream-1"), "{promoted}");
}
