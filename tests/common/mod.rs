//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use dreamlog::{Actor, AppendBatch, Body, CanonicalJson, Draft, Note, Options, Store, SyncMode};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every golden vector file, sorted.
pub fn vector_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/vectors"))
        .expect("tests/vectors exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Opens a store in `dir` with sync `none` (tests that need fsync say so).
pub fn open(dir: &Path) -> Store {
    Store::open(dir, Options { sync: SyncMode::None, ..Options::default() }).expect("open store")
}

/// A note event on `stream` whose content is `n`.
pub fn note(stream: &str, n: u64) -> Draft {
    let body = Body::Note(Note {
        note_type: "test".into(),
        json: CanonicalJson::parse(&format!("{{\"n\":{n}}}")).expect("json"),
    });
    Draft::new(stream, Actor::System("test".into()), body)
}

/// Appends `n` notes to `stream` one batch at a time.
pub fn append_notes(store: &Store, stream: &str, n: u64) {
    for i in 0..n {
        store.append(AppendBatch::one(note(stream, i))).expect("append");
    }
}

/// A finished command's stdout, asserting it succeeded (its stderr and stdout otherwise).
pub fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}
