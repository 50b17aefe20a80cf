//! A project's rate limits (one `rl-<model>` row per model) and its monthly spend limit.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::HeaderMap,
    response::IntoResponse,
};
use serde_json::json;
use tracing::info;

use super::{
    OpenAiSim,
    api::{ApiError, ApiResult, Cursor, QueryParams, parse_query, project, project_mut, require_admin},
    input,
};

/// Rows per page when `limit` is left out: the documented default for rate limits.
const DEFAULT_RATE_LIMIT_PAGE: usize = 100;

pub(super) async fn list_rate_limits(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    query: QueryParams,
) -> ApiResult {
    let state = sim.state();
    require_admin(&state, &headers)?;
    let cursor = Cursor::parse(&parse_query(query)?, DEFAULT_RATE_LIMIT_PAGE)?;
    let project = project(&state, &project_id)?;
    cursor.page(
        project
            .rate_limits
            .iter()
            .map(|row| (row.id(), true, row.api_json()))
            .collect(),
    )
}

/// Changes only the fields sent. A field that does not apply to the model, or a value above the
/// organisation's maximum, is refused with 400 and nothing changes.
pub(super) async fn update_rate_limit(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path((project_id, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let project = project_mut(&mut state, &project_id)?;
    let row = project
        .rate_limits
        .iter_mut()
        .find(|row| row.id() == id)
        .ok_or_else(|| ApiError::not_found(format!("Rate limit {id} not found in project {project_id}")))?;
    let changes = input::rate_limit_patch(&body)?;
    for (field, value) in &changes {
        if !row.values.contains_key(field) {
            return Err(ApiError::bad_param(
                format!("{field} does not apply to model {}", row.model),
                field,
            ));
        }
        if row.maximum(field).is_some_and(|maximum| *value > maximum) {
            return Err(ApiError::bad_param(
                format!("{field} exceeds the organization's limit for model {}", row.model),
                field,
            ));
        }
    }
    for (field, value) in changes {
        row.values.insert(field, value);
    }
    info!(project = %project_id, id = %id, "simulated OpenAI rate limit updated");
    Ok(Json(row.api_json()).into_response())
}

fn spend_limit_json(cents: i64, spent_usd: f64) -> serde_json::Value {
    let enforcing = spent_usd * 100.0 >= cents as f64;
    json!({
        "object": "project.spend_limit",
        "threshold_amount": cents,
        "currency": "USD",
        "interval": "month",
        "enforcement": {"status": if enforcing { "enforcing" } else { "inactive" }},
    })
}

fn no_spend_limit(project_id: &str) -> ApiError {
    ApiError::not_found(format!("Project {project_id} has no spend limit"))
}

pub(super) async fn get_spend_limit(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
) -> ApiResult {
    let now = sim.core.clock.now();
    let state = sim.state();
    require_admin(&state, &headers)?;
    let cents = project(&state, &project_id)?
        .spend_limit_cents
        .ok_or_else(|| no_spend_limit(&project_id))?;
    let spent = state.month_spend(&project_id, now);
    Ok(Json(spend_limit_json(cents, spent)).into_response())
}

pub(super) async fn set_spend_limit(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let cents = input::spend_limit(&body)?;
    project_mut(&mut state, &project_id)?.spend_limit_cents = Some(cents);
    info!(project = %project_id, cents, "simulated OpenAI spend limit set");
    let spent = state.month_spend(&project_id, now);
    Ok(Json(spend_limit_json(cents, spent)).into_response())
}

pub(super) async fn delete_spend_limit(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
) -> ApiResult {
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let project = project_mut(&mut state, &project_id)?;
    if project.spend_limit_cents.take().is_none() {
        return Err(no_spend_limit(&project_id));
    }
    Ok(Json(json!({"object": "project.spend_limit.deleted", "deleted": true})).into_response())
}
