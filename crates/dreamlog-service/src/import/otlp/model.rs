//! OTLP/JSON read into spans and log records: the one reader behind the receiver (whose
//! protobuf requests are first turned into OTLP/JSON by `proto.rs`), `import otlp` and
//! the assembly of the raw batches the receiver recorded.
//!
//! OTLP/JSON (opentelemetry-proto's JSON mapping): lowerCamelCase keys (the proto's
//! snake_case names are read too, as protobuf's own JSON parsers do), trace and span ids
//! as hex, 64-bit integers as decimal strings or numbers, enums as integers, bytes as
//! base64. Unknown fields are ignored, as the specification asks.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::Result;
use crate::import::{bad, At};

/// Attribute values as JSON: strings, booleans, integers, doubles, arrays, key-value
/// lists (objects) and bytes (base64 strings).
pub type Attributes = BTreeMap<String, Value>;

/// Who emitted a span or record: its resource's attributes and its scope's name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Origin {
    /// Resource attributes (`service.name`, …).
    pub resource: Attributes,
    /// Instrumentation scope name.
    pub scope: String,
}

impl Origin {
    /// `service.name` of the resource.
    pub fn service(&self) -> Option<&str> {
        self.resource.get("service.name").and_then(Value::as_str)
    }
}

/// One span.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent span's id; `None` for a root span.
    pub parent: Option<String>,
    /// Span name.
    pub name: String,
    /// Start, ns since the epoch.
    pub start_ns: u64,
    /// End, ns since the epoch.
    pub end_ns: u64,
    /// Attributes.
    pub attrs: Attributes,
    /// Timestamped events of the span.
    pub events: Vec<SpanEvent>,
    /// Status code: 0 unset, 1 ok, 2 error.
    pub status: i64,
    /// Status message.
    pub status_message: String,
    /// Resource and scope.
    pub origin: Arc<Origin>,
}

impl Span {
    /// An attribute as text.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).and_then(Value::as_str)
    }
}

/// One event of a span.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    /// ns since the epoch.
    pub time_ns: u64,
    /// Event name.
    pub name: String,
    /// Attributes.
    pub attrs: Attributes,
}

/// One log record.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// ns since the epoch (the observed time when the record has no time).
    pub time_ns: u64,
    /// `eventName`, or the `event.name` attribute of older producers.
    pub event_name: String,
    /// Body.
    pub body: Option<Value>,
    /// Attributes.
    pub attrs: Attributes,
    /// The trace it belongs to.
    pub trace_id: Option<String>,
    /// The span it belongs to.
    pub span_id: Option<String>,
    /// Resource and scope.
    pub origin: Arc<Origin>,
}

/// Spans and log records of one or more requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Telemetry {
    /// Spans, in the order read.
    pub spans: Vec<Span>,
    /// Log records, in the order read.
    pub logs: Vec<LogRecord>,
}

impl Telemetry {
    /// Adds another request's spans and records.
    pub fn extend(&mut self, other: Telemetry) {
        self.spans.extend(other.spans);
        self.logs.extend(other.logs);
    }
}

/// A field by its lowerCamelCase name, or its proto name.
fn field<'a>(at: &At<'a>, camel: &str, snake: &str) -> Option<At<'a>> {
    at.opt(camel).or_else(|| if camel == snake { None } else { at.opt(snake) })
}

fn list<'a>(at: &At<'a>, camel: &str, snake: &str) -> Result<Vec<At<'a>>> {
    match field(at, camel, snake) {
        Some(a) => a.array(),
        None => Ok(Vec::new()),
    }
}

/// A 64-bit unsigned integer written as a string or a number.
fn uint(at: &At) -> Result<u64> {
    match at.value {
        Value::String(s) => s.parse().map_err(|_| bad(at.file, &at.ptr(), format!("expected an integer, found {s:?}"))),
        Value::Number(n) => {
            n.as_u64().ok_or_else(|| bad(at.file, &at.ptr(), format!("expected an integer, found {n}")))
        }
        _ => Err(bad(at.file, &at.ptr(), "expected an integer (a string or a number)")),
    }
}

fn int_field(at: &At, camel: &str, snake: &str) -> Result<i64> {
    match field(at, camel, snake) {
        None => Ok(0),
        Some(a) => match a.value {
            Value::Number(n) => {
                n.as_i64().ok_or_else(|| bad(a.file, &a.ptr(), format!("expected an integer, found {n}")))
            }
            Value::String(s) => {
                s.parse().map_err(|_| bad(a.file, &a.ptr(), format!("expected an integer, found {s:?}")))
            }
            _ => Err(bad(a.file, &a.ptr(), "expected an integer")),
        },
    }
}

fn time_field(at: &At, camel: &str, snake: &str) -> Result<u64> {
    field(at, camel, snake).map(|a| uint(&a)).transpose().map(Option::unwrap_or_default)
}

fn str_field(at: &At, camel: &str, snake: &str) -> Result<String> {
    field(at, camel, snake).map(|a| a.str().map(str::to_owned)).transpose().map(Option::unwrap_or_default)
}

/// An id of `bytes` bytes in hex (lowercased); all zeros or empty is no id.
fn id_field(at: &At, camel: &str, snake: &str, bytes: usize) -> Result<Option<String>> {
    let Some(a) = field(at, camel, snake) else { return Ok(None) };
    let s = a.str()?;
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() != bytes * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(a.file, &a.ptr(), format!("expected {} hex digits, found {s:?}", bytes * 2)));
    }
    if s.bytes().all(|b| b == b'0') {
        return Ok(None);
    }
    Ok(Some(s.to_ascii_lowercase()))
}

/// An `AnyValue` as plain JSON.
fn any_value(at: &At) -> Result<Value> {
    let Value::Object(m) = at.value else {
        return Err(bad(at.file, &at.ptr(), "expected an AnyValue object"));
    };
    let Some((k, _)) = m.iter().next() else { return Ok(Value::Null) };
    let inner = at.get(k)?;
    Ok(match k.as_str() {
        "stringValue" | "string_value" => Value::String(inner.str()?.to_owned()),
        "boolValue" | "bool_value" => match inner.value {
            Value::Bool(b) => Value::Bool(*b),
            _ => return Err(bad(at.file, &inner.ptr(), "expected a boolean")),
        },
        "intValue" | "int_value" => match inner.value {
            Value::String(s) => Value::from(
                s.parse::<i64>()
                    .map_err(|_| bad(at.file, &inner.ptr(), format!("expected an integer, found {s:?}")))?,
            ),
            Value::Number(n) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
            _ => return Err(bad(at.file, &inner.ptr(), "expected an integer")),
        },
        "doubleValue" | "double_value" => match inner.value {
            Value::Number(n) => Value::Number(n.clone()),
            // NaN, Infinity: no JSON number holds them.
            Value::String(_) => Value::Null,
            _ => return Err(bad(at.file, &inner.ptr(), "expected a number")),
        },
        "arrayValue" | "array_value" => {
            let values = list(&inner, "values", "values")?;
            Value::Array(values.iter().map(any_value).collect::<Result<_>>()?)
        }
        "kvlistValue" | "kvlist_value" => Value::Object(attributes_of(&inner, "values")?.into_iter().collect()),
        "bytesValue" | "bytes_value" => Value::String(inner.str()?.to_owned()),
        other => return Err(bad(at.file, &at.ptr(), format!("unknown AnyValue field `{other}`"))),
    })
}

/// A list of `KeyValue` as attributes (a repeated key keeps its last value).
fn attributes_of(at: &At, key: &str) -> Result<Attributes> {
    let mut out = Attributes::new();
    for kv in list(at, key, key)? {
        let k = kv.get("key")?.str()?.to_owned();
        let v = match kv.opt("value") {
            Some(v) => any_value(&v)?,
            None => Value::Null,
        };
        out.insert(k, v);
    }
    Ok(out)
}

fn origin(r: &At, scope_holder: &At) -> Result<Arc<Origin>> {
    let resource = match r.opt("resource") {
        Some(res) => attributes_of(&res, "attributes")?,
        None => Attributes::new(),
    };
    let scope = match scope_holder.opt("scope") {
        Some(s) => str_field(&s, "name", "name")?,
        None => String::new(),
    };
    Ok(Arc::new(Origin { resource, scope }))
}

/// Reads one OTLP/JSON export request (traces or logs; a file line may hold both).
pub fn read_request(file: &str, root: &Value, pointer: &str) -> Result<Telemetry> {
    let root = At { file, pointer: pointer.to_owned(), value: root };
    if !root.value.is_object() {
        return Err(bad(file, &root.ptr(), "expected an OTLP export request (an object)"));
    }
    let mut out = Telemetry::default();
    for rs in list(&root, "resourceSpans", "resource_spans")? {
        for ss in list(&rs, "scopeSpans", "scope_spans")? {
            let origin = origin(&rs, &ss)?;
            for s in list(&ss, "spans", "spans")? {
                out.spans.push(read_span(&s, &origin)?);
            }
        }
    }
    for rl in list(&root, "resourceLogs", "resource_logs")? {
        for sl in list(&rl, "scopeLogs", "scope_logs")? {
            let origin = origin(&rl, &sl)?;
            for r in list(&sl, "logRecords", "log_records")? {
                out.logs.push(read_log(&r, &origin)?);
            }
        }
    }
    Ok(out)
}

fn read_span(s: &At, origin: &Arc<Origin>) -> Result<Span> {
    let trace_id = id_field(s, "traceId", "trace_id", 16)?
        .ok_or_else(|| bad(s.file, &format!("{}/traceId", s.pointer), "a span needs a trace id"))?;
    let span_id = id_field(s, "spanId", "span_id", 8)?
        .ok_or_else(|| bad(s.file, &format!("{}/spanId", s.pointer), "a span needs a span id"))?;
    let parent = id_field(s, "parentSpanId", "parent_span_id", 8)?;
    let mut events = Vec::new();
    for e in list(s, "events", "events")? {
        events.push(SpanEvent {
            time_ns: time_field(&e, "timeUnixNano", "time_unix_nano")?,
            name: str_field(&e, "name", "name")?,
            attrs: attributes_of(&e, "attributes")?,
        });
    }
    let (status, status_message) = match s.opt("status") {
        Some(st) => (int_field(&st, "code", "code")?, str_field(&st, "message", "message")?),
        None => (0, String::new()),
    };
    Ok(Span {
        trace_id,
        span_id,
        parent,
        name: str_field(s, "name", "name")?,
        start_ns: time_field(s, "startTimeUnixNano", "start_time_unix_nano")?,
        end_ns: time_field(s, "endTimeUnixNano", "end_time_unix_nano")?,
        attrs: attributes_of(s, "attributes")?,
        events,
        status,
        status_message,
        origin: origin.clone(),
    })
}

fn read_log(r: &At, origin: &Arc<Origin>) -> Result<LogRecord> {
    let attrs = attributes_of(r, "attributes")?;
    let mut event_name = str_field(r, "eventName", "event_name")?;
    if event_name.is_empty() {
        event_name = attrs.get("event.name").and_then(Value::as_str).unwrap_or_default().to_owned();
    }
    let time = time_field(r, "timeUnixNano", "time_unix_nano")?;
    Ok(LogRecord {
        time_ns: if time == 0 { time_field(r, "observedTimeUnixNano", "observed_time_unix_nano")? } else { time },
        event_name,
        body: r.opt("body").map(|b| any_value(&b)).transpose()?,
        attrs,
        trace_id: id_field(r, "traceId", "trace_id", 16)?,
        span_id: id_field(r, "spanId", "span_id", 8)?,
        origin: origin.clone(),
    })
}

/// Reads an OTLP/JSON file: one request, or JSON Lines of requests (the collector's file
/// exporter writes one per line). Errors name the line's pointer (`/LINE/…`, from 0).
pub fn read_file(file: &str, bytes: &[u8]) -> Result<Telemetry> {
    let mut out = Telemetry::default();
    // One document over several lines (pretty-printed) or JSON Lines.
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return read_request(file, &v, "");
    }
    let text = std::str::from_utf8(bytes).map_err(|e| crate::error::Error::Input {
        path: file.to_owned(),
        line: 0,
        reason: format!("not UTF-8: {e}"),
    })?;
    // Lines are read on every core; the requests keep the file's order.
    let lines: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    let read = crate::import::in_parallel(lines, |(i, line)| -> Result<Telemetry> {
        let v: Value = serde_json::from_str(line).map_err(|e| crate::error::Error::Input {
            path: file.to_owned(),
            line: i + 1,
            reason: format!("not valid JSON: {e}"),
        })?;
        read_request(file, &v, &format!("/{i}"))
    });
    for t in read {
        out.extend(t?);
    }
    Ok(out)
}

/// Whether a JSON object is an OTLP export request.
pub fn is_request(v: &Map<String, Value>) -> bool {
    ["resourceSpans", "resourceLogs", "resource_spans", "resource_logs"].iter().any(|k| v.contains_key(*k))
}
