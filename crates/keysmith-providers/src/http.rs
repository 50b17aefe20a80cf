//! The HTTP transport every provider client shares: TLS without a system CA bundle, one rate limiter
//! per hub, bounded response bodies, retries with capped exponential backoff and full jitter, and
//! `Retry-After` honoured for the whole hub.
//!
//! Provider modules build requests and decode successful bodies; everything about *how* a call is
//! made (pacing, retrying, mapping statuses to [`Error`]) lives here so every provider behaves the
//! same way toward its API (DESIGN.md §2.6).
//!
//! Nothing here logs or returns headers or bodies: a provider may echo a key back in either, so error
//! messages are reduced to the provider's own message, passed through [`sanitize`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use jiff::Timestamp;
use reqwest::{
    StatusCode,
    header::{CONTENT_LENGTH, HeaderMap},
};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{Instrument, debug, debug_span};

use super::{Error, Result};

/// The `retry-after-ms` header: sub-second waits, read before `Retry-After` (as OpenRouter's SDK does).
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// Longest provider message kept in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 200;

/// Longest hub-wide pause a `Retry-After` can impose; calls fail fast during it anyway.
const MAX_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// Most of an error body read to find the provider's message; the rest is dropped unread.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How the transport talks to one provider account (one hub).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConfig {
    /// Limit on one attempt, from connecting to the last body byte.
    pub timeout: Duration,
    /// Limit on establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Largest response body accepted; larger ones fail with [`Error::TooLarge`].
    pub max_response_bytes: usize,
    /// Retries after the first attempt, for failures that may pass.
    pub max_retries: u32,
    /// First backoff ceiling; it doubles with each retry.
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    pub backoff_cap: Duration,
    /// Longest `Retry-After` the transport waits out within one call. A longer one fails the call at
    /// once with [`Error::RateLimited`] so the controller requeues instead of parking a worker.
    pub max_retry_after: Duration,
    /// Sustained request rate toward the provider, retries included.
    pub requests_per_second: f64,
    /// Requests that may go out back to back before the rate applies.
    pub burst: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 4 * 1024 * 1024,
            max_retries: 4,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(30),
            requests_per_second: 5.0,
            burst: 5,
        }
    }
}

/// Reads a provider's error message out of an error body (for OpenRouter, `error.message`).
pub type MessageExtractor = fn(&[u8]) -> Option<String>;

/// How one call may be retried and how its errors read.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    idempotent: bool,
    message: MessageExtractor,
}

impl Call {
    /// A call that may be repeated safely, so every transient failure is retried.
    pub fn idempotent(message: MessageExtractor) -> Self {
        Self {
            idempotent: true,
            message,
        }
    }

    /// A call that must not happen twice (e.g. minting a key). It is retried only when the provider
    /// answered 429 or 5xx, or when no connection was ever made; a connection that fails after the
    /// request may have gone out returns [`Error::Unreachable`] or [`Error::Timeout`] at once, since
    /// the provider may have acted on it and a retry could mint a duplicate.
    pub fn non_idempotent(message: MessageExtractor) -> Self {
        Self {
            idempotent: false,
            message,
        }
    }
}

/// A successful (2xx) response, with its whole body.
pub struct Response {
    /// The status (always 2xx).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    body: Vec<u8>,
}

impl Response {
    /// The raw body. It may hold key values (e.g. a create response), so it must not be logged.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Decodes the body as JSON. Errors name where decoding failed, never the offending text, since
    /// serde's messages quote values and a body may hold a key.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|err| decode_error(&err))
    }
}

// Only the shape: the body may hold a key value.
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A JSON decoding failure described without quoting the input.
pub fn decode_error(err: &serde_json::Error) -> Error {
    let kind = match err.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "JSON of an unexpected shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    Error::Decode(format!("{kind} at line {} column {}", err.line(), err.column()))
}

/// Until when the provider asked a credential to stay away (a 429's `Retry-After`). Clones share one
/// pause. The provider limits the credential, not keysmith's hub, so every transport that presents
/// the same credential to the same API must share it (see [`Pauses`]): hubs that share an admin key
/// would otherwise send while another hub's 429 still applies.
#[derive(Clone, Debug, Default)]
pub struct Pause {
    until: Arc<Mutex<Option<Instant>>>,
}

/// Hands out one [`Pause`] per key (the caller's choice, e.g. provider, endpoint and credential
/// fingerprint). Only weak references are kept, so a pause is forgotten with its last transport.
#[derive(Debug, Default)]
pub struct Pauses {
    by_key: Mutex<HashMap<String, Weak<Mutex<Option<Instant>>>>>,
}

impl Pauses {
    /// The pause shared by every caller asking with `key` while any of them still holds it.
    pub fn get(&self, key: &str) -> Pause {
        let mut by_key = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        by_key.retain(|_, until| until.strong_count() > 0);
        if let Some(until) = by_key.get(key).and_then(Weak::upgrade) {
            return Pause { until };
        }
        let pause = Pause::default();
        by_key.insert(key.to_owned(), Arc::downgrade(&pause.until));
        pause
    }
}

/// The shared HTTP transport of one hub. Cheap to clone; clones share the connection pool, the rate
/// limiter and any pause a 429 imposed.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    config: HttpConfig,
    bucket: TokenBucket,
    /// Until when the provider asked this transport's credential (not just one call) to stay away.
    pause: Pause,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A reqwest client builder with keysmith's TLS: an explicit crypto provider (ring) and a bundled
/// root store, because the distroless image has no CA files and nothing installs a process-wide
/// default provider. Every HTTP client of keysmith starts here; reqwest's own default would panic.
pub fn client_builder() -> Result<reqwest::ClientBuilder> {
    let roots: rustls::RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Config(format!("TLS setup failed: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls))
}

impl Transport {
    /// A transport with its own connection pool, rate limiter and pause.
    pub fn new(config: HttpConfig) -> Result<Self> {
        Self::with_pause(config, Pause::default())
    }

    /// A transport with its own connection pool and rate limiter that honours `pause`, shared with
    /// other transports presenting the same credential.
    pub fn with_pause(config: HttpConfig, pause: Pause) -> Result<Self> {
        if !(config.requests_per_second.is_finite() && config.requests_per_second > 0.0) {
            return Err(Error::Config(
                "requests per second must be a positive number".into(),
            ));
        }
        let client = client_builder()?
            .http1_only()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("keysmith/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the credential to wherever it points; management APIs do not
            // redirect, so one is reported instead of followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| Error::Config(format!("HTTP client setup failed: {err}")))?;
        let bucket = TokenBucket::new(config.requests_per_second, config.burst);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                config,
                bucket,
                pause,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    /// Makes a call, retrying as `call` allows. `build` is invoked once per attempt. Returns the
    /// response for a 2xx status and the matching [`Error`] for anything else.
    pub async fn send<F>(&self, call: Call, build: F) -> Result<Response>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        // Method and path only: query values and headers may carry identifiers or credentials.
        let (method, path) = match build(&self.inner.client).build() {
            Ok(request) => (request.method().to_string(), request.url().path().to_owned()),
            Err(_) => return Err(build_error()),
        };
        let span = debug_span!("provider_call", %method, %path);
        self.send_attempts(call, &build).instrument(span).await
    }

    async fn send_attempts<F>(&self, call: Call, build: &F) -> Result<Response>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let config = &self.inner.config;
        let mut retry = 0u32;
        loop {
            self.wait_for_pause()?.await;
            self.inner.bucket.acquire().await;
            // A 429 may have reached another call while this one waited for its token; checked again
            // right before sending, so no request leaves after the provider asked for a pause.
            self.wait_for_pause()?.await;
            let request = build(&self.inner.client).build().map_err(|_| build_error())?;
            let outcome = self.attempt(request, call).await;
            let failure = match outcome {
                Ok(response) => {
                    debug!(
                        status = response.status.as_u16(),
                        attempt = retry + 1,
                        "provider answered"
                    );
                    return Ok(response);
                }
                Err(failure) => failure,
            };
            let exhausted = retry >= config.max_retries;
            let wait = match &failure {
                Failure::Final(_) => None,
                Failure::Retryable { retry_after, .. } => {
                    let backoff = backoff_delay(config, retry);
                    match retry_after {
                        Some(asked) => {
                            self.pause_for(*asked);
                            (*asked <= config.max_retry_after).then_some(backoff.max(*asked))
                        }
                        None => Some(backoff),
                    }
                }
            };
            let status = failure.status();
            match wait {
                Some(wait) if !exhausted => {
                    debug!(
                        status,
                        attempt = retry + 1,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "provider call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                _ => {
                    debug!(status, attempt = retry + 1, "provider call failed");
                    return Err(failure.into_error());
                }
            }
        }
    }

    /// Resolves once any hub-wide pause a 429 imposed has passed, or fails at once when the pause
    /// outlasts what one call may wait.
    fn wait_for_pause(&self) -> Result<tokio::time::Sleep> {
        let until = *self
            .inner
            .pause
            .until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let remaining = until.map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        if remaining > self.inner.config.max_retry_after {
            return Err(Error::RateLimited {
                retry_after: Some(remaining),
                message: "waiting out an earlier Retry-After from the provider".into(),
            });
        }
        Ok(tokio::time::sleep(remaining))
    }

    fn pause_for(&self, wait: Duration) {
        // Clamped so that an absurd Retry-After cannot overflow the clock arithmetic.
        let until = Instant::now() + wait.min(MAX_PAUSE);
        let mut paused = self
            .inner
            .pause
            .until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    /// One attempt: send, then read the body within the size limit.
    async fn attempt(&self, request: reqwest::Request, call: Call) -> Result<Response, Failure> {
        let limit = self.inner.config.max_response_bytes;
        let mut response = match self.inner.client.execute(request).await {
            Ok(response) => response,
            Err(err) => return Err(connection_failure(err, call.idempotent)),
        };
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        if status.is_success() {
            let body = match read_capped(&mut response, &headers, limit).await {
                Ok(body) => body,
                Err(BodyError::TooLarge) => return Err(Failure::Final(Error::TooLarge { limit })),
                Err(BodyError::Transport(err)) => return Err(connection_failure(err, call.idempotent)),
            };
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        // The status is known, so a body that fails or overflows only costs us the message.
        let body = read_capped(&mut response, &headers, MAX_ERROR_BODY_BYTES.min(limit))
            .await
            .ok();
        let message = error_message(status, body.as_deref(), call.message);
        let code = status.as_u16();
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = retry_after(&headers, Timestamp::now());
                Failure::Retryable {
                    retry_after,
                    error: Error::RateLimited { retry_after, message },
                }
            }
            _ if status.is_server_error() => Failure::Retryable {
                retry_after: None,
                error: Error::Server {
                    status: code,
                    message,
                },
            },
            StatusCode::UNAUTHORIZED => Failure::Final(Error::Unauthorized { message }),
            StatusCode::FORBIDDEN => Failure::Final(Error::Forbidden { message }),
            StatusCode::NOT_FOUND => Failure::Final(Error::NotFound { message }),
            _ if status.is_client_error() => Failure::Final(Error::Rejected {
                status: code,
                message,
            }),
            _ => Failure::Final(Error::Decode(format!(
                "unexpected status {code} from the provider"
            ))),
        })
    }
}

/// What went wrong with one attempt.
enum Failure {
    /// Worth another attempt; `retry_after` is the wait the provider asked for.
    Retryable {
        retry_after: Option<Duration>,
        error: Error,
    },
    /// Retrying cannot help (or could do harm).
    Final(Error),
}

impl Failure {
    fn status(&self) -> Option<u16> {
        match self {
            Self::Retryable { error, .. } | Self::Final(error) => match error {
                Error::RateLimited { .. } => Some(429),
                Error::Server { status, .. } | Error::Rejected { status, .. } => Some(*status),
                Error::Unauthorized { .. } => Some(401),
                Error::Forbidden { .. } => Some(403),
                Error::NotFound { .. } => Some(404),
                _ => None,
            },
        }
    }

    fn into_error(self) -> Error {
        match self {
            Self::Retryable { error, .. } | Self::Final(error) => error,
        }
    }
}

fn build_error() -> Error {
    // reqwest's builder errors can quote header values, and the Authorization header is one.
    Error::Config("the request could not be built (invalid URL or credential characters)".into())
}

/// Classifies a transport-level failure. A request that never got a connection cannot have reached
/// the provider, so it is safe to retry even when the call is not idempotent.
fn connection_failure(err: reqwest::Error, idempotent: bool) -> Failure {
    // Connect timeouts count as never sent too, so classify before the error is consumed.
    let never_sent = err.is_connect();
    let error = if err.is_timeout() {
        Error::Timeout
    } else {
        Error::Unreachable(err.without_url())
    };
    if idempotent || never_sent {
        Failure::Retryable {
            retry_after: None,
            error,
        }
    } else {
        Failure::Final(error)
    }
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the body chunk by chunk, giving up as soon as it passes `limit` bytes.
async fn read_capped(
    response: &mut reqwest::Response,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(
        declared
            .and_then(|length| usize::try_from(length).ok())
            .unwrap_or(0),
    );
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The provider's message for an error response, sanitized and bounded; the status's reason phrase
/// when the body has none.
fn error_message(status: StatusCode, body: Option<&[u8]>, extract: MessageExtractor) -> String {
    match body.and_then(extract).map(|message| sanitize(&message)) {
        Some(message) if !message.trim().is_empty() => message,
        _ => status.canonical_reason().unwrap_or("no message").to_owned(),
    }
}

/// Makes a provider message safe for errors, logs and status: removes anything shaped like a key, then
/// bounds the length.
///
/// A key-shaped token is a run of `[A-Za-z0-9_-]` that either starts with `sk-` and is longer than 20
/// characters, or is at least 32 characters long; it becomes `<redacted>`. Splitting on every other
/// character (not only whitespace) catches keys wrapped in quotes or written as `key=...`. Redaction
/// happens before truncation so that a cut can never leave a fragment too short to be recognised.
pub fn sanitize(message: &str) -> String {
    let mut scrubbed = String::with_capacity(message.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let key_shaped = (run.starts_with("sk-") && run.len() > 20) || run.len() >= 32;
        out.push_str(if key_shaped { "<redacted>" } else { run.as_str() });
        run.clear();
    };
    for c in message.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            run.push(c);
        } else {
            flush(&mut run, &mut scrubbed);
            // Control characters could forge log lines or break condition messages.
            scrubbed.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut run, &mut scrubbed);
    match scrubbed.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &scrubbed[..cut]),
        None => scrubbed,
    }
}

/// Encodes a request body. Only names, identifiers and numbers go in, so a failure (a NaN budget, say)
/// says nothing about key values.
pub fn to_json(body: impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(body).map_err(|_| Error::Config("the request body could not be encoded".into()))
}

mod pacing;

use pacing::TokenBucket;
pub use pacing::{backoff_delay, retry_after};

#[cfg(test)]
mod tests;
