//! Tests of the Together and OpenAI-compatible simulators through their HTTP surface.

use axum::{Router, http::StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::{
    faults::Fault,
    testing::{Reply, send},
};

fn sim(flavor: Flavor) -> ValidateOnlySim {
    ValidateOnlySim::new(flavor, [], Clock::new())
}

async fn models(router: &Router, token: Option<&str>) -> Reply {
    send(router, "GET", "/v1/models", token, None).await
}

/// Asserts the `{"error": {message, type, param, code}}` envelope and returns `(message, type, code)`.
fn error(reply: &Reply, status: StatusCode) -> (String, String, Value) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    let error = &reply.body["error"];
    assert_eq!(error["param"], Value::Null);
    (
        error["message"].as_str().unwrap().to_owned(),
        error["type"].as_str().unwrap().to_owned(),
        error["code"].clone(),
    )
}

#[tokio::test]
async fn together_lists_models_as_a_bare_array_to_a_valid_key() {
    let sim = sim(Flavor::Together);
    let key = sim.add_key("dashboard");
    let router = sim.router();
    let reply = models(&router, Some(&key.value)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let list = reply.body.as_array().unwrap();
    assert_eq!(list.len(), MODELS.len());
    assert_eq!(list[0]["object"], json!("model"));
    assert!(list[0]["pricing"]["input"].is_number());
    assert_eq!(list[2]["type"], json!("embedding"));
    let dedicated = send(
        &router,
        "GET",
        "/v1/models?dedicated=false",
        Some(&key.value),
        None,
    )
    .await;
    assert_eq!(dedicated.status, StatusCode::OK);
    let bad = send(
        &router,
        "GET",
        "/v1/models?dedicated=maybe",
        Some(&key.value),
        None,
    )
    .await;
    error(&bad, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_openai_compatible_server_lists_models_in_the_envelope() {
    let sim = sim(Flavor::OpenAiCompatible);
    let key = sim.add_key("k");
    assert!(key.value.starts_with("sk-"));
    let reply = models(&sim.router(), Some(&key.value)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["object"], json!("list"));
    assert_eq!(reply.body["data"].as_array().unwrap().len(), MODELS.len());
    assert!(reply.body["data"][0]["owned_by"].is_string());
}

#[tokio::test]
async fn unknown_missing_and_revoked_keys_get_401_in_each_flavors_body() {
    for flavor in [Flavor::Together, Flavor::OpenAiCompatible] {
        let sim = sim(flavor);
        let key = sim.add_key("k");
        let router = sim.router();
        let (_, kind, code) = error(
            &models(&router, Some("not-a-key-at-all-0000")).await,
            StatusCode::UNAUTHORIZED,
        );
        assert_eq!(
            (kind.as_str(), code),
            ("invalid_request_error", json!("invalid_api_key"))
        );
        error(&models(&router, None).await, StatusCode::UNAUTHORIZED);
        assert!(sim.revoke(&key.id));
        assert!(!sim.revoke(&key.id));
        error(&models(&router, Some(&key.value)).await, StatusCode::UNAUTHORIZED);
        assert!(sim.keys()[0].revoked);
    }
}

#[tokio::test]
async fn an_openai_style_401_quotes_only_a_masked_key() {
    let sim = sim(Flavor::OpenAiCompatible);
    let wrong = "sk-proj-abcdefghijklmnopqrstuvwxyz";
    let (message, _, _) = error(
        &models(&sim.router(), Some(wrong)).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(message, "Incorrect API key provided: sk-****wxyz.");
}

#[tokio::test]
async fn together_has_no_key_management_endpoints() {
    let sim = sim(Flavor::Together);
    let key = sim.add_key("k");
    let router = sim.router();
    for (method, path) in [
        ("GET", "/v1/api-keys"),
        ("POST", "/v1/api-keys"),
        ("GET", "/v1/keys/1"),
    ] {
        let reply = send(&router, method, path, Some(&key.value), None).await;
        error(&reply, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn together_sends_its_rate_limit_headers_on_every_answer() {
    let sim = sim(Flavor::Together);
    let key = sim.add_key("k");
    let router = sim.router();
    let ok = models(&router, Some(&key.value)).await;
    let denied = models(&router, Some("wrong-key-value")).await;
    for reply in [&ok, &denied] {
        for name in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-tokenlimit-limit",
            "x-tokenlimit-remaining",
        ] {
            assert!(reply.headers.contains_key(name), "{name} missing");
        }
    }
    assert_eq!(
        ok.headers["x-ratelimit-limit"],
        TOGETHER_REQUESTS_PER_SECOND.to_string()
    );
    let compat = ValidateOnlySim::new(Flavor::OpenAiCompatible, [], Clock::new());
    assert!(
        !models(&compat.router(), None)
            .await
            .headers
            .contains_key("x-ratelimit-limit")
    );
}

#[tokio::test]
async fn an_injected_rate_limit_is_togethers_dynamic_request_limit_with_retry_after() {
    let sim = sim(Flavor::Together);
    let key = sim.add_key("k");
    sim.inject(Fault::rate_limit(1, 2));
    let router = sim.router();
    let reply = models(&router, Some(&key.value)).await;
    let (_, kind, _) = error(&reply, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(kind, "dynamic_request_limited");
    assert_eq!(reply.headers["retry-after"], "2");
    assert!(reply.headers.contains_key("x-ratelimit-remaining"));
    assert_eq!(models(&router, Some(&key.value)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_overloaded_model_answers_503_then_recovers() {
    let sim = sim(Flavor::Together);
    let key = sim.add_key("k");
    let router = sim.router();
    let hook = send(&router, "POST", "/_sim/overload", None, Some(json!({"count": 2}))).await;
    assert_eq!(hook.status, StatusCode::NO_CONTENT);
    for _ in 0..2 {
        let (_, kind, _) = error(
            &models(&router, Some(&key.value)).await,
            StatusCode::SERVICE_UNAVAILABLE,
        );
        assert_eq!(kind, "server_error");
    }
    assert_eq!(models(&router, Some(&key.value)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn key_hooks_add_list_and_revoke_without_showing_values_again() {
    let sim = sim(Flavor::OpenAiCompatible);
    let router = sim.router();
    let added = send(
        &router,
        "POST",
        "/_sim/keys",
        None,
        Some(json!({"name": "gateway"})),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED);
    let value = added.body["value"].as_str().unwrap().to_owned();
    let id = added.body["id"].as_str().unwrap().to_owned();
    assert!(sim.accepts(&value));
    let chosen = send(
        &router,
        "POST",
        "/_sim/keys",
        None,
        Some(json!({"value": "sk-chosen"})),
    )
    .await;
    assert_eq!(chosen.body["value"], json!("sk-chosen"));
    assert!(sim.accepts("sk-chosen"));
    let listed = send(&router, "GET", "/_sim/keys", None, None).await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 2);
    assert!(!listed.body.to_string().contains(&value));
    let revoked = send(&router, "DELETE", &format!("/_sim/keys/{id}"), None, None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert!(!sim.accepts(&value));
    let again = send(&router, "DELETE", &format!("/_sim/keys/{id}"), None, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(sim.requests().is_empty(), "hooks are not API requests");
}

#[tokio::test]
async fn initial_keys_are_accepted_and_the_log_holds_no_values() {
    let sim = ValidateOnlySim::new(Flavor::Together, ["tgp_v1_initial_key".to_owned()], Clock::new());
    let router = sim.router();
    assert_eq!(
        models(&router, Some("tgp_v1_initial_key")).await.status,
        StatusCode::OK
    );
    let log = send(&router, "GET", "/_sim/requests", None, None).await;
    assert_eq!(log.body["requests"].as_array().unwrap().len(), 1);
    assert!(!log.body.to_string().contains("tgp_v1_initial_key"));
}

#[tokio::test]
async fn a_spawned_simulator_serves_under_v1() {
    let sim = sim(Flavor::Together);
    let running = sim.spawn().await.unwrap();
    assert_eq!(running.base_url, format!("http://{}/v1", running.addr));
}
