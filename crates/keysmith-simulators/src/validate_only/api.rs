//! The simulated inference API under `/v1`: `GET /v1/models` for a valid key, 401 for anything else,
//! each flavor with its own list shape and error body, and Together's rate-limit headers.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Query, Request, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use super::{Flavor, ValidateOnlySim};
use crate::{
    api_layer::{self, bearer_token},
    sim_core::never_creates,
};

/// The API base path.
pub const BASE_PATH: &str = "/v1";

/// Together's per-second request limit as its headers report it (limits are dynamic upstream; this
/// simulator holds them fixed).
pub const TOGETHER_REQUESTS_PER_SECOND: u64 = 10;

/// Together's per-second token limit as its headers report it.
pub const TOGETHER_TOKENS_PER_SECOND: u64 = 3000;

/// The models listed to a valid key: `(id, type, organization)`.
pub const MODELS: [(&str, &str, &str); 3] = [
    ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "chat", "Meta"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "chat", "mistralai"),
    ("BAAI/bge-large-en-v1.5", "embedding", "BAAI"),
];

pub(super) fn routes(sim: ValidateOnlySim) -> Router {
    let error = match sim.flavor {
        Flavor::Together => together_error,
        Flavor::OpenAiCompatible => openai_error,
    };
    // Unknown paths, `/v1/api-keys` among them (Together has no key-management API), are 404s.
    let router = Router::new()
        .route(&format!("{BASE_PATH}/models"), get(models))
        .fallback(move || async move { error(StatusCode::NOT_FOUND, "Not Found") })
        .layer(from_fn_with_state(
            sim.core.api_layer(error, never_creates),
            api_layer::guard,
        ));
    match sim.flavor {
        // Outermost, so that injected faults carry the headers too.
        Flavor::Together => router
            .layer(from_fn_with_state(sim.clone(), together_headers))
            .with_state(sim),
        Flavor::OpenAiCompatible => router.with_state(sim),
    }
}

/// Together's `ErrorData`. A 429 reads as Together's dynamic request limit, whatever made it.
pub(super) fn together_error(status: StatusCode, message: &str) -> Response {
    let (message, kind, code) = match status {
        StatusCode::UNAUTHORIZED => (message, "invalid_request_error", json!("invalid_api_key")),
        StatusCode::TOO_MANY_REQUESTS => (
            "You have exceeded the dynamic request rate for this model. Please slow down.",
            "dynamic_request_limited",
            Value::Null,
        ),
        StatusCode::SERVICE_UNAVAILABLE => (message, "server_error", Value::Null),
        status if status.is_server_error() => (message, "server_error", Value::Null),
        _ => (message, "invalid_request_error", Value::Null),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, Json(body)).into_response()
}

/// OpenAI's error body.
pub(super) fn openai_error(status: StatusCode, message: &str) -> Response {
    let (message, kind, code) = match status {
        StatusCode::UNAUTHORIZED => (message, "invalid_request_error", json!("invalid_api_key")),
        StatusCode::TOO_MANY_REQUESTS => (
            "Rate limit reached for requests. Please try again later.",
            "requests",
            json!("rate_limit_exceeded"),
        ),
        StatusCode::NOT_FOUND => (message, "invalid_request_error", json!("unknown_url")),
        status if status.is_server_error() => (message, "server_error", Value::Null),
        _ => (message, "invalid_request_error", Value::Null),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, Json(body)).into_response()
}

fn render(flavor: Flavor, status: StatusCode, message: &str) -> Response {
    match flavor {
        Flavor::Together => together_error(status, message),
        Flavor::OpenAiCompatible => openai_error(status, message),
    }
}

/// Together's headers on every answer: per-second request and token figures, and `x-ratelimit-reset`
/// as the suggested wait in seconds.
async fn together_headers(State(sim): State<ValidateOnlySim>, request: Request, next: Next) -> Response {
    let now = sim.core.clock.now().as_second();
    let used = {
        let mut state = sim.state();
        if state.second.0 != now {
            state.second = (now, 0);
        }
        state.second.1 += 1;
        state.second.1
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let remaining = TOGETHER_REQUESTS_PER_SECOND.saturating_sub(used);
    headers.insert(
        "x-ratelimit-limit",
        HeaderValue::from(TOGETHER_REQUESTS_PER_SECOND),
    );
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(1u64));
    headers.insert(
        "x-tokenlimit-limit",
        HeaderValue::from(TOGETHER_TOKENS_PER_SECOND),
    );
    headers.insert(
        "x-tokenlimit-remaining",
        HeaderValue::from(TOGETHER_TOKENS_PER_SECOND),
    );
    response
}

/// The masked form an OpenAI-style 401 quotes: the first three and last four characters.
fn masked(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 12 {
        return "****".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The model list, in the flavor's shape, for a live key.
async fn models(State(sim): State<ValidateOnlySim>, headers: HeaderMap, query: QueryParams) -> Response {
    let flavor = sim.flavor;
    let Some(token) = bearer_token(&headers) else {
        let message = match flavor {
            Flavor::Together => "Unauthorized: missing API key. Add an Authorization: Bearer header.",
            Flavor::OpenAiCompatible => "You didn't provide an API key.",
        };
        return render(flavor, StatusCode::UNAUTHORIZED, message);
    };
    if !sim.accepts(token) {
        let message = match flavor {
            Flavor::Together => "Invalid API key provided. You can find your API key at \
                                 https://api.together.ai/settings/api-keys."
                .to_owned(),
            Flavor::OpenAiCompatible => format!("Incorrect API key provided: {}.", masked(token)),
        };
        return render(flavor, StatusCode::UNAUTHORIZED, &message);
    }
    let query = query.map(|Query(query)| query).unwrap_or_default();
    if flavor == Flavor::Together
        && query
            .get("dedicated")
            .is_some_and(|value| value != "true" && value != "false")
    {
        return render(flavor, StatusCode::BAD_REQUEST, "dedicated must be true or false");
    }
    {
        let mut state = sim.state();
        if state.overloaded > 0 {
            state.overloaded -= 1;
            return render(
                flavor,
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is overloaded or not ready yet.",
            );
        }
    }
    let created = sim.core.clock.now().as_second();
    let models: Vec<Value> = MODELS
        .iter()
        .map(|(id, kind, organization)| match flavor {
            Flavor::Together => json!({
                "id": id, "object": "model", "created": created, "type": kind,
                "display_name": id.rsplit('/').next(), "organization": organization,
                "context_length": 32768,
                "pricing": {"hourly": 0, "input": 0.88, "output": 0.88, "base": 0, "finetune": 0},
            }),
            Flavor::OpenAiCompatible => json!({
                "id": id, "object": "model", "created": created, "owned_by": organization,
            }),
        })
        .collect();
    let body = match flavor {
        Flavor::Together => json!(models),
        Flavor::OpenAiCompatible => json!({"object": "list", "data": models}),
    };
    Json(body).into_response()
}
