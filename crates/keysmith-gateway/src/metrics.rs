//! Prometheus metrics. Labels carry the ApiKey's namespace and name and static words only: never a
//! key, a model name the client chose freely, or a message.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// How a request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// Forwarded and answered by the upstream.
    allowed,
    /// Answered by the gateway because of a limit.
    rejected_by_limit,
    /// The upstream could not be reached, timed out or failed.
    upstream_error,
    /// No valid key.
    unauthorized,
    /// The key is disabled, expired or suspended.
    forbidden,
    /// The request was malformed or too large.
    bad_request,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    namespace: String,
    name: String,
    outcome: Outcome,
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLimit {
    namespace: String,
    name: String,
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyDirection {
    namespace: String,
    name: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The gateway's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    overruns: Family<KeyLimit, Counter>,
    tokens: Family<KeyDirection, Counter>,
    route_errors: Family<Reason, Counter>,
    routes: Gauge<i64, std::sync::atomic::AtomicI64>,
    decision: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics registered under the `keysmith_gateway` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keysmith_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        let overruns = Family::<KeyLimit, Counter>::default();
        let tokens = Family::<KeyDirection, Counter>::default();
        let route_errors = Family::<Reason, Counter>::default();
        let routes = Gauge::default();
        // 10 µs to about 80 ms: the gateway's own work sits at the bottom, a slow counter store at the top.
        let decision = Histogram::new(exponential_buckets(0.000_01, 2.0, 14));
        registry.register(
            "requests",
            "Requests by ApiKey and outcome; `limit` names the limit that rejected one",
            requests.clone(),
        );
        registry.register(
            "limit_overruns",
            "Requests forwarded over a limit because the key says onLimitExceeded: UseAnyway",
            overruns.clone(),
        );
        registry.register(
            "tokens",
            "Tokens metered, by direction (input or output)",
            tokens.clone(),
        );
        registry.register(
            "route_errors",
            "Route Secrets that could not be applied (the previous route, if any, stays)",
            route_errors.clone(),
        );
        registry.register("routes", "Routes in force", routes.clone());
        registry.register(
            "decision_seconds",
            "Time from a request's arrival to its forwarding (authentication, parsing, caps, reservation): the latency the gateway adds before the upstream",
            decision.clone(),
        );
        Self {
            registry,
            requests,
            overruns,
            tokens,
            route_errors,
            routes,
            decision,
        }
    }

    /// Counts a request.
    pub fn request(&self, key: Option<(&str, &str)>, outcome: Outcome, limit: &str) {
        let (namespace, name) = key.unwrap_or(("", ""));
        self.requests
            .get_or_create(&RequestLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                outcome,
                limit: limit.to_owned(),
            })
            .inc();
    }

    /// Counts a limit exceeded under `UseAnyway`.
    pub fn overrun(&self, namespace: &str, name: &str, limit: &str) {
        self.overruns
            .get_or_create(&KeyLimit {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                limit: limit.to_owned(),
            })
            .inc();
    }

    /// Counts metered tokens.
    pub fn tokens(&self, namespace: &str, name: &str, input: u64, output: u64) {
        for (direction, n) in [("input", input), ("output", output)] {
            self.tokens
                .get_or_create(&KeyDirection {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    direction,
                })
                .inc_by(n);
        }
    }

    /// Records how long a request took to be judged and reserved.
    pub fn decision(&self, elapsed: std::time::Duration) {
        self.decision.observe(elapsed.as_secs_f64());
    }

    /// Counts a route Secret that was not applied.
    pub fn route_error(&self, reason: &'static str) {
        self.route_errors.get_or_create(&Reason { reason }).inc();
    }

    /// Sets the number of routes in force.
    pub fn set_routes(&self, n: usize) {
        self.routes.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
