use std::time::Duration;

use keysmith_api::{
    Limits, ModelLimit, RateLimit,
    gateway_route::{GatewayApi, RouteLimits},
};
use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn requests_per_minute_reject_with_retry_after_until_the_clock_reaches_the_next_minute() {
    let (up, base) = start_upstream().await;
    let limits = RouteLimits {
        limits: Some(Limits {
            requests_per_minute: Some(2),
            ..Default::default()
        }),
        ..Default::default()
    };
    let gw = start(vec![route("r", "ks-r", GatewayApi::Openai, &base, limits)]).await;
    for _ in 0..2 {
        assert_eq!(gw.chat("ks-r", hello("gpt-4o-mini")).await.status(), 200);
    }
    let r = gw.chat("ks-r", hello("gpt-4o-mini")).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // The clock stands at 12:00:05 plus the test's running time; the minute ends at 12:01:00.
    assert!((50..=55).contains(&retry), "retry-after {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "requests_per_minute");
    assert_eq!(body["error"]["param"], "limits.requestsPerMinute");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.requestsPerMinute of 2 requests")
    );
    assert_eq!(up.requests(), 2);

    gw.clock.advance(Duration::from_secs(60));
    assert_eq!(gw.chat("ks-r", hello("gpt-4o-mini")).await.status(), 200);
    assert_eq!(up.requests(), 3);
}

#[tokio::test]
async fn tokens_per_minute_count_reported_usage_and_reserve_the_output_cap() {
    let (up, base) = start_upstream().await;
    let limits = RouteLimits {
        limits: Some(Limits {
            tokens_per_minute: Some(100),
            ..Default::default()
        }),
        request_limits: Some(keysmith_api::RequestLimits {
            max_input_tokens: None,
            max_output_tokens: Some(20),
        }),
        ..Default::default()
    };
    let gw = start(vec![route("t", "ks-t", GatewayApi::Openai, &base, limits)]).await;
    // Each request reserves its input bound (4 + 2 + 8 + 3 = 17) plus the cap (20) and settles at
    // the reported 10 + 20 = 30: three fit in 100 (90 used), a fourth (90 + 37) does not.
    for _ in 0..3 {
        assert_eq!(gw.chat("ks-t", hello("gpt-4o-mini")).await.status(), 200);
    }
    let r = gw.chat("ks-t", hello("gpt-4o-mini")).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "tokens_per_minute");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("90 used"),
        "{body}"
    );
    assert_eq!(up.requests(), 3);

    gw.clock.advance(Duration::from_secs(60));
    assert_eq!(gw.chat("ks-t", hello("gpt-4o-mini")).await.status(), 200);
}

#[tokio::test]
async fn a_rate_limit_over_an_interval_resets_with_its_window() {
    let (_up, base) = start_upstream().await;
    let limits = RouteLimits {
        rate_limit: Some(RateLimit {
            requests: 1,
            interval_seconds: 3600,
        }),
        ..Default::default()
    };
    let gw = start(vec![route("h", "ks-h", GatewayApi::Openai, &base, limits)]).await;
    assert_eq!(gw.chat("ks-h", hello("m")).await.status(), 200);
    let r = gw.chat("ks-h", hello("m")).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3590..=3595).contains(&retry), "retry-after {retry}");
    gw.clock.advance(Duration::from_secs(3600));
    assert_eq!(gw.chat("ks-h", hello("m")).await.status(), 200);
}

#[tokio::test]
async fn a_model_limit_applies_to_its_model_only() {
    let (_up, base) = start_upstream().await;
    let limits = RouteLimits {
        model_limits: vec![ModelLimit {
            model: "gpt-4o".into(),
            requests_per_minute: Some(1),
            requests_per_day: None,
            tokens_per_minute: None,
            tokens_per_day: None,
        }],
        ..Default::default()
    };
    let gw = start(vec![route("m", "ks-m", GatewayApi::Openai, &base, limits)]).await;
    assert_eq!(gw.chat("ks-m", hello("gpt-4o")).await.status(), 200);
    let r = gw.chat("ks-m", hello("gpt-4o")).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_requests_per_minute");
    assert_eq!(body["error"]["param"], "modelLimits[gpt-4o].requestsPerMinute");
    for _ in 0..3 {
        assert_eq!(gw.chat("ks-m", hello("gpt-4o-mini")).await.status(), 200);
    }
}

#[tokio::test]
async fn use_anyway_forwards_over_a_window_and_counts_the_overrun() {
    let (up, base) = start_upstream().await;
    let limits = RouteLimits {
        limits: Some(Limits {
            requests_per_day: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut r = route("u", "ks-u", GatewayApi::Openai, &base, limits);
    r.on_limit_exceeded = keysmith_api::OnLimitExceeded::UseAnyway;
    let gw = start(vec![r]).await;
    for _ in 0..3 {
        assert_eq!(gw.chat("ks-u", hello("m")).await.status(), 200);
    }
    assert_eq!(up.requests(), 3);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"name="u",limit="limits.requestsPerDay"} 2"#),
        "{metrics}"
    );
    assert_eq!(gw.usage_of("u").await["requestsToday"], 3);
}
