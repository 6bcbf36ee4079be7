//! AFL++ target: `dreamlog::fuzzing::import` (see crates/dreamlog-service/src/fuzzing.rs). Run with tools/fuzz/run.sh.
fn main() {
    afl::fuzz!(|data: &[u8]| dreamlog::fuzzing::import(data));
}
