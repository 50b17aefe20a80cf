//! Test hooks under `/_sim/` for keys and overload (the clock, faults and request log are in
//! [`crate::shared_hooks`]). They need no credentials and are not logged as API requests.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/keys` | | `{"keys": [SimApiKey]}`, revoked keys included, never a value |
//! | `POST /_sim/keys` | `{"name"?, "value"?}` | 201 `{"id", "value"}`: the only time the value is shown |
//! | `DELETE /_sim/keys/{id}` | | 204; 404 for unknown or already revoked keys |
//! | `POST /_sim/overload` | `{"count": n}` | 204: the next `n` model lists answer 503 |

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ValidateOnlySim;
use crate::shared_hooks::{HookError, parse};

pub(super) fn routes(sim: ValidateOnlySim) -> Router {
    Router::new()
        .route("/_sim/keys", get(keys).post(add_key))
        .route("/_sim/keys/{id}", delete(revoke))
        .route("/_sim/overload", post(overload))
        .with_state(sim)
}

async fn keys(State(sim): State<ValidateOnlySim>) -> Json<Value> {
    Json(json!({ "keys": sim.keys() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddKey {
    name: Option<String>,
    value: Option<String>,
}

async fn add_key(State(sim): State<ValidateOnlySim>, body: Bytes) -> Result<Response, HookError> {
    let add: AddKey = parse(&body)?;
    let name = add.name.unwrap_or_else(|| "dashboard key".into());
    let added = match add.value.filter(|value| !value.trim().is_empty()) {
        Some(value) => sim.add_key_with_value(&name, value.trim()),
        None => sim.add_key(&name),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": added.id, "value": added.value })),
    )
        .into_response())
}

async fn revoke(State(sim): State<ValidateOnlySim>, Path(id): Path<String>) -> Result<StatusCode, HookError> {
    if sim.revoke(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(HookError(
            StatusCode::NOT_FOUND,
            "no live key with that id".into(),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Overload {
    count: u32,
}

async fn overload(State(sim): State<ValidateOnlySim>, body: Bytes) -> Result<StatusCode, HookError> {
    let Overload { count } = parse(&body)?;
    sim.overload(count);
    Ok(StatusCode::NO_CONTENT)
}
