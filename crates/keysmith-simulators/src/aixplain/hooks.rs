//! aiXplain-specific test hooks under `/_sim/` (the clock, fault and request-log hooks come from
//! [`crate::shared_hooks`]). They need no credentials and never reveal key values.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/keys` | | `{"keys": [SimKey]}`, deleted keys included |
//! | `POST /_sim/keys` | `{"value", "name"?, "admin"?}` | 201 `{"id"}` |
//! | `POST /_sim/keys/{id}/usage` | [`Traffic`] | `{"usageLimits": [...]}`; 404 for unknown or deleted keys |
//! | `GET`, `POST /_sim/settings` | `{"listRevealsKeys": bool}` (POST) | `{"listRevealsKeys": bool}` |

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AixplainSim, state::Traffic};
use crate::shared_hooks::{HookError, parse};

pub(super) fn routes(sim: AixplainSim) -> Router {
    Router::new()
        .route("/_sim/keys", get(keys).post(add_key))
        .route("/_sim/keys/{id}/usage", post(usage))
        .route("/_sim/settings", get(settings).post(set_settings))
        .with_state(sim)
}

async fn keys(State(sim): State<AixplainSim>) -> Json<Value> {
    Json(json!({ "keys": sim.keys() }))
}

/// Registers a key made outside the API (a team key, or one made in aiXplain's web console).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddKey {
    value: String,
    name: Option<String>,
    #[serde(default)]
    admin: bool,
}

async fn add_key(State(sim): State<AixplainSim>, body: Bytes) -> Result<Response, HookError> {
    let add: AddKey = parse(&body)?;
    let id = if add.admin {
        sim.add_admin_key(&add.value)
    } else {
        sim.add_key_named(&add.value, add.name.as_deref().unwrap_or(super::IMPORTED_NAME))
    };
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn usage(
    State(sim): State<AixplainSim>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, HookError> {
    let traffic: Traffic = parse(&body)?;
    if !sim.add_usage(&id, traffic) {
        return Err(HookError::not_found("no live key with that id"));
    }
    Ok(Json(json!({ "usageLimits": sim.usage_limits(&id) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Settings {
    list_reveals_keys: bool,
}

fn settings_json(sim: &AixplainSim) -> Json<Value> {
    Json(json!({ "listRevealsKeys": sim.list_reveals_keys() }))
}

async fn settings(State(sim): State<AixplainSim>) -> Json<Value> {
    settings_json(&sim)
}

async fn set_settings(State(sim): State<AixplainSim>, body: Bytes) -> Result<Json<Value>, HookError> {
    let settings: Settings = parse(&body)?;
    sim.set_list_reveals_keys(settings.list_reveals_keys);
    Ok(settings_json(&sim))
}
