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

use std::sync::MutexGuard;

use axum::{Router, http::StatusCode};

pub use self::state::{CONSOLE_USER, CostLine, KeyStatus, MessagesUsage, SimKey};
use self::state::{Dated, State};
pub use super::RunningSim;
use super::{
    clock::Clock,
    sha256_hex, shared_hooks,
    sim_core::{SharedState, SimCore, core_accessors},
};

/// Models `GET /v1/models` lists.
pub const MODELS: &[&str] = &["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"];

/// A simulated Anthropic organisation. Clones share the same state, clock, faults and request log.
#[derive(Clone, Debug)]
pub struct AnthropicSim {
    state: SharedState<State>,
    core: SimCore,
}

impl AnthropicSim {
    core_accessors!();

    /// An organisation whose admin keys are `admin_keys` (plaintext values), with no API keys.
    pub fn new(admin_keys: impl IntoIterator<Item = String>, clock: Clock) -> Self {
        let state = State {
            admin_hashes: admin_keys.into_iter().map(|value| sha256_hex(&value)).collect(),
            ..State::default()
        };
        Self {
            state: SharedState::new(state),
            core: SimCore::new(clock),
        }
    }

    /// The API (at the root, as on `api.anthropic.com`) plus the `/_sim/` hooks.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(hooks::routes(self.clone()))
            .merge(shared_hooks::routes(self.core.clone()))
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
        let now = self.core.clock.now();
        self.state().add_key(name, workspace_id.map(str::to_owned), now)
    }

    /// Like [`Self::add_console_key`] with a chosen value (to import a known key, or to make two keys
    /// whose hints coincide). Returns the id.
    pub fn add_console_key_with_value(&self, name: &str, workspace_id: Option<&str>, value: &str) -> String {
        let now = self.core.clock.now();
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
        let now = self.core.clock.now();
        self.state().add_workspace(name, now)
    }

    /// Records Messages usage at the current simulated time, in the key's workspace when it names a
    /// key (and its cost there, when `cost_cents` is set). False for an unknown key.
    pub fn record_usage(&self, mut usage: MessagesUsage) -> bool {
        let at = self.core.clock.now();
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
        let at = self.core.clock.now();
        self.state().costs.push(Dated { at, item: line });
    }

    /// Every API key, oldest first; never the value.
    pub fn keys(&self) -> Vec<SimKey> {
        let now = self.core.clock.now();
        self.state().keys.iter().map(|key| key.sim_key(now)).collect()
    }

    /// One API key by id.
    pub fn key(&self, id: &str) -> Option<SimKey> {
        let now = self.core.clock.now();
        self.state().key(id).map(|key| key.sim_key(now))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}
