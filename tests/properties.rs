//! Property tests of the invariants: ids are stable, encodings round-trip, canonical JSON
//! is canonical, and the store agrees with a model of streams under random batches.

mod common;

use std::collections::BTreeMap;

use dreamlog::{
    Actor, AppendBatch, Body, CanonicalJson, Criterion, Draft, ExpectedVersion, Grade, GradeResult, Memory,
    MemoryCommand, Note, SealedEvent,
};
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        ("\\PC{1,10}", json_value())
            .prop_map(|(t, j)| Body::Note(Note { note_type: t, json: CanonicalJson::from_value(&j) })),
        ("\\PC{1,8}", 0.0f64..=1.0, "[a-z_]{1,12}", prop::collection::vec(("\\PC{1,8}", any::<Option<bool>>()), 0..4))
            .prop_map(|(s, score, result, crit)| Body::Grade(Grade {
                session: s,
                target: None,
                rubric: "r".into(),
                evaluator: "e".into(),
                score,
                result: GradeResult::from_name(&result),
                criteria: crit
                    .into_iter()
                    .map(|(name, passed)| Criterion { name, passed, score: None, note: None })
                    .collect(),
                meta: None,
            })),
        ("[a-z]{1,8}", "\\PC{0,30}", any::<u64>()).prop_map(|(store, text, line)| Body::Memory(Memory {
            store,
            command: MemoryCommand::Insert { path: "/memories/x.md".into(), insert_line: line, insert_text: text },
            precondition: None,
            session: None,
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonical_json_is_a_fixed_point(v in json_value()) {
        let c = CanonicalJson::from_value(&v);
        let again = CanonicalJson::parse(c.as_str()).unwrap();
        prop_assert_eq!(again.as_str(), c.as_str());
        prop_assert!(CanonicalJson::from_canonical_text(c.as_str().to_owned()).is_ok());
    }

    #[test]
    fn ids_are_stable_and_encodings_round_trip(b in body(), time in any::<u64>(), stream in "[a-z/]{1,20}") {
        let draft = Draft::new(stream, Actor::Agent("a".into()), b);
        let sealed = draft.seal(time, vec![]).unwrap();
        // Sealing again gives the same bytes and id.
        prop_assert_eq!(&draft.seal(time, vec![]).unwrap(), &sealed);
        // Decoding the bytes gives the same event; the audit finds nothing wrong.
        let decoded = SealedEvent::decode(sealed.header_bytes.clone(), sealed.body_bytes.clone()).unwrap();
        prop_assert_eq!(&decoded, &sealed);
        prop_assert!(SealedEvent::audit(&sealed.header_bytes, &sealed.body_bytes).is_empty());
        // Through the JSON form and back: the same id.
        let json = dreamlog::EventJson::from_sealed(&sealed, 0, 0);
        let text = json.to_line();
        let (_, back) = dreamlog::EventJson::parse(&text).unwrap().into_sealed().unwrap();
        prop_assert_eq!(back.id, sealed.id);
    }
}

/// Blame's origins as they were carried before they were found on the bytes: the two
/// texts split into lines, the shared lines counted pairwise from each end, the rest diffed.
fn carry_origins_by_lines(old: &[u64], old_text: &str, new_text: &str, origin: u64) -> Vec<u64> {
    use dreamlog::core::blame::split_lines;
    let (old_lines, new_lines) = (split_lines(old_text), split_lines(new_text));
    let head = old_lines.iter().zip(&new_lines).take_while(|(a, b)| a == b).count();
    let tail = old_lines[head..].iter().rev().zip(new_lines[head..].iter().rev()).take_while(|(a, b)| a == b).count();
    let (old_mid, new_mid) = (&old_lines[head..old_lines.len() - tail], &new_lines[head..new_lines.len() - tail]);
    let mut lines = old[..head].to_vec();
    for op in similar::capture_diff_slices(similar::Algorithm::Myers, old_mid, new_mid) {
        match op {
            similar::DiffOp::Equal { old_index, len, .. } => {
                lines.extend_from_slice(&old[head + old_index..head + old_index + len])
            }
            similar::DiffOp::Insert { new_len, .. } | similar::DiffOp::Replace { new_len, .. } => {
                lines.extend(std::iter::repeat_n(origin, new_len))
            }
            similar::DiffOp::Delete { .. } => {}
        }
    }
    lines.extend_from_slice(&old[old.len() - tail..]);
    lines
}

/// A text of few distinct lines (repeats, empty lines, with and without a final newline)
/// and an edit of it: a span replaced, or another text altogether.
fn text_and_edit() -> impl Strategy<Value = (String, String)> {
    // Short lines of two letters and `é` (two bytes: slices must stay on character
    // boundaries); up to ~200 bytes, past the 64-byte steps of the byte comparison.
    ("[abé\n]{0,120}", "[abé\n]{0,8}", any::<prop::sample::Index>(), any::<prop::sample::Index>(), "[abé\n]{0,120}")
        .prop_map(|(old, put, i, j, other)| {
            // Cut at character boundaries.
            let cuts: Vec<usize> = old.char_indices().map(|(k, _)| k).chain([old.len()]).collect();
            let (i, j) = (cuts[i.index(cuts.len())], cuts[j.index(cuts.len())]);
            let (from, to) = (i.min(j), i.max(j));
            let edited = format!("{}{put}{}", &old[..from], &old[to..]);
            (old, edited, other)
        })
        .prop_flat_map(|(old, edited, other)| (Just(old), prop_oneof![3 => Just(edited), 1 => Just(other)]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn blame_carries_the_origins_a_line_by_line_comparison_carries((old, new) in text_and_edit()) {
        use dreamlog::core::blame::{carry_origins, line_count, split_lines, Attributed, Origin};
        let origins: Vec<u64> = (1..=split_lines(&old).len() as u64).collect();
        let attributed = Attributed { text: old.clone(), lines: origins.iter().map(|&e| Origin::new(e)).collect() };
        let carried = carry_origins(attributed, new.clone(), Origin::new(0));
        let events: Vec<u64> = carried.lines.iter().map(|o| o.event).collect();
        prop_assert_eq!(&events, &carry_origins_by_lines(&origins, &old, &new, 0), "{:?} -> {:?}", old, new);
        prop_assert_eq!(events.len(), split_lines(&new).len());
        prop_assert_eq!(line_count(&new), split_lines(&new).len());
    }
}

proptest! {
    // Each case opens a RocksDB store: fewer cases, still hundreds of batches.
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn the_store_agrees_with_a_model_of_its_streams(
        batches in prop::collection::vec(
            (prop::collection::vec(0usize..4, 1..6), prop::option::of((0usize..4, 0u8..3))),
            1..25,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = common::open(dir.path());
        let mut model: BTreeMap<String, Vec<dreamlog::EventId>> = BTreeMap::new();
        let mut log: Vec<dreamlog::EventId> = Vec::new();
        for (i, (streams, expect)) in batches.into_iter().enumerate() {
            let mut batch = AppendBatch::new();
            for (j, s) in streams.iter().enumerate() {
                batch.events.push(common::note(&format!("s{s}"), (i * 10 + j) as u64));
            }
            let mut should_fail = false;
            if let Some((s, how)) = expect {
                let name = format!("s{s}");
                let current = model.get(&name).map(|v| v.len() as u64 - 1);
                let e = match how {
                    0 => ExpectedVersion::NoStream,
                    1 => ExpectedVersion::Exact(current.unwrap_or(0)),
                    _ => ExpectedVersion::StreamExists,
                };
                should_fail = match e {
                    ExpectedVersion::NoStream => current.is_some(),
                    ExpectedVersion::Exact(v) => current != Some(v),
                    ExpectedVersion::StreamExists => current.is_none(),
                    ExpectedVersion::Any => false,
                };
                batch.expectations.push((name, e));
            }
            match store.append(batch) {
                Ok(out) => {
                    prop_assert!(!should_fail);
                    for (a, s) in out.iter().zip(&streams) {
                        prop_assert_eq!(a.position, log.len() as u64);
                        let chain = model.entry(format!("s{s}")).or_default();
                        prop_assert_eq!(a.version, chain.len() as u64);
                        chain.push(a.id);
                        log.push(a.id);
                    }
                }
                Err(e) => prop_assert!(should_fail, "unexpected error {}", e),
            }
        }
        drop(store);
        let store = common::open(dir.path());
        prop_assert_eq!(store.len(), log.len() as u64);
        let all: Vec<_> = store.read_range(0, usize::MAX).unwrap().iter().map(|e| e.id()).collect();
        prop_assert_eq!(&all, &log);
        for (name, ids) in &model {
            let got: Vec<_> = store.read_stream(name, 0, usize::MAX).unwrap().iter().map(|e| e.id()).collect();
            prop_assert_eq!(&got, ids);
        }
        let clean = store.verify(|_| ()).unwrap().is_clean();
        prop_assert!(clean);
    }
}

fn memory_command() -> impl Strategy<Value = MemoryCommand> {
    let path = prop::sample::select(vec!["/memories/a.md", "/memories/b.md", "/memories/d/c.md", "/memories/d"]);
    prop_oneof![
        (path.clone(), "[a-c\n]{0,12}").prop_map(|(p, t)| MemoryCommand::Create { path: p.into(), file_text: t }),
        (path.clone(), "[a-c]{1,2}", "[a-c\n]{0,3}").prop_map(|(p, o, n)| MemoryCommand::StrReplace {
            path: p.into(),
            old_str: o,
            new_str: n
        }),
        (path.clone(), 0u64..4, "[a-c]{0,4}").prop_map(|(p, l, t)| MemoryCommand::Insert {
            path: p.into(),
            insert_line: l,
            insert_text: t
        }),
        path.clone().prop_map(|p| MemoryCommand::Delete { path: p.into() }),
        (path.clone(), path).prop_map(|(a, b)| MemoryCommand::Rename { old_path: a.into(), new_path: b.into() }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn memory_state_from_snapshot_and_tail_equals_full_replay(
        cmds in prop::collection::vec(memory_command(), 1..80),
        every in 1u64..6,
        fork_at in prop::option::of(0usize..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = common::open(dir.path());
        let snap = dreamlog::memory::MemoryStores::new(store.clone()).with_snapshot_every(every);
        let full = dreamlog::memory::MemoryStores::new(store.clone()).with_snapshot_every(0);
        for (i, c) in cmds.into_iter().enumerate() {
            let target = if fork_at.is_some_and(|f| i > f) { "fork" } else { "main" };
            if fork_at == Some(i) {
                snap.fork("main", "fork", store.len().max(1), Actor::Human("p".into())).ok();
            }
            let _ = snap.apply(target, c, dreamlog::memory::ApplyOptions::by(Actor::Human("p".into())));
        }
        for until in 0..=store.len() {
            for name in ["main", "fork"] {
                let (a, ha) = snap.state_until(name, until).unwrap();
                let (b, hb) = full.state_until(name, until).unwrap();
                prop_assert_eq!(&a, &b, "store {} until {}", name, until);
                prop_assert_eq!(ha, hb);
                prop_assert_eq!(a.state_hash(), b.state_hash());
            }
        }
    }

    #[test]
    fn equal_contents_give_equal_state_hashes_and_different_ones_differ(
        files in prop::collection::btree_map("/memories/[a-c]{1,3}(/[a-c]{1,2})?", "[a-z\n]{0,8}", 0..6),
        other in prop::collection::btree_map("/memories/[a-c]{1,3}(/[a-c]{1,2})?", "[a-z\n]{0,8}", 0..6),
    ) {
        let a = dreamlog::core::memory::MemoryState::from_files(files.clone());
        let reversed: Vec<(String, String)> = files.clone().into_iter().rev().collect();
        let b = dreamlog::core::memory::MemoryState::from_files(reversed);
        prop_assert_eq!(a.state_hash(), b.state_hash());
        let c = dreamlog::core::memory::MemoryState::from_files(other.clone());
        prop_assert_eq!(a.state_hash() == c.state_hash(), files == other);
    }
}

/// One event of a ledger case: a session's start (with a store or none, a task or none),
/// a link (to a store, maybe `--at` an earlier position), or a grade.
#[derive(Clone, Debug)]
enum LedgerOp {
    Start { session: u8, store: Option<u8>, task: Option<u8> },
    Link { session: u8, store: Option<u8>, at: Option<u8> },
    Grade { session: u8, score: u8, passed: bool },
}

fn ledger_op() -> impl Strategy<Value = LedgerOp> {
    prop_oneof![
        (0u8..6, prop::option::of(0u8..2), prop::option::of(0u8..3))
            .prop_map(|(session, store, task)| LedgerOp::Start { session, store, task }),
        (0u8..6, prop::option::of(0u8..2), prop::option::of(0u8..40)).prop_map(|(session, store, at)| LedgerOp::Link {
            session,
            store,
            at
        }),
        (0u8..6, 0u8..5, any::<bool>()).prop_map(|(session, score, passed)| LedgerOp::Grade { session, score, passed }),
    ]
}

fn ledger_draft(op: &LedgerOp) -> Draft {
    let store = |s: &Option<u8>| s.map(|s| format!("store{s}"));
    let v = match op {
        LedgerOp::Start { session, store: st, task } => serde_json::json!({
            "stream": format!("session/s{session}"), "kind": "session.start", "actor": "agent:p", "time": 1,
            "body": {"session": format!("s{session}"), "agent": "p", "task_id": task.map(|t| format!("t{t}")), "store": store(st)}}),
        LedgerOp::Link { session, store: st, at } => serde_json::json!({
            "stream": format!("links/s{session}"), "kind": "session.link", "actor": "human:p", "time": 1,
            "body": {"session": format!("s{session}"), "store": store(st), "meta": at.map(|a| serde_json::json!({"at": a}))}}),
        LedgerOp::Grade { session, score, passed } => serde_json::json!({
            "stream": format!("grades/s{session}"), "kind": "grade", "actor": "evaluator:p", "time": 1,
            "body": {"session": format!("s{session}"), "evaluator": "p", "rubric": format!("r{}", session % 2),
                     "score": f64::from(*score) / 4.0, "result": if *passed { "satisfied" } else { "failed" }}}),
    };
    dreamlog::EventJson::from_value(&v).unwrap().into_draft(None).unwrap()
}

/// The sessions that ran with `name` before `until`, folded from every event of the log
/// (what `ledger::sessions_with` did before the ledger index): the model the index is
/// held to.
fn sessions_with_model(store: &dreamlog::Store, name: &str, until: u64) -> Vec<dreamlog::ledger::SessionRun> {
    use std::collections::HashMap;
    let mut all = store.read_range(0, usize::MAX).unwrap();
    all.retain(|e| e.position < until);
    let mut records: HashMap<String, (u64, String, Option<dreamlog::Digest>)> = HashMap::new();
    let mut about: HashMap<String, (Option<String>, String)> = HashMap::new();
    for e in &all {
        if let Body::SessionStart(s) = &e.event.body {
            if let Some(st) = &s.store {
                records.insert(s.session.clone(), (e.position, st.clone(), s.memory_state));
            }
            about.insert(s.session.clone(), (s.task_id.clone(), s.agent.clone()));
        }
    }
    for e in &all {
        if let Body::SessionLink(l) = &e.event.body {
            if let Some(st) = &l.store {
                let at = l.meta.as_ref().and_then(|m| m.to_value().get("at").and_then(|a| a.as_u64()));
                let position = at.map(|p| p + 1).filter(|&p| p < e.position).unwrap_or(e.position);
                records.insert(l.session.clone(), (position, st.clone(), l.memory_state));
            }
        }
    }
    let mut runs: Vec<dreamlog::ledger::SessionRun> = records
        .into_iter()
        .filter(|(_, (_, st, _))| st == name)
        .map(|(session, (position, _, memory_state))| {
            let (task_id, agent) = about.remove(&session).map(|(t, a)| (t, Some(a))).unwrap_or_default();
            dreamlog::ledger::SessionRun {
                session,
                position,
                memory_state,
                score: None,
                passed: None,
                rubric: None,
                task_id,
                agent,
            }
        })
        .collect();
    runs.sort_by(|a, b| a.position.cmp(&b.position).then_with(|| a.session.cmp(&b.session)));
    // A session's last grade is its score, wherever it stands in the log.
    for e in &all {
        if let Body::Grade(g) = &e.event.body {
            if let Some(r) = runs.iter_mut().find(|r| r.session == g.session) {
                r.score = Some(g.score);
                r.passed = Some(g.result == GradeResult::Satisfied);
                r.rubric = Some(g.rubric.clone());
            }
        }
    }
    runs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The ledger index (`projection::Space::Ledger`) answers what folding every event
    /// answers: for each store, at every point of the log, and after the index is rebuilt
    /// from the log.
    #[test]
    fn the_ledger_index_agrees_with_a_fold_of_the_log(
        batches in prop::collection::vec(prop::collection::vec(ledger_op(), 1..5), 1..12)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = common::open(dir.path());
        for ops in &batches {
            let mut batch = AppendBatch::new();
            batch.events = ops.iter().map(ledger_draft).collect();
            store.append(batch).unwrap();
        }
        let len = store.len();
        let check = |store: &dreamlog::Store| -> Result<(), TestCaseError> {
            for until in 0..=len {
                for name in ["store0", "store1"] {
                    let got = dreamlog::ledger::sessions_with(store, name, until).unwrap();
                    let want = sessions_with_model(store, name, until);
                    prop_assert_eq!(
                        serde_json::to_value(&got).unwrap(),
                        serde_json::to_value(&want).unwrap(),
                        "{} until {}", name, until
                    );
                }
            }
            Ok(())
        };
        check(&store)?;
        store.reindex(|_| {}).unwrap();
        check(&store)?;
    }
}

/// One event of a marks case: a tag, a `memory.rules` note on a store's stream (valid or
/// not), or a dream reading one store and writing another (or the same).
#[derive(Clone, Debug)]
enum MarkOp {
    Tag { name: u8, position: u8 },
    Rules { store: u8, rules: u8 },
    Dream { store: u8, output: u8 },
}

fn mark_op() -> impl Strategy<Value = MarkOp> {
    prop_oneof![
        (0u8..3, any::<u8>()).prop_map(|(name, position)| MarkOp::Tag { name, position }),
        (0u8..3, 0u8..3).prop_map(|(store, rules)| MarkOp::Rules { store, rules }),
        (0u8..3, 0u8..3).prop_map(|(store, output)| MarkOp::Dream { store, output }),
    ]
}

fn mark_draft(op: &MarkOp) -> Draft {
    let v = match op {
        MarkOp::Tag { name, position } => serde_json::json!({
            "stream": "tags", "kind": "tag", "actor": "human:p", "time": 1,
            "body": {"name": format!("tag{name}"), "position": position}}),
        // Rules 0: a note of another type with the same content, not a switch.
        MarkOp::Rules { store, rules } => serde_json::json!({
            "stream": format!("memory/m{store}"), "kind": "note", "actor": "human:p", "time": 1,
            "body": {"type": if *rules == 0 { "memory.other" } else { "memory.rules" }, "json": {"rules": rules.max(&1)}}}),
        MarkOp::Dream { store, output } => serde_json::json!({
            "stream": format!("dreams/m{store}"), "kind": "dream", "actor": "dreamer:p@1", "time": 1,
            "body": {"dreamer": "p", "version": "1", "config": {}, "store": format!("m{store}"),
                     "base_state": "dd".repeat(32), "from_position": 0, "to_position": 0,
                     "output_store": format!("m{output}"), "result_state": "ee".repeat(32)}}),
    };
    dreamlog::EventJson::from_value(&v).unwrap().into_draft(None).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The marks index (`projection::Space::Marks`) answers what a scan of the log
    /// answers: the position each tag names, each store's rules switches, each store's
    /// dreams — before and after the index is rebuilt from the log.
    #[test]
    fn the_marks_index_agrees_with_a_scan_of_the_log(
        batches in prop::collection::vec(prop::collection::vec(mark_op(), 1..4), 1..10)
    ) {
        use dreamlog::core::projection::{be_u64, Space, MARK_RULES};
        let dir = tempfile::tempdir().unwrap();
        let store = common::open(dir.path());
        for ops in &batches {
            let mut batch = AppendBatch::new();
            batch.events = ops.iter().map(mark_draft).collect();
            store.append(batch).unwrap();
        }
        let all = store.read_range(0, usize::MAX).unwrap();
        let check = |store: &dreamlog::Store| -> Result<(), TestCaseError> {
            let mem = dreamlog::memory::MemoryStores::new(store.clone());
            for name in ["tag0", "tag1", "tag2", "tag3"] {
                let want = all.iter().rev().find_map(|e| match &e.event.body {
                    Body::Tag(t) if t.name == name => Some(t.position),
                    _ => None,
                });
                prop_assert_eq!(mem.tag_position(name).unwrap(), want, "tag {}", name);
            }
            let mut rules = Vec::new();
            store.index_prefix(Space::Marks, &[MARK_RULES], |p, middle, v| {
                rules.push((String::from_utf8_lossy(middle).into_owned(), p, be_u64(v)));
                true
            }).unwrap();
            let mut want: Vec<(String, u64, Option<u64>)> = all.iter().filter_map(|e| {
                let r = dreamlog::core::memory::Rules::switched_by(&e.event.body)?;
                let s = e.event.header.stream.strip_prefix("memory/")?;
                Some((format!("{s}\0"), e.position, Some(r.number())))
            }).collect();
            want.sort();
            prop_assert_eq!(rules, want);
            let dreams = dreamlog::dream::Dreams::new(mem.clone());
            let every = dreams.list(None).unwrap();
            for s in ["m0", "m1", "m2"] {
                let got: Vec<u64> = dreams.list(Some(s)).unwrap().iter().map(|d| d.position).collect();
                let want: Vec<u64> = every.iter()
                    .filter(|d| d.dream.store == s || d.dream.output_store == s)
                    .map(|d| d.position).collect();
                prop_assert_eq!(got, want, "dreams of {}", s);
            }
            Ok(())
        };
        check(&store)?;
        store.reindex(|_| {}).unwrap();
        check(&store)?;
    }
}

/// A step of a drift case: a ledger event, or a change of a store (a memory write).
#[derive(Clone, Debug)]
enum DriftOp {
    Ledger(LedgerOp),
    Change { store: u8 },
}

fn drift_op() -> impl Strategy<Value = DriftOp> {
    prop_oneof![
        3 => ledger_op().prop_map(DriftOp::Ledger),
        1 => (0u8..2).prop_map(|store| DriftOp::Change { store }),
    ]
}

/// Drift as it was computed before its fold (from `sessions_with` and the store's
/// stream): per state its first session and graded sessions, per change its events and
/// the sessions on each side — the segmentation the fold is held to.
#[allow(clippy::type_complexity)]
fn drift_model(
    mem: &dreamlog::memory::MemoryStores,
    name: &str,
) -> (u64, Vec<(u64, u64)>, Vec<(Vec<dreamlog::EventId>, u64, u64)>) {
    let store = mem.store();
    let runs: Vec<_> = dreamlog::ledger::sessions_with(store, name, store.len())
        .unwrap()
        .into_iter()
        .filter(|r| r.score.is_some())
        .collect();
    let changes: Vec<_> = store
        .read_stream(&format!("memory/{name}"), 0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.event.header.kind, dreamlog::Kind::Memory | dreamlog::Kind::Revert))
        .collect();
    // (runs' positions, changes before them)
    let mut segments: Vec<(Vec<u64>, Vec<dreamlog::EventId>)> = Vec::new();
    let mut pending = Vec::new();
    let mut next = 0;
    for r in &runs {
        while next < changes.len() && changes[next].position < r.position {
            pending.push(changes[next].id());
            next += 1;
        }
        match segments.last_mut() {
            Some(s) if pending.is_empty() => s.0.push(r.position),
            _ => segments.push((vec![r.position], std::mem::take(&mut pending))),
        }
    }
    let states = segments.iter().map(|s| (s.0[0], s.0.len() as u64)).collect();
    let changes = segments.windows(2).map(|w| (w[1].1.clone(), w[0].0.len() as u64, w[1].0.len() as u64)).collect();
    (runs.len() as u64, states, changes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Drift's fold kept across appends (as a server keeps it between requests) answers
    /// byte for byte what a fold made afresh answers, after every batch; and both cut the
    /// log into the states and changes that reading every session cuts it into.
    #[test]
    fn drift_kept_between_requests_answers_what_a_fresh_fold_answers(
        batches in prop::collection::vec(prop::collection::vec(drift_op(), 1..5), 1..12)
    ) {
        use dreamlog::ledger::{drift, DriftCache, DriftOptions};
        use dreamlog::memory::{ApplyOptions, MemoryStores};
        let dir = tempfile::tempdir().unwrap();
        let mem = MemoryStores::new(common::open(dir.path()));
        let by = || ApplyOptions::by(Actor::Human("p".into()));
        let mut files = 0;
        for name in ["store0", "store1"] {
            let create = MemoryCommand::Create { path: "/memories/a.md".into(), file_text: "a\n".into() };
            mem.apply(name, create, by()).unwrap();
        }
        let kept = DriftCache::default();
        let opts = DriftOptions { resamples: 50, ..DriftOptions::default() };
        for ops in &batches {
            let mut batch = AppendBatch::new();
            for op in ops {
                match op {
                    DriftOp::Ledger(l) => batch.events.push(ledger_draft(l)),
                    DriftOp::Change { store } => {
                        files += 1;
                        let create = MemoryCommand::Create { path: format!("/memories/f{files}.md"), file_text: "x\n".into() };
                        mem.apply(&format!("store{store}"), create, by()).unwrap();
                    }
                }
            }
            if !batch.events.is_empty() {
                mem.store().append(batch).unwrap();
            }
            for name in ["store0", "store1"] {
                let got = serde_json::to_value(kept.drift(&mem, name, opts).unwrap()).unwrap();
                let fresh = drift(&mem, name, opts).unwrap();
                prop_assert_eq!(&got, &serde_json::to_value(&fresh).unwrap(), "{}", name);
                let (sessions, states, changes) = drift_model(&mem, name);
                prop_assert_eq!(fresh.sessions, sessions);
                let got_states: Vec<(u64, u64)> = fresh.states.iter().map(|s| (s.first_session, s.grades.sessions)).collect();
                prop_assert_eq!(got_states, states);
                let got_changes: Vec<_> =
                    fresh.changes.iter().map(|c| (c.events.clone(), c.before.sessions, c.after.sessions)).collect();
                prop_assert_eq!(got_changes, changes);
            }
        }
    }
}
