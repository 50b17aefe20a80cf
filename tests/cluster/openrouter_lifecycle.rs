//! ApiKey and ModelHub end to end on the real control plane, with the OpenRouter simulator:
//! minting, the Secret, changes in place, re-issue on a new expiry, usage in status, import,
//! revocation on delete and garbage collection of the Secret.

use std::time::Duration;

use crate::support::{
    eventually,
    operator::{Env, hub_ready, is_ready, key_ready},
};
use k8s_openapi::api::core::v1::{Event, Secret};
use keysmith_api::ApiKey;
use keysmith_providers::SecretValue;
use kube::{
    ResourceExt,
    api::{DeleteParams, ListParams},
};
use serde_json::json;

#[tokio::test]
async fn minted_key_lands_in_an_owned_secret_and_follows_the_spec() {
    let env = Env::with_operator("mint").await;
    env.apply_hub("or", json!({})).await;
    env.wait_hub("or", "hub Ready", |h| {
        hub_ready(h).is_some_and(|(s, _)| s == "True")
    })
    .await;
    env.apply_key(
        "chat",
        json!({"hubRef": {"name": "or"}, "budget": {"limitUsd": 10.0, "reset": "Monthly"},
               "requestLimits": {"maxInputTokens": 4096, "maxOutputTokens": 0},
               "secret": {"name": "chat-key", "keys": {"apiKey": "OPENAI_API_KEY", "baseUrl": "OPENAI_BASE_URL"}}}),
    )
    .await;
    let key = env.wait_key("chat", "ApiKey Ready", is_ready).await;
    let status = key.status.clone().unwrap();
    let key_id = status.key_id.clone().unwrap();

    // The Secret holds the value the provider issued, and the hub's inference URL.
    let data = env.secret_data("chat-key").await.unwrap();
    let value = SecretValue::new(data["OPENAI_API_KEY"].clone());
    assert_eq!(data["OPENAI_BASE_URL"], "https://inference.example.test/v1");
    // Per-request caps are published for clients; 0 means unlimited and is left out.
    assert_eq!(data["maxInputTokens"], "4096");
    assert!(!data.contains_key("maxOutputTokens"));
    assert_eq!(status.fingerprint.as_deref(), Some(value.fingerprint().as_str()));
    assert_eq!(status.secret_name.as_deref(), Some("chat-key"));
    let sim_key = env.sim.key(&key_id).unwrap();
    assert_eq!(
        sim_key.name,
        format!(
            "{}/chat [ks:{}/{}]",
            env.ns.name,
            key.uid().unwrap(),
            sim_key.name.rsplit('/').next().unwrap().trim_end_matches(']')
        )
    );
    assert_eq!(sim_key.limit, Some(10.0));
    assert_eq!(env.sim.live_key_count_named_with(&key.uid().unwrap()), 1);
    // The status never holds the value.
    assert!(
        !serde_json::to_string(&key.status)
            .unwrap()
            .contains(value.expose())
    );
    let secret = env.ns.api::<Secret>().get("chat-key").await.unwrap();
    assert_eq!(secret.owner_references()[0].uid, key.uid().unwrap());

    // Rename, budget and disable are applied in place: same key, same value.
    env.apply_key(
        "chat",
        json!({"hubRef": {"name": "or"}, "displayName": "chat backend", "disabled": true,
               "budget": {"limitUsd": 20.0, "reset": "Daily", "includeByok": true},
               "secret": {"name": "chat-key", "keys": {"apiKey": "OPENAI_API_KEY", "baseUrl": "OPENAI_BASE_URL"}}}),
    )
    .await;
    let key = env
        .wait_key("chat", "disabled key reported", |k| {
            key_ready(k).is_some_and(|(_, r)| r == "KeyDisabled")
        })
        .await;
    let sim_key = env.sim.key(&key_id).unwrap();
    assert!(sim_key.disabled);
    assert!(sim_key.name.starts_with("chat backend [ks:"));
    assert_eq!((sim_key.limit, sim_key.include_byok_in_limit), (Some(20.0), true));
    assert_eq!(key.status.unwrap().key_id.as_deref(), Some(key_id.as_str()));
    assert_eq!(
        env.secret_data("chat-key").await.unwrap()["OPENAI_API_KEY"],
        value.expose()
    );

    // Usage reaches status: spend in the budget's (daily) window.
    env.sim.add_spend(&key_id, 3.25, false);
    let key = env
        .wait_key("chat", "usage in status", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.usage.as_ref())
                .and_then(|u| u.current_usd)
                == Some(3.25)
        })
        .await;
    let usage = key.status.unwrap().usage.unwrap();
    assert_eq!(usage.total_usd, Some(3.25));
    assert_eq!(usage.remaining_usd, Some(16.75));

    // BYOK spend counts against this limit (includeByok): status counts it too, so a key OpenRouter
    // already refuses never shows as within its budget.
    env.sim.add_spend(&key_id, 17.0, true);
    let key = env
        .wait_key("chat", "BYOK spend in the window", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.usage.as_ref())
                .and_then(|u| u.current_usd)
                == Some(20.25)
        })
        .await;
    let exceeded =
        crate::support::operator::condition(key.status.as_ref().map(|s| &s.conditions), "LimitExceeded");
    assert_eq!(exceeded, Some(("True".into(), "BudgetExceeded".into())));
    assert_eq!(key.status.unwrap().usage.unwrap().remaining_usd, Some(0.0));
    assert!(usage.window_resets_at.unwrap().ends_with("T00:00:00Z"));
}

#[tokio::test]
async fn a_new_expiry_reissues_the_key_and_keeps_the_old_one_for_the_overlap() {
    let env = Env::with_operator("reissue").await;
    env.apply_hub("or", json!({})).await;
    let spec = |expires: &str| json!({"hubRef": {"name": "or"}, "expiresAt": expires, "rotation": {"overlap": "8s"}});
    env.apply_key("k", spec("2030-01-01T00:00:00Z")).await;
    let first = env.wait_key("k", "ApiKey Ready", is_ready).await.status.unwrap();
    let old_id = first.key_id.unwrap();
    let old_value = env.secret_data("k").await.unwrap()["apiKey"].clone();

    env.apply_key("k", spec("2031-06-30T12:00:00Z")).await;
    let key = env
        .wait_key("k", "re-issued key", |k| {
            is_ready(k) && k.status.as_ref().and_then(|s| s.key_id.as_deref()) != Some(old_id.as_str())
        })
        .await;
    let status = key.status.unwrap();
    assert_eq!(status.expires_at.as_deref(), Some("2031-06-30T12:00:00Z"));
    let new_id = status.key_id.unwrap();
    // The new key is delivered first; the old one keeps working for the overlap, as in a rotation, so
    // a workload that read it once is not cut off, and is revoked after it.
    let rotation = status.rotation.unwrap();
    assert_eq!(rotation.previous_key_id.as_deref(), Some(old_id.as_str()));
    assert!(rotation.previous_key_revoke_at.is_some());
    assert!(
        !env.sim.key(&old_id).unwrap().deleted,
        "the old key is cut at once"
    );
    assert_ne!(env.secret_data("k").await.unwrap()["apiKey"], old_value);
    eventually("the old key to be revoked", Duration::from_secs(30), || async {
        env.sim.key(&old_id).unwrap().deleted.then_some(())
    })
    .await;
    assert!(!env.sim.key(&new_id).unwrap().deleted);
    assert_ne!(env.secret_data("k").await.unwrap()["apiKey"], old_value);
    assert_eq!(env.sim.live_key_count_named_with(&key.metadata.uid.unwrap()), 1);
}

#[tokio::test]
async fn deleting_an_apikey_revokes_its_key_and_the_secret_is_collected() {
    let env = Env::with_operator("delete").await;
    env.apply_hub("or", json!({})).await;
    env.apply_key("gone", json!({"hubRef": {"name": "or"}})).await;
    env.apply_key(
        "kept",
        json!({"hubRef": {"name": "or"}, "deletionPolicy": "Orphan"}),
    )
    .await;
    let gone = env.wait_key("gone", "ApiKey Ready", is_ready).await;
    let kept = env.wait_key("kept", "ApiKey Ready", is_ready).await;
    let gone_id = gone.status.unwrap().key_id.unwrap();
    let kept_id = kept.status.unwrap().key_id.unwrap();

    let api = env.ns.api::<ApiKey>();
    api.delete("gone", &DeleteParams::default()).await.unwrap();
    api.delete("kept", &DeleteParams::default()).await.unwrap();
    eventually("both ApiKeys gone", Duration::from_secs(60), || {
        let api = api.clone();
        async move { (api.list(&ListParams::default()).await.unwrap().items.is_empty()).then_some(()) }
    })
    .await;
    assert!(
        env.sim.key(&gone_id).unwrap().deleted,
        "Delete policy revokes the key"
    );
    assert!(
        !env.sim.key(&kept_id).unwrap().deleted,
        "Orphan policy leaves the key"
    );
    let secrets = env.ns.api::<Secret>();
    eventually("Secrets garbage-collected", Duration::from_secs(60), || {
        let secrets = secrets.clone();
        async move {
            let a = secrets.get_opt("gone").await.unwrap();
            let b = secrets.get_opt("kept").await.unwrap();
            (a.is_none() && b.is_none()).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn an_imported_key_is_validated_copied_and_never_revoked() {
    let env = Env::with_operator("import").await;
    let value = "sk-or-v1-1111111111111111111111111111111111111111111111111111111111111111";
    let hash = env.sim.add_ordinary_key(value);
    env.sim.add_spend(&hash, 1.5, false);
    env.apply_hub("or", json!({})).await;
    env.apply_secret("existing", json!({"value": value})).await;
    env.apply_key(
        "imp",
        json!({"hubRef": {"name": "or"}, "import": {"secretRef": {"name": "existing", "key": "value"}}}),
    )
    .await;
    let key = env.wait_key("imp", "imported key Ready", is_ready).await;
    assert_eq!(env.secret_data("imp").await.unwrap()["apiKey"], value);
    let status = key.status.unwrap();
    assert_eq!(status.usage.unwrap().total_usd, Some(1.5));
    assert_eq!(
        status.fingerprint.as_deref(),
        Some(SecretValue::new(value).fingerprint().as_str())
    );

    // A key the provider rejects is reported, not copied.
    env.apply_secret("bogus", json!({"value": "sk-or-v1-not-a-key"}))
        .await;
    env.apply_key(
        "bad",
        json!({"hubRef": {"name": "or"}, "import": {"secretRef": {"name": "bogus", "key": "value"}}}),
    )
    .await;
    env.wait_key("bad", "Unauthorized import", |k| {
        key_ready(k).is_some_and(|(s, r)| s == "False" && r == "Unauthorized")
    })
    .await;
    assert!(env.secret_data("bad").await.is_none());

    env.ns
        .api::<ApiKey>()
        .delete("imp", &DeleteParams::default())
        .await
        .unwrap();
    let api = env.ns.api::<ApiKey>();
    eventually("imported ApiKey gone", Duration::from_secs(60), || {
        let api = api.clone();
        async move { api.get_opt("imp").await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert!(!env.sim.key(&hash).unwrap().deleted);
}

#[tokio::test]
async fn problems_become_conditions_with_reasons_and_events() {
    let env = Env::with_operator("problems").await;
    // ApiKey whose hub does not exist.
    env.apply_key("orphan", json!({"hubRef": {"name": "nope"}})).await;
    env.wait_key("orphan", "HubNotFound", |k| {
        key_ready(k).is_some_and(|(s, r)| s == "False" && r == "HubNotFound")
    })
    .await;

    // Hub whose credentials Secret is missing.
    env.apply_hub(
        "nocreds",
        json!({"credentialsRef": {"name": "missing", "key": "key"}}),
    )
    .await;
    env.wait_hub("nocreds", "CredentialsMissing", |h| {
        hub_ready(h).is_some_and(|(_, r)| r == "CredentialsMissing")
    })
    .await;

    // Hub with a wrong credential.
    env.apply_secret("wrong", json!({"key": "sk-or-v1-wrong"})).await;
    env.apply_hub(
        "wrongcreds",
        json!({"credentialsRef": {"name": "wrong", "key": "key"}}),
    )
    .await;
    env.wait_hub("wrongcreds", "Unauthorized", |h| {
        hub_ready(h).is_some_and(|(_, r)| r == "Unauthorized")
    })
    .await;

    // Hub whose provider is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.apply_hub(
        "down",
        json!({"endpoint": format!("http://127.0.0.1:{closed}/api/v1")}),
    )
    .await;
    env.wait_hub("down", "ProviderUnreachable", |h| {
        hub_ready(h).is_some_and(|(_, r)| r == "ProviderUnreachable")
    })
    .await;

    // A Secret keysmith does not own is never overwritten, and no provider key is minted for it.
    env.apply_hub("or", json!({})).await;
    env.apply_secret("taken", json!({"apiKey": "someone else's"}))
        .await;
    env.apply_key(
        "clash",
        json!({"hubRef": {"name": "or"}, "secret": {"name": "taken"}}),
    )
    .await;
    let clash = env
        .wait_key("clash", "SecretConflict", |k| {
            key_ready(k).is_some_and(|(_, r)| r == "SecretConflict")
        })
        .await;
    assert_eq!(
        env.secret_data("taken").await.unwrap()["apiKey"],
        "someone else's"
    );
    assert_eq!(env.sim.live_key_count_named_with(&clash.uid().unwrap()), 0);
    // Once that Secret is gone the attempt the conflict interrupted is finished: one key, in a
    // Secret keysmith owns.
    env.ns
        .api::<Secret>()
        .delete("taken", &DeleteParams::default())
        .await
        .unwrap();
    let clash = env
        .wait_key("clash", "Ready once the foreign Secret is gone", |k| {
            key_ready(k).is_some_and(|(s, _)| s == "True")
        })
        .await;
    assert_eq!(env.sim.live_key_count_named_with(&clash.uid().unwrap()), 1);
    let value = SecretValue::new(env.secret_data("taken").await.unwrap()["apiKey"].clone());
    assert_eq!(
        Some(value.fingerprint()),
        clash.status.as_ref().and_then(|s| s.fingerprint.clone())
    );

    // Each problem was announced with a Warning Event naming its reason.
    let events = env.ns.api::<Event>();
    let reasons = eventually("warning events", Duration::from_secs(30), || {
        let events = events.clone();
        async move {
            let reasons: Vec<String> = events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .filter_map(|e| e.reason)
                .collect();
            let want = [
                "HubNotFound",
                "CredentialsMissing",
                "Unauthorized",
                "ProviderUnreachable",
                "SecretConflict",
            ];
            want.iter()
                .all(|w| reasons.iter().any(|r| r == w))
                .then_some(reasons)
        }
    })
    .await;
    assert!(!reasons.is_empty());
}

#[tokio::test]
async fn the_hub_reports_capabilities_credits_and_managed_and_orphaned_keys() {
    let env = Env::new("hubstatus").await;
    env.sim.set_total_credits(42.0);
    env.apply_hub("or", json!({})).await;
    env.apply_key("k", json!({"hubRef": {"name": "or"}})).await;
    let mut env = env;
    env.start_operator();
    let key = env.wait_key("k", "ApiKey Ready", is_ready).await;
    // A key carrying keysmith's tag that no ApiKey holds (say, from a deleted namespace's ApiKey).
    let stray = env.sim.add_ordinary_key_named(
        "sk-or-v1-2222222222222222222222222222222222222222222222222222222222222222",
        "old [ks:00000000-dead-beef-0000-000000000000/1]",
    );
    assert!(!stray.is_empty());
    // The hub counts at its polling interval (2 s in tests).
    let hub = env
        .wait_hub("or", "managed and orphaned counts", |h| {
            h.status
                .as_ref()
                .and_then(|s| s.keys.as_ref())
                .is_some_and(|k| k.managed == 1 && k.orphaned == 1)
        })
        .await;
    let status = hub.status.unwrap();
    let account = status.account.unwrap();
    assert_eq!(account.credits_usd, Some(42.0));
    let caps = status.capabilities.unwrap();
    use keysmith_api::Enforcement::*;
    assert_eq!(
        (caps.budget, caps.disable, caps.rename, caps.expiry),
        (Provider, Provider, Provider, Provider)
    );
    assert_eq!((caps.rate_limits, caps.rotation), (Advisory, Operator));
    // The key's effective budget comes from the hub's provider-enforced capability.
    assert!(key.status.unwrap().effective_limits.is_some());
}

#[tokio::test]
async fn a_key_past_its_expiry_is_reported_expired_and_not_ready() {
    let env = Env::with_operator("expiry").await;
    env.apply_hub("or", json!({})).await;
    let soon = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(10))
        .unwrap();
    let soon = soon.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    env.apply_key("k", json!({"hubRef": {"name": "or"}, "expiresAt": soon}))
        .await;
    let key = env.wait_key("k", "Ready before expiry", is_ready).await;
    let expired = crate::support::operator::condition(key.status.as_ref().map(|s| &s.conditions), "Expired");
    assert_eq!(expired.map(|(s, _)| s).as_deref(), Some("False"));
    // The operator wakes up at the expiry instead of waiting for the next usage poll.
    let key = env
        .wait_key("k", "Expired", |k| {
            crate::support::operator::condition(k.status.as_ref().map(|s| &s.conditions), "Expired")
                .is_some_and(|(s, r)| s == "True" && r == "KeyExpired")
        })
        .await;
    assert_eq!(key_ready(&key), Some(("False".into(), "Expired".into())));
}
