//! Pacing toward a provider: the waits a 429 asks for, exponential back-off with jitter, and the
//! per-hub token bucket.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use jiff::Timestamp;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;

use super::{HttpConfig, RETRY_AFTER_MS};

/// How long a 429 asks the client to wait: `retry-after-ms` (milliseconds, fractions allowed) when
/// present and valid, else `Retry-After` as whole seconds or an HTTP date (measured from `now`; a
/// date in the past means no wait).
pub fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    if let Some(wait) = text(RETRY_AFTER_MS)
        .and_then(|value| value.parse::<f64>().ok())
        .and_then(|millis| Duration::try_from_secs_f64(millis / 1000.0).ok())
    {
        return Some(wait);
    }
    let value = text(RETRY_AFTER.as_str())?;
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The backoff before retry number `retry` (0 for the first retry): full jitter, uniformly random
/// between zero and `backoff_base * 2^retry`, that ceiling capped at `backoff_cap`. Full jitter keeps
/// many clients that failed together from retrying together.
pub fn backoff_delay(config: &HttpConfig, retry: u32) -> Duration {
    let ceiling = backoff_ceiling(config, retry);
    let fraction: f64 = rand::random_range(0.0..=1.0);
    Duration::try_from_secs_f64(ceiling.as_secs_f64() * fraction)
        .unwrap_or(ceiling)
        .min(ceiling)
}

pub(super) fn backoff_ceiling(config: &HttpConfig, retry: u32) -> Duration {
    let factor = 2u32.checked_pow(retry).unwrap_or(u32::MAX);
    config
        .backoff_base
        .checked_mul(factor)
        .unwrap_or(Duration::MAX)
        .min(config.backoff_cap)
}

/// A token bucket that hands out reservations: each caller takes a token at once (the balance may go
/// negative) and sleeps until its token would have been refilled. Callers are thus served in arrival
/// order, and a cancelled wait merely leaves its token unused, which errs on the gentle side.
pub(super) struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

struct BucketState {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub(super) fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                updated: Instant::now(),
            }),
        }
    }

    /// How long the caller must wait before using the token it just took.
    pub(super) fn reserve(&self, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let refill = now.saturating_duration_since(state.updated).as_secs_f64() * self.rate;
        state.tokens = (state.tokens + refill).min(self.burst) - 1.0;
        state.updated = now;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-state.tokens / self.rate).unwrap_or(Duration::MAX)
        }
    }

    pub(super) async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}
