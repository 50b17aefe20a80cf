//! No provider key outlives its owner, whatever order things are deleted in: a hub stays while ApiKeys
//! use it, and its credential Secret while a hub uses it, so every key whose `deletionPolicy` is
//! `Delete` is revoked before they go. The deletions come from the namespace controller of the real
//! kube-controller-manager and from one `kubectl delete -f`.

use std::time::Duration;

use crate::support::{
    delete_namespace_and_wait, eventually,
    operator::{Env, hub_ready},
    repo_root,
};
use k8s_openapi::api::core::v1::{Event, Secret};
use keysmith_api::{ApiKey, ModelHub};
use kube::{
    ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::json;

fn live(env: &Env) -> usize {
    env.sim.keys().iter().filter(|k| !k.deleted).count()
}

#[tokio::test]
async fn deleting_the_namespace_revokes_every_key_and_leaves_orphans_alone() {
    let env = Env::with_operator("del-ns").await;
    // Usage read every minute, not every 2 s as in most tests: 21 keys polled every 2 s through one
    // hub's rate limiter would be more reconciles than the operator's 4 workers run, and the keys
    // still waiting for their first could wait long (the controller runtime serves them unfairly).
    env.apply_hub("or", json!({"usageRefreshInterval": "60s"})).await;
    let names = env.apply_keys("k", 20, "or").await;
    env.apply_key(
        "kept",
        json!({"hubRef": {"name": "or"}, "deletionPolicy": "Orphan"}),
    )
    .await;
    let mut all = names.clone();
    all.push("kept".to_owned());
    env.wait_all_ready(&all, Duration::from_secs(120)).await;
    assert_eq!(live(&env), 21);
    let kept = env
        .ns
        .api::<ApiKey>()
        .get("kept")
        .await
        .unwrap()
        .status
        .unwrap()
        .key_id
        .unwrap();

    // The hub and its credential carry keysmith's finalizers while in use.
    let hub = env.ns.api::<ModelHub>().get("or").await.unwrap();
    assert!(
        hub.metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == "keysmith.dev/hub-in-use")
    );

    // The namespace controller deletes hub, Secret and keys in an order of its own.
    delete_namespace_and_wait(&env.ns.client, &env.ns.name).await;
    assert_eq!(
        live(&env),
        1,
        "every Delete-policy key revoked, the Orphan one left"
    );
    assert!(!env.sim.key(&kept).unwrap().deleted);
}

#[tokio::test]
async fn kubectl_delete_of_one_file_with_secret_hub_and_keys_revokes_them_all() {
    let env = Env::with_operator("del-file").await;
    // One file, Secret first, as users write it: kubectl deletes in file order.
    let file = std::env::temp_dir().join(format!("{}.yaml", env.ns.name));
    let mut yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: mgmt}}\nstringData: {{key: {}}}\n---\n\
         apiVersion: keysmith.dev/v1alpha1\nkind: ModelHub\nmetadata: {{name: hub}}\n\
         spec: {{provider: openrouter, endpoint: '{}', credentialsRef: {{name: mgmt, key: key}}}}\n",
        crate::support::operator::MANAGEMENT_KEY,
        env.running.base_url
    );
    for i in 0..3 {
        yaml.push_str(&format!(
            "---\napiVersion: keysmith.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: key-{i}}}\nspec: {{hubRef: {{name: hub}}}}\n"
        ));
    }
    std::fs::write(&file, yaml).unwrap();
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new(repo_root().join("hack/kubectl"))
            .args(args)
            .args(["-n", &env.ns.name, "-f"])
            .arg(&file)
            .env("KUBECONFIG", &env.ns.kubeconfig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    kubectl(&["apply"]);
    let names: Vec<String> = (0..3).map(|i| format!("key-{i}")).collect();
    env.wait_all_ready(&names, Duration::from_secs(60)).await;
    assert_eq!(live(&env), 3);

    kubectl(&["delete", "--wait=false"]);
    eventually("every key revoked", Duration::from_secs(60), || async {
        (live(&env) == 0).then_some(())
    })
    .await;
    eventually("hub and Secret gone", Duration::from_secs(60), || async {
        let hub = env.ns.api::<ModelHub>().get_opt("hub").await.unwrap();
        let secret = env
            .ns
            .api::<k8s_openapi::api::core::v1::Secret>()
            .get_opt("mgmt")
            .await
            .unwrap();
        (hub.is_none() && secret.is_none()).then_some(())
    })
    .await;
    let _ = std::fs::remove_file(file);
}

/// If the credential is gone anyway (its finalizer stripped by hand), deleting ApiKeys cannot revoke
/// their keys: the hub reports them (count, ids, a Warning Event) and revokes them once the credential
/// is back.
#[tokio::test]
async fn keys_a_stripped_credential_left_live_are_reported_then_revoked_once_it_returns() {
    let env = Env::with_operator("del-unrevoked").await;
    env.apply_hub("or", json!({})).await;
    let names = env.apply_keys("k", 3, "or").await;
    env.wait_all_ready(&names, Duration::from_secs(60)).await;
    let mut ids = Vec::new();
    for name in &names {
        let key = env.ns.api::<ApiKey>().get(name).await.unwrap();
        ids.push(key.status.unwrap().key_id.unwrap());
    }
    ids.sort();

    // Someone deletes the credential Secret and strips keysmith's finalizer from it. In this order:
    // stripped first, keysmith would put its finalizer back (the hub still uses the Secret) before
    // the delete arrived, and the Secret would rightly stay; once deleting, no finalizer can be added.
    let secrets = env.ns.api::<Secret>();
    secrets
        .delete("openrouter-management", &DeleteParams::default())
        .await
        .unwrap();
    secrets
        .patch(
            "openrouter-management",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    env.wait_hub("or", "credentials missing", |h| {
        hub_ready(h).is_some_and(|(s, r)| s == "False" && r == "CredentialsMissing")
    })
    .await;
    for name in &names {
        env.ns
            .api::<ApiKey>()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("the ApiKeys are gone", Duration::from_secs(30), || async {
        env.ns
            .api::<ApiKey>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(live(&env), 3, "nothing could revoke them");
    let hub = env
        .wait_hub("or", "unrevoked keys reported", |h| {
            h.status
                .as_ref()
                .and_then(|s| s.keys.as_ref())
                .is_some_and(|k| k.unrevoked == 3)
        })
        .await;
    assert_eq!(hub.status.unwrap().keys.unwrap().unrevoked_ids, ids);
    let events = env.ns.api::<Event>();
    eventually("a Warning Event on the hub", Duration::from_secs(30), || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("KeysUnrevoked")
                        && e.involved_object.kind.as_deref() == Some("ModelHub")
                })
                .then_some(())
        }
    })
    .await;

    // The credential is restored: the hub revokes what was left and forgets the record.
    env.apply_secret(
        "openrouter-management",
        json!({"key": crate::support::operator::MANAGEMENT_KEY}),
    )
    .await;
    eventually("the left keys revoked", Duration::from_secs(60), || async {
        (live(&env) == 0).then_some(())
    })
    .await;
    let hub = env
        .wait_hub("or", "the record cleared", |h| {
            h.status
                .as_ref()
                .and_then(|s| s.keys.as_ref())
                .is_some_and(|k| k.unrevoked == 0)
                && !h
                    .annotations()
                    .keys()
                    .any(|a| a.starts_with("unrevoked.keysmith.dev/"))
        })
        .await;
    assert!(hub.status.unwrap().keys.unwrap().unrevoked_ids.is_empty());
}

/// Deleting a namespace is routine: the operator logs it at debug and info, never WARN or ERROR
/// (WARN means a person should look).
#[tokio::test]
async fn a_namespace_deletion_logs_no_warnings() {
    let env = Env::new("del-quiet").await;
    env.apply_hub("or", json!({"usageRefreshInterval": "60s"})).await;
    let names = env.apply_keys("k", 10, "or").await;
    let mut operator = env
        .operator_command()
        .env("KEYSMITH_LOG_FORMAT", "json")
        .spawn()
        .unwrap();
    env.wait_all_ready(&names, Duration::from_secs(90)).await;
    delete_namespace_and_wait(&env.ns.client, &env.ns.name).await;
    // Whatever the deletion's last watch events bring, let them arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    operator.start_kill().unwrap();
    operator.wait().await.unwrap();
    assert_eq!(
        env.sim.keys().len(),
        10,
        "no key was issued while the namespace went (its Secrets may go first)"
    );
    assert!(env.sim.keys().iter().all(|k| k.deleted));
    let log = std::fs::read_to_string(env.operator_log()).unwrap();
    assert!(log.lines().count() > 3, "the operator logged: {log}");
    let loud: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(loud.is_empty(), "{} loud lines:\n{}", loud.len(), loud.join("\n"));
}
