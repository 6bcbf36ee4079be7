//! `tools/layers.py` (run by `.ci/run`) holds the root package's modules to the layers of
//! ARCHITECTURE.md. It passes on the tree as it is, and fails — naming the arrow — on a
//! tree where a lower layer names a higher one or where a new import cycle appears.

mod common;

use std::process::Command;

fn layers(src: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(common::root().join("tools/layers.py"));
    if let Some(src) = src {
        cmd.arg("--src").arg(src);
    }
    let out = cmd.output().expect("python3");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_tree_keeps_its_layers() {
    let (ok, text) = layers(None);
    assert!(ok, "{text}");
}

#[test]
fn an_upward_arrow_or_a_new_cycle_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("server")).unwrap();
    // The timeline (the library) naming the CLI: a lower layer names a higher one.
    std::fs::write(src.join("timeline.rs"), "use crate::cli::main;\n// crate::server in a comment is not code\n")
        .unwrap();
    std::fs::write(src.join("cli.rs"), "use crate::timeline::x;\n").unwrap();
    // Two surfaces naming each other: a cycle the check has not recorded.
    std::fs::write(src.join("mcp.rs"), "use crate::server::y;\n").unwrap();
    std::fs::write(src.join("server/mod.rs"), "use crate::mcp::z;\n").unwrap();
    let (ok, text) = layers(Some(&src));
    assert!(!ok, "{text}");
    assert!(text.contains("timeline (layer 3) uses cli (layer 6)"), "{text}");
    assert!(text.contains("a new import cycle: mcp, server"), "{text}");
    assert!(!text.contains("uses server"), "comments are not arrows: {text}");
}
