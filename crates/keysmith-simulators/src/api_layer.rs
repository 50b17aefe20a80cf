//! The middleware every simulated provider API runs behind: it acts out injected faults and records
//! each request in the request log. Provider specifics (the error wire format, which request creates
//! an object) come in through [`ApiLayer`].

use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{
        HeaderMap, HeaderValue, Method, StatusCode,
        header::{AUTHORIZATION, CONTENT_LENGTH, RETRY_AFTER},
    },
    middleware::Next,
    response::Response,
};
use jiff::{SignedDuration, Timestamp};
use tracing::debug;

use super::{
    clock::Clock,
    faults::{Fault, Faults},
    request_log::{RequestLog, RequestRecord, fingerprint},
};

/// The `retry-after-ms` header some providers (and the OpenRouter SDK) use for sub-second waits.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// What the shared middleware needs from one simulated provider.
#[derive(Clone, Debug)]
pub struct ApiLayer {
    pub clock: Clock,
    pub faults: Faults,
    pub log: RequestLog,
    /// Renders an error response in the provider's wire format.
    pub render_error: fn(StatusCode, &str) -> Response,
    /// Whether a request creates an object, the only target of [`Fault::DropAfterCreate`].
    pub is_create: fn(&Method, &str) -> bool,
}

/// The bearer token of a request, if it carries a usable `Authorization: Bearer` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The credential a request presents, in any provider's style: `Authorization: <scheme> <token>`
/// (`Bearer`, or aiXplain's `Token`) or an `x-api-key` header (Anthropic, aiXplain). Only the request
/// log uses it, to tell callers apart; each simulator authenticates by its own rules.
pub fn presented_credential(headers: &HeaderMap) -> Option<&str> {
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .map(|(_, token)| token.trim());
    let api_key = || {
        headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    authorization
        .filter(|token| !token.is_empty())
        .or_else(|| api_key().filter(|token| !token.is_empty()))
}

/// Middleware for `axum::middleware::from_fn_with_state`: fault injection plus request logging.
pub async fn guard(State(layer): State<ApiLayer>, request: Request, next: Next) -> Response {
    let arrived = layer.clock.now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let credential = presented_credential(request.headers()).map(fingerprint);
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let early = layer.log.is_early(credential.as_deref(), arrived);
    let fault = layer.faults.take(&path, (layer.is_create)(&method, &path));

    let mut dropped = false;
    let response = match fault {
        Some(Fault::RateLimit {
            retry_after_seconds,
            retry_after_ms,
            ..
        }) => rate_limited(&layer, retry_after_seconds, retry_after_ms),
        Some(Fault::ServerError { .. }) => {
            (layer.render_error)(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Some(Fault::Latency { millis, .. }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            next.run(request).await
        }
        Some(Fault::DropAfterCreate { .. }) => {
            dropped = true;
            abort_connection(next.run(request).await)
        }
        Some(Fault::EchoSecrets { .. }) => {
            let handled = next.run(request).await;
            let body = axum::body::to_bytes(handled.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let message = format!(
                "upstream failure for Authorization: {authorization}; lost response: {}",
                String::from_utf8_lossy(&body)
            );
            (layer.render_error)(StatusCode::INTERNAL_SERVER_ERROR, &message)
        }
        None => next.run(request).await,
    };

    let status = response.status();
    let retry_after_until = (status == StatusCode::TOO_MANY_REQUESTS)
        .then(|| retry_deadline(response.headers(), layer.clock.now()))
        .flatten();
    layer.log.record(RequestRecord {
        at: arrived,
        method: method.to_string(),
        path: path.clone(),
        status: status.as_u16(),
        credential,
        retry_after_until,
        early,
        dropped,
    });
    debug!(%method, %path, status = status.as_u16(), early, dropped, "simulated API request");
    response
}

fn rate_limited(layer: &ApiLayer, seconds: u64, millis: Option<u64>) -> Response {
    let mut response = (layer.render_error)(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    if let Some(millis) = millis {
        headers.insert(RETRY_AFTER_MS, HeaderValue::from(millis));
    }
    response
}

/// When a 429 stops applying. `retry-after-ms` wins when present because it is the more precise
/// value and the one the OpenRouter SDK reads first.
fn retry_deadline(headers: &HeaderMap, now: Timestamp) -> Option<Timestamp> {
    let number = |name| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    let wait = match number(RETRY_AFTER_MS) {
        Some(millis) => Duration::from_millis(millis),
        None => Duration::from_secs(number(RETRY_AFTER.as_str())?),
    };
    now.checked_add(SignedDuration::try_from(wait).ok()?).ok()
}

/// Keeps the status and headers but swaps the body for one that fails, so hyper aborts the
/// connection and the client never receives a complete response. State changes made by the handler
/// stay committed.
fn abort_connection(response: Response) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("simulated connection drop"))
    });
    Response::from_parts(parts, Body::from_stream(failing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_need_the_bearer_scheme_and_a_value() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-or-v1-abc"));
        assert_eq!(bearer_token(&headers), Some("sk-or-v1-abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  tok "));
        assert_eq!(bearer_token(&headers), Some("tok"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn the_logged_credential_comes_from_any_authorization_scheme_or_x_api_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_credential(&headers), None);
        headers.insert("x-api-key", HeaderValue::from_static("sk-ant-abc"));
        assert_eq!(presented_credential(&headers), Some("sk-ant-abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Token team"));
        assert_eq!(presented_credential(&headers), Some("team"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-or"));
        assert_eq!(presented_credential(&headers), Some("sk-or"));
    }

    #[test]
    fn the_retry_deadline_prefers_milliseconds_over_seconds() {
        let now: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(retry_deadline(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from(2u64));
        assert_eq!(
            retry_deadline(&headers, now),
            Some("2025-01-01T00:00:02Z".parse().unwrap())
        );
        headers.insert(RETRY_AFTER_MS, HeaderValue::from(1500u64));
        assert_eq!(
            retry_deadline(&headers, now),
            Some("2025-01-01T00:00:01.5Z".parse().unwrap())
        );
    }
}
