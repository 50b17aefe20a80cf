use std::sync::Arc;

use futures::StreamExt;
use keysmith_api::{
    Limits,
    gateway_route::{GatewayApi, RouteLimits},
};
use serde_json::json;
use tokio::sync::Notify;

use crate::support::*;

#[tokio::test]
async fn an_openai_stream_is_relayed_chunk_by_chunk_and_its_usage_counted() {
    let (up, base) = start_upstream().await;
    let hold = Arc::new(Notify::new());
    *up.hold.lock().unwrap() = Some(hold.clone());
    let limits = RouteLimits {
        limits: Some(Limits {
            tokens_per_day: Some(1_000_000),
            ..Default::default()
        }),
        ..Default::default()
    };
    let gw = start(vec![route("s", "ks-s", GatewayApi::Openai, &base, limits)]).await;
    let mut body = hello("gpt-4o-mini");
    body["stream"] = json!(true);
    let r = gw.chat("ks-s", body).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = r.bytes_stream();
    // The provider holds its second chunk until told; the first must already be here.
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("Hel"));
    hold.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let rest = String::from_utf8(rest).unwrap();
    // The client did not ask for the usage chunk the gateway added, so it does not get it.
    assert!(
        !rest.contains("\"usage\"") && rest.ends_with("\"lo\"}}]}\n\ndata: [DONE]\n\n"),
        "{rest}"
    );
    assert_eq!(
        up.last_body()["stream_options"]["include_usage"],
        true,
        "the gateway asked for usage"
    );

    let usage = gw.usage_of("s").await;
    assert_eq!(usage["tokensToday"]["input"], PROMPT_TOKENS);
    assert_eq!(usage["tokensToday"]["output"], DEFAULT_COMPLETION);
    let day = format!("ns/s|key|tpd|{}", gw.clock.now().as_second() / 86_400 * 86_400);
    assert_eq!(gw.counters.value(&day), PROMPT_TOKENS + DEFAULT_COMPLETION);
}

#[tokio::test]
async fn an_anthropic_stream_is_counted_from_message_start_and_message_delta() {
    let (_up, base) = start_upstream().await;
    let gw = start(vec![route(
        "a",
        "ks-a",
        GatewayApi::Anthropic,
        &base,
        RouteLimits::default(),
    )])
    .await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.messages("ks-a", body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("message_stop"));
    let usage = gw.usage_of("a").await;
    assert_eq!(usage["tokensToday"]["input"], PROMPT_TOKENS);
    assert_eq!(usage["tokensToday"]["output"], 64);
    assert_eq!(usage["models"][0]["model"], "claude-sonnet-4-5");
}

#[tokio::test]
async fn a_non_streaming_anthropic_answer_sends_the_provider_key_as_x_api_key() {
    let (up, base) = start_upstream().await;
    let gw = start(vec![route(
        "a",
        "ks-a",
        GatewayApi::Anthropic,
        &base,
        RouteLimits::default(),
    )])
    .await;
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 7, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.messages("ks-a", body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(up.credentials.lock().unwrap()[0], UPSTREAM_KEY);
    assert_eq!(gw.usage_of("a").await["tokensToday"]["output"], 7);
}

#[tokio::test]
async fn a_stream_that_goes_silent_is_ended_after_the_idle_timeout_and_settled() {
    let (up, base) = start_upstream().await;
    // Never notified: the provider stalls after its first chunk.
    *up.hold.lock().unwrap() = Some(Arc::new(Notify::new()));
    let config = keysmith_gateway::GatewayConfig {
        idle_timeout: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    let gw = start_with(
        config,
        vec![route(
            "i",
            "ks-i",
            GatewayApi::Openai,
            &base,
            RouteLimits::default(),
        )],
    )
    .await;
    let mut body = hello("gpt-4o-mini");
    body["stream"] = json!(true);
    let r = gw.chat("ks-i", body).await;
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    assert!(stream.next().await.unwrap().is_ok());
    let end = stream.next().await;
    assert!(
        matches!(end, Some(Err(_)) | None),
        "the body ends instead of hanging: {end:?}"
    );
    assert_eq!(
        gw.usage_of("i").await["requestsToday"],
        1,
        "the request was settled and recorded"
    );
}

#[tokio::test]
async fn a_client_that_asks_for_stream_usage_gets_the_usage_chunk() {
    let (_up, base) = start_upstream().await;
    let gw = start(vec![route(
        "s",
        "ks-s",
        GatewayApi::Openai,
        &base,
        RouteLimits::default(),
    )])
    .await;
    let mut body = hello("gpt-4o-mini");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = gw.chat("ks-s", body).await.text().await.unwrap();
    assert!(text.contains("\"usage\""), "{text}");
    assert_eq!(
        gw.usage_of("s").await["tokensToday"]["output"],
        DEFAULT_COMPLETION
    );
}
