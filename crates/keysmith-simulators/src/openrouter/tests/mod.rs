//! Tests of the OpenRouter simulator through its HTTP surface, split by concern; this module holds
//! the shared helpers.

mod auth;
mod faults;
mod keys;
mod usage;

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode},
};
use http_body_util::BodyExt;
use jiff::Timestamp;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::OpenRouterSim;
use keysmith_core::clock::Clock;

/// The management key every test simulator starts with.
const MANAGEMENT: &str = "sk-or-v1-management-key-for-tests-0000000000000000000000000000000000";

fn sim() -> OpenRouterSim {
    OpenRouterSim::new([MANAGEMENT.to_owned()], Clock::new())
}

fn sim_at(now: &str) -> OpenRouterSim {
    OpenRouterSim::new([MANAGEMENT.to_owned()], Clock::starting_at(ts(now)))
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
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

/// Calls the API as the management key.
async fn manage(router: &Router, method: &str, path: &str, body: Option<Value>) -> Reply {
    send(router, method, &format!("/api/v1{path}"), Some(MANAGEMENT), body).await
}

/// Creates a key named `name` through the API; returns `(hash, value)`.
async fn create(router: &Router, body: Value) -> (String, String) {
    let reply = manage(router, "POST", "/keys", Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let hash = reply.body["data"]["hash"].as_str().unwrap().to_owned();
    let value = reply.body["key"].as_str().unwrap().to_owned();
    (hash, value)
}

async fn create_named(router: &Router, name: &str) -> (String, String) {
    create(router, json!({ "name": name })).await
}

/// Asserts OpenRouter's error body shape and returns its message.
fn error_message(reply: &Reply, status: StatusCode) -> String {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.body["error"]["code"], json!(status.as_u16()));
    assert_eq!(reply.body["error"]["metadata"], Value::Null);
    assert!(reply.body.as_object().unwrap().contains_key("user_id"));
    reply.body["error"]["message"].as_str().unwrap().to_owned()
}
