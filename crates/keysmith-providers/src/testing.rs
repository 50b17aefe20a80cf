//! What every provider's client tests share: an HTTP configuration fast enough for fault tests, and a
//! fixture that serves a simulator on loopback with a client pointed at it.

use std::{
    future::Future,
    io,
    time::{Duration, Instant},
};

use keysmith_simulators::{
    RunningSim, aixplain::AixplainSim, anthropic::AnthropicSim, digitalocean::DigitalOceanSim, faults::Fault,
    google::GoogleSim, openai::OpenAiSim, openrouter::OpenRouterSim, request_log::RequestRecord,
    validate_only::ValidateOnlySim,
};
use reqwest::RequestBuilder;

use crate::{
    KeySettings, ProviderClient,
    http::{Call, HttpConfig, MessageExtractor, Transport},
};

/// Quick retries and no pacing to speak of, so fault tests finish fast; `max_retry_after` stays
/// above the one-second `Retry-After` the tests inject.
pub(crate) fn fast_config() -> HttpConfig {
    HttpConfig {
        timeout: Duration::from_secs(5),
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(5),
        requests_per_second: 1000.0,
        burst: 1000,
        ..HttpConfig::default()
    }
}

/// Settings that only name the key.
pub(crate) fn named(name: &str) -> KeySettings {
    KeySettings {
        name: name.into(),
        ..Default::default()
    }
}

/// `http://` and a loopback address where nothing listens.
pub(crate) fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Dropping the listener closes the port again.
    drop(listener);
    format!("http://{addr}")
}

/// What the fixture needs of a simulator. Every simulator has these as inherent methods; the trait
/// lets one fixture serve them all.
pub(crate) trait Simulator {
    fn spawn(&self) -> impl Future<Output = io::Result<RunningSim>>;
    fn inject(&self, fault: Fault);
    fn requests(&self) -> Vec<RequestRecord>;
    fn early_retries(&self) -> usize;
}

macro_rules! simulators {
    ($($sim:ty),*) => {$(
        impl Simulator for $sim {
            fn spawn(&self) -> impl Future<Output = io::Result<RunningSim>> {
                <$sim>::spawn(self)
            }

            fn inject(&self, fault: Fault) {
                <$sim>::inject(self, fault)
            }

            fn requests(&self) -> Vec<RequestRecord> {
                <$sim>::requests(self)
            }

            fn early_retries(&self) -> usize {
                <$sim>::early_retries(self)
            }
        }
    )*};
}

simulators!(
    AixplainSim,
    AnthropicSim,
    DigitalOceanSim,
    GoogleSim,
    OpenAiSim,
    OpenRouterSim,
    ValidateOnlySim
);

/// A simulator serving on loopback and a client of it. Each provider's tests add their own
/// constructors and helpers in an `impl` of their instance.
pub(crate) struct Fixture<S, C> {
    pub(crate) sim: S,
    pub(crate) running: RunningSim,
    pub(crate) client: C,
}

impl<S: Simulator, C> Fixture<S, C> {
    /// Serves `sim` and makes the client with `connect`.
    pub(crate) async fn start(sim: S, connect: impl FnOnce(&RunningSim) -> C) -> Self {
        let running = sim.spawn().await.unwrap();
        let client = connect(&running);
        Self { sim, running, client }
    }

    /// How many requests reached the simulator with this method and a path ending in `suffix`.
    pub(crate) fn requests(&self, method: &str, suffix: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }

    /// The raw body of a `GET` of `path` under the API base, signed by `authorize`, to check what is
    /// on the wire.
    pub(crate) async fn raw_get_with(
        &self,
        path: &str,
        message: MessageExtractor,
        authorize: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> String {
        let url = format!("{}{path}", self.running.base_url);
        let transport = Transport::new(fast_config()).unwrap();
        let response = transport
            .send(Call::idempotent(message), |client| authorize(client.get(&url)))
            .await;
        String::from_utf8(response.unwrap().body().to_vec()).unwrap()
    }
}

impl<S: Simulator, C: ProviderClient> Fixture<S, C> {
    /// The scenario every client with a key list shares: one 429 asking for a second's wait, which
    /// the client waits out before listing again with a `GET` of a path ending in `suffix`.
    pub(crate) async fn assert_listing_waits_out_retry_after(&self, suffix: &str) {
        self.sim.inject(Fault::rate_limit(1, 1));
        let start = Instant::now();
        self.client.list_keys().await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(1), "{:?}", start.elapsed());
        assert_eq!(self.sim.early_retries(), 0);
        assert_eq!(self.requests("GET", suffix), 2);
    }
}
