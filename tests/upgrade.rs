//! The upgrade path: a database written by an earlier release opens, verifies, and its
//! dreams replay bit for bit with this one. `tests/fixtures/db-format-1/` is a RocksDB
//! database written by the release of 2026-11-30 (before the one-engine redesign): τ²-bench
//! airline runs imported with `--store support` (their `session.link`s), memory commands
//! made by a session, a tag, an evidence dream into a fork, its promotion, a revert.
//! `db-format-1.export.jsonl` is that database's export, which must come out unchanged.
//! Tests open a copy (opening rewrites RocksDB's MANIFEST and LOG). Regenerate only when a
//! new fixture for a new format is wanted, never over this one:
//! `DREAMLOG_MAKE_UPGRADE_FIXTURE=DIR cargo test --release --test upgrade -- --ignored make_fixture`.

mod common;

use dreamlog::core::dream::DreamerSpec;
use dreamlog::dream::{Dreams, RunOptions};
use dreamlog::memory::{ApplyOptions, MemoryStores};
use dreamlog::{Actor, MemoryCommand, Options, SyncMode};

#[test]
#[ignore = "writes the upgrade fixture: DREAMLOG_MAKE_UPGRADE_FIXTURE=DIR cargo test --release --test upgrade -- --ignored make_fixture"]
fn make_fixture() {
    let dir = std::env::var("DREAMLOG_MAKE_UPGRADE_FIXTURE")
        .expect("DREAMLOG_MAKE_UPGRADE_FIXTURE: an empty folder for the fixture");
    let dir = std::path::PathBuf::from(dir);
    let store = dreamlog::open(&dir, Options { sync: SyncMode::Fsync, create_if_missing: true, ..Options::default() })
        .expect("a new database in an empty folder");
    let mem = MemoryStores::new(store.clone());
    let file = common::data("tau2-bench/gpt-4.1_airline_default_gpt-4.1_1trials.json");
    let bytes = std::fs::read(&file).unwrap();
    let sessions = dreamlog::import::parse(dreamlog::import::Format::Tau2, "tau2-bench/airline.json", &bytes).unwrap();
    let hash = mem.state("support").unwrap().0.state_hash();
    dreamlog::service::import_sessions(
        &dreamlog::service::Local::over(&store),
        sessions,
        Some(("support", hash)),
        |_| {},
    )
    .unwrap();
    let mut agent = ApplyOptions::by(Actor::Agent("gpt-4.1".into()));
    agent.session = Some("01d73d39-04a0-47d4-9cb3-db034e1e3d72".into());
    let create = MemoryCommand::Create {
        path: "/memories/airline.md".into(),
        file_text: "# Airline\n- Check the fare class before changing a flight.\n".into(),
    };
    mem.apply("support", create, agent).unwrap();
    mem.tag("v1", store.len(), Actor::Human("ops".into())).unwrap();
    let dreams = Dreams::new(mem.clone());
    let spec: DreamerSpec = "evidence".parse().unwrap();
    let run = dreams.run("support", &spec, &RunOptions::default()).unwrap();
    mem.promote(&run.dream.output_store, "support", Actor::Human("ops".into()), false).unwrap();
    let edit = MemoryCommand::StrReplace {
        path: "/memories/airline.md".into(),
        old_str: "Check the fare class".into(),
        new_str: "Never check the fare class".into(),
    };
    let bad = mem.apply("support", edit, ApplyOptions::by(Actor::Human("ops".into()))).unwrap();
    mem.revert_event("support", &bad.event.id, "bad lesson", false, Actor::Human("ops".into())).unwrap();
    store.flush().unwrap();
    let mut out = Vec::new();
    dreamlog::exchange::export(&store, 0, &mut out, |_| {}).unwrap();
    std::fs::write(dir.with_extension("export.jsonl"), out).unwrap();
    store.close().unwrap();
}

#[test]
fn a_database_written_by_the_previous_format_opens_verifies_and_replays() {
    let fixture = common::root().join("tests/fixtures/db-format-1");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    common::copy_tree(&fixture, &db);
    let store = dreamlog::open(&db, Options::default()).expect("the old database opens");
    // It predates projector checkpoints: every derived index (including the session,
    // citation, ledger and marks indexes it never had) is rebuilt from its log on this
    // first open.
    let caught_up: Vec<&str> = store.open_report().caught_up.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(caught_up, ["kinds", "paths", "sessions", "cites", "ledger", "marks"]);
    let all = store.read_range(0, store.len() as usize).unwrap();
    let cited = all.iter().rev().find_map(|e| e.event.header.causes.first().copied()).expect("an event with causes");
    let citers: Vec<u64> = all.iter().filter(|e| e.event.header.causes.contains(&cited)).map(|e| e.position).collect();
    assert_eq!(store.cited_by(&cited, 0, usize::MAX).unwrap(), citers, "the citation index built on open");
    let mem = MemoryStores::new(store.clone());
    let report = mem.verify_deep(|_| {}).unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    let mut out = Vec::new();
    dreamlog::exchange::export(&store, 0, &mut out, |_| {}).unwrap();
    let expected = std::fs::read(common::root().join("tests/fixtures/db-format-1.export.jsonl")).unwrap();
    assert!(out == expected, "the log exports exactly as it was written");
    let dreams = Dreams::new(mem.clone());
    let all = dreams.list(None).unwrap();
    assert!(!all.is_empty());
    // The marks index built on open finds the store's dreams.
    let of_support = dreams.list(Some("support")).unwrap();
    assert_eq!(
        of_support.len(),
        all.iter().filter(|d| d.dream.store == "support" || d.dream.output_store == "support").count()
    );
    assert!(!of_support.is_empty());
    for d in all {
        assert!(dreams.replay(&d.id, None).unwrap().identical, "dream {} replays bit for bit", d.id);
    }
    let rows = dreamlog::sessions::list(&store).unwrap();
    assert_eq!(rows.len(), 20);
    // The ledger built on open answers for the old log: every imported session ran with
    // `support`, and their grades are there.
    let runs = dreamlog::ledger::sessions_with(&store, "support", store.len()).unwrap();
    assert_eq!(runs.len(), 20, "{runs:?}");
    assert!(runs.iter().all(|r| r.score.is_some()), "{runs:?}");
    assert_eq!(store.session_stores().unwrap(), ["support"]);
    assert!(rows.iter().all(|r| r.store.as_deref() == Some("support")), "the links still name the store");
    store.close().unwrap();
}

/// A database written by the build before the ledger and marks indexes (13b4225): it has
/// the commit marker and no record of which projectors it keeps, and neither family. Made
/// here from a database of this build by taking away what that build did not write (its
/// record of projectors, the two families, their progress): opening it must build both
/// from the log, not take them for caught up with the marker.
#[test]
fn a_database_from_before_the_ledger_and_marks_gains_them_on_open() {
    use dreamlog::store::{ALL_CFS, CF_LEDGER, CF_MARKS, CF_META};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let store = dreamlog::open(&db, Options::default()).unwrap();
    let draft = |v: serde_json::Value| dreamlog::EventJson::from_value(&v).unwrap().into_draft(None).unwrap();
    let mut batch = dreamlog::AppendBatch::new();
    batch.events = vec![
        draft(serde_json::json!({"stream": "session/s1", "kind": "session.start", "actor": "agent:a",
            "body": {"session": "s1", "agent": "a", "task_id": "t1", "store": "support"}})),
        draft(serde_json::json!({"stream": "session/s1", "kind": "grade", "actor": "evaluator:e",
            "body": {"session": "s1", "evaluator": "e", "rubric": "r", "score": 1.0, "result": "satisfied"}})),
        draft(serde_json::json!({"stream": "tags", "kind": "tag", "actor": "human:ops",
            "body": {"name": "before-upgrade", "position": 1}})),
        draft(serde_json::json!({"stream": "dreams/support", "kind": "dream", "actor": "dreamer:p@1",
            "body": {"dreamer": "p", "version": "1", "config": {}, "store": "support", "base_state": "dd".repeat(32),
                     "from_position": 0, "to_position": 2, "output_store": "support~1", "result_state": "ee".repeat(32)}})),
    ];
    store.append(batch).unwrap();
    let len = store.len();
    store.close().unwrap();
    drop(store);
    {
        let opts = rocksdb::Options::default();
        let raw = rocksdb::DB::open_cf(&opts, &db, ALL_CFS).unwrap();
        for cf in [CF_LEDGER, CF_MARKS] {
            let h = raw.cf_handle(cf).unwrap();
            let keys: Vec<Box<[u8]>> =
                raw.iterator_cf(h, rocksdb::IteratorMode::Start).map(|kv| kv.unwrap().0).collect();
            assert!(!keys.is_empty(), "this build wrote the {cf} family");
            for k in keys {
                raw.delete_cf(h, k).unwrap();
            }
        }
        let meta = raw.cf_handle(CF_META).unwrap();
        assert!(raw.get_cf(meta, b"own/projectors").unwrap().is_some(), "this build records its projectors");
        for k in [b"own/projectors".as_slice(), b"checkpoint/ledger", b"checkpoint/marks"] {
            raw.delete_cf(meta, k).unwrap();
        }
        raw.flush_cf(meta).unwrap();
    }
    let store = dreamlog::open(&db, Options::default()).unwrap();
    let caught_up: Vec<&str> = store.open_report().caught_up.iter().map(|(n, _)| n.as_str()).collect();
    assert!(caught_up.contains(&"ledger") && caught_up.contains(&"marks"), "{caught_up:?}");
    let mem = MemoryStores::new(store.clone());
    assert_eq!(mem.tag_position("before-upgrade").unwrap(), Some(1));
    let runs = dreamlog::ledger::sessions_with(&store, "support", len).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].score, Some(1.0));
    assert_eq!(store.session_stores().unwrap(), ["support"]);
    assert_eq!(Dreams::new(mem.clone()).list(Some("support~1")).unwrap().len(), 1);
    assert!(store.verify(|_| {}).unwrap().is_clean());
    store.close().unwrap();
    drop((mem, store));
    // Once built, the record holds them: the next open catches nothing up.
    let store = dreamlog::open(&db, Options::default()).unwrap();
    assert!(store.open_report().caught_up.is_empty(), "{:?}", store.open_report().caught_up);
    assert_eq!(MemoryStores::new(store.clone()).tag_position("before-upgrade").unwrap(), Some(1));
}
