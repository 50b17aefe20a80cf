//! The simulated OpenRouter API under `/api/v1`: authentication, the keys endpoints, `/key`,
//! `/credits` and `/activity`, with OpenRouter's status codes and error bodies.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, Method, StatusCode},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::get,
};
use jiff::Timestamp;
use serde_json::{Value, json};
use tracing::info;

use super::{
    OpenRouterSim,
    activity::{self, ActivityQuery},
    input::{KeyPatch, NewKey, is_uuid},
    state::{DEFAULT_WORKSPACE, KeyRecord, State as Account, current_key_base},
};
use crate::{
    api_layer::{self, bearer_token},
    sha256_hex,
};

/// The API base path.
pub const BASE_PATH: &str = "/api/v1";

/// Keys per `GET /keys` page, per OpenRouter's docs ("the most recent 100 keys").
pub const PAGE_SIZE: usize = 100;

/// The API routes behind the fault and request-log middleware.
pub(super) fn routes(sim: OpenRouterSim) -> Router {
    let layer = sim.core.api_layer(error, is_create);
    Router::new()
        .route("/api/v1/key", get(current_key))
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route(
            "/api/v1/keys/{hash}",
            get(get_key).patch(update_key).delete(delete_key),
        )
        .route("/api/v1/credits", get(credits))
        .route("/api/v1/activity", get(activity))
        .layer(from_fn_with_state(layer, api_layer::guard))
        .with_state(sim)
}

fn is_create(method: &Method, path: &str) -> bool {
    method == Method::POST && path.trim_end_matches('/') == "/api/v1/keys"
}

/// OpenRouter's error body, the same for every status.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "error": {"code": status.as_u16(), "message": message, "metadata": null},
        "user_id": null,
    });
    (status, Json(body)).into_response()
}

/// A failed API call; small enough to pass around in `Result`, rendered by [`error`].
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("Invalid request parameters: {detail}"),
        )
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Resource not found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, &self.message)
    }
}

type ApiResult = Result<Response, ApiError>;

/// Who made a request.
enum Caller {
    Management(usize),
    Ordinary(usize),
}

/// Recognises the caller by the SHA-256 of its bearer token. Disabled, expired and deleted ordinary
/// keys no longer authenticate.
fn authenticate(state: &Account, headers: &HeaderMap, now: Timestamp) -> Result<Caller, ApiError> {
    let unauthorized = |message| ApiError::new(StatusCode::UNAUTHORIZED, message);
    let token = bearer_token(headers).ok_or_else(|| unauthorized("Missing Authentication header"))?;
    let hash = sha256_hex(token);
    if let Some(index) = state.management.iter().position(|key| key.hash == hash) {
        return Ok(Caller::Management(index));
    }
    match state
        .keys
        .iter()
        .position(|key| key.hash == hash && !key.is_deleted())
    {
        None => Err(unauthorized("User not found.")),
        Some(index) if state.keys[index].disabled => Err(unauthorized("API key is disabled")),
        Some(index) if state.keys[index].is_expired(now) => Err(unauthorized("API key has expired")),
        Some(index) => Ok(Caller::Ordinary(index)),
    }
}

fn require_management(state: &Account, headers: &HeaderMap, now: Timestamp) -> Result<(), ApiError> {
    match authenticate(state, headers, now)? {
        Caller::Management(_) => Ok(()),
        Caller::Ordinary(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Only management keys can perform this operation",
        )),
    }
}

fn data(value: Value) -> Response {
    Json(json!({ "data": value })).into_response()
}

async fn current_key(State(sim): State<OpenRouterSim>, headers: HeaderMap) -> ApiResult {
    let now = sim.core.clock.now();
    let state = sim.state();
    let object = match authenticate(&state, &headers, now)? {
        Caller::Management(index) => {
            let mut object = current_key_base(&state.management[index].label, true, state.is_free_tier());
            if let (Value::Object(fields), Ok(Value::Object(zero))) =
                (&mut object, serde_json::to_value(super::Usage::default()))
            {
                fields.extend(zero);
            }
            object
        }
        Caller::Ordinary(index) => state.keys[index].current_json(now, state.is_free_tier()),
    };
    Ok(data(object))
}

type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

async fn list_keys(State(sim): State<OpenRouterSim>, headers: HeaderMap, query: QueryParams) -> ApiResult {
    let now = sim.core.clock.now();
    let state = sim.state();
    require_management(&state, &headers, now)?;
    let Query(query) = query.map_err(|_| ApiError::bad_request("malformed query string"))?;
    let offset = match query.get("offset") {
        None => 0,
        Some(offset) => offset
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("offset must be a non-negative integer"))?,
    };
    let include_disabled = match query.get("include_disabled").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("include_disabled must be true or false")),
    };
    let workspace = match query.get("workspace_id") {
        None => DEFAULT_WORKSPACE,
        Some(id) if is_uuid(id) => id.as_str(),
        Some(_) => return Err(ApiError::bad_request("workspace_id must be a UUID")),
    };
    let page: Vec<Value> = state
        .keys
        .iter()
        .rev()
        .filter(|key| !key.is_deleted() && key.workspace_id == workspace)
        .filter(|key| include_disabled || !key.disabled)
        .skip(offset)
        .take(PAGE_SIZE)
        .map(|key| key.api_json(now))
        .collect();
    Ok(data(json!(page)))
}

async fn create_key(State(sim): State<OpenRouterSim>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state();
    require_management(&state, &headers, now)?;
    let fields = NewKey::parse(&body).map_err(|detail| ApiError::bad_request(&detail))?;
    let value = new_key_value();
    let mut key = KeyRecord::new(&value, fields.name, now);
    key.limit = fields.limit;
    key.limit_reset = fields.limit_reset;
    key.include_byok_in_limit = fields.include_byok_in_limit;
    key.expires_at = fields.expires_at;
    key.creator_user_id = fields.creator_user_id;
    key.workspace_id = fields.workspace_id;
    let object = key.api_json(now);
    info!(hash = %key.hash, name = %key.name, "simulated OpenRouter key created");
    state.keys.push(key);
    Ok((StatusCode::CREATED, Json(json!({ "data": object, "key": value }))).into_response())
}

/// A fresh key value in OpenRouter's format: `sk-or-v1-` and 64 hex digits.
fn new_key_value() -> String {
    format!("sk-or-v1-{}", hex::encode(rand::random::<[u8; 32]>()))
}

async fn get_key(
    State(sim): State<OpenRouterSim>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> ApiResult {
    let now = sim.core.clock.now();
    let state = sim.state();
    require_management(&state, &headers, now)?;
    let key = state
        .key(&hash)
        .filter(|key| !key.is_deleted())
        .ok_or_else(ApiError::not_found)?;
    Ok(data(key.api_json(now)))
}

async fn update_key(
    State(sim): State<OpenRouterSim>,
    headers: HeaderMap,
    Path(hash): Path<String>,
    body: Bytes,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state();
    require_management(&state, &headers, now)?;
    let key = state.live_key_mut(&hash).ok_or_else(ApiError::not_found)?;
    let patch = KeyPatch::parse(&body).map_err(|detail| ApiError::bad_request(&detail))?;
    if let Some(name) = patch.name {
        key.name = name;
    }
    if let Some(disabled) = patch.disabled {
        key.disabled = disabled;
    }
    if let Some(limit) = patch.limit {
        key.limit = limit;
    }
    if let Some(limit_reset) = patch.limit_reset {
        key.limit_reset = limit_reset;
    }
    if let Some(include) = patch.include_byok_in_limit {
        key.include_byok_in_limit = include;
    }
    key.touch(now);
    info!(hash = %key.hash, "simulated OpenRouter key updated");
    Ok(data(key.api_json(now)))
}

async fn delete_key(
    State(sim): State<OpenRouterSim>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state();
    require_management(&state, &headers, now)?;
    let key = state.live_key_mut(&hash).ok_or_else(ApiError::not_found)?;
    key.deleted_at = Some(now);
    info!(hash = %key.hash, "simulated OpenRouter key deleted");
    Ok(Json(json!({ "deleted": true })).into_response())
}

async fn credits(State(sim): State<OpenRouterSim>, headers: HeaderMap) -> ApiResult {
    let now = sim.core.clock.now();
    let state = sim.state();
    require_management(&state, &headers, now)?;
    Ok(data(
        json!({ "total_credits": state.total_credits, "total_usage": state.total_usage(now) }),
    ))
}

/// `/activity`: see [`ActivityQuery`] for the filters. An unknown `api_key_hash` is a 404.
async fn activity(State(sim): State<OpenRouterSim>, headers: HeaderMap, query: QueryParams) -> ApiResult {
    let now = sim.core.clock.now();
    let state = sim.state();
    require_management(&state, &headers, now)?;
    let Query(query) = query.map_err(|_| ApiError::bad_request("malformed query string"))?;
    let query = ActivityQuery::parse(&query, now).map_err(|detail| ApiError::bad_request(&detail))?;
    if query
        .api_key_hash
        .as_ref()
        .is_some_and(|hash| state.key(hash).is_none())
    {
        return Err(ApiError::not_found());
    }
    Ok(data(json!(activity::report(&state, &query, now))))
}
