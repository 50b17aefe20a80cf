//! Test hooks under `/_sim/`: clock, faults, spend, credits, request log and state inspection. They
//! need no credentials, are not logged as API requests and never reveal key values.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/clock` | | `{"now": RFC 3339, "offsetSeconds": n}` |
//! | `POST /_sim/clock` | `{"advanceSeconds": n}` or `{"now": RFC 3339}` | as `GET` |
//! | `GET /_sim/keys` | | `{"keys": [SimKey]}`, deleted and disabled keys included |
//! | `POST /_sim/keys` | `{"value", "name"?, "management"?}` | 201 `{"hash"}` |
//! | `POST /_sim/keys/{hash}/spend` | [`Spend`] | `{"key": SimKey}`; 404 for unknown or deleted keys |
//! | `GET`, `POST`, `DELETE /_sim/faults` | [`Fault`] or `[Fault]` (POST) | `{"faults": [Fault]}` still armed |
//! | `GET /_sim/requests`, `DELETE` | | `{"requests": [RequestRecord], "earlyRetries": n}`; 204 |
//! | `GET`, `POST /_sim/credits` | `{"totalCredits": n}` (POST) | `{"totalCredits": n}` |
//!
//! [`RequestRecord`]: crate::request_log::RequestRecord

use std::time::Duration;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use jiff::Timestamp;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{OpenRouterSim, state::Spend};
use crate::faults::Fault;

pub(super) fn routes(sim: OpenRouterSim) -> Router {
    Router::new()
        .route("/_sim/clock", get(clock).post(set_clock))
        .route("/_sim/keys", get(keys).post(add_key))
        .route("/_sim/keys/{hash}/spend", post(spend))
        .route("/_sim/faults", get(faults).post(inject).delete(clear_faults))
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route("/_sim/credits", get(credits).post(set_credits))
        .with_state(sim)
}

/// A rejected hook call, answered as `{"error": "..."}`.
#[derive(Debug)]
struct HookError(StatusCode, String);

impl IntoResponse for HookError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn hook_error(status: StatusCode, message: impl Into<String>) -> Response {
    HookError(status, message.into()).into_response()
}

/// Parses a hook body without insisting on a `Content-Type`, so `curl -d` works as-is.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, HookError> {
    serde_json::from_slice(body).map_err(|err| HookError(StatusCode::BAD_REQUEST, err.to_string()))
}

fn clock_json(sim: &OpenRouterSim) -> Json<Value> {
    let clock = sim.clock();
    Json(json!({ "now": clock.now(), "offsetSeconds": clock.offset().as_secs_f64() }))
}

async fn clock(State(sim): State<OpenRouterSim>) -> Json<Value> {
    clock_json(&sim)
}

/// `{"advanceSeconds": n}` or `{"now": "RFC 3339"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockChange {
    advance_seconds: Option<f64>,
    now: Option<Timestamp>,
}

async fn set_clock(State(sim): State<OpenRouterSim>, body: Bytes) -> Response {
    let change: ClockChange = match parse(&body) {
        Ok(change) => change,
        Err(rejection) => return rejection.into_response(),
    };
    match (change.advance_seconds, change.now) {
        (Some(seconds), None) => match Duration::try_from_secs_f64(seconds) {
            Ok(by) => sim.clock().advance(by),
            Err(_) => return hook_error(StatusCode::BAD_REQUEST, "advanceSeconds must be >= 0"),
        },
        (None, Some(now)) => sim.clock().set(now),
        _ => {
            return hook_error(
                StatusCode::BAD_REQUEST,
                "send exactly one of advanceSeconds and now",
            );
        }
    }
    clock_json(&sim).into_response()
}

async fn keys(State(sim): State<OpenRouterSim>) -> Json<Value> {
    Json(json!({ "keys": sim.keys() }))
}

/// Registers a key that exists "at the provider" without having been minted through the API.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddKey {
    value: String,
    name: Option<String>,
    #[serde(default)]
    management: bool,
}

async fn add_key(State(sim): State<OpenRouterSim>, body: Bytes) -> Response {
    let add: AddKey = match parse(&body) {
        Ok(add) => add,
        Err(rejection) => return rejection.into_response(),
    };
    let hash = if add.management {
        sim.add_management_key(&add.value)
    } else {
        sim.add_ordinary_key_named(&add.value, add.name.as_deref().unwrap_or(super::IMPORTED_NAME))
    };
    (StatusCode::CREATED, Json(json!({ "hash": hash }))).into_response()
}

async fn spend(State(sim): State<OpenRouterSim>, Path(hash): Path<String>, body: Bytes) -> Response {
    let spend: Spend = match parse(&body) {
        Ok(spend) => spend,
        Err(rejection) => return rejection.into_response(),
    };
    if !(spend.usd.is_finite() && spend.usd >= 0.0) {
        return hook_error(StatusCode::BAD_REQUEST, "usd must be a non-negative number");
    }
    if !sim.record_spend(&hash, spend) {
        return hook_error(StatusCode::NOT_FOUND, "no live key with that hash");
    }
    Json(json!({ "key": sim.key(&hash) })).into_response()
}

async fn faults(State(sim): State<OpenRouterSim>) -> Json<Value> {
    Json(json!({ "faults": sim.faults.pending() }))
}

/// One fault object or an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum FaultBatch {
    One(Fault),
    Many(Vec<Fault>),
}

async fn inject(State(sim): State<OpenRouterSim>, body: Bytes) -> Response {
    let batch: FaultBatch = match parse(&body) {
        Ok(batch) => batch,
        Err(rejection) => return rejection.into_response(),
    };
    match batch {
        FaultBatch::One(fault) => sim.inject(fault),
        FaultBatch::Many(faults) => faults.into_iter().for_each(|fault| sim.inject(fault)),
    }
    Json(json!({ "faults": sim.faults.pending() })).into_response()
}

async fn clear_faults(State(sim): State<OpenRouterSim>) -> Json<Value> {
    sim.faults.clear();
    Json(json!({ "faults": [] }))
}

async fn requests(State(sim): State<OpenRouterSim>) -> Json<Value> {
    Json(json!({ "requests": sim.log.records(), "earlyRetries": sim.early_retries() }))
}

async fn clear_requests(State(sim): State<OpenRouterSim>) -> StatusCode {
    sim.log.clear();
    StatusCode::NO_CONTENT
}

fn credits_json(sim: &OpenRouterSim) -> Json<Value> {
    Json(json!({ "totalCredits": sim.total_credits() }))
}

async fn credits(State(sim): State<OpenRouterSim>) -> Json<Value> {
    credits_json(&sim)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetCredits {
    total_credits: f64,
}

async fn set_credits(State(sim): State<OpenRouterSim>, body: Bytes) -> Response {
    match parse::<SetCredits>(&body) {
        Ok(SetCredits { total_credits }) if total_credits.is_finite() => {
            sim.set_total_credits(total_credits);
            credits_json(&sim).into_response()
        }
        Ok(_) => hook_error(StatusCode::BAD_REQUEST, "totalCredits must be a finite number"),
        Err(rejection) => rejection.into_response(),
    }
}
