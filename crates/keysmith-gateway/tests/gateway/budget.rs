use keysmith_api::{
    Budget, BudgetReset, RequestLimits,
    gateway_route::{GatewayApi, ModelPrice, RouteLimits},
};
use serde_json::Value;

use crate::support::*;

fn budget(limit_usd: f64, reset: BudgetReset) -> Option<Budget> {
    Some(Budget {
        limit_usd,
        reset: Some(reset),
        include_byok: None,
    })
}

#[tokio::test]
async fn a_budget_is_spent_by_the_cost_the_provider_reports() {
    let (up, base) = start_upstream().await;
    *up.cost.lock().unwrap() = Some(0.4);
    let limits = RouteLimits {
        budget: budget(1.0, BudgetReset::Monthly),
        ..Default::default()
    };
    let gw = start(vec![route("b", "ks-b", GatewayApi::Openai, &base, limits)]).await;
    // No price list: nothing can be reserved, so requests go while spend is under the budget and
    // the reported cost is charged afterwards (0.4, 0.8, 1.2).
    for _ in 0..3 {
        assert_eq!(gw.chat("ks-b", hello("openai/gpt-4o")).await.status(), 200);
    }
    let r = gw.chat("ks-b", hello("openai/gpt-4o")).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let to_january = 24 * 86_400 + 11 * 3600 + 59 * 60 + 55;
    assert!(
        (to_january - 5..=to_january).contains(&retry),
        "retry-after {retry}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget of 1.00 USD"),
        "{body}"
    );
    assert_eq!(up.requests(), 3);

    let usage = gw.usage_of("b").await;
    assert_eq!(usage["spendUsd"], 1.2);
    assert_eq!(usage["windowResetsAt"], "2027-01-01T00:00:00Z");
    assert_eq!(usage["requestsToday"], 3);
    assert_eq!(usage["tokensToday"]["input"], 3 * PROMPT_TOKENS);
    assert_eq!(usage["models"][0]["model"], "openai/gpt-4o");
}

#[tokio::test]
async fn fifty_concurrent_requests_never_spend_past_a_budget_held_by_the_output_cap() {
    let (up, base) = start_upstream().await;
    let limits = RouteLimits {
        budget: budget(1.0, BudgetReset::Never),
        request_limits: Some(RequestLimits {
            max_input_tokens: None,
            max_output_tokens: Some(100),
        }),
        ..Default::default()
    };
    let mut r = route("c", "ks-c", GatewayApi::Openai, &base, limits);
    // 0.001 USD per token either way: a request reserves (17 + 100) tokens = 0.117 USD and, using its
    // whole output cap, costs (10 + 100) tokens = 0.110 USD.
    r.pricing = vec![ModelPrice {
        model: "gpt-4o-mini".into(),
        input_usd_per_million: 1000.0,
        output_usd_per_million: 1000.0,
    }];
    let gw = start(vec![r]).await;
    let requests = (0..50).map(|_| gw.chat("ks-c", hello("gpt-4o-mini")));
    let statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(admitted + refused, 50, "{statuses:?}");
    assert_eq!(up.requests(), admitted);
    // However they interleave, at least 8 fit (8 × 0.117 ≤ 1) and at most 9 (9 × 0.110 ≤ 1 < 10 × 0.110).
    assert!((8..=9).contains(&admitted), "{admitted} admitted");
    let spend = gw.usage_of("c").await["spendUsd"].as_f64().unwrap();
    assert!(spend <= 1.0, "spent {spend}");
    assert!((spend - admitted as f64 * 0.11).abs() < 1e-9, "spent {spend}");
}
