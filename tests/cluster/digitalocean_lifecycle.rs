//! DigitalOcean end to end on the real control plane, with the DigitalOcean simulator: keys made in
//! the control panel are imported, linked by uuid, renamed, rotated by regenerating their value in
//! place (also across a crash), validated against the inference service, revoked or left on delete,
//! and every provider error lands in a condition. Minting is refused: DigitalOcean retired it.

use std::time::Duration;

use crate::support::{
    eventually,
    operator::{Scene, hub_ready, is_ready, key_ready},
};
use keysmith_api::{ApiKey, Enforcement};
use keysmith_providers::SecretValue;
use keysmith_simulators::{RunningSim, clock::Clock, digitalocean::DigitalOceanSim, faults::Fault};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

const TOKEN: &str = "dop_v1_lifecycle_test_token_0000000000000000000000000000000000000000000";

/// A namespace with a DigitalOcean simulator, the API token Secret and (optionally) the operator.
struct DoEnv {
    scene: Scene,
    sim: DigitalOceanSim,
    running: RunningSim,
}

impl std::ops::Deref for DoEnv {
    type Target = Scene;
    fn deref(&self) -> &Scene {
        &self.scene
    }
}

impl DoEnv {
    async fn new(prefix: &str) -> Self {
        let scene = Scene::new(prefix).await;
        let sim = DigitalOceanSim::new([TOKEN.to_owned()], Clock::new());
        let running = RunningSim::start(sim.router(), "").await.unwrap();
        scene.apply_secret("do-token", json!({"token": TOKEN})).await;
        Self { scene, sim, running }
    }

    async fn with_operator(prefix: &str) -> Self {
        let mut env = Self::new(prefix).await;
        env.scene.start_operator();
        env
    }

    fn inference_url(&self) -> String {
        format!("{}/v1", self.running.base_url)
    }

    /// A hub named `do` pointing at the simulator, authenticated with the token Secret.
    async fn apply_hub(&self) {
        self.apply_hub_spec(
            "do",
            json!({"provider": "digitalocean", "endpoint": self.running.base_url,
                   "inferenceEndpoint": self.inference_url(),
                   "credentialsRef": {"name": "do-token", "key": "token"}}),
        )
        .await;
    }

    /// A key made "in the control panel", its value in Secret `<name>-source`, imported by ApiKey
    /// `name` with `extra` merged into the spec. Returns the key's uuid and value.
    async fn import(&self, name: &str, key_id: bool, extra: Value) -> (String, String) {
        let added = self.sim.add_key(&format!("{name} from the panel"));
        self.apply_secret(&format!("{name}-source"), json!({"value": added.value}))
            .await;
        let mut import = json!({"secretRef": {"name": format!("{name}-source"), "key": "value"}});
        if key_id {
            import["keyId"] = json!(added.uuid);
        }
        let mut spec = json!({"hubRef": {"name": "do"}, "import": import});
        crate::support::operator::merge(&mut spec, extra);
        self.apply_key(name, spec).await;
        (added.uuid, added.value)
    }

    async fn wait_reason(&self, name: &str, reason: &str) -> ApiKey {
        self.wait_key(name, &format!("Ready=False {reason}"), |k| {
            key_ready(k).is_some_and(|(s, r)| s == "False" && r == reason)
        })
        .await
    }
}

#[tokio::test]
async fn an_import_is_linked_by_uuid_renamed_in_place_and_delivered() {
    let env = DoEnv::with_operator("do-import").await;
    env.apply_hub().await;
    let hub = env
        .wait_hub("do", "hub Ready", |h| {
            hub_ready(h).is_some_and(|(s, _)| s == "True")
        })
        .await;
    let caps = hub.status.unwrap().capabilities.unwrap();
    assert_eq!(caps.rename, Enforcement::Provider);
    assert_eq!(caps.rotation, Enforcement::Provider);
    assert_eq!(caps.provisioning, Enforcement::Unsupported);
    assert_eq!(caps.usage, Enforcement::Unsupported);

    let (uuid, value) = env
        .import(
            "bot",
            true,
            json!({"displayName": "support-bot", "requestLimits": {"maxOutputTokens": 1024},
                   "secret": {"name": "bot-llm", "keys": {"apiKey": "OPENAI_API_KEY", "baseUrl": "OPENAI_BASE_URL"}}}),
        )
        .await;
    let key = env.wait_key("bot", "ApiKey Ready", is_ready).await;
    let status = key.status.clone().unwrap();
    assert_eq!(status.key_id.as_deref(), Some(uuid.as_str()));
    assert_eq!(
        status.fingerprint.as_deref(),
        Some(SecretValue::new(value.clone()).fingerprint().as_str())
    );
    let data = env.secret_data("bot-llm").await.unwrap();
    assert_eq!(data["OPENAI_API_KEY"], value);
    assert_eq!(data["OPENAI_BASE_URL"], env.inference_url());
    assert_eq!(data["maxOutputTokens"], "1024");
    // DigitalOcean holds no per-request caps: published only.
    let limits = status.effective_limits.unwrap();
    assert_eq!(
        limits.max_output_tokens.unwrap().enforcement,
        Enforcement::Advisory
    );
    assert!(!serde_json::to_string(&key.status).unwrap().contains(&value));
    // The name is the display name, as the control panel shows it.
    assert_eq!(env.sim.key(&uuid).unwrap().name, "support-bot");
    // The key was checked with its own value at the inference service.
    assert!(
        env.sim
            .requests()
            .iter()
            .any(|r| r.path == "/v1/models" && r.status == 200)
    );

    // A new display name renames the same key; the value stays.
    env.apply_key(
        "bot",
        json!({"hubRef": {"name": "do"}, "displayName": "support-bot (eu)",
               "import": {"secretRef": {"name": "bot-source", "key": "value"}, "keyId": uuid},
               "secret": {"name": "bot-llm", "keys": {"apiKey": "OPENAI_API_KEY", "baseUrl": "OPENAI_BASE_URL"}}}),
    )
    .await;
    eventually("rename at the provider", Duration::from_secs(60), || async {
        (env.sim.key(&uuid).unwrap().name == "support-bot (eu)").then_some(())
    })
    .await;
    assert_eq!(env.secret_data("bot-llm").await.unwrap()["OPENAI_API_KEY"], value);
    assert_eq!(env.sim.keys().len(), 1);
}

#[tokio::test]
async fn a_requested_rotation_regenerates_the_value_in_place() {
    let env = DoEnv::with_operator("do-rotate").await;
    env.apply_hub().await;
    let (uuid, old) = env.import("svc", true, json!({})).await;
    env.wait_key("svc", "ApiKey Ready", is_ready).await;

    let body = json!({"metadata": {"annotations": {"keysmith.dev/rotate": "now-1"}}});
    env.ns
        .api::<ApiKey>()
        .patch("svc", &PatchParams::default(), &Patch::Merge(&body))
        .await
        .unwrap();
    let key = env
        .wait_key("svc", "rotation recorded", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.rotation.as_ref())
                .and_then(|r| r.last_requested_token.as_deref())
                == Some("now-1")
        })
        .await;
    let sim_key = env.sim.key(&uuid).unwrap();
    assert_eq!(sim_key.regenerations, 1);
    let fresh = env.secret_data("svc").await.unwrap()["apiKey"].clone();
    assert_ne!(fresh, old);
    assert!(env.sim.accepts(&fresh));
    assert!(!env.sim.accepts(&old), "the old value stops working at once");
    let status = key.status.unwrap();
    assert_eq!(status.key_id.as_deref(), Some(uuid.as_str()));
    assert_eq!(
        status.fingerprint.as_deref(),
        Some(SecretValue::new(fresh.clone()).fingerprint().as_str())
    );

    // The import Secret still holds the replaced value; later polls keep the live one and stay Ready.
    let checks_before = env.sim.requests().len();
    eventually("two more polls", Duration::from_secs(60), || async {
        (env.sim.requests().len() >= checks_before + 4).then_some(())
    })
    .await;
    let key = env.ns.api::<ApiKey>().get("svc").await.unwrap();
    assert!(is_ready(&key), "{:?}", key_ready(&key));
    assert_eq!(env.secret_data("svc").await.unwrap()["apiKey"], fresh);
    assert_eq!(env.sim.key(&uuid).unwrap().regenerations, 1);
}

#[tokio::test]
async fn a_crash_between_regenerate_and_the_secret_write_regenerates_again_and_leaves_one_live_value() {
    let env = DoEnv::new("do-crash").await;
    env.apply_hub().await;
    let mut crashing = env
        .operator_command()
        .env("KEYSMITH_FAILPOINT", "after-provider-create")
        .spawn()
        .unwrap();
    let (uuid, old) = env
        .import("svc", true, json!({"rotation": {"every": "1h", "overlap": "0s"}}))
        .await;
    // No rotation is due yet: request one, which the failpoint interrupts after DigitalOcean answered.
    let body = json!({"metadata": {"annotations": {"keysmith.dev/rotate": "r1"}}});
    env.wait_key("svc", "first sync", |k| k.status.is_some()).await;
    env.ns
        .api::<ApiKey>()
        .patch("svc", &PatchParams::default(), &Patch::Merge(&body))
        .await
        .unwrap();
    crate::support::operator::expect_crash(&mut crashing).await;
    assert_eq!(env.sim.key(&uuid).unwrap().regenerations, 1);
    assert!(
        !env.sim.accepts(&old),
        "the value the crash lost replaced the old one"
    );

    let _healthy = env.operator_command().spawn().unwrap();
    let key = env
        .wait_key("svc", "Ready after restart", |k| {
            is_ready(k) && k.status.as_ref().is_some_and(|s| s.pending_create.is_none())
        })
        .await;
    let held = env.secret_data("svc").await.unwrap()["apiKey"].clone();
    assert!(env.sim.accepts(&held), "the Secret holds the live value");
    assert_eq!(env.sim.key(&uuid).unwrap().regenerations, 2);
    assert_eq!(env.sim.keys().len(), 1, "same key, no other");
    assert_eq!(key.status.unwrap().key_id.as_deref(), Some(uuid.as_str()));
}

#[tokio::test]
async fn deletion_revokes_a_linked_import_or_leaves_it_by_policy() {
    let env = DoEnv::with_operator("do-delete").await;
    env.apply_hub().await;
    let (revoked, _) = env.import("gone", true, json!({})).await;
    let (kept, kept_value) = env
        .import("kept", true, json!({"deletionPolicy": "Orphan"}))
        .await;
    let (_, unlinked_value) = env.import("unlinked", false, json!({})).await;
    for name in ["gone", "kept", "unlinked"] {
        env.wait_key(name, "ApiKey Ready", is_ready).await;
    }
    let api = env.ns.api::<ApiKey>();
    for name in ["gone", "kept", "unlinked"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["gone", "kept", "unlinked"] {
        eventually(&format!("{name} deleted"), Duration::from_secs(60), || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    assert!(env.sim.key(&revoked).unwrap().deleted);
    assert!(!env.sim.key(&kept).unwrap().deleted);
    assert!(env.sim.accepts(&kept_value));
    // Without a keyId keysmith never knew which key it was, so it stays.
    assert!(env.sim.accepts(&unlinked_value));
}

#[tokio::test]
async fn minting_is_refused_because_digitalocean_retired_it() {
    let env = DoEnv::with_operator("do-mint").await;
    env.apply_hub().await;
    env.apply_key("new", json!({"hubRef": {"name": "do"}})).await;
    let key = env.wait_reason("new", "Unsupported").await;
    let ready = keysmith_api::conditions::get(&key.status.unwrap().conditions, "Ready")
        .cloned()
        .unwrap();
    assert!(ready.message.contains("control panel"), "{}", ready.message);
    assert!(env.sim.requests().iter().all(|r| r.method != "POST"));
    assert!(env.sim.keys().is_empty());
}

#[tokio::test]
async fn provider_refusals_become_conditions() {
    let env = DoEnv::with_operator("do-refusals").await;
    env.apply_hub().await;
    // A keyId naming no key.
    let added = env.sim.add_key("real");
    env.apply_secret("src", json!({"value": added.value})).await;
    env.apply_key(
        "wrong-id",
        json!({"hubRef": {"name": "do"},
               "import": {"secretRef": {"name": "src", "key": "value"}, "keyId": "00000000-0000-4000-8000-000000000000"}}),
    )
    .await;
    env.wait_reason("wrong-id", "NotFound").await;
    // A value the inference service refuses.
    env.apply_secret("bogus-source", json!({"value": "sk-do-not-a-real-key"}))
        .await;
    env.apply_key(
        "bogus",
        json!({"hubRef": {"name": "do"}, "import": {"secretRef": {"name": "bogus-source", "key": "value"}}}),
    )
    .await;
    env.wait_reason("bogus", "Unauthorized").await;
    // A token DigitalOcean does not know.
    env.apply_secret("do-token", json!({"token": "dop_v1_revoked"}))
        .await;
    env.apply_hub_spec(
        "do",
        json!({"provider": "digitalocean", "endpoint": env.running.base_url,
               "inferenceEndpoint": env.inference_url(), "usageRefreshInterval": "30s",
               "credentialsRef": {"name": "do-token", "key": "token"}}),
    )
    .await;
    env.wait_hub("do", "hub Unauthorized", |h| {
        hub_ready(h).is_some_and(|(s, r)| s == "False" && r == "Unauthorized")
    })
    .await;
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_and_reported_until_they_pass() {
    let env = DoEnv::with_operator("do-faults").await;
    env.apply_hub().await;
    let (uuid, _) = env.import("k", true, json!({})).await;
    env.wait_key("k", "ApiKey Ready", is_ready).await;

    // A burst of 429s outlasts one call's retries: Synced=False RateLimited while the delivered key
    // stays Ready (it still works), then in sync once DigitalOcean relents.
    env.sim.inject(Fault::rate_limit(12, 1).on_path("/v2/gen-ai"));
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "do"}, "displayName": "renamed",
               "import": {"secretRef": {"name": "k-source", "key": "value"}, "keyId": uuid}}),
    )
    .await;
    let key = env
        .wait_key("k", "Synced=False RateLimited", |k| {
            synced_is(k, "False", "RateLimited")
        })
        .await;
    assert!(is_ready(&key), "a management-API blip leaves Ready alone");
    env.wait_key("k", "in sync after the 429s", |k| {
        is_ready(k) && synced_is(k, "True", "InSync")
    })
    .await;
    assert_eq!(env.sim.key(&uuid).unwrap().name, "renamed");
    assert_eq!(env.sim.early_retries(), 0, "Retry-After was honoured");

    // Server errors at the inference service: Synced=False ProviderError while they last, retried.
    env.sim.inject(Fault::server_error(1000).on_path("/v1/models"));
    let key = env
        .wait_key("k", "Synced=False ProviderError", |k| {
            synced_is(k, "False", "ProviderError")
        })
        .await;
    assert!(is_ready(&key));
    let reconciling =
        crate::support::operator::condition(key.status.as_ref().map(|s| &s.conditions), "Reconciling");
    assert_eq!(reconciling.map(|(s, _)| s), Some("True".into()));
    env.sim.clear_faults();
    env.wait_key("k", "in sync after the 5xx", |k| {
        is_ready(k) && synced_is(k, "True", "InSync")
    })
    .await;
}

fn synced_is(key: &ApiKey, status: &str, reason: &str) -> bool {
    crate::support::operator::condition(key.status.as_ref().map(|s| &s.conditions), "Synced")
        .is_some_and(|(s, r)| s == status && r == reason)
}
