//! Drift per task family: a change that hurts one family while another improves leaves
//! the mean of all sessions where it was; only the family's own segments show it.

mod common;

use dreamlog::core::{Grade, GradeResult, SessionStart};
use dreamlog::ledger::{drift, DriftOptions};
use dreamlog::memory::{ApplyOptions, MemoryStores};
use dreamlog::{Actor, AppendBatch, Body, Draft, MemoryCommand};

fn graded_session(mem: &MemoryStores, id: &str, family: &str, passed: bool) {
    let (state, _) = mem.state("s").unwrap();
    let stream = format!("session/{id}");
    let start = Body::SessionStart(SessionStart {
        session: id.into(),
        agent: "bot".into(),
        model: None,
        task_id: Some(format!("{family}/1")),
        task: None,
        store: Some("s".into()),
        memory_state: Some(state.state_hash()),
        source: None,
        meta: None,
    });
    let grade = Body::Grade(Grade {
        session: id.into(),
        target: None,
        rubric: family.into(),
        evaluator: "judge".into(),
        score: if passed { 1.0 } else { 0.0 },
        result: if passed { GradeResult::Satisfied } else { GradeResult::Failed },
        criteria: Vec::new(),
        meta: None,
    });
    let batch = AppendBatch::new()
        .push(Draft::new(stream.clone(), Actor::Agent("bot".into()), start))
        .push(Draft::new(stream, Actor::Evaluator("judge".into()), grade));
    mem.store().append(batch).unwrap();
}

#[test]
fn a_change_that_hurts_one_family_is_flagged_though_the_mean_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mem = MemoryStores::new(common::open(dir.path()));
    let create = MemoryCommand::Create { path: "/memories/a.md".into(), file_text: "one\n".into() };
    mem.apply("s", create, ApplyOptions::by(Actor::Human("ada".into()))).unwrap();
    for i in 0..8 {
        graded_session(&mem, &format!("a-{i}"), "airline", true);
        graded_session(&mem, &format!("r-{i}"), "retail", false);
    }
    let edit =
        MemoryCommand::StrReplace { path: "/memories/a.md".into(), old_str: "one".into(), new_str: "two".into() };
    mem.apply("s", edit, ApplyOptions::by(Actor::Human("ada".into()))).unwrap();
    for i in 8..16 {
        graded_session(&mem, &format!("a-{i}"), "airline", false);
        graded_session(&mem, &format!("r-{i}"), "retail", true);
    }
    let report = drift(&mem, "s", DriftOptions::default()).unwrap();
    assert_eq!(report.sessions, 32);
    let change = report.changes.last().expect("the edit is a change");
    assert_eq!(change.delta, Some(0.0), "the mean of all sessions did not move");
    let airline = change.families.iter().find(|f| f.family == "airline").expect("airline on both sides");
    let retail = change.families.iter().find(|f| f.family == "retail").expect("retail on both sides");
    assert_eq!((airline.delta, retail.delta), (Some(-1.0), Some(1.0)));
    assert!(airline.flagged && !retail.flagged, "{airline:?} {retail:?}");
    assert!(change.flagged && report.flagged == 1, "the change is flagged for the family it hurt");
    assert!(change.undo.iter().any(|u| u.contains("memory revert")), "{:?}", change.undo);
}

/// With one task on a side, its sessions are all the evidence there is: the interval
/// resamples them (a comparison within that task), so a small fall is not flagged as if
/// it were certain — resampling one task would give every draw the same mean.
#[test]
fn a_small_fall_within_one_task_is_not_taken_for_certain() {
    let dir = tempfile::tempdir().unwrap();
    let mem = MemoryStores::new(common::open(dir.path()));
    let create = MemoryCommand::Create { path: "/memories/a.md".into(), file_text: "one\n".into() };
    mem.apply("s", create, ApplyOptions::by(Actor::Human("ada".into()))).unwrap();
    for i in 0..10 {
        graded_session(&mem, &format!("a-{i}"), "airline", i % 2 == 0);
    }
    let edit =
        MemoryCommand::StrReplace { path: "/memories/a.md".into(), old_str: "one".into(), new_str: "two".into() };
    mem.apply("s", edit, ApplyOptions::by(Actor::Human("ada".into()))).unwrap();
    for i in 10..20 {
        graded_session(&mem, &format!("a-{i}"), "airline", i % 5 < 2);
    }
    let report = drift(&mem, "s", DriftOptions::default()).unwrap();
    let change = report.changes.last().expect("the edit is a change");
    assert_eq!(change.before.mean_score, Some(0.5));
    assert_eq!(change.after.mean_score, Some(0.4));
    let (lo, hi) = change.interval.expect("sessions on both sides");
    assert!(lo < -0.1 && hi > 0.0, "the interval spans no change: ({lo}, {hi})");
    assert!(!change.flagged && report.flagged == 0);
}
