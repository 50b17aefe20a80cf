//! The kube-apiserver stops in the middle of a run and comes back: the operator must ride it out
//! (not exit), then converge every ApiKey with exactly one provider key each. The test runs its own
//! control plane so that stopping the apiserver disturbs no other test.

use std::{path::Path, time::Duration};

use crate::support::{TestNamespace, operator::Env};
use serde_json::json;

/// Reads the command line of the process in `pidfile`.
fn command_line(pidfile: &Path) -> (u32, Vec<String>) {
    let pid: u32 = std::fs::read_to_string(pidfile).unwrap().trim().parse().unwrap();
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (pid, args)
}

/// Stops the private control plane however the test ends.
struct ControlPlane(std::path::PathBuf);

impl Drop for ControlPlane {
    fn drop(&mut self) {
        crate::support::stop_control_plane(&self.0);
    }
}

#[tokio::test]
async fn the_operator_rides_out_an_apiserver_restart() {
    let state = std::env::temp_dir().join(format!("keysmith-apiserver-restart-{}", std::process::id()));
    let kubeconfig = crate::support::private_control_plane(&state);
    let _control_plane = ControlPlane(state.clone());
    let client = crate::support::client_for(&kubeconfig).await;
    let ns = TestNamespace::on("restart", client, kubeconfig).await;
    let env = Env::in_namespace(ns).await;
    env.apply_hub(
        "or",
        json!({"usageRefreshInterval": "10m", "apiRateLimit": {"requestsPerSecond": 50.0, "burst": 10}}),
    )
    .await;
    let mut operator = env.operator_command().spawn().unwrap();
    let first = env.apply_keys("before", 20, "or").await;

    // Mid-run: stop the apiserver for a while, then start it again with the same flags and data.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pidfile = state.join("kube-apiserver.pid");
    let (pid, args) = command_line(&pidfile);
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        operator.try_wait().unwrap().is_none(),
        "the operator keeps running without an apiserver"
    );
    let log = std::fs::File::create(state.join("logs/kube-apiserver-restarted.log")).unwrap();
    // Reaped by `hack/cluster.sh down`, which stops it through the pid file.
    #[allow(clippy::zombie_processes)]
    let restarted = std::process::Command::new(&args[0])
        .args(&args[1..])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    std::fs::write(&pidfile, restarted.id().to_string()).unwrap();
    let client = env.ns.client.clone();
    crate::support::eventually("the apiserver serves again", Duration::from_secs(60), || {
        let client = client.clone();
        async move { client.apiserver_version().await.ok() }
    })
    .await;

    let second = env.apply_keys("after", 10, "or").await;
    let names: Vec<String> = first.into_iter().chain(second).collect();
    env.wait_all_ready(&names, Duration::from_secs(180)).await;
    env.assert_converged(&names).await;
    assert!(
        operator.try_wait().unwrap().is_none(),
        "the operator is still running"
    );
    operator.start_kill().unwrap();
}
