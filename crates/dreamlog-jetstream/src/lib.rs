//! The replicated log of record on NATS JetStream: a [`LogOfRecord`] for the engine of
//! `dreamlog-store` (the only crate that names `async_nats`).
//!
//! One JetStream stream per tenant (`DREAMLOG_<tenant>`, file storage, the configured
//! replicas, deletes and purges denied: the log never shrinks), one subject per dreamlog
//! stream (`dreamlog.<tenant>.<128 bits of the stream name's hash>`), one message per
//! event (docs/reference/FORMAT.md §12) with its id as `Nats-Msg-Id`. A dreamlog group is one
//! JetStream atomic batch (`Nats-Batch-Id`, `-Sequence`, `-Commit`), its first message
//! on each subject carrying `Nats-Expected-Last-Subject-Sequence`: the sequence of the
//! stream head the writer chained to (0 for a new stream), so the batch is stored only if
//! no other node wrote to any of its streams since. An event's position is its JetStream
//! sequence minus one: gapless and the same on every node.
//!
//! The client runs on its own small tokio runtime, so the engine's writer thread (not an
//! async task) can wait on it.

#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;

use dreamlog_store::core::EventId;
use dreamlog_store::error::{Error, LogError, Result};
use dreamlog_store::replica::{self, Follower, Incoming, LogOfRecord, PublishError, Sink, FOLLOW_AHEAD};
use dreamlog_store::Staged;

/// How long one pull of the follower waits (its idle heartbeat is half of it).
const FOLLOW_PULL_EXPIRES: Duration = Duration::from_secs(2);

/// JetStream caps an atomic batch at 1,000 messages.
pub const MAX_ATOMIC_BATCH: usize = 1000;

/// Where the log of record is and how it is kept.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct JetStreamConfig {
    /// Server URLs (`nats://HOST:PORT`); the client fails over among them.
    pub servers: Vec<String>,
    /// Replicas of each tenant's stream (1 for tests, 3 in a cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// How long one request to JetStream may take, milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_replicas() -> usize {
    1
}

fn default_timeout_ms() -> u64 {
    2000
}

impl JetStreamConfig {
    /// Parses `nats://HOST:PORT[,nats://HOST:PORT…]`.
    pub fn parse(servers: &str, replicas: usize) -> Result<JetStreamConfig> {
        let servers: Vec<String> = servers.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        if servers.is_empty() {
            return Err(Error::InvalidInput("--log-of-record: no server given (nats://HOST:PORT[,…])".into()));
        }
        for s in &servers {
            if !s.starts_with("nats://") || s.len() <= "nats://".len() {
                return Err(Error::InvalidInput(format!(
                    "--log-of-record: {s:?} is not a NATS server URL (nats://HOST:PORT)"
                )));
            }
        }
        if !(1..=5).contains(&replicas) {
            return Err(Error::InvalidInput(format!("replicas: {replicas} is not between 1 and 5")));
        }
        Ok(JetStreamConfig { servers, replicas, timeout_ms: default_timeout_ms() })
    }
}

/// A connection to a JetStream cluster, shared by the tenants' logs.
pub struct JetStream {
    rt: Option<tokio::runtime::Runtime>,
    client: async_nats::Client,
    js: jetstream::Context,
    config: JetStreamConfig,
}

impl Drop for JetStream {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs a future on the client's runtime from any thread: from inside another runtime
/// (the server opening its tenants) through a scoped thread, since a runtime cannot block
/// inside another.
fn block_on<F>(rt: &tokio::runtime::Runtime, f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
    } else {
        rt.block_on(f)
    }
}

fn replication(log: &str, reason: impl Into<String>) -> Error {
    Error::Log(LogError::Replication { log: log.to_owned(), reason: reason.into() })
}

impl JetStream {
    /// Connects to the servers (failing over among them for as long as it runs).
    pub fn connect(config: JetStreamConfig) -> Result<Arc<JetStream>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dreamlog-nats")
            .enable_all()
            .build()
            .map_err(|e| Error::Log(LogError::Storage(format!("cannot start the NATS client's runtime: {e}"))))?;
        let servers = config.servers.join(",");
        let timeout = Duration::from_millis(config.timeout_ms);
        let addrs: Vec<async_nats::ServerAddr> = config
            .servers
            .iter()
            .map(|s| s.parse::<async_nats::ServerAddr>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::InvalidInput(format!("--log-of-record {servers}: {e}")))?;
        let client = block_on(
            &rt,
            async_nats::ConnectOptions::new()
                .name("dreamlog")
                .connection_timeout(timeout)
                .request_timeout(Some(timeout))
                .max_reconnects(None)
                .connect(addrs),
        )
        .map_err(|e| replication(&servers, format!("cannot connect: {e}")))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(timeout);
        Ok(Arc::new(JetStream { rt: Some(rt), client, js, config }))
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().unwrap_or_else(|| unreachable!("the runtime lives as long as the connection"))
    }

    /// The log of record of one tenant: its stream, created with the configured replicas
    /// when it does not exist; an existing stream must allow atomic batches.
    pub fn log_for(self: &Arc<JetStream>, tenant: &str) -> Result<JetStreamLog> {
        let token = tenant_token(tenant);
        let stream = format!("DREAMLOG_{token}");
        let prefix = format!("dreamlog.{token}.");
        let describe = format!("JetStream stream {stream} on {}", self.config.servers.join(","));
        let config = jetstream::stream::Config {
            name: stream.clone(),
            description: Some(format!("dreamlog: the log of record of tenant {tenant:?}")),
            subjects: vec![format!("{prefix}>")],
            storage: jetstream::stream::StorageType::File,
            num_replicas: self.config.replicas,
            allow_atomic_publish: true,
            allow_direct: true,
            deny_delete: true,
            deny_purge: true,
            ..Default::default()
        };
        let js = self.js.clone();
        let patience = Duration::from_millis(self.config.timeout_ms.max(1000) * 6);
        let info = block_on(self.rt(), async move {
            // Nodes starting together race to create it, and a new cluster may not have
            // its replicas' peers yet: try for a while.
            let started = tokio::time::Instant::now();
            loop {
                let attempt = match js.get_stream(&config.name).await {
                    Ok(mut s) => s.info().await.cloned().map_err(|e| e.to_string()),
                    Err(_) => js
                        .create_stream(config.clone())
                        .await
                        .map(|s| s.cached_info().clone())
                        .map_err(|e| e.to_string()),
                };
                match attempt {
                    Ok(info) => return Ok(info),
                    Err(e) if started.elapsed() >= patience => return Err(e),
                    Err(e) => {
                        tracing::info!("stream {}: {e}; trying again", config.name);
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
        });
        let info = info.map_err(|e| replication(&describe, format!("cannot open or create the stream: {e}")))?;
        if !info.config.allow_atomic_publish {
            return Err(replication(
                &describe,
                "the stream exists without allow_atomic: dreamlog writes atomic batches (update the stream or use another tenant)",
            ));
        }
        if info.state.first_sequence > 1 {
            return Err(replication(
                &describe,
                format!(
                    "the stream starts at sequence {}: messages were removed, so positions would not be the log's",
                    info.state.first_sequence
                ),
            ));
        }
        let max_payload = self.client.server_info().max_payload as u64;
        Ok(JetStreamLog {
            nats: self.clone(),
            stream,
            prefix,
            describe,
            max_payload,
            batches: AtomicU64::new(0),
            nonce: node_nonce(),
        })
    }
}

/// A tenant's name as a stream-name and subject token: itself when it is plain, else a
/// hash of it.
fn tenant_token(tenant: &str) -> String {
    if !tenant.is_empty()
        && tenant.len() <= 64
        && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        tenant.to_owned()
    } else {
        format!("h{}", replica::stream_token(tenant))
    }
}

fn node_nonce() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

/// One tenant's log of record on JetStream.
pub struct JetStreamLog {
    nats: Arc<JetStream>,
    stream: String,
    prefix: String,
    describe: String,
    max_payload: u64,
    batches: AtomicU64,
    nonce: String,
}

impl JetStreamLog {
    fn subject(&self, stream: &str) -> String {
        format!("{}{}", self.prefix, replica::stream_token(stream))
    }
}

/// The JetStream API's answer to a publish.
#[derive(serde::Deserialize)]
struct PubAck {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(serde::Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// JetStream's error codes that mean "a stream moved": a wrong last (subject) sequence,
/// or a message id seen in the duplicate window (an earlier attempt of this batch).
const ERR_WRONG_LAST_SEQUENCE: u64 = 10071;
const ERR_BATCH_DUPLICATE_ID: u64 = 10201;
/// Message larger than the server's max_payload / the stream's max_msg_size.
const ERR_MESSAGE_TOO_LARGE: [u64; 2] = [10054, 10122];

impl LogOfRecord for JetStreamLog {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn max_batch(&self) -> usize {
        MAX_ATOMIC_BATCH
    }

    fn max_payload(&self) -> u64 {
        self.max_payload
    }

    fn publish(&self, events: &[Staged], heads: &[(usize, Option<u64>)]) -> std::result::Result<u64, PublishError> {
        if events.is_empty() || events.len() > MAX_ATOMIC_BATCH {
            return Err(PublishError::Refused(Error::Log(LogError::BatchTooLarge {
                len: events.len(),
                limit: MAX_ATOMIC_BATCH,
            })));
        }
        let n = self.batches.fetch_add(1, Ordering::Relaxed);
        let batch_id = format!("{}{n:x}", self.nonce);
        let mut expected: Vec<Option<u64>> = vec![None; events.len()];
        for (i, at) in heads {
            if let Some(slot) = expected.get_mut(*i) {
                // The sequence of the head chained to; 0: no message on the subject yet.
                *slot = Some(at.map_or(0, |p| p + 1));
            }
        }
        let mut messages = Vec::with_capacity(events.len());
        for (i, s) in events.iter().enumerate() {
            let payload = replica::encode_message_with_receipt(&s.event, s.receipt.as_deref());
            if payload.len() as u64 > self.max_payload {
                return Err(PublishError::Refused(Error::Log(LogError::BodyTooLarge {
                    index: i,
                    len: payload.len() as u64,
                    limit: self.max_payload,
                })));
            }
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Batch-Id", batch_id.as_str());
            h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            h.insert("Nats-Msg-Id", s.event.id.to_hex().as_str());
            if let Some(e) = expected[i] {
                h.insert("Nats-Expected-Last-Subject-Sequence", e.to_string().as_str());
            }
            if i + 1 == events.len() {
                h.insert("Nats-Batch-Commit", "1");
            }
            messages.push((self.subject(&s.event.header.stream), h, bytes::Bytes::from(payload)));
        }
        let client = self.nats.client.clone();
        let answer = block_on(self.nats.rt(), async move {
            let last = messages.len() - 1;
            for (i, (subject, headers, payload)) in messages.into_iter().enumerate() {
                if i < last {
                    client
                        .publish_with_headers(subject, headers, payload)
                        .await
                        .map_err(|e| PublishError::Unknown(format!("publish: {e}")))?;
                } else {
                    return client
                        .request_with_headers(subject, headers, payload)
                        .await
                        .map_err(|e| PublishError::Unknown(format!("commit: {e}")));
                }
            }
            Err(PublishError::Unknown("empty batch".into()))
        })?;
        let ack: PubAck = serde_json::from_slice(&answer.payload).map_err(|e| {
            PublishError::Unknown(format!("unreadable answer {:?}: {e}", String::from_utf8_lossy(&answer.payload)))
        })?;
        if let Some(err) = ack.error {
            let text = format!("{} (JetStream error {} / {})", err.description, err.code, err.err_code);
            return Err(match err.err_code {
                ERR_WRONG_LAST_SEQUENCE | ERR_BATCH_DUPLICATE_ID => PublishError::Conflict(text),
                c if ERR_MESSAGE_TOO_LARGE.contains(&c) => {
                    PublishError::Refused(Error::Log(LogError::Replication { log: self.describe(), reason: text }))
                }
                _ => PublishError::Unknown(text),
            });
        }
        let count = ack.count.unwrap_or(0);
        if count != events.len() as u64 || ack.seq < count {
            return Err(PublishError::Unknown(format!(
                "the answer acknowledges {count} messages ending at sequence {}, not the batch of {}",
                ack.seq,
                events.len()
            )));
        }
        // Sequences start at 1, positions at 0.
        Ok(ack.seq - count)
    }

    fn end(&self) -> Result<u64> {
        let js = self.nats.js.clone();
        let name = self.stream.clone();
        block_on(self.nats.rt(), async move {
            let mut s = js.get_stream(&name).await.map_err(|e| e.to_string())?;
            s.info().await.map(|i| i.state.last_sequence).map_err(|e| e.to_string())
        })
        .map_err(|e| replication(&self.describe, format!("cannot read the stream's length: {e}")))
    }

    fn id_at(&self, position: u64) -> Result<Option<EventId>> {
        if position >= self.end()? {
            return Ok(None);
        }
        let js = self.nats.js.clone();
        let name = self.stream.clone();
        let payload = block_on(self.nats.rt(), async move {
            let s = js.get_stream(&name).await.map_err(|e| e.to_string())?;
            s.get_raw_message(position + 1).await.map(|m| m.payload.to_vec()).map_err(|e| e.to_string())
        })
        .map_err(|e| replication(&self.describe, format!("cannot read position {position}: {e}")))?;
        Ok(Some(replica::decode_message(position, &payload)?.id))
    }

    fn follow(
        &self,
        from: u64,
        sink: Sink,
        mut applied: tokio::sync::watch::Receiver<u64>,
    ) -> Result<Box<dyn Follower>> {
        let js = self.nats.js.clone();
        let name = self.stream.clone();
        let describe = self.describe.clone();
        let task = self.nats.rt().spawn(async move {
            // The next position to deliver.
            let mut next = from;
            loop {
                let consumer = async {
                    let stream = js.get_stream(&name).await.map_err(|e| e.to_string())?;
                    let config = jetstream::consumer::pull::OrderedConfig {
                        deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: next + 1,
                        },
                        // Pulls expire after 2 s with a heartbeat each second, so a consumer
                        // lost with its server is noticed and recreated within seconds (the
                        // default, 30 s pulls and 15 s heartbeats, stalls writes for 30 s).
                        max_expires: FOLLOW_PULL_EXPIRES,
                        ..Default::default()
                    };
                    let consumer = stream.create_consumer(config).await.map_err(|e| e.to_string())?;
                    consumer.messages().await.map_err(|e| e.to_string())
                };
                let messages = match consumer.await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!("{describe}: the follower cannot start at position {next}: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                let mut chunks = messages.ready_chunks(1024);
                while let Some(chunk) = chunks.next().await {
                    let mut payloads = Vec::with_capacity(chunk.len());
                    let first = next;
                    let mut broken = None;
                    for m in chunk {
                        match m {
                            Ok(m) => {
                                let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                                if seq != next + 1 {
                                    broken = Some(format!("sequence {seq} arrived where {} was due", next + 1));
                                    break;
                                }
                                payloads.push(m.message.payload);
                                next += 1;
                            }
                            Err(e) => {
                                broken = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    if !payloads.is_empty() && !sink(Incoming { first, payloads }) {
                        return;
                    }
                    if let Some(why) = broken {
                        tracing::warn!("{describe}: the follower restarts at position {next}: {why}");
                        break;
                    }
                    // Not too far ahead of what the writer has applied.
                    while next > *applied.borrow() + FOLLOW_AHEAD {
                        if applied.changed().await.is_err() {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Box::new(TaskFollower(task)))
    }
}

/// The follower's task; dropping it aborts the task (and so drops its sink).
struct TaskFollower(tokio::task::JoinHandle<()>);

impl Follower for TaskFollower {}

impl Drop for TaskFollower {
    fn drop(&mut self) {
        self.0.abort();
    }
}
