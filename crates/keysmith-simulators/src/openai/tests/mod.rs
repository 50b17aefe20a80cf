//! Tests of the OpenAI simulator through its HTTP surface, split by concern; this module holds the
//! shared helpers.

mod accounts;
mod auth;
mod faults;
mod limits;
mod reports;

use axum::{Router, http::StatusCode};
use serde_json::{Value, json};

use super::{DEFAULT_PROJECT_ID, OpenAiSim};
use crate::testing::{Reply, send};
use keysmith_core::clock::Clock;

/// The admin key every test simulator starts with.
const ADMIN: &str = "sk-admin-simulator-tests-0000000000000000000000000000";

fn sim() -> OpenAiSim {
    OpenAiSim::new([ADMIN.to_owned()], Clock::new())
}

/// Calls the API under `/v1` as the admin key.
async fn admin(router: &Router, method: &str, path: &str, body: Option<Value>) -> Reply {
    send(router, method, &format!("/v1{path}"), Some(ADMIN), body).await
}

/// `/organization/projects/{default project}` followed by `rest`.
fn project_path(rest: &str) -> String {
    format!("/organization/projects/{DEFAULT_PROJECT_ID}{rest}")
}

/// Creates a service account in the default project; returns `(account id, key id, key value)`.
async fn create_account(router: &Router, name: &str) -> (String, String, String) {
    let reply = admin(
        router,
        "POST",
        &project_path("/service_accounts"),
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let key = &reply.body["api_key"];
    (
        reply.body["id"].as_str().unwrap().to_owned(),
        key["id"].as_str().unwrap().to_owned(),
        key["value"].as_str().unwrap().to_owned(),
    )
}

/// Asserts OpenAI's ErrorResponse shape and returns `(message, type, param, code)`.
fn error_of(reply: &Reply, status: StatusCode) -> (String, String, Value, Value) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    let error = reply.body["error"].as_object().unwrap();
    assert_eq!(error.len(), 4, "{error:?}");
    (
        error["message"].as_str().unwrap().to_owned(),
        error["type"].as_str().unwrap().to_owned(),
        error["param"].clone(),
        error["code"].clone(),
    )
}
