//! Runs keysmith's controllers in-process against the test control plane, scoped to one test
//! namespace. [`Scene`] is provider-neutral (each provider's tests start their own simulator);
//! [`Env`] is a scene with an OpenRouter simulator.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use keysmith::controller::{self, Context, DefaultProviderFactory, Scope, Settings};
use keysmith_api::{ApiKey, ModelHub, conditions};
use keysmith_simulators::{RunningSim, clock::Clock, openrouter::OpenRouterSim};
use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::{TestNamespace, eventually};

/// Label that assigns a ClusterModelHub to the test (namespace) whose operator reconciles it.
pub const TEST_LABEL: &str = "keysmith.dev/test";

/// The management key the simulator accepts.
pub const MANAGEMENT_KEY: &str = "sk-or-v1-management-test-key-0000000000000000000000000000000000";

/// A namespace with an OpenRouter simulator and (optionally) the operator running against both.
pub struct Env {
    pub scene: Scene,
    pub sim: OpenRouterSim,
    pub running: RunningSim,
}

impl std::ops::Deref for Env {
    type Target = Scene;
    fn deref(&self) -> &Scene {
        &self.scene
    }
}

impl std::ops::DerefMut for Env {
    fn deref_mut(&mut self) -> &mut Scene {
        &mut self.scene
    }
}

impl Env {
    /// A namespace, a simulator and the credentials Secret, without the operator.
    pub async fn new(prefix: &str) -> Self {
        Self::in_namespace(TestNamespace::new(prefix).await).await
    }

    /// The same in a namespace made elsewhere (another control plane, say).
    pub async fn in_namespace(ns: TestNamespace) -> Self {
        let scene = Scene::in_namespace(ns);
        let sim = OpenRouterSim::new([MANAGEMENT_KEY.to_owned()], Clock::new());
        let running = sim.spawn().await.unwrap();
        let env = Self { scene, sim, running };
        env.apply_secret("openrouter-management", json!({"key": MANAGEMENT_KEY}))
            .await;
        env
    }

    /// The same, with the operator running.
    pub async fn with_operator(prefix: &str) -> Self {
        let mut env = Self::new(prefix).await;
        env.start_operator();
        env
    }

    /// The same, with the operator sharing the simulator's clock.
    pub async fn with_operator_on_sim_clock(prefix: &str) -> Self {
        let mut env = Self::new(prefix).await;
        let clock = env.sim.clock();
        env.scene.start_operator_with_clock(clock);
        env
    }

    /// Applies `count` ApiKeys named `<prefix>-<i>` on hub `hub`, several at a time.
    pub async fn apply_keys(&self, prefix: &str, count: usize, hub: &str) -> Vec<String> {
        use futures::StreamExt;
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
        futures::stream::iter(names.clone())
            .for_each_concurrent(16, |name| async move {
                self.apply_key(&name, json!({"hubRef": {"name": hub}})).await;
            })
            .await;
        names
    }

    /// Waits until every named ApiKey is Ready, listing them all at once.
    pub async fn wait_all_ready(&self, names: &[String], timeout: Duration) {
        let api = self.ns.api::<ApiKey>();
        let want = names.len();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ready = api
                .list(&kube::api::ListParams::default())
                .await
                .map(|list| list.items.iter().filter(|k| is_ready(k)).count());
            if ready.is_ok_and(|n| n >= want) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                self.report_not_ready(names).await;
                panic!("timed out after {timeout:?} waiting for every ApiKey Ready");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The fault suite's end state: exactly one live provider key per ApiKey (no orphan, no duplicate),
    /// held by its Secret and recorded in its status, every ApiKey Ready, and no request that arrived
    /// before a `Retry-After` had passed.
    pub async fn assert_converged(&self, names: &[String]) {
        let keys = self.ns.api::<ApiKey>();
        let sim_keys = self.sim.keys();
        let live: Vec<_> = sim_keys.iter().filter(|k| !k.deleted).collect();
        for name in names {
            let key = keys.get(name).await.unwrap();
            assert!(is_ready(&key), "{name} is Ready");
            let uid = key.uid().unwrap();
            let status = key.status.clone().unwrap();
            assert!(status.pending_create.is_none(), "{name}: no create left pending");
            let mine: Vec<_> = live.iter().filter(|k| k.name.contains(&uid)).collect();
            assert_eq!(mine.len(), 1, "{name}: one live provider key, got {}", mine.len());
            assert_eq!(
                status.key_id.as_deref(),
                Some(mine[0].hash.as_str()),
                "{name}: status names it"
            );
            let value = self.secret_data(name).await.unwrap()["apiKey"].clone();
            // The simulator derives a key's hash from its value: the Secret holds the live key.
            assert_eq!(
                keysmith_simulators::sha256_hex(&value),
                mine[0].hash,
                "{name}: Secret holds it"
            );
        }
        assert_eq!(live.len(), names.len(), "no orphaned provider key");
        assert_eq!(self.sim.early_retries(), 0, "no request jumped a Retry-After");
    }

    /// Applies a ModelHub pointing at the simulator; `extra` is merged into its spec.
    pub async fn apply_hub(&self, name: &str, extra: Value) {
        let mut spec = json!({
            "provider": "openrouter",
            "endpoint": self.running.base_url,
            "inferenceEndpoint": "https://inference.example.test/v1",
            "credentialsRef": {"name": "openrouter-management", "key": "key"},
        });
        merge(&mut spec, extra);
        self.apply_hub_spec(name, spec).await;
    }
}

/// A test namespace and (optionally) the operator running in this process, watching only it.
pub struct Scene {
    pub ns: TestNamespace,
    operator: Option<JoinHandle<()>>,
}

impl Scene {
    /// A fresh namespace, without the operator.
    pub async fn new(prefix: &str) -> Self {
        Self::in_namespace(TestNamespace::new(prefix).await)
    }

    /// The same in a namespace made elsewhere (another control plane, say).
    pub fn in_namespace(ns: TestNamespace) -> Self {
        Self { ns, operator: None }
    }

    /// Stops the in-process operator, if it runs.
    pub fn stop_operator(&mut self) {
        if let Some(task) = self.operator.take() {
            task.abort();
        }
    }

    /// Starts the controllers in this process, watching only this namespace, on real time.
    pub fn start_operator(&mut self) {
        self.start_operator_with_clock(Clock::new());
    }

    /// The same, deciding with `clock` (share it with the simulator to cross windows and expiries).
    pub fn start_operator_with_clock(&mut self, clock: Clock) {
        let settings = self.settings();
        let scope = Scope::Namespaces(vec![self.ns.name.clone()]);
        self.start_operator_with(settings, scope, clock);
    }

    /// The settings tests run the operator with. The test namespace stands for the operator's own,
    /// and only the ClusterModelHubs labelled for this test are this operator's: tests run side by
    /// side on one control plane.
    pub fn settings(&self) -> Settings {
        Settings {
            default_usage_interval: Duration::from_secs(2),
            error_backoff_base: Duration::from_millis(500),
            cluster_resource_namespace: self.ns.name.clone(),
            cluster_hub_selector: Some(format!("{TEST_LABEL}={}", self.ns.name)),
            gateway: None,
        }
    }

    /// Starts the controllers with `settings`, watching `scope`.
    pub fn start_operator_with(&mut self, settings: Settings, scope: Scope, clock: Clock) {
        let metrics = Arc::new(keysmith::metrics::Metrics::default());
        // The clients take "now" from the same clock, so the report windows they ask the
        // simulators for are the ones the simulators (and the controller) are in.
        let ctx = Context::with_clock(
            self.ns.client.clone(),
            Arc::new(DefaultProviderFactory::with_clock(clock.clone())),
            settings,
            metrics,
            clock,
        );
        let run = controller::run(ctx, scope, 4, std::future::pending(), || ());
        self.operator = Some(tokio::spawn(run));
    }

    /// Server-side applies `body` as the tests' field manager.
    pub async fn apply<K>(&self, name: &str, body: &Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let params = PatchParams::apply("keysmith-tests").force();
        self.ns
            .api::<K>()
            .patch(name, &params, &Patch::Apply(body))
            .await
            .unwrap();
    }

    /// Server-side applies a Secret with string data.
    pub async fn apply_secret(&self, name: &str, string_data: Value) {
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": string_data});
        self.apply::<Secret>(name, &body).await;
    }

    /// Applies a ModelHub with the whole `spec`.
    pub async fn apply_hub_spec(&self, name: &str, spec: Value) {
        let body = json!({"apiVersion": "keysmith.dev/v1alpha1", "kind": "ModelHub", "metadata": {"name": name}, "spec": spec});
        self.apply::<ModelHub>(name, &body).await;
    }

    /// Applies an ApiKey; `spec` is the whole spec.
    pub async fn apply_key(&self, name: &str, spec: Value) {
        let body = json!({"apiVersion": "keysmith.dev/v1alpha1", "kind": "ApiKey", "metadata": {"name": name}, "spec": spec});
        self.apply::<ApiKey>(name, &body).await;
    }

    /// Waits until the ApiKey satisfies `check`, returning it.
    pub async fn wait_key(&self, name: &str, what: &str, check: impl Fn(&ApiKey) -> bool) -> ApiKey {
        self.wait_for(name, what, check).await
    }

    /// Waits until the ModelHub satisfies `check`.
    pub async fn wait_hub(&self, name: &str, what: &str, check: impl Fn(&ModelHub) -> bool) -> ModelHub {
        self.wait_for(name, what, check).await
    }

    pub async fn wait_for<K>(&self, name: &str, what: &str, check: impl Fn(&K) -> bool) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api = self.ns.api::<K>();
        eventually(what, Duration::from_secs(60), || {
            let api = api.clone();
            let found = async move { api.get_opt(name).await.unwrap() };
            let check = &check;
            async move { found.await.filter(|k| check(k)) }
        })
        .await
    }

    /// The operator binary as a child process, watching only this namespace; callers add flags,
    /// environment (a failpoint, say) and output handling before spawning it.
    pub fn operator_command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keysmith"));
        cmd.args(["run", "--namespace", &self.ns.name])
            .env("KUBECONFIG", &self.ns.kubeconfig)
            // An environment variable, not a flag, so that callers can choose a port.
            .env("KEYSMITH_HEALTH_ADDR", "127.0.0.1:0")
            .env("KEYSMITH_USAGE_INTERVAL", "2s")
            .env("KEYSMITH_CLUSTER_RESOURCE_NAMESPACE", &self.ns.name)
            .env(
                "KEYSMITH_CLUSTER_HUB_SELECTOR",
                format!("{TEST_LABEL}={}", self.ns.name),
            )
            .env("RUST_LOG", "info")
            .kill_on_drop(true);
        // Appended so that a restarted operator continues the same file; a failing wait prints it.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.operator_log());
        match log.and_then(|out| Ok((out.try_clone()?, out))) {
            Ok((out, err)) => cmd.stdout(out).stderr(err),
            Err(_) => cmd
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        };
        cmd
    }

    /// Where an operator started by [`Scene::operator_command`] writes its log.
    pub fn operator_log(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("keysmith-operator-{}.log", self.ns.name))
    }

    /// Prints what a failed wait needs to be understood: each named ApiKey that is not Ready with
    /// its conditions, and the end of the operator's log.
    pub async fn report_not_ready(&self, names: &[String]) {
        let api = self.ns.api::<ApiKey>();
        for name in names {
            match api.get_opt(name).await {
                Ok(Some(key)) if is_ready(&key) => {}
                Ok(Some(key)) => eprintln!(
                    "not Ready: {name} rv={:?} finalizers={:?} annotations={:?} status={}",
                    key.resource_version(),
                    key.finalizers(),
                    key.annotations(),
                    serde_json::to_string(&key.status).unwrap_or_default()
                ),
                Ok(None) => eprintln!("not Ready: {name} does not exist"),
                Err(e) => eprintln!("not Ready: {name} cannot be read: {e}"),
            }
        }
        if let Ok(log) = std::fs::read_to_string(self.operator_log()) {
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "--- last {} lines of the operator log ---\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
    }

    /// The Secret's data as strings.
    pub async fn secret_data(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let secret = self.ns.api::<Secret>().get_opt(name).await.unwrap()?;
        Some(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
                .collect(),
        )
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        self.stop_operator();
    }
}

/// Waits for an operator process that a failpoint must abort, and checks that it did.
pub async fn expect_crash(child: &mut tokio::process::Child) {
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the operator reaches its failpoint within 60 s")
        .unwrap();
    assert!(!exit.success(), "the failpoint aborts the process");
}

/// Status and reason of condition `type_`, e.g. `("True", "KeyReady")`.
pub fn condition(
    conds: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    type_: &str,
) -> Option<(String, String)> {
    conds
        .and_then(|c| conditions::get(c, type_))
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// The Ready condition of an ApiKey.
pub fn key_ready(key: &ApiKey) -> Option<(String, String)> {
    condition(key.status.as_ref().map(|s| &s.conditions), conditions::READY)
}

/// Whether the ApiKey is Ready.
pub fn is_ready(key: &ApiKey) -> bool {
    key_ready(key).is_some_and(|(s, _)| s == "True")
}

/// The Ready condition of a ModelHub.
pub fn hub_ready(hub: &ModelHub) -> Option<(String, String)> {
    condition(hub.status.as_ref().map(|s| &s.conditions), conditions::READY)
}

/// Merges the top-level fields of `extra` into `base`.
pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        for (k, v) in extra {
            base.insert(k, v);
        }
    }
}
