use super::*;
use crate::crd::{ApiKeySpec, Enforcement, ModelHubSpec, OnLimitExceeded};

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

fn delivery(base_url: &str) -> Delivery {
    Delivery {
        base_url: base_url.into(),
        ..Default::default()
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn tags_round_trip_through_provider_names() {
    let tag = attempt_tag("0b5c-uid", "n1");
    let name = provider_key_name("team-a/app", &tag);
    assert_eq!(name, "team-a/app [ks:0b5c-uid/n1]");
    assert_eq!(tagged_uid(&name), Some("0b5c-uid"));
    assert_eq!(name_tag(&name), Some("ks:0b5c-uid/n1"));
    assert_eq!(tagged_uid("someone else's key"), None);
    assert_eq!(tagged_uid("[ks:broken"), None);
}

#[test]
fn display_and_secret_names_default_to_the_object() {
    let k = key(serde_json::json!({}));
    assert_eq!(display_name(&k), "team-a/app");
    assert_eq!(secret_name(&k), "app");
    assert_eq!(secret_data_keys(&k), ("apiKey".into(), "baseUrl".into()));
    let k = key(
        serde_json::json!({"displayName": "svc", "secret": {"name": "s", "keys": {"apiKey": "OPENAI_API_KEY"}}}),
    );
    assert_eq!(display_name(&k), "svc");
    assert_eq!(secret_name(&k), "s");
    assert_eq!(secret_data_keys(&k).0, "OPENAI_API_KEY");
}

#[test]
fn desired_secret_is_owned_labelled_and_holds_value_and_base_url() {
    let k = key(serde_json::json!({"secret": {"labels": {"team": "a"}}}));
    let value = SecretValue::new("sk-test");
    let s = desired_secret(&k, &value, Some("hash1"), &delivery("https://example.test/v1"));
    assert!(secret_owned_by(&s, &k));
    assert_eq!(
        s.labels().get(MANAGED_BY_LABEL).map(String::as_str),
        Some("keysmith")
    );
    assert_eq!(s.labels().get("team").map(String::as_str), Some("a"));
    assert_eq!(secret_key_id(&s), Some("hash1"));
    assert_eq!(secret_value(&s, &k), Some(value.clone()));
    assert_eq!(s.data.as_ref().unwrap()["baseUrl"].0, b"https://example.test/v1");
    assert_eq!(s.annotations()[FINGERPRINT_ANNOTATION], value.fingerprint());
}

#[test]
fn a_secret_without_our_controller_reference_is_not_ours() {
    let k = key(serde_json::json!({}));
    let mut s = desired_secret(&k, &SecretValue::new("v"), None, &delivery("u"));
    s.metadata.owner_references = None;
    assert!(!secret_owned_by(&s, &k));
}

#[test]
fn desired_settings_follow_spec_then_hub_defaults() {
    let h = hub(serde_json::json!({"budget": {"limitUsd": 5.0, "reset": "Daily"}}));
    let k = key(serde_json::json!({}));
    let s = desired_settings(&k, &h, "ks:u/1");
    assert_eq!(s.limit_usd, Some(5.0));
    assert_eq!(s.limit_reset, Some(BudgetReset::Daily));
    let k = key(
        serde_json::json!({"budget": {"limitUsd": 50.0, "reset": "Never", "includeByok": true}, "disabled": true}),
    );
    let s = desired_settings(&k, &h, "ks:u/1");
    assert_eq!(s.limit_usd, Some(50.0));
    assert_eq!(s.limit_reset, None);
    assert!(s.include_byok && s.disabled);
}

#[test]
fn use_anyway_keeps_the_budget_off_the_provider() {
    let mut k = key(serde_json::json!({"budget": {"limitUsd": 1.0, "reset": "Monthly"}}));
    k.spec.on_limit_exceeded = Some(OnLimitExceeded::UseAnyway);
    let s = desired_settings(&k, &hub(serde_json::json!(null)), "t");
    assert_eq!((s.limit_usd, s.limit_reset), (None, None));
}

#[test]
fn a_rate_limit_over_a_minute_or_a_day_tightens_requests_per_minute_or_per_day() {
    let h = hub(serde_json::json!({"rateLimit": {"requests": 100, "intervalSeconds": 86400}}));
    let k = key(serde_json::json!({"limits": {"requestsPerMinute": 20}}));
    let s = desired_settings(&k, &h, "t");
    assert_eq!(
        (s.limits.requests_per_minute, s.limits.requests_per_day),
        (Some(20), Some(100))
    );
    assert_eq!(s.other_rate_limit, None);
    // The stricter of the two wins, whichever field says it.
    for (requests, expected) in [(10, 10), (30, 20)] {
        let k = key(serde_json::json!({
            "limits": {"requestsPerMinute": 20},
            "rateLimit": {"requests": requests, "intervalSeconds": 60},
        }));
        let s = desired_settings(&k, &h, "t");
        assert_eq!(s.limits.requests_per_minute, Some(expected));
        // The key's own rate replaces the hub's daily default.
        assert_eq!(s.limits.requests_per_day, None);
    }
    let k = key(serde_json::json!({"rateLimit": {"requests": 5, "intervalSeconds": 10}}));
    let s = desired_settings(&k, &h, "t");
    assert_eq!(s.limits, crate::crd::Limits::default());
    assert_eq!(
        s.other_rate_limit,
        Some(RateLimit {
            requests: 5,
            interval_seconds: 10
        })
    );
}

#[test]
fn a_rate_limit_no_provider_can_hold_always_looks_changed_where_rate_limits_are_held() {
    let k = key(serde_json::json!({"rateLimit": {"requests": 5, "intervalSeconds": 10}}));
    let desired = desired_settings(&k, &hub(serde_json::json!(null)), "t");
    let record = KeyRecord {
        id: "h".into(),
        name: desired.name.clone(),
        label: None,
        settings: KeySettings {
            other_rate_limit: None,
            ..desired.clone()
        },
        usage: KeyUsage::default(),
    };
    // Sent, so the provider refuses it rather than keysmith dropping it unseen.
    let caps = all_provider_capabilities();
    assert_eq!(key_change(&record, &desired, &caps, true), KeyChange::Update);
    let advisory = Capabilities {
        rate_limits: Enforcement::Advisory,
        ..caps
    };
    assert_eq!(key_change(&record, &desired, &advisory, true), KeyChange::None);
}

#[test]
fn key_change_detects_updates_and_reissues() {
    let k = key(serde_json::json!({"budget": {"limitUsd": 10.0}}));
    let desired = desired_settings(&k, &hub(serde_json::json!(null)), "t");
    let caps = all_provider_capabilities();
    let mut record = KeyRecord {
        id: "h".into(),
        name: desired.name.clone(),
        label: None,
        settings: desired.clone(),
        usage: KeyUsage::default(),
    };
    assert_eq!(key_change(&record, &desired, &caps, false), KeyChange::None);
    // A provider that holds no budget never looks changed by one.
    let no_budget = Capabilities {
        budget: Enforcement::Operator,
        ..caps.clone()
    };
    let mut unbudgeted = record.clone();
    unbudgeted.settings.limit_usd = None;
    assert_eq!(
        key_change(&unbudgeted, &desired, &no_budget, false),
        KeyChange::None
    );
    record.settings.limit_usd = Some(9.0);
    assert_eq!(key_change(&record, &desired, &caps, false), KeyChange::Update);
    record.settings.expires_at = Some(ts("2030-01-01T00:00:00Z"));
    assert_eq!(key_change(&record, &desired, &caps, false), KeyChange::Reissue);
    assert_eq!(key_change(&record, &desired, &caps, true), KeyChange::Update);
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
fn jitter_stays_within_ten_percent() {
    assert_eq!(jittered(100, 0.0).as_secs(), 90);
    assert_eq!(jittered(100, 1.0).as_secs(), 110);
}

#[test]
fn rotation_is_due_once_per_token_and_on_schedule() {
    let mut k = key(serde_json::json!({"rotation": {"every": "24h", "overlap": "30m"}}));
    k.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(
        "2026-11-01T00:00:00Z",
    )));
    let mut status = crate::crd::ApiKeyStatus::default();
    assert_eq!(rotation_due(&k, &status, ts("2026-11-01T12:00:00Z")), None);
    assert_eq!(
        rotation_due(&k, &status, ts("2026-11-02T00:00:00Z")),
        Some("scheduled")
    );
    k.metadata.annotations = Some([(ROTATE_ANNOTATION.to_owned(), "t1".to_owned())].into());
    assert_eq!(
        rotation_due(&k, &status, ts("2026-11-01T12:00:00Z")),
        Some("requested")
    );
    status.rotation = Some(crate::crd::RotationStatus {
        last_requested_token: Some("t1".into()),
        last_rotated_at: Some("2026-11-01T12:00:00Z".into()),
        ..Default::default()
    });
    assert_eq!(rotation_due(&k, &status, ts("2026-11-02T11:59:59Z")), None);
    assert_eq!(
        rotation_due(&k, &status, ts("2026-11-02T12:00:00Z")),
        Some("scheduled")
    );
    assert_eq!(rotation_overlap(&k), std::time::Duration::from_secs(1800));
    assert_eq!(
        next_rotation(&k, ts("2026-11-01T12:00:00Z")),
        Some(ts("2026-11-02T12:00:00Z"))
    );
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
    let d = Delivery {
        base_url: "u".into(),
        published,
    };
    let s = desired_secret(&k, &SecretValue::new("v"), None, &d);
    assert_eq!(s.data.as_ref().unwrap()[MAX_INPUT_TOKENS_DATA_KEY].0, b"8000");
}

#[test]
fn no_new_rotation_starts_while_a_previous_key_is_in_its_overlap() {
    let mut k = key(serde_json::json!({"rotation": {"every": "24h"}}));
    k.metadata.annotations = Some([(ROTATE_ANNOTATION.to_owned(), "t2".to_owned())].into());
    let status = crate::crd::ApiKeyStatus {
        rotation: Some(crate::crd::RotationStatus {
            previous_key_id: Some("k0".into()),
            last_requested_token: Some("t1".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(rotation_due(&k, &status, ts("2026-11-22T00:00:00Z")), None);
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
fn restart_targets_roll_once_per_new_key_and_never_for_the_first() {
    let k = key(serde_json::json!({"rotation": {"restartTargets": [{"kind": "Deployment", "name": "web"}]}}));
    let mut status = crate::crd::ApiKeyStatus::default();
    assert_eq!(restart_plan(&k, &status), RestartPlan::Nothing, "no key yet");
    status.fingerprint = Some("aaaa".into());
    assert_eq!(restart_plan(&k, &status), RestartPlan::Remember("aaaa".into()));
    status.rotation = Some(crate::crd::RotationStatus {
        restarted_for: Some("aaaa".into()),
        ..Default::default()
    });
    assert_eq!(restart_plan(&k, &status), RestartPlan::Nothing);
    status.fingerprint = Some("bbbb".into());
    assert_eq!(restart_plan(&k, &status), RestartPlan::Restart("bbbb".into()));
    let without = key(serde_json::json!({}));
    assert_eq!(restart_plan(&without, &status), RestartPlan::Nothing);
}

#[test]
fn a_key_is_suspended_only_where_the_provider_cannot_disable_it() {
    let now = ts("2026-11-22T12:00:00Z");
    let mut k = key(serde_json::json!({"budget": {"limitUsd": 2.0, "reset": "Daily"}}));
    let h = hub(serde_json::json!(null));
    let over = Usage {
        current_usd: Some(2.5),
        ..Default::default()
    };
    let revoking = Capabilities {
        budget: Enforcement::Operator,
        expiry: Enforcement::Operator,
        disable: Enforcement::Operator,
        ..all_provider_capabilities()
    };
    let breached = breaches(&k, &h, &over, &revoking);
    assert_eq!(
        suspension_reason(&k, &breached, &revoking, now),
        Some("LimitExceeded")
    );
    assert_eq!(suspension_reason(&k, &[], &revoking, now), None);
    // The provider disables keys itself: keysmith switches the key off instead of revoking it.
    assert_eq!(
        suspension_reason(&k, &breached, &all_provider_capabilities(), now),
        None
    );
    k.spec.on_limit_exceeded = Some(OnLimitExceeded::UseAnyway);
    assert_eq!(
        suspension_reason(&k, &breached, &revoking, now),
        None,
        "UseAnyway keeps it"
    );
    k.spec.expires_at = Some("2026-11-22T11:00:00Z".into());
    assert_eq!(suspension_reason(&k, &[], &revoking, now), Some("Expired"));
    k.spec.disabled = Some(true);
    assert_eq!(
        suspension_reason(&k, &[], &revoking, now),
        Some("Disabled"),
        "the spec comes first"
    );
}

#[test]
fn a_suspended_key_is_judged_by_its_last_usage_until_that_window_resets() {
    let status = crate::crd::ApiKeyStatus {
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
fn the_first_key_marker_is_pending_until_status_records_a_key() {
    let mut k = key(serde_json::json!({}));
    let mut status = crate::crd::ApiKeyStatus::default();
    assert!(first_key_pending(&k));
    assert!(!create_pending(&k, &status), "no marker, nothing pending");
    k.metadata.annotations = Some([(ISSUING_ANNOTATION.to_owned(), "ks:0b5c-uid/n1".to_owned())].into());
    assert!(
        create_pending(&k, &status),
        "marked and not recorded: a key may exist"
    );
    status.key_id = Some("k1".into());
    assert!(!create_pending(&k, &status), "recorded: the marker is spent");
    status.key_id = None;
    status.suspended = Some(crate::crd::Suspension::default());
    assert!(!create_pending(&k, &status), "no key on purpose");
    k.status = Some(crate::crd::ApiKeyStatus {
        key_id: Some("k1".into()),
        ..Default::default()
    });
    assert!(!first_key_pending(&k));
    let imported = key(serde_json::json!({"import": {"secretRef": {"name": "s", "key": "k"}}}));
    assert!(
        !first_key_pending(&imported),
        "imports get their finalizer on its own"
    );
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
