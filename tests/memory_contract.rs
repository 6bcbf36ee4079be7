//! Every string of the Claude memory tool contract (`memory_20250818`, as Anthropic documents it),
//! success and error, produced by the pure memory projection.

use dreamlog::core::memory::{human_size, validate_path, MemoryState, ToolErrorKind};
use dreamlog::{Digest, MemoryCommand};

fn create(path: &str, text: &str) -> MemoryCommand {
    MemoryCommand::Create { path: path.into(), file_text: text.into() }
}

fn state() -> MemoryState {
    let mut s = MemoryState::new();
    s.apply(&create("/memories/notes.md", "alpha\nbeta\ngamma\nbeta\n"), None).unwrap();
    s.apply(&create("/memories/team/a.md", "one\n"), None).unwrap();
    s.apply(&create("/memories/team/deep/b.md", "two\n"), None).unwrap();
    s
}

fn ok(s: &mut MemoryState, cmd: MemoryCommand) -> String {
    s.apply(&cmd, None).unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn fail(s: &mut MemoryState, cmd: MemoryCommand) -> (ToolErrorKind, String) {
    let before = s.clone();
    let e = s.apply(&cmd, None).expect_err("must fail");
    assert_eq!(*s, before, "a failed command changes nothing");
    (e.kind, e.message)
}

#[test]
fn view_of_a_file_numbers_lines_in_a_six_wide_column() {
    let s = state();
    assert_eq!(
        s.view("/memories/notes.md", None).unwrap(),
        "Here's the content of /memories/notes.md with line numbers:\n     1\talpha\n     2\tbeta\n     3\tgamma\n     4\tbeta"
    );
    assert_eq!(
        s.view("/memories/notes.md", Some((2, 3))).unwrap(),
        "Here's the content of /memories/notes.md with line numbers:\n     2\tbeta\n     3\tgamma"
    );
    assert_eq!(s.view("/memories/notes.md", Some((3, -1))).unwrap().lines().count(), 3);
    assert!(s.view("/memories/notes.md", Some((0, 2))).unwrap_err().message.contains("Invalid `view_range`"));
}

#[test]
fn view_of_a_directory_lists_two_levels_with_sizes_skipping_hidden_items() {
    let mut s = state();
    ok(&mut s, create("/memories/.hidden", "x"));
    ok(&mut s, create("/memories/node_modules/x.js", "x"));
    ok(&mut s, create("/memories/team/deep/deeper/c.md", "three\n"));
    let v = s.view("/memories", None).unwrap();
    let expected = "Here're the files and directories up to 2 levels deep in /memories, excluding hidden items and node_modules:\n\
        38\t/memories\n\
        22\t/memories/notes.md\n\
        14\t/memories/team\n\
        4\t/memories/team/a.md\n\
        10\t/memories/team/deep";
    assert_eq!(v, expected);
    assert_eq!(s.view("/memories/", None).unwrap(), v, "a trailing slash names the same directory");
    assert_eq!(human_size(512), "512");
    assert_eq!(human_size(5632), "5.5K");
    assert_eq!(human_size(1_258_291), "1.2M");
    assert_eq!(human_size(20 * 1024), "20K");
}

#[test]
fn view_of_a_missing_path_and_of_a_huge_file() {
    let mut s = state();
    assert_eq!(
        s.view("/memories/nope", None).unwrap_err().message,
        "The path /memories/nope does not exist. Please provide a valid path."
    );
    ok(&mut s, create("/memories/big", &"\n".repeat(1_000_000)));
    assert_eq!(
        s.view("/memories/big", None).unwrap_err().message,
        "File /memories/big exceeds maximum line limit of 999,999 lines."
    );
}

#[test]
fn create_succeeds_once() {
    let mut s = state();
    assert_eq!(ok(&mut s, create("/memories/new.md", "hi")), "File created successfully at: /memories/new.md");
    assert_eq!(
        fail(&mut s, create("/memories/new.md", "again")),
        (ToolErrorKind::AlreadyExists, "Error: File /memories/new.md already exists".into())
    );
    assert_eq!(fail(&mut s, create("/memories/team", "x")).0, ToolErrorKind::AlreadyExists, "a directory is there");
    assert!(fail(&mut s, create("/memories/new.md/x", "x")).1.contains("is a file"));
}

#[test]
fn str_replace_edits_exactly_one_occurrence() {
    let mut s = state();
    let out = ok(
        &mut s,
        MemoryCommand::StrReplace {
            path: "/memories/notes.md".into(),
            old_str: "gamma".into(),
            new_str: "GAMMA".into(),
        },
    );
    assert_eq!(out, "The memory file has been edited.\n     1\talpha\n     2\tbeta\n     3\tGAMMA\n     4\tbeta");
    assert_eq!(s.file("/memories/notes.md").unwrap().text.as_ref(), "alpha\nbeta\nGAMMA\nbeta\n");
    let missing = MemoryCommand::StrReplace { path: "/memories/x".into(), old_str: "a".into(), new_str: "b".into() };
    assert_eq!(fail(&mut s, missing).1, "Error: The path /memories/x does not exist. Please provide a valid path.");
    let dir = MemoryCommand::StrReplace { path: "/memories/team".into(), old_str: "a".into(), new_str: "b".into() };
    assert_eq!(fail(&mut s, dir).1, "Error: The path /memories/team does not exist. Please provide a valid path.");
    let absent =
        MemoryCommand::StrReplace { path: "/memories/notes.md".into(), old_str: "delta".into(), new_str: "x".into() };
    assert_eq!(
        fail(&mut s, absent).1,
        "No replacement was performed, old_str `delta` did not appear verbatim in /memories/notes.md."
    );
    let twice =
        MemoryCommand::StrReplace { path: "/memories/notes.md".into(), old_str: "beta".into(), new_str: "x".into() };
    assert_eq!(
        fail(&mut s, twice).1,
        "No replacement was performed. Multiple occurrences of old_str `beta` in lines: [2, 4]. Please ensure it is unique"
    );
}

#[test]
fn insert_takes_line_zero_to_n() {
    let mut s = state();
    let at = |line| MemoryCommand::Insert {
        path: "/memories/team/a.md".into(),
        insert_line: line,
        insert_text: "new\n".into(),
    };
    assert_eq!(ok(&mut s, at(0)), "The file /memories/team/a.md has been edited.");
    assert_eq!(ok(&mut s, at(2)), "The file /memories/team/a.md has been edited.");
    assert_eq!(s.file("/memories/team/a.md").unwrap().text.as_ref(), "new\none\nnew\n");
    assert_eq!(
        fail(&mut s, at(4)).1,
        "Error: Invalid `insert_line` parameter: 4. It should be within the range of lines of the file: [0, 3]"
    );
    let missing = MemoryCommand::Insert { path: "/memories/x".into(), insert_line: 0, insert_text: "a".into() };
    assert_eq!(fail(&mut s, missing).1, "Error: The path /memories/x does not exist");
    let dir = MemoryCommand::Insert { path: "/memories/team".into(), insert_line: 0, insert_text: "a".into() };
    assert_eq!(fail(&mut s, dir).1, "Error: The path /memories/team does not exist");
}

#[test]
fn delete_removes_a_file_or_a_whole_directory() {
    let mut s = state();
    assert_eq!(
        ok(&mut s, MemoryCommand::Delete { path: "/memories/team".into() }),
        "Successfully deleted /memories/team"
    );
    assert!(s.file("/memories/team/deep/b.md").is_none());
    assert_eq!(
        ok(&mut s, MemoryCommand::Delete { path: "/memories/notes.md".into() }),
        "Successfully deleted /memories/notes.md"
    );
    assert_eq!(
        fail(&mut s, MemoryCommand::Delete { path: "/memories/notes.md".into() }).1,
        "Error: The path /memories/notes.md does not exist"
    );
    assert!(s.files().is_empty());
}

#[test]
fn rename_moves_files_and_directories_and_never_overwrites() {
    let mut s = state();
    let mv = |a: &str, b: &str| MemoryCommand::Rename { old_path: a.into(), new_path: b.into() };
    assert_eq!(
        ok(&mut s, mv("/memories/team", "/memories/crew")),
        "Successfully renamed /memories/team to /memories/crew"
    );
    assert_eq!(s.file("/memories/crew/deep/b.md").unwrap().text.as_ref(), "two\n");
    assert_eq!(fail(&mut s, mv("/memories/team", "/memories/x")).1, "Error: The path /memories/team does not exist");
    assert_eq!(
        fail(&mut s, mv("/memories/notes.md", "/memories/crew/a.md")).1,
        "Error: The destination /memories/crew/a.md already exists"
    );
    assert_eq!(
        fail(&mut s, mv("/memories/notes.md", "/memories/crew")).1,
        "Error: The destination /memories/crew already exists"
    );
    assert!(fail(&mut s, mv("/memories/crew", "/memories/crew/inner")).1.contains("into itself"));
}

#[test]
fn paths_are_validated_before_anything_else() {
    for bad in [
        "/etc/passwd",
        "/memories/../etc",
        "/memories/a/./b",
        "/memories/%2e%2e/x",
        "/memories/a%2Fb",
        "/memories/..\\x",
        "/memories//x",
        "/memories/a\u{0}b",
        "/memoriesx/a",
        "memories/a",
    ] {
        let e = validate_path(bad).expect_err(bad);
        assert_eq!(e.kind, ToolErrorKind::Invalid);
        assert!(e.message.starts_with("Error: Invalid path"), "{bad}: {}", e.message);
        let mut s = state();
        assert_eq!(fail(&mut s, create(bad, "x")).0, ToolErrorKind::Invalid);
    }
    assert!(validate_path(&format!("/memories/{}", "a/".repeat(17))).is_err(), "too deep");
    assert!(validate_path(&format!("/memories/{}", "a".repeat(1100))).is_err(), "too long");
    let mut s = state();
    assert_eq!(fail(&mut s, create("/memories/huge", &"x".repeat(2 << 20))).0, ToolErrorKind::TooLarge);
}

#[test]
fn a_precondition_on_the_content_hash_is_a_conflict_when_it_does_not_hold() {
    let mut s = state();
    let cmd =
        MemoryCommand::StrReplace { path: "/memories/team/a.md".into(), old_str: "one".into(), new_str: "1".into() };
    let wrong = Digest::of(b"something else");
    let before = s.clone();
    let e = s.apply(&cmd, Some(&wrong)).unwrap_err();
    assert_eq!(e.kind, ToolErrorKind::Conflict);
    assert!(e.message.starts_with("Error: Conflict: /memories/team/a.md has content hash"), "{}", e.message);
    assert_eq!(s, before);
    let right = Digest::of(b"one\n");
    assert!(s.apply(&cmd, Some(&right)).is_ok());
}

#[test]
fn state_hashes_depend_on_contents_only() {
    let a = state();
    let mut b = MemoryState::new();
    b.apply(&create("/memories/team/deep/b.md", "two\n"), None).unwrap();
    b.apply(&create("/memories/team/a.md", "one\n"), None).unwrap();
    b.apply(&create("/memories/notes.md", "alpha\nbeta\ngamma\nbeta\n"), None).unwrap();
    assert_eq!(a.state_hash(), b.state_hash(), "same files in another order");
    b.apply(
        &MemoryCommand::Insert { path: "/memories/team/a.md".into(), insert_line: 0, insert_text: "x".into() },
        None,
    )
    .unwrap();
    assert_ne!(a.state_hash(), b.state_hash());
    assert_ne!(MemoryState::new().state_hash(), a.state_hash());
}
