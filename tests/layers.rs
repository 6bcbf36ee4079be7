//! `tools/layers.py` (run by `.ci/run`) holds each crate's modules to the layers of
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
    // The timeline (the library) naming the CLI and the server: a lower layer names a
    // higher one — through a path, a brace group, and a name the crate root re-exports.
    std::fs::write(src.join("lib.rs"), "pub use crate::server::{hash_token, serve};\npub struct Shared;\n").unwrap();
    std::fs::write(
        src.join("timeline.rs"),
        "use crate::{store::Store, cli::main as m};\nfn f() { crate::serve(); }\n// crate::watch in a comment is not code\n",
    )
    .unwrap();
    // A module the layering does not know is named, not a crash.
    std::fs::write(src.join("newmod.rs"), "use crate::store::Store;\n").unwrap();
    // A module using what the crate root defines (the root declares every module: a cycle).
    std::fs::write(src.join("cli.rs"), "use crate::timeline::x;\nuse crate::Shared;\n").unwrap();
    // Two surfaces naming each other: a cycle the check has not recorded.
    std::fs::write(src.join("mcp.rs"), "use crate::server::y;\n").unwrap();
    std::fs::write(src.join("server/mod.rs"), "use crate::mcp::z;\n").unwrap();
    let (ok, text) = layers(Some(&src));
    assert!(!ok, "{text}");
    assert!(text.contains("timeline (layer 3) uses cli (layer 11)"), "a brace group: {text}");
    assert!(text.contains("timeline (layer 3) uses server (layer 10)"), "a re-exported name: {text}");
    assert!(text.contains("an import cycle: mcp, server"), "{text}");
    assert!(text.contains("src/newmod: a module with no layer"), "{text}");
    assert!(text.contains("src/cli uses what the crate root (lib.rs) defines"), "{text}");
    assert!(!text.contains("uses watch"), "comments are not arrows: {text}");
    assert!(!text.contains("Traceback"), "{text}");
}
