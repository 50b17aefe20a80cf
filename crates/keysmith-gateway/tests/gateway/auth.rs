use keysmith_api::gateway_route::{GatewayApi, RouteLimits, RouteState};
use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn unknown_wrong_and_missing_keys_get_the_same_401() {
    let (up, base) = start_upstream().await;
    let gw = start(vec![route(
        "chat",
        "ks-right-key",
        GatewayApi::Openai,
        &base,
        RouteLimits::default(),
    )])
    .await;

    let mut answers = Vec::new();
    for key in ["ks-unknown", "ks-right-kez", "ks-right-key "] {
        let r = gw.chat(key, hello("gpt-4o-mini")).await;
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .json(&hello("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    answers.push((r.status().as_u16(), r.text().await.unwrap()));

    // "ks-right-key " is trimmed like any header value and so is the right key: 200.
    let (ok, _) = answers.remove(2);
    assert_eq!(ok, 200);
    for (status, body) in &answers {
        assert_eq!(*status, 401);
        assert_eq!(body, &answers[0].1);
    }
    let body: Value = serde_json::from_str(&answers[0].1).unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(up.requests(), 1, "only the right key reached the provider");
    assert_eq!(
        up.credentials.lock().unwrap()[0],
        format!("Bearer {UPSTREAM_KEY}")
    );
}

#[tokio::test]
async fn anthropic_paths_answer_401_in_anthropic_shape() {
    let (_up, base) = start_upstream().await;
    let gw = start(vec![route(
        "a",
        "ks-a",
        GatewayApi::Anthropic,
        &base,
        RouteLimits::default(),
    )])
    .await;
    let r = gw
        .messages(
            "ks-nope",
            serde_json::json!({"model": "claude", "max_tokens": 5, "messages": []}),
        )
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn a_disabled_key_gets_403_and_never_reaches_the_provider() {
    let (up, base) = start_upstream().await;
    let mut disabled = route("off", "ks-off", GatewayApi::Openai, &base, RouteLimits::default());
    disabled.state = RouteState::Disabled;
    let mut expired = route(
        "old",
        "ks-old",
        GatewayApi::Anthropic,
        &base,
        RouteLimits::default(),
    );
    expired.state = RouteState::Expired;
    let gw = start(vec![disabled, expired]).await;

    let r = gw.chat("ks-off", hello("gpt-4o-mini")).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "key_disabled");
    assert!(body["error"]["message"].as_str().unwrap().contains("ns/off"));

    let r = gw
        .messages(
            "ks-old",
            serde_json::json!({"model": "c", "max_tokens": 5, "messages": []}),
        )
        .await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "permission_error");
    assert_eq!(body["error"]["code"], "key_expired");
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn other_paths_pass_through_and_count_as_requests() {
    let (up, base) = start_upstream().await;
    let limits = RouteLimits {
        limits: Some(keysmith_api::Limits {
            requests_per_minute: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    let gw = start(vec![route("m", "ks-m", GatewayApi::Openai, &base, limits)]).await;
    let get = || {
        gw.http
            .get(format!("{}/v1/models", gw.base))
            .bearer_auth("ks-m")
            .send()
    };
    let r = get().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["id"], "gpt-4o-mini");
    assert_eq!(get().await.unwrap().status(), 429);
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn readiness_waits_for_the_first_route_listing() {
    let gw = start(vec![]).await;
    let r = gw.http.get(format!("{}/readyz", gw.admin)).send().await.unwrap();
    assert_eq!(r.status(), 200, "static routes are synced once applied");
    let table = keysmith_gateway::routes::RouteTable::default();
    assert!(!table.is_synced());
    let r = gw.http.get(format!("{}/healthz", gw.admin)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
