//! A faithful in-process simulator of DigitalOcean's GenAI model API keys (`providers.md` §3): the
//! management API under `/v2/gen-ai/models/api_keys` (list, retired create, rename, regenerate,
//! delete) and the serverless inference service's `GET /v1/models` on the same port, plus test hooks
//! under `/_sim/`.
//!
//! Key values exist only in the answers that reveal them (the add-key hook, regenerate, and the legacy
//! create): the state keeps their SHA-256.

mod api;
mod hooks;
mod state;
#[cfg(test)]
mod tests;

use std::sync::MutexGuard;

use axum::{Router, http::StatusCode};

use self::state::{ModelKey, State, new_key_value};
pub use self::{
    api::{DEFAULT_PER_PAGE, INFERENCE_PATH, KEYS_PATH, MAX_PER_PAGE, RETIRED_MESSAGE},
    state::{CREATED_BY, HOURLY_LIMIT, SimModelKey},
};
pub use super::RunningSim;
use super::{
    clock::Clock,
    shared_hooks,
    sim_core::{SharedState, SimCore, core_accessors},
};

/// A simulated DigitalOcean account. Clones share the same state, clock, faults and request log;
/// faults hit the management API and inference alike.
#[derive(Clone, Debug)]
pub struct DigitalOceanSim {
    state: SharedState<State>,
    core: SimCore,
}

/// A model key added through [`DigitalOceanSim::add_key`]: its uuid and its value, shown this once.
#[derive(Clone)]
pub struct AddedKey {
    pub uuid: String,
    pub value: String,
}

// The value stays out of debug output, as everywhere else.
impl std::fmt::Debug for AddedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddedKey")
            .field("uuid", &self.uuid)
            .finish_non_exhaustive()
    }
}

impl DigitalOceanSim {
    core_accessors!();

    /// An account whose API tokens are `tokens` (plaintext values), with no model keys.
    pub fn new(tokens: impl IntoIterator<Item = String>, clock: Clock) -> Self {
        let state = State {
            tokens: tokens
                .into_iter()
                .map(|token| super::sha256_hex(&token))
                .collect(),
            ..State::default()
        };
        Self {
            state: SharedState::new(state),
            core: SimCore::new(clock),
        }
    }

    /// The management API, the inference `/v1/models` and the `/_sim/` hooks.
    pub fn router(&self) -> Router {
        api::management_routes(self.clone())
            .merge(api::inference_routes(self.clone()))
            .merge(hooks::routes(self.clone()))
            .merge(shared_hooks::routes(self.core.clone()))
            .fallback(|| async {
                api::error(
                    StatusCode::NOT_FOUND,
                    "The resource you were accessing could not be found.",
                )
            })
    }

    /// Serves [`Self::router`] on a loopback port until the returned handle is dropped. Its
    /// `base_url` is the management API's base (the host root); the inference base is
    /// `{base_url}/v1`.
    pub async fn spawn(&self) -> std::io::Result<RunningSim> {
        RunningSim::start(self.router(), "").await
    }

    /// Makes a model key the way the control panel does, returning its uuid and value (the value is
    /// not kept, so this is the only time it is seen).
    pub fn add_key(&self, name: &str) -> AddedKey {
        self.add_key_with_value(name, &new_key_value())
    }

    /// Like [`Self::add_key`], with a chosen value.
    pub fn add_key_with_value(&self, name: &str, value: &str) -> AddedKey {
        let key = ModelKey::new(value, name.to_owned(), self.core.clock.now());
        let uuid = key.uuid.clone();
        self.state().keys.push(key);
        AddedKey {
            uuid,
            value: value.to_owned(),
        }
    }

    /// Adds an API token the management API accepts.
    pub fn add_token(&self, token: &str) {
        let hash = super::sha256_hex(token);
        let mut state = self.state();
        if !state.tokens.contains(&hash) {
            state.tokens.push(hash);
        }
    }

    /// Whether `POST .../api_keys` answers as before its retirement (200 with the value) instead of 410.
    pub fn set_legacy_create(&self, enabled: bool) {
        self.state().legacy_create = enabled;
    }

    /// Whether `value` currently authenticates at the inference service.
    pub fn accepts(&self, value: &str) -> bool {
        self.state().key_by_value(value).is_some()
    }

    /// Every model key, deleted ones included, in creation order; never a value.
    pub fn keys(&self) -> Vec<SimModelKey> {
        self.state().keys.iter().map(ModelKey::sim_key).collect()
    }

    /// One model key by uuid, even if deleted.
    pub fn key(&self, uuid: &str) -> Option<SimModelKey> {
        self.state().key(uuid).map(ModelKey::sim_key)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}
