//! Relaying an upstream response chunk by chunk while reading its usage, and settling the request's
//! reservation when the body ends.
//!
//! The settlement runs before the relayed body signals its end, so a client that reads a response to
//! the end and sends its next request is judged with the first request's real usage.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use keysmith_api::{BudgetReset, OnLimitExceeded, gateway_route::ModelPrice};

use crate::{
    counters::Charge,
    enforce::{Finish, Usage, actual_amounts, spend_micros},
    ledger::Entry,
    routes::Route,
    server::Shared,
    sse_filter::UsageChunkFilter,
    usage::{SseUsage, usage_in, usage_in_body},
};

/// What a forwarded request must do once it ends.
pub struct Settlement {
    pub(crate) shared: Arc<Shared>,
    pub(crate) route: Arc<Route>,
    pub(crate) charges: Vec<Charge>,
    pub(crate) model: Option<String>,
    pub(crate) metered: bool,
    /// Remove the usage-only stream chunk the gateway asked for on the client's behalf.
    pub(crate) strip_usage_chunk: bool,
}

impl Settlement {
    fn price(&self) -> Option<&ModelPrice> {
        self.model.as_deref().and_then(|m| self.route.price(m))
    }

    /// Settles the reservation with what the request used and records it for the usage report.
    pub async fn finish(self, finish: Finish) {
        let price = self.price();
        let actual = actual_amounts(&self.charges, finish, price);
        if let Err(err) = self.shared.counters.settle(&self.charges, &actual).await {
            tracing::warn!(error = %err, "settling a reservation failed; it stays held until its window ends");
        }
        let key = &self.route.key;
        let reset = self
            .route
            .limits
            .budget
            .as_ref()
            .and_then(|b| b.reset)
            .unwrap_or(BudgetReset::Never);
        let entry = Entry {
            model: self.model.as_deref(),
            usage: finish.usage,
            spend_micros: spend_micros(finish, price),
            metered: self.metered,
        };
        self.shared
            .ledger
            .record(key, reset, entry, self.shared.clock.now());
        if let Some(u) = finish.usage {
            self.shared
                .metrics
                .tokens(&key.namespace, &key.name, u.input, u.output);
            // A reported input over the cap means the pre-count under-estimated (an attachment larger
            // than its allowance); under Reject it cannot be undone, so it is reported either way.
            let cap = self
                .route
                .limits
                .request_limits
                .as_ref()
                .and_then(|r| r.max_input_tokens)
                .filter(|c| *c > 0);
            if cap.is_some_and(|c| u.input > c) {
                self.shared
                    .metrics
                    .overrun(&key.namespace, &key.name, "requestLimits.maxInputTokens");
                if self.route.on_limit_exceeded == OnLimitExceeded::Reject {
                    tracing::warn!(namespace = %key.namespace, name = %key.name, input = u.input,
                        "reported input exceeded maxInputTokens after a pre-count within it");
                }
            }
        }
    }
}

/// Largest JSON body kept whole for reading usage; past it only the tail is kept, where providers put
/// `usage`.
const JSON_HEAD: usize = 1 << 20;
const JSON_TAIL: usize = 64 << 10;

/// Reads usage from the bytes passing through.
pub enum Tap {
    /// A server-sent event stream.
    Sse(SseUsage),
    /// A JSON body.
    Json {
        /// The body, or its tail once `truncated`.
        buf: Vec<u8>,
        /// Whether the head was dropped.
        truncated: bool,
    },
}

impl Tap {
    /// A tap for a response of this content type.
    pub fn for_content_type(content_type: &str) -> Self {
        if content_type.starts_with("text/event-stream") {
            Tap::Sse(SseUsage::default())
        } else {
            Tap::Json {
                buf: Vec::new(),
                truncated: false,
            }
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        match self {
            Tap::Sse(sse) => sse.feed(chunk),
            Tap::Json { buf, truncated } => {
                buf.extend_from_slice(chunk);
                if buf.len() > JSON_HEAD || (*truncated && buf.len() > 2 * JSON_TAIL) {
                    let cut = buf.len().saturating_sub(JSON_TAIL);
                    buf.drain(..cut);
                    *truncated = true;
                }
            }
        }
    }

    fn usage(&self) -> Option<Usage> {
        match self {
            Tap::Sse(sse) => sse.usage(),
            Tap::Json {
                buf,
                truncated: false,
            } => usage_in_body(buf),
            Tap::Json { buf, truncated: true } => usage_in_tail(buf),
        }
    }
}

/// Usage from the tail of a large JSON body: the value after the last `"usage":`.
fn usage_in_tail(tail: &[u8]) -> Option<Usage> {
    let needle = b"\"usage\"";
    let at = tail.windows(needle.len()).rposition(|w| w == needle)?;
    let rest = tail[at + needle.len()..].trim_ascii_start().strip_prefix(b":")?;
    let value = serde_json::Deserializer::from_slice(rest)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    usage_in(&serde_json::json!({ "usage": value }))
}

struct RelayState<S> {
    upstream: S,
    tap: Tap,
    settlement: Option<Settlement>,
    success: bool,
    filter: Option<UsageChunkFilter>,
}

impl<S> Drop for RelayState<S> {
    fn drop(&mut self) {
        // The client went away before the end: settle with what the stream showed, else keep the
        // reservation (the provider may have charged for the whole response).
        if let Some(settlement) = self.settlement.take() {
            let finish = Finish {
                success: self.success,
                usage: self.tap.usage(),
            };
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(settlement.finish(finish));
            }
        }
    }
}

/// Why a relayed body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The upstream's body failed.
    #[error("upstream body failed")]
    Upstream(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The upstream sent nothing for longer than the idle timeout.
    #[error("upstream sent nothing for {0:?}")]
    Idle(Duration),
}

/// The relayed body: every upstream chunk is passed on as it arrives. An upstream silent for `idle`
/// ends the body with an error, so a stalled stream cannot hold its connection and reservation forever.
pub fn relay<S, E>(
    upstream: S,
    tap: Tap,
    settlement: Settlement,
    success: bool,
    idle: Duration,
    filter: Option<UsageChunkFilter>,
) -> impl Stream<Item = Result<Bytes, RelayError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let state = RelayState {
        upstream,
        tap,
        settlement: Some(settlement),
        success,
        filter,
    };
    futures::stream::unfold(state, move |mut s| async move {
        loop {
            let next = match tokio::time::timeout(idle, s.upstream.next()).await {
                Ok(next) => next.map(|item| item.map_err(|e| RelayError::Upstream(Box::new(e)))),
                Err(_) => Some(Err(RelayError::Idle(idle))),
            };
            match next {
                Some(Ok(chunk)) => {
                    s.tap.feed(&chunk);
                    let out = match s.filter.as_mut() {
                        Some(filter) => filter.feed(&chunk),
                        None => chunk,
                    };
                    // A chunk held back whole (a partial line) yields nothing yet.
                    if !out.is_empty() {
                        return Some((Ok(out), s));
                    }
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "relaying a response stopped early");
                    s.settle().await;
                    return Some((Err(err), s));
                }
                None => {
                    s.settle().await;
                    let rest = s
                        .filter
                        .as_mut()
                        .map(UsageChunkFilter::finish)
                        .unwrap_or_default();
                    return (!rest.is_empty()).then_some((Ok(rest), s));
                }
            }
        }
    })
}

impl<S> RelayState<S> {
    async fn settle(&mut self) {
        if let Some(settlement) = self.settlement.take() {
            let finish = Finish {
                success: self.success,
                usage: self.tap.usage(),
            };
            settlement.finish(finish).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_json_body_still_yields_the_usage_at_its_end() {
        let mut tap = Tap::for_content_type("application/json");
        tap.feed(b"{\"data\":[");
        let filler = vec![b'1'; 4096];
        for _ in 0..600 {
            tap.feed(&filler);
        }
        tap.feed(b"],\"usage\": {\"prompt_tokens\": 77, \"total_tokens\": 77}}");
        assert!(matches!(tap, Tap::Json { truncated: true, .. }));
        assert_eq!(tap.usage().map(|u| u.input), Some(77));
    }

    #[test]
    fn a_small_json_body_is_read_whole() {
        let mut tap = Tap::for_content_type("application/json; charset=utf-8");
        tap.feed(br#"{"usage":{"input_tokens":3,"output_tokens":4}}"#);
        assert_eq!(tap.usage().map(|u| (u.input, u.output)), Some((3, 4)));
    }
}
