//! Stream naming, in one place: which stream an event of each kind of thing goes to.

/// Memory store `S` is the stream `memory/S`.
pub const MEMORY_PREFIX: &str = "memory/";
/// Session `ID` is the stream `session/ID`.
pub const SESSION_PREFIX: &str = "session/";
/// The `session.link` events of session `ID` are the stream `session.link/ID`.
pub const SESSION_LINK_PREFIX: &str = "session.link/";
/// Tags are `tag` events on this stream.
pub const TAGS: &str = "tags";

/// The stream of a memory store.
pub fn memory(store: &str) -> String {
    format!("{MEMORY_PREFIX}{store}")
}

/// The stream of a session.
pub fn session(id: &str) -> String {
    format!("{SESSION_PREFIX}{id}")
}

/// The stream of a session's links (where it ran, with which memory).
pub fn session_link(id: &str) -> String {
    format!("{SESSION_LINK_PREFIX}{id}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_prefix_and_name() {
        assert_eq!(super::memory("support"), "memory/support");
        assert_eq!(super::session("tau/1"), "session/tau/1");
        assert_eq!(super::session_link("tau/1"), "session.link/tau/1");
        assert!(super::session("x").starts_with(super::SESSION_PREFIX));
    }
}
