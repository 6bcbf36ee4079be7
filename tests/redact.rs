//! Verifiable redaction on a real RocksDB: the body goes — from the log, the snapshots,
//! the WAL and every table file — the header stays, so every id and chain verifies;
//! later memory states fold on through the recorded stand-in; `verify` reports the
//! redaction and catches a stand-in that is not the recorded one.

mod common;

use dreamlog::core::redact::{stand_in_json, STAND_IN_NOTE, STREAM};
use dreamlog::core::{Body, CanonicalJson, Draft, MemoryCommand, Note, Redact};
use dreamlog::service::{BatchRequest, Local, RedactRequest, Service};
use dreamlog::{Actor, Error};
use tempfile::tempdir;

const SECRET: &str = "sk-live-4242-do-not-keep";

/// Whether any file below `dir` holds `needle` (the damaged/ folder of kept files too).
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            found.push(entry.display().to_string());
        }
    }
    found
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn cmd(c: serde_json::Value) -> MemoryCommand {
    serde_json::from_value(c).unwrap()
}

#[test]
fn a_redacted_text_leaves_every_file_and_the_memory_folds_on() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let actor = Actor::Human("ops".into());
    let (target, later_hash) = {
        let store = common::open(&db);
        // Snapshots every 2 events: some of them hold the secret.
        let svc = Local::new(store.clone(), 2);
        let batch = |commands: Vec<MemoryCommand>| BatchRequest { commands, expected_state: None, session: None };
        svc.memory_batch(
            "s",
            &batch(vec![cmd(
                serde_json::json!({"command": "create", "path": "/memories/a.md", "file_text": "one\ntwo\n"}),
            )]),
            &actor,
        )
        .unwrap();
        let secret = svc
            .memory_batch(
                "s",
                &batch(vec![cmd(serde_json::json!({"command": "str_replace", "path": "/memories/a.md", "old_str": "two", "new_str": format!("token {SECRET}")}))]),
                &actor,
            )
            .unwrap();
        for i in 0..5 {
            svc.memory_batch(
                "s",
                &batch(vec![cmd(
                    serde_json::json!({"command": "create", "path": format!("/memories/n{i}.md"), "file_text": "x\n"}),
                )]),
                &actor,
            )
            .unwrap();
        }
        svc.memory_batch("s", &batch(vec![cmd(serde_json::json!({"command": "str_replace", "path": "/memories/a.md", "old_str": "one", "new_str": "1"}))]), &actor).unwrap();
        let (state, _) = dreamlog::memory::MemoryStores::new(store.clone()).state("s").unwrap();
        assert_eq!(&*state.file("/memories/a.md").unwrap().text, format!("1\ntoken {SECRET}\n"));
        store.flush().unwrap();
        assert!(
            !files_holding(&db, SECRET.as_bytes()).is_empty(),
            "the secret is on disk before (else this test proves nothing)"
        );

        // Refusals first: nothing written.
        let before = store.len();
        let refuse = |event: &str, reason: &str| {
            svc.redact(&RedactRequest { event: event.into(), reason: reason.into() }, &actor)
        };
        assert!(matches!(refuse(&secret[0].id.to_hex(), " "), Err(Error::Format(_))));
        let rules_note = store.read_stream("memory/s", 0, 1).unwrap()[0].id();
        let e = refuse(&rules_note.to_hex(), "x").unwrap_err();
        assert!(e.to_string().contains("cannot be redacted"), "{e}");
        assert_eq!(store.len(), before);

        let r = svc
            .redact(
                &RedactRequest { event: secret[0].id.to_hex()[..16].into(), reason: "leaked API key".into() },
                &actor,
            )
            .unwrap();
        assert_eq!(r.target, secret[0].id);
        assert!(!r.stand_in.to_string().contains(SECRET), "{}", r.stand_in);
        // Again: refused, it is gone already.
        let again = refuse(&secret[0].id.to_hex(), "twice").unwrap_err();
        assert!(again.to_string().contains("redacted already"), "{again}");

        // The memory folds on: the later edit still applied, the secret is a placeholder.
        let mem = dreamlog::memory::MemoryStores::new(store.clone()).with_snapshot_every(2);
        let (state, _) = mem.state("s").unwrap();
        assert_eq!(&*state.file("/memories/a.md").unwrap().text, "1\n[redacted]\n", "the whole new_str is replaced");
        let stored = store.get(&secret[0].id).unwrap();
        assert!(stored.redacted);
        let report = store.verify(|_| {}).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(report.redacted, 1);
        (secret[0].id, state.state_hash())
    };
    // Reopened: the text is in no file, the redaction still verifies, states still fold.
    assert_eq!(files_holding(&db, SECRET.as_bytes()), Vec::<String>::new(), "no trace of the secret in any file");
    let store = common::open(&db);
    assert!(store.get(&target).unwrap().redacted);
    let (state, _) = dreamlog::memory::MemoryStores::new(store.clone()).state("s").unwrap();
    assert_eq!(state.state_hash(), later_hash);
    let report = store.verify(|_| {}).unwrap();
    assert!(report.is_clean() && report.redacted == 1, "{report:?}");
    // The CLI: `verify` says so, `show` prints the stand-in.
    drop(store);
    let out = common::dreamlog_on(&db, &["verify", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(common::ok(&out).trim()).unwrap();
    assert_eq!(v["redacted"], 1, "{v}");
}

#[test]
fn verify_catches_a_stand_in_that_is_not_the_recorded_one() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let svc = Local::new(store.clone(), 0);
    let actor = Actor::Human("ops".into());
    let a = svc
        .append_batch(dreamlog::AppendBatch::one(Draft::new(
            "notes",
            actor.clone(),
            Body::Note(Note {
                note_type: "n".into(),
                json: CanonicalJson::from_value(&serde_json::json!({"pin": 4242})),
            }),
        )))
        .unwrap();
    let id = a[0].id;
    let recorded =
        Body::Note(Note { note_type: "n".into(), json: CanonicalJson::from_value(&serde_json::json!("[redacted]")) });
    let forged =
        Body::Note(Note { note_type: "n".into(), json: CanonicalJson::from_value(&serde_json::json!({"pin": 1})) });
    let drafts = vec![
        Draft::new(STREAM, actor.clone(), Body::Redact(Redact { target: id, reason: "r".into() })).caused_by(vec![id]),
        Draft::new(
            STREAM,
            actor,
            Body::Note(Note {
                note_type: STAND_IN_NOTE.into(),
                json: CanonicalJson::from_value(&stand_in_json(&id, &recorded)),
            }),
        )
        .caused_by(vec![id]),
    ];
    store.redact(a[0].position, &forged, drafts).unwrap();
    let report = store.verify(|_| {}).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].problem.contains("not the one its redaction recorded"), "{:?}", report.problems);
}

#[test]
fn an_export_carries_the_redaction_and_reads_back_through_a_server() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let actor = Actor::Human("ops".into());
    let target = {
        let store = common::open(&db);
        let svc = Local::new(store.clone(), 0);
        let batch = |c: serde_json::Value| BatchRequest { commands: vec![cmd(c)], expected_state: None, session: None };
        let a = svc
            .memory_batch("s", &batch(serde_json::json!({"command": "create", "path": "/memories/k.md", "file_text": format!("{SECRET}\n")})), &actor)
            .unwrap();
        svc.memory_batch("s", &batch(serde_json::json!({"command": "insert", "path": "/memories/k.md", "insert_line": 1, "insert_text": "after\n"})), &actor).unwrap();
        // A new store's first batch starts with its rules note: the create is last.
        let created = a.last().unwrap().id;
        svc.redact(&RedactRequest { event: created.to_hex(), reason: "secret".into() }, &actor).unwrap();
        created
    };
    let export = dir.path().join("log.jsonl");
    let out = common::dreamlog_on(&db, &["export", "--out", export.to_str().unwrap()], None);
    common::ok(&out);
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(!text.contains(SECRET), "the export carries no trace of the text");
    assert!(text.contains("\"redacted\":{\"body_len\":"), "{text}");
    // Into a fresh database: the same ids, the redaction verifies, the memory folds on.
    let copy = dir.path().join("copy");
    common::ok(&common::dreamlog_on(&copy, &["import", export.to_str().unwrap()], None));
    let out = common::dreamlog_on(&copy, &["verify", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(common::ok(&out).trim()).unwrap();
    assert_eq!((v["redacted"].as_u64(), v["problems"].as_array().map(Vec::len)), (Some(1), Some(0)), "{v}");
    let view = common::dreamlog_on(&copy, &["memory", "view", "s", "/memories/k.md"], None);
    assert!(common::ok(&view).contains("[redacted]") && common::ok(&view).contains("after"));
    // Through a server: the redacted event reads back (its id recomputes from the form).
    let server = common::server::Server::start(&copy, &[]);
    let out = common::run_dreamlog(&["--remote", &server.base, "show", &target.to_hex(), "--json"], None);
    let shown: serde_json::Value = serde_json::from_str(common::ok(&out).trim()).unwrap();
    assert_eq!(shown["id"], target.to_hex());
    assert!(shown["redacted"].is_object(), "{shown}");
}

/// A fold that began before a redaction (it may have read the removed text) cannot store
/// its snapshot after it; one that began after can.
#[test]
fn a_snapshot_folded_before_a_redaction_is_not_stored_after_it() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let svc = Local::new(store.clone(), 0);
    let actor = Actor::Human("ops".into());
    let batch = BatchRequest {
        commands: vec![cmd(
            serde_json::json!({"command": "create", "path": "/memories/k.md", "file_text": format!("{SECRET}\n")}),
        )],
        expected_state: None,
        session: None,
    };
    let a = svc.memory_batch("s", &batch, &actor).unwrap();
    let created = a.last().unwrap();
    let before = store.snapshot_epoch();
    svc.redact(&RedactRequest { event: created.id.to_hex(), reason: "secret".into() }, &actor).unwrap();
    store.put_snapshot("memory/s", created.position, SECRET.as_bytes(), before).unwrap();
    assert_eq!(store.snapshot_at_or_before("memory/s", u64::MAX).unwrap(), None, "the stale snapshot was dropped");
    let after = store.snapshot_epoch();
    store.put_snapshot("memory/s", created.position, b"a state folded after", after).unwrap();
    assert!(store.snapshot_at_or_before("memory/s", u64::MAX).unwrap().is_some());
}
