//! 32-byte BLAKE3 digests: event ids and content hashes.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::FormatError;

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Lower-case hex, 64 characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first `n` hex characters, for display.
            pub fn short(&self, n: usize) -> String {
                let mut s = self.to_hex();
                s.truncate(n);
                s
            }

            /// Parses exactly 64 hex characters.
            pub fn from_hex(s: &str) -> Result<Self, FormatError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| FormatError::BadHash {
                    what: $what,
                    value: s.chars().take(80).collect(),
                })?;
                Ok(Self(out))
            }

            /// BLAKE3-256 of `bytes`.
            pub fn of(bytes: &[u8]) -> Self {
                Self(*blake3::hash(bytes).as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short(16))
            }
        }

        impl FromStr for $name {
            type Err = FormatError;
            fn from_str(s: &str) -> Result<Self, FormatError> {
                Self::from_hex(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_type!(
    /// An event id: BLAKE3-256 of the event's canonical header bytes.
    EventId,
    "event id"
);

digest_type!(
    /// A BLAKE3-256 content digest: of an event body, a memory file, or a memory state.
    Digest,
    "hash"
);

/// The root of a binary Merkle tree over `leaves` in order: node = BLAKE3(`0x01` ‖ left ‖
/// right), an odd last node carried up unchanged; no leaves: BLAKE3 of the empty string.
/// The memory state hash and the checkpoints' stream root share it (docs/reference/FORMAT.md).
pub fn merkle_root(mut level: Vec<[u8; 32]>) -> Digest {
    if level.is_empty() {
        return Digest::of(b"");
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => {
                    let mut h = blake3::Hasher::new();
                    h.update(&[0x01]);
                    h.update(l);
                    h.update(r);
                    *h.finalize().as_bytes()
                }
                [single] => *single,
                _ => [0; 32],
            })
            .collect();
    }
    Digest(level[0])
}
