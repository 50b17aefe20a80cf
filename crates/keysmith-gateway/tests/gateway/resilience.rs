use std::collections::BTreeMap;

use keysmith_api::{
    Limits, RequestLimits,
    gateway_route::{GatewayApi, ROUTE_DATA_KEY, RouteLimits, UPSTREAM_KEY_DATA_KEY},
};
use keysmith_gateway::{GatewayConfig, routes::route_from_secret_data, tokens::TokenizerMode};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn an_unreachable_upstream_answers_502_and_releases_the_tokens_it_reserved() {
    // A port nothing listens on: bind one, then let it go.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let limits = RouteLimits {
        limits: Some(Limits {
            tokens_per_minute: Some(1000),
            ..Default::default()
        }),
        ..Default::default()
    };
    let gw = start(vec![route(
        "x",
        "ks-x",
        GatewayApi::Openai,
        &format!("http://{closed}/v1"),
        limits,
    )])
    .await;
    let r = gw.chat("ks-x", hello("gpt-4o-mini")).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    let minute = gw.clock.now().as_second() / 60 * 60;
    assert_eq!(gw.counters.value(&format!("ns/x|key|tpm|{minute}")), 0);
    assert!(
        gw.metrics()
            .await
            .contains(r#"name="x",outcome="upstream_error""#)
    );
}

#[tokio::test]
async fn a_route_of_an_unknown_version_keeps_the_old_route_serving() {
    let (_up, base) = start_upstream().await;
    let gw = start(vec![route(
        "v",
        "ks-v",
        GatewayApi::Openai,
        &base,
        RouteLimits::default(),
    )])
    .await;
    let mut newer = serde_json::to_value(route(
        "v",
        "ks-v2",
        GatewayApi::Openai,
        &base,
        RouteLimits::default(),
    ))
    .unwrap();
    newer["version"] = json!(2);
    let data = BTreeMap::from([
        (ROUTE_DATA_KEY.to_owned(), serde_json::to_vec(&newer).unwrap()),
        (UPSTREAM_KEY_DATA_KEY.to_owned(), b"sk-other".to_vec()),
    ]);
    // The static source named its Secret route-0.
    gw.table.apply("route-0", route_from_secret_data(&data));
    assert_eq!(gw.chat("ks-v", hello("m")).await.status(), 200);
    assert_eq!(gw.chat("ks-v2", hello("m")).await.status(), 401);
    assert!(
        gw.metrics()
            .await
            .contains(r#"keysmith_gateway_route_errors_total{reason="unknown_version"} 1"#)
    );
}

#[tokio::test]
async fn the_exact_tokenizer_admits_an_openai_prompt_the_byte_bound_would_refuse() {
    let (up, base) = start_upstream().await;
    let limits = RouteLimits {
        request_limits: Some(RequestLimits {
            max_input_tokens: Some(2000),
            max_output_tokens: None,
        }),
        ..Default::default()
    };
    let config = GatewayConfig {
        tokenizer: TokenizerMode::Exact,
        ..Default::default()
    };
    let gw = start_with(
        config,
        vec![route("e", "ks-e", GatewayApi::Openai, &base, limits)],
    )
    .await;
    // 6,000 bytes but about 1,000 o200k tokens.
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "lorem ipsum ".repeat(500)}]});
    keysmith_gateway::tokens::openai_tokenizer("gpt-4o-mini").unwrap(); // loaded, as after warm-up
    assert_eq!(gw.chat("ks-e", body).await.status(), 200);
    assert_eq!(up.requests(), 1);
    let too_long = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "lorem ipsum ".repeat(2000)}]});
    let r = gw.chat("ks-e", too_long).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("upper bound"),
        "an exact count says so: {message}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_read_whole() {
    let (up, base) = start_upstream().await;
    let config = GatewayConfig {
        max_body_bytes: 1024,
        ..Default::default()
    };
    let gw = start_with(
        config,
        vec![route(
            "b",
            "ks-b",
            GatewayApi::Openai,
            &base,
            RouteLimits::default(),
        )],
    )
    .await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    assert_eq!(gw.chat("ks-b", body).await.status(), 413);
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn unauthorized_requests_are_counted_without_naming_a_key() {
    let gw = start(vec![]).await;
    assert_eq!(gw.chat("ks-none", hello("m")).await.status(), 401);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            r#"keysmith_gateway_requests_total{namespace="",name="",outcome="unauthorized",limit=""} 1"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("ks-none"));
}

#[tokio::test]
async fn a_metered_call_with_a_body_that_is_not_json_is_refused() {
    let (up, base) = start_upstream().await;
    let gw = start(vec![route(
        "j",
        "ks-j",
        GatewayApi::Openai,
        &base,
        RouteLimits::default(),
    )])
    .await;
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth("ks-j")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    assert_eq!(up.requests(), 0);
}
