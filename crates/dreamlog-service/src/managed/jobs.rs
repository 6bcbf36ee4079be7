//! The Managed-Agents dreams' jobs: each dream `POST /anthropic/v1/dreams` starts runs on
//! a thread of its own beside the requests, registered with its cancel flag while it runs.

use super::{execute_dream, DreamPlan, DreamStep, Managed};
use crate::core::Actor;
use crate::error::{Error, Result};

/// The Managed-Agents dreams running now over one service (a server's tenant): each a
/// thread of its own with a cancel flag, registered while it runs — however it ends, a
/// panic included — so a cancel can stop it and `/metrics` can count it. A dream a
/// stopped server left running is ended on the next start by
/// [`interrupted_dreams`](super::interrupted_dreams). The jobs hold the in-process service
/// they run dreams with (`Local`: a dream job selects sessions, adds its output store's
/// fields and watches a cancel flag), so the surfaces that start them hold only the
/// `Service` trait object.
#[derive(Clone)]
pub struct DreamJobs {
    svc: crate::service::Local,
    inner: std::sync::Arc<(std::sync::Mutex<JobTable>, std::sync::Condvar)>,
}

/// Dream id → its cancel flag.
type JobTable = std::collections::HashMap<String, std::sync::Arc<std::sync::atomic::AtomicBool>>;

impl DreamJobs {
    /// The jobs of dreams run over `svc`.
    pub fn new(svc: crate::service::Local) -> DreamJobs {
        DreamJobs { svc, inner: Default::default() }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, JobTable> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs dream `id` (already recorded `pending`) to its end on a thread of its own, as
    /// [`execute_dream`] does, writing as `principal`; a failure the dream could not record
    /// itself is recorded as `failed` (`internal_error`). Returns at once.
    pub fn start(
        &self,
        actor: Actor,
        id: &str,
        plan: DreamPlan,
        principal: crate::core::receipt::Principal,
    ) -> Result<()> {
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.table().insert(id.to_owned(), cancel.clone());
        // Leaves the table when the job ends, whichever way, and wakes a waiting cancel.
        struct Registered(DreamJobs, String);
        impl Drop for Registered {
            fn drop(&mut self) {
                self.0.table().remove(&self.1);
                self.0.inner.1.notify_all();
            }
        }
        let registered = Registered(self.clone(), id.to_owned());
        let svc = self.svc.clone();
        let id = id.to_owned();
        std::thread::Builder::new()
            .name(format!("dream {id}"))
            .spawn(move || {
                let _registered = registered;
                crate::store::principal::as_principal(principal, || {
                    if let Err(e) = execute_dream(&svc, actor.clone(), &id, &plan, cancel) {
                        tracing::error!("dream {id}: {e}");
                        let failed = DreamStep::Failed { code: "internal_error".into(), message: e.to_string() };
                        if let Err(e) = Managed::new(&svc, actor).record_dream(&id, &failed) {
                            tracing::error!("dream {id}: cannot record its failure: {e}");
                        }
                    }
                });
            })
            .map(|_| ())
            .map_err(|source| Error::Io { path: "a dream job's thread".into(), source })
    }

    /// Asks dream `id`'s job to stop and waits up to `wait` for it to end: the job checks
    /// its flag after its dreamer returns and again just before it writes, and records
    /// how it ended (a dream that got to its write first completes). False when no job of
    /// that dream runs here.
    pub fn cancel(&self, id: &str, wait: std::time::Duration) -> bool {
        let mut table = self.table();
        let Some(flag) = table.get(id) else { return false };
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        let deadline = std::time::Instant::now() + wait;
        while table.contains_key(id) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            table = self.inner.1.wait_timeout(table, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// How many dreams run now.
    pub fn running(&self) -> usize {
        self.table().len()
    }
}
