//! What keysmith remembers about each object between reconciles, in one map keyed by uid with one
//! [`ObjectMemory::forget`]. Nothing here is needed for correctness after a restart: it only saves
//! work (polls not yet due, watch events of keysmith's own writes) and paces failures.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Most versions remembered per object as awaited echoes. A relist after a broken watch skips
/// intermediate versions, whose events then never come.
const MAX_ECHOES: usize = 4;

/// Everything remembered about one object.
#[derive(Debug, Default)]
struct Entry {
    /// Consecutive failures, for back-off.
    failures: u32,
    /// The inputs of the last reconcile and when the next one is due.
    due: Option<(String, Instant)>,
    /// Versions the reconcile in progress wrote, in order.
    written: Vec<String>,
    /// Versions the last reconcile wrote and then wrote over. A watch event carrying one of them
    /// comes from a cache that has not caught up with that reconcile's last write, whose own event
    /// is on its way; acting on it would redo work (a marker seen again means a recovery).
    superseded: Vec<String>,
    /// The version of the object's Secret keysmith last wrote.
    secret_written: Option<String>,
    /// The newest version of the object's Secret keysmith knows of: written, read, or seen by the
    /// Secret watch. One of a reconcile's inputs, known without asking the API server.
    secret_seen: Option<String>,
    /// Versions keysmith wrote whose watch events have not come back yet, oldest first.
    echoes: Vec<String>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.failures == 0
            && self.due.is_none()
            && self.written.is_empty()
            && self.superseded.is_empty()
            && self.secret_written.is_none()
            && self.secret_seen.is_none()
            && self.echoes.is_empty()
    }
}

/// The per-object memory of a controller.
#[derive(Debug, Default)]
pub struct ObjectMemory(Mutex<HashMap<String, Entry>>);

impl ObjectMemory {
    fn with<T>(&self, uid: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(uid.to_owned()).or_default();
        let out = f(entry);
        if entry.is_empty() {
            map.remove(uid);
        }
        out
    }

    fn read<T>(&self, uid: &str, f: impl FnOnce(&Entry) -> T) -> Option<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(uid).map(f)
    }

    /// Forgets everything about a deleted object.
    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
    }

    /// Counts a failure of `uid`; returns how many in a row.
    pub fn failed(&self, uid: &str) -> u32 {
        self.with(uid, |e| {
            e.failures = e.failures.saturating_add(1);
            e.failures
        })
    }

    /// Forgets the failures of `uid` after a success.
    pub fn succeeded(&self, uid: &str) {
        self.with(uid, |e| e.failures = 0);
    }

    /// How long until `uid` is due, if its inputs are unchanged since the last reconcile and it is
    /// not due yet.
    pub fn not_due(&self, uid: &str, inputs: &str) -> Option<Duration> {
        self.read(uid, |e| {
            let (seen, at) = e.due.as_ref()?;
            (seen == inputs)
                .then(|| at.checked_duration_since(Instant::now()))
                .flatten()
        })
        .flatten()
    }

    /// Records the inputs of a finished reconcile and when the next one is due.
    pub fn remember(&self, uid: &str, inputs: String, delay: Duration) {
        self.with(uid, |e| e.due = Some((inputs, Instant::now() + delay)));
    }

    /// Makes `uid` due now: something it reads changed that its inputs do not show.
    pub fn make_due(&self, uid: &str) {
        self.with(uid, |e| e.due = None);
    }

    /// Records that the reconcile of `uid` in progress wrote the object, producing `version`.
    pub fn wrote(&self, uid: &str, version: &str) {
        self.with(uid, |e| {
            if e.echoes.len() >= MAX_ECHOES {
                e.echoes.remove(0);
            }
            e.echoes.push(version.to_owned());
            e.written.push(version.to_owned());
        });
    }

    /// Whether `version` of `uid` is one keysmith wrote. It is then no longer awaited, and neither is
    /// any older one: a watch delivers an object's versions in order.
    pub fn take_echo(&self, uid: &str, version: &str) -> bool {
        self.with(uid, |e| match e.echoes.iter().position(|v| v == version) {
            Some(at) => {
                e.echoes.drain(..=at);
                true
            }
            None => false,
        })
    }

    /// Records the version of the Secret of `uid` keysmith wrote.
    pub fn wrote_secret(&self, uid: &str, version: Option<String>) {
        self.with(uid, |e| {
            e.secret_seen.clone_from(&version);
            e.secret_written = version;
        });
    }

    /// Records the version of the Secret of `uid` last read or seen by the watch; `None` once it is
    /// gone.
    pub fn saw_secret(&self, uid: &str, version: Option<&str>) {
        self.with(uid, |e| e.secret_seen = version.map(str::to_owned));
    }

    /// The newest version of the Secret of `uid` keysmith knows of.
    pub fn secret_seen(&self, uid: &str) -> Option<String> {
        self.read(uid, |e| e.secret_seen.clone()).flatten()
    }

    /// The version of the Secret of `uid` that keysmith last wrote, if it wrote one since it started.
    pub fn secret_written(&self, uid: &str) -> Option<String> {
        self.read(uid, |e| e.secret_written.clone()).flatten()
    }

    /// Ends the bookkeeping of a reconcile of `uid` that started from `version` (see [`superseded`]).
    pub fn settle_writes(&self, uid: &str, version: Option<&str>) {
        self.with(uid, |e| {
            let written = std::mem::take(&mut e.written);
            e.superseded = superseded(version, written);
        });
    }

    /// Whether `version` of `uid` is one its last reconcile already wrote over.
    pub fn is_superseded(&self, uid: &str, version: Option<&str>) -> bool {
        version.is_some_and(|v| {
            self.read(uid, |e| e.superseded.iter().any(|s| s == v))
                .unwrap_or(false)
        })
    }

    /// How many objects are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The versions of an object that a reconcile, started from `start`, has left behind: once it wrote
/// (`written`, in order), the version it started from and every version it wrote but its last. The
/// version it started from counts too: another watch (the Secret's) can bring a reconcile before the
/// ApiKey watch has delivered these writes, and that reconcile would act on the object as it was
/// before them.
fn superseded(start: Option<&str>, mut written: Vec<String>) -> Vec<String> {
    let Some(last) = written.pop() else {
        return Vec::new();
    };
    written.extend(start.map(str::to_owned));
    // A write that changed nothing keeps the version, which is then still the newest.
    written.retain(|v| *v != last);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_reconcile_that_wrote_leaves_its_start_and_all_but_its_last_write_behind() {
        let mut left = superseded(Some("1"), versions(&["2", "3"]));
        left.sort();
        assert_eq!(left, versions(&["1", "2"]));
        let memory = ObjectMemory::default();
        memory.wrote("a", "2");
        memory.wrote("a", "3");
        memory.settle_writes("a", Some("1"));
        assert!(memory.is_superseded("a", Some("1")));
        assert!(memory.is_superseded("a", Some("2")));
        assert!(!memory.is_superseded("a", Some("3")), "the newest stands");
    }

    #[test]
    fn a_reconcile_that_wrote_nothing_or_changed_nothing_leaves_nothing_behind() {
        assert!(superseded(Some("1"), Vec::new()).is_empty());
        assert!(superseded(Some("1"), versions(&["1"])).is_empty());
        assert!(superseded(None, Vec::new()).is_empty());
        assert_eq!(superseded(None, versions(&["2", "3"])), versions(&["2"]));
    }

    #[test]
    fn only_versions_keysmith_wrote_are_echoes_and_each_counts_once() {
        let memory = ObjectMemory::default();
        memory.wrote("a", "10");
        memory.wrote("a", "12");
        memory.settle_writes("a", None);
        assert!(!memory.take_echo("a", "11"), "someone else's change");
        assert!(!memory.take_echo("b", "10"), "another object");
        assert!(memory.take_echo("a", "12"));
        assert!(
            !memory.take_echo("a", "10"),
            "older versions are no longer awaited"
        );
        assert!(!memory.take_echo("a", "12"), "a version counts once");
    }

    #[test]
    fn the_echoes_per_object_are_bounded() {
        let memory = ObjectMemory::default();
        for v in 0..10 {
            memory.wrote("a", &v.to_string());
        }
        assert!(!memory.take_echo("a", "5"), "the oldest were dropped");
        assert!(memory.take_echo("a", "6"));
    }

    #[test]
    fn one_forget_clears_everything_and_empty_entries_do_not_linger() {
        let memory = ObjectMemory::default();
        memory.failed("a");
        memory.remember("a", "in".into(), Duration::from_secs(60));
        memory.wrote("a", "1");
        memory.wrote_secret("a", Some("7".into()));
        memory.settle_writes("a", Some("0"));
        assert!(memory.not_due("a", "in").is_some());
        memory.forget("a");
        assert_eq!(memory.len(), 0);
        assert!(memory.not_due("a", "in").is_none());
        assert_eq!(memory.secret_written("a"), None);
        assert!(!memory.take_echo("a", "1"));
        memory.failed("b");
        memory.succeeded("b");
        assert!(!memory.is_superseded("b", Some("x")));
        assert_eq!(memory.len(), 0, "an entry with nothing in it is dropped");
    }

    #[test]
    fn the_newest_secret_version_comes_from_writes_reads_and_the_watch_and_goes_with_the_secret() {
        let memory = ObjectMemory::default();
        memory.wrote_secret("a", Some("5".into()));
        assert_eq!(
            memory.secret_seen("a").as_deref(),
            Some("5"),
            "keysmith's own write"
        );
        memory.saw_secret("a", Some("6"));
        assert_eq!(
            memory.secret_seen("a").as_deref(),
            Some("6"),
            "someone else's, by the watch"
        );
        assert_eq!(
            memory.secret_written("a").as_deref(),
            Some("5"),
            "still keysmith's last write"
        );
        memory.wrote_secret("a", None);
        memory.saw_secret("a", None);
        assert_eq!(
            memory.len(),
            0,
            "a Secret gone with its ApiKey leaves nothing behind"
        );
    }
}
