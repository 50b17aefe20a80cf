//! ClusterModelHubs on the real control plane: one OpenRouter account (its management key in the
//! operator's namespace only) shared by tenant namespaces under quotas. The operator runs in
//! namespaced mode (`Scope::Namespaces`), watching the operator's namespace and the tenants'.

use std::time::Duration;

use crate::support::{
    TestNamespace, eventually,
    operator::{Env, MANAGEMENT_KEY, TEST_LABEL, is_ready, key_ready},
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use keysmith::controller::Scope;
use keysmith_api::{ApiKey, ClusterModelHub};
use keysmith_simulators::clock::Clock;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::{Value, json};

/// The operator's namespace (with the simulator and its management key) and two tenant namespaces.
struct Tenants {
    env: Env,
    a: TestNamespace,
    b: TestNamespace,
    hub: String,
}

impl Tenants {
    async fn new(prefix: &str) -> Self {
        let env = Env::new(prefix).await;
        let a = TestNamespace::new(&format!("{prefix}-a")).await;
        let b = TestNamespace::new(&format!("{prefix}-b")).await;
        let hub = format!("{}-hub", env.ns.name);
        Self { env, a, b, hub }
    }

    fn start(&mut self, settings: Option<keysmith::controller::Settings>) {
        let settings = settings.unwrap_or_else(|| self.env.settings());
        let scope = Scope::Namespaces(vec![
            self.env.ns.name.clone(),
            self.a.name.clone(),
            self.b.name.clone(),
        ]);
        self.env.scene.start_operator_with(settings, scope, Clock::new());
    }

    fn hubs(&self) -> Api<ClusterModelHub> {
        Api::all(self.env.ns.client.clone())
    }

    /// Applies the ClusterModelHub; `extra` is merged into a spec pointing at the simulator.
    async fn apply_hub(&self, extra: Value) {
        let mut spec = json!({
            "provider": "openrouter",
            "endpoint": self.env.running.base_url,
            "inferenceEndpoint": "https://inference.example.test/v1",
            "credentialsRef": {"name": "openrouter-management", "key": "key"},
        });
        crate::support::operator::merge(&mut spec, extra);
        let body = json!({
            "apiVersion": "keysmith.dev/v1alpha1", "kind": "ClusterModelHub",
            "metadata": {"name": self.hub, "labels": {TEST_LABEL: self.env.ns.name}},
            "spec": spec,
        });
        self.hubs()
            .patch(
                &self.hub,
                &PatchParams::apply("keysmith-tests").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap();
    }

    async fn wait_hub(&self, what: &str, check: impl Fn(&ClusterModelHub) -> bool) -> ClusterModelHub {
        let api = self.hubs();
        let name = self.hub.clone();
        eventually(what, Duration::from_secs(60), || {
            let (api, name) = (api.clone(), name.clone());
            let check = &check;
            async move { api.get_opt(&name).await.unwrap().filter(|h| check(h)) }
        })
        .await
    }

    async fn apply_key(&self, ns: &TestNamespace, name: &str, extra: Value) {
        let mut spec = json!({"hubRef": {"kind": "ClusterModelHub", "name": self.hub}});
        crate::support::operator::merge(&mut spec, extra);
        let body = json!({"apiVersion": "keysmith.dev/v1alpha1", "kind": "ApiKey", "metadata": {"name": name}, "spec": spec});
        ns.api::<ApiKey>()
            .patch(
                name,
                &PatchParams::apply("keysmith-tests").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap();
    }

    async fn wait_key(
        &self,
        ns: &TestNamespace,
        name: &str,
        what: &str,
        check: impl Fn(&ApiKey) -> bool,
    ) -> ApiKey {
        let api = ns.api::<ApiKey>();
        eventually(what, Duration::from_secs(60), || {
            let api = api.clone();
            let check = &check;
            async move { api.get_opt(name).await.unwrap().filter(|k| check(k)) }
        })
        .await
    }

    async fn label(&self, ns: &TestNamespace, value: Option<&str>) {
        let body = json!({"metadata": {"labels": {"keysmith.dev/ai": value}}});
        Api::<Namespace>::all(ns.client.clone())
            .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .unwrap();
    }

    fn live_keys(&self) -> usize {
        self.env.sim.keys().iter().filter(|k| !k.deleted).count()
    }
}

impl Drop for Tenants {
    fn drop(&mut self) {
        // Cluster-scoped: it would outlive the test's namespaces. The operator is gone, so its
        // finalizer goes first.
        let kubectl = crate::support::repo_root().join("hack/kubectl");
        let hub = format!("clustermodelhub/{}", self.hub);
        for args in [
            vec![
                "patch",
                &hub,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
            vec!["delete", &hub, "--ignore-not-found", "--wait=false"],
        ] {
            let _ = std::process::Command::new(&kubectl)
                .args(args)
                .env("KUBECONFIG", &self.env.ns.kubeconfig)
                .output();
        }
    }
}

fn reason_is(reason: &'static str) -> impl Fn(&ApiKey) -> bool {
    move |k| key_ready(k).is_some_and(|(s, r)| s == "False" && r == reason)
}

fn ready_message(key: &ApiKey) -> String {
    key.status
        .as_ref()
        .and_then(|s| keysmith_api::conditions::get(&s.conditions, "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn only_allowed_namespaces_get_keys_and_a_namespace_that_leaves_is_suspended_then_restored() {
    let mut t = Tenants::new("cmh-allow").await;
    t.start(None);
    t.label(&t.a, Some(&t.a.name)).await;
    t.apply_hub(json!({"allowedNamespaces": {"selector": {"matchLabels": {"keysmith.dev/ai": t.a.name}}}}))
        .await;
    t.wait_hub("cluster hub Ready", |h| {
        h.status
            .as_ref()
            .is_some_and(|s| keysmith_api::conditions::is_true(&s.conditions, "Ready"))
    })
    .await;

    // Allowed by label: a key is minted and delivered in the tenant's namespace.
    t.apply_key(
        &t.a,
        "chat",
        json!({"budget": {"limitUsd": 10.0, "reset": "Monthly"}}),
    )
    .await;
    let chat = t.wait_key(&t.a, "chat", "team-a key Ready", is_ready).await;
    let id = chat.status.clone().unwrap().key_id.unwrap();
    let secret = t.a.api::<Secret>().get("chat").await.unwrap();
    assert!(secret.data.unwrap().contains_key("apiKey"));
    // The management key never reaches a tenant namespace.
    for ns in [&t.a, &t.b] {
        for s in ns.api::<Secret>().list(&Default::default()).await.unwrap() {
            let leaked = s
                .data
                .unwrap_or_default()
                .values()
                .any(|v| v.0 == MANAGEMENT_KEY.as_bytes());
            assert!(!leaked, "management key in {}", ns.name);
        }
    }

    // Not allowed: refused before any provider call.
    t.apply_key(&t.b, "eval", json!({})).await;
    let eval = t
        .wait_key(&t.b, "eval", "team-b refused", reason_is("HubNotAllowed"))
        .await;
    assert!(ready_message(&eval).contains("does not allow this namespace"));
    assert_eq!(t.live_keys(), 1, "nothing minted for a refused namespace");

    // team-a stops matching: its key is switched off at the provider, not deleted; the Secret stays.
    t.label(&t.a, None).await;
    t.wait_key(&t.a, "chat", "team-a key suspended", reason_is("HubNotAllowed"))
        .await;
    eventually("provider key disabled", Duration::from_secs(30), || async {
        t.env.sim.key(&id).filter(|k| k.disabled && !k.deleted)
    })
    .await;
    assert!(t.a.api::<Secret>().get_opt("chat").await.unwrap().is_some());

    // Allowed again: the same key works again.
    t.label(&t.a, Some(&t.a.name)).await;
    let chat = t.wait_key(&t.a, "chat", "team-a key restored", is_ready).await;
    assert_eq!(chat.status.unwrap().key_id.as_deref(), Some(id.as_str()));
    assert!(!t.env.sim.key(&id).unwrap().disabled);

    // team-b allowed by name: its waiting key gets one.
    t.apply_hub(json!({"allowedNamespaces": {
        "selector": {"matchLabels": {"keysmith.dev/ai": t.a.name}}, "names": [t.b.name]}}))
        .await;
    t.wait_key(&t.b, "eval", "team-b key Ready once allowed", is_ready)
        .await;
    assert_eq!(t.live_keys(), 2);

    // The hub reports each namespace.
    let hub = t
        .wait_hub("per-namespace figures", |h| {
            h.status.as_ref().is_some_and(|s| {
                s.namespaces.len() == 2
                    && s.namespaces.iter().all(|n| n.keys == 1)
                    && s.keys.as_ref().is_some_and(|k| k.managed == 2)
            })
        })
        .await;
    let status = hub.status.unwrap();
    let a = status.namespaces.iter().find(|n| n.name == t.a.name).unwrap();
    assert!(a.allowed);
    assert_eq!(a.allocated_budget_usd, 10.0);
    assert_eq!(status.totals.unwrap().keys, 2);
    // Both namespaces' keys are managed keys of the one account, none an orphan.
    let counts = status.keys.unwrap();
    assert_eq!((counts.managed, counts.orphaned), (2, 0));
}

#[tokio::test]
async fn quotas_admit_oldest_first_and_a_lowered_quota_suspends_nothing() {
    let mut t = Tenants::new("cmh-quota").await;
    t.start(None);
    t.apply_hub(json!({
        "allowedNamespaces": {"names": [t.a.name]},
        "quota": {"maxKeys": 3, "budgetUsd": {"limit": 30.0, "reset": "Monthly"}, "requireBudget": true,
                  "maxLimits": {"requestsPerMinute": 100}},
        "defaults": {"limits": {"requestsPerMinute": 60}},
    }))
    .await;
    let budget = |usd: f64| json!({"budget": {"limitUsd": usd, "reset": "Monthly"}});
    // Created one after another so that creation times order them.
    for (name, usd) in [("k1", 10.0), ("k2", 10.0)] {
        t.apply_key(&t.a, name, budget(usd)).await;
        t.wait_key(&t.a, name, "admitted", is_ready).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // 10 + 10 + 15 > 30: refused, naming the figures.
    t.apply_key(&t.a, "k3", budget(15.0)).await;
    let k3 = t
        .wait_key(&t.a, "k3", "k3 over the budget quota", reason_is("QuotaExceeded"))
        .await;
    assert!(
        ready_message(&k3).contains("quota.budgetUsd.limit is $30.00"),
        "{}",
        ready_message(&k3)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Younger but small enough: it fits.
    t.apply_key(&t.a, "k4", budget(5.0)).await;
    t.wait_key(&t.a, "k4", "k4 admitted", is_ready).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.apply_key(&t.a, "k5", budget(1.0)).await;
    let k5 = t
        .wait_key(&t.a, "k5", "k5 over maxKeys", reason_is("QuotaExceeded"))
        .await;
    assert!(
        ready_message(&k5).contains("quota.maxKeys is 3"),
        "{}",
        ready_message(&k5)
    );
    // Rules a key breaks on its own.
    t.apply_key(&t.a, "nobudget", json!({})).await;
    let nb = t
        .wait_key(&t.a, "nobudget", "no budget refused", reason_is("QuotaExceeded"))
        .await;
    assert!(ready_message(&nb).contains("quota.requireBudget"));
    t.apply_key(
        &t.a,
        "fast",
        json!({"budget": {"limitUsd": 0.0}, "limits": {"requestsPerMinute": 500}}),
    )
    .await;
    let fast = t
        .wait_key(
            &t.a,
            "fast",
            "limit above maxLimits refused",
            reason_is("QuotaExceeded"),
        )
        .await;
    assert!(ready_message(&fast).contains("quota.maxLimits.requestsPerMinute is 100"));
    assert_eq!(t.live_keys(), 3, "refused keys were never minted");

    // A slot frees: the oldest waiting key takes it (k3: 10 + 5 + 15 = 30), not the younger k5.
    t.a.api::<ApiKey>()
        .delete("k1", &DeleteParams::default())
        .await
        .unwrap();
    t.wait_key(&t.a, "k3", "k3 admitted once k1 went", is_ready).await;
    let k5 = t.a.api::<ApiKey>().get("k5").await.unwrap();
    assert_eq!(key_ready(&k5).unwrap().1, "QuotaExceeded");
    assert_eq!(t.live_keys(), 3);

    // Lowering the quota below what is held suspends nothing and is reported on the hub.
    t.apply_hub(json!({
        "allowedNamespaces": {"names": [t.a.name]},
        "quota": {"maxKeys": 1, "budgetUsd": {"limit": 30.0, "reset": "Monthly"}, "requireBudget": true,
                  "maxLimits": {"requestsPerMinute": 100}},
        "defaults": {"limits": {"requestsPerMinute": 60}},
    }))
    .await;
    let hub = t
        .wait_hub("overrun reported", |h| {
            h.status
                .as_ref()
                .is_some_and(|s| s.namespaces.iter().any(|n| n.overrun.is_some()))
        })
        .await;
    let ns = hub
        .status
        .unwrap()
        .namespaces
        .into_iter()
        .find(|n| n.name == t.a.name)
        .unwrap();
    assert!(ns.overrun.unwrap().contains("3 keys held, quota.maxKeys is 1"));
    assert_eq!((ns.keys, ns.refused), (3, 3));
    for name in ["k2", "k3", "k4"] {
        assert!(
            is_ready(&t.a.api::<ApiKey>().get(name).await.unwrap()),
            "{name} still Ready"
        );
    }
}

#[tokio::test]
async fn a_fixed_credential_in_the_operator_namespace_is_picked_up_without_waiting_out_the_back_off() {
    let mut t = Tenants::new("cmh-cred").await;
    // A back-off of a minute: only the credential Secret's watch can make the fix visible sooner.
    let settings = keysmith::controller::Settings {
        default_usage_interval: Duration::from_secs(600),
        error_backoff_base: Duration::from_secs(60),
        ..t.env.settings()
    };
    t.start(Some(settings));
    t.env
        .apply_secret(
            "late",
            json!({"key": "sk-or-v1-wrong-0000000000000000000000000000000000000000000000"}),
        )
        .await;
    t.apply_hub(
        json!({"credentialsRef": {"name": "late", "key": "key"}, "allowedNamespaces": {"names": [t.a.name]}}),
    )
    .await;
    t.wait_hub("credential refused", |h| {
        h.status.as_ref().is_some_and(|s| {
            keysmith_api::conditions::get(&s.conditions, "Ready").is_some_and(|c| c.reason == "Unauthorized")
        })
    })
    .await;
    // The hub protects the Secret it uses.
    let late = t.env.ns.api::<Secret>().get("late").await.unwrap();
    assert!(
        late.finalizers()
            .iter()
            .any(|f| f == "keysmith.dev/credential-in-use")
    );

    let fixed = tokio::time::Instant::now();
    t.env.apply_secret("late", json!({"key": MANAGEMENT_KEY})).await;
    t.wait_hub("credential accepted", |h| {
        h.status
            .as_ref()
            .is_some_and(|s| keysmith_api::conditions::is_true(&s.conditions, "Ready"))
    })
    .await;
    assert!(
        fixed.elapsed() < Duration::from_secs(30),
        "took {:?}",
        fixed.elapsed()
    );
}

#[tokio::test]
async fn a_cluster_hub_and_its_credential_stay_until_the_keys_that_use_them_are_revoked() {
    let mut t = Tenants::new("cmh-delete").await;
    t.start(None);
    t.apply_hub(json!({"allowedNamespaces": {"names": [t.a.name, t.b.name]}}))
        .await;
    t.apply_key(&t.a, "one", json!({})).await;
    t.apply_key(&t.b, "two", json!({})).await;
    t.wait_key(&t.a, "one", "one Ready", is_ready).await;
    t.wait_key(&t.b, "two", "two Ready", is_ready).await;
    assert_eq!(t.live_keys(), 2);

    // The hub and its credential go first: both wait, and the keys keep working.
    t.hubs().delete(&t.hub, &DeleteParams::default()).await.unwrap();
    t.env
        .ns
        .api::<Secret>()
        .delete("openrouter-management", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hub = t.hubs().get(&t.hub).await.unwrap();
    assert!(hub.metadata.deletion_timestamp.is_some());
    assert!(
        t.env
            .ns
            .api::<Secret>()
            .get_opt("openrouter-management")
            .await
            .unwrap()
            .is_some()
    );
    assert!(is_ready(&t.a.api::<ApiKey>().get("one").await.unwrap()));

    // The keys go: each is revoked through the hub, then the hub and the credential go.
    t.a.api::<ApiKey>()
        .delete("one", &DeleteParams::default())
        .await
        .unwrap();
    t.b.api::<ApiKey>()
        .delete("two", &DeleteParams::default())
        .await
        .unwrap();
    eventually("hub gone", Duration::from_secs(60), || async {
        t.hubs().get_opt(&t.hub).await.unwrap().is_none().then_some(())
    })
    .await;
    eventually("credential gone", Duration::from_secs(60), || async {
        t.env
            .ns
            .api::<Secret>()
            .get_opt("openrouter-management")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(t.live_keys(), 0, "every key revoked");
}
