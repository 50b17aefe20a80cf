//! ApiKey and ModelHub end to end on the real control plane, with the Google simulator: minting a key
//! restricted to the model APIs, the Secret, rename and disable in place (soft delete and undelete),
//! expiry that only keysmith enforces, import of a console key, provider errors as conditions,
//! revocation per deletion policy, and adoption of a key whose create answer a crash lost.

use std::time::Duration;

use crate::support::{
    eventually,
    operator::{Scene, condition, hub_ready, is_ready, key_ready, merge},
};
use k8s_openapi::api::core::v1::Secret;
use keysmith_api::{ApiKey, Enforcement, conditions};
use keysmith_simulators::{
    RunningSim,
    clock::Clock,
    faults::Fault,
    google::{DEFAULT_PROJECT_ID, GoogleSim, testdata},
};
use kube::{
    ResourceExt,
    api::{DeleteParams, ListParams},
};
use serde_json::{Value, json};

/// A namespace with a Google simulator and the service-account key Secret.
struct Env {
    scene: Scene,
    sim: GoogleSim,
    running: RunningSim,
}

impl std::ops::Deref for Env {
    type Target = Scene;
    fn deref(&self) -> &Scene {
        &self.scene
    }
}

impl Env {
    async fn new(prefix: &str) -> Self {
        let scene = Scene::new(prefix).await;
        let sim = GoogleSim::new(Clock::new());
        let running = sim.spawn().await.unwrap();
        let env = Self { scene, sim, running };
        env.apply_secret(
            "google-sa",
            json!({"key.json": GoogleSim::service_account_json(&env.running)}),
        )
        .await;
        env
    }

    async fn with_operator(prefix: &str) -> Self {
        let mut env = Self::new(prefix).await;
        env.scene.start_operator();
        env
    }

    fn inference_url(&self) -> String {
        format!("{}/v1beta", self.running.base_url)
    }

    /// Applies a ModelHub for the simulated project; `extra` is merged into its spec.
    async fn apply_hub(&self, name: &str, extra: Value) {
        let mut spec = json!({
            "provider": "google",
            "endpoint": self.running.base_url,
            "inferenceEndpoint": self.inference_url(),
            "credentialsRef": {"name": "google-sa", "key": "key.json"},
            "google": {"project": DEFAULT_PROJECT_ID},
        });
        merge(&mut spec, extra);
        self.apply_hub_spec(name, spec).await;
    }

    /// Keys at Google whose keysmith name carries this ApiKey's uid, deleted ones included.
    fn keys_of(&self, key: &ApiKey) -> Vec<keysmith_simulators::google::SimKey> {
        let uid = key.uid().unwrap();
        self.sim
            .keys()
            .into_iter()
            .filter(|k| k.annotations.values().any(|v| v.contains(&uid)))
            .collect()
    }
}

fn key_id(key: &ApiKey) -> String {
    key.status.as_ref().unwrap().key_id.clone().unwrap()
}

#[tokio::test]
async fn a_minted_key_is_restricted_to_the_model_apis_and_follows_rename_and_disable_in_place() {
    let env = Env::with_operator("g-mint").await;
    env.apply_hub("g", json!({})).await;
    let hub = env
        .wait_hub("g", "hub Ready", |h| {
            hub_ready(h).is_some_and(|(s, _)| s == "True")
        })
        .await;
    let caps = hub.status.unwrap().capabilities.unwrap();
    assert_eq!(
        (caps.budget, caps.usage, caps.rate_limits, caps.expiry),
        (
            Enforcement::Unsupported,
            Enforcement::Unsupported,
            Enforcement::Advisory,
            Enforcement::Operator
        )
    );
    assert_eq!(
        (caps.disable, caps.rename),
        (Enforcement::Provider, Enforcement::Provider)
    );

    let spec = |extra: Value| {
        let mut spec = json!({"hubRef": {"name": "g"}, "limits": {"requestsPerMinute": 60},
            "secret": {"keys": {"apiKey": "GOOGLE_API_KEY", "baseUrl": "GOOGLE_GEMINI_BASE_URL"}}});
        merge(&mut spec, extra);
        spec
    };
    env.apply_key("chat", spec(json!({}))).await;
    let key = env.wait_key("chat", "ApiKey Ready", is_ready).await;
    let id = key_id(&key);
    let status = key.status.clone().unwrap();

    // The Secret holds the value Google issued and the Gemini base URL.
    let data = env.secret_data("chat").await.unwrap();
    let value = data["GOOGLE_API_KEY"].clone();
    assert_eq!(Some(value.clone()), env.sim.key_value(&id));
    assert_eq!(data["GOOGLE_GEMINI_BASE_URL"], env.inference_url());
    assert!(!serde_json::to_string(&status).unwrap().contains(&value));
    let secret = env.ns.api::<Secret>().get("chat").await.unwrap();
    assert_eq!(secret.owner_references()[0].uid, key.uid().unwrap());

    // Display name, tag and restriction at Google.
    let at_google = env.sim.key(&id).unwrap();
    assert_eq!(at_google.display_name, format!("{}/chat", env.ns.name));
    let full_name = &at_google.annotations["keysmith.dev/name"];
    assert!(
        full_name.contains(&format!("[ks:{}/", key.uid().unwrap())),
        "{full_name}"
    );
    assert_eq!(
        at_google.restrictions.unwrap()["apiTargets"],
        json!([{"service": "generativelanguage.googleapis.com"}, {"service": "aiplatform.googleapis.com"}])
    );
    // Limits Google cannot hold are published as advisory; no usage is reported per key.
    let limits = status.effective_limits.unwrap();
    assert_eq!(
        limits.requests_per_minute.unwrap().enforcement,
        Enforcement::Advisory
    );
    let usage = status.usage.unwrap_or_default();
    assert_eq!((usage.total_usd, usage.requests_today), (None, None));

    // Rename and disable in place: the same key, soft-deleted with keysmith's marker.
    env.apply_key(
        "chat",
        spec(json!({"displayName": "chat backend", "disabled": true})),
    )
    .await;
    let key = env
        .wait_key("chat", "disabled key reported", |k| {
            key_ready(k).is_some_and(|(_, r)| r == "KeyDisabled")
        })
        .await;
    assert_eq!(key_id(&key), id);
    let at_google = env.sim.key(&id).unwrap();
    assert_eq!(at_google.display_name, "chat backend");
    assert!(at_google.is_deleted());
    assert_eq!(at_google.annotations["keysmith.dev/disabled"], "true");

    // Enabled again: undeleted, same value.
    env.apply_key("chat", spec(json!({"displayName": "chat backend"})))
        .await;
    let key = env
        .wait_key("chat", "enabled again", |k| is_ready(k) && key_id(k) == id)
        .await;
    assert!(!env.sim.key(&id).unwrap().is_deleted());
    assert_eq!(env.secret_data("chat").await.unwrap()["GOOGLE_API_KEY"], value);
    assert_eq!(env.keys_of(&key).len(), 1, "never a second key");

    // The hub counts the key as managed.
    env.wait_hub("g", "one managed key", |h| {
        h.status
            .as_ref()
            .and_then(|s| s.keys.as_ref())
            .is_some_and(|k| k.managed == 1 && k.orphaned == 0)
    })
    .await;
}

#[tokio::test]
async fn an_expiry_only_keysmith_enforces_disables_the_key_when_it_passes() {
    let mut env = Env::new("g-expiry").await;
    let clock = env.sim.clock();
    env.scene.start_operator_with_clock(clock.clone());
    let expires = clock.now() + jiff::SignedDuration::from_hours(1);
    let expires = jiff::Timestamp::from_second(expires.as_second()).unwrap();
    env.apply_hub("g", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "g"}, "expiresAt": expires.to_string()}),
    )
    .await;
    let key = env.wait_key("k", "Ready", is_ready).await;
    let id = key_id(&key);
    let status = key.status.unwrap();
    assert_eq!(status.expires_at.as_deref(), Some(expires.to_string().as_str()));

    // Two hours on: the access token has expired too, and is replaced after Google's 401.
    clock.advance(Duration::from_secs(2 * 3600));
    env.wait_key("k", "Expired and not Ready", |k| {
        condition(k.status.as_ref().map(|s| &s.conditions), conditions::EXPIRED)
            .is_some_and(|(s, _)| s == "True")
            && key_ready(k).is_some_and(|(s, _)| s == "False")
    })
    .await;
    eventually(
        "the expired key disabled at Google",
        Duration::from_secs(30),
        || async { env.sim.key(&id).unwrap().is_deleted().then_some(()) },
    )
    .await;
    assert!(env.secret_data("k").await.is_some(), "the Secret is kept");
}

#[tokio::test]
async fn deleting_an_apikey_revokes_its_key_unless_the_policy_orphans_it() {
    let env = Env::with_operator("g-delete").await;
    env.apply_hub("g", json!({})).await;
    env.apply_key("gone", json!({"hubRef": {"name": "g"}})).await;
    env.apply_key(
        "kept",
        json!({"hubRef": {"name": "g"}, "deletionPolicy": "Orphan"}),
    )
    .await;
    let gone = key_id(&env.wait_key("gone", "Ready", is_ready).await);
    let kept = key_id(&env.wait_key("kept", "Ready", is_ready).await);

    let api = env.ns.api::<ApiKey>();
    api.delete("gone", &DeleteParams::default()).await.unwrap();
    api.delete("kept", &DeleteParams::default()).await.unwrap();
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
    let revoked = env.sim.key(&gone).unwrap();
    assert!(revoked.is_deleted(), "Delete policy revokes the key");
    assert!(!revoked.annotations.contains_key("keysmith.dev/disabled"));
    assert!(!env.sim.key(&kept).unwrap().is_deleted(), "Orphan leaves it");
}

#[tokio::test]
async fn a_key_deleted_in_the_console_is_replaced_with_a_new_one() {
    let env = Env::with_operator("g-replace").await;
    env.apply_hub("g", json!({})).await;
    env.apply_key("k", json!({"hubRef": {"name": "g"}})).await;
    let key = env.wait_key("k", "Ready", is_ready).await;
    let old = key_id(&key);
    let old_value = env.secret_data("k").await.unwrap()["apiKey"].clone();

    env.sim.delete_by_hand(&old);
    let key = env
        .wait_key("k", "a replacement key", |k| is_ready(k) && key_id(k) != old)
        .await;
    let new = key_id(&key);
    let value = env.secret_data("k").await.unwrap()["apiKey"].clone();
    assert_ne!(value, old_value);
    assert_eq!(Some(value), env.sim.key_value(&new));
    let live: Vec<_> = env
        .keys_of(&key)
        .into_iter()
        .filter(|k| !k.is_deleted())
        .collect();
    assert_eq!(live.len(), 1);
}

#[tokio::test]
async fn a_console_key_is_imported_linked_by_its_value_and_renamed() {
    let env = Env::with_operator("g-import").await;
    let value = "AIzaSyMadeInTheConsole000000000000000000";
    let name = env.sim.add_key(value, "made by hand");
    let own = json!({"apiTargets": [{"service": "generativelanguage.googleapis.com"}],
                     "serverKeyRestrictions": {"allowedIps": ["10.0.0.0/8"]}});
    env.sim.restrict_by_hand(&name, own.clone());
    env.apply_hub("g", json!({})).await;
    env.apply_secret("existing", json!({"value": value})).await;
    env.apply_key(
        "imp",
        json!({"hubRef": {"name": "g"}, "displayName": "research notebook",
               "import": {"secretRef": {"name": "existing", "key": "value"}}}),
    )
    .await;
    let key = env.wait_key("imp", "imported key Ready", is_ready).await;
    assert_eq!(key_id(&key), name, "found with keys:lookupKey");
    assert_eq!(env.secret_data("imp").await.unwrap()["apiKey"], value);
    eventually("renamed at Google", Duration::from_secs(30), || async {
        (env.sim.key(&name).unwrap().display_name == "research notebook").then_some(())
    })
    .await;
    assert_eq!(
        env.sim.key(&name).unwrap().restrictions,
        Some(own),
        "the owner's restrictions stay"
    );

    // A value Google does not know is refused with a reason.
    env.apply_secret(
        "bogus",
        json!({"value": "AIzaSyNobodyMadeThis00000000000000000000"}),
    )
    .await;
    env.apply_key(
        "bad",
        json!({"hubRef": {"name": "g"}, "import": {"secretRef": {"name": "bogus", "key": "value"}}}),
    )
    .await;
    env.wait_key("bad", "refused import", |k| {
        key_ready(k).is_some_and(|(s, r)| s == "False" && r == "NotFound")
    })
    .await;
}

#[tokio::test]
async fn provider_errors_become_conditions_and_retries_honour_retry_after() {
    let env = Env::with_operator("g-errors").await;

    // A key file Google does not know: the token endpoint says invalid_grant.
    env.apply_secret(
        "stranger",
        json!({"key.json": testdata::service_account_json(
            "stranger@elsewhere.iam.gserviceaccount.com",
            &format!("{}/token", env.running.base_url),
        )}),
    )
    .await;
    env.apply_hub(
        "wrong",
        json!({"credentialsRef": {"name": "stranger", "key": "key.json"}}),
    )
    .await;
    env.wait_hub("wrong", "Unauthorized", |h| {
        hub_ready(h).is_some_and(|(s, r)| s == "False" && r == "Unauthorized")
    })
    .await;

    // A key file that is not one: the hub's configuration is invalid.
    env.apply_secret("garbage", json!({"key.json": "not json"})).await;
    env.apply_hub(
        "garbled",
        json!({"credentialsRef": {"name": "garbage", "key": "key.json"}}),
    )
    .await;
    env.wait_hub("garbled", "InvalidHubConfig", |h| {
        hub_ready(h).is_some_and(|(_, r)| r == "InvalidHubConfig")
    })
    .await;

    // Google down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.apply_hub("down", json!({"endpoint": format!("http://127.0.0.1:{closed}")}))
        .await;
    env.wait_hub("down", "ProviderUnreachable", |h| {
        hub_ready(h).is_some_and(|(_, r)| r == "ProviderUnreachable")
    })
    .await;

    // 429 with Retry-After and a 500 on the create path: waited out and retried, one key made.
    env.sim.inject(Fault::rate_limit(1, 1).on_path("/keys"));
    env.sim.inject(Fault::server_error(1).on_path("/keys"));
    env.apply_hub("g", json!({})).await;
    env.apply_key("k", json!({"hubRef": {"name": "g"}})).await;
    let key = env.wait_key("k", "Ready despite 429 and 500", is_ready).await;
    assert_eq!(env.sim.early_retries(), 0);
    let statuses: Vec<u16> = env.sim.requests().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&429) && statuses.contains(&500), "{statuses:?}");
    assert_eq!(env.keys_of(&key).iter().filter(|k| !k.is_deleted()).count(), 1);

    // A 429 that outlasts what one call waits surfaces as RateLimited, then clears.
    env.sim.inject(Fault::rate_limit(1, 60).on_path("/keys"));
    env.apply_key("later", json!({"hubRef": {"name": "g"}})).await;
    env.wait_key("later", "RateLimited", |k| {
        key_ready(k).is_some_and(|(s, r)| s == "False" && r == "RateLimited")
    })
    .await;
    assert_eq!(env.sim.early_retries(), 0);
}

#[tokio::test]
async fn a_key_whose_create_answer_a_crash_lost_is_adopted_not_revoked() {
    let env = Env::new("g-crash").await;
    env.apply_hub("g", json!({})).await;
    let mut crashing = env.operator_command();
    crashing.env("KEYSMITH_FAILPOINT", "after-provider-create");
    let mut crashing = crashing.spawn().unwrap();
    env.apply_key("k", json!({"hubRef": {"name": "g"}})).await;
    crate::support::operator::expect_crash(&mut crashing).await;

    let _healthy = env.operator_command().spawn().unwrap();
    let key = env.wait_key("k", "Ready after restart", is_ready).await;
    assert!(key.status.as_ref().unwrap().pending_create.is_none());
    // getKeyString reads the lost value back: the one key made is adopted, none revoked.
    let made = env.keys_of(&key);
    assert_eq!(made.len(), 1, "{made:#?}");
    assert!(!made[0].is_deleted());
    assert_eq!(key_id(&key), made[0].name);
    let data = env.secret_data("k").await.unwrap();
    assert_eq!(Some(data["apiKey"].clone()), env.sim.key_value(&made[0].name));
}
