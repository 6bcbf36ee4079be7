//! Guarding a folder: `dreamlog --remote URL watch DIR --store S` against a real server,
//! with real file operations — a burst of hundreds of files (one atomic batch), a renamed
//! directory (renames that keep blame), an edit, files that are not memory — then the
//! burst reverted as a unit and `memory checkout` writing the store back, refusing
//! changes it has not recorded.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{client, get, Server};
use serde_json::Value;
use tempfile::tempdir;

fn history(server: &Server) -> Vec<Value> {
    let (status, h) = get(&client(), &server.url("/v1/memory/notes/history"), None);
    if status != 200 {
        return Vec::new();
    }
    // The memory commands (a new store's first event is its memory rules note).
    let events = h["events"].as_array().cloned().unwrap_or_default();
    events.into_iter().filter(|e| e["kind"] == "memory").collect()
}

/// Waits until the store's history has `n` events (the watcher records after a quiet
/// interval), or fails after 20 s.
fn wait_for(server: &Server, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let h = history(server);
        if h.len() >= n {
            return h;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{} of {n} events recorded: {h:?}", h.len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn watcher(server: &Server, dir: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_dreamlog"))
        .args(["--remote", &server.base, "--json", "watch"])
        .arg(dir)
        .args(["--store", "notes", "--quiet-ms", "500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It records the folder's starting content before it watches.
    wait_for(server, 1);
    child
}

fn stop(mut child: Child) -> Vec<Value> {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "watch did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    common::json_lines(&String::from_utf8(out.stdout).unwrap())
}

fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dreamlog")).args(["--remote", &server.base]).args(args).output().unwrap()
}

#[test]
fn a_watched_folder_is_recorded_burst_by_burst_and_checked_out_again() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let folder = dir.path().join("memory");
    std::fs::create_dir_all(folder.join("projects/alpha")).unwrap();
    std::fs::write(folder.join("projects/alpha/plan.md"), "- ship the importer\n- write tests\n").unwrap();
    std::fs::write(folder.join(".editor-swap"), "not memory").unwrap();
    let w = watcher(&server, &folder);
    let first = history(&server);
    assert_eq!(first.len(), 1, "the starting content, hidden files left out: {first:?}");
    assert_eq!(first[0]["actor"], "system:watch");

    // A consolidation run rewriting the folder: 300 new files at once → one batch.
    for i in 0..300 {
        std::fs::write(folder.join(format!("topic-{i:03}.md")), format!("- fact {i}\n")).unwrap();
    }
    // (That nothing more is recorded for it shows below: the next changes are exactly
    // the next three commands, and the watcher's batches are exactly [2, 300, 3].)
    let h = wait_for(&server, 301);
    assert_eq!(h.len(), 301, "one command per new file: {}", h.len());
    let burst_positions: Vec<u64> = h[1..].iter().map(|e| e["position"].as_u64().unwrap()).collect();
    assert_eq!(burst_positions.last().unwrap() - burst_positions[0], 299, "one contiguous atomic batch");

    // A renamed directory and an edit: renames keep each line's origin.
    std::fs::rename(folder.join("projects"), folder.join("archive")).unwrap();
    std::fs::write(folder.join("topic-000.md"), "- fact 0, revised\n").unwrap();
    std::fs::write(folder.join("binary.md"), [0xff, 0xfe, 0x00]).unwrap();
    // The file's rename, then the emptied old directory's removal (directories are state).
    let h = wait_for(&server, 304);
    assert_eq!(h.len(), 304, "the three commands of these changes and nothing else: {:?}", &h[301..]);
    let last: Vec<&str> = h[301..].iter().map(|e| e["body"]["command"]["command"].as_str().unwrap()).collect();
    assert_eq!(last, ["rename", "delete", "str_replace"], "{:?}", &h[301..]);
    assert_eq!(h[302]["body"]["command"]["path"], "/memories/projects");
    let blame = common::ok(&cli(&server, &["--json", "memory", "blame", "notes", "/memories/archive/alpha/plan.md"]));
    let lines = common::json_lines(&blame);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], first[0]["id"], "the line still comes from the first recording: {blame}");

    let batches = stop(w);
    // The first batch also holds the new store's rules note; the directory rename is the
    // file's rename and the removal of the emptied directory.
    assert_eq!(batches.iter().map(|b| b["commands"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 300, 3]);

    // Revert the consolidation run as a unit (everything after the starting content),
    // then check the store out into the folder: the burst's files are gone.
    let before_burst = first[0]["position"].as_u64().unwrap().to_string();
    common::ok(&cli(&server, &["memory", "revert", "notes", "--to", &before_burst, "--reason", "bad consolidation"]));
    // The folder holds a state the store recorded: checkout may overwrite it.
    let c: Value = serde_json::from_str(&common::ok(&cli(
        &server,
        &["--json", "memory", "checkout", "notes", folder.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!(c["removed"].as_array().unwrap().len(), 301, "{c}");
    assert_eq!(c["written"].as_array().unwrap().len(), 1, "{c}");
    assert!(folder.join("projects/alpha/plan.md").exists() && !folder.join("archive").exists());
    assert!(folder.join("binary.md").exists(), "what is not memory is left alone");

    // An unrecorded change: checkout refuses (exit 4), writes nothing; --force overwrites.
    std::fs::write(folder.join("projects/alpha/plan.md"), "- edited while nothing watched\n").unwrap();
    let refused = cli(&server, &["memory", "checkout", "notes", folder.to_str().unwrap(), "--at", &before_burst]);
    assert_eq!(refused.status.code(), Some(4));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("has changes the memory store has not recorded")
            && err.contains("/memories/projects/alpha/plan.md"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("projects/alpha/plan.md")).unwrap(),
        "- edited while nothing watched\n"
    );
    common::ok(&cli(&server, &["memory", "checkout", "notes", folder.to_str().unwrap(), "--force"]));
    assert_eq!(
        std::fs::read_to_string(folder.join("projects/alpha/plan.md")).unwrap(),
        "- ship the importer\n- write tests\n"
    );
    assert!(server.stop().success());
}

#[test]
fn empty_directories_are_recorded_and_checked_out() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let folder = dir.path().join("memory");
    std::fs::create_dir_all(folder.join("inbox")).unwrap();
    std::fs::write(folder.join("notes.md"), "- one\n").unwrap();
    let w = watcher(&server, &folder);
    let h = wait_for(&server, 2);
    let made: Vec<(&str, &str)> = h
        .iter()
        .map(|e| (e["body"]["command"]["command"].as_str().unwrap(), e["body"]["command"]["path"].as_str().unwrap()))
        .collect();
    assert_eq!(made, [("create", "/memories/notes.md"), ("mkdir", "/memories/inbox")], "{h:?}");
    // An emptied directory: the file goes, the directory stays; then the directory goes.
    std::fs::create_dir_all(folder.join("archive")).unwrap();
    std::fs::rename(folder.join("notes.md"), folder.join("archive/notes.md")).unwrap();
    let h = wait_for(&server, 3);
    assert_eq!(h[2]["body"]["command"]["command"], "rename", "{:?}", &h[2..]);
    std::fs::remove_dir(folder.join("inbox")).unwrap();
    let h = wait_for(&server, 4);
    assert_eq!(
        (h[3]["body"]["command"]["command"].as_str(), h[3]["body"]["command"]["path"].as_str()),
        (Some("delete"), Some("/memories/inbox"))
    );
    stop(w);
    // Checked out as of before the directory went: the empty directory is there again.
    let at = h[2]["position"].as_u64().unwrap().to_string();
    let out = dir.path().join("copy");
    common::ok(&cli(&server, &["memory", "checkout", "notes", out.to_str().unwrap(), "--at", &at]));
    assert!(out.join("inbox").is_dir() && out.join("archive/notes.md").is_file());
    assert!(server.stop().success());
}

/// Issue 30.6: file names come from the file system as they are (macOS keeps them
/// decomposed): a watched file is recorded under its name in Unicode NFC; a second name
/// equal in NFC, or one with an invisible character, is skipped with why.
#[test]
fn file_names_are_recorded_in_nfc_and_invisible_ones_skipped() {
    let dir = tempdir().unwrap();
    let folder = dir.path().join("memory");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("cafe\u{301}.md"), "decomposed\n").unwrap();
    std::fs::write(folder.join("caf\u{e9}.md"), "composed\n").unwrap();
    std::fs::write(folder.join("zw\u{200b}.md"), "hidden\n").unwrap();
    let read = dreamlog::watch::read_folder(&folder, dreamlog::core::memory::Rules::V2).unwrap();
    let paths: Vec<String> = read.state.files().keys().cloned().collect();
    assert_eq!(paths, ["/memories/caf\u{e9}.md"], "{:?}", read.skipped);
    assert_eq!(read.skipped.len(), 2, "{:?}", read.skipped);
    assert!(read.skipped.iter().any(|(_, why)| why.contains("NFC")), "{:?}", read.skipped);
    assert!(read.skipped.iter().any(|(_, why)| why.contains("U+200B")), "{:?}", read.skipped);
}
