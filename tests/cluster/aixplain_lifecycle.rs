//! ApiKey and ModelHub end to end on the real control plane, with the aiXplain simulator: minting with
//! budget, limits, per-model limits and expiry; every change in place (expiry included, since `PUT`
//! carries it); daily usage in status; what aiXplain cannot hold refused with a condition; provider
//! errors; deletion per policy; and a crash between the create and the Secret write.

use std::time::Duration;

use crate::support::{
    eventually,
    operator::{Scene, condition, hub_ready, is_ready, key_ready},
};
use keysmith_api::{ApiKey, Enforcement};
use keysmith_providers::SecretValue;
use keysmith_simulators::{
    RunningSim,
    aixplain::{AixplainSim, Traffic},
    clock::Clock,
    faults::Fault,
};
use kube::{
    ResourceExt,
    api::{DeleteParams, ListParams},
};
use serde_json::{Value, json};

const TEAM_KEY: &str = "aixplain-team-key-for-lifecycle-tests-0000000000000000000000000000";
const MODEL: &str = "6646261c6eb563165658bbb1";

/// A namespace with an aiXplain simulator and its team key in a Secret.
struct Env {
    scene: Scene,
    sim: AixplainSim,
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
        let sim = AixplainSim::new([TEAM_KEY.to_owned()], Clock::new());
        let running = sim.spawn().await.unwrap();
        scene
            .apply_secret("aixplain-team", json!({"key": TEAM_KEY}))
            .await;
        Self { scene, sim, running }
    }

    async fn with_operator(prefix: &str) -> Self {
        let mut env = Self::new(prefix).await;
        env.scene.start_operator();
        env
    }

    async fn apply_hub(&self, name: &str) {
        self.apply_hub_spec(
            name,
            json!({
                "provider": "aixplain",
                "endpoint": self.running.base_url,
                "credentialsRef": {"name": "aixplain-team", "key": "key"},
            }),
        )
        .await;
    }

    async fn ready_hub(&self, name: &str) {
        self.apply_hub(name).await;
        self.wait_hub(name, "hub Ready", |h| {
            hub_ready(h).is_some_and(|(s, _)| s == "True")
        })
        .await;
    }
}

fn key_id(key: &ApiKey) -> String {
    key.status.as_ref().unwrap().key_id.clone().unwrap()
}

fn spec(extra: Value) -> Value {
    let mut spec = json!({"hubRef": {"name": "ax"}});
    crate::support::operator::merge(&mut spec, extra);
    spec
}

#[tokio::test]
async fn a_minted_key_carries_every_limit_and_changes_them_all_in_place() {
    let env = Env::with_operator("ax-mint").await;
    env.ready_hub("ax").await;
    env.apply_key(
        "k",
        spec(json!({
            "budget": {"limitUsd": 50.0, "reset": "Never"},
            "limits": {"requestsPerMinute": 30, "tokensPerDay": 200000},
            "modelLimits": [{"model": MODEL, "requestsPerMinute": 10}],
            "expiresAt": "2030-01-01T00:00:00Z",
            "secret": {"keys": {"apiKey": "TEAM_API_KEY"}},
        })),
    )
    .await;
    let key = env.wait_key("k", "ApiKey Ready", is_ready).await;
    let id = key_id(&key);
    let status = key.status.clone().unwrap();

    // The Secret holds the value aiXplain issued and the default models URL.
    let data = env.secret_data("k").await.unwrap();
    let value = SecretValue::new(data["TEAM_API_KEY"].clone());
    assert_eq!(data["baseUrl"], "https://models.aixplain.com/api/v1");
    assert_eq!(status.fingerprint, Some(value.fingerprint()));
    assert!(!serde_json::to_string(&status).unwrap().contains(value.expose()));
    assert_eq!(status.expires_at.as_deref(), Some("2030-01-01T00:00:00Z"));

    let sim_key = env.sim.key(&id).unwrap();
    let uid = key.uid().unwrap();
    assert!(
        sim_key.name.starts_with(&format!("{}/k [ks:{uid}/", env.ns.name)),
        "{}",
        sim_key.name
    );
    assert_eq!(sim_key.budget, Some(50.0));
    let global = sim_key.global_limits.unwrap();
    assert_eq!(
        (global.rpm, global.tpd, global.rpd),
        (Some(30), Some(200_000), None)
    );
    assert_eq!(sim_key.assets_limits[0].asset_id, MODEL);
    assert_eq!(sim_key.assets_limits[0].limits.rpm, Some(10));

    // Each limit is enforced by aiXplain, and status says so.
    let limits = status.effective_limits.unwrap();
    assert_eq!(limits.budget.unwrap().enforcement, Enforcement::Provider);
    assert_eq!(
        limits.requests_per_minute.unwrap().enforcement,
        Enforcement::Provider
    );
    assert_eq!(limits.model_limits[0].enforcement, Enforcement::Provider);

    // Rename, budget, limits, model limits and expiry change in place: same key, same value.
    env.apply_key(
        "k",
        spec(json!({
            "displayName": "summarizer",
            "budget": {"limitUsd": 80.0},
            "limits": {"requestsPerDay": 1000},
            "modelLimits": [{"model": MODEL, "tokensPerMinute": 9000}],
            "expiresAt": "2031-06-30T12:00:00Z",
            "secret": {"keys": {"apiKey": "TEAM_API_KEY"}},
        })),
    )
    .await;
    let key = env
        .wait_key("k", "new expiry in status", |k| {
            k.status.as_ref().and_then(|s| s.expires_at.as_deref()) == Some("2031-06-30T12:00:00Z")
        })
        .await;
    assert_eq!(key_id(&key), id);
    let sim_key = env.sim.key(&id).unwrap();
    assert!(sim_key.name.starts_with("summarizer [ks:"));
    assert_eq!(sim_key.budget, Some(80.0));
    let global = sim_key.global_limits.unwrap();
    assert_eq!((global.rpm, global.rpd), (None, Some(1000)));
    assert_eq!(sim_key.assets_limits[0].limits.tpm, Some(9000));
    assert_eq!(sim_key.assets_limits[0].limits.rpm, None);
    assert_eq!(env.sim.live_key_count_named_with(&uid), 1);
    assert_eq!(
        env.secret_data("k").await.unwrap()["TEAM_API_KEY"],
        value.expose()
    );
}

#[tokio::test]
async fn daily_usage_reaches_status_and_a_reached_daily_limit_is_reported() {
    let env = Env::with_operator("ax-usage").await;
    env.ready_hub("ax").await;
    env.apply_key("k", spec(json!({"limits": {"requestsPerDay": 5}})))
        .await;
    let id = key_id(&env.wait_key("k", "ApiKey Ready", is_ready).await);
    env.sim.add_usage(
        &id,
        Traffic {
            requests: 2,
            tokens: 700,
            asset_id: Some(MODEL.into()),
        },
    );
    let key = env
        .wait_key("k", "usage in status", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.usage.as_ref())
                .and_then(|u| u.requests_today)
                == Some(2)
        })
        .await;
    let usage = key.status.unwrap().usage.unwrap();
    assert_eq!(usage.tokens_today, Some(700));
    assert_eq!(usage.models.len(), 1);
    assert_eq!(usage.models[0].model, MODEL);
    assert_eq!(usage.models[0].tokens, Some(700));

    // aiXplain refuses the key once it reaches its daily requests; status says why.
    env.sim.add_usage(
        &id,
        Traffic {
            requests: 3,
            tokens: 0,
            asset_id: None,
        },
    );
    let key = env
        .wait_key("k", "LimitExceeded", |k| {
            condition(k.status.as_ref().map(|s| &s.conditions), "LimitExceeded")
                .is_some_and(|(s, _)| s == "True")
        })
        .await;
    assert_eq!(key_ready(&key), Some(("False".into(), "LimitExceeded".into())));
}

#[tokio::test]
async fn what_aixplain_cannot_hold_is_refused_with_a_condition_and_mints_nothing() {
    let env = Env::with_operator("ax-refuse").await;
    env.ready_hub("ax").await;
    env.apply_key(
        "monthly",
        spec(json!({"budget": {"limitUsd": 5.0, "reset": "Monthly"}})),
    )
    .await;
    env.apply_key("off", spec(json!({"disabled": true}))).await;
    let key = env
        .wait_key("monthly", "Unsupported", |k| {
            key_ready(k).is_some_and(|(s, r)| s == "False" && r == "Unsupported")
        })
        .await;
    let stalled = condition(key.status.as_ref().map(|s| &s.conditions), "Stalled");
    assert_eq!(stalled.map(|(s, _)| s).as_deref(), Some("True"));
    assert_eq!(env.sim.live_key_count_named_with(&key.uid().unwrap()), 0);
    // aiXplain keys cannot be disabled, so a key disabled from the start is simply not issued.
    let key = env
        .wait_key("off", "KeyDisabled", |k| {
            key_ready(k).is_some_and(|(s, r)| s == "False" && r == "KeyDisabled")
        })
        .await;
    let suspended = key.status.as_ref().and_then(|s| s.suspended.clone()).unwrap();
    assert_eq!(
        (suspended.reason.as_str(), suspended.revoked_key_id),
        ("Disabled", None)
    );
    assert_eq!(env.sim.live_key_count_named_with(&key.uid().unwrap()), 0);
    let hub = env.wait_hub("ax", "capabilities", |h| h.status.is_some()).await;
    let caps = hub.status.unwrap().capabilities.unwrap();
    assert_eq!(
        (caps.budget, caps.rate_limits, caps.model_limits, caps.expiry),
        (
            Enforcement::Provider,
            Enforcement::Provider,
            Enforcement::Provider,
            Enforcement::Provider
        )
    );
    assert_eq!(caps.disable, Enforcement::Operator);
}

#[tokio::test]
async fn provider_errors_become_conditions_or_are_retried() {
    let env = Env::with_operator("ax-errors").await;
    // A wrong team key.
    env.apply_secret("wrong", json!({"key": "not-a-team-key-000000000000"}))
        .await;
    env.apply_hub_spec(
        "wrong",
        json!({"provider": "aixplain", "endpoint": env.running.base_url,
               "credentialsRef": {"name": "wrong", "key": "key"}}),
    )
    .await;
    env.wait_hub("wrong", "Unauthorized", |h| {
        hub_ready(h).is_some_and(|(_, r)| r == "Unauthorized")
    })
    .await;

    // 429 with Retry-After and a burst of 500s on the way to a key: waited out and retried.
    env.ready_hub("ax").await;
    env.sim.inject(Fault::rate_limit(1, 1).on_path("/sdk/api-keys"));
    env.sim.inject(Fault::server_error(2).on_path("/sdk/api-keys"));
    env.apply_key("k", spec(json!({}))).await;
    let key = env.wait_key("k", "ApiKey Ready", is_ready).await;
    assert_eq!(env.sim.early_retries(), 0);
    let statuses: Vec<u16> = env.sim.requests().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&429) && statuses.contains(&500), "{statuses:?}");
    assert_eq!(env.sim.live_key_count_named_with(&key.uid().unwrap()), 1);

    // The key vanishing at aiXplain (a 404) makes keysmith issue a replacement.
    let id = key_id(&key);
    let team = keysmith_providers::aixplain::AixplainClient::new(
        &env.running.base_url,
        SecretValue::new(TEAM_KEY),
        keysmith_providers::http::Transport::new(Default::default()).unwrap(),
    )
    .unwrap();
    keysmith_providers::ProviderClient::delete_key(&team, &id)
        .await
        .unwrap();
    let key = env
        .wait_key("k", "a replacement key", |k| {
            is_ready(k) && k.status.as_ref().and_then(|s| s.key_id.as_deref()) != Some(id.as_str())
        })
        .await;
    assert_eq!(env.sim.live_key_count_named_with(&key.uid().unwrap()), 1);
}

#[tokio::test]
async fn deletion_revokes_or_orphans_the_key_per_policy() {
    let env = Env::with_operator("ax-delete").await;
    env.ready_hub("ax").await;
    env.apply_key("gone", spec(json!({}))).await;
    env.apply_key("kept", spec(json!({"deletionPolicy": "Orphan"})))
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
    assert!(env.sim.key(&gone).unwrap().deleted, "Delete revokes the key");
    assert!(!env.sim.key(&kept).unwrap().deleted, "Orphan leaves the key");
}

fn operator(env: &Env, failpoint: Option<&str>) -> tokio::process::Child {
    let mut cmd = env.operator_command();
    if let Some(point) = failpoint {
        cmd.env("KEYSMITH_FAILPOINT", point);
    }
    cmd.spawn().unwrap()
}

/// Crashes the operator between aiXplain's create and the Secret write, restarts it, and returns
/// the keys aiXplain ever made for the ApiKey and the one the Secret holds.
async fn crash_after_create(env: &Env) -> (Vec<keysmith_simulators::aixplain::SimKey>, String) {
    env.apply_hub("ax").await;
    let mut crashing = operator(env, Some("after-provider-create"));
    env.apply_key("k", spec(json!({"budget": {"limitUsd": 1.0}})))
        .await;
    crate::support::operator::expect_crash(&mut crashing).await;
    let _healthy = operator(env, None);
    let key = env.wait_key("k", "Ready after restart", is_ready).await;
    assert!(key.status.as_ref().unwrap().pending_create.is_none());
    let uid = key.uid().unwrap();
    let made: Vec<_> = env
        .sim
        .keys()
        .into_iter()
        .filter(|k| k.name.contains(&uid))
        .collect();
    let live: Vec<_> = made.iter().filter(|k| !k.deleted).collect();
    assert_eq!(live.len(), 1, "one live key: {live:#?}");
    let id = key_id(&key);
    assert_eq!(live[0].id, id);
    // The Secret holds that key: its value authenticates as a key with this mask.
    let value = env.secret_data("k").await.unwrap()["apiKey"].clone();
    assert_eq!(
        live[0].masked,
        format!("{}...{}", &value[..4], &value[value.len() - 4..])
    );
    (made, id)
}

#[tokio::test]
async fn a_crash_after_the_create_revokes_the_unheld_key_when_its_value_cannot_be_read_back() {
    let env = Env::new("ax-crash").await;
    let (made, _) = crash_after_create(&env).await;
    assert_eq!(made.len(), 2, "the lost key plus its replacement");
    assert_eq!(made.iter().filter(|k| k.deleted).count(), 1);
}

#[tokio::test]
async fn a_crash_after_the_create_adopts_the_key_when_the_listing_shows_its_value() {
    let env = Env::new("ax-adopt").await;
    env.sim.set_list_reveals_keys(true);
    let (made, _) = crash_after_create(&env).await;
    assert_eq!(made.len(), 1, "the key whose value was read back is adopted");
}

/// A `modelLimits` entry on a model aiXplain's catalog does not have would limit nothing: the key
/// is refused with a condition naming the entry, nothing is minted, and the fixed spec goes through.
/// aiXplain reports no spend per key, so the budget it enforces is reported as unknown spend, and
/// no entry tier is documented for it.
#[tokio::test]
async fn a_model_outside_the_catalog_is_a_condition_naming_it_and_nothing_is_minted() {
    let env = Env::with_operator("ax-catalog").await;
    env.ready_hub("ax").await;
    let unknown = "0000000000000000000000aa";
    env.apply_key(
        "k",
        spec(json!({"budget": {"limitUsd": 20.0, "reset": "Never"},
                    "modelLimits": [{"model": MODEL, "requestsPerDay": 9},
                                    {"model": unknown, "requestsPerDay": 5}]})),
    )
    .await;
    let key = env
        .wait_key("k", "UnknownModel", |k| {
            key_ready(k).is_some_and(|(s, r)| s == "False" && r == "UnknownModel")
        })
        .await;
    let status = key.status.clone().unwrap();
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(
        ready
            .message
            .contains(&format!("modelLimits[1].model \"{unknown}\"")),
        "{}",
        ready.message
    );
    assert!(!ready.message.contains("modelLimits[0]"), "{}", ready.message);
    let stalled = condition(Some(&status.conditions), "Stalled");
    assert_eq!(stalled.map(|(s, _)| s).as_deref(), Some("True"));
    let uid = key.uid().unwrap();
    assert_eq!(env.sim.live_key_count_named_with(&uid), 0);

    // The fixed spec: minted, and the budget's spend is unknown rather than "within limits".
    env.apply_key(
        "k",
        spec(json!({"budget": {"limitUsd": 20.0, "reset": "Never"},
                    "modelLimits": [{"model": MODEL, "requestsPerDay": 9}]})),
    )
    .await;
    let key = env
        .wait_key("k", "Ready with spend unknown", |k| {
            is_ready(k)
                && condition(k.status.as_ref().map(|s| &s.conditions), "LimitExceeded")
                    .is_some_and(|(s, r)| s == "Unknown" && r == "SpendUnknown")
        })
        .await;
    assert_eq!(env.sim.live_key_count_named_with(&uid), 1);
    let limits = key.status.unwrap().effective_limits.unwrap();
    let budget = limits.budget.unwrap();
    assert_eq!(
        (budget.enforcement, budget.spend_known),
        (Enforcement::Provider, Some(false))
    );
    let note = limits.provider_defaults.unwrap();
    assert!(note.starts_with("none documented"), "{note}");
    assert!(limits.rate_limit.is_none(), "no entry tier fills rateLimit");
}

/// aiXplain counts each model's requests and tokens of the day: a model at its own daily limit is
/// reported (`ModelLimitExceeded`, naming the model) while the key stays Ready for the others.
#[tokio::test]
async fn a_model_at_its_daily_limit_is_reported_and_the_key_stays_ready() {
    let env = Env::with_operator("ax-model-cap").await;
    env.ready_hub("ax").await;
    env.apply_key(
        "k",
        spec(json!({"modelLimits": [{"model": MODEL, "requestsPerDay": 2}]})),
    )
    .await;
    let id = key_id(&env.wait_key("k", "ApiKey Ready", is_ready).await);
    env.sim.add_usage(
        &id,
        Traffic {
            requests: 2,
            tokens: 40,
            asset_id: Some(MODEL.into()),
        },
    );
    let key = env
        .wait_key("k", "ModelLimitExceeded", |k| {
            condition(k.status.as_ref().map(|s| &s.conditions), "LimitExceeded")
                .is_some_and(|(s, r)| s == "True" && r == "ModelLimitExceeded")
        })
        .await;
    assert_eq!(key_ready(&key), Some(("True".into(), "KeyReady".into())));
    let status = key.status.unwrap();
    let limit = status
        .conditions
        .iter()
        .find(|c| c.type_ == "LimitExceeded")
        .unwrap();
    assert!(
        limit.message.contains(&format!("on model {MODEL}")),
        "{}",
        limit.message
    );
    assert!(
        !env.sim.key(&id).unwrap().deleted,
        "one model never stops the key"
    );
}

/// `rateLimit` over a minute or a day is what aiXplain holds as `rpm` or `rpd`: folded into the
/// key's global limits, enforced by aiXplain, and changed in place.
#[tokio::test]
async fn a_rate_limit_per_minute_or_per_day_is_folded_into_rpm_or_rpd() {
    let env = Env::with_operator("ax-fold").await;
    env.ready_hub("ax").await;
    env.apply_key(
        "k",
        spec(json!({"rateLimit": {"requests": 12, "intervalSeconds": 60}})),
    )
    .await;
    let key = env.wait_key("k", "ApiKey Ready", is_ready).await;
    let id = key_id(&key);
    let global = env.sim.key(&id).unwrap().global_limits.unwrap();
    assert_eq!((global.rpm, global.rpd), (Some(12), None));
    let rate = key.status.unwrap().effective_limits.unwrap().rate_limit.unwrap();
    assert_eq!(
        (rate.requests, rate.interval_seconds, rate.enforcement),
        (12, 60, Enforcement::Provider)
    );

    // Left out, the interval is 60 s.
    env.apply_key("default", spec(json!({"rateLimit": {"requests": 7}})))
        .await;
    let other = key_id(&env.wait_key("default", "ApiKey Ready", is_ready).await);
    let global = env.sim.key(&other).unwrap().global_limits.unwrap();
    assert_eq!(global.rpm, Some(7));

    env.apply_key(
        "k",
        spec(json!({"rateLimit": {"requests": 500, "intervalSeconds": 86400}})),
    )
    .await;
    eventually("rpd at aiXplain", Duration::from_secs(60), || {
        let key = env.sim.key(&id).unwrap();
        async move {
            key.global_limits
                .filter(|g| g.rpd == Some(500) && g.rpm.is_none())
                .map(|_| ())
        }
    })
    .await;
    assert!(!env.sim.key(&id).unwrap().deleted, "changed in place");
}

/// A credential aiXplain accepts but that may not manage keys (an ordinary key, not a team key):
/// the hub says `NotAuthorized`, and no ApiKey through it mints anything.
#[tokio::test]
async fn a_credential_that_may_not_manage_keys_is_not_authorized_and_nothing_is_minted() {
    let env = Env::with_operator("ax-notauth").await;
    let ordinary = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    env.sim.add_key(ordinary);
    env.apply_secret("ordinary", json!({"key": ordinary})).await;
    env.apply_hub_spec(
        "ax",
        json!({"provider": "aixplain", "endpoint": env.running.base_url,
               "credentialsRef": {"name": "ordinary", "key": "key"}}),
    )
    .await;
    env.wait_hub("ax", "NotAuthorized", |h| {
        hub_ready(h).is_some_and(|(s, r)| s == "False" && r == "NotAuthorized")
    })
    .await;
    env.apply_key("k", spec(json!({}))).await;
    let key = env
        .wait_key("k", "not Ready", |k| {
            key_ready(k).is_some_and(|(s, _)| s == "False")
        })
        .await;
    let ready = key_ready(&key).unwrap();
    assert!(
        matches!(ready.1.as_str(), "Forbidden" | "NotAuthorized"),
        "{ready:?}"
    );
    assert_eq!(env.sim.live_key_count_named_with(&key.uid().unwrap()), 0);
    let posts: Vec<u16> = env
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect();
    assert!(posts.iter().all(|s| *s == 403), "{posts:?} {ready:?}");
}
