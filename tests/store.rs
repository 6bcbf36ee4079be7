//! The log's guarantees, scenario by scenario: open, write, reopen, assert.

mod common;

use std::time::Duration;

use common::{append_notes, note, open};
use dreamlog::LogError;
use dreamlog::{
    Action, ActionStatus, Actor, AppendBatch, Body, CanonicalJson, Draft, Error, ExpectedVersion, Kind, Options,
    SyncMode,
};
use tempfile::tempdir;

#[test]
fn positions_are_gapless_and_versions_count_per_stream() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    let batch = AppendBatch::new().push(note("a", 0)).push(note("b", 0)).push(note("a", 1));
    let out = store.append(batch).unwrap();
    assert_eq!(out.iter().map(|a| a.position).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(out.iter().map(|a| a.version).collect::<Vec<_>>(), vec![0, 0, 1]);
    assert!(out.iter().all(|a| !a.existed));
    assert_eq!(store.len(), 3);
    assert_eq!(store.stream_version("a").unwrap(), Some(1));
    assert_eq!(store.stream_version("nope").unwrap(), None);
}

#[test]
fn each_stream_is_a_hash_chain() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "s", 3);
    let events = store.read_stream("s", 0, 10).unwrap();
    assert_eq!(events.len(), 3);
    assert!(events[0].event.header.parents.is_empty());
    assert_eq!(events[1].event.header.parents, vec![events[0].id()]);
    assert_eq!(events[2].event.header.parents, vec![events[1].id()]);
}

#[test]
fn events_survive_reopen_with_the_same_ids_and_positions() {
    let dir = tempdir().unwrap();
    let ids: Vec<_> = {
        let store = open(dir.path());
        append_notes(&store, "s", 5);
        store.read_range(0, 100).unwrap().into_iter().map(|e| e.id()).collect()
    };
    let store = open(dir.path());
    assert_eq!(store.len(), 5);
    let again: Vec<_> = store.read_range(0, 100).unwrap().into_iter().map(|e| e.id()).collect();
    assert_eq!(ids, again);
    // The chain continues from the stored head after reopening.
    let out = store.append(AppendBatch::one(note("s", 5))).unwrap();
    assert_eq!((out[0].position, out[0].version), (5, 5));
    assert_eq!(store.get_at(5).unwrap().event.header.parents, vec![ids[4]]);
}

#[test]
fn expected_version_conflicts_name_the_current_version_and_write_nothing() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "s", 2);
    let err = store
        .append(AppendBatch::one(note("s", 9)).push(note("t", 0)).expect("s", ExpectedVersion::Exact(0)))
        .unwrap_err();
    assert!(matches!(err, Error::Log(LogError::WrongExpectedVersion { current: Some(1), .. })), "{err}");
    assert_eq!(err.to_string(), "stream \"s\": expected version 0, but the stream is at version 1");
    let err = store.append(AppendBatch::one(note("s", 9)).expect("s", ExpectedVersion::NoStream)).unwrap_err();
    assert!(err.to_string().contains("expected no stream, but the stream is at version 1"), "{err}");
    let err = store.append(AppendBatch::one(note("u", 0)).expect("u", ExpectedVersion::StreamExists)).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = store.append(AppendBatch::one(note("s", 9)).expect("s", ExpectedVersion::Exact(7))).unwrap_err();
    assert!(matches!(err, Error::Log(LogError::WrongExpectedVersion { .. })));
    assert_eq!(store.len(), 2, "a refused batch writes nothing");
    assert_eq!(store.stream_version("t").unwrap(), None);

    let ok = store.append(AppendBatch::one(note("s", 2)).expect("s", ExpectedVersion::Exact(1))).unwrap();
    assert_eq!(ok[0].version, 2);
    let ok = store.append(AppendBatch::one(note("new", 0)).expect("new", ExpectedVersion::NoStream)).unwrap();
    assert_eq!(ok[0].version, 0);
}

#[test]
fn reappending_an_identical_event_returns_its_existing_position() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "other", 1);
    let draft = note("s", 1).at(1_700_000_000_000);
    let first = store.append(AppendBatch::one(draft.clone())).unwrap();
    let mut stored = draft.clone();
    stored.parents = Some(vec![]);
    // Same event with its parents spelled out: identical id, nothing new written.
    let again = store.append(AppendBatch::one(stored)).unwrap();
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(again[0].position, first[0].position);
    assert!(again[0].existed);
    assert_eq!(store.len(), 2);
}

#[test]
fn a_retried_batch_with_a_stale_expected_version_is_idempotent() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "s", 2);
    let batch =
        AppendBatch::new().push(note("s", 10).at(1)).push(note("s", 11).at(2)).expect("s", ExpectedVersion::Exact(1));
    let first = store.append(batch.clone()).unwrap();
    assert_eq!(first.iter().map(|a| a.position).collect::<Vec<_>>(), vec![2, 3]);
    // The client did not hear the answer and retries: same ids, same positions, no write.
    let retry = store.append(batch).unwrap();
    assert_eq!(
        retry.iter().map(|a| (a.position, a.id)).collect::<Vec<_>>(),
        first.iter().map(|a| (a.position, a.id)).collect::<Vec<_>>()
    );
    assert!(retry.iter().all(|a| a.existed));
    assert_eq!(store.len(), 4);
    // A different batch with the same stale expectation is a conflict.
    let other = AppendBatch::one(note("s", 12).at(3)).expect("s", ExpectedVersion::Exact(1));
    assert!(matches!(
        store.append(other).unwrap_err(),
        Error::Log(LogError::WrongExpectedVersion { current: Some(3), .. })
    ));
}

#[test]
fn a_batch_is_atomic_when_one_event_is_invalid() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    let bad = Draft::new("", Actor::System("t".into()), note("x", 0).body);
    let err = store.append(AppendBatch::new().push(note("s", 0)).push(note("s", 1)).push(bad)).unwrap_err();
    assert!(matches!(err, Error::Log(LogError::InvalidEvent { index: 2, .. })), "{err}");
    assert!(err.to_string().contains("event #2 of the batch: invalid stream: must not be empty"), "{err}");
    assert_eq!(store.len(), 0);
    assert!(store.read_stream("s", 0, 10).unwrap().is_empty());
}

#[test]
fn a_parent_that_is_not_the_head_is_refused() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "s", 2);
    let first = store.get_at(0).unwrap().id();
    let mut d = note("s", 7);
    d.parents = Some(vec![first]);
    let err = store.append(AppendBatch::one(d)).unwrap_err();
    assert!(matches!(err, Error::Log(LogError::ParentMismatch { .. })), "{err}");
    assert!(err.to_string().contains("is not the head of stream \"s\""), "{err}");
    assert_eq!(store.len(), 2);
}

#[test]
fn oversized_bodies_and_batches_are_refused() {
    let dir = tempdir().unwrap();
    let store = dreamlog::open(
        dir.path(),
        Options { sync: SyncMode::None, max_body_bytes: 100, max_batch_events: 3, ..Options::default() },
    )
    .unwrap();
    let big = Body::Action(Action {
        session: "s".into(),
        name: "t".into(),
        call_id: None,
        input: CanonicalJson::parse(&format!("\"{}\"", "x".repeat(200))).unwrap(),
        output: None,
        status: ActionStatus::Ok,
        meta: None,
    });
    let err = store.append(AppendBatch::one(Draft::new("s", Actor::Agent("a".into()), big))).unwrap_err();
    assert!(matches!(err, Error::Log(LogError::BodyTooLarge { index: 0, limit: 100, .. })), "{err}");
    let batch = AppendBatch::new().push(note("s", 0)).push(note("s", 1)).push(note("s", 2)).push(note("s", 3));
    assert!(matches!(store.append(batch).unwrap_err(), Error::Log(LogError::BatchTooLarge { len: 4, limit: 3 })));
    assert_eq!(store.len(), 0);
}

#[test]
fn ids_resolve_from_unique_prefixes_and_ambiguity_lists_candidates() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "s", 300);
    let e = store.get_at(123).unwrap();
    let hex = e.id().to_hex();
    assert_eq!(store.resolve_id(&hex).unwrap(), e.id());
    assert_eq!(store.resolve_id(&hex[..12]).unwrap(), e.id());
    assert_eq!(store.resolve_id(&hex[..11].to_uppercase()).unwrap(), e.id(), "odd-length, upper-case prefix");
    assert_eq!(store.get(&e.id()).unwrap(), e);
    // With 300 ids, every one-character prefix is shared.
    match store.resolve_id(&hex[..1]).unwrap_err() {
        Error::AmbiguousPrefix { candidates, more, .. } => {
            assert_eq!(candidates.len(), 8);
            assert!(more);
            assert!(candidates.iter().all(|c| c.to_hex().starts_with(&hex[..1])));
        }
        other => panic!("expected ambiguity, got {other}"),
    }
    assert!(matches!(store.resolve_id("xyz").unwrap_err(), Error::BadIdPrefix(_)));
    let absent = if hex.starts_with("00000") { "fffff" } else { "00000" };
    let found = store.resolve_id(absent);
    assert!(found.is_err() || found.unwrap().to_hex().starts_with(absent));
    assert!(matches!(store.get_at(300).unwrap_err(), Error::Log(LogError::NoSuchPosition(300))));
}

#[test]
fn reads_by_range_stream_and_kind_return_log_order() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..10u64 {
        let action = Body::Action(Action {
            session: "s".into(),
            name: format!("tool{i}"),
            call_id: None,
            input: CanonicalJson::null(),
            output: None,
            status: ActionStatus::Unknown,
            meta: None,
        });
        store
            .append(AppendBatch::new().push(note(&format!("n{}", i % 3), i)).push(Draft::new(
                "acts",
                Actor::Agent("a".into()),
                action,
            )))
            .unwrap();
    }
    let range = store.read_range(5, 4).unwrap();
    assert_eq!(range.iter().map(|e| e.position).collect::<Vec<_>>(), vec![5, 6, 7, 8]);
    let s = store.read_stream("n1", 1, 100).unwrap();
    assert_eq!(s.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2]);
    assert!(s.iter().all(|e| e.event.header.stream == "n1"));
    let acts = store.read_kind(Kind::Action, 4, 3).unwrap();
    assert_eq!(acts.iter().map(|e| e.position).collect::<Vec<_>>(), vec![5, 7, 9]);
    assert!(acts.iter().all(|e| e.event.header.kind == Kind::Action));
    let streams = store.streams().unwrap();
    assert_eq!(streams, vec![("acts".into(), 9), ("n0".into(), 3), ("n1".into(), 2), ("n2".into(), 2)]);
}

#[test]
fn streams_whose_names_share_a_prefix_stay_apart() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "a", 2);
    append_notes(&store, "ab", 3);
    append_notes(&store, "a b", 1);
    assert_eq!(store.stream_version("a").unwrap(), Some(1));
    assert_eq!(store.read_stream("a", 0, 100).unwrap().len(), 2);
    assert_eq!(store.read_stream("ab", 0, 100).unwrap().len(), 3);
    drop(store);
    let store = open(dir.path());
    let out = store.append(AppendBatch::one(note("a", 2))).unwrap();
    assert_eq!(out[0].version, 2);
}

#[test]
fn concurrent_appenders_get_distinct_gapless_positions() {
    let dir = tempdir().unwrap();
    let store = dreamlog::open(dir.path(), Options { sync: SyncMode::Fsync, ..Options::default() }).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| store.append(AppendBatch::one(note(&format!("w{t}"), i))).unwrap()[0].clone())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort_by_key(|a| a.position);
    assert_eq!(all.len(), 800);
    for (i, a) in all.iter().enumerate() {
        assert_eq!(a.position, i as u64);
        assert_eq!(store.get_at(a.position).unwrap().id(), a.id);
    }
    for t in 0..16 {
        assert_eq!(store.stream_version(&format!("w{t}")).unwrap(), Some(49));
    }
    assert!(store.verify(|_| {}).unwrap().is_clean());
}

#[test]
fn concurrent_writers_with_expected_versions_on_one_stream_never_fork_it() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "hot", 1);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut won = 0;
                for i in 0..30 {
                    let v = store.stream_version("hot").unwrap().unwrap();
                    let b = AppendBatch::one(note("hot", t * 1000 + i)).expect("hot", ExpectedVersion::Exact(v));
                    match store.append(b) {
                        Ok(_) => won += 1,
                        Err(Error::Log(LogError::WrongExpectedVersion { .. })) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                won
            })
        })
        .collect();
    let won: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(store.stream_version("hot").unwrap(), Some(won));
    assert!(store.verify(|_| {}).unwrap().is_clean());
}

#[test]
fn a_subscription_catches_up_then_follows_live_without_gaps_or_duplicates() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "s", 700);
    let mut sub = store.subscribe(100);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..20 {
                let batch = (0..50).fold(AppendBatch::new(), |b, j| b.push(note(&format!("w{}", j % 4), i * 50 + j)));
                store.append(batch).unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 1600 {
        let e = sub.next_blocking(Duration::from_secs(10)).unwrap().expect("event within 10 s");
        seen.push(e.position);
    }
    writer.join().unwrap();
    assert_eq!(seen, (100..1700).collect::<Vec<_>>());
    assert!(sub.next_blocking(Duration::from_millis(50)).unwrap().is_none(), "nothing past the end");
}

#[test]
fn an_async_subscription_follows_the_log() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "s", 3);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut sub = store.subscribe(0);
        let writer = store.clone();
        let task = tokio::task::spawn_blocking(move || append_notes(&writer, "t", 5));
        let mut got = Vec::new();
        for _ in 0..8 {
            let e = tokio::time::timeout(Duration::from_secs(10), sub.next()).await.expect("in time").unwrap();
            got.push(e.position);
        }
        task.await.unwrap();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
    });
}

#[test]
fn opening_a_missing_database_without_create_says_how_to_make_one() {
    let dir = tempdir().unwrap();
    let err = dreamlog::open(dir.path().join("none"), Options { create_if_missing: false, ..Options::default() })
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("run `dreamlog init`"), "{err}");
}

#[test]
fn the_store_refuses_writes_after_close() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "s", 1);
    store.close().unwrap();
    assert!(matches!(store.append(AppendBatch::one(note("s", 1))).unwrap_err(), Error::Log(LogError::Closed)));
}

/// Stores sharing one memory budget (a server's tenants): past the shared write-buffer
/// budget their memtables are flushed to table files, which stores with their own
/// (default, 64 MiB) memtables do not do for the same writes; everything stays readable.
#[test]
fn stores_sharing_a_memory_budget_flush_past_it() {
    let dir = tempdir().unwrap();
    let shared = dreamlog::SharedCache::new(8 << 20, 1 << 20);
    let opts = || Options { sync: SyncMode::None, ..Options::default() };
    let paths = ["a", "b", "own"].map(|n| dir.path().join(n));
    let stores = [
        dreamlog::open_with(&paths[0], opts(), Some(&shared)).unwrap(),
        dreamlog::open_with(&paths[1], opts(), Some(&shared)).unwrap(),
        dreamlog::open(&paths[2], opts()).unwrap(),
    ];
    let big = |i: u64| {
        let body = Body::Note(dreamlog::Note {
            note_type: "big".into(),
            json: CanonicalJson::from_value(&serde_json::json!({"i": i, "pad": "x".repeat(1000)})),
        });
        Draft::new("s", Actor::System("test".into()), body)
    };
    // About 3 MiB into each store, in batches.
    for store in &stores {
        for b in 0..30u64 {
            let mut batch = AppendBatch::new();
            for i in 0..100 {
                batch = batch.push(big(b * 100 + i));
            }
            store.append(batch).unwrap();
        }
    }
    let tables = |p: &std::path::Path| {
        std::fs::read_dir(p)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sst"))
            .count()
    };
    // Flushes run in the background: wait for them (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (tables(&paths[0]) == 0 || tables(&paths[1]) == 0) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(tables(&paths[0]) > 0 && tables(&paths[1]) > 0, "the shared budget flushed both stores");
    assert_eq!(tables(&paths[2]), 0, "a store with its own memtables keeps 3 MiB in memory");
    for store in &stores {
        assert_eq!(store.len(), 3000);
        let last = store.get_at(2999).unwrap();
        assert_eq!(store.get(&last.id()).unwrap().position, 2999);
    }
}

/// Issue 30.5, the order: when a subscription wants room past the shared budget, the
/// subscriptions that have held events longest without handing one out go first, only as
/// many as make room, and a dropped one's next read names the first position it had not
/// handed out. (The server's tails are these subscriptions; `tests/hardening.rs` drives
/// them over HTTP, where which tail holds events when its socket fills is up to timing.)
#[test]
fn a_shared_tail_budget_drops_the_subscription_idle_longest_first() {
    use dreamlog::store::TailBudget;
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    let text = "x".repeat(64 << 10);
    for i in 0..12u64 {
        let body = Body::Note(dreamlog::core::Note {
            note_type: "big".into(),
            json: CanonicalJson::from_value(&serde_json::json!({ "i": i, "text": text })),
        });
        store.append(AppendBatch::new().push(Draft::new("big", Actor::System("t".into()), body))).unwrap();
    }
    // Each subscription reads ahead three of these events (256 KiB each at most); two
    // fit, holding two each after handing one out; a third's read-ahead does not.
    let budget = TailBudget::new(400 << 10);
    let wait = Duration::from_secs(5);
    let mut a = store.subscribe_within(0, budget.clone());
    assert_eq!(a.next_blocking(wait).unwrap().unwrap().position, 0);
    std::thread::sleep(Duration::from_millis(200));
    let mut b = store.subscribe_within(0, budget.clone());
    assert_eq!(b.next_blocking(wait).unwrap().unwrap().position, 0);
    assert_eq!(budget.dropped(), 0, "both fit");
    let before = budget.held();
    // Both idle past the second a tail may idle before it can be dropped; `a` longer.
    std::thread::sleep(Duration::from_millis(1300));
    let mut c = store.subscribe_within(0, budget.clone());
    assert_eq!(c.next_blocking(wait).unwrap().unwrap().position, 0);
    assert_eq!(budget.dropped(), 1, "one drop made room");
    assert!(budget.held() <= budget.limit(), "{} held of {} ({before} before)", budget.held(), budget.limit());
    match a.next_blocking(wait) {
        Err(Error::TailDropped { position, .. }) => assert_eq!(position, 1, "the first event `a` had not handed out"),
        other => panic!("`a`, idle longest, was not dropped: {other:?}"),
    }
    // `b` and `c` go on without a gap to the log's end.
    for s in [&mut b, &mut c] {
        let rest: Vec<u64> =
            std::iter::from_fn(|| s.next_blocking(Duration::from_millis(200)).unwrap()).map(|e| e.position).collect();
        assert_eq!(rest, (1..12).collect::<Vec<u64>>());
    }
    // A subscription resumed where `a` was told to goes on from there.
    let mut resumed = store.subscribe_within(1, budget.clone());
    assert_eq!(resumed.next_blocking(wait).unwrap().unwrap().position, 1);
}
