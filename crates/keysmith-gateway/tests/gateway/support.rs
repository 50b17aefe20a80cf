//! A gateway started in-process with static routes, in front of a fake provider that answers
//! OpenAI- and Anthropic-style, streaming or not, reporting usage (and, when asked, OpenRouter's
//! `usage.cost`).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use keysmith_api::{
    OnLimitExceeded,
    gateway_route::{ApiKeyRef, CURRENT_VERSION, GatewayApi, GatewayRoute, RouteLimits, RouteState},
};
use keysmith_core::{Clock, SecretValue};
use keysmith_gateway::{
    GatewayConfig,
    counters::MemoryCounters,
    metrics::Metrics,
    routes::{RouteSource, RouteTable, StaticRoutes},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

/// The provider key every route sends upstream.
pub const UPSTREAM_KEY: &str = "sk-provider-secret";
/// Prompt tokens the fake reports.
pub const PROMPT_TOKENS: u64 = 10;
/// Completion tokens the fake reports when the request names no maximum (else the maximum).
pub const DEFAULT_COMPLETION: u64 = 20;

/// What the fake provider saw and how it behaves.
#[derive(Default)]
pub struct Upstream {
    /// Bodies received, in order.
    pub bodies: Mutex<Vec<Value>>,
    /// Credentials received (Authorization or x-api-key).
    pub credentials: Mutex<Vec<String>>,
    /// `usage.cost` to report, in USD.
    pub cost: Mutex<Option<f64>>,
    /// When set, a stream waits for it after its first chunk.
    pub hold: Mutex<Option<Arc<Notify>>>,
}

impl Upstream {
    pub fn requests(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    pub fn last_body(&self) -> Value {
        self.bodies.lock().unwrap().last().cloned().unwrap_or(Value::Null)
    }

    fn record(&self, headers: &HeaderMap, body: &Value) {
        self.bodies.lock().unwrap().push(body.clone());
        let cred = headers
            .get("authorization")
            .or_else(|| headers.get("x-api-key"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        self.credentials.lock().unwrap().push(cred);
    }

    fn completion(body: &Value) -> u64 {
        ["max_completion_tokens", "max_tokens", "max_output_tokens"]
            .iter()
            .find_map(|f| body.get(*f).and_then(Value::as_u64))
            .unwrap_or(DEFAULT_COMPLETION)
    }
}

fn sse(events: Vec<String>, hold: Option<Arc<Notify>>) -> Response {
    let stream = futures::stream::unfold(
        (events.into_iter(), hold, 0usize),
        |(mut it, hold, i)| async move {
            let next = it.next()?;
            if i == 1
                && let Some(h) = &hold
            {
                h.notified().await;
            }
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(next)),
                (it, hold, i + 1),
            ))
        },
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn chat(State(up): State<Arc<Upstream>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    up.record(&headers, &body);
    let completion = Upstream::completion(&body);
    let mut usage = json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + completion});
    if let Some(cost) = *up.cost.lock().unwrap() {
        usage["cost"] = json!(cost);
    }
    if body["stream"] == true {
        let mut events = vec![
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n".to_owned(),
            "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n".to_owned(),
        ];
        if body.pointer("/stream_options/include_usage") == Some(&json!(true)) {
            events.push(format!("data: {}\n\n", json!({"choices": [], "usage": usage})));
        }
        events.push("data: [DONE]\n\n".to_owned());
        let hold = up.hold.lock().unwrap().clone();
        return sse(events, hold);
    }
    Json(
        json!({"id": "c1", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}], "usage": usage}),
    )
    .into_response()
}

async fn messages(State(up): State<Arc<Upstream>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    up.record(&headers, &body);
    let completion = Upstream::completion(&body);
    if body["stream"] == true {
        let events = vec![
            format!("event: message_start\ndata: {}\n\n",
                json!({"type": "message_start", "message": {"usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}})),
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n".to_owned(),
            format!("event: message_delta\ndata: {}\n\n",
                json!({"type": "message_delta", "usage": {"output_tokens": completion}})),
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned(),
        ];
        let hold = up.hold.lock().unwrap().clone();
        return sse(events, hold);
    }
    Json(json!({"id": "m1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "Hi"}],
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": completion}}))
    .into_response()
}

async fn models(State(up): State<Arc<Upstream>>, headers: HeaderMap) -> Response {
    up.record(&headers, &Value::Null);
    Json(json!({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})).into_response()
}

async fn failing() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": {"message": "boom"}})),
    )
        .into_response()
}

async fn listen(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Starts the fake provider; returns its `/v1` base URL.
pub async fn start_upstream() -> (Arc<Upstream>, String) {
    let up = Arc::new(Upstream::default());
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(models))
        .route("/v1/fail", post(failing))
        .with_state(up.clone());
    let addr = listen(router).await;
    (up, format!("http://{addr}/v1"))
}

/// The SHA-256 of an issued key, as the operator writes it.
pub fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A route for ApiKey `ns/<name>` whose issued key is `key`.
pub fn route(name: &str, key: &str, api: GatewayApi, upstream: &str, limits: RouteLimits) -> GatewayRoute {
    GatewayRoute {
        version: CURRENT_VERSION,
        api_key: ApiKeyRef {
            namespace: "ns".into(),
            name: name.into(),
        },
        api,
        upstream: upstream.into(),
        issued_key_sha256: sha256_hex(key),
        previous_issued_key_sha256: None,
        state: RouteState::Active,
        limits,
        on_limit_exceeded: OnLimitExceeded::Reject,
        pricing: vec![],
    }
}

/// A running gateway.
pub struct TestGateway {
    pub base: String,
    pub admin: String,
    pub clock: Clock,
    pub counters: Arc<MemoryCounters>,
    pub table: Arc<RouteTable>,
    pub http: reqwest::Client,
}

/// Starts a gateway serving `routes` at 12:00:05 UTC on 7 December 2026 (the test clock).
pub async fn start(routes: Vec<GatewayRoute>) -> TestGateway {
    start_with(GatewayConfig::default(), routes).await
}

/// [`start`] with a configuration of the test's choosing.
pub async fn start_with(config: GatewayConfig, routes: Vec<GatewayRoute>) -> TestGateway {
    let clock = Clock::starting_at("2026-12-07T12:00:05Z".parse().unwrap());
    let metrics = Arc::new(Metrics::new());
    let table = Arc::new(RouteTable::new(Some(metrics.clone())));
    let mut source = StaticRoutes::default();
    for (i, r) in routes.into_iter().enumerate() {
        source = source.with(&format!("route-{i}"), r, SecretValue::new(UPSTREAM_KEY));
    }
    Box::new(source).run(table.clone()).await.unwrap();
    let counters = Arc::new(MemoryCounters::new());
    let gateway =
        keysmith_gateway::Gateway::new(config, table.clone(), counters.clone(), clock.clone(), metrics)
            .unwrap();
    let base = format!("http://{}", listen(gateway.proxy_router()).await);
    let admin = format!("http://{}", listen(gateway.admin_router()).await);
    TestGateway {
        base,
        admin,
        clock,
        counters,
        table,
        http: {
            // The test client, unlike the gateway, uses the process-wide provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::new()
        },
    }
}

impl TestGateway {
    /// POSTs an OpenAI chat request with `key`.
    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs an Anthropic messages request with `key`.
    pub async fn messages(&self, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/messages", self.base))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The `/usage` report entry of ApiKey `ns/<name>`.
    pub async fn usage_of(&self, name: &str) -> Value {
        let report: Value = self
            .http
            .get(format!("{}/usage", self.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        report["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A small chat request.
pub fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}
