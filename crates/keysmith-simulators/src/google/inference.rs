//! A sliver of the Gemini API (`GET /v1beta/models`), enough to validate an API key the way clients
//! use it: in `x-goog-api-key` or `?key=`. An unknown or deleted key gets Google's 400
//! `API_KEY_INVALID`; a key whose `apiTargets` leave out the Gemini API gets 403.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::{GoogleSim, api::error};
use crate::{api_layer, sim_core::never_creates};

/// The inference base path.
pub const INFERENCE_PATH: &str = "/v1beta";

/// The service the Gemini API's keys must allow.
const SERVICE: &str = "generativelanguage.googleapis.com";

pub(super) fn routes(sim: GoogleSim) -> Router {
    let layer = sim.core.api_layer(error, never_creates);
    Router::new()
        .route("/v1beta/models", get(models))
        .layer(from_fn_with_state(layer, api_layer::guard))
        .with_state(sim)
}

async fn models(
    State(sim): State<GoogleSim>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let value = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| params.get("key").cloned())
        .unwrap_or_default();
    let now = sim.core.clock.now();
    let state = sim.state(now);
    let key = state
        .keys
        .iter()
        .find(|key| !key.is_deleted() && !value.is_empty() && key.key_string == value);
    match key {
        None => {
            let body = json!({"error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                             "domain": "googleapis.com", "metadata": {"service": SERVICE}}],
            }});
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
        Some(key) if !key.allows(SERVICE) => error(
            StatusCode::FORBIDDEN,
            "Requests to this API generativelanguage.googleapis.com method google.ai.generativelanguage.v1beta.ModelService.ListModels are blocked.",
        ),
        Some(_) => Json(json!({
            "models": [{
                "name": "models/gemini-2.0-flash",
                "displayName": "Gemini 2.0 Flash",
                "inputTokenLimit": 1_048_576,
                "outputTokenLimit": 8192,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }],
        }))
        .into_response(),
    }
}
