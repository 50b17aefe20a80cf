//! Two replicas with leader election: only the Lease holder reconciles, and when it is killed the
//! standby takes over within the Lease duration.

use std::time::{Duration, Instant};

use crate::support::{
    eventually,
    operator::{Env, is_ready},
};
use k8s_openapi::api::coordination::v1::Lease;
use serde_json::json;

const LEASE_SECONDS: u64 = 15;

fn replica(env: &Env, identity: &str, log: &std::path::Path) -> tokio::process::Child {
    env.operator_command()
        .args([
            "--log-format",
            "json",
            "--leader-election",
            "--lease-namespace",
            &env.ns.name,
        ])
        .args([
            "--lease-duration",
            &format!("{LEASE_SECONDS}s"),
            "--lease-renew-interval",
            "5s",
        ])
        .env("POD_NAME", identity)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

async fn holder(env: &Env) -> Option<String> {
    env.ns
        .api::<Lease>()
        .get_opt("keysmith")
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_dies() {
    let env = Env::new("leader").await;
    env.apply_hub("or", json!({})).await;
    let dir = std::env::temp_dir().join(format!("keysmith-leader-{}", env.ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let (log_a, log_b) = (dir.join("a.log"), dir.join("b.log"));

    let mut a = replica(&env, "replica-a", &log_a);
    eventually("replica-a to lead", Duration::from_secs(30), || async {
        (holder(&env).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let _b = replica(&env, "replica-b", &log_b);
    env.apply_key("first", json!({"hubRef": {"name": "or"}})).await;
    env.wait_key("first", "Ready under replica-a", is_ready).await;
    assert_eq!(holder(&env).await.as_deref(), Some("replica-a"));
    let b_log = std::fs::read_to_string(&log_b).unwrap();
    assert!(b_log.contains("standing by"), "replica-b should wait: {b_log}");
    assert!(
        !b_log.contains("starting controllers"),
        "a standby must not reconcile: {b_log}"
    );

    // kill -9: the Lease is not released, so the standby must wait for it to expire.
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let killed = Instant::now();
    eventually(
        "replica-b to take over",
        Duration::from_secs(LEASE_SECONDS * 3),
        || async { (holder(&env).await.as_deref() == Some("replica-b")).then_some(()) },
    )
    .await;
    let takeover = killed.elapsed();
    // At most the Lease duration plus one standby poll (the renew interval) and a little slack.
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + 5 + 3),
        "takeover took {takeover:?}"
    );
    println!(
        "standby took over {:.1} s after the leader was killed",
        takeover.as_secs_f64()
    );

    env.apply_key("second", json!({"hubRef": {"name": "or"}})).await;
    env.wait_key("second", "Ready under replica-b", is_ready).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_stops_at_once() {
    let env = Env::new("leader-lost").await;
    let dir = std::env::temp_dir().join(format!("keysmith-leader-{}", env.ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let mut a = replica(&env, "replica-a", &dir.join("a.log"));
    eventually("replica-a to lead", Duration::from_secs(30), || async {
        (holder(&env).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    // Another writer takes the Lease (as a standby would after a partition).
    let leases = env.ns.api::<Lease>();
    let mut lease = leases.get("keysmith").await.unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    leases
        .replace("keysmith", &Default::default(), &lease)
        .await
        .unwrap();
    // The leader notices at its next renewal (every 5 s) and exits non-zero instead of writing on.
    let exit = tokio::time::timeout(Duration::from_secs(20), a.wait())
        .await
        .expect("the leader exits after losing its Lease")
        .unwrap();
    assert!(!exit.success());
    let log = std::fs::read_to_string(dir.join("a.log")).unwrap();
    assert!(log.contains("leadership taken by another replica"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}
