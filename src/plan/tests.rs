use jiff::Timestamp;
use keysmith_api::{
    ApiKeySpec, BudgetReset, Enforcement, ModelHub, ModelHubSpec, OnLimitExceeded, RateLimit, Usage,
    well_known::{FINGERPRINT_ANNOTATION, MANAGED_BY_LABEL, ROTATE_ANNOTATION},
};
use keysmith_core::SecretValue;
use keysmith_limits::breaches;
use keysmith_providers::{KeyRecord, KeySettings, KeyUsage};

use super::*;

/// An ApiKey `team-a/app` (uid `0b5c-uid`) on hub `hub` with `spec` merged in; shared by the plan's tests.
pub(super) fn key(spec: serde_json::Value) -> ApiKey {
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
fn a_renamed_data_key_still_finds_the_held_value_by_its_fingerprint() {
    let before = key(serde_json::json!({}));
    let value = SecretValue::new("sk-held");
    let written = desired_secret(&before, &value, Some("id1"), &delivery("u"));
    let after = key(serde_json::json!({"secret": {"keys": {"apiKey": "OPENAI_API_KEY"}}}));
    assert_eq!(secret_value(&written, &after), Some(value.clone()));
    // A value someone else put there, without keysmith's fingerprint, is not taken for the key.
    let mut edited = written.clone();
    edited
        .data
        .as_mut()
        .unwrap()
        .insert("apiKey".into(), k8s_openapi::ByteString(b"sk-other".to_vec()));
    assert_eq!(secret_value(&edited, &after), None);
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
    assert_eq!(s.limits, keysmith_api::Limits::default());
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
    let mut status = keysmith_api::ApiKeyStatus::default();
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
    status.rotation = Some(keysmith_api::RotationStatus {
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
fn no_new_rotation_starts_while_a_previous_key_is_in_its_overlap() {
    let mut k = key(serde_json::json!({"rotation": {"every": "24h"}}));
    k.metadata.annotations = Some([(ROTATE_ANNOTATION.to_owned(), "t2".to_owned())].into());
    let status = keysmith_api::ApiKeyStatus {
        rotation: Some(keysmith_api::RotationStatus {
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
    let mut status = keysmith_api::ApiKeyStatus::default();
    assert_eq!(restart_plan(&k, &status), RestartPlan::Nothing, "no key yet");
    status.fingerprint = Some("aaaa".into());
    assert_eq!(restart_plan(&k, &status), RestartPlan::Remember("aaaa".into()));
    status.rotation = Some(keysmith_api::RotationStatus {
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
        Some(keysmith_api::SuspensionReason::LimitExceeded)
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
    assert_eq!(
        suspension_reason(&k, &[], &revoking, now),
        Some(keysmith_api::SuspensionReason::Expired)
    );
    k.spec.disabled = Some(true);
    assert_eq!(
        suspension_reason(&k, &[], &revoking, now),
        Some(keysmith_api::SuspensionReason::Disabled),
        "the spec comes first"
    );
}

#[test]
fn the_first_key_marker_is_pending_until_status_records_a_key() {
    let mut k = key(serde_json::json!({}));
    let mut status = keysmith_api::ApiKeyStatus::default();
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
    status.suspended = Some(keysmith_api::Suspension {
        reason: keysmith_api::SuspensionReason::Disabled,
        since: "2026-11-22T12:00:00Z".into(),
        revoked_key_id: None,
    });
    assert!(!create_pending(&k, &status), "no key on purpose");
    k.status = Some(keysmith_api::ApiKeyStatus {
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
fn the_published_caps_reach_the_secret() {
    let h = hub(serde_json::json!({"requestLimits": {"maxInputTokens": 8000}}));
    let k = key(serde_json::json!({}));
    let d = Delivery {
        base_url: "u".into(),
        published: keysmith_limits::published_limits(&k, &h),
    };
    let s = desired_secret(&k, &SecretValue::new("v"), None, &d);
    assert_eq!(
        s.data.as_ref().unwrap()[keysmith_api::well_known::MAX_INPUT_TOKENS_DATA_KEY].0,
        b"8000"
    );
}
