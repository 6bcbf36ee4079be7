//! `dreamlog serve`: the HTTP API (axum) over the library, for agents in other
//! processes and languages. RocksDB allows one writer process; a deployment runs the
//! server and everything talks to it.
//!
//! Tenants: without a config the server serves the one database at `--db` with no
//! tokens, and binds loopback only. With a config, each bearer token maps to a tenant and
//! a role (`read` < `write` < `admin`); each tenant has its own database under
//! `DB/tenants/NAME`, so one tenant's streams, sessions and memory stores do not exist
//! for another (404). Tokens are stored as BLAKE3 hashes and compared in constant time.
//!
//! Errors are `{"error": {"type", "message", …}}` with 400 (bad input), 401/403 (auth),
//! 404 (unknown), 409 (conflict, with the current version), 413 (too large), 429
//! (overload), 500.
//!
//! This crate is every HTTP surface (the dreamlog API, the Managed-Agents memory API,
//! MCP over HTTP and stdio, OTLP/HTTP, the web view) over `dreamlog-service`; the
//! `dreamlog` binary starts it.

#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

mod anthropic;
mod api;
mod config;
mod http;
pub mod mcp;
pub mod metrics;
mod routes;
mod state;
mod sync;
mod ui;
mod workers;

use dreamlog_core as core;
use dreamlog_service::{dream, embedded, hooks, keys, managed, otlp, service};
use dreamlog_store as store;
use dreamlog_store::error;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;

pub use config::{
    anonymous, check_bind, hash_token, server_principal, DreamerProfile, DreamerRefused, Role, ServerConfig, TlsFiles,
    TokenEntry, DEFAULT_TENANT,
};
pub use routes::router;
pub use state::{AppState, AuthError, TailSlot, Tenant};

/// Serves `state` on `listener` until `shutdown` resolves; then stops accepting, lets
/// in-flight requests (appends included) finish, and closes the databases.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = router(state.clone());
    workers::start(&state);
    let header_timeout = Duration::from_secs(state.config.header_read_timeout_secs.max(1));
    let stall = Duration::from_secs(state.config.write_stall_timeout_secs.max(1));
    let tls = state.config.tls.as_ref().map(config::TlsFiles::acceptor).transpose()?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, say: back off rather than spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let socket = StallGuard::new(tcp, stall);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let http = {
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(256 << 10);
            b
        };
        match &tls {
            None => {
                let conn = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(socket), service));
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(acceptor) => {
                // The handshake runs in the connection's task, bounded like a request head.
                let (acceptor, watcher) = (acceptor.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let Ok(Ok(stream)) = tokio::time::timeout(header_timeout, acceptor.accept(socket)).await else {
                        return;
                    };
                    let conn = watcher.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
                    let _ = conn.await;
                });
            }
        }
    }
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    // Live tails never end by themselves: tell them to.
    state.begin_shutdown();
    let limit = Duration::from_secs(state.config.request_timeout_secs.max(1) + 5);
    if tokio::time::timeout(limit, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {limit:?}: closing them");
    }
    state.close()?;
    tracing::info!("databases flushed and closed");
    Ok(())
}

/// A connection's socket that fails a write the client has not accepted for `stall`
/// (it stopped reading): the connection closes instead of holding its unread output.
struct StallGuard {
    inner: tokio::net::TcpStream,
    stall: Duration,
    waiting: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl StallGuard {
    fn new(inner: tokio::net::TcpStream, stall: Duration) -> StallGuard {
        StallGuard { inner, stall, waiting: None }
    }

    /// Turns a pending write into an error once it has been pending for `stall`.
    fn guard<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        r: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::future::Future;
        if r.is_ready() {
            self.waiting = None;
            return r;
        }
        let stall = self.stall;
        let sleep = self.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.waiting = None;
            return std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            )));
        }
        std::task::Poll::Pending
    }
}

impl tokio::io::AsyncRead for StallGuard {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for StallGuard {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, r)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, r)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
