//! Errors of the pure core: malformed events, bad encodings, bad JSON.

use thiserror::Error;

/// Why an event (or one of its parts) was rejected by the core.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// A field holds a value that the format does not allow.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field, e.g. `stream` or `body.score`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A hex digest did not parse.
    #[error("invalid {what} {value:?}: expected 64 hex characters")]
    BadHash {
        /// What the digest is (event id, hash).
        what: &'static str,
        /// The offending text (truncated).
        value: String,
    },
    /// JSON that does not parse or does not match the event's JSON form.
    #[error("{context}: {reason}")]
    Json {
        /// Where in the input.
        context: String,
        /// The parser's reason.
        reason: String,
    },
    /// Bytes that do not decode as the canonical encoding.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded (header, body of kind X).
        what: String,
        /// The decoder's reason.
        reason: String,
    },
    /// Bytes that decode but are not the canonical encoding of what they decode to.
    #[error("{what} is not canonical: {reason}")]
    NotCanonical {
        /// What was checked.
        what: &'static str,
        /// How it differs.
        reason: String,
    },
    /// An unknown event kind name or tag.
    #[error("unknown event kind {0:?}")]
    UnknownKind(String),
    /// A supplied id does not match the id recomputed from the event.
    #[error("id mismatch: supplied {supplied}, recomputed {recomputed}")]
    IdMismatch {
        /// The id given with the event.
        supplied: String,
        /// The id computed from its header.
        recomputed: String,
    },
}

impl FormatError {
    /// A field that is not what the format allows, and why.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FormatError::InvalidField { field: field.into(), reason: reason.into() }
    }
}
