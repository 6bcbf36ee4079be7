//! The fuzz targets (crates/dreamlog-service/src/fuzzing.rs) in CI: every kept input — the seeds AFL++ starts
//! from and every crash it ever found (`tools/fuzz/regressions/TARGET/`, kept forever as
//! regression tests) — and property tests of random and mutated inputs. The case count
//! is `DREAMLOG_FUZZ_CASES` (2,000 per target here; docs/ops/guarantees.md's long mode runs 1,000,000).
//! Coverage-guided runs: `tools/fuzz/run.sh`.

mod common;

use std::path::PathBuf;

use proptest::prelude::*;

fn kept(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in ["in", "regressions"] {
        let d = common::root().join("tools/fuzz").join(dir).join(target);
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with('.') || e.file_name() == "README.txt" {
                continue;
            }
            files.push((e.path(), std::fs::read(e.path()).unwrap()));
        }
    }
    files.sort();
    files
}

fn target(name: &str) -> fn(&[u8]) {
    dreamlog::fuzzing::TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f).unwrap()
}

#[test]
fn every_kept_input_passes_its_target() {
    for (name, run) in dreamlog::fuzzing::TARGETS {
        let inputs = kept(name);
        assert!(inputs.len() >= 5, "{name}: only {} seeds in tools/fuzz/in", inputs.len());
        for (path, bytes) in inputs {
            if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                panic!("{name} panicked on {}", path.display());
            }
        }
    }
}

/// The seeds are worth mutating: each importer seed is a file its importer reads, each
/// event seed decodes cleanly (so the targets' deep checks run on them).
#[test]
fn the_seeds_are_valid_inputs() {
    for (path, bytes) in kept("import").into_iter().filter(|(p, _)| p.starts_with(common::root().join("tools/fuzz/in")))
    {
        let format =
            dreamlog::import::detect(&bytes).unwrap_or_else(|| panic!("{}: no format detected", path.display()));
        let sessions =
            dreamlog::import::parse(format, "seed", &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!sessions.is_empty(), "{}", path.display());
    }
    for (path, bytes) in kept("event_record") {
        let n = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
        let problems = dreamlog::core::SealedEvent::audit(&bytes[2..2 + n], &bytes[2 + n..]);
        assert!(
            problems.is_empty() || path.to_string_lossy().contains("regressions"),
            "{}: {problems:?}",
            path.display()
        );
    }
}

fn cases() -> u32 {
    std::env::var("DREAMLOG_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000)
}

/// A kept input with random bytes flipped, inserted and cut: mutations near valid input
/// reach deeper than random bytes.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = kept(target).into_iter().map(|(_, b)| b).collect();
    (0..seeds.len(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)).prop_map(
        move |(i, edits)| {
            let mut b = seeds[i].clone();
            for (at, byte, op) in edits {
                if b.is_empty() {
                    b.push(byte);
                    continue;
                }
                let at = at.index(b.len());
                match op {
                    0 => b[at] = byte,
                    1 => b.insert(at, byte),
                    _ => b.truncate(at),
                }
            }
            b
        },
    )
}

macro_rules! fuzz_property {
    ($name:ident, $target:literal) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]
            #[test]
            fn $name(bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated($target)]) {
                target($target)(&bytes);
            }
        }
    };
}

fuzz_property!(event_record_never_panics_and_clean_bytes_are_canonical, "event_record");
fuzz_property!(event_json_seals_decode_and_round_trip, "event_json");
fuzz_property!(importers_refuse_bad_files_without_panicking, "import");
fuzz_property!(refused_memory_commands_change_nothing, "memory_commands");
