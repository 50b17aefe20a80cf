//! The Anthropic client against the in-process Anthropic simulator, over real HTTP on loopback.

use super::*;
use crate::{
    http::HttpConfig,
    testing::{self, fast_config},
};
use keysmith_simulators::{
    RunningSim,
    anthropic::{AnthropicSim, KeyStatus, MessagesUsage},
    clock::Clock,
    faults::Fault,
};

const ADMIN: &str = "sk-ant-admin01-client-tests-0000000000000000000000000000000000000000";

type Fixture = testing::Fixture<AnthropicSim, AnthropicClient>;

impl Fixture {
    async fn new() -> Self {
        Self::with(fast_config(), None).await
    }

    async fn with(config: HttpConfig, workspace: Option<String>) -> Self {
        let sim = AnthropicSim::new([ADMIN.to_owned()], Clock::new());
        Self::start(sim, |running| client_for(running, ADMIN, workspace, config)).await
    }

    fn client(&self, key: &str, workspace: Option<String>) -> AnthropicClient {
        client_for(&self.running, key, workspace, fast_config())
    }
}

fn client_for(
    running: &RunningSim,
    key: &str,
    workspace: Option<String>,
    config: HttpConfig,
) -> AnthropicClient {
    AnthropicClient::new(
        &running.base_url,
        &running.base_url,
        SecretValue::new(key),
        workspace,
        Transport::new(config).unwrap(),
    )
    .unwrap()
}

fn named(name: &str, disabled: bool) -> KeySettings {
    KeySettings {
        name: name.into(),
        disabled,
        ..Default::default()
    }
}

/// Two values whose hints coincide (same first sixteen and last four characters).
fn twins() -> (String, String) {
    let a = format!("sk-ant-api03-Tw1{}zzAA", "a".repeat(90));
    let b = format!("sk-ant-api03-Tw1{}zzAA", "b".repeat(90));
    (a, b)
}

#[tokio::test]
async fn verify_accepts_an_admin_key_and_refuses_others() {
    let fixture = Fixture::new().await;
    assert_eq!(fixture.client.verify().await.unwrap(), AccountInfo::default());
    let (_, ordinary) = fixture.sim.add_console_key("k", None);
    let err = fixture.client(&ordinary, None).verify().await.unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    let err = fixture
        .client("sk-ant-admin01-unknown", None)
        .verify()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    // Every call names the API version (the simulator refuses calls without it).
    assert!(fixture.sim.requests().iter().all(|r| r.status != 400));
}

#[tokio::test]
async fn verify_checks_the_hubs_workspace() {
    let fixture = Fixture::new().await;
    let ws = fixture.sim.add_workspace("prod");
    fixture.client(ADMIN, Some(ws)).verify().await.unwrap();
    let err = fixture
        .client(ADMIN, Some("wrkspc_01missing".into()))
        .verify()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(message) if message.contains("wrkspc_01missing")),
        "{err:?}"
    );
}

#[tokio::test]
async fn keys_cannot_be_minted_or_revoked() {
    let fixture = Fixture::new().await;
    let err = fixture.client.create_key(&named("x", false)).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    let (id, _) = fixture.sim.add_console_key("k", None);
    let err = fixture.client.delete_key(&id).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(fixture.sim.requests().is_empty(), "nothing is sent");
    let caps = fixture.client.capabilities();
    assert_eq!(
        (caps.provisioning, caps.rotation),
        (Enforcement::Unsupported, Enforcement::Unsupported)
    );
    assert_eq!(
        (caps.budget, caps.expiry),
        (Enforcement::Operator, Enforcement::Operator)
    );
    assert_eq!(
        (caps.disable, caps.rename),
        (Enforcement::Provider, Enforcement::Provider)
    );
    assert_eq!(caps.rate_limits, Enforcement::Advisory);
    assert!(!fixture.client.expiry_in_place());
}

#[tokio::test]
async fn listing_follows_after_id_across_pages_and_filters_by_workspace() {
    let fixture = Fixture::new().await;
    let ws = fixture.sim.add_workspace("w");
    for n in 0..2100 {
        fixture
            .sim
            .add_console_key(&format!("k{n}"), (n % 3 == 0).then_some(ws.as_str()));
    }
    let keys = fixture.client.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2100);
    let mut ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2100);
    assert_eq!(fixture.requests("GET", "/api_keys"), 3);

    let scoped = fixture.client(ADMIN, Some(ws)).list_keys().await.unwrap();
    assert_eq!(scoped.len(), 700);
}

#[tokio::test]
async fn get_key_maps_status_to_disabled_and_unknown_keys_to_none() {
    let fixture = Fixture::new().await;
    let (id, value) = fixture.sim.add_console_key("prod", None);
    let record = fixture.client.get_key(&id).await.unwrap().unwrap();
    assert_eq!(record.name, "prod");
    assert!(!record.settings.disabled);
    assert_eq!(
        record.label.as_deref(),
        Some(&*super::wire::hint_of(&value).unwrap())
    );
    assert_eq!(record.usage.tokens_today, Some(0));
    fixture.sim.set_status(&id, KeyStatus::Inactive);
    assert!(
        fixture
            .client
            .get_key(&id)
            .await
            .unwrap()
            .unwrap()
            .settings
            .disabled
    );
    assert_eq!(fixture.client.get_key("apikey_01nope").await.unwrap(), None);
    assert_eq!(fixture.client.get_key("../workspaces").await.unwrap(), None);
}

#[tokio::test]
async fn updates_rename_and_switch_the_key_between_inactive_and_active() {
    let fixture = Fixture::new().await;
    let (id, _) = fixture.sim.add_console_key("before", None);
    let record = fixture
        .client
        .update_key(&id, &named("after", true))
        .await
        .unwrap();
    assert_eq!((record.name.as_str(), record.settings.disabled), ("after", true));
    assert_eq!(fixture.sim.key(&id).unwrap().status, KeyStatus::Inactive);
    let record = fixture
        .client
        .update_key(&id, &named("after", false))
        .await
        .unwrap();
    assert!(!record.settings.disabled);
    assert_eq!(fixture.sim.key(&id).unwrap().status, KeyStatus::Active);

    fixture.sim.set_status(&id, KeyStatus::Archived);
    let err = fixture
        .client
        .update_key(&id, &named("again", false))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { status: 400, .. }), "{err:?}");
    let err = fixture
        .client
        .update_key("apikey_01nope", &named("x", false))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn inspecting_an_imported_key_calls_the_models_endpoint_with_the_key() {
    let fixture = Fixture::new().await;
    let (id, value) = fixture.sim.add_console_key("k", None);
    let info = fixture
        .client
        .inspect_imported(&SecretValue::new(&value))
        .await
        .unwrap();
    assert_eq!(info.label, super::wire::hint_of(&value));
    assert_eq!(fixture.requests("GET", "/v1/models"), 1);

    // An inactive key is refused by the models (the controller does not validate a key whose
    // record says it is switched off).
    fixture.sim.set_status(&id, KeyStatus::Inactive);
    let err = fixture
        .client
        .inspect_imported(&SecretValue::new(&value))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains(&value[20..40]));
    fixture.sim.set_status(&id, KeyStatus::Archived);
    let err = fixture
        .client
        .inspect_imported(&SecretValue::new(&value))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let err = fixture
        .client
        .inspect_imported(&SecretValue::new(ADMIN))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
}

#[tokio::test]
async fn an_imported_key_is_found_by_its_id_or_by_an_unambiguous_hint() {
    let fixture = Fixture::new().await;
    let (id, value) = fixture.sim.add_console_key("k", None);
    fixture.sim.add_console_key("other", None);
    let value = SecretValue::new(value);
    let by_id = fixture
        .client
        .find_imported(&value, Some(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id.id, id);
    let by_hint = fixture.client.find_imported(&value, None).await.unwrap().unwrap();
    assert_eq!(by_hint.id, id);
    assert_eq!(by_hint.usage.tokens_today, Some(0));

    // An archived key with the same hint does not make the match ambiguous.
    let (a, b) = twins();
    let archived = fixture.sim.add_console_key_with_value("old", None, &a);
    fixture.sim.set_status(&archived, KeyStatus::Archived);
    let live = fixture.sim.add_console_key_with_value("new", None, &b);
    let found = fixture
        .client
        .find_imported(&SecretValue::new(&b), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, live);
}

#[tokio::test]
async fn an_ambiguous_missing_or_mismatched_import_is_a_clear_error() {
    let fixture = Fixture::new().await;
    let (a, b) = twins();
    let first = fixture.sim.add_console_key_with_value("a", None, &a);
    let second = fixture.sim.add_console_key_with_value("b", None, &b);
    let err = fixture
        .client
        .find_imported(&SecretValue::new(&a), None)
        .await
        .unwrap_err();
    match &err {
        Error::Rejected { status: 409, message } => {
            assert!(message.contains(&first) && message.contains(&second) && message.contains("keyId"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.to_string().contains(&a[16..60]));

    let stranger = SecretValue::new(format!("sk-ant-api03-Zzz{}qqAA", "c".repeat(90)));
    let err = fixture.client.find_imported(&stranger, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = fixture
        .client
        .find_imported(&stranger, Some(&first))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { status: 409, .. }), "{err:?}");
    let err = fixture
        .client
        .find_imported(&SecretValue::new(&a), Some("apikey_01nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn the_hubs_workspace_bounds_which_keys_an_import_may_link_to() {
    let fixture = Fixture::new().await;
    let ws = fixture.sim.add_workspace("w");
    let (id, value) = fixture.sim.add_console_key("k", None);
    let scoped = fixture.client(ADMIN, Some(ws.clone()));
    let value = SecretValue::new(value);
    let err = scoped.find_imported(&value, Some(&id)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Rejected { status: 409, message } if message.contains(&ws)),
        "{err:?}"
    );
    let err = scoped.find_imported(&value, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn without_an_admin_credential_imports_are_only_validated() {
    let fixture = Fixture::new().await;
    let (_, value) = fixture.sim.add_console_key("k", None);
    let client = fixture.client("", None);
    assert!(
        client
            .find_imported(&SecretValue::new(&value), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(client.inspect_imported(&SecretValue::new(&value)).await.is_ok());
}

#[tokio::test]
async fn a_key_alone_in_its_workspace_reports_tokens_and_spend_in_usd() {
    let fixture = Fixture::new().await;
    let ws = fixture.sim.add_workspace("w");
    let (id, _) = fixture.sim.add_console_key("k", Some(&ws));
    for (model, input, cents) in [
        ("claude-haiku-4-5", 1000, 123.45),
        ("claude-sonnet-4-5", 10, 10.0),
    ] {
        fixture.sim.record_usage(MessagesUsage {
            api_key_id: Some(id.clone()),
            model: model.into(),
            uncached_input_tokens: input,
            output_tokens: 50,
            cost_cents: Some(cents),
            ..Default::default()
        });
    }
    let usage = fixture.client.get_key(&id).await.unwrap().unwrap().usage;
    assert_eq!(usage.tokens_today, Some(1110));
    assert!((usage.daily_usd.unwrap() - 1.3345).abs() < 1e-9, "{usage:?}");
    assert!((usage.weekly_usd.unwrap() - 1.3345).abs() < 1e-9);
    assert!((usage.monthly_usd.unwrap() - 1.3345).abs() < 1e-9);
    assert_eq!(usage.total_usd, None);
    assert_eq!(usage.requests_today, None);
    let haiku = usage
        .models
        .iter()
        .find(|m| m.model == "claude-haiku-4-5")
        .unwrap();
    assert_eq!(haiku.tokens, Some(1050));
    assert!((haiku.usd.unwrap() - 1.2345).abs() < 1e-9);
}

/// Usage recorded on a day the simulator's clock was moved to is today's for a client on that clock,
/// while one on real time asks for other windows and sees none of it.
#[tokio::test]
async fn usage_windows_follow_the_clock_the_client_is_given() {
    let fixture = Fixture::new().await;
    let clock = fixture.sim.clock();
    clock.set("2024-03-15T12:00:00Z".parse().unwrap());
    let (id, _) = fixture.sim.add_console_key("k", Some("wrkspc_1"));
    fixture.sim.record_usage(MessagesUsage {
        api_key_id: Some(id.clone()),
        model: "claude-haiku-4-5".into(),
        output_tokens: 40,
        cost_cents: Some(25.0),
        ..Default::default()
    });
    let on_clock = fixture.client(ADMIN, None).with_clock(clock.clone());
    let usage = on_clock.get_key(&id).await.unwrap().unwrap().usage;
    assert_eq!(usage.tokens_today, Some(40));
    assert!((usage.daily_usd.unwrap() - 0.25).abs() < 1e-9, "{usage:?}");
    let on_real_time = fixture.client.get_key(&id).await.unwrap().unwrap().usage;
    assert_ne!(on_real_time.tokens_today, Some(40));
}

#[tokio::test]
async fn spend_shared_with_the_console_in_the_default_workspace_is_not_guessed() {
    let fixture = Fixture::new().await;
    let (id, _) = fixture.sim.add_console_key("k", None);
    fixture.sim.record_usage(MessagesUsage {
        api_key_id: Some(id.clone()),
        model: "claude-haiku-4-5".into(),
        output_tokens: 10,
        cost_cents: Some(5.0),
        ..Default::default()
    });
    fixture.sim.record_usage(MessagesUsage {
        model: "claude-haiku-4-5".into(),
        output_tokens: 10,
        cost_cents: Some(5.0),
        ..Default::default()
    });
    let usage = fixture.client.get_key(&id).await.unwrap().unwrap().usage;
    assert_eq!(usage.tokens_today, Some(10));
    assert_eq!((usage.daily_usd, usage.monthly_usd), (None, None));
    assert_eq!(usage.models[0].usd, None);
}

#[tokio::test]
async fn reports_are_read_across_pages() {
    let fixture = Fixture::new().await;
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 40);
    let buckets: Vec<wire::Bucket<CostRow>> = fixture
        .client
        .report("cost_report", start, &[("group_by[]", "workspace_id")])
        .await
        .unwrap();
    assert_eq!(buckets.len(), 41);
    assert_eq!(fixture.requests("GET", "/cost_report"), 2);
}

#[tokio::test]
async fn a_rate_limited_call_waits_out_retry_after_then_succeeds() {
    let fixture = Fixture::new().await;
    fixture.assert_listing_waits_out_retry_after("/api_keys").await;
}

#[tokio::test]
async fn server_errors_are_retried_until_success_or_the_retry_budget_ends() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::server_error(2));
    fixture.client.verify().await.unwrap();
    let statuses: Vec<u16> = fixture.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 200]);

    let fixture = Fixture::with(
        HttpConfig {
            max_retries: 1,
            ..fast_config()
        },
        None,
    )
    .await;
    fixture.sim.inject(Fault::server_error(5));
    let err = fixture.client.list_keys().await.unwrap_err();
    assert!(matches!(err, Error::Server { status: 500, .. }), "{err:?}");
    assert_eq!(fixture.sim.requests().len(), 2);
}

#[test]
fn the_client_debug_output_hides_the_admin_key() {
    let client = AnthropicClient::new(
        DEFAULT_ENDPOINT,
        DEFAULT_INFERENCE_ENDPOINT,
        SecretValue::new(ADMIN),
        None,
        Transport::new(HttpConfig::default()).unwrap(),
    )
    .unwrap();
    assert!(!format!("{client:?}").contains("client-tests"));
}
