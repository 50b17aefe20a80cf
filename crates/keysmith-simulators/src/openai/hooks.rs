//! OpenAI's own test hooks under `/_sim/`: projects, keys made outside keysmith and usage (the clock,
//! faults and request log are in [`crate::shared_hooks`]). They need no credentials, are not logged as
//! API requests and never reveal key values.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/projects` | | `{"projects": [SimProject]}`, deleted service accounts and keys included |
//! | `POST /_sim/projects` | `{"name"}` | 201 `{"id"}` |
//! | `POST /_sim/projects/{id}/archive` | | `{"archived": true}`; 404 for unknown projects |
//! | `POST /_sim/projects/{id}/keys` | `{"value", "name"?}` | 201 `{"id"}`: a user's project key |
//! | `POST /_sim/admin-keys` | `{"value"}` | 201 `{}` |
//! | `POST /_sim/usage` | [`Usage`] or `[Usage]` | `{"recorded": n}`; 404 when a key is unknown |

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

use super::{OpenAiSim, state::Usage};
use crate::shared_hooks::{Batch, HookError, parse};

pub(super) fn routes(sim: OpenAiSim) -> Router {
    Router::new()
        .route("/_sim/projects", get(projects).post(add_project))
        .route("/_sim/projects/{id}/archive", post(archive))
        .route("/_sim/projects/{id}/keys", post(add_key))
        .route("/_sim/admin-keys", post(add_admin_key))
        .route("/_sim/usage", post(usage))
        .with_state(sim)
}

async fn projects(State(sim): State<OpenAiSim>) -> Json<Value> {
    Json(json!({ "projects": sim.projects() }))
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

async fn add_project(State(sim): State<OpenAiSim>, body: Bytes) -> Result<Response, HookError> {
    let Named { name } = parse(&body)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": sim.add_project(&name) }))).into_response())
}

async fn archive(State(sim): State<OpenAiSim>, Path(id): Path<String>) -> Result<Json<Value>, HookError> {
    if !sim.archive_project(&id) {
        return Err(HookError::not_found("no such project"));
    }
    Ok(Json(json!({ "archived": true })))
}

#[derive(Deserialize)]
struct NewKey {
    value: String,
    name: Option<String>,
}

async fn add_key(
    State(sim): State<OpenAiSim>,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Response, HookError> {
    let key: NewKey = parse(&body)?;
    let name = key.name.as_deref().unwrap_or(super::IMPORTED_NAME);
    let id = sim
        .add_user_key(&project, &key.value, name)
        .ok_or_else(|| HookError::not_found("no such project"))?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

#[derive(Deserialize)]
struct AdminKey {
    value: String,
}

async fn add_admin_key(State(sim): State<OpenAiSim>, body: Bytes) -> Result<Response, HookError> {
    let AdminKey { value } = parse(&body)?;
    sim.add_admin_key(&value);
    Ok((StatusCode::CREATED, Json(json!({}))).into_response())
}

async fn usage(State(sim): State<OpenAiSim>, body: Bytes) -> Result<Json<Value>, HookError> {
    let entries = parse::<Batch<Usage>>(&body)?.into_vec();
    if entries.iter().any(|u| !(u.usd.is_finite() && u.usd >= 0.0)) {
        return Err(HookError::bad_request("usd must be a non-negative number"));
    }
    let mut recorded = 0;
    for entry in entries {
        if !sim.record_usage(entry) {
            return Err(HookError::not_found("no project key with that apiKeyId"));
        }
        recorded += 1;
    }
    Ok(Json(json!({ "recorded": recorded })))
}
