//! The aiXplain simulator through its HTTP surface.

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::{Value, json};

use super::*;
use crate::{
    faults::Fault,
    testing::{exchange, send_json},
};

const TEAM: &str = "team0000000000000000000000000000000000000000000000000000000000aa";

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Token(&'a str),
    ApiKey(&'a str),
}

async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri);
    let request = match auth {
        Auth::None => request,
        Auth::Token(key) => request.header("authorization", format!("Token {key}")),
        Auth::ApiKey(key) => request.header("x-api-key", key),
    };
    let reply = send_json(router, request, body).await;
    (reply.status, reply.body)
}

async fn team(router: &Router, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    send(router, method, path, Auth::ApiKey(TEAM), body).await
}

fn sim() -> AixplainSim {
    AixplainSim::new([TEAM.to_owned()], Clock::new())
}

/// Creates a key; returns `(id, value)`.
async fn create(router: &Router, body: Value) -> (String, String) {
    let (status, body) = team(router, "POST", "/sdk/api-keys", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["accessKey"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn both_authentication_styles_are_accepted_and_anything_else_is_401() {
    let router = sim().router();
    for auth in [Auth::Token(TEAM), Auth::ApiKey(TEAM)] {
        let (status, body) = send(&router, "GET", "/sdk/api-keys", auth, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_array());
    }
    for auth in [Auth::None, Auth::Token("nope"), Auth::ApiKey("nope")] {
        let (status, body) = send(&router, "GET", "/sdk/api-keys", auth, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["statusCode"], 401);
        assert!(body["message"].is_string());
    }
    let bearer = Request::builder()
        .uri("/sdk/api-keys")
        .header("authorization", format!("Bearer {TEAM}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(exchange(&router, bearer).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_ordinary_key_may_read_its_own_usage_but_not_manage_keys() {
    let router = sim().router();
    let (_, value) = create(&router, json!({"name": "worker"})).await;
    let (status, body) = send(&router, "GET", "/sdk/api-keys", Auth::ApiKey(&value), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "Forbidden resource");
    let (status, body) = send(
        &router,
        "GET",
        "/sdk/api-keys/usage-limits",
        Auth::Token(&value),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["requestCount"], 0);
}

#[tokio::test]
async fn creating_reveals_the_value_once_and_reads_show_a_mask() {
    let sim = sim();
    let router = sim.router();
    let (status, created) = team(
        &router,
        "POST",
        "/sdk/api-keys",
        Some(
            json!({"name": "tenant-a", "budget": 10, "expiresAt": "2030-01-01T00:00:00.000000Z",
                    "globalLimits": {"rpm": 5, "tpd": 1000, "tokenType": "total"},
                    "assetsLimits": [{"assetId": "m1", "rpd": 7}]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let value = created["accessKey"].as_str().unwrap().to_owned();
    assert_eq!(value.len(), 64);
    assert_eq!(created["isAdmin"], false);
    assert_eq!(created["expiresAt"], "2030-01-01T00:00:00Z");
    assert_eq!(created["globalLimits"]["rpm"], 5);
    assert_eq!(created["assetsLimits"][0]["assetId"], "m1");
    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 24);

    let (_, listed) = team(&router, "GET", "/sdk/api-keys", None).await;
    let (_, got) = team(&router, "GET", &format!("/sdk/api-keys/{id}"), None).await;
    let mask = format!("{}...{}", &value[..4], &value[60..]);
    assert_eq!(got["accessKey"], json!(mask));
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == json!(id))
        .unwrap();
    assert_eq!(mine["accessKey"], json!(mask));
    let hooks = send(&router, "GET", "/_sim/keys", Auth::None, None).await.1;
    for body in [&listed, &got, &hooks] {
        assert!(!body.to_string().contains(&value));
    }
    // The team key is listed too, as an admin key.
    assert!(listed.as_array().unwrap().iter().any(|k| k["isAdmin"] == true));
}

#[tokio::test]
async fn a_duplicate_name_is_422_on_create_and_on_rename() {
    let router = sim().router();
    create(&router, json!({"name": "a"})).await;
    let (b, _) = create(&router, json!({"name": "b"})).await;
    let (status, body) = team(&router, "POST", "/sdk/api-keys", Some(json!({"name": "a"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["statusCode"], 422);
    let (status, _) = team(
        &router,
        "PUT",
        &format!("/sdk/api-keys/{b}"),
        Some(json!({"id": b, "name": "a"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Keeping one's own name is no conflict.
    let (status, _) = team(
        &router,
        "PUT",
        &format!("/sdk/api-keys/{b}"),
        Some(json!({"id": b, "name": "b"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn put_replaces_the_budget_limits_and_expiry() {
    let sim = sim();
    let router = sim.router();
    let (id, _) = create(
        &router,
        json!({"name": "a", "budget": 5, "globalLimits": {"rpm": 1}, "assetsLimits": [{"assetId": "m", "tpm": 9}],
               "expiresAt": "2030-01-01T00:00:00Z"}),
    )
    .await;
    let (status, body) = team(
        &router,
        "PUT",
        &format!("/sdk/api-keys/{id}"),
        Some(json!({"id": id, "name": "renamed", "budget": null, "globalLimits": {"rpd": 3}, "assetsLimits": []})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = sim.key(&id).unwrap();
    assert_eq!(key.name, "renamed");
    assert_eq!(key.budget, None);
    assert_eq!(key.global_limits.unwrap().rpd, Some(3));
    assert!(key.assets_limits.is_empty());
    assert_eq!(key.expires_at, None);
    let (status, _) = team(
        &router,
        "PUT",
        &format!("/sdk/api-keys/{id}"),
        Some(json!({"id": "other", "name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn invalid_payloads_get_400_naming_the_field() {
    let router = sim().router();
    let (status, body) = team(
        &router,
        "POST",
        "/sdk/api-keys",
        Some(json!({"name": "a", "globalLimits": {"tpm": -1}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "globalLimits.tpm must not be less than 0");
}

#[tokio::test]
async fn deleting_answers_200_then_404_and_the_key_stops_working() {
    let sim = sim();
    let router = sim.router();
    let (id, value) = create(&router, json!({"name": "a"})).await;
    let (status, _) = team(&router, "DELETE", &format!("/sdk/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = team(&router, "DELETE", &format!("/sdk/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["statusCode"], 404);
    let (status, _) = team(&router, "GET", &format!("/sdk/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        &router,
        "GET",
        "/sdk/api-keys/usage-limits",
        Auth::ApiKey(&value),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(sim.key(&id).unwrap().deleted);
}

#[tokio::test]
async fn an_expired_key_no_longer_authenticates() {
    let sim = sim();
    let router = sim.router();
    let soon = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60)).to_string();
    let (_, value) = create(&router, json!({"name": "a", "expiresAt": soon})).await;
    let own = |value: String| {
        let router = router.clone();
        async move {
            send(
                &router,
                "GET",
                "/sdk/api-keys/usage-limits",
                Auth::ApiKey(&value),
                None,
            )
            .await
            .0
        }
    };
    assert_eq!(own(value.clone()).await, StatusCode::OK);
    sim.clock().advance(Duration::from_secs(120));
    assert_eq!(own(value).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn usage_limits_report_daily_counts_globally_and_per_model() {
    let sim = sim();
    let router = sim.router();
    let (id, _) = create(
        &router,
        json!({"name": "a", "globalLimits": {"rpd": 100, "tpd": 5000}, "assetsLimits": [{"assetId": "m1", "rpd": 10}]}),
    )
    .await;
    let hook = send(
        &router,
        "POST",
        &format!("/_sim/keys/{id}/usage"),
        Auth::None,
        Some(json!({"requests": 2, "tokens": 300, "assetId": "m1"})),
    )
    .await;
    assert_eq!(hook.0, StatusCode::OK);
    sim.add_usage(
        &id,
        Traffic {
            requests: 1,
            tokens: 50,
            asset_id: Some("m2".into()),
        },
    );
    let (status, body) = team(&router, "GET", &format!("/sdk/api-keys/{id}/usage-limits"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([
            {"requestCount": 3, "requestCountLimit": 100, "tokenCount": 350, "tokenCountLimit": 5000},
            {"assetId": "m1", "requestCount": 2, "requestCountLimit": 10, "tokenCount": 300, "tokenCountLimit": null},
            {"assetId": "m2", "requestCount": 1, "requestCountLimit": null, "tokenCount": 50, "tokenCountLimit": null},
        ])
    );
    sim.clock().advance(Duration::from_secs(24 * 3600));
    let (_, body) = team(&router, "GET", &format!("/sdk/api-keys/{id}/usage-limits"), None).await;
    assert_eq!(body[0]["requestCount"], 0);
}

#[tokio::test]
async fn the_list_can_be_told_to_reveal_values_of_keys_created_afterwards() {
    let sim = sim();
    let router = sim.router();
    let (masked_id, _) = create(&router, json!({"name": "before"})).await;
    let set = send(
        &router,
        "POST",
        "/_sim/settings",
        Auth::None,
        Some(json!({"listRevealsKeys": true})),
    )
    .await;
    assert_eq!(set.1["listRevealsKeys"], true);
    let (revealed_id, value) = create(&router, json!({"name": "after"})).await;
    let (_, listed) = team(&router, "GET", "/sdk/api-keys", None).await;
    let access = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == json!(id))
            .unwrap()["accessKey"]
            .clone()
    };
    assert_eq!(access(&revealed_id), json!(value));
    assert!(access(&masked_id).as_str().unwrap().contains("..."));
}

#[tokio::test]
async fn faults_render_nestjs_errors_with_retry_after() {
    let sim = sim();
    sim.inject(Fault::rate_limit(1, 2));
    let router = sim.router();
    let request = Request::builder().uri("/sdk/api-keys").header("x-api-key", TEAM);
    let reply = send_json(&router, request, None).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers["retry-after"], "2");
    assert_eq!(reply.body["statusCode"], 429);
    assert_eq!(sim.requests().len(), 1);
    // Hooks are not API requests.
    send(&router, "GET", "/_sim/clock", Auth::None, None).await;
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn unknown_paths_get_a_nestjs_404() {
    let router = sim().router();
    let (status, body) = team(&router, "GET", "/sdk/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["statusCode"], 404);
}

#[tokio::test]
async fn the_model_catalog_answers_by_id_or_path_and_404s_the_unknown() {
    let sim = sim();
    let router = sim.router();
    let (status, body) = team(&router, "GET", "/sdk/models/6646261c6eb563165658bbb1", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "6646261c6eb563165658bbb1");
    let (status, body) = team(&router, "GET", "/sdk/models/openai%2Fgpt-4o%2Fopenai", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "6646261c6eb563165658bbb1");
    let (status, body) = team(&router, "GET", "/sdk/models/000000000000000000000000", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["statusCode"], 404);
    sim.add_model(CatalogModel::new("000000000000000000000000", "Test", "x/test/x"));
    let (status, _) = team(&router, "GET", "/sdk/models/000000000000000000000000", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&router, "GET", "/sdk/models/x%2Ftest%2Fx", Auth::None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
