//! Fuzz targets. Each takes arbitrary bytes and panics only when an invariant breaks —
//! bad input must come back as an error, never as a panic, a hang or a wrong answer.
//! The same functions are driven three ways: coverage-guided by AFL++ (`tools/fuzz`,
//! through afl.rs on the stable toolchain), over every kept input in CI
//! (`tests/fuzz.rs`: the seeds and every crash ever found, `tools/fuzz/regressions/`),
//! and by property tests with random and mutated inputs (`tests/fuzz.rs`; the long mode
//! raises the case count).

use serde_json::Value;

use crate::core::memory::{MemoryState, Rules, ToolCall};
use crate::core::{EventJson, SealedEvent};

/// A fuzz target: arbitrary bytes in, a panic only when an invariant breaks.
pub type Target = fn(&[u8]);

/// The targets, by name (as `tools/fuzz` builds them and `tests/fuzz.rs` runs them).
pub const TARGETS: &[(&str, Target)] = &[
    ("event_record", event_record),
    ("event_json", event_json),
    ("import", import),
    ("memory_commands", memory_commands),
];

/// The stored-event decoder: the input is a header length (2 bytes, little-endian), the
/// header bytes and the body bytes. Whatever decodes must audit as it decodes: when the
/// audit is clean the bytes are canonical (they re-encode to themselves) and the id is
/// the hash of the header.
pub fn event_record(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let n = u16::from_le_bytes([data[0], data[1]]) as usize;
    let rest = &data[2..];
    let (header, body) = rest.split_at(n.min(rest.len()));
    let problems = SealedEvent::audit(header, body);
    match SealedEvent::decode(header.to_vec(), body.to_vec()) {
        Ok(e) => {
            if problems.is_empty() {
                assert_eq!(e.header.encode(), header, "a clean header re-encodes to its bytes");
                assert_eq!(e.body.encode(), body, "a clean body re-encodes to its bytes");
                assert_eq!(e.id, crate::core::EventId::of(header));
            }
        }
        Err(_) => assert!(!problems.is_empty(), "audit passed bytes that do not decode"),
    }
}

/// JSON events (what `append` and the HTTP API accept): whatever parses and seals decodes
/// back to the same id, audits clean, and its JSON form parses to the same event.
pub fn event_json(data: &[u8]) {
    let Ok(json) = serde_json::from_slice::<EventJson>(data) else { return };
    let time = json.time.unwrap_or(0);
    let Ok(draft) = json.into_draft(Some("fuzz")) else { return };
    let Ok(sealed) = draft.seal(time, Vec::new()) else { return };
    let again = SealedEvent::decode(sealed.header_bytes.clone(), sealed.body_bytes.clone());
    let again = again.unwrap_or_else(|e| panic!("a sealed event does not decode: {e}"));
    assert_eq!(again.id, sealed.id);
    // A redacted event (its JSON form says so) holds a stand-in its header does not hash:
    // its audit is the redaction's (`verify`), not this one.
    if !sealed.redacted {
        let problems = SealedEvent::audit(&sealed.header_bytes, &sealed.body_bytes);
        assert!(problems.is_empty(), "a sealed event fails its audit: {problems:?}");
    }
    let json = EventJson::from_sealed(&sealed, 0, 0);
    let event = again.into_event();
    let text = serde_json::to_string(&json).unwrap_or_else(|e| panic!("JSON form: {e}"));
    let back: EventJson =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("its own JSON form is refused: {e}: {text}"));
    let draft = back.into_draft(None).unwrap_or_else(|e| panic!("its own JSON form is invalid: {e}: {text}"));
    let resealed = draft.seal(event.header.time, event.header.parents.clone());
    assert_eq!(resealed.map(|s| s.id).ok(), Some(event.id), "the JSON form round-trips to another event: {text}");
}

/// Every importer over the same bytes: each parses or refuses with an error.
pub fn import(data: &[u8]) {
    use crate::import::Format;
    let _ = crate::import::detect(data);
    for format in [Format::TauBench, Format::Tau2, Format::SweAgent, Format::Atif, Format::ClaudeCode] {
        let _ = crate::import::parse(format, "fuzz", data);
    }
}

/// Memory tool inputs (one object, or an array of up to 64) applied under both rules: a
/// refused command changes nothing; the state's hash and snapshot survive a round trip.
pub fn memory_commands(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let inputs = match value {
        Value::Array(a) => a,
        other => vec![other],
    };
    for rules in [Rules::V1, Rules::V2] {
        let mut state = MemoryState::default().with_rules(rules);
        for input in inputs.iter().take(64) {
            let Ok(call) = ToolCall::parse(input) else { continue };
            let before = state.clone();
            if call.run(&mut state).is_err() {
                assert_eq!(state, before, "a refused command changed the state: {input}");
            }
        }
        let bytes = state.encode_snapshot(7);
        let (version, back) = MemoryState::decode_snapshot(&bytes).unwrap_or_else(|e| panic!("snapshot: {e}"));
        assert_eq!(version, 7);
        assert_eq!(back.state_hash(), state.state_hash(), "a snapshot round trip changed the state");
        assert_eq!(back, state);
    }
}
