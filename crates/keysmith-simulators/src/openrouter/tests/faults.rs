//! Injected faults, the request log, the clock hook and serving over a real TCP connection.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::*;
use crate::faults::Fault;

#[tokio::test]
async fn a_rate_limit_fault_answers_429_with_retry_after_headers_then_disarms() {
    let sim = sim();
    sim.inject(Fault::rate_limit(2, 3).with_retry_after_ms(2500));
    let router = sim.router();
    for _ in 0..2 {
        let reply = manage(&router, "GET", "/keys", None).await;
        assert_eq!(
            error_message(&reply, StatusCode::TOO_MANY_REQUESTS),
            "Rate limit exceeded"
        );
        assert_eq!(reply.headers["retry-after"], "3");
        assert_eq!(reply.headers["retry-after-ms"], "2500");
    }
    let reply = manage(&router, "GET", "/keys", None).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn early_retries_count_requests_from_the_same_credential_before_retry_after_expires() {
    let sim = sim();
    let router = sim.router();
    let (_, ordinary) = create_named(&router, "bystander").await;
    sim.inject(Fault::rate_limit(1, 2));
    let limited = manage(&router, "GET", "/keys", None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);

    // Past the in-flight grace, so the retry cannot have been sent before the 429 arrived.
    sim.clock().advance(Duration::from_millis(500));
    manage(&router, "GET", "/keys", None).await;
    send(&router, "GET", "/api/v1/key", Some(&ordinary), None).await;
    assert_eq!(
        sim.early_retries(),
        1,
        "only the credential told to wait is early"
    );

    sim.clock().advance(Duration::from_secs(2));
    manage(&router, "GET", "/keys", None).await;
    assert_eq!(sim.early_retries(), 1, "a retry after the wait is not early");

    let log = sim.requests();
    let throttled = log.iter().find(|record| record.status == 429).unwrap();
    let until = throttled.retry_after_until.unwrap();
    assert_eq!(until.duration_since(throttled.at).as_secs(), 2);
    let hook = send(&router, "GET", "/_sim/requests", None, None).await;
    assert_eq!(hook.body["earlyRetries"], json!(1));
    assert_eq!(hook.body["requests"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_server_error_fault_answers_500_and_changes_nothing() {
    let sim = sim();
    sim.inject(Fault::server_error(1));
    let router = sim.router();
    let reply = manage(&router, "POST", "/keys", Some(json!({"name": "a"}))).await;
    error_message(&reply, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(sim.keys().is_empty());
    create_named(&router, "a").await;
    assert_eq!(sim.keys().len(), 1);
}

#[tokio::test]
async fn a_latency_fault_delays_the_request_then_handles_it_normally() {
    let sim = sim();
    sim.inject(Fault::latency(1, 200));
    let router = sim.router();
    let started = Instant::now();
    let reply = manage(&router, "GET", "/keys", None).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_path_filter_keeps_a_fault_for_matching_requests() {
    let sim = sim();
    sim.inject(Fault::server_error(1).on_path("/credits"));
    let router = sim.router();
    assert_eq!(manage(&router, "GET", "/keys", None).await.status, StatusCode::OK);
    assert_eq!(
        manage(&router, "GET", "/credits", None).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        manage(&router, "GET", "/credits", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_faults_hook_arms_lists_and_clears_faults() {
    let sim = sim();
    let router = sim.router();
    let faults = json!([
        {"kind": "rateLimit", "count": 1, "retryAfterSeconds": 1, "path": "/credits"},
        {"kind": "serverError", "count": 2},
    ]);
    let reply = send(&router, "POST", "/_sim/faults", None, Some(faults)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["faults"].as_array().unwrap().len(), 2);
    let single = json!({"kind": "latency", "millis": 1});
    send(&router, "POST", "/_sim/faults", None, Some(single)).await;
    assert_eq!(
        send(&router, "GET", "/_sim/faults", None, None).await.body["faults"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        manage(&router, "GET", "/credits", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let cleared = send(&router, "DELETE", "/_sim/faults", None, None).await;
    assert_eq!(cleared.body, json!({"faults": []}));
    assert_eq!(manage(&router, "GET", "/keys", None).await.status, StatusCode::OK);
    let bad = send(
        &router,
        "POST",
        "/_sim/faults",
        None,
        Some(json!({"kind": "meteor"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn hooks_are_neither_faulted_nor_logged() {
    let sim = sim();
    sim.inject(Fault::server_error(5));
    let router = sim.router();
    assert_eq!(
        send(&router, "GET", "/_sim/keys", None, None).await.status,
        StatusCode::OK
    );
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn the_clock_hook_advances_and_sets_the_simulated_time() {
    let sim = sim();
    let router = sim.router();
    let set = send(
        &router,
        "POST",
        "/_sim/clock",
        None,
        Some(json!({"now": "2031-05-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    assert!(
        set.body["now"]
            .as_str()
            .unwrap()
            .starts_with("2031-05-01T00:00:0")
    );
    let advanced = send(
        &router,
        "POST",
        "/_sim/clock",
        None,
        Some(json!({"advanceSeconds": 86400})),
    )
    .await;
    assert!(
        advanced.body["now"]
            .as_str()
            .unwrap()
            .starts_with("2031-05-02T00:00:0")
    );
    let now = send(&router, "GET", "/_sim/clock", None, None).await;
    assert!(now.body["now"].as_str().unwrap().starts_with("2031-05-02"));
    assert!(sim.clock().now() > ts("2031-05-02T00:00:00Z"));
    for bad in [json!({"advanceSeconds": -1}), json!({}), json!({"now": "soon"})] {
        let reply = send(&router, "POST", "/_sim/clock", None, Some(bad)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }
}

/// Sends one HTTP/1.1 request over a fresh TCP connection and reads until the server closes it.
async fn raw_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {MANAGEMENT}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
        .await
        .map_err(std::io::Error::other)??;
    Ok(String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn a_spawned_simulator_serves_the_api_over_tcp() {
    let sim = sim();
    let running = sim.spawn().await.unwrap();
    assert_eq!(running.base_url, format!("http://{}/api/v1", running.addr));
    assert_eq!(running.sim_url(), format!("http://{}/_sim", running.addr));
    let response = raw_request(running.addr, "POST", "/api/v1/keys", r#"{"name":"tcp"}"#)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains("\"key\":\"sk-or-v1-"));
}

#[tokio::test]
async fn drop_after_create_commits_the_key_then_aborts_the_connection() {
    let sim = sim();
    sim.inject(Fault::drop_after_create(1));
    let running = sim.spawn().await.unwrap();

    // A read of the other endpoints is untouched by this fault.
    let listed = raw_request(running.addr, "GET", "/api/v1/keys", "")
        .await
        .unwrap();
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");

    let outcome = raw_request(running.addr, "POST", "/api/v1/keys", r#"{"name":"tenant-crash"}"#).await;
    if let Ok(partial) = &outcome {
        assert!(
            !partial.contains("sk-or-v1-"),
            "the client must not receive the key: {partial}"
        );
        assert!(
            !partial.ends_with("0\r\n\r\n"),
            "the response must be incomplete: {partial}"
        );
    }
    assert_eq!(
        sim.live_key_count_named_with("tenant-crash"),
        1,
        "the create was committed"
    );
    let record = sim
        .requests()
        .into_iter()
        .find(|record| record.method == "POST")
        .unwrap();
    assert!(record.dropped);
    assert_eq!(record.status, 201);

    // The fault fired once; the next create answers normally.
    let next = raw_request(running.addr, "POST", "/api/v1/keys", r#"{"name":"tenant-crash"}"#)
        .await
        .unwrap();
    assert!(next.starts_with("HTTP/1.1 201"), "{next}");
    assert_eq!(sim.live_key_count_named_with("tenant-crash"), 2);
}

#[tokio::test]
async fn the_request_log_never_holds_key_values() {
    let sim = sim();
    let router = sim.router();
    let (_, value) = create_named(&router, "a").await;
    send(&router, "GET", "/api/v1/key", Some(&value), None).await;
    let log = serde_json::to_string(&sim.requests()).unwrap();
    assert!(!log.contains(&value) && !log.contains(MANAGEMENT));
    let credentials: Vec<Value> = sim
        .requests()
        .iter()
        .map(|record| json!(record.credential))
        .collect();
    assert!(
        credentials
            .iter()
            .all(|credential| credential.as_str().is_some_and(|c| c.len() == 12))
    );
}
