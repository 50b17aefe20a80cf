//! Google's own test hooks under `/_sim/`: keys, console-style edits, operations, tokens and the test
//! service account (the clock, faults and request log are in [`crate::shared_hooks`]). They need no
//! credentials, are not logged as API requests and never reveal key values.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/keys` | | `{"keys": [SimKey]}`, deleted keys included |
//! | `POST /_sim/keys` | `{"value", "displayName"?}` | 201 `{"name"}`: a key made in the console |
//! | `POST /_sim/keys/{id}/rename` | `{"displayName"}` | `{"key": SimKey}`, as a console rename |
//! | `POST /_sim/keys/{id}/delete` | | `{"key": SimKey}`, as a console delete |
//! | `POST /_sim/operations` | `{"pollsUntilDone": n}` | `{"pollsUntilDone": n}` |
//! | `POST /_sim/tokens`, `DELETE` | `{"lifetimeSeconds": n}` | `{"lifetimeSeconds": n}`; `DELETE` revokes every token |
//! | `GET /_sim/service-account` | | the test service account's JSON key, for this server's `/token` |

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header::HOST},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{GoogleSim, TOKEN_PATH, testdata};
use crate::shared_hooks::{HookError, parse};

pub(super) fn routes(sim: GoogleSim) -> Router {
    Router::new()
        .route("/_sim/keys", get(keys).post(add_key))
        .route("/_sim/keys/{id}/rename", post(rename))
        .route("/_sim/keys/{id}/delete", post(delete))
        .route("/_sim/operations", post(operations))
        .route("/_sim/tokens", post(tokens).delete(revoke_tokens))
        .route("/_sim/service-account", get(service_account))
        .with_state(sim)
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

async fn add_key(State(sim): State<GoogleSim>, body: Bytes) -> Result<Response, HookError> {
    let add: AddKey = parse(&body)?;
    if add.value.is_empty() {
        return Err(HookError::bad_request("value must not be empty"));
    }
    let name = sim.add_key(&add.value, &add.display_name);
    Ok((StatusCode::CREATED, Json(json!({ "name": name }))).into_response())
}

fn key_or_404(sim: &GoogleSim, id: &str, done: bool) -> Result<Json<Value>, HookError> {
    match sim.key(id).filter(|_| done) {
        Some(key) => Ok(Json(json!({ "key": key }))),
        None => Err(HookError::not_found("no such key")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rename {
    display_name: String,
}

async fn rename(
    State(sim): State<GoogleSim>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, HookError> {
    let rename: Rename = parse(&body)?;
    let done = sim.rename_by_hand(&id, &rename.display_name);
    key_or_404(&sim, &id, done)
}

async fn delete(State(sim): State<GoogleSim>, Path(id): Path<String>) -> Result<Json<Value>, HookError> {
    let done = sim.delete_by_hand(&id);
    key_or_404(&sim, &id, done)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Operations {
    polls_until_done: u32,
}

async fn operations(State(sim): State<GoogleSim>, body: Bytes) -> Result<Json<Value>, HookError> {
    let ops: Operations = parse(&body)?;
    sim.set_polls_until_done(ops.polls_until_done);
    Ok(Json(json!({ "pollsUntilDone": ops.polls_until_done })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tokens {
    lifetime_seconds: i64,
}

async fn tokens(State(sim): State<GoogleSim>, body: Bytes) -> Result<Json<Value>, HookError> {
    let tokens: Tokens = parse(&body)?;
    if tokens.lifetime_seconds <= 0 {
        return Err(HookError::bad_request("lifetimeSeconds must be positive"));
    }
    sim.set_token_lifetime(tokens.lifetime_seconds);
    Ok(Json(json!({ "lifetimeSeconds": tokens.lifetime_seconds })))
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
