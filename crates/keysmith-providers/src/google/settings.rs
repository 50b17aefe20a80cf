//! What a [`GoogleClient`](super::GoogleClient)(super::GoogleClient) is configured with: where it calls, and how it
//! polls long-running operations.

use std::time::Duration;

/// How operations are polled: the wait starts at `first` and doubles up to `max_interval`, for at
/// most `max_polls` polls. The defaults wait about a minute in all; API key operations usually finish
/// within a second or two.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationPolling {
    /// Wait before the first poll.
    pub first: Duration,
    /// Longest wait between polls.
    pub max_interval: Duration,
    /// Polls before giving up with [`Error::Timeout`](crate::Error::Timeout).
    pub max_polls: u32,
}

impl Default for OperationPolling {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(250),
            max_interval: Duration::from_secs(5),
            max_polls: 15,
        }
    }
}

/// Where a [`GoogleClient`](super::GoogleClient) sends its calls, from the hub's spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GoogleSettings {
    /// API Keys API base (`spec.endpoint`), default [`DEFAULT_ENDPOINT`](super::DEFAULT_ENDPOINT).
    pub endpoint: Option<String>,
    /// Inference base (`spec.inferenceEndpoint`), default [`DEFAULT_INFERENCE_ENDPOINT`](super::DEFAULT_INFERENCE_ENDPOINT).
    pub inference_endpoint: Option<String>,
    /// Token endpoint (`spec.google.tokenEndpoint`); else the key file's `token_uri`, else
    /// [`DEFAULT_TOKEN_ENDPOINT`](super::DEFAULT_TOKEN_ENDPOINT).
    pub token_endpoint: Option<String>,
    /// Project that owns the keys (`spec.google.project`); else the key file's `project_id`.
    pub project: Option<String>,
}
