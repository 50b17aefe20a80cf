//! Tests of the OpenAI simulator through its HTTP surface, split by concern; this module holds the
//! shared helpers.

mod accounts;
mod auth;
mod faults;
mod limits;
mod reports;

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode},
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{DEFAULT_PROJECT_ID, OpenAiSim};
use keysmith_core::clock::Clock;

/// The admin key every test simulator starts with.
const ADMIN: &str = "sk-admin-simulator-tests-0000000000000000000000000000";

fn sim() -> OpenAiSim {
    OpenAiSim::new([ADMIN.to_owned()], Clock::new())
}

/// A response, with the body parsed as JSON (`Null` when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(router: &Router, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let response = router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply {
        status,
        headers,
        body,
    }
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
