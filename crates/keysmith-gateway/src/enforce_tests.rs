use keysmith_api::{
    Budget, BudgetReset, Limits, ModelLimit, RateLimit,
    gateway_route::{ApiKeyRef, GatewayApi, RouteLimits, RouteState},
};
use keysmith_core::SecretValue;

use super::*;

fn caps(input: u64, output: u64) -> RequestLimits {
    RequestLimits {
        max_input_tokens: Some(input),
        max_output_tokens: Some(output),
    }
}

fn counted(tokens: u64) -> InputCount {
    InputCount { tokens, exact: true }
}

fn route(limits: RouteLimits) -> Route {
    Route {
        key: ApiKeyRef {
            namespace: "ns".into(),
            name: "k".into(),
        },
        api: GatewayApi::Openai,
        upstream: "http://up".into(),
        state: RouteState::Active,
        limits,
        on_limit_exceeded: OnLimitExceeded::Reject,
        pricing: vec![],
        upstream_key: SecretValue::new("x"),
        issued_key_sha256: [0; 32],
        previous_issued_key_sha256: None,
    }
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn an_input_over_the_cap_is_rejected_naming_cap_and_count() {
    let got = check_caps(
        Some(&caps(100, 0)),
        OnLimitExceeded::Reject,
        Endpoint::ChatCompletions,
        counted(101),
        None,
    );
    let CapCheck::Reject(r) = got else {
        panic!("{got:?}")
    };
    assert_eq!((r.status, r.code.as_str()), (400, "max_input_tokens"));
    assert!(
        r.message.contains("101") && r.message.contains("100"),
        "{}",
        r.message
    );
}

#[test]
fn an_input_over_the_cap_is_an_overrun_under_use_anyway() {
    let got = check_caps(
        Some(&caps(100, 0)),
        OnLimitExceeded::UseAnyway,
        Endpoint::ChatCompletions,
        counted(101),
        Some(5),
    );
    assert_eq!(
        got,
        CapCheck::Pass {
            inject_output_cap: None,
            output_bound: Some(5),
            overruns: vec!["requestLimits.maxInputTokens"]
        }
    );
}

#[test]
fn an_input_at_the_cap_passes() {
    let got = check_caps(
        Some(&caps(100, 0)),
        OnLimitExceeded::Reject,
        Endpoint::Embeddings,
        counted(100),
        None,
    );
    assert!(matches!(got, CapCheck::Pass { .. }));
}

#[test]
fn output_caps_reject_inject_or_pass() {
    let limits = caps(0, 256);
    let ask = |asked, mode| check_caps(Some(&limits), mode, Endpoint::ChatCompletions, counted(1), asked);
    let CapCheck::Reject(r) = ask(Some(257), OnLimitExceeded::Reject) else {
        panic!()
    };
    assert_eq!(r.code, "max_output_tokens");
    assert!(r.message.contains("257") && r.message.contains("256"));
    assert_eq!(
        ask(None, OnLimitExceeded::Reject),
        CapCheck::Pass {
            inject_output_cap: Some(256),
            output_bound: Some(256),
            overruns: vec![]
        }
    );
    assert_eq!(
        ask(Some(100), OnLimitExceeded::Reject),
        CapCheck::Pass {
            inject_output_cap: None,
            output_bound: Some(100),
            overruns: vec![]
        }
    );
    assert_eq!(
        ask(Some(1000), OnLimitExceeded::UseAnyway),
        CapCheck::Pass {
            inject_output_cap: None,
            output_bound: Some(1000),
            overruns: vec!["requestLimits.maxOutputTokens"]
        }
    );
}

#[test]
fn zero_means_no_cap_and_embeddings_have_no_output_cap() {
    let got = check_caps(
        Some(&caps(0, 0)),
        OnLimitExceeded::Reject,
        Endpoint::ChatCompletions,
        counted(9999),
        None,
    );
    assert_eq!(
        got,
        CapCheck::Pass {
            inject_output_cap: None,
            output_bound: None,
            overruns: vec![]
        }
    );
    let got = check_caps(
        Some(&caps(0, 10)),
        OnLimitExceeded::Reject,
        Endpoint::Embeddings,
        counted(5),
        None,
    );
    assert_eq!(
        got,
        CapCheck::Pass {
            inject_output_cap: None,
            output_bound: None,
            overruns: vec![]
        }
    );
}

#[test]
fn charges_cover_every_window_that_applies() {
    let r = route(RouteLimits {
        budget: Some(Budget {
            limit_usd: 2.5,
            reset: Some(BudgetReset::Monthly),
            include_byok: None,
        }),
        rate_limit: Some(RateLimit {
            requests: 5,
            interval_seconds: 10,
        }),
        limits: Some(Limits {
            requests_per_minute: Some(60),
            tokens_per_day: Some(1000),
            ..Default::default()
        }),
        model_limits: vec![
            ModelLimit {
                model: "gpt-4o".into(),
                requests_per_minute: None,
                requests_per_day: None,
                tokens_per_minute: Some(100),
                tokens_per_day: None,
            },
            ModelLimit {
                model: "other".into(),
                requests_per_minute: Some(1),
                requests_per_day: None,
                tokens_per_minute: None,
                tokens_per_day: None,
            },
        ],
        request_limits: None,
    });
    let now = at("2026-12-07T12:00:15Z");
    let demand = Demand {
        tokens: Some(70),
        micro_usd: Some(1234),
    };
    let charges = plan_charges(&r, Some("gpt-4o"), demand, now);
    let names: Vec<_> = charges.iter().map(|c| c.limit_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "rateLimit",
            "limits.requestsPerMinute",
            "limits.tokensPerDay",
            "modelLimits[gpt-4o].tokensPerMinute",
            "budget"
        ]
    );
    let budget = &charges[4];
    assert_eq!((budget.amount, budget.limit), (1234, 2_500_000));
    assert_eq!(budget.window_end, Some(at("2027-01-01T00:00:00Z")));
    assert_eq!(
        charges[0].counter,
        format!("ns/k|key|rate|{}", at("2026-12-07T12:00:10Z").as_second())
    );
    assert_eq!(charges[3].amount, 70);

    // A call that is not metered counts as a request and reserves no tokens or money.
    let plain = plan_charges(&r, None, Demand::default(), now);
    let names: Vec<_> = plain.iter().map(|c| c.limit_name.as_str()).collect();
    assert_eq!(names, ["rateLimit", "limits.requestsPerMinute"]);
}

#[test]
fn a_window_refusal_names_the_limit_and_when_it_resets() {
    let r = route(RouteLimits::default());
    let now = at("2026-12-07T12:00:15Z");
    let charge = Charge {
        counter: "c".into(),
        limit_name: "modelLimits[gpt-4o].tokensPerMinute".into(),
        metric: Metric::Tokens,
        amount: 40,
        limit: 100,
        window_end: Some(at("2026-12-07T12:01:00Z")),
    };
    let refusal = window_refusal(&r, &charge, 80, now);
    assert_eq!(refusal.status, 429);
    assert_eq!(refusal.code, "model_tokens_per_minute");
    assert_eq!(refusal.retry_after, Some(45));
    assert!(
        refusal
            .message
            .contains("modelLimits[gpt-4o].tokensPerMinute of 100 tokens"),
        "{}",
        refusal.message
    );
    assert!(refusal.message.contains("ns/k"));
}

#[test]
fn actual_amounts_prefer_reported_cost_then_prices_then_the_reservation() {
    let price = ModelPrice {
        model: "m".into(),
        input_usd_per_million: 1.0,
        output_usd_per_million: 2.0,
    };
    let charge = |metric, amount| Charge {
        counter: "c".into(),
        limit_name: "x".into(),
        metric,
        amount,
        limit: 10,
        window_end: None,
    };
    let charges = [
        charge(Metric::Requests, 1),
        charge(Metric::Tokens, 500),
        charge(Metric::MicroUsd, 900),
    ];
    let usage = Usage {
        input: 100,
        output: 50,
        cost_usd: None,
    };
    let finish = Finish {
        success: true,
        usage: Some(usage),
    };
    assert_eq!(actual_amounts(&charges, finish, Some(&price)), [1, 150, 200]);
    let reported = Finish {
        success: true,
        usage: Some(Usage {
            cost_usd: Some(0.5),
            ..usage
        }),
    };
    assert_eq!(
        actual_amounts(&charges, reported, Some(&price)),
        [1, 150, 500_000]
    );
    let unseen = Finish {
        success: true,
        usage: None,
    };
    assert_eq!(actual_amounts(&charges, unseen, Some(&price)), [1, 500, 900]);
    let failed = Finish {
        success: false,
        usage: None,
    };
    assert_eq!(actual_amounts(&charges, failed, Some(&price)), [1, 0, 0]);
}

#[test]
fn costs_are_micro_usd_rounded_up() {
    let price = ModelPrice {
        model: "m".into(),
        input_usd_per_million: 2.5,
        output_usd_per_million: 10.0,
    };
    assert_eq!(cost_micros(&price, 1, 0), 3);
    assert_eq!(cost_micros(&price, 1000, 100), 3500);
    assert_eq!(to_micros(-1.0), 0);
    assert_eq!(limit_code("rateLimit"), "rate_limit");
    assert_eq!(limit_code("budget"), "budget");
}
