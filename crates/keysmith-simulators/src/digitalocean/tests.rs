//! Tests of the DigitalOcean simulator through its HTTP surface.

use axum::{Router, http::StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::{
    faults::Fault,
    testing::{Reply, send},
};

const TOKEN: &str = "dop_v1_simulator_test_token_000000000000000000000000000000000000000000";

fn sim() -> DigitalOceanSim {
    DigitalOceanSim::new([TOKEN.to_owned()], Clock::new())
}

/// Calls the management API with the account's token.
async fn manage(router: &Router, method: &str, path: &str, body: Option<Value>) -> Reply {
    send(router, method, &format!("{KEYS_PATH}{path}"), Some(TOKEN), body).await
}

async fn models(router: &Router, value: &str) -> Reply {
    send(router, "GET", "/v1/models", Some(value), None).await
}

/// Asserts DigitalOcean's error body and returns its message.
fn error(reply: &Reply, status: StatusCode, id: &str) -> String {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.body["id"], json!(id));
    reply.body["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_management_api_needs_a_known_token() {
    let router = sim().router();
    for token in [None, Some("dop_v1_unknown")] {
        let reply = send(&router, "GET", KEYS_PATH, token, None).await;
        assert_eq!(
            error(&reply, StatusCode::UNAUTHORIZED, "unauthorized"),
            "Unable to authenticate you."
        );
    }
    assert_eq!(manage(&router, "GET", "", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_management_answer_carries_the_rate_limit_headers() {
    let sim = sim();
    let router = sim.router();
    let first = manage(&router, "GET", "", None).await;
    let second = manage(&router, "GET", "/nope", None).await;
    let header = |reply: &Reply, name: &str| reply.headers[name].to_str().unwrap().parse::<i64>().unwrap();
    assert_eq!(header(&first, "ratelimit-limit"), 5000);
    assert_eq!(header(&first, "ratelimit-remaining"), 4999);
    assert_eq!(header(&second, "ratelimit-remaining"), 4998);
    let reset = header(&first, "ratelimit-reset");
    let now = sim.clock().now().as_second();
    assert!((now + 3590..=now + 3600).contains(&reset), "{reset} vs {now}");
}

#[tokio::test]
async fn creating_a_key_is_retired_with_410_unless_the_legacy_switch_is_on() {
    let sim = sim();
    let router = sim.router();
    let reply = manage(&router, "POST", "", Some(json!({"name": "tenant-a"}))).await;
    assert_eq!(error(&reply, StatusCode::GONE, "gone"), RETIRED_MESSAGE);
    assert!(sim.keys().is_empty());

    sim.set_legacy_create(true);
    let reply = manage(&router, "POST", "", Some(json!({"name": "tenant-a"}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let value = reply.body["api_key_info"]["secret_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(value.starts_with("sk-do-"));
    assert_eq!(models(&router, &value).await.status, StatusCode::OK);
    let missing = manage(&router, "POST", "", Some(json!({}))).await;
    error(&missing, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn listing_pages_with_links_only_where_they_make_sense() {
    let sim = sim();
    for n in 0..45 {
        sim.add_key(&format!("key-{n}"));
    }
    let router = sim.router();
    let first = manage(&router, "GET", "", None).await;
    assert_eq!(first.body["api_key_infos"].as_array().unwrap().len(), 20);
    assert_eq!(first.body["meta"], json!({"page": 1, "pages": 3, "total": 45}));
    let links = first.body["links"]["pages"].as_object().unwrap();
    let mut names: Vec<&str> = links.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["last", "next"]);
    assert_eq!(
        links["next"],
        json!(format!("http://sim.test{KEYS_PATH}?page=2&per_page=20"))
    );

    let middle = manage(&router, "GET", "?page=2", None).await;
    assert_eq!(middle.body["links"]["pages"].as_object().unwrap().len(), 4);
    assert_eq!(middle.body["api_key_infos"][0]["name"], json!("key-20"));
    let last = manage(&router, "GET", "?page=3&per_page=20", None).await;
    assert_eq!(last.body["api_key_infos"].as_array().unwrap().len(), 5);
    let links = last.body["links"]["pages"].as_object().unwrap();
    assert!(links.contains_key("first") && links.contains_key("previous") && !links.contains_key("next"));
    let beyond = manage(&router, "GET", "?page=9", None).await;
    assert_eq!(beyond.body["api_key_infos"], json!([]));

    let whole = manage(&router, "GET", "?per_page=200", None).await;
    assert_eq!(whole.body["api_key_infos"].as_array().unwrap().len(), 45);
    assert_eq!(whole.body["links"], json!({}));
    for bad in ["?per_page=201", "?page=0", "?per_page=x"] {
        let reply = manage(&router, "GET", bad, None).await;
        error(&reply, StatusCode::BAD_REQUEST, "bad_request");
    }
}

#[tokio::test]
async fn list_answers_never_reveal_a_value() {
    let sim = sim();
    let added = sim.add_key("tenant-a");
    let router = sim.router();
    let reply = manage(&router, "GET", "", None).await;
    let item = &reply.body["api_key_infos"][0];
    assert_eq!(item["uuid"], json!(added.uuid));
    assert_eq!(item["created_by"], json!(CREATED_BY));
    assert_eq!(item["deleted_at"], Value::Null);
    assert!(item.get("secret_key").is_none());
    assert!(!reply.body.to_string().contains(&added.value));
    assert!(!format!("{added:?}").contains(&added.value));
}

#[tokio::test]
async fn renaming_changes_only_the_name_and_checks_the_body() {
    let sim = sim();
    let added = sim.add_key("before");
    let router = sim.router();
    let path = format!("/{}", added.uuid);
    let reply = manage(
        &router,
        "PUT",
        &path,
        Some(json!({"api_key_uuid": added.uuid, "name": "after"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["api_key_info"]["name"], json!("after"));
    assert!(reply.body["api_key_info"].get("secret_key").is_none());
    assert_eq!(sim.key(&added.uuid).unwrap().name, "after");
    assert!(sim.accepts(&added.value));

    let mismatched = manage(
        &router,
        "PUT",
        &path,
        Some(json!({"api_key_uuid": "other", "name": "x"})),
    )
    .await;
    error(&mismatched, StatusCode::BAD_REQUEST, "bad_request");
    let nameless = manage(&router, "PUT", &path, Some(json!({"name": " "}))).await;
    error(&nameless, StatusCode::BAD_REQUEST, "bad_request");
    let unknown = manage(&router, "PUT", "/0000", Some(json!({"name": "x"}))).await;
    assert_eq!(
        error(&unknown, StatusCode::NOT_FOUND, "not_found"),
        "The resource you were accessing could not be found."
    );
}

#[tokio::test]
async fn regenerating_reveals_a_new_value_and_the_old_one_stops_working() {
    let sim = sim();
    let added = sim.add_key("rotating");
    let router = sim.router();
    assert_eq!(models(&router, &added.value).await.status, StatusCode::OK);
    let reply = manage(&router, "PUT", &format!("/{}/regenerate", added.uuid), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let info = &reply.body["api_key_info"];
    assert_eq!(info["uuid"], json!(added.uuid));
    let fresh = info["secret_key"].as_str().unwrap();
    assert_ne!(fresh, added.value);
    assert_eq!(models(&router, fresh).await.status, StatusCode::OK);
    let stale = models(&router, &added.value).await;
    error(&stale, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(sim.key(&added.uuid).unwrap().regenerations, 1);
    let unknown = manage(&router, "PUT", "/nope/regenerate", None).await;
    error(&unknown, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn deleting_sets_deleted_at_hides_the_key_and_a_second_delete_is_404() {
    let sim = sim();
    let added = sim.add_key("doomed");
    let router = sim.router();
    let path = format!("/{}", added.uuid);
    let reply = manage(&router, "DELETE", &path, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["api_key_info"]["deleted_at"].is_string());
    assert!(sim.key(&added.uuid).unwrap().deleted);
    let listed = manage(&router, "GET", "", None).await;
    assert_eq!(listed.body["meta"]["total"], json!(0));
    error(
        &models(&router, &added.value).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let again = manage(&router, "DELETE", &path, None).await;
    error(&again, StatusCode::NOT_FOUND, "not_found");
    let rename = manage(&router, "PUT", &path, Some(json!({"name": "x"}))).await;
    error(&rename, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_inference_service_lists_models_for_a_live_key_only() {
    let sim = sim();
    let added = sim.add_key("k");
    let router = sim.router();
    let reply = models(&router, &added.value).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["object"], json!("list"));
    assert_eq!(reply.body["data"][0]["object"], json!("model"));
    for token in [None, Some(TOKEN), Some("sk-do-unknown")] {
        let reply = send(&router, "GET", "/v1/models", token, None).await;
        error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn an_injected_burst_limit_answers_429_with_retry_after_and_the_rate_headers() {
    let sim = sim();
    sim.inject(Fault::rate_limit(1, 7));
    let router = sim.router();
    let reply = manage(&router, "GET", "", None).await;
    assert_eq!(
        error(&reply, StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        "API Rate limit exceeded."
    );
    assert_eq!(reply.headers["retry-after"], "7");
    assert!(reply.headers.contains_key("ratelimit-remaining"));
    assert_eq!(manage(&router, "GET", "", None).await.status, StatusCode::OK);
    let log = sim.requests();
    assert_eq!(log.len(), 2);
    assert!(log[0].retry_after_until.is_some());
}

#[tokio::test]
async fn an_injected_server_error_uses_the_error_body_and_changes_nothing() {
    let sim = sim();
    let added = sim.add_key("k");
    sim.inject(Fault::server_error(1).on_path("/regenerate"));
    let router = sim.router();
    let reply = manage(&router, "PUT", &format!("/{}/regenerate", added.uuid), None).await;
    error(&reply, StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    assert!(sim.accepts(&added.value));
}

#[tokio::test]
async fn hooks_add_keys_tokens_and_switch_legacy_create() {
    let sim = sim();
    let router = sim.router();
    let added = send(
        &router,
        "POST",
        "/_sim/keys",
        None,
        Some(json!({"name": "from-panel"})),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED);
    let value = added.body["value"].as_str().unwrap().to_owned();
    let uuid = added.body["uuid"].as_str().unwrap().to_owned();
    assert!(sim.accepts(&value));
    let chosen = send(
        &router,
        "POST",
        "/_sim/keys",
        None,
        Some(json!({"name": "chosen", "value": "sk-do-chosen-value"})),
    )
    .await;
    assert_eq!(chosen.body["value"], json!("sk-do-chosen-value"));
    let listed = send(&router, "GET", "/_sim/keys", None, None).await;
    assert_eq!(listed.body["keys"][0]["uuid"], json!(uuid));
    assert!(!listed.body.to_string().contains(&value));

    let token = send(
        &router,
        "POST",
        "/_sim/tokens",
        None,
        Some(json!({"token": "dop_v1_second"})),
    )
    .await;
    assert_eq!(token.status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&router, "GET", KEYS_PATH, Some("dop_v1_second"), None)
            .await
            .status,
        StatusCode::OK
    );

    let legacy = send(
        &router,
        "POST",
        "/_sim/settings",
        None,
        Some(json!({"legacyCreate": true})),
    )
    .await;
    assert_eq!(legacy.body, json!({"legacyCreate": true}));
    assert_eq!(
        manage(&router, "POST", "", Some(json!({"name": "x"})))
            .await
            .status,
        StatusCode::OK
    );
    let bad = send(&router, "POST", "/_sim/keys", None, Some(json!({"nom": "x"}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Hooks are not API requests.
    assert!(
        sim.requests()
            .iter()
            .all(|record| !record.path.starts_with("/_sim"))
    );
}

#[tokio::test]
async fn the_shared_hooks_move_the_clock_and_arm_faults() {
    let sim = sim();
    let router = sim.router();
    let set = send(
        &router,
        "POST",
        "/_sim/clock",
        None,
        Some(json!({"now": "2031-05-01T00:00:00Z"})),
    )
    .await;
    assert!(set.body["now"].as_str().unwrap().starts_with("2031-05-01"));
    let added = sim.add_key("dated");
    assert!(
        sim.key(&added.uuid)
            .unwrap()
            .created_at
            .to_string()
            .starts_with("2031-05-01")
    );
    let armed = send(
        &router,
        "POST",
        "/_sim/faults",
        None,
        Some(json!({"kind": "serverError", "path": "/v1/models"})),
    )
    .await;
    assert_eq!(armed.body["faults"].as_array().unwrap().len(), 1);
    assert_eq!(
        models(&router, &added.value).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let log = send(&router, "GET", "/_sim/requests", None, None).await;
    assert_eq!(log.body["requests"].as_array().unwrap().len(), 1);
    assert!(!log.body.to_string().contains(&added.value));
}

#[tokio::test]
async fn unknown_paths_answer_with_the_error_body() {
    let router = sim().router();
    let reply = send(&router, "GET", "/v2/gen-ai/agents", Some(TOKEN), None).await;
    error(&reply, StatusCode::NOT_FOUND, "not_found");
}
