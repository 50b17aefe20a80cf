//! Proves the test harness against the real control plane: the operator connects and serves its
//! probes, Secrets round-trip, and kube-controller-manager really collects garbage and namespaces.

use std::{collections::BTreeMap, net::TcpListener, process::Stdio, time::Duration};

use crate::support::{TestNamespace, eventually};
use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Resource, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use tokio::io::{AsyncBufReadExt, BufReader};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Minimal HTTP/1.0 GET so the probe test needs no HTTP client crate: returns (status, body).

#[tokio::test]
async fn operator_connects_reports_the_server_version_and_stops_on_sigterm() {
    let kubeconfig = crate::support::kubeconfig();
    let expected = crate::support::client()
        .await
        .apiserver_version()
        .await
        .unwrap()
        .git_version;
    assert!(
        expected.starts_with("v1.35."),
        "control plane reports {expected}, expected v1.35.x"
    );

    let port = free_port();
    let mut operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_keysmith"))
        .args([
            "run",
            "--log-format",
            "json",
            "--health-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    eventually("/readyz to answer ok", Duration::from_secs(30), || async {
        (crate::support::http_get(port, "/readyz").await == Some((200, "ok".into()))).then_some(())
    })
    .await;
    assert_eq!(
        crate::support::http_get(port, "/healthz").await,
        Some((200, "ok".into()))
    );
    let (status, metrics) = crate::support::http_get(port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    // OpenMetrics text; series appear once there is something to count (see the demo's check).
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");

    let pid = operator.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), operator.wait())
        .await
        .expect("operator exits within 15 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "operator exited with {status}");

    let mut lines = BufReader::new(operator.stdout.take().unwrap()).lines();
    let mut logs = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        logs.push(serde_json::from_str::<serde_json::Value>(&line).expect("every log line is JSON"));
    }
    let connected = logs
        .iter()
        .find(|l| l["message"] == "connected to Kubernetes")
        .unwrap_or_else(|| panic!("no 'connected to Kubernetes' line in {logs:#?}"));
    assert_eq!(connected["server_version"], expected.as_str());
    assert!(
        logs.iter().any(|l| l["message"] == "received SIGTERM"),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn operator_fails_clearly_without_a_cluster() {
    let dir = std::env::temp_dir().join(format!("keysmith-nokube-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing-kubeconfig");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keysmith"))
        .args(["run", "--health-addr", &format!("127.0.0.1:{}", free_port())])
        .env("KUBECONFIG", &missing)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", &dir)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cannot build a Kubernetes client"),
        "unexpected output: {text}"
    );
}

#[tokio::test]
async fn secret_round_trips_through_server_side_apply() {
    let ns = TestNamespace::new("secret").await;
    let secrets = ns.api::<Secret>();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("round-trip".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "apiKey".to_owned(),
            ByteString(b"not-a-real-key \x00\xff".to_vec()),
        )])),
        ..Default::default()
    };
    let params = PatchParams::apply("keysmith-tests").force();
    secrets
        .patch("round-trip", &params, &Patch::Apply(&secret))
        .await
        .unwrap();

    let read = secrets.get("round-trip").await.unwrap();
    assert_eq!(read.type_.as_deref(), Some("Opaque"));
    assert_eq!(read.data, secret.data);
    // Applying the same object again changes nothing.
    let again = secrets
        .patch("round-trip", &params, &Patch::Apply(&secret))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), read.resource_version());
}

#[tokio::test]
async fn dependent_is_garbage_collected_after_its_owner_is_deleted() {
    let ns = TestNamespace::new("gc").await;
    let owners = ns.api::<ConfigMap>();
    let owner = owners
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let owner_ref = OwnerReference {
        api_version: ConfigMap::api_version(&()).into_owned(),
        kind: ConfigMap::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let secrets = ns.api::<Secret>();
    let dependent = Secret {
        metadata: ObjectMeta {
            name: Some("dependent".into()),
            owner_references: Some(vec![owner_ref]),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &dependent).await.unwrap();

    owners.delete("owner", &DeleteParams::background()).await.unwrap();
    eventually(
        "the dependent Secret to be garbage-collected",
        Duration::from_secs(60),
        || {
            let secrets = secrets.clone();
            async move {
                secrets
                    .get_opt("dependent")
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn namespace_controller_removes_deleted_namespaces() {
    let client = crate::support::client().await;
    let ns = TestNamespace::new("nsdel").await;
    ns.api::<ConfigMap>()
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("content".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    crate::support::delete_namespace_and_wait(&client, &ns.name).await;
}
