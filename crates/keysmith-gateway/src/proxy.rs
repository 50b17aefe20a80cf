//! The proxy handler: authenticate, judge, reserve, forward, relay. Every decision is made by the pure
//! functions in `enforce`, `request` and `tokens`; this file only acts on them.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::Response,
};
use bytes::Bytes;
use keysmith_api::{OnLimitExceeded, gateway_route::GatewayApi};
use serde_json::Value;

use crate::{
    auth,
    counters::{Mode, Reservation},
    enforce::{self, CapCheck, Demand},
    metrics::Outcome,
    provider_error as answer,
    relay::{Settlement, Tap, relay},
    request::{self, Endpoint, Rewrite},
    routes::Route,
    server::Shared,
    sse_filter::UsageChunkFilter,
    tokens::{self, TokenizerMode},
};

/// Headers that describe one hop, or that the gateway sets itself, and so are not forwarded.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
    "authorization",
    "x-api-key",
    // Usage is read from the response; a compressed one could not be read.
    "accept-encoding",
];

/// Handles every request on the proxy listener.
pub async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let arrived = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let rest = path
        .strip_prefix("/v1/")
        .or_else(|| path.strip_prefix('/'))
        .unwrap_or(path)
        .to_owned();
    // Before a key is known, the path is all there is to choose the error shape by.
    let path_api = if rest.starts_with("messages") {
        GatewayApi::Anthropic
    } else {
        GatewayApi::Openai
    };
    let route = auth::presented_key(&parts.headers).and_then(|k| auth::authenticate(&shared.routes, k));
    let Some(route) = route else {
        shared.metrics.request(None, Outcome::unauthorized, "");
        return answer::unauthorized(path_api);
    };
    let who = Some((route.key.namespace.as_str(), route.key.name.as_str()));
    if route.state != keysmith_api::gateway_route::RouteState::Active {
        shared.metrics.request(who, Outcome::forbidden, "");
        let state = format!("{:?}", route.state);
        let name = format!("{}/{}", route.key.namespace, route.key.name);
        return answer::forbidden(route.api, &state, &name);
    }
    let bytes = match axum::body::to_bytes(body, shared.config.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            shared.metrics.request(who, Outcome::bad_request, "");
            let message = format!(
                "The request body is larger than this gateway accepts ({} bytes).",
                shared.config.max_body_bytes
            );
            return answer::plain(
                route.api,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &message,
            );
        }
    };
    let endpoint = Endpoint::classify(route.api, &parts.method, &rest);
    let mut body_json: Option<Value> = None;
    if endpoint.is_metered() {
        // A metered call the gateway cannot read cannot be held to its caps, so it goes no further.
        match serde_json::from_slice(&bytes) {
            Ok(json) => body_json = Some(json),
            Err(_) => {
                shared.metrics.request(who, Outcome::bad_request, "");
                return answer::plain(
                    route.api,
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "The request body is not valid JSON.",
                );
            }
        }
    }

    let judged = match body_json.as_mut() {
        Some(json) => match judge(&shared, &route, endpoint, json) {
            Ok(judged) => judged,
            Err(refusal) => {
                shared
                    .metrics
                    .request(who, Outcome::rejected_by_limit, &refusal.limit);
                return answer::refusal(route.api, &refusal);
            }
        },
        None => Judged::default(),
    };
    let forwarded = match (&body_json, judged.rewritten) {
        (Some(json), true) => serde_json::to_vec(json).map(Bytes::from).unwrap_or(bytes),
        _ => bytes,
    };

    let now = shared.clock.now();
    let charges = enforce::plan_charges(&route, judged.model.as_deref(), judged.demand, now);
    let mode = match route.on_limit_exceeded {
        OnLimitExceeded::Reject => Mode::Enforce,
        OnLimitExceeded::UseAnyway => Mode::Record,
    };
    let charges = match shared.counters.reserve(&charges, mode, now).await {
        Ok(Reservation::Admitted { over }) => {
            for i in over {
                if let Some(c) = charges.get(i) {
                    shared
                        .metrics
                        .overrun(&route.key.namespace, &route.key.name, &c.limit_name);
                }
            }
            charges
        }
        Ok(Reservation::Refused { index, used }) => {
            let Some(charge) = charges.get(index) else {
                return answer::plain(
                    route.api,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "gateway_error",
                    "bad reservation",
                );
            };
            let refusal = enforce::window_refusal(&route, charge, used, now);
            shared
                .metrics
                .request(who, Outcome::rejected_by_limit, &refusal.limit);
            return answer::refusal(route.api, &refusal);
        }
        // Reject keys fail closed: without counters their limits cannot be held. UseAnyway keys go on.
        Err(err) if mode == Mode::Enforce => {
            tracing::warn!(error = %err, "counters unavailable; refusing a Reject key's request");
            shared.metrics.request(who, Outcome::upstream_error, "");
            return answer::plain(
                route.api,
                StatusCode::SERVICE_UNAVAILABLE,
                "counters_unavailable",
                "The gateway cannot check this key's limits right now.",
            );
        }
        Err(err) => {
            tracing::warn!(error = %err, "counters unavailable; forwarding a UseAnyway key's request uncounted");
            Vec::new()
        }
    };
    for limit in &judged.overruns {
        shared
            .metrics
            .overrun(&route.key.namespace, &route.key.name, limit);
    }
    shared.metrics.decision(arrived.elapsed());
    let settlement = Settlement {
        shared: shared.clone(),
        route: route.clone(),
        charges,
        model: judged.model,
        metered: endpoint.is_metered(),
        strip_usage_chunk: judged.injected_usage,
    };
    forward(settlement, parts, &rest, forwarded).await
}

/// What judging a metered body decided.
#[derive(Debug, Default)]
struct Judged {
    model: Option<String>,
    demand: Demand,
    overruns: Vec<&'static str>,
    rewritten: bool,
    /// The gateway asked for the usage chunk; the client did not.
    injected_usage: bool,
}

/// Applies the per-request caps and works out the reservation; edits the body where the caps say so.
fn judge(
    shared: &Shared,
    route: &Route,
    endpoint: Endpoint,
    json: &mut Value,
) -> Result<Judged, enforce::Refusal> {
    let facts = request::facts(endpoint, json);
    let model = facts.model.map(str::to_owned);
    let caps = route.limits.request_limits.as_ref();
    let max_in = caps.and_then(|c| c.max_input_tokens).filter(|c| *c > 0);
    // Tokenize only when it can change a decision: a cap the bound exceeds, or windows to reserve in.
    let windows = route.limits.budget.is_some()
        || route
            .limits
            .limits
            .as_ref()
            .is_some_and(|l| l.tokens_per_minute.is_some() || l.tokens_per_day.is_some())
        || route
            .limits
            .model_limits
            .iter()
            .any(|m| m.tokens_per_minute.is_some() || m.tokens_per_day.is_some());
    let want_exact = shared.config.tokenizer == TokenizerMode::Exact
        && (windows || max_in.is_some_and(|c| tokens::bound(&facts.input) > c));
    let input = tokens::count(shared.config.tokenizer, facts.model, &facts.input, want_exact);
    let requested = facts.requested_output;
    drop(facts);
    let (inject_output_cap, output_bound, overruns) =
        match enforce::check_caps(caps, route.on_limit_exceeded, endpoint, input, requested) {
            CapCheck::Pass {
                inject_output_cap,
                output_bound,
                overruns,
            } => (inject_output_cap, output_bound, overruns),
            CapCheck::Reject(refusal) => return Err(refusal),
        };
    let output = output_bound.unwrap_or(0);
    let micro_usd = model
        .as_deref()
        .and_then(|m| route.price(m))
        .map(|p| enforce::cost_micros(p, input.tokens, output));
    let rewrite = Rewrite {
        output_cap: inject_output_cap,
        include_usage: request::needs_usage_option(endpoint, json),
    };
    if rewrite.is_needed() {
        rewrite.apply(endpoint, json);
    }
    Ok(Judged {
        model,
        demand: Demand {
            tokens: Some(input.tokens + output),
            micro_usd,
        },
        overruns,
        rewritten: rewrite.is_needed(),
        injected_usage: rewrite.include_usage,
    })
}

/// A request that never reached the provider: the reservation is released, the outcome counted, and
/// the client answered in its API's error shape.
async fn upstream_failed(settlement: Settlement, status: StatusCode, code: &str, message: &str) -> Response {
    let (shared, route) = (settlement.shared.clone(), settlement.route.clone());
    settlement
        .finish(enforce::Finish {
            success: false,
            usage: None,
        })
        .await;
    let who = Some((route.key.namespace.as_str(), route.key.name.as_str()));
    shared.metrics.request(who, Outcome::upstream_error, "");
    answer::plain(route.api, status, code, message)
}

/// Sends the request upstream with the route's provider key and relays the answer; `settlement`
/// (which carries the gateway's state and the route) settles the reservation when the relay ends.
async fn forward(settlement: Settlement, parts: http::request::Parts, rest: &str, body: Bytes) -> Response {
    let (shared, route) = (settlement.shared.clone(), settlement.route.clone());
    let headers = &parts.headers;
    let who = Some((route.key.namespace.as_str(), route.key.name.as_str()));
    let mut url = format!("{}/{}", route.upstream, rest);
    if let Some(q) = parts.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let mut out = reqwest::header::HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    let secret = route.upstream_key.expose();
    let credential = match route.api {
        GatewayApi::Openai => {
            HeaderValue::try_from(format!("Bearer {secret}")).map(|v| (header::AUTHORIZATION, v))
        }
        GatewayApi::Anthropic => {
            HeaderValue::try_from(secret).map(|v| (HeaderName::from_static("x-api-key"), v))
        }
    };
    match credential {
        Ok((name, mut value)) => {
            value.set_sensitive(true);
            out.insert(name, value);
        }
        Err(_) => {
            return upstream_failed(
                settlement,
                StatusCode::BAD_GATEWAY,
                "upstream_key_invalid",
                "The provider key of this route cannot be sent as a header.",
            )
            .await;
        }
    }
    let send = shared
        .http
        .request(parts.method, &url)
        .headers(out)
        .body(body)
        .send();
    let response = match tokio::time::timeout(shared.config.response_timeout, send).await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            // reqwest's error names the URL, never headers; the upstream base is not secret.
            tracing::warn!(error = %err, namespace = %route.key.namespace, name = %route.key.name, "upstream request failed");
            let code = if err.is_timeout() || err.is_connect() {
                "upstream_unreachable"
            } else {
                "upstream_error"
            };
            return upstream_failed(
                settlement,
                StatusCode::BAD_GATEWAY,
                code,
                "The provider could not be reached.",
            )
            .await;
        }
        Err(_) => {
            return upstream_failed(
                settlement,
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "The provider did not answer in time.",
            )
            .await;
        }
    };
    let status = response.status();
    let outcome = if status.is_server_error() {
        Outcome::upstream_error
    } else {
        Outcome::allowed
    };
    shared.metrics.request(who, outcome, "");
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut builder = Response::builder().status(status);
    for (name, value) in response.headers() {
        // Without content-length the body ends when the relay ends, after the settlement.
        if !NOT_FORWARDED.contains(&name.as_str()) {
            builder = builder.header(name, value);
        }
    }
    let tap = Tap::for_content_type(&content_type);
    let filter = (settlement.strip_usage_chunk && matches!(tap, Tap::Sse(_))).then(UsageChunkFilter::default);
    let idle = shared.config.idle_timeout;
    let stream = relay(
        response.bytes_stream(),
        tap,
        settlement,
        status.is_success(),
        idle,
        filter,
    );
    builder.body(Body::from_stream(stream)).unwrap_or_else(|_| {
        answer::plain(
            route.api,
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "bad upstream response",
        )
    })
}
