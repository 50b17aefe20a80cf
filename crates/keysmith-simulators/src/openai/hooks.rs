//! Test hooks under `/_sim/`: clock, projects, keys made outside keysmith, usage, faults and the
//! request log. They need no credentials, are not logged as API requests and never reveal key values.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/clock` | | `{"now": RFC 3339, "offsetSeconds": n}` |
//! | `POST /_sim/clock` | `{"advanceSeconds": n}` or `{"now": RFC 3339}` | as `GET` |
//! | `GET /_sim/projects` | | `{"projects": [SimProject]}`, deleted service accounts and keys included |
//! | `POST /_sim/projects` | `{"name"}` | 201 `{"id"}` |
//! | `POST /_sim/projects/{id}/archive` | | `{"archived": true}`; 404 for unknown projects |
//! | `POST /_sim/projects/{id}/keys` | `{"value", "name"?}` | 201 `{"id"}`: a user's project key |
//! | `POST /_sim/admin-keys` | `{"value"}` | 201 `{}` |
//! | `POST /_sim/usage` | [`Usage`] or `[Usage]` | `{"recorded": n}`; 404 when a key is unknown |
//! | `GET`, `POST`, `DELETE /_sim/faults` | [`Fault`] or `[Fault]` (POST) | `{"faults": [Fault]}` still armed |
//! | `GET /_sim/requests`, `DELETE` | | `{"requests": [RequestRecord], "earlyRetries": n}`; 204 |
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

use super::{OpenAiSim, state::Usage};
use crate::faults::Fault;

pub(super) fn routes(sim: OpenAiSim) -> Router {
    Router::new()
        .route("/_sim/clock", get(clock).post(set_clock))
        .route("/_sim/projects", get(projects).post(add_project))
        .route("/_sim/projects/{id}/archive", post(archive))
        .route("/_sim/projects/{id}/keys", post(add_key))
        .route("/_sim/admin-keys", post(add_admin_key))
        .route("/_sim/usage", post(usage))
        .route("/_sim/faults", get(faults).post(inject).delete(clear_faults))
        .route("/_sim/requests", get(requests).delete(clear_requests))
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

/// One object or an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Batch<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Batch<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(item) => vec![item],
            Self::Many(items) => items,
        }
    }
}

fn clock_json(sim: &OpenAiSim) -> Json<Value> {
    let clock = sim.clock();
    Json(json!({ "now": clock.now(), "offsetSeconds": clock.offset().as_secs_f64() }))
}

async fn clock(State(sim): State<OpenAiSim>) -> Json<Value> {
    clock_json(&sim)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockChange {
    advance_seconds: Option<f64>,
    now: Option<Timestamp>,
}

async fn set_clock(State(sim): State<OpenAiSim>, body: Bytes) -> Response {
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

async fn projects(State(sim): State<OpenAiSim>) -> Json<Value> {
    Json(json!({ "projects": sim.projects() }))
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

async fn add_project(State(sim): State<OpenAiSim>, body: Bytes) -> Response {
    match parse::<Named>(&body) {
        Ok(Named { name }) => {
            (StatusCode::CREATED, Json(json!({ "id": sim.add_project(&name) }))).into_response()
        }
        Err(rejection) => rejection.into_response(),
    }
}

async fn archive(State(sim): State<OpenAiSim>, Path(id): Path<String>) -> Response {
    if sim.archive_project(&id) {
        Json(json!({ "archived": true })).into_response()
    } else {
        hook_error(StatusCode::NOT_FOUND, "no such project")
    }
}

#[derive(Deserialize)]
struct NewKey {
    value: String,
    name: Option<String>,
}

async fn add_key(State(sim): State<OpenAiSim>, Path(project): Path<String>, body: Bytes) -> Response {
    let key: NewKey = match parse(&body) {
        Ok(key) => key,
        Err(rejection) => return rejection.into_response(),
    };
    match sim.add_user_key(
        &project,
        &key.value,
        key.name.as_deref().unwrap_or(super::IMPORTED_NAME),
    ) {
        Some(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        None => hook_error(StatusCode::NOT_FOUND, "no such project"),
    }
}

#[derive(Deserialize)]
struct AdminKey {
    value: String,
}

async fn add_admin_key(State(sim): State<OpenAiSim>, body: Bytes) -> Response {
    match parse::<AdminKey>(&body) {
        Ok(AdminKey { value }) => {
            sim.add_admin_key(&value);
            (StatusCode::CREATED, Json(json!({}))).into_response()
        }
        Err(rejection) => rejection.into_response(),
    }
}

async fn usage(State(sim): State<OpenAiSim>, body: Bytes) -> Response {
    let batch: Batch<Usage> = match parse(&body) {
        Ok(batch) => batch,
        Err(rejection) => return rejection.into_response(),
    };
    let entries = batch.into_vec();
    if entries.iter().any(|u| !(u.usd.is_finite() && u.usd >= 0.0)) {
        return hook_error(StatusCode::BAD_REQUEST, "usd must be a non-negative number");
    }
    let mut recorded = 0;
    for entry in entries {
        if !sim.record_usage(entry) {
            return hook_error(StatusCode::NOT_FOUND, "no project key with that apiKeyId");
        }
        recorded += 1;
    }
    Json(json!({ "recorded": recorded })).into_response()
}

async fn faults(State(sim): State<OpenAiSim>) -> Json<Value> {
    Json(json!({ "faults": sim.faults.pending() }))
}

async fn inject(State(sim): State<OpenAiSim>, body: Bytes) -> Response {
    match parse::<Batch<Fault>>(&body) {
        Ok(batch) => {
            batch.into_vec().into_iter().for_each(|fault| sim.inject(fault));
            Json(json!({ "faults": sim.faults.pending() })).into_response()
        }
        Err(rejection) => rejection.into_response(),
    }
}

async fn clear_faults(State(sim): State<OpenAiSim>) -> Json<Value> {
    sim.faults.clear();
    Json(json!({ "faults": [] }))
}

async fn requests(State(sim): State<OpenAiSim>) -> Json<Value> {
    Json(json!({ "requests": sim.log.records(), "earlyRetries": sim.early_retries() }))
}

async fn clear_requests(State(sim): State<OpenAiSim>) -> StatusCode {
    sim.log.clear();
    StatusCode::NO_CONTENT
}
