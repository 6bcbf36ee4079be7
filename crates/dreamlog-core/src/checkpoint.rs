//! Signed checkpoints: tamper evidence against whoever holds the disk. Hash chains prove
//! that nothing changed *unless* everything after the change was recomputed — which the
//! disk's owner can do. A checkpoint is the log's head at a position — its length, the
//! last event's id and a Merkle root over every stream's head (name, version, id) —
//! signed with an Ed25519 key the disk's owner does not hold (or that was published
//! elsewhere). A log that still extends the checkpoint has the same stream heads at that
//! position; since every id covers its stream's chain, a rewrite of any earlier event
//! changes some head, even with every hash recomputed. Pure: no I/O.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

use super::hash::{Digest, EventId};

/// The `note` type checkpoints are recorded under (stream [`STREAM`]).
pub const NOTE_TYPE: &str = "dreamlog.checkpoint";
/// The stream checkpoints are recorded on.
pub const STREAM: &str = "checkpoints";
/// What the signature covers starts with this (domain separation).
const DOMAIN: &[u8] = b"dreamlog-checkpoint/v1\0";

/// A signed head of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The events covered: every position below this.
    pub position: u64,
    /// The id of the event at `position − 1` (`None` for an empty log).
    pub head: Option<EventId>,
    /// How many streams had events then.
    pub streams: u64,
    /// Merkle root over (stream, version, id) of every stream's last event then.
    pub streams_root: Digest,
    /// When it was signed (ms since the epoch).
    pub time: u64,
    /// The signer's Ed25519 public key (hex).
    pub key: String,
    /// The signature over all of the above (hex, 64 bytes).
    pub signature: String,
}

/// Why a checkpoint does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The key or signature is not well formed, or the signature does not verify.
    #[error("the checkpoint's signature does not verify with key {key}: {reason}")]
    BadSignature {
        /// The key (hex).
        key: String,
        /// What failed.
        reason: String,
    },
    /// Signed by another key than the one trusted.
    #[error("the checkpoint was signed by key {signed}, not the trusted key {trusted}")]
    UntrustedKey {
        /// The checkpoint's key.
        signed: String,
        /// The key the verifier trusts.
        trusted: String,
    },
}

/// Every stream's last event at a point: name → (version, id).
pub type StreamHeads = BTreeMap<String, (u64, EventId)>;

/// The Merkle root over stream heads: leaf = BLAKE3(`0x00` ‖ name length u64 LE ‖ name ‖
/// version u64 LE ‖ id), in name order; node = BLAKE3(`0x01` ‖ left ‖ right), an odd last
/// node carried up; no streams: BLAKE3 of the empty string.
pub fn streams_root(heads: &StreamHeads) -> Digest {
    let leaves: Vec<[u8; 32]> = heads
        .iter()
        .map(|(name, (version, id))| {
            let mut h = blake3::Hasher::new();
            h.update(&[0x00]);
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&version.to_le_bytes());
            h.update(&id.0);
            *h.finalize().as_bytes()
        })
        .collect();
    super::hash::merkle_root(leaves)
}

fn message(position: u64, head: Option<&EventId>, streams: u64, root: &Digest, time: u64) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(&position.to_le_bytes());
    m.extend_from_slice(&head.map_or([0u8; 32], |h| h.0));
    m.extend_from_slice(&streams.to_le_bytes());
    m.extend_from_slice(&root.0);
    m.extend_from_slice(&time.to_le_bytes());
    m
}

/// A signing key from its 32-byte seed.
pub fn signing_key(seed: &[u8; 32]) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(seed)
}

/// The hex public key of a seed.
pub fn public_key(seed: &[u8; 32]) -> String {
    hex::encode(signing_key(seed).verifying_key().to_bytes())
}

/// Signs the head `heads` of a log of `position` events whose last id is `head`.
pub fn sign(seed: &[u8; 32], position: u64, head: Option<EventId>, heads: &StreamHeads, time: u64) -> Checkpoint {
    let key = signing_key(seed);
    let root = streams_root(heads);
    let streams = heads.len() as u64;
    let signature = key.sign(&message(position, head.as_ref(), streams, &root, time));
    Checkpoint {
        position,
        head,
        streams,
        streams_root: root,
        time,
        key: hex::encode(key.verifying_key().to_bytes()),
        signature: hex::encode(signature.to_bytes()),
    }
}

impl Checkpoint {
    /// Checks the signature (and, when given, that the key is the trusted one).
    pub fn verify_signature(&self, trusted: Option<&str>) -> Result<(), CheckpointError> {
        if let Some(t) = trusted {
            if !t.eq_ignore_ascii_case(&self.key) {
                return Err(CheckpointError::UntrustedKey { signed: self.key.clone(), trusted: t.to_owned() });
            }
        }
        let bad = |reason: String| CheckpointError::BadSignature { key: self.key.clone(), reason };
        let key: [u8; 32] = hex::decode(&self.key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("the key is not 32 bytes of hex".into()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|e| bad(e.to_string()))?;
        let sig: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("the signature is not 64 bytes of hex".into()))?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        key.verify(&message(self.position, self.head.as_ref(), self.streams, &self.streams_root, self.time), &sig)
            .map_err(|e| bad(e.to_string()))
    }

    /// What differs between this checkpoint and a log whose event at `position − 1` is
    /// `head` and whose stream heads then were `heads` (empty: the log extends it).
    pub fn differences(&self, head: Option<EventId>, heads: &StreamHeads) -> Vec<String> {
        let mut out = Vec::new();
        if head != self.head {
            out.push(format!(
                "the event at position {} is {}, the checkpoint names {}",
                self.position.saturating_sub(1),
                head.map_or("none".into(), |h| h.to_hex()),
                self.head.map_or("none".into(), |h| h.to_hex())
            ));
        }
        if heads.len() as u64 != self.streams || streams_root(heads) != self.streams_root {
            out.push(format!(
                "the stream heads at position {} ({} streams, root {}) are not the signed ones ({} streams, root {}): history before it was rewritten",
                self.position,
                heads.len(),
                streams_root(heads).short(16),
                self.streams,
                self.streams_root.short(16)
            ));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_every_field_and_only_its_key_verifies_it() {
        let seed = [7u8; 32];
        let mut heads = StreamHeads::new();
        heads.insert("a".into(), (3, EventId([1; 32])));
        let cp = sign(&seed, 10, Some(EventId([2; 32])), &heads, 1234);
        assert!(cp.verify_signature(None).is_ok());
        assert!(cp.verify_signature(Some(&public_key(&seed))).is_ok());
        assert!(matches!(cp.verify_signature(Some(&public_key(&[8; 32]))), Err(CheckpointError::UntrustedKey { .. })));
        for forged in [
            Checkpoint { position: 11, ..cp.clone() },
            Checkpoint { head: Some(EventId([3; 32])), ..cp.clone() },
            Checkpoint { streams: 2, ..cp.clone() },
            Checkpoint { streams_root: Digest::of(b"x"), ..cp.clone() },
            Checkpoint { time: 1235, ..cp.clone() },
        ] {
            assert!(matches!(forged.verify_signature(None), Err(CheckpointError::BadSignature { .. })), "{forged:?}");
        }
        assert!(cp.differences(Some(EventId([2; 32])), &heads).is_empty());
        heads.insert("a".into(), (3, EventId([9; 32])));
        assert_eq!(cp.differences(Some(EventId([2; 32])), &heads).len(), 1);
    }
}
