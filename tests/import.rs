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
    let sessions = import::parse(format, path.to_str().unwrap(), &bytes).unwrap();
    dreamlog::service::import_sessions(&dreamlog::service::Local::over(store), sessions, None, |_| {}).unwrap()
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
        let err = import::parse(format, "f.json", text.as_bytes()).unwrap_err().to_string();
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
    dreamlog::service::import_sessions(
        &dreamlog::service::Local::over(store),
        import::parse(format, path.to_str().unwrap(), &bytes).unwrap(),
        None,
        |_| {},
    )
    .unwrap()
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
    let err = import::parse(Format::Atif, "t.json", text.replacen("ATIF-v1.4", "ATIF-v2.0", 1).as_bytes()).unwrap_err();
    assert!(err.to_string().contains("/schema_version: unknown ATIF schema_version \"ATIF-v2.0\""), "{err}");
    let err = import::parse(
        Format::Atif,
        "t.json",
        text.replacen("\"source_call_id\": \"call_2\"", "\"source_call_id\": \"call_9\"", 1).as_bytes(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("observation for tool call \"call_9\", which no step made"), "{err}");
    let err = import::parse(
        Format::Atif,
        "t.json",
        text.replacen("\"session_id\": \"trial-7-main\"", "\"session_id\": [1]", 1).as_bytes(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/session_id: expected an id, found an array"), "{err}");
    // The two sessions and their two `session.link`s.
    assert_eq!(store.len(), main.len() as u64 + sub.len() as u64 + 2, "failed parses wrote nothing");
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
    )
    .unwrap_err();
    assert!(err.to_string().contains("tool_result for \"toolu_zz\", which no tool_use made"), "{err}");
    let truncated = &text[..text.len() - 40];
    let err = import::parse(Format::ClaudeCode, "agent-x.jsonl", truncated.as_bytes()).unwrap_err();
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

fn session_of(store: &dreamlog::Store, id: &str) -> Vec<dreamlog::StoredEvent> {
    dreamlog::sessions::events(store, id).unwrap().1
}

fn actions(events: &[dreamlog::StoredEvent]) -> Vec<(String, dreamlog::ActionStatus, bool)> {
    events
        .iter()
        .filter_map(|e| match &e.event.body {
            Body::Action(a) => Some((a.call_id.clone().unwrap_or_default(), a.status, a.output.is_some())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_harbor_claude_code_trial_imports_whole_empty_outputs_errors_and_its_sub_agent() {
    use dreamlog::ActionStatus::{Error, Ok};
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let c = import_fixture(&store, "harbor/claude-code-trial__a1/agent/trajectory.json");
    assert_eq!((c.sessions, c.messages, c.actions, c.grades), (2, 10, 7, 1));
    let id = "atif/0b9d3f4e-1c2a-4e5f-8a7b-6c5d4e3f2a1b";
    let main = session_of(&store, id);
    // The Bash call with empty output (no observation) and the one whose only sign of
    // failure is its exit code are kept; the error markers become error actions.
    assert_eq!(
        actions(&main),
        vec![
            ("toolu_01A".into(), Ok, true),
            ("toolu_01B".into(), Ok, false),
            ("toolu_01C".into(), Error, true),
            ("toolu_01D".into(), Ok, true),
            ("toolu_01E".into(), Ok, true),
            ("toolu_01F".into(), Error, false),
        ]
    );
    let s = dreamlog::sessions::summarize(id, &main);
    assert_eq!((s.score, s.task.as_deref(), s.messages), (Some(1.0), Some("fix-failing-test"), 8));
    assert_eq!((s.cost_usd, s.input_tokens, s.output_tokens), (Some(0.0642), Some(48210), Some(1320)));
    // The sub-agent's steps are a child session citing the parent's start, not merged in.
    let side = session_of(&store, &format!("{id}/agent-7f3a"));
    assert_eq!(side[0].event.header.causes, vec![main[0].id()]);
    assert_eq!(actions(&side), vec![("toolu_02A".into(), Ok, true)]);
    assert_eq!(dreamlog::sessions::summarize("x", &side).messages, 2);
    assert!(dreamlog::sessions::summarize("x", &side).score.is_none(), "no grade is invented for the sub-agent");
}

#[test]
fn atif_1_7_subagent_references_resolve_embedded_and_by_path() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let c = import_fixture(&store, "harbor/terminus-trial__b2/agent/trajectory.json");
    assert_eq!((c.sessions, c.messages, c.actions, c.grades), (3, 9, 5, 1));
    let main = session_of(&store, "atif/terminus-b2");
    assert_eq!(actions(&main)[0], ("c1".into(), dreamlog::ActionStatus::Error, true), "the result's own error marker");
    let s = dreamlog::sessions::summarize("atif/terminus-b2", &main);
    assert_eq!((s.score, s.result.as_deref()), (Some(0.0), Some("failed")));
    for child in ["atif/terminus-b2/helper-empty-session", "atif/terminus-b2/helper-unicode"] {
        let events = session_of(&store, child);
        assert_eq!(events[0].event.header.causes, vec![main[0].id()], "{child} cites its parent");
        assert_eq!(actions(&events).len(), 1, "{child}");
    }
    // A trajectory_path that names no file is a clear error; nothing is written.
    let path = fixture("harbor/terminus-trial__b2/agent/trajectory.json");
    let text =
        std::fs::read_to_string(&path).unwrap().replace("trajectory.helper-unicode.json", "trajectory.gone.json");
    let err = import::parse(Format::Atif, path.to_str().unwrap(), text.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("the sub-agent trajectory \"trajectory.gone.json\" cannot be read"), "{err}");
}

#[test]
fn a_session_is_its_content_not_where_its_file_lay_nor_the_store_state() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let first = import_file(&store, TAU);
    assert_eq!(first.sessions, 100);
    let len = store.len();
    // The same bytes from another folder, and with a memory store named: already present.
    let elsewhere = tempdir().unwrap();
    common::copy_tree(&data("tau-bench"), elsewhere.path());
    let path = elsewhere.path().join("gpt-4o-airline.tasks-00-24.json");
    let bytes = std::fs::read(&path).unwrap();
    let sessions = import::parse(Format::TauBench, path.to_str().unwrap(), &bytes).unwrap();
    let hash = dreamlog::Digest::of(b"another state");
    let again = dreamlog::service::import_sessions(
        &dreamlog::service::Local::over(&store),
        sessions,
        Some(("live", hash)),
        |_| {},
    )
    .unwrap();
    assert_eq!((again.sessions, again.grown, again.already_present), (0, 0, 100));
    assert_eq!(store.len(), len, "nothing written");
    // The link beside each session records where it came from (the first import's path).
    let link =
        dreamlog::sessions::link(&store, "tau-bench/gpt-4o-airline.tasks-00-24/task-3/trial-2").unwrap().unwrap();
    assert!(link.source.unwrap().starts_with(&format!("tau-bench:{}", data(TAU).display())));
    assert!(link.store.is_none());
    // Imported into a fresh log with a store named, the sessions' own events are identical.
    let dir2 = tempdir().unwrap();
    let store2 = common::open(dir2.path());
    let sessions = import::parse(Format::TauBench, path.to_str().unwrap(), &bytes).unwrap();
    dreamlog::service::import_sessions(
        &dreamlog::service::Local::over(&store2),
        sessions,
        Some(("live", hash)),
        |_| {},
    )
    .unwrap();
    let a = session_of(&store, "tau-bench/gpt-4o-airline.tasks-00-24/task-3/trial-2");
    let b = session_of(&store2, "tau-bench/gpt-4o-airline.tasks-00-24/task-3/trial-2");
    assert_eq!(a.iter().map(|e| e.id()).collect::<Vec<_>>(), b.iter().map(|e| e.id()).collect::<Vec<_>>());
    let link2 =
        dreamlog::sessions::link(&store2, "tau-bench/gpt-4o-airline.tasks-00-24/task-3/trial-2").unwrap().unwrap();
    assert_eq!((link2.store.as_deref(), link2.memory_state), (Some("live"), Some(hash)));
    assert!(link2.source.unwrap().starts_with(&format!("tau-bench:{}/", path.display())));
    assert!(store.verify(|_| ()).unwrap().is_clean() && store2.verify(|_| ()).unwrap().is_clean());
}

#[test]
fn a_transcript_that_grew_appends_its_new_events_and_one_changed_in_its_middle_is_refused() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let full =
        std::fs::read_to_string(fixture("claude-code/-work-demo/5d0c9a3e-7b1f-4c2a-9e4d-2f6b8a1c0d93.jsonl")).unwrap();
    let lines: Vec<&str> = full.lines().collect();
    let cut = lines[..lines.len() - 2].join("\n") + "\n";
    let parse = |text: &str| {
        import::parse(Format::ClaudeCode, "/w/5d0c9a3e-7b1f-4c2a-9e4d-2f6b8a1c0d93.jsonl", text.as_bytes()).unwrap()
    };
    let id = "claude-code/5d0c9a3e-7b1f-4c2a-9e4d-2f6b8a1c0d93";
    let c =
        dreamlog::service::import_sessions(&dreamlog::service::Local::over(&store), parse(&cut), None, |_| {}).unwrap();
    assert_eq!(c.sessions, 1);
    let before = session_of(&store, id);
    // The session ran on: the same file, longer, appends the new events as one batch.
    let grown = dreamlog::service::import_sessions(&dreamlog::service::Local::over(&store), parse(&full), None, |_| {})
        .unwrap();
    assert_eq!((grown.sessions, grown.grown, grown.already_present), (0, 1, 0));
    let after = session_of(&store, id);
    assert!(after.len() > before.len());
    assert_eq!(&after[..before.len()], &before[..], "what was stored stays as it was");
    // Views show the latest end, and the whole transcript's messages.
    let fresh = tempdir().unwrap();
    let store2 = common::open(fresh.path());
    dreamlog::service::import_sessions(&dreamlog::service::Local::over(&store2), parse(&full), None, |_| {}).unwrap();
    let whole = session_of(&store2, id);
    let (s_grown, s_whole) = (dreamlog::sessions::summarize(id, &after), dreamlog::sessions::summarize(id, &whole));
    assert_eq!((s_grown.messages, s_grown.steps, &s_grown.status), (s_whole.messages, s_whole.steps, &s_whole.status));
    // The new actions cite the messages that made their calls, by their stored ids.
    for (i, e) in after.iter().enumerate().skip(before.len()) {
        for c in &e.event.header.causes {
            assert!(after[..i].iter().any(|x| x.id() == *c), "event {i} cites an event of the session before it");
        }
    }
    // Importing it again is "already present"; an edit in the middle is refused.
    let len = store.len();
    assert_eq!(
        dreamlog::service::import_sessions(&dreamlog::service::Local::over(&store), parse(&full), None, |_| {})
            .unwrap()
            .already_present,
        1
    );
    let edited = full.replacen("Let me", "Let us", 1);
    assert_ne!(edited, full);
    let err = dreamlog::service::import_sessions(&dreamlog::service::Local::over(&store), parse(&edited), None, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("changed in its middle"), "{err}");
    assert_eq!(store.len(), len, "nothing written");
    assert!(store.verify(|_| ()).unwrap().is_clean());
}

#[test]
fn sessions_imported_before_session_link_are_still_recognised() {
    // An earlier importer kept the source path and the store in the session's start.
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let path = data("swe-agent/swe-agent__test-repo-i1.traj");
    let bytes = std::fs::read(&path).unwrap();
    let mut old = import::parse(Format::SweAgent, path.to_str().unwrap(), &bytes).unwrap().remove(0);
    for d in &mut old.events {
        d.causes.clear();
    }
    if let Body::SessionStart(s) = &mut old.events[0].body {
        s.source = Some(format!("swe-agent:{}", path.display()));
        s.store = Some("support".into());
        s.memory_state = Some(dreamlog::Digest::of(b"then"));
    }
    store.append(dreamlog::AppendBatch { events: old.events, ..Default::default() }).unwrap();
    let len = store.len();
    let sessions = import::parse(Format::SweAgent, path.to_str().unwrap(), &bytes).unwrap();
    let c =
        dreamlog::service::import_sessions(&dreamlog::service::Local::over(&store), sessions, None, |_| {}).unwrap();
    assert_eq!((c.sessions, c.grown, c.already_present), (0, 0, 1));
    assert_eq!(store.len(), len);
}

/// Harbor's Claude Code converter lists every sidechain step first, keeps no sub-agent
/// id, and names the trajectory's model after the first message (a sub-agent's): the
/// main session takes the model of its own steps, and each sub-agent — begun by its
/// prompt — is its own session with its own model, not one merged `sidechain`.
#[test]
fn harbor_claude_code_sub_agents_are_apart_and_the_main_session_has_its_own_model() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let side = |prompt: &str, call: &str| {
        vec![
            serde_json::json!({"source": "user", "message": prompt, "extra": {"is_sidechain": true}}),
            serde_json::json!({"source": "agent", "message": "", "model_name": "claude-haiku-4-5",
                "tool_calls": [{"tool_call_id": call, "function_name": "Grep", "arguments": {"pattern": "x"}}],
                "observation": {"results": [{"source_call_id": call, "content": "a.py:1"}]},
                "extra": {"is_sidechain": true}}),
            serde_json::json!({"source": "agent", "message": "found it", "model_name": "claude-haiku-4-5",
                "extra": {"is_sidechain": true}}),
        ]
    };
    let mut steps = side("find the test", "s1");
    steps.extend(side("find the config", "s2"));
    steps.extend([
        serde_json::json!({"source": "user", "message": "fix the test", "extra": {"is_sidechain": false}}),
        serde_json::json!({"source": "agent", "message": "", "model_name": "claude-sonnet-4-5",
            "tool_calls": [{"tool_call_id": "m1", "function_name": "Edit", "arguments": {"file_path": "a.py"}}],
            "observation": {"results": [{"source_call_id": "m1", "content": "ok"}]}, "extra": {"is_sidechain": false}}),
        serde_json::json!({"source": "agent", "message": "done", "model_name": "claude-sonnet-4-5",
            "extra": {"is_sidechain": false}}),
    ]);
    for (i, s) in steps.iter_mut().enumerate() {
        s["step_id"] = serde_json::json!(i + 1);
    }
    let traj = serde_json::json!({"schema_version": "ATIF-v1.2", "session_id": "cc-1",
        "agent": {"name": "claude-code", "version": "2.0.31", "model_name": "claude-haiku-4-5"}, "steps": steps});
    let path = dir.path().join("trajectory.json");
    std::fs::write(&path, traj.to_string()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let parsed = import::parse(Format::Atif, path.to_str().unwrap(), &bytes).unwrap();
    let c = dreamlog::service::import_sessions(&dreamlog::service::Local::over(&store), parsed, None, |_| {}).unwrap();
    assert_eq!((c.sessions, c.actions), (3, 3));
    let main = session_of(&store, "atif/cc-1");
    let s = dreamlog::sessions::summarize("atif/cc-1", &main);
    assert_eq!((s.model.as_deref(), s.steps), (Some("claude-sonnet-4-5"), 1));
    for (n, call) in [(1, "s1"), (2, "s2")] {
        let id = format!("atif/cc-1/sidechain-{n}");
        let side = session_of(&store, &id);
        assert_eq!(side[0].event.header.causes, vec![main[0].id()], "{id} cites its parent");
        assert_eq!(actions(&side).iter().map(|a| a.0.clone()).collect::<Vec<_>>(), vec![call.to_owned()], "{id}");
        assert_eq!(dreamlog::sessions::summarize(&id, &side).model.as_deref(), Some("claude-haiku-4-5"));
    }
}

/// Runs imported by an earlier build (τ²-bench grades without the environment's
/// assertions, Harbor rubrics by task) import again as present: nothing written, no
/// "changed in its middle".
#[test]
fn runs_imported_by_an_earlier_importer_are_present_on_reimport() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let path = data("tau2-bench/gpt-4.1_telecom_default_gpt-4.1_1trials.json");
    let bytes = std::fs::read(&path).unwrap();
    let mut older = import::parse(Format::Tau2, path.to_str().unwrap(), &bytes).unwrap();
    let mut dropped = 0;
    for s in &mut older {
        for d in &mut s.events {
            if let Body::Grade(g) = &mut d.body {
                let before = g.criteria.len();
                g.criteria.retain(|c| !c.name.starts_with("env:"));
                dropped += before - g.criteria.len();
            }
        }
    }
    assert!(dropped > 40, "the file has environment assertions ({dropped})");
    let local = dreamlog::service::Local::over(&store);
    let first = dreamlog::service::import_sessions(&local, older, None, |_| {}).unwrap();
    assert_eq!(first.sessions, 40);
    let len = store.len();
    let again = dreamlog::service::import_sessions(
        &local,
        import::parse(Format::Tau2, path.to_str().unwrap(), &bytes).unwrap(),
        None,
        |_| {},
    )
    .unwrap();
    assert_eq!((again.sessions, again.grown, again.already_present), (0, 0, 40));
    assert_eq!(store.len(), len, "nothing written");
    // Harbor: the rubric by task.
    let harbor = fixture("harbor/claude-code-trial__a1/agent/trajectory.json");
    let hb = std::fs::read(&harbor).unwrap();
    let mut older = import::parse(Format::Atif, harbor.to_str().unwrap(), &hb).unwrap();
    for s in &mut older {
        for d in &mut s.events {
            if let Body::Grade(g) = &mut d.body {
                g.rubric = "harbor/fix-failing-test".into();
            }
        }
    }
    dreamlog::service::import_sessions(&local, older, None, |_| {}).unwrap();
    let len = store.len();
    let again = dreamlog::service::import_sessions(
        &local,
        import::parse(Format::Atif, harbor.to_str().unwrap(), &hb).unwrap(),
        None,
        |_| {},
    )
    .unwrap();
    assert_eq!((again.sessions, again.grown), (0, 0), "{again:?}");
    assert_eq!(store.len(), len);
}
