//! A faithful in-process simulator of aiXplain's API-key endpoints (`/sdk/api-keys*`), following
//! `providers.md` §4, plus test hooks under `/_sim/`.
//!
//! aiXplain publishes no REST reference; the shapes follow its SDKs. Two points the SDKs leave open
//! are settled here and can be switched by tests: whether `GET /sdk/api-keys` shows the full
//! `accessKey` or a mask keeping the first and last four characters (masked by default, the safe
//! assumption), and both authentication styles (`Authorization: Token` and `x-api-key`) are
//! accepted. Key values are kept only as their SHA-256 unless the list is set to reveal them.

mod api;
mod catalog;
mod hooks;
mod input;
mod state;
#[cfg(test)]
mod tests;

use std::sync::MutexGuard;

use axum::{Router, http::StatusCode};

use self::state::{Entry, State};
pub use self::{
    api::KEYS_PATH,
    catalog::CatalogModel,
    state::{AssetLimit, Limits, SimKey, TokenType, Traffic},
};
pub use super::RunningSim;
use super::{
    clock::Clock,
    shared_hooks,
    sim_core::{SharedState, SimCore, core_accessors},
};

/// The name given to keys registered with [`AixplainSim::add_key`].
pub const IMPORTED_NAME: &str = "imported";

/// The name of the team (admin) keys the simulator starts with.
pub const TEAM_KEY_NAME: &str = "team key";

/// A simulated aiXplain team. Clones share the same state, clock, faults and request log.
#[derive(Clone, Debug)]
pub struct AixplainSim {
    state: SharedState<State>,
    core: SimCore,
}

impl AixplainSim {
    core_accessors!();

    /// A team whose admin (team API) keys are `admin_keys` (plaintext values), with no other keys.
    pub fn new(admin_keys: impl IntoIterator<Item = String>, clock: Clock) -> Self {
        let sim = Self {
            state: SharedState::new(State::default()),
            core: SimCore::new(clock),
        };
        for value in admin_keys {
            sim.add_admin_key(&value);
        }
        sim
    }

    /// The API (at the root, as on `platform-api.aixplain.com`) plus the `/_sim/` hooks.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(hooks::routes(self.clone()))
            .merge(shared_hooks::routes(self.core.clone()))
            .fallback(|| async { api::error(StatusCode::NOT_FOUND, "Cannot find the requested resource") })
    }

    /// Serves [`Self::router`] on a loopback port until the returned handle is dropped; its
    /// `base_url` is the API base (the server root).
    pub async fn spawn(&self) -> std::io::Result<RunningSim> {
        RunningSim::start(self.router(), "").await
    }

    /// Adds a team (admin) key by value; returns its id.
    pub fn add_admin_key(&self, value: &str) -> String {
        let now = self.core.clock.now();
        self.state().add(value, TEAM_KEY_NAME, true, now)
    }

    /// Registers an ordinary key made outside the API, named [`IMPORTED_NAME`]; returns its id.
    pub fn add_key(&self, value: &str) -> String {
        self.add_key_named(value, IMPORTED_NAME)
    }

    /// Like [`Self::add_key`], with a chosen name (which may duplicate another key's, to set up the
    /// state a lost create answer leaves behind).
    pub fn add_key_named(&self, value: &str, name: &str) -> String {
        let now = self.core.clock.now();
        self.state().add(value, name, false, now)
    }

    /// Adds a model to the catalog `GET /sdk/models/{id}` serves.
    pub fn add_model(&self, model: CatalogModel) {
        self.state().catalog.push(model);
    }

    /// Charges `traffic` to key `id` at the current simulated time. False when there is no live key.
    pub fn add_usage(&self, id: &str, traffic: Traffic) -> bool {
        let at = self.core.clock.now();
        match self.state().live_mut(id) {
            Some(key) => {
                key.ledger.push(Entry { at, traffic });
                true
            }
            None => false,
        }
    }

    /// What `GET /sdk/api-keys/{id}/usage-limits` answers now (empty for unknown keys).
    pub fn usage_limits(&self, id: &str) -> Vec<serde_json::Value> {
        let now = self.core.clock.now();
        self.state()
            .live(id)
            .map(|key| key.usage_limits(now))
            .unwrap_or_default()
    }

    /// Makes keys created from now on show their full value in read responses (list and get).
    pub fn set_list_reveals_keys(&self, reveal: bool) {
        self.state().list_reveals_keys = reveal;
    }

    /// Whether read responses show full values of keys created while this is set.
    pub fn list_reveals_keys(&self) -> bool {
        self.state().list_reveals_keys
    }

    /// Every key, admin and deleted ones included, oldest first; never the value.
    pub fn keys(&self) -> Vec<SimKey> {
        let now = self.core.clock.now();
        self.state().keys.iter().map(|key| key.sim_key(now)).collect()
    }

    /// One key by id, even if deleted.
    pub fn key(&self, id: &str) -> Option<SimKey> {
        let now = self.core.clock.now();
        self.state()
            .keys
            .iter()
            .find(|key| key.id == id)
            .map(|key| key.sim_key(now))
    }

    /// How many live keys have a name containing `needle`.
    pub fn live_key_count_named_with(&self, needle: &str) -> usize {
        self.state()
            .keys
            .iter()
            .filter(|key| key.is_live() && key.name.contains(needle))
            .count()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}
