//! Test hooks under `/_sim/`: clock, keys, console-style edits, faults, operations, tokens, request
//! log and the test service account. They need no credentials, are not logged as API requests and
//! never reveal key values.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET`, `POST /_sim/clock` | `{"advanceSeconds": n}` or `{"now": RFC 3339}` (POST) | `{"now", "offsetSeconds"}` |
//! | `GET /_sim/keys` | | `{"keys": [SimKey]}`, deleted keys included |
//! | `POST /_sim/keys` | `{"value", "displayName"?}` | 201 `{"name"}`: a key made in the console |
//! | `POST /_sim/keys/{id}/rename` | `{"displayName"}` | `{"key": SimKey}`, as a console rename |
//! | `POST /_sim/keys/{id}/delete` | | `{"key": SimKey}`, as a console delete |
//! | `GET`, `POST`, `DELETE /_sim/faults` | [`Fault`] or `[Fault]` (POST) | `{"faults": [Fault]}` still armed |
//! | `GET /_sim/requests`, `DELETE` | | `{"requests": [RequestRecord], "earlyRetries": n}`; 204 |
//! | `POST /_sim/operations` | `{"pollsUntilDone": n}` | `{"pollsUntilDone": n}` |
//! | `POST /_sim/tokens`, `DELETE` | `{"lifetimeSeconds": n}` | `{"lifetimeSeconds": n}`; `DELETE` revokes every token |
//! | `GET /_sim/service-account` | | the test service account's JSON key, for this server's `/token` |
//!
//! [`RequestRecord`]: crate::request_log::RequestRecord

use std::time::Duration;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header::HOST},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use jiff::Timestamp;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{GoogleSim, TOKEN_PATH, testdata};
use crate::faults::Fault;

pub(super) fn routes(sim: GoogleSim) -> Router {
    Router::new()
        .route("/_sim/clock", get(clock).post(set_clock))
        .route("/_sim/keys", get(keys).post(add_key))
        .route("/_sim/keys/{id}/rename", post(rename))
        .route("/_sim/keys/{id}/delete", post(delete))
        .route("/_sim/faults", get(faults).post(inject).delete(clear_faults))
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route("/_sim/operations", post(operations))
        .route("/_sim/tokens", post(tokens).delete(revoke_tokens))
        .route("/_sim/service-account", get(service_account))
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

fn clock_json(sim: &GoogleSim) -> Json<Value> {
    let clock = sim.clock();
    Json(json!({ "now": clock.now(), "offsetSeconds": clock.offset().as_secs_f64() }))
}

async fn clock(State(sim): State<GoogleSim>) -> Json<Value> {
    clock_json(&sim)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockChange {
    advance_seconds: Option<f64>,
    now: Option<Timestamp>,
}

async fn set_clock(State(sim): State<GoogleSim>, body: Bytes) -> Response {
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

async fn keys(State(sim): State<GoogleSim>) -> Json<Value> {
    Json(json!({ "keys": sim.keys() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddKey {
    value: String,
    #[serde(default)]
    display_name: String,
}

async fn add_key(State(sim): State<GoogleSim>, body: Bytes) -> Response {
    match parse::<AddKey>(&body) {
        Ok(add) if !add.value.is_empty() => {
            let name = sim.add_key(&add.value, &add.display_name);
            (StatusCode::CREATED, Json(json!({ "name": name }))).into_response()
        }
        Ok(_) => hook_error(StatusCode::BAD_REQUEST, "value must not be empty"),
        Err(rejection) => rejection.into_response(),
    }
}

fn key_or_404(sim: &GoogleSim, id: &str, done: bool) -> Response {
    match sim.key(id).filter(|_| done) {
        Some(key) => Json(json!({ "key": key })).into_response(),
        None => hook_error(StatusCode::NOT_FOUND, "no such key"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rename {
    display_name: String,
}

async fn rename(State(sim): State<GoogleSim>, Path(id): Path<String>, body: Bytes) -> Response {
    match parse::<Rename>(&body) {
        Ok(rename) => {
            let done = sim.rename_by_hand(&id, &rename.display_name);
            key_or_404(&sim, &id, done)
        }
        Err(rejection) => rejection.into_response(),
    }
}

async fn delete(State(sim): State<GoogleSim>, Path(id): Path<String>) -> Response {
    let done = sim.delete_by_hand(&id);
    key_or_404(&sim, &id, done)
}

async fn faults(State(sim): State<GoogleSim>) -> Json<Value> {
    Json(json!({ "faults": sim.faults.pending() }))
}

/// One fault object or an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum FaultBatch {
    One(Fault),
    Many(Vec<Fault>),
}

async fn inject(State(sim): State<GoogleSim>, body: Bytes) -> Response {
    match parse::<FaultBatch>(&body) {
        Ok(FaultBatch::One(fault)) => sim.inject(fault),
        Ok(FaultBatch::Many(faults)) => faults.into_iter().for_each(|fault| sim.inject(fault)),
        Err(rejection) => return rejection.into_response(),
    }
    Json(json!({ "faults": sim.faults.pending() })).into_response()
}

async fn clear_faults(State(sim): State<GoogleSim>) -> Json<Value> {
    sim.clear_faults();
    Json(json!({ "faults": [] }))
}

async fn requests(State(sim): State<GoogleSim>) -> Json<Value> {
    Json(json!({ "requests": sim.requests(), "earlyRetries": sim.early_retries() }))
}

async fn clear_requests(State(sim): State<GoogleSim>) -> StatusCode {
    sim.log.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Operations {
    polls_until_done: u32,
}

async fn operations(State(sim): State<GoogleSim>, body: Bytes) -> Response {
    match parse::<Operations>(&body) {
        Ok(ops) => {
            sim.set_polls_until_done(ops.polls_until_done);
            Json(json!({ "pollsUntilDone": ops.polls_until_done })).into_response()
        }
        Err(rejection) => rejection.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tokens {
    lifetime_seconds: i64,
}

async fn tokens(State(sim): State<GoogleSim>, body: Bytes) -> Response {
    match parse::<Tokens>(&body) {
        Ok(tokens) if tokens.lifetime_seconds > 0 => {
            sim.set_token_lifetime(tokens.lifetime_seconds);
            Json(json!({ "lifetimeSeconds": tokens.lifetime_seconds })).into_response()
        }
        Ok(_) => hook_error(StatusCode::BAD_REQUEST, "lifetimeSeconds must be positive"),
        Err(rejection) => rejection.into_response(),
    }
}

async fn revoke_tokens(State(sim): State<GoogleSim>) -> StatusCode {
    sim.revoke_tokens();
    StatusCode::NO_CONTENT
}

/// The test account's key file (its key is a published test key, see `testdata/README.md`).
async fn service_account(headers: HeaderMap) -> Response {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let json =
        testdata::service_account_json(testdata::TEST_CLIENT_EMAIL, &format!("http://{host}{TOKEN_PATH}"));
    ([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response()
}
