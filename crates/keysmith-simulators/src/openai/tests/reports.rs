//! The usage (completions) and costs reports: buckets, grouping, filters and page cursors.

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::openai::Usage;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A simulator at 2025-08-14 15:00 UTC with two keys and some usage; returns it with the key ids.
async fn with_usage() -> (OpenAiSim, Router, String, String) {
    let sim = OpenAiSim::new([ADMIN.to_owned()], Clock::starting_at(at("2025-08-14T15:00:00Z")));
    let router = sim.router();
    let (_, a, _) = create_account(&router, "a").await;
    let (_, b, _) = create_account(&router, "b").await;
    for usage in [
        Usage::new(&a, "gpt-4o", 1.0)
            .tokens(100, 50)
            .at(at("2025-08-13T10:00:00Z")),
        Usage::new(&a, "gpt-4o-mini", 0.25)
            .tokens(10, 5)
            .requests(3)
            .at(at("2025-08-14T09:00:00Z")),
        Usage::new(&a, "gpt-4o", 0.5)
            .tokens(20, 10)
            .at(at("2025-08-14T10:00:00Z")),
        Usage::new(&b, "gpt-4o", 7.0)
            .tokens(1, 1)
            .at(at("2025-08-14T11:00:00Z")),
    ] {
        assert!(sim.record_usage(usage));
    }
    (sim, router, a, b)
}

fn results(reply: &Reply, bucket: usize) -> Vec<Value> {
    reply.body["data"][bucket]["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn completions_are_bucketed_by_day_and_grouped_with_other_dimensions_null() {
    let (_, router, a, _) = with_usage().await;
    let start = at("2025-08-13T00:00:00Z").as_second();
    let reply = admin(
        &router,
        "GET",
        &format!("/organization/usage/completions?start_time={start}&group_by=api_key_id&group_by=model&api_key_ids={a}"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["object"], "page");
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(reply.body["data"][0]["start_time"], json!(start));
    assert_eq!(reply.body["data"][0]["end_time"], json!(start + 86_400));
    let today = results(&reply, 1);
    assert_eq!(today.len(), 2);
    let mini = today.iter().find(|r| r["model"] == "gpt-4o-mini").unwrap();
    assert_eq!(mini["object"], "organization.usage.completions.result");
    assert_eq!(
        (mini["num_model_requests"].clone(), mini["input_tokens"].clone()),
        (json!(3), json!(10))
    );
    assert_eq!(mini["api_key_id"], json!(a));
    assert_eq!(
        (mini["project_id"].clone(), mini["user_id"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(reply.body["has_more"], json!(false));
    assert_eq!(reply.body["next_page"], Value::Null);
}

#[tokio::test]
async fn without_grouping_a_bucket_sums_everything_and_filters_still_apply() {
    let (_, router, _, b) = with_usage().await;
    let start = at("2025-08-14T00:00:00Z").as_second();
    let all = admin(
        &router,
        "GET",
        &format!("/organization/usage/completions?start_time={start}"),
        None,
    )
    .await;
    let total = results(&all, 0);
    assert_eq!(total.len(), 1);
    assert_eq!(total[0]["num_model_requests"], json!(5));
    assert_eq!(total[0]["model"], Value::Null);
    let only_b = admin(
        &router,
        "GET",
        &format!("/organization/costs?start_time={start}&api_key_ids[]={b}"),
        None,
    )
    .await;
    assert_eq!(
        results(&only_b, 0)[0]["amount"],
        json!({"value": 7.0, "currency": "usd"})
    );
    let mini = admin(
        &router,
        "GET",
        &format!("/organization/usage/completions?start_time={start}&models=gpt-4o-mini"),
        None,
    )
    .await;
    assert_eq!(results(&mini, 0)[0]["num_model_requests"], json!(3));
}

#[tokio::test]
async fn costs_group_by_key_and_line_item() {
    let (_, router, a, b) = with_usage().await;
    let start = at("2025-08-14T00:00:00Z").as_second();
    let reply = admin(
        &router,
        "GET",
        &format!("/organization/costs?start_time={start}&group_by[]=api_key_id&group_by[]=line_item"),
        None,
    )
    .await;
    let rows = results(&reply, 0);
    assert_eq!(rows.len(), 3);
    let of = |key: &str, item: &str| {
        rows.iter()
            .find(|r| r["api_key_id"] == key && r["line_item"] == item)
            .cloned()
    };
    assert_eq!(of(&a, "gpt-4o, input").unwrap()["amount"]["value"], json!(0.5));
    assert_eq!(of(&b, "gpt-4o, input").unwrap()["amount"]["value"], json!(7.0));
    assert_eq!(
        of(&a, "gpt-4o-mini, input").unwrap()["object"],
        "organization.costs.result"
    );
}

#[tokio::test]
async fn pages_follow_next_page_until_the_end_time() {
    let (_, router, _, _) = with_usage().await;
    let start = at("2025-08-01T00:00:00Z").as_second();
    let mut page: Option<String> = None;
    let mut buckets = 0;
    let mut spend = 0.0;
    let mut pages = 0;
    loop {
        let mut path = format!("/organization/costs?start_time={start}&limit=5");
        if let Some(token) = &page {
            path.push_str(&format!("&page={token}"));
        }
        let reply = admin(&router, "GET", &path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        pages += 1;
        for bucket in reply.body["data"].as_array().unwrap() {
            buckets += 1;
            for row in bucket["results"].as_array().unwrap() {
                spend += row["amount"]["value"].as_f64().unwrap();
            }
        }
        if reply.body["has_more"] == json!(false) {
            break;
        }
        page = Some(reply.body["next_page"].as_str().unwrap().to_owned());
    }
    // 1st to 14th August, five daily buckets per page.
    assert_eq!((buckets, pages), (14, 3));
    assert!((spend - 8.75).abs() < 1e-9);
}

#[tokio::test]
async fn report_parameters_are_validated() {
    let (_, router, _, _) = with_usage().await;
    for bad in [
        "/organization/usage/completions",
        "/organization/usage/completions?start_time=abc",
        "/organization/usage/completions?start_time=100&end_time=50",
        "/organization/usage/completions?start_time=0&bucket_width=1w",
        "/organization/usage/completions?start_time=0&group_by=line_item",
        "/organization/costs?start_time=0&bucket_width=1h",
        "/organization/costs?start_time=0&limit=181",
        "/organization/costs?start_time=0&page=page_zz",
    ] {
        let reply = admin(&router, "GET", bad, None).await;
        error_of(&reply, StatusCode::BAD_REQUEST);
    }
    let missing = admin(&router, "GET", "/organization/costs", None).await;
    let (_, _, param, _) = error_of(&missing, StatusCode::BAD_REQUEST);
    assert_eq!(param, json!("start_time"));
}

#[tokio::test]
async fn the_usage_hook_records_entries_and_refuses_unknown_keys() {
    let (sim, router, a, _) = with_usage().await;
    let reply = send(
        &router,
        "POST",
        "/_sim/usage",
        None,
        Some(json!([{"apiKeyId": a, "model": "gpt-4o", "usd": 1.5, "inputTokens": 3}])),
    )
    .await;
    assert_eq!(reply.body, json!({"recorded": 1}));
    assert_eq!(sim.project(DEFAULT_PROJECT_ID).unwrap().usage_entries, 5);
    let unknown = send(
        &router,
        "POST",
        "/_sim/usage",
        None,
        Some(json!({"apiKeyId": "key_nope", "usd": 1})),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
