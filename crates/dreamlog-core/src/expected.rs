//! Expected versions: optimistic concurrency on a stream, as an append states it.

use std::fmt;
use std::str::FromStr;

/// The expected version of a stream for optimistic concurrency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist.
    NoStream,
    /// The stream must exist.
    StreamExists,
    /// The stream's last event must have this version.
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("an existing stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    /// The spelling [`FromStr`] parses (`any`, `no-stream`, `exists`, or the number): what
    /// the CLI's `--expect` and the HTTP API's `expect` take.
    pub fn to_arg(self) -> String {
        match self {
            ExpectedVersion::Any => "any".into(),
            ExpectedVersion::NoStream => "no-stream".into(),
            ExpectedVersion::StreamExists => "exists".into(),
            ExpectedVersion::Exact(n) => n.to_string(),
        }
    }
}

impl FromStr for ExpectedVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "any" => Ok(ExpectedVersion::Any),
            "no-stream" => Ok(ExpectedVersion::NoStream),
            "exists" => Ok(ExpectedVersion::StreamExists),
            n => n
                .parse()
                .map(ExpectedVersion::Exact)
                .map_err(|_| format!("invalid expected version {s:?}: expected any, no-stream, exists or a number")),
        }
    }
}
