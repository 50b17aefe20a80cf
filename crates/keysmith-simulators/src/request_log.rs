//! A record of every API request a simulator answered, so tests can check what a client did and
//! whether it honoured `Retry-After`.
//!
//! Credentials are stored only as a short SHA-256 prefix: enough to tell callers apart, useless for
//! authenticating.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;
use serde::Serialize;

use super::sha256_hex;

/// How long after a 429 a request from the same credential may still have been in flight.
pub const IN_FLIGHT_GRACE: jiff::SignedDuration = jiff::SignedDuration::from_millis(200);

/// Hex digits of the credential digest kept in the log.
const FINGERPRINT_LEN: usize = 12;

/// One answered API request.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// When the request arrived, on the simulator clock.
    pub at: Timestamp,
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub status: u16,
    /// Short SHA-256 prefix of the bearer credential, if one was sent.
    pub credential: Option<String>,
    /// For a 429: the instant before which the same credential should not come back.
    pub retry_after_until: Option<Timestamp>,
    /// Whether this request arrived while an earlier 429 to the same credential still applied.
    pub early: bool,
    /// Whether the simulator aborted the connection instead of sending the response.
    pub dropped: bool,
}

/// The shared request log of one simulator. Clones share the log.
#[derive(Clone, Debug, Default)]
pub struct RequestLog {
    records: Arc<Mutex<Vec<RequestRecord>>>,
}

impl RequestLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a request from `credential` arriving at `at` ignores a `Retry-After` returned earlier.
    ///
    /// A request arriving within [`IN_FLIGHT_GRACE`] of the 429 is not counted: a client with several
    /// workers may have sent it before the 429 reached it, which is no failure to honour the header.
    pub fn is_early(&self, credential: Option<&str>, at: Timestamp) -> bool {
        self.lock().iter().any(|record| {
            record.credential.as_deref() == credential
                && record.retry_after_until.is_some_and(|until| at < until)
                && at >= record.at + IN_FLIGHT_GRACE
        })
    }

    /// Appends a record.
    pub fn record(&self, record: RequestRecord) {
        self.lock().push(record);
    }

    /// Every record so far, oldest first.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.lock().clone()
    }

    /// How many requests arrived before a `Retry-After` given to the same credential had expired.
    pub fn early_retries(&self) -> usize {
        self.lock().iter().filter(|record| record.early).count()
    }

    /// Forgets every record.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<RequestRecord>> {
        // Records are pushed whole, so a poisoned lock still guards a consistent log.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The log's stand-in for a credential: a short prefix of its SHA-256 digest.
pub fn fingerprint(credential: &str) -> String {
    let mut digest = sha256_hex(credential);
    digest.truncate(FINGERPRINT_LEN);
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: &str, credential: &str, retry_until: Option<&str>) -> RequestRecord {
        RequestRecord {
            at: at.parse().unwrap(),
            method: "GET".into(),
            path: "/api/v1/keys".into(),
            status: if retry_until.is_some() { 429 } else { 200 },
            credential: Some(fingerprint(credential)),
            retry_after_until: retry_until.map(|until| until.parse().unwrap()),
            early: false,
            dropped: false,
        }
    }

    #[test]
    fn a_request_is_early_only_for_the_credential_that_was_told_to_wait() {
        let log = RequestLog::new();
        log.record(record("2025-01-01T00:00:00Z", "a", Some("2025-01-01T00:00:05Z")));
        let a = fingerprint("a");
        let b = fingerprint("b");
        assert!(log.is_early(Some(&a), "2025-01-01T00:00:04Z".parse().unwrap()));
        assert!(!log.is_early(Some(&a), "2025-01-01T00:00:05Z".parse().unwrap()));
        assert!(!log.is_early(Some(&b), "2025-01-01T00:00:01Z".parse().unwrap()));
        assert!(!log.is_early(None, "2025-01-01T00:00:01Z".parse().unwrap()));
    }

    #[test]
    fn fingerprints_are_short_and_stable() {
        assert_eq!(fingerprint("secret"), fingerprint("secret"));
        assert_eq!(fingerprint("secret").len(), FINGERPRINT_LEN);
        assert_ne!(fingerprint("secret"), fingerprint("other"));
    }
}
