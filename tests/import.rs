//! Importers on the real public runs vendored in tests/data: exact counts, faithful
//! rendering, idempotence, and clear errors that write nothing.

mod common;

use std::path::PathBuf;

use dreamlog::import::{self, Format};
use dreamlog::{Body, CanonicalJson, Kind};
use serde_json::Value;
use tempfile::tempdir;

fn data(rel: &str) -> PathBuf {
    common::data(rel)
}

fn import_file(store: &dreamlog::Store, rel: &str) -> import::ImportCounts {
    let path = data(rel);
    let bytes = std::fs::read(&path).unwrap();
    let format = import::detect(&bytes).expect("format detected");
    let sessions = import::parse(format, path.to_str().unwrap(), &bytes, None).unwrap();
    import::write(store, sessions, |_| {}).unwrap()
}

const TAU: &str = "tau-bench/gpt-4o-airline.tasks-00-24.json";
const TAU2: [&str; 3] = [
    "tau2-bench/gpt-4.1_airline_default_gpt-4.1_1trials.json",
    "tau2-bench/gpt-4.1_retail_defautl_gpt-4.1_1trials.json",
    "tau2-bench/gpt-4.1_telecom_default_gpt-4.1_1trials.json",
];

#[test]
fn formats_are_detected_from_content() {
    let f = |rel: &str| import::detect(&std::fs::read(data(rel)).unwrap());
    assert_eq!(f(TAU), Some(Format::TauBench));
    assert_eq!(f(TAU2[0]), Some(Format::Tau2));
    assert_eq!(f("swe-agent/pydicom__pydicom-1458.traj"), Some(Format::SweAgent));
    assert_eq!(import::detect(b"{\"something\": 1}"), None);
}

#[test]
fn tau_bench_imports_100_sessions_31_passed_with_every_message_and_tool_call() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let c = import_file(&store, TAU);
    assert_eq!((c.sessions, c.grades, c.actions, c.messages), (100, 100, 621, 2962));
    let rows = dreamlog::sessions::list(&store).unwrap();
    assert_eq!(rows.len(), 100);
    assert_eq!(rows.iter().filter(|r| r.score == Some(1.0)).count(), 31);
    assert_eq!(rows.iter().map(|r| r.steps).sum::<u64>(), 621);
    // Importing again adds nothing.
    let len = store.len();
    let again = import_file(&store, TAU);
    assert_eq!((again.sessions, again.already_present), (0, 100));
    assert_eq!(store.len(), len);
    assert!(store.verify(|_| ()).unwrap().is_clean());
}

#[test]
fn a_rendered_session_equals_its_source_message_by_message() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    import_file(&store, TAU);
    let source: Value = serde_json::from_slice(&std::fs::read(data(TAU)).unwrap()).unwrap();
    for ep in source.as_array().unwrap().iter().step_by(17) {
        let id = format!("tau-bench/gpt-4o-airline.tasks-00-24/task-{}/trial-{}", ep["task_id"], ep["trial"]);
        let (_, events) = dreamlog::sessions::events(&store, &id).unwrap();
        let messages: Vec<CanonicalJson> = events
            .iter()
            .filter_map(|e| match &e.event.body {
                Body::Message(m) => Some(m.content.clone()),
                _ => None,
            })
            .collect();
        let expected: Vec<CanonicalJson> =
            ep["traj"].as_array().unwrap().iter().map(CanonicalJson::from_value).collect();
        assert_eq!(messages, expected, "session {id}");
        // Each tool result follows its message as an action with the call's name and
        // input, citing the assistant message that made the call.
        let actions: Vec<_> = events.iter().filter(|e| e.event.header.kind == Kind::Action).collect();
        let calls: usize = ep["traj"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").count();
        assert_eq!(actions.len(), calls);
        for a in actions {
            let Body::Action(act) = &a.event.body else { unreachable!() };
            assert_eq!(a.event.header.causes.len(), 1, "an action cites one message");
            let cited = store.get(&a.event.header.causes[0]).unwrap();
            let Body::Message(m) = &cited.event.body else { panic!("cites a {}", cited.event.header.kind) };
            assert_eq!(m.role, "assistant");
            assert!(m.content.as_str().contains(act.call_id.as_deref().unwrap()), "the cited message made the call");
            assert!(cited.position < a.position);
        }
    }
}

#[test]
fn tau2_imports_100_simulations_62_passed_with_the_check_breakdown() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let mut total = import::ImportCounts::default();
    for f in TAU2 {
        let c = import_file(&store, f);
        total.sessions += c.sessions;
        total.actions += c.actions;
        total.messages += c.messages;
        total.grades += c.grades;
    }
    assert_eq!((total.sessions, total.grades, total.actions, total.messages), (100, 100, 1136, 3853));
    let rows = dreamlog::sessions::list(&store).unwrap();
    assert_eq!(rows.iter().filter(|r| r.score == Some(1.0)).count(), 62);
    let stats = dreamlog::sessions::stats(&rows);
    assert_eq!((stats.sessions, stats.graded, stats.passed), (100, 100, 62));
    // The grade keeps tau2's breakdown: db_check, action checks and NL assertions.
    let grade = store.read_kind(Kind::Grade, 0, 1).unwrap().remove(0);
    let Body::Grade(g) = &grade.event.body else { panic!("not a grade") };
    assert!(g.criteria.iter().any(|c| c.name == "db_check"));
    assert!(g.criteria.iter().any(|c| c.name.starts_with("action:")));
    assert!(g.meta.is_some());
}

#[test]
fn swe_agent_trajectories_import_without_inventing_a_grade() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let a = import_file(&store, "swe-agent/pydicom__pydicom-1458.traj");
    let b = import_file(&store, "swe-agent/swe-agent__test-repo-i1.traj");
    assert_eq!((a.actions, b.actions), (12, 5));
    assert_eq!(a.grades + b.grades, 0);
    assert!(store.read_kind(Kind::Grade, 0, 10).unwrap().is_empty());
    let rows = dreamlog::sessions::list(&store).unwrap();
    assert!(rows.iter().all(|r| r.score.is_none() && r.status.as_deref() == Some("submitted")));
    // Each free-text action cites the thought that chose it, the message just before it.
    let (_, events) = dreamlog::sessions::events(&store, "swe-agent/swe-agent__test-repo-i1").unwrap();
    for (i, e) in events.iter().enumerate().filter(|(_, e)| e.event.header.kind == Kind::Action) {
        assert_eq!(events[i - 1].event.header.kind, Kind::Message);
        assert_eq!(e.event.header.causes, vec![events[i - 1].id()]);
    }
}

#[test]
fn malformed_input_is_a_clear_error_naming_where_and_nothing_is_written() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let good = std::fs::read_to_string(data(TAU)).unwrap();
    let mut cases: Vec<(Format, String, &str)> = vec![
        (Format::TauBench, good[..good.len() / 2].to_owned(), "not valid JSON"),
        (
            Format::TauBench,
            good.replacen("\"reward\": 0.0", "\"reward\": \"zero\"", 1),
            "/0/reward: expected a number, found a string",
        ),
    ];
    // A tool result whose call no message made.
    let mut v: Value = serde_json::from_str(&good).unwrap();
    let traj = v[0]["traj"].as_array_mut().unwrap();
    let i = traj.iter().position(|m| m["role"] == "tool").unwrap();
    traj[i]["tool_call_id"] = Value::from("call_nobody_made");
    cases.push((Format::TauBench, v.to_string(), "which no assistant message made"));
    let tau2 = std::fs::read_to_string(data(TAU2[0])).unwrap();
    let mut v: Value = serde_json::from_str(&tau2).unwrap();
    v["simulations"][3]["task_id"] = Value::from("no-such-task");
    cases.push((Format::Tau2, v.to_string(), "/simulations/3/task_id: no task with id \"no-such-task\""));
    for (format, text, expected) in cases {
        let err = import::parse(format, "f.json", text.as_bytes(), None).unwrap_err().to_string();
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
    assert_eq!(store.len(), 0);
}

fn fixture(rel: &str) -> PathBuf {
    common::root().join("tests/fixtures").join(rel)
}

fn import_fixture(store: &dreamlog::Store, rel: &str) -> import::ImportCounts {
    let path = fixture(rel);
    let bytes = std::fs::read(&path).unwrap();
    let format = import::detect(&bytes).expect("format detected");
    import::write(store, import::parse(format, path.to_str().unwrap(), &bytes, None).unwrap(), |_| {}).unwrap()
}

#[test]
fn atif_trajectories_import_with_the_harbor_grade_and_linked_subagents() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let c = import_fixture(&store, "atif/trial-7/agent/trajectory.json");
    // fixtures README names the spec versions; keep the files where it says
    assert!(fixture("README.md").exists());
    assert_eq!((c.sessions, c.grades, c.actions, c.messages), (2, 1, 4, 8));
    let (_, main) = dreamlog::sessions::events(&store, "atif/trial-7-main").unwrap();
    let s = dreamlog::sessions::summarize("atif/trial-7-main", &main);
    assert_eq!(
        (s.score, s.task.as_deref(), s.model.as_deref()),
        (Some(1.0), Some("fix-division-by-zero"), Some("claude-sonnet-4-5"))
    );
    let Body::Grade(g) = &main.iter().find(|e| e.event.header.kind == Kind::Grade).unwrap().event.body else {
        panic!()
    };
    assert_eq!(g.criteria.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["reward", "tests_passed"]);
    let (_, sub) = dreamlog::sessions::events(&store, "atif/trial-7-main/reviewer").unwrap();
    assert_eq!(sub[0].event.header.causes, vec![main[0].id()], "the sub-agent's start cites its parent's");
    assert!(dreamlog::sessions::summarize("x", &sub).score.is_none(), "no grade is invented for the sub-agent");
    assert_eq!(import_fixture(&store, "atif/trial-7/agent/trajectory.json").already_present, 2);

    let text = std::fs::read_to_string(fixture("atif/trial-7/agent/trajectory.json")).unwrap();
    let err =
        import::parse(Format::Atif, "t.json", text.replacen("ATIF-v1.4", "ATIF-v2.0", 1).as_bytes(), None).unwrap_err();
    assert!(err.to_string().contains("/schema_version: unknown ATIF schema_version \"ATIF-v2.0\""), "{err}");
    let err = import::parse(
        Format::Atif,
        "t.json",
        text.replacen("\"source_call_id\": \"call_2\"", "\"source_call_id\": \"call_9\"", 1).as_bytes(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("observation for tool call \"call_9\", which no step made"), "{err}");
    let err = import::parse(
        Format::Atif,
        "t.json",
        text.replacen("\"session_id\": \"trial-7-main\"", "\"session_id\": [1]", 1).as_bytes(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("/session_id: expected an id, found an array"), "{err}");
    assert_eq!(store.len(), main.len() as u64 + sub.len() as u64, "failed parses wrote nothing");
}

#[test]
fn claude_code_transcripts_import_with_sidechains_as_child_sessions() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let main = import_fixture(&store, "claude-code/-work-demo/5d0c9a3e-7b1f-4c2a-9e4d-2f6b8a1c0d93.jsonl");
    assert_eq!((main.sessions, main.messages, main.actions, main.grades), (1, 6, 2, 0));
    let side = import_fixture(&store, "claude-code/-work-demo/agent-3f2a.jsonl");
    assert_eq!((side.sessions, side.messages, side.actions), (1, 4, 1));
    let (_, parent) = dreamlog::sessions::events(&store, "claude-code/5d0c9a3e-7b1f-4c2a-9e4d-2f6b8a1c0d93").unwrap();
    let (_, child) =
        dreamlog::sessions::events(&store, "claude-code/5d0c9a3e-7b1f-4c2a-9e4d-2f6b8a1c0d93/agent-3f2a").unwrap();
    assert_eq!(child[0].event.header.causes, vec![parent[0].id()]);
    let Body::Action(a) = &parent.iter().find(|e| e.event.header.kind == Kind::Action).unwrap().event.body else {
        panic!()
    };
    assert_eq!((a.name.as_str(), a.call_id.as_deref()), ("Read", Some("toolu_01")));
    let text = std::fs::read_to_string(fixture("claude-code/-work-demo/agent-3f2a.jsonl")).unwrap();
    let err = import::parse(
        Format::ClaudeCode,
        "agent-x.jsonl",
        text.replace("\"tool_use_id\":\"toolu_a1\"", "\"tool_use_id\":\"toolu_zz\"").as_bytes(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("tool_result for \"toolu_zz\", which no tool_use made"), "{err}");
    let truncated = &text[..text.len() - 40];
    let err = import::parse(Format::ClaudeCode, "agent-x.jsonl", truncated.as_bytes(), None).unwrap_err();
    assert!(err.to_string().contains("agent-x.jsonl:4: not valid JSON"), "{err}");
}

#[test]
fn sidechain_lines_inside_a_transcript_become_a_linked_child_session() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let c = import_fixture(&store, "claude-code/-work-inline/9b1e2f40-0c3d-4a5b-8e6f-7a8b9c0d1e2f.jsonl");
    assert_eq!((c.sessions, c.messages, c.actions), (2, 8, 2));
    let id = "claude-code/9b1e2f40-0c3d-4a5b-8e6f-7a8b9c0d1e2f";
    let (_, main) = dreamlog::sessions::events(&store, id).unwrap();
    let (_, side) = dreamlog::sessions::events(&store, &format!("{id}/sidechain")).unwrap();
    assert_eq!(dreamlog::sessions::summarize(id, &main).messages, 4);
    assert_eq!(dreamlog::sessions::summarize(id, &side).steps, 1);
    assert_eq!(side[0].event.header.causes, vec![main[0].id()]);
}
