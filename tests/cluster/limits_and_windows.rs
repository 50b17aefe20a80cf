//! Limits over time, driven by the simulator's clock, which the in-process operator shares: a daily
//! budget blocks the key and the window's reset restores it (also across an operator restart), expiry
//! turns the key Expired, and a rotation rolls each restart target exactly once.

use std::time::Duration;

use crate::support::{
    eventually,
    operator::{Env, condition, is_ready, key_ready},
};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Event};
use keysmith_api::{ApiKey, conditions};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn key_id(k: &ApiKey) -> Option<String> {
    k.status.as_ref().and_then(|s| s.key_id.clone())
}

fn limit_exceeded(k: &ApiKey) -> Option<(String, String)> {
    condition(
        k.status.as_ref().map(|s| &s.conditions),
        conditions::LIMIT_EXCEEDED,
    )
}

fn resets_at(k: &ApiKey) -> Option<jiff::Timestamp> {
    k.status
        .as_ref()?
        .usage
        .as_ref()?
        .window_resets_at
        .as_deref()?
        .parse()
        .ok()
}

#[tokio::test]
async fn a_daily_budget_rejects_until_utc_midnight_then_the_key_works_again_across_a_restart() {
    let mut env = Env::new("window").await;
    let clock = env.sim.clock();
    // Late in a UTC day, so the reset is minutes away on the shared clock.
    clock.set("2026-11-23T23:50:00Z".parse().unwrap());
    env.start_operator_with_clock(clock.clone());
    env.apply_hub("or", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "or"}, "budget": {"limitUsd": 1.0, "reset": "Daily"}}),
    )
    .await;
    let ready = env.wait_key("k", "Ready", is_ready).await;
    let id = key_id(&ready).unwrap();
    assert_eq!(resets_at(&ready), Some("2026-11-24T00:00:00Z".parse().unwrap()));

    env.sim.add_spend(&id, 1.5, false);
    let over = env
        .wait_key("k", "LimitExceeded and not Ready", |k| {
            limit_exceeded(k).is_some_and(|(s, r)| s == "True" && r == "BudgetExceeded")
                && key_ready(k).is_some_and(|(s, r)| s == "False" && r == "LimitExceeded")
        })
        .await;
    let message = over
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, conditions::LIMIT_EXCEEDED))
        .map(|c| c.message.clone())
        .unwrap();
    assert!(
        message.contains("budget: spend 1.500 USD reached the budget of 1.000 USD"),
        "{message}"
    );
    assert!(message.contains("resets at 2026-11-24T00:00:00Z"), "{message}");

    // The operator is down when the window resets; on its return the key works again, once.
    env.stop_operator();
    clock.set("2026-11-24T00:00:30Z".parse().unwrap());
    env.start_operator_with_clock(clock.clone());
    let back = env
        .wait_key("k", "within limits and Ready after the reset", |k| {
            is_ready(k) && limit_exceeded(k).is_some_and(|(s, _)| s == "False")
        })
        .await;
    assert_eq!(key_id(&back), Some(id), "the same key, not a new one");
    assert_eq!(resets_at(&back), Some("2026-11-25T00:00:00Z".parse().unwrap()));
    assert_eq!(back.status.unwrap().usage.unwrap().current_usd, Some(0.0));
}

#[tokio::test]
async fn a_key_turns_expired_when_the_clock_passes_its_expiry() {
    let env = Env::with_operator_on_sim_clock("expiry-clock").await;
    let clock = env.sim.clock();
    let expires = clock.now() + jiff::SignedDuration::from_hours(1);
    let expires = jiff::Timestamp::from_second(expires.as_second()).unwrap();
    env.apply_hub("or", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "or"}, "expiresAt": expires.to_string()}),
    )
    .await;
    let ready = env.wait_key("k", "Ready", is_ready).await;
    let expired = |k: &ApiKey| condition(k.status.as_ref().map(|s| &s.conditions), conditions::EXPIRED);
    assert_eq!(expired(&ready).map(|(s, _)| s), Some("False".into()));

    clock.advance(Duration::from_secs(2 * 3600));
    env.wait_key("k", "Expired and not Ready", |k| {
        expired(k).is_some_and(|(s, r)| s == "True" && r == "KeyExpired")
            && key_ready(k).is_some_and(|(s, r)| s == "False" && r == "Expired")
    })
    .await;
    assert!(env.secret_data("k").await.is_some(), "the Secret is kept");
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "example.test/app:1"}]}
            }
        }
    }))
    .unwrap()
}

fn template_annotation(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("keysmith.dev/key-fingerprint")
        .cloned()
}

#[tokio::test]
async fn a_rotation_rolls_each_restart_target_exactly_once() {
    let env = Env::with_operator("restart").await;
    let deployments = env.ns.api::<Deployment>();
    deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    env.apply_hub("or", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "or"}, "rotation": {"overlap": "1h", "restartTargets": [
            {"kind": "Deployment", "name": "web"}, {"kind": "Deployment", "name": "absent"}]}}),
    )
    .await;
    let first = env
        .wait_key("k", "Ready with the first key remembered", |k| {
            is_ready(k)
                && k.status
                    .as_ref()
                    .and_then(|s| s.rotation.as_ref())
                    .is_some_and(|r| r.restarted_for.is_some())
        })
        .await;
    let generation = deployments.get("web").await.unwrap().metadata.generation;
    assert_eq!(
        template_annotation(&deployments.get("web").await.unwrap()),
        None,
        "the first key restarts nobody"
    );

    let patch = json!({"metadata": {"annotations": {"keysmith.dev/rotate": "r1"}}});
    env.ns
        .api::<ApiKey>()
        .patch("k", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let rotated = env
        .wait_key("k", "rotated and restarted", |k| {
            let s = k.status.clone().unwrap_or_default();
            key_id(k) != key_id(&first) && s.rotation.and_then(|r| r.restarted_for) == s.fingerprint
        })
        .await;
    let fingerprint = rotated.status.unwrap().fingerprint.unwrap();
    let web = deployments.get("web").await.unwrap();
    assert_eq!(template_annotation(&web), Some(fingerprint));
    assert_eq!(
        web.metadata.generation,
        generation.map(|g| g + 1),
        "one template change"
    );

    // Further polls leave the workload alone; the missing one was reported, not retried.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        deployments.get("web").await.unwrap().metadata.generation,
        generation.map(|g| g + 1)
    );
    let events = env.ns.api::<Event>();
    eventually("restart events", Duration::from_secs(30), || {
        let events = events.clone();
        async move {
            let reasons: Vec<String> = events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|e| e.reason)
                .collect();
            let count = |r: &str| reasons.iter().filter(|x| *x == r).count();
            (count("WorkloadRestarted") == 1 && count("RestartFailed") == 1).then_some(())
        }
    })
    .await;
}
