//! Spend, usage windows, limits, `/credits` and `/activity`, driven by the simulator clock.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::openrouter::Spend;

async fn key_data(router: &Router, hash: &str) -> Value {
    let reply = manage(router, "GET", &format!("/keys/{hash}"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body["data"].clone()
}

/// The four credit-usage counters: all time, day, week, month.
fn usages(data: &Value) -> [f64; 4] {
    ["usage", "usage_daily", "usage_weekly", "usage_monthly"].map(|field| data[field].as_f64().unwrap())
}

fn byok_usages(data: &Value) -> [f64; 4] {
    [
        "byok_usage",
        "byok_usage_daily",
        "byok_usage_weekly",
        "byok_usage_monthly",
    ]
    .map(|field| data[field].as_f64().unwrap())
}

#[tokio::test]
async fn the_daily_window_resets_at_utc_midnight() {
    // 2025-08-13 is a Wednesday, so the week and month carry on.
    let sim = sim_at("2025-08-13T23:59:00Z");
    let router = sim.router();
    let (hash, _) = create(&router, json!({"name": "a", "limit": 10, "limit_reset": "daily"})).await;
    sim.add_spend(&hash, 4.0, false);
    let before = key_data(&router, &hash).await;
    assert_eq!(usages(&before), [4.0, 4.0, 4.0, 4.0]);
    assert_eq!(before["limit_remaining"], json!(6.0));

    sim.clock().advance(Duration::from_secs(120));
    let after = key_data(&router, &hash).await;
    assert_eq!(usages(&after), [4.0, 0.0, 4.0, 4.0]);
    assert_eq!(after["limit_remaining"], json!(10.0));
}

#[tokio::test]
async fn the_weekly_window_resets_on_monday_at_utc_midnight() {
    // 2025-08-17 is a Sunday.
    let sim = sim_at("2025-08-17T23:59:00Z");
    let router = sim.router();
    let (hash, _) = create(
        &router,
        json!({"name": "a", "limit": 10, "limit_reset": "weekly"}),
    )
    .await;
    sim.add_spend(&hash, 3.0, false);
    assert_eq!(key_data(&router, &hash).await["limit_remaining"], json!(7.0));

    sim.clock().advance(Duration::from_secs(120));
    let after = key_data(&router, &hash).await;
    assert_eq!(usages(&after), [3.0, 0.0, 0.0, 3.0]);
    assert_eq!(after["limit_remaining"], json!(10.0));
}

#[tokio::test]
async fn the_monthly_window_resets_on_the_first_of_the_month() {
    // 2025-09-30 is a Tuesday: crossing into October leaves the week running.
    let sim = sim_at("2025-09-30T23:59:00Z");
    let router = sim.router();
    let (hash, _) = create(
        &router,
        json!({"name": "a", "limit": 10, "limit_reset": "monthly"}),
    )
    .await;
    sim.add_spend(&hash, 8.0, false);
    assert_eq!(key_data(&router, &hash).await["limit_remaining"], json!(2.0));

    sim.clock().advance(Duration::from_secs(120));
    let after = key_data(&router, &hash).await;
    assert_eq!(usages(&after), [8.0, 0.0, 8.0, 0.0]);
    assert_eq!(after["limit_remaining"], json!(10.0));
}

#[tokio::test]
async fn without_a_reset_the_limit_counts_all_time_spend_and_never_goes_below_zero() {
    let sim = sim_at("2025-08-13T12:00:00Z");
    let router = sim.router();
    let (hash, _) = create(&router, json!({"name": "a", "limit": 5})).await;
    sim.add_spend(&hash, 3.0, false);
    sim.clock().advance(Duration::from_secs(40 * 24 * 3600));
    sim.add_spend(&hash, 1.5, false);
    assert_eq!(key_data(&router, &hash).await["limit_remaining"], json!(0.5));
    sim.add_spend(&hash, 4.0, false);
    let data = key_data(&router, &hash).await;
    assert_eq!(data["limit_remaining"], json!(0.0));
    assert_eq!(data["usage"], json!(8.5));
}

#[tokio::test]
async fn byok_spend_counts_against_the_limit_only_when_included() {
    let sim = sim();
    let router = sim.router();
    let (excluded, _) = create(&router, json!({"name": "a", "limit": 10})).await;
    let (included, _) = create(
        &router,
        json!({"name": "b", "limit": 10, "include_byok_in_limit": true}),
    )
    .await;
    for hash in [&excluded, &included] {
        sim.add_spend(hash, 1.0, false);
        sim.add_spend(hash, 2.0, true);
    }
    let data = key_data(&router, &excluded).await;
    assert_eq!(usages(&data), [1.0; 4]);
    assert_eq!(byok_usages(&data), [2.0; 4]);
    assert_eq!(data["limit_remaining"], json!(9.0));
    assert_eq!(key_data(&router, &included).await["limit_remaining"], json!(7.0));
}

#[tokio::test]
async fn a_key_without_a_limit_has_no_limit_remaining() {
    let sim = sim();
    let router = sim.router();
    let (hash, _) = create_named(&router, "uncapped").await;
    sim.add_spend(&hash, 1.0, false);
    let data = key_data(&router, &hash).await;
    assert_eq!(data["limit"], Value::Null);
    assert_eq!(data["limit_remaining"], Value::Null);
    assert_eq!(data["usage"], json!(1.0));
}

#[tokio::test]
async fn the_spend_hook_adds_a_ledger_entry_and_rejects_unknown_keys() {
    let sim = sim();
    let router = sim.router();
    let (hash, _) = create(&router, json!({"name": "a", "limit": 10})).await;
    let spend = json!({"usd": 1.5, "byok": false, "requests": 1, "promptTokens": 10, "completionTokens": 5});
    let reply = send(
        &router,
        "POST",
        &format!("/_sim/keys/{hash}/spend"),
        None,
        Some(spend),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["key"]["usage"], json!(1.5));
    assert_eq!(reply.body["key"]["limit_remaining"], json!(8.5));
    let unknown = format!("/_sim/keys/{}/spend", "f".repeat(64));
    let reply = send(&router, "POST", &unknown, None, Some(json!({"usd": 1}))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = send(
        &router,
        "POST",
        &format!("/_sim/keys/{hash}/spend"),
        None,
        Some(json!({"usd": -1})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn credits_report_total_credits_and_the_credit_spend_of_every_key() {
    let sim = sim();
    let router = sim.router();
    let (a, _) = create_named(&router, "a").await;
    let (b, _) = create_named(&router, "b").await;
    sim.add_spend(&a, 1.25, false);
    sim.add_spend(&b, 2.5, false);
    sim.add_spend(&b, 9.0, true);
    manage(&router, "DELETE", &format!("/keys/{b}"), None).await;
    let reply = manage(&router, "GET", "/credits", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"data": {"total_credits": 100.0, "total_usage": 3.75}})
    );

    let set = send(
        &router,
        "POST",
        "/_sim/credits",
        None,
        Some(json!({"totalCredits": 20})),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    let reply = manage(&router, "GET", "/credits", None).await;
    assert_eq!(reply.body["data"]["total_credits"], json!(20.0));
}

#[tokio::test]
async fn activity_sums_completed_utc_days_per_date_and_filters_by_key_and_date() {
    let sim = sim_at("2025-08-10T09:00:00Z");
    let router = sim.router();
    let (a, _) = create_named(&router, "a").await;
    let (b, _) = create_named(&router, "b").await;
    let tokens = Spend {
        prompt_tokens: 10,
        completion_tokens: 5,
        ..Spend::usd(1.0, false)
    };
    sim.record_spend(&a, tokens.clone());
    sim.record_spend(&a, tokens);
    sim.add_spend(&b, 0.5, true);
    sim.clock().advance(Duration::from_secs(24 * 3600));
    sim.add_spend(&a, 2.0, false);
    sim.clock().advance(Duration::from_secs(24 * 3600));
    sim.add_spend(&a, 100.0, false); // today (2025-08-12): not a completed day yet

    let all = manage(&router, "GET", "/activity", None).await;
    assert_eq!(all.status, StatusCode::OK);
    let rows = all.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["date"], json!("2025-08-11"));
    assert_eq!(rows[0]["usage"], json!(2.0));
    assert_eq!(rows[1]["date"], json!("2025-08-10"));
    assert_eq!(rows[1]["usage"], json!(2.0));
    assert_eq!(rows[1]["byok_usage_inference"], json!(0.5));
    assert_eq!(rows[1]["requests"], json!(3));
    assert_eq!(rows[1]["prompt_tokens"], json!(20));
    assert_eq!(rows[1]["model"], json!(crate::openrouter::DEFAULT_MODEL));
    for field in [
        "model_permaslug",
        "endpoint_id",
        "provider_name",
        "completion_tokens",
        "reasoning_tokens",
    ] {
        assert!(rows[1].get(field).is_some(), "{field}");
    }

    let only_b = manage(&router, "GET", &format!("/activity?api_key_hash={b}"), None).await;
    let rows = only_b.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["usage"], json!(0.0));
    assert_eq!(rows[0]["requests"], json!(1));
    let one_day = manage(&router, "GET", "/activity?date=2025-08-11", None).await;
    assert_eq!(one_day.body["data"].as_array().unwrap().len(), 1);

    let today = manage(&router, "GET", "/activity?date=2025-08-12", None).await;
    error_message(&today, StatusCode::BAD_REQUEST);
    let malformed = manage(&router, "GET", "/activity?date=yesterday", None).await;
    error_message(&malformed, StatusCode::BAD_REQUEST);
    let unknown = manage(
        &router,
        "GET",
        &format!("/activity?api_key_hash={}", "0".repeat(64)),
        None,
    )
    .await;
    error_message(&unknown, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn activity_forgets_days_older_than_thirty() {
    let sim = sim_at("2025-08-01T12:00:00Z");
    let router = sim.router();
    let (a, _) = create_named(&router, "a").await;
    sim.add_spend(&a, 1.0, false);
    sim.clock().advance(Duration::from_secs(30 * 24 * 3600));
    let reply = manage(&router, "GET", "/activity", None).await;
    assert_eq!(
        reply.body["data"].as_array().unwrap().len(),
        1,
        "2025-08-01 is 30 days before 08-31"
    );
    sim.clock().advance(Duration::from_secs(24 * 3600));
    let reply = manage(&router, "GET", "/activity", None).await;
    assert_eq!(reply.body["data"], json!([]));
}
