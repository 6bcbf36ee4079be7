//! Redaction's pure rules: what stands in for a body that is removed.
//!
//! A redacted event keeps its header (so its id, its stream's chain and every cause that
//! names it still verify); its body is replaced by a *stand-in* of the same kind that
//! holds no removed text and still lets every projection go on:
//!
//! - a memory command that wrote text (`create`, `write`, `str_replace`, `insert`) stands
//!   in as a `write` of the file as the command left it, with the text the command put
//!   there replaced by [`PLACEHOLDER`] — so later commands fold on (one that edits the
//!   removed text itself now fails, as it would on any file without that text); a command
//!   that did nothing stands in as one that does nothing;
//! - an action's input and output, a message's content, a model exchange's request and
//!   response, a note's JSON become the string [`PLACEHOLDER`].
//!
//! Paths, names, ids and the header stay: they are what the fold and the indexes need.

use super::body::{Body, MemoryCommand};
use super::canonical_json::CanonicalJson;
use super::memory::MemoryState;

/// What replaces removed text.
pub const PLACEHOLDER: &str = "[redacted]";
/// The note type that records a stand-in beside its `redact` event.
pub const STAND_IN_NOTE: &str = "redact.stand_in";
/// The stream redactions are recorded on.
pub const STREAM: &str = "redactions";

/// The stand-in note's JSON: the target, its kind and the stand-in body's JSON form.
pub fn stand_in_json(target: &super::hash::EventId, stand_in: &Body) -> serde_json::Value {
    serde_json::json!({"target": target.to_hex(), "kind": stand_in.kind().name(), "body": stand_in.to_json()})
}

/// The target and stand-in bytes a stand-in note records (`None` when it is not one).
pub fn recorded_stand_in(json: &serde_json::Value) -> Option<(super::hash::EventId, Vec<u8>)> {
    let target = json.get("target")?.as_str()?.parse().ok()?;
    let kind: super::kind::Kind = json.get("kind")?.as_str()?.parse().ok()?;
    let body = Body::from_json(kind, json.get("body")?.clone()).ok()?;
    Some((target, body.encode()))
}

/// The stand-in for `body`; `before` is the memory store's state just before the event
/// (memory commands only). `Err` says why the event cannot be redacted.
pub fn stand_in(body: &Body, before: Option<&MemoryState>) -> Result<Body, String> {
    let gone = || CanonicalJson::from_value(&serde_json::Value::String(PLACEHOLDER.to_owned()));
    match body {
        Body::Memory(m) => {
            let before = before.ok_or("a memory command's stand-in needs the store's state before it")?;
            let command = memory_stand_in(&m.command, before)?;
            Ok(Body::Memory(super::body::Memory { command, precondition: None, ..m.clone() }))
        }
        Body::Action(a) => {
            Ok(Body::Action(super::body::Action { input: gone(), output: a.output.as_ref().map(|_| gone()), ..a.clone() }))
        }
        Body::Message(msg) => Ok(Body::Message(super::body::Message { content: gone(), meta: None, ..msg.clone() })),
        Body::LlmExchange(x) => {
            Ok(Body::LlmExchange(super::body::LlmExchange { request: gone(), response: gone(), meta: None, ..x.clone() }))
        }
        Body::Note(n) if n.note_type == super::memory::RULES_NOTE || n.note_type.starts_with("anthropic.") => Err(
            format!("a {:?} note is structure (what the store or API is), not text: it cannot be redacted", n.note_type),
        ),
        Body::Note(n) if n.note_type == STAND_IN_NOTE => Err("a redaction's own record cannot be redacted".into()),
        Body::Note(n) => Ok(Body::Note(super::body::Note { json: gone(), ..n.clone() })),
        other => Err(format!(
            "a {} event holds no free text dreamlog redacts (memory commands, actions, messages, model exchanges and notes do)",
            other.kind().name()
        )),
    }
}

/// A memory command's stand-in, given the store's state before it.
fn memory_stand_in(cmd: &MemoryCommand, before: &MemoryState) -> Result<MemoryCommand, String> {
    let path = match cmd {
        MemoryCommand::Create { path, .. }
        | MemoryCommand::Write { path, .. }
        | MemoryCommand::StrReplace { path, .. }
        | MemoryCommand::Insert { path, .. } => path.clone(),
        MemoryCommand::Delete { .. } | MemoryCommand::Rename { .. } | MemoryCommand::Mkdir { .. } => {
            return Err("this memory command holds no text (paths are not redacted)".into())
        }
    };
    let mut after = before.clone();
    if !after.replay(cmd) {
        // It did nothing when it ran: its stand-in does nothing (an empty `old_str` is
        // always refused).
        return Ok(MemoryCommand::StrReplace { path, old_str: String::new(), new_str: String::new() });
    }
    let was = before.file(&path).map(|f| f.text.to_string()).unwrap_or_default();
    let like = |text: &str| format!("{PLACEHOLDER}{}", if text.ends_with('\n') { "\n" } else { "" });
    let text = match cmd {
        MemoryCommand::StrReplace { old_str, .. } => was.replacen(old_str.as_str(), PLACEHOLDER, 1),
        MemoryCommand::Insert { insert_line, insert_text, .. } => {
            let mut stand = MemoryState::new().with_rules(before.rules());
            stand.put(&path, &was);
            let ins =
                MemoryCommand::Insert { path: path.clone(), insert_line: *insert_line, insert_text: like(insert_text) };
            if !stand.replay(&ins) {
                return Err("the insert's stand-in does not apply".into());
            }
            stand.file(&path).map(|f| f.text.to_string()).unwrap_or_default()
        }
        // `create` and `write`: the whole text was the command's.
        MemoryCommand::Create { file_text, .. } | MemoryCommand::Write { file_text, .. } => like(file_text),
        MemoryCommand::Delete { .. } | MemoryCommand::Rename { .. } | MemoryCommand::Mkdir { .. } => was,
    };
    Ok(MemoryCommand::Write { path, file_text: text })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::body::Memory;
    use crate::memory::Rules;

    fn memory(cmd: MemoryCommand) -> Body {
        Body::Memory(Memory { store: "s".into(), command: cmd, precondition: None, session: None })
    }

    fn fold(state: &MemoryState, body: &Body) -> MemoryState {
        let mut s = state.clone();
        if let Body::Memory(m) = body {
            s.replay(&m.command);
        }
        s
    }

    #[test]
    fn a_stand_in_removes_the_text_and_later_commands_fold_on() {
        for rules in [Rules::V1, Rules::V2] {
            let base =
                MemoryState::from_files([("/memories/a.md".to_owned(), "one\ntwo\n".to_owned())]).with_rules(rules);
            let secret = memory(MemoryCommand::StrReplace {
                path: "/memories/a.md".into(),
                old_str: "two".into(),
                new_str: "sk-live-123".into(),
            });
            let stand = stand_in(&secret, Some(&base)).unwrap();
            assert!(!format!("{stand:?}").contains("sk-live-123"));
            let after = fold(&base, &stand);
            assert_eq!(&*after.file("/memories/a.md").unwrap().text, "one\n[redacted]\n");
            // A later edit elsewhere in the file still applies.
            let later =
                MemoryCommand::StrReplace { path: "/memories/a.md".into(), old_str: "one".into(), new_str: "1".into() };
            let mut s = after.clone();
            assert!(s.replay(&later));
            assert_eq!(&*s.file("/memories/a.md").unwrap().text, "1\n[redacted]\n");

            let insert = memory(MemoryCommand::Insert {
                path: "/memories/a.md".into(),
                insert_line: 1,
                insert_text: "pin 4242\n".into(),
            });
            let after = fold(&base, &stand_in(&insert, Some(&base)).unwrap());
            assert_eq!(&*after.file("/memories/a.md").unwrap().text, "one\n[redacted]\ntwo\n");
            let create = memory(MemoryCommand::Create { path: "/memories/b.md".into(), file_text: "secret\n".into() });
            let after = fold(&base, &stand_in(&create, Some(&base)).unwrap());
            assert_eq!(&*after.file("/memories/b.md").unwrap().text, "[redacted]\n");
            // A command that failed when it ran does nothing as a stand-in either.
            let failed = memory(MemoryCommand::StrReplace {
                path: "/memories/a.md".into(),
                old_str: "absent".into(),
                new_str: "secret".into(),
            });
            assert_eq!(fold(&base, &stand_in(&failed, Some(&base)).unwrap()), base);
        }
        let rename = memory(MemoryCommand::Rename { old_path: "/memories/a".into(), new_path: "/memories/b".into() });
        assert!(stand_in(&rename, Some(&MemoryState::new())).is_err());
    }
}
