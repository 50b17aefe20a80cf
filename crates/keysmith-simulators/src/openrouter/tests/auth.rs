//! Authentication and the management/ordinary split, including `GET /key`.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn a_request_without_authorization_gets_401_missing_authentication_header() {
    let router = sim().router();
    for path in ["/api/v1/keys", "/api/v1/key", "/api/v1/credits"] {
        let reply = send(&router, "GET", path, None, None).await;
        assert_eq!(
            error_message(&reply, StatusCode::UNAUTHORIZED),
            "Missing Authentication header"
        );
    }
}

#[tokio::test]
async fn an_unknown_key_gets_401() {
    let router = sim().router();
    let reply = send(&router, "GET", "/api/v1/keys", Some("sk-or-v1-nope"), None).await;
    assert_eq!(error_message(&reply, StatusCode::UNAUTHORIZED), "User not found.");
    let reply = send(&router, "GET", "/api/v1/key", Some("sk-or-v1-nope"), None).await;
    error_message(&reply, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_ordinary_key_gets_403_on_every_management_endpoint() {
    let router = sim().router();
    let (hash, value) = create_named(&router, "worker").await;
    let calls = [
        ("GET", "/api/v1/keys".to_owned(), None),
        ("POST", "/api/v1/keys".to_owned(), Some(json!({"name": "x"}))),
        ("GET", format!("/api/v1/keys/{hash}"), None),
        (
            "PATCH",
            format!("/api/v1/keys/{hash}"),
            Some(json!({"disabled": true})),
        ),
        ("DELETE", format!("/api/v1/keys/{hash}"), None),
        ("GET", "/api/v1/credits".to_owned(), None),
        ("GET", "/api/v1/activity".to_owned(), None),
    ];
    for (method, path, body) in calls {
        let reply = send(&router, method, &path, Some(&value), body).await;
        let message = error_message(&reply, StatusCode::FORBIDDEN);
        assert_eq!(
            message, "Only management keys can perform this operation",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn get_key_describes_a_management_key() {
    let router = sim().router();
    let reply = send(&router, "GET", "/api/v1/key", Some(MANAGEMENT), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let data = &reply.body["data"];
    assert_eq!(data["is_management_key"], json!(true));
    assert_eq!(data["is_provisioning_key"], json!(true));
    assert_eq!(data["is_free_tier"], json!(false));
    assert_eq!(data["limit"], Value::Null);
    assert_eq!(data["limit_remaining"], Value::Null);
    assert_eq!(data["usage"], json!(0.0));
    assert!(data["rate_limit"].is_object());
    assert!(data.get("hash").is_none() && data.get("name").is_none());
}

#[tokio::test]
async fn get_key_describes_an_ordinary_key_with_its_limit_and_usage() {
    let sim = sim();
    let router = sim.router();
    let (hash, value) = create(
        &router,
        json!({"name": "worker", "limit": 10, "limit_reset": "monthly"}),
    )
    .await;
    assert!(sim.add_spend(&hash, 2.5, false));
    let reply = send(&router, "GET", "/api/v1/key", Some(&value), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let data = &reply.body["data"];
    assert_eq!(data["is_management_key"], json!(false));
    assert_eq!(data["is_provisioning_key"], json!(false));
    assert_eq!(
        data["label"],
        json!(format!(
            "sk-or-v1-{}...{}",
            &value[9..12],
            &value[value.len() - 4..]
        ))
    );
    assert_eq!(data["limit"], json!(10.0));
    assert_eq!(data["limit_remaining"], json!(7.5));
    assert_eq!(data["limit_reset"], json!("monthly"));
    assert_eq!(data["usage"], json!(2.5));
    assert_eq!(data["usage_monthly"], json!(2.5));
    assert_eq!(data["byok_usage"], json!(0.0));
    assert_eq!(data["expires_at"], Value::Null);
    for absent in ["hash", "name", "disabled", "created_at", "workspace_id"] {
        assert!(data.get(absent).is_none(), "{absent} must not be in CurrentKey");
    }
}

#[tokio::test]
async fn an_account_without_credits_is_free_tier() {
    let sim = sim();
    sim.set_total_credits(0.0);
    let reply = send(&sim.router(), "GET", "/api/v1/key", Some(MANAGEMENT), None).await;
    assert_eq!(reply.body["data"]["is_free_tier"], json!(true));
}

#[tokio::test]
async fn a_disabled_key_gets_401_until_it_is_enabled_again() {
    let router = sim().router();
    let (hash, value) = create_named(&router, "worker").await;
    manage(
        &router,
        "PATCH",
        &format!("/keys/{hash}"),
        Some(json!({"disabled": true})),
    )
    .await;
    let reply = send(&router, "GET", "/api/v1/key", Some(&value), None).await;
    error_message(&reply, StatusCode::UNAUTHORIZED);
    manage(
        &router,
        "PATCH",
        &format!("/keys/{hash}"),
        Some(json!({"disabled": false})),
    )
    .await;
    let reply = send(&router, "GET", "/api/v1/key", Some(&value), None).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_deleted_key_no_longer_authenticates() {
    let router = sim().router();
    let (hash, value) = create_named(&router, "worker").await;
    let reply = manage(&router, "DELETE", &format!("/keys/{hash}"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&router, "GET", "/api/v1/key", Some(&value), None).await;
    assert_eq!(error_message(&reply, StatusCode::UNAUTHORIZED), "User not found.");
}

#[tokio::test]
async fn an_expired_key_gets_401_on_get_key_but_is_still_listed() {
    let sim = sim_at("2030-01-01T11:59:00Z");
    let router = sim.router();
    let (hash, value) = create(
        &router,
        json!({"name": "short-lived", "expires_at": "2030-01-01T12:00:00Z"}),
    )
    .await;
    let reply = send(&router, "GET", "/api/v1/key", Some(&value), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["data"]["expires_at"], json!("2030-01-01T12:00:00Z"));

    sim.clock().advance(Duration::from_secs(61));
    let reply = send(&router, "GET", "/api/v1/key", Some(&value), None).await;
    error_message(&reply, StatusCode::UNAUTHORIZED);
    let listed = manage(&router, "GET", "/keys", None).await;
    assert_eq!(listed.body["data"][0]["hash"], json!(hash));
    assert!(sim.key(&hash).unwrap().expired);
}

#[tokio::test]
async fn an_imported_key_authenticates_and_is_listed_under_its_hash() {
    let sim = sim();
    let value = format!("sk-or-v1-{}", "ab".repeat(32));
    let hash = sim.add_ordinary_key(&value);
    assert_eq!(hash, crate::sha256_hex(&value));
    assert_eq!(sim.add_ordinary_key(&value), hash, "importing twice is a no-op");
    let router = sim.router();
    let reply = send(&router, "GET", "/api/v1/key", Some(&value), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let listed = manage(&router, "GET", "/keys", None).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["data"][0]["name"], json!("imported"));
}

#[tokio::test]
async fn management_keys_can_be_added_later() {
    let sim = sim();
    sim.add_management_key("sk-or-v1-second-management");
    let reply = send(
        &sim.router(),
        "GET",
        "/api/v1/keys",
        Some("sk-or-v1-second-management"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}
