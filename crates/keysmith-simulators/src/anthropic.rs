//! A faithful in-process simulator of Anthropic's Admin API for API keys, workspaces and the usage
//! and cost reports (`providers.md` §5), plus `GET /v1/models` so that imported keys can be checked,
//! and test hooks under `/_sim/`.
//!
//! Keys cannot be created or deleted through the API (they are made in the Console): tests add them
//! with a hook that shows the value once. Values are kept only as their SHA-256.

mod api;
mod hooks;
mod reports;
mod state;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::{Router, http::StatusCode};

pub use self::state::{CONSOLE_USER, CostLine, KeyStatus, MessagesUsage, SimKey};
use self::state::{Dated, State};
pub use super::RunningSim;
use super::{
    clock::Clock,
    faults::{Fault, Faults},
    request_log::{RequestLog, RequestRecord},
    sha256_hex,
};

/// Models `GET /v1/models` lists.
pub const MODELS: &[&str] = &["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"];

/// A simulated Anthropic organisation. Clones share the same state, clock, faults and request log.
#[derive(Clone, Debug)]
pub struct AnthropicSim {
    state: Arc<Mutex<State>>,
    clock: Clock,
    faults: Faults,
    log: RequestLog,
}

impl AnthropicSim {
    /// An organisation whose admin keys are `admin_keys` (plaintext values), with no API keys.
    pub fn new(admin_keys: impl IntoIterator<Item = String>, clock: Clock) -> Self {
        let state = State {
            admin_hashes: admin_keys.into_iter().map(|value| sha256_hex(&value)).collect(),
            ..State::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            clock,
            faults: Faults::new(),
            log: RequestLog::new(),
        }
    }

    /// The API (at the root, as on `api.anthropic.com`) plus the `/_sim/` hooks.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(hooks::routes(self.clone()))
            .fallback(|| async { api::error(StatusCode::NOT_FOUND, "Not found") })
    }

    /// Serves [`Self::router`] on a loopback port until the returned handle is dropped; its
    /// `base_url` is the server root.
    pub async fn spawn(&self) -> std::io::Result<RunningSim> {
        RunningSim::start(self.router(), "").await
    }

    /// Adds a key as if made in the Console, in `workspace_id` (`None`: the default workspace).
    /// Returns its id and its value, shown this once.
    pub fn add_console_key(&self, name: &str, workspace_id: Option<&str>) -> (String, String) {
        let now = self.clock.now();
        self.state().add_key(name, workspace_id.map(str::to_owned), now)
    }

    /// Like [`Self::add_console_key`] with a chosen value (to import a known key, or to make two keys
    /// whose hints coincide). Returns the id.
    pub fn add_console_key_with_value(&self, name: &str, workspace_id: Option<&str>, value: &str) -> String {
        let now = self.clock.now();
        self.state()
            .add_key_with_value(name, workspace_id.map(str::to_owned), value, now)
    }

    /// Sets a key's stored status (as a Console user would).
    pub fn set_status(&self, id: &str, status: KeyStatus) {
        if let Some(key) = self.state().key_mut(id) {
            key.status = status;
        }
    }

    /// Sets a key's expiry (only the Console can).
    pub fn set_expiry(&self, id: &str, at: Option<jiff::Timestamp>) {
        if let Some(key) = self.state().key_mut(id) {
            key.expires_at = at;
        }
    }

    /// Adds a workspace; returns its id.
    pub fn add_workspace(&self, name: &str) -> String {
        let now = self.clock.now();
        self.state().add_workspace(name, now)
    }

    /// Records Messages usage at the current simulated time, in the key's workspace when it names a
    /// key (and its cost there, when `cost_cents` is set). False for an unknown key.
    pub fn record_usage(&self, mut usage: MessagesUsage) -> bool {
        let at = self.clock.now();
        let mut state = self.state();
        if let Some(id) = &usage.api_key_id {
            match state.key(id) {
                Some(key) => usage.workspace_id = key.workspace_id.clone(),
                None => return false,
            }
        }
        if let Some(cents) = usage.cost_cents {
            state.costs.push(Dated {
                at,
                item: CostLine {
                    workspace_id: usage.workspace_id.clone(),
                    amount_cents: cents,
                    description: None,
                    model: Some(usage.model.clone()),
                    cost_type: "tokens".into(),
                    token_type: None,
                },
            });
        }
        state.usage.push(Dated { at, item: usage });
        true
    }

    /// Books a cost line at the current simulated time.
    pub fn record_cost(&self, line: CostLine) {
        let at = self.clock.now();
        self.state().costs.push(Dated { at, item: line });
    }

    /// Arms a fault for the API requests that follow.
    pub fn inject(&self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Every API key, oldest first; never the value.
    pub fn keys(&self) -> Vec<SimKey> {
        let now = self.clock.now();
        self.state().keys.iter().map(|key| key.sim_key(now)).collect()
    }

    /// One API key by id.
    pub fn key(&self, id: &str) -> Option<SimKey> {
        let now = self.clock.now();
        self.state().key(id).map(|key| key.sim_key(now))
    }

    /// How many API requests arrived before a `Retry-After` given to the same credential expired.
    pub fn early_retries(&self) -> usize {
        self.log.early_retries()
    }

    /// Every API request answered so far (hooks excluded), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.log.records()
    }

    /// The simulator's clock (shared, so advancing it moves the simulator's time).
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Handlers never leave the state half-updated across a panic point, so poison is harmless.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
