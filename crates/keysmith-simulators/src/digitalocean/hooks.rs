//! DigitalOcean's own test hooks under `/_sim/` (the clock, faults and request log are in
//! [`crate::shared_hooks`]). They need no credentials and are not logged as API requests.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/keys` | | `{"keys": [SimModelKey]}`, deleted keys included, never a value |
//! | `POST /_sim/keys` | `{"name", "value"?}` | 201 `{"uuid", "value"}`: the only time the value is shown |
//! | `POST /_sim/tokens` | `{"token"}` | 204: the management API accepts this token from now on |
//! | `GET`, `POST /_sim/settings` | `{"legacyCreate": bool}` | `{"legacyCreate": bool}` |

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::DigitalOceanSim;
use crate::shared_hooks::{HookError, parse};

pub(super) fn routes(sim: DigitalOceanSim) -> Router {
    Router::new()
        .route("/_sim/keys", get(keys).post(add_key))
        .route("/_sim/tokens", post(add_token))
        .route("/_sim/settings", get(settings).post(change_settings))
        .with_state(sim)
}

async fn keys(State(sim): State<DigitalOceanSim>) -> Json<Value> {
    Json(json!({ "keys": sim.keys() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddKey {
    name: String,
    value: Option<String>,
}

async fn add_key(State(sim): State<DigitalOceanSim>, body: Bytes) -> Result<Response, HookError> {
    let add: AddKey = parse(&body)?;
    let added = match add.value.filter(|value| !value.is_empty()) {
        Some(value) => sim.add_key_with_value(&add.name, &value),
        None => sim.add_key(&add.name),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "uuid": added.uuid, "value": added.value })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddToken {
    token: String,
}

async fn add_token(State(sim): State<DigitalOceanSim>, body: Bytes) -> Result<StatusCode, HookError> {
    let add: AddToken = parse(&body)?;
    if add.token.trim().is_empty() {
        return Err(HookError(
            StatusCode::BAD_REQUEST,
            "token must not be empty".into(),
        ));
    }
    sim.add_token(add.token.trim());
    Ok(StatusCode::NO_CONTENT)
}

fn settings_json(sim: &DigitalOceanSim) -> Json<Value> {
    Json(json!({ "legacyCreate": sim.state().legacy_create }))
}

async fn settings(State(sim): State<DigitalOceanSim>) -> Json<Value> {
    settings_json(&sim)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Settings {
    legacy_create: Option<bool>,
}

async fn change_settings(State(sim): State<DigitalOceanSim>, body: Bytes) -> Result<Json<Value>, HookError> {
    let change: Settings = parse(&body)?;
    if let Some(enabled) = change.legacy_create {
        sim.set_legacy_create(enabled);
    }
    Ok(settings_json(&sim))
}
