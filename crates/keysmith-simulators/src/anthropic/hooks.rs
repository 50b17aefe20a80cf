//! Anthropic-specific test hooks under `/_sim/` (the clock, fault and request-log hooks come from
//! [`crate::shared_hooks`]). They need no credentials; only `POST /_sim/keys` shows a key
//! value, once, as the Console does.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/keys` | | `{"keys": [SimKey]}` |
//! | `POST /_sim/keys` | `{"name"?, "workspaceId"?, "status"?, "expiresAt"?}` | 201 `{"id", "value", "partialKeyHint"}` |
//! | `POST /_sim/workspaces` | `{"name"}` | 201 `{"id"}` |
//! | `POST /_sim/usage` | [`MessagesUsage`] | 204; 404 for an unknown key |
//! | `POST /_sim/cost` | [`CostLine`] | 204 |

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AnthropicSim,
    state::{CostLine, KeyStatus, MessagesUsage},
};
use crate::shared_hooks::{HookError, parse};

pub(super) fn routes(sim: AnthropicSim) -> Router {
    Router::new()
        .route("/_sim/keys", get(keys).post(add_key))
        .route("/_sim/workspaces", post(add_workspace))
        .route("/_sim/usage", post(usage))
        .route("/_sim/cost", post(cost))
        .with_state(sim)
}

async fn keys(State(sim): State<AnthropicSim>) -> Json<Value> {
    Json(json!({ "keys": sim.keys() }))
}

/// A key made in the Console.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AddKey {
    name: Option<String>,
    workspace_id: Option<String>,
    status: Option<KeyStatus>,
    expires_at: Option<Timestamp>,
}

async fn add_key(State(sim): State<AnthropicSim>, body: Bytes) -> Result<Response, HookError> {
    let add: AddKey = parse(&body)?;
    let (id, value) = sim.add_console_key(
        add.name.as_deref().unwrap_or("console key"),
        add.workspace_id.as_deref(),
    );
    if let Some(status) = add.status {
        sim.set_status(&id, status);
    }
    if let Some(at) = add.expires_at {
        sim.set_expiry(&id, Some(at));
    }
    let hint = sim.key(&id).map(|key| key.partial_key_hint).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "value": value, "partialKeyHint": hint })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct AddWorkspace {
    name: String,
}

async fn add_workspace(State(sim): State<AnthropicSim>, body: Bytes) -> Result<Response, HookError> {
    let add: AddWorkspace = parse(&body)?;
    let id = sim.add_workspace(&add.name);
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn usage(State(sim): State<AnthropicSim>, body: Bytes) -> Result<StatusCode, HookError> {
    let usage: MessagesUsage = parse(&body)?;
    if !sim.record_usage(usage) {
        return Err(HookError::not_found("no API key with that id"));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn cost(State(sim): State<AnthropicSim>, body: Bytes) -> Result<StatusCode, HookError> {
    let line: CostLine = parse(&body)?;
    if !line.amount_cents.is_finite() {
        return Err(HookError::bad_request("amountCents must be a number"));
    }
    sim.record_cost(line);
    Ok(StatusCode::NO_CONTENT)
}
