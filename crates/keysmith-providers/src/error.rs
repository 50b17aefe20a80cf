//! Errors of provider calls, typed by what happened on the wire, never by message text.

use std::time::Duration;

/// A failed provider call. Messages never include key values or request bodies: a provider may echo
/// a key back in an error body, so bodies are reduced to the provider's error message with any
/// key-shaped token removed (see `http::sanitize`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: the credential is missing, wrong, disabled or expired.
    #[error("provider rejected the credential (401): {message}")]
    Unauthorized { message: String },
    /// 403: the credential is valid but may not do this (e.g. not a management key).
    #[error("provider refused the operation (403): {message}")]
    Forbidden { message: String },
    /// 404 on something that had to exist.
    #[error("provider has no such resource (404): {message}")]
    NotFound { message: String },
    /// 400/409/410/422: the provider refused the request as invalid.
    #[error("provider refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// 429 after the retries allowed; `retry_after` is what the provider asked for, if anything.
    #[error("provider is rate limiting keysmith (429): {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 5xx after the retries allowed.
    #[error("provider failed ({status}): {message}")]
    Server { status: u16, message: String },
    /// The provider could not be reached, or the connection failed mid-request.
    #[error("provider unreachable")]
    Unreachable(#[source] reqwest::Error),
    /// The call did not finish within the client timeout.
    #[error("provider call timed out")]
    Timeout,
    /// The response was not what the provider's contract says.
    #[error("unexpected response from provider: {0}")]
    Decode(String),
    /// The response was larger than keysmith accepts.
    #[error("provider response exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The hub's configuration cannot work (e.g. an invalid endpoint URL).
    #[error("invalid provider configuration: {0}")]
    Config(String),
    /// This provider cannot do what was asked.
    #[error("{0} is not supported by this provider")]
    Unsupported(&'static str),
    /// A model the spec names is not in the provider's catalog (the message names it and the field).
    #[error("{0}")]
    UnknownModel(String),
}

impl Error {
    /// Whether retrying later may succeed without a change to the spec or the credentials.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Server { .. } | Self::Unreachable(_) | Self::Timeout
        )
    }

    /// A short, bounded label for metrics and condition reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "Unauthorized",
            Self::Forbidden { .. } => "Forbidden",
            Self::NotFound { .. } => "NotFound",
            Self::Rejected { .. } => "ProviderRejected",
            Self::RateLimited { .. } => "RateLimited",
            Self::Server { .. } => "ProviderError",
            Self::Unreachable(_) | Self::Timeout => "ProviderUnreachable",
            Self::Decode(_) | Self::TooLarge { .. } => "ProviderProtocolError",
            Self::Config(_) => "InvalidHubConfig",
            Self::Unsupported(_) => "Unsupported",
            Self::UnknownModel(_) => "UnknownModel",
        }
    }
}
