//! How the simulators' tests call a router: in-process, with the requests a client would send over
//! HTTP.

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, request::Builder},
};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A response, with the body parsed as JSON (`Null` when empty, a string when not JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

/// `method uri` with `Authorization: Bearer {token}` when a token is given. Sent to host `sim.test`,
/// which simulators that build URLs put in them.
pub(crate) async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "sim.test");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send_json(router, request, body).await
}

/// Sends `request` with `body`, when there is one, as JSON.
pub(crate) async fn send_json(router: &Router, request: Builder, body: Option<Value>) -> Reply {
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    };
    exchange(router, request.unwrap()).await
}

/// Sends `request` as it is.
pub(crate) async fn exchange(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply {
        status,
        headers,
        body,
    }
}
