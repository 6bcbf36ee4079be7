//! Receipts: who handed each append batch to the store. Pure.
//!
//! An event's header says who it is *about* (its `actor`, asserted by whoever wrote it:
//! an import's agent is still the agent). A receipt says who *wrote* it: the principal
//! the store authenticated (a server token's name and role; the operating-system user
//! of the embedded CLI), the store's clock when it received the batch, and the batch's
//! size and ids. No request can set it. One receipt per batch, not a field per header:
//! ids stay content addresses (the same run imported by two principals is one copy,
//! and only the first import writes), and the append path writes one small record per
//! batch. docs/reference/FORMAT.md §13 gives the bytes.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use super::error::FormatError;
use super::hash::{Digest, EventId};

/// The receipt format this build writes.
pub const RECEIPT_FORMAT: u8 = 1;

/// An authenticated writer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize)]
pub struct Principal {
    /// Its name: a token's `name` (or `token:` and the first 12 hex digits of the token's
    /// BLAKE3 when it has none), `os:USER` for the embedded CLI, `server` for the
    /// server's own work (OTLP assembly, signed checkpoints).
    pub name: String,
    /// How it was authenticated: a token's role (`read`, `write`, `admin`), `local` (the
    /// embedded CLI, on the database's own machine), `server`, or `none` (a server
    /// without tokens, loopback only).
    pub role: String,
}

impl Principal {
    /// A principal of `name` and `role`.
    pub fn new(name: impl Into<String>, role: impl Into<String>) -> Principal {
        Principal { name: name.into(), role: role.into() }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}

/// The receipt of one append batch, stored under the position of its first event.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Receipt {
    /// [`RECEIPT_FORMAT`].
    pub format: u8,
    /// Who wrote the batch.
    pub principal: Principal,
    /// The store's clock when it took the batch (ms since the epoch).
    pub received_at: u64,
    /// How many events the batch wrote (at consecutive positions from the key's).
    pub count: u64,
    /// BLAKE3 of the ids of those events, concatenated in order: a receipt names exactly
    /// what it covers (`verify` recomputes it).
    pub ids: Digest,
}

impl Receipt {
    /// The receipt of a batch that wrote `ids`.
    pub fn new(principal: Principal, received_at: u64, ids: &[EventId]) -> Receipt {
        Receipt { format: RECEIPT_FORMAT, principal, received_at, count: ids.len() as u64, ids: ids_digest(ids) }
    }

    /// Its bytes (format v1's bincode configuration).
    pub fn encode(&self) -> Vec<u8> {
        super::wire::encode(self)
    }

    /// Reads a receipt; a format this build does not know is refused by name.
    pub fn decode(bytes: &[u8]) -> Result<Receipt, FormatError> {
        if let Some(&f) = bytes.first() {
            if f != RECEIPT_FORMAT {
                return Err(FormatError::Decode {
                    what: "receipt".into(),
                    reason: format!("receipt format {f}; this build reads format {RECEIPT_FORMAT}"),
                });
            }
        }
        super::wire::decode_exact(bytes, "receipt")
    }

    /// What an event of this batch shows of it.
    pub fn received(&self, batch: u64) -> Received {
        Received {
            principal: self.principal.name.clone(),
            role: self.principal.role.clone(),
            at: self.received_at,
            batch,
            events: self.count,
        }
    }
}

/// BLAKE3 of `ids` concatenated.
pub fn ids_digest(ids: &[EventId]) -> Digest {
    let mut h = blake3::Hasher::new();
    for id in ids {
        h.update(&id.0);
    }
    Digest(*h.finalize().as_bytes())
}

/// Who wrote an event, from its batch's receipt: shown beside the event (JSON field
/// `received`; never read on input).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Received {
    /// The principal's name.
    pub principal: String,
    /// How it was authenticated.
    pub role: String,
    /// The store's clock when it took the batch (ms).
    pub at: u64,
    /// Position of the batch's first event.
    pub batch: u64,
    /// Events in the batch.
    pub events: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_round_trips_and_names_what_it_covers() {
        let ids = [EventId([1; 32]), EventId([2; 32])];
        let r = Receipt::new(Principal::new("alice", "write"), 1_796_083_200_000, &ids);
        assert_eq!(Receipt::decode(&r.encode()).unwrap(), r);
        assert_eq!(r.count, 2);
        assert_ne!(r.ids, ids_digest(&ids[..1]), "the digest covers every id");
        assert_ne!(r.ids, ids_digest(&[ids[1], ids[0]]), "in order");
        let mut future = r.encode();
        future[0] = 2;
        assert!(Receipt::decode(&future).unwrap_err().to_string().contains("receipt format 2"));
        let mut long = r.encode();
        long.push(0);
        assert!(Receipt::decode(&long).is_err(), "trailing bytes");
    }
}
