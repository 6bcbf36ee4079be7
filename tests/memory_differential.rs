//! The memory tool against the Anthropic SDK's reference backend, side by side: seeded
//! random command sequences over valid `/memories` paths go through the official
//! `anthropic` package's `BetaLocalFilesystemMemoryTool` (pinned, from PyPI) and through
//! `dreamlog serve`'s memory tool endpoint, and every answer and the final tree of each
//! sequence are compared (`tools/memory_differential.py` says what is compared and where
//! dreamlog refuses on purpose). CI runs 2,000 sequences of 12 commands; the long mode is
//! `DREAMLOG_DIFFERENTIAL_SEQUENCES=100000` (docs/guide/memory.md).

mod common;

use std::process::Command;

use common::server::Server;
use serde_json::Value;
use tempfile::tempdir;

fn differential(server: &Server, args: &[&str]) -> (bool, Value) {
    let out = Command::new("python3")
        .arg(common::root().join("tools/memory_differential.py"))
        .args(["--url", &server.base, "--json", "--check"])
        .args(args)
        .output()
        .expect("python3 (tools/bootstrap.sh installs anthropic and the dreamlog package)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .unwrap_or_else(|| panic!("no summary: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success() || out.status.code() == Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    (out.status.success(), summary)
}

#[test]
fn the_memory_tool_agrees_with_the_sdk_reference_backend_on_thousands_of_sequences() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let sequences = std::env::var("DREAMLOG_DIFFERENTIAL_SEQUENCES").unwrap_or_else(|_| "2000".into());
    let seed = std::env::var("DREAMLOG_DIFFERENTIAL_SEED").unwrap_or_else(|_| "1".into());
    let (agreed, summary) = differential(&server, &["--sequences", &sequences, "--length", "12", "--seed", &seed]);
    assert_eq!(summary["disagreements"], serde_json::json!({}), "{summary}");
    assert!(agreed);
    // Not vacuous: every command both succeeded and was refused by the reference, and the
    // cases where the reference lets an OS error through (dreamlog refuses) came up.
    let outcomes = &summary["reference_outcomes"];
    for command in ["view", "create", "str_replace", "insert", "delete", "rename"] {
        for kind in ["ok", "error"] {
            let n = outcomes[format!("{command} {kind}")].as_u64().unwrap_or(0);
            assert!(n >= 20, "{command} {kind}: only {n} in {outcomes}");
        }
    }
    for raw in ["create raw", "rename raw"] {
        assert!(outcomes[raw].as_u64().unwrap_or(0) > 0, "{raw}: {outcomes}");
    }
    assert!(summary["commands"].as_u64().unwrap() >= 24_000.min(12 * sequences.parse::<u64>().unwrap()));
    assert!(server.stop().success());
}

#[test]
fn stores_written_before_rules_2_keep_their_semantics_and_the_comparison_sees_it() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let (agreed, summary) = differential(&server, &["--sequences", "40", "--length", "12", "--rules", "1"]);
    assert!(!agreed, "rules-1 stores answer with dreamlog's own texts: {summary}");
    let categories = summary["disagreements"].as_object().unwrap();
    assert!(categories.keys().any(|k| k.starts_with("text ")), "{summary}");
    assert!(server.stop().success());
}
