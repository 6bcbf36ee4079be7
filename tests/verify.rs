//! `verify` finds any flipped byte (DESIGN invariant 3): bytes are changed through
//! RocksDB directly, behind the store's back, and verify must name exactly those events.

mod common;

use common::{append_notes, open};
use dreamlog::store::{CF_IDS, CF_LOG, CF_STREAMS};
use tempfile::tempdir;

fn raw_db(path: &std::path::Path) -> rocksdb::DB {
    let opts = rocksdb::Options::default();
    rocksdb::DB::open_cf(&opts, path, dreamlog::store::ALL_CFS).expect("open raw")
}

fn flip(path: &std::path::Path, position: u64, offset_from: impl Fn(&[u8]) -> usize) {
    let db = raw_db(path);
    let cf = db.cf_handle(CF_LOG).unwrap();
    let key = position.to_be_bytes();
    let mut rec = db.get_cf(cf, key).unwrap().expect("record");
    let at = offset_from(&rec);
    rec[at] ^= 0x01;
    db.put_cf(cf, key, rec).unwrap();
}

#[test]
fn a_clean_store_verifies_with_counts() {
    let dir = tempdir().unwrap();
    let store = open(dir.path());
    append_notes(&store, "a", 10);
    append_notes(&store, "b", 5);
    let r = store.verify(|_| {}).unwrap();
    assert!(r.is_clean(), "{:?}", r.problems);
    assert_eq!((r.events, r.streams, r.index_entries), (15, 2, 45));
}

#[test]
fn verify_names_exactly_the_events_whose_header_or_body_bytes_were_flipped() {
    let dir = tempdir().unwrap();
    let ids = {
        let store = open(dir.path());
        append_notes(&store, "a", 20);
        append_notes(&store, "b", 20);
        let ids: Vec<_> = store.read_range(0, 100).unwrap().iter().map(|e| e.id()).collect();
        store.close().unwrap();
        ids
    };
    // A byte inside the stream name of the header at 7, and the last body byte at 30.
    flip(dir.path(), 7, |_| 45 + 3);
    flip(dir.path(), 30, |rec| rec.len() - 2);
    let store = open(dir.path());
    let r = store.verify(|_| {}).unwrap();
    let bad: std::collections::BTreeSet<u64> = r.problems.iter().filter_map(|p| p.position).collect();
    assert_eq!(bad, [7u64, 30].into_iter().collect(), "problems: {:#?}", r.problems);
    let at7: Vec<_> = r.problems.iter().filter(|p| p.position == Some(7)).collect();
    assert!(at7.iter().any(|p| p.problem.contains("which the id index does not hold")), "{at7:#?}");
    assert!(at7.iter().all(|p| p.id.as_deref() == Some(ids[7].to_hex().as_str())), "named by its indexed id");
    let at30: Vec<_> = r.problems.iter().filter(|p| p.position == Some(30)).collect();
    assert!(at30.iter().any(|p| p.problem.contains("body hash")), "{at30:#?}");
    assert!(at30.iter().all(|p| p.id.as_deref() == Some(ids[30].to_hex().as_str())));
}

#[test]
fn verify_finds_a_flipped_byte_anywhere_in_a_record() {
    let dir = tempdir().unwrap();
    {
        let store = open(dir.path());
        append_notes(&store, "s", 3);
        store.close().unwrap();
    }
    let len = {
        let db = raw_db(dir.path());
        db.get_cf(db.cf_handle(CF_LOG).unwrap(), 1u64.to_be_bytes()).unwrap().unwrap().len()
    };
    for offset in 0..len {
        flip(dir.path(), 1, |_| offset);
        let r = open(dir.path()).verify(|_| {}).unwrap();
        assert!(
            r.problems.iter().any(|p| p.position == Some(1)),
            "flipping byte {offset} of the record went unnoticed"
        );
        flip(dir.path(), 1, |_| offset); // flip back
        assert!(open(dir.path()).verify(|_| {}).unwrap().is_clean(), "restoring byte {offset}");
    }
}

#[test]
fn verify_reports_broken_and_stray_index_entries() {
    let dir = tempdir().unwrap();
    {
        let store = open(dir.path());
        append_notes(&store, "s", 4);
        store.close().unwrap();
    }
    {
        let db = raw_db(dir.path());
        // Point the stream entry of version 2 at position 3, and add a stray id.
        let mut k = b"s\0".to_vec();
        k.extend_from_slice(&2u64.to_be_bytes());
        db.put_cf(db.cf_handle(CF_STREAMS).unwrap(), &k, 3u64.to_be_bytes()).unwrap();
        db.put_cf(db.cf_handle(CF_IDS).unwrap(), [7u8; 32], 99u64.to_be_bytes()).unwrap();
    }
    let r = open(dir.path()).verify(|_| {}).unwrap();
    let text: Vec<String> = r.problems.iter().map(|p| format!("{:?}: {}", p.position, p.problem)).collect();
    assert!(text.iter().any(|t| t.starts_with("Some(2): stream index entry")), "{text:#?}");
    assert!(text.iter().any(|t| t.contains("points past the end of the log")), "{text:#?}");
    assert!(text.iter().any(|t| t.contains("id index holds 5 entries for 4 events")), "{text:#?}");
}
