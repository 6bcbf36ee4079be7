//! Memory stores over a real RocksDB log: every command's success and error path through
//! the store, as-of reads, snapshots, tags, history, diff, blame, revert, fork, promote.

mod common;

use dreamlog::core::memory::ToolErrorKind;
use dreamlog::memory::{stream_name, ApplyOptions, MemoryStores};
use dreamlog::{
    Actor, AppendBatch, Body, CanonicalJson, Digest, Draft, Dream, Error, EventId, Kind, MemoryCommand, Note,
};
use dreamlog::{LogError, MemoryError};
use tempfile::tempdir;

/// A `dream` body for store `store` (what a dreamer records; its output is cited by id).
fn dream_body(store: &str) -> Body {
    Body::Dream(Dream {
        dreamer: "evidence".into(),
        version: "1".into(),
        config: CanonicalJson::null(),
        store: store.into(),
        base_state: Digest::of(b""),
        from_position: 0,
        to_position: 1,
        output_store: store.into(),
        result_state: Digest::of(b""),
        meta: None,
    })
}

fn human() -> Actor {
    Actor::Human("ada".into())
}

fn apply(m: &MemoryStores, store: &str, cmd: MemoryCommand) -> dreamlog::memory::Applied {
    m.apply(store, cmd, ApplyOptions::by(human())).expect("apply")
}

fn create(path: &str, text: &str) -> MemoryCommand {
    MemoryCommand::Create { path: path.into(), file_text: text.into() }
}

fn replace(path: &str, old: &str, new: &str) -> MemoryCommand {
    MemoryCommand::StrReplace { path: path.into(), old_str: old.into(), new_str: new.into() }
}

fn text(m: &MemoryStores, store: &str, path: &str, until: u64) -> Option<String> {
    m.state_until(store, until).unwrap().0.file(path).map(|f| f.text.to_string())
}

#[test]
fn commands_are_recorded_and_refusals_write_nothing() {
    let dir = tempdir().unwrap();
    let m = MemoryStores::new(common::open(dir.path()));
    let a = apply(&m, "s", create("/memories/a.md", "one\n"));
    assert_eq!(a.text, "File created successfully at: /memories/a.md");
    // A new store's first event records the memory rules it follows.
    let rules = m.store().get_at(0).unwrap();
    assert!(matches!(&rules.event.body, Body::Note(n) if n.note_type == "memory.rules"), "{rules:?}");
    assert_eq!((a.event.position, a.event.version), (1, 1));
    let stored = m.store().get_at(1).unwrap();
    assert_eq!(stored.event.header.stream, stream_name("s"));
    assert!(matches!(&stored.event.body, Body::Memory(b) if b.store == "s"));
    for (bad, kind) in [
        (create("/memories/a.md", "again"), ToolErrorKind::AlreadyExists),
        (replace("/memories/a.md", "two", "x"), ToolErrorKind::Invalid),
        (MemoryCommand::Delete { path: "/memories/none".into() }, ToolErrorKind::NotFound),
        (create("/memories/../x", "x"), ToolErrorKind::Invalid),
    ] {
        match m.apply("s", bad, ApplyOptions::by(human())) {
            Err(Error::Memory(MemoryError::Tool(e))) => assert_eq!(e.kind, kind),
            other => panic!("expected a tool error, got {other:?}"),
        }
    }
    let mut opts = ApplyOptions::by(human());
    opts.precondition = Some(Digest::of(b"not the content"));
    match m.apply("s", replace("/memories/a.md", "one", "1"), opts) {
        Err(Error::Memory(MemoryError::Tool(e))) => assert_eq!(e.kind, ToolErrorKind::Conflict),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(m.store().len(), 2, "refused commands wrote nothing");
    let mut opts = ApplyOptions::by(human());
    opts.precondition = Some(Digest::of(b"one\n"));
    assert!(m.apply("s", replace("/memories/a.md", "one", "1"), opts).is_ok());
}

#[test]
fn any_point_resolves_by_position_id_tag_and_time() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let m = MemoryStores::new(store.clone());
    let draft = |cmd: MemoryCommand, t: u64| {
        let body =
            Body::Memory(dreamlog::Memory { store: "s".into(), command: cmd, precondition: None, session: None });
        store.append(AppendBatch::one(Draft::new(stream_name("s"), human(), body).at(t))).unwrap()[0].clone()
    };
    let first = draft(create("/memories/a.md", "v1\n"), 1_700_000_000_000);
    draft(replace("/memories/a.md", "v1", "v2"), 1_700_000_060_000);
    draft(replace("/memories/a.md", "v2", "v3"), 1_700_000_120_000);
    m.tag("before-v3", 2, human()).unwrap();
    assert!(matches!(
        m.tag("before-v3", 3, human()).unwrap_err(),
        Error::Memory(MemoryError::TagExists { position: 1, .. })
    ));
    let at = |p: &str| text(&m, "s", "/memories/a.md", m.resolve_point(p).unwrap());
    assert_eq!(at("0").as_deref(), Some("v1\n"));
    assert_eq!(at("1").as_deref(), Some("v2\n"));
    assert_eq!(at("head").as_deref(), Some("v3\n"));
    assert_eq!(at("before-v3").as_deref(), Some("v2\n"));
    assert_eq!(at(&first.id.to_hex()[..10]).as_deref(), Some("v1\n"));
    assert_eq!(at("2023-11-14T22:13:50Z").as_deref(), Some("v1\n"), "one second after the first event");
    assert_eq!(at("2023-11-14T22:14:20Z").as_deref(), Some("v2\n"));
    assert!(matches!(m.resolve_point("no-such-tag").unwrap_err(), Error::Memory(MemoryError::UnknownPoint(_))));
    assert!(matches!(m.resolve_point("99").unwrap_err(), Error::Log(LogError::NoSuchPosition(99))));
}

#[test]
fn snapshots_give_the_same_state_as_a_full_replay() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let with = MemoryStores::new(store.clone()).with_snapshot_every(7);
    let without = MemoryStores::new(store.clone()).with_snapshot_every(0);
    apply(&with, "s", create("/memories/log.md", "start\n"));
    for i in 0..60 {
        apply(
            &with,
            "s",
            MemoryCommand::Insert { path: "/memories/log.md".into(), insert_line: 0, insert_text: format!("line {i}") },
        );
        if i % 9 == 0 {
            apply(&with, "s", create(&format!("/memories/f{i}.md"), "x"));
        }
    }
    assert!(store.snapshot_at_or_before(&stream_name("s"), store.len()).unwrap().is_some(), "snapshots were written");
    for until in 0..=store.len() {
        let (a, ha) = with.state_until("s", until).unwrap();
        let (b, hb) = without.state_until("s", until).unwrap();
        assert_eq!(a, b, "state until {until}");
        assert_eq!(ha, hb);
        assert_eq!(a.state_hash(), b.state_hash());
    }
}

#[test]
fn history_of_a_path_includes_directory_deletes_and_renames_above_it() {
    let dir = tempdir().unwrap();
    let m = MemoryStores::new(common::open(dir.path()));
    apply(&m, "s", create("/memories/team/a.md", "a\n"));
    apply(&m, "s", create("/memories/other.md", "o\n"));
    apply(&m, "s", replace("/memories/team/a.md", "a", "b"));
    apply(&m, "s", MemoryCommand::Rename { old_path: "/memories/team".into(), new_path: "/memories/crew".into() });
    apply(&m, "s", MemoryCommand::Delete { path: "/memories/crew".into() });
    let h: Vec<u64> = m.history("s", Some("/memories/team/a.md")).unwrap().iter().map(|e| e.position).collect();
    assert_eq!(h, vec![1, 3, 4]);
    let h: Vec<u64> = m.history("s", Some("/memories/crew/a.md")).unwrap().iter().map(|e| e.position).collect();
    assert_eq!(h, vec![4, 5]);
    assert_eq!(m.history("s", None).unwrap().len(), 6, "the rules note and five commands");
}

#[test]
fn blame_follows_edits_renames_and_forks_and_names_dreams_and_evidence() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let m = MemoryStores::new(store.clone());
    let c = apply(&m, "s", create("/memories/a.md", "one\ntwo\nthree\n"));
    let r = apply(&m, "s", replace("/memories/a.md", "two", "TWO"));
    // A dream writes a line citing a grade.
    let grade = store
        .append(AppendBatch::one(Draft::new(
            "session/x",
            Actor::Evaluator("e".into()),
            Body::Note(Note { note_type: "grade-ish".into(), json: CanonicalJson::null() }),
        )))
        .unwrap()[0]
        .id;
    let dream_body = dream_body("s");
    let dream = store
        .append(AppendBatch::one(Draft::new(
            "dreams",
            Actor::Dreamer { name: "evidence".into(), version: "1".into() },
            dream_body,
        )))
        .unwrap()[0]
        .id;
    let mut opts = ApplyOptions::by(Actor::Dreamer { name: "evidence".into(), version: "1".into() });
    opts.causes = vec![dream, grade];
    let d = m
        .apply(
            "s",
            MemoryCommand::Insert { path: "/memories/a.md".into(), insert_line: 3, insert_text: "lesson".into() },
            opts,
        )
        .unwrap();
    apply(&m, "s", MemoryCommand::Rename { old_path: "/memories/a.md".into(), new_path: "/memories/b.md".into() });
    m.fork("s", "f", store.len(), human()).unwrap();
    let f = apply(&m, "f", replace("/memories/b.md", "one", "ONE"));

    let blame = m.blame("f", "/memories/b.md", store.len()).unwrap();
    let who: Vec<(EventId, &str)> = blame.iter().map(|l| (l.id, l.text.as_str())).collect();
    assert_eq!(who, vec![(f.event.id, "ONE"), (r.event.id, "TWO"), (c.event.id, "three"), (d.event.id, "lesson")]);
    assert_eq!(blame[3].dream, Some(dream));
    assert_eq!(blame[3].evidence, vec![grade]);
    assert_eq!(blame[3].actor, "dreamer:evidence@1");
    assert!(blame[0].dream.is_none());
    // As of before the dream, the lesson line is not there.
    let earlier = m.blame("s", "/memories/a.md", d.event.position).unwrap();
    assert_eq!(earlier.len(), 3);
    assert!(matches!(m.blame("s", "/memories/a.md", store.len()).unwrap_err(), Error::Memory(MemoryError::Tool(_))));

    // The file the dream wrote was renamed since: reverting the dream is a conflict
    // naming that rename (renames are not merged), and nothing is written.
    let len = store.len();
    match m.revert_dream("s", &dream, "bad lesson", false, human()).unwrap_err() {
        Error::Memory(MemoryError::RevertConflict { conflicts }) => assert_eq!(conflicts[0].0, "/memories/a.md"),
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(store.len(), len);
}

#[test]
fn revert_of_an_event_merges_with_unrelated_later_edits_and_refuses_overlapping_ones() {
    let dir = tempdir().unwrap();
    let m = MemoryStores::new(common::open(dir.path()));
    apply(&m, "s", create("/memories/a.md", "one\ntwo\nthree\nfour\nfive\n"));
    let bad = apply(&m, "s", replace("/memories/a.md", "two", "TWO"));
    apply(&m, "s", replace("/memories/a.md", "five", "FIVE"));
    let out = m.revert_event("s", &bad.event.id, "wrong", false, human()).unwrap();
    assert_eq!(out.len(), 2, "a revert event and one command");
    assert_eq!(text(&m, "s", "/memories/a.md", u64::MAX).as_deref(), Some("one\ntwo\nthree\nfour\nFIVE\n"));
    let revert = m.store().get_at(out[0].position).unwrap();
    assert_eq!(revert.event.header.kind, Kind::Revert);
    assert_eq!(revert.event.header.causes, vec![bad.event.id]);
    assert_eq!(m.store().get_at(out[1].position).unwrap().event.header.causes, vec![bad.event.id]);

    // An edit on the same line conflicts: refused, nothing written; --force restores.
    let bad2 = apply(&m, "s", replace("/memories/a.md", "three", "3"));
    let later = apply(&m, "s", replace("/memories/a.md", "3", "III"));
    let len = m.store().len();
    match m.revert_event("s", &bad2.event.id, "wrong", false, human()).unwrap_err() {
        Error::Memory(MemoryError::RevertConflict { conflicts }) => {
            assert_eq!(conflicts.len(), 1);
            assert_eq!(conflicts[0].0, "/memories/a.md");
            assert_eq!(conflicts[0].1, vec![(later.event.position, later.event.id)]);
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(m.store().len(), len);
    m.revert_event("s", &bad2.event.id, "wrong", true, human()).unwrap();
    assert_eq!(text(&m, "s", "/memories/a.md", u64::MAX).as_deref(), Some("one\ntwo\nthree\nfour\nFIVE\n"));
    assert!(m.store().verify(|_| ()).unwrap().is_clean());
}

#[test]
fn revert_to_a_point_and_of_a_dream_and_of_a_delete() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let m = MemoryStores::new(store.clone());
    apply(&m, "s", create("/memories/a.md", "a\n"));
    let point = store.len();
    apply(&m, "s", create("/memories/b.md", "b\n"));
    apply(&m, "s", MemoryCommand::Delete { path: "/memories/a.md".into() });
    let before = m.state_until("s", point).unwrap().0;
    m.revert_to("s", point, "back", human()).unwrap();
    assert_eq!(m.state("s").unwrap().0, before);
    assert!(store.len() > point + 2, "history never shrinks");

    let del = apply(&m, "s", MemoryCommand::Delete { path: "/memories/a.md".into() });
    m.revert_event("s", &del.event.id, "undo delete", false, human()).unwrap();
    assert_eq!(text(&m, "s", "/memories/a.md", u64::MAX).as_deref(), Some("a\n"));

    let note = store.append(AppendBatch::one(common::note("dreams", 1))).unwrap()[0].id;
    let not_a_dream = m.revert_dream("s", &note, "x", false, human()).unwrap_err();
    assert!(matches!(not_a_dream, Error::WrongEvent { .. }), "a note is not a dream");

    // A dream's two commands, then a human edit elsewhere in the file: the dream's
    // lines go, the human's edit stays.
    apply(&m, "s", create("/memories/lessons.md", "keep\n\nmiddle\n\nend\n"));
    let dream_body = dream_body("s");
    let dream = store.append(AppendBatch::one(Draft::new("dreams", human(), dream_body))).unwrap()[0].id;
    let mut opts = ApplyOptions::by(human());
    opts.causes = vec![dream];
    m.apply(
        "s",
        MemoryCommand::Insert { path: "/memories/lessons.md".into(), insert_line: 0, insert_text: "lesson 1".into() },
        opts.clone(),
    )
    .unwrap();
    m.apply("s", create("/memories/dreamt.md", "lesson 2\n"), opts).unwrap();
    apply(&m, "s", replace("/memories/lessons.md", "end", "END"));
    m.revert_dream("s", &dream, "bad lessons", false, human()).unwrap();
    assert_eq!(text(&m, "s", "/memories/lessons.md", u64::MAX).as_deref(), Some("keep\n\nmiddle\n\nEND\n"));
    assert_eq!(text(&m, "s", "/memories/dreamt.md", u64::MAX), None);
}

#[test]
fn fork_and_promote() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let m = MemoryStores::new(store.clone());
    apply(&m, "live", create("/memories/a.md", "a\n"));
    apply(&m, "live", create("/memories/gone.md", "g\n"));
    m.fork("live", "trial", store.len(), human()).unwrap();
    assert!(matches!(
        m.fork("live", "trial", store.len(), human()).unwrap_err(),
        Error::Memory(MemoryError::StoreExists(_))
    ));
    apply(&m, "trial", replace("/memories/a.md", "a", "A"));
    apply(&m, "trial", MemoryCommand::Delete { path: "/memories/gone.md".into() });
    apply(&m, "trial", create("/memories/new.md", "n\n"));
    apply(&m, "live", create("/memories/live-only.md", "l\n"));
    assert_eq!(text(&m, "live", "/memories/a.md", u64::MAX).as_deref(), Some("a\n"), "the source is untouched");
    let d = m.diff("live", u64::MAX, "trial", u64::MAX).unwrap();
    assert_eq!(d.added, vec!["/memories/new.md".to_string()]);
    assert_eq!(d.removed.len(), 2);
    assert_eq!(d.changed.len(), 1);
    let trial = store.read_stream("memory/trial", 1, usize::MAX).unwrap();
    let promoted = m.promote("trial", "live", human(), false).unwrap();
    assert_eq!(promoted.len(), 3, "the fork's three commands are replayed");
    for (a, original) in promoted.iter().zip(&trial) {
        let e = store.get_at(a.position).unwrap();
        assert_eq!(command_of(&e), command_of(original));
        assert_eq!(e.event.header.causes.last(), Some(&original.id()), "each cites the command it copies");
    }
    let (live, _) = m.state("live").unwrap();
    let (trial_state, _) = m.state("trial").unwrap();
    assert_eq!(
        live.file("/memories/live-only.md").map(|f| f.text.to_string()).as_deref(),
        Some("l\n"),
        "edits made to live since the fork stay"
    );
    for (p, f) in trial_state.files() {
        assert_eq!(live.file(p), Some(f), "{p} promoted");
    }
    assert_eq!(live.file("/memories/gone.md"), None);
    assert!(m.promote("trial", "live", human(), false).unwrap().is_empty(), "nothing left to promote");
    // A fork whose command no longer applies: live is made equal to it, citing the fork.
    let f2 = m.fork("live", "trial2", store.len(), human()).unwrap();
    apply(&m, "trial2", create("/memories/clash.md", "fork\n"));
    apply(&m, "live", create("/memories/clash.md", "live\n"));
    let promoted = m.promote("trial2", "live", human(), false).unwrap();
    for a in &promoted {
        assert_eq!(store.get_at(a.position).unwrap().event.header.causes, vec![f2.id]);
    }
    assert_eq!(m.state("live").unwrap().0, m.state("trial2").unwrap().0);
}

#[test]
fn concurrent_writers_never_apply_a_command_checked_against_a_stale_state() {
    let dir = tempdir().unwrap();
    let m = MemoryStores::new(common::open(dir.path()));
    apply(&m, "s", create("/memories/counter.md", ""));
    // A Memory per thread: separate writers that share nothing but the log, as
    // separate processes behind one server would; the expected version keeps them apart.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let m = MemoryStores::new(m.store().clone());
            std::thread::spawn(move || {
                for i in 0..25 {
                    let cmd = MemoryCommand::Insert {
                        path: "/memories/counter.md".into(),
                        insert_line: 0,
                        insert_text: format!("{t}-{i}"),
                    };
                    m.apply("s", cmd, ApplyOptions::by(Actor::Agent(format!("w{t}")))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let state = m.state("s").unwrap().0;
    assert_eq!(state.file("/memories/counter.md").unwrap().text.lines().count(), 100);
    assert_eq!(m.store().stream_version(&stream_name("s")).unwrap(), Some(101), "the rules note and 100 commands");
}

#[test]
fn blame_names_the_revision_that_wrote_each_line_over_many_edits() {
    // Every line's text names the revision that wrote it, so blame can be checked line
    // by line against the history that produced the file.
    let dir = tempdir().unwrap();
    let m = MemoryStores::new(common::open(dir.path()));
    let doc = "/memories/doc.md";
    let first = apply(&m, "s", create(doc, &(0..10).map(|i| format!("rev 0 line {i}\n")).collect::<String>()));
    let mut revisions = vec![first.event.id];
    let mut lines: Vec<String> = (0..10).map(|i| format!("rev 0 line {i}")).collect();
    let mut seed = 12345u64;
    for rev in 1..200u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = (seed % lines.len() as u64) as usize;
        let cmd = if rev % 3 == 0 {
            let new = format!("rev {rev} line {at}");
            let old = std::mem::replace(&mut lines[at], new.clone());
            replace(doc, &format!("{old}\n"), &format!("{new}\n"))
        } else {
            let new = format!("rev {rev} inserted");
            lines.insert(at, new.clone());
            MemoryCommand::Insert { path: doc.into(), insert_line: at as u64, insert_text: new }
        };
        revisions.push(apply(&m, "s", cmd).event.id);
    }
    let blame = m.blame("s", doc, u64::MAX).unwrap();
    assert_eq!(blame.iter().map(|l| l.text.clone()).collect::<Vec<_>>(), lines);
    for l in &blame {
        let rev: usize = l.text.split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(l.id, revisions[rev], "line {:?}", l.text);
    }
}

fn command_of(e: &dreamlog::StoredEvent) -> MemoryCommand {
    match &e.event.body {
        dreamlog::Body::Memory(m) => m.command.clone(),
        other => panic!("not a memory event: {other:?}"),
    }
}

/// Issue 29.1: a line a revert or a promote puts back keeps the event, dream and
/// evidence that wrote it first, with the act that restored it beside them.
#[test]
fn a_restored_line_keeps_its_origin_through_every_kind_of_revert_and_promote() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let m = MemoryStores::new(store.clone());
    let path = "/memories/lessons.md";
    let dreamer = || Actor::Dreamer { name: "evidence".into(), version: "1".into() };
    apply(&m, "s", create(path, "# lessons\n- keep receipts\n"));
    let grades: Vec<EventId> = (0..5)
        .map(|i| {
            let note = Note { note_type: "grade-ish".into(), json: CanonicalJson::from_value(&serde_json::json!(i)) };
            let draft = Draft::new(format!("session/g{i}"), Actor::Evaluator("e".into()), Body::Note(note));
            store.append(AppendBatch::one(draft)).unwrap()[0].id
        })
        .collect();
    let dream = store.append(AppendBatch::one(Draft::new("dreams", dreamer(), dream_body("s")))).unwrap()[0].id;
    let mut opts = ApplyOptions::by(dreamer());
    opts.causes = std::iter::once(dream).chain(grades.iter().copied()).collect();
    let lesson_text = "- check the identity first";
    let lesson = m
        .apply("s", MemoryCommand::Insert { path: path.into(), insert_line: 2, insert_text: lesson_text.into() }, opts)
        .unwrap();
    let line_of = |m: &MemoryStores, store: &str| {
        m.blame(store, path, m.store().len()).unwrap().into_iter().find(|l| l.text == lesson_text).expect("the lesson")
    };
    let original = line_of(&m, "s");
    assert_eq!((original.id, original.dream, original.restored_by.clone()), (lesson.event.id, Some(dream), None));
    assert_eq!(original.evidence, grades);
    let last_revert = |m: &MemoryStores| {
        m.history("s", None).unwrap().into_iter().rfind(|e| e.event.header.kind == Kind::Revert).unwrap()
    };
    let same_origin = |restored: &dreamlog::memory::BlameLine, how: &str, by: EventId| {
        assert_eq!(
            (restored.id, restored.position, restored.time, &restored.actor, restored.dream, &restored.evidence),
            (original.id, original.position, original.time, &original.actor, original.dream, &original.evidence),
            "{restored:?}"
        );
        let r = restored.restored_by.as_ref().expect("the act that restored it");
        assert_eq!((r.how.as_str(), r.id), (how, by));
    };

    // 1. A revert of one event: a bad edit of the lesson undone.
    let bad = apply(&m, "s", replace(path, lesson_text, "- skip the identity check"));
    m.revert_event("s", &bad.event.id, "bad edit", false, human()).unwrap();
    let revert = last_revert(&m);
    let restored = line_of(&m, "s");
    same_origin(&restored, "revert", revert.id());
    let by = restored.restored_by.as_ref().unwrap();
    assert_eq!(
        (by.actor.as_str(), by.reason.as_deref(), by.position),
        ("human:ada", Some("bad edit"), revert.position)
    );
    // Lines the revert did not touch keep their own origin, unmarked.
    assert!(m.blame("s", path, store.len()).unwrap()[0].restored_by.is_none());

    // 2. A revert to a point: the file deleted, then the store put back as it was.
    let point = store.len();
    apply(&m, "s", MemoryCommand::Delete { path: path.into() });
    m.revert_to("s", point, "deleted by mistake", human()).unwrap();
    same_origin(&line_of(&m, "s"), "revert", last_revert(&m).id());

    // 3. A revert of a dream that rewrote the lesson.
    let bad_dream = store.append(AppendBatch::one(Draft::new("dreams", dreamer(), dream_body("s")))).unwrap()[0].id;
    let mut opts = ApplyOptions::by(dreamer());
    opts.causes = vec![bad_dream];
    m.apply("s", replace(path, lesson_text, "- never check identity"), opts).unwrap();
    assert_ne!(line_of_text(&m, path, "- never check identity").dream, Some(dream));
    m.revert_dream("s", &bad_dream, "a bad dream", false, human()).unwrap();
    same_origin(&line_of(&m, "s"), "revert", last_revert(&m).id());

    // 3b. A revert of a session: its two edits (one of them the lesson) undone, an edit
    // elsewhere in the file by someone else between them kept; a session with no command in the
    // store is refused by name, nothing written.
    let mut opts = ApplyOptions::by(Actor::Agent("sesn_bad".into()));
    opts.session = Some("sesn_bad".into());
    // (Someone else's edit between the session's two: it stays.)
    m.apply("s", replace(path, lesson_text, "- trust the caller"), opts.clone()).unwrap();
    apply(&m, "s", replace(path, "# lessons", "# Lessons"));
    m.apply("s", create("/memories/scratch.md", "junk\n"), opts).unwrap();
    let before = store.len();
    match m.revert_session("s", "sesn_other", "x", false, human()).unwrap_err() {
        Error::Memory(MemoryError::NothingToRevert { store: s, what }) => {
            assert_eq!(s, "s");
            assert!(what.contains("sesn_other"), "{what}");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(store.len(), before, "a refused revert writes nothing");
    m.revert_session("s", "sesn_bad", "a bad session", false, human()).unwrap();
    assert_eq!(text(&m, "s", "/memories/scratch.md", u64::MAX), None);
    let file = text(&m, "s", path, u64::MAX).unwrap();
    assert!(file.starts_with("# Lessons\n") && file.contains(lesson_text), "{file}");
    let revert = last_revert(&m);
    assert!(
        matches!(&revert.event.body, Body::Revert(r) if r.target == dreamlog::RevertTarget::Session("sesn_bad".into()))
    );
    same_origin(&line_of(&m, "s"), "revert", revert.id());

    // 4. A promote: a fork's dream writes a lesson; promoted, it keeps that dream and its
    // evidence, and the copy is the act that put it in the live store.
    m.fork("s", "s.trial", store.len(), human()).unwrap();
    let trial_dream =
        store.append(AppendBatch::one(Draft::new("dreams", dreamer(), dream_body("s.trial")))).unwrap()[0].id;
    let mut opts = ApplyOptions::by(dreamer());
    opts.causes = vec![trial_dream, grades[0], grades[1]];
    let trial = m
        .apply(
            "s.trial",
            MemoryCommand::Insert { path: path.into(), insert_line: 1, insert_text: "- new".into() },
            opts,
        )
        .unwrap();
    let promoted = m.promote("s.trial", "s", human(), false).unwrap();
    let new = line_of_text(&m, path, "- new");
    assert_eq!(
        (new.id, new.dream, new.evidence.clone()),
        (trial.event.id, Some(trial_dream), vec![grades[0], grades[1]])
    );
    let by = new.restored_by.as_ref().expect("promoted");
    assert_eq!((by.how.as_str(), by.id), ("promote", promoted[0].id));
    // The lesson the promote did not touch still tells its revert.
    same_origin(&line_of(&m, "s"), "revert", last_revert(&m).id());

    // The ledger reads blame: the restored lesson still counts its five grades.
    let rows = dreamlog::ledger::lessons(&m, "s", store.len()).unwrap();
    let row = rows.iter().find(|r| r.text == lesson_text).expect("a lesson row");
    assert_eq!((row.id, row.dream, row.evidence.len()), (lesson.event.id, Some(dream), 5));
    assert!(row.restored_by.is_some());
}

fn line_of_text(m: &MemoryStores, path: &str, text: &str) -> dreamlog::memory::BlameLine {
    m.blame("s", path, m.store().len()).unwrap().into_iter().find(|l| l.text == text).expect("the line")
}
