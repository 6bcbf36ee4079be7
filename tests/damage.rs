//! Damage found under attack (the hotfix issue): a flipped byte in the write-ahead log, a
//! truncated WAL, a lost CURRENT. Each test failed on the main branch before its fix:
//! RocksDB's default recovery dropped the acknowledged events after a bad WAL record and
//! deleted the WAL, and a missing CURRENT made every command create a new empty database
//! over the old table files. Logs are compared by `export` (RocksDB rewrites its own LOG
//! and MANIFEST on open).

mod common;

use std::path::{Path, PathBuf};

use common::{fails, ok};
use dreamlog::{AppendBatch, Options, SyncMode};
use tempfile::tempdir;

fn dreamlog(db: &Path, args: &[&str]) -> std::process::Output {
    let note = r#"{"kind":"note","actor":"system:t","body":{"type":"t","json":1}}"#;
    common::dreamlog_on(db, args, (args[0] == "append").then_some(note))
}

/// A database whose last `in_wal` acknowledged events (of `total`) are only in the WAL:
/// the rest were flushed to table files. Closed like a process that exits (RocksDB does
/// not flush memtables on close), so the WAL holds them as after a kill.
fn database(dir: &Path, flushed: u64, in_wal: u64) -> Vec<dreamlog::EventId> {
    let store = dreamlog::open(dir, Options { sync: SyncMode::Fsync, ..Options::default() }).unwrap();
    let mut ids = Vec::new();
    let mut write = |from: u64, n: u64| {
        for chunk in (from..from + n).collect::<Vec<_>>().chunks(100) {
            let batch = chunk.iter().fold(AppendBatch::new(), |b, i| b.push(common::note("s", *i)));
            ids.extend(store.append(batch).unwrap().into_iter().map(|a| a.id));
        }
    };
    write(0, flushed);
    store.flush().unwrap();
    write(flushed, in_wal);
    store.close().unwrap();
    drop(store);
    ids
}

fn live_wal(dir: &Path) -> PathBuf {
    let wals = dreamlog::embedded::wal::wal_files(dir).unwrap();
    let wal = wals.into_iter().max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).unwrap();
    assert!(std::fs::metadata(&wal).unwrap().len() > 100_000, "the WAL holds the unflushed events");
    wal
}

fn tables(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".sst")).count()
}

#[test]
fn a_flipped_byte_in_the_wal_refuses_the_open_and_recover_reports_every_lost_event() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let ids = database(&db, 500, 2000);
    let wal = live_wal(&db);
    let mut bytes = std::fs::read(&wal).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    std::fs::write(&wal, &bytes).unwrap();

    // Every command refuses, naming the file and what follows; nothing changes.
    for args in [vec!["verify"], vec!["log", "--limit", "1"], vec!["append", "--stream", "x"]] {
        let err = fails(&dreamlog(&db, &args));
        assert!(err.contains("refusing to open") && err.contains(&wal.display().to_string()), "{args:?}: {err}");
        assert!(err.contains("the log is intact up to position") && err.contains("intact event(s) follow it"), "{err}");
    }
    assert_eq!(std::fs::read(&wal).unwrap(), bytes, "the damaged WAL is untouched");

    // recover keeps it aside, reports each lost event by position and id, then opens.
    let report_file = dir.path().join("report.json");
    let out = ok(&dreamlog(&db, &["recover", "--report", report_file.to_str().unwrap(), "--json"]));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(written["lost"], r["lost"], "the report on disk names what was dropped");
    let lost = r["lost"].as_array().unwrap();
    let events = r["events"].as_u64().unwrap();
    assert!(!lost.is_empty() && (500..2500).contains(&events), "{r}");
    // Every acknowledged event is kept, or reported lost by position (with its id when any
    // record still names it: the damaged record's unreadable part has none).
    let unidentified = r["unidentified"].as_array().unwrap();
    assert_eq!(lost.len() as u64 + unidentified.len() as u64 + events, 2500, "{r}");
    assert!(unidentified.len() < 100, "at most the damaged batch is unnamed: {r}");
    for l in lost {
        let p = l["position"].as_u64().unwrap();
        assert!(p >= events);
        assert_eq!(l["id"].as_str().unwrap(), ids[p as usize].to_hex());
    }
    assert_eq!(r["verified_clean"], true);
    let kept = r["kept_aside"].as_array().unwrap();
    assert!(!kept.is_empty());
    assert_eq!(std::fs::read(kept[0].as_str().unwrap()).unwrap(), bytes, "the damaged WAL is kept as it was");
    assert!(ok(&dreamlog(&db, &["verify"])).contains(&format!("{events} events")));
}

/// A database of 1,000 events in ten batches whose WAL ends inside its last record, as a
/// power loss mid-write leaves it.
fn torn_database(dir: &Path) -> PathBuf {
    let db = dir.join("db");
    database(&db, 0, 1000);
    let wal = live_wal(&db);
    let bytes = std::fs::read(&wal).unwrap();
    std::fs::write(&wal, &bytes[..bytes.len() - 20]).unwrap();
    db
}

#[test]
fn a_torn_final_record_is_tolerated_and_kept_aside_but_a_bad_complete_one_is_not() {
    let dir = tempdir().unwrap();
    // The torn batch is one the crash kept from being acknowledged (the count says 900).
    let db = torn_database(dir.path());
    std::fs::write(db.join("ACKED"), "dreamlog-acked v1 900 0\n").unwrap();
    let store = dreamlog::open(&db, Options::default()).unwrap();
    assert_eq!(store.len(), 900, "only the torn batch (never acknowledged under fsync) is gone");
    let (torn, _) = store.torn_tail().expect("the store says what it dropped");
    assert!(torn.torn_tail && torn.reason.contains("ends inside a record"), "{torn:?}");
    assert!(store.verify(|_| {}).unwrap().is_clean());
    store.close().unwrap();
    drop(store);
    let aside: Vec<PathBuf> = std::fs::read_dir(db.join("damaged")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(aside.len(), 1, "a copy of the torn WAL is kept");

    // The same torn record when that batch had been acknowledged (the count says 1000):
    // its loss is refused, at this open and the next, until `recover` accepts it.
    let dir = tempdir().unwrap();
    let db = torn_database(dir.path());
    for _ in 0..2 {
        let err = dreamlog::open(&db, Options::default()).err().expect("refused").to_string();
        assert!(err.contains("but 1000 were acknowledged") && err.contains("positions 900..999 are missing"), "{err}");
    }
    assert!(db.join("damaged").is_dir(), "the torn WAL was kept aside before RocksDB read it");

    // A flipped byte inside the final, complete record is damage, not a torn write.
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    database(&db, 0, 1000);
    let wal = live_wal(&db);
    let mut bytes = std::fs::read(&wal).unwrap();
    let n = bytes.len();
    bytes[n - 50] ^= 1;
    std::fs::write(&wal, &bytes).unwrap();
    let err = dreamlog::open(&db, Options::default()).err().expect("refused").to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn a_missing_current_is_an_error_naming_what_is_there_and_nothing_is_created_or_deleted() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    database(&db, 3000, 10);
    let before = ok(&dreamlog(&db, &["export"]));
    let count = tables(&db);
    assert!(count > 0);
    std::fs::remove_file(db.join("CURRENT")).unwrap();
    let listing = |db: &Path| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(db).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    let files = listing(&db);
    for args in [vec!["init"], vec!["verify"], vec!["append", "--stream", "x"], vec!["serve", "--addr", "127.0.0.1:0"]]
    {
        let err = fails(&dreamlog(&db, &args));
        assert!(
            err.contains("its CURRENT file is missing, but the folder holds a database's files"),
            "{args:?}: {err}"
        );
        assert!(err.contains("table files (.sst)") && err.contains("MANIFEST"), "{err}");
        assert_eq!(listing(&db), files, "{args:?} created or deleted nothing");
    }
    // recover restores CURRENT; the log is as it was.
    let out = ok(&dreamlog(&db, &["recover"]));
    assert!(out.contains("CURRENT was missing or named no MANIFEST: it now names MANIFEST-"), "{out}");
    assert_eq!(ok(&dreamlog(&db, &["export"])), before);
    assert_eq!(tables(&db), count);

    // init only creates in an empty or absent folder.
    let other = dir.path().join("notes");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("todo.txt"), "x").unwrap();
    let err = fails(&dreamlog(&other, &["init"]));
    assert!(err.contains("the folder is not empty (1 entries) and holds no database"), "{err}");
    assert!(ok(&dreamlog(&dir.path().join("fresh"), &["init"])).contains("0 events"));
}

/// `verify` checked events and their indexes, so a flipped byte elsewhere in a table
/// file (an index or filter block, another column family's data) could pass unseen;
/// `verify --deep` reads every block of every table file, and the answer is never clean.
#[test]
fn verify_deep_finds_a_flipped_byte_anywhere_in_the_table_files() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let store = dreamlog::open(&db, Options { sync: SyncMode::None, ..Options::default() }).unwrap();
        let mem = dreamlog::memory::MemoryStores::new(store.clone()).with_snapshot_every(4);
        for i in 0..40u64 {
            let text = format!("- lesson {i}\n");
            let cmd = dreamlog::MemoryCommand::Create { path: format!("/memories/n{i}.md"), file_text: text };
            mem.apply("live", cmd, dreamlog::memory::ApplyOptions::by(dreamlog::Actor::Human("t".into()))).unwrap();
        }
        let batch = (0..2000).fold(AppendBatch::new(), |b, i| b.push(common::note(&format!("s{}", i % 50), i)));
        store.append(batch).unwrap();
        mem.state("live").unwrap(); // writes its snapshots
        store.flush().unwrap();
        store.close().unwrap();
    }
    let clean = ok(&dreamlog(&db, &["verify", "--deep", "--json"]));
    let clean: serde_json::Value = serde_json::from_str(&clean).unwrap();
    assert!(clean["deep"]["table_files"].as_u64().unwrap() >= 5, "{clean}");
    assert!(clean["deep"]["snapshots"].as_u64().unwrap() >= 10, "{clean}");
    let files: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&db)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sst"))
            .collect();
        v.sort();
        v
    };
    // A sweep: bits flipped at 40 offsets spread over each table file (data, index and
    // filter blocks, properties, footer), each in its own copy, verified in process.
    let mut plain_missed = 0;
    let mut tried = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for k in 0..40 {
            let at = (k * bytes.len() / 40 + (k * 7) % 13).min(bytes.len() - 1);
            let copy = dir.path().join("sweep");
            let _ = std::fs::remove_dir_all(&copy);
            common::copy_tree(&db, &copy);
            let mut b = bytes.clone();
            b[at] ^= 1 << (k % 8);
            std::fs::write(copy.join(f.file_name().unwrap()), &b).unwrap();
            tried += 1;
            let Ok(store) = dreamlog::open(&copy, Options::default()) else { continue }; // refused at open: not silent
            let mem = dreamlog::memory::MemoryStores::new(store.clone());
            let deep = mem.verify_deep(|_| {}).map(|r| r.is_clean()).unwrap_or(false);
            assert!(!deep, "a flipped bit at byte {at} of {} passed verify --deep", f.display());
            plain_missed += usize::from(store.verify(|_| {}).map(|r| r.is_clean()).unwrap_or(false));
            store.close().unwrap();
        }
    }
    eprintln!("plain verify passed {plain_missed} of {tried} damaged copies; verify --deep none");
    assert!(plain_missed > 0, "the sweep reaches blocks plain verify never reads");

    // A flip in the snapshots' table file (derived data plain verify never reads; its
    // properties block names its column family): plain verify passes, --deep does not.
    let snapshots = files
        .iter()
        .find(|f| std::fs::read(f).unwrap().windows(b"snapshots".len()).any(|w| w == b"snapshots"))
        .expect("a table file of the snapshots column family");
    let copy = dir.path().join("copy-snapshots");
    common::copy_tree(&db, &copy);
    let file = copy.join(snapshots.file_name().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[40] ^= 0x10; // inside its first data block
    std::fs::write(&file, &bytes).unwrap();
    assert!(dreamlog(&copy, &["verify"]).status.success(), "plain verify does not read derived data");
    let out = dreamlog(&copy, &["verify", "--deep"]);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("snapshots") || text.contains("checksum") || text.contains("orrupt"), "{text}");
}

/// The smaller findings: each a clear refusal that writes nothing.
#[test]
fn bad_points_names_causes_and_paths_are_refused_and_write_nothing() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let create = r#"{"command":"create","path":"/memories/a.md","file_text":"a\n"}"#;
    ok(&common::dreamlog_on(&db, &["memory", "apply", "live"], Some(create)));
    let before = ok(&dreamlog(&db, &["export"]));
    // `--at ''` is an error, not head.
    let err = fails(&dreamlog(&db, &["memory", "view", "live", "--at", ""]));
    assert!(err.contains("an empty point"), "{err}");
    // Causes must name events of the log.
    let cites_nothing = format!(
        r#"{{"kind":"note","actor":"system:t","causes":["{}"],"body":{{"type":"t","json":1}}}}"#,
        "55".repeat(32)
    );
    let err = fails(&common::dreamlog_on(&db, &["append", "--stream", "x"], Some(&cites_nothing)));
    assert!(err.contains("cites 5555") && err.contains("which is not an event of the log"), "{err}");
    // Store names that are paths out of place, or display as something else.
    for name in ["..", "../x", "../../x", "live/", "%2e%2e", "a/./b", "evil\u{202E}gpj.md"] {
        let err = fails(&common::dreamlog_on(&db, &["memory", "apply", name], Some(create)));
        assert!(err.contains("store"), "{name:?}: {err}");
    }
    // Memory paths with a bidirectional override.
    let bidi = "{\"command\":\"create\",\"path\":\"/memories/txt.\u{202E}dm\",\"file_text\":\"x\"}";
    let out = common::dreamlog_on(&db, &["memory", "apply", "live"], Some(bidi));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("bidirectional control character U+202E"));
    assert_eq!(ok(&dreamlog(&db, &["export"])), before, "nothing was written");
}

/// A WAL cut exactly at a record boundary leaves no trace in its framing; the count of
/// acknowledged events dreamlog records under fsync still shows what went missing.
#[test]
fn a_wal_truncated_at_a_record_boundary_is_caught_by_the_acknowledged_count() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    database(&db, 200, 2000);
    let wal = live_wal(&db);
    std::fs::write(&wal, b"").unwrap(); // truncated to 0 %
    let err = fails(&dreamlog(&db, &["log", "--limit", "1"]));
    assert!(err.contains("the log holds 200 events, but 2200 were acknowledged"), "{err}");
    assert!(err.contains("positions 200..2199 are missing"), "{err}");
    let out = ok(&dreamlog(&db, &["recover", "--json"]));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["events"], 200);
    assert_eq!(r["unidentified"].as_array().unwrap().len(), 2000, "every missing position is reported");
    assert!(ok(&dreamlog(&db, &["verify"])).contains("200 events"), "the log as it is opens after recover");
}

/// Issue 30.4: a damaged `ACKED` is said loudly at open and in `verify`, never taken for
/// a count (one of u64::MAX drove `recover` to allocate every position up to it); an empty
/// or garbage `CURRENT` beside a valid MANIFEST is restored by `recover`.
#[test]
fn a_damaged_acked_or_current_is_named_and_recover_stays_bounded() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    database(&db, 500, 100);
    let before = ok(&dreamlog(&db, &["export"]));
    // u64::MAX, garbage, negative: damaged, said at open and by verify (exit 1).
    for bad in ["dreamlog-acked v1 18446744073709551615 0\n", "dreamlog-acked v1 -5 0\n", "\u{0}\u{7f}zz", ""] {
        std::fs::write(db.join("ACKED"), bad).unwrap();
        let out = dreamlog(&db, &["verify"]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        let (err, said) = (String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
        assert!(err.contains("WARNING:") && err.contains("ACKED is damaged"), "{bad:?}: {err}");
        assert!(said.contains("ACKED is damaged") && said.contains("cannot be checked"), "{bad:?}: {said}");
    }
    // recover finishes (nothing held per position), says why, and writes a good count.
    std::fs::write(db.join("ACKED"), "dreamlog-acked v1 18446744073709551615 0\n").unwrap();
    let report = dir.path().join("report.json");
    let out = ok(&dreamlog(&db, &["recover", "--report", report.to_str().unwrap()]));
    assert!(out.contains("ACKED is damaged") && out.contains("more than any log can hold"), "{out}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!((r["unidentified_count"].as_u64(), r["events"].as_u64()), (Some(0), Some(600)), "{r}");
    assert!(r["acked_damaged"].as_str().unwrap().contains("18446744073709551615"), "{r}");
    assert!(ok(&dreamlog(&db, &["verify"])).contains("all ids, body hashes, chains and indexes verify"));
    assert_eq!(ok(&dreamlog(&db, &["export"])), before, "nothing was lost or changed");

    // ACKED removed from a database that keeps one: said too.
    std::fs::remove_file(db.join("ACKED")).unwrap();
    let out = dreamlog(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ACKED was removed from a database that keeps one"));
    // …but a database never written under --sync fsync has none, and that is no problem.
    let plain = dir.path().join("plain");
    ok(&dreamlog(&plain, &["append", "--stream", "s"]));
    assert!(!plain.join("ACKED").exists());
    assert!(ok(&dreamlog(&plain, &["verify"])).contains("verify"));

    // CURRENT empty, or naming no MANIFEST: recover writes it again (the old one kept aside).
    for garbage in ["", "MANIFEST-999999\n", "../../etc/passwd\n"] {
        std::fs::write(db.join("CURRENT"), garbage).unwrap();
        assert!(!dreamlog(&db, &["export"]).status.success(), "{garbage:?}: the open refuses");
        let out = ok(&dreamlog(&db, &["recover"]));
        assert!(out.contains("CURRENT was missing or named no MANIFEST: it now names MANIFEST-"), "{garbage:?}: {out}");
        assert_eq!(ok(&dreamlog(&db, &["export"])), before, "{garbage:?}");
    }
    let kept: Vec<_> = std::fs::read_dir(db.join("damaged")).unwrap().flatten().collect();
    assert!(kept.iter().any(|d| d.path().join("CURRENT").is_file()), "the damaged CURRENT is kept aside");
}
