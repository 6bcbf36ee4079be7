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
        let refuse = |event: &str, reason: &str| svc.redact(&RedactRequest::event(event, reason), &actor);
        assert!(matches!(refuse(&secret[0].id.to_hex(), " "), Err(Error::Format(_))));
        let rules_note = store.read_stream("memory/s", 0, 1).unwrap()[0].id();
        let e = refuse(&rules_note.to_hex(), "x").unwrap_err();
        assert!(e.to_string().contains("cannot be redacted"), "{e}");
        assert_eq!(store.len(), before);

        let r = svc.redact(&RedactRequest::event(&secret[0].id.to_hex()[..16], "leaked API key"), &actor).unwrap();
        assert_eq!(r.target, secret[0].id);
        assert!(!r.stand_in.to_string().contains(SECRET), "{}", r.stand_in);
        // Again: nothing is recorded again; the scrub runs again and the answer names the
        // first redaction.
        let len = store.len();
        let again = refuse(&secret[0].id.to_hex(), "twice").unwrap();
        assert_eq!(store.len(), len, "a second redaction records nothing");
        assert_eq!((again.target, again.event, again.already.len()), (secret[0].id, r.event, 1));

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
        svc.redact(&RedactRequest::event(created.to_hex(), "secret"), &actor).unwrap();
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
    let out = common::dreamlog_on(&copy, &["verify", "--deep", "--json"], None);
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
    svc.redact(&RedactRequest::event(created.id.to_hex(), "secret"), &actor).unwrap();
    store.put_snapshot("memory/s", created.position, SECRET.as_bytes(), before).unwrap();
    assert_eq!(store.snapshot_at_or_before("memory/s", u64::MAX).unwrap(), None, "the stale snapshot was dropped");
    let after = store.snapshot_epoch();
    store.put_snapshot("memory/s", created.position, b"a state folded after", after).unwrap();
    assert!(store.snapshot_at_or_before("memory/s", u64::MAX).unwrap().is_some());
}

/// Issue 30.1: a kill between a redaction's write and the end of its scrub left the text in
/// a table file while `show` said redacted, `verify --deep` was clean and a second
/// `redact` refused. Now the redaction's write records a pending scrub: the next open
/// finishes it; `verify --deep` finds such text still on disk (also in a database the
/// previous release left so, without the record), and `redact` again removes it.
#[test]
fn a_redaction_a_crash_interrupted_is_finished_at_open_and_found_by_verify_deep() {
    use dreamlog::embedded::RocksLog;
    use dreamlog::store::{FaultyLog, Log};
    use dreamlog::{AppendBatch, Options, Store};
    use std::sync::Arc;
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let actor = Actor::Human("ops".into());
    let deep = |store: &Store| {
        let mut report = store.verify(|_| {}).unwrap();
        store.verify_storage(&mut report).unwrap();
        report
    };
    let secret = |n: u64| {
        let body = Body::Note(Note {
            note_type: "ticket".into(),
            json: CanonicalJson::from_value(&serde_json::json!({"n": n, "text": format!("{SECRET} {n}")})),
        });
        Draft::new("tickets", Actor::Human("ann".into()), body)
    };
    let (target, position) = {
        let store = common::open(&db);
        let a = store.append(AppendBatch::one(secret(1))).unwrap().remove(0);
        common::append_notes(&store, "other", 3);
        store.flush().unwrap();
        store.close().unwrap();
        (a.id, a.position)
    };

    // The redaction's write lands; its scrub does not run (as if killed in between).
    {
        let rocks: Arc<dyn Log> = Arc::new(RocksLog::open(&db, &Options::default(), None).unwrap());
        let faulty = Arc::new(FaultyLog::new(rocks).unwrap());
        let store = Store::with_log(faulty.clone(), Options::default()).unwrap();
        faulty.fail_scrubs(1);
        let err = Local::over(&store).redact(&RedactRequest::event(target.to_hex(), "leaked"), &actor).unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert!(store.get(&target).unwrap().redacted, "the redaction itself is durable");
        assert!(!files_holding(&db, SECRET.as_bytes()).is_empty(), "the text is on disk (else this proves nothing)");
        let report = deep(&store);
        let found = report.problems.iter().find(|p| p.position == Some(position)).expect("verify --deep finds it");
        assert_eq!(found.id.as_deref(), Some(target.to_hex().as_str()));
        assert!(found.problem.contains("its scrub did not finish"), "{}", found.problem);
        assert!(found.problem.contains(&format!("dreamlog redact {}", target.to_hex())), "{}", found.problem);
        store.close().unwrap();
        drop(store);
        drop(faulty);
    }
    // A copy as the previous release would have left it: no pending-scrub record.
    let old = dir.path().join("old");
    common::copy_tree(&db, &old);
    {
        let raw = rocksdb::DB::open_cf(&rocksdb::Options::default(), &old, dreamlog::store::ALL_CFS).unwrap();
        let meta = raw.cf_handle("meta").unwrap();
        let key = [b"scrub/".as_slice(), &position.to_be_bytes()].concat();
        assert!(raw.get_cf(meta, &key).unwrap().is_some(), "the redaction's write recorded its pending scrub");
        raw.delete_cf(meta, &key).unwrap();
    }

    // The next open finishes the scrub: the text is in no file, verify --deep is clean.
    {
        let store = common::open(&db);
        assert_eq!(store.open_report().scrubs_finished, vec![position]);
        assert!(files_holding(&db, SECRET.as_bytes()).is_empty(), "{:?}", files_holding(&db, SECRET.as_bytes()));
        let report = deep(&store);
        assert!(report.is_clean() && report.redacted == 1, "{:?}", report.problems);
        store.close().unwrap();
        drop(store);
        assert!(common::open(&db).open_report().scrubs_finished.is_empty(), "finished once, not again");
    }

    // The previous release's database: nothing to finish at open, but verify --deep finds
    // the text still on disk; `redact` again removes it and records nothing.
    let store = common::open(&old);
    assert!(store.open_report().scrubs_finished.is_empty());
    assert!(!files_holding(&old, SECRET.as_bytes()).is_empty());
    let report = deep(&store);
    let found = report.problems.iter().find(|p| p.position == Some(position)).expect("verify --deep finds it");
    assert!(found.problem.contains("may still be on disk"), "{}", found.problem);
    let len = store.len();
    let again = Local::over(&store).redact(&RedactRequest::event(target.to_hex(), "again"), &actor).unwrap();
    assert_eq!((again.already.len(), store.len()), (1, len), "scrubbed again, nothing recorded again");
    assert!(files_holding(&old, SECRET.as_bytes()).is_empty(), "{:?}", files_holding(&old, SECRET.as_bytes()));
    let report = deep(&store);
    assert!(report.is_clean() && report.redacted == 1, "{:?}", report.problems);
}

/// Issue 30.2: a deletion request — every event of one session, or of one actor — is one
/// recorded act (one atomic write, one receipt) with the same guarantees; memory folds on,
/// and no stand-in copies text another event of the act wrote.
#[test]
fn a_session_or_an_actor_is_redacted_as_one_act() {
    use dreamlog::core::{Action, ActionStatus, Grade, GradeResult, Message};
    use dreamlog::{AppendBatch, Store};
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let ops = Actor::Human("ops".into());
    let agent = Actor::Agent("a".into());
    let mallory = Actor::Human("mallory".into());
    let (s1, s2) = ("run-1", "run-2");
    let session_events = |session: &str, text: &str| {
        let stream = dreamlog::core::streams::session(session);
        AppendBatch::new()
            .push(Draft::new(
                &stream,
                agent.clone(),
                Body::Message(Message {
                    session: session.into(),
                    role: "user".into(),
                    content: CanonicalJson::from_value(&serde_json::json!(format!("my card is {text}"))),
                    meta: None,
                }),
            ))
            .push(Draft::new(
                &stream,
                agent.clone(),
                Body::Action(Action {
                    session: session.into(),
                    name: "charge".into(),
                    call_id: None,
                    input: CanonicalJson::from_value(&serde_json::json!({"card": text})),
                    output: None,
                    status: ActionStatus::Ok,
                    meta: None,
                }),
            ))
            .push(Draft::new(
                &stream,
                Actor::Evaluator("e".into()),
                Body::Grade(Grade {
                    session: session.into(),
                    target: None,
                    rubric: "r".into(),
                    evaluator: "e".into(),
                    score: 1.0,
                    result: GradeResult::Satisfied,
                    criteria: Vec::new(),
                    meta: None,
                }),
            ))
    };
    let store: Store = common::open(&db);
    let svc = Local::over(&store);
    store.append(session_events(s1, "Aq7Zx2Lp9")).unwrap();
    store.append(session_events(s2, "Bx5Gr1Wk3")).unwrap();
    let batch = |session: &str, commands: Vec<MemoryCommand>| BatchRequest {
        commands,
        expected_state: None,
        session: Some(session.into()),
    };
    // Run 1 writes two lessons' worth of text into one file; run 2 edits it after.
    svc.memory_batch(
        "m",
        &batch(
            s1,
            vec![cmd(serde_json::json!({"command": "create", "path": "/memories/a.md", "file_text": "Cw4Rt8Yn1\n"}))],
        ),
        &agent,
    )
    .unwrap();
    svc.memory_batch(
        "m",
        &batch(s1, vec![cmd(serde_json::json!({"command": "insert", "path": "/memories/a.md", "insert_line": 1, "insert_text": "Dk2Jh6Bv5\n"}))]),
        &agent,
    )
    .unwrap();
    svc.memory_batch(
        "m",
        &batch(s2, vec![cmd(serde_json::json!({"command": "insert", "path": "/memories/a.md", "insert_line": 2, "insert_text": "Es8Nc4Qo2\n"}))]),
        &agent,
    )
    .unwrap();
    store
        .append(AppendBatch::one(common::note("x", 1)).push({
            let body = Body::Note(Note {
                note_type: "complaint".into(),
                json: CanonicalJson::from_value(&serde_json::json!("Fm9Pe3Tu7")),
            });
            Draft::new("complaints", mallory.clone(), body)
        }))
        .unwrap();
    store.flush().unwrap();
    for s in ["Aq7Zx2Lp9", "Cw4Rt8Yn1", "Dk2Jh6Bv5", "Fm9Pe3Tu7"] {
        assert!(!files_holding(&db, s.as_bytes()).is_empty(), "{s} is on disk before");
    }

    // Refusals write nothing: no target, two targets, a session nobody ran.
    let len = store.len();
    let req = |event: Option<&str>, session: Option<&str>, actor: Option<&str>| RedactRequest {
        event: event.map(Into::into),
        session: session.map(Into::into),
        actor: actor.map(Into::into),
        reason: "deletion request".into(),
    };
    assert!(svc.redact(&req(None, None, None), &ops).is_err());
    assert!(svc.redact(&req(Some("ab"), Some(s1), None), &ops).is_err());
    let e = svc.redact(&req(None, Some("nobody"), None), &ops).unwrap_err();
    assert!(e.to_string().contains("no session"), "{e}");
    assert_eq!(store.len(), len);

    let dpo = dreamlog::core::receipt::Principal::new("dpo-token", "admin");
    let r = dreamlog::store::principal::as_principal(dpo, || svc.redact(&req(None, Some(s1), None), &ops)).unwrap();
    // The message, the action and both memory commands; the grade is kept, named.
    assert_eq!(r.events.len(), 4, "{r:?}");
    assert_eq!(r.kept.len(), 1, "{r:?}");
    assert!(r.kept[0].reason.contains("grade"), "{:?}", r.kept);
    // One act: its redact events and stand-ins are one batch with one receipt.
    assert_eq!(store.len(), len + 8);
    let first = store.received(len).unwrap().expect("a receipt");
    assert_eq!((first.batch, first.events, first.principal.as_str()), (len, 8, "dpo-token"));
    for s in ["Aq7Zx2Lp9", "Cw4Rt8Yn1", "Dk2Jh6Bv5"] {
        assert!(files_holding(&db, s.as_bytes()).is_empty(), "{s}: {:?}", files_holding(&db, s.as_bytes()));
    }
    assert!(!files_holding(&db, b"Bx5Gr1Wk3").is_empty(), "run 2 stays");
    // Memory folds on: run 2's edit applies after run 1's text became placeholders.
    let (state, _) = dreamlog::memory::MemoryStores::new(store.clone()).state("m").unwrap();
    assert_eq!(&*state.file("/memories/a.md").unwrap().text, "[redacted]\n[redacted]\nEs8Nc4Qo2\n");
    let report = store.verify(|_| {}).unwrap();
    assert!(report.is_clean() && report.redacted == 4, "{:?}", report.problems);

    // Again: nothing recorded again, every event named as redacted before.
    let again = svc.redact(&req(None, Some(s1), None), &ops).unwrap();
    assert_eq!((again.events.len(), again.already.len(), store.len()), (0, 4, len + 8));

    // An actor, through the CLI (`--actor` selects whose events, `--as` who redacts).
    store.close().unwrap();
    drop(svc);
    let out = common::dreamlog_on(
        &db,
        &["--json", "redact", "--actor", "human:mallory", "--reason", "erasure request", "--as", "human:dpo"],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(common::ok(&out).trim()).unwrap();
    assert_eq!(v["events"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(files_holding(&db, b"Fm9Pe3Tu7").is_empty());
    let shown: serde_json::Value = serde_json::from_str(
        common::ok(&common::dreamlog_on(&db, &["--json", "show", v["event"].as_str().unwrap()], None)).trim(),
    )
    .unwrap();
    assert_eq!(shown["actor"], "human:dpo", "{shown}");
    assert!(shown["body"]["reason"].as_str().unwrap().contains("every event of actor human:mallory"), "{shown}");
    let both = common::dreamlog_on(&db, &["redact", "abc", "--session", s1, "--reason", "x"], None);
    assert!(!both.status.success());
    let clean = common::dreamlog_on(&db, &["--json", "verify", "--deep"], None);
    let v: serde_json::Value = serde_json::from_str(common::ok(&clean).trim()).unwrap();
    assert_eq!((v["redacted"].as_u64(), v["problems"].as_array().map(Vec::len)), (Some(5), Some(0)), "{v}");
}
