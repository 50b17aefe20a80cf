//! Tests of the OpenRouter simulator through its HTTP surface, split by concern; this module holds
//! the shared helpers.

mod auth;
mod faults;
mod keys;
mod usage;

use axum::{Router, http::StatusCode};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::OpenRouterSim;
use crate::testing::{Reply, send};
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
