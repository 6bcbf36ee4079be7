//! What runs beside the service while the server is up, each until shutdown: the OTLP
//! assembler following each tenant's log, signed checkpoints on a timer, token reloads
//! on SIGHUP, the mirror of hosted Managed Agents (`sync.anthropic`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::server_principal;
use crate::core::Actor;
use crate::service::Service;
use crate::state::AppState;
use crate::store::principal::as_principal;

/// Starts what runs beside the service for every tenant of `state`, before the server
/// takes requests.
pub(crate) fn start(state: &Arc<AppState>) {
    if state.config.checkpoint_every_secs > 0 && state.config.checkpoint_key.is_some() {
        tokio::spawn(sign_checkpoints(state.clone()));
    }
    if let Some(job) = &state.sync {
        tokio::spawn(mirror_hosted(state.clone(), job.clone()));
    }
    #[cfg(unix)]
    tokio::spawn(reload_on_sighup(state.clone()));
    assemble_otlp(state, otlp_assemblers(state));
}

/// Reads the config's tokens again on each SIGHUP.
#[cfg(unix)]
async fn reload_on_sighup(state: Arc<AppState>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    let mut stop = state.stopping();
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
        let grows = match t.svc.follow() {
            Ok(grows) => grows,
            Err(e) => {
                tracing::error!("tenant {name}: OTLP assembly cannot follow the log: {e}");
                continue;
            }
        };
        let (svc, stop) = (t.svc.clone(), state.stopping());
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
    svc: Arc<dyn Service>,
    mut grows: tokio::sync::watch::Receiver<u64>,
    a: Arc<std::sync::Mutex<crate::otlp::Assembler>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (job, svc2) = (a.clone(), svc.clone());
        let done = tokio::task::spawn_blocking(move || {
            let mut a = job.lock().unwrap_or_else(|p| p.into_inner());
            let pass = as_principal(server_principal("otlp"), || a.pass(svc2.as_ref(), std::time::Instant::now()));
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
        match crate::otlp::Assembler::new(t.svc.as_ref(), quiet, open) {
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
    let mut stop = state.stopping();
    let mut every = tokio::time::interval(Duration::from_secs(state.config.checkpoint_every_secs));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        for (name, t) in &state.tenants {
            // The checkpoint's own note grows the log by one: only more than that counts.
            let Ok(len) = t.svc.follow().map(|seen| *seen.borrow()) else { continue };
            if signed.get(name).is_some_and(|&at| len <= at + 1) || len == 0 {
                continue;
            }
            let (svc, name) = (t.svc.clone(), name.clone());
            match tokio::task::spawn_blocking(move || {
                as_principal(server_principal("checkpoint"), || svc.checkpoint(&Actor::System("checkpoint".into())))
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

/// Runs the mirror every `every_secs` (the first at start) until shutdown (`POST
/// /v1/sync/anthropic` runs one in between, on the request's thread).
async fn mirror_hosted(state: Arc<AppState>, job: Arc<crate::sync::SyncJob>) {
    let Some(tenant) = state.tenants.get(&job.tenant) else { return };
    let svc = tenant.svc.clone();
    let mut stop = state.stopping();
    let mut every = tokio::time::interval(Duration::from_secs(job.config.every_secs));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let (job2, svc2) = (job.clone(), svc.clone());
        let ran =
            tokio::task::spawn_blocking(move || as_principal(server_principal("sync"), || job2.run_once(&*svc2))).await;
        match ran {
            Ok(Ok(Some(r))) => tracing::info!(
                "sync anthropic: {} store(s), {} event(s) appended, {} unmapped",
                r.stores.len(),
                r.stores.iter().map(|s| s.events).sum::<usize>(),
                r.unmapped.len()
            ),
            Ok(Ok(None)) => tracing::debug!("sync anthropic: another node holds the lease"),
            Ok(Err(e)) => tracing::warn!("sync anthropic: {e}"),
            Err(e) => tracing::warn!("sync anthropic: {e}"),
        }
    }
}
