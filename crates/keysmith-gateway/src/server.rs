//! The gateway's two listeners: the proxy, and the admin server with `/metrics`, `/usage`,
//! `/healthz` and `/readyz`.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use keysmith_api::{BudgetReset, gateway_route::UsageReport};
use keysmith_core::Clock;

use crate::{
    Error, counters::Counters, ledger::Ledger, metrics::Metrics, routes::RouteTable, tokens::TokenizerMode,
};

/// Settings of the proxy.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Time allowed to connect to the upstream.
    pub connect_timeout: Duration,
    /// Time allowed until the upstream's response headers (a stream may then run as long as it runs).
    pub response_timeout: Duration,
    /// Longest silence allowed inside a response body (between chunks of a stream).
    pub idle_timeout: Duration,
    /// How input tokens are counted.
    pub tokenizer: TokenizerMode,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            tokenizer: TokenizerMode::Bound,
        }
    }
}

/// State shared by the handlers.
pub struct Shared {
    pub(crate) routes: Arc<RouteTable>,
    pub(crate) counters: Arc<dyn Counters>,
    pub(crate) clock: Clock,
    pub(crate) http: reqwest::Client,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ledger: Ledger,
    pub(crate) config: GatewayConfig,
}

/// A gateway: routes, counters, clock and an upstream client, served by two routers.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `routes` and `counters`, telling time by `clock`.
    pub fn new(
        config: GatewayConfig,
        routes: Arc<RouteTable>,
        counters: Arc<dyn Counters>,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Error> {
        // An explicit provider and bundled roots: the distroless image has no CA files, and nothing has
        // to install a process-wide crypto provider first.
        let roots: rustls::RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
        let tls =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(Error::Tls)?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // A redirect would carry the provider key wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Self {
            shared: Arc::new(Shared {
                routes,
                counters,
                clock,
                http,
                metrics,
                ledger: Ledger::default(),
                config,
            }),
        })
    }

    /// The proxy: every path goes to the handler.
    pub fn proxy_router(&self) -> Router {
        Router::new()
            .fallback(crate::proxy::handle)
            .with_state(self.shared.clone())
    }

    /// The admin server: `/metrics`, `/usage`, `/healthz`, `/readyz`.
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/usage", get(usage))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready))
            .with_state(self.shared.clone())
    }

    /// The usage report, as `/usage` serves it.
    pub fn usage(&self) -> UsageReport {
        let keys: Vec<_> = self
            .shared
            .routes
            .routes()
            .iter()
            .map(|r| {
                let reset = r
                    .limits
                    .budget
                    .as_ref()
                    .and_then(|b| b.reset)
                    .unwrap_or(BudgetReset::Never);
                (r.key.clone(), reset)
            })
            .collect();
        self.shared.ledger.report(&keys, self.shared.clock.now())
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match shared.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn usage(State(shared): State<Arc<Shared>>) -> Json<UsageReport> {
    Json(Gateway { shared }.usage())
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    if shared.routes.is_synced() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "routes not synced").into_response()
    }
}
