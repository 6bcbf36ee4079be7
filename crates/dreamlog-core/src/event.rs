//! Headers, ids and sealed events.

use bincode::{Decode, Encode};

use super::body::Body;
use super::error::FormatError;
use super::hash::{Digest, EventId};
use super::kind::{Actor, Kind};
use super::validate::check_name;
use super::wire;

/// The format version written in every v1 header.
pub const FORMAT_VERSION: u8 = 1;
/// At most this many parents: v1 streams are linear chains.
pub const MAX_PARENTS: usize = 1;
/// At most this many causes per event.
pub const MAX_CAUSES: usize = 4096;

/// An event header. Its canonical bytes are what the event id hashes; the body is
/// referenced only by its length and hash, so a body can be redacted while every id and
/// chain still verifies. Field order is the encoding order (docs/reference/FORMAT.md).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Header {
    /// Always [`FORMAT_VERSION`].
    pub format: u8,
    /// The body's kind.
    pub kind: Kind,
    /// The stream the event belongs to.
    pub stream: String,
    /// Who wrote it.
    pub actor: Actor,
    /// Milliseconds since the Unix epoch, as supplied or stamped on append.
    pub time: u64,
    /// The previous head of the stream (empty for a stream's first event).
    pub parents: Vec<EventId>,
    /// Provenance: the events this one was derived from.
    pub causes: Vec<EventId>,
    /// Length of the body bytes.
    pub body_len: u64,
    /// BLAKE3-256 of the body bytes.
    pub body_hash: Digest,
}

impl Header {
    /// The canonical header bytes.
    pub fn encode(&self) -> Vec<u8> {
        wire::encode(self)
    }

    /// Decodes header bytes (all must be consumed).
    pub fn decode(bytes: &[u8]) -> Result<Header, FormatError> {
        let header: Header = wire::decode_exact(bytes, "header")?;
        if header.format != FORMAT_VERSION {
            return Err(FormatError::Decode {
                what: "header".into(),
                reason: format!("format version {} (this build reads {FORMAT_VERSION})", header.format),
            });
        }
        Ok(header)
    }

    /// This header with the bidirectional and invisible formatting characters left out of
    /// its names: what `validate` judged before names refused them.
    fn as_before_format_rule(&self) -> Header {
        let strip = |s: &str| -> String {
            s.chars().filter(|c| !crate::validate::is_bidi_control(*c) && !crate::validate::is_invisible(*c)).collect()
        };
        let actor = match &self.actor {
            Actor::Agent(n) => Actor::Agent(strip(n)),
            Actor::Evaluator(n) => Actor::Evaluator(strip(n)),
            Actor::Human(n) => Actor::Human(strip(n)),
            Actor::System(n) => Actor::System(strip(n)),
            Actor::Dreamer { name, version } => Actor::Dreamer { name: strip(name), version: strip(version) },
        };
        Header { stream: strip(&self.stream), actor, ..self.clone() }
    }

    /// Checks the header's own fields (not its relation to the stream).
    pub fn validate(&self) -> Result<(), FormatError> {
        check_name("stream", &self.stream)?;
        self.actor.validate()?;
        if self.parents.len() > MAX_PARENTS {
            return Err(FormatError::field(
                "parents",
                format!("{} given; a v1 stream is a chain with at most one parent", self.parents.len()),
            ));
        }
        if self.causes.len() > MAX_CAUSES {
            return Err(FormatError::field(
                "causes",
                format!("{} given, at most {MAX_CAUSES} allowed", self.causes.len()),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.causes.len());
        for c in &self.causes {
            if !seen.insert(c) {
                return Err(FormatError::field("causes", format!("{c} is listed twice")));
            }
        }
        Ok(())
    }
}

/// An event ready to be appended, before the store fills in what only it knows: the
/// time (when not supplied) and the stream parent (when not supplied).
#[derive(Clone, PartialEq, Debug)]
pub struct Draft {
    /// Target stream.
    pub stream: String,
    /// Author.
    pub actor: Actor,
    /// Time in ms since the epoch; `None` means "stamp on append".
    pub time: Option<u64>,
    /// Stream parent; `None` means "the stream's head at append".
    pub parents: Option<Vec<EventId>>,
    /// Provenance.
    pub causes: Vec<EventId>,
    /// Body.
    pub body: Body,
    /// A redacted event carried over (an import of an export): `body` is its stand-in,
    /// and the header keeps the removed body's length and hash, so the id recomputes.
    pub redacted: Option<Redaction>,
}

/// What a redacted event's header still says of the body it no longer has.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redaction {
    /// The removed body's length.
    pub body_len: u64,
    /// Its BLAKE3-256.
    pub body_hash: Digest,
}

impl Redaction {
    /// What `header` says of its body.
    pub fn of(header: &Header) -> Redaction {
        Redaction { body_len: header.body_len, body_hash: header.body_hash }
    }
}

impl Draft {
    /// A draft with no causes, stamped and chained by the store.
    pub fn new(stream: impl Into<String>, actor: Actor, body: Body) -> Draft {
        Draft { stream: stream.into(), actor, time: None, parents: None, causes: Vec::new(), body, redacted: None }
    }

    /// Sets the time.
    pub fn at(mut self, time_ms: u64) -> Draft {
        self.time = Some(time_ms);
        self
    }

    /// Sets the causes.
    pub fn caused_by(mut self, causes: Vec<EventId>) -> Draft {
        self.causes = causes;
        self
    }

    /// Sets the stream parent (the writer checks it is the stream's head).
    pub fn with_parents(mut self, parents: Vec<EventId>) -> Draft {
        self.parents = Some(parents);
        self
    }

    /// Seals the draft with the given time and parents: encodes the body, builds the
    /// header, computes the id. Validates everything first.
    pub fn seal(&self, time: u64, parents: Vec<EventId>) -> Result<SealedEvent, FormatError> {
        self.clone().into_sealed(time, parents)
    }

    /// Like [`Draft::seal`], consuming the draft (no copies on the append path).
    pub fn into_sealed(self, time: u64, parents: Vec<EventId>) -> Result<SealedEvent, FormatError> {
        let mut body = self.body;
        body.normalize_and_validate()?;
        let mut sealed = SealedEvent::new(self.stream, self.actor, time, parents, self.causes, body)?;
        if let Some(r) = self.redacted {
            // The header describes the removed body; the bytes kept are the stand-in's.
            sealed.header.body_len = r.body_len;
            sealed.header.body_hash = r.body_hash;
            sealed.header_bytes = sealed.header.encode();
            sealed.id = EventId::of(&sealed.header_bytes);
            sealed.redacted = true;
        }
        Ok(sealed)
    }
}

/// A decoded event: id, header and body (what reads return; no bytes kept).
#[derive(Clone, PartialEq, Debug)]
pub struct Event {
    /// BLAKE3-256 of the canonical header bytes.
    pub id: EventId,
    /// Decoded header.
    pub header: Header,
    /// Decoded body.
    pub body: Body,
}

impl Event {
    /// Decodes stored header and body bytes whose id is known (the fast read path: no
    /// hashing, no copies of the bytes; `verify` checks ids and hashes).
    pub fn decode_with_id(id: EventId, header_bytes: &[u8], body_bytes: &[u8]) -> Result<Event, FormatError> {
        let header = Header::decode(header_bytes)?;
        let body = Body::decode(header.kind, body_bytes)?;
        Ok(Event { id, header, body })
    }
}

/// A complete event: header, body, their canonical bytes and the id.
#[derive(Clone, PartialEq, Debug)]
pub struct SealedEvent {
    /// BLAKE3-256 of `header_bytes`.
    pub id: EventId,
    /// Decoded header.
    pub header: Header,
    /// Decoded body.
    pub body: Body,
    /// Canonical header bytes.
    pub header_bytes: Vec<u8>,
    /// Canonical body bytes (a redacted event's: its stand-in's).
    pub body_bytes: Vec<u8>,
    /// Whether the body is a redaction's stand-in (the header describes another body).
    pub redacted: bool,
}

impl SealedEvent {
    /// Builds and validates an event from its parts. The body must already be normalised.
    pub fn new(
        stream: String,
        actor: Actor,
        time: u64,
        parents: Vec<EventId>,
        causes: Vec<EventId>,
        body: Body,
    ) -> Result<SealedEvent, FormatError> {
        let body_bytes = body.encode();
        let header = Header {
            format: FORMAT_VERSION,
            kind: body.kind(),
            stream,
            actor,
            time,
            parents,
            causes,
            body_len: body_bytes.len() as u64,
            body_hash: Digest::of(&body_bytes),
        };
        header.validate()?;
        let header_bytes = header.encode();
        Ok(SealedEvent { id: EventId::of(&header_bytes), header, body, header_bytes, body_bytes, redacted: false })
    }

    /// The decoded event without its bytes.
    pub fn into_event(self) -> Event {
        Event { id: self.id, header: self.header, body: self.body }
    }

    /// Decodes stored bytes without re-checking hashes (the fast read path; `verify`
    /// checks them).
    pub fn decode(header_bytes: Vec<u8>, body_bytes: Vec<u8>) -> Result<SealedEvent, FormatError> {
        let header = Header::decode(&header_bytes)?;
        let body = Body::decode(header.kind, &body_bytes)?;
        Ok(SealedEvent { id: EventId::of(&header_bytes), header, body, header_bytes, body_bytes, redacted: false })
    }

    /// Every check a stored event must pass: the header and body decode, re-encode to
    /// the same bytes (canonical), the body length and hash match, and the fields are
    /// valid. Returns the reasons it fails, empty when sound.
    pub fn audit(header_bytes: &[u8], body_bytes: &[u8]) -> Vec<String> {
        let mut problems = Vec::new();
        let header = match Header::decode(header_bytes) {
            Ok(h) => h,
            Err(e) => return vec![e.to_string()],
        };
        if header.encode() != header_bytes {
            problems.push("header bytes are not canonical".to_owned());
        }
        // A stored event is judged by the rules it was written under: the name rule on
        // bidirectional and invisible characters came later, so names that only break it
        // still verify (new writes are refused).
        if let Err(e) = header.validate().or_else(|e| header.as_before_format_rule().validate().map_err(|_| e)) {
            problems.push(format!("header: {e}"));
        }
        if header.body_len != body_bytes.len() as u64 {
            problems.push(format!("body is {} bytes, header says {}", body_bytes.len(), header.body_len));
        }
        let actual = Digest::of(body_bytes);
        if actual != header.body_hash {
            problems.push(format!("body hash {} does not match header's {}", actual, header.body_hash));
            return problems;
        }
        match Body::decode(header.kind, body_bytes) {
            Ok(body) => {
                // Through the JSON form and back re-canonicalises every free-form JSON
                // text and re-validates every field: a sound body comes back byte-equal.
                match Body::from_json(header.kind, body.to_json()) {
                    Ok(again) if again.encode() == body_bytes => {}
                    Ok(_) => problems.push("body bytes are not canonical".to_owned()),
                    Err(e) => problems.push(format!("body: {e}")),
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
        problems
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn note() -> Body {
        Body::from_json(Kind::Note, serde_json::json!({"type": "t", "json": 1})).unwrap()
    }

    /// Names with bidirectional or invisible formatting characters are refused when
    /// written, but an event written before that rule still audits clean.
    #[test]
    fn the_formatting_rule_refuses_new_names_and_keeps_old_events_sound() {
        let draft = Draft::new("a\u{202e}b", Actor::Agent("x".into()), note());
        let err = draft.seal(1, Vec::new()).unwrap_err().to_string();
        assert!(err.contains("bidirectional or invisible"), "{err}");
        let agent = Draft::new("s", Actor::Agent("x\u{200b}".into()), note());
        assert!(agent.seal(1, Vec::new()).is_err());

        // An event as an older build wrote it: the same header, sealed without the rule.
        let sound = Draft::new("ab", Actor::Agent("x".into()), note()).seal(1, Vec::new()).unwrap();
        let old = Header { stream: "a\u{202e}b".into(), actor: Actor::Agent("x\u{200b}".into()), ..sound.header };
        let problems = SealedEvent::audit(&old.encode(), &sound.body_bytes);
        assert!(problems.is_empty(), "{problems:?}");
        // Other faults of such a header are still found.
        let bad = Header { stream: "a\u{202e}\u{0}".into(), ..old };
        assert!(!SealedEvent::audit(&bad.encode(), &sound.body_bytes).is_empty());
    }
}
