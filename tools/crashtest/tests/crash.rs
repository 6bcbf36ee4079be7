//! The crash harness in its short mode (CI): crashes under the real workloads, with and
//! without power loss, embedded and through the server — and the harness's own self-test,
//! a disk that ignores fsync, which it must catch. Long mode: docs/ops/guarantees.md.
//!
//! These need FUSE (/dev/fuse and fusermount3, which tools/bootstrap.sh installs): without
//! them they fail, loudly, rather than pass having checked nothing.

use std::process::Command;

use serde_json::Value;

fn crashtest(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dreamlog-crashtest"))
        .args(args)
        .arg("--json")
        .output()
        .expect("run dreamlog-crashtest");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON summary ({e}); stderr:\n{stderr}"));
    (out.status.success(), summary, stderr)
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn fifty_crashes_with_power_loss_lose_nothing_acknowledged() {
    let seed = std::env::var("DREAMLOG_CRASH_SEED").unwrap_or_else(|_| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string()
    });
    let crashes = std::env::var("DREAMLOG_CRASHES").unwrap_or_else(|_| "50".into());
    let (ok, s, stderr) = crashtest(&["--crashes", &crashes, "--seed", &seed, "--mode", "both"]);
    assert!(ok, "seed {seed}: {s:#}\n{stderr}");
    assert_eq!(count(&s, "crashes"), crashes.parse::<u64>().unwrap());
    assert_eq!(count(&s, "lost_acknowledged_events"), 0, "{s:#}");
    assert!(count(&s, "power_losses") >= count(&s, "crashes") / 3, "{s:#}");
    assert!(count(&s, "tripped_in_io") > 0, "no crash landed mid-I/O: {s:#}");
    assert!(count(&s, "fsyncs") > 0 && count(&s, "unsynced_bytes_dropped") > 0, "{s:#}");
    // Every part of the workload was acknowledged, and survived.
    for kind in ["append", "memory", "import", "dream"] {
        assert!(s["acknowledged_by_kind"][kind].as_u64().unwrap_or(0) > 0, "no acknowledged {kind}: {s:#}");
    }
    let modes: Vec<&str> = s["rounds"].as_array().unwrap().iter().filter_map(|r| r["mode"].as_str()).collect();
    assert!(modes.contains(&"embedded") && modes.contains(&"server"), "{modes:?}");
}

#[test]
fn under_sync_none_a_power_loss_loses_only_a_suffix() {
    let (ok, s, stderr) = crashtest(&["--crashes", "8", "--seed", "11", "--mode", "embedded", "--sync", "none"]);
    assert!(ok, "{s:#}\n{stderr}");
    // A process crash loses nothing; a power loss may take what was acknowledged since
    // the WAL was last synced — the check has already proved that what remains is a
    // gapless prefix holding every acknowledged event below its end.
    for r in s["rounds"].as_array().unwrap() {
        if r["power_loss"] == false {
            assert_eq!(r["lost"], 0, "a process crash lost events under sync none: {r}");
        }
    }
    assert!(count(&s, "lost_acknowledged_events") > 0, "sync none lost nothing to power loss — was any lost? {s:#}");
}

#[test]
fn a_disk_that_ignores_fsync_is_caught() {
    let (ok, s, stderr) = crashtest(&["--crashes", "6", "--seed", "5", "--mode", "embedded", "--disk-ignores-fsync"]);
    assert!(!ok, "the harness passed a disk that keeps nothing it was told to sync: {s:#}");
    let failure = s["failure"].as_str().unwrap_or_default();
    assert!(
        failure.contains("does not open") || failure.contains("are gone") || failure.contains("holds"),
        "{failure}\n{stderr}"
    );
    assert!(stderr.contains("reproduce with --seed 5"), "{stderr}");
}
