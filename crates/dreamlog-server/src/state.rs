//! What every request shares: the tenants (a database and the service over it each),
//! the token table, the web view's sessions, the live tails' slots and byte budget, the
//! Managed-Agents dream jobs. Built once by [`AppState::open`]; swapped parts (the tokens)
//! behind locks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{anonymous, token_table, Role, ServerConfig, TokenRow, DEFAULT_TENANT};
use crate::core::receipt::Principal;
use crate::core::Actor;
use crate::embedded;
use crate::error::{Error, Result};
use crate::service::{Local, Service};
use crate::store::{Options, SyncMode};

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

/// One tenant's database.
#[derive(Clone)]
pub struct Tenant {
    /// Name.
    pub name: String,
    /// The service over its store — the only way to it: every handler and worker calls
    /// it through the trait, in process here (`Local`), so a surface cannot reach past
    /// the service's operations (the tail, the read-your-writes wait and the gauges
    /// included).
    pub svc: Arc<dyn Service>,
    /// The Managed-Agents dreams running over it.
    pub jobs: crate::managed::DreamJobs,
    /// Who the request was authenticated as (set on the copy a request gets): its writes
    /// are recorded as this principal's.
    pub principal: Option<Principal>,
}

/// Shared server state.
pub struct AppState {
    pub(crate) tenants: BTreeMap<String, Tenant>,
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
    /// The web view's sessions: BLAKE3 of the cookie → who signed in, until when.
    ui_sessions: std::sync::Mutex<std::collections::HashMap<blake3::Hash, UiSession>>,
    /// SIGHUP reloads of the config's tokens: [applied, refused].
    pub(crate) reloads: [std::sync::atomic::AtomicU64; 2],
    /// The mirror of hosted Managed Agents the config's `sync.anthropic` keeps current.
    pub(crate) sync: Option<Arc<crate::sync::SyncJob>>,
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
        let shared = embedded::SharedCache::new(config.block_cache_bytes, config.write_buffer_bytes);
        let profiles = Arc::new(config.clone());
        // Requests name dreamers; what runs comes from the server's config alone.
        let policy: crate::service::DreamerPolicy =
            Arc::new(move |dreamer, cfg| profiles.dreamer_for_request(dreamer, cfg).map_err(|e| Error::Forbidden(e.0)));
        let seed = config.checkpoint_key.as_deref().map(crate::keys::read_seed).transpose()?;
        #[cfg(feature = "jetstream")]
        let nats = config.log_of_record.clone().map(dreamlog_jetstream::JetStream::connect).transpose()?;
        let open = |path: PathBuf, name: &str| -> Result<Tenant> {
            let opts = Options {
                sync,
                create_if_missing: true,
                max_clock_skew_ms: config.max_clock_skew_secs.saturating_mul(1000),
                ..Options::default()
            };
            #[cfg(feature = "jetstream")]
            let store = match &nats {
                Some(nats) => embedded::open_replicated(&path, opts, Some(&shared), Arc::new(nats.log_for(name)?))?,
                None => embedded::open_with(&path, opts, Some(&shared))?,
            };
            #[cfg(not(feature = "jetstream"))]
            let store = embedded::open_with(&path, opts, Some(&shared))?;
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
            let jobs = crate::managed::DreamJobs::new(svc.clone());
            Ok(Tenant { name: name.to_owned(), svc: Arc::new(svc), jobs, principal: None })
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
        #[cfg(feature = "jetstream")]
        let cluster = config.log_of_record.is_some();
        #[cfg(not(feature = "jetstream"))]
        let cluster = false;
        let sync = match &config.sync.anthropic {
            Some(a) => {
                Some(Arc::new(crate::sync::SyncJob::new(a.clone(), &tenants.keys().collect::<Vec<_>>(), cluster)?))
            }
            None => None,
        };
        Ok(Arc::new(AppState {
            sync,
            backup_root,
            tenants,
            tokens: std::sync::RwLock::new(tokens),
            config_path: std::sync::Mutex::new(None),
            tail_budget: crate::store::TailBudget::new(config.max_tail_bytes),
            config,
            stop: tokio::sync::watch::Sender::new(false),
            subscribers: Default::default(),
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
            let n =
                std::thread::scope(|s| s.spawn(|| crate::managed::interrupted_dreams(t.svc.as_ref(), actor)).join())
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
        t.svc.info().ok()?.log_of_record
    }

    /// Live tails open now (all tenants).
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The Managed-Agents dreams of `tenant` running now.
    pub fn dream_jobs_running(&self, tenant: &str) -> usize {
        self.tenants.get(tenant).map_or(0, |t| t.jobs.running())
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

    /// Tells live tails and workers that the server shuts down.
    pub fn begin_shutdown(&self) {
        self.stop.send_replace(true);
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
            t.svc.close()?;
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
