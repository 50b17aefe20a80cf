//! Injected faults: a queue of misbehaviours the simulated APIs act out, so tests can prove that
//! clients retry, back off and recover. Nothing here knows about a particular provider; each
//! simulator renders errors in its own wire format through [`crate::api_layer`].

use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// One kind of misbehaviour, armed for the next `count` matching API requests.
///
/// A fault with `path` set only matches requests whose path contains that substring. The JSON
/// form is what `POST /_sim/faults` accepts, e.g.
/// `{"kind":"rateLimit","count":2,"retryAfterSeconds":1,"retryAfterMs":1500,"path":"/keys"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Fault {
    /// Answer 429 with `Retry-After` (seconds) and, when set, `retry-after-ms`.
    RateLimit {
        #[serde(default = "one")]
        count: u32,
        retry_after_seconds: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// Answer 500 without touching state.
    ServerError {
        #[serde(default = "one")]
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// Wait `millis` before handling the request normally.
    Latency {
        #[serde(default = "one")]
        count: u32,
        millis: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// Only for the simulator's "create" request: commit the new object, then abort the connection
    /// instead of answering, the way a crash or network cut between commit and reply looks.
    DropAfterCreate {
        #[serde(default = "one")]
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// Handle the request (a create commits), then answer 500 with an error body that echoes the
    /// request's credential and the response it replaced, key values included: the careless upstream
    /// that secret-hygiene tests need.
    EchoSecrets {
        #[serde(default = "one")]
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
}

fn one() -> u32 {
    1
}

impl Fault {
    /// 429 for the next `count` requests, asking clients to wait `retry_after_seconds`.
    pub fn rate_limit(count: u32, retry_after_seconds: u64) -> Self {
        Self::RateLimit {
            count,
            retry_after_seconds,
            retry_after_ms: None,
            path: None,
        }
    }

    /// 500 for the next `count` requests.
    pub fn server_error(count: u32) -> Self {
        Self::ServerError { count, path: None }
    }

    /// A delay of `millis` before each of the next `count` requests.
    pub fn latency(count: u32, millis: u64) -> Self {
        Self::Latency {
            count,
            millis,
            path: None,
        }
    }

    /// Commit, then drop the connection, for the next `count` create requests.
    pub fn drop_after_create(count: u32) -> Self {
        Self::DropAfterCreate { count, path: None }
    }

    /// A 500 echoing secrets for the next `count` requests.
    pub fn echo_secrets(count: u32) -> Self {
        Self::EchoSecrets { count, path: None }
    }

    /// Adds `retry-after-ms` to a rate-limit fault; other kinds are returned unchanged.
    #[must_use]
    pub fn with_retry_after_ms(mut self, millis: u64) -> Self {
        if let Self::RateLimit { retry_after_ms, .. } = &mut self {
            *retry_after_ms = Some(millis);
        }
        self
    }

    /// Restricts the fault to requests whose path contains `needle`.
    #[must_use]
    pub fn on_path(mut self, needle: impl Into<String>) -> Self {
        *self.path_mut() = Some(needle.into());
        self
    }

    /// How many more requests this fault will hit.
    pub fn count(&self) -> u32 {
        match self {
            Self::RateLimit { count, .. }
            | Self::ServerError { count, .. }
            | Self::Latency { count, .. }
            | Self::DropAfterCreate { count, .. }
            | Self::EchoSecrets { count, .. } => *count,
        }
    }

    fn count_mut(&mut self) -> &mut u32 {
        match self {
            Self::RateLimit { count, .. }
            | Self::ServerError { count, .. }
            | Self::Latency { count, .. }
            | Self::DropAfterCreate { count, .. }
            | Self::EchoSecrets { count, .. } => count,
        }
    }

    /// The path filter, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::RateLimit { path, .. }
            | Self::ServerError { path, .. }
            | Self::Latency { path, .. }
            | Self::DropAfterCreate { path, .. }
            | Self::EchoSecrets { path, .. } => path.as_deref(),
        }
    }

    fn path_mut(&mut self) -> &mut Option<String> {
        match self {
            Self::RateLimit { path, .. }
            | Self::ServerError { path, .. }
            | Self::Latency { path, .. }
            | Self::DropAfterCreate { path, .. }
            | Self::EchoSecrets { path, .. } => path,
        }
    }

    fn matches(&self, path: &str, is_create: bool) -> bool {
        let path_ok = self.path().is_none_or(|needle| path.contains(needle));
        let kind_ok = is_create || !matches!(self, Self::DropAfterCreate { .. });
        path_ok && kind_ok
    }
}

/// The armed faults of one simulator, in the order they were injected. Clones share the queue.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    queue: Arc<Mutex<Vec<Fault>>>,
}

impl Faults {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `fault` behind those already queued. A fault with `count: 0` is ignored.
    pub fn push(&self, fault: Fault) {
        if fault.count() > 0 {
            self.lock().push(fault);
        }
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The faults still armed, with their remaining counts.
    pub fn pending(&self) -> Vec<Fault> {
        self.lock().clone()
    }

    /// Takes one hit from the first armed fault that matches a request to `path`, and returns that
    /// fault (with `count: 1`). `is_create` says whether the request creates an object, the only
    /// kind of request a [`Fault::DropAfterCreate`] applies to.
    pub fn take(&self, path: &str, is_create: bool) -> Option<Fault> {
        let mut queue = self.lock();
        let index = queue.iter().position(|fault| fault.matches(path, is_create))?;
        let fault = &mut queue[index];
        let mut hit = fault.clone();
        *hit.count_mut() = 1;
        let left = fault.count().saturating_sub(1);
        *fault.count_mut() = left;
        if fault.count() == 0 {
            queue.remove(index);
        }
        Some(hit)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        // A panic while holding this lock cannot leave the queue half-updated, so poison is harmless.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_the_documented_json() {
        let fault: Fault = serde_json::from_str(
            r#"{"kind":"rateLimit","count":2,"retryAfterSeconds":3,"retryAfterMs":2500,"path":"/keys"}"#,
        )
        .unwrap();
        assert_eq!(
            fault,
            Fault::rate_limit(2, 3).with_retry_after_ms(2500).on_path("/keys")
        );
        let fault: Fault = serde_json::from_str(r#"{"kind":"serverError"}"#).unwrap();
        assert_eq!(fault, Fault::server_error(1));
        let fault: Fault = serde_json::from_str(r#"{"kind":"latency","millis":50}"#).unwrap();
        assert_eq!(fault, Fault::latency(1, 50));
        let fault: Fault = serde_json::from_str(r#"{"kind":"dropAfterCreate","count":3}"#).unwrap();
        assert_eq!(fault, Fault::drop_after_create(3));
    }

    #[test]
    fn a_fault_fires_count_times_then_disarms() {
        let faults = Faults::new();
        faults.push(Fault::server_error(2));
        assert_eq!(faults.take("/a", false), Some(Fault::server_error(1)));
        assert_eq!(faults.pending(), vec![Fault::server_error(1)]);
        assert!(faults.take("/a", false).is_some());
        assert_eq!(faults.take("/a", false), None);
    }

    #[test]
    fn path_filters_and_create_only_faults_skip_requests_they_do_not_match() {
        let faults = Faults::new();
        faults.push(Fault::drop_after_create(1));
        faults.push(Fault::server_error(1).on_path("/credits"));
        assert_eq!(faults.take("/keys", false), None);
        assert_eq!(
            faults.take("/credits", false),
            Some(Fault::server_error(1).on_path("/credits"))
        );
        assert_eq!(faults.take("/keys", true), Some(Fault::drop_after_create(1)));
        assert!(faults.pending().is_empty());
    }
}
