//! The simulated Administration API under `/v1/organization`: admin-key authentication, OpenAI's
//! error body, cursor pagination, projects, service accounts and project keys, plus the inference
//! `GET /v1/models` that imported keys are checked against. Rate limits and the spend limit live in
//! `limits.rs`, the usage and costs reports in `reports.rs`.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, Method},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use tracing::info;

use super::{
    OpenAiSim,
    input::{AccountPatch, NewAccount, NewProject, ProjectPatch},
    limits, reports,
    state::{Account, Owner, Project, ProjectKey, State as Org, new_id, new_service_account_key},
};
use crate::{
    api_layer::{self, bearer_token},
    sha256_hex,
};

/// The API base path.
pub const BASE_PATH: &str = "/v1";

/// Objects per list page when `limit` is left out (rate limits default to 100 instead).
pub const DEFAULT_LIST_LIMIT: usize = 20;

/// The largest `limit` a list accepts.
pub const MAX_LIST_LIMIT: usize = 100;

/// The API routes behind the fault and request-log middleware.
pub(super) fn routes(sim: OpenAiSim) -> Router {
    let layer = sim.core.api_layer(error, is_create);
    const PROJECT: &str = "/v1/organization/projects/{project}";
    Router::new()
        .route("/v1/models", get(models))
        .route(
            "/v1/organization/projects",
            get(list_projects).post(create_project),
        )
        .route(PROJECT, get(get_project).post(modify_project))
        .route(&format!("{PROJECT}/archive"), post(archive_project))
        .route(
            &format!("{PROJECT}/service_accounts"),
            get(list_accounts).post(create_account),
        )
        .route(
            &format!("{PROJECT}/service_accounts/{{id}}"),
            get(get_account).post(update_account).delete(delete_account),
        )
        .route(&format!("{PROJECT}/api_keys"), get(list_keys))
        .route(
            &format!("{PROJECT}/api_keys/{{id}}"),
            get(get_key).delete(delete_key),
        )
        .route(&format!("{PROJECT}/rate_limits"), get(limits::list_rate_limits))
        .route(
            &format!("{PROJECT}/rate_limits/{{id}}"),
            post(limits::update_rate_limit),
        )
        .route(
            &format!("{PROJECT}/spend_limit"),
            get(limits::get_spend_limit)
                .post(limits::set_spend_limit)
                .delete(limits::delete_spend_limit),
        )
        .route("/v1/organization/usage/completions", get(reports::completions))
        .route("/v1/organization/costs", get(reports::costs))
        .layer(from_fn_with_state(layer, api_layer::guard))
        .with_state(sim)
}

/// Only creating a service account mints a key, so it is the one request a dropped connection hits.
fn is_create(method: &Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    method == Method::POST
        && path.starts_with("/v1/organization/projects/")
        && path.ends_with("/service_accounts")
        && path.matches('/').count() == 5
}

pub(super) use super::errors::{ApiError, error};

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Admits admin keys only. OpenAI answers 401 both for unknown keys and for project keys on
/// `/organization/*` (which status a project key gets is UNCONFIRMED; 401 is the contract's choice).
pub(super) fn require_admin(state: &Org, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = bearer_token(headers) else {
        return Err(ApiError {
            code: None,
            ..ApiError::unauthorized(
                "You didn't provide an API key. You need to provide your API key in an Authorization header \
                 using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        });
    };
    let hash = sha256_hex(token);
    if state.admin_keys.contains(&hash) {
        return Ok(());
    }
    if state.live_key_by_hash(&hash).is_some() {
        return Err(ApiError::unauthorized(
            "This endpoint requires an admin API key (sk-admin-...); project API keys cannot manage the organization.",
        ));
    }
    Err(incorrect_key(token))
}

/// OpenAI's answer to an unknown key, which echoes a masked form of it.
fn incorrect_key(token: &str) -> ApiError {
    let chars: Vec<char> = token.chars().collect();
    let shown = if chars.len() > 12 {
        let head: String = chars[..6].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}*****{tail}")
    } else {
        "*****".to_owned()
    };
    ApiError::unauthorized(format!(
        "Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys."
    ))
}

/// `limit`, `after` and `before` of a cursor-paginated list.
pub(super) struct Cursor {
    limit: usize,
    after: Option<String>,
    before: Option<String>,
}

impl Cursor {
    pub fn parse(query: &HashMap<String, String>, default_limit: usize) -> Result<Self, ApiError> {
        let limit = match query.get("limit") {
            None => default_limit,
            Some(text) => match text.parse::<usize>() {
                Ok(limit) if (1..=MAX_LIST_LIMIT).contains(&limit) => limit,
                _ => {
                    return Err(ApiError::bad_param(
                        format!("limit must be an integer between 1 and {MAX_LIST_LIMIT}"),
                        "limit",
                    ));
                }
            },
        };
        Ok(Self {
            limit,
            after: query.get("after").cloned(),
            before: query.get("before").cloned(),
        })
    }

    /// One page of `items` (`(id, shown, object)` in list order; hidden ones still anchor cursors):
    /// `{object:"list", data, first_id, last_id, has_more}`.
    pub fn page(&self, items: Vec<(String, bool, Value)>) -> ApiResult {
        let position = |cursor: &str, param: &str| {
            items
                .iter()
                .position(|(id, _, _)| id == cursor)
                .ok_or_else(|| ApiError::bad_param(format!("No object with id {cursor:?}"), param))
        };
        let start = match &self.after {
            Some(after) => position(after, "after")? + 1,
            None => 0,
        };
        let end = match &self.before {
            Some(before) => position(before, "before")?,
            None => items.len(),
        };
        let shown: Vec<&(String, bool, Value)> = items
            .get(start..end.max(start))
            .unwrap_or_default()
            .iter()
            .filter(|(_, shown, _)| *shown)
            .collect();
        // `before` alone pages backwards: the objects just before the cursor.
        let backwards = self.before.is_some() && self.after.is_none();
        let (page, has_more) = if backwards {
            let skip = shown.len().saturating_sub(self.limit);
            (&shown[skip..], skip > 0)
        } else {
            let take = shown.len().min(self.limit);
            (&shown[..take], shown.len() > take)
        };
        Ok(Json(json!({
            "object": "list",
            "data": page.iter().map(|(_, _, object)| object).collect::<Vec<_>>(),
            "first_id": page.first().map(|(id, _, _)| id),
            "last_id": page.last().map(|(id, _, _)| id),
            "has_more": has_more,
        }))
        .into_response())
    }
}

pub(super) fn parse_query(query: QueryParams) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|_| ApiError::bad_request("The query string is malformed."))
}

pub(super) fn project<'a>(state: &'a Org, id: &str) -> Result<&'a Project, ApiError> {
    state
        .project(id)
        .ok_or_else(|| ApiError::not_found(format!("The project {id} was not found")))
}

pub(super) fn project_mut<'a>(state: &'a mut Org, id: &str) -> Result<&'a mut Project, ApiError> {
    state
        .project_mut(id)
        .ok_or_else(|| ApiError::not_found(format!("The project {id} was not found")))
}

/// A project that service-account calls may use: archived projects have none.
fn active_project_mut<'a>(state: &'a mut Org, id: &str) -> Result<&'a mut Project, ApiError> {
    let project = project_mut(state, id)?;
    if project.is_archived() {
        return Err(ApiError::bad_request(format!(
            "Project {id} is archived; archived projects have no service accounts."
        )));
    }
    Ok(project)
}

fn json(value: Value) -> Response {
    Json(value).into_response()
}

async fn list_projects(State(sim): State<OpenAiSim>, headers: HeaderMap, query: QueryParams) -> ApiResult {
    let state = sim.state();
    require_admin(&state, &headers)?;
    let query = parse_query(query)?;
    let cursor = Cursor::parse(&query, DEFAULT_LIST_LIMIT)?;
    let include_archived = match query.get("include_archived").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_param(
                "include_archived must be true or false",
                "include_archived",
            ));
        }
    };
    cursor.page(
        state
            .projects
            .iter()
            .map(|p| (p.id.clone(), include_archived || !p.is_archived(), p.api_json()))
            .collect(),
    )
}

async fn create_project(State(sim): State<OpenAiSim>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let fields = NewProject::parse(&body)?;
    let mut project = Project::new(new_id("proj_", 24), fields.name, now);
    project.residency = fields.residency;
    project.external_key_id = fields.external_key_id;
    let body = project.api_json();
    state.projects.push(project);
    Ok(json(body))
}

async fn get_project(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
) -> ApiResult {
    let state = sim.state();
    require_admin(&state, &headers)?;
    Ok(json(project(&state, &project_id)?.api_json()))
}

async fn modify_project(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let project = project_mut(&mut state, &project_id)?;
    if project.is_archived() {
        return Err(ApiError::bad_request("Archived projects cannot be updated."));
    }
    let patch = ProjectPatch::parse(&body)?;
    if let Some(name) = patch.name {
        project.name = name;
    }
    if let Some(external_key_id) = patch.external_key_id {
        project.external_key_id = external_key_id;
    }
    Ok(json(project.api_json()))
}

async fn archive_project(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let project = project_mut(&mut state, &project_id)?;
    project.archived_at.get_or_insert(now);
    Ok(json(project.api_json()))
}

async fn list_accounts(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    query: QueryParams,
) -> ApiResult {
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let cursor = Cursor::parse(&parse_query(query)?, DEFAULT_LIST_LIMIT)?;
    let project = active_project_mut(&mut state, &project_id)?;
    cursor.page(
        project
            .accounts
            .iter()
            .map(|a| (a.id.clone(), a.is_live(), a.api_json()))
            .collect(),
    )
}

/// Creates the service account and, unless `create_service_account_only`, its key, whose value this
/// answer shows for the first and last time.
async fn create_account(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let fields = NewAccount::parse(&body)?;
    let project = active_project_mut(&mut state, &project_id)?;
    let account = Account {
        id: new_id("svc_acct_", 24),
        name: fields.name,
        role: if fields.create_service_account_only {
            "none"
        } else {
            "member"
        }
        .to_owned(),
        created_at: now,
        deleted_at: None,
    };
    let mut body = account.api_json();
    body["api_key"] = Value::Null;
    if !fields.create_service_account_only {
        let value = new_service_account_key();
        let key = ProjectKey::new(
            &value,
            "Secret Key",
            Owner::ServiceAccount(account.id.clone()),
            now,
        );
        body["api_key"] = json!({
            "object": "organization.project.service_account.api_key",
            "value": value,
            "name": key.name,
            "created_at": key.created_at.as_second(),
            "id": key.id,
        });
        project.keys.push(key);
    }
    info!(project = %project_id, id = %account.id, name = %account.name, "simulated OpenAI service account created");
    project.accounts.push(account);
    Ok(json(body))
}

fn live_account<'a>(project: &'a mut Project, id: &str) -> Result<&'a mut Account, ApiError> {
    let project_id = project.id.clone();
    project
        .live_account_mut(id)
        .ok_or_else(|| ApiError::not_found(format!("Service account {id} not found in project {project_id}")))
}

async fn get_account(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path((project_id, id)): Path<(String, String)>,
) -> ApiResult {
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let project = active_project_mut(&mut state, &project_id)?;
    Ok(json(live_account(project, &id)?.api_json()))
}

async fn update_account(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path((project_id, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let project = active_project_mut(&mut state, &project_id)?;
    let account = live_account(project, &id)?;
    let patch = AccountPatch::parse(&body)?;
    if let Some(name) = patch.name {
        account.name = name;
    }
    if let Some(role) = patch.role {
        account.role = role;
    }
    info!(id = %account.id, "simulated OpenAI service account updated");
    Ok(json(account.api_json()))
}

/// Deleting a service account also deletes its keys: that is how its key is revoked.
async fn delete_account(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path((project_id, id)): Path<(String, String)>,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let project = active_project_mut(&mut state, &project_id)?;
    live_account(project, &id)?;
    project.delete_account(&id, now);
    info!(id = %id, "simulated OpenAI service account deleted");
    Ok(json(
        json!({"object": "organization.project.service_account.deleted", "id": id, "deleted": true}),
    ))
}

async fn list_keys(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    query: QueryParams,
) -> ApiResult {
    let state = sim.state();
    require_admin(&state, &headers)?;
    let query = parse_query(query)?;
    let cursor = Cursor::parse(&query, DEFAULT_LIST_LIMIT)?;
    // Every simulated key's owner still has project access, so `inactive` lists nothing.
    let show_active = match query.get("owner_project_access").map(String::as_str) {
        None | Some("active" | "any") => true,
        Some("inactive") => false,
        Some(_) => {
            return Err(ApiError::bad_param(
                "owner_project_access must be active, inactive or any",
                "owner_project_access",
            ));
        }
    };
    let project = project(&state, &project_id)?;
    cursor.page(
        project
            .keys
            .iter()
            .map(|k| {
                (
                    k.id.clone(),
                    show_active && k.is_live(),
                    k.api_json(&project.accounts),
                )
            })
            .collect(),
    )
}

fn live_key<'a>(project: &'a Project, id: &str) -> Result<&'a ProjectKey, ApiError> {
    project
        .keys
        .iter()
        .find(|key| key.id == id && key.is_live())
        .ok_or_else(|| ApiError::not_found(format!("API key {id} not found in project {}", project.id)))
}

async fn get_key(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path((project_id, id)): Path<(String, String)>,
) -> ApiResult {
    let state = sim.state();
    require_admin(&state, &headers)?;
    let project = project(&state, &project_id)?;
    Ok(json(live_key(project, &id)?.api_json(&project.accounts)))
}

/// A service account's key cannot be deleted on its own: the service account must go instead.
async fn delete_key(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    Path((project_id, id)): Path<(String, String)>,
) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state();
    require_admin(&state, &headers)?;
    let project = project_mut(&mut state, &project_id)?;
    if live_key(project, &id)?.service_account().is_some() {
        return Err(ApiError::bad_request(
            "API keys owned by a service account cannot be deleted; delete the service account instead.",
        ));
    }
    if let Some(key) = project.keys.iter_mut().find(|key| key.id == id) {
        key.deleted_at = Some(now);
    }
    Ok(json(
        json!({"object": "organization.project.api_key.deleted", "id": id, "deleted": true}),
    ))
}

/// Inference `GET /v1/models`: any live project key of an active project; admin keys cannot call
/// models.
async fn models(State(sim): State<OpenAiSim>, headers: HeaderMap) -> ApiResult {
    let now = sim.core.clock.now();
    let mut state = sim.state();
    let Some(token) = bearer_token(&headers) else {
        return Err(ApiError::unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization header \
             using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        ));
    };
    let Some((p, k)) = state.live_key_by_hash(&sha256_hex(token)) else {
        return Err(incorrect_key(token));
    };
    let project = &mut state.projects[p];
    if project.is_archived() {
        return Err(incorrect_key(token));
    }
    project.keys[k].last_used_at = Some(now);
    let created = project.created_at.as_second();
    let data: Vec<Value> = project
        .rate_limits
        .iter()
        .map(|row| json!({"id": row.model, "object": "model", "created": created, "owned_by": "system"}))
        .collect();
    Ok(json(json!({"object": "list", "data": data})))
}
