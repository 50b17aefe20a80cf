//! The fault suite: the operator is killed at random moments, creates are committed and then cut off,
//! the provider answers with 429 storms, 500 bursts and hangs, and a permanently refused key must not
//! hammer the provider. After each, exactly one live provider key per ApiKey, held by its Secret, no
//! orphans, every ApiKey Ready, and no request sent before a `Retry-After` expired.

use std::time::Duration;

use crate::support::operator::{Env, key_ready};
use keysmith_simulators::{faults::Fault, request_log::fingerprint};
use serde_json::json;

/// A hub for many keys: usage read every 10 minutes and a management-API pace that the simulator
/// can take, so that convergence is not throttled by keysmith's own usage polls.
fn bulk_hub() -> serde_json::Value {
    json!({"usageRefreshInterval": "10m", "apiRateLimit": {"requestsPerSecond": 100.0, "burst": 20}})
}

fn creates(env: &Env) -> usize {
    env.sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/keys"))
        .count()
}

#[tokio::test]
async fn kill_nine_at_random_moments_while_200_keys_are_created_leaks_nothing() {
    let env = Env::new("kill9").await;
    env.apply_hub("or", bulk_hub()).await;
    let names = env.apply_keys("k", 200, "or").await;
    let mut kills = Vec::new();
    for _ in 0..10 {
        let mut operator = env.operator_command().spawn().unwrap();
        let after = Duration::from_millis(300 + rand::random::<u64>() % 1700);
        tokio::time::sleep(after).await;
        operator.start_kill().unwrap();
        operator.wait().await.unwrap();
        kills.push((after.as_millis(), creates(&env)));
    }
    let _operator = env.operator_command().spawn().unwrap();
    env.wait_all_ready(&names, Duration::from_secs(300)).await;
    env.assert_converged(&names).await;
    let made = env.sim.keys().len();
    println!(
        "kill -9 rounds (ms after start, creates so far): {kills:?}; keys made {made}, revoked {}",
        made - names.len()
    );
}

#[tokio::test]
async fn creates_committed_then_cut_off_are_repaired_without_duplicates() {
    let env = Env::with_operator("drops").await;
    env.apply_hub("or", bulk_hub()).await;
    // One create in twenty (5%) is committed and then loses its connection.
    let sim = env.sim.clone();
    let injector = tokio::spawn(async move {
        let mut armed = 0;
        while armed < 5 {
            let seen = sim
                .requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path.ends_with("/keys"))
                .count();
            if seen >= armed * 20 {
                sim.inject(Fault::drop_after_create(1));
                armed += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let names = env.apply_keys("k", 100, "or").await;
    env.wait_all_ready(&names, Duration::from_secs(240)).await;
    injector.await.unwrap();
    env.assert_converged(&names).await;
    let dropped = env.sim.requests().iter().filter(|r| r.dropped).count();
    assert_eq!(dropped, 5, "five creates were cut off");
    println!(
        "creates {}, cut off {dropped}, keys made {}",
        creates(&env),
        env.sim.keys().len()
    );
}

#[tokio::test]
async fn a_429_storm_then_500_bursts_then_hangs_are_ridden_out() {
    let env = Env::with_operator("storm").await;
    env.apply_hub("or", bulk_hub()).await;
    env.sim.inject(Fault::rate_limit(15, 1));
    env.sim.inject(Fault::server_error(20));
    // Past the client's 15 s timeout.
    env.sim.inject(Fault::latency(2, 16_000));
    let names = env.apply_keys("k", 20, "or").await;
    env.wait_all_ready(&names, Duration::from_secs(240)).await;
    env.assert_converged(&names).await;
    let log = env.sim.requests();
    let count = |status: u16| log.iter().filter(|r| r.status == status).count();
    assert_eq!((count(429), count(500)), (15, 20), "every fault fired");
    assert!(env.sim.pending_faults().is_empty(), "the hangs fired too");
    println!("requests {}, 429s {}, 500s {}", log.len(), count(429), count(500));
}

#[tokio::test]
async fn a_permanently_refused_key_backs_off_instead_of_hammering_the_provider() {
    let env = Env::new("refused").await;
    let wrong = "sk-or-v1-revoked-management-key-000000000000000000000000000000000000";
    env.apply_secret("revoked", json!({"key": wrong})).await;
    env.apply_hub("or", json!({"credentialsRef": {"name": "revoked", "key": "key"}}))
        .await;
    let mut cmd = env.operator_command();
    // The real polling interval: back-off may grow up to it.
    cmd.env("KEYSMITH_USAGE_INTERVAL", "1h");
    let _operator = cmd.spawn().unwrap();
    env.apply_key("k", json!({"hubRef": {"name": "or"}})).await;
    env.wait_key("k", "Unauthorized", |k| {
        key_ready(k).is_some_and(|(s, r)| s == "False" && r == "Unauthorized")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(45)).await;
    let bad = fingerprint(wrong);
    let calls: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.credential.as_deref() == Some(bad.as_str()))
        .map(|r| r.at)
        .collect();
    let gaps: Vec<i64> = calls.windows(2).map(|w| (w[1] - w[0]).get_seconds()).collect();
    println!("{} refused calls in about 45 s; gaps (s): {gaps:?}", calls.len());
    // Hub verification and the key each back off, doubling from 5 s toward the 1 h interval: at most
    // about ten calls each per hour; in the first 45 s no more than a handful.
    assert!(calls.len() <= 10, "{} calls in 45 s", calls.len());
    let late = calls
        .iter()
        .filter(|t| (**t - calls[0]).get_seconds() >= 20)
        .count();
    let early = calls.len() - late;
    assert!(
        late < early,
        "calls thin out: {early} in the first 20 s, {late} after"
    );
}
