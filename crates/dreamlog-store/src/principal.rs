//! Who is writing: the principal every append of this thread is received from.
//!
//! A surface authenticates its caller, then runs the call inside [`as_principal`]; every
//! batch appended on that thread meanwhile gets a receipt naming the principal
//! (`core::receipt`). The embedded CLI sets a process default ([`set_default`]: the
//! operating-system user). Nothing a request carries can set either.

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::core::receipt::Principal;

thread_local! {
    static CURRENT: RefCell<Option<Principal>> = const { RefCell::new(None) };
}

static DEFAULT: OnceLock<Principal> = OnceLock::new();

/// Runs `f` with every append of this thread received from `who`.
pub fn as_principal<T>(who: Principal, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Principal>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.borrow_mut().replace(who)));
    f()
}

/// The principal of appends made outside [`as_principal`] in this process (set once:
/// the embedded CLI sets the operating-system user). Later calls are ignored.
pub fn set_default(who: Principal) {
    let _ = DEFAULT.set(who);
}

/// Who this thread's appends are received from now.
pub fn current() -> Option<Principal> {
    CURRENT.with(|c| c.borrow().clone()).or_else(|| DEFAULT.get().cloned())
}

/// The operating-system user running this process (`os:NAME`, role `local`): `$USER`
/// or `$LOGNAME`, else the numeric uid.
pub fn os_user() -> Principal {
    let name = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(uid_text);
    Principal::new(format!("os:{}", name.trim()), "local")
}

#[cfg(unix)]
fn uid_text() -> String {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file this process just made is its user, without libc.
    std::fs::metadata("/proc/self").map(|m| format!("uid{}", m.uid())).unwrap_or_else(|_| "unknown".into())
}

#[cfg(not(unix))]
fn uid_text() -> String {
    "unknown".into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_names_the_principal_and_ends_with_its_call() {
        let before = current();
        let inner = as_principal(Principal::new("a", "write"), || {
            let nested = as_principal(Principal::new("b", "admin"), current);
            (current(), nested)
        });
        assert_eq!(inner.0, Some(Principal::new("a", "write")));
        assert_eq!(inner.1, Some(Principal::new("b", "admin")));
        assert_eq!(current(), before, "restored after the call");
    }
}
