//! Versions of objects keysmith wrote itself, kept until their watch events come back, so that those
//! events can be told from everyone else's changes.

use std::{collections::HashMap, sync::Mutex};

/// Most versions remembered per object. A relist after a broken watch skips intermediate versions,
/// whose events then never come.
const MAX_PER_OBJECT: usize = 4;

/// Per object uid, the versions keysmith produced whose events are still awaited, oldest first.
#[derive(Debug, Default)]
pub struct Echoes(Mutex<HashMap<String, Vec<String>>>);

impl Echoes {
    /// Notes that keysmith's write of `uid` produced `version`.
    pub fn record(&self, uid: &str, version: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let pending = map.entry(uid.to_owned()).or_default();
        if pending.len() >= MAX_PER_OBJECT {
            pending.remove(0);
        }
        pending.push(version.to_owned());
    }

    /// Whether `version` of `uid` is one keysmith wrote. It is then no longer awaited, and neither is
    /// any older one: a watch delivers an object's versions in order.
    pub fn take(&self, uid: &str, version: &str) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pending) = map.get_mut(uid) else {
            return false;
        };
        let Some(at) = pending.iter().position(|v| v == version) else {
            return false;
        };
        pending.drain(..=at);
        if pending.is_empty() {
            map.remove(uid);
        }
        true
    }

    /// Forgets a deleted object.
    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
    }

    /// How many objects have versions awaited.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_versions_keysmith_wrote_are_echoes_and_each_counts_once() {
        let echoes = Echoes::default();
        echoes.record("a", "10");
        echoes.record("a", "12");
        assert!(!echoes.take("a", "11"), "someone else's change");
        assert!(!echoes.take("b", "10"), "another object");
        assert!(echoes.take("a", "12"));
        assert!(!echoes.take("a", "10"), "older versions are no longer awaited");
        assert!(!echoes.take("a", "12"), "a version counts once");
        assert_eq!(echoes.len(), 0, "nothing left behind");
    }

    #[test]
    fn the_memory_per_object_is_bounded_and_forgotten_with_it() {
        let echoes = Echoes::default();
        for v in 0..10 {
            echoes.record("a", &v.to_string());
        }
        assert!(!echoes.take("a", "5"), "the oldest were dropped");
        assert!(echoes.take("a", "6"));
        echoes.record("b", "1");
        echoes.forget("b");
        assert!(!echoes.take("b", "1"));
    }
}
