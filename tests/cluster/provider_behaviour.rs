//! DESIGN §2.4 and §2.6 on the real control plane: status stays quiet when nothing changes, and the
//! operator is gentle with a provider that rate-limits or fails.

use std::time::Duration;

use crate::support::operator::{Env, is_ready};
use k8s_openapi::api::core::v1::Secret;
use keysmith_api::ApiKey;
use keysmith_simulators::faults::Fault;
use serde_json::json;

#[tokio::test]
async fn a_converged_key_causes_no_writes_across_usage_polls() {
    let env = Env::with_operator("quiet").await;
    env.apply_hub("or", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "or"}, "budget": {"limitUsd": 3, "reset": "Weekly"}}),
    )
    .await;
    env.wait_key("k", "Ready", is_ready).await;
    // Let the follow-up reconciles triggered by keysmith's own writes settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let key_rv = env
        .ns
        .api::<ApiKey>()
        .get("k")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let secret_rv = env
        .ns
        .api::<Secret>()
        .get("k")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let polls_before = env
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/keys/"))
        .count();

    // The test operator polls usage every 2 s (±10%): 8 s covers at least three polls.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let polls = env
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/keys/"))
        .count()
        - polls_before;
    assert!(polls >= 3, "usage was polled {polls} times");
    assert_eq!(
        env.ns
            .api::<ApiKey>()
            .get("k")
            .await
            .unwrap()
            .metadata
            .resource_version,
        key_rv
    );
    assert_eq!(
        env.ns
            .api::<Secret>()
            .get("k")
            .await
            .unwrap()
            .metadata
            .resource_version,
        secret_rv
    );
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_without_jumping_retry_after() {
    let env = Env::with_operator("gentle").await;
    env.sim.inject(Fault::rate_limit(2, 1));
    env.sim.inject(Fault::server_error(2));
    env.apply_hub("or", json!({})).await;
    env.apply_key("k", json!({"hubRef": {"name": "or"}})).await;
    let key = env.wait_key("k", "Ready despite 429s and 500s", is_ready).await;
    assert!(env.sim.requests().iter().any(|r| r.status == 429));
    assert!(env.sim.requests().iter().any(|r| r.status == 500));
    assert_eq!(
        env.sim.early_retries(),
        0,
        "a request arrived before Retry-After expired"
    );
    let uid = key.metadata.uid.unwrap();
    assert_eq!(
        env.sim.live_key_count_named_with(&uid),
        1,
        "retries never duplicate a key"
    );
}

#[tokio::test]
async fn moving_spend_does_not_make_the_operator_poll_faster_than_its_interval() {
    let env = Env::with_operator("busy").await;
    env.apply_hub("or", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "or"}, "budget": {"limitUsd": 100}}),
    )
    .await;
    let key = env.wait_key("k", "Ready", is_ready).await;
    let id = key.status.unwrap().key_id.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let path = format!("/keys/{id}");
    let before = env
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&path))
        .count();
    // Spend moves every 250 ms; every poll sees a new figure and writes status, and each status write
    // is an event for the operator's own watch.
    for _ in 0..32 {
        env.sim.add_spend(&id, 0.01, false);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let polls = env
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&path))
        .count()
        - before;
    // 8 s at one poll per 2 s (±10%) is about 4; a self-triggered loop would make dozens.
    assert!((2..=8).contains(&polls), "{polls} polls of the key in 8 s");
}
