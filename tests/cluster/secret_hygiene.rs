//! Secret hygiene under the worst conditions: the operator runs at trace level while the simulator
//! echoes the management key and freshly issued keys in its error bodies. No key string may appear in
//! the operator's output, Events, status, annotations, labels or `/metrics`; only Secret data holds keys.

use std::process::Stdio;

use crate::support::operator::{Env, MANAGEMENT_KEY, is_ready};
use k8s_openapi::api::core::v1::{Event, Secret};
use keysmith_api::{ApiKey, ModelHub};
use keysmith_simulators::faults::Fault;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

/// An OpenRouter-shaped key anywhere in `text` (`sk-or-v1-` and 64 hex digits), including ones the
/// test never saw, such as a key created by an echoed create and revoked afterwards.
fn key_shaped(text: &str) -> Option<String> {
    text.match_indices("sk-or-v1-").find_map(|(at, prefix)| {
        let tail: String = text[at + prefix.len()..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        (tail.len() == 64).then(|| format!("{prefix}{tail}"))
    })
}

/// Base64 (standard alphabet) of `value`, the form Secret data takes in API bodies.
fn base64(value: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in value.as_bytes().chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
        out.extend(std::iter::repeat_n('=', 3 - chunk.len()));
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn no_key_reaches_logs_events_status_metadata_or_metrics() {
    let env = Env::new("hygiene").await;
    let imported = format!("sk-or-v1-{}", "5a".repeat(32));
    env.sim.add_ordinary_key(&imported);
    env.apply_hub("or", json!({})).await;
    env.apply_secret("existing", json!({"value": imported})).await;

    // Every kind of call fails once with an echo: a create that commits, reads, the import check.
    env.sim.inject(Fault::echo_secrets(2).on_path("/keys"));
    env.sim.inject(Fault::echo_secrets(1).on_path("/key"));
    env.sim.inject(Fault::echo_secrets(1).on_path("/credits"));

    let dir = tempfile_dir();
    let log_path = dir.join("operator.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let mut cmd = env.operator_command();
    cmd.env("KEYSMITH_HEALTH_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    let mut operator = cmd.spawn().unwrap();

    for name in ["a", "b"] {
        env.apply_key(name, json!({"hubRef": {"name": "or"}})).await;
    }
    env.apply_key(
        "imp",
        json!({"hubRef": {"name": "or"}, "import": {"secretRef": {"name": "existing", "key": "value"}}}),
    )
    .await;
    for name in ["a", "b", "imp"] {
        env.wait_key(name, "Ready despite the echoing upstream", is_ready)
            .await;
    }
    let before_rotation = env.secret_data("a").await.unwrap()["apiKey"].clone();
    let patch = json!({"metadata": {"annotations": {"keysmith.dev/rotate": "hygiene"}}});
    env.ns
        .api::<ApiKey>()
        .patch("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    env.wait_key("a", "rotated", |k| {
        is_ready(k)
            && k.status
                .as_ref()
                .and_then(|s| s.rotation.as_ref())
                .is_some_and(|r| r.last_requested_token.as_deref() == Some("hygiene"))
    })
    .await;
    assert!(
        env.sim.requests().iter().any(|r| r.status == 500),
        "the echoing faults fired"
    );

    let (status, metrics) = crate::support::http_get(port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("keysmith_"), "metrics were served");
    operator.kill().await.unwrap();
    let output = std::fs::read_to_string(&log_path).unwrap();
    assert!(output.lines().count() > 100, "trace output was captured");

    // Every value the test knows, plus any key-shaped string at all.
    let mut known = vec![MANAGEMENT_KEY.to_owned(), imported.clone(), before_rotation];
    for name in ["a", "b", "imp"] {
        known.push(env.secret_data(name).await.unwrap()["apiKey"].clone());
    }
    let keys =
        serde_json::to_string(&env.ns.api::<ApiKey>().list(&ListParams::default()).await.unwrap()).unwrap();
    let hubs = serde_json::to_string(
        &env.ns
            .api::<ModelHub>()
            .list(&ListParams::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let events =
        serde_json::to_string(&env.ns.api::<Event>().list(&ListParams::default()).await.unwrap()).unwrap();
    let secret_metadata: Vec<_> = env
        .ns
        .api::<Secret>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.metadata)
        .collect();
    let secret_metadata = serde_json::to_string(&secret_metadata).unwrap();
    for (place, text) in [
        ("operator output", &output),
        ("ApiKeys", &keys),
        ("ModelHubs", &hubs),
        ("Events", &events),
        ("Secret metadata", &secret_metadata),
        ("/metrics", &metrics),
    ] {
        for value in &known {
            assert!(!text.contains(value.as_str()), "a key value appears in {place}");
            assert!(
                !text.contains(&base64(value)),
                "a base64 key value appears in {place}"
            );
        }
        assert_eq!(key_shaped(text), None, "a key-shaped string appears in {place}");
    }
    assert!(!output.contains("panicked"), "the operator did not panic");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("keysmith-hygiene-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_detectors_find_what_they_look_for() {
    let key = format!("sk-or-v1-{}", "ab".repeat(32));
    assert_eq!(key_shaped(&format!("x \"{key}\" y")), Some(key.clone()));
    assert_eq!(key_shaped("sk-or-v1-abc sk-or-v1-management-test"), None);
    assert_eq!(base64("any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
    assert_eq!(base64("any carnal pleasu"), "YW55IGNhcm5hbCBwbGVhc3U=");
    assert_eq!(base64("any carnal pleasur"), "YW55IGNhcm5hbCBwbGVhc3Vy");
}
