//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cluster;
pub mod hosted;
pub mod model_api;
pub mod server;

use std::path::{Path, PathBuf};

use dreamlog::{Actor, AppendBatch, Body, CanonicalJson, Draft, Note, Options, Store, SyncMode};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file or folder of the vendored real runs in `tests/data` (see its README).
pub fn data(rel: &str) -> PathBuf {
    let p = root().join("tests/data").join(rel);
    assert!(p.exists(), "test data missing: {}", p.display());
    p
}

/// Copies a folder (recursively) to `to`, so the same bytes lie at another path.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for e in std::fs::read_dir(from).expect("read folder") {
        let p = e.expect("dir entry").path();
        let dest = to.join(p.file_name().expect("file name"));
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).expect("copy file");
        }
    }
}

/// A finished command's stderr, asserting it failed.
pub fn fails(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "unexpectedly succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// Lines of JSON.
pub fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
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
    dreamlog::open(dir, Options { sync: SyncMode::None, ..Options::default() }).expect("open store")
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

/// Runs the `dreamlog` binary from the repository root with `args` (sync `none`),
/// feeding `stdin` when given; waits for it.
pub fn run_dreamlog(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_dreamlog"))
        .args(args)
        .env("DREAMLOG_SYNC", "none")
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dreamlog");
    let mut input = child.stdin.take().expect("stdin piped");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait for dreamlog")
}

/// `run_dreamlog` on the database at `db`.
pub fn dreamlog_on(db: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let db = db.to_str().expect("UTF-8 path");
    let mut all = vec!["--db", db];
    all.extend_from_slice(args);
    run_dreamlog(&all, stdin)
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

/// Every `*.schema.json` under schemas/ (sub-folders too), as (file, parsed schema).
pub fn schema_files() -> Vec<(PathBuf, serde_json::Value)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("schemas dir") {
            let p = entry.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.to_string_lossy().ends_with(".schema.json") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("schemas"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let v = serde_json::from_str(&std::fs::read_to_string(&f).expect("schema file")).expect("schema is JSON");
            (f, v)
        })
        .collect()
}

/// A registry holding every schema under schemas/ by its `$id` (which must be its path
/// under `https://dreamlog.dev/schemas/`), so `$ref`s between them resolve offline.
pub fn schema_registry() -> jsonschema::Registry<'static> {
    let dir = root().join("schemas");
    let mut registry = jsonschema::Registry::new();
    for (f, schema) in schema_files() {
        let id = schema["$id"].as_str().unwrap_or_else(|| panic!("{} has no $id", f.display())).to_owned();
        let rel = f.strip_prefix(&dir).expect("under schemas/").to_string_lossy().replace('\\', "/");
        assert_eq!(id, format!("https://dreamlog.dev/schemas/{rel}"), "$id of {}", f.display());
        registry = registry.add(id, schema).expect("add schema");
    }
    registry.prepare().expect("prepare registry")
}
