//! DESIGN §2.2: no leaked and no duplicate provider keys, whatever moment the controller dies.
//! The operator binary runs as a child process with a failpoint that aborts it (like `kill -9`) at
//! one step of the create protocol; a second run without the failpoint must converge to exactly one
//! live key per ApiKey, held by its Secret, with nothing left behind.

use std::time::Duration;

use crate::support::operator::{Env, is_ready};
use keysmith_api::ApiKey;
use keysmith_providers::SecretValue;
use kube::ResourceExt;
use serde_json::json;

fn operator(env: &Env, failpoint: Option<&str>) -> tokio::process::Child {
    let mut cmd = env.operator_command();
    if let Some(point) = failpoint {
        cmd.env("KEYSMITH_FAILPOINT", point);
    }
    cmd.spawn().unwrap()
}

/// Runs the protocol up to `failpoint`, checks the process died there, then restarts it and checks
/// convergence. Returns the ApiKey and how many keys the provider ever made for it.
async fn crash_then_converge(prefix: &str, failpoint: &str) -> (Env, ApiKey, usize) {
    let env = Env::new(prefix).await;
    env.apply_hub("or", json!({})).await;
    let mut crashing = operator(&env, Some(failpoint));
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "or"}, "budget": {"limitUsd": 1.0}}),
    )
    .await;
    crate::support::operator::expect_crash(&mut crashing).await;

    let _healthy = operator(&env, None);
    let key = env.wait_key("k", "ApiKey Ready after restart", is_ready).await;
    let uid = key.uid().unwrap();
    let status = key.status.clone().unwrap();
    assert!(status.pending_create.is_none());
    let key_id = status.key_id.clone().unwrap();

    // Exactly one live key carries this ApiKey's tag: the one status and the Secret name.
    let made: Vec<_> = env
        .sim
        .keys()
        .into_iter()
        .filter(|k| k.name.contains(&uid))
        .collect();
    let live: Vec<_> = made.iter().filter(|k| !k.deleted).collect();
    assert_eq!(live.len(), 1, "one live key, got {live:#?}");
    assert_eq!(live[0].hash, key_id);
    let data = env.secret_data("k").await.unwrap();
    assert_eq!(
        status.fingerprint,
        Some(SecretValue::new(data["apiKey"].clone()).fingerprint())
    );
    // The simulator derives a key's hash from its value, so this proves the Secret holds the live key.
    assert_eq!(keysmith_simulators::sha256_hex(&data["apiKey"]), key_id);
    let made = made.len();
    (env, key, made)
}

#[tokio::test]
async fn crash_after_provider_create_revokes_the_unheld_key_and_issues_one_more() {
    let (env, key, made) = crash_then_converge("crash-create", "after-provider-create").await;
    // The key created before the crash had no Secret: nobody held it, so it was revoked.
    assert_eq!(made, 2, "the lost key plus its replacement");
    let uid = key.uid().unwrap();
    assert_eq!(
        env.sim
            .keys()
            .iter()
            .filter(|k| k.name.contains(&uid) && k.deleted)
            .count(),
        1
    );
}

#[tokio::test]
async fn crash_after_secret_write_adopts_the_key_the_secret_holds() {
    let (_env, _key, made) = crash_then_converge("crash-secret", "after-secret-write").await;
    assert_eq!(made, 1, "the key in the Secret is adopted, not replaced");
}

#[tokio::test]
async fn crash_before_provider_create_creates_exactly_one_key() {
    let (_env, _key, made) = crash_then_converge("crash-before", "before-provider-create").await;
    assert_eq!(made, 1);
}

#[tokio::test]
async fn crash_after_a_reissue_is_recorded_still_revokes_the_replaced_key() {
    let env = Env::new("crash-reissue").await;
    env.apply_hub("or", json!({})).await;
    let spec = |expires: &str| json!({"hubRef": {"name": "or"}, "expiresAt": expires, "rotation": {"overlap": "3s"}});
    env.apply_key("k", spec("2030-01-01T00:00:00Z")).await;
    let mut first = operator(&env, None);
    let key = env.wait_key("k", "Ready", is_ready).await;
    let old_id = key.status.unwrap().key_id.unwrap();
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    // Dies right after status records the new key, before the old one is revoked.
    let mut crashing = operator(&env, Some("after-status-write"));
    env.apply_key("k", spec("2031-01-01T00:00:00Z")).await;
    crate::support::operator::expect_crash(&mut crashing).await;

    let _healthy = operator(&env, None);
    crate::support::eventually(
        "the replaced key to be revoked",
        Duration::from_secs(60),
        || async { env.sim.key(&old_id).unwrap().deleted.then_some(()) },
    )
    .await;
    let key = env.wait_key("k", "Ready", is_ready).await;
    assert_eq!(env.sim.live_key_count_named_with(&key.uid().unwrap()), 1);
}
