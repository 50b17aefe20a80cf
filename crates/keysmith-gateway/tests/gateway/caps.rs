use keysmith_api::{
    OnLimitExceeded, RequestLimits,
    gateway_route::{GatewayApi, RouteLimits},
};
use serde_json::{Value, json};

use crate::support::*;

fn capped(input: u64, output: u64) -> RouteLimits {
    RouteLimits {
        request_limits: Some(RequestLimits {
            max_input_tokens: Some(input),
            max_output_tokens: Some(output),
        }),
        ..Default::default()
    }
}

fn long_prompt(words: usize) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "lorem ipsum ".repeat(words)}]})
}

#[tokio::test]
async fn a_long_prompt_over_the_input_cap_is_rejected_in_openai_shape() {
    let (up, base) = start_upstream().await;
    let gw = start(vec![route(
        "c",
        "ks-c",
        GatewayApi::Openai,
        &base,
        capped(200, 0),
    )])
    .await;

    let r = gw.chat("ks-c", long_prompt(500)).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "keysmith_limit");
    assert_eq!(body["error"]["code"], "max_input_tokens");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("maxInputTokens of 200"), "{message}");
    assert!(message.contains("6015 tokens"), "the count is named: {message}");
    assert_eq!(up.requests(), 0);

    assert_eq!(gw.chat("ks-c", hello("gpt-4o-mini")).await.status(), 200);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"outcome="rejected_by_limit",limit="requestLimits.maxInputTokens""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_anthropic_input_over_the_cap_is_rejected_in_anthropic_shape() {
    let (_up, base) = start_upstream().await;
    let gw = start(vec![route(
        "a",
        "ks-a",
        GatewayApi::Anthropic,
        &base,
        capped(50, 0),
    )])
    .await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
        "messages": [{"role": "user", "content": "x".repeat(100)}]});
    let r = gw.messages("ks-a", body).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "keysmith_limit");
    assert_eq!(body["error"]["code"], "max_input_tokens");
    assert!(body["error"]["message"].as_str().unwrap().contains("upper bound"));
}

#[tokio::test]
async fn use_anyway_forwards_an_input_over_the_cap_and_reports_the_overrun() {
    let (up, base) = start_upstream().await;
    let mut r = route("u", "ks-u", GatewayApi::Openai, &base, capped(200, 0));
    r.on_limit_exceeded = OnLimitExceeded::UseAnyway;
    let gw = start(vec![r]).await;
    assert_eq!(gw.chat("ks-u", long_prompt(500)).await.status(), 200);
    assert_eq!(up.requests(), 1);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"keysmith_gateway_limit_overruns_total{namespace="ns",name="u",limit="requestLimits.maxInputTokens"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn asking_for_more_output_than_the_cap_is_rejected_under_reject() {
    let (up, base) = start_upstream().await;
    let gw = start(vec![route(
        "c",
        "ks-c",
        GatewayApi::Openai,
        &base,
        capped(0, 100),
    )])
    .await;
    let mut body = hello("gpt-4o-mini");
    body["max_tokens"] = json!(101);
    let r = gw.chat("ks-c", body).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "max_output_tokens");
    assert!(body["error"]["message"].as_str().unwrap().contains("101"));
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn a_request_naming_no_maximum_gets_the_cap_injected() {
    let (up, base) = start_upstream().await;
    let gw = start(vec![route(
        "c",
        "ks-c",
        GatewayApi::Openai,
        &base,
        capped(0, 100),
    )])
    .await;
    assert_eq!(gw.chat("ks-c", hello("gpt-4o-mini")).await.status(), 200);
    assert_eq!(up.last_body()["max_completion_tokens"], 100);
    let mut within = hello("gpt-4o-mini");
    within["max_tokens"] = json!(40);
    assert_eq!(gw.chat("ks-c", within).await.status(), 200);
    assert_eq!(up.last_body()["max_tokens"], 40);
    assert!(
        up.last_body().get("max_completion_tokens").is_none(),
        "a request within the cap is unchanged"
    );
}

#[tokio::test]
async fn use_anyway_forwards_a_larger_output_request_unchanged() {
    let (up, base) = start_upstream().await;
    let mut r = route("u", "ks-u", GatewayApi::Openai, &base, capped(0, 100));
    r.on_limit_exceeded = OnLimitExceeded::UseAnyway;
    let gw = start(vec![r]).await;
    let mut body = hello("gpt-4o-mini");
    body["max_tokens"] = json!(500);
    assert_eq!(gw.chat("ks-u", body).await.status(), 200);
    assert_eq!(up.last_body()["max_tokens"], 500);
    assert!(
        gw.metrics()
            .await
            .contains(r#"limit="requestLimits.maxOutputTokens"} 1"#)
    );
}
