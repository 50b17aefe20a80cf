//! The simulated DigitalOcean API: the GenAI model API key endpoints under `/v2/gen-ai/models/api_keys`
//! with DigitalOcean's status codes, error bodies and pagination, and the serverless inference
//! service's `GET /v1/models`, which checks a model key.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, Request, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header::HOST},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;

use super::{
    DigitalOceanSim,
    state::{ModelKey, new_key_value},
};
use crate::{
    api_layer::{self, bearer_token},
    request_log::fingerprint,
};

/// The model API keys collection.
pub const KEYS_PATH: &str = "/v2/gen-ai/models/api_keys";

/// The inference service's base path (the simulator serves it on the same port).
pub const INFERENCE_PATH: &str = "/v1";

/// `per_page` when the request leaves it out.
pub const DEFAULT_PER_PAGE: usize = 20;

/// Largest `per_page` DigitalOcean accepts.
pub const MAX_PER_PAGE: usize = 200;

/// What a retired create answers, word for word.
pub const RETIRED_MESSAGE: &str = "resource retired: Creating model API keys through this endpoint is retired. \
     Go to manage page in the control panel to create a model access key.";

/// The management API behind the rate-limit headers, fault and request-log middleware.
pub(super) fn management_routes(sim: DigitalOceanSim) -> Router {
    let layer = sim.core.api_layer(error, is_create);
    Router::new()
        .route(KEYS_PATH, get(list_keys).post(create_key))
        .route(
            &format!("{KEYS_PATH}/{{uuid}}"),
            put(rename_key).delete(delete_key),
        )
        .route(&format!("{KEYS_PATH}/{{uuid}}/regenerate"), put(regenerate_key))
        .layer(from_fn_with_state(layer, api_layer::guard))
        // Outermost, so that injected faults carry the headers too, as every DigitalOcean answer does.
        .layer(from_fn_with_state(sim.clone(), rate_headers))
        .with_state(sim)
}

/// The inference service's model list, behind the fault and request-log middleware.
pub(super) fn inference_routes(sim: DigitalOceanSim) -> Router {
    let layer = sim.core.api_layer(error, is_create);
    Router::new()
        .route(&format!("{INFERENCE_PATH}/models"), get(models))
        .layer(from_fn_with_state(layer, api_layer::guard))
        .with_state(sim)
}

fn is_create(method: &Method, path: &str) -> bool {
    method == Method::POST && path.trim_end_matches('/') == KEYS_PATH
}

/// DigitalOcean's error body: `id` is the status name in snake case. A 429 always reads as the burst
/// limit does, whatever made it.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let id = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::GONE => "gone",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        _ => "server_error",
    };
    let message = if status == StatusCode::TOO_MANY_REQUESTS {
        "API Rate limit exceeded."
    } else {
        message
    };
    (status, Json(json!({ "id": id, "message": message }))).into_response()
}

/// Adds `ratelimit-limit`, `ratelimit-remaining` and `ratelimit-reset` to every management answer,
/// counting the request against its credential's rolling hour.
async fn rate_headers(State(sim): State<DigitalOceanSim>, request: Request, next: Next) -> Response {
    let credential = bearer_token(request.headers()).map(fingerprint);
    let figures = sim.state().count_request(credential, sim.core.clock.now());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(figures.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(figures.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(figures.reset));
    response
}

/// A failed API call, rendered by [`error`].
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(detail: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, detail.into())
    }

    fn not_found() -> Self {
        Self(
            StatusCode::NOT_FOUND,
            "The resource you were accessing could not be found.".into(),
        )
    }

    fn unauthorized() -> Self {
        Self(StatusCode::UNAUTHORIZED, "Unable to authenticate you.".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

type ApiResult = Result<Response, ApiError>;

fn require_token(sim: &DigitalOceanSim, headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer_token(headers) {
        Some(token) if sim.state().is_token(token) => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

/// A positive integer query parameter, or `default` when absent.
fn positive(query: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a positive integer"))),
    }
}

/// `page`/`per_page` pagination with `links.pages` only when there is more than one page, each link
/// only where it makes sense, and `meta {page, pages, total}`.
async fn list_keys(State(sim): State<DigitalOceanSim>, headers: HeaderMap, query: QueryParams) -> ApiResult {
    require_token(&sim, &headers)?;
    let Query(query) = query.map_err(|_| ApiError::bad_request("malformed query string"))?;
    let page = positive(&query, "page", 1)?;
    let per_page = positive(&query, "per_page", DEFAULT_PER_PAGE)?;
    if per_page > MAX_PER_PAGE {
        return Err(ApiError::bad_request(format!(
            "per_page must be at most {MAX_PER_PAGE}"
        )));
    }
    let state = sim.state();
    let live: Vec<&ModelKey> = state.keys.iter().filter(|key| !key.is_deleted()).collect();
    let total = live.len();
    let pages = total.div_ceil(per_page);
    let items: Vec<Value> = live
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|key| key.api_json())
        .collect();
    let host = headers
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("api.digitalocean.com");
    let link = |n: usize| format!("http://{host}{KEYS_PATH}?page={n}&per_page={per_page}");
    let mut links = serde_json::Map::new();
    if pages > 1 {
        if page > 1 {
            links.insert("first".into(), json!(link(1)));
            links.insert("previous".into(), json!(link((page - 1).min(pages))));
        }
        if page < pages {
            links.insert("next".into(), json!(link(page + 1)));
            links.insert("last".into(), json!(link(pages)));
        }
    }
    let links = if links.is_empty() {
        json!({})
    } else {
        json!({ "pages": links })
    };
    Ok(Json(json!({
        "api_key_infos": items,
        "links": links,
        "meta": {"page": page, "pages": pages, "total": total},
    }))
    .into_response())
}

#[derive(Deserialize)]
struct NewKey {
    name: Option<String>,
}

/// 410 Gone, as DigitalOcean's current contract says; the legacy switch restores the old 200 answer
/// with the value.
async fn create_key(State(sim): State<DigitalOceanSim>, headers: HeaderMap, body: Bytes) -> ApiResult {
    require_token(&sim, &headers)?;
    if !sim.state().legacy_create {
        return Err(ApiError(StatusCode::GONE, RETIRED_MESSAGE.into()));
    }
    let name = serde_json::from_slice::<NewKey>(&body)
        .ok()
        .and_then(|new| new.name)
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("name is required"))?;
    let value = new_key_value();
    let key = ModelKey::new(&value, name, sim.core.clock.now());
    let mut object = key.api_json();
    object["secret_key"] = json!(value);
    info!(uuid = %key.uuid, "simulated DigitalOcean model key created (legacy create)");
    sim.state().keys.push(key);
    Ok(Json(json!({ "api_key_info": object })).into_response())
}

/// `{api_key_uuid, name}`; a uuid in the body that differs from the path's is refused.
#[derive(Deserialize)]
struct Rename {
    api_key_uuid: Option<String>,
    name: Option<String>,
}

async fn rename_key(
    State(sim): State<DigitalOceanSim>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    require_token(&sim, &headers)?;
    let rename: Rename =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("the body must be a JSON object"))?;
    let mut state = sim.state();
    let key = state.live_key_mut(&uuid).ok_or_else(ApiError::not_found)?;
    if rename
        .api_key_uuid
        .as_deref()
        .is_some_and(|body_uuid| body_uuid != uuid)
    {
        return Err(ApiError::bad_request("api_key_uuid does not match the path"));
    }
    let name = rename
        .name
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("name is required"))?;
    key.name = name;
    info!(%uuid, "simulated DigitalOcean model key renamed");
    Ok(Json(json!({ "api_key_info": key.api_json() })).into_response())
}

/// A new value for the same key; the old value stops working at once.
async fn regenerate_key(
    State(sim): State<DigitalOceanSim>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    require_token(&sim, &headers)?;
    let mut state = sim.state();
    let key = state.live_key_mut(&uuid).ok_or_else(ApiError::not_found)?;
    let value = new_key_value();
    key.secret_hash = crate::sha256_hex(&value);
    key.regenerations += 1;
    let mut object = key.api_json();
    object["secret_key"] = json!(value);
    info!(%uuid, "simulated DigitalOcean model key regenerated");
    Ok(Json(json!({ "api_key_info": object })).into_response())
}

/// Marks the key deleted and answers with it, `deleted_at` set. A deleted key is gone: a second
/// delete is a 404.
async fn delete_key(
    State(sim): State<DigitalOceanSim>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    require_token(&sim, &headers)?;
    let now = sim.core.clock.now();
    let mut state = sim.state();
    let key = state.live_key_mut(&uuid).ok_or_else(ApiError::not_found)?;
    key.deleted_at = Some(now);
    info!(%uuid, "simulated DigitalOcean model key deleted");
    Ok(Json(json!({ "api_key_info": key.api_json() })).into_response())
}

/// Models the serverless inference service offers to a working model key.
const MODELS: [(&str, &str); 3] = [
    ("llama3.3-70b-instruct", "meta"),
    ("deepseek-r1-distill-llama-70b", "deepseek"),
    ("mistral-nemo-instruct-2407", "mistral"),
];

/// The model list for a live key's current value; unknown, deleted and regenerated-away values get
/// 401 with DigitalOcean's error body.
async fn models(State(sim): State<DigitalOceanSim>, headers: HeaderMap) -> ApiResult {
    let known = bearer_token(&headers).is_some_and(|value| sim.state().key_by_value(value).is_some());
    if !known {
        return Err(ApiError::unauthorized());
    }
    let created = sim.core.clock.now().as_second();
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": created, "owned_by": owner}))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })).into_response())
}
