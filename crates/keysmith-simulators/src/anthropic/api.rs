//! The simulated Anthropic Admin API: authentication (`x-api-key` plus `anthropic-version`), API keys
//! (list, get, update; no create, no delete), workspaces, and `GET /v1/models` for the keys
//! themselves, with Anthropic's error envelope. The reports live in `reports.rs`.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::get,
};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tracing::info;

use super::{
    AnthropicSim, reports,
    state::{KeyStatus, State as Org},
};
use crate::{api_layer, sha256_hex, sim_core::never_creates};

/// The API routes behind the fault and request-log middleware.
pub(super) fn routes(sim: AnthropicSim) -> Router {
    // Keys are made in the Console, never through this API.
    let layer = sim.core.api_layer(error, never_creates);
    Router::new()
        .route("/v1/organizations/api_keys", get(list_keys).post(no_such_route))
        .route(
            "/v1/organizations/api_keys/{id}",
            get(get_key).post(update_key).delete(no_such_route),
        )
        .route(
            "/v1/organizations/workspaces",
            get(list_workspaces).post(create_workspace),
        )
        .route("/v1/organizations/workspaces/{id}", get(get_workspace))
        .route("/v1/organizations/usage_report/messages", get(reports::usage))
        .route("/v1/organizations/cost_report", get(reports::cost))
        .route("/v1/models", get(models))
        .layer(from_fn_with_state(layer, api_layer::guard))
        .with_state(sim)
}

/// Anthropic's error envelope, `{"type":"error","error":{"type":"<kind>","message":"..."}}`, with
/// the kind its errors documentation gives for each status.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 | 405 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, Json(body)).into_response()
}

/// A failed API call, rendered by [`error`].
#[derive(Debug)]
pub(super) struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }

    fn not_found(what: &str) -> Self {
        Self(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

fn require_version(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get("anthropic-version") {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid("anthropic-version: header is required")),
    }
}

/// Admin endpoints take an admin key. An ordinary API key is known but not allowed here.
pub(super) fn require_admin(org: &Org, headers: &HeaderMap) -> Result<(), ApiError> {
    let key = api_key(headers)
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "x-api-key header is required".into()))?;
    require_version(headers)?;
    let hash = sha256_hex(key);
    if org.admin_hashes.contains(&hash) {
        return Ok(());
    }
    if org.keys.iter().any(|k| k.value_hash == hash) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "This endpoint requires an admin API key".into(),
        ));
    }
    Err(ApiError(StatusCode::UNAUTHORIZED, "invalid x-api-key".into()))
}

async fn no_such_route() -> Response {
    error(StatusCode::NOT_FOUND, "Not found")
}

pub(super) type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

/// `limit` between 1 and `max` (default `default`).
pub(super) fn limit(query: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, ApiError> {
    match query.get("limit") {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(format!("limit: must be between 1 and {max}"))),
        },
    }
}

/// One page of a newest-first list: `after_id` continues after that item, `before_id` ends before it.
fn page(items: Vec<(String, Value)>, query: &HashMap<String, String>, default: usize) -> ApiResult {
    let limit = limit(query, default, 1000)?;
    let position = |id: &String| {
        items
            .iter()
            .position(|(item, _)| item == id)
            .ok_or_else(|| ApiError::invalid(format!("no object with id {id}")))
    };
    let (from, to) = match (query.get("after_id"), query.get("before_id")) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("send at most one of after_id and before_id")),
        (Some(after), None) => {
            let start = position(after)? + 1;
            (start, (start + limit).min(items.len()))
        }
        (None, Some(before)) => {
            let end = position(before)?;
            (end.saturating_sub(limit), end)
        }
        (None, None) => (0, limit.min(items.len())),
    };
    let has_more = match query.get("before_id") {
        Some(_) => from > 0,
        None => to < items.len(),
    };
    let slice = &items[from..to];
    Ok(Json(json!({
        "data": slice.iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "first_id": slice.first().map(|(id, _)| id),
        "last_id": slice.last().map(|(id, _)| id),
        "has_more": has_more,
    }))
    .into_response())
}

async fn list_keys(State(sim): State<AnthropicSim>, headers: HeaderMap, query: QueryParams) -> ApiResult {
    let now = sim.core.clock.now();
    let org = sim.state();
    require_admin(&org, &headers)?;
    let Query(query) = query.map_err(|_| ApiError::invalid("malformed query string"))?;
    let status = match query.get("status") {
        None => None,
        Some(text) => Some(KeyStatus::parse(text).ok_or_else(|| {
            ApiError::invalid("status: must be one of active, inactive, archived, expired")
        })?),
    };
    let items: Vec<(String, Value)> = org
        .keys
        .iter()
        .rev()
        .filter(|key| status.is_none_or(|s| key.status(now) == s))
        .filter(|key| {
            query
                .get("workspace_id")
                .is_none_or(|ws| key.workspace_id.as_deref() == Some(ws.as_str()))
        })
        // Every simulated key is made by the one Console user.
        .filter(|_| {
            query
                .get("created_by_user_id")
                .is_none_or(|user| user == super::state::CONSOLE_USER)
        })
        .map(|key| (key.id.clone(), key.api_json(now)))
        .collect();
    page(items, &query, 20)
}

async fn get_key(State(sim): State<AnthropicSim>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let now = sim.core.clock.now();
    let org = sim.state();
    require_admin(&org, &headers)?;
    let key = org.key(&id).ok_or_else(|| ApiError::not_found("API key"))?;
    Ok(Json(key.api_json(now)).into_response())
}

/// `name` and/or `status` (`active`, `inactive` or `archived`). Like the real API, unknown fields are
/// refused, archiving is final and an expired key cannot be switched back on.
async fn update_key(
    State(sim): State<AnthropicSim>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut org = sim.state();
    require_admin(&org, &headers)?;
    let key = org.key_mut(&id).ok_or_else(|| ApiError::not_found("API key"))?;
    let fields: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(fields)) => fields,
        _ => return Err(ApiError::invalid("the body must be a JSON object")),
    };
    if let Some(extra) = fields.keys().find(|k| !matches!(k.as_str(), "name" | "status")) {
        return Err(ApiError::invalid(format!(
            "{extra}: Extra inputs are not permitted"
        )));
    }
    let name = match fields.get("name") {
        None => None,
        Some(Value::String(name)) if !name.trim().is_empty() && name.chars().count() <= 500 => {
            Some(name.clone())
        }
        Some(_) => return Err(ApiError::invalid("name: must be a string of 1 to 500 characters")),
    };
    let status = match fields.get("status") {
        None => None,
        Some(Value::String(text)) => match KeyStatus::parse(text) {
            Some(KeyStatus::Expired) | None => {
                return Err(ApiError::invalid(
                    "status: must be one of active, inactive, archived",
                ));
            }
            Some(status) => Some(status),
        },
        Some(_) => return Err(ApiError::invalid("status: must be a string")),
    };
    match (key.status(now), status) {
        (KeyStatus::Archived, _) => return Err(ApiError::invalid("archived API keys cannot be updated")),
        (KeyStatus::Expired, Some(KeyStatus::Active | KeyStatus::Inactive)) => {
            return Err(ApiError::invalid("an expired API key cannot be reactivated"));
        }
        _ => {}
    }
    if let Some(name) = name {
        key.name = name;
    }
    if let Some(status) = status {
        key.status = status;
    }
    info!(id = %key.id, "simulated Anthropic key updated");
    Ok(Json(key.api_json(now)).into_response())
}

async fn list_workspaces(
    State(sim): State<AnthropicSim>,
    headers: HeaderMap,
    query: QueryParams,
) -> ApiResult {
    let org = sim.state();
    require_admin(&org, &headers)?;
    let Query(query) = query.map_err(|_| ApiError::invalid("malformed query string"))?;
    let archived = query.get("include_archived").is_some_and(|v| v == "true");
    let items = org
        .workspaces
        .iter()
        .rev()
        .filter(|ws| archived || ws.archived_at.is_none())
        .map(|ws| (ws.id.clone(), ws.api_json()))
        .collect();
    page(items, &query, 20)
}

async fn get_workspace(
    State(sim): State<AnthropicSim>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let org = sim.state();
    require_admin(&org, &headers)?;
    let ws = org
        .workspace(&id)
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(Json(ws.api_json()).into_response())
}

async fn create_workspace(State(sim): State<AnthropicSim>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let now = sim.core.clock.now();
    let mut org = sim.state();
    require_admin(&org, &headers)?;
    let name = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => match fields.get("name") {
            Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
            _ => return Err(ApiError::invalid("name: Field required")),
        },
        _ => return Err(ApiError::invalid("the body must be a JSON object")),
    };
    let id = org.add_workspace(&name, now);
    let ws = org
        .workspace(&id)
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(Json(ws.api_json()).into_response())
}

/// `GET /v1/models` with an ordinary key: it answers for active keys only. Admin keys cannot call
/// the model endpoints.
async fn models(State(sim): State<AnthropicSim>, headers: HeaderMap) -> ApiResult {
    let now = sim.core.clock.now();
    let org = sim.state();
    let key = api_key(&headers)
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "x-api-key header is required".into()))?;
    require_version(&headers)?;
    let hash = sha256_hex(key);
    let usable = org
        .keys
        .iter()
        .any(|k| k.value_hash == hash && k.status(now) == KeyStatus::Active);
    if !usable {
        return Err(ApiError(StatusCode::UNAUTHORIZED, "invalid x-api-key".into()));
    }
    let created = super::state::rfc3339(Timestamp::UNIX_EPOCH);
    let data: Vec<Value> = super::MODELS
        .iter()
        .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": created}))
        .collect();
    Ok(Json(json!({
        "data": data,
        "first_id": super::MODELS.first(),
        "last_id": super::MODELS.last(),
        "has_more": false,
    }))
    .into_response())
}
