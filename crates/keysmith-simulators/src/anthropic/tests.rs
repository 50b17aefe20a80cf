//! The Anthropic simulator through its HTTP surface.

use axum::{
    Router,
    http::{Request, StatusCode},
};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::{
    faults::Fault,
    testing::{Reply, send_json},
};

const ADMIN: &str = "sk-ant-admin01-simulator-tests-000000000000000000000000000000000000";

async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    version: bool,
    body: Option<Value>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    if version {
        request = request.header("anthropic-version", "2023-06-01");
    }
    send_json(router, request, body).await
}

async fn admin(router: &Router, method: &str, uri: &str, body: Option<Value>) -> Reply {
    send(router, method, uri, Some(ADMIN), true, body).await
}

fn error_type(reply: &Reply) -> &str {
    assert_eq!(reply.body["type"], "error", "{}", reply.body);
    reply.body["error"]["type"].as_str().unwrap()
}

fn sim() -> AnthropicSim {
    AnthropicSim::new([ADMIN.to_owned()], Clock::new())
}

#[tokio::test]
async fn admin_endpoints_need_an_admin_key_and_the_version_header() {
    let sim = sim();
    let (_, value) = sim.add_console_key("k", None);
    let router = sim.router();
    let path = "/v1/organizations/api_keys";
    let reply = send(&router, "GET", path, None, true, None).await;
    assert_eq!(
        (reply.status, error_type(&reply)),
        (StatusCode::UNAUTHORIZED, "authentication_error")
    );
    let reply = send(&router, "GET", path, Some("sk-ant-admin01-nope"), true, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = send(&router, "GET", path, Some(ADMIN), false, None).await;
    assert_eq!(
        (reply.status, error_type(&reply)),
        (StatusCode::BAD_REQUEST, "invalid_request_error")
    );
    let reply = send(&router, "GET", path, Some(&value), true, None).await;
    assert_eq!(
        (reply.status, error_type(&reply)),
        (StatusCode::FORBIDDEN, "permission_error")
    );
    assert_eq!(admin(&router, "GET", path, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn keys_cannot_be_created_or_deleted_through_the_api() {
    let sim = sim();
    let (id, _) = sim.add_console_key("k", None);
    let router = sim.router();
    let reply = admin(
        &router,
        "POST",
        "/v1/organizations/api_keys",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(
        (reply.status, error_type(&reply)),
        (StatusCode::NOT_FOUND, "not_found_error")
    );
    let reply = admin(
        &router,
        "DELETE",
        &format!("/v1/organizations/api_keys/{id}"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(sim.keys().len(), 1);
}

#[tokio::test]
async fn the_key_object_has_the_documented_fields_and_never_the_value() {
    let sim = sim();
    let ws = sim.add_workspace("prod");
    let (id, value) = sim.add_console_key("k", Some(&ws));
    let router = sim.router();
    let reply = admin(&router, "GET", &format!("/v1/organizations/api_keys/{id}"), None).await;
    let key = &reply.body;
    assert_eq!(key["type"], "api_key");
    assert_eq!(key["id"], json!(id));
    assert_eq!(key["status"], "active");
    assert_eq!(key["workspace_id"], json!(ws));
    assert_eq!(key["scope"], json!({"type": "workspace", "workspace_id": ws}));
    assert_eq!(key["created_by"]["type"], "user");
    assert_eq!(
        key["partial_key_hint"],
        json!(format!("{}...{}", &value[..16], &value[value.len() - 4..]))
    );
    assert!(key["created_at"].as_str().unwrap().parse::<Timestamp>().is_ok());
    assert!(!reply.body.to_string().contains(&value));
    let reply = admin(&router, "GET", "/v1/organizations/api_keys/apikey_01nope", None).await;
    assert_eq!(
        (reply.status, error_type(&reply)),
        (StatusCode::NOT_FOUND, "not_found_error")
    );
}

#[tokio::test]
async fn lists_page_newest_first_with_cursors_and_filter_by_status_and_workspace() {
    let sim = sim();
    let ws = sim.add_workspace("w");
    let ids: Vec<String> = (0..5)
        .map(|n| {
            sim.add_console_key(&format!("k{n}"), (n % 2 == 0).then_some(ws.as_str()))
                .0
        })
        .collect();
    sim.set_status(&ids[1], KeyStatus::Inactive);
    let router = sim.router();
    let first = admin(&router, "GET", "/v1/organizations/api_keys?limit=2", None).await;
    assert_eq!(first.body["first_id"], json!(ids[4]));
    assert_eq!(first.body["last_id"], json!(ids[3]));
    assert_eq!(first.body["has_more"], true);
    let after = first.body["last_id"].as_str().unwrap();
    let second = admin(
        &router,
        "GET",
        &format!("/v1/organizations/api_keys?limit=10&after_id={after}"),
        None,
    )
    .await;
    assert_eq!(second.body["data"].as_array().unwrap().len(), 3);
    assert_eq!(second.body["has_more"], false);
    let before = admin(
        &router,
        "GET",
        &format!("/v1/organizations/api_keys?limit=1&before_id={}", ids[3]),
        None,
    )
    .await;
    assert_eq!(before.body["first_id"], json!(ids[4]));

    let inactive = admin(&router, "GET", "/v1/organizations/api_keys?status=inactive", None).await;
    assert_eq!(inactive.body["data"].as_array().unwrap().len(), 1);
    let in_ws = admin(
        &router,
        "GET",
        &format!("/v1/organizations/api_keys?workspace_id={ws}"),
        None,
    )
    .await;
    assert_eq!(in_ws.body["data"].as_array().unwrap().len(), 3);
    for bad in ["limit=0", "limit=1001", "status=gone"] {
        let reply = admin(&router, "GET", &format!("/v1/organizations/api_keys?{bad}"), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn updates_take_name_and_status_only_and_archiving_is_final() {
    let sim = sim();
    let (id, value) = sim.add_console_key("k", None);
    let router = sim.router();
    let path = format!("/v1/organizations/api_keys/{id}");
    let reply = admin(
        &router,
        "POST",
        &path,
        Some(json!({"name": "renamed", "status": "inactive"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        (reply.body["name"].clone(), reply.body["status"].clone()),
        (json!("renamed"), json!("inactive"))
    );
    // An inactive key no longer reaches the models.
    let models = send(&router, "GET", "/v1/models", Some(&value), true, None).await;
    assert_eq!(models.status, StatusCode::UNAUTHORIZED);
    for bad in [
        json!({"status": "expired"}),
        json!({"status": "paused"}),
        json!({"name": ""}),
        json!({"expires_at": null}),
    ] {
        let reply = admin(&router, "POST", &path, Some(bad.clone())).await;
        assert_eq!(
            (reply.status, error_type(&reply)),
            (StatusCode::BAD_REQUEST, "invalid_request_error"),
            "{bad}"
        );
    }
    admin(&router, "POST", &path, Some(json!({"status": "archived"}))).await;
    let reply = admin(&router, "POST", &path, Some(json!({"status": "active"}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.key(&id).unwrap().status, KeyStatus::Archived);
}

#[tokio::test]
async fn an_expired_key_reads_expired_and_cannot_be_reactivated() {
    let sim = sim();
    let (id, value) = sim.add_console_key("k", None);
    sim.set_expiry(&id, Some(Timestamp::now() - jiff::SignedDuration::from_secs(1)));
    let router = sim.router();
    let path = format!("/v1/organizations/api_keys/{id}");
    assert_eq!(admin(&router, "GET", &path, None).await.body["status"], "expired");
    let reply = admin(&router, "POST", &path, Some(json!({"status": "active"}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        send(&router, "GET", "/v1/models", Some(&value), true, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_models_endpoint_answers_active_keys_only() {
    let sim = sim();
    let (_, value) = sim.add_console_key("k", None);
    let router = sim.router();
    let reply = send(&router, "GET", "/v1/models", Some(&value), true, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["data"][0]["type"], "model");
    for key in [ADMIN, "sk-ant-api03-unknown"] {
        let reply = send(&router, "GET", "/v1/models", Some(key), true, None).await;
        assert_eq!(
            (reply.status, error_type(&reply)),
            (StatusCode::UNAUTHORIZED, "authentication_error")
        );
    }
}

#[tokio::test]
async fn workspaces_are_listed_fetched_and_unknown_ones_are_404() {
    let sim = sim();
    let ws = sim.add_workspace("prod");
    let router = sim.router();
    let list = admin(&router, "GET", "/v1/organizations/workspaces", None).await;
    assert_eq!(list.body["data"][0]["id"], json!(ws));
    let got = admin(
        &router,
        "GET",
        &format!("/v1/organizations/workspaces/{ws}"),
        None,
    )
    .await;
    assert_eq!(got.body["name"], "prod");
    let reply = admin(&router, "GET", "/v1/organizations/workspaces/wrkspc_01nope", None).await;
    assert_eq!(
        (reply.status, error_type(&reply)),
        (StatusCode::NOT_FOUND, "not_found_error")
    );
}

fn today() -> String {
    let day = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    format!("{day}T00:00:00Z")
}

#[tokio::test]
async fn the_usage_report_groups_by_key_workspace_and_model_and_nulls_the_rest() {
    let sim = sim();
    let (a, _) = sim.add_console_key("a", None);
    let (b, _) = sim.add_console_key("b", None);
    for (key, model, input) in [
        (&a, "claude-haiku-4-5", 100),
        (&a, "claude-sonnet-4-5", 10),
        (&b, "claude-haiku-4-5", 1),
    ] {
        assert!(sim.record_usage(MessagesUsage {
            api_key_id: Some(key.clone()),
            model: model.into(),
            uncached_input_tokens: input,
            output_tokens: 5,
            cache_creation_5m_input_tokens: 2,
            ..Default::default()
        }));
    }
    assert!(!sim.record_usage(MessagesUsage {
        api_key_id: Some("apikey_01nope".into()),
        ..Default::default()
    }));
    let router = sim.router();
    let uri = format!(
        "/v1/organizations/usage_report/messages?starting_at={}&group_by[]=api_key_id&group_by=model&api_key_ids[]={a}",
        today()
    );
    let reply = admin(&router, "GET", &uri, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let results = reply.body["data"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let haiku = results.iter().find(|r| r["model"] == "claude-haiku-4-5").unwrap();
    assert_eq!(haiku["api_key_id"], json!(a));
    assert_eq!(haiku["uncached_input_tokens"], 100);
    assert_eq!(haiku["cache_creation"]["ephemeral_5m_input_tokens"], 2);
    assert_eq!(haiku["workspace_id"], Value::Null);
    assert_eq!(reply.body["has_more"], false);

    let ungrouped = admin(
        &router,
        "GET",
        &format!("/v1/organizations/usage_report/messages?starting_at={}", today()),
        None,
    )
    .await;
    let row = &ungrouped.body["data"][0]["results"][0];
    assert_eq!(
        (row["uncached_input_tokens"].clone(), row["api_key_id"].clone()),
        (json!(111), Value::Null)
    );
    let missing = admin(&router, "GET", "/v1/organizations/usage_report/messages", None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let bad = admin(
        &router,
        "GET",
        &format!(
            "/v1/organizations/usage_report/messages?starting_at={}&group_by[]=colour",
            today()
        ),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn reports_page_through_buckets_with_next_page() {
    let sim = sim();
    let router = sim.router();
    let start = (Timestamp::now() - jiff::SignedDuration::from_hours(24 * 9)).to_string();
    let mut buckets = 0;
    let mut page: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut uri = format!("/v1/organizations/cost_report?starting_at={start}&limit=4");
        if let Some(token) = &page {
            uri.push_str(&format!("&page={token}"));
        }
        let reply = admin(&router, "GET", &uri, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        buckets += reply.body["data"].as_array().unwrap().len();
        pages += 1;
        if reply.body["has_more"] == false {
            assert_eq!(reply.body["next_page"], Value::Null);
            break;
        }
        page = Some(reply.body["next_page"].as_str().unwrap().to_owned());
    }
    assert_eq!((buckets, pages), (10, 3));
}

#[tokio::test]
async fn the_cost_report_gives_cents_as_strings_grouped_by_workspace_and_description() {
    let sim = sim();
    let ws = sim.add_workspace("w");
    let (a, _) = sim.add_console_key("a", Some(&ws));
    sim.record_usage(MessagesUsage {
        api_key_id: Some(a),
        model: "claude-haiku-4-5".into(),
        uncached_input_tokens: 10,
        cost_cents: Some(123.45),
        ..Default::default()
    });
    sim.record_cost(CostLine {
        workspace_id: None,
        amount_cents: 50.0,
        description: Some("Web Search".into()),
        model: None,
        cost_type: "web_search".into(),
        token_type: None,
    });
    let router = sim.router();
    let uri = format!(
        "/v1/organizations/cost_report?starting_at={}&group_by[]=workspace_id&group_by[]=description",
        today()
    );
    let reply = admin(&router, "GET", &uri, None).await;
    let results = reply.body["data"][0]["results"].as_array().unwrap();
    let mine = results.iter().find(|r| r["workspace_id"] == json!(ws)).unwrap();
    assert_eq!(mine["amount"], "123.45");
    assert_eq!(mine["currency"], "USD");
    assert_eq!(mine["model"], "claude-haiku-4-5");
    assert_eq!(mine["description"], "claude-haiku-4-5 Usage");
    let default = results.iter().find(|r| r["workspace_id"].is_null()).unwrap();
    assert_eq!(
        (default["amount"].clone(), default["cost_type"].clone()),
        (json!("50"), json!("web_search"))
    );

    let total = admin(
        &router,
        "GET",
        &format!("/v1/organizations/cost_report?starting_at={}", today()),
        None,
    )
    .await;
    assert_eq!(total.body["data"][0]["results"][0]["amount"], "173.45");
    let hourly = admin(
        &router,
        "GET",
        &format!(
            "/v1/organizations/cost_report?starting_at={}&bucket_width=1h",
            today()
        ),
        None,
    )
    .await;
    assert_eq!(hourly.status, StatusCode::BAD_REQUEST);
    let by_key = admin(
        &router,
        "GET",
        &format!(
            "/v1/organizations/cost_report?starting_at={}&group_by[]=api_key_id",
            today()
        ),
        None,
    )
    .await;
    assert_eq!(by_key.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_rate_limit_fault_answers_rate_limit_error_with_retry_after() {
    let sim = sim();
    sim.inject(Fault::rate_limit(1, 3));
    let router = sim.router();
    let reply = admin(&router, "GET", "/v1/organizations/api_keys", None).await;
    assert_eq!(
        (reply.status, error_type(&reply)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error")
    );
    assert_eq!(reply.headers["retry-after"], "3");
    let hook = send(&router, "GET", "/_sim/requests", None, false, None).await;
    assert_eq!(hook.body["requests"].as_array().unwrap().len(), 1);
    assert!(hook.body["requests"][0]["credential"].is_string());
}

#[tokio::test]
async fn the_console_key_hook_shows_the_value_once_and_the_listing_never_does() {
    let sim = sim();
    let router = sim.router();
    let reply = send(
        &router,
        "POST",
        "/_sim/keys",
        None,
        false,
        Some(json!({"name": "console", "status": "inactive"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let value = reply.body["value"].as_str().unwrap().to_owned();
    assert!(value.starts_with("sk-ant-api03-"));
    let listed = send(&router, "GET", "/_sim/keys", None, false, None).await;
    assert_eq!(listed.body["keys"][0]["status"], "inactive");
    assert!(!listed.body.to_string().contains(&value));
}
