//! AFL++ target: `dreamlog::fuzzing::event_record` (see crates/dreamlog-service/src/fuzzing.rs). Run with tools/fuzz/run.sh.
fn main() {
    afl::fuzz!(|data: &[u8]| dreamlog::fuzzing::event_record(data));
}
