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
    Ok(())
}
