//! ApiKey and ModelHub end to end on the real control plane, with the Anthropic simulator. Anthropic
//! keys are made in the Console, so every ApiKey imports one: linked by `keyId` or by its hint,
//! renamed and disabled in place, usage and spend in status, budget and expiry enforced by keysmith
//! setting the key inactive, provider errors as conditions, and deletion that never revokes.

use std::time::Duration;

use crate::support::{
    eventually,
    operator::{Scene, condition, hub_ready, is_ready, key_ready},
};
use keysmith_api::{ApiKey, Enforcement};
use keysmith_providers::SecretValue;
use keysmith_simulators::{
    RunningSim,
    anthropic::{AnthropicSim, KeyStatus, MessagesUsage},
    clock::Clock,
    faults::Fault,
};
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "sk-ant-admin01-lifecycle-tests-00000000000000000000000000000000000000";

/// A namespace with an Anthropic simulator and its admin key in a Secret.
struct Env {
    scene: Scene,
    sim: AnthropicSim,
    running: RunningSim,
}

impl std::ops::Deref for Env {
    type Target = Scene;
    fn deref(&self) -> &Scene {
        &self.scene
    }
}

impl Env {
    async fn with_operator(prefix: &str) -> Self {
        let mut scene = Scene::new(prefix).await;
        let sim = AnthropicSim::new([ADMIN_KEY.to_owned()], Clock::new());
        let running = sim.spawn().await.unwrap();
        scene
            .apply_secret("anthropic-admin", json!({"key": ADMIN_KEY}))
            .await;
        scene.start_operator();
        Self { scene, sim, running }
    }

    /// A hub on the simulator; `extra` is merged into its spec.
    async fn apply_hub(&self, name: &str, extra: Value) {
        let mut spec = json!({
            "provider": "anthropic",
            "endpoint": self.running.base_url,
            "credentialsRef": {"name": "anthropic-admin", "key": "key"},
        });
        crate::support::operator::merge(&mut spec, extra);
        self.apply_hub_spec(name, spec).await;
    }

    /// A Console key whose value sits in Secret `name-console`; returns its id and value.
    async fn console_key(&self, name: &str, workspace: Option<&str>) -> (String, String) {
        let (id, value) = self.sim.add_console_key(&format!("{name} (console)"), workspace);
        self.apply_secret(&format!("{name}-console"), json!({"value": value}))
            .await;
        (id, value)
    }

    async fn import(&self, name: &str, key_id: Option<&str>, extra: Value) {
        let mut import = json!({"secretRef": {"name": format!("{name}-console"), "key": "value"}});
        if let Some(id) = key_id {
            import["keyId"] = json!(id);
        }
        let mut spec = json!({"hubRef": {"name": "an"}, "import": import});
        crate::support::operator::merge(&mut spec, extra);
        self.apply_key(name, spec).await;
    }
}

fn reason_is(want: &'static str) -> impl Fn(&ApiKey) -> bool {
    move |k| key_ready(k).is_some_and(|(_, r)| r == want)
}

#[tokio::test]
async fn an_imported_key_is_linked_renamed_disabled_and_enabled_in_place() {
    let env = Env::with_operator("an-link").await;
    env.apply_hub("an", json!({})).await;
    let (id, value) = env.console_key("bot", None).await;
    env.import(
        "bot",
        Some(&id),
        json!({"displayName": "support-bot", "secret": {"keys": {"apiKey": "ANTHROPIC_API_KEY"}}}),
    )
    .await;
    let key = env.wait_key("bot", "imported key Ready", is_ready).await;
    let status = key.status.clone().unwrap();
    assert_eq!(status.key_id.as_deref(), Some(id.as_str()));
    let hint = env.sim.key(&id).unwrap().partial_key_hint;
    assert_eq!(status.key_label.as_deref(), Some(hint.as_str()));
    assert_eq!(status.fingerprint, Some(SecretValue::new(&value).fingerprint()));
    let data = env.secret_data("bot").await.unwrap();
    assert_eq!(data["ANTHROPIC_API_KEY"], value);
    assert_eq!(data["baseUrl"], "https://api.anthropic.com");
    assert!(!serde_json::to_string(&status).unwrap().contains(&value));
    assert_eq!(env.sim.key(&id).unwrap().name, "support-bot");
    // The key was checked with itself against the models endpoint.
    assert!(
        env.sim
            .requests()
            .iter()
            .any(|r| r.path == "/v1/models" && r.status == 200)
    );

    env.import(
        "bot",
        Some(&id),
        json!({"displayName": "support-bot", "disabled": true, "secret": {"keys": {"apiKey": "ANTHROPIC_API_KEY"}}}),
    )
    .await;
    env.wait_key("bot", "KeyDisabled", reason_is("KeyDisabled")).await;
    assert_eq!(env.sim.key(&id).unwrap().status, KeyStatus::Inactive);

    env.import(
        "bot",
        Some(&id),
        json!({"displayName": "renamed", "secret": {"keys": {"apiKey": "ANTHROPIC_API_KEY"}}}),
    )
    .await;
    env.wait_key("bot", "Ready again", is_ready).await;
    let sim_key = env.sim.key(&id).unwrap();
    assert_eq!(
        (sim_key.status, sim_key.name.as_str()),
        (KeyStatus::Active, "renamed")
    );
}

#[tokio::test]
async fn without_a_key_id_the_record_is_found_by_an_unambiguous_hint_only() {
    let env = Env::with_operator("an-hint").await;
    env.apply_hub("an", json!({})).await;
    let (id, _) = env.console_key("solo", None).await;
    env.import("solo", None, json!({})).await;
    let key = env.wait_key("solo", "Ready", is_ready).await;
    assert_eq!(key.status.unwrap().key_id.as_deref(), Some(id.as_str()));

    // Two keys whose hints coincide: keysmith refuses to guess and writes no Secret.
    let a = format!("sk-ant-api03-Tw1{}zzAA", "a".repeat(90));
    let b = format!("sk-ant-api03-Tw1{}zzAA", "b".repeat(90));
    env.sim.add_console_key_with_value("twin a", None, &a);
    env.sim.add_console_key_with_value("twin b", None, &b);
    env.apply_secret("twin-console", json!({"value": a})).await;
    env.import("twin", None, json!({})).await;
    let key = env
        .wait_key("twin", "ambiguous hint", reason_is("ProviderRejected"))
        .await;
    let ready = key
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(ready.message.contains("keyId"), "{}", ready.message);
    assert!(env.secret_data("twin").await.is_none());
}

#[tokio::test]
async fn tokens_and_spend_reach_status_and_a_spent_budget_sets_the_key_inactive() {
    let env = Env::with_operator("an-budget").await;
    let ws = env.sim.add_workspace("support");
    env.apply_hub("an", json!({"anthropic": {"workspaceId": ws}}))
        .await;
    let (id, _) = env.console_key("bot", Some(&ws)).await;
    env.import(
        "bot",
        Some(&id),
        json!({"budget": {"limitUsd": 1.0, "reset": "Daily"}}),
    )
    .await;
    env.wait_key("bot", "Ready", is_ready).await;
    env.sim.record_usage(MessagesUsage {
        api_key_id: Some(id.clone()),
        model: "claude-haiku-4-5".into(),
        uncached_input_tokens: 2000,
        output_tokens: 500,
        cost_cents: Some(40.0),
        ..Default::default()
    });
    let key = env
        .wait_key("bot", "usage in status", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.usage.as_ref())
                .and_then(|u| u.tokens_today)
                == Some(2500)
        })
        .await;
    let status = key.status.unwrap();
    let usage = status.usage.unwrap();
    assert_eq!(usage.daily_usd, Some(0.4));
    assert_eq!(usage.current_usd, Some(0.4));
    assert_eq!(usage.models[0].model, "claude-haiku-4-5");
    assert_eq!(
        status.effective_limits.unwrap().budget.unwrap().enforcement,
        Enforcement::Operator
    );

    // Spend reaches the budget: keysmith switches the key off at Anthropic.
    env.sim.record_usage(MessagesUsage {
        api_key_id: Some(id.clone()),
        model: "claude-haiku-4-5".into(),
        output_tokens: 100,
        cost_cents: Some(75.0),
        ..Default::default()
    });
    let key = env
        .wait_key("bot", "LimitExceeded", |k| {
            condition(k.status.as_ref().map(|s| &s.conditions), "LimitExceeded")
                .is_some_and(|(s, r)| s == "True" && r == "BudgetExceeded")
        })
        .await;
    assert_eq!(key_ready(&key).unwrap().0, "False");
    eventually(
        "the key inactive at Anthropic",
        Duration::from_secs(30),
        || async { (env.sim.key(&id).unwrap().status == KeyStatus::Inactive).then_some(()) },
    )
    .await;

    // A larger budget lets it work again.
    env.import(
        "bot",
        Some(&id),
        json!({"budget": {"limitUsd": 5.0, "reset": "Daily"}}),
    )
    .await;
    env.wait_key("bot", "Ready again", is_ready).await;
    assert_eq!(env.sim.key(&id).unwrap().status, KeyStatus::Active);
}

/// A key sharing its workspace with the Console on a day: Anthropic's cost report cannot split that
/// day's spend by key, so keysmith says it cannot tell, rather than "within every enforced limit".
#[tokio::test]
async fn spend_shared_with_the_console_is_reported_unknown_not_within_limits() {
    let env = Env::with_operator("an-shared").await;
    let ws = env.sim.add_workspace("shared");
    env.apply_hub("an", json!({"anthropic": {"workspaceId": ws}}))
        .await;
    let (id, _) = env.console_key("bot", Some(&ws)).await;
    env.import(
        "bot",
        Some(&id),
        json!({"budget": {"limitUsd": 1.0, "reset": "Daily"}}),
    )
    .await;
    env.wait_key("bot", "Ready", is_ready).await;
    env.sim.record_usage(MessagesUsage {
        api_key_id: Some(id.clone()),
        model: "claude-haiku-4-5".into(),
        output_tokens: 100,
        cost_cents: Some(10.0),
        ..Default::default()
    });
    // Someone uses the same workspace from the Console the same day.
    env.sim.record_usage(MessagesUsage {
        workspace_id: Some(ws.clone()),
        model: "claude-haiku-4-5".into(),
        output_tokens: 100,
        cost_cents: Some(20.0),
        ..Default::default()
    });
    let key = env
        .wait_key("bot", "LimitExceeded Unknown", |k| {
            condition(k.status.as_ref().map(|s| &s.conditions), "LimitExceeded")
                .is_some_and(|(s, r)| s == "Unknown" && r == "SpendUnknown")
        })
        .await;
    let status = key.status.unwrap();
    assert_eq!(status.usage.as_ref().unwrap().current_usd, None);
    let budget = status.effective_limits.unwrap().budget.unwrap();
    assert_eq!(budget.spend_known, Some(false));
    let enforced = keysmith_api::conditions::get(&status.conditions, "LimitsEnforced").unwrap();
    assert_eq!(enforced.status, "False");
    assert!(enforced.message.contains("budget"), "{}", enforced.message);
    // The key still works: nothing says it is over its budget.
    assert_eq!(
        condition(Some(&status.conditions), "Ready")
            .map(|(s, _)| s)
            .as_deref(),
        Some("True")
    );
}

#[tokio::test]
async fn a_past_expiry_sets_the_key_inactive() {
    let env = Env::with_operator("an-expiry").await;
    env.apply_hub("an", json!({})).await;
    let (id, _) = env.console_key("old", None).await;
    env.import("old", Some(&id), json!({"expiresAt": "2024-01-01T00:00:00Z"}))
        .await;
    let key = env.wait_key("old", "Expired", reason_is("Expired")).await;
    assert_eq!(
        key.status.unwrap().expires_at.as_deref(),
        Some("2024-01-01T00:00:00Z")
    );
    eventually(
        "the key inactive at Anthropic",
        Duration::from_secs(30),
        || async { (env.sim.key(&id).unwrap().status == KeyStatus::Inactive).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn provider_errors_become_conditions_or_are_retried() {
    let env = Env::with_operator("an-errors").await;
    // A wrong admin key.
    env.apply_secret("wrong", json!({"key": "sk-ant-admin01-wrong"}))
        .await;
    env.apply_hub(
        "wrong",
        json!({"credentialsRef": {"name": "wrong", "key": "key"}}),
    )
    .await;
    env.wait_hub("wrong", "Unauthorized", |h| {
        hub_ready(h).is_some_and(|(_, r)| r == "Unauthorized")
    })
    .await;
    // A workspace that does not exist.
    env.apply_hub(
        "nows",
        json!({"anthropic": {"workspaceId": "wrkspc_01doesnotexist"}}),
    )
    .await;
    env.wait_hub("nows", "InvalidHubConfig", |h| {
        hub_ready(h).is_some_and(|(_, r)| r == "InvalidHubConfig")
    })
    .await;

    // Both use the same admin key as the hub below but have transports of their own: removed, so
    // that nothing else calls with that key while the 429 below asks it to wait.
    let hubs = env.ns.api::<keysmith_api::ModelHub>();
    for name in ["wrong", "nows"] {
        hubs.delete(name, &DeleteParams::default()).await.unwrap();
    }

    env.apply_hub("an", json!({})).await;
    let hub = env
        .wait_hub("an", "hub Ready", |h| {
            hub_ready(h).is_some_and(|(s, _)| s == "True")
        })
        .await;
    let caps = hub.status.unwrap().capabilities.unwrap();
    assert_eq!(
        (caps.provisioning, caps.budget, caps.disable),
        (
            Enforcement::Unsupported,
            Enforcement::Operator,
            Enforcement::Provider
        )
    );

    // An unknown keyId (404) is a condition naming it.
    let (_, _) = env.console_key("ghost", None).await;
    env.import("ghost", Some("apikey_01doesnotexist"), json!({}))
        .await;
    env.wait_key("ghost", "NotFound", reason_is("NotFound")).await;

    // A key the provider rejects (401 on /v1/models) is reported, not copied.
    let (id, _) = env.console_key("off", None).await;
    env.sim.set_status(&id, KeyStatus::Archived);
    env.import("off", Some(&id), json!({})).await;
    env.wait_key("off", "Unauthorized", reason_is("Unauthorized"))
        .await;
    assert!(env.secret_data("off").await.is_none());

    // 429 with Retry-After and a burst of 500s: waited out and retried.
    env.sim
        .inject(Fault::rate_limit(1, 1).on_path("/v1/organizations/api_keys"));
    env.sim.inject(Fault::server_error(2).on_path("/v1/"));
    let (id, _) = env.console_key("ok", None).await;
    env.import("ok", Some(&id), json!({})).await;
    env.wait_key("ok", "Ready", is_ready).await;
    assert_eq!(env.sim.early_retries(), 0);
    let statuses: Vec<u16> = env.sim.requests().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&429) && statuses.contains(&500), "{statuses:?}");
}

#[tokio::test]
async fn deleting_an_apikey_never_revokes_the_console_key() {
    let env = Env::with_operator("an-delete").await;
    env.apply_hub("an", json!({})).await;
    let (deleted, _) = env.console_key("del", None).await;
    let (orphaned, _) = env.console_key("orp", None).await;
    env.import("del", Some(&deleted), json!({})).await;
    env.import("orp", Some(&orphaned), json!({"deletionPolicy": "Orphan"}))
        .await;
    env.wait_key("del", "Ready", is_ready).await;
    env.wait_key("orp", "Ready", is_ready).await;
    let api = env.ns.api::<ApiKey>();
    api.delete("del", &DeleteParams::default()).await.unwrap();
    api.delete("orp", &DeleteParams::default()).await.unwrap();
    eventually("both ApiKeys gone", Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            api.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
    // Anthropic has no delete; archiving is left to the Console.
    for id in [deleted, orphaned] {
        assert_eq!(env.sim.key(&id).unwrap().status, KeyStatus::Active);
    }
}
