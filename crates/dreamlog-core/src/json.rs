//! The JSON form of events, as the CLI and the server accept and emit it
//! (schemas/event.schema.json).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::Body;
use super::error::FormatError;
use super::event::{Draft, Event, Header, SealedEvent};
use super::hash::EventId;
use super::kind::{Actor, Kind};

/// An event in its JSON form. On input, `position`, `id` and `version` are optional
/// (an `id` given is checked against the recomputed one); `time` and `parents`, when
/// absent, are stamped by the store. On output every field is present.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventJson {
    /// Global position (output; checked on import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// Event id (output; checked when given on input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    /// Stream name; on `append` input it may come from `--stream` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Version within the stream (output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Kind name.
    pub kind: Kind,
    /// Actor, `ROLE:NAME`.
    pub actor: Actor,
    /// Milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// Stream parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parents: Option<Vec<EventId>>,
    /// Provenance.
    #[serde(default)]
    pub causes: Vec<EventId>,
    /// The body in its kind's JSON form (a redacted event's: its stand-in).
    pub body: Value,
    /// Set when the body was redacted: what the header says of the removed body (so the
    /// id recomputes from this form, and an import carries the redaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<super::event::Redaction>,
    /// Output: who wrote the event, from its batch's receipt (`core::receipt`), where it
    /// has one. Ignored on input (an export's line carries it; the store that takes the
    /// line records its own receipt): no request can say who it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<super::receipt::Received>,
}

/// A JSON error with the path of the field it is about, when it is inside the event.
fn located<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> FormatError {
    let path = e.path().to_string();
    let reason = if path == "." || path == "?" { e.inner().to_string() } else { format!("{path}: {}", e.inner()) };
    FormatError::Json { context: "event".into(), reason }
}

impl EventJson {
    /// Parses one line of JSON.
    pub fn parse(text: &str) -> Result<EventJson, FormatError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let json = serde_path_to_error::deserialize(&mut de).map_err(located)?;
        de.end().map_err(|e| FormatError::Json { context: "event".into(), reason: e.to_string() })?;
        Ok(json)
    }

    /// Reads an event from parsed JSON; the error names the field (`time: invalid type…`).
    pub fn from_value(value: &serde_json::Value) -> Result<EventJson, FormatError> {
        serde_path_to_error::deserialize(value).map_err(located)
    }

    /// The JSON form of a stored event.
    pub fn from_sealed(event: &SealedEvent, position: u64, version: u64) -> EventJson {
        let mut j = EventJson::from_parts(&event.id, &event.header, &event.body, position, version);
        j.redacted = event.redacted.then(|| super::event::Redaction::of(&event.header));
        j
    }

    /// The JSON form of a decoded event.
    pub fn from_event(event: &Event, position: u64, version: u64) -> EventJson {
        EventJson::from_parts(&event.id, &event.header, &event.body, position, version)
    }

    /// The append form of a draft: what would be appended (no id, position or version;
    /// time and parents only when the draft fixes them).
    pub fn from_draft(d: &super::Draft) -> EventJson {
        EventJson {
            position: None,
            id: None,
            stream: Some(d.stream.clone()),
            version: None,
            kind: d.body.kind(),
            actor: d.actor.clone(),
            time: d.time,
            parents: d.parents.clone(),
            causes: d.causes.clone(),
            body: d.body.to_json(),
            redacted: d.redacted,
            received: None,
        }
    }

    fn from_parts(id: &EventId, header: &Header, body: &Body, position: u64, version: u64) -> EventJson {
        EventJson {
            position: Some(position),
            id: Some(*id),
            stream: Some(header.stream.clone()),
            version: Some(version),
            kind: header.kind,
            actor: header.actor.clone(),
            time: Some(header.time),
            parents: Some(header.parents.clone()),
            causes: header.causes.clone(),
            body: body.to_json(),
            redacted: None,
            received: None,
        }
    }

    /// Turns the JSON form into a draft; `default_stream` fills a missing `stream`.
    pub fn into_draft(self, default_stream: Option<&str>) -> Result<Draft, FormatError> {
        let stream = match (self.stream, default_stream) {
            (Some(s), _) => s,
            (None, Some(d)) => d.to_owned(),
            (None, None) => {
                return Err(FormatError::field("stream", "missing (give it in the event or with --stream)"))
            }
        };
        let body = Body::from_json(self.kind, self.body)?;
        Ok(Draft {
            stream,
            actor: self.actor,
            time: self.time,
            parents: self.parents,
            causes: self.causes,
            body,
            redacted: self.redacted,
        })
    }

    /// Rebuilds the complete event from a JSON form that carries everything (an export
    /// line) and checks that the given id recomputes.
    pub fn into_sealed(self) -> Result<(Option<u64>, SealedEvent), FormatError> {
        let position = self.position;
        let supplied = self.id;
        let time = self.time.ok_or_else(|| FormatError::field("time", "missing (an exported event carries it)"))?;
        let parents = self
            .parents
            .clone()
            .ok_or_else(|| FormatError::field("parents", "missing (an exported event carries them)"))?;
        let draft = self.into_draft(None)?;
        let sealed = draft.seal(time, parents)?;
        match supplied {
            Some(id) if id != sealed.id => {
                Err(FormatError::IdMismatch { supplied: id.to_hex(), recomputed: sealed.id.to_hex() })
            }
            Some(_) => Ok((position, sealed)),
            None => Err(FormatError::field("id", "missing (an exported event carries it)")),
        }
    }

    /// Serialises to one line of JSON.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
