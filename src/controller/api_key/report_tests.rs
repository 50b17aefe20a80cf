use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use keysmith_api::{ApiKeySpec, Enforcement, RotationStatus};

use super::*;

fn key(spec: serde_json::Value) -> ApiKey {
    let mut base = serde_json::json!({"hubRef": {"name": "hub"}});
    if let (Some(base), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    let spec: ApiKeySpec = serde_json::from_value(base).unwrap();
    ApiKey::new("app", spec)
}

fn caps(disable: Enforcement) -> Capabilities {
    let p = Enforcement::Provider;
    Capabilities {
        budget: p,
        rate_limits: p,
        model_limits: p,
        request_limits: p,
        expiry: p,
        disable,
        rename: p,
        usage: p,
        provisioning: p,
        rotation: p,
    }
}

fn breach(enforcement: Enforcement) -> Breach {
    Breach {
        limit: "budget",
        model: None,
        message: "spend 5.000 USD reached the budget of 5.000 USD".into(),
        enforcement,
    }
}

#[test]
fn every_ready_reason_has_its_row() {
    let plain = key(serde_json::json!({}));
    let disabled = key(serde_json::json!({"disabled": true}));
    let use_anyway = key(serde_json::json!({"onLimitExceeded": "UseAnyway"}));
    let p = Enforcement::Provider;
    let over = [breach(Enforcement::Operator)];
    let advisory = [breach(Enforcement::Advisory)];
    // (key, disable capability, breaches, revoked, expired) -> (ready, reason)
    type Row<'a> = (&'a ApiKey, Enforcement, &'a [Breach], bool, bool, bool, Reason);
    let rows: [Row; 9] = [
        (&plain, p, &[], false, false, true, Reason::KeyReady),
        (&plain, p, &[], false, true, false, Reason::Expired),
        (&disabled, p, &[], false, true, false, Reason::Expired),
        (
            &disabled,
            Enforcement::Unsupported,
            &[],
            false,
            false,
            false,
            Reason::DisableUnsupported,
        ),
        (
            &disabled,
            Enforcement::Operator,
            &[],
            true,
            false,
            false,
            Reason::KeyDisabled,
        ),
        (&disabled, p, &[], false, false, false, Reason::KeyDisabled),
        (
            &plain,
            Enforcement::Operator,
            &over,
            true,
            false,
            false,
            Reason::LimitExceeded,
        ),
        (&plain, p, &over, false, false, false, Reason::LimitExceeded),
        (&use_anyway, p, &over, false, false, true, Reason::KeyReady),
    ];
    for (k, disable, breaches, revoked, expired, ready_, reason) in rows {
        let v = ready(k, &caps(disable), breaches, revoked, expired, false);
        assert_eq!((v.status, v.reason), (ready_, reason), "{v:?}");
        assert!(!v.message.is_empty());
    }
    assert!(
        ready(&plain, &caps(p), &advisory, false, false, false).status,
        "a limit nobody enforces does not stop the key"
    );
    let revoked = ready(&plain, &caps(Enforcement::Operator), &over, true, false, false);
    assert!(revoked.message.contains("revoked"), "{}", revoked.message);
}

#[test]
fn limit_exceeded_names_the_budget_first_and_the_reset() {
    let usage = Usage {
        window_resets_at: Some("2027-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    let within = limit_exceeded(&[], &usage);
    assert_eq!((within.status, within.reason), (false, Reason::WithinLimits));
    let budget = limit_exceeded(&[breach(Enforcement::Provider)], &usage);
    assert_eq!((budget.status, budget.reason), (true, Reason::BudgetExceeded));
    assert!(
        budget
            .message
            .ends_with("the window resets at 2027-01-01T00:00:00Z")
    );
    let daily = Breach {
        limit: "limits.requestsPerDay",
        model: None,
        message: "100 requests today reached limits.requestsPerDay = 100".into(),
        enforcement: Enforcement::Operator,
    };
    let rate = limit_exceeded(&[daily], &Usage::default());
    assert_eq!((rate.status, rate.reason), (true, Reason::RateLimitExceeded));
}

#[test]
fn expired_is_absent_without_an_expiry() {
    assert_eq!(expired(None, None), None);
    let later = expired(Some("2027-01-01T00:00:00Z"), None).unwrap();
    assert_eq!((later.status, later.reason), (false, Reason::NotExpired));
    let at: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
    let past = expired(Some("2026-12-01T00:00:00Z"), Some(at)).unwrap();
    assert_eq!((past.status, past.reason), (true, Reason::KeyExpired));
}

#[test]
fn a_failure_is_reconciling_while_it_may_pass_and_stalled_when_the_user_must_act() {
    let k = key(serde_json::json!({}));
    let now = Time("2026-12-07T12:00:00Z".parse().unwrap());
    let mut status = ApiKeyStatus::default();
    failed(&k, &Problem::HubNotFound("hub".into()), &mut status, &now);
    assert!(conditions::is_true(&status.conditions, conditions::STALLED));
    assert!(conditions::get(&status.conditions, conditions::RECONCILING).is_none());
    let ready = conditions::get(&status.conditions, conditions::READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "HubNotFound")
    );
    failed(
        &k,
        &Problem::Provider(keysmith_providers::Error::Timeout),
        &mut status,
        &now,
    );
    assert!(conditions::is_true(&status.conditions, conditions::RECONCILING));
    assert!(conditions::get(&status.conditions, conditions::STALLED).is_none());
}

#[test]
fn events_announce_transitions_not_an_expected_start() {
    let now = Time("2026-12-07T12:00:00Z".parse().unwrap());
    let with = |ready: bool, reason: Reason| {
        let mut s = ApiKeyStatus::default();
        conditions::set(
            &mut s.conditions,
            conditions::READY,
            ready,
            reason.as_str(),
            "m",
            None,
            &now,
        );
        s
    };
    let none = ApiKeyStatus::default();
    assert!(
        transitions(&none, &with(true, Reason::KeyReady)).is_empty(),
        "Ready from the start"
    );
    let broke = transitions(&with(true, Reason::KeyReady), &with(false, Reason::LimitExceeded));
    assert_eq!(broke.len(), 1);
    assert_eq!(broke[0].0, EventType::Warning);
    let off = transitions(&with(true, Reason::KeyReady), &with(false, Reason::KeyDisabled));
    assert_eq!(off[0].0, EventType::Normal, "disabled as asked is no warning");
    assert!(transitions(&with(true, Reason::KeyReady), &with(true, Reason::KeyReady)).is_empty());
}

#[test]
fn the_next_wake_is_the_nearest_future_deadline_capped_by_the_usage_interval() {
    let now = Timestamp::now();
    let in_10s = (now + SignedDuration::from_secs(10)).to_string();
    let ago = (now - SignedDuration::from_secs(2)).to_string();
    let status = ApiKeyStatus {
        expires_at: Some(ago.as_str().into()),
        rotation: Some(RotationStatus {
            previous_key_revoke_at: Some(in_10s.as_str().into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let wake = next_wake(Duration::from_secs(300), &status, now);
    assert!(
        wake > Duration::from_secs(9) && wake <= Duration::from_secs(11),
        "{wake:?}"
    );
    assert_eq!(
        next_wake(Duration::from_secs(5), &status, now),
        Duration::from_secs(5)
    );
    assert_eq!(
        next_wake(Duration::from_secs(300), &ApiKeyStatus::default(), now),
        Duration::from_secs(300)
    );
}

fn hub(defaults: serde_json::Value) -> ModelHub {
    let spec =
        serde_json::from_value(serde_json::json!({"provider": "openrouter", "defaults": defaults})).unwrap();
    ModelHub::new("hub", spec)
}

#[test]
fn limits_enforced_names_what_nobody_enforces_and_ignores_the_account_tier() {
    let mut c = caps(Enforcement::Provider);
    c.rate_limits = Enforcement::Advisory;
    c.model_limits = Enforcement::Unsupported;
    let k = key(serde_json::json!({
        "budget": {"limitUsd": 5},
        "limits": {"requestsPerMinute": 60},
        "modelLimits": [{"model": "gpt-4o", "tokensPerMinute": 1000}],
    }));
    let v = limits_enforced(&keysmith_limits::effective_limits(
        &k,
        &hub(serde_json::json!({})),
        &c,
    ));
    assert!(!v.status);
    assert_eq!(v.reason, Reason::LimitsUnsupported);
    assert!(v.message.contains("advisory"), "{}", v.message);
    assert!(v.message.contains("requestsPerMinute"), "{}", v.message);
    assert!(v.message.contains("modelLimits[gpt-4o]"), "{}", v.message);
    assert!(
        !v.message.contains("budget"),
        "the budget is the provider's: {}",
        v.message
    );

    // A hub default counts as set; only advisory ones: LimitsAdvisory.
    let v = limits_enforced(&keysmith_limits::effective_limits(
        &key(serde_json::json!({})),
        &hub(serde_json::json!({"limits": {"tokensPerDay": 1000}})),
        &c,
    ));
    assert_eq!((v.status, v.reason), (false, Reason::LimitsAdvisory));
    assert!(v.message.contains("tokensPerDay"), "{}", v.message);

    // Nothing set but what the provider holds: all enforced.
    let v = limits_enforced(&keysmith_limits::effective_limits(
        &key(serde_json::json!({"budget": {"limitUsd": 5}})),
        &hub(serde_json::json!({})),
        &c,
    ));
    assert_eq!((v.status, v.reason), (true, Reason::AllLimitsEnforced));
}

#[test]
fn a_model_at_its_limit_is_reported_and_leaves_the_key_ready() {
    let plain = key(serde_json::json!({}));
    let model = Breach {
        limit: "modelLimits.requestsPerDay",
        model: Some("m1".into()),
        message: "2 requests today on model m1 reached its modelLimits.requestsPerDay = 2".into(),
        enforcement: Enforcement::Provider,
    };
    let v = ready(
        &plain,
        &caps(Enforcement::Provider),
        std::slice::from_ref(&model),
        false,
        false,
        false,
    );
    assert_eq!((v.status, v.reason), (true, Reason::KeyReady));
    let v = limit_exceeded(std::slice::from_ref(&model), &Usage::default());
    assert_eq!((v.status, v.reason), (true, Reason::ModelLimitExceeded));
    assert!(v.message.contains("on model m1"), "{}", v.message);
    // With a whole-key limit reached too, the key's own reason wins.
    let v = limit_exceeded(&[model, breach(Enforcement::Provider)], &Usage::default());
    assert_eq!(v.reason, Reason::BudgetExceeded);
}
