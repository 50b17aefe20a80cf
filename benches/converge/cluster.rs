//! The control plane the benchmark runs on, and the objects each phase starts from: a namespace, the
//! hub's credentials Secret, a ModelHub pointing at a fresh simulator, and N ApiKeys.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use keysmith_api::{ApiKey, ModelHub};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::{Value, json};

use crate::Result;

/// The management key the simulators accept.
pub const MANAGEMENT_KEY: &str = "sk-or-v1-management-bench-key-000000000000000000000000000000000";

/// Name of the ModelHub (and prefix of the credentials Secret) in every phase.
pub const HUB: &str = "openrouter";

/// Field manager of the benchmark's own writes.
const MANAGER: &str = "keysmith-bench";

/// The local control plane: started (or found running) by `hack/cluster.sh up`, with the CRDs applied.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub client: Client,
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &Path, args: &[&str], kubeconfig: Option<&Path>) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {args:?} failed ({}):\n{}{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Cluster {
    /// Starts the control plane if needed and applies this build's CRDs, as the tests do.
    pub async fn up() -> Result<Self> {
        let script = repo_root().join("hack/cluster.sh");
        run(&script, &["up"], None)?;
        let kubeconfig = PathBuf::from(run(&script, &["kubeconfig"], None)?);
        let kubectl = repo_root().join("hack/kubectl");
        let crds = repo_root().join("crds/keysmith.dev.yaml");
        let crds = crds.to_string_lossy();
        let apply = ["apply", "--server-side", "--force-conflicts", "-f", crds.as_ref()];
        run(&kubectl, &apply, Some(&kubeconfig))?;
        let wait = [
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/apikeys.keysmith.dev",
            "crd/modelhubs.keysmith.dev",
        ];
        run(&kubectl, &wait, Some(&kubeconfig))?;
        let config = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        Ok(Self {
            client: Client::try_from(config)?,
            kubeconfig,
        })
    }

    /// Creates a namespace named `ks-bench-<phase>-<round>-<random>`.
    pub async fn namespace(&self, phase: &str, round: usize) -> Result<String> {
        let name = format!(
            "ks-bench-{phase}-{round}-{:06x}",
            rand::random::<u32>() & 0xff_ffff
        );
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"keysmith.dev/bench": "true"}}
        }))?;
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(name)
    }

    /// The credentials Secret and a ModelHub for the simulator at `endpoint`, paced at `rps`.
    pub async fn hub(&self, ns: &str, endpoint: &str, rps: f64) -> Result<ModelHub> {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{HUB}-management")},
            "stringData": {"key": MANAGEMENT_KEY},
        });
        let params = PatchParams::apply(MANAGER).force();
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .patch(&format!("{HUB}-management"), &params, &Patch::Apply(&secret))
            .await?;
        let hub = json!({
            "apiVersion": "keysmith.dev/v1alpha1", "kind": "ModelHub",
            "metadata": {"name": HUB},
            "spec": {
                "provider": "openrouter",
                "endpoint": endpoint,
                "inferenceEndpoint": "https://inference.example.test/v1",
                "credentialsRef": {"name": format!("{HUB}-management"), "key": "key"},
                "apiRateLimit": {"requestsPerSecond": rps, "burst": rps.ceil().max(1.0) as u32},
            },
        });
        Ok(Api::<ModelHub>::namespaced(self.client.clone(), ns)
            .patch(HUB, &params, &Patch::Apply(&hub))
            .await?)
    }

    /// Server-side applies `n` ApiKeys, `concurrency` at a time, handing each created object to
    /// `created`. Returns the number of requests sent (retries included), so that they can be told
    /// apart from the writes being measured.
    pub async fn create_keys(
        &self,
        ns: &str,
        n: usize,
        concurrency: usize,
        created: impl Fn(ApiKey),
    ) -> Result<u64> {
        let api = Api::<ApiKey>::namespaced(self.client.clone(), ns);
        let sent = AtomicU64::new(0);
        let params = PatchParams::apply(MANAGER).force();
        let results = futures::stream::iter(0..n)
            .map(|i| {
                let (api, params, sent) = (&api, &params, &sent);
                async move {
                    let name = key_name(i);
                    let body = key_body(&name);
                    let mut attempt = 0;
                    loop {
                        sent.fetch_add(1, Ordering::Relaxed);
                        match api.patch(&name, params, &Patch::Apply(&body)).await {
                            Ok(key) => return Ok::<_, kube::Error>(key),
                            Err(e) if attempt < 3 => {
                                eprintln!("retrying the create of {name}: {e}");
                                attempt += 1;
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            })
            .buffer_unordered(concurrency);
        futures::pin_mut!(results);
        while let Some(key) = results.try_next().await? {
            created(key);
        }
        Ok(sent.load(Ordering::Relaxed))
    }

    /// Removes the finalizers keysmith put on every ApiKey, hub and credential Secret, so that the
    /// namespace can go without the operator revoking N keys first. Returns how many ApiKeys were patched.
    pub async fn strip_finalizers(&self, ns: &str) -> Result<usize> {
        let unfinalize: Value = json!({"metadata": {"finalizers": null}});
        let hubs = Api::<ModelHub>::namespaced(self.client.clone(), ns);
        for hub in hubs.list_metadata(&ListParams::default()).await?.items {
            if let Some(name) = hub.metadata.name {
                hubs.patch(&name, &PatchParams::default(), &Patch::Merge(&unfinalize))
                    .await?;
            }
        }
        let secrets = Api::<Secret>::namespaced(self.client.clone(), ns);
        let credentials = ListParams::default().labels("keysmith.dev/credential=true");
        for secret in secrets.list_metadata(&credentials).await?.items {
            if let Some(name) = secret.metadata.name {
                secrets
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&unfinalize))
                    .await?;
            }
        }
        let api = Api::<ApiKey>::namespaced(self.client.clone(), ns);
        let names: Vec<String> = api
            .list_metadata(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|k| k.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty()))
            .filter_map(|k| k.metadata.name)
            .collect();
        let patch: Value = json!({"metadata": {"finalizers": null}});
        let done = futures::stream::iter(&names)
            .map(|name| {
                let (api, patch) = (&api, &patch);
                async move {
                    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                        .await
                }
            })
            .buffer_unordered(32)
            .filter(|r| futures::future::ready(r.is_ok()))
            .count()
            .await;
        Ok(done)
    }

    /// Deletes the namespace and waits until the namespace controller has emptied and removed it,
    /// so that its deletes do not land in the next phase's counts. Gives up after `timeout`.
    pub async fn delete_namespace(&self, ns: &str, timeout: Duration) -> Result<Duration> {
        let api = Api::<Namespace>::all(self.client.clone());
        let start = tokio::time::Instant::now();
        api.delete(ns, &DeleteParams::background()).await?;
        while api.get_opt(ns).await?.is_some() {
            if start.elapsed() > timeout {
                return Err(format!("namespace {ns} still present after {timeout:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(start.elapsed())
    }
}

fn key_name(i: usize) -> String {
    format!("key-{i:05}")
}

/// A typical ApiKey: a monthly budget, the default Secret layout.
fn key_body(name: &str) -> Value {
    json!({
        "apiVersion": "keysmith.dev/v1alpha1", "kind": "ApiKey",
        "metadata": {"name": name},
        "spec": {"hubRef": {"name": HUB}, "budget": {"limitUsd": 25, "reset": "Monthly"}},
    })
}
