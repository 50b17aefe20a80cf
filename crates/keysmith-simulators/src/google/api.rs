//! The simulated API Keys API under `/v2`: bearer-token authentication, the keys methods (each
//! change a long-running operation), `getKeyString`, `lookupKey` and `operations.get`, with Google's
//! status codes and error bodies.

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
    GoogleSim,
    input::{KeyFields, Mask, check_key_id},
    state::{KEY_TYPE, KeyEntry, State as Project, new_key_string, operation_json, uuid4},
};
use crate::{
    api_layer::{self, bearer_token},
    sha256_hex,
};

/// Keys per list page when the request does not say.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// Most keys per list page.
pub const MAX_PAGE_SIZE: usize = 300;

pub(super) fn routes(sim: GoogleSim) -> Router {
    let layer = sim.core.api_layer(error, is_create);
    Router::new()
        .route(
            "/v2/projects/{project}/locations/{location}/keys",
            get(list_keys).post(create_key),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/keys/{key}",
            get(get_key)
                .patch(patch_key)
                .delete(delete_key)
                .post(undelete_key),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/keys/{key}/keyString",
            get(key_string),
        )
        .route("/v2/keys:lookupKey", get(lookup_key))
        .route("/v2/operations/{operation}", get(get_operation))
        .layer(from_fn_with_state(layer, api_layer::guard))
        .with_state(sim)
}

fn is_create(method: &Method, path: &str) -> bool {
    method == Method::POST
        && path.starts_with("/v2/projects/")
        && path.trim_end_matches('/').ends_with("/keys")
}

/// The `google.rpc.Code` name Google sends with an HTTP status by default.
fn rpc_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// Google's error body: `{"error":{"code","message","status","details"}}`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    error_with(status, rpc_status(status), message)
}

fn error_with(status: StatusCode, rpc: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": rpc, "details": []}});
    (status, Json(body)).into_response()
}

/// A failed call, rendered by [`error_with`].
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    rpc: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            rpc: rpc_status(status),
            message: message.into(),
        }
    }

    fn with_rpc(status: StatusCode, rpc: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            rpc,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn precondition(message: impl Into<String>) -> Self {
        Self::with_rpc(StatusCode::BAD_REQUEST, "FAILED_PRECONDITION", message)
    }

    fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found."))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_with(self.status, self.rpc, &self.message)
    }
}

type ApiResult = Result<Response, ApiError>;
type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Accepts a bearer token the token endpoint issued (and that has not expired) or a static one.
/// Changes need a token with the `cloud-platform` scope; the read-only scope gets 403.
fn authenticate(state: &Project, headers: &HeaderMap, now: Timestamp, write: bool) -> Result<(), ApiError> {
    let unauthenticated = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )
    };
    let token = bearer_token(headers).ok_or_else(unauthenticated)?;
    let hash = sha256_hex(token);
    let token = state
        .tokens
        .iter()
        .find(|t| t.hash == hash && t.expires_at > now)
        .ok_or_else(unauthenticated)?;
    if write && !token.can_write {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Request had insufficient authentication scopes.",
        ));
    }
    Ok(())
}

/// Checks the project and location of a path.
fn check_parent(state: &Project, project: &str, location: &str) -> Result<(), ApiError> {
    if !state.is_project(project) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Permission denied on resource project {project}."),
        ));
    }
    if location != "global" {
        return Err(ApiError::invalid(format!(
            "Location {location} is not supported: the only valid location is global."
        )));
    }
    Ok(())
}

fn query(params: QueryParams) -> Result<HashMap<String, String>, ApiError> {
    params
        .map(|Query(q)| q)
        .map_err(|_| ApiError::invalid("Invalid query string."))
}

/// The key JSON an operation returns, with its `@type`.
fn typed(mut key: Value) -> Value {
    key["@type"] = json!(KEY_TYPE);
    key
}

async fn create_key(
    State(sim): State<GoogleSim>,
    Path((project, location)): Path<(String, String)>,
    headers: HeaderMap,
    params: QueryParams,
    body: Bytes,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state(now);
    authenticate(&state, &headers, now, true)?;
    check_parent(&state, &project, &location)?;
    let params = query(params)?;
    let key_id = match params.get("keyId").filter(|id| !id.is_empty()) {
        Some(id) => {
            check_key_id(id).map_err(ApiError::invalid)?;
            id.clone()
        }
        // Google names a key without a keyId (an empty one is unset, as in proto3) by a UUID.
        None => uuid4(),
    };
    let fields = KeyFields::parse(&body).map_err(ApiError::invalid)?;
    if state.key(&key_id).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Key with ID {key_id} already exists in the project."),
        ));
    }
    let mut key = KeyEntry::new(key_id, new_key_string(), now);
    key.display_name = fields.display_name.unwrap_or_default();
    key.annotations = fields.annotations.unwrap_or_default();
    key.restrictions = fields.restrictions;
    let response = typed(key.api_json(&state.project_number, true));
    info!(key_id = %key.key_id, "simulated Google API key created");
    state.keys.push(key);
    Ok(Json(state.operation(response)).into_response())
}

async fn list_keys(
    State(sim): State<GoogleSim>,
    Path((project, location)): Path<(String, String)>,
    headers: HeaderMap,
    params: QueryParams,
) -> ApiResult {
    let now = sim.core.clock.now();
    let state = sim.state(now);
    authenticate(&state, &headers, now, false)?;
    check_parent(&state, &project, &location)?;
    let params = query(params)?;
    let page_size = match params.get("pageSize").map(|s| s.parse::<i64>()) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(0)) => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if n > 0 => usize::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
        Some(_) => return Err(ApiError::invalid("page_size must be a non-negative integer.")),
    };
    let offset = match params.get("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => decode_page_token(token).ok_or_else(|| ApiError::invalid("Invalid page token."))?,
    };
    let show_deleted = match params.get("showDeleted").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("show_deleted must be true or false.")),
    };
    let visible: Vec<&KeyEntry> = state
        .keys
        .iter()
        .filter(|key| show_deleted || !key.is_deleted())
        .collect();
    let page: Vec<Value> = visible
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|key| key.api_json(&state.project_number, false))
        .collect();
    let mut body = json!({ "keys": page });
    if offset + page_size < visible.len() {
        body["nextPageToken"] = json!(encode_page_token(offset + page_size));
    }
    Ok(Json(body).into_response())
}

/// Page tokens are opaque to clients: the offset, hex-encoded behind a marker.
fn encode_page_token(offset: usize) -> String {
    hex::encode(format!("keys@{offset}"))
}

fn decode_page_token(token: &str) -> Option<usize> {
    let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
    text.strip_prefix("keys@")?.parse().ok()
}

type KeyPath = Path<(String, String, String)>;

/// The key a path names, after the usual checks.
fn find<'a>(
    state: &'a mut Project,
    (project, location, key): &(String, String, String),
) -> Result<&'a mut KeyEntry, ApiError> {
    check_parent(state, project, location)?;
    state.key_mut(key).ok_or_else(|| ApiError::not_found("Key"))
}

async fn get_key(State(sim): State<GoogleSim>, Path(path): KeyPath, headers: HeaderMap) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state(now);
    authenticate(&state, &headers, now, false)?;
    let number = state.project_number.clone();
    let key = find(&mut state, &path)?;
    Ok(Json(key.api_json(&number, false)).into_response())
}

async fn key_string(State(sim): State<GoogleSim>, Path(path): KeyPath, headers: HeaderMap) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state(now);
    authenticate(&state, &headers, now, false)?;
    let key = find(&mut state, &path)?;
    Ok(Json(json!({ "keyString": key.key_string })).into_response())
}

async fn patch_key(
    State(sim): State<GoogleSim>,
    Path(path): KeyPath,
    headers: HeaderMap,
    params: QueryParams,
    body: Bytes,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state(now);
    authenticate(&state, &headers, now, true)?;
    let params = query(params)?;
    let fields = KeyFields::parse(&body).map_err(ApiError::invalid)?;
    let mask =
        Mask::parse(params.get("updateMask").map(String::as_str), &fields).map_err(ApiError::invalid)?;
    let number = state.project_number.clone();
    let key = find(&mut state, &path)?;
    if key.is_deleted() {
        return Err(ApiError::precondition("The key is deleted; undelete it first."));
    }
    check_etag(key, fields.etag.as_deref())?;
    if mask.display_name {
        key.display_name = fields.display_name.unwrap_or_default();
    }
    if mask.annotations {
        key.annotations = fields.annotations.unwrap_or_default();
    }
    if mask.restrictions {
        key.restrictions = fields.restrictions;
    }
    key.touch(now);
    info!(key_id = %key.key_id, "simulated Google API key patched");
    let response = typed(key.api_json(&number, false));
    Ok(Json(state.operation(response)).into_response())
}

/// Optimistic concurrency: a stale etag gets 409 `ABORTED`.
fn check_etag(key: &KeyEntry, etag: Option<&str>) -> Result<(), ApiError> {
    match etag {
        Some(etag) if etag != key.etag => Err(ApiError::with_rpc(
            StatusCode::CONFLICT,
            "ABORTED",
            "The etag does not match the current state of the key.",
        )),
        _ => Ok(()),
    }
}

async fn delete_key(
    State(sim): State<GoogleSim>,
    Path(path): KeyPath,
    headers: HeaderMap,
    params: QueryParams,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state(now);
    authenticate(&state, &headers, now, true)?;
    let params = query(params)?;
    let number = state.project_number.clone();
    let key = find(&mut state, &path)?;
    check_etag(
        key,
        params.get("etag").map(String::as_str).filter(|e| !e.is_empty()),
    )?;
    if key.is_deleted() {
        return Err(ApiError::precondition("The key is already deleted."));
    }
    key.delete_time = Some(now);
    key.touch(now);
    info!(key_id = %key.key_id, "simulated Google API key deleted");
    let response = typed(key.api_json(&number, false));
    Ok(Json(state.operation(response)).into_response())
}

/// `POST .../keys/{key}:undelete`; the router sees `{key}` as `<id>:undelete`.
async fn undelete_key(
    State(sim): State<GoogleSim>,
    Path((project, location, key)): KeyPath,
    headers: HeaderMap,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state(now);
    authenticate(&state, &headers, now, true)?;
    let Some(key_id) = key.strip_suffix(":undelete") else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Method not found."));
    };
    let number = state.project_number.clone();
    let key = find(&mut state, &(project, location, key_id.to_owned()))?;
    if !key.is_deleted() {
        return Err(ApiError::precondition("The key is not deleted."));
    }
    key.delete_time = None;
    key.touch(now);
    info!(key_id = %key.key_id, "simulated Google API key undeleted");
    let response = typed(key.api_json(&number, false));
    Ok(Json(state.operation(response)).into_response())
}

async fn lookup_key(State(sim): State<GoogleSim>, headers: HeaderMap, params: QueryParams) -> ApiResult {
    let now = sim.core.clock.now();
    let state = sim.state(now);
    authenticate(&state, &headers, now, false)?;
    let params = query(params)?;
    let value = params
        .get("keyString")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::invalid("key_string is required."))?;
    let parent = format!("projects/{}", state.project_number);
    if let Some(key) = state.keys.iter().find(|key| key.key_string == *value) {
        let name = format!("{parent}/locations/global/keys/{}", key.key_id);
        return Ok(Json(json!({ "name": name, "parent": parent })).into_response());
    }
    if state.purged.contains(&sha256_hex(value)) {
        return Ok(Json(json!({ "parent": parent })).into_response());
    }
    Err(ApiError::not_found("API key"))
}

async fn get_operation(
    State(sim): State<GoogleSim>,
    Path(operation): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state(now);
    authenticate(&state, &headers, now, false)?;
    let name = format!("operations/{operation}");
    let entry = state
        .operations
        .get_mut(&name)
        .ok_or_else(|| ApiError::not_found("Operation"))?;
    entry.polls_left = entry.polls_left.saturating_sub(1);
    Ok(Json(operation_json(&name, entry)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_page_token(&encode_page_token(150)), Some(150));
        assert_eq!(decode_page_token("zz"), None);
        assert_eq!(decode_page_token(&hex::encode("other@1")), None);
    }
}
