//! OpenTelemetry live: the receiver of OTLP requests (`receiver.rs`) and sessions written
//! back as OTLP/JSON (`export.rs`). Reading OTLP — requests into spans and log records,
//! a trace assembled into a session under the GenAI semantic conventions — is an
//! importer's work (`crate::import::otlp`), shared by `dreamlog import` of OTLP files and
//! the receiver.
//!
//! The receiver (`POST /v1/traces`, `/v1/logs`) records each request whole as a `note`
//! of type [`RAW_NOTE`] on the stream [`RAW_STREAM`] before it answers; sessions are a
//! projection of those notes ([`Assembler`]), so a span that arrives late or a trace
//! that never completes loses nothing that was acknowledged.

mod export;
mod receiver;

pub use crate::import::otlp::{
    assemble, by_trace, is_request, is_session, logs_request_to_json, proto, read_file, read_request, session_id,
    source_key, trace_request_to_json, Attributes, ExportLogsServiceRequest, ExportTraceServiceRequest, LogRecord,
    Origin, Prior, RpcStatus, Span, SpanEvent, Telemetry, Trace, SEMCONV_VERSION,
};
pub use export::{export_sessions, ExportSelection};
pub use receiver::{decode_request, record, Assembler, Pass, Signal, RAW_NOTE, RAW_STREAM};
