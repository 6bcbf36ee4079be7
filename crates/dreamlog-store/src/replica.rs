//! A log of record held by a replicated service, of which this store is a projection.
//!
//! With a [`LogOfRecord`] (JetStream: the crate `dreamlog-jetstream`), the engine's writer still
//! checks every append against the local store (expected versions, idempotency,
//! chaining, causes), but it does not write the local store itself: it publishes the
//! group to the log of record as one atomic batch, conditional on the head of every
//! stream it chained to, and acknowledges once the log of record did and this node has
//! applied the batch. Everything the local store holds arrives through one path — the
//! follower, which delivers the log of record's messages in order — so every node
//! applies the same events at the same positions, whoever wrote them.
//!
//! The message of an event (docs/reference/FORMAT.md §12): `flags` (1 byte: bit 0 = the body is a
//! redaction's stand-in, bit 1 = a receipt follows the header), header length (4 bytes
//! BE), header bytes, [receipt length (4 bytes BE), receipt bytes], body bytes. Its
//! position is its sequence in the log of record, minus one.

use crate::core::{EventId, Header, SealedEvent};
use crate::error::{Error, LogError, Result};

use super::log::Staged;

/// How many messages past the node's committed count the follower may deliver before it
/// waits for the writer to apply them (bounds the memory a fast log of record can fill).
pub const FOLLOW_AHEAD: u64 = 16_384;

/// Why a publish did not happen.
#[derive(Debug)]
pub enum PublishError {
    /// A stream moved since the writer read it (another node wrote to it, or an earlier
    /// attempt of this very batch was stored): catch up, then check the appends again.
    Conflict(String),
    /// The outcome is unknown (timeout, lost connection, no leader yet): sending the same
    /// batch again is safe, since it is conditional on the heads it chained to.
    Unknown(String),
    /// Refused for good (too large, misconfigured): the appends get this error.
    Refused(Error),
}

/// A run of the log of record's messages at consecutive positions, from `first`.
#[derive(Debug)]
pub struct Incoming {
    /// Position of the first message.
    pub first: u64,
    /// The messages' payloads, in order.
    pub payloads: Vec<bytes::Bytes>,
}

/// Where the follower delivers: returns false when the store is gone (the follower stops).
pub type Sink = Box<dyn Fn(Incoming) -> bool + Send + Sync>;

/// A running follower; dropping it stops it (and drops its sink).
pub trait Follower: Send + Sync {}

/// A replicated log of record.
pub trait LogOfRecord: Send + Sync + 'static {
    /// Its servers and stream (for messages).
    fn describe(&self) -> String;
    /// Most events in one atomic publish.
    fn max_batch(&self) -> usize;
    /// Largest message payload, bytes.
    fn max_payload(&self) -> u64;
    /// Appends `events` as one atomic batch. `heads` names, for the first event of each
    /// stream in the batch (by index), the position of the stream's event it chained to
    /// (`None`: the stream's first event); the batch is stored only if each of those is
    /// still its stream's last. Returns the position of the first event.
    fn publish(&self, events: &[Staged], heads: &[(usize, Option<u64>)]) -> std::result::Result<u64, PublishError>;
    /// The log of record's length (one past its last position).
    fn end(&self) -> Result<u64>;
    /// The id of the event at `position` (`None` past the end).
    fn id_at(&self, position: u64) -> Result<Option<EventId>>;
    /// Starts delivering every message from `from` on, in order, to `sink`, waiting
    /// while it is more than [`FOLLOW_AHEAD`] past `applied`.
    fn follow(&self, from: u64, sink: Sink, applied: tokio::sync::watch::Receiver<u64>) -> Result<Box<dyn Follower>>;
}

/// Message flag: the body is a redaction's stand-in.
const FLAG_REDACTED: u8 = 0x01;
/// Message flag: the batch's receipt follows the header (the batch's first event).
const FLAG_RECEIPT: u8 = 0x02;

/// The message of an event (docs/reference/FORMAT.md §12).
pub fn encode_message(event: &SealedEvent) -> Vec<u8> {
    encode_message_with_receipt(event, None)
}

/// The message of an event, carrying its batch's receipt when it is the batch's first
/// (the accepting node stamps it; every node stores it under the event's position).
pub fn encode_message_with_receipt(event: &SealedEvent, receipt: Option<&[u8]>) -> Vec<u8> {
    let extra = receipt.map_or(0, |r| 4 + r.len());
    let mut m = Vec::with_capacity(5 + extra + event.header_bytes.len() + event.body_bytes.len());
    let mut flags = u8::from(event.redacted);
    if receipt.is_some() {
        flags |= FLAG_RECEIPT;
    }
    m.push(flags);
    m.extend_from_slice(&(event.header_bytes.len() as u32).to_be_bytes());
    m.extend_from_slice(&event.header_bytes);
    if let Some(r) = receipt {
        m.extend_from_slice(&(r.len() as u32).to_be_bytes());
        m.extend_from_slice(r);
    }
    m.extend_from_slice(&event.body_bytes);
    m
}

/// Decodes the message at `position`: the header and body decode, the id is recomputed,
/// and an unredacted body matches the header's length and hash.
pub fn decode_message(position: u64, m: &[u8]) -> Result<SealedEvent> {
    decode_message_with_receipt(position, m).map(|(e, _)| e)
}

/// [`decode_message`], with the batch's receipt when the message carries one (checked
/// to decode).
pub fn decode_message_with_receipt(position: u64, m: &[u8]) -> Result<(SealedEvent, Option<Vec<u8>>)> {
    let bad = |reason: String| Error::Log(LogError::Corrupt { position, reason });
    if m.len() < 5 || m[0] & !(FLAG_REDACTED | FLAG_RECEIPT) != 0 {
        return Err(bad("the log of record's message is not a dreamlog event (bad flags or length)".into()));
    }
    let hlen = u32::from_be_bytes([m[1], m[2], m[3], m[4]]) as usize;
    let header_bytes = m.get(5..5 + hlen).ok_or_else(|| bad("the message's header is cut short".into()))?;
    let mut rest = &m[5 + hlen..];
    let mut receipt = None;
    if m[0] & FLAG_RECEIPT != 0 {
        let rlen = rest.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let r =
            rlen.and_then(|n| rest.get(4..4 + n)).ok_or_else(|| bad("the message's receipt is cut short".into()))?;
        crate::core::receipt::Receipt::decode(r).map_err(|e| bad(format!("the message's receipt: {e}")))?;
        receipt = Some(r.to_vec());
        rest = &rest[4 + r.len()..];
    }
    let body_bytes = rest;
    let header = Header::decode(header_bytes).map_err(|e| bad(format!("the message's header: {e}")))?;
    let redacted = m[0] & FLAG_REDACTED != 0;
    if !redacted
        && (header.body_len != body_bytes.len() as u64 || crate::core::Digest::of(body_bytes) != header.body_hash)
    {
        return Err(bad("the message's body does not match its header's length and hash".into()));
    }
    let mut e = SealedEvent::decode(header_bytes.to_vec(), body_bytes.to_vec())
        .map_err(|e| bad(format!("the message's body: {e}")))?;
    e.redacted = redacted;
    Ok((e, receipt))
}

/// The subject token of a dreamlog stream: 128 bits of its name's BLAKE3 hash, hex
/// (subjects cannot hold every character a stream name can).
pub fn stream_token(stream: &str) -> String {
    let id = EventId(*blake3::hash(stream.as_bytes()).as_bytes());
    id.to_hex()[..32].to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::core::{Actor, Body, Draft, Kind};

    #[test]
    fn a_message_decodes_to_the_same_event_and_damage_is_named() {
        let body = Body::from_json(Kind::Note, serde_json::json!({"type": "t", "json": {"a": 1}})).unwrap();
        let e = Draft::new("s", Actor::Agent("a".into()), body).seal(7, Vec::new()).unwrap();
        let m = encode_message(&e);
        let back = decode_message(3, &m).unwrap();
        assert_eq!(back.id, e.id);
        assert_eq!(back.body_bytes, e.body_bytes);
        assert!(!back.redacted);
        let mut bad = m.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let err = decode_message(3, &bad).unwrap_err().to_string();
        assert!(err.contains("position 3") && err.contains("hash"), "{err}");
        assert!(decode_message(4, &m[..3]).unwrap_err().to_string().contains("not a dreamlog event"));
        assert_eq!(stream_token("memory/x").len(), 32);
        assert_ne!(stream_token("memory/x"), stream_token("memory/y"));
    }
}
