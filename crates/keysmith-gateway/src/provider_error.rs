//! Answers the gateway gives itself, in the error shape of the API the client speaks, so that the
//! client's SDK raises its usual error type with the gateway's message.
//!
//! OpenAI: `{"error":{"message","type","param","code"}}`. Anthropic:
//! `{"type":"error","error":{"type","message"}}` (the gateway adds `code` there too).

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use keysmith_api::gateway_route::GatewayApi;
use serde_json::json;

use crate::enforce::Refusal;

/// The `type` of every limit refusal.
pub const LIMIT_ERROR_TYPE: &str = "keysmith_limit";

/// An error answer.
#[derive(Clone, Debug)]
pub struct ErrorAnswer<'a> {
    /// HTTP status.
    pub status: StatusCode,
    /// Error type (`keysmith_limit`, `authentication_error`, ...).
    pub kind: &'a str,
    /// Machine-readable code.
    pub code: &'a str,
    /// Human-readable message.
    pub message: &'a str,
    /// The offending parameter or limit, when there is one.
    pub param: Option<&'a str>,
}

/// Renders `answer` for `api`.
pub fn render(api: GatewayApi, answer: &ErrorAnswer<'_>) -> Response {
    let body = match api {
        GatewayApi::Openai => json!({"error": {
            "message": answer.message, "type": answer.kind, "param": answer.param, "code": answer.code,
        }}),
        GatewayApi::Anthropic => json!({"type": "error", "error": {
            "type": answer.kind, "message": answer.message, "code": answer.code,
        }}),
    };
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = answer.status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The answer to a refused request (400 for a cap, 429 with `Retry-After` for a window).
pub fn refusal(api: GatewayApi, r: &Refusal) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let mut response = render(
        api,
        &ErrorAnswer {
            status,
            kind: LIMIT_ERROR_TYPE,
            code: &r.code,
            message: &r.message,
            param: Some(&r.limit),
        },
    );
    if let Some(secs) = r.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The one answer for a missing, unknown or wrong key. It depends only on the protocol the path
/// belongs to, never on the key, so it tells a caller nothing about which keys exist.
pub fn unauthorized(api: GatewayApi) -> Response {
    let (kind, message) = match api {
        GatewayApi::Openai => ("invalid_request_error", "Incorrect API key provided."),
        GatewayApi::Anthropic => ("authentication_error", "invalid x-api-key"),
    };
    render(
        api,
        &ErrorAnswer {
            status: StatusCode::UNAUTHORIZED,
            kind,
            code: "invalid_api_key",
            message,
            param: None,
        },
    )
}

/// The answer for a key that exists but may not be used now.
pub fn forbidden(api: GatewayApi, state: &str, who: &str) -> Response {
    let message = format!("This key is {state}: ApiKey {who} is not accepting requests.");
    let code = format!("key_{}", state.to_ascii_lowercase());
    let kind = match api {
        GatewayApi::Openai => "keysmith_key_state",
        GatewayApi::Anthropic => "permission_error",
    };
    render(
        api,
        &ErrorAnswer {
            status: StatusCode::FORBIDDEN,
            kind,
            code: &code,
            message: &message,
            param: None,
        },
    )
}

/// An answer about the request itself or the gateway's way to the upstream.
pub fn plain(api: GatewayApi, status: StatusCode, code: &str, message: &str) -> Response {
    let kind = match (api, status.as_u16()) {
        (GatewayApi::Anthropic, 400..=499) => "invalid_request_error",
        (GatewayApi::Anthropic, _) => "api_error",
        (GatewayApi::Openai, 400..=499) => "invalid_request_error",
        (GatewayApi::Openai, _) => "upstream_error",
    };
    render(
        api,
        &ErrorAnswer {
            status,
            kind,
            code,
            message,
            param: None,
        },
    )
}
