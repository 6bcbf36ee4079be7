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
