//! The closed loop, end to end on a real store: a simulated agent whose success depends
//! on its memory runs sessions; the evidence dreamer turns their grades into a lesson;
//! the agent does better; a bad lesson makes it worse; drift flags exactly that dream;
//! `memory revert --dream` restores the pass rate. Every dream replays bit for bit.

mod common;

use dreamlog::core::dream::DreamerSpec;
use dreamlog::dream::{Dreams, RunOptions};
use dreamlog::ledger::{drift, lessons, DriftOptions};
use dreamlog::memory::MemoryStores;
use dreamlog::sim::{run_round, Advice};
use dreamlog::{Actor, Body, Kind};
use serde_json::json;
use tempfile::tempdir;

#[test]
fn dream_improves_the_agent_drift_flags_a_bad_lesson_and_revert_restores_it() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let mem = MemoryStores::new(store.clone());
    let dreams = Dreams::new(mem.clone());
    let human = Actor::Human("operator".into());

    // Round 1: no memory. The agent verifies identity about 30 % of the time.
    let r1 = run_round(&mem, "live", "r1", 60, 1).unwrap();
    assert_eq!(r1.advice, Advice::None);
    assert!(r1.pass_rate() < 0.5, "{r1:?}");

    // Dream into a fork, review it, promote it.
    let evidence: DreamerSpec = "evidence".parse().unwrap();
    let good = dreams.run("live", &evidence, &RunOptions::default()).unwrap();
    assert_eq!(good.dream.output_store, "live.dream-1");
    assert_eq!(good.sessions, 60);
    assert!(good.commands >= 2, "a file and at least one lesson: {good:?}");
    assert!(mem.state("live").unwrap().0.files().is_empty(), "the input store is untouched");
    let diff = mem.diff("live", u64::MAX, "live.dream-1", u64::MAX).unwrap();
    assert_eq!(diff.added, vec!["/memories/lessons/sim/refunds.md".to_string()]);
    let lesson_file =
        mem.state("live.dream-1").unwrap().0.file("/memories/lessons/sim/refunds.md").unwrap().text.to_string();
    assert!(lesson_file.contains("Call `verify_identity`"), "{lesson_file}");
    assert!(
        lesson_file.contains("that expect `verify_identity`, the call was missing or failed its check in"),
        "{lesson_file}"
    );
    // Validated out of sample: trials of held-out tasks that verified passed more.
    assert!(lesson_file.contains("Held-out tasks: followers passed +100 points more"), "{lesson_file}");
    mem.promote("live.dream-1", "live", human.clone(), false).unwrap();
    // The same tree (live is new, so it follows memory rules 2; the fork of a store
    // that did not exist yet follows rules 1).
    let (live, fork) = (mem.state("live").unwrap().0, mem.state("live.dream-1").unwrap().0);
    assert_eq!((live.files(), live.state_hash()), (fork.files(), fork.state_hash()));

    // Round 2: the agent follows the lesson.
    let r2 = run_round(&mem, "live", "r2", 60, 2).unwrap();
    assert_eq!(r2.advice, Advice::Call);
    assert!(r2.pass_rate() > 0.85, "{r2:?}");

    // The ledger: each lesson names its dream, its evidence and the grades around it.
    let rows = lessons(&mem, "live", store.len()).unwrap();
    let call = rows.iter().find(|r| r.text.contains("Call `verify_identity`")).expect("the tool lesson is listed");
    assert_eq!(call.dream, Some(good.id), "promoted lines keep their dream");
    assert!(!call.evidence.is_empty() && call.evidence_sessions.iter().all(|s| s.starts_with("sim/r1/")));
    assert_eq!(call.before.sessions, 60);
    assert_eq!(call.after.sessions, 60);
    assert!(call.after.pass_rate.unwrap() > call.before.pass_rate.unwrap());

    // A bad lesson from another dreamer, in place.
    let bad_spec = DreamerSpec {
        name: "exec".into(),
        version: Some("bad-1".into()),
        config: json!({"command": ["sh", "-c", "cat >/dev/null; printf '%s' '{\"commands\":[{\"input\":{\"command\":\"create\",\"path\":\"/memories/tips.md\",\"file_text\":\"- Avoid `verify_identity`: customers find it slow.\\n\"},\"causes\":[]}]}'"]}),
    };
    let bad = dreams.run("live", &bad_spec, &RunOptions { in_place: true, ..RunOptions::default() }).unwrap();
    assert_eq!(bad.dream.output_store, "live");

    // Round 3: the agent follows the bad lesson and fails.
    let r3 = run_round(&mem, "live", "r3", 60, 3).unwrap();
    assert_eq!(r3.advice, Advice::Avoid);
    assert_eq!(r3.passed, 0);

    // Drift: the good dream raised grades, the bad one dropped them beyond the interval.
    let report = drift(&mem, "live", DriftOptions::default()).unwrap();
    assert_eq!(report.sessions, 180);
    assert_eq!(report.mismatched, 0, "every session recorded the state it ran with");
    assert_eq!(report.states.len(), 3);
    assert_eq!(report.changes.len(), 2);
    assert_eq!(report.flagged, 1);
    let (up, down) = (&report.changes[0], &report.changes[1]);
    assert_eq!(up.dreams, vec![good.id]);
    assert!(!up.flagged && up.delta.unwrap() > 0.4);
    assert_eq!(down.dreams, vec![bad.id]);
    assert!(down.flagged && down.interval.unwrap().1 < 0.0);
    assert_eq!(down.undo.len(), 1);
    assert!(down.undo[0].starts_with("dreamlog memory revert live --dream "), "{}", down.undo[0]);

    // Revert the flagged dream: memory is back to the good lesson, the agent recovers.
    mem.revert_dream("live", &bad.id, "drift: grades fell", false, human.clone()).unwrap();
    let (live, first) = (mem.state("live").unwrap().0, mem.state("live.dream-1").unwrap().0);
    assert_eq!((live.files(), live.state_hash()), (first.files(), first.state_hash()));
    let r4 = run_round(&mem, "live", "r4", 60, 4).unwrap();
    assert_eq!(r4.advice, Advice::Call);
    assert!(r4.pass_rate() > 0.85, "{r4:?}");
    let after = drift(&mem, "live", DriftOptions::default()).unwrap();
    assert_eq!(after.changes.len(), 3);
    assert!(!after.changes[2].flagged && after.changes[2].delta.unwrap() > 0.5, "the revert raised grades again");

    // Every dream replays bit for bit, offline; history never shrank.
    for d in [good.id, bad.id] {
        let r = dreams.replay(&d, None).unwrap();
        assert!(r.identical && r.same_dreamer, "{r:?}");
    }
    assert!(store.read_kind(Kind::Revert, 0, 10).unwrap().iter().any(|e| matches!(&e.event.body, Body::Revert(_))));
    assert!(store.verify(|_| ()).unwrap().is_clean());
}

#[test]
fn a_second_dream_reads_new_sessions_and_rejudges_the_whole_history() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let mem = MemoryStores::new(store.clone());
    let dreams = Dreams::new(mem.clone());
    let evidence: DreamerSpec = "evidence".parse().unwrap();
    let in_place = RunOptions { in_place: true, ..RunOptions::default() };
    run_round(&mem, "live", "a", 40, 11).unwrap();
    let first = dreams.run("live", &evidence, &in_place).unwrap();
    assert_eq!(first.dream.from_position, 0);
    run_round(&mem, "live", "b", 40, 12).unwrap();
    let second = dreams.run("live", &evidence, &in_place).unwrap();
    assert_eq!(second.dream.from_position, first.dream.to_position + 1, "since the last dream by default");
    assert_eq!(second.sessions, 40);
    // evidence@2 reads the whole graded history (input format 2): the tool lesson's counts
    // cover all 80 sessions, in one line (updated, not duplicated).
    let text = mem.state("live").unwrap().0.file("/memories/lessons/sim/refunds.md").unwrap().text.to_string();
    let tool_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("- [call:")).collect();
    assert_eq!(tool_lines.len(), 1, "{text}");
    let nums: Vec<u64> = tool_lines[0]
        .split(']')
        .next()
        .unwrap()
        .split(' ')
        .skip(2)
        .filter(|p| p.contains('/'))
        .flat_map(|p| p.split('/').map(|n| n.parse::<u64>().unwrap()).collect::<Vec<_>>())
        .collect();
    assert_eq!(nums[1] + nums[3], 80, "{}", tool_lines[0]);
    for d in [first.id, second.id] {
        assert!(dreams.replay(&d, None).unwrap().identical);
    }
}
