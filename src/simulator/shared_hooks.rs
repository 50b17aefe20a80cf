//! Test hooks every simulator offers in the same shape: the clock, the fault queue and the request
//! log. They need no credentials and are not logged as API requests.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/clock` | | `{"now": RFC 3339, "offsetSeconds": n}` |
//! | `POST /_sim/clock` | `{"advanceSeconds": n}` or `{"now": RFC 3339}` | as `GET` |
//! | `GET`, `POST`, `DELETE /_sim/faults` | [`Fault`] or `[Fault]` (POST) | `{"faults": [Fault]}` still armed |
//! | `GET /_sim/requests`, `DELETE` | | `{"requests": [RequestRecord], "earlyRetries": n}`; 204 |
//!
//! [`RequestRecord`]: crate::simulator::request_log::RequestRecord

use std::time::Duration;

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use jiff::Timestamp;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{
    clock::Clock,
    faults::{Fault, Faults},
    request_log::RequestLog,
};

/// What the shared hooks act on.
#[derive(Clone, Debug)]
pub struct HookState {
    /// The simulator's clock.
    pub clock: Clock,
    /// The simulator's fault queue.
    pub faults: Faults,
    /// The simulator's request log.
    pub log: RequestLog,
}

/// The clock, fault and request-log hooks.
pub fn routes(state: HookState) -> Router {
    Router::new()
        .route("/_sim/clock", get(clock).post(set_clock))
        .route("/_sim/faults", get(faults).post(inject).delete(clear_faults))
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .with_state(state)
}

/// A rejected hook call, answered as `{"error": "..."}`.
#[derive(Debug)]
pub struct HookError(pub StatusCode, pub String);

impl IntoResponse for HookError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl HookError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }

    /// A 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, message.into())
    }
}

/// Parses a hook body without insisting on a `Content-Type`, so `curl -d` works as-is.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, HookError> {
    serde_json::from_slice(body).map_err(|err| HookError::bad_request(err.to_string()))
}

fn clock_json(clock: &Clock) -> Json<Value> {
    Json(json!({ "now": clock.now(), "offsetSeconds": clock.offset().as_secs_f64() }))
}

async fn clock(State(state): State<HookState>) -> Json<Value> {
    clock_json(&state.clock)
}

/// `{"advanceSeconds": n}` or `{"now": "RFC 3339"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockChange {
    advance_seconds: Option<f64>,
    now: Option<Timestamp>,
}

async fn set_clock(State(state): State<HookState>, body: Bytes) -> Result<Json<Value>, HookError> {
    let change: ClockChange = parse(&body)?;
    match (change.advance_seconds, change.now) {
        (Some(seconds), None) => {
            let by = Duration::try_from_secs_f64(seconds)
                .map_err(|_| HookError::bad_request("advanceSeconds must be >= 0"))?;
            state.clock.advance(by);
        }
        (None, Some(now)) => state.clock.set(now),
        _ => {
            return Err(HookError::bad_request(
                "send exactly one of advanceSeconds and now",
            ));
        }
    }
    Ok(clock_json(&state.clock))
}

async fn faults(State(state): State<HookState>) -> Json<Value> {
    Json(json!({ "faults": state.faults.pending() }))
}

/// One fault object or an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum FaultBatch {
    One(Fault),
    Many(Vec<Fault>),
}

async fn inject(State(state): State<HookState>, body: Bytes) -> Result<Json<Value>, HookError> {
    match parse::<FaultBatch>(&body)? {
        FaultBatch::One(fault) => state.faults.push(fault),
        FaultBatch::Many(faults) => faults.into_iter().for_each(|fault| state.faults.push(fault)),
    }
    Ok(Json(json!({ "faults": state.faults.pending() })))
}

async fn clear_faults(State(state): State<HookState>) -> Json<Value> {
    state.faults.clear();
    Json(json!({ "faults": [] }))
}

async fn requests(State(state): State<HookState>) -> Json<Value> {
    Json(json!({ "requests": state.log.records(), "earlyRetries": state.log.early_retries() }))
}

async fn clear_requests(State(state): State<HookState>) -> StatusCode {
    state.log.clear();
    StatusCode::NO_CONTENT
}
