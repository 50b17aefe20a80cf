//! Test harness for integration tests: a real kube-apiserver, etcd and kube-controller-manager started
//! by `hack/cluster.sh`, and a fresh namespace per test.
//!
//! The harness never skips. If the control plane cannot be started, every test that asks for it
//! fails with the script's output, so a broken toolchain cannot pass CI by testing nothing.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub mod operator;

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::{DeleteParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};

/// Root of the repository (where `Cargo.toml` lives).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the local control plane once per test binary (a no-op when it already runs) and returns
/// the admin kubeconfig. Panics with the script's output when it cannot.
pub fn kubeconfig() -> &'static Path {
    static KUBECONFIG: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = KUBECONFIG.get_or_init(|| start_control_plane(None));
    match result {
        Ok(path) => path,
        Err(msg) => panic!("the test control plane is not available; tests fail rather than skip:\n{msg}"),
    }
}

/// A control plane of this test's own under `state` (free ports, its own etcd), for tests that stop
/// parts of it. Returns its kubeconfig; stop it with [`stop_control_plane`].
pub fn private_control_plane(state: &Path) -> PathBuf {
    start_control_plane(Some(state)).unwrap_or_else(|message| panic!("{message}"))
}

/// Stops a control plane started by [`private_control_plane`] and removes its state.
pub fn stop_control_plane(state: &Path) {
    let _ = Command::new(repo_root().join("hack/cluster.sh"))
        .arg("down")
        .env("KEYSMITH_CLUSTER_DIR", state)
        .output();
}

/// `hack/cluster.sh up` (in `state`, or the shared default), then this build's CRDs applied and
/// established.
fn start_control_plane(state: Option<&Path>) -> Result<PathBuf, String> {
    let script = |arg: &str| {
        let mut cmd = Command::new(repo_root().join("hack/cluster.sh"));
        cmd.arg(arg);
        if let Some(state) = state {
            cmd.env("KEYSMITH_CLUSTER_DIR", state);
        }
        cmd.output()
            .map_err(|e| format!("cannot run hack/cluster.sh {arg}: {e}"))
    };
    {
        let out = script("up")?;
        if !out.status.success() {
            return Err(format!(
                "hack/cluster.sh up failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let path = script("kubeconfig")?;
        let path = PathBuf::from(String::from_utf8_lossy(&path.stdout).trim());
        // The CRDs of this build, applied the way users apply them; tests then see them established.
        let crds = repo_root().join("crds/keysmith.dev.yaml");
        kubectl(
            &path,
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                &crds.to_string_lossy(),
            ],
        )?;
        kubectl(
            &path,
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/apikeys.keysmith.dev",
                "crd/modelhubs.keysmith.dev",
            ],
        )?;
        Ok(path)
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(repo_root().join("hack/kubectl"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// An admin client for the local control plane. Each test builds its own: a client's connection
/// pool belongs to the Tokio runtime that created it, and every `#[tokio::test]` has its own runtime.
pub async fn client() -> Client {
    // `KEYSMITH_TEST_LOG=keysmith=debug` shows the in-process operators' logs (with `--nocapture`).
    if let Ok(filter) = std::env::var("KEYSMITH_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    client_for(kubeconfig()).await
}

/// An admin client for the control plane of `path`.
pub async fn client_for(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is valid");
    Client::try_from(config).expect("client from kubeconfig")
}

/// A namespace created for one test and deleted (without waiting) when dropped.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
    /// The kubeconfig of the control plane the namespace lives on.
    pub kubeconfig: PathBuf,
}

impl TestNamespace {
    /// Creates `ks-<prefix>-<unique suffix>`.
    pub async fn new(prefix: &str) -> Self {
        Self::on(prefix, client().await, kubeconfig().to_owned()).await
    }

    /// The same on another control plane.
    pub async fn on(prefix: &str, client: Client, kubeconfig: PathBuf) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("ks-{prefix}-{:x}{n}", nanos ^ std::process::id()).to_lowercase();
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"keysmith.dev/test": "true"}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        Self {
            name,
            client,
            kubeconfig,
        }
    }

    /// A namespaced API in this test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await; kubectl deletes synchronously without needing this test's runtime.
        let _ = Command::new(repo_root().join("hack/kubectl"))
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .env("KUBECONFIG", &self.kubeconfig)
            .output();
        // The operator of the test is gone: ApiKeys, hubs and credential Secrets left holding keysmith's
        // finalizers would keep the namespace terminating, and the namespace controller retrying it
        // would load every later test.
        let script = format!(
            "kubectl=\"$1\"; {{ \"$kubectl\" get apikeys,modelhubs -n {ns} -o name; \
             \"$kubectl\" get secrets -n {ns} -l keysmith.dev/credential=true -o name; }} 2>/dev/null | \
             xargs -r -n 50 \"$kubectl\" patch -n {ns} --type=merge -p '{{\"metadata\":{{\"finalizers\":null}}}}'",
            ns = self.name
        );
        let _ = Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(repo_root().join("hack/kubectl"))
            .env("KUBECONFIG", &self.kubeconfig)
            .output();
    }
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes a namespace and waits until the namespace controller has removed it.
pub async fn delete_namespace_and_wait(client: &Client, name: &str) {
    let api = Api::<Namespace>::all(client.clone());
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually(
        &format!("namespace {name} to be removed"),
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move {
                api.get_opt(name)
                    .await
                    .expect("get namespace")
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
}

/// A plain HTTP/1.0 GET on loopback: status and body, or `None` while nothing answers.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((status, body))
}
