//! Project rate limits and the project spend limit.

use axum::http::StatusCode;
use serde_json::json;

use super::*;
use crate::openai::Usage;

#[tokio::test]
async fn rate_limits_list_one_row_per_model_with_only_the_fields_that_apply() {
    let router = sim().router();
    let reply = admin(&router, "GET", &project_path("/rate_limits"), None).await;
    let rows = reply.body["data"].as_array().unwrap();
    assert!(rows.len() >= 5);
    assert_eq!(reply.body["has_more"], json!(false));
    let gpt = rows.iter().find(|r| r["model"] == "gpt-4o-mini").unwrap();
    assert_eq!(gpt["id"], "rl-gpt-4o-mini");
    assert_eq!(gpt["object"], "project.rate_limit");
    assert_eq!(gpt["max_requests_per_1_minute"], 500);
    assert!(gpt.get("max_images_per_1_minute").is_none());
    let dalle = rows.iter().find(|r| r["model"] == "dall-e-3").unwrap();
    assert_eq!(dalle["max_images_per_1_minute"], 5);
    let paged = admin(&router, "GET", &project_path("/rate_limits?limit=2"), None).await;
    assert_eq!(paged.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(paged.body["has_more"], json!(true));
}

#[tokio::test]
async fn updating_a_rate_limit_changes_only_the_fields_sent() {
    let sim = sim();
    let router = sim.router();
    let path = project_path("/rate_limits/rl-gpt-4o-mini");
    let reply = admin(
        &router,
        "POST",
        &path,
        Some(json!({"max_requests_per_1_minute": 100})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["max_requests_per_1_minute"], 100);
    assert_eq!(reply.body["max_tokens_per_1_minute"], 200_000);
    let row = sim
        .project(DEFAULT_PROJECT_ID)
        .unwrap()
        .rate_limits
        .into_iter()
        .find(|r| r.model == "gpt-4o-mini")
        .unwrap();
    assert_eq!(
        (row.max_requests_per_1_minute, row.max_requests_per_1_day),
        (Some(100), Some(10_000))
    );
}

#[tokio::test]
async fn rate_limit_updates_that_are_unknown_inapplicable_or_above_the_organisation_get_400() {
    let sim = sim();
    let router = sim.router();
    let path = project_path("/rate_limits/rl-gpt-4o");
    for (body, param) in [
        (json!({"max_requests_per_1_hour": 1}), "max_requests_per_1_hour"),
        (json!({"max_images_per_1_minute": 1}), "max_images_per_1_minute"),
        (
            json!({"max_tokens_per_1_minute": 300_001}),
            "max_tokens_per_1_minute",
        ),
        (
            json!({"max_tokens_per_1_minute": "many"}),
            "max_tokens_per_1_minute",
        ),
    ] {
        let reply = admin(&router, "POST", &path, Some(body)).await;
        let (_, _, got, _) = error_of(&reply, StatusCode::BAD_REQUEST);
        assert_eq!(got, json!(param));
    }
    let unchanged = sim.project(DEFAULT_PROJECT_ID).unwrap().rate_limits;
    assert!(
        unchanged
            .iter()
            .any(|r| r.model == "gpt-4o" && r.max_tokens_per_1_minute == Some(30_000))
    );
    let missing = admin(
        &router,
        "POST",
        &project_path("/rate_limits/rl-nope"),
        Some(json!({})),
    )
    .await;
    error_of(&missing, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_spend_limit_is_set_read_enforced_and_deleted_in_cents() {
    let sim = sim();
    let router = sim.router();
    let path = project_path("/spend_limit");
    error_of(&admin(&router, "GET", &path, None).await, StatusCode::NOT_FOUND);
    let body = json!({"threshold_amount": 500, "currency": "USD", "interval": "month"});
    let set = admin(&router, "POST", &path, Some(body)).await;
    assert_eq!(
        set.body,
        json!({"object": "project.spend_limit", "threshold_amount": 500, "currency": "USD",
               "interval": "month", "enforcement": {"status": "inactive"}})
    );
    let (_, key, _) = create_account(&router, "spender").await;
    assert!(sim.record_usage(Usage::new(&key, "gpt-4o", 5.0)));
    let got = admin(&router, "GET", &path, None).await;
    assert_eq!(got.body["enforcement"]["status"], "enforcing");
    assert_eq!(
        sim.project(DEFAULT_PROJECT_ID).unwrap().spend_limit_cents,
        Some(500)
    );

    let bad = admin(
        &router,
        "POST",
        &path,
        Some(json!({"threshold_amount": 0, "currency": "USD", "interval": "month"})),
    )
    .await;
    error_of(&bad, StatusCode::BAD_REQUEST);
    let deleted = admin(&router, "DELETE", &path, None).await;
    assert_eq!(
        deleted.body,
        json!({"object": "project.spend_limit.deleted", "deleted": true})
    );
    error_of(
        &admin(&router, "DELETE", &path, None).await,
        StatusCode::NOT_FOUND,
    );
}
