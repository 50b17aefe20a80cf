//! The real keysmith-gateway process against the real API server: it reads its routes from labelled
//! Secrets in its namespace, follows their changes (a disabled route, a deleted one), enforces a cap
//! and forwards with the provider key the app never sees, to a fake upstream.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, http::HeaderMap, routing::post};
use k8s_openapi::api::core::v1::Secret;
use keysmith_api::gateway_route::{ROUTE_DATA_KEY, ROUTE_LABEL, UPSTREAM_KEY_DATA_KEY};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use sha2::Digest;

use crate::support::{TestNamespace, eventually, http_get, kubeconfig};

const ISSUED: &str = "ksg-test-issued-key-0001";
const UPSTREAM_KEY: &str = "sk-upstream-provider-key";

/// A fake OpenAI-style upstream: answers every chat completion with fixed usage and remembers the
/// Authorization headers it was sent.
pub(crate) async fn upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap, Json(_body): Json<Value>| {
            let log = log.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                log.lock().unwrap().push(auth);
                Json(json!({
                    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// The real keysmith-gateway process, watching the route Secrets of one namespace, its output in a
/// file so that tests can check no key reached it.
pub(crate) struct GatewayProcess {
    child: tokio::process::Child,
    log: std::path::PathBuf,
    /// Port of the proxy.
    pub listen: u16,
    /// Port of `/metrics`, `/usage` and the probes.
    pub admin: u16,
}

impl GatewayProcess {
    /// Starts the gateway on free loopback ports and waits until it has listed its routes.
    pub async fn start(namespace: &str) -> Self {
        let (listen, admin) = (free_port(), free_port());
        let log = std::env::temp_dir().join(format!("keysmith-gateway-{namespace}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(gateway_binary())
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--namespace", namespace])
            .args(["--metrics-addr", &format!("127.0.0.1:{admin}")])
            .env("KUBECONFIG", kubeconfig())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        eventually("the gateway ready", Duration::from_secs(30), || async {
            (http_get(admin, "/readyz").await.map(|(s, _)| s) == Some(200)).then_some(())
        })
        .await;
        Self {
            child,
            log,
            listen,
            admin,
        }
    }

    /// Stops the gateway and returns what it logged.
    pub fn stop(mut self) -> String {
        self.child.start_kill().unwrap();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The gateway binary, built beside the operator's by `cargo test --workspace --all-targets`.
fn gateway_binary() -> std::path::PathBuf {
    let operator = std::path::Path::new(env!("CARGO_BIN_EXE_keysmith"));
    let path = operator.with_file_name("keysmith-gateway");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p keysmith-gateway` (make test does)",
        path.display()
    );
    path
}

fn route(ns: &str, upstream: SocketAddr, state: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "route-chat", "labels": {ROUTE_LABEL: "true"}},
        "stringData": {
            ROUTE_DATA_KEY: json!({
                "version": 1,
                "apiKey": {"namespace": ns, "name": "chat"},
                "api": "openai",
                "upstream": format!("http://{upstream}/v1"),
                "issuedKeySha256": hex::encode(sha2::Sha256::digest(ISSUED.as_bytes())),
                "state": state,
                "limits": {"requestLimits": {"maxInputTokens": 200}},
                "onLimitExceeded": "Reject",
            }).to_string(),
            UPSTREAM_KEY_DATA_KEY: UPSTREAM_KEY,
        }
    })
}

pub(crate) async fn chat(client: &reqwest::Client, port: u16, key: &str, prompt: &str) -> (u16, Value) {
    let response = client
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_gateway_process_follows_route_secrets_and_enforces_a_cap() {
    let ns = TestNamespace::new("gateway").await;
    let (upstream, seen) = upstream().await;
    let secrets = ns.api::<Secret>();
    let apply = |body: Value| {
        let secrets = secrets.clone();
        async move {
            secrets
                .patch(
                    "route-chat",
                    &PatchParams::apply("test").force(),
                    &Patch::Apply(body),
                )
                .await
                .unwrap();
        }
    };
    apply(route(&ns.name, upstream, "Active")).await;

    let gateway = GatewayProcess::start(&ns.name).await;
    let (listen, metrics) = (gateway.listen, gateway.admin);
    let client = reqwest::Client::new();

    // A request within the cap is forwarded with the provider key, which the app never holds.
    let (status, body) = chat(&client, listen, ISSUED, "hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [format!("Bearer {UPSTREAM_KEY}")]
    );
    // Over the input cap under Reject: 400 naming the cap, and the upstream never sees it.
    let (status, body) = chat(&client, listen, ISSUED, &"word ".repeat(400)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "max_input_tokens", "{body}");
    assert_eq!(body["error"]["type"], "keysmith_limit", "{body}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    // An unknown key: 401.
    assert_eq!(chat(&client, listen, "ksg-someone-else", "hello").await.0, 401);

    // The route turns Disabled (keysmith disabled the ApiKey): refused within seconds.
    apply(route(&ns.name, upstream, "Disabled")).await;
    eventually("the disabled route refused", Duration::from_secs(20), || async {
        (chat(&client, listen, ISSUED, "hello").await.0 == 403).then_some(())
    })
    .await;
    // Usage reached the gateway's report: every request the upstream answered for team/chat (one, plus
    // any the wait above sent before the Disabled route arrived).
    let forwarded = seen.lock().unwrap().len();
    let (_, usage) = http_get(metrics, "/usage").await.unwrap();
    let usage: Value = serde_json::from_str(&usage).unwrap();
    let entry = usage["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "chat")
        .cloned()
        .unwrap_or_else(|| panic!("no usage for chat: {usage}"));
    assert!(forwarded >= 1);
    assert_eq!(entry["requestsToday"], forwarded, "{usage}");

    // The route Secret is deleted: the key is unknown.
    secrets
        .delete("route-chat", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deleted route refused", Duration::from_secs(20), || async {
        (chat(&client, listen, ISSUED, "hello").await.0 == 401).then_some(())
    })
    .await;
    let logged = gateway.stop();
    assert!(
        !logged.contains(UPSTREAM_KEY) && !logged.contains(ISSUED),
        "a key reached the log"
    );
}
