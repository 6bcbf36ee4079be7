//! The server's config file: tokens with their tenants, roles and principals, limits,
//! TLS files, the dreamers requests may run. Read at start and (tokens only) on SIGHUP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::core::receipt::Principal;
use crate::error::{Error, Result};

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

/// One row of the token table.
#[derive(Clone, Debug)]
pub(crate) struct TokenRow {
    pub(crate) hash: blake3::Hash,
    pub(crate) tenant: String,
    pub(crate) role: Role,
    pub(crate) principal: Principal,
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
    pub log_of_record: Option<dreamlog_jetstream::JetStreamConfig>,
    /// Mirrors kept current inside the server (`anthropic`: hosted Claude Managed Agents,
    /// as `dreamlog sync anthropic` on an interval).
    pub sync: SyncSection,
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
        let name = dreamer.unwrap_or(crate::core::dream::evidence::NAME);
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
        if spec.name != crate::core::dream::evidence::NAME {
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
            sync: SyncSection::default(),
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

/// The token table of a config.
pub(crate) fn token_table(config: &ServerConfig) -> Result<Vec<TokenRow>> {
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

/// The config's `sync` section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Mirror hosted Claude Managed Agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic: Option<AnthropicSync>,
}

/// `sync.anthropic`: what to mirror, into which tenant, how often.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicSync {
    /// The tenant whose log holds the mirror (default: the only tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Seconds between runs (a run that takes longer is followed by the next at once).
    #[serde(default = "default_every")]
    pub every_secs: u64,
    /// Only these stores (`memstore_…`; default every store the key lists).
    #[serde(default)]
    pub stores: Vec<String>,
    /// Sessions and dream records too (as without `--no-sessions`).
    #[serde(default = "yes")]
    pub sessions: bool,
    /// Sessions created at or after this time only (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Also look for versions redacted upstream after they were mirrored (every version
    /// listed again each run).
    #[serde(default)]
    pub redactions: bool,
    /// The workspace (`anthropic-workspace-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The environment variable holding the API key (the key itself is never in a file).
    #[serde(default = "default_key_env")]
    pub api_key_env: String,
    /// The API's base URL (default `ANTHROPIC_BASE_URL`, else the hosted API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Memory versions per atomic batch.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn default_every() -> u64 {
    300
}
fn yes() -> bool {
    true
}
fn default_key_env() -> String {
    "ANTHROPIC_API_KEY".into()
}
fn default_batch() -> usize {
    crate::managed::mirror::BATCH_VERSIONS
}
