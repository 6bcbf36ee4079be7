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
mod http;
pub mod mcp;
pub mod metrics;
mod routes;
mod ui;

use dreamlog_core as core;
use dreamlog_service::{dream, keys, managed, otlp, service};
use dreamlog_store as store;
use dreamlog_store::error;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::receipt::Principal;
use crate::store::principal::as_principal;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::Actor;
use crate::error::{Error, Result};
use crate::service::Local;
use crate::store::{Options, Store, SyncMode};

pub use routes::router;

/// A role: what a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads only.
    Read,
    /// Reads, appends, memory commands, dreams.
    Write,
    /// Everything, including verify and export.
    Admin,
}

/// One token of the config.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Tenant name (its database is `DB/tenants/NAME`).
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// BLAKE3 of the token, hex (`dreamlog serve --hash-token TOKEN` prints it).
    pub token_blake3: String,
    /// Who holds the token: the principal every write made with it is recorded as (a
    /// receipt per batch; `GET /v1/principals`). Without one, `token:` and the first 12
    /// hex digits of `token_blake3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl TokenEntry {
    /// The principal this token's writes are recorded as.
    pub fn principal(&self) -> Principal {
        let name = match &self.name {
            Some(n) => n.clone(),
            None => format!("token:{}", self.token_blake3.get(..12).unwrap_or(&self.token_blake3)),
        };
        Principal::new(name, format!("{:?}", self.role).to_lowercase())
    }
}

/// The principal of requests to a server without tokens (loopback only).
pub fn anonymous() -> Principal {
    Principal::new("anonymous", "none")
}

/// The principal of the server's own writes (OTLP assembly, signed checkpoints, hosted
/// dreams' bookkeeping outside a request).
pub fn server_principal(what: &str) -> Principal {
    Principal::new(format!("server:{what}"), "server")
}

/// The backup root of a config, checked against the database folder `db` (both exist
/// by then): absolute, made when missing, and neither inside the other — so no backup
/// can land in a database folder, a tenant's included.
fn backup_root(db: &Path, root: &Path) -> Result<PathBuf> {
    let refuse = |reason: String| Error::InvalidInput(format!("backup_root {}: {reason}", root.display()));
    if !root.is_absolute() {
        return Err(refuse("give an absolute path".into()));
    }
    std::fs::create_dir_all(root).map_err(|source| Error::Io { path: root.display().to_string(), source })?;
    let canon = |p: &Path| p.canonicalize().map_err(|source| Error::Io { path: p.display().to_string(), source });
    let (root_c, db_c) = (canon(root)?, canon(db)?);
    if root_c.starts_with(&db_c) {
        return Err(refuse(format!("it lies inside the database folder {}: backups go outside it", db.display())));
    }
    if db_c.starts_with(&root_c) {
        return Err(refuse(format!(
            "the database folder {} lies inside it: a backup could land on a database",
            db.display()
        )));
    }
    Ok(root_c)
}

impl AppState {
    /// Where `POST /v1/backup` may write the folder a request names: a new folder below
    /// the backup root, named by plain relative components (or an absolute path below the
    /// root); its missing parents below the root are made.
    pub fn backup_dir(&self, asked: &str) -> Result<PathBuf> {
        let Some(root) = &self.backup_root else {
            return Err(Error::InvalidInput(
                "this server takes no backups over HTTP: its config sets no backup_root (a folder outside the database)"
                    .into(),
            ));
        };
        let refuse = |reason: &str| Error::InvalidInput(format!("dir {asked:?}: {reason}"));
        let asked_path = Path::new(asked);
        let relative = if asked_path.is_absolute() {
            asked_path.strip_prefix(root).map_err(|_| {
                refuse(&format!(
                    "a backup goes below the backup root {}; give a folder name relative to it",
                    root.display()
                ))
            })?
        } else {
            asked_path
        };
        let plain = relative.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain || relative.as_os_str().is_empty() {
            return Err(refuse(
                "name a new folder below the backup root with plain names (no `..`, `.` or empty parts)",
            ));
        }
        let dir = root.join(relative);
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| Error::Io { path: parent.display().to_string(), source })?;
        }
        Ok(dir)
    }
}

/// One row of the token table.
#[derive(Clone, Debug)]
struct TokenRow {
    hash: blake3::Hash,
    tenant: String,
    role: Role,
    principal: Principal,
}

/// The server config file (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Bearer tokens; empty = no auth (loopback only).
    pub tokens: Vec<TokenEntry>,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Most events in one append.
    pub max_batch: usize,
    /// Requests taking longer are answered 503 (SSE streams excepted).
    pub request_timeout_secs: u64,
    /// Most concurrent requests before 429.
    pub max_concurrent: usize,
    /// Block cache shared by every tenant's database, bytes.
    pub block_cache_bytes: usize,
    /// Memtables of every tenant's database together, bytes (past it the largest are
    /// flushed), so many tenants cost one budget.
    pub write_buffer_bytes: usize,
    /// A connection that has not sent a whole request head within this many seconds —
    /// also an idle keep-alive connection between requests — is closed.
    pub header_read_timeout_secs: u64,
    /// A connection whose client stops reading (a tail nobody consumes) for this many
    /// seconds is closed, so unread responses cannot pile up in the server.
    pub write_stall_timeout_secs: u64,
    /// Most live tails (SSE) open at once, all tenants together; past it 503.
    pub max_subscribers: usize,
    /// Most bytes of events all live tails together hold read ahead of their clients;
    /// past it, the tails whose clients left events unread longest are dropped with an
    /// `error` event naming the position to resume from.
    pub max_tail_bytes: u64,
    /// `POST /v1/backup` writes only below this folder (a request names a new folder
    /// relative to it); unset, the server takes no backups over HTTP. It must lie outside
    /// the database folder, and the database outside it.
    pub backup_root: Option<PathBuf>,
    /// A new event stamped more than this many seconds ahead of the server's clock is
    /// refused (400); past times are accepted (imports keep their runs' times).
    pub max_clock_skew_secs: u64,
    /// Dreamers a request may run by name. Model endpoints, API key variables and
    /// programs come only from here (the server's admin): a request names a profile and
    /// may set only the config keys the profile lists as `tunable`. Without a profile a
    /// request can run only the built-in `evidence` dreamer (pure: no network, no program).
    pub dreamers: BTreeMap<String, DreamerProfile>,
    /// The Ed25519 key file (`dreamlog keygen`) the server signs checkpoints with
    /// (`POST /v1/checkpoints`, and every `checkpoint_every_secs`).
    pub checkpoint_key: Option<PathBuf>,
    /// Sign a checkpoint of each tenant's log this often when it grew (0: on demand only).
    pub checkpoint_every_secs: u64,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// The dreamer that runs the Managed-Agents API's dreams (`POST
    /// /anthropic/v1/dreams`): a profile of `dreamers` (an `llm` profile that lists
    /// `model` as tunable gets the request's model), or the built-in `evidence` when unset.
    pub anthropic_dreamer: Option<String>,
    /// OTLP: a trace is assembled into its session once no span of it has arrived for
    /// this long and its root span is here (milliseconds).
    pub otlp_quiet_ms: u64,
    /// OTLP: a trace whose root span never comes is assembled once quiet this long
    /// (seconds); its session has no end until the root arrives.
    pub otlp_open_trace_secs: u64,
    /// The web view (`/ui`): a session cookie a token was exchanged for lasts this long
    /// (seconds); then the page asks for the token again.
    pub ui_session_secs: u64,
    /// Run as a cluster node: the log of record is NATS JetStream (`servers`,
    /// `replicas`, `timeout_ms`); each tenant's database is its projection. `serve
    /// --log-of-record` sets it from the command line.
    #[cfg(feature = "jetstream")]
    pub log_of_record: Option<crate::store::jetstream::JetStreamConfig>,
}

/// The certificate chain and private key `serve` uses for TLS.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// A TLS acceptor over these files (TLS 1.2 and 1.3, rustls with ring).
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |path: &Path, reason: String| Error::Input { path: path.display().to_string(), line: 0, reason };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| bad(&self.cert, format!("not a PEM certificate chain: {e}")))?;
        if certs.is_empty() {
            return Err(bad(&self.cert, "no certificate in the file".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| bad(&self.key, format!("not a PEM private key: {e}")))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&self.cert, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad(&self.key, format!("the key does not go with the certificate: {e}")))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// A dreamer the server's config defines for requests to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DreamerProfile {
    /// `NAME[@VERSION]`: `llm`, `exec`, `evidence`.
    pub dreamer: String,
    /// Its configuration (endpoints, key variables, programs, tunables' defaults).
    #[serde(default)]
    pub config: serde_json::Value,
    /// Config keys a request may set.
    #[serde(default)]
    pub tunable: Vec<String>,
}

/// Why a request's dreamer was refused.
#[derive(Debug)]
pub struct DreamerRefused(pub String);

impl ServerConfig {
    /// The dreamer a request may run: a configured profile (with the request's tunables
    /// laid over its config), or the built-in `evidence` dreamer.
    pub fn dreamer_for_request(
        &self,
        dreamer: Option<&str>,
        config: serde_json::Value,
    ) -> std::result::Result<crate::core::dream::DreamerSpec, DreamerRefused> {
        let name = dreamer.unwrap_or(crate::core::evidence::NAME);
        if let Some(p) = self.dreamers.get(name) {
            let mut spec: crate::core::dream::DreamerSpec = p
                .dreamer
                .parse()
                .map_err(|e: String| DreamerRefused(format!("server config, dreamer {name:?}: {e}")))?;
            let mut merged = match &p.config {
                serde_json::Value::Object(m) => m.clone(),
                _ => serde_json::Map::new(),
            };
            match config {
                serde_json::Value::Null => {}
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        if !p.tunable.contains(&k) {
                            return Err(DreamerRefused(format!(
                                "config key {k:?} of dreamer {name:?} is set by the server's config; a request may set only: {}",
                                if p.tunable.is_empty() { "nothing".to_owned() } else { p.tunable.join(", ") }
                            )));
                        }
                        merged.insert(k, v);
                    }
                }
                _ => return Err(DreamerRefused("config must be a JSON object".into())),
            }
            spec.config = serde_json::Value::Object(merged);
            return Ok(spec);
        }
        let mut spec: crate::core::dream::DreamerSpec = name.parse().map_err(DreamerRefused)?;
        if spec.name != crate::core::evidence::NAME {
            let configured: Vec<&str> = self.dreamers.keys().map(String::as_str).collect();
            return Err(DreamerRefused(format!(
                "dreamer {name:?} is not one this server's config defines ({}); the {} dreamer {} and runs only as a dreamer the server's admin configured (config `dreamers`)",
                if configured.is_empty() { "none".to_owned() } else { configured.join(", ") },
                spec.name,
                match spec.name.as_str() {
                    crate::dream::llm::NAME => "calls a model with the server's keys",
                    crate::dream::exec::NAME => "runs a program on the server",
                    _ => "is unknown",
                }
            )));
        }
        spec.config = config;
        Ok(spec)
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            tokens: Vec::new(),
            max_body_bytes: 16 << 20,
            max_batch: 10_000,
            request_timeout_secs: 30,
            max_concurrent: 1024,
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 256 << 20,
            header_read_timeout_secs: 10,
            write_stall_timeout_secs: 30,
            max_subscribers: 1024,
            max_tail_bytes: 64 << 20,
            max_clock_skew_secs: crate::store::DEFAULT_CLOCK_SKEW_MS / 1000,
            backup_root: None,
            dreamers: BTreeMap::new(),
            checkpoint_key: None,
            checkpoint_every_secs: 0,
            tls: None,
            anthropic_dreamer: None,
            otlp_quiet_ms: 2000,
            otlp_open_trace_secs: 60,
            ui_session_secs: 3600,
            #[cfg(feature = "jetstream")]
            log_of_record: None,
        }
    }
}

impl ServerConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<ServerConfig> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        let cfg: ServerConfig = serde_json::from_str(&text).map_err(|e| Error::Input {
            path: path.display().to_string(),
            line: e.line(),
            reason: e.to_string(),
        })?;
        for t in &cfg.tokens {
            if crate::core::Digest::from_hex(&t.token_blake3).is_err() {
                return Err(Error::Input {
                    path: path.display().to_string(),
                    line: 0,
                    reason: format!("tenant {:?}: token_blake3 must be 64 hex characters", t.tenant),
                });
            }
            crate::core::validate::check_name("tenant", &t.tenant)?;
            if t.tenant.contains(['/', '\\']) || t.tenant.starts_with('.') {
                return Err(Error::Input {
                    path: path.display().to_string(),
                    line: 0,
                    reason: format!("tenant {:?}: a tenant name is one path segment", t.tenant),
                });
            }
        }
        Ok(cfg)
    }
}

/// The hash a config stores for a token.
pub fn hash_token(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// One tenant's database.
#[derive(Clone)]
pub struct Tenant {
    /// Name.
    pub name: String,
    /// Its store.
    pub store: Store,
    /// The service over it (every handler calls it).
    pub svc: Local,
    /// Who the request was authenticated as (set on the copy a request gets): its writes
    /// are recorded as this principal's.
    pub principal: Option<Principal>,
}

/// The token table of a config.
fn token_table(config: &ServerConfig) -> Result<Vec<TokenRow>> {
    config
        .tokens
        .iter()
        .map(|t| {
            let hash = blake3::Hash::from_hex(&t.token_blake3).map_err(|e| Error::Input {
                path: "server config".into(),
                line: 0,
                reason: e.to_string(),
            })?;
            Ok(TokenRow { hash, tenant: t.tenant.clone(), role: t.role, principal: t.principal() })
        })
        .collect()
}

/// Shared server state.
pub struct AppState {
    tenants: BTreeMap<String, Tenant>,
    /// The configured backup root, made and resolved (`backup_root`).
    backup_root: Option<PathBuf>,
    /// Token hashes, tenants and roles: swapped whole when the config is reloaded.
    tokens: std::sync::RwLock<Vec<TokenRow>>,
    /// The config file, read again on SIGHUP (tokens rotate without a restart).
    config_path: std::sync::Mutex<Option<PathBuf>>,
    /// Limits.
    pub config: ServerConfig,
    /// Set when the server shuts down: live tails end so that shutdown can finish.
    stop: tokio::sync::watch::Sender<bool>,
    /// Live tails open now (all tenants).
    subscribers: Arc<std::sync::atomic::AtomicUsize>,
    /// The bytes live tails hold read ahead, all tenants together (`max_tail_bytes`).
    pub tail_budget: Arc<crate::store::TailBudget>,
    /// The Managed-Agents dreams running now: (tenant, dream id) → its cancel flag.
    pub dream_jobs: std::sync::Mutex<std::collections::HashMap<(String, String), Arc<std::sync::atomic::AtomicBool>>>,
    /// The web view's sessions: BLAKE3 of the cookie → who signed in, until when.
    ui_sessions: std::sync::Mutex<std::collections::HashMap<blake3::Hash, UiSession>>,
    /// SIGHUP reloads of the config's tokens: [applied, refused].
    reloads: [std::sync::atomic::AtomicU64; 2],
}

/// A web view session: the token it was opened with (checked again on every use, so a
/// token removed from the config ends its sessions), its tenant, role and end.
#[derive(Clone, Debug)]
struct UiSession {
    token: Option<blake3::Hash>,
    tenant: String,
    role: Role,
    expires: std::time::Instant,
}

/// Most web view sessions held at once (expired ones are dropped first).
const MAX_UI_SESSIONS: usize = 10_000;

/// One open live tail, counted while it lives.
pub struct TailSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for TailSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl AppState {
    /// Opens every tenant's database: `db` itself without tokens, `db/tenants/NAME` with.
    pub fn open(db: &Path, config: ServerConfig, sync: SyncMode, snapshot_every: u64) -> Result<Arc<AppState>> {
        // One memory budget for all tenants.
        let shared = crate::store::SharedCache::new(config.block_cache_bytes, config.write_buffer_bytes);
        let profiles = Arc::new(config.clone());
        // Requests name dreamers; what runs comes from the server's config alone.
        let policy: crate::service::DreamerPolicy =
            Arc::new(move |dreamer, cfg| profiles.dreamer_for_request(dreamer, cfg).map_err(|e| Error::Forbidden(e.0)));
        let seed = config.checkpoint_key.as_deref().map(crate::keys::read_seed).transpose()?;
        #[cfg(feature = "jetstream")]
        let nats = config.log_of_record.clone().map(crate::store::jetstream::JetStream::connect).transpose()?;
        let open = |path: PathBuf, name: &str| -> Result<Tenant> {
            let opts = Options {
                sync,
                create_if_missing: true,
                shared: Some(shared.clone()),
                max_clock_skew_ms: config.max_clock_skew_secs.saturating_mul(1000),
                ..Options::default()
            };
            #[cfg(feature = "jetstream")]
            let store = match &nats {
                Some(nats) => Store::open_replicated(&path, opts, Arc::new(nats.log_for(name)?))?,
                None => Store::open(&path, opts)?,
            };
            #[cfg(not(feature = "jetstream"))]
            let store = Store::open(&path, opts)?;
            if name != DEFAULT_TENANT {
                store.claim_tenant(name)?;
            }
            if let Some(why) = store.acked_problem() {
                tracing::warn!("tenant {name}: {why}");
            }
            if let Some((d, aside)) = store.torn_tail() {
                tracing::warn!(
                    "tenant {name}: the write-ahead log {} ended inside a record at byte {} (a crash mid-write); that record was dropped, a copy is in {}",
                    d.file.display(),
                    d.offset,
                    aside.display()
                );
            }
            let mut svc = Local::new(store.clone(), snapshot_every)
                .named(name, config.max_batch)
                .with_policy(policy.clone())
                .with_default_actor(Actor::Agent(format!("tenant:{name}")));
            if let Some(seed) = seed {
                svc = svc.with_signing_seed(seed);
            }
            Ok(Tenant { name: name.to_owned(), store, svc, principal: None })
        };
        let mut tenants = BTreeMap::new();
        let mut tokens = Vec::new();
        if config.tokens.is_empty() {
            tenants.insert(DEFAULT_TENANT.to_owned(), open(db.to_path_buf(), DEFAULT_TENANT)?);
        } else {
            std::fs::create_dir_all(db.join("tenants"))
                .map_err(|source| Error::Io { path: db.display().to_string(), source })?;
            for t in &config.tokens {
                if !tenants.contains_key(&t.tenant) {
                    tenants.insert(t.tenant.clone(), open(db.join("tenants").join(&t.tenant), &t.tenant)?);
                }
            }
            tokens = token_table(&config)?;
        }
        let backup_root = config.backup_root.as_deref().map(|root| backup_root(db, root)).transpose()?;
        Ok(Arc::new(AppState {
            backup_root,
            tenants,
            tokens: std::sync::RwLock::new(tokens),
            config_path: std::sync::Mutex::new(None),
            tail_budget: crate::store::TailBudget::new(config.max_tail_bytes),
            config,
            stop: tokio::sync::watch::Sender::new(false),
            subscribers: Default::default(),
            dream_jobs: Default::default(),
            ui_sessions: Default::default(),
            reloads: Default::default(),
        }))
    }

    /// Ends the Managed-Agents dreams a stopped server left `pending` or `running`, as
    /// what they did (`managed::interrupted_dreams`); logs how many.
    pub fn end_interrupted_dreams(&self) -> Result<()> {
        for t in self.tenants.values() {
            // On a thread of its own: appends block, and this runs inside the runtime.
            let actor = crate::core::Actor::System("dreamlog".into());
            let n = std::thread::scope(|s| s.spawn(|| crate::managed::interrupted_dreams(&t.svc, actor)).join())
                .map_err(|_| {
                    Error::Log(crate::error::LogError::Storage("the dream recovery thread panicked".into()))
                })??;
            if n > 0 {
                tracing::warn!(
                    "tenant {}: {n} dream(s) of the Managed-Agents API were pending or running when the server stopped; recorded how they ended",
                    t.name
                );
            }
        }
        Ok(())
    }

    /// The log of record the tenants' databases are projections of (a cluster node).
    pub fn log_of_record(&self) -> Option<String> {
        let t = self.tenants.values().next()?;
        t.store.log_of_record().map(|l| l.describe())
    }

    /// Live tails open now (all tenants).
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The Managed-Agents dreams of `tenant` running now.
    pub fn dream_jobs_running(&self, tenant: &str) -> usize {
        self.dream_jobs.lock().unwrap_or_else(|e| e.into_inner()).keys().filter(|(t, _)| t == tenant).count()
    }

    /// SIGHUP reloads of the config's tokens so far: (applied, refused).
    pub fn reload_counts(&self) -> (u64, u64) {
        let load = |i: usize| self.reloads[i].load(std::sync::atomic::Ordering::SeqCst);
        (load(0), load(1))
    }

    /// A slot for one more live tail, or `None` when `max_subscribers` are open.
    pub fn tail_slot(&self) -> Option<TailSlot> {
        let n = self.subscribers.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let slot = TailSlot(self.subscribers.clone());
        (n < self.config.max_subscribers).then_some(slot)
    }

    /// A receiver that turns true when the server shuts down.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Whether requests must carry a token.
    pub fn auth_required(&self) -> bool {
        !self.token_list().is_empty()
    }

    fn token_list(&self) -> std::sync::RwLockReadGuard<'_, Vec<TokenRow>> {
        self.tokens.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers the config file, so that [`AppState::reload_tokens`] can read it again.
    pub fn set_config_path(&self, path: &Path) {
        *self.config_path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.to_path_buf());
    }

    /// Reads the config file again and replaces the tokens (rotation without a restart);
    /// returns how many there are now. Refused, keeping the old tokens, when the file does
    /// not parse, names a tenant this server has not opened, or would turn tokens on or
    /// off (both need a restart). Other settings take effect at the next start.
    pub fn reload_tokens(&self) -> Result<usize> {
        let path = self.config_path.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| Error::Input {
            path: "server config".into(),
            line: 0,
            reason: "this server was started without --config: there is nothing to reload".into(),
        })?;
        let config = ServerConfig::load(&path)?;
        let refuse = |reason: String| Error::Input { path: path.display().to_string(), line: 0, reason };
        if config.tokens.is_empty() != self.token_list().is_empty() {
            return Err(refuse("turning tokens on or off needs a restart; the old tokens stay".into()));
        }
        if let Some(t) = config.tokens.iter().find(|t| !self.tenants.contains_key(&t.tenant)) {
            return Err(refuse(format!(
                "tenant {:?} is new: a new tenant needs a restart; the old tokens stay",
                t.tenant
            )));
        }
        let table = token_table(&config)?;
        let n = table.len();
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = table;
        Ok(n)
    }

    /// The tenant and role of a bearer token (`None` without auth configured).
    pub fn authenticate(&self, token: Option<&str>) -> std::result::Result<(Tenant, Role), AuthError> {
        let tokens = self.token_list();
        if tokens.is_empty() {
            let mut t = self.tenants.get(DEFAULT_TENANT).cloned().ok_or(AuthError::Unknown)?;
            t.principal = Some(anonymous());
            return Ok((t, Role::Admin));
        }
        let token = token.ok_or(AuthError::Missing)?;
        let presented = blake3::hash(token.as_bytes());
        // blake3::Hash compares in constant time; every entry is compared.
        let mut found = None;
        for row in tokens.iter() {
            if row.hash == presented && found.is_none() {
                found = Some(row.clone());
            }
        }
        let row = found.ok_or(AuthError::Unknown)?;
        let mut t = self.tenants.get(&row.tenant).cloned().ok_or(AuthError::Unknown)?;
        t.principal = Some(row.principal);
        Ok((t, row.role))
    }

    /// Opens a web view session for a token (or for anyone on a server without tokens):
    /// the cookie value to set, the tenant and role.
    pub fn open_ui_session(&self, token: Option<&str>) -> std::result::Result<(String, String, Role), AuthError> {
        let (tenant, role) = self.authenticate(token)?;
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|_| AuthError::Unknown)?;
        let cookie = hex::encode(secret);
        let session = UiSession {
            token: token.filter(|_| self.auth_required()).map(|t| blake3::hash(t.as_bytes())),
            tenant: tenant.name.clone(),
            role,
            expires: std::time::Instant::now() + Duration::from_secs(self.config.ui_session_secs.max(1)),
        };
        let mut sessions = self.ui_sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_UI_SESSIONS {
            let now = std::time::Instant::now();
            sessions.retain(|_, s| s.expires > now);
            if sessions.len() >= MAX_UI_SESSIONS {
                // Still full: the session closest to its end goes.
                if let Some(k) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                    sessions.remove(&k);
                }
            }
        }
        sessions.insert(blake3::hash(cookie.as_bytes()), session);
        Ok((cookie, tenant.name, role))
    }

    /// The tenant and role of a web view session cookie, while it lasts and its token is
    /// still configured with that role.
    pub fn ui_session(&self, cookie: &str) -> std::result::Result<(Tenant, Role), AuthError> {
        let key = blake3::hash(cookie.as_bytes());
        let mut sessions = self.ui_sessions.lock().unwrap_or_else(|e| e.into_inner());
        let s = sessions.get(&key).cloned().ok_or(AuthError::Session)?;
        if s.expires <= std::time::Instant::now() {
            sessions.remove(&key);
            return Err(AuthError::Session);
        }
        drop(sessions);
        let mut principal = anonymous();
        if let Some(token) = s.token {
            let still =
                self.token_list().iter().find(|r| r.hash == token && r.tenant == s.tenant && r.role == s.role).cloned();
            match still {
                Some(row) => principal = row.principal,
                None => {
                    self.end_ui_session(cookie);
                    return Err(AuthError::Session);
                }
            }
        }
        let mut t = self.tenants.get(&s.tenant).cloned().ok_or(AuthError::Session)?;
        t.principal = Some(principal);
        Ok((t, s.role))
    }

    /// Ends a web view session (sign out).
    pub fn end_ui_session(&self, cookie: &str) {
        self.ui_sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&blake3::hash(cookie.as_bytes()));
    }

    /// Closes every database (after the last request).
    pub fn close(&self) -> Result<()> {
        for t in self.tenants.values() {
            t.store.close()?;
        }
        Ok(())
    }
}

/// Why a request is not authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No bearer token.
    Missing,
    /// A token no tenant has.
    Unknown,
    /// A web view session cookie that expired, was signed out, or whose token is gone.
    Session,
}

/// The tenant of a server without tokens.
pub const DEFAULT_TENANT: &str = "default";

/// Refuses to expose a server without tokens beyond loopback.
pub fn check_bind(addr: &SocketAddr, config: &ServerConfig) -> Result<()> {
    if !addr.ip().is_loopback() && config.tokens.is_empty() {
        return Err(Error::Input {
            path: "--addr".into(),
            line: 0,
            reason: format!(
                "{addr} is not a loopback address; configure tokens (--config) before serving beyond this machine"
            ),
        });
    }
    Ok(())
}

/// Reads the config's tokens again on each SIGHUP.
#[cfg(unix)]
async fn reload_on_sighup(state: Arc<AppState>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    let mut stop = state.stop.subscribe();
    loop {
        tokio::select! {
            r = hup.recv() => if r.is_none() { return },
            _ = stop.changed() => return,
        }
        let s = state.clone();
        let applied = match tokio::task::spawn_blocking(move || s.reload_tokens()).await {
            Ok(Ok(n)) => {
                tracing::info!("SIGHUP: reloaded the config's tokens ({n} now)");
                true
            }
            Ok(Err(e)) => {
                tracing::warn!("SIGHUP: tokens not reloaded: {e}");
                false
            }
            Err(e) => {
                tracing::warn!("SIGHUP: tokens not reloaded: {e}");
                false
            }
        };
        // Counted after the outcome is in force (metrics: dreamlog_config_reloads_total).
        state.reloads[usize::from(!applied)].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Assembles the sessions of what `/v1/traces` and `/v1/logs` recorded, for every
/// tenant, as a projection of the raw notes (`otlp::Assembler`), until shutdown: one
/// follower per tenant. `assemblers` are made before the server takes requests
/// ([`otlp_assemblers`]).
fn assemble_otlp(state: &Arc<AppState>, assemblers: Assemblers) {
    for (name, a) in assemblers {
        let Some(t) = state.tenants.get(&name) else { continue };
        let (svc, grows, stop) = (t.svc.clone(), t.store.watch_len(), state.stop.subscribe());
        tokio::spawn(follow_otlp(name, svc, grows, a, stop));
    }
}

/// Least time between two passes: growth of the log meanwhile is taken in by the next
/// one (so a busy log costs at most five passes a second), and a pass that failed or
/// left a ready trace unwritten (the store refused for now, another writer moved the
/// session) is tried again after it.
const OTLP_RETRY: Duration = Duration::from_millis(200);

/// One tenant's assembler following its log: a pass when the log grows (a raw note may
/// have arrived) and when the next waiting trace turns quiet — no timer while nothing
/// waits and nothing failed.
async fn follow_otlp(
    name: String,
    svc: Local,
    mut grows: tokio::sync::watch::Receiver<u64>,
    a: Arc<std::sync::Mutex<crate::otlp::Assembler>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (job, svc2) = (a.clone(), svc.clone());
        let done = tokio::task::spawn_blocking(move || {
            let mut a = job.lock().unwrap_or_else(|p| p.into_inner());
            let pass = as_principal(server_principal("otlp"), || a.pass(&svc2, std::time::Instant::now()));
            (pass, a.next_due())
        })
        .await;
        let due = match done {
            Ok((Ok(pass), due)) => {
                for (trace, why) in &pass.failed {
                    tracing::warn!("tenant {name}: OTLP trace {trace} not assembled: {why}");
                }
                if pass.written > 0 {
                    tracing::debug!(
                        "tenant {name}: assembled {} OTLP sessions ({} traces waiting)",
                        pass.written,
                        pass.waiting
                    );
                }
                due
            }
            // Tried again after OTLP_RETRY: the raw notes stay.
            Ok((Err(e), _)) => {
                tracing::warn!("tenant {name}: assembling OTLP sessions: {e}");
                Some(std::time::Instant::now())
            }
            Err(e) => {
                tracing::warn!("tenant {name}: assembling OTLP sessions: {e}");
                Some(std::time::Instant::now())
            }
        };
        // A trace still ready after the pass waits OTLP_RETRY; one turning quiet later is
        // woken for then.
        let wake = due.map(|d| d.max(std::time::Instant::now() + OTLP_RETRY));
        let quiet = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let passed = std::time::Instant::now();
        tokio::select! {
            grew = grows.changed() => if grew.is_err() { return },
            _ = quiet => {}
            _ = stop.changed() => return,
        }
        // At most one pass per OTLP_RETRY, however often the log grows.
        let next = tokio::time::sleep_until((passed + OTLP_RETRY).into());
        tokio::select! {
            _ = next => {}
            _ = stop.changed() => return,
        }
    }
}

/// Each tenant's OTLP assembler.
type Assemblers = BTreeMap<String, Arc<std::sync::Mutex<crate::otlp::Assembler>>>;

/// The assemblers, made before the server takes requests: what is recorded from then on
/// waits for its traces to be quiet; what was recorded before is assembled at once.
fn otlp_assemblers(state: &AppState) -> Assemblers {
    let quiet = Duration::from_millis(state.config.otlp_quiet_ms);
    let open = Duration::from_secs(state.config.otlp_open_trace_secs.max(1));
    let mut assemblers = Assemblers::new();
    for (name, t) in &state.tenants {
        match crate::otlp::Assembler::new(&t.svc, quiet, open) {
            Ok(a) => {
                assemblers.insert(name.clone(), Arc::new(std::sync::Mutex::new(a)));
            }
            Err(e) => tracing::warn!("tenant {name}: OTLP sessions will not be assembled: {e}"),
        }
    }
    assemblers
}

/// Signs a checkpoint of every tenant whose log grew, every `checkpoint_every_secs`.
async fn sign_checkpoints(state: Arc<AppState>) {
    let mut signed: BTreeMap<String, u64> = BTreeMap::new();
    let mut stop = state.stop.subscribe();
    let mut every = tokio::time::interval(Duration::from_secs(state.config.checkpoint_every_secs));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        for (name, t) in &state.tenants {
            // The checkpoint's own note grows the log by one: only more than that counts.
            let len = t.store.len();
            if signed.get(name).is_some_and(|&at| len <= at + 1) || len == 0 {
                continue;
            }
            let (svc, name) = (t.svc.clone(), name.clone());
            match tokio::task::spawn_blocking(move || {
                as_principal(server_principal("checkpoint"), || {
                    crate::service::Service::checkpoint(&svc, &Actor::System("checkpoint".into()))
                })
            })
            .await
            {
                Ok(Ok(cp)) => {
                    tracing::info!("tenant {name}: signed checkpoint at position {}", cp.position);
                    signed.insert(name, cp.position);
                }
                Ok(Err(e)) => tracing::warn!("tenant {name}: checkpoint: {e}"),
                Err(e) => tracing::warn!("tenant {name}: checkpoint: {e}"),
            }
        }
    }
}

/// Serves `state` on `listener` until `shutdown` resolves; then stops accepting, lets
/// in-flight requests (appends included) finish, and closes the databases.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = router(state.clone());
    if state.config.checkpoint_every_secs > 0 && state.config.checkpoint_key.is_some() {
        tokio::spawn(sign_checkpoints(state.clone()));
    }
    #[cfg(unix)]
    tokio::spawn(reload_on_sighup(state.clone()));
    assemble_otlp(&state, otlp_assemblers(&state));
    let header_timeout = Duration::from_secs(state.config.header_read_timeout_secs.max(1));
    let stall = Duration::from_secs(state.config.write_stall_timeout_secs.max(1));
    let tls = state.config.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
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
    state.stop.send_replace(true);
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
