//! Admin-key authentication and the inference `GET /v1/models`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn a_request_without_a_key_gets_401_in_the_error_response_shape() {
    let router = sim().router();
    let reply = send(&router, "GET", "/v1/organization/projects", None, None).await;
    let (message, kind, param, code) = error_of(&reply, StatusCode::UNAUTHORIZED);
    assert!(message.starts_with("You didn't provide an API key"), "{message}");
    assert_eq!(
        (kind.as_str(), param, code),
        ("invalid_request_error", Value::Null, Value::Null)
    );
}

#[tokio::test]
async fn an_unknown_key_gets_401_invalid_api_key_with_only_a_masked_echo() {
    let router = sim().router();
    let token = "sk-admin-unknown-0123456789abcdef0123456789";
    let reply = send(&router, "GET", "/v1/organization/projects", Some(token), None).await;
    let (message, kind, _, code) = error_of(&reply, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (kind.as_str(), code),
        ("invalid_request_error", json!("invalid_api_key"))
    );
    assert!(message.contains("sk-adm*****6789"), "{message}");
    assert!(!message.contains(token));
}

#[tokio::test]
async fn a_project_key_is_refused_on_every_admin_endpoint() {
    let router = sim().router();
    let (account, key, value) = create_account(&router, "bot").await;
    let paths = [
        ("GET", "/v1/organization/projects".to_owned()),
        ("GET", format!("/v1{}", project_path(""))),
        ("GET", format!("/v1{}", project_path("/service_accounts"))),
        (
            "DELETE",
            format!("/v1{}", project_path(&format!("/service_accounts/{account}"))),
        ),
        ("GET", format!("/v1{}", project_path(&format!("/api_keys/{key}")))),
        ("GET", format!("/v1{}", project_path("/rate_limits"))),
        ("GET", "/v1/organization/costs?start_time=0".to_owned()),
        (
            "GET",
            "/v1/organization/usage/completions?start_time=0".to_owned(),
        ),
    ];
    for (method, path) in paths {
        let reply = send(&router, method, &path, Some(&value), None).await;
        let (message, _, _, code) = error_of(&reply, StatusCode::UNAUTHORIZED);
        assert_eq!(code, json!("invalid_api_key"), "{method} {path}");
        assert!(message.contains("admin API key"), "{message}");
    }
}

#[tokio::test]
async fn models_answers_project_keys_and_refuses_admin_deleted_and_unknown_keys() {
    let sim = sim();
    let router = sim.router();
    let (account, key, value) = create_account(&router, "bot").await;
    let reply = send(&router, "GET", "/v1/models", Some(&value), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["object"], "list");
    assert!(
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-4o-mini")
    );
    let project = sim.project(DEFAULT_PROJECT_ID).unwrap();
    assert!(
        project
            .api_keys
            .iter()
            .any(|k| k.id == key && k.last_used_at.is_some())
    );

    for token in [ADMIN, "sk-proj-nope"] {
        let reply = send(&router, "GET", "/v1/models", Some(token), None).await;
        error_of(&reply, StatusCode::UNAUTHORIZED);
    }
    admin(
        &router,
        "DELETE",
        &project_path(&format!("/service_accounts/{account}")),
        None,
    )
    .await;
    let reply = send(&router, "GET", "/v1/models", Some(&value), None).await;
    error_of(&reply, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_user_key_registered_through_the_hook_calls_models() {
    let sim = sim();
    let router = sim.router();
    let reply = send(
        &router,
        "POST",
        &format!("/_sim/projects/{DEFAULT_PROJECT_ID}/keys"),
        None,
        Some(json!({"value": "sk-proj-user-key-0123456789"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let models = send(
        &router,
        "GET",
        "/v1/models",
        Some("sk-proj-user-key-0123456789"),
        None,
    )
    .await;
    assert_eq!(models.status, StatusCode::OK);
    let got = admin(&router, "GET", &project_path(&format!("/api_keys/{id}")), None).await;
    assert_eq!(got.body["owner"]["type"], "user");
    assert_eq!(got.body["redacted_value"], "sk-proj-use...789");
}

#[tokio::test]
async fn an_admin_key_added_through_the_hook_is_accepted() {
    let router = sim().router();
    let other = "sk-admin-second-000000000000000000000000";
    let reply = send(
        &router,
        "POST",
        "/_sim/admin-keys",
        None,
        Some(json!({"value": other})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = send(&router, "GET", "/v1/organization/projects", Some(other), None).await;
    assert_eq!(reply.status, StatusCode::OK);
}
