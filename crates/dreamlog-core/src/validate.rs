//! Field checks shared by the header and the bodies.

use super::error::FormatError;

/// Longest stream, actor, store or tag name, in bytes.
pub const MAX_NAME_LEN: usize = 512;

/// Checks a name: non-empty, at most [`MAX_NAME_LEN`] bytes, no control characters.
pub fn check_name(field: &str, name: &str) -> Result<(), FormatError> {
    if name.is_empty() {
        return Err(FormatError::field(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(FormatError::field(field, format!("{} bytes long, at most {MAX_NAME_LEN} allowed", name.len())));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(FormatError::field(field, format!("{name:?} contains the control character U+{:04X}", c as u32)));
    }
    if let Some(c) = name.chars().find(|c| is_bidi_control(*c) || is_invisible(*c)) {
        return Err(FormatError::field(
            field,
            format!(
                "{name:?} contains U+{:04X}, a bidirectional or invisible formatting character: a name with one displays as another",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// Characters that take no room on screen: zero-width spaces and joiners, word joiner and
/// invisible operators, the soft hyphen, the byte order mark.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// Unicode's bidirectional formatting characters (embeddings, overrides, isolates,
/// marks): text containing them displays in another order than it reads, so a name or a
/// path with them can pass for another.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Format characters and separators beyond [`is_invisible`] and [`is_bidi_control`] that
/// make a name or path display as another (line and paragraph separators, prepended
/// concatenation marks, tags, interlinear annotation).
pub fn is_other_format(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}'
        | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0001}' | '\u{E0020}'..='\u{E007F}' | '\u{FFF9}'..='\u{FFFB}')
}

/// The first character of `s` that is a control, invisible, bidirectional or other
/// format character.
pub fn hidden_char(s: &str) -> Option<char> {
    s.chars().find(|c| c.is_control() || is_invisible(*c) || is_bidi_control(*c) || is_other_format(*c))
}

/// Whether a segment of a name or path means `.` or `..` to something that decodes it
/// further: percent-decoded (again and again: `%252e`) and folded by Unicode
/// compatibility (fullwidth `．`, the one- and two-dot leaders), with spaces around.
pub fn is_dot_segment(seg: &str) -> bool {
    use unicode_normalization::UnicodeNormalization;
    // Plain ASCII without escapes folds and decodes to itself (every append's stream
    // takes this path: no allocation).
    if seg.is_ascii() && !seg.contains('%') {
        return matches!(seg.trim(), "." | "..");
    }
    let mut s = seg.to_owned();
    // Fold, decode, fold… until nothing changes (`％２ｅ` folds to `%2e`, which decodes
    // to `.`); a segment whose escapes do not decode to UTF-8 (an overlong `%c0%ae`) or
    // that keeps changing is refused as if it were one.
    for _ in 0..8 {
        let folded: String = s.nfkc().collect();
        let Some(decoded) = percent_decode(&folded) else { return true };
        if decoded == s {
            return matches!(decoded.trim(), "." | "..");
        }
        s = decoded;
    }
    true
}

/// `%XX` sequences decoded; `None` when the bytes they make are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Checks a new event's stream name (events already stored are judged by
/// [`check_name`] alone): a [`check_name`] whose `/`-separated segments are each
/// non-empty, without spaces around, not `.` or `..` in any spelling ([`is_dot_segment`]),
/// with no backslash and no format character — so no stream passes for another, and
/// none becomes a path that climbs out when a tool maps streams to folders.
pub fn check_stream_name(field: &str, name: &str) -> Result<(), FormatError> {
    check_name(field, name)?;
    let bad = |why: String| Err(FormatError::field(field, format!("{name:?}: {why}")));
    if let Some(c) = hidden_char(name) {
        return bad(format!("U+{:04X} is a format character: a name with one displays as another", c as u32));
    }
    // A session's streams carry the session id the run had (an OTLP conversation id, a
    // URL, a file's name) as one segment: it is not a path of dreamlog's to split.
    for prefix in [super::streams::SESSION_PREFIX, super::streams::SESSION_LINK_PREFIX] {
        if let Some(id) = name.strip_prefix(prefix) {
            if id.trim().is_empty() || is_dot_segment(id) {
                return bad("a session id is neither blank nor '.' or '..' in any spelling".into());
            }
            return Ok(());
        }
    }
    if name.contains('\\') {
        return bad("backslashes are not allowed (segments are separated by '/')".into());
    }
    for seg in name.split('/') {
        if seg.is_empty() {
            return bad("empty segment (a leading, doubled or trailing '/')".into());
        }
        if seg.trim() != seg {
            return bad(format!("segment {seg:?} begins or ends with a space"));
        }
        if is_dot_segment(seg) {
            return bad(format!("segment {seg:?} means '.' or '..' once decoded"));
        }
    }
    Ok(())
}

/// The checks a new event passes beyond those of a stored one: its stream name
/// ([`check_stream_name`]) and, for a memory command, its paths
/// (`memory::check_new_command`).
pub fn check_new_event(stream: &str, body: &super::Body) -> Result<(), FormatError> {
    check_stream_name("stream", stream)?;
    if let super::Body::Memory(m) = body {
        super::memory::check_new_command(&m.command).map_err(|e| FormatError::field("body.command", e.message))?;
    }
    Ok(())
}

/// Checks a memory store name: a [`check_name`] that is also safe as a path and a URL
/// segment: `/`-separated segments of letters, digits and `-_.@+:~`, none empty, `.` or
/// `..` (so no `../x`, no trailing `/`, no `%2e` that a second decoding turns into `.`).
pub fn check_store_name(field: &str, name: &str) -> Result<(), FormatError> {
    check_name(field, name)?;
    if let Some(c) = name.chars().find(|c| !(c.is_alphanumeric() || "-_.@+:/~".contains(*c))) {
        return Err(FormatError::field(
            field,
            format!(
                "{name:?}: U+{:04X} {c:?} is not allowed in a store name (letters, digits and -_.@+:/~ are)",
                c as u32
            ),
        ));
    }
    for seg in name.split('/') {
        match seg {
            "" => {
                return Err(FormatError::field(
                    field,
                    format!("{name:?}: empty segment (a leading, doubled or trailing '/')"),
                ))
            }
            "." | ".." => {
                return Err(FormatError::field(field, format!("{name:?}: '.' and '..' segments are not allowed")))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_take_the_care_store_names_do() {
        for bad in [
            "..",
            "a/../b",
            "a//b",
            "/a",
            "a/",
            "a/%2e%2e/b",
            "a/%252e%252e",
            "a\\b",
            "a/\u{FF0E}\u{FF0E}/b",
            " a",
            "a/b ",
            "a/\u{2025}",
            "a\u{2028}b",
            "a/. ",
            "\u{FF05}\u{FF12}\u{FF45}\u{FF05}\u{FF12}\u{FF45}",
            "a/%c0%ae%c0%ae",
            "a/%25252525252e",
            "session/..",
            "session/ ",
            "session.link/%2e%2e",
        ] {
            assert!(check_stream_name("stream", bad).is_err(), "{bad:?} is refused");
        }
        // A stored event with such a name still seals and audits clean (it is read and
        // verified by the rules it was written under); only new writes are refused.
        let body = crate::Body::Note(crate::Note {
            note_type: "t".into(),
            json: crate::CanonicalJson::from_value(&serde_json::json!(1)),
        });
        let old = crate::SealedEvent::new(
            "a//../b".into(),
            crate::Actor::System("t".into()),
            1,
            Vec::new(),
            Vec::new(),
            body.clone(),
        )
        .unwrap();
        assert!(crate::SealedEvent::audit(&old.header_bytes, &old.body_bytes).is_empty());
        assert!(check_new_event(&old.header.stream, &body).is_err());
        // A memory path recorded before these rules can still be edited, renamed to a
        // sound name or removed; a new command cannot bring one in.
        use crate::memory::check_new_command;
        use crate::MemoryCommand;
        let nfd = "/memories/cafe\u{301}.md".to_owned();
        assert!(check_new_command(&MemoryCommand::Delete { path: nfd.clone() }).is_ok());
        let rename = MemoryCommand::Rename { old_path: nfd.clone(), new_path: "/memories/caf\u{e9}.md".into() };
        assert!(check_new_command(&rename).is_ok());
        let back = MemoryCommand::Rename { old_path: "/memories/a.md".into(), new_path: nfd.clone() };
        assert!(check_new_command(&back).is_err());
        assert!(check_new_command(&MemoryCommand::Create { path: nfd, file_text: "x".into() }).is_err());
        for good in [
            "session/https://x/c/1",
            "session.link/ abc",
            "session/a\\b",
            "memory/team/a.b",
            "x",
            "a/b.c/..d",
            "a/%41",
            "crash/7",
            "session/my run",
        ] {
            assert!(check_stream_name("stream", good).is_ok(), "{good:?}: {:?}", check_stream_name("stream", good));
        }
    }
}
