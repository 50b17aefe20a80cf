//! Rotation on request (`keysmith.dev/rotate`, what `kubectl keysmith rotate` sets): the Secret gets a
//! new key in one write, the old key stays valid for the overlap and is then revoked, once per token,
//! also when the controller dies in the middle.

use std::time::Duration;

use crate::support::{
    eventually,
    operator::{Env, is_ready},
};
use keysmith_api::ApiKey;
use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

async fn request_rotation(env: &Env, name: &str, token: &str) {
    let patch = json!({"metadata": {"annotations": {"keysmith.dev/rotate": token}}});
    env.ns
        .api::<ApiKey>()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

fn key_id(k: &ApiKey) -> Option<String> {
    k.status.as_ref().and_then(|s| s.key_id.clone())
}

#[tokio::test]
async fn a_requested_rotation_swaps_the_secret_and_revokes_the_old_key_after_the_overlap() {
    let env = Env::with_operator("rotate").await;
    env.apply_hub("or", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "or"}, "rotation": {"every": "720h", "overlap": "8s"}}),
    )
    .await;
    let first = env.wait_key("k", "Ready", is_ready).await;
    let old_id = key_id(&first).unwrap();
    let old_value = env.secret_data("k").await.unwrap()["apiKey"].clone();

    request_rotation(&env, "k", "t1").await;
    let rotated = env
        .wait_key("k", "rotated", |k| {
            is_ready(k) && key_id(k).is_some_and(|id| id != old_id)
        })
        .await;
    let new_id = key_id(&rotated).unwrap();
    let rotation = rotated.status.clone().unwrap().rotation.unwrap();
    assert_eq!(rotation.previous_key_id.as_deref(), Some(old_id.as_str()));
    assert_eq!(rotation.last_requested_token.as_deref(), Some("t1"));
    assert!(rotation.previous_key_revoke_at.is_some() && rotation.next_rotation_at.is_some());
    assert_ne!(env.secret_data("k").await.unwrap()["apiKey"], old_value);
    assert!(
        !env.sim.key(&old_id).unwrap().deleted,
        "the old key stays valid during the overlap"
    );

    eventually(
        "the old key to be revoked after the overlap",
        Duration::from_secs(30),
        || async { env.sim.key(&old_id).unwrap().deleted.then_some(()) },
    )
    .await;
    let after = env
        .wait_key("k", "previous key cleared", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.rotation.as_ref())
                .is_some_and(|r| r.previous_key_id.is_none())
        })
        .await;
    assert_eq!(key_id(&after).as_deref(), Some(new_id.as_str()));

    // The same token never rotates twice.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = env.ns.api::<ApiKey>().get("k").await.unwrap();
    assert_eq!(key_id(&later).as_deref(), Some(new_id.as_str()));
    assert_eq!(env.sim.live_key_count_named_with(&later.uid().unwrap()), 1);
}

fn operator(env: &Env, failpoint: Option<&str>) -> tokio::process::Child {
    let mut cmd = env.operator_command();
    if let Some(point) = failpoint {
        cmd.env("KEYSMITH_FAILPOINT", point);
    }
    cmd.spawn().unwrap()
}

#[tokio::test]
async fn a_crash_in_the_middle_of_a_rotation_rotates_once_and_keeps_the_overlap() {
    let env = Env::new("rotate-crash").await;
    env.apply_hub("or", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "or"}, "rotation": {"every": "720h", "overlap": "8s"}}),
    )
    .await;
    let mut first = operator(&env, None);
    let key = env.wait_key("k", "Ready", is_ready).await;
    let old_id = key_id(&key).unwrap();
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    // Dies after the new key reached the Secret, before status recorded it.
    let mut crashing = operator(&env, Some("after-secret-write"));
    request_rotation(&env, "k", "t1").await;
    crate::support::operator::expect_crash(&mut crashing).await;

    let _healthy = operator(&env, None);
    let rotated = env
        .wait_key("k", "rotation finished after restart", |k| {
            is_ready(k) && key_id(k).is_some_and(|id| id != old_id)
        })
        .await;
    let uid = rotated.uid().unwrap();
    let made = env
        .sim
        .keys()
        .into_iter()
        .filter(|k| k.name.contains(&uid))
        .count();
    assert_eq!(
        made, 2,
        "exactly one new key: the Secret's was adopted, not replaced"
    );
    assert_eq!(
        rotated
            .status
            .unwrap()
            .rotation
            .unwrap()
            .previous_key_id
            .as_deref(),
        Some(old_id.as_str()),
        "the old key is kept for its overlap"
    );
    eventually(
        "the old key to be revoked after the overlap",
        Duration::from_secs(30),
        || async { env.sim.key(&old_id).unwrap().deleted.then_some(()) },
    )
    .await;
    assert_eq!(env.sim.live_key_count_named_with(&uid), 1);
}
