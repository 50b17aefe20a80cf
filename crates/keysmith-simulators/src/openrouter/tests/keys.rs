//! The keys endpoints: create, list, get, update and delete.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use axum::{body::Body, http::Request};

use super::*;
use crate::{openrouter::DEFAULT_WORKSPACE, sha256_hex, testing::exchange};

#[tokio::test]
async fn creating_a_key_answers_201_and_reveals_the_value_only_in_that_response() {
    let sim = sim();
    let router = sim.router();
    let reply = manage(&router, "POST", "/keys", Some(json!({"name": "tenant-a"}))).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let value = reply.body["key"].as_str().unwrap().to_owned();
    let hash = reply.body["data"]["hash"].as_str().unwrap().to_owned();
    assert!(reply.body["data"].get("key").is_none());

    let got = manage(&router, "GET", &format!("/keys/{hash}"), None).await;
    let listed = manage(&router, "GET", "/keys", None).await;
    let inspected = send(&router, "GET", "/_sim/keys", None, None).await;
    let requests = send(&router, "GET", "/_sim/requests", None, None).await;
    for body in [&got.body, &listed.body, &inspected.body, &requests.body] {
        assert!(!body.to_string().contains(&value), "the value leaked into {body}");
    }
    assert!(!format!("{:?}", sim.keys()).contains(&value));
}

#[tokio::test]
async fn the_key_value_has_openrouters_format_and_the_hash_is_its_sha256() {
    let router = sim().router();
    let reply = manage(&router, "POST", "/keys", Some(json!({"name": "tenant-a"}))).await;
    let value = reply.body["key"].as_str().unwrap();
    let secret = value.strip_prefix("sk-or-v1-").unwrap();
    assert_eq!(secret.len(), 64);
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let data = &reply.body["data"];
    assert_eq!(data["hash"], json!(sha256_hex(value)));
    assert_eq!(
        data["label"],
        json!(format!("sk-or-v1-{}...{}", &secret[..3], &secret[60..]))
    );
}

#[tokio::test]
async fn the_key_object_has_every_documented_field() {
    let sim = sim_at("2025-08-24T10:30:00Z");
    let router = sim.router();
    let body = json!({
        "name": "tenant-a", "limit": 50, "limit_reset": "monthly", "include_byok_in_limit": true,
        "expires_at": "2026-01-01T00:00:00Z", "creator_user_id": "user_2dHF",
    });
    let reply = manage(&router, "POST", "/keys", Some(body)).await;
    let data = reply.body["data"].as_object().unwrap();
    let mut fields: Vec<&str> = data.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "byok_usage",
            "byok_usage_daily",
            "byok_usage_monthly",
            "byok_usage_weekly",
            "created_at",
            "creator_user_id",
            "disabled",
            "expires_at",
            "hash",
            "include_byok_in_limit",
            "label",
            "limit",
            "limit_remaining",
            "limit_reset",
            "name",
            "updated_at",
            "usage",
            "usage_daily",
            "usage_monthly",
            "usage_weekly",
            "workspace_id",
        ]
    );
    assert_eq!(data["name"], json!("tenant-a"));
    assert_eq!(data["disabled"], json!(false));
    assert_eq!(data["limit"], json!(50.0));
    assert_eq!(data["limit_remaining"], json!(50.0));
    assert_eq!(data["include_byok_in_limit"], json!(true));
    assert_eq!(data["usage_weekly"], json!(0.0));
    assert_eq!(data["created_at"], json!("2025-08-24T10:30:00Z"));
    assert_eq!(data["updated_at"], Value::Null);
    assert_eq!(data["expires_at"], json!("2026-01-01T00:00:00Z"));
    assert_eq!(data["creator_user_id"], json!("user_2dHF"));
    assert_eq!(data["workspace_id"], json!(DEFAULT_WORKSPACE));
}

#[tokio::test]
async fn each_invalid_create_body_gets_400() {
    let router = sim().router();
    let cases = [
        json!({}),
        json!({"name": ""}),
        json!({"name": null}),
        json!({"name": 7}),
        json!({"name": "a", "limit_reset": "yearly"}),
        json!({"name": "a", "limit_reset": 1}),
        json!({"name": "a", "expires_at": "2030-01-01T02:00:00+02:00"}),
        json!({"name": "a", "expires_at": "2030-01-01T00:00:00"}),
        json!({"name": "a", "expires_at": "tomorrow"}),
        json!({"name": "a", "limit": -1}),
        json!({"name": "a", "limit": "10"}),
        json!({"name": "a", "include_byok_in_limit": "yes"}),
        json!({"name": "a", "workspace_id": "default"}),
        json!(["name"]),
    ];
    for body in cases {
        let reply = manage(&router, "POST", "/keys", Some(body.clone())).await;
        let message = error_message(&reply, StatusCode::BAD_REQUEST);
        assert!(
            message.starts_with("Invalid request parameters"),
            "{body}: {message}"
        );
    }
    let raw = send_raw_body(&router, "not json").await;
    error_message(&raw, StatusCode::BAD_REQUEST);
    let listed = manage(&router, "GET", "/keys", None).await;
    assert_eq!(listed.body["data"], json!([]), "rejected bodies create nothing");
}

async fn send_raw_body(router: &Router, body: &'static str) -> Reply {
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/keys")
        .header("authorization", format!("Bearer {MANAGEMENT}"))
        .body(Body::from(body))
        .unwrap();
    exchange(router, request).await
}

#[tokio::test]
async fn an_unknown_hash_gets_404_on_get_patch_and_delete() {
    let router = sim().router();
    let path = format!("/keys/{}", "0".repeat(64));
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "x"}))),
        ("DELETE", None),
    ] {
        let reply = manage(&router, method, &path, body).await;
        assert_eq!(
            error_message(&reply, StatusCode::NOT_FOUND),
            "Resource not found",
            "{method}"
        );
    }
}

#[tokio::test]
async fn deleting_answers_deleted_true_and_a_second_delete_gets_404() {
    let sim = sim();
    let router = sim.router();
    let (hash, _) = create_named(&router, "gone").await;
    let reply = manage(&router, "DELETE", &format!("/keys/{hash}"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"deleted": true}));
    let again = manage(&router, "DELETE", &format!("/keys/{hash}"), None).await;
    error_message(&again, StatusCode::NOT_FOUND);
    let got = manage(&router, "GET", &format!("/keys/{hash}"), None).await;
    error_message(&got, StatusCode::NOT_FOUND);
    assert!(sim.key(&hash).unwrap().deleted);
    assert_eq!(sim.live_key_count_named_with("gone"), 0);
}

#[tokio::test]
async fn listing_pages_by_offset_100_at_a_time_newest_first() {
    let sim = sim();
    let router = sim.router();
    for n in 0..150 {
        sim.add_ordinary_key_named(&format!("sk-or-v1-{n:064x}"), &format!("key-{n:03}"));
    }
    let first = manage(&router, "GET", "/keys", None).await;
    let first = first.body["data"].as_array().unwrap().clone();
    assert_eq!(first.len(), 100);
    assert_eq!(first[0]["name"], json!("key-149"));
    assert_eq!(first[99]["name"], json!("key-050"));
    let second = manage(&router, "GET", "/keys?offset=100", None).await;
    let second = second.body["data"].as_array().unwrap().clone();
    assert_eq!(second.len(), 50);
    assert_eq!(second[0]["name"], json!("key-049"));
    assert_eq!(second[49]["name"], json!("key-000"));
    let past_the_end = manage(&router, "GET", "/keys?offset=150", None).await;
    assert_eq!(past_the_end.body["data"], json!([]));
    let bad = manage(&router, "GET", "/keys?offset=-1", None).await;
    error_message(&bad, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn disabled_keys_are_listed_only_with_include_disabled_true() {
    let router = sim().router();
    let (enabled, _) = create_named(&router, "on").await;
    let (disabled, _) = create_named(&router, "off").await;
    manage(
        &router,
        "PATCH",
        &format!("/keys/{disabled}"),
        Some(json!({"disabled": true})),
    )
    .await;
    let hashes = |reply: &Reply| -> Vec<String> {
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["hash"].as_str().unwrap().into())
            .collect()
    };
    let default = manage(&router, "GET", "/keys", None).await;
    assert_eq!(hashes(&default), std::slice::from_ref(&enabled));
    let explicit_false = manage(&router, "GET", "/keys?include_disabled=false", None).await;
    assert_eq!(hashes(&explicit_false), std::slice::from_ref(&enabled));
    let all = manage(&router, "GET", "/keys?include_disabled=true", None).await;
    assert_eq!(hashes(&all), [disabled.clone(), enabled]);
    assert_eq!(all.body["data"][0]["disabled"], json!(true));
    let got = manage(&router, "GET", &format!("/keys/{disabled}"), None).await;
    assert_eq!(
        got.status,
        StatusCode::OK,
        "a disabled key can still be fetched by hash"
    );
}

#[tokio::test]
async fn keys_in_another_workspace_are_listed_only_when_asked_for() {
    let router = sim().router();
    let other = "11111111-2222-3333-4444-555555555555";
    create(&router, json!({"name": "elsewhere", "workspace_id": other})).await;
    let default = manage(&router, "GET", "/keys", None).await;
    assert_eq!(default.body["data"], json!([]));
    let there = manage(&router, "GET", &format!("/keys?workspace_id={other}"), None).await;
    assert_eq!(there.body["data"][0]["name"], json!("elsewhere"));
}

#[tokio::test]
async fn patch_updates_each_field_including_a_null_limit_and_sets_updated_at() {
    let sim = sim_at("2025-08-24T10:30:00Z");
    let router = sim.router();
    let (hash, _) = create(&router, json!({"name": "a", "limit": 5, "limit_reset": "daily"})).await;
    sim.clock().advance(Duration::from_secs(60));
    let patch = json!({"name": "b", "limit": 20, "limit_reset": "weekly", "include_byok_in_limit": true});
    let reply = manage(&router, "PATCH", &format!("/keys/{hash}"), Some(patch)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let data = &reply.body["data"];
    assert_eq!(data["name"], json!("b"));
    assert_eq!(data["limit"], json!(20.0));
    assert_eq!(data["limit_reset"], json!("weekly"));
    assert_eq!(data["include_byok_in_limit"], json!(true));
    assert_eq!(data["updated_at"], json!("2025-08-24T10:31:00Z"));
    assert_eq!(data["created_at"], json!("2025-08-24T10:30:00Z"));

    let cleared = json!({"limit": null, "limit_reset": null});
    let reply = manage(&router, "PATCH", &format!("/keys/{hash}"), Some(cleared)).await;
    let data = &reply.body["data"];
    assert_eq!(data["limit"], Value::Null);
    assert_eq!(data["limit_remaining"], Value::Null);
    assert_eq!(data["limit_reset"], Value::Null);
    assert_eq!(data["name"], json!("b"), "fields not sent are left alone");
    let got = manage(&router, "GET", &format!("/keys/{hash}"), None).await;
    assert_eq!(got.body["data"], *data);
}

#[tokio::test]
async fn patching_expires_at_or_sending_a_bad_field_gets_400() {
    let router = sim().router();
    let (hash, _) = create_named(&router, "a").await;
    for body in [
        json!({"expires_at": "2030-01-01T00:00:00Z"}),
        json!({"expires_at": null}),
        json!({"limit_reset": "hourly"}),
        json!({"limit": -5}),
        json!({"disabled": "true"}),
        json!({"name": ""}),
    ] {
        let reply = manage(&router, "PATCH", &format!("/keys/{hash}"), Some(body.clone())).await;
        error_message(&reply, StatusCode::BAD_REQUEST);
    }
    let got = manage(&router, "GET", &format!("/keys/{hash}"), None).await;
    assert_eq!(
        got.body["data"]["updated_at"],
        Value::Null,
        "rejected patches change nothing"
    );
}

#[tokio::test]
async fn the_keys_hook_shows_disabled_and_deleted_keys_but_no_values() {
    let sim = sim();
    let router = sim.router();
    let (kept, _) = create_named(&router, "crash-test-kept").await;
    let (off, _) = create_named(&router, "crash-test-off").await;
    let (gone, _) = create_named(&router, "crash-test-gone").await;
    manage(
        &router,
        "PATCH",
        &format!("/keys/{off}"),
        Some(json!({"disabled": true})),
    )
    .await;
    manage(&router, "DELETE", &format!("/keys/{gone}"), None).await;

    let reply = send(&router, "GET", "/_sim/keys", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let keys = reply.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    let by_hash = |hash: &str| {
        keys.iter()
            .find(|key| key["hash"] == json!(hash))
            .unwrap()
            .clone()
    };
    assert_eq!(by_hash(&kept)["deleted"], json!(false));
    assert_eq!(by_hash(&off)["disabled"], json!(true));
    assert_eq!(by_hash(&gone)["deleted"], json!(true));
    assert!(by_hash(&gone)["deleted_at"].is_string());
    assert_eq!(sim.keys().len(), 3);
    assert_eq!(sim.live_key_count_named_with("crash-test"), 2);
}
