//! Crash injection for the crash-safety tests. `KEYSMITH_FAILPOINT=<name>` makes the process abort
//! (as abruptly as `kill -9`) the first time it reaches that point. Unset in production, where each
//! call costs one read of a value cached at first use.

use std::sync::OnceLock;

/// Aborts the process if `KEYSMITH_FAILPOINT` names `name`.
pub fn failpoint(name: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("KEYSMITH_FAILPOINT").ok().filter(|s| !s.is_empty()));
    if armed.as_deref() == Some(name) {
        tracing::warn!(failpoint = name, "failpoint reached: aborting");
        std::process::abort();
    }
}
