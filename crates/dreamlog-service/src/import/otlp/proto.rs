//! The OTLP protobuf messages dreamlog reads and answers (opentelemetry-proto v1.9:
//! `collector/{trace,logs}/v1`, `trace/v1`, `logs/v1`, `common/v1`, `resource/v1`), with
//! their field numbers as in the `.proto` files. Fields dreamlog does not use are left
//! out: protobuf skips unknown fields, so they cost nothing and break nothing.
//!
//! [`trace_request_to_json`] and [`logs_request_to_json`] turn a decoded request into its
//! OTLP/JSON form (lowerCamelCase keys, hex ids, 64-bit integers as decimal strings,
//! bytes as base64), the one form the rest of dreamlog reads.
// The fields are the .proto's, documented there.
#![allow(missing_docs)]

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// `ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `ExportLogsServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_logs: Vec<ResourceLogs>,
}

/// `google.rpc.Status`: what an OTLP/HTTP error answer carries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `ResourceSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `ScopeSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `Span`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<SpanEvent>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `Span.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanEvent {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

/// `Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `ResourceLogs`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceLogs {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_logs: Vec<ScopeLogs>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `ScopeLogs`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeLogs {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub log_records: Vec<LogRecord>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `LogRecord`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogRecord {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(int32, tag = "2")]
    pub severity_number: i32,
    #[prost(string, tag = "3")]
    pub severity_text: String,
    #[prost(message, optional, tag = "5")]
    pub body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    pub attributes: Vec<KeyValue>,
    #[prost(bytes = "vec", tag = "9")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "10")]
    pub span_id: Vec<u8>,
    #[prost(fixed64, tag = "11")]
    pub observed_time_unix_nano: u64,
    #[prost(string, tag = "12")]
    pub event_name: String,
}

/// `Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<any_value::Value>,
}

/// The `value` oneof of `AnyValue`.
pub mod any_value {
    /// One of the value types (named as the .proto's oneof fields).
    #[allow(clippy::enum_variant_names)]
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(int64, tag = "3")]
        IntValue(i64),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        #[prost(message, tag = "5")]
        ArrayValue(super::ArrayValue),
        #[prost(message, tag = "6")]
        KvlistValue(super::KeyValueList),
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }
}

/// `ArrayValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// `KeyValueList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

fn any_json(v: &AnyValue) -> Value {
    use any_value::Value as V;
    match &v.value {
        None => json!({}),
        Some(V::StringValue(s)) => json!({"stringValue": s}),
        Some(V::BoolValue(b)) => json!({"boolValue": b}),
        Some(V::IntValue(i)) => json!({"intValue": i.to_string()}),
        Some(V::DoubleValue(d)) => match serde_json::Number::from_f64(*d) {
            Some(n) => json!({"doubleValue": n}),
            // NaN and the infinities have no JSON number; OTLP/JSON writes them as strings.
            None => json!({"doubleValue": d.to_string()}),
        },
        Some(V::ArrayValue(a)) => json!({"arrayValue": {"values": a.values.iter().map(any_json).collect::<Vec<_>>()}}),
        Some(V::KvlistValue(l)) => json!({"kvlistValue": {"values": attrs_json(&l.values)}}),
        Some(V::BytesValue(b)) => json!({"bytesValue": base64::engine::general_purpose::STANDARD.encode(b)}),
    }
}

fn attrs_json(attrs: &[KeyValue]) -> Vec<Value> {
    attrs
        .iter()
        .map(|kv| json!({"key": kv.key, "value": kv.value.as_ref().map(any_json).unwrap_or_else(|| json!({}))}))
        .collect()
}

fn resource_json(r: &Option<Resource>) -> Value {
    json!({"attributes": r.as_ref().map(|r| attrs_json(&r.attributes)).unwrap_or_default()})
}

fn scope_json(s: &Option<InstrumentationScope>) -> Value {
    match s {
        Some(s) => json!({"name": s.name, "version": s.version}),
        None => json!({}),
    }
}

/// Puts `key: value` into `m` unless `value` is the field's default (OTLP/JSON leaves
/// defaults out).
fn put(m: &mut Map<String, Value>, key: &str, value: Value, is_default: bool) {
    if !is_default {
        m.insert(key.to_owned(), value);
    }
}

/// A trace export request in its OTLP/JSON form.
pub fn trace_request_to_json(req: &ExportTraceServiceRequest) -> Value {
    let resource_spans: Vec<Value> = req
        .resource_spans
        .iter()
        .map(|rs| {
            let scope_spans: Vec<Value> = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    let spans: Vec<Value> = ss
                        .spans
                        .iter()
                        .map(|s| {
                            let mut m = Map::new();
                            m.insert("traceId".into(), Value::String(hex::encode(&s.trace_id)));
                            m.insert("spanId".into(), Value::String(hex::encode(&s.span_id)));
                            put(
                                &mut m,
                                "parentSpanId",
                                Value::String(hex::encode(&s.parent_span_id)),
                                s.parent_span_id.is_empty(),
                            );
                            m.insert("name".into(), Value::String(s.name.clone()));
                            put(&mut m, "kind", json!(s.kind), s.kind == 0);
                            m.insert("startTimeUnixNano".into(), Value::String(s.start_time_unix_nano.to_string()));
                            m.insert("endTimeUnixNano".into(), Value::String(s.end_time_unix_nano.to_string()));
                            put(&mut m, "attributes", Value::Array(attrs_json(&s.attributes)), s.attributes.is_empty());
                            let events: Vec<Value> = s
                                .events
                                .iter()
                                .map(|e| {
                                    json!({"timeUnixNano": e.time_unix_nano.to_string(), "name": e.name,
                                        "attributes": attrs_json(&e.attributes)})
                                })
                                .collect();
                            put(&mut m, "events", Value::Array(events), s.events.is_empty());
                            if let Some(st) = &s.status {
                                let mut sm = Map::new();
                                put(&mut sm, "message", Value::String(st.message.clone()), st.message.is_empty());
                                put(&mut sm, "code", json!(st.code), st.code == 0);
                                m.insert("status".into(), Value::Object(sm));
                            }
                            Value::Object(m)
                        })
                        .collect();
                    json!({"scope": scope_json(&ss.scope), "spans": spans, "schemaUrl": ss.schema_url})
                })
                .collect();
            json!({"resource": resource_json(&rs.resource), "scopeSpans": scope_spans, "schemaUrl": rs.schema_url})
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

/// A logs export request in its OTLP/JSON form.
pub fn logs_request_to_json(req: &ExportLogsServiceRequest) -> Value {
    let resource_logs: Vec<Value> = req
        .resource_logs
        .iter()
        .map(|rl| {
            let scope_logs: Vec<Value> = rl
                .scope_logs
                .iter()
                .map(|sl| {
                    let records: Vec<Value> = sl
                        .log_records
                        .iter()
                        .map(|r| {
                            let mut m = Map::new();
                            m.insert("timeUnixNano".into(), Value::String(r.time_unix_nano.to_string()));
                            put(
                                &mut m,
                                "observedTimeUnixNano",
                                Value::String(r.observed_time_unix_nano.to_string()),
                                r.observed_time_unix_nano == 0,
                            );
                            put(&mut m, "severityNumber", json!(r.severity_number), r.severity_number == 0);
                            put(
                                &mut m,
                                "severityText",
                                Value::String(r.severity_text.clone()),
                                r.severity_text.is_empty(),
                            );
                            if let Some(b) = &r.body {
                                m.insert("body".into(), any_json(b));
                            }
                            put(&mut m, "attributes", Value::Array(attrs_json(&r.attributes)), r.attributes.is_empty());
                            put(&mut m, "traceId", Value::String(hex::encode(&r.trace_id)), r.trace_id.is_empty());
                            put(&mut m, "spanId", Value::String(hex::encode(&r.span_id)), r.span_id.is_empty());
                            put(&mut m, "eventName", Value::String(r.event_name.clone()), r.event_name.is_empty());
                            Value::Object(m)
                        })
                        .collect();
                    json!({"scope": scope_json(&sl.scope), "logRecords": records, "schemaUrl": sl.schema_url})
                })
                .collect();
            json!({"resource": resource_json(&rl.resource), "scopeLogs": scope_logs, "schemaUrl": rl.schema_url})
        })
        .collect();
    json!({ "resourceLogs": resource_logs })
}
