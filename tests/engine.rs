//! The engine over its backends: the same scenarios against RocksDB and the in-memory
//! log read back the same; a fault-injecting backend proves the engine's own invariants
//! (a failed write or sync poisons the store and nothing after it is acknowledged, a
//! torn group is never half visible, a retried batch is idempotent).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use dreamlog::embedded::RocksLog;
use dreamlog::store::{Fault, FaultyLog, Log, RamLog};
use dreamlog::LogError;
use dreamlog::{
    Actor, AppendBatch, Body, Draft, Error, EventId, ExpectedVersion, Kind, Memory, MemoryCommand, Options, Store,
};
use proptest::prelude::*;

/// A note with a fixed time, so the same draft has the same id on every backend.
fn note(stream: &str, n: u64) -> Draft {
    let mut d = common::note(stream, n);
    d.time = Some(1_700_000_000_000 + n);
    d
}

fn memory(store: &str, command: MemoryCommand, n: u64) -> Draft {
    let body = Body::Memory(Memory { store: store.into(), command, precondition: None, session: None });
    let mut d = Draft::new(format!("memory/{store}"), Actor::System("test".into()), body);
    d.time = Some(1_700_000_000_000 + n);
    d
}

fn faulty_memory() -> (Arc<FaultyLog>, Store) {
    let faulty = Arc::new(FaultyLog::new(Arc::new(RamLog::new())).expect("wrap"));
    let store = Store::with_log(faulty.clone(), Options::default()).expect("open");
    (faulty, store)
}

fn reopen(faulty: &Arc<FaultyLog>) -> Store {
    Store::with_log(faulty.clone(), Options::default()).expect("reopen")
}

fn ids(store: &Store) -> Vec<EventId> {
    store.read_range(0, usize::MAX).expect("read").iter().map(|e| e.id()).collect()
}

fn assert_clean(store: &Store) {
    let report = store.verify(|_| ()).expect("verify");
    assert!(report.is_clean(), "verify found {:?}", report.problems);
}

/// One step of a scenario: a batch of notes over four streams (with an optional
/// expectation), a memory command, or a retry of an earlier batch.
#[derive(Clone, Debug)]
enum Step {
    Notes(Vec<usize>, Option<(usize, u8)>),
    Memory(usize, u8),
    Retry(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (prop::collection::vec(0usize..4, 1..5), prop::option::of((0usize..4, 0u8..4)))
            .prop_map(|(s, e)| Step::Notes(s, e)),
        2 => (0usize..3, 0u8..3).prop_map(|(p, c)| Step::Memory(p, c)),
        1 => (0usize..30).prop_map(Step::Retry),
    ]
}

/// Everything a store reads back, as comparable text.
fn snapshot(store: &Store) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let all = store.read_range(0, usize::MAX).expect("range");
    out.insert("len".into(), store.len().to_string());
    out.insert("log".into(), format!("{:?}", all.iter().map(|e| (e.position, e.version, e.id())).collect::<Vec<_>>()));
    out.insert("streams".into(), format!("{:?}", store.streams().expect("streams")));
    for (name, _) in store.streams().expect("streams") {
        let events = store.read_stream(&name, 0, usize::MAX).expect("stream");
        out.insert(format!("stream {name}"), format!("{:?}", events.iter().map(|e| e.position).collect::<Vec<_>>()));
        out.insert(format!("head {name}"), format!("{:?}", store.stream_head(&name).expect("head")));
        if events.len() > 1 {
            let tail = store.read_stream(&name, 1, 2).expect("page");
            out.insert(format!("page {name}"), format!("{:?}", tail.iter().map(|e| e.position).collect::<Vec<_>>()));
        }
    }
    for kind in [Kind::Note, Kind::Memory] {
        let events = store.read_kind(kind, 0, usize::MAX).expect("kind");
        out.insert(format!("kind {kind:?}"), format!("{:?}", events.iter().map(|e| e.position).collect::<Vec<_>>()));
    }
    for path in ["/memories/a.md", "/memories/b.md", "/memories/c.md"] {
        out.insert(format!("path {path}"), format!("{:?}", store.memory_path_positions("m", path).expect("path")));
    }
    out.insert("sessions".into(), format!("{:?}", store.session_ids().expect("sessions")));
    for e in all.iter().take(5) {
        let hex = e.id().to_hex();
        out.insert(
            format!("resolve {}", &hex[..3]),
            format!("{:?}", store.resolve_id(&hex[..3]).map_err(|e| e.to_string())),
        );
        out.insert(format!("position {hex}"), format!("{:?}", store.position_of(&e.id()).expect("position")));
    }
    out
}

fn run(store: &Store, steps: &[Step]) -> Vec<String> {
    let mut sent: Vec<AppendBatch> = Vec::new();
    let mut outcomes = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let n = i as u64 * 10;
        let batch = match s {
            Step::Notes(streams, expect) => {
                let mut b = AppendBatch::new();
                for (j, st) in streams.iter().enumerate() {
                    let stream = if *st == 3 { "session/s-1".to_owned() } else { format!("s{st}") };
                    b.events.push(note(&stream, n + j as u64));
                }
                if let Some((st, how)) = expect {
                    let e = match how {
                        0 => ExpectedVersion::NoStream,
                        1 => ExpectedVersion::Exact(0),
                        2 => ExpectedVersion::StreamExists,
                        _ => ExpectedVersion::Any,
                    };
                    b = b.expect(format!("s{st}"), e);
                }
                b
            }
            Step::Memory(p, c) => {
                let path = ["/memories/a.md", "/memories/b.md", "/memories/c.md"][*p];
                let command = match c {
                    0 => MemoryCommand::Create { path: path.into(), file_text: format!("line {n}\n") },
                    1 => MemoryCommand::Delete { path: path.into() },
                    _ => MemoryCommand::Rename { old_path: path.into(), new_path: "/memories/c.md".into() },
                };
                AppendBatch::one(memory("m", command, n))
            }
            Step::Retry(k) => match sent.get(k % sent.len().max(1)) {
                Some(b) => b.clone(),
                None => continue,
            },
        };
        sent.push(batch.clone());
        outcomes.push(match store.append(batch) {
            Ok(out) => format!("{:?}", out.iter().map(|a| (a.position, a.version, a.existed)).collect::<Vec<_>>()),
            Err(e) => format!("refused: {e}"),
        });
    }
    outcomes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The in-memory backend is a second implementation of the log, not a mock: the
    /// same scenario (expectations, retries, memory paths, sessions) gives the same
    /// answers, the same log and the same indexes as RocksDB, before and after reopening.
    #[test]
    fn rocksdb_and_the_in_memory_log_agree(steps in prop::collection::vec(step(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let rocks = common::open(dir.path());
        let mem_log: Arc<dyn Log> = Arc::new(RamLog::new());
        let mem = Store::with_log(mem_log.clone(), Options::default()).unwrap();
        let a = run(&rocks, &steps);
        let b = run(&mem, &steps);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(snapshot(&rocks), snapshot(&mem));
        assert_clean(&rocks);
        assert_clean(&mem);
        rocks.close().unwrap();
        drop(rocks);
        mem.close().unwrap();
        drop(mem);
        let rocks = common::open(dir.path());
        let mem = Store::with_log(mem_log, Options::default()).unwrap();
        prop_assert_eq!(snapshot(&rocks), snapshot(&mem));
    }
}

#[test]
fn a_failed_sync_poisons_the_store_and_nothing_after_it_is_acknowledged() {
    let (faulty, store) = faulty_memory();
    for i in 0..5 {
        store.append(AppendBatch::one(note("s", i))).expect("append");
    }
    let acknowledged = ids(&store);
    faulty.inject(0, Fault::FailSync);
    let err = store.append(AppendBatch::one(note("s", 5))).expect_err("the sync failed");
    assert!(matches!(err, Error::Log(LogError::Poisoned(ref r)) if r.contains("syncing it failed")), "{err}");
    assert!(store.poisoned().is_some());
    // Nothing after the failure is acknowledged, and the failed write is not visible.
    let later = store.append(AppendBatch::one(note("t", 6))).expect_err("poisoned");
    assert!(matches!(later, Error::Log(LogError::Poisoned(_))), "{later}");
    assert_eq!(store.len(), 5);
    assert_eq!(ids(&store), acknowledged);
    assert_eq!(store.stream_version("s").expect("version"), Some(4));
    assert_eq!(faulty.writes(), 6, "the write after the failure never reached the backend");

    // A power loss drops what was never reported synced; every acknowledged event stays.
    store.close().expect("close");
    drop(store);
    faulty.power_loss().expect("power loss");
    let store = reopen(&faulty);
    assert_eq!(ids(&store), acknowledged);
    assert_clean(&store);
    store.append(AppendBatch::one(note("s", 5))).expect("a reopened store writes again");
    assert_eq!(store.len(), 6);
}

#[test]
fn concurrent_appends_around_a_failed_sync_lose_no_acknowledged_event() {
    let (faulty, store) = faulty_memory();
    faulty.inject(40, Fault::FailSync);
    let acknowledged = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..4 {
            let (store, acknowledged) = (&store, &acknowledged);
            s.spawn(move || {
                for i in 0..50u64 {
                    let batch = AppendBatch::one(note(&format!("w{t}"), t * 1000 + i));
                    match store.append(batch) {
                        Ok(out) => acknowledged.lock().unwrap().push(out[0].id),
                        Err(e) => assert!(matches!(e, Error::Log(LogError::Poisoned(_))), "{e}"),
                    }
                }
            });
        }
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(!acknowledged.is_empty() && acknowledged.len() < 200, "{} acknowledged", acknowledged.len());
    store.close().expect("close");
    drop(store);
    faulty.power_loss().expect("power loss");
    let store = reopen(&faulty);
    let mut stored = ids(&store);
    let mut want = acknowledged.clone();
    stored.sort();
    want.sort();
    assert_eq!(stored, want, "after the power loss the log holds exactly the acknowledged events");
    assert_clean(&store);
}

#[test]
fn a_failed_write_writes_nothing_and_poisons() {
    let (faulty, store) = faulty_memory();
    store.append(AppendBatch::one(note("s", 0))).expect("append");
    faulty.inject(0, Fault::FailWrite);
    let err = store.append(AppendBatch::new().push(note("s", 1)).push(note("u", 2))).expect_err("write fails");
    assert!(matches!(err, Error::Log(LogError::Poisoned(_))), "{err}");
    store.close().expect("close");
    drop(store);
    let store = reopen(&faulty);
    assert_eq!(store.len(), 1);
    assert_eq!(store.open_report().torn_records, 0);
    assert_clean(&store);
}

/// A group torn in the middle of its write (its first events stored, the commit marker
/// not moved) is invisible while the poisoned store runs and gone once it reopens; the
/// same batch then appends whole. Run over both backends.
#[test]
fn a_torn_group_is_never_half_visible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rocks: Arc<dyn Log> = Arc::new(RocksLog::open(dir.path(), &Options::default(), None).expect("open"));
    let mem: Arc<dyn Log> = Arc::new(RamLog::new());
    for inner in [rocks, mem] {
        let faulty = Arc::new(FaultyLog::new(inner.clone()).expect("wrap"));
        let store = Store::with_log(faulty.clone(), Options::default()).expect("open");
        for i in 0..3 {
            store.append(AppendBatch::one(note("s", i))).expect("append");
        }
        let before = ids(&store);
        let batch = AppendBatch::new()
            .push(note("s", 10))
            .push(note("session/torn", 11))
            .push(note("s", 12))
            .push(memory("m", MemoryCommand::Create { path: "/memories/a.md".into(), file_text: "x\n".into() }, 13));
        faulty.inject(0, Fault::Tear(2));
        let err = store.append(batch.clone()).expect_err("torn");
        assert!(err.to_string().contains("torn after 2 of 4 events"), "{err}");
        assert!(inner.stored_end().expect("end") > 3, "the backend holds the torn records ({})", inner.describe());

        // While the poisoned store runs, no read shows any of it.
        assert_eq!(store.len(), 3);
        assert_eq!(ids(&store), before);
        assert_eq!(store.read_stream("s", 0, usize::MAX).expect("stream").len(), 3);
        assert_eq!(store.stream_version("s").expect("version"), Some(2));
        assert_eq!(store.stream_version("session/torn").expect("version"), None);
        assert!(store.session_ids().expect("sessions").is_empty());
        assert_eq!(store.read_kind(Kind::Note, 0, 100).expect("kind").len(), 3);
        assert!(store.streams().expect("streams").iter().all(|(s, _)| s == "s"));
        let torn_id = batch.events[0].clone().into_sealed(1_700_000_000_010, vec![before[2]]).expect("seal").id;
        assert_eq!(store.position_of(&torn_id).expect("lookup"), None);
        assert!(matches!(store.get_at(3), Err(Error::Log(LogError::NoSuchPosition(3)))));

        // Reopened, the records past the marker are dropped and everything verifies.
        store.close().expect("close");
        drop(store);
        let store = Store::with_log(faulty.clone(), Options::default()).expect("reopen");
        assert_eq!(store.open_report().torn_records, 2, "{}", inner.describe());
        assert_eq!(ids(&store), before);
        assert_clean(&store);
        let out = store.append(batch).expect("the batch appends whole");
        assert!(out.iter().all(|a| !a.existed));
        assert_eq!(store.len(), 7);
        assert_eq!(store.memory_path_positions("m", "/memories/a.md").expect("path"), vec![6]);
        assert_clean(&store);
    }
}

/// A batch whose acknowledgement was lost (the write landed, its sync reported failure)
/// is retried by the client after the store reopens: nothing is written twice, and the
/// expectations the original satisfied are forgiven for the complete retry. (A retry is
/// recognised by its expectations: without one, the same content appended again to a
/// stream is a new event chained after the first.)
#[test]
fn a_retried_batch_is_idempotent() {
    let (faulty, store) = faulty_memory();
    store.append(AppendBatch::one(note("s", 0))).expect("append");
    let batch = AppendBatch::new()
        .push(note("s", 1))
        .push(note("t", 2))
        .expect("s", ExpectedVersion::Exact(0))
        .expect("t", ExpectedVersion::NoStream);
    faulty.inject(0, Fault::FailSync);
    store.append(batch.clone()).expect_err("sync failed");
    store.close().expect("close");
    drop(store);

    // The write survived (no power loss): the retry finds every event.
    let store = reopen(&faulty);
    assert_eq!(store.len(), 3);
    let out = store.append(batch.clone()).expect("retry");
    assert!(out.iter().all(|a| a.existed), "{out:?}");
    assert_eq!(out.iter().map(|a| a.position).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(store.len(), 3);
    // Retried again, and again: still nothing new.
    assert!(store.append(batch.clone()).expect("retry").iter().all(|a| a.existed));
    assert_eq!(store.len(), 3);
    assert_clean(&store);
    // A different batch under the same, now stale, expectation is refused.
    let other = AppendBatch::new().push(note("s", 9)).expect("s", ExpectedVersion::Exact(0));
    assert!(matches!(store.append(other), Err(Error::Log(LogError::WrongExpectedVersion { .. }))));
    store.close().expect("close");
    drop(store);

    // Had the write been lost with the power, the same retry writes it once.
    let (faulty, store) = faulty_memory();
    store.append(AppendBatch::one(note("s", 0))).expect("append");
    faulty.inject(0, Fault::FailSync);
    store.append(batch.clone()).expect_err("sync failed");
    store.close().expect("close");
    drop(store);
    faulty.power_loss().expect("power loss");
    let store = reopen(&faulty);
    assert_eq!(store.len(), 1);
    let out = store.append(batch).expect("retry");
    assert!(out.iter().all(|a| !a.existed));
    assert_eq!(store.len(), 3);
    assert_clean(&store);
}

/// Derived data is derived: `reindex` rebuilds every index from the log alone, and a
/// projector that fell behind (or never ran, as in a database written before
/// checkpoints) catches up when the store opens.
#[test]
fn indexes_rebuild_from_the_log() {
    let mem: Arc<dyn Log> = Arc::new(RamLog::new());
    let store = Store::with_log(mem.clone(), Options::default()).expect("open");
    let steps: Vec<Step> = (0..20)
        .map(|i| if i % 3 == 0 { Step::Memory(i % 3, (i % 2) as u8) } else { Step::Notes(vec![i % 4, 3], None) })
        .collect();
    run(&store, &steps);
    let before = snapshot(&store);
    let report = store.reindex(|_| ()).expect("reindex");
    assert_eq!(report.events, store.len());
    let kinds = report.entries.iter().find(|(s, _)| s == "kinds").map(|(_, n)| *n);
    assert_eq!(kinds, Some(store.len()), "one kind entry per event");
    assert_eq!(snapshot(&store), before);
    assert_clean(&store);
    store.close().expect("close");
    drop(store);

    // Wipe the derived spaces and forget the checkpoints: opening rebuilds them.
    for space in dreamlog::core::projection::Space::ALL {
        mem.index_clear(space).expect("clear");
    }
    for p in dreamlog::core::projection::PROJECTORS {
        mem.set_projected_to(p.name, Some(0)).expect("checkpoint");
    }
    let store = Store::with_log(mem.clone(), Options::default()).expect("reopen");
    assert_eq!(store.open_report().caught_up.len(), dreamlog::core::projection::PROJECTORS.len());
    assert_eq!(snapshot(&store), before);
    assert_clean(&store);

    // A stray entry is caught by verify as one a rebuild does not make.
    mem.index_put(&[dreamlog::core::projection::IndexEntry {
        space: dreamlog::core::projection::Space::Paths,
        key: dreamlog::core::projection::path_key("m", "/memories/zz.md", 1),
        value: Vec::new(),
    }])
    .expect("put");
    let report = store.verify(|_| ()).expect("verify");
    assert!(
        report.problems.iter().any(|p| p.problem.contains("paths index entry") && p.problem.contains("no event")),
        "{:?}",
        report.problems
    );
    // A lost entry is named too, at the event that should have it.
    let key = dreamlog::core::projection::kind_key(Kind::Note, 2).to_vec();
    let mut after = key.clone();
    after.push(0);
    mem.index_delete_range(dreamlog::core::projection::Space::Kinds, &key, &after).expect("delete");
    let report = store.verify(|_| ()).expect("verify");
    assert!(
        report.problems.iter().any(|p| p.position == Some(2) && p.problem.contains("kinds index has no entry")),
        "{:?}",
        report.problems
    );
}
