//! The provider-neutral test hooks (clock, faults, request log) and the helpers every simulator's own
//! hooks use. They need no credentials, are not logged as API requests and never reveal key values.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/clock` | | `{"now": RFC 3339, "offsetSeconds": n}` |
//! | `POST /_sim/clock` | `{"advanceSeconds": n}` or `{"now": RFC 3339}` | as `GET` |
//! | `GET`, `POST`, `DELETE /_sim/faults` | [`Fault`] or `[Fault]` (POST) | `{"faults": [Fault]}` still armed |
//! | `GET /_sim/requests`, `DELETE` | | `{"requests": [RequestRecord], "earlyRetries": n}`; 204 |
//!
//! [`RequestRecord`]: crate::request_log::RequestRecord

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

use super::{faults::Fault, sim_core::SimCore};

/// The clock, faults and request-log hooks.
pub fn routes(core: SimCore) -> Router {
    Router::new()
        .route("/_sim/clock", get(clock).post(set_clock))
        .route("/_sim/faults", get(faults).post(inject).delete(clear_faults))
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .with_state(core)
}

/// A rejected hook call, answered as `{"error": "..."}`.
#[derive(Debug)]
pub struct HookError(pub StatusCode, pub String);

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

impl IntoResponse for HookError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// Parses a hook body without insisting on a `Content-Type`, so `curl -d` works as-is. An empty
/// body reads as `{}`.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, HookError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|err| HookError(StatusCode::BAD_REQUEST, err.to_string()))
}

/// A hook body that is one object or an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Batch<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Batch<T> {
    /// The objects, in the order sent.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(item) => vec![item],
            Self::Many(items) => items,
        }
    }
}

fn clock_json(core: &SimCore) -> Json<Value> {
    Json(json!({ "now": core.clock.now(), "offsetSeconds": core.clock.offset().as_secs_f64() }))
}

async fn clock(State(core): State<SimCore>) -> Json<Value> {
    clock_json(&core)
}

/// `{"advanceSeconds": n}` or `{"now": "RFC 3339"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockChange {
    advance_seconds: Option<f64>,
    now: Option<Timestamp>,
}

async fn set_clock(State(core): State<SimCore>, body: Bytes) -> Result<Json<Value>, HookError> {
    let change: ClockChange = parse(&body)?;
    match (change.advance_seconds, change.now) {
        (Some(seconds), None) => {
            let by = Duration::try_from_secs_f64(seconds)
                .map_err(|_| HookError(StatusCode::BAD_REQUEST, "advanceSeconds must be >= 0".into()))?;
            core.clock.advance(by);
        }
        (None, Some(now)) => core.clock.set(now),
        _ => {
            return Err(HookError(
                StatusCode::BAD_REQUEST,
                "send exactly one of advanceSeconds and now".into(),
            ));
        }
    }
    Ok(clock_json(&core))
}

async fn faults(State(core): State<SimCore>) -> Json<Value> {
    Json(json!({ "faults": core.faults.pending() }))
}

async fn inject(State(core): State<SimCore>, body: Bytes) -> Result<Json<Value>, HookError> {
    let batch: Batch<Fault> = parse(&body)?;
    batch
        .into_vec()
        .into_iter()
        .for_each(|fault| core.faults.push(fault));
    Ok(Json(json!({ "faults": core.faults.pending() })))
}

async fn clear_faults(State(core): State<SimCore>) -> Json<Value> {
    core.faults.clear();
    Json(json!({ "faults": [] }))
}

async fn requests(State(core): State<SimCore>) -> Json<Value> {
    Json(json!({ "requests": core.log.records(), "earlyRetries": core.log.early_retries() }))
}

async fn clear_requests(State(core): State<SimCore>) -> StatusCode {
    core.log.clear();
    StatusCode::NO_CONTENT
}
