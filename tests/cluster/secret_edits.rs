//! No edit that leaves the key alone replaces it: renaming a data key, moving the Secret or changing
//! its labels writes the same value where the spec now says (the old Secret goes only after the new
//! one is written) and the provider sees no create. Two ApiKeys naming one Secret: one wins, the
//! other gets `SecretConflict`, nothing is overwritten.

use std::time::Duration;

use crate::support::{
    eventually,
    operator::{Env, is_ready, key_ready},
};
use keysmith_api::ApiKey;
use serde_json::json;

/// Keys the simulator ever created.
fn created(env: &Env) -> usize {
    env.sim.keys().len()
}

#[tokio::test]
async fn renaming_a_data_key_moving_the_secret_or_relabelling_it_keeps_the_key() {
    let env = Env::with_operator("secret-edits").await;
    env.apply_hub("or", json!({})).await;
    env.apply_key("k", json!({"hubRef": {"name": "or"}})).await;
    let key = env.wait_key("k", "Ready", is_ready).await;
    let id = key.status.unwrap().key_id.unwrap();
    let value = env.secret_data("k").await.unwrap()["apiKey"].clone();
    assert_eq!(created(&env), 1);

    // A data key renamed, as for an SDK reading OPENAI_API_KEY from the environment.
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "or"}, "secret": {"keys": {"apiKey": "OPENAI_API_KEY"}}}),
    )
    .await;
    let data = eventually(
        "the value under its new data key",
        Duration::from_secs(30),
        || async {
            env.secret_data("k")
                .await
                .filter(|d| d.contains_key("OPENAI_API_KEY"))
        },
    )
    .await;
    assert_eq!(data["OPENAI_API_KEY"], value);
    assert!(!data.contains_key("apiKey"), "the old data key is gone");

    // Moved to another Secret, with a label.
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "or"}, "secret": {"name": "llm", "keys": {"apiKey": "OPENAI_API_KEY"},
               "labels": {"team": "search"}}}),
    )
    .await;
    let moved = eventually("the key in the new Secret", Duration::from_secs(30), || async {
        env.secret_data("llm").await
    })
    .await;
    assert_eq!(moved["OPENAI_API_KEY"], value);
    eventually("the old Secret removed", Duration::from_secs(30), || async {
        env.secret_data("k").await.is_none().then_some(())
    })
    .await;
    let secret = env
        .ns
        .api::<k8s_openapi::api::core::v1::Secret>()
        .get("llm")
        .await
        .unwrap();
    assert_eq!(
        secret
            .metadata
            .labels
            .unwrap_or_default()
            .get("team")
            .map(String::as_str),
        Some("search")
    );
    let key = env
        .wait_key("k", "Ready with the Secret moved", |k| {
            is_ready(k) && k.status.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("llm")
        })
        .await;
    assert_eq!(key.status.unwrap().key_id.as_deref(), Some(id.as_str()));
    assert_eq!(created(&env), 1, "the provider saw no create");
    assert!(!env.sim.key(&id).unwrap().deleted);
}

#[tokio::test]
async fn two_apikeys_naming_one_secret_one_wins_and_nothing_is_overwritten() {
    let env = Env::with_operator("secret-clash").await;
    env.apply_hub("or", json!({})).await;
    let spec = json!({"hubRef": {"name": "or"}, "secret": {"name": "shared"}});
    env.apply_key("a", spec.clone()).await;
    env.apply_key("b", spec).await;
    let settled =
        |k: &ApiKey| is_ready(k) || key_ready(k).is_some_and(|(s, r)| s == "False" && r == "SecretConflict");
    let a = env.wait_key("a", "a settled", settled).await;
    let b = env.wait_key("b", "b settled", settled).await;
    let (winner, loser) = if is_ready(&a) { (a, b) } else { (b, a) };
    assert!(is_ready(&winner), "one of them holds the Secret");
    assert_eq!(
        key_ready(&loser).map(|(_, r)| r).as_deref(),
        Some("SecretConflict")
    );
    // The Secret holds the winner's key, owned by the winner; it stays so.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let secret = env
        .ns
        .api::<k8s_openapi::api::core::v1::Secret>()
        .get("shared")
        .await
        .unwrap();
    let owners: Vec<_> = secret
        .metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.uid)
        .collect();
    assert_eq!(owners, vec![winner.metadata.uid.clone().unwrap()]);
    let value = env.secret_data("shared").await.unwrap()["apiKey"].clone();
    let winner_status = winner.status.unwrap();
    assert_eq!(
        Some(keysmith_core::SecretValue::new(&value).fingerprint()),
        winner_status.fingerprint
    );
    // Whatever the loser minted before it met the conflict is not left live.
    let loser_uid = loser.metadata.uid.unwrap();
    eventually("the loser holds no live key", Duration::from_secs(30), || async {
        (env.sim.live_key_count_named_with(&loser_uid) == 0).then_some(())
    })
    .await;
}
