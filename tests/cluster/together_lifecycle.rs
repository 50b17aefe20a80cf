//! Together AI and OpenAI-compatible hubs end to end on the real control plane, with their
//! simulators: keys made elsewhere are imported, checked with `GET /v1/models` (a bare array at
//! Together, the `data` envelope elsewhere), delivered with the server's URL, reported Unauthorized
//! once the server refuses them, kept at the provider on delete; limits are only published; 429s
//! and 5xx are retried and reported; minting is refused.

use std::time::Duration;

use crate::support::{
    eventually,
    operator::{Scene, hub_ready, is_ready, key_ready},
};
use keysmith_api::{ApiKey, Enforcement, LimitSource};
use keysmith_simulators::{
    RunningSim,
    clock::Clock,
    faults::Fault,
    validate_only::{Flavor, ValidateOnlySim},
};
use kube::api::DeleteParams;
use serde_json::{Value, json};

/// A namespace with one validate-only simulator and (optionally) the operator.
struct Env {
    scene: Scene,
    sim: ValidateOnlySim,
    running: RunningSim,
}

impl std::ops::Deref for Env {
    type Target = Scene;
    fn deref(&self) -> &Scene {
        &self.scene
    }
}

impl Env {
    async fn with_operator(prefix: &str, flavor: Flavor) -> Self {
        let mut scene = Scene::new(prefix).await;
        let sim = ValidateOnlySim::new(flavor, [], Clock::new());
        let running = sim.spawn().await.unwrap();
        scene.start_operator();
        Self { scene, sim, running }
    }

    /// A hub named `hub` for the simulator's flavor, with `extra` merged into its spec.
    async fn apply_hub(&self, extra: Value) {
        let provider = match self.sim.flavor() {
            Flavor::Together => "together",
            Flavor::OpenAiCompatible => "openaiCompatible",
        };
        let mut spec = json!({"provider": provider, "inferenceEndpoint": self.running.base_url});
        crate::support::operator::merge(&mut spec, extra);
        self.apply_hub_spec("hub", spec).await;
    }

    /// A key made "in the dashboard", its value in Secret `<name>-source`, imported by ApiKey `name`
    /// with `extra` merged into the spec. Returns the key's id at the simulator and its value.
    async fn import(&self, name: &str, extra: Value) -> (String, String) {
        let added = self.sim.add_key(name);
        self.apply_secret(&format!("{name}-source"), json!({"value": added.value}))
            .await;
        let mut spec = json!({"hubRef": {"name": "hub"},
                              "import": {"secretRef": {"name": format!("{name}-source"), "key": "value"}}});
        crate::support::operator::merge(&mut spec, extra);
        self.apply_key(name, spec).await;
        (added.id, added.value)
    }

    async fn wait_reason(&self, name: &str, reason: &str) -> ApiKey {
        self.wait_key(name, &format!("Ready=False {reason}"), |k| {
            key_ready(k).is_some_and(|(s, r)| s == "False" && r == reason)
        })
        .await
    }
}

#[tokio::test]
async fn a_together_key_is_validated_delivered_and_its_limits_only_published() {
    let env = Env::with_operator("together-import", Flavor::Together).await;
    env.apply_hub(json!({"defaults": {"requestLimits": {"maxOutputTokens": 2048}}}))
        .await;
    let (_, value) = env
        .import(
            "summarizer",
            json!({"limits": {"requestsPerMinute": 60}, "budget": {"limitUsd": 10},
                   "requestLimits": {"maxInputTokens": 8192},
                   "secret": {"name": "summarizer-llm", "keys": {"apiKey": "OPENAI_API_KEY", "baseUrl": "OPENAI_BASE_URL", "limits": "KEYSMITH_LIMITS"}}}),
        )
        .await;
    let key = env.wait_key("summarizer", "ApiKey Ready", is_ready).await;
    let data = env.secret_data("summarizer-llm").await.unwrap();
    assert_eq!(data["OPENAI_API_KEY"], value);
    assert_eq!(data["OPENAI_BASE_URL"], env.running.base_url);
    assert_eq!(data["maxInputTokens"], "8192");
    assert_eq!(data["maxOutputTokens"], "2048");
    // The opt-in limits document: what a client should pace itself by, and who holds each limit.
    let doc: Value = serde_json::from_str(&data["KEYSMITH_LIMITS"]).unwrap();
    assert_eq!(doc["onLimitExceeded"], "Reject");
    assert_eq!(doc["limits"]["requestsPerMinute"]["value"], 60);
    assert_eq!(doc["limits"]["requestsPerMinute"]["enforcement"], "Advisory");
    assert_eq!(doc["limits"]["maxOutputTokens"]["source"], "HubDefault");
    assert_eq!(doc["limits"]["budget"]["limitUsd"], 10.0);

    let status = key.status.unwrap();
    assert!(!serde_json::to_string(&status).unwrap().contains(&value));
    // Ready says the key works; LimitsEnforced says that nobody holds these limits.
    let enforced = keysmith_api::conditions::get(&status.conditions, "LimitsEnforced").unwrap();
    assert_eq!(
        (enforced.status.as_str(), enforced.reason.as_str()),
        ("False", "LimitsAdvisory")
    );
    let message = &enforced.message;
    for limit in ["budget", "requestsPerMinute", "maxInputTokens", "maxOutputTokens"] {
        assert!(message.contains(limit), "{limit} missing from: {message}");
    }
    let limits = status.effective_limits.unwrap();
    let rpm = limits.requests_per_minute.unwrap();
    assert_eq!((rpm.value, rpm.enforcement), (60, Enforcement::Advisory));
    assert_eq!(limits.budget.unwrap().enforcement, Enforcement::Advisory);
    let output = limits.max_output_tokens.unwrap();
    assert_eq!(
        (output.source, output.enforcement),
        (LimitSource::HubDefault, Enforcement::Advisory)
    );
    // The key itself was checked against the model list.
    let checks: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/models")
        .collect();
    assert!(checks.iter().any(|r| r.status == 200));
    assert!(
        env.sim.requests().iter().all(|r| r.path == "/v1/models"),
        "nothing else is called"
    );
}

#[tokio::test]
async fn a_key_revoked_in_the_dashboard_turns_unauthorized_and_a_new_value_recovers() {
    let env = Env::with_operator("together-revoked", Flavor::Together).await;
    env.apply_hub(json!({})).await;
    let (id, _) = env.import("worker", json!({})).await;
    env.wait_key("worker", "ApiKey Ready", is_ready).await;

    assert!(env.sim.revoke(&id));
    let key = env.wait_reason("worker", "Unauthorized").await;
    let stalled = crate::support::operator::condition(key.status.as_ref().map(|s| &s.conditions), "Stalled");
    assert_eq!(stalled.map(|(s, _)| s), Some("True".into()));

    // The user pastes a new dashboard key into the import Secret.
    let fresh = env.sim.add_key("replacement");
    env.apply_secret("worker-source", json!({"value": fresh.value}))
        .await;
    env.wait_key("worker", "Ready with the new key", is_ready).await;
    eventually(
        "the Secret holds the new key",
        Duration::from_secs(60),
        || async { (env.secret_data("worker").await.unwrap()["apiKey"] == fresh.value).then_some(()) },
    )
    .await;
}

/// The import Secret is watched: a new value reaches the delivered Secret in seconds, not at the next
/// poll (ten minutes here).
#[tokio::test]
async fn a_new_value_in_the_import_secret_is_delivered_without_waiting_for_the_poll() {
    let env = Env::with_operator("together-reimport", Flavor::Together).await;
    env.apply_hub(json!({"usageRefreshInterval": "10m"})).await;
    let (_, first) = env.import("worker", json!({})).await;
    env.wait_key("worker", "ApiKey Ready", is_ready).await;
    assert_eq!(env.secret_data("worker").await.unwrap()["apiKey"], first);
    // Another Secret's change in the namespace wakes nothing that matters.
    env.apply_secret("unrelated", json!({"value": "x"})).await;

    let fresh = env.sim.add_key("replacement");
    env.apply_secret("worker-source", json!({"value": fresh.value}))
        .await;
    eventually(
        "the delivered Secret holds the new value",
        Duration::from_secs(20),
        || async { (env.secret_data("worker").await.unwrap()["apiKey"] == fresh.value).then_some(()) },
    )
    .await;
    env.wait_key("worker", "Ready with the new value", is_ready).await;
}

#[tokio::test]
async fn deleting_an_imported_key_leaves_it_working_at_the_provider() {
    let env = Env::with_operator("together-delete", Flavor::Together).await;
    env.apply_hub(json!({})).await;
    let (_, value) = env.import("temp", json!({"deletionPolicy": "Delete"})).await;
    env.wait_key("temp", "ApiKey Ready", is_ready).await;
    let api = env.ns.api::<ApiKey>();
    api.delete("temp", &DeleteParams::default()).await.unwrap();
    eventually("ApiKey gone", Duration::from_secs(60), || async {
        api.get_opt("temp").await.unwrap().is_none().then_some(())
    })
    .await;
    // Only Together's dashboard can revoke it.
    assert!(env.sim.accepts(&value));
}

#[tokio::test]
async fn minting_on_a_together_hub_is_refused() {
    let env = Env::with_operator("together-mint", Flavor::Together).await;
    // Even with a credential, there is no API to mint with.
    let added = env.sim.add_key("hub credential");
    env.apply_secret("together-key", json!({"key": added.value}))
        .await;
    env.apply_hub(json!({"credentialsRef": {"name": "together-key", "key": "key"}}))
        .await;
    env.apply_key("new", json!({"hubRef": {"name": "hub"}})).await;
    let key = env.wait_reason("new", "Unsupported").await;
    let ready = keysmith_api::conditions::get(&key.status.unwrap().conditions, "Ready")
        .cloned()
        .unwrap();
    assert!(ready.message.contains("import the key"), "{}", ready.message);
    assert_eq!(env.sim.keys().len(), 1, "no key was made");
}

#[tokio::test]
async fn togethers_429s_are_honoured_and_reported_then_pass() {
    let env = Env::with_operator("together-429", Flavor::Together).await;
    env.apply_hub(json!({})).await;
    // A short dynamic limit is waited out within the call.
    env.sim.inject(Fault::rate_limit(1, 1));
    env.import("a", json!({})).await;
    env.wait_key("a", "ApiKey Ready", is_ready).await;
    // A longer burst outlasts one call's retries: RateLimited, retried, then Ready.
    env.sim.inject(Fault::rate_limit(12, 1));
    env.import("b", json!({})).await;
    env.wait_reason("b", "RateLimited").await;
    env.wait_key("b", "Ready after the 429s", is_ready).await;
    assert_eq!(env.sim.early_retries(), 0, "Retry-After was honoured");
}

#[tokio::test]
async fn overload_and_server_errors_are_retried_and_reported_until_they_pass() {
    let env = Env::with_operator("together-5xx", Flavor::Together).await;
    env.apply_hub(json!({})).await;
    // A model overloaded for two answers is retried within the call.
    env.sim.overload(2);
    env.import("a", json!({})).await;
    env.wait_key("a", "ApiKey Ready", is_ready).await;
    assert!(env.sim.requests().iter().any(|r| r.status == 503));

    env.sim.inject(Fault::server_error(1000));
    env.import("b", json!({})).await;
    let key = env.wait_reason("b", "ProviderError").await;
    let reconciling =
        crate::support::operator::condition(key.status.as_ref().map(|s| &s.conditions), "Reconciling");
    assert_eq!(reconciling.map(|(s, _)| s), Some("True".into()));
    env.sim.clear_faults();
    env.wait_key("b", "Ready after the 5xx", is_ready).await;
}

#[tokio::test]
async fn a_hub_credential_is_checked_like_a_key() {
    let env = Env::with_operator("together-hub", Flavor::Together).await;
    let added = env.sim.add_key("hub credential");
    env.apply_secret("together-key", json!({"key": added.value}))
        .await;
    env.apply_hub(json!({"credentialsRef": {"name": "together-key", "key": "key"}}))
        .await;
    let hub = env
        .wait_hub("hub", "hub Ready", |h| {
            hub_ready(h).is_some_and(|(s, _)| s == "True")
        })
        .await;
    let caps = hub.status.unwrap().capabilities.unwrap();
    assert_eq!(caps.provisioning, Enforcement::Unsupported);
    assert_eq!(caps.rate_limits, Enforcement::Advisory);

    env.apply_secret("together-key", json!({"key": "not-a-together-key"}))
        .await;
    env.apply_hub(
        json!({"credentialsRef": {"name": "together-key", "key": "key"}, "usageRefreshInterval": "30s"}),
    )
    .await;
    env.wait_hub("hub", "hub Unauthorized", |h| {
        hub_ready(h).is_some_and(|(s, r)| s == "False" && r == "Unauthorized")
    })
    .await;
}

#[tokio::test]
async fn an_openai_compatible_key_is_validated_against_the_named_server() {
    let env = Env::with_operator("compat-import", Flavor::OpenAiCompatible).await;
    env.apply_hub(json!({})).await;
    let (_, value) = env
        .import(
            "rag",
            json!({"rateLimit": {"requests": 100, "intervalSeconds": 60},
                   "secret": {"keys": {"apiKey": "OPENAI_API_KEY", "baseUrl": "OPENAI_BASE_URL"}}}),
        )
        .await;
    let key = env.wait_key("rag", "ApiKey Ready", is_ready).await;
    let data = env.secret_data("rag").await.unwrap();
    assert_eq!(data["OPENAI_API_KEY"], value);
    assert_eq!(data["OPENAI_BASE_URL"], env.running.base_url);
    let rate = key.status.unwrap().effective_limits.unwrap().rate_limit.unwrap();
    assert_eq!((rate.requests, rate.enforcement), (100, Enforcement::Advisory));

    env.apply_secret("bad-source", json!({"value": "sk-not-issued-by-this-server"}))
        .await;
    env.apply_key(
        "bad",
        json!({"hubRef": {"name": "hub"}, "import": {"secretRef": {"name": "bad-source", "key": "value"}}}),
    )
    .await;
    let key = env.wait_reason("bad", "Unauthorized").await;
    let status = serde_json::to_string(&key.status).unwrap();
    assert!(!status.contains("sk-not-issued-by-this-server"), "{status}");
}

#[tokio::test]
async fn an_openai_compatible_hub_without_an_inference_endpoint_is_a_configuration_error() {
    let env = Env::with_operator("compat-config", Flavor::OpenAiCompatible).await;
    env.apply_hub_spec("hub", json!({"provider": "openaiCompatible"}))
        .await;
    env.import("k", json!({})).await;
    let key = env.wait_reason("k", "InvalidHubConfig").await;
    let ready = keysmith_api::conditions::get(&key.status.unwrap().conditions, "Ready")
        .cloned()
        .unwrap();
    assert!(
        ready.message.contains("spec.inferenceEndpoint"),
        "{}",
        ready.message
    );
    assert!(env.sim.requests().is_empty());
}
