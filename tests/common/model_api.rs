//! A stand-in for the model APIs (the one external service the tests cannot reach): a
//! real HTTP server on 127.0.0.1 speaking the Anthropic Messages and OpenAI chat
//! completions wire formats, answering from a script and keeping what it received.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One canned reply: status, extra headers, JSON body.
pub type Reply = (u16, Vec<(&'static str, String)>, Value);

/// What the stand-in answers, in order, and what it received.
#[derive(Default)]
pub struct Script {
    /// Replies still to give.
    pub replies: VecDeque<Reply>,
    /// Requests received: headers and JSON body.
    pub received: Vec<(HeaderMap, Value)>,
    /// Wait this long before each answer (a slow model).
    pub delay_ms: u64,
}

pub type Shared = Arc<Mutex<Script>>;

async fn answer(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let delay = s.lock().unwrap().delay_ms;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let mut s = s.lock().unwrap();
    s.received.push((headers, body));
    let (status, extra, reply) = s.replies.pop_front().unwrap_or((
        500,
        vec![],
        json!({"type": "error", "error": {"type": "api_error", "message": "the script ran out"}}),
    ));
    let mut r = (StatusCode::from_u16(status).unwrap(), Json(reply)).into_response();
    for (k, v) in extra {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

/// Starts the stand-in on an ephemeral loopback port; it lives until the test ends.
pub fn serve(script: Shared) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route("/v1/messages", post(answer))
                .route("/v1/chat/completions", post(answer))
                .with_state(script);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

pub fn message(content: Value, stop: &str) -> Reply {
    (
        200,
        vec![],
        json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
               "content": content, "stop_reason": stop, "stop_sequence": null,
               "usage": {"input_tokens": 100, "output_tokens": 20}}),
    )
}
