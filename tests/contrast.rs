//! Within-task contrasts on real graded runs (the vendored τ-bench and τ²-bench files).
//! evidence@1 compared sessions across tasks and wrote, on the τ-bench airline file,
//! "check before calling `book_reservation`" and "call `transfer_to_human_agents`". Within
//! tasks neither holds: no tool's effect survives the exact stratified test with
//! Benjamini–Hochberg correction, the graders expected `book_reservation` in most sessions
//! that called it, and every hand-over ended its session.

mod common;

use dreamlog::core::dream::contrast::{tool_contrasts, ToolContrast};
use dreamlog::dream::Dreams;
use dreamlog::memory::MemoryStores;
use dreamlog::{import, service::Local};

/// The graded sessions of a vendored file, as evidence@2 reads them (per-task trials).
fn sessions(rel: &str) -> Vec<dreamlog::core::dream::Trial> {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let path = common::data(rel);
    let bytes = std::fs::read(&path).unwrap();
    let format = import::detect(&bytes).unwrap();
    dreamlog::service::import_sessions(
        &Local::over(&store),
        import::parse(format, path.to_str().unwrap(), &bytes).unwrap(),
        None,
        |_| {},
    )
    .unwrap();
    let dreams = Dreams::new(MemoryStores::new(store.clone()));
    let trials = dreams.collect(0, store.len(), true).unwrap().trials;
    assert!(!trials.is_empty());
    trials
}

fn contrasts(rel: &str) -> Vec<ToolContrast> {
    let all = sessions(rel);
    tool_contrasts(&all.iter().collect::<Vec<_>>())
}

fn tool<'a>(all: &'a [ToolContrast], name: &str) -> &'a ToolContrast {
    all.iter().find(|c| c.tool == name).unwrap_or_else(|| panic!("{name} was called"))
}

#[test]
fn on_tau_bench_no_tool_effect_holds_within_tasks() {
    let all = contrasts("tau-bench/gpt-4o-airline.tasks-00-24.json");
    assert!(all.len() >= 10, "{} tools", all.len());
    for c in &all {
        // 25 tasks of 4 trials: a stratum is a task with trials on both sides.
        assert!(c.test.informative <= 25 && c.strata.len() == c.test.informative, "{c:?}");
        assert!(c.q > 0.1, "{} would be a lesson: {c:?}", c.tool);
    }
    // The "avoid" lesson evidence@1 wrote: the graders expected the call.
    let book = tool(&all, "book_reservation");
    assert!(book.mostly_expected(), "{book:?}");
    assert!(book.test.informative <= 2, "hardly any task has trials with and without it: {book:?}");
    // The "call it" lesson: a hand-over ends the session and was hardly ever expected.
    let handover = tool(&all, "transfer_to_human_agents");
    assert_eq!(handover.terminal_when_called, handover.called, "{handover:?}");
    assert!(10 * handover.expected_when_called < handover.called, "{handover:?}");
}

#[test]
fn with_one_trial_per_task_there_is_no_contrast_at_all() {
    for rel in [
        "tau2-bench/gpt-4.1_airline_default_gpt-4.1_1trials.json",
        "tau2-bench/gpt-4.1_retail_defautl_gpt-4.1_1trials.json",
        "tau2-bench/gpt-4.1_telecom_default_gpt-4.1_1trials.json",
    ] {
        let all = contrasts(rel);
        assert!(!all.is_empty(), "{rel}");
        for c in &all {
            assert_eq!((c.test.informative, c.q), (0, 1.0), "{rel}: {c:?}");
        }
        // What remains are the graders' labels: τ²-bench records expected calls as checks.
        assert!(all.iter().any(|c| c.expected_when_called > 0), "{rel}: the graders' expected calls are read");
    }
}

fn candidates(rel: &str) -> Vec<dreamlog::core::dream::lessons::Candidate> {
    let all = sessions(rel);
    let family = &all[0].rubric;
    dreamlog::core::dream::lessons::candidates(
        family,
        &all.iter().collect::<Vec<_>>(),
        &Default::default(),
        &Default::default(),
        &Default::default(),
    )
}

/// The decisions evidence@2 will render: on τ-bench no tool lesson survives (each skip
/// says why), the graders' labels give the lessons, each in at least three tasks; on the
/// τ²-bench files (one trial per task) only labels can teach. No written lesson advises
/// against a call.
#[test]
fn lesson_decisions_on_the_real_runs_are_explained() {
    use dreamlog::core::dream::lessons::{Advice, Decision};
    let tau = candidates("tau-bench/gpt-4o-airline.tasks-00-24.json");
    for c in &tau {
        if let Decision::Skip(why) = &c.decision {
            assert!(!why.is_empty(), "{c:?}");
        }
        if matches!(c.advice, Advice::Call | Advice::Avoid) {
            assert!(c.decision != Decision::Write, "no tool effect holds within tasks: {c:?}");
            assert!(c.test.is_some(), "{c:?}");
        }
    }
    let written: Vec<_> = tau.iter().filter(|c| c.decision == Decision::Write).collect();
    assert!(written.iter().all(|c| c.tasks_total >= 3 && 4 * c.sessions >= c.of), "{written:?}");
    let names: Vec<(Advice, &str)> = written.iter().map(|c| (c.advice, c.subject.as_str())).collect();
    assert!(names.contains(&(Advice::Expected, "cancel_reservation")), "{names:?}");
    assert!(names.contains(&(Advice::Check, "r_actions")), "{names:?}");
    let book = tau.iter().find(|c| c.subject == "book_reservation" && c.advice == Advice::Avoid).expect("tested");
    assert!(matches!(&book.decision, Decision::Skip(why) if why.contains("task")), "{book:?}");
    for rel in [
        "tau2-bench/gpt-4.1_airline_default_gpt-4.1_1trials.json",
        "tau2-bench/gpt-4.1_retail_defautl_gpt-4.1_1trials.json",
        "tau2-bench/gpt-4.1_telecom_default_gpt-4.1_1trials.json",
    ] {
        let all = candidates(rel);
        for c in all.iter().filter(|c| matches!(c.advice, Advice::Call | Advice::Avoid)) {
            assert_eq!(c.decision, Decision::Skip("no task has trials both with and without it".into()), "{rel}");
        }
        assert!(all.iter().any(|c| c.advice == Advice::Expected), "{rel}: expected calls are labels");
        assert!(
            all.iter()
                .filter(|c| c.decision == Decision::Write)
                .all(|c| matches!(c.advice, Advice::Expected | Advice::Check)),
            "{rel}"
        );
    }
}
