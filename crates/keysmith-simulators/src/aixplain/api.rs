//! The simulated aiXplain API under `/sdk/api-keys`: both authentication styles, the keys endpoints
//! and `usage-limits`, with NestJS-style error bodies (`{"statusCode", "message", "error"}`).

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, header::AUTHORIZATION},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::get,
};
use jiff::Timestamp;
use serde_json::{Value, json};
use tracing::info;

use super::{
    AixplainSim,
    input::Payload,
    state::{KeyRecord, State as Team},
};
use crate::{api_layer, sha256_hex};

/// The keys collection.
pub const KEYS_PATH: &str = "/sdk/api-keys";

/// The API routes behind the fault and request-log middleware.
pub(super) fn routes(sim: AixplainSim) -> Router {
    let layer = sim.core.api_layer(error, is_create);
    Router::new()
        .route("/sdk/api-keys", get(list_keys).post(create_key))
        // A literal segment wins over `{id}` in axum's router, so this is the caller's own usage.
        .route("/sdk/api-keys/usage-limits", get(own_usage))
        .route(
            "/sdk/api-keys/{id}",
            get(get_key).put(update_key).delete(delete_key),
        )
        .route("/sdk/api-keys/{id}/usage-limits", get(key_usage))
        .route("/sdk/models/{id}", get(get_model))
        .layer(from_fn_with_state(layer, api_layer::guard))
        .with_state(sim)
}

fn is_create(method: &Method, path: &str) -> bool {
    method == Method::POST && path.trim_end_matches('/') == KEYS_PATH
}

/// A NestJS error body: `{"statusCode": 404, "message": "...", "error": "Not Found"}`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "statusCode": status.as_u16(),
        "message": message,
        "error": status.canonical_reason().unwrap_or("Error"),
    });
    (status, Json(body)).into_response()
}

/// A failed API call, rendered by [`error`].
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl ApiError {
    fn unauthorized(message: &str) -> Self {
        Self(StatusCode::UNAUTHORIZED, message.into())
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }

    fn not_found() -> Self {
        Self(StatusCode::NOT_FOUND, "API key not found".into())
    }

    fn name_taken() -> Self {
        Self(
            StatusCode::UNPROCESSABLE_ENTITY,
            "An API key with this name already exists".into(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

type ApiResult = Result<Response, ApiError>;

/// The credential of a request: `Authorization: Token <key>` (v1 SDK) or `x-api-key: <key>` (v2 SDK).
pub(super) fn credential(headers: &HeaderMap) -> Option<&str> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("token"))
        .map(|(_, token)| token.trim());
    token
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
        })
        .filter(|token| !token.is_empty())
}

/// The index of the live, unexpired key presenting the request's credential.
fn authenticate(team: &Team, headers: &HeaderMap, now: Timestamp) -> Result<usize, ApiError> {
    let token = credential(headers).ok_or_else(|| ApiError::unauthorized("Unauthorized"))?;
    let hash = sha256_hex(token);
    match team
        .keys
        .iter()
        .position(|key| key.value_hash == hash && key.is_live())
    {
        None => Err(ApiError::unauthorized("Invalid API key")),
        Some(index) if team.keys[index].is_expired(now) => Err(ApiError::unauthorized("API key expired")),
        Some(index) => Ok(index),
    }
}

/// Key management takes a team (admin) key; others get the NestJS guard's 403.
fn require_admin(team: &Team, headers: &HeaderMap, now: Timestamp) -> Result<(), ApiError> {
    let index = authenticate(team, headers, now)?;
    if team.keys[index].is_admin {
        Ok(())
    } else {
        Err(ApiError(StatusCode::FORBIDDEN, "Forbidden resource".into()))
    }
}

async fn list_keys(State(sim): State<AixplainSim>, headers: HeaderMap) -> ApiResult {
    let now = sim.core.clock.now();
    let team = sim.state();
    require_admin(&team, &headers, now)?;
    let keys: Vec<Value> = team
        .keys
        .iter()
        .filter(|key| key.is_live())
        .map(|key| key.api_json(key.listed_access_key()))
        .collect();
    Ok(Json(keys).into_response())
}

async fn create_key(State(sim): State<AixplainSim>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let now = sim.core.clock.now();
    let mut team = sim.state();
    require_admin(&team, &headers, now)?;
    let payload = Payload::parse(&body).map_err(ApiError::bad_request)?;
    if team.name_taken(&payload.name, None) {
        return Err(ApiError::name_taken());
    }
    let value = new_key_value();
    let mut key = KeyRecord::new(&value, payload.name.clone(), false, team.list_reveals_keys, now);
    apply(&mut key, payload);
    let object = key.api_json(&value);
    info!(id = %key.id, name = %key.name, "simulated aiXplain key created");
    team.keys.push(key);
    Ok((StatusCode::CREATED, Json(object)).into_response())
}

/// Replaces everything the payload carries: PUT sends the whole object.
fn apply(key: &mut KeyRecord, payload: Payload) {
    key.name = payload.name;
    key.budget = payload.budget;
    key.global_limits = payload.global_limits;
    key.assets_limits = payload.assets_limits;
    key.expires_at = payload.expires_at;
}

/// 64 hex digits, the shape of aiXplain's key values.
fn new_key_value() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

async fn get_key(State(sim): State<AixplainSim>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let now = sim.core.clock.now();
    let team = sim.state();
    require_admin(&team, &headers, now)?;
    let key = team.live(&id).ok_or_else(ApiError::not_found)?;
    Ok(Json(key.api_json(key.listed_access_key())).into_response())
}

async fn update_key(
    State(sim): State<AixplainSim>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut team = sim.state();
    require_admin(&team, &headers, now)?;
    if team.live(&id).is_none() {
        return Err(ApiError::not_found());
    }
    let payload = Payload::parse(&body).map_err(ApiError::bad_request)?;
    if payload.id.as_ref().is_some_and(|sent| *sent != id) {
        return Err(ApiError::bad_request("id does not match the path"));
    }
    if team.name_taken(&payload.name, Some(&id)) {
        return Err(ApiError::name_taken());
    }
    let key = team.live_mut(&id).ok_or_else(ApiError::not_found)?;
    apply(key, payload);
    info!(id = %key.id, "simulated aiXplain key updated");
    Ok(Json(key.api_json(key.listed_access_key())).into_response())
}

async fn delete_key(State(sim): State<AixplainSim>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let now = sim.core.clock.now();
    let mut team = sim.state();
    require_admin(&team, &headers, now)?;
    let key = team.live_mut(&id).ok_or_else(ApiError::not_found)?;
    key.deleted_at = Some(now);
    info!(id = %key.id, "simulated aiXplain key deleted");
    // The SDK checks only for 200 and never reads the body.
    Ok(StatusCode::OK.into_response())
}

/// `usage-limits` of the key that makes the call; any live key may ask about itself.
async fn own_usage(State(sim): State<AixplainSim>, headers: HeaderMap) -> ApiResult {
    let now = sim.core.clock.now();
    let team = sim.state();
    let index = authenticate(&team, &headers, now)?;
    Ok(Json(team.keys[index].usage_limits(now)).into_response())
}

async fn key_usage(State(sim): State<AixplainSim>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let now = sim.core.clock.now();
    let team = sim.state();
    require_admin(&team, &headers, now)?;
    let key = team.live(&id).ok_or_else(ApiError::not_found)?;
    Ok(Json(key.usage_limits(now)).into_response())
}

/// `GET /sdk/models/{id}`: one model of the catalog, by id or by path (the SDK sends the path's `/`
/// as `%2F`, which arrives decoded). Any live key may read the catalog.
async fn get_model(State(sim): State<AixplainSim>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let now = sim.core.clock.now();
    let team = sim.state();
    authenticate(&team, &headers, now)?;
    let model = team
        .catalog
        .iter()
        .find(|m| m.answers_to(&id))
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("Model {id} not found")))?;
    Ok(Json(json!({
        "id": model.id,
        "name": model.name,
        "path": model.path,
        "function": {"id": "text-generation"},
        "status": "onboarded",
    }))
    .into_response())
}
