//! Injected faults with OpenAI's error bodies, the request log, and a dropped create.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use super::*;
use crate::faults::Fault;

#[tokio::test]
async fn a_rate_limit_fault_answers_429_with_retry_after_and_an_error_response() {
    let sim = sim();
    sim.inject(Fault::rate_limit(1, 3).on_path("/organization/costs"));
    let router = sim.router();
    let untouched = admin(&router, "GET", "/organization/projects", None).await;
    assert_eq!(untouched.status, StatusCode::OK);
    let reply = admin(&router, "GET", "/organization/costs?start_time=0", None).await;
    let (_, kind, _, code) = error_of(&reply, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!((kind.as_str(), code), ("requests", json!("rate_limit_exceeded")));
    assert_eq!(reply.headers["retry-after"], "3");
    assert_eq!(
        admin(&router, "GET", "/organization/costs?start_time=0", None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_early_retry_is_counted_for_the_credential_told_to_wait() {
    let sim = sim();
    let router = sim.router();
    sim.inject(Fault::rate_limit(1, 2));
    admin(&router, "GET", "/organization/projects", None).await;
    sim.clock().advance(Duration::from_millis(500));
    admin(&router, "GET", "/organization/projects", None).await;
    assert_eq!(sim.early_retries(), 1);
    sim.clock().advance(Duration::from_secs(2));
    admin(&router, "GET", "/organization/projects", None).await;
    assert_eq!(sim.early_retries(), 1);
    let hook = send(&router, "GET", "/_sim/requests", None, None).await;
    assert_eq!(hook.body["earlyRetries"], json!(1));
}

#[tokio::test]
async fn a_server_error_fault_answers_500_and_creates_nothing() {
    let sim = sim();
    sim.inject(Fault::server_error(1));
    let router = sim.router();
    let reply = admin(
        &router,
        "POST",
        &project_path("/service_accounts"),
        Some(json!({"name": "x"})),
    )
    .await;
    let (_, kind, _, _) = error_of(&reply, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(kind, "server_error");
    assert_eq!(sim.live_service_accounts_named_with("x"), 0);
}

#[tokio::test]
async fn a_drop_after_create_fault_waits_for_the_service_account_create() {
    let sim = sim();
    let router = sim.router();
    let (id, _, _) = create_account(&router, "first").await;
    sim.inject(Fault::drop_after_create(1));
    // Other POSTs, renames of service accounts included, are not creates.
    let renamed = admin(
        &router,
        "POST",
        &project_path(&format!("/service_accounts/{id}")),
        Some(json!({"name": "r"})),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK);
    admin(
        &router,
        "POST",
        "/organization/projects",
        Some(json!({"name": "p"})),
    )
    .await;
    assert_eq!(sim.requests().iter().filter(|r| r.dropped).count(), 0);
    assert_eq!(sim.pending_faults(), vec![Fault::drop_after_create(1)]);
}

#[tokio::test]
async fn the_clock_hook_moves_time_and_faults_can_be_armed_over_http() {
    let sim = sim();
    let router = sim.router();
    let reply = send(
        &router,
        "POST",
        "/_sim/clock",
        None,
        Some(json!({"now": "2030-01-01T00:00:00Z"})),
    )
    .await;
    assert!(
        reply.body["now"]
            .as_str()
            .unwrap()
            .starts_with("2030-01-01T00:00:0")
    );
    let armed = send(
        &router,
        "POST",
        "/_sim/faults",
        None,
        Some(json!([{"kind": "serverError", "count": 2}])),
    )
    .await;
    assert_eq!(armed.body["faults"][0]["count"], 2);
    let cleared = send(&router, "DELETE", "/_sim/faults", None, None).await;
    assert_eq!(cleared.body, json!({"faults": []}));
    let created = send(
        &router,
        "POST",
        "/_sim/projects",
        None,
        Some(json!({"name": "other"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let projects = send(&router, "GET", "/_sim/projects", None, None).await;
    assert_eq!(projects.body["projects"].as_array().unwrap().len(), 2);
}
