use jiff::Timestamp;
use keysmith_api::{
    ApiKey, ApiKeySpec, BudgetReset, Capabilities, Enforcement, LimitSource, ModelHub, ModelHubSpec,
    OnLimitExceeded, Usage,
    well_known::{MAX_INPUT_TOKENS_DATA_KEY, MAX_OUTPUT_TOKENS_DATA_KEY},
};

use super::*;

fn key(spec: serde_json::Value) -> ApiKey {
    let mut base = serde_json::json!({"hubRef": {"name": "hub"}});
    if let (Some(base), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    let spec: ApiKeySpec = serde_json::from_value(base).unwrap();
    let mut k = ApiKey::new("app", spec);
    k.metadata.namespace = Some("team-a".into());
    k.metadata.uid = Some("0b5c-uid".into());
    k
}

fn hub(defaults: serde_json::Value) -> ModelHub {
    let mut spec: ModelHubSpec =
        serde_json::from_value(serde_json::json!({"provider": "openrouter"})).unwrap();
    spec.defaults = serde_json::from_value(defaults).unwrap();
    ModelHub::new("hub", spec)
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn all_provider_capabilities() -> Capabilities {
    let p = Enforcement::Provider;
    Capabilities {
        budget: p,
        rate_limits: p,
        model_limits: p,
        request_limits: p,
        expiry: p,
        disable: p,
        rename: p,
        usage: p,
        provisioning: p,
        rotation: p,
    }
}

#[test]
fn windows_reset_at_utc_midnight_monday_and_first_of_month() {
    let now = ts("2026-11-22T15:00:00Z"); // a Sunday
    assert_eq!(
        next_window_reset(BudgetReset::Daily, now),
        Some(ts("2026-11-23T00:00:00Z"))
    );
    assert_eq!(
        next_window_reset(BudgetReset::Weekly, now),
        Some(ts("2026-11-23T00:00:00Z"))
    );
    assert_eq!(
        next_window_reset(BudgetReset::Monthly, now),
        Some(ts("2026-12-01T00:00:00Z"))
    );
    assert_eq!(next_window_reset(BudgetReset::Never, now), None);
    let monday = ts("2026-11-23T00:00:00Z");
    assert_eq!(
        next_window_reset(BudgetReset::Weekly, monday),
        Some(ts("2026-11-30T00:00:00Z"))
    );
    let dec = ts("2026-12-31T23:59:59Z");
    assert_eq!(
        next_window_reset(BudgetReset::Monthly, dec),
        Some(ts("2027-01-01T00:00:00Z"))
    );
}

#[test]
fn usage_status_reports_the_budget_window_and_rounds_float_noise() {
    let usage = KeyUsage {
        total_usd: Some(10.000_000_1),
        daily_usd: Some(1.0),
        weekly_usd: Some(2.0),
        monthly_usd: Some(3.0),
        remaining_usd: Some(7.0),
        ..Default::default()
    };
    let u = usage_status(&usage, Some(BudgetReset::Monthly), ts("2026-11-22T15:00:00Z"));
    assert_eq!(u.current_usd, Some(3.0));
    assert_eq!(u.total_usd, Some(10.0));
    assert_eq!(u.window_resets_at.as_deref(), Some("2026-12-01T00:00:00Z"));
}

#[test]
fn effective_limits_name_their_source_and_enforcement() {
    let h = hub(
        serde_json::json!({"limits": {"requestsPerMinute": 20}, "requestLimits": {"maxOutputTokens": 0}}),
    );
    let k = key(
        serde_json::json!({"budget": {"limitUsd": 3.0}, "limits": {"tokensPerDay": 1000}, "requestLimits": {"maxInputTokens": 4096}}),
    );
    let caps = Capabilities {
        budget: Enforcement::Provider,
        rate_limits: Enforcement::Advisory,
        model_limits: Enforcement::Advisory,
        request_limits: Enforcement::Advisory,
        expiry: Enforcement::Provider,
        disable: Enforcement::Provider,
        rename: Enforcement::Provider,
        usage: Enforcement::Provider,
        provisioning: Enforcement::Provider,
        rotation: Enforcement::Operator,
    };
    let e = effective_limits(&k, &h, &caps);
    let budget = e.budget.unwrap();
    assert_eq!(
        (budget.limit_usd, budget.source, budget.enforcement),
        (3.0, LimitSource::Spec, Enforcement::Provider)
    );
    let rpm = e.requests_per_minute.unwrap();
    assert_eq!(
        (rpm.value, rpm.source, rpm.enforcement),
        (20, LimitSource::HubDefault, Enforcement::Advisory)
    );
    assert_eq!(e.tokens_per_day.unwrap().source, LimitSource::Spec);
    // Left out everywhere: OpenRouter's entry tier (50 free-model requests a day), enforced by it.
    let rpd = e.requests_per_day.unwrap();
    assert_eq!(
        (rpd.value, rpd.source, rpd.enforcement),
        (50, LimitSource::ProviderDefault, Enforcement::Provider)
    );
    assert_eq!(rpd.applies_to, Some(keysmith_api::LimitScope::Account));
    assert_eq!(rpm.applies_to, None, "a limit the hub sets is the key's");
    // No rate set: the entry tier's 20 requests a minute, the whole account's.
    let rate = e.rate_limit.unwrap();
    assert_eq!(
        (
            rate.requests,
            rate.interval_seconds,
            rate.source,
            rate.enforcement,
            rate.applies_to
        ),
        (
            20,
            60,
            LimitSource::ProviderDefault,
            Enforcement::Provider,
            Some(keysmith_api::LimitScope::Account)
        )
    );
    assert!(e.provider_defaults.unwrap().contains("whole account"));
    assert!(
        e.tokens_per_minute.is_none(),
        "OpenRouter documents no token tier"
    );
    assert_eq!(e.max_input_tokens.unwrap().value, 4096);
    assert!(e.max_output_tokens.is_none(), "0 means unlimited");
}

#[test]
fn breaches_name_the_limit_and_its_enforcement() {
    let k = key(serde_json::json!({"budget": {"limitUsd": 2.0, "reset": "Daily"}}));
    let h = hub(serde_json::json!({"limits": {"requestsPerDay": 100}}));
    let caps = all_provider_capabilities();
    let under = Usage {
        current_usd: Some(1.0),
        requests_today: Some(99),
        ..Default::default()
    };
    let over = Usage {
        current_usd: Some(2.5),
        requests_today: Some(100),
        ..Default::default()
    };
    assert_eq!(breaches(&k, &h, &under, &caps), vec![]);
    let found = breaches(&k, &h, &over, &caps);
    assert_eq!(
        found.iter().map(|b| b.limit).collect::<Vec<_>>(),
        ["budget", "limits.requestsPerDay"]
    );
    assert!(found[0].message.contains("budget of 2.000 USD"));
    assert!(found[1].message.contains("100 requests today"));
}

#[test]
fn keysmith_blocks_only_what_it_alone_enforces_and_only_on_reject() {
    let now = ts("2026-11-22T12:00:00Z");
    let mut k = key(serde_json::json!({"budget": {"limitUsd": 2.0, "reset": "Daily"}}));
    let h = hub(serde_json::json!(null));
    let over = Usage {
        current_usd: Some(2.5),
        ..Default::default()
    };
    let provider_caps = all_provider_capabilities();
    let operator_caps = Capabilities {
        budget: Enforcement::Operator,
        expiry: Enforcement::Operator,
        ..provider_caps.clone()
    };
    let by_provider = breaches(&k, &h, &over, &provider_caps);
    assert!(
        !operator_blocks(&k, &by_provider, &provider_caps, now),
        "the provider stops it"
    );
    let by_operator = breaches(&k, &h, &over, &operator_caps);
    assert!(operator_blocks(&k, &by_operator, &operator_caps, now));
    k.spec.on_limit_exceeded = Some(OnLimitExceeded::UseAnyway);
    assert!(
        !operator_blocks(&k, &by_operator, &operator_caps, now),
        "UseAnyway keeps it working"
    );
    k.spec.expires_at = Some("2026-11-22T11:59:59Z".into());
    assert!(
        operator_blocks(&k, &[], &operator_caps, now),
        "expired, and only keysmith knows"
    );
    assert!(
        !operator_blocks(&k, &[], &provider_caps, now),
        "the provider expires it itself"
    );
    k.spec.expires_at = Some("2026-11-22T12:00:01Z".into());
    assert!(!operator_blocks(&k, &[], &operator_caps, now));
}

#[test]
fn per_request_caps_are_published_from_spec_then_hub_defaults_and_zero_means_unlimited() {
    let h = hub(serde_json::json!({"requestLimits": {"maxInputTokens": 8000, "maxOutputTokens": 512}}));
    let k = key(serde_json::json!({"requestLimits": {"maxOutputTokens": 0}}));
    let published = published_limits(&k, &h);
    assert_eq!(
        published.get(MAX_INPUT_TOKENS_DATA_KEY).map(String::as_str),
        Some("8000")
    );
    assert_eq!(
        published.get(MAX_OUTPUT_TOKENS_DATA_KEY),
        None,
        "0 in the spec means unlimited"
    );
}

#[test]
fn a_suspended_key_is_judged_by_its_last_usage_until_that_window_resets() {
    let status = keysmith_api::ApiKeyStatus {
        usage: Some(Usage {
            current_usd: Some(2.5),
            window_resets_at: Some("2026-11-23T00:00:00Z".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let before = usage_while_suspended(&status, ts("2026-11-22T23:59:59Z"));
    assert_eq!(before.current_usd, Some(2.5));
    let after = usage_while_suspended(&status, ts("2026-11-23T00:00:00Z"));
    assert_eq!(after, Usage::default());
}

#[test]
fn a_request_rate_over_a_day_is_a_daily_cap_when_usage_reaches_it() {
    let h = hub(serde_json::json!(null));
    let caps = all_provider_capabilities();
    let used = |n| Usage {
        requests_today: Some(n),
        ..Default::default()
    };
    let daily = key(serde_json::json!({"rateLimit": {"requests": 10, "intervalSeconds": 86400}}));
    assert_eq!(breaches(&daily, &h, &used(9), &caps), vec![]);
    let found = breaches(&daily, &h, &used(10), &caps);
    assert_eq!(found.iter().map(|b| b.limit).collect::<Vec<_>>(), ["rateLimit"]);
    assert!(
        found[0]
            .message
            .contains("10 requests today reached rateLimit = 10 per day")
    );
    // A per-minute rate says nothing about a day's total.
    let per_minute = key(serde_json::json!({"rateLimit": {"requests": 10, "intervalSeconds": 60}}));
    assert_eq!(breaches(&per_minute, &h, &used(1000), &caps), vec![]);
    // Both reached: the daily limit is named once.
    let both = key(serde_json::json!({
        "rateLimit": {"requests": 10, "intervalSeconds": 86400},
        "limits": {"requestsPerDay": 5}
    }));
    let found = breaches(&both, &h, &used(10), &caps);
    assert_eq!(
        found.iter().map(|b| b.limit).collect::<Vec<_>>(),
        ["limits.requestsPerDay"]
    );
}

#[test]
fn a_rate_limit_without_an_interval_is_per_minute() {
    let k = key(serde_json::json!({"rateLimit": {"requests": 30}}));
    let (rate, _) = effective_rate_limit(&k, &hub(serde_json::json!(null))).unwrap();
    assert_eq!(rate.interval_seconds, 60);
    let mut limits = keysmith_api::Limits::default();
    // A per-minute rate folds into requestsPerMinute like one that says 60 outright.
    assert_eq!(fold_rate_limit(&mut limits, rate), None);
    assert_eq!(limits.requests_per_minute, Some(30));
}

#[test]
fn daily_caps_with_reported_counts_are_held_by_keysmith_and_start_again_at_midnight() {
    use keysmith_api::{ApiKeyStatus, Suspension, SuspensionReason};
    let k = key(serde_json::json!({"limits": {"requestsPerDay": 3, "tokensPerDay": 100}}));
    let mut caps = all_provider_capabilities();
    caps.rate_limits = Enforcement::Advisory;
    let usage = Usage {
        requests_today: Some(3),
        ..Default::default()
    };
    let found = breaches(&k, &hub(serde_json::json!(null)), &usage, &caps);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].enforcement, Enforcement::Operator);
    let mut limits = effective_limits(&k, &hub(serde_json::json!(null)), &caps);
    with_daily_counts(&mut limits, &usage);
    assert_eq!(
        limits.requests_per_day.unwrap().enforcement,
        Enforcement::Operator
    );
    // No token count reported: nobody holds tokensPerDay.
    assert_eq!(limits.tokens_per_day.unwrap().enforcement, Enforcement::Advisory);

    let status = ApiKeyStatus {
        usage: Some(usage),
        suspended: Some(Suspension {
            reason: SuspensionReason::LimitExceeded,
            since: ts("2026-11-23T23:40:00Z").into(),
            revoked_key_id: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        usage_while_suspended(&status, ts("2026-11-23T23:59:59Z")).requests_today,
        Some(3)
    );
    assert_eq!(
        usage_while_suspended(&status, ts("2026-11-24T00:00:01Z")).requests_today,
        None
    );
}

#[test]
fn a_model_at_its_daily_cap_is_a_breach_of_that_model_alone() {
    let k = key(serde_json::json!({"modelLimits": [
        {"model": "m1", "requestsPerDay": 2, "tokensPerDay": 1000},
        {"model": "m2", "requestsPerDay": 5}
    ]}));
    let h = hub(serde_json::json!(null));
    let caps = all_provider_capabilities();
    let model = |model: &str, requests: u64, tokens: u64| keysmith_api::ModelUsage {
        model: model.into(),
        requests: Some(requests),
        tokens: Some(tokens),
        ..Default::default()
    };
    let mut usage = Usage {
        models: vec![model("m1", 1, 999), model("m2", 4, 0), model("m3", 100, 100)],
        ..Default::default()
    };
    assert_eq!(breaches(&k, &h, &usage, &caps), vec![]);
    usage.models[0] = model("m1", 2, 1000);
    let found = breaches(&k, &h, &usage, &caps);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .all(|b| b.model.as_deref() == Some("m1") && !b.whole_key())
    );
    assert_eq!(found[0].limit, "modelLimits.requestsPerDay");
    assert!(found[0].message.contains("on model m1"), "{}", found[0].message);
    assert_eq!(found[1].limit, "modelLimits.tokensPerDay");
    // Even where keysmith holds limits, one model never stops the whole key.
    let operator = Capabilities {
        model_limits: Enforcement::Operator,
        ..caps
    };
    let found = breaches(&k, &h, &usage, &operator);
    assert!(!operator_blocks(
        &k,
        &found,
        &operator,
        ts("2026-11-22T12:00:00Z")
    ));
}
