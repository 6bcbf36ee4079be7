//! The mirror of hosted Claude Managed Agents inside `serve` (the config's `sync.anthropic`):
//! `dreamlog sync anthropic` on an interval and on demand (`POST /v1/sync/anthropic`), one
//! run at a time, its state in `/v1/info` and `/metrics`.
//!
//! Each run is the same mirror as the command's (`managed::mirror::sync_memory`), so it is
//! exactly once however runs end: a server stopped or killed mid-run resumes from the
//! notes its batches carry at its next run. On a cluster (a log of record), the nodes share
//! one log: a run first takes a lease — an `anthropic.sync.lease` note on stream
//! `anthropic.sync/lease`, appended only if the stream is still where the node read it, so
//! of two nodes racing one wins — naming the node and an end three intervals ahead, renewed
//! by each run of its holder. Other nodes skip their runs while a lease of another node
//! lasts; when its holder dies, the lease ends and the next node whose timer fires takes it.
//! (Were two runs to overlap anyway, the mirror's expected versions let only one write each
//! batch: the other fails and retries at its next run.)

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::AnthropicSync;
use crate::core::{Body, CanonicalJson, Draft, ExpectedVersion, Note};
use crate::error::{Error, Result};
use crate::managed::hosted::{Hosted, DEFAULT_BASE_URL};
use crate::managed::mirror::{sync_actor, sync_memory, SyncOptions, SyncReport};
use crate::service::{EventsQuery, LookupRequest, Service};
use crate::store::AppendBatch;

/// The lease's stream and note type (a cluster's nodes take turns through it).
pub const LEASE_STREAM: &str = "anthropic.sync/lease";
/// The lease note's type.
pub const LEASE_NOTE: &str = "anthropic.sync.lease";

/// What the server's mirror did so far (`/v1/info`'s `sync`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncState {
    /// `anthropic`.
    pub source: String,
    /// The tenant mirrored into.
    pub tenant: String,
    /// Seconds between runs.
    pub every_secs: u64,
    /// A run is under way.
    pub running: bool,
    /// Runs that ended, and those of them that failed.
    pub runs: u64,
    pub failures: u64,
    /// Runs skipped because another node holds the lease.
    pub skipped: u64,
    /// When the last run started, ended, and when the last run that succeeded started (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_started: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_finished: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<u64>,
    /// How stale the mirror may be: now minus the start of the last run that succeeded (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
    /// Why the last run failed (cleared by one that succeeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Objects the last run could not map.
    pub unmapped: usize,
    /// Events the runs of this server appended.
    pub events: u64,
    /// Each store's cursor: the newest version time mirrored (ms).
    pub cursors: std::collections::BTreeMap<String, u64>,
    /// On a cluster: the node holding the lease, and until when (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<Value>,
}

/// The mirror's job in a server.
pub struct SyncJob {
    /// Its config.
    pub config: AnthropicSync,
    /// The tenant it writes into.
    pub tenant: String,
    /// Whether runs take the lease first (a cluster node).
    lease: bool,
    /// This node's name in the lease.
    node: String,
    /// One run at a time.
    run: std::sync::Mutex<()>,
    state: std::sync::Mutex<SyncState>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl SyncJob {
    /// The job of `config` over the server's tenants (`cluster`: a log of record is shared).
    pub fn new(config: AnthropicSync, tenants: &[&String], cluster: bool) -> Result<SyncJob> {
        let tenant =
            match &config.tenant {
                Some(t) if tenants.contains(&t) => t.clone(),
                Some(t) => {
                    return Err(Error::InvalidInput(format!(
                        "sync.anthropic.tenant {t:?}: no such tenant (the config's tokens name the tenants)"
                    )))
                }
                None if tenants.len() == 1 => tenants[0].clone(),
                None => return Err(Error::InvalidInput(
                    "sync.anthropic: several tenants are configured: name the one the mirror writes into (`tenant`)"
                        .into(),
                )),
            };
        if config.every_secs == 0 {
            return Err(Error::InvalidInput("sync.anthropic.every_secs: at least 1".into()));
        }
        if let Some(s) = &config.since {
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| Error::InvalidInput(format!("sync.anthropic.since {s:?}: not an RFC 3339 time ({e})")))?;
        }
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        let node = format!("{}:{}", if host.is_empty() { "node" } else { &host }, std::process::id());
        let state = SyncState {
            source: "anthropic".into(),
            tenant: tenant.clone(),
            every_secs: config.every_secs,
            ..SyncState::default()
        };
        Ok(SyncJob {
            config,
            tenant,
            lease: cluster,
            node,
            run: std::sync::Mutex::new(()),
            state: std::sync::Mutex::new(state),
        })
    }

    /// The state now (the lag computed as of now).
    pub fn state(&self) -> SyncState {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        s.lag_ms = s.last_success.map(|t| now_ms().saturating_sub(t));
        s
    }

    /// One run now (waits for a run under way to end first); the report, or why it failed.
    /// `None`: another node holds the lease.
    pub fn run_once(&self, svc: &dyn Service) -> Result<Option<SyncReport>> {
        let _one = self.run.lock().unwrap_or_else(|e| e.into_inner());
        if self.lease && !self.take_lease(svc)? {
            self.update(|s| s.skipped += 1);
            return Ok(None);
        }
        let started = now_ms();
        self.update(|s| {
            s.running = true;
            s.last_started = Some(started);
        });
        let result = self.mirror(svc);
        let finished = now_ms();
        self.update(|s| {
            s.running = false;
            s.runs += 1;
            s.last_finished = Some(finished);
            match &result {
                Ok(r) => {
                    s.last_success = Some(started);
                    s.last_error = None;
                    s.unmapped = r.unmapped.len();
                    s.events += r.stores.iter().map(|x| x.events as u64).sum::<u64>();
                    for st in &r.stores {
                        if let Some(t) = st.through {
                            s.cursors.insert(st.store.clone(), t);
                        }
                    }
                }
                Err(e) => {
                    s.failures += 1;
                    s.last_error = Some(e.to_string());
                }
            }
        });
        result.map(Some)
    }

    fn mirror(&self, svc: &dyn Service) -> Result<SyncReport> {
        let key = std::env::var(&self.config.api_key_env).ok().filter(|k| !k.is_empty()).ok_or_else(|| {
            Error::InvalidInput(format!("{} is not set in the server's environment", self.config.api_key_env))
        })?;
        let base = self
            .config
            .base_url
            .clone()
            .or_else(|| std::env::var("ANTHROPIC_BASE_URL").ok().filter(|b| !b.is_empty()))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let hosted = Hosted::new(&base, &key, self.config.workspace.clone())?;
        let since = self.config.since.as_deref().and_then(|s| {
            chrono::DateTime::parse_from_rfc3339(s).ok().and_then(|d| u64::try_from(d.timestamp_millis()).ok())
        });
        let opts = SyncOptions {
            stores: self.config.stores.clone(),
            progress: None,
            batch: self.config.batch,
            sessions: self.config.sessions,
            since,
            session_progress: None,
            redactions: self.config.redactions,
        };
        sync_memory(svc, &hosted, &opts)
    }

    /// Takes (or renews) the lease unless another node holds one that lasts; whether this
    /// node may run.
    fn take_lease(&self, svc: &dyn Service) -> Result<bool> {
        let heads = svc.lookup(&LookupRequest { ids: Vec::new(), streams: vec![LEASE_STREAM.to_owned()] })?;
        let head = heads.1.first().copied().flatten().map(|(version, _)| version);
        let now = now_ms();
        if let Some(version) = head {
            let q = EventsQuery { from: version, limit: Some(1), stream: Some(LEASE_STREAM.to_owned()), kind: None };
            if let Some(Body::Note(n)) = svc.events(&q)?.first().map(|e| e.event.body.clone()) {
                let v = n.json.to_value();
                let holder = v["node"].as_str().unwrap_or_default();
                let until = v["until"].as_u64().unwrap_or(0);
                if holder != self.node && until > now {
                    self.update(|s| s.lease = Some(v.clone()));
                    return Ok(false);
                }
            }
        }
        let until = now + self.config.every_secs.saturating_mul(3000);
        let lease = json!({"node": self.node, "until": until});
        let note = Note { note_type: LEASE_NOTE.to_owned(), json: CanonicalJson::from_value(&lease) };
        let expected = head.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let batch =
            AppendBatch::one(Draft::new(LEASE_STREAM, sync_actor(), Body::Note(note))).expect(LEASE_STREAM, expected);
        match svc.append_batch(batch) {
            Ok(_) => {
                self.update(|s| s.lease = Some(lease));
                Ok(true)
            }
            // Another node took it first.
            Err(e) if e.class() == crate::error::ErrorClass::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn update(&self, f: impl FnOnce(&mut SyncState)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }
}
