//! Instants keysmith records in status. They travel as RFC 3339 strings, so an object written by hand
//! (or by a tool that edits status) may hold one that does not parse; reading one is therefore a
//! `Result` that callers must handle, never a value silently taken as absent.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

// An instant in status, RFC 3339 in UTC. A `//` comment, not a doc comment: a type's doc would
// replace the description of every field that uses it in the CRD.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(transparent)]
pub struct StatusTime(String);

/// A status time that is not an RFC 3339 instant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 time")]
pub struct BadTime {
    /// What the field holds, shortened.
    pub text: String,
}

impl StatusTime {
    /// The instant.
    pub fn get(&self) -> Result<Timestamp, BadTime> {
        self.0.parse().map_err(|_| BadTime {
            text: self.0.chars().take(64).collect(),
        })
    }

    /// The text as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Timestamp> for StatusTime {
    fn from(at: Timestamp) -> Self {
        Self(at.to_string())
    }
}

/// Text as a status time, unchecked: what an object holds is whatever was written, and reading it is
/// where a bad value surfaces.
impl From<&str> for StatusTime {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// The text as stored, for display and comparison; [`StatusTime::get`] reads the instant.
impl std::ops::Deref for StatusTime {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StatusTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads an optional status time: `Ok(None)` when absent, an error when present but unreadable.
pub fn read(time: Option<&StatusTime>) -> Result<Option<Timestamp>, BadTime> {
    time.map(StatusTime::get).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_time_round_trips_and_a_bad_one_is_an_error_not_an_absence() {
        let at: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap_or_default();
        let t = StatusTime::from(at);
        assert_eq!(t.get(), Ok(at));
        assert_eq!(
            serde_json::to_string(&t).ok().as_deref(),
            Some("\"2026-12-07T12:00:00Z\"")
        );
        let bad: StatusTime = serde_json::from_str("\"yesterday\"").unwrap_or_else(|_| StatusTime::from(at));
        assert_eq!(bad.get().map_err(|e| e.text), Err("yesterday".to_owned()));
        assert_eq!(read(None), Ok(None));
        assert!(read(Some(&bad)).is_err());
    }
}
