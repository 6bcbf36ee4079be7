//! OTLP read into sessions: requests (protobuf or JSON) into spans and log records
//! (`model.rs`, `proto.rs`), and a trace assembled into a session under the GenAI
//! semantic conventions (`assemble.rs`). Used by `dreamlog import` of OTLP files and by
//! the live receiver (`crate::otlp`).

mod assemble;
mod model;
pub mod proto;

pub use assemble::{assemble, by_trace, is_session, session_id, source_key, Prior, Trace, SEMCONV_VERSION};
pub(crate) use assemble::{EVENT_ATTR, SEQ_ATTR};
pub use model::{is_request, read_file, read_request, Attributes, LogRecord, Origin, Span, SpanEvent, Telemetry};
pub use proto::{
    logs_request_to_json, trace_request_to_json, ExportLogsServiceRequest, ExportTraceServiceRequest, RpcStatus,
};

/// Sessions of an OTLP/JSON file (one request, or JSON Lines of them): every trace that
/// holds a session, assembled whole. `source` names the file in each `session.link`.
pub fn parse_file(file: &str, bytes: &[u8]) -> crate::error::Result<Vec<crate::import::SessionEvents>> {
    let telemetry = read_file(file, bytes)?;
    let (traces, _) = by_trace(telemetry);
    let mut sessions: Vec<crate::import::SessionEvents> =
        crate::import::in_parallel(traces, |t| assemble(&t, None, &format!("otlp:{file}[trace {}]", t.trace_id)))
            .into_iter()
            .flatten()
            .collect();
    // Sub-agents after the sessions they belong to, so they can cite them.
    sessions.sort_by_key(|s| s.parent.is_some());
    Ok(sessions)
}
